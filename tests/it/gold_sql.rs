//! Each gold expression of the shipped pipeline on small literal frames,
//! boundaries included: the model SQL as users wrote it, run by the same
//! engine as `dag run` (no lake needed).

use dag::pipeline::Pipeline;
use jobs::decl::Source;
use jobs::model::sql::execute;
use jobs::model::values::parse_rfc3339;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

fn run(model: &str, inputs: &[(&str, DataFrame)]) -> DataFrame {
    let p = Pipeline::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/telematics"))
        .expect("pipeline");
    let m = p.model(model).expect("model");
    let Source::Sql { sql, asof, .. } = &m.source else {
        panic!("{model} is not SQL")
    };
    let frames: BTreeMap<String, DataFrame> = inputs
        .iter()
        .map(|(n, d)| (n.to_string(), d.clone()))
        .collect();
    execute(m, sql, asof, &frames).expect("execute")
}

fn ts(s: &str) -> i64 {
    parse_rfc3339(s).expect("timestamp")
}

fn micros(name: &str, v: &[i64]) -> Column {
    Column::new(name.into(), v)
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
        .expect("cast")
}

fn dates(name: &str, days: &[i32]) -> Column {
    Column::new(name.into(), days)
        .cast(&DataType::Date)
        .expect("cast")
}

fn ints(df: &DataFrame, c: &str) -> Vec<Option<i64>> {
    df.column(c)
        .expect("c")
        .cast(&DataType::Int64)
        .expect("i")
        .i64()
        .expect("i")
        .to_vec()
}

fn bools(df: &DataFrame, c: &str) -> Vec<Option<bool>> {
    df.column(c).expect("c").bool().expect("b").iter().collect()
}

fn strs(df: &DataFrame, c: &str) -> Vec<Option<String>> {
    df.column(c)
        .expect("c")
        .str()
        .expect("s")
        .iter()
        .map(|v| v.map(str::to_string))
        .collect()
}

#[test]
fn fact_telemetry_flags_at_their_boundaries() {
    let speeds = [
        0.0, 14.99, 15.0, 44.99, 45.0, 75.0, 75.0, 120.0, 120.0001, 300.0, 0.0,
    ];
    let gears = [3, 1, 1, 1, 2, 3, 2, 4, 4, 7, 0];
    let rpms = [800, 1000, 1000, 2000, 2000, 6000, 6001, 3000, 3000, 9000, 0];
    let n = speeds.len();
    let ids: Vec<String> = (0..n).map(|i| format!("e{i:02}")).collect();
    let silver = DataFrame::new(
        n,
        vec![
            Column::new("event_id".into(), ids.clone()),
            Column::new("vehicle_id".into(), vec!["V1"; n]),
            Column::new("driver_id".into(), vec!["D1"; n]),
            micros("event_time", &vec![ts("2026-11-20T08:00:00Z"); n]),
            dates("event_date", &vec![20412; n]),
            Column::new("lat".into(), vec![45.0; n]),
            Column::new("lon".into(), vec![9.0; n]),
            Column::new("speed_kmh".into(), speeds),
            Column::new("rpm".into(), rpms),
            Column::new("gear".into(), gears),
            Column::new("fuel_pct".into(), vec![Some(50.0); n]),
        ],
    )
    .expect("frame");
    let out = run("fact_telemetry", &[("silver_telemetry", silver)]);
    let out = out
        .sort(["event_id"], SortMultipleOptions::default())
        .expect("sort");
    // round half away from zero, clamp to [1, 7]; 0 only when standing.
    assert_eq!(
        ints(&out, "expected_gear"),
        [0, 1, 1, 1, 2, 3, 3, 4, 4, 7, 0].map(Some).to_vec()
    );
    let t = |v: &[bool]| v.iter().map(|b| Some(*b)).collect::<Vec<_>>();
    assert_eq!(
        bools(&out, "is_speeding"),
        t(&[
            false, false, false, false, false, false, false, false, true, true, false
        ])
    );
    assert_eq!(
        bools(&out, "is_over_rev"),
        t(&[
            false, false, false, false, false, false, true, false, false, true, false
        ])
    );
    // Standing with gear 3 is no mismatch; 75 km/h expects gear 3.
    assert_eq!(
        bools(&out, "is_gear_mismatch"),
        t(&[
            false, false, false, false, false, false, true, false, false, false, false
        ])
    );
}

fn facts(rows: &[(&str, &str, &str, &str, f64, i32, i32)]) -> DataFrame {
    // (event_id, vehicle_id, driver_id, event_time, speed, rpm, gear), flags from the spec
    let n = rows.len();
    let speed: Vec<f64> = rows.iter().map(|r| r.4).collect();
    let expected: Vec<i32> = speed
        .iter()
        .map(|s| {
            if *s == 0.0 {
                0
            } else {
                ((s / 30.0).round() as i32).clamp(1, 7)
            }
        })
        .collect();
    let times: Vec<i64> = rows.iter().map(|r| ts(r.3)).collect();
    let days: Vec<i32> = times
        .iter()
        .map(|t| t.div_euclid(86_400_000_000) as i32)
        .collect();
    DataFrame::new(
        n,
        vec![
            Column::new(
                "event_id".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "vehicle_id".into(),
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ),
            Column::new(
                "driver_id".into(),
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            ),
            micros("event_time", &times),
            dates("event_date", &days),
            Column::new("speed_kmh".into(), speed.clone()),
            Column::new("rpm".into(), rows.iter().map(|r| r.5).collect::<Vec<_>>()),
            Column::new("gear".into(), rows.iter().map(|r| r.6).collect::<Vec<_>>()),
            Column::new("expected_gear".into(), expected.clone()),
            Column::new(
                "is_speeding".into(),
                speed.iter().map(|s| *s > 120.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "is_gear_mismatch".into(),
                rows.iter()
                    .zip(&expected)
                    .map(|(r, e)| r.4 > 0.0 && r.6 != *e)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "is_over_rev".into(),
                rows.iter().map(|r| r.5 > 6000).collect::<Vec<_>>(),
            ),
        ],
    )
    .expect("facts")
}

fn dim_vehicle(rows: &[(&str, Option<&str>)]) -> DataFrame {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Column::new(
                "vehicle_id".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Column::new("model".into(), vec![None::<&str>; n]),
            Column::new("make".into(), vec![None::<&str>; n]),
            Column::new("fuel_type".into(), vec![None::<&str>; n]),
            Column::new(
                "color_name".into(),
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ),
            Column::new("model_year".into(), vec![None::<i32>; n]),
            Column::new("is_inferred".into(), vec![false; n]),
        ],
    )
    .expect("dim")
}

#[test]
fn alert_windows_are_tumbling_15_minutes_on_the_utc_epoch() {
    let facts = facts(&[
        (
            "a",
            "V1",
            "D1",
            "2026-11-20T08:14:59.999999Z",
            130.0,
            3000,
            4,
        ),
        ("b", "V1", "D1", "2026-11-20T08:15:00Z", 130.0, 3000, 4),
        ("c", "V1", "D1", "2026-11-20T10:29:59+02:00", 140.0, 3000, 5),
        ("d", "V2", "D2", "2026-11-20T08:20:00Z", 60.0, 6500, 2),
        ("e", "V3", "D3", "2026-11-20T08:25:00Z", 60.0, 2000, 2),
        ("f", "V4", "D4", "2026-11-20T08:26:00Z", 200.0, 8000, 7),
    ]);
    let dims = dim_vehicle(&[
        ("V1", Some("black")),
        ("V2", Some("black")),
        ("V3", Some("white")),
        ("V4", None),
    ]);
    let out = run(
        "agg_alerts_15min",
        &[("fact_telemetry", facts), ("dim_vehicle", dims)],
    );
    let out = out
        .sort(["window_start"], SortMultipleOptions::default())
        .expect("sort");
    let starts: Vec<Option<i64>> = ints(&out, "window_start");
    assert_eq!(
        starts,
        vec![
            Some(ts("2026-11-20T08:00:00Z")),
            Some(ts("2026-11-20T08:15:00Z"))
        ],
        "only windows with an alert; the edge belongs to the later window"
    );
    // 08:15 window: b and c (V1, black), d (V2, black, over-rev), f (V4, no colour); e is no alert.
    assert_eq!(ints(&out, "alert_events"), [Some(1), Some(4)]);
    assert_eq!(ints(&out, "black_cars"), [Some(1), Some(2)]);
    assert_eq!(ints(&out, "white_cars"), [Some(0), Some(0)]);
    assert_eq!(ints(&out, "max_gear"), [Some(4), Some(7)]);
    assert_eq!(ints(&out, "max_rpm"), [Some(3000), Some(8000)]);
}

fn fines(rows: &[(&str, &str, Option<&str>, &str, f64)]) -> DataFrame {
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Column::new(
                "fine_id".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "vehicle_id".into(),
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ),
            Column::new(
                "driver_id".into(),
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            ),
            micros(
                "issued_at",
                &rows.iter().map(|r| ts(r.3)).collect::<Vec<_>>(),
            ),
            Column::new(
                "amount_eur".into(),
                rows.iter().map(|r| r.4).collect::<Vec<_>>(),
            )
            .cast(&DataType::Decimal(14, 2))
            .expect("decimal"),
            Column::new("over_limit_kmh".into(), vec![10.0; n]),
        ],
    )
    .expect("fines")
}

#[test]
fn driver_daily_covers_fines_only_days_and_days_without_fines() {
    let facts = facts(&[
        ("a", "V1", "D1", "2026-11-20T08:00:00Z", 100.0, 3000, 3),
        (
            "b",
            "V1",
            "D1",
            "2026-11-20T23:59:59.999999Z",
            130.0,
            3000,
            4,
        ),
        ("c", "V1", "D1", "2026-11-21T00:00:00Z", 50.0, 2000, 2),
    ]);
    let fines = fines(&[
        ("f1", "V1", Some("D1"), "2026-11-21T09:00:00Z", 80.0),
        ("f2", "V1", Some("D1"), "2026-11-22T09:00:00Z", 40.5),
        ("f3", "V1", Some("D1"), "2026-11-22T10:00:00Z", 0.25),
        ("f4", "V9", None, "2026-11-22T10:00:00Z", 5.0),
    ]);
    let sums = run("int_driver_daily_telemetry", &[("fact_telemetry", facts)]);
    let out = run(
        "agg_driver_daily",
        &[("int_driver_daily_telemetry", sums), ("fact_fines", fines)],
    );
    let out = out
        .sort(["event_date"], SortMultipleOptions::default())
        .expect("sort");
    assert_eq!(out.height(), 3, "{out}");
    assert_eq!(ints(&out, "events"), [Some(2), Some(1), Some(0)]);
    assert_eq!(ints(&out, "alert_events"), [Some(1), Some(0), Some(0)]);
    assert_eq!(ints(&out, "fines_count"), [Some(0), Some(1), Some(2)]);
    let avg = out
        .column("avg_speed_kmh")
        .expect("c")
        .f64()
        .expect("f")
        .to_vec();
    assert_eq!(
        avg,
        [Some(115.0), Some(50.0), None],
        "plain mean; null on a fines-only day"
    );
    let eur: Vec<String> = (0..3)
        .map(|i| {
            out.column("fines_eur")
                .expect("c")
                .get(i)
                .expect("v")
                .to_string()
        })
        .collect();
    assert_eq!(eur, ["0.00", "80.00", "40.75"]);
}

/// The sums' `accumulate` folds agree with the query: the query over two
/// batches of events, folded, equals the query over both at once.
#[test]
fn driver_daily_sums_folded_over_batches_equal_the_sums_over_all() {
    let all = [
        ("a", "V1", "D1", "2026-11-20T08:00:00Z", 100.0, 3000, 3),
        ("b", "V1", "D1", "2026-11-20T09:00:00Z", 130.0, 6001, 4),
        ("c", "V2", "D2", "2026-11-20T09:00:00Z", 0.0, 800, 0),
        ("d", "V1", "D1", "2026-11-20T23:59:59Z", 121.5, 3000, 4),
        ("e", "V2", "D2", "2026-11-21T00:00:00Z", 30.0, 2000, 1),
        ("f", "V3", "D3", "2026-11-21T07:00:00Z", 300.0, 6000, 7),
    ];
    let m = "int_driver_daily_telemetry";
    let sums = |rows: &[(&str, &str, &str, &str, f64, i32, i32)]| {
        run(m, &[("fact_telemetry", facts(rows))])
    };
    let p = Pipeline::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/telematics"))
        .expect("pipeline");
    let model = p.model(m).expect("model");
    let Source::Sql { accumulate, .. } = &model.source else {
        panic!("{m} is not SQL")
    };
    let folded = jobs::model::accumulate::fold(
        sums(&all[..3]),
        sums(&all[3..]),
        &model.unique_key,
        accumulate,
    )
    .expect("fold");
    let key = ["driver_id", "event_date"];
    let sort = |d: DataFrame| d.sort(key, SortMultipleOptions::default()).expect("sort");
    let (folded, whole) = (sort(folded), sort(sums(&all)));
    assert_eq!(whole.height(), 4, "{whole}");
    assert!(folded.equals_missing(&whole), "{folded}\n{whole}");
}

#[test]
fn fact_fines_takes_the_driver_of_the_latest_event_at_or_before_issue() {
    let facts = facts(&[
        ("e1", "V1", "D1", "2026-11-20T08:00:00Z", 50.0, 2000, 2),
        ("e3", "V1", "D3", "2026-11-20T09:00:00Z", 50.0, 2000, 2),
        ("e2", "V1", "D2", "2026-11-20T09:00:00Z", 50.0, 2000, 2),
        ("e4", "V2", "D4", "2026-11-20T09:30:00Z", 50.0, 2000, 2),
    ]);
    let n = 4;
    let silver = DataFrame::new(
        n,
        vec![
            Column::new("fine_id".into(), ["f1", "f2", "f3", "f4"]),
            Column::new("vehicle_id".into(), ["V1", "V1", "V2", "V1"]),
            Column::new("camera_id".into(), ["C"; 4]),
            micros(
                "issued_at",
                &[
                    ts("2026-11-20T08:59:59.999999Z"),
                    ts("2026-11-20T09:00:00Z"),
                    ts("2026-11-20T09:00:00Z"),
                    ts("2026-11-20T07:00:00Z"),
                ],
            ),
            Column::new("speed_kmh".into(), [130.0, 90.0, 70.0, 60.0]),
            Column::new("limit_kmh".into(), [100.0, 100.0, 50.0, 50.0]),
            Column::new("amount_eur".into(), [80.0, 10.0, 20.0, 30.0])
                .cast(&DataType::Decimal(14, 2))
                .expect("d"),
            dates("event_date", &[20412; 4]),
        ],
    )
    .expect("silver");
    let out = run(
        "fact_fines",
        &[("silver_fines", silver), ("fact_telemetry", facts)],
    );
    let out = out
        .sort(["fine_id"], SortMultipleOptions::default())
        .expect("sort");
    assert_eq!(
        strs(&out, "driver_id"),
        [Some("D1".to_string()), Some("D3".into()), None, None],
        "f1: e1 (just before e2/e3); f2: tie at 09:00 -> greatest event_id e3; f3: V2's only event is later; f4: none before"
    );
    assert_eq!(
        out.column("over_limit_kmh")
            .expect("c")
            .f64()
            .expect("f")
            .to_vec(),
        [Some(30.0), Some(-10.0), Some(20.0), Some(10.0)]
    );
}
