//! Test hooks that hold one step of one table's work for a while, so that
//! a test can land another process's commit, or a fault, in exactly that
//! window. Off unless the environment variable names the table.
//!
//! Each variable holds comma-separated `<table>:<milliseconds>:<marker
//! file>`; a step stalls only while the marker file does not exist yet,
//! and creates it (once per marker, whichever process gets there first).
//! The stall is said on standard error as it begins
//! (`<VAR>: stalling <table>'s <step> for <ms> ms`) and as it ends
//! (`<VAR>: <table>'s <step> resumes at <unix seconds>`).

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Stalls a table's next commit, just before its cancellation check.
pub const STALL_COMMIT: &str = "DAG_TEST_STALL_COMMIT";

/// Stalls a task's data tests, after its model committed and before the
/// first test opens a table.
pub const STALL_TESTS: &str = "DAG_TEST_STALL_TESTS";

/// Waits as `var` asks for `table`'s `step` (nothing if it does not).
pub async fn stall_if_asked(var: &str, table: &str, step: &str) {
    let Ok(specs) = std::env::var(var) else {
        return;
    };
    for spec in specs.split(',') {
        let mut parts = spec.splitn(3, ':');
        let (Some(name), Some(ms), Some(marker)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if name == table && !Path::new(marker).exists() && std::fs::write(marker, b"").is_ok() {
            let ms = ms.parse().unwrap_or(0);
            eprintln!("{var}: stalling {table}'s {step} for {ms} ms");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            eprintln!("{var}: {table}'s {step} resumes at {at:.3}");
        }
    }
}
