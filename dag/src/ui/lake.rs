//! What the UI reads from the lake: the data test results
//! (`_dag/test_results`), as JSON values.

use super::api::Ui;
use serde_json::Value;

/// Every recorded test result (of `test`, or all), oldest first.
pub async fn results(ui: &Ui, test: Option<&str>) -> Result<Vec<Value>, String> {
    let s = ui.cfg.model_settings(false);
    let all = jobs::datatest::results::recorded(&s)
        .await
        .map_err(|e| format!("reading the test results: {e}"))?;
    Ok(all
        .into_iter()
        .filter(|r| test.is_none_or(|t| r.test == t))
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect())
}
