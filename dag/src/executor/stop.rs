//! The drain signal a scheduler's parts wait on (SIGTERM, Ctrl-C, or the
//! end of a test): set once, seen by every task and server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The drain signal: a flag, and a wake-up for whoever waits on it.
#[derive(Default)]
pub struct Stop {
    flag: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Stop {
    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Returns once the stop is set.
    pub async fn wait(&self) {
        loop {
            let woken = self.wake.notified();
            if self.is_set() {
                return;
            }
            woken.await;
        }
    }
}

impl Stop {
    /// Sets this stop on the first SIGTERM or SIGINT (the scheduler's
    /// drain, the UI's end); abort the handle to stop listening.
    pub fn on_signals(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("stopping: no new work; what is in flight finishes or is handed back");
            self.set();
        })
    }
}
