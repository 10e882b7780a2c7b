//! A cancellation check usable from blocking threads: extraction and merges poll it between
//! entries, so a dropped build stops within one file's work.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A cheap, clonable "should I stop?" question. Wrap a `tokio_util` `CancellationToken` with
/// [`Cancel::from_fn`] (`move || token.is_cancelled()`), or share an `AtomicBool`.
#[derive(Clone)]
pub struct Cancel(Option<Arc<dyn Fn() -> bool + Send + Sync>>);

impl Cancel {
    /// Never cancelled.
    pub fn never() -> Cancel {
        Cancel(None)
    }

    pub fn from_fn(f: impl Fn() -> bool + Send + Sync + 'static) -> Cancel {
        Cancel(Some(Arc::new(f)))
    }

    pub fn from_flag(flag: Arc<AtomicBool>) -> Cancel {
        Cancel::from_fn(move || flag.load(Ordering::Relaxed))
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.as_ref().is_some_and(|f| f())
    }
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::never()
    }
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Cancel(fn)"
        } else {
            "Cancel(never)"
        })
    }
}
