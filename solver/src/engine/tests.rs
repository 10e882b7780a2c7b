//! Synthetic graphs of real, cheap ops: each computes a string from its inputs, counts its
//! executions and concurrency, and can be slowed, failed or made to need providers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn_llb::Digest;
use tokio::sync::Notify;

use super::*;
use crate::graph::Vertex;
use crate::op::{Dep, Op};
use crate::progress::Stream;
use crate::result::{SolverResult, downcast};
use crate::storage::MemoryCache;

#[derive(Debug)]
struct Text {
    id: String,
    value: String,
}

impl SolverResult for Text {
    fn id(&self) -> String {
        self.id.clone()
    }
}

fn text(r: &ResultRef) -> String {
    downcast::<Text>(r)
        .map(|t| t.value.clone())
        .unwrap_or_default()
}

/// Counters shared by every op of a test.
#[derive(Default)]
struct Counters {
    execs: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    finished: AtomicUsize,
    dropped_unfinished: AtomicUsize,
}

struct Running<'a> {
    c: &'a Counters,
    done: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.c.running.fetch_sub(1, Ordering::SeqCst);
        if !self.done {
            self.c.dropped_unfinished.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Default)]
struct TestOp {
    label: String,
    counters: Arc<Counters>,
    delay: Duration,
    gate: Option<Arc<Notify>>,
    fail: Option<String>,
    panic: bool,
    /// Key by the content of input 0 instead of its key.
    content_dep: bool,
    /// Never cached, like a local source; its value comes from `content`.
    random: bool,
    content: Option<Arc<Mutex<String>>>,
    opts: CacheOpts,
    needs: Vec<Digest>,
    provided: Arc<Mutex<Vec<String>>>,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

impl Op for TestOp {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        async move {
            let deps = if self.content_dep {
                let f: crate::op::ComputeDigest = Arc::new(|r: ResultRef, _sel| {
                    async move { Ok(Digest::of_bytes(text(&r).as_bytes())) }.boxed()
                });
                vec![Dep {
                    selector: Some("/".into()),
                    compute_digest: Some(f),
                }]
            } else {
                Vec::new()
            };
            Ok(CacheMap {
                digest: (!self.random).then(|| Digest::of_bytes(self.label.as_bytes())),
                deps,
                opts: self.opts.clone(),
                machine_local: false,
            })
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        inputs: Vec<ResultRef>,
    ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>> {
        async move {
            let c = &*self.counters;
            c.execs.fetch_add(1, Ordering::SeqCst);
            let now = c.running.fetch_add(1, Ordering::SeqCst) + 1;
            c.max_running.fetch_max(now, Ordering::SeqCst);
            let mut guard = Running { c, done: false };
            if !self.needs.is_empty() {
                let keys: Vec<String> = self.needs.iter().map(desc_handler_key).collect();
                let missing: Vec<Digest> = self
                    .needs
                    .iter()
                    .zip(&keys)
                    .filter(|(_, k)| ctx.cache_opts.get(k).is_none())
                    .map(|(d, _)| d.clone())
                    .collect();
                if !missing.is_empty() {
                    guard.done = true;
                    return Err(OpError::NeedsRemoteProviders(missing));
                }
                let mut p = self.provided.lock().unwrap_or_else(|p| p.into_inner());
                for k in &keys {
                    if let Some(v) = ctx.cache_opts.get_as::<String>(k) {
                        p.push((*v).clone());
                    }
                }
            }
            ctx.progress.log(
                Stream::Stdout,
                format!("running {}\n", self.label).as_bytes(),
            );
            if let Some(g) = &self.gate {
                g.notified().await;
            }
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            guard.done = true;
            assert!(!self.panic, "op bug in {}", self.label);
            if let Some(msg) = &self.fail {
                ctx.progress
                    .log(Stream::Stderr, b"make: *** [all] Error 2\n");
                return Err(OpError::failed(msg.clone()));
            }
            c.finished.fetch_add(1, Ordering::SeqCst);
            let ins: Vec<String> = inputs.iter().map(text).collect();
            let own = match &self.content {
                Some(c) => c.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                None => self.label.clone(),
            };
            let value = if ins.is_empty() {
                own
            } else {
                format!("{own}({})", ins.join(","))
            };
            let r: ResultRef = Arc::new(Text {
                id: format!("r{}", NEXT_ID.fetch_add(1, Ordering::SeqCst)),
                value,
            });
            Ok(vec![r])
        }
        .boxed()
    }
}

fn add(g: &mut VertexGraph, op: TestOp, inputs: &[VertexId]) -> VertexId {
    let name = format!("[test] {}", op.label);
    let v = Vertex {
        digest: Digest::of_bytes(op.label.as_bytes()),
        op: Arc::new(op),
        inputs: inputs
            .iter()
            .map(|v| Edge {
                vertex: *v,
                output: 0,
            })
            .collect(),
        name,
        ignore_cache: false,
        progress_group: None,
    };
    g.add(v).expect("inputs were added first")
}

fn op(label: &str, c: &Arc<Counters>) -> TestOp {
    TestOp {
        label: label.to_owned(),
        counters: Arc::clone(c),
        ..TestOp::default()
    }
}

fn solver(cache: &Arc<MemoryCache>, parallelism: usize) -> Solver {
    Solver::new(
        Arc::clone(cache) as Arc<dyn CacheKeyStorage>,
        Arc::clone(cache) as Arc<dyn ResultStore>,
        SolverConfig {
            max_parallelism: parallelism,
        },
    )
}

fn chain(n: usize, c: &Arc<Counters>) -> (Arc<VertexGraph>, Edge) {
    let mut g = VertexGraph::new();
    let mut last = add(&mut g, op("step0", c), &[]);
    for i in 1..n {
        last = add(&mut g, op(&format!("step{i}"), c), &[last]);
    }
    (
        Arc::new(g),
        Edge {
            vertex: last,
            output: 0,
        },
    )
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
}

#[tokio::test]
async fn cached_rebuild_of_fifty_steps_computes_nothing() {
    let cache = MemoryCache::new();
    let first = Arc::new(Counters::default());
    let (g, target) = chain(50, &first);
    let out = solver(&cache, 4)
        .solve(g, target, SolveOptions::default())
        .await
        .expect("cold solve");
    assert_eq!(first.execs.load(Ordering::SeqCst), 50);
    assert!(!out.cached);
    assert!(text(&out.result).starts_with("step49(step48("));

    // A new process-like solver over the same storage and a freshly loaded graph.
    let second = Arc::new(Counters::default());
    let (g, target) = chain(50, &second);
    let again = solver(&cache, 4)
        .solve(g, target, SolveOptions::default())
        .await
        .expect("cached solve");
    assert_eq!(
        second.execs.load(Ordering::SeqCst),
        0,
        "a cached build runs no op"
    );
    assert!(again.cached);
    assert_eq!(text(&again.result), text(&out.result));
    assert_eq!(again.key, out.key);
}

#[tokio::test]
async fn changed_step_reruns_only_itself_and_descendants() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let (g, t) = chain(10, &c);
    solver(&cache, 2)
        .solve(g, t, SolveOptions::default())
        .await
        .expect("cold");
    let c2 = Arc::new(Counters::default());
    let mut g = VertexGraph::new();
    let mut last = add(&mut g, op("step0", &c2), &[]);
    for i in 1..10 {
        let label = if i == 7 {
            "step7-changed".to_owned()
        } else {
            format!("step{i}")
        };
        last = add(&mut g, op(&label, &c2), &[last]);
    }
    let out = solver(&cache, 2)
        .solve(
            Arc::new(g),
            Edge {
                vertex: last,
                output: 0,
            },
            SolveOptions::default(),
        )
        .await
        .expect("partly cached");
    // step7-changed, step8, step9 run; step6 is loaded from the cache, 0..5 are not touched.
    assert_eq!(c2.execs.load(Ordering::SeqCst), 3);
    assert!(text(&out.result).contains("step7-changed(step6("));
}

#[tokio::test]
async fn parallelism_is_bounded_per_solve() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let mut g = VertexGraph::new();
    let leaves: Vec<VertexId> = (0..12)
        .map(|i| {
            let mut o = op(&format!("leaf{i}"), &c);
            o.delay = Duration::from_millis(40);
            add(&mut g, o, &[])
        })
        .collect();
    let top = add(&mut g, op("top", &c), &leaves);
    let out = solver(&cache, 3)
        .solve(
            Arc::new(g),
            Edge {
                vertex: top,
                output: 0,
            },
            SolveOptions::default(),
        )
        .await
        .expect("wide solve");
    assert_eq!(c.execs.load(Ordering::SeqCst), 13);
    let max = c.max_running.load(Ordering::SeqCst);
    assert!(max <= 3, "at most 3 ops at once, saw {max}");
    assert!(max >= 2, "independent vertices run concurrently, saw {max}");
    assert!(text(&out.result).starts_with("top(leaf0,leaf1,"));
}

fn gated_pair(c: &Arc<Counters>, gate: &Arc<Notify>) -> (Arc<VertexGraph>, Edge) {
    let mut g = VertexGraph::new();
    let mut shared = op("shared-slow", c);
    shared.gate = Some(Arc::clone(gate));
    let s = add(&mut g, shared, &[]);
    (
        Arc::new(g),
        Edge {
            vertex: s,
            output: 0,
        },
    )
}

#[tokio::test]
async fn concurrent_solves_run_an_identical_vertex_once() {
    let cache = MemoryCache::new();
    let s = solver(&cache, 4);
    let c = Arc::new(Counters::default());
    let gate = Arc::new(Notify::new());
    let (g1, t1) = gated_pair(&c, &gate);
    let (g2, t2) = gated_pair(&c, &gate);
    let a = tokio::spawn({
        let s = s.clone();
        async move { s.solve(g1, t1, SolveOptions::default()).await }
    });
    let b = tokio::spawn({
        let s = s.clone();
        async move { s.solve(g2, t2, SolveOptions::default()).await }
    });
    settle().await;
    assert_eq!(s.in_flight(), 1);
    gate.notify_one();
    let a = a.await.expect("task a").expect("solve a");
    let b = b.await.expect("task b").expect("solve b");
    assert_eq!(c.execs.load(Ordering::SeqCst), 1);
    assert_eq!(a.result.id(), b.result.id());
    assert!(s.shared.active.is_empty());
}

#[tokio::test]
async fn cancelling_one_of_two_solves_lets_the_other_finish() {
    let cache = MemoryCache::new();
    let s = solver(&cache, 4);
    let c = Arc::new(Counters::default());
    let gate = Arc::new(Notify::new());
    let (g1, t1) = gated_pair(&c, &gate);
    let (g2, t2) = gated_pair(&c, &gate);
    let cancel_a = CancellationToken::new();
    let a = tokio::spawn({
        let s = s.clone();
        let opts = SolveOptions {
            cancel: cancel_a.clone(),
            ..SolveOptions::default()
        };
        async move { s.solve(g1, t1, opts).await }
    });
    let b = tokio::spawn({
        let s = s.clone();
        async move { s.solve(g2, t2, SolveOptions::default()).await }
    });
    settle().await;
    cancel_a.cancel();
    let a = a.await.expect("task a");
    assert!(matches!(a, Err(SolveError::Cancelled)), "{a:?}");
    settle().await;
    assert_eq!(
        c.dropped_unfinished.load(Ordering::SeqCst),
        0,
        "shared work survives"
    );
    gate.notify_one();
    let b = b.await.expect("task b").expect("solve b completes");
    assert_eq!(text(&b.result), "shared-slow");
    assert_eq!(c.execs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn cancelling_both_solves_drops_the_work() {
    let cache = MemoryCache::new();
    let s = solver(&cache, 4);
    let c = Arc::new(Counters::default());
    let gate = Arc::new(Notify::new());
    let mut tokens = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (g, t) = gated_pair(&c, &gate);
        let cancel = CancellationToken::new();
        tokens.push(cancel.clone());
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.solve(
                g,
                t,
                SolveOptions {
                    cancel,
                    ..SolveOptions::default()
                },
            )
            .await
        }));
    }
    settle().await;
    assert_eq!(s.in_flight(), 1);
    for t in &tokens {
        t.cancel();
    }
    for t in tasks {
        assert!(matches!(t.await.expect("task"), Err(SolveError::Cancelled)));
    }
    settle().await;
    assert_eq!(
        c.dropped_unfinished.load(Ordering::SeqCst),
        1,
        "work future dropped"
    );
    assert_eq!(c.finished.load(Ordering::SeqCst), 0);
    assert_eq!(s.in_flight(), 0);
    assert_eq!(cache.key_count(), 0, "nothing half-stored");
    assert!(s.shared.active.is_empty(), "no progress entry left behind");
    assert!(s.shared.cache_maps.is_empty());
}

#[tokio::test]
async fn first_failure_cancels_siblings_and_names_the_vertex() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let mut g = VertexGraph::new();
    let mut slow = op("sibling", &c);
    slow.delay = Duration::from_secs(30);
    let slow = add(&mut g, slow, &[]);
    let mut bad = op("[stage-2 3/5] RUN make", &c);
    bad.fail =
        Some("process \"/bin/sh -c make\" did not complete successfully: exit code: 2".into());
    bad.delay = Duration::from_millis(20);
    let bad = add(&mut g, bad, &[]);
    let top = add(&mut g, op("merge", &c), &[slow, bad]);
    let started = std::time::Instant::now();
    let err = solver(&cache, 4)
        .solve(
            Arc::new(g),
            Edge {
                vertex: top,
                output: 0,
            },
            SolveOptions::default(),
        )
        .await
        .expect_err("must fail");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not wait for the sibling"
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with("[test] [stage-2 3/5] RUN make (sha256:"),
        "{msg}"
    );
    assert!(msg.contains("exit code: 2"), "{msg}");
    assert!(
        msg.contains("last output:\n  running [stage-2 3/5] RUN make\n  make: *** [all] Error 2"),
        "{msg}"
    );
    settle().await;
    assert_eq!(
        c.dropped_unfinished.load(Ordering::SeqCst),
        1,
        "sibling cancelled"
    );
    assert_eq!(c.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn ignore_cache_and_no_cache_force_execution() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let (g, t) = chain(5, &c);
    let s = solver(&cache, 2);
    s.solve(Arc::clone(&g), t, SolveOptions::default())
        .await
        .expect("cold");
    assert_eq!(c.execs.load(Ordering::SeqCst), 5);
    s.solve(
        Arc::clone(&g),
        t,
        SolveOptions {
            no_cache: true,
            ..SolveOptions::default()
        },
    )
    .await
    .expect("no-cache");
    assert_eq!(c.execs.load(Ordering::SeqCst), 10);

    // ignore_cache on the last vertex: it re-runs; its inputs are loaded from the cache
    // (only its direct input's result is needed), so nothing else runs.
    let c2 = Arc::new(Counters::default());
    let mut g2 = VertexGraph::new();
    let mut last = add(&mut g2, op("step0", &c2), &[]);
    for i in 1..5 {
        let mut v = Vertex {
            digest: Digest::of_bytes(format!("step{i}").as_bytes()),
            op: Arc::new(op(&format!("step{i}"), &c2)),
            inputs: vec![Edge {
                vertex: last,
                output: 0,
            }],
            name: format!("step{i}"),
            ignore_cache: false,
            progress_group: None,
        };
        v.ignore_cache = i == 4;
        last = g2.add(v).expect("add");
    }
    s.solve(
        Arc::new(g2),
        Edge {
            vertex: last,
            output: 0,
        },
        SolveOptions::default(),
    )
    .await
    .expect("ignore-cache");
    assert_eq!(
        c2.execs.load(Ordering::SeqCst),
        1,
        "only the ignore-cache vertex runs"
    );
}

fn content_graph(
    c: &Arc<Counters>,
    content: &Arc<Mutex<String>>,
    copy_label: &str,
) -> (Arc<VertexGraph>, Edge) {
    let mut g = VertexGraph::new();
    let mut src = op("local-context", c);
    src.random = true;
    src.content = Some(Arc::clone(content));
    let src = add(&mut g, src, &[]);
    let mut copy = op(copy_label, c);
    copy.content_dep = true;
    let copy = add(&mut g, copy, &[src]);
    let top = add(&mut g, op("after-copy", c), &[copy]);
    (
        Arc::new(g),
        Edge {
            vertex: top,
            output: 0,
        },
    )
}

#[tokio::test]
async fn content_keys_hit_when_bytes_are_equal() {
    let cache = MemoryCache::new();
    let s = solver(&cache, 2);
    let content = Arc::new(Mutex::new("v1".to_owned()));
    let c = Arc::new(Counters::default());
    let (g, t) = content_graph(&c, &content, "copy");
    let first = s.solve(g, t, SolveOptions::default()).await.expect("cold");
    assert_eq!(c.execs.load(Ordering::SeqCst), 3);
    assert_eq!(text(&first.result), "after-copy(copy(v1))");

    // Same bytes: the source re-runs (random key), the copy and what follows hit.
    let c = Arc::new(Counters::default());
    let (g, t) = content_graph(&c, &content, "copy");
    let second = s.solve(g, t, SolveOptions::default()).await.expect("warm");
    assert_eq!(c.execs.load(Ordering::SeqCst), 1);
    assert!(second.cached);
    assert_eq!(second.key, first.key);

    // Changed bytes: everything after the source runs again.
    *content.lock().unwrap_or_else(|p| p.into_inner()) = "v2".into();
    let c = Arc::new(Counters::default());
    let (g, t) = content_graph(&c, &content, "copy");
    let third = s
        .solve(g, t, SolveOptions::default())
        .await
        .expect("changed");
    assert_eq!(c.execs.load(Ordering::SeqCst), 3);
    assert_eq!(text(&third.result), "after-copy(copy(v2))");
    assert_ne!(third.key, first.key);
}

#[tokio::test]
async fn definition_key_hit_skips_content_checksum_and_inputs() {
    let cache = MemoryCache::new();
    let s = solver(&cache, 2);
    let build = |c: &Arc<Counters>| {
        let mut g = VertexGraph::new();
        let src = add(&mut g, op("image", c), &[]);
        let mut copy = op("copy-from-image", c);
        copy.content_dep = true;
        let copy = add(&mut g, copy, &[src]);
        let top = add(&mut g, op("run", c), &[copy]);
        (
            Arc::new(g),
            Edge {
                vertex: top,
                output: 0,
            },
        )
    };
    let c = Arc::new(Counters::default());
    let (g, t) = build(&c);
    let first = s.solve(g, t, SolveOptions::default()).await.expect("cold");
    assert_eq!(c.execs.load(Ordering::SeqCst), 3);
    let c = Arc::new(Counters::default());
    let (g, t) = build(&c);
    let second = s.solve(g, t, SolveOptions::default()).await.expect("warm");
    assert_eq!(
        c.execs.load(Ordering::SeqCst),
        0,
        "the image source is not even run"
    );
    assert_eq!(
        second.key, first.key,
        "downstream keys agree whichever key hit"
    );
}

#[tokio::test]
async fn needs_remote_providers_walks_ancestors_across_merge_inputs() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let layer_a = Digest::of_bytes(b"layer-a");
    let layer_b = Digest::of_bytes(b"layer-b");
    let mut g = VertexGraph::new();
    let mut img_a = op("image-a", &c);
    img_a
        .opts
        .insert(desc_handler_key(&layer_a), Arc::new("handler-a".to_owned()));
    let img_a = add(&mut g, img_a, &[]);
    let mut img_b = op("image-b", &c);
    img_b
        .opts
        .insert(desc_handler_key(&layer_b), Arc::new("handler-b".to_owned()));
    // A nearer ancestor on the second path also offers layer-a; the first match in
    // depth-first order (through input 0) must win.
    let mut decoy = op("decoy", &c);
    decoy
        .opts
        .insert(desc_handler_key(&layer_a), Arc::new("decoy-a".to_owned()));
    let img_b = add(&mut g, img_b, &[]);
    let decoy = add(&mut g, decoy, &[img_b]);
    let merge = add(&mut g, op("merge", &c), &[img_a, decoy]);
    let mut run = op("run", &c);
    run.needs = vec![layer_a.clone(), layer_b.clone()];
    let provided = Arc::clone(&run.provided);
    let run = add(&mut g, run, &[merge]);
    let out = solver(&cache, 2)
        .solve(
            Arc::new(g),
            Edge {
                vertex: run,
                output: 0,
            },
            SolveOptions::default(),
        )
        .await
        .expect("retry with providers succeeds");
    let got = provided.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(got, vec!["handler-a".to_owned(), "handler-b".to_owned()]);
    // The exporter's walk from the output finds the same.
    let found = out.ancestor_cache_opts(&[desc_handler_key(&layer_b), "missing".to_owned()]);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found
            .get_as::<String>(&desc_handler_key(&layer_b))
            .as_deref()
            .map(String::as_str),
        Some("handler-b")
    );
}

#[tokio::test]
async fn needs_remote_providers_without_handlers_fails_naming_digests() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let mut g = VertexGraph::new();
    let src = add(&mut g, op("image", &c), &[]);
    let mut run = op("run", &c);
    let missing = Digest::of_bytes(b"nowhere");
    run.needs = vec![missing.clone()];
    let run = add(&mut g, run, &[src]);
    let err = solver(&cache, 2)
        .solve(
            Arc::new(g),
            Edge {
                vertex: run,
                output: 0,
            },
            SolveOptions::default(),
        )
        .await
        .expect_err("no handler anywhere");
    let msg = err.to_string();
    assert!(
        msg.contains("needs remote providers for [") && msg.contains(missing.as_str()),
        "{msg}"
    );
    assert_eq!(
        c.execs.load(Ordering::SeqCst),
        3,
        "image once, run tried twice"
    );
}

#[tokio::test]
async fn progress_reports_started_completed_cached_and_logs() {
    let cache = MemoryCache::new();
    let s = solver(&cache, 2);
    let c = Arc::new(Counters::default());
    let (g, t) = chain(3, &c);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    s.solve(
        Arc::clone(&g),
        t,
        SolveOptions {
            progress: Some(tx),
            ..SolveOptions::default()
        },
    )
    .await
    .expect("cold");
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    let completed: Vec<&VertexEvent> = events
        .iter()
        .flat_map(|e| &e.vertexes)
        .filter(|v| v.completed.is_some())
        .collect();
    assert_eq!(completed.len(), 3);
    assert!(completed.iter().all(|v| !v.cached && v.started.is_some()));
    assert_eq!(completed[2].name, "[test] step2");
    assert_eq!(completed[2].inputs, vec![Digest::of_bytes(b"step1")]);
    let logs: Vec<String> = events
        .iter()
        .flat_map(|e| &e.logs)
        .map(|l| String::from_utf8_lossy(&l.data).into_owned())
        .collect();
    assert_eq!(
        logs,
        vec!["running step0\n", "running step1\n", "running step2\n"]
    );

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    s.solve(
        g,
        t,
        SolveOptions {
            progress: Some(tx),
            ..SolveOptions::default()
        },
    )
    .await
    .expect("warm");
    let e = rx.try_recv().expect("one event");
    assert!(e.vertexes[0].cached);
    let json = serde_json::to_value(&e).expect("serialises");
    assert_eq!(json["vertexes"][0]["cached"], true);
    assert_eq!(json["vertexes"][0]["name"], "[test] step2");
    assert!(rx.try_recv().is_err(), "only the target is loaded");
}

#[tokio::test]
async fn deep_chain_does_not_exhaust_the_stack() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let (g, t) = chain(3000, &c);
    let s = solver(&cache, 2);
    s.solve(Arc::clone(&g), t, SolveOptions::default())
        .await
        .expect("cold");
    assert_eq!(c.execs.load(Ordering::SeqCst), 3000);
    let out = s.solve(g, t, SolveOptions::default()).await.expect("warm");
    assert!(out.cached);
    assert_eq!(c.execs.load(Ordering::SeqCst), 3000);
}

/// A source whose cache map takes time (an image resolve) and counts its calls.
struct SlowResolve {
    resolves: Arc<AtomicUsize>,
}

impl Op for SlowResolve {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        async move {
            self.resolves.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok(CacheMap {
                digest: Some(Digest::of_bytes(b"resolved-image")),
                ..CacheMap::default()
            })
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        _ctx: &'a ExecCtx,
        _inputs: Vec<ResultRef>,
    ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>> {
        async move {
            let r: ResultRef = Arc::new(Text {
                id: format!("r{}", NEXT_ID.fetch_add(1, Ordering::SeqCst)),
                value: "image".into(),
            });
            Ok(vec![r])
        }
        .boxed()
    }
}

#[tokio::test]
async fn concurrent_solves_resolve_a_cache_map_once() {
    let cache = MemoryCache::new();
    let s = solver(&cache, 2);
    let resolves = Arc::new(AtomicUsize::new(0));
    let graph = || {
        let mut g = VertexGraph::new();
        let v = g
            .add(Vertex {
                digest: Digest::of_bytes(b"image-source"),
                op: Arc::new(SlowResolve {
                    resolves: Arc::clone(&resolves),
                }),
                inputs: Vec::new(),
                name: "[internal] load metadata".into(),
                ignore_cache: false,
                progress_group: None,
            })
            .expect("add");
        (
            Arc::new(g),
            Edge {
                vertex: v,
                output: 0,
            },
        )
    };
    let (g1, t1) = graph();
    let (g2, t2) = graph();
    let (a, b) = tokio::join!(
        s.solve(g1, t1, SolveOptions::default()),
        s.solve(g2, t2, SolveOptions::default())
    );
    a.expect("a");
    b.expect("b");
    assert_eq!(resolves.load(Ordering::SeqCst), 1);
    assert!(
        s.shared.cache_maps.is_empty(),
        "entries go with the last solve"
    );
    let (g3, t3) = graph();
    s.solve(g3, t3, SolveOptions::default())
        .await
        .expect("later solve");
    assert_eq!(
        resolves.load(Ordering::SeqCst),
        2,
        "a later solve resolves afresh"
    );
}

#[tokio::test]
async fn a_panicking_op_fails_its_vertex_without_unwinding_into_the_caller() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let mut g = VertexGraph::new();
    let mut bad = op("buggy", &c);
    bad.panic = true;
    let bad = add(&mut g, bad, &[]);
    let top = add(&mut g, op("after", &c), &[bad]);
    let err = solver(&cache, 2)
        .solve(
            Arc::new(g),
            Edge {
                vertex: top,
                output: 0,
            },
            SolveOptions::default(),
        )
        .await
        .expect_err("panic becomes an error");
    let msg = err.to_string();
    assert!(msg.starts_with("[test] buggy (sha256:"), "{msg}");
    assert!(msg.contains("panicked"), "{msg}");
}

#[tokio::test]
async fn a_cancelled_running_step_is_reported_cancelled() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let gate = Arc::new(Notify::new());
    let (g, t) = gated_pair(&c, &gate);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let s = solver(&cache, 2);
    let run = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            s.solve(
                g,
                t,
                SolveOptions {
                    progress: Some(tx),
                    cancel,
                    ..SolveOptions::default()
                },
            )
            .await
        }
    });
    settle().await;
    cancel.cancel();
    assert!(matches!(
        run.await.expect("task"),
        Err(SolveError::Cancelled)
    ));
    let mut last = None;
    while let Some(e) = rx.recv().await {
        for v in e.vertexes {
            last = Some(v);
        }
    }
    let last = last.expect("vertex events");
    assert_eq!(last.error, super::CANCELLED);
    assert!(last.started.is_some() && last.completed.is_some());
}

/// An import backed by another solve's storage, as a remote cache read back would be.
#[derive(Debug)]
struct Import {
    from: Arc<MemoryCache>,
    opts: CacheOpts,
    loads: AtomicUsize,
}

impl ImportedCache for Import {
    fn get(&self, key: &CacheKey) -> Option<CacheRecord> {
        CacheKeyStorage::get(&*self.from, key).ok().flatten()
    }
    fn load(&self, id: &str) -> Result<ResultRef, StorageError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        ResultStore::load(&*self.from, id)
    }
    fn opts(&self) -> &CacheOpts {
        &self.opts
    }
}

fn with_import(import: &Arc<Import>) -> SolveOptions {
    SolveOptions {
        imports: vec![Arc::clone(import) as Arc<dyn ImportedCache>],
        ..SolveOptions::default()
    }
}

#[tokio::test]
async fn an_import_answers_a_local_miss_and_the_hit_is_recorded_locally() {
    let remote = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let (g, t) = chain(10, &c);
    let built = solver(&remote, 2)
        .solve(g, t, SolveOptions::default())
        .await
        .expect("cold");
    let import = Arc::new(Import {
        from: Arc::clone(&remote),
        opts: CacheOpts::new(),
        loads: AtomicUsize::new(0),
    });

    let local = MemoryCache::new();
    let c2 = Arc::new(Counters::default());
    let (g, t) = chain(10, &c2);
    let out = solver(&local, 2)
        .solve(g, t, with_import(&import))
        .await
        .expect("from the import");
    assert_eq!(c2.execs.load(Ordering::SeqCst), 0, "nothing ran");
    assert!(out.cached);
    assert_eq!(text(&out.result), text(&built.result));
    assert_eq!(
        import.loads.load(Ordering::SeqCst),
        1,
        "only the output loaded"
    );
    // Every key is known, inputs first, and the same as where the cache was made.
    let keys = out.vertex_keys();
    assert_eq!(keys.len(), 10);
    assert_eq!(keys[9].canonical, built.vertex_keys()[9].canonical);
    assert!(keys[9].outputs.is_some() && keys[0].outputs.is_none());

    // The hit was stored locally: without the import, still nothing runs.
    let c3 = Arc::new(Counters::default());
    let (g, t) = chain(10, &c3);
    solver(&local, 2)
        .solve(g, t, SolveOptions::default())
        .await
        .expect("local now");
    assert_eq!(c3.execs.load(Ordering::SeqCst), 0);

    // A changed step on another empty machine: it and the steps after it run.
    let c4 = Arc::new(Counters::default());
    let mut g = VertexGraph::new();
    let mut last = add(&mut g, op("step0", &c4), &[]);
    for i in 1..10 {
        let label = if i == 7 {
            "step7-changed".to_owned()
        } else {
            format!("step{i}")
        };
        last = add(&mut g, op(&label, &c4), &[last]);
    }
    let fresh = MemoryCache::new();
    solver(&fresh, 2)
        .solve(
            Arc::new(g),
            Edge {
                vertex: last,
                output: 0,
            },
            with_import(&import),
        )
        .await
        .expect("partly imported");
    assert_eq!(c4.execs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_import_supplies_providers_no_ancestor_has() {
    let layer = Digest::of_bytes(b"imported-layer");
    let mut opts = CacheOpts::new();
    opts.insert(desc_handler_key(&layer), Arc::new("from-import".to_owned()));
    let import = Arc::new(Import {
        from: MemoryCache::new(),
        opts,
        loads: AtomicUsize::new(0),
    });
    let c = Arc::new(Counters::default());
    let mut g = VertexGraph::new();
    let base = add(&mut g, op("base", &c), &[]);
    let mut run = op("run", &c);
    run.needs = vec![layer.clone()];
    let provided = Arc::clone(&run.provided);
    let run = add(&mut g, run, &[base]);
    let out = solver(&MemoryCache::new(), 2)
        .solve(
            Arc::new(g),
            Edge {
                vertex: run,
                output: 0,
            },
            with_import(&import),
        )
        .await
        .expect("the import's handler is found");
    assert_eq!(
        *provided.lock().unwrap_or_else(|p| p.into_inner()),
        vec!["from-import".to_owned()]
    );
    assert_eq!(
        out.ancestor_cache_opts(&[desc_handler_key(&layer)]).len(),
        1
    );
}

/// A final stage's `COPY --from=a`, `COPY --from=b`, … chain: each copy keys its stage's
/// output by content and the previous copy by key. The stages miss the cache, so they run
/// at once instead of each waiting for the copy before it to be keyed; a rebuild still
/// runs nothing.
#[tokio::test]
async fn stages_behind_a_chain_of_content_keyed_copies_run_concurrently() {
    let cache = MemoryCache::new();
    let c = Arc::new(Counters::default());
    let mut g = VertexGraph::new();
    // Every stage starts from an image whose resolve takes time, so the stages' keys are
    // not known when the copies are keyed.
    let image = g
        .add(Vertex {
            digest: Digest::of_bytes(b"image-source"),
            op: Arc::new(SlowResolve {
                resolves: Arc::new(AtomicUsize::new(0)),
            }),
            inputs: Vec::new(),
            name: "FROM image".into(),
            ignore_cache: false,
            progress_group: None,
        })
        .expect("add");
    let mut prev = add(&mut g, op("base", &c), &[image]);
    for i in 0..4 {
        let mut stage = op(&format!("stage{i}"), &c);
        stage.delay = Duration::from_millis(200);
        let stage = add(&mut g, stage, &[image]);
        let mut copy = op(&format!("copy{i}"), &c);
        copy.content_dep = true;
        prev = add(&mut g, copy, &[stage, prev]);
    }
    let g = Arc::new(g);
    let target = Edge {
        vertex: prev,
        output: 0,
    };
    let out = solver(&cache, 4)
        .solve(Arc::clone(&g), target, SolveOptions::default())
        .await
        .expect("chain solve");
    assert_eq!(c.execs.load(Ordering::SeqCst), 9);
    let max = c.max_running.load(Ordering::SeqCst);
    assert!(
        max >= 3,
        "the stages ran one after another (max {max} at once)"
    );
    assert!(
        text(&out.result).starts_with("copy3(stage3(image),copy2("),
        "{}",
        text(&out.result)
    );

    let again = solver(&cache, 4)
        .solve(g, target, SolveOptions::default())
        .await
        .expect("cached");
    assert_eq!(c.execs.load(Ordering::SeqCst), 9, "a rebuild runs nothing");
    assert_eq!(text(&again.result), text(&out.result));
}
