#!/usr/bin/env python3
"""Comparison benchmark: the telematics silver + gold pipeline of `dag run`,
computed in memory by another engine (DuckDB, Python polars or PySpark in
local mode) from the same bronze Delta tables.

    bench_compare.py ENGINE LAKE_DIR DATA_DIR [--models DIR] [--write DIR]

ENGINE is `duckdb`, `polars` or `pyspark`. LAKE_DIR holds bronze/bronze_vehicle_telemetry
and bronze/bronze_traffic_fines (bronze is append-only, so every *.parquet
file under a table is live); DATA_DIR the reference CSVs. The gold queries
are read from the models dir (default: models/telematics next to this
script's folder) and run as written, but for a few textual adaptations for
DuckDB and Spark SQL (see GOLD_ADAPT). Prints one JSON line: engine, versions, row counts
per table, quarantine reasons and seconds per stage. --write DIR writes the
silver and gold tables there as parquet (not timed) so results can be
compared. See scripts/bench_compare.sh for how this differs from dag.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

# ---------------------------------------------------------------------------
# The contract (shared/spec/telematics.md, models/telematics/silver/*.yml),
# as data both engines build their cleaning from.
# A field: (name, kind, required, range); kind is string | timestamp |
# number | integer; range is (low, low_closed, high, high_closed), None for
# an open end.

TELEMETRY_FIELDS = [
    ("event_id", "string", True, None),
    ("vehicle_id", "string", True, None),
    ("driver_id", "string", True, None),
    ("event_time", "timestamp", True, None),
    ("lat", "number", True, (-90, True, 90, True)),
    ("lon", "number", True, (-180, True, 180, True)),
    ("speed_kmh", "number", True, (0, True, 300, True)),
    ("rpm", "integer", True, (0, True, 10000, True)),
    ("gear", "integer", True, (0, True, 7, True)),
    ("fuel_pct", "number", False, (0, True, 100, True)),
]
FINES_FIELDS = [
    ("fine_id", "string", True, None),
    ("vehicle_id", "string", True, None),
    ("camera_id", "string", True, None),
    ("issued_at", "timestamp", True, None),
    ("speed_kmh", "number", True, (0, True, None, False)),
    ("limit_kmh", "number", True, (0, True, None, False)),
    ("amount_eur", "number", True, (0, False, 100000, True)),
]
# name -> (bronze table, fields, dedupe key, time field for event_date,
#          field with the 5-minute future rule, fields with max 2 decimals)
CLEAN = {
    "silver_telemetry": (
        "bronze_vehicle_telemetry", TELEMETRY_FIELDS, "event_id", "event_time",
        "event_time", ()),
    "silver_fines": (
        "bronze_traffic_fines", FINES_FIELDS, "fine_id", "issued_at",
        None, ("amount_eur",)),
}
INT_FIELDS = {"rpm", "gear"}          # silver type int
DECIMAL_FIELDS = {"amount_eur"}       # silver type decimal(14,2)
MAX_AHEAD_SECONDS = 300               # max_ahead_of_ingest: 5m
DEDUPE_ORDER = ["ingested_at", "partition", "offset"]

# Seeds: table -> (file, key, integer columns).
SEEDS = {
    "silver_car_colors": ("car_colors.csv", "color_id", ()),
    "silver_car_models": ("car_models.csv", "model_id", ()),
    "silver_drivers": ("drivers.csv", "driver_id", ()),
    "silver_vehicles": ("vehicles.csv", "vehicle_id", ("model_year",)),
}
GOLD_ORDER = ["fact_telemetry", "fines_with_driver", "fact_fines", "dim_vehicle",
              "dim_driver", "int_driver_daily_telemetry", "agg_driver_daily", "agg_alerts_15min"]
GOLD = [g for g in GOLD_ORDER if g != "fines_with_driver"]

# DuckDB cannot CAST a BIGINT (microseconds) to TIMESTAMP as polars SQL does,
# and Spark SQL reads such a CAST as seconds and has no EXTRACT(EPOCH ...):
# the window start is rewritten for both. Spark SQL also wants a length
# after VARCHAR (its STRING is the same type). Each adaptation is checked
# to apply exactly as many times as given (once unless a count follows).
WINDOW_START = "CAST(CAST(FLOOR(EXTRACT(EPOCH FROM t.event_time) / 900) AS BIGINT) * 900000000 AS TIMESTAMP)"
GOLD_ADAPT = {
    ("duckdb", "agg_alerts_15min"): [
        (WINDOW_START,
         "make_timestamp(CAST(FLOOR(EXTRACT(EPOCH FROM t.event_time) / 900) AS BIGINT) * 900000000)"),
    ],
    ("pyspark", "agg_alerts_15min"): [
        (WINDOW_START,
         "timestamp_micros(CAST(FLOOR(unix_micros(t.event_time) / 1000000 / 900) AS BIGINT) * 900000000)"),
    ],
    ("pyspark", "dim_driver"): [("CAST(NULL AS VARCHAR)", "CAST(NULL AS STRING)", 3)],
    ("pyspark", "dim_vehicle"): [("CAST(NULL AS VARCHAR)", "CAST(NULL AS STRING)", 4)],
}

# Unicode White_Space (what Rust's char::is_whitespace tests), as a regex
# class both RE2 (DuckDB) and the regex crate (polars) read.
WS_CLASS = (r"[\x{9}-\x{D}\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}"
            r"\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]")
# RFC 3339 with a required offset; hour <= 23, second <= 59; calendar
# validity is left to the engine's date parser.
RFC3339 = (r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])"
           r"(?:\.([0-9]+))?(?:[Zz]|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))$")
# The same for a rewrite to `date time.fraction[offset]`: digits beyond
# microseconds outside group 3, the offset (none for Z: UTC) in group 4.
RFC3339_TRUNC = (r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])"
                 r"(?:\.([0-9]{1,6})[0-9]*)?(?:[Zz]|([+-](?:[01][0-9]|2[0-3]):[0-5][0-9]))$")


def bronze_files(lake, table):
    """Every parquet file of an append-only Delta table (not _delta_log)."""
    root = Path(lake) / "bronze" / table
    files = sorted(str(p) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts)
    if not files:
        sys.exit(f"no parquet files under {root}")
    return files


def gold_sql(models, engine, name):
    sql = (Path(models) / "gold" / f"{name}.sql").read_text()
    for old, new, *times in GOLD_ADAPT.get((engine, name), []):
        if sql.count(old) != (times[0] if times else 1):
            sys.exit(f"{name}.sql changed: cannot adapt it for {engine} ({old!r})")
        sql = sql.replace(old, new)
    return sql


def range_parts(rng):
    lo, lo_closed, hi, hi_closed = rng
    parts = []
    if lo is not None:
        parts.append((">=" if lo_closed else ">", lo))
    if hi is not None:
        parts.append(("<=" if hi_closed else "<", hi))
    return parts


# ---------------------------------------------------------------------------
# DuckDB

def duckdb_clean_sql(bronze, fields, future_field, two_dec):
    """One SELECT: per bronze row, its reason (NULL when valid) and the typed
    fields. Inside: (1) the JSON checks and each field's JSON text
    (json_transform parses the document once; JSON null and an absent key
    both give NULL); (2) types, values and the reason. Costly checks sit in
    CASE branches so only the rows needing them pay."""
    structure = "{" + ", ".join(f'"{f[0]}": "JSON"' for f in fields) + "}"
    present_known = " + ".join(f"(j.{f[0]} IS NOT NULL)::INT" for f in fields)
    stage1 = rf"""
WITH src AS (
    SELECT "partition", "offset", ingested_at,
           value IS NULL OR octet_length(value) = 0 AS is_empty,
           CASE WHEN octet_length(value) > 0 THEN try(decode(value)) END AS txt
    FROM {bronze}
),
obj AS (
    SELECT *, CASE WHEN json_valid(txt) AND json_type(txt) = 'OBJECT' THEN txt END AS doc
    FROM src
),
parsed AS (
    SELECT *, json_transform(doc, '{structure}') AS j FROM obj
)
SELECT "partition", "offset", ingested_at, is_empty,
    doc IS NOT NULL
    -- DuckDB's reader accepts trailing commas and NaN/Infinity/inf/nan in
    -- any case: reject them outside string literals (a cheap test first,
    -- the exact one, with the strings blanked, second)
    AND CASE WHEN regexp_matches(doc, ',[ \t\n\r]*[}}\]]') OR regexp_matches(doc, '[Nn][Aa][Nn]')
                  OR regexp_matches(doc, '[Ii][Nn][Ff]')
             THEN NOT regexp_matches(regexp_replace(doc, '"(?:[^"\\]|\\.)*"', '""', 'g'),
                                     ',[ \t\n\r]*[}}\]]|[Nn][Aa][Nn]|[Ii][Nn][Ff]')
             ELSE TRUE END
    -- duplicate top-level keys (DuckDB keeps the first): only a row with
    -- more keys than contract fields with a non-null value can have one
    AND CASE WHEN len(json_keys(doc)) = {present_known} THEN TRUE
             ELSE len(list_distinct(json_keys(doc))) = len(json_keys(doc)) END AS json_ok,
    {", ".join(f"j.{f[0]} AS v_{f[0]}" for f in fields)}
FROM parsed
"""
    cols, checks = [], []
    fast_ts = (r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
               r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])")
    for name, kind, required, rng in fields:
        v = f"v_{name}"
        is_str = f"left({v}, 1) = '\"'"
        is_num = f"(left({v}, 1) BETWEEN '0' AND '9' OR left({v}, 1) = '-')"
        cols.append(f"{v} IS NULL AS absent_{name}")
        cols.append(f"{is_str} AS is_str_{name}")
        # the string's value: unescape only when there is an escape
        s = f"CASE WHEN contains({v}, '\\') THEN {v}->>'$' ELSE {v}[2:-2] END"
        cols.append(f"CASE WHEN {is_str} THEN {s} END AS s_{name}")
        if kind in ("number", "integer"):
            cols.append(f"{is_num} AS is_num_{name}")
            cols.append(f"CASE WHEN {is_num} THEN TRY_CAST({v} AS DOUBLE) END AS n_{name}")
        if name in two_dec:
            cols.append(f"CASE WHEN {is_num} THEN TRY_CAST({v} AS DECIMAL(38, 10)) END AS d_{name}")
    typed = []
    for name, kind, required, rng in fields:
        s = f"s_{name}"
        # all-whitespace (Unicode White_Space); the regex only when the first
        # character is not plain printable ASCII
        typed.append(f"""CASE WHEN {s} IS NULL THEN FALSE WHEN {s} = '' THEN TRUE
                 WHEN ascii({s}) > 32 AND ascii({s}) < 127 THEN FALSE
                 ELSE regexp_full_match({s}, '{WS_CLASS}*') END AS blank_{name}""")
        if kind == "timestamp":
            # the common shape goes straight to DuckDB's cast (which checks
            # the calendar); lower-case t/z and fractions beyond microseconds
            # (truncated) are rewritten to `date time.fraction[offset]` first
            canon = f"regexp_replace({s}, '{RFC3339_TRUNC}', " r"'\1 \2.\30\4')"
            typed.append(f"""CASE WHEN regexp_full_match({s}, '{fast_ts}') THEN TRY_CAST({s} AS TIMESTAMPTZ)
                 WHEN regexp_full_match({s}, '{RFC3339}') THEN TRY_CAST({canon} AS TIMESTAMPTZ)
                 END AS ts_{name}""")
    for name, kind, required, rng in fields:
        absent = f"absent_{name}"
        if required:
            checks.append((f"{absent} OR blank_{name}", f"missing:{name}"))
        if kind == "string":
            checks.append((f"NOT is_str_{name}", f"type:{name}"))
        elif kind == "timestamp":
            checks.append((f"ts_{name} IS NULL", f"type:{name}"))
            if name == future_field:
                checks.append((f"ts_{name} > ingested_at + INTERVAL {MAX_AHEAD_SECONDS} SECOND",
                               "future_event_time"))
        else:
            bad = [f"n_{name} IS NULL"]
            if kind == "integer":
                bad.append(f"n_{name} <> trunc(n_{name})")
            if name in two_dec:
                bad.append(f"d_{name} <> round(d_{name}, 2)")
            checks.append((f"NOT {absent} AND ({' OR '.join(bad)})", f"type:{name}"))
            if rng:
                ok = " AND ".join(f"n_{name} {op} {v}" for op, v in range_parts(rng))
                checks.append((f"NOT {absent} AND NOT ({ok})", f"range:{name}"))
            # a value that is no finite double is a type error, after range
            checks.append((f"NOT {absent} AND NOT isfinite(n_{name})", f"type:{name}"))
    whens = "\n            ".join(f"WHEN {c} THEN '{r}'" for c, r in checks)
    out = []
    for name, kind, _, _ in fields:
        if kind == "string":
            out.append(f"s_{name} AS {name}")
        elif kind == "timestamp":
            out.append(f"ts_{name} AS {name}")
        elif name in INT_FIELDS:
            out.append(f"CAST(n_{name} AS INTEGER) AS {name}")
        elif name in DECIMAL_FIELDS:
            out.append(f"CAST(d_{name} AS DECIMAL(14, 2)) AS {name}")
        else:
            out.append(f"n_{name} AS {name}")
    sep = ",\n        "
    return f"""
SELECT "partition", "offset", ingested_at,
    CASE WHEN is_empty THEN 'empty_value'
         WHEN NOT json_ok THEN 'malformed_json'
            {whens}
    END AS reason,
    {", ".join(out)}
FROM (
    SELECT *, {sep.join(typed)}
    FROM (
        SELECT "partition", "offset", ingested_at, is_empty, json_ok, {sep.join(cols)}
        FROM ({stage1})
    )
)
"""


def run_duckdb(lake, data, models):
    import duckdb
    con = duckdb.connect()

    def q(sql, *params):
        return con.execute(sql, list(params)).fetchall()

    q("SET TimeZone = 'UTC'")
    rows, reasons, t = {}, {}, {}
    t0 = time.perf_counter()
    for table in ("bronze_vehicle_telemetry", "bronze_traffic_fines"):
        files = bronze_files(lake, table)
        q(f"""CREATE TABLE {table} AS SELECT "partition", "offset", value, ingested_at
              FROM read_parquet(?, hive_partitioning = false)""", files)
        rows[table] = q(f"SELECT count(*) FROM {table}")[0][0]
    t["read"] = time.perf_counter() - t0

    for model, (bronze, fields, key, time_field, future, two_dec) in CLEAN.items():
        q(f"CREATE TEMP TABLE {model}_parsed AS {duckdb_clean_sql(bronze, fields, future, two_dec)}")
        order = ", ".join(f'"{c}"' for c in DEDUPE_ORDER)
        q(f"""CREATE TABLE {model} AS
              SELECT {', '.join(f[0] for f in fields)}, CAST({time_field} AS DATE) AS event_date
              FROM {model}_parsed WHERE reason IS NULL
              QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {order}) = 1""")
        quarantine = model.replace("silver_", "quarantine_")
        reasons[quarantine] = dict(q(f"""SELECT reason, count(*) FROM {model}_parsed
                                         WHERE reason IS NOT NULL GROUP BY reason ORDER BY 2 DESC"""))
        rows[model] = q(f"SELECT count(*) FROM {model}")[0][0]
        rows[quarantine] = sum(reasons[quarantine].values())
        rows[model.replace("silver_", "duplicates_")] = (
            q(f"SELECT count(*) FROM {model}_parsed WHERE reason IS NULL")[0][0] - rows[model])
        q(f"DROP TABLE {model}_parsed")
        q(f"DROP TABLE {bronze}")

    for seed, (file, key, ints) in SEEDS.items():
        path = str(Path(data) / file)
        q(f"CREATE TABLE {seed}_raw AS SELECT * FROM read_csv(?, header = true, all_varchar = true)", path)
        dup = q(f"SELECT {key}, count(*) FROM {seed}_raw GROUP BY 1 HAVING count(*) > 1 LIMIT 1")
        if dup:
            sys.exit(f"{file}: repeated key {dup[0][0]!r}")
        cols = [r[0] for r in q(f"DESCRIBE {seed}_raw")]
        sel = ", ".join(f"CAST({c} AS INTEGER) AS {c}" if c in ints else c for c in cols)
        q(f"CREATE TABLE {seed} AS SELECT {sel} FROM {seed}_raw")
        rows[seed] = q(f"SELECT count(*) FROM {seed}")[0][0]
    t["read_clean"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    for name in GOLD_ORDER:
        if name == "fines_with_driver":
            # fact_fines.yml `asof`: the driver of the vehicle's latest event at
            # or before issued_at; ties on event_time: greatest event_id.
            q("""CREATE TABLE fines_with_driver AS
                 SELECT f.*, t.driver_id
                 FROM silver_fines f
                 ASOF LEFT JOIN (
                     SELECT vehicle_id, event_time, arg_max(driver_id, event_id) AS driver_id
                     FROM fact_telemetry GROUP BY vehicle_id, event_time
                 ) t ON f.vehicle_id = t.vehicle_id AND t.event_time <= f.issued_at""")
        else:
            q(f"CREATE TABLE {name} AS {gold_sql(models, 'duckdb', name)}")
            rows[name] = q(f"SELECT count(*) FROM {name}")[0][0]
    t["gold"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0

    def write(out_dir):
        for name in ["silver_telemetry", "silver_fines"] + GOLD:
            q(f"COPY {name} TO '{Path(out_dir) / (name + '.parquet')}' (FORMAT parquet)")

    return rows, reasons, t, write, {"duckdb": duckdb.__version__}


# ---------------------------------------------------------------------------
# polars

def polars_text(values, chunk=256):
    """Binary -> UTF-8 text, NULL where the bytes are not UTF-8. polars has no
    per-row checked cast (casting a column fails on its first bad row), so
    the column is cast in slices of `chunk` rows and only a slice that fails
    is decoded row by row in Python."""
    import polars as pl
    try:
        return values.cast(pl.String)
    except Exception:
        pass

    def dec(b):
        try:
            return b.decode("utf-8")
        except (UnicodeDecodeError, AttributeError):
            return None
    parts = []
    for at in range(0, len(values), chunk):
        part = values.slice(at, chunk)
        try:
            parts.append(part.cast(pl.String))
        except Exception:
            parts.append(pl.Series(values.name, [dec(b) for b in part.to_list()], dtype=pl.String))
    return pl.concat(parts, rechunk=True)


# Strict RFC 8259 for an object whose values are all scalars: the fast path
# of the polars JSON check (exact for such objects; surrogate escapes, nested
# values and anything malformed take the slow path).
_JWS = r"[ \t\n\r]*"
_JSTR = r'"(?:[^"\\\x00-\x1F]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_JNUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_JMEMBER = f"{_JSTR}{_JWS}:{_JWS}(?:{_JSTR}|{_JNUM}|true|false|null)"
FLAT_OBJECT = f"^{_JWS}\\{{{_JWS}(?:{_JMEMBER}(?:{_JWS},{_JWS}{_JMEMBER})*)?{_JWS}\\}}{_JWS}$"
KEY = r'"(?:[^"\\]|\\.)*"' + _JWS + ":"


def polars_json_ok(txt, tokens_found):
    """Per row: is the text one strict JSON object without duplicate keys?
    txt: String Series (null: not UTF-8 or empty); tokens_found: how many
    contract fields the row's tokens name."""
    import polars as pl
    d = pl.DataFrame({"txt": txt, "found": tokens_found})
    fast = d.select(
        (pl.col("txt").str.contains(FLAT_OBJECT)
         & ~pl.col("txt").str.contains(r"\\u[dD][89a-fA-F]")).fill_null(False)
        # a flat object with no more keys than contract fields it names has
        # no duplicate
        & (pl.col("txt").str.count_matches(KEY) == pl.col("found"))).to_series()
    ok = fast
    slow_idx = d.with_row_index("i").filter(~fast & pl.col("txt").is_not_null())
    if slow_idx.height:
        # serde_json (json_path_match) is strict but for duplicate keys, of
        # which it keeps the last when it re-serializes the object: one at
        # any depth shows as fewer `"key":` than the original has
        reser = pl.col("txt").str.json_path_match("$")
        slow = slow_idx.select(
            "i",
            ok=(reser.is_not_null()
                & pl.col("txt").str.strip_chars_start(" \t\n\r").str.starts_with("{")
                & (reser.str.count_matches(KEY) >= pl.col("txt").str.count_matches(KEY))
                ).fill_null(False))
        ok = ok.scatter(slow["i"], slow["ok"])
    return ok


def polars_clean(df, fields, future_field, two_dec):
    """Every bronze row with its reason (null when valid) and typed columns."""
    import re
    import polars as pl
    txt = pl.col("txt")
    exprs = []
    for name, kind, _, _ in fields:
        # the raw token of the key: its first occurrence after `{` or `,`
        # (a valid row has one; duplicates are malformed)
        exprs.append(txt.str.extract(
            "[{,]" + _JWS + '"' + re.escape(name) + '"' + _JWS + ":" + _JWS
            + r'("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*|true|false|null|\{|\[)', 1).alias(f"k_{name}"))
    df = df.with_columns(
        txt=polars_text(df["value"]),
        is_empty=pl.col("value").is_null() | (pl.col("value").bin.size() == 0),
    ).with_columns(exprs)
    found = df.select(pl.sum_horizontal(
        [pl.col(f"k_{f[0]}").is_not_null().cast(pl.UInt32) for f in fields])).to_series()
    df = df.with_columns(json_ok=polars_json_ok(df["txt"], found)).drop("txt", "value").lazy()

    cols, checks = [], []
    for name, kind, required, rng in fields:
        tok = pl.col(f"k_{name}")
        is_str = tok.str.starts_with('"')
        is_num = tok.str.contains(r"^-?[0-9]")
        # the string's value: serde_json unescapes it, only when escaped
        escaped = pl.when(is_str & tok.str.contains("\\", literal=True)).then(tok)
        s = pl.when(is_str).then(pl.coalesce(
            escaped.str.json_path_match("$"), tok.str.slice(1, tok.str.len_chars() - 2)))
        cols += [is_str.alias(f"is_str_{name}"), is_num.alias(f"is_num_{name}"), s.alias(f"s_{name}")]
        if kind in ("number", "integer"):
            cols.append(pl.when(is_num).then(tok.cast(pl.Float64, strict=False)).alias(f"n_{name}"))
            # decimal places of the token's exact value: fraction digits
            # (trailing zeros dropped) minus the exponent
            frac = tok.str.extract(r"\.([0-9]+)", 1).str.strip_chars_end("0").str.len_chars().fill_null(0)
            exp = tok.str.extract(r"[eE]([+-]?[0-9]+)", 1).cast(pl.Int64, strict=False).fill_null(0)
            cols.append((frac.cast(pl.Int64) - exp).clip(lower_bound=0).alias(f"places_{name}"))
    df = df.with_columns(cols)

    ts_cols = []
    for name, kind, _, _ in fields:
        if kind != "timestamp":
            continue
        p = pl.col(f"s_{name}").str.extract_groups(
            RFC3339.replace("([0-9]{4}", "(?P<d>[0-9]{4}", 1)
            .replace("((?:[01]", "(?P<t>(?:[01]", 1)
            .replace(r"(?:\.([0-9]+))", r"(?:\.(?P<f>[0-9]+))", 1)
            .replace("([+-])([01][0-9]|2[0-3]):([0-5][0-9])",
                     "(?P<sg>[+-])(?P<oh>[01][0-9]|2[0-3]):(?P<om>[0-5][0-9])", 1))
        local = pl.concat_str([p.struct.field("d"), pl.lit(" "), p.struct.field("t")]).str.strptime(
            pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
        micros = p.struct.field("f").str.slice(0, 6).str.pad_end(6, "0").cast(pl.Int64).fill_null(0)
        sign = pl.when(p.struct.field("sg") == "-").then(-1).otherwise(1)
        off = sign * (p.struct.field("oh").cast(pl.Int64).fill_null(0) * 60
                      + p.struct.field("om").cast(pl.Int64).fill_null(0))
        ts_cols.append((local + pl.duration(microseconds=micros) - pl.duration(minutes=off))
                       .dt.replace_time_zone("UTC").alias(f"ts_{name}"))
    df = df.with_columns(ts_cols)

    for name, kind, required, rng in fields:
        tok = pl.col(f"k_{name}")
        is_str, n = pl.col(f"is_str_{name}"), pl.col(f"n_{name}")
        absent = tok.is_null() | (tok == "null")
        present = ~absent
        if required:
            blank = is_str & pl.col(f"s_{name}").str.contains("^" + WS_CLASS + "*$")
            checks.append((absent | blank, f"missing:{name}"))
        if kind == "string":
            checks.append((~is_str, f"type:{name}"))
        elif kind == "timestamp":
            checks.append((~is_str | pl.col(f"ts_{name}").is_null(), f"type:{name}"))
            if name == future_field:
                checks.append((pl.col(f"ts_{name}") > pl.col("ingested_at")
                               + pl.duration(seconds=MAX_AHEAD_SECONDS), "future_event_time"))
        else:
            bad = ~pl.col(f"is_num_{name}") | n.is_null()
            if kind == "integer":
                bad = bad | (pl.col(f"places_{name}") > 0)
            if name in two_dec:
                bad = bad | (pl.col(f"places_{name}") > 2)
            checks.append((present & bad, f"type:{name}"))
            if rng:
                ok = pl.lit(True)
                for op, v in range_parts(rng):
                    ok = ok & {">=": n >= v, ">": n > v, "<=": n <= v, "<": n < v}[op]
                checks.append((present & ~ok, f"range:{name}"))
            checks.append((present & ~n.is_finite(), f"type:{name}"))
    reason = pl.when(pl.col("is_empty")).then(pl.lit("empty_value")).when(
        ~pl.col("json_ok")).then(pl.lit("malformed_json"))
    for cond, r in checks:
        reason = reason.when(cond).then(pl.lit(r))
    return df.with_columns(reason.otherwise(pl.lit(None, dtype=pl.String)).alias("reason"))


def run_polars(lake, data, models):
    import polars as pl
    rows, reasons, t, tables = {}, {}, {}, {}
    t0 = time.perf_counter()
    bronze = {}
    for table in ("bronze_vehicle_telemetry", "bronze_traffic_fines"):
        bronze[table] = pl.read_parquet(
            bronze_files(lake, table), columns=["partition", "offset", "value", "ingested_at"],
            hive_partitioning=False,
        ).with_columns(pl.col("ingested_at").cast(pl.Datetime("us", "UTC")))
        rows[table] = bronze[table].height
    t["read"] = time.perf_counter() - t0

    for model, (btable, fields, key, time_field, future, two_dec) in CLEAN.items():
        parsed = polars_clean(bronze.pop(btable), fields, future, two_dec)
        out = []
        for name, kind, _, _ in fields:
            if kind == "string":
                out.append(pl.col(f"s_{name}").alias(name))
            elif kind == "timestamp":
                out.append(pl.col(f"ts_{name}").alias(name))
            elif name in INT_FIELDS:
                out.append(pl.col(f"n_{name}").cast(pl.Int32).alias(name))
            elif name in DECIMAL_FIELDS:
                out.append(pl.when(pl.col(f"is_num_{name}")).then(pl.col(f"k_{name}"))
                           .str.to_decimal(scale=2).cast(pl.Decimal(14, 2)).alias(name))
            else:
                out.append(pl.col(f"n_{name}").alias(name))
        parsed = parsed.select(out + [pl.col(c) for c in DEDUPE_ORDER] + [pl.col("reason")]).collect()
        valid = parsed.filter(pl.col("reason").is_null())
        silver = (valid.sort(DEDUPE_ORDER, maintain_order=True)
                  .unique(subset=[key], keep="first", maintain_order=True)
                  .select([f[0] for f in fields])
                  .with_columns(pl.col(time_field).dt.date().alias("event_date")))
        tables[model] = silver
        quarantine = model.replace("silver_", "quarantine_")
        counts = parsed.filter(pl.col("reason").is_not_null())["reason"].value_counts(sort=True)
        reasons[quarantine] = dict(zip(counts["reason"].to_list(), counts["count"].to_list()))
        rows[model] = silver.height
        rows[quarantine] = sum(reasons[quarantine].values())
        rows[model.replace("silver_", "duplicates_")] = valid.height - silver.height
        del parsed, valid

    for seed, (file, key, ints) in SEEDS.items():
        df = pl.read_csv(Path(data) / file, infer_schema=False)
        dup = df.filter(pl.col(key).is_duplicated())
        if dup.height:
            sys.exit(f"{file}: repeated key {dup[key][0]!r}")
        tables[seed] = df.with_columns([pl.col(c).cast(pl.Int32) for c in ints])
        rows[seed] = tables[seed].height
    t["read_clean"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    ctx = pl.SQLContext(frames=tables)
    for name in GOLD_ORDER:
        if name == "fines_with_driver":
            # fact_fines.yml `asof`: the driver of the vehicle's latest event at
            # or before issued_at; ties on event_time: greatest event_id.
            right = (tables["fact_telemetry"].lazy()
                     .group_by("vehicle_id", "event_time")
                     .agg(pl.col("driver_id").sort_by("event_id").last())
                     .sort("event_time"))
            out = (tables["silver_fines"].lazy().sort("issued_at")
                   .join_asof(right, left_on="issued_at", right_on="event_time",
                              by="vehicle_id", strategy="backward", check_sortedness=False)
                   .drop("event_time").collect())
        else:
            out = ctx.execute(gold_sql(models, "polars", name), eager=True)
            rows[name] = out.height
        tables[name] = out
        ctx.register(name, out)
    t["gold"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0

    def write(out_dir):
        for name in ["silver_telemetry", "silver_fines"] + GOLD:
            tables[name].write_parquet(Path(out_dir) / f"{name}.parquet")

    return rows, reasons, t, write, {"polars": pl.__version__}


# ---------------------------------------------------------------------------
# PySpark (local mode)

# local[2]: the machine's two cores, one executor thread each. In local mode
# the driver JVM is the executor, so its heap is all Spark has: 4 GB holds
# the cached silver and gold tables of the 10M run (what does not fit goes to
# disk under spark.local.dir). BENCH_SPARK_MEMORY overrides it.
SPARK_MASTER = "local[2]"
SPARK_MEMORY = os.environ.get("BENCH_SPARK_MEMORY", "4g")
SPARK_CONF = {
    # 4 shuffle partitions (default 200) for 2 cores and at most a few GB
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.structuredLogging.enabled": "false",
}
# Errors only, as plain lines on stderr (which bench_compare.sh shows only
# when the engine fails).
SPARK_LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
"""
SPARK_INTS = "('TINYINT', 'SMALLINT', 'INT', 'BIGINT')"


def spark_re(rx):
    """A regex of this file as a Spark SQL raw literal for Java's regex: its
    one `$` (which Java also matches before a final line break) becomes \z."""
    assert "'" not in rx and rx.count("$") <= 1 and (rx.endswith("$") or "$" not in rx)
    return "r'" + rx.replace("$", r"\z") + "'"


def spark_clean_sql(bronze, fields, future_field, two_dec):
    """One SELECT: per bronze row, its reason (NULL when valid) and the typed
    fields. parse_json (Jackson, strict but for what follows) makes one
    VARIANT per row; each field is looked up in it and typed by
    schema_of_variant: 'STRING', an integer type, 'DECIMAL(p,s)' (a number
    token without exponent, its exact value with trailing zeros dropped),
    'DOUBLE' (with exponent, or too long for a DECIMAL), 'VOID' (JSON null),
    'BOOLEAN', 'OBJECT<...>', 'ARRAY<...>'; NULL when the key is absent."""
    # parse_json stops after the first JSON value and ignores what follows:
    # a row passes only if its text also ends with `}` and has as many
    # structural characters as the value re-serialized (compared with the
    # string literals blanked when an escape could make them differ)
    def structural(x):
        return f"""(length({x}) - length(translate({x}, '{{}}[]:,"', '')))"""

    def blank(x):
        return rf"""regexp_replace({x}, r'"(?:[^"\\]++|\\.)*+"', '""')"""
    stage1 = rf"""
WITH src AS (
    SELECT `partition`, `offset`, ingested_at,
           value IS NULL OR length(value) = 0 AS is_empty,
           CASE WHEN length(value) > 0 THEN CAST(value AS STRING) END AS raw
    FROM {bronze}
),
doc AS (
    SELECT *, CASE WHEN is_valid_utf8(raw) THEN try_parse_json(raw) END AS v FROM src
)
SELECT `partition`, `offset`, ingested_at, is_empty,
    CASE WHEN v IS NULL THEN FALSE
         WHEN NOT regexp_like(raw, r'^[ \t\n\r]*\{{') OR NOT regexp_like(raw, r'\}}[ \t\n\r]*\z') THEN FALSE
         WHEN instr(raw, '\\') = 0 THEN {structural('raw')} = {structural('to_json(v)')}
         ELSE {structural(blank('raw'))} = {structural(blank('to_json(v)'))}
    END AS json_ok,
    {", ".join(f"variant_get(v, '$.{f[0]}') AS j_{f[0]}" for f in fields)}
FROM doc
"""
    cols, typed, checks = [], [], []
    fast_ts = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
               r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$")
    for name, kind, required, rng in fields:
        cols.append(f"j_{name}, schema_of_variant(j_{name}) AS ty_{name}")
    for name, kind, required, rng in fields:
        j, ty = f"j_{name}", f"ty_{name}"
        typed.append(f"{ty} IS NULL OR {ty} = 'VOID' AS absent_{name}")
        typed.append(f"coalesce({ty} = 'STRING', FALSE) AS is_str_{name}")
        typed.append(f"CASE WHEN {ty} = 'STRING' THEN variant_get({j}, '$', 'string') END AS s_{name}")
        if kind in ("number", "integer"):
            is_num = (f"({ty} IN {SPARK_INTS} OR {ty} IN ('DOUBLE', 'FLOAT') "
                      f"OR startswith({ty}, 'DECIMAL('))")
            typed.append(f"coalesce({is_num}, FALSE) AS is_num_{name}")
            typed.append(f"CASE WHEN {is_num} THEN variant_get({j}, '$', 'double') END AS n_{name}")
            # decimal places of a DECIMAL (exact); NULL for the other types
            typed.append(f"CASE WHEN startswith({ty}, 'DECIMAL(') "
                         rf"THEN CAST(regexp_extract({ty}, r',([0-9]+)\)', 1) AS INT) END AS scale_{name}")
        if name in DECIMAL_FIELDS:
            typed.append(f"try_variant_get({j}, '$', 'decimal(14, 2)') AS dec_{name}")
    final = []
    for name, kind, required, rng in fields:
        s = f"s_{name}"
        # all-whitespace (Unicode White_Space); the regex only when the first
        # character is not plain printable ASCII
        final.append(f"""CASE WHEN {s} IS NULL THEN FALSE WHEN {s} = '' THEN TRUE
                 WHEN ascii({s}) > 32 AND ascii({s}) < 127 THEN FALSE
                 ELSE regexp_like({s}, {spark_re('^' + WS_CLASS + '*$')}) END AS blank_{name}""")
        if kind == "timestamp":
            # the common shape goes straight to Spark's cast (which checks
            # the calendar); lower-case t/z and fractions beyond microseconds
            # (truncated) are rewritten to `dateTtime.fraction[offset]` first
            canon = f"regexp_replace({s}, {spark_re(RFC3339_TRUNC)}, '$1T$2.$30$4')"
            final.append(f"""CASE WHEN regexp_like({s}, {spark_re(fast_ts)}) THEN try_cast({s} AS TIMESTAMP)
                 WHEN regexp_like({s}, {spark_re(RFC3339)}) THEN try_cast({canon} AS TIMESTAMP)
                 END AS ts_{name}""")
    for name, kind, required, rng in fields:
        absent, ty, n = f"absent_{name}", f"ty_{name}", f"n_{name}"
        if required:
            checks.append((f"{absent} OR blank_{name}", f"missing:{name}"))
        if kind == "string":
            checks.append((f"NOT is_str_{name}", f"type:{name}"))
        elif kind == "timestamp":
            checks.append((f"ts_{name} IS NULL", f"type:{name}"))
            if name == future_field:
                checks.append((f"ts_{name} > ingested_at + INTERVAL {MAX_AHEAD_SECONDS} SECONDS",
                               "future_event_time"))
        else:
            inf = "double('infinity')"
            bad = [f"NOT is_num_{name}"]
            if kind == "integer":
                # exact for integer and DECIMAL tokens, judged as a double
                # for the rest
                bad.append(f"""CASE WHEN {ty} IN {SPARK_INTS} THEN FALSE
                     WHEN scale_{name} IS NOT NULL THEN scale_{name} > 0
                     ELSE NOT ({n} % 1 = 0 OR abs({n}) = {inf}) END""")
            if name in two_dec:
                bad.append(f"""CASE WHEN scale_{name} IS NOT NULL THEN scale_{name} > 2
                     WHEN {ty} IN ('DOUBLE', 'FLOAT') THEN abs({n}) < {inf} AND round({n}, 2) <> {n}
                     ELSE FALSE END""")
            checks.append((f"NOT {absent} AND ({' OR '.join(bad)})", f"type:{name}"))
            if rng:
                ok = " AND ".join(f"{n} {op} {v}" for op, v in range_parts(rng))
                checks.append((f"NOT {absent} AND NOT ({ok})", f"range:{name}"))
            # a value that is no finite double is a type error, after range
            checks.append((f"NOT {absent} AND (isnan({n}) OR abs({n}) = {inf})", f"type:{name}"))
    whens = "\n            ".join(f"WHEN {c} THEN '{r}'" for c, r in checks)
    out = []
    for name, kind, _, _ in fields:
        if kind == "string":
            out.append(f"s_{name} AS {name}")
        elif kind == "timestamp":
            out.append(f"ts_{name} AS {name}")
        elif name in INT_FIELDS:
            out.append(f"try_cast(n_{name} AS INT) AS {name}")
        elif name in DECIMAL_FIELDS:
            out.append(f"dec_{name} AS {name}")
        else:
            out.append(f"n_{name} AS {name}")
    sep = ",\n        "
    return f"""
SELECT `partition`, `offset`, ingested_at,
    CASE WHEN is_empty THEN 'empty_value'
         WHEN NOT json_ok THEN 'malformed_json'
            {whens}
    END AS reason,
    {", ".join(out)}
FROM (
    SELECT *, {sep.join(final)}
    FROM (
        SELECT *, {sep.join(typed)}
        FROM (
            SELECT `partition`, `offset`, ingested_at, is_empty, json_ok, {sep.join(cols)}
            FROM ({stage1})
        )
    )
)
"""


# fact_fines.yml `asof` without an ASOF join (Spark has none): telemetry
# events and fines of a vehicle in one time order (at equal times the events
# first, and among them the greatest event_id last), each fine taking the
# last driver_id seen before it (last(..., ignoreNulls) over a running
# window partitioned by vehicle_id).
SPARK_ASOF = """
WITH timeline AS (
    SELECT vehicle_id, event_time AS at, 0 AS kind, event_id AS tie, driver_id,
           CAST(NULL AS STRING) AS fine_id
    FROM fact_telemetry
    UNION ALL
    SELECT vehicle_id, issued_at, 1, CAST(NULL AS STRING), CAST(NULL AS STRING), fine_id
    FROM silver_fines
),
drivers AS (
    SELECT kind, fine_id, last(driver_id, TRUE) OVER (
        PARTITION BY vehicle_id ORDER BY at, kind, tie
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS driver_id
    FROM timeline
)
SELECT f.*, d.driver_id
FROM silver_fines f
JOIN (SELECT fine_id, driver_id FROM drivers WHERE kind = 1) d ON d.fine_id = f.fine_id
"""


def spark_session():
    """A local[2] session, quiet, with its scratch space (spill, shuffle) in
    a folder of /var/tmp removed at exit."""
    import atexit
    import shutil
    import tempfile
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession
    scratch = tempfile.mkdtemp(prefix="dag-bench-spark.", dir="/var/tmp")
    log4j = Path(scratch) / "log4j2.properties"
    log4j.write_text(SPARK_LOG4J)
    b = (SparkSession.builder.master(SPARK_MASTER).appName("dag-bench-compare")
         .config("spark.driver.memory", SPARK_MEMORY)
         .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log4j}")
         .config("spark.local.dir", str(Path(scratch) / "local")))
    for k, v in SPARK_CONF.items():
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    jvm = spark.sparkContext._gateway.proc

    def stop():
        # The JVM exits at the end of its stdin; waiting for it makes it a
        # reaped child, so /usr/bin/time's peak RSS covers it.
        spark.stop()
        if jvm is not None:
            jvm.stdin.close()
            jvm.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    atexit.register(stop)
    return spark


def run_pyspark(lake, data, models):
    import pyspark
    from pyspark import StorageLevel
    rows, reasons, t, tables = {}, {}, {}, {}
    ts = time.perf_counter()
    spark = spark_session()
    t["start"] = time.perf_counter() - ts
    jsc = spark.sparkContext._jsc

    def keep(name, df, count=True):
        """Computes a table and keeps its rows (as DuckDB's CREATE TABLE
        does) in an eager local checkpoint, in memory and on disk past it.
        The checkpoint also cuts the lineage: a plain cache() keeps every
        upstream plan, and the planning of each later query over those
        nested plans (the cleaning SELECT's hundreds of expressions) cost
        seconds per gold table. Returns the ids of the RDDs it persisted."""
        before = set(jsc.getPersistentRDDs().keys())
        df = df.localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
        df.createOrReplaceTempView(name)
        tables[name] = df
        if count:
            rows[name] = df.count()
        return set(jsc.getPersistentRDDs().keys()) - before

    def drop(name, rdd_ids):
        """Frees a kept table that no later step reads."""
        del tables[name]
        spark.catalog.dropTempView(name)
        persistent = jsc.getPersistentRDDs()
        for i in rdd_ids:
            rdd = persistent.get(i)
            if rdd is not None:
                rdd.unpersist(False)

    t0 = time.perf_counter()
    for table in ("bronze_vehicle_telemetry", "bronze_traffic_fines"):
        df = spark.read.parquet(*bronze_files(lake, table)).select(
            "partition", "offset", "value", "ingested_at")
        df.createOrReplaceTempView(table)
        rows[table] = df.count()
    t["read"] = time.perf_counter() - t0

    for model, (bronze, fields, key, time_field, future, two_dec) in CLEAN.items():
        parsed_ids = keep(f"{model}_parsed", spark.sql(spark_clean_sql(bronze, fields, future, two_dec)),
                          count=False)
        counts = {r[0]: r[1] for r in tables[f"{model}_parsed"].groupBy("reason").count().collect()}
        valid = counts.pop(None, 0)
        quarantine = model.replace("silver_", "quarantine_")
        reasons[quarantine] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
        order = ", ".join(f"`{c}`" for c in DEDUPE_ORDER)
        keep(model, spark.sql(f"""
            SELECT {', '.join(f[0] for f in fields)}, CAST({time_field} AS DATE) AS event_date
            FROM (SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY {order}) AS rn
                  FROM {model}_parsed WHERE reason IS NULL)
            WHERE rn = 1"""))
        rows[quarantine] = sum(reasons[quarantine].values())
        rows[model.replace("silver_", "duplicates_")] = valid - rows[model]
        drop(f"{model}_parsed", parsed_ids)

    for seed, (file, key, ints) in SEEDS.items():
        df = spark.read.csv(str(Path(data) / file), header=True, escape='"')
        dup = df.groupBy(key).count().where("count > 1").limit(1).collect()
        if dup:
            sys.exit(f"{file}: repeated key {dup[0][0]!r}")
        keep(seed, df.select([df[c].cast("int").alias(c) if c in ints else df[c] for c in df.columns]))
    t["read_clean"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    for name in GOLD_ORDER:
        if name == "fines_with_driver":
            keep(name, spark.sql(SPARK_ASOF), count=False)
        else:
            keep(name, spark.sql(gold_sql(models, "pyspark", name)))
    t["gold"] = time.perf_counter() - t1
    t["total"] = time.perf_counter() - t0

    def write(out_dir):
        for name in ["silver_telemetry", "silver_fines"] + GOLD:
            tables[name].write.mode("overwrite").parquet(str(Path(out_dir) / f"{name}.parquet"))

    java = spark.sparkContext._jvm.java.lang.System.getProperty("java.version")
    return rows, reasons, t, write, {"pyspark": pyspark.__version__, "java": java}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("engine", choices=["duckdb", "polars", "pyspark"])
    ap.add_argument("lake")
    ap.add_argument("data")
    ap.add_argument("--models", default=str(Path(__file__).resolve().parent.parent / "models" / "telematics"))
    ap.add_argument("--write", metavar="DIR", help="write silver and gold tables here as parquet")
    a = ap.parse_args()
    run = {"duckdb": run_duckdb, "polars": run_polars, "pyspark": run_pyspark}[a.engine]
    rows, reasons, t, write, versions = run(a.lake, a.data, a.models)
    result = {
        "engine": a.engine,
        "versions": versions,
        "rows": rows,
        "quarantine_reasons": reasons,
        "seconds": {
            "read": round(t["read"], 3),
            "read_clean": round(t["read_clean"], 3),
            "gold": round(t["gold"], 3),
            "total": round(t["total"], 3),
        },
    }
    if "start" in t:
        # before the in-process seconds: the engine's own start (Spark's JVM)
        result["seconds"]["start"] = round(t["start"], 3)
    if a.write:
        os.makedirs(a.write, exist_ok=True)
        t2 = time.perf_counter()
        write(a.write)
        result["seconds"]["write"] = round(time.perf_counter() - t2, 3)
        result["written_to"] = a.write
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
