//! The drain signal a scheduler's parts wait on (SIGTERM, Ctrl-C, or the
//! end of a test): set once, seen by every task and server.

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
