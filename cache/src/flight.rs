//! Single-flight: concurrent requests for one key share one piece of work, and that work
//! is cancelled only when nobody is waiting for it any more.
//!
//! The rules (BuildKit's `flightcontrol`, with buck2 DICE's cancellation semantics):
//!
//! 1. The work runs in its own spawned task, so no caller's poll drives it and a caller
//!    that goes away cannot stall it for the others.
//! 2. The in-flight map holds only a [`Weak`] handle to a call; every waiting caller holds
//!    a strong one. Dropping a caller's future drops its handle and detaches it.
//! 3. When the last strong handle goes, the task is aborted (its future dropped, so its
//!    drop guards run) and the entry is removed.
//! 4. A finished call removes its entry before publishing its result, so a call made after
//!    the result exists starts fresh work instead of reading a stale answer.
//! 5. Progress fans out to every waiter. Progress is *latest-state*: the work publishes
//!    a whole snapshot (say "12 of 40 MB") through a [`ProgressSink`], and each waiter sees
//!    the newest one, including a waiter that joined late; a slow waiter skips intermediate
//!    states instead of holding the work back. Events that must not be lost belong in the
//!    value `V`, not in progress.
//! 6. A panic in the work becomes [`FlightError::Panicked`] for every waiter; it never
//!    unwinds into a caller.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures::FutureExt;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Why a shared call produced no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlightError {
    /// The work panicked; every waiter gets this instead of the value.
    #[error("single-flight work panicked: {message}")]
    Panicked {
        /// The panic payload when it was a string, else a placeholder.
        message: String,
    },
    /// The task stopped without a result while someone still waited, which happens only
    /// when the runtime itself shuts down.
    #[error("single-flight work was aborted before it produced a result")]
    Aborted,
}

type Outcome<V> = Option<Result<V, FlightError>>;
type Calls<K, V, P> = Mutex<HashMap<K, Entry<V, P>>>;

struct Entry<V, P> {
    id: u64,
    call: Weak<Call<V, P>>,
}

/// One running piece of work. Strong references live only in waiting callers.
struct Call<V, P> {
    abort: AbortHandle,
    /// Removes this call's map entry (if it is still the current one for its key).
    unregister: Option<Box<dyn FnOnce() + Send + Sync>>,
    result: watch::Receiver<Outcome<V>>,
    progress: watch::Receiver<Option<P>>,
    /// Kept so the progress channel stays open after the work (and its sink) is gone: a
    /// closed channel would hide the last update from `has_changed`.
    _progress_tx: Arc<watch::Sender<Option<P>>>,
}

impl<V, P> Drop for Call<V, P> {
    fn drop(&mut self) {
        // Last waiter gone: nobody wants the result, so stop the work (rule 3).
        self.abort.abort();
        if let Some(unregister) = self.unregister.take() {
            unregister();
        }
    }
}

/// Where the work publishes its progress; every waiter of the call sees the latest value.
/// Cheap to clone, so the work can hand it to sub-tasks.
#[derive(Debug)]
pub struct ProgressSink<P> {
    tx: Arc<watch::Sender<Option<P>>>,
}

impl<P> Clone for ProgressSink<P> {
    fn clone(&self) -> Self {
        Self {
            tx: Arc::clone(&self.tx),
        }
    }
}

impl<P> ProgressSink<P> {
    /// Replaces the current progress state. Never blocks and never fails, also when no
    /// waiter is left to read it.
    pub fn send(&self, progress: P) {
        self.tx.send_replace(Some(progress));
    }
}

/// A set of deduplicated, shared calls keyed by `K`, producing `V`, reporting progress `P`.
/// Cloning shares the same in-flight map.
pub struct Flight<K, V, P = ()> {
    calls: Arc<Calls<K, V, P>>,
    next_id: Arc<AtomicU64>,
}

impl<K, V, P> Clone for Flight<K, V, P> {
    fn clone(&self) -> Self {
        Self {
            calls: Arc::clone(&self.calls),
            next_id: Arc::clone(&self.next_id),
        }
    }
}

impl<K, V, P> Default for Flight<K, V, P> {
    fn default() -> Self {
        Self {
            calls: Arc::new(Mutex::new(HashMap::new())),
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl<K, V, P> std::fmt::Debug for Flight<K, V, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flight").finish_non_exhaustive()
    }
}

impl<K, V, P> Flight<K, V, P>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    P: Clone + Send + Sync + 'static,
{
    /// An empty set of calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `work` for `key` unless a call for `key` is already running, in which case
    /// this waits for that call's value instead (and `work` is never called).
    ///
    /// Must be called inside a Tokio runtime: the work is spawned on it. `work` is called
    /// while the in-flight map is locked, so it must only build its future (an `async`
    /// block), not run anything or touch this `Flight`.
    pub async fn run<F, Fut>(&self, key: K, work: F) -> Result<V, FlightError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        self.run_with_progress(key, |_sink| work(), |_progress| {})
            .await
    }

    /// Like [`Flight::run`], and the work gets a [`ProgressSink`]; `on_progress` is called
    /// in this caller's task with the latest progress state whenever it changes (and once
    /// on joining, if the call has already reported some).
    pub async fn run_with_progress<F, Fut, G>(
        &self,
        key: K,
        work: F,
        mut on_progress: G,
    ) -> Result<V, FlightError>
    where
        F: FnOnce(ProgressSink<P>) -> Fut,
        Fut: Future<Output = V> + Send + 'static,
        G: FnMut(P),
    {
        let call = self.join_or_start(key, work);
        let mut result = call.result.clone();
        let mut progress = call.progress.clone();
        progress.mark_changed();
        let mut progress_open = true;
        // The last state the work reported goes out before its result, so a waiter's
        // final view of progress is the finished one.
        let mut flush = |progress: &mut watch::Receiver<Option<P>>| {
            if progress.has_changed().unwrap_or(false)
                && let Some(latest) = progress.borrow_and_update().clone()
            {
                on_progress(latest);
            }
        };
        loop {
            if let Some(outcome) = result.borrow_and_update().clone() {
                flush(&mut progress);
                return outcome;
            }
            tokio::select! {
                biased;
                changed = result.changed() => {
                    if changed.is_err() {
                        // The sender went away without a value: the task was torn down.
                        return result.borrow().clone().unwrap_or(Err(FlightError::Aborted));
                    }
                }
                changed = progress.changed(), if progress_open => {
                    match changed {
                        Ok(()) => {
                            progress.mark_changed();
                            flush(&mut progress);
                        }
                        Err(_) => progress_open = false,
                    }
                }
            }
        }
    }

    /// Number of calls currently in flight; for tests and diagnostics.
    pub fn in_flight(&self) -> usize {
        lock(&self.calls)
            .values()
            .filter(|e| e.call.strong_count() > 0)
            .count()
    }

    fn join_or_start<F, Fut>(&self, key: K, work: F) -> Arc<Call<V, P>>
    where
        F: FnOnce(ProgressSink<P>) -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut calls = lock(&self.calls);
        if let Some(call) = calls.get(&key).and_then(|e| e.call.upgrade()) {
            return call;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (result_tx, result_rx) = watch::channel(None);
        let (progress_tx, progress_rx) = watch::channel(None);
        let progress_tx = Arc::new(progress_tx);
        let fut = work(ProgressSink {
            tx: Arc::clone(&progress_tx),
        });
        let weak_calls = Arc::downgrade(&self.calls);
        let task_key = key.clone();
        // The map lock is held until the entry is inserted, so the task's own removal
        // below cannot run before the entry exists.
        let task = tokio::spawn(async move {
            let outcome = AssertUnwindSafe(fut)
                .catch_unwind()
                .await
                .map_err(|payload| FlightError::Panicked {
                    message: panic_message(payload.as_ref()),
                });
            if let Some(calls) = weak_calls.upgrade() {
                remove_if_current(&mut lock(&calls), &task_key, id);
            }
            result_tx.send_replace(Some(outcome));
        });
        let weak_calls = Arc::downgrade(&self.calls);
        let drop_key = key.clone();
        let call = Arc::new(Call {
            unregister: Some(Box::new(move || {
                if let Some(calls) = weak_calls.upgrade() {
                    remove_if_current(&mut lock(&calls), &drop_key, id);
                }
            })),
            abort: task.abort_handle(),
            result: result_rx,
            progress: progress_rx,
            _progress_tx: progress_tx,
        });
        calls.insert(
            key,
            Entry {
                id,
                call: Arc::downgrade(&call),
            },
        );
        call
    }
}

fn remove_if_current<K: Eq + Hash, V, P>(calls: &mut HashMap<K, Entry<V, P>>, key: &K, id: u64) {
    if calls.get(key).is_some_and(|e| e.id == id) {
        calls.remove(key);
    }
}

/// The map is only ever held for a few non-panicking statements, so a poisoned lock
/// still guards a consistent map.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::sync::{Notify, oneshot};

    /// Counts drops of the work future, to observe that an abort really dropped it.
    struct DropGuard(Arc<AtomicUsize>);
    impl Drop for DropGuard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn work_runs_once_for_many_concurrent_callers() {
        let flight: Flight<&str, u32> = Flight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Notify::new());
        let mut handles = Vec::new();
        for _ in 0..16 {
            let flight = flight.clone();
            let runs = Arc::clone(&runs);
            let gate = Arc::clone(&gate);
            handles.push(tokio::spawn(async move {
                flight
                    .run("k", move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        42
                    })
                    .await
            }));
        }
        settle().await;
        assert_eq!(flight.in_flight(), 1);
        gate.notify_one();
        for h in handles {
            assert_eq!(h.await.expect("caller task"), Ok(42));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flight.in_flight(), 0);
    }

    #[tokio::test]
    async fn cancelling_one_caller_lets_the_other_finish() {
        let flight: Flight<u8, &'static str> = Flight::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let guard_drops = Arc::clone(&drops);
        let first = {
            let flight = flight.clone();
            tokio::spawn(async move {
                flight
                    .run(1, move || async move {
                        let _guard = DropGuard(guard_drops);
                        let _ = release_rx.await;
                        "done"
                    })
                    .await
            })
        };
        settle().await;
        let second = {
            let flight = flight.clone();
            tokio::spawn(async move { flight.run(1, || async { "second work ran" }).await })
        };
        settle().await;
        first.abort();
        assert!(first.await.is_err_and(|e| e.is_cancelled()));
        settle().await;
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "work must survive one cancellation"
        );
        release_tx.send(()).expect("work still waiting");
        assert_eq!(second.await.expect("second caller"), Ok("done"));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn cancelling_every_caller_aborts_the_work() {
        let flight: Flight<u8, ()> = Flight::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let mut callers = Vec::new();
        for _ in 0..2 {
            let flight = flight.clone();
            let drops = Arc::clone(&drops);
            let finished = Arc::clone(&finished);
            callers.push(tokio::spawn(async move {
                flight
                    .run(7, move || async move {
                        let _guard = DropGuard(drops);
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        finished.fetch_add(1, Ordering::SeqCst);
                    })
                    .await
            }));
            settle().await;
        }
        assert_eq!(flight.in_flight(), 1);
        for c in &callers {
            c.abort();
        }
        for c in callers {
            assert!(c.await.is_err_and(|e| e.is_cancelled()));
        }
        settle().await;
        assert_eq!(drops.load(Ordering::SeqCst), 1, "work future dropped once");
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        assert_eq!(flight.in_flight(), 0);
        // The aborted entry is gone: a new call runs fresh work.
        assert_eq!(flight.run(7, || async {}).await, Ok(()));
    }

    #[tokio::test]
    async fn panic_reaches_every_caller_as_error() {
        let flight: Flight<u8, u8> = Flight::new();
        let gate = Arc::new(Notify::new());
        let mut callers = Vec::new();
        for _ in 0..3 {
            let flight = flight.clone();
            let gate = Arc::clone(&gate);
            callers.push(tokio::spawn(async move {
                flight
                    .run(1, move || async move {
                        gate.notified().await;
                        panic!("boom in work");
                    })
                    .await
            }));
        }
        settle().await;
        gate.notify_one();
        for c in callers {
            assert_eq!(
                c.await.expect("caller must not panic"),
                Err(FlightError::Panicked {
                    message: "boom in work".into()
                })
            );
        }
        // A failed call does not stick: the next one runs again.
        assert_eq!(flight.run(1, || async { 5 }).await, Ok(5));
    }

    #[tokio::test]
    async fn finished_entry_is_removed_so_next_call_runs_fresh() {
        let flight: Flight<u8, usize> = Flight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        for expected in 1..=3 {
            let runs = Arc::clone(&runs);
            let got = flight
                .run(
                    0,
                    move || async move { runs.fetch_add(1, Ordering::SeqCst) + 1 },
                )
                .await;
            assert_eq!(got, Ok(expected));
        }
        assert_eq!(flight.in_flight(), 0);
    }

    #[tokio::test]
    async fn different_keys_run_independently() {
        let flight: Flight<u8, u8> = Flight::new();
        let (a, b) = tokio::join!(flight.run(1, || async { 1 }), flight.run(2, || async { 2 }));
        assert_eq!((a, b), (Ok(1), Ok(2)));
    }

    #[tokio::test]
    async fn final_progress_arrives_before_the_result() {
        let flight: Flight<u8, u8, u32> = Flight::new();
        for _ in 0..20 {
            let mut last = None;
            let got = flight
                .run_with_progress(
                    1,
                    |sink| async move {
                        for i in 1..=3 {
                            sink.send(i);
                        }
                        7
                    },
                    |p| last = Some(p),
                )
                .await;
            assert_eq!((got, last), (Ok(7), Some(3)));
        }
    }

    #[tokio::test]
    async fn progress_fans_out_to_every_waiter_including_late_ones() {
        let flight: Flight<u8, (), u32> = Flight::new();
        let (step_tx, mut step_rx) = tokio::sync::mpsc::channel::<u32>(4);
        let seen_a = Arc::new(Mutex::new(Vec::new()));
        let seen_b = Arc::new(Mutex::new(Vec::new()));
        let a = {
            let flight = flight.clone();
            let seen = Arc::clone(&seen_a);
            tokio::spawn(async move {
                flight
                    .run_with_progress(
                        9,
                        move |sink| async move {
                            while let Some(step) = step_rx.recv().await {
                                sink.send(step);
                                tokio::time::sleep(Duration::from_millis(30)).await;
                            }
                        },
                        move |p| lock(&seen).push(p),
                    )
                    .await
            })
        };
        step_tx.send(10).await.expect("work alive");
        settle().await;
        let b = {
            let flight = flight.clone();
            let seen = Arc::clone(&seen_b);
            tokio::spawn(async move {
                flight
                    .run_with_progress(9, |_sink| async {}, move |p| lock(&seen).push(p))
                    .await
            })
        };
        settle().await;
        step_tx.send(20).await.expect("work alive");
        settle().await;
        drop(step_tx);
        assert_eq!(a.await.expect("a"), Ok(()));
        assert_eq!(b.await.expect("b"), Ok(()));
        assert_eq!(*lock(&seen_a), vec![10, 20]);
        // b joined after 10 was reported: it sees that state first, then 20.
        assert_eq!(*lock(&seen_b), vec![10, 20]);
    }
}
