//! Running the items of one blocking file-system job (a context copy, a `COPY`) on a few
//! threads: per-file system calls on different files run in parallel in the kernel.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// More threads than this gain nothing: copies are bound by the file system's locks.
const MAX_THREADS: usize = 8;

/// Runs `f` on every item, on up to one thread per core (this one included), with items
/// handed out in order. `f` pushes what it learns into the vector it is given; the vectors
/// of all threads are returned together (in no particular order). The first error stops
/// the handing out and is returned; a panic in `f` is resumed here.
pub(crate) fn try_for_each<T: Sync, R: Send, E: Send>(
    items: &[T],
    f: impl Fn(&T, &mut Vec<R>) -> Result<(), E> + Sync,
) -> Result<Vec<R>, E> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
        .min(items.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error = Mutex::new(None::<E>);
    let work = || {
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                break;
            };
            if let Err(e) = f(item, &mut out) {
                stop.store(true, Ordering::Relaxed);
                first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
        }
        out
    };
    let out = std::thread::scope(|s| {
        let spawned: Vec<_> = (1..threads)
            .map(|_| {
                std::thread::Builder::new()
                    .name("fs-worker".into())
                    .spawn_scoped(s, work)
            })
            .collect();
        // This thread works too; a thread that could not start leaves its share to it.
        let mut out = work();
        for h in spawned.into_iter().flatten() {
            match h.join() {
                Ok(more) => out.extend(more),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_item_runs_once_and_the_first_error_stops_the_rest() {
        let items: Vec<u32> = (0..1000).collect();
        let mut got = super::try_for_each(&items, |i, out: &mut Vec<u32>| {
            out.push(*i);
            Ok::<_, ()>(())
        })
        .expect("no error");
        got.sort_unstable();
        assert_eq!(got, items);

        let ran = std::sync::atomic::AtomicUsize::new(0);
        let err = super::try_for_each(&items, |i, _: &mut Vec<()>| {
            ran.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if *i == 10 { Err(*i) } else { Ok(()) }
        });
        assert_eq!(err, Err(10));
        assert!(ran.into_inner() < 1000, "handing out stopped");
    }
}
