//! Each selector form on the shipped pipeline.

use crate::fixtures;
use dag::pipeline::Pipeline;
use dag::select::Selector;

fn select(p: &Pipeline, text: &str) -> Result<Vec<String>, String> {
    let sel = Selector::parse(text)?;
    let mut names: Vec<String> = p
        .select(&sel)?
        .into_iter()
        .map(|n| p.graph[n].name.clone())
        .collect();
    names.sort();
    Ok(names)
}

fn shipped() -> Pipeline {
    Pipeline::load(&fixtures::repo().join("models/telematics")).expect("valid")
}

#[test]
fn a_name_selects_one_model() {
    assert_eq!(
        select(&shipped(), "fact_fines").expect("ok"),
        ["fact_fines"]
    );
}

#[test]
fn plus_before_adds_everything_upstream() {
    assert_eq!(
        select(&shipped(), "+fact_fines").expect("ok"),
        [
            "bronze_traffic_fines",
            "bronze_vehicle_telemetry",
            "fact_fines",
            "fact_telemetry",
            "silver_fines",
            "silver_telemetry"
        ]
    );
}

#[test]
fn plus_after_adds_everything_downstream() {
    assert_eq!(
        select(&shipped(), "silver_telemetry+").expect("ok"),
        [
            "agg_alerts_15min",
            "agg_driver_daily",
            "dim_driver",
            "dim_vehicle",
            "fact_fines",
            "fact_telemetry",
            "int_driver_daily_telemetry",
            "quarantine_telemetry",
            "silver_telemetry",
        ]
    );
}

#[test]
fn layers_select_their_models() {
    let p = shipped();
    assert_eq!(
        select(&p, "bronze").expect("ok"),
        ["bronze_traffic_fines", "bronze_vehicle_telemetry"]
    );
    assert_eq!(select(&p, "silver").expect("ok").len(), 8);
    assert_eq!(
        select(&p, "gold").expect("ok"),
        [
            "agg_alerts_15min",
            "agg_driver_daily",
            "dim_driver",
            "dim_vehicle",
            "fact_fines",
            "fact_telemetry",
            "int_driver_daily_telemetry"
        ]
    );
    // Upstream of a whole layer: gold and all it needs is everything but the
    // quarantines.
    assert_eq!(select(&p, "+gold").expect("ok").len(), 15);
}

#[test]
fn tags_select_their_models() {
    assert_eq!(
        select(&shipped(), "tag:reference").expect("ok"),
        [
            "dim_driver",
            "dim_vehicle",
            "silver_car_colors",
            "silver_car_models",
            "silver_drivers",
            "silver_vehicles"
        ]
    );
}

#[test]
fn terms_make_a_union_in_dependency_order() {
    let p = shipped();
    let sel = Selector::parse("dim_driver, bronze_traffic_fines tag:fines").expect("parses");
    let names: Vec<String> = p
        .select(&sel)
        .expect("ok")
        .into_iter()
        .map(|n| p.graph[n].name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "bronze_traffic_fines",
            "silver_fines",
            "quarantine_fines",
            "fact_fines",
            "dim_driver",
            "agg_driver_daily",
        ]
    );
}

#[test]
fn unknown_names_and_tags_are_errors_with_suggestions() {
    let p = shipped();
    assert_eq!(
        select(&p, "fact_fine").unwrap_err(),
        "no model named `fact_fine` (did you mean `fact_fines`?)"
    );
    let err = select(&p, "tag:finez").unwrap_err();
    assert!(
        err.starts_with("no model has tag `finez` (did you mean `fines`?)"),
        "{err}"
    );
}

#[test]
fn empty_selector_selects_all_in_order() {
    let p = shipped();
    let all = p.select(&Selector::parse("").expect("parses")).expect("ok");
    assert_eq!(all, p.topo_order());
}
