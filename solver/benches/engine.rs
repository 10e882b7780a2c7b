//! Per-vertex overhead of the engine: chains and wide graphs of no-op ops, solved cold
//! and then fully cached, at 100, 1,000 and 10,000 vertices. Prints µs per vertex; the
//! numbers should stay flat as the graph grows (DESIGN: no size makes it fall over).
//!
//! Run with `cargo bench -p cairn-solver --bench engine`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cairn_llb::Digest;
use cairn_solver::{
    CacheKeyStorage, CacheMap, Edge, ExecCtx, MemoryCache, Op, OpCtx, OpError, ResultRef,
    ResultStore, SolveOptions, Solver, SolverConfig, SolverResult, Vertex, VertexGraph,
};
use futures::FutureExt;
use futures::future::BoxFuture;

#[derive(Debug)]
struct Unit(String);

impl SolverResult for Unit {
    fn id(&self) -> String {
        self.0.clone()
    }
}

struct Noop {
    digest: Digest,
    execs: Arc<AtomicUsize>,
}

impl Op for Noop {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        async move {
            Ok(CacheMap {
                digest: Some(self.digest.clone()),
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
            self.execs.fetch_add(1, Ordering::Relaxed);
            let r: ResultRef = Arc::new(Unit(self.digest.hex().to_owned()));
            Ok(vec![r])
        }
        .boxed()
    }
}

#[derive(Clone, Copy)]
enum Shape {
    Chain,
    Wide,
}

fn build(shape: Shape, n: usize, execs: &Arc<AtomicUsize>) -> (Arc<VertexGraph>, Edge) {
    let mut g = VertexGraph::new();
    let mut add = |i: usize, inputs: Vec<Edge>| {
        let digest = Digest::of_bytes(format!("noop-{i}").as_bytes());
        g.add(Vertex {
            digest: digest.clone(),
            op: Arc::new(Noop {
                digest,
                execs: Arc::clone(execs),
            }),
            inputs,
            name: format!("noop {i}"),
            ignore_cache: false,
            progress_group: None,
        })
    };
    let target = match shape {
        Shape::Chain => {
            let mut last = add(0, Vec::new()).expect("root");
            for i in 1..n {
                last = add(
                    i,
                    vec![Edge {
                        vertex: last,
                        output: 0,
                    }],
                )
                .expect("chain link");
            }
            last
        }
        Shape::Wide => {
            let leaves: Vec<Edge> = (0..n - 1)
                .map(|i| Edge {
                    vertex: add(i, Vec::new()).expect("leaf"),
                    output: 0,
                })
                .collect();
            add(n, leaves).expect("top")
        }
    };
    (
        Arc::new(g),
        Edge {
            vertex: target,
            output: 0,
        },
    )
}

/// Times one cold and one fully cached solve of a fresh graph of `n` vertices.
fn measure(
    rt: &tokio::runtime::Runtime,
    shape: Shape,
    n: usize,
) -> (std::time::Duration, std::time::Duration) {
    let cache = MemoryCache::new();
    let solver = Solver::new(
        Arc::clone(&cache) as Arc<dyn CacheKeyStorage>,
        Arc::clone(&cache) as Arc<dyn ResultStore>,
        SolverConfig::default(),
    );
    let execs = Arc::new(AtomicUsize::new(0));
    let (g, t) = build(shape, n, &execs);
    let start = Instant::now();
    rt.block_on(solver.solve(g, t, SolveOptions::default()))
        .expect("cold solve");
    let cold = start.elapsed();
    assert_eq!(execs.load(Ordering::Relaxed), n);

    let execs = Arc::new(AtomicUsize::new(0));
    let (g, t) = build(shape, n, &execs);
    let start = Instant::now();
    let out = rt
        .block_on(solver.solve(g, t, SolveOptions::default()))
        .expect("cached solve");
    let cached = start.elapsed();
    assert!(out.cached);
    assert_eq!(
        execs.load(Ordering::Relaxed),
        0,
        "a cached solve runs nothing"
    );
    (cold, cached)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "{:<6} {:>7} {:>14} {:>14}",
        "shape", "n", "cold µs/vtx", "cached µs/vtx"
    );
    for shape in [Shape::Chain, Shape::Wide] {
        for n in [100usize, 1_000, 10_000] {
            let name = match shape {
                Shape::Chain => "chain",
                Shape::Wide => "wide",
            };
            // `CAIRN_BENCH_ONLY=wide-10000` runs one case, for profiling.
            if let Ok(only) = std::env::var("CAIRN_BENCH_ONLY")
                && only != format!("{name}-{n}")
            {
                continue;
            }
            // Best of three runs, each with a fresh cache, so warm-up and noise fall away.
            let mut cold = std::time::Duration::MAX;
            let mut cached = std::time::Duration::MAX;
            for _ in 0..3 {
                let (c, w) = measure(&rt, shape, n);
                cold = cold.min(c);
                cached = cached.min(w);
            }
            let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / n as f64;
            println!("{name:<6} {n:>7} {:>14.2} {:>14.2}", per(cold), per(cached));
        }
    }
}
