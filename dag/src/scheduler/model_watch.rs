//! A running scheduler keeps the pipeline it loaded at start: it says so
//! when the files under the pipeline folder change (an edited rule would
//! otherwise be silently ignored by every run until a restart).

use crate::executor::Stop;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the folder is looked at.
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// Until `stop`: a warning each time the files under `root` differ from
/// the last state seen (the first from the state at start).
pub async fn warn_on_changes(root: PathBuf, stop: Arc<Stop>) {
    let mut seen = state(&root);
    while !stop.is_set() {
        tokio::time::sleep(LOOK_EVERY).await;
        let now = state(&root);
        if now != seen {
            tracing::warn!(
                "the model files under {} changed since this scheduler loaded them: its runs still use the pipeline it loaded; restart it (SIGTERM, then start it again) to run the new files",
                root.display()
            );
            seen = now;
        }
    }
}

/// Every file under `root` with its size and modification time, sorted.
fn state(root: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => dirs.push(path),
                Ok(m) => out.push((path, m.len(), m.modified().ok())),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}
