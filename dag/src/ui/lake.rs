//! What the UI reads from the lake: the data test results
//! (`_dag/test_results`), kept between requests and read again only when
//! the table has a new version (pages poll every 2 s; the table only grows).

use super::state::Ui;
use jobs::datatest::results::Recorded;
use serde_json::Value;
use std::sync::Arc;

/// Every recorded result, oldest first: from the cache while the table's
/// version is the one it was read at.
pub async fn recorded(ui: &Ui) -> Result<Arc<Vec<Recorded>>, String> {
    let s = ui.cfg.model_settings(false);
    let err = |e: jobs::model::ModelError| format!("reading the test results: {e}");
    let now = jobs::datatest::results::version(&s).await.map_err(err)?;
    let mut cache = ui.results.lock().await;
    if let Some((at, all)) = cache.as_ref()
        && *at == now
    {
        return Ok(all.clone());
    }
    let (at, all) = jobs::datatest::results::recorded_with_version(&s)
        .await
        .map_err(err)?;
    let all = Arc::new(all);
    *cache = Some((at, all.clone()));
    Ok(all)
}

/// Every recorded result (of `test`, or all), oldest first, as JSON.
pub async fn results(ui: &Ui, test: Option<&str>) -> Result<Vec<Value>, String> {
    let all = recorded(ui).await?;
    Ok(all
        .iter()
        .filter(|r| test.is_none_or(|t| r.test == t))
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect())
}
