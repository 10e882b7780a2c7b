//! The scheduler: turns a request for one edge of a [`VertexGraph`] into cache look-ups
//! and op executions.
//!
//! How one solve proceeds (BuildKit's edge states, without its pipe machinery):
//!
//! * **key** (per vertex, memoised): the op's cache map, then the keys of its inputs,
//!   give the fast key. A vertex whose deps are content-based looks its fast key up; on a
//!   miss it needs its inputs' *results* to checksum them into the slow key.
//! * **result** (per vertex, memoised, only for vertices someone needs the files of):
//!   look the key up; a hit loads the stored results and the inputs are never computed.
//!   A miss computes the inputs, then runs the op once per cache key in the process
//!   ([`Flight`]) under the solve's parallelism permit, and stores the results under the
//!   fast and slow keys.
//!
//! Every memoised step is its own spawned task, so a 10,000-deep chain is 10,000 shallow
//! tasks, never a deep stack of nested futures. Tasks hold the solve state; the state
//! holds only abort handles of the tasks. When the solve ends, fails or is dropped, every
//! task is aborted: the failure of one vertex cancels its siblings, and work shared with
//! another solve through the flight continues only while that solve still waits.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use cairn_llb::Digest;

use cairn_cache::flight::Flight;
use dashmap::DashMap;
use futures::future::{BoxFuture, Either, FutureExt, Ready, Shared, ready, try_join_all};
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::cache_opts::{CacheOpts, desc_handler_key, walk_ancestors};
use crate::error::{OpError, SolveError, StorageError};
use crate::graph::{Edge, Vertex, VertexGraph, VertexId};
use crate::key::{CacheKey, KeyBuilder};
use crate::op::{CacheMap, ExecCtx, OpCtx};
use crate::progress::{ProgressWriter, SolveStatus, Timestamp, VertexEvent};
use crate::result::ResultRef;
use crate::storage::{CacheKeyStorage, CacheRecord, ImportedCache, ResultStore};

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct SolverConfig {
    /// Default bound on concurrently executing ops per solve.
    pub max_parallelism: usize,
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            max_parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Settings of one solve.
#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// Re-run every vertex (`--no-cache`); results are still stored.
    pub no_cache: bool,
    /// Overrides [`SolverConfig::max_parallelism`] for this solve.
    pub max_parallelism: Option<usize>,
    /// Where this solve's progress events go.
    pub progress: Option<UnboundedSender<SolveStatus>>,
    /// Cancels the solve when triggered.
    pub cancel: CancellationToken,
    /// Caches imported for this solve (`--cache-from`), asked in order after a local miss.
    /// A hit there is recorded locally too, so the next build hits without the import.
    pub imports: Vec<Arc<dyn ImportedCache>>,
}

/// What a finished solve hands back.
#[derive(Debug)]
pub struct SolveOutput {
    /// The requested output of the target vertex.
    pub result: ResultRef,
    /// The target's cache key (downstream of its output index).
    pub key: CacheKey,
    /// Whether the target came from the cache.
    pub cached: bool,
    graph: Arc<VertexGraph>,
    target: VertexId,
    cache_maps: Vec<Option<Arc<CacheMap>>>,
    keys: Vec<Option<Arc<KeyInfo>>>,
    outputs: Vec<Option<Arc<Vec<ResultRef>>>>,
    imports: Vec<Arc<dyn ImportedCache>>,
}

/// What a solve knows about one vertex below its target: the material of a cache export.
#[derive(Debug, Clone)]
pub struct VertexKeys {
    pub vertex: VertexId,
    pub name: String,
    /// The definition-based key, when it differs from `canonical` (content-keyed ops).
    pub fast: Option<CacheKey>,
    /// The key downstream keys are built from, and the one results are stored under.
    pub canonical: CacheKey,
    /// The outputs, when this solve loaded or made them (vertices below a cache hit were
    /// never needed; their results are in the cache storage under `canonical`).
    pub outputs: Option<Arc<Vec<ResultRef>>>,
    /// See [`CacheMap::machine_local`].
    pub machine_local: bool,
}

impl SolveOutput {
    /// Cache options for `keys` found from the target up through its ancestors, as the
    /// exporter needs them for lazy layers (first match per key, depth-first), then in
    /// the solve's imported caches.
    pub fn ancestor_cache_opts(&self, keys: &[String]) -> CacheOpts {
        let mut found = walk_ancestors(&self.graph, self.target, keys, |v| {
            self.cache_maps
                .get(v.index())
                .and_then(|c| c.as_ref())
                .map(|c| &c.opts)
        });
        add_import_opts(&mut found, &self.imports, keys);
        found
    }

    /// The caches imported for this solve.
    pub fn imports(&self) -> &[Arc<dyn ImportedCache>] {
        &self.imports
    }

    /// Every vertex whose key the solve computed, inputs before the vertices that use
    /// them. Random keys (work that is never cached) are left out.
    pub fn vertex_keys(&self) -> Vec<VertexKeys> {
        let mut out = Vec::new();
        // Inputs are added to a graph before the vertices using them: index order is
        // topological.
        for v in (0..self.graph.len()).map(VertexId::from_index) {
            let Some(Some(k)) = self.keys.get(v.index()) else {
                continue;
            };
            if k.canonical.is_random() {
                continue;
            }
            let Some(vertex) = self.graph.vertex(v) else {
                continue;
            };
            out.push(VertexKeys {
                vertex: v,
                name: vertex.name.clone(),
                fast: k.fast.clone().filter(|f| *f != k.canonical),
                canonical: k.canonical.clone(),
                outputs: self.outputs.get(v.index()).cloned().flatten(),
                machine_local: self
                    .cache_maps
                    .get(v.index())
                    .and_then(|c| c.as_ref())
                    .is_some_and(|c| c.machine_local),
            });
        }
        out
    }
}

/// Adds the imports' options for `keys` not found yet (nearer sources win).
fn add_import_opts(found: &mut CacheOpts, imports: &[Arc<dyn ImportedCache>], keys: &[String]) {
    for k in keys {
        if found.get(k).is_some() {
            continue;
        }
        if let Some(v) = imports.iter().find_map(|i| i.opts().get(k)) {
            found.insert(k.clone(), Arc::clone(v));
        }
    }
}

/// What a flight of shared work produces.
#[derive(Debug, Clone)]
enum WorkError {
    Op {
        source: OpError,
        log_tail: Vec<String>,
    },
    Storage {
        key: CacheKey,
        source: StorageError,
    },
}

type WorkResult = Result<Arc<Vec<ResultRef>>, WorkError>;

struct Shared_ {
    keys: Arc<dyn CacheKeyStorage>,
    results: Arc<dyn ResultStore>,
    config: SolverConfig,
    /// Running op executions by cache key, shared by every solve in the process.
    flight: Flight<CacheKey, WorkResult>,
    /// Progress writers of running executions by cache key, so a solve joining running
    /// work also receives its logs.
    active: DashMap<CacheKey, ProgressWriter>,
    /// Cache maps being computed or held by running solves, by vertex digest, so two
    /// solves resolving the same image resolve it once. Weak: solves own the cells.
    cache_maps: DashMap<Digest, Weak<CacheMapCell>>,
}

/// The engine. Clone it freely; clones share caches, in-flight work and settings.
#[derive(Clone)]
pub struct Solver {
    shared: Arc<Shared_>,
}

impl std::fmt::Debug for Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Solver")
            .field("config", &self.shared.config)
            .field("in_flight", &self.shared.flight.in_flight())
            .finish()
    }
}

type Memo<T> = Shared<BoxFuture<'static, Result<T, SolveError>>>;

/// A key already computed, or the task computing it.
type KeyFuture = Either<Ready<Result<Arc<KeyInfo>, SolveError>>, Memo<Arc<KeyInfo>>>;

#[derive(Debug, Clone)]
struct KeyInfo {
    canonical: CacheKey,
    fast: Option<CacheKey>,
    hit: Option<Hit>,
}

/// A record found for a key, and where: the local storage (`import: None`) or one of the
/// solve's imported caches, whose result ids only that import can load.
#[derive(Debug, Clone)]
struct Hit {
    record: CacheRecord,
    import: Option<usize>,
}

enum FastOutcome {
    Done(Arc<KeyInfo>),
    NeedsContent {
        fast: Option<CacheKey>,
        slow_deps: Vec<usize>,
    },
}

#[derive(Debug)]
struct VertexResult {
    outputs: Arc<Vec<ResultRef>>,
    cached: bool,
}

/// A cache map shared by the solves that need it; initialised once, retried by the next
/// waiter if the initialising solve goes away or fails.
type CacheMapCell = tokio::sync::OnceCell<Arc<CacheMap>>;

type CacheMapFuture = BoxFuture<'static, Result<Arc<CacheMap>, OpError>>;

#[derive(Default)]
struct VertexState {
    /// This solve's handle on the shared cell, keeping it alive while the solve runs.
    shared_cache_map: OnceLock<Arc<CacheMapCell>>,
    /// A cache-map computation started by the synchronous key pass and not finished.
    parked_cache_map: Mutex<Option<CacheMapFuture>>,
    cache_map: OnceLock<Arc<CacheMap>>,
    /// Set when the key was computed synchronously by [`SolveState::precompute_keys`].
    key_ready: OnceLock<Arc<KeyInfo>>,
    key: OnceLock<Memo<Arc<KeyInfo>>>,
    result: OnceLock<Memo<Arc<VertexResult>>>,
    /// A root announced as running while its cache map was computed (an image resolve, a
    /// context scan) and not yet shown as finished: its execution continues that line, and
    /// the solve closes it at the end if nothing else did, so a display shows one step.
    open_since: Mutex<Option<Timestamp>>,
}

struct SolveState {
    shared: Arc<Shared_>,
    graph: Arc<VertexGraph>,
    vertices: Vec<VertexState>,
    no_cache: bool,
    permits: Arc<Semaphore>,
    progress: Option<UnboundedSender<SolveStatus>>,
    tasks: Mutex<Vec<AbortHandle>>,
    imports: Vec<Arc<dyn ImportedCache>>,
}

impl Drop for SolveState {
    fn drop(&mut self) {
        // Node weights come in index order, the order of `vertices`.
        for (v, vertex) in self
            .vertices
            .iter_mut()
            .zip(self.graph.petgraph().node_weights())
        {
            if v.shared_cache_map.take().is_some() {
                self.shared
                    .cache_maps
                    .remove_if(&vertex.digest, |_, w| w.strong_count() == 0);
            }
        }
    }
}

/// Removes a running execution's progress writer from the shared map when the work ends
/// or is aborted.
struct ActiveEntry {
    shared: Arc<Shared_>,
    key: CacheKey,
    writer: ProgressWriter,
}

impl Drop for ActiveEntry {
    fn drop(&mut self) {
        self.shared
            .active
            .remove_if(&self.key, |_, w| w.same_as(&self.writer));
    }
}

/// Reports a step as cancelled if its future is dropped (the solve was cancelled or a
/// sibling failed) while it runs, so a progress display shows `CANCELED` instead of a
/// step that never ends.
struct Running<'a> {
    state: &'a SolveState,
    v: VertexId,
    started: Option<Timestamp>,
    finished: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.state.emit_vertex(
                self.v,
                self.started,
                Some(Timestamp::now()),
                false,
                CANCELLED.to_owned(),
            );
        }
    }
}

/// The error text of a step stopped by cancellation (BuildKit says `context canceled`).
pub const CANCELLED: &str = "cancelled";

/// Aborts every task of a solve when the solve returns or is dropped.
struct AbortOnDrop(Arc<SolveState>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in lock(&self.0.tasks).drain(..) {
            t.abort();
        }
    }
}

impl Solver {
    pub fn new(
        keys: Arc<dyn CacheKeyStorage>,
        results: Arc<dyn ResultStore>,
        config: SolverConfig,
    ) -> Solver {
        Solver {
            shared: Arc::new(Shared_ {
                keys,
                results,
                config,
                flight: Flight::new(),
                active: DashMap::new(),
                cache_maps: DashMap::new(),
            }),
        }
    }

    /// Number of op executions running in this process right now.
    pub fn in_flight(&self) -> usize {
        self.shared.flight.in_flight()
    }

    /// Solves output `target` of `graph`. Must run inside a Tokio runtime.
    pub async fn solve(
        &self,
        graph: Arc<VertexGraph>,
        target: Edge,
        opts: SolveOptions,
    ) -> Result<SolveOutput, SolveError> {
        if graph.vertex(target.vertex).is_none() {
            return Err(SolveError::UnknownVertex(target.vertex));
        }
        let parallelism = opts
            .max_parallelism
            .unwrap_or(self.shared.config.max_parallelism)
            .max(1);
        let mut vertices = Vec::with_capacity(graph.len());
        vertices.resize_with(graph.len(), VertexState::default);
        let state = Arc::new(SolveState {
            shared: Arc::clone(&self.shared),
            graph: Arc::clone(&graph),
            vertices,
            no_cache: opts.no_cache,
            permits: Arc::new(Semaphore::new(parallelism)),
            progress: opts.progress,
            tasks: Mutex::new(Vec::new()),
            imports: opts.imports,
        });
        let guard = AbortOnDrop(Arc::clone(&state));
        state.precompute_keys(target.vertex);
        let result = state.result_of(target.vertex);
        let res = tokio::select! {
            biased;
            () = opts.cancel.cancelled() => Err(SolveError::Cancelled),
            r = result => r,
        };
        drop(guard);
        state.close_open(if res.is_ok() { "" } else { CANCELLED });
        let res = res?;
        let key = state.key_of(target.vertex).await?;
        let name = &state.vertex_name(target.vertex);
        let result = output(name, &res.outputs, target.output)?;
        let cache_maps = state
            .vertices
            .iter()
            .map(|v| v.cache_map.get().cloned())
            .collect();
        let keys = state
            .vertices
            .iter()
            .map(|v| {
                v.key_ready.get().cloned().or_else(|| {
                    v.key
                        .get()
                        .and_then(|m| m.peek().cloned())
                        .and_then(Result::ok)
                })
            })
            .collect();
        let outputs = state
            .vertices
            .iter()
            .map(|v| {
                v.result
                    .get()
                    .and_then(|m| m.peek().cloned())
                    .and_then(Result::ok)
                    .map(|r| Arc::clone(&r.outputs))
            })
            .collect();
        Ok(SolveOutput {
            result,
            key: key.canonical.output(target.output),
            cached: res.cached,
            graph,
            target: target.vertex,
            cache_maps,
            keys,
            outputs,
            imports: state.imports.clone(),
        })
    }
}

fn output(name: &str, outputs: &[ResultRef], index: u32) -> Result<ResultRef, SolveError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| outputs.get(i))
        .cloned()
        .ok_or_else(|| SolveError::MissingOutput {
            name: name.to_owned(),
            produced: outputs.len(),
            wanted: index,
        })
}

impl SolveState {
    fn vertex_name(&self, v: VertexId) -> String {
        self.graph
            .vertex(v)
            .map(|x| x.name.clone())
            .unwrap_or_default()
    }

    /// Spawns `fut`, the work of vertex `v`, as a task of this solve and memoises its
    /// outcome.
    fn spawn<T>(
        &self,
        v: VertexId,
        fut: impl Future<Output = Result<T, SolveError>> + Send + 'static,
    ) -> Memo<T>
    where
        T: Clone + Send + Sync + 'static,
    {
        let handle = tokio::spawn(fut);
        lock(&self.tasks).push(handle.abort_handle());
        let (name, digest) = match self.graph.vertex(v) {
            Some(x) => (x.name.clone(), Some(x.digest.clone())),
            None => (String::new(), None),
        };
        async move {
            match handle.await {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(SolveError::Panicked { name, digest }),
                Err(_) => Err(SolveError::Cancelled),
            }
        }
        .boxed()
        .shared()
    }

    fn key_of(self: &Arc<Self>, v: VertexId) -> KeyFuture {
        let state = &self.vertices[v.index()];
        match state.key_ready.get() {
            Some(k) => Either::Left(ready(Ok(Arc::clone(k)))),
            None => Either::Right(
                state
                    .key
                    .get_or_init(|| self.spawn(v, Arc::clone(self).compute_key(v)))
                    .clone(),
            ),
        }
    }

    fn result_of(self: &Arc<Self>, v: VertexId) -> Memo<Arc<VertexResult>> {
        self.vertices[v.index()]
            .result
            .get_or_init(|| self.spawn(v, Arc::clone(self).compute_result(v)))
            .clone()
    }

    fn vertex_error(&self, v: VertexId, source: OpError, log_tail: Vec<String>) -> SolveError {
        match self.graph.vertex(v) {
            Some(x) => SolveError::Vertex {
                name: x.name.clone(),
                digest: x.digest.clone(),
                source,
                log_tail,
            },
            None => SolveError::UnknownVertex(v),
        }
    }

    fn storage_error(&self, v: VertexId, key: &CacheKey, source: StorageError) -> SolveError {
        SolveError::Storage {
            name: self.vertex_name(v),
            key: key.clone(),
            source,
        }
    }

    fn ignores_cache(&self, v: VertexId) -> bool {
        self.no_cache || self.graph.vertex(v).is_some_and(|x| x.ignore_cache)
    }

    /// This solve's handle on the cache-map cell of `v` shared across solves.
    fn shared_cell(&self, v: VertexId, vertex: &Vertex) -> Arc<CacheMapCell> {
        let state = &self.vertices[v.index()];
        Arc::clone(state.shared_cache_map.get_or_init(|| {
            let mut entry = self
                .shared
                .cache_maps
                .entry(vertex.digest.clone())
                .or_default();
            match entry.upgrade() {
                Some(cell) => cell,
                None => {
                    let cell = Arc::new(CacheMapCell::new());
                    *entry = Arc::downgrade(&cell);
                    cell
                }
            }
        }))
    }

    /// The future computing `v`'s cache map once across solves; owns what it needs, so
    /// a pending one can be parked and resumed later.
    fn cache_map_future(&self, v: VertexId, vertex: &Vertex) -> CacheMapFuture {
        let cell = self.shared_cell(v, vertex);
        let op = Arc::clone(&vertex.op);
        let ctx = OpCtx {
            vertex: vertex.digest.clone(),
            name: vertex.name.clone(),
        };
        async move {
            cell.get_or_try_init(|| async { op.cache_map(&ctx).await.map(Arc::new) })
                .await
                .map(Arc::clone)
        }
        .boxed()
    }

    async fn cache_map(&self, v: VertexId) -> Result<Arc<CacheMap>, SolveError> {
        let state = &self.vertices[v.index()];
        if let Some(cm) = state.cache_map.get() {
            return Ok(Arc::clone(cm));
        }
        let vertex = self.graph.vertex(v).ok_or(SolveError::UnknownVertex(v))?;
        let parked = lock(&state.parked_cache_map).take();
        let fut = parked.unwrap_or_else(|| self.cache_map_future(v, vertex));
        // A root whose cache map takes time (an image resolve) shows as a running step,
        // as in BuildKit.
        let root = vertex.inputs.is_empty();
        let started = Some(Timestamp::now());
        let mut running = Running {
            state: self,
            v,
            started,
            finished: !root,
        };
        if root {
            self.emit_vertex(v, started, None, false, String::new());
        }
        let result = fut.await;
        running.finished = true;
        let cm = match result {
            Ok(cm) => {
                if root && let Some(t) = started {
                    *lock(&state.open_since) = Some(t);
                }
                cm
            }
            Err(e) => {
                let err = self.vertex_error(v, e, Vec::new());
                self.emit_vertex(v, started, Some(Timestamp::now()), false, err.to_string());
                return Err(err);
            }
        };
        Ok(Arc::clone(state.cache_map.get_or_init(|| cm)))
    }

    /// The part of a vertex's key that needs no input results: the fast key, and when
    /// the op keys some inputs by content, a look-up of the fast key.
    fn fast_key(
        &self,
        v: VertexId,
        cm: &CacheMap,
        input_keys: &[CacheKey],
    ) -> Result<FastOutcome, SolveError> {
        let n_inputs = input_keys.len();
        let random = cm.digest.is_none() || input_keys.iter().any(CacheKey::is_random);
        let fast = (!random).then(|| {
            let mut b = KeyBuilder::new("cairn.fast.v0");
            b.str(cm.digest.as_ref().map_or("", |d| d.as_str()));
            for (i, k) in input_keys.iter().enumerate() {
                b.str(k.as_str());
                b.str(
                    cm.deps
                        .get(i)
                        .and_then(|d| d.selector.as_deref())
                        .unwrap_or(""),
                );
            }
            b.finish()
        });
        let slow_deps: Vec<usize> = (0..n_inputs)
            .filter(|i| cm.deps.get(*i).is_some_and(|d| d.compute_digest.is_some()))
            .collect();
        if slow_deps.is_empty() {
            return Ok(FastOutcome::Done(Arc::new(KeyInfo {
                canonical: fast.clone().unwrap_or_else(CacheKey::random),
                fast,
                hit: None,
            })));
        }
        if let Some(f) = &fast
            && !self.ignores_cache(v)
            && let Some(hit) = self.find_record(v, f)?
        {
            return Ok(FastOutcome::Done(Arc::new(KeyInfo {
                canonical: hit.record.canonical.clone(),
                fast,
                hit: Some(hit),
            })));
        }
        Ok(FastOutcome::NeedsContent { fast, slow_deps })
    }

    /// Computes, without spawning anything, the keys of every vertex below `target` whose
    /// cache map is ready at once and whose key needs no input results. Most ops qualify,
    /// so a big graph's keys cost a loop instead of a task per vertex; the rest is left to
    /// the async path. Iterative post-order, so depth costs no stack.
    fn precompute_keys(&self, target: VertexId) {
        let mut mark = vec![0u8; self.vertices.len()];
        let mut stack = vec![target];
        while let Some(&v) = stack.last() {
            let Some(m) = mark.get_mut(v.index()) else {
                stack.pop();
                continue;
            };
            match *m {
                0 => {
                    *m = 1;
                    if let Some(vertex) = self.graph.vertex(v) {
                        for e in &vertex.inputs {
                            if mark.get(e.vertex.index()) == Some(&0) {
                                stack.push(e.vertex);
                            }
                        }
                    }
                }
                1 => {
                    *m = 2;
                    stack.pop();
                    self.try_key_now(v);
                }
                _ => {
                    stack.pop();
                }
            }
        }
    }

    /// Starts, before this vertex's input keys are known, the inputs it keys by content
    /// that miss the cache and so run whatever this vertex's key turns out to be. Without
    /// this, a chain like a final stage's `COPY --from=a`, `COPY --from=b`, … runs stage a,
    /// then b, one after the other: each `COPY`'s key waits for the previous one's, which
    /// waits for its stage's result. A vertex whose input misses can only hit if that
    /// input's record was pruned while its own was kept; then the early start is wasted
    /// work, never a wrong result. Not done with imported caches, which often hold only a
    /// build's outputs (`mode=min`): there the output hits while its inputs miss.
    fn start_content_deps_that_must_run(self: &Arc<Self>, v: VertexId, cm: &CacheMap) {
        let Some(vertex) = self.graph.vertex(v) else {
            return;
        };
        // A vertex that ignores the cache runs, so it needs all of them.
        let runs = self.ignores_cache(v);
        if !runs && !self.imports.is_empty() {
            return;
        }
        for (dep, e) in cm.deps.iter().zip(&vertex.inputs) {
            if dep.compute_digest.is_none() {
                continue;
            }
            let u = e.vertex;
            match self.vertices.get(u.index()).and_then(|s| s.key_ready.get()) {
                Some(key) => self.start_if_it_misses(u, key, runs),
                // Its key waits on something slow (an image to resolve): decide once known.
                None => {
                    let (state, key) = (Arc::clone(self), self.key_of(u));
                    let handle = tokio::spawn(async move {
                        if let Ok(key) = key.await {
                            state.start_if_it_misses(u, &key, runs);
                        }
                    });
                    lock(&self.tasks).push(handle.abort_handle());
                }
            }
        }
    }

    fn start_if_it_misses(self: &Arc<Self>, u: VertexId, key: &KeyInfo, runs: bool) {
        let misses = runs
            || self.ignores_cache(u)
            || key.canonical.is_random()
            || (key.hit.is_none() && matches!(self.find_record(u, &key.canonical), Ok(None)));
        if misses {
            // Spawned: it runs whether or not anyone awaits this handle.
            let _running = self.result_of(u);
        }
    }

    fn try_key_now(&self, v: VertexId) {
        let (Some(state), Some(vertex)) = (self.vertices.get(v.index()), self.graph.vertex(v))
        else {
            return;
        };
        if state.key_ready.get().is_some() {
            return;
        }
        let cm = match state.cache_map.get() {
            Some(cm) => Arc::clone(cm),
            None => {
                // Another solve is computing this cache map: the async path joins it.
                if self
                    .shared
                    .cache_maps
                    .get(&vertex.digest)
                    .is_some_and(|w| w.strong_count() > 0)
                {
                    return;
                }
                let op = Arc::clone(&vertex.op);
                let ctx = OpCtx {
                    vertex: vertex.digest.clone(),
                    name: vertex.name.clone(),
                };
                let mut started: BoxFuture<'static, Result<CacheMap, OpError>> =
                    async move { op.cache_map(&ctx).await }.boxed();
                match (&mut started).now_or_never() {
                    Some(Ok(cm)) => Arc::clone(state.cache_map.get_or_init(|| Arc::new(cm))),
                    // Failed: the async path reports it (and tries once more).
                    Some(Err(_)) => return,
                    // Not ready at once (say, a manifest to resolve): share the started
                    // work with other solves and park it for the async path, so the op
                    // is not asked twice. Only such slow cache maps get a shared cell.
                    None => {
                        let cell = self.shared_cell(v, vertex);
                        let parked = async move {
                            cell.get_or_try_init(|| async move { started.await.map(Arc::new) })
                                .await
                                .map(Arc::clone)
                        }
                        .boxed();
                        *lock(&state.parked_cache_map) = Some(parked);
                        return;
                    }
                }
            }
        };
        let mut input_keys = Vec::with_capacity(vertex.inputs.len());
        for e in &vertex.inputs {
            match self
                .vertices
                .get(e.vertex.index())
                .and_then(|s| s.key_ready.get())
            {
                Some(k) => input_keys.push(k.canonical.output(e.output)),
                None => return,
            }
        }
        if let Ok(FastOutcome::Done(k)) = self.fast_key(v, &cm, &input_keys) {
            let _already_set_is_the_same_key = state.key_ready.set(k);
        }
    }

    async fn compute_key(self: Arc<Self>, v: VertexId) -> Result<Arc<KeyInfo>, SolveError> {
        let vertex = self.graph.vertex(v).ok_or(SolveError::UnknownVertex(v))?;
        let cm = self.cache_map(v).await?;
        self.start_content_deps_that_must_run(v, &cm);
        let input_keys: Vec<CacheKey> = match vertex.inputs.as_slice() {
            [] => Vec::new(),
            [e] => vec![self.key_of(e.vertex).await?.canonical.output(e.output)],
            inputs => {
                try_join_all(inputs.iter().map(|e| {
                    let memo = self.key_of(e.vertex);
                    let output = e.output;
                    async move { memo.await.map(|k| k.canonical.output(output)) }
                }))
                .await?
            }
        };
        let (fast, slow_deps) = match self.fast_key(v, &cm, &input_keys)? {
            FastOutcome::Done(k) => return Ok(k),
            FastOutcome::NeedsContent { fast, slow_deps } => (fast, slow_deps),
        };
        // The definition key missed: the key must come from the inputs' content.
        let results = try_join_all(slow_deps.iter().map(|i| {
            let e = vertex.inputs[*i];
            let memo = self.result_of(e.vertex);
            let name = self.vertex_name(e.vertex);
            async move {
                let r = memo.await?;
                output(&name, &r.outputs, e.output)
            }
        }))
        .await?;
        let mut checksums = Vec::with_capacity(slow_deps.len());
        for (i, r) in slow_deps.iter().zip(results) {
            let dep = &cm.deps[*i];
            if let Some(f) = &dep.compute_digest {
                let d = f(r, dep.selector.clone())
                    .await
                    .map_err(|e| self.vertex_error(v, e, Vec::new()))?;
                checksums.push((*i, d));
            }
        }
        let mut random = cm.digest.is_none();
        let mut b = KeyBuilder::new("cairn.slow.v0");
        b.str(cm.digest.as_ref().map_or("", |d| d.as_str()));
        for (i, k) in input_keys.iter().enumerate() {
            let selector = cm
                .deps
                .get(i)
                .and_then(|d| d.selector.as_deref())
                .unwrap_or("");
            match checksums.iter().find(|(j, _)| *j == i) {
                Some((_, d)) => b.str("content").str(d.as_str()),
                None => {
                    random |= k.is_random();
                    b.str("key").str(k.as_str())
                }
            };
            b.str(selector);
        }
        let canonical = if random {
            CacheKey::random()
        } else {
            b.finish()
        };
        Ok(Arc::new(KeyInfo {
            canonical,
            fast,
            hit: None,
        }))
    }

    /// The record of `key`: the local storage's, else the first import's that has one.
    fn find_record(&self, v: VertexId, key: &CacheKey) -> Result<Option<Hit>, SolveError> {
        if let Some(record) = self
            .shared
            .keys
            .get(key)
            .map_err(|e| self.storage_error(v, key, e))?
        {
            return Ok(Some(Hit {
                record,
                import: None,
            }));
        }
        Ok(self.imports.iter().enumerate().find_map(|(i, imp)| {
            imp.get(key).map(|record| Hit {
                record,
                import: Some(i),
            })
        }))
    }

    /// Loads the results of `hit`, falling back to the imports when the local results
    /// are gone; `None` is a miss. Results that came from an import are stored locally
    /// under the vertex's keys.
    fn load_hit(
        &self,
        v: VertexId,
        key: &KeyInfo,
        hit: Hit,
    ) -> Result<Option<Vec<ResultRef>>, SolveError> {
        let mut candidates = vec![hit];
        if candidates[0].import.is_none() {
            candidates.extend(self.imports.iter().enumerate().filter_map(|(i, imp)| {
                imp.get(&key.canonical).map(|record| Hit {
                    record,
                    import: Some(i),
                })
            }));
        }
        for c in candidates {
            let loaded = match c.import.and_then(|i| self.imports.get(i)) {
                None => self.load(v, &key.canonical, &c.record)?,
                Some(imp) => self.load_with(v, &key.canonical, &c.record, |id| imp.load(id))?,
            };
            let Some(outputs) = loaded else { continue };
            if c.import.is_some() {
                self.store(&key.canonical, key.fast.as_ref(), &outputs)
                    .map_err(|e| match e {
                        WorkError::Storage { key, source } => self.storage_error(v, &key, source),
                        WorkError::Op { source, log_tail } => {
                            self.vertex_error(v, source, log_tail)
                        }
                    })?;
            }
            return Ok(Some(outputs));
        }
        Ok(None)
    }

    /// Loads a record's results; `None` when one of them is gone (pruned): a miss.
    fn load(
        &self,
        v: VertexId,
        key: &CacheKey,
        rec: &CacheRecord,
    ) -> Result<Option<Vec<ResultRef>>, SolveError> {
        self.load_with(v, key, rec, |id| self.shared.results.load(id))
    }

    fn load_with(
        &self,
        v: VertexId,
        key: &CacheKey,
        rec: &CacheRecord,
        load: impl Fn(&str) -> Result<ResultRef, StorageError>,
    ) -> Result<Option<Vec<ResultRef>>, SolveError> {
        let mut out = Vec::with_capacity(rec.results.len());
        for id in &rec.results {
            match load(id) {
                Ok(r) => out.push(r),
                Err(StorageError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(self.storage_error(v, key, e)),
            }
        }
        Ok(Some(out))
    }

    /// Takes the open line of a root announced during its cache map, if any.
    fn take_open(&self, v: VertexId) -> Option<Timestamp> {
        self.vertices
            .get(v.index())
            .and_then(|st| lock(&st.open_since).take())
    }

    /// Closes every line still open at the end of a solve: `error` empty for done
    /// (a source whose result nobody needed because a step above it hit the cache).
    fn close_open(&self, error: &str) {
        for i in 0..self.vertices.len() {
            let v = VertexId::from_index(i);
            if let Some(t) = self.take_open(v) {
                self.emit_vertex(v, Some(t), Some(Timestamp::now()), false, error.to_owned());
            }
        }
    }

    fn emit_vertex(
        &self,
        v: VertexId,
        started: Option<Timestamp>,
        completed: Option<Timestamp>,
        cached: bool,
        error: String,
    ) {
        let (Some(tx), Some(vertex)) = (&self.progress, self.graph.vertex(v)) else {
            return;
        };
        let inputs = vertex
            .inputs
            .iter()
            .filter_map(|e| self.graph.vertex(e.vertex).map(|x| x.digest.clone()))
            .collect();
        let _ignored_when_receiver_gone = tx.send(SolveStatus {
            vertexes: vec![VertexEvent {
                digest: vertex.digest.clone(),
                inputs,
                name: vertex.name.clone(),
                started,
                completed,
                cached,
                error,
                progress_group: vertex.progress_group.clone(),
            }],
            ..SolveStatus::default()
        });
    }

    async fn compute_result(self: Arc<Self>, v: VertexId) -> Result<Arc<VertexResult>, SolveError> {
        let vertex = self.graph.vertex(v).ok_or(SolveError::UnknownVertex(v))?;
        let key = self.key_of(v).await?;
        if !self.ignores_cache(v) {
            let hit = match &key.hit {
                Some(hit) => Some(hit.clone()),
                None if !key.canonical.is_random() => self.find_record(v, &key.canonical)?,
                None => None,
            };
            if let Some(hit) = hit
                && let Some(outputs) = self.load_hit(v, &key, hit)?
            {
                let now = Some(Timestamp::now());
                let started = self.take_open(v).or(now);
                self.emit_vertex(v, started, now, true, String::new());
                return Ok(Arc::new(VertexResult {
                    outputs: Arc::new(outputs),
                    cached: true,
                }));
            }
        }
        let inputs: Vec<ResultRef> = try_join_all(vertex.inputs.iter().map(|e| {
            let memo = self.result_of(e.vertex);
            let name = self.vertex_name(e.vertex);
            let e = *e;
            async move {
                let r = memo.await?;
                output(&name, &r.outputs, e.output)
            }
        }))
        .await?;
        let _permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| SolveError::Cancelled)?;
        let started = match self.take_open(v) {
            Some(t) => Some(t),
            None => {
                let now = Some(Timestamp::now());
                self.emit_vertex(v, now, None, false, String::new());
                now
            }
        };
        let mut running = Running {
            state: self.as_ref(),
            v,
            started,
            finished: false,
        };
        let outcome = self.execute(v, &key, inputs).await;
        running.finished = true;
        let completed = Some(Timestamp::now());
        match outcome {
            Ok(outputs) => {
                self.emit_vertex(v, started, completed, false, String::new());
                Ok(Arc::new(VertexResult {
                    outputs,
                    cached: false,
                }))
            }
            Err(WorkError::Op { source, log_tail }) => {
                let err = self.vertex_error(v, source, log_tail);
                self.emit_vertex(v, started, completed, false, err.to_string());
                Err(err)
            }
            Err(WorkError::Storage { key, source }) => Err(self.storage_error(v, &key, source)),
        }
    }

    /// Runs the op once per cache key in the process and stores its results.
    async fn execute(
        self: &Arc<Self>,
        v: VertexId,
        key: &KeyInfo,
        inputs: Vec<ResultRef>,
    ) -> WorkResult {
        let vertex = self.graph.vertex(v).ok_or_else(|| WorkError::Op {
            source: OpError::failed("vertex vanished from its graph"),
            log_tail: Vec::new(),
        })?;
        let canonical = key.canonical.clone();
        let writer = self
            .shared
            .active
            .entry(canonical.clone())
            .or_default()
            .value()
            .clone();
        if let Some(tx) = &self.progress {
            writer.subscribe(tx.clone(), vertex.digest.clone());
        }
        let our_writer = writer.clone();
        let state = Arc::clone(self);
        let fast = key.fast.clone();
        let flight_key = canonical.clone();
        let outcome = self
            .shared
            .flight
            .run(flight_key, move || {
                // Made when the work is created, so even work aborted before its first
                // poll takes its progress entry with it.
                let _entry = ActiveEntry {
                    shared: Arc::clone(&state.shared),
                    key: canonical.clone(),
                    writer: writer.clone(),
                };
                async move {
                    let _entry = _entry;
                    // Work for this key may have finished between our miss and this start.
                    if !state.ignores_cache(v)
                        && !canonical.is_random()
                        && let Ok(Some(rec)) = state.shared.keys.get(&canonical)
                        && let Ok(Some(outputs)) = state.load(v, &canonical, &rec)
                    {
                        return Ok(Arc::new(outputs));
                    }
                    let out = state.run_op(v, writer.clone(), inputs).await;
                    match out {
                        Ok(outputs) => state
                            .store(&canonical, fast.as_ref(), &outputs)
                            .map(|()| outputs),
                        Err(source) => Err(WorkError::Op {
                            source,
                            log_tail: writer.tail(),
                        }),
                    }
                }
            })
            .await;
        // Joined work that had already left the map: our entry is nobody's now.
        self.shared
            .active
            .remove_if(&key.canonical, |_, w| w.same_as(&our_writer));
        match outcome {
            Ok(r) => r,
            Err(flight) => Err(WorkError::Op {
                source: OpError::other(flight),
                log_tail: Vec::new(),
            }),
        }
    }

    async fn run_op(
        &self,
        v: VertexId,
        writer: ProgressWriter,
        inputs: Vec<ResultRef>,
    ) -> Result<Arc<Vec<ResultRef>>, OpError> {
        let vertex = self
            .graph
            .vertex(v)
            .ok_or_else(|| OpError::failed("vertex vanished from its graph"))?;
        let own = self.vertices[v.index()]
            .cache_map
            .get()
            .map(|c| c.opts.clone())
            .unwrap_or_default();
        let cancel = CancellationToken::new();
        // Dropping this future (every waiter gone) cancels blocking work started by the op.
        let _cancel_on_drop = cancel.clone().drop_guard();
        let mut ctx = ExecCtx {
            vertex: vertex.digest.clone(),
            name: vertex.name.clone(),
            progress: writer,
            cancel,
            cache_opts: own,
        };
        match vertex.op.exec(&ctx, inputs.clone()).await {
            Err(OpError::NeedsRemoteProviders(digests)) => {
                let keys: Vec<String> = digests.iter().map(desc_handler_key).collect();
                let found = self.ancestor_opts(v, &keys);
                for k in found.keys() {
                    if let Some(val) = found.get(k) {
                        ctx.cache_opts.insert(k, Arc::clone(val));
                    }
                }
                vertex.op.exec(&ctx, inputs).await.map(Arc::new)
            }
            other => other.map(Arc::new),
        }
    }

    fn ancestor_opts(&self, v: VertexId, keys: &[String]) -> CacheOpts {
        let mut found = walk_ancestors(&self.graph, v, keys, |a| {
            self.vertices
                .get(a.index())
                .and_then(|s| s.cache_map.get())
                .map(|c| &c.opts)
        });
        add_import_opts(&mut found, &self.imports, keys);
        found
    }

    fn store(
        &self,
        canonical: &CacheKey,
        fast: Option<&CacheKey>,
        outputs: &[ResultRef],
    ) -> Result<(), WorkError> {
        let mut ids = Vec::with_capacity(outputs.len());
        for r in outputs {
            ids.push(
                self.shared
                    .results
                    .save(r)
                    .map_err(|source| WorkError::Storage {
                        key: canonical.clone(),
                        source,
                    })?,
            );
        }
        let record = CacheRecord {
            canonical: canonical.clone(),
            results: ids,
        };
        for k in [Some(canonical), fast].into_iter().flatten() {
            if k.is_random() {
                continue;
            }
            self.shared
                .keys
                .put(k, &record)
                .map_err(|source| WorkError::Storage {
                    key: k.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
