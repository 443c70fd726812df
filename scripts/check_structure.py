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


DEFINITION = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+|const\s+|unsafe\s+)*"
    r"(?:fn|struct|enum|trait|type|const|static|union)\s+(\w+)",
    re.M,
)
REEXPORT = re.compile(r"^\s*pub(?:\([^)]*\))?\s+use\s+([^;]+);", re.M)
PATH = re.compile(r"\b(crate|super|self)((?:::\w+)*)(::\{([^;]*?)\}|::\*)?")


def clean_source(path):
    src = re.sub(r"//[^\n]*", "", code_of(path))
    return re.sub(r'"(\\.|[^"\\])*"', '""', src)


def expand(head_path, group):
    """`a::b::{c, d::e}` -> [a::b::c, a::b::d::e] as segment lists."""
    if not group:
        return [head_path]
    out = []
    for g in re.split(r",(?![^{]*\})", group):
        g = g.strip().split(" as ")[0]
        if g:
            out.append(head_path + [x for x in g.split("{")[0].strip(":").split("::") if x and x != "self"])
    return out


def edges(mods):
    """File -> the files whose items it names. A name reached through a
    re-export (`pub use x::Item` in a mod.rs) counts against the file that
    defines the item, and a re-export is not a use: a mod.rs that only
    gathers its children's items depends on none of them."""
    graph = collections.defaultdict(set)
    sources = {key: clean_source(path) for key, path in mods.items()}
    defined = {key: set(DEFINITION.findall(src)) for key, src in sources.items()}
    children = {
        key: re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", src, re.M)
        for key, src in sources.items()
    }

    def absolute(crate, here, segs):
        """A path as written in module `here` -> an absolute one."""
        if not segs:
            return None
        head = segs[0]
        if head == "crate":
            return segs[1:]
        if head == "super":
            return absolute(crate, here[:-1], ["self"] + segs[1:])
        if head == "self":
            return here + segs[1:]
        if head in children.get((crate, tuple(here)), []):
            return here + segs
        return None

    reexports = collections.defaultdict(dict)  # module -> name -> absolute path
    for (crate, mod), src in sources.items():
        for m in REEXPORT.finditer(src):
            text = m.group(1).strip()
            g = re.match(r"(.*?)::\{(.*)\}$", text, re.S)
            paths = expand(g.group(1).split("::"), g.group(2)) if g else [text.split(" as ")[0].split("::")]
            for segs in paths:
                full = absolute(crate, list(mod), [x.strip() for x in segs if x.strip()])
                if full:
                    reexports[(crate, mod)][full[-1]] = full

    def resolve(crate, path, depth=0):
        for n in range(len(path), -1, -1):
            key = (crate, tuple(path[:n]))
            if key not in mods:
                continue
            rest = path[n:]
            if rest and rest[0] not in defined[key] and rest[0] in reexports[key] and depth < 10:
                return resolve(crate, reexports[key][rest[0]], depth + 1)
            return key
        return None

    for (crate, mod), src in sources.items():
        here = list(mod)
        used = REEXPORT.sub("", src)
        found = []
        for m in PATH.finditer(used):
            head, rest, tail, group = m.groups()
            if not rest and not tail:
                continue  # `self` as a value, `super` alone
            segs = [head] + [x for x in rest.split("::") if x]
            for path in expand(segs, group):
                found.append(path)
        for child in children[(crate, mod)]:
            for m in re.finditer(r"(?<![\w:])" + child + r"((?:::\w+)+)", used):
                found.append([child] + [x for x in m.group(1).split("::") if x])
        for segs in found:
            full = absolute(crate, here, segs)
            target = resolve(crate, full) if full is not None else None
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
