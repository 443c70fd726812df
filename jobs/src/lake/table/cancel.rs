//! The token that stops a given-up task from committing.

use std::sync::Arc;

/// Set when the task writing a table must not commit any more: its
/// scheduler gave it up (it timed out, lost its claim, or the scheduler is
/// stopping) and another attempt may run. Checked right before every
/// commit, so a task given up can finish computing but never publish.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    own: Arc<std::sync::atomic::AtomicBool>,
    /// A scheduler's "stopping": cancels every task's token at once.
    parent: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Cancel {
    /// A token cancelled with this one, or on its own.
    pub fn child(&self) -> Cancel {
        Cancel {
            own: Arc::default(),
            parent: Some(self.own.clone()),
        }
    }

    pub fn cancel(&self) {
        self.own.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        self.own.load(SeqCst) || self.parent.as_ref().is_some_and(|p| p.load(SeqCst))
    }
}
