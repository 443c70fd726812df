#!/usr/bin/env python3
"""Writes BENCHMARKS.md from one run of scripts/bench_all.sh.

    bench_report.py RUN_DIR OUT --small 1M --large 10M [--quick]

RUN_DIR holds metrics.txt (`key value` lines written by the benchmark
scripts through bench_lib.sh's `metric`), stages.txt (`name ok|failed
seconds command...`) and NAME.log per stage. The table is built only from
those figures; the prose around it comes from docs/benchmarks-notes.md, so
nothing in the generated file is typed by hand. A figure whose benchmark
failed shows as "not measured" and the stage's log says why.
"""

import argparse
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_metrics(path):
    m = {}
    for line in path.read_text().splitlines():
        if line.strip():
            k, _, v = line.partition(" ")
            m[k] = v.strip()
    return m


def load_stages(path):
    out = []
    for line in path.read_text().splitlines():
        name, status, secs, *cmd = line.split(" ")
        out.append((name, status, int(secs), " ".join(cmd)))
    return out


class Figures:
    """Metric lookup; a missing figure raises Missing, turned into a cell."""

    class Missing(Exception):
        pass

    def __init__(self, metrics):
        self.m = metrics

    def has(self, key):
        return key in self.m

    def text(self, key):
        if key not in self.m:
            raise Figures.Missing(key)
        return self.m[key]

    def f(self, key):
        v = self.m.get(key, "")
        try:
            return float(v)
        except ValueError:
            raise Figures.Missing(key) from None


def secs(x):
    return f"{x:.2f} s" if x < 10 else f"{x:.1f} s"


def mb(x):
    return f"{int(x):,} MB"


def num(x):
    return f"{int(round(x)):,}"


def ratio(peer, ours):
    """peer / dag: above 1, dag is faster (or uses less)."""
    return f"{peer / ours:.2f}x" if ours > 0 else "n/a"


def verdict(ok):
    return "met" if ok else "**not met**"


def by_how_much(ok, short):
    """`met`, or `**not met** (<short>)`: a target not met says by how much."""
    return "met" if ok else f"**not met** ({short})"


def rows(fig, small, large):
    """(what, how, dag figure, peer, peer figure, ratio, target) per row;
    each a callable so one missing figure only blanks its own row."""
    f = fig.f
    r = []

    def ingest():
        """Bronze ingest"""
        rate, rss = f("ingest.msg_per_s"), f("ingest.rss_mb")
        return (
            f"Bronze ingest: {num(f('ingest.messages'))} telemetry messages, broker process -> local bronze Delta",
            f"`scripts/bench_ingest.sh {int(f('ingest.messages'))}`",
            f"{num(rate)} msg/s ({f('ingest.mb_per_s'):.1f} MB/s), {mb(rss)} peak",
            "none run here (Spark Structured Streaming, Kafka Connect)", "", "",
            f">= 400,000 msg/s under 500 MB (issue 24): "
            + by_how_much(rate >= 400000 and rss < 500,
                          f"{rate / 400000:.0%} of the rate" + (f", {mb(rss)}" if rss >= 500 else "")),
        )

    r.append(ingest)

    for tag in (small, large):
        def full(tag=tag):
            """Silver + gold full run vs DuckDB"""
            s, rss = f(f"models.{tag}.full_s"), f(f"models.{tag}.full_rss_mb")
            d, drss = f(f"compare.{tag}.duckdb.wall_s"), f(f"compare.{tag}.duckdb.rss_mb")
            target = ""
            if tag == "1M":
                target = ("at most half of DuckDB's time (issue 24): "
                          + by_how_much(s <= d / 2, f"{s / (d / 2):.2f}x the target time"))
            elif tag == "10M":
                target = ("10M peak under 1.5 GB (issue 24): "
                          + by_how_much(rss < 1536, f"{mb(rss)}"))
            return (
                f"Silver + gold full run (`dag run --full-refresh`, 13 models, Delta written), {tag} events",
                f"`scripts/bench_models.sh {int(f(f'models.{tag}.events'))}`, `bench_compare.sh`",
                f"{secs(s)}, {mb(rss)} peak",
                "DuckDB 2.0, in memory",
                f"{secs(d)}, {mb(drss)} peak",
                f"time {ratio(d, s)}, memory {ratio(drss, rss)}",
                target,
            )

        def polars(tag=tag):
            """Silver + gold full run vs polars"""
            s, rss = f(f"models.{tag}.full_s"), f(f"models.{tag}.full_rss_mb")
            p, prss = f(f"compare.{tag}.polars.wall_s"), f(f"compare.{tag}.polars.rss_mb")
            return (
                f"Silver + gold full run, {tag} events",
                f"`scripts/bench_models.sh {int(f(f'models.{tag}.events'))}`, `bench_compare.sh`",
                f"{secs(s)}, {mb(rss)} peak",
                "Python polars 2.1, in memory",
                f"{secs(p)}, {mb(prss)} peak",
                f"time {ratio(p, s)}, memory {ratio(prss, rss)}",
                ("at least 3x Python polars (issue 24): "
                 + by_how_much(p >= 3 * s, f"{p / s:.2f}x")) if tag == "1M" else "",
            )

        def pyspark(tag=tag):
            """Silver + gold full run vs PySpark"""
            s, rss = f(f"models.{tag}.full_s"), f(f"models.{tag}.full_rss_mb")
            p, prss = f(f"compare.{tag}.pyspark.wall_s"), f(f"compare.{tag}.pyspark.rss_mb")
            return (
                f"Silver + gold full run, {tag} events",
                f"`scripts/bench_models.sh {int(f(f'models.{tag}.events'))}`, `bench_compare.sh`",
                f"{secs(s)}, {mb(rss)} peak",
                "PySpark 4.3, local[2], 4 GB driver, in memory "
                f"({secs(f(f'compare.{tag}.pyspark.in_process_s'))} in process after the JVM's start)",
                f"{secs(p)}, {mb(prss)} peak",
                f"time {ratio(p, s)}, memory {ratio(prss, rss)}",
                "",
            )

        def incr(tag=tag):
            """Silver + gold incremental run"""
            s, full = f(f"models.{tag}.incremental_s"), f(f"models.{tag}.full_s")
            rss = f(f"models.{tag}.incremental_rss_mb")
            share = s / full
            return (
                f"Silver + gold incremental run, +1% events on {tag}",
                "`scripts/bench_models.sh`",
                f"{secs(s)} ({share:.0%} of the full run), {mb(rss)} peak",
                "", "", "",
                f"under 10% of full: {verdict(share < 0.10)}",
            )

        def nothing(tag=tag):
            """Silver + gold with nothing new"""
            return (
                f"Silver + gold with nothing new, {tag} events",
                "`scripts/bench_models.sh`",
                f"{secs(f(f'models.{tag}.nothing_new_s'))}, {mb(f(f'models.{tag}.nothing_new_rss_mb'))} peak, no Delta version written",
                "", "", "", "",
            )

        # PySpark runs at the large size only with BENCH_SPARK_LARGE=1.
        measured = tag != large or fig.has(f"compare.{tag}.pyspark.wall_s")
        spark = [pyspark] if measured else []
        r += [full, polars, *spark, incr, nothing]

    def tests_full():
        """Data tests, every row"""
        s, wall, rss = f("tests.full.test_s"), f("tests.full.wall_s"), f("tests.full.rss_mb")
        d, dwall, drss = f("tests.duckdb.test_s"), f("tests.duckdb.wall_s"), f("tests.duckdb.rss_mb")
        return (
            f"Data tests, every row: the 26 gold tests on {num(f('tests.rows'))} fact rows (`dag test gold --full`)",
            "`scripts/bench_tests.sh`",
            f"{secs(s)} test time ({secs(wall)} wall), {mb(rss)} peak",
            "DuckDB 2.0, same tests as SQL",
            f"{secs(d)} test time ({secs(dwall)} wall), {mb(drss)} peak",
            f"time {ratio(d, s)}, memory {ratio(drss, rss)}",
            "",
        )

    def tests_incr():
        """Data tests, incremental"""
        s, full = f("tests.incremental.test_s"), f("tests.full.test_s")
        return (
            "Data tests, incremental: +1% events, tests inside `dag run`",
            "`scripts/bench_tests.sh`",
            f"{secs(s)} test time ({s / full:.0%} of every-row)",
            "", "", "", "",
        )

    def load_initial():
        """Warehouse initial load"""
        s, rows_, rss = f("load.initial.wall_s"), f("load.initial.fact_rows"), f("load.initial.rss_mb")
        c = f("load.copy.wall_s")
        return (
            f"Warehouse initial load: {num(rows_)} fact rows + the other gold tables, one transaction",
            "`scripts/bench_load.sh`",
            f"{secs(s)} ({num(rows_ / s)} fact rows/s), {mb(rss)} peak",
            "psql `\\copy` of the fact rows' CSV into the same empty table",
            f"{secs(c)}",
            f"time {ratio(c, s)}",
            f"within 2x of plain COPY: {verdict(s <= 2 * c)}",
        )

    def load_incr():
        """Warehouse incremental load"""
        s, rows_ = f("load.incremental.wall_s"), f("load.incremental.fact_rows")
        return (
            f"Warehouse incremental load: +1% events ({num(rows_)} new fact rows), upsert by key",
            "`scripts/bench_load.sh`",
            f"{secs(s)}, {mb(f('load.incremental.rss_mb'))} peak",
            "", "", "", "",
        )

    r += [tests_full, tests_incr, load_initial, load_incr]

    for c in ("4", "1"):
        def sched(c=c):
            """Scheduler overhead"""
            k = f"scheduler.c{c}"
            # One at a time, the time outside the tasks is the scheduler's
            # own; with several at once only wall per task means anything.
            per = (
                f"{f(k + '.outside_ms_per_task'):.1f} ms per task outside the tasks"
                if c == "1"
                else f"{f(k + '.wall_ms_per_task'):.1f} ms of wall per task"
            )
            return (
                f"Scheduler: {num(f(k + '.nodes'))}-node DAG of no-op tasks, max_concurrency {c}",
                f"`scripts/bench_scheduler.sh {num(f(k + '.nodes')).replace(',', '')} {c}`",
                f"{secs(f(k + '.second_s'))} trigger to done: {per}",
                "none run here (Airflow)", "", "", "",
            )

        r.append(sched)

    def fresh():
        """Freshness under steady load"""
        ok = f("freshness.invariant_holds") >= 1
        return (
            f"Freshness: {num(f('freshness.events'))} events at {num(f('freshness.rate_target'))}/s "
            "(whole chain in `dag demo`: broker, ingest, silver/gold/tests/load in continuous mode, PostgreSQL)",
            f"`scripts/bench_freshness.sh {int(f('freshness.events'))} {int(f('freshness.rate_target'))}`",
            f"produce -> row in PostgreSQL p50 {secs(f('freshness.p50_s'))}, p99 {secs(f('freshness.p99_s'))} "
            f"over {num(f('freshness.measured_events'))} events; {num(f('freshness.bronze_msg_per_s'))} msg/s "
            f"into bronze; {mb(f('freshness.rss_mb'))} peak",
            "", "", "",
            "p99 at most 5 s (issue 24): "
            + by_how_much(f('freshness.p99_s') <= 5, f"p99 {secs(f('freshness.p99_s'))}")
            + f"; invariant at the end: {'holds' if ok else '**broken**'}",
        )

    r.append(fresh)

    def restart():
        """Kill -9 to reading again"""
        reps = int(f("restart.repeats"))
        fast = f("restart.all.max_s")
        return (
            f"Kill -9 to reading again: a streaming `dag ingest` killed -9 and restarted {reps} times, "
            "kill to its first new bronze commit",
            f"`scripts/bench_restart.sh {reps}`",
            f"`assignment = \"all\"`: median {secs(f('restart.all.median_s'))}, max {secs(fast)}; "
            f"`\"group\"` (session_timeout 6 s): median {secs(f('restart.group.median_s'))}, "
            f"max {secs(f('restart.group.max_s'))}",
            "", "", "",
            f"under 5 s: {verdict(fast < 5)}",
        )

    r.append(restart)

    def commits():
        """Commits that stay cheap"""
        first, last = f("commits_first_ms"), f("commits_last_ms")
        n = int(f("commits_count"))
        return (
            f"Commit cost as the log grows: {num(n)} one-message commits to one local bronze table "
            "with an ingester's upkeep (checkpoint every 100 and expired-log cleanup every 1,000, off "
            "the commit path; compaction every 600)",
            f"`scripts/bench_commits.sh {n}`",
            f"median commit of the first thousand {first:.2f} ms, of the last {last:.2f} ms "
            f"({last / first:.2f}x); means {f('commits_first_mean_ms'):.2f} -> "
            f"{f('commits_last_mean_ms'):.2f} ms, trend over the run "
            f"{f('commits_slope'):+.2f} ms per thousand commits",
            "", "", "",
            "last thousand no slower than the first (issue 24, judged on the means: upkeep "
            "included): "
            # One run's noise on a shared VM: within 10% counts as no slower.
            + by_how_much(
                f("commits_last_mean_ms") <= f("commits_first_mean_ms") * 1.1,
                f"{f('commits_last_mean_ms') / f('commits_first_mean_ms'):.2f}x",
            ),
        )

    r.append(commits)

    def cold_build():
        """First contact: cold build"""
        cold = f("build.cold_s")
        return (
            f"First contact: cold build of `./scripts/demo.sh` (`cargo build --release --workspace "
            f"--all-targets`, {num(f('build.cold_units'))} crates, empty target dir), then "
            "`./scripts/test.sh`'s build",
            f"`scripts/bench_build.sh` (measured {fig.text('build.date')}, commit {fig.text('build.commit')})",
            f"{int(cold // 60)} min {int(cold % 60)} s; the second command: {secs(f('build.second_s'))}, "
            f"{num(f('build.second_units'))} crates compiled",
            "", "", "",
            "at most 40 min (issue 24): " + by_how_much(cold <= 2400, f"{int(cold // 60)} min, "
                                                        f"{cold / 2400:.2f}x the target")
            + "; the second command compiles nothing: "
            + verdict(f("build.second_units") == 0),
        )

    r.append(cold_build)

    def binary():
        """First contact: binary size"""
        if fig.has("build.dist_mb"):
            size, what = f("build.dist_mb"), "the `dist` binary the Dockerfile ships (thin LTO, one codegen unit, stripped)"
        else:
            size, what = f("build.stripped_mb"), "the release binary stripped (`dist` not built in that run)"
        return (
            f"Binary size: {what}",
            f"`scripts/bench_build.sh` (measured {fig.text('build.date')})",
            f"{mb(size)} (release with line tables for our crates: {mb(f('build.release_mb'))}, "
            f"stripped {mb(f('build.stripped_mb'))})"
            + (f"; the dist build from cold: {int(f('build.dist_s') // 60)} min" if fig.has("build.dist_s") else ""),
            "", "", "",
            "at most 150 MB (issue 24): " + by_how_much(size <= 150, f"{mb(size)}"),
        )

    r.append(binary)
    return r


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GB RAM"
    except OSError:
        pass
    osname = sh(". /etc/os-release && echo $PRETTY_NAME")
    pg = re.findall(r"\d+\.\d+", sh("${DAG_PG_BIN:-/usr/lib/postgresql/15/bin}/postgres -V"))
    short = f"{os.cpu_count()} cores, {mem}"
    detail = (
        f"{os.cpu_count()} cores ({cpu or 'unknown CPU'}), {mem}, {osname}, Linux {platform.release()}; "
        f"{sh('rustc -V')}; PostgreSQL {pg[0] if pg else '?'} (private, on the same cores); "
        "release profile (incremental, codegen-units 16), mold"
    )
    return short, detail


def cell(s):
    return s.replace("|", "\\|")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--small", default="1M")
    ap.add_argument("--large", default="10M")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()

    fig = Figures(load_metrics(a.run_dir / "metrics.txt"))
    stages = load_stages(a.run_dir / "stages.txt")
    short, detail = machine()
    # The commit and time bench_all.sh recorded when it measured; a report
    # made again later from the kept run (new prose) still names them.
    recorded = lambda key, otherwise: fig.text(key) if fig.has(key) else otherwise()
    commit = recorded("run.commit", lambda: sh(f"git -C {ROOT} rev-parse --short HEAD"))
    is_dirty = recorded(
        "run.dirty",
        lambda: "1" if sh(f"git -C {ROOT} status --porcelain --untracked-files=no") else "0",
    ) == "1"
    dirty = " (with uncommitted changes)" if is_dirty else ""
    now = recorded("run.at", lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    total = sum(s[2] for s in stages)

    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w(f"Generated by `scripts/bench_all.sh`{' --quick (small sizes)' if a.quick else ''} on {now}, "
      f"commit {commit}{dirty}, in {total // 60} min {total % 60} s. Do not edit: "
      "rerun the script (the prose comes from `docs/benchmarks-notes.md`).")
    w("")
    w(f"Machine: {detail}.")
    w("")
    w("Ratio = peer / dag: above 1, dag is faster or uses less memory. Peak = peak RSS "
      "of the process (`/usr/bin/time -v`). Wall times include process start.")
    w("")
    w("| what | how | dag | peer | peer figure | ratio | target | machine |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows(fig, a.small, a.large):
        try:
            cells = row()
        except Figures.Missing as e:
            cells = (row.__doc__ or row.__name__, "", f"not measured (no `{e}`: see the failed stage below)", "", "", "", "")
        w("| " + " | ".join(cell(c) for c in cells) + f" | {short} |")
    w("")
    if fig.has("build.families"):
        w(f"Where the cold build's time goes (`scripts/build_timings.py` on cargo's `--timings` "
          f"report, {fig.text('build.date')}; CPU seconds summed over crates, "
          f"{num(fig.f('build.cpu_s'))} s in all on 2 cores): {fig.text('build.families')}. "
          f"Slowest crates: {fig.text('build.slowest')}.")
        w("")
    failed = [s for s in stages if s[1] != "ok"]
    if failed:
        w("Failed stages: " + ", ".join(f"`{s[0]}`" for s in failed) + " (their output is below).")
        w("")
    notes = ROOT / "docs" / "benchmarks-notes.md"
    if notes.exists():
        w(notes.read_text().rstrip())
        w("")
    w("## Output of each benchmark")
    w("")
    for name, status, s, cmd in stages:
        log = (a.run_dir / f"{name}.log").read_text(errors="replace").rstrip()
        lines = log.splitlines()
        if len(lines) > 80:
            lines = lines[:40] + [f"... ({len(lines) - 80} lines left out) ..."] + lines[-40:]
        w(f"<details><summary><code>{cmd}</code>: {status}, {s} s</summary>")
        w("")
        w("```")
        w("\n".join(lines))
        w("```")
        w("</details>")
        w("")
    a.out.write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
