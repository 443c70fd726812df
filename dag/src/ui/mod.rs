//! The web UI: `dag ui`, and `dag scheduler` with `ui.in_scheduler`. One
//! page shell and one script (`assets/`), embedded in the binary, render
//! every page from the JSON API under `/api/` (documented in
//! `docs/ui.md`), polling it for live updates. Nothing is fetched from
//! elsewhere: the graph layout (dagre, from the npm registry) is embedded
//! by `build.rs`.
//!
//! - [`state`]: what every handler shares (the `Ui`);
//! - [`api`]: the JSON API, read from PostgreSQL (runs, tasks, attempts,
//!   loaded versions);
//! - [`lake`]: what it reads from the lake (the data test results);
//! - [`quarantine`]: the rows cleaning models rejected, by reason, with
//!   samples of the raw values;
//! - [`freshness`]: consumer lag, the age of bronze commits and of the
//!   warehouse's loaded versions, freshness tests against their threshold.

pub mod api;
pub mod freshness;
pub mod lake;
pub mod quarantine;
pub mod state;

pub use state::Ui;

use crate::config::Loaded;
use crate::executor::Stop;
use crate::outcome::{CliError, CommandOutcome};
use crate::pipeline::Pipeline;
use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use std::sync::Arc;

const SHELL: &str = include_str!("assets/index.html");
const APP: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");
const DAGRE: &str = include_str!(concat!(env!("OUT_DIR"), "/dagre.js"));

/// The routes: pages (one shell; the script renders by path) and the API.
pub fn router(ui: Arc<Ui>) -> Router {
    let page = || get(|| async { Html(SHELL) });
    let asset = |body: &'static str, kind: &'static str| {
        get(move || async move { ([(header::CONTENT_TYPE, kind)], body).into_response() })
    };
    Router::new()
        .route("/", page())
        .route("/runs", page())
        .route("/runs/{id}", page())
        .route("/tests", page())
        .route("/tests/{name}", page())
        .route("/models/{name}", page())
        .route("/quarantine", page())
        .route("/freshness", page())
        .route(
            "/assets/app.js",
            asset(APP, "text/javascript; charset=utf-8"),
        )
        .route("/assets/style.css", asset(STYLE, "text/css; charset=utf-8"))
        .route(
            "/assets/dagre.js",
            asset(DAGRE, "text/javascript; charset=utf-8"),
        )
        .route("/api/pipeline", get(api::pipeline))
        .route("/api/models/{name}", get(api::model))
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/tests", get(api::tests))
        .route("/api/tests/report.md", get(api::report))
        .route("/api/quarantine", get(quarantine::quarantine))
        .route("/api/freshness", get(freshness::freshness))
        .route("/api/trigger", post(api::trigger))
        .with_state(ui)
}

/// Listens on `ui.addr`: the listener and the address it is reachable at
/// (port 0 picks a free port).
pub async fn bind(cfg: &Loaded) -> Result<(tokio::net::TcpListener, String), CliError> {
    let addr = &cfg.config.ui.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("ui.addr {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.clone(), |a| a.to_string());
    Ok((listener, format!("http://{bound}/")))
}

/// Serves the UI on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: &Loaded,
    p: Pipeline,
    stop: Arc<Stop>,
) -> Result<(), CliError> {
    let ui = Arc::new(Ui {
        pool: crate::warehouse::lazy_pool(cfg, 4),
        cfg: cfg.clone(),
        p,
        results: Default::default(),
    });
    axum::serve(listener, router(ui))
        .with_graceful_shutdown(async move { stop.wait().await })
        .await
        .map_err(|e| anyhow::anyhow!("ui: {e}"))?;
    Ok(())
}

/// `dag ui`: until SIGTERM/SIGINT.
pub async fn command(cfg: &Loaded, p: Pipeline) -> Result<CommandOutcome, CliError> {
    let stop = Arc::new(Stop::default());
    let stopping = stop.clone().on_signals();
    let (listener, url) = bind(cfg).await?;
    println!("ui on {url}");
    let served = serve(listener, cfg, p, stop).await;
    stopping.abort();
    served.map(|()| CommandOutcome::Success)
}
