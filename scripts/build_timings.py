#!/usr/bin/env python3
"""Where a cold build's time goes, from cargo's `--timings` report.

    scripts/build_timings.py target/cargo-timings/cargo-timing.html

Prints metric lines (`KEY VALUE`, as scripts/bench_lib.sh's `metric`):
the CPU seconds of all units, the ten slowest crates, and the seconds per
crate family (polars-*, arrow-*/parquet, deltalake/delta_kernel, ...),
which is how the cuts of issue 24 are weighed. Seconds are per unit
(a crate's build script and its library are separate units), summed over
units, so they add up to more than the wall time on two cores.
"""
import json
import re
import sys
from collections import defaultdict

FAMILIES = [
    ("polars", r"^polars"),
    ("arrow+parquet", r"^(arrow|parquet)"),
    ("deltalake+kernel", r"^(deltalake|delta_kernel|buoyant_kernel)"),
    ("datafusion", r"^datafusion"),
    ("sqlx", r"^sqlx"),
    ("rdkafka (librdkafka C)", r"^rdkafka"),
    ("aws/object_store/reqwest/rustls", r"^(aws|object_store|reqwest|rustls|ring|hyper|h2)"),
    ("our crates", r"^(dag|jobs|testkit|dag-e2e)$"),
]


def main(path):
    text = open(path, encoding="utf-8").read()
    m = re.search(r"const UNIT_DATA = (\[.*?\]);\n", text, re.S)
    if not m:
        print("# no UNIT_DATA in the timings report", file=sys.stderr)
        return 1
    units = json.loads(m.group(1))
    per_crate = defaultdict(float)
    for u in units:
        per_crate[u["name"]] += float(u["duration"])
    total = sum(per_crate.values())
    print(f"build.cpu_s {total:.0f}")
    slow = sorted(per_crate.items(), key=lambda kv: -kv[1])[:10]
    print("build.slowest " + ", ".join(f"{n} {s:.0f} s" for n, s in slow))
    fam = defaultdict(float)
    for name, s in per_crate.items():
        for label, pat in FAMILIES:
            if re.match(pat, name):
                fam[label] += s
                break
        else:
            fam["other"] += s
    order = [label for label, _ in FAMILIES] + ["other"]
    print("build.families " + ", ".join(
        f"{label} {fam[label]:.0f} s ({fam[label] / total:.0%})" for label in order if fam[label] > 0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
