#!/usr/bin/env python3
"""The shape of the engine's code, checked (scripts/test.sh runs it in CI).

1. No import circles between files: an edge A -> B is a path in A's code
   (outside its `#[cfg(test)]` part) that names B's module (`use
   crate::b::X`, `super::b::f()`, `crate::b::{X, Y}`); every strongly
   connected set of more than one file is a circle and fails.
2. No file over 600 lines and no function over 120 lines (tests excluded)
   unless its `//!` or `///` doc says why with a line starting
   `Long because:`.

The files and functions that were already too long when this check came
are listed in scripts/structure-todo.txt (one `path` or `path fn name` a
line): they are reported but pass, so that the list only shrinks. An entry
that is no longer too long fails until it is removed from the list; a new
long file or function fails at once.

`scripts/check_structure.py [--list]` from the repository root; exit 1 with
what is wrong and where. `--list` prints the module graph's edges.
"""

import collections
import os
import re
import sys

CRATES = ["dag", "jobs"]
MAX_FILE = 600
MAX_FN = 120
REASON = "Long because:"
TODO = os.path.join("scripts", "structure-todo.txt")


def modules(root):
    """(crate, module path) -> file."""
    out = {}
    for crate in CRATES:
        base = os.path.join(root, crate, "src")
        for d, _, names in os.walk(base):
            for n in names:
                if not n.endswith(".rs"):
                    continue
                path = os.path.join(d, n)
                parts = os.path.relpath(path, base)[:-3].split(os.sep)
                if parts[-1] in ("mod", "lib", "main"):
                    parts = parts[:-1]
                out[(crate, tuple(parts))] = path
    return out


def code_of(path):
    """The file without comments, strings' contents and its tests."""
    text = open(path, encoding="utf-8").read()
    cut = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+", text)
    if cut:
        text = text[: cut.start()]
    return text


def edges(mods):
    graph = collections.defaultdict(set)

    def resolve(crate, path):
        for n in range(len(path), -1, -1):
            key = (crate, tuple(path[:n]))
            if key in mods:
                return key
        return None

    for (crate, mod), path in mods.items():
        src = re.sub(r"//[^\n]*", "", code_of(path))
        src = re.sub(r'"(\\.|[^"\\])*"', '""', src)
        here = list(mod)
        pattern = r"\b(crate|super|self)((?:::\w+)+)(::\{([^;]*?)\})?"
        for m in re.finditer(pattern, src):
            head, rest, _, group = m.groups()
            segs = rest.strip(":").split("::")
            base = {"crate": [], "super": here[:-1], "self": here}[head]
            tails = [[]]
            if group:
                tails = []
                for g in re.split(r",(?![^{]*\})", group):
                    g = g.strip().split(" as ")[0]
                    if g:
                        tails.append(g.split("{")[0].strip(":").split("::"))
            for t in tails:
                full = base + segs + [x for x in t if x and x != "self"]
                target = resolve(crate, full)
                if target and target != (crate, mod):
                    graph[(crate, mod)].add(target)
    return graph


def circles(mods, graph):
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(mods):
        if v not in index:
            visit(v)
    return found


def name(mods, key):
    return os.path.relpath(mods[key])


def long_functions(path):
    """(name, first line, lines, doc) of each function over MAX_FN lines."""
    lines = code_of(path).split("\n")
    out = []
    i = 0
    while i < len(lines):
        m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)", lines[i])
        if not m:
            i += 1
            continue
        # The body: from the first `{` to its matching `}` (strings and
        # chars are rare enough in signatures to ignore; bodies are
        # counted by braces outside string literals).
        depth, started, j = 0, False, i
        while j < len(lines):
            text = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j])
            text = re.sub(r"'(\\.|[^'\\])'", "''", text)
            text = re.sub(r"//.*", "", text)
            for ch in text:
                if ch == "{":
                    depth += 1
                    started = True
                elif ch == "}":
                    depth -= 1
            if started and depth <= 0:
                break
            if not started and text.rstrip().endswith(";"):
                break  # a declaration without a body
            j += 1
        length = j - i + 1
        if started and length > MAX_FN:
            k = i - 1
            doc = []
            while k >= 0 and lines[k].strip().startswith(("///", "#[")):
                doc.append(lines[k])
                k -= 1
            out.append((m.group(6), i + 1, length, "\n".join(doc)))
        i = j + 1 if started else i + 1
    return out


def main():
    root = os.getcwd()
    mods = modules(root)
    graph = edges(mods)
    if "--list" in sys.argv:
        for a in sorted(graph):
            for b in sorted(graph[a]):
                print(f"{name(mods, a)} -> {name(mods, b)}")
        return 0
    problems = []
    for comp in circles(mods, graph):
        files = sorted(name(mods, v) for v in comp)
        inside = set(comp)
        detail = [
            f"    {name(mods, a)} -> {name(mods, b)}"
            for a in sorted(comp)
            for b in sorted(graph[a])
            if b in inside
        ]
        problems.append("import circle between " + ", ".join(files) + ":\n" + "\n".join(detail))
    todo = set()
    if os.path.exists(TODO):
        for line in open(TODO, encoding="utf-8"):
            line = line.split("#")[0].strip()
            if line:
                todo.add(" ".join(line.split()))
    long_now, known = set(), []
    for key in sorted(mods):
        path = mods[key]
        rel = os.path.relpath(path)
        code = code_of(path)
        n = code.count("\n")
        if n > MAX_FILE and REASON not in code:
            long_now.add(rel)
            msg = f"{rel}: {n} lines (tests excluded), over {MAX_FILE}, and no `{REASON}` in its docs"
            (known if rel in todo else problems).append(msg)
        for fn, line, length, doc in long_functions(path):
            if REASON not in doc:
                entry = f"{rel} fn {fn}"
                long_now.add(entry)
                msg = f"{rel}:{line}: fn {fn} is {length} lines, over {MAX_FN}, and no `{REASON}` in its doc"
                (known if entry in todo else problems).append(msg)
    for entry in sorted(todo - long_now):
        problems.append(f"{TODO}: `{entry}` is no longer too long (or gone): remove it from the list")
    for k in known:
        print("to do (listed): " + k)
    for p in problems:
        print(p)
    if problems:
        print(f"check_structure: {len(problems)} problem(s)")
        return 1
    print(f"check_structure: {len(mods)} files, no import circles, nothing too long beyond the {len(known)} listed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
