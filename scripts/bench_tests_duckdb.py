#!/usr/bin/env python3
"""Benchmark: the gold data tests of the telematics pipeline, run by DuckDB
SQL over the live Parquet files of the gold Delta tables, to compare with
`dag test`.

    bench_tests_duckdb.py LAKE_DIR

LAKE_DIR/gold/<table>/ are the Delta tables that `dag run` wrote. Prints one
JSON line:

    {"engine": "duckdb", "version": ..., "tests": [{"name", "failing",
     "seconds"}], "seconds_total": ..., "log_seconds": ..., "rows": {table: n}}

`failing` is the number of failing rows. For not_null it counts the null
rows. For unique it counts the rows whose key occurs more than once. For
relationships it counts the child rows with a non-null value and no parent.
For accepted_values it counts the non-null rows outside the list or the
interval. `seconds_total` is the wall time of the test queries only.
`log_seconds` is the time spent reading the Delta logs and defining the
views. `rows` is each table's live row count, which is not timed.

How the script works:
- It replays each table's Delta log itself, so it needs nothing beyond
  duckdb. It starts from the newest complete checkpoint found in
  `_delta_log/` (one Parquet file or a multi-part set, read with DuckDB),
  then applies the JSON commits after it, in order. It lists the directory
  rather than trusting `_last_checkpoint`, which the protocol treats only as
  a hint. What remains is the live files, their partitionValues, the schema
  and the protocol. Tables that need a reader feature this script lacks
  (column mapping, deletion vectors) are refused.
- Each table becomes a view. Files are grouped by partition values. Each
  group is one read_parquet whose partition columns are constants taken from
  the log and cast to their Delta type. Per the protocol, the log is the
  authority on partition values, so a copy of a partition column inside a
  file is ignored. The groups are combined with UNION ALL BY NAME, so files
  written before a column was added read that column as NULL.
- Another process may be committing to the lake. Each table is read at the
  version its log had when read, and a test joining two tables may see them
  at versions from slightly different moments. If a file or commit vanishes
  or is not readable yet, the whole run is retried from the logs.

How this differs from dag's tests:
- dag runs each test on the version a run has just written, on polars. A
  row-wise test reads only the files committed after its last passing
  version. `unique` checks the new keys against the key columns of the rest
  of the table. This script always checks every live row, like `dag test
  --full`.
- dag also keeps up to `sample_rows` failing rows, applies `severity`,
  `where` and `warn_if`/`error_if`, and appends every result to
  `<lake>/_dag/test_results`. This script only counts failing rows. The
  gold models declare no `where` or thresholds, and every test there has
  error severity.
- The tests are declared below as data. They mirror the `tests:` entries of
  models/telematics/gold/*.yml, which remain the authority, and are named as
  dag names them: `<kind>_<model>_<columns>`.
"""

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb

# ---------------------------------------------------------------------------
# The tests of models/telematics/gold/*.yml, in declaration order: column
# tests in column order, then model-level tests.

TESTS = [
    {"model": "agg_alerts_15min", "kind": "not_null", "columns": ["window_start"]},
    {"model": "agg_alerts_15min", "kind": "unique", "columns": ["window_start"]},
    {"model": "agg_driver_daily", "kind": "not_null", "columns": ["driver_id"]},
    {"model": "agg_driver_daily", "kind": "relationships", "columns": ["driver_id"],
     "to": "dim_driver", "field": "driver_id"},
    {"model": "agg_driver_daily", "kind": "not_null", "columns": ["event_date"]},
    {"model": "agg_driver_daily", "kind": "unique", "columns": ["driver_id", "event_date"]},
    {"model": "dim_driver", "kind": "not_null", "columns": ["driver_id"]},
    {"model": "dim_driver", "kind": "unique", "columns": ["driver_id"]},
    {"model": "dim_vehicle", "kind": "not_null", "columns": ["vehicle_id"]},
    {"model": "dim_vehicle", "kind": "unique", "columns": ["vehicle_id"]},
    {"model": "dim_vehicle", "kind": "accepted_values", "columns": ["fuel_type"],
     "values": ["petrol", "diesel", "hybrid", "electric"]},
    {"model": "fact_fines", "kind": "not_null", "columns": ["fine_id"]},
    {"model": "fact_fines", "kind": "unique", "columns": ["fine_id"]},
    {"model": "fact_fines", "kind": "not_null", "columns": ["vehicle_id"]},
    {"model": "fact_fines", "kind": "relationships", "columns": ["vehicle_id"],
     "to": "dim_vehicle", "field": "vehicle_id"},
    {"model": "fact_fines", "kind": "relationships", "columns": ["driver_id"],
     "to": "dim_driver", "field": "driver_id"},
    {"model": "fact_telemetry", "kind": "not_null", "columns": ["event_id"]},
    {"model": "fact_telemetry", "kind": "unique", "columns": ["event_id"]},
    {"model": "fact_telemetry", "kind": "not_null", "columns": ["vehicle_id"]},
    {"model": "fact_telemetry", "kind": "relationships", "columns": ["vehicle_id"],
     "to": "dim_vehicle", "field": "vehicle_id"},
    {"model": "fact_telemetry", "kind": "not_null", "columns": ["driver_id"]},
    {"model": "fact_telemetry", "kind": "relationships", "columns": ["driver_id"],
     "to": "dim_driver", "field": "driver_id"},
    {"model": "fact_telemetry", "kind": "not_null", "columns": ["event_time"]},
    {"model": "fact_telemetry", "kind": "accepted_values", "columns": ["gear"],
     "range": "[0, 7]"},
    {"model": "int_driver_daily_telemetry", "kind": "not_null", "columns": ["driver_id"]},
    {"model": "int_driver_daily_telemetry", "kind": "unique",
     "columns": ["driver_id", "event_date"]},
]

ATTEMPTS = 5


def test_name(test):
    return f"{test['kind']}_{test['model']}_{'_'.join(test['columns'])}"


# ---------------------------------------------------------------------------
# SQL text

def ident(name):
    return '"' + name.replace('"', '""') + '"'


def literal(value):
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def interval_sql(column, text):
    """`column` within an interval written as dag's model files write it:
    `[low, high]`; a square bracket includes its end, a round one excludes
    it, an empty end is unbounded."""
    m = re.fullmatch(r"\s*([\[(])([^,]*),([^\])]*)([\])])\s*", text)
    if not m:
        raise ValueError(f"interval {text!r} must look like [low, high], (low, high] or [low, )")
    opening, low, high, closing = m[1], m[2].strip(), m[3].strip(), m[4]
    conds = []
    for end, op in ((low, ">=" if opening == "[" else ">"), (high, "<=" if closing == "]" else "<")):
        if end:
            if not math.isfinite(float(end)):  # float() rejects a non-number
                raise ValueError(f"interval end {end!r} must be finite")
            conds.append(f"{column} {op} {end}")
    return " AND ".join(conds) or "TRUE"


def test_sql(test):
    """One query returning the test's failing-row count."""
    table = ident(test["model"])
    cols = [ident(c) for c in test["columns"]]
    kind = test["kind"]
    if kind == "not_null":
        return f"SELECT count(*) FROM {table} WHERE {cols[0]} IS NULL"
    if kind == "unique":
        keys = ", ".join(cols)
        return (f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {table} "
                f"GROUP BY {keys} HAVING count(*) > 1)")
    if kind == "relationships":
        col, parent, field = cols[0], ident(test["to"]), ident(test["field"])
        return (f"SELECT count(*) FROM {table} AS child WHERE child.{col} IS NOT NULL "
                f"AND NOT EXISTS (SELECT 1 FROM {parent} AS parent "
                f"WHERE parent.{field} = child.{col})")
    if kind == "accepted_values":
        col = cols[0]
        if "values" in test:
            accepted = f"{col} IN ({', '.join(literal(v) for v in test['values'])})"
        else:
            accepted = interval_sql(col, test["range"])
        return f"SELECT count(*) FROM {table} WHERE {col} IS NOT NULL AND NOT ({accepted})"
    raise ValueError(f"{test_name(test)}: kind {kind} is not supported")


# ---------------------------------------------------------------------------
# The Delta log

COMMIT = re.compile(r"(\d{20})\.json")
CHECKPOINT = re.compile(r"(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet")
# Reader features whose tables read correctly without doing anything more.
READER_FEATURES_OK = {"timestampNtz", "vacuumProtocolCheck"}
# Delta primitive types, as DuckDB names them (for partition values and
# the columns of a table that has no file yet).
DELTA_TYPES = {
    "string": "VARCHAR", "long": "BIGINT", "integer": "INTEGER", "short": "SMALLINT",
    "byte": "TINYINT", "float": "FLOAT", "double": "DOUBLE", "boolean": "BOOLEAN",
    "binary": "BLOB", "date": "DATE", "timestamp": "TIMESTAMPTZ", "timestamp_ntz": "TIMESTAMP",
}


class Unsettled(Exception):
    """The log or a file changed or vanished while it was read: retry."""


class Snapshot:
    """The live files of a Delta table, its schema and partition columns."""

    def __init__(self):
        self.files = {}  # path as the log writes it -> partitionValues
        self.metadata = None
        self.protocol = None
        self.version = -1

    def apply(self, action):
        if "add" in action:
            add = action["add"]
            self.files[add["path"]] = add.get("partitionValues") or {}
        elif "remove" in action:
            self.files.pop(action["remove"]["path"], None)
        elif "metaData" in action:
            self.metadata = action["metaData"]
        elif "protocol" in action:
            self.protocol = action["protocol"]


def read_snapshot(con, table_dir):
    """The table as of the newest commit in its log."""
    log = table_dir / "_delta_log"
    try:
        names = os.listdir(log)
    except FileNotFoundError as e:
        raise Unsettled(f"{log}: {e}") from e
    commits = sorted(int(m[1]) for n in names if (m := COMMIT.fullmatch(n)))
    checkpoints = {}  # (version, parts) -> files
    for n in names:
        if m := CHECKPOINT.fullmatch(n):
            checkpoints.setdefault((int(m[1]), int(m[3] or 1)), []).append(str(log / n))
    complete = [(v, sorted(files)) for (v, parts), files in checkpoints.items() if len(files) == parts]

    snap = Snapshot()
    if complete:
        snap.version, files = max(complete)
        # Actions as JSON, so checkpoint rows read like commit lines.
        rows = con.execute(
            """SELECT CASE
                 WHEN "add" IS NOT NULL THEN json_object('add', json_object(
                   'path', "add".path, 'partitionValues', to_json("add".partitionValues)))
                 WHEN "metaData" IS NOT NULL THEN json_object('metaData', to_json("metaData"))
                 WHEN "protocol" IS NOT NULL THEN json_object('protocol', to_json("protocol"))
               END
               FROM read_parquet(?)
               WHERE "add" IS NOT NULL OR "metaData" IS NOT NULL OR "protocol" IS NOT NULL""",
            [files],
        ).fetchall()
        for (row,) in rows:
            snap.apply(json.loads(row))
    later = [v for v in commits if v > snap.version]
    if not later and snap.version < 0:
        raise Unsettled(f"{log}: no commit yet")
    if later and later != list(range(snap.version + 1, later[-1] + 1)):
        raise Unsettled(f"{log}: commits {later} do not follow version {snap.version}")
    for v in later:
        try:
            text = (log / f"{v:020d}.json").read_text()
            for line in text.splitlines():
                if line.strip():
                    snap.apply(json.loads(line))
        except (FileNotFoundError, json.JSONDecodeError) as e:
            raise Unsettled(f"{log}: commit {v}: {e}") from e
        snap.version = v

    if snap.metadata is None or snap.protocol is None:
        raise Unsettled(f"{log}: no metaData or protocol action up to version {snap.version}")
    reader = snap.protocol.get("minReaderVersion", 1)
    features = set(snap.protocol.get("readerFeatures") or [])
    if not (reader == 1 or (reader == 3 and features <= READER_FEATURES_OK)):
        sys.exit(f"{table_dir}: reader version {reader} with features {sorted(features)} "
                 "is not supported by this script")
    return snap


def file_location(table_dir, path):
    """A data file's path on disk: the log writes it URI-encoded, relative
    to the table or as an absolute file: URI."""
    url = urlparse(path)
    if url.scheme == "":
        return str(table_dir / unquote(path))
    if url.scheme == "file":
        return unquote(url.path)
    sys.exit(f"{table_dir}: file {path} is not on the local filesystem")


def view_sql(table_dir, snap):
    fields = {f["name"]: f["type"] for f in json.loads(snap.metadata["schemaString"])["fields"]}

    def duck_type(column):
        t = fields[column]
        if isinstance(t, str) and t.startswith("decimal"):
            return t.upper()
        if isinstance(t, str) and t in DELTA_TYPES:
            return DELTA_TYPES[t]
        sys.exit(f"{table_dir}: column {column} of type {t} is not supported here")

    partition_cols = snap.metadata.get("partitionColumns") or []
    groups = {}  # partition values -> files
    for path, values in snap.files.items():
        key = tuple(values.get(c) for c in partition_cols)
        groups.setdefault(key, []).append(file_location(table_dir, path))
    if not groups:
        cols = ", ".join(f"CAST(NULL AS {duck_type(c)}) AS {ident(c)}" for c in fields)
        return f"SELECT {cols} WHERE false"
    data_cols = (f"COLUMNS(lambda c: c NOT IN ({', '.join(literal(c) for c in partition_cols)}))"
                 if partition_cols else "*")
    selects = []
    for values, files in groups.items():
        consts = "".join(
            f", CAST({literal(v)} AS {duck_type(c)}) AS {ident(c)}"
            for c, v in zip(partition_cols, values)
        )
        selects.append(f"SELECT {data_cols}{consts} FROM read_parquet("
                       f"[{', '.join(literal(f) for f in files)}], union_by_name = true)")
    return "\nUNION ALL BY NAME\n".join(selects)


# ---------------------------------------------------------------------------

def run(lake):
    tables = sorted({t["model"] for t in TESTS} | {t["to"] for t in TESTS if "to" in t})
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")

    started = time.perf_counter()
    for name in tables:
        table_dir = lake / "gold" / name
        snap = read_snapshot(con, table_dir)
        con.execute(f"CREATE OR REPLACE VIEW {ident(name)} AS {view_sql(table_dir, snap)}")
    log_seconds = time.perf_counter() - started

    results = []
    started = time.perf_counter()
    for test in TESTS:
        t0 = time.perf_counter()
        (failing,) = con.execute(test_sql(test)).fetchone()
        results.append({"name": test_name(test), "failing": int(failing),
                        "seconds": round(time.perf_counter() - t0, 4)})
    seconds_total = time.perf_counter() - started

    rows = {name: con.execute(f"SELECT count(*) FROM {ident(name)}").fetchone()[0]
            for name in tables}
    return {
        "engine": "duckdb",
        "version": duckdb.__version__,
        "tests": results,
        "seconds_total": round(seconds_total, 4),
        "log_seconds": round(log_seconds, 4),
        "rows": rows,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lake", type=Path, help="the lake directory (holding gold/<table>/)")
    lake = ap.parse_args().lake.resolve()
    for attempt in range(1, ATTEMPTS + 1):
        try:
            out = run(lake)
            break
        except (Unsettled, duckdb.IOException) as e:
            if attempt == ATTEMPTS:
                sys.exit(f"the lake kept changing under the run: {e}")
            print(f"attempt {attempt}: {e}; retrying", file=sys.stderr)
            time.sleep(attempt)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
