//! The worker: the ops of an LLB graph implemented on the cache (refs, snapshots, lazy
//! image layers), the container executor and the registry client. The engine schedules;
//! the worker does the work of each vertex.
//!
//! One [`Worker`] serves one state root in one process. A [`Session`] carries what a
//! single build brings from the client side: its local directories and its secrets.

mod context_copy;
mod diff;
mod exec;
mod export;
mod file;
mod handlers;
mod image;
mod local;
mod merge;
mod mount;
mod remote_cache;
mod result;
mod setup;
mod stat_cache;
mod store;
mod usage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_cache::CacheManager;
use cairn_cache::descriptor::Platform;
use cairn_cache::reference::Reference;
use cairn_cache::registry::{RegistryClient, ResolvedImage};
use cairn_llb::Graph;
use cairn_llb::definition::LoadedOp;
use cairn_llb::pb::OpKind;
use dashmap::DashMap;
use tokio::sync::OnceCell;

use crate::engine::{SolveOptions, SolveOutput, Solver, SolverConfig};
use crate::error::{OpError, SolveError};
use crate::executor::Executor;
use crate::graph::VertexGraph;
use crate::load::{LoadError, load_llb};
use crate::op::Op;

pub use cairn_cache::remote::{CacheLocation, RemoteCacheError};
pub use cairn_cache::snapshot::Compression as LayerCompression;
pub use export::{ExportFailure, ImageMeta};
pub use remote_cache::{CacheExportError, CacheExportReport, CacheExportSpec, CacheMode};
pub use result::WorkerRef;

/// What callers of the worker need from the layers below, so they depend on the solver
/// alone (the CLI must not reach into the cache).
pub use cairn_cache::descriptor::Platform as ImagePlatform;
pub use cairn_cache::export::{BaseConfig, ConfigChanges, ExportResponse, HistoryEntry};
pub use cairn_cache::registry::{HostConfig, RegistryConfig};
pub use cairn_cache::snapshot::DriverChoice;
pub use setup::{OpenError, WorkerSetup};
pub use store::DbStore;
pub use usage::{PruneRequest, PruneSummary, UsageEntry, UsageReport};

/// Makes the executor the first time an exec needs one (probing the OCI runtime costs a
/// container start, which builds without `RUN` never pay).
pub type ExecutorFactory = Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Result<Arc<dyn Executor>, OpError>>
        + Send
        + Sync,
>;

/// What one build brings along besides its graph.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// `local://NAME` sources: the host directory each name stands for.
    pub locals: HashMap<String, PathBuf>,
    /// `--secret id=…`: the bytes of each secret by id.
    pub secrets: HashMap<String, Vec<u8>>,
}

impl Session {
    /// A secret's bytes, never logged.
    pub(crate) fn secret(&self, id: &str) -> Option<&[u8]> {
        self.secrets.get(id).map(Vec::as_slice)
    }
}

/// Shared state of the worker, handed to every op it makes.
pub(crate) struct Inner {
    pub(crate) cache: CacheManager,
    pub(crate) registry: RegistryClient,
    pub(crate) platform: Platform,
    executor_factory: ExecutorFactory,
    executor: OnceCell<Arc<dyn Executor>>,
    /// Image resolutions of this worker by `reference|platform`: a name is resolved once
    /// per build, so every stage that uses it sees one digest.
    images: DashMap<String, Arc<OnceCell<Arc<ResolvedImage>>>>,
    /// Where ops mount refs (inside the state root, so mounts never cross file systems).
    pub(crate) mount_root: PathBuf,
    /// `RUN --mount=type=cache` directories by id.
    pub(crate) cache_mount_root: PathBuf,
}

impl Inner {
    pub(crate) async fn executor(&self) -> Result<Arc<dyn Executor>, OpError> {
        self.executor
            .get_or_try_init(|| (self.executor_factory)())
            .await
            .cloned()
    }

    /// Resolves `reference` for `platform` once per worker.
    pub(crate) async fn resolve(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Arc<ResolvedImage>, OpError> {
        let key = format!("{reference}|{}", platform.to_spec());
        let cell = Arc::clone(
            self.images
                .entry(key)
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .value(),
        );
        cell.get_or_try_init(|| async {
            self.registry
                .resolve(reference, platform)
                .await
                .map(Arc::new)
                .map_err(OpError::other)
        })
        .await
        .cloned()
    }
}

/// Builds LLB graphs on one state root.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
    solver: Solver,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("cache", &self.inner.cache)
            .field("platform", &self.inner.platform)
            .finish_non_exhaustive()
    }
}

/// How to make a [`Worker`].
pub struct WorkerOptions {
    pub registry: RegistryClient,
    /// The platform images are pulled for and results are labelled with.
    pub platform: Platform,
    pub executor: ExecutorFactory,
    pub solver: SolverConfig,
}

impl Worker {
    /// A worker on `cache` (opened by the caller on the state root).
    pub fn new(cache: CacheManager, opts: WorkerOptions) -> Worker {
        let root = cache.root().to_path_buf();
        let inner = Arc::new(Inner {
            registry: opts.registry,
            platform: opts.platform,
            executor_factory: opts.executor,
            executor: OnceCell::new(),
            images: DashMap::new(),
            mount_root: root.join("mounts"),
            cache_mount_root: root.join("cache-mounts"),
            cache: cache.clone(),
        });
        let store = DbStore::new(cache);
        let solver = Solver::new(store.clone(), store, opts.solver);
        Worker { inner, solver }
    }

    pub fn cache(&self) -> &CacheManager {
        &self.inner.cache
    }

    pub fn registry(&self) -> &RegistryClient {
        &self.inner.registry
    }

    pub fn platform(&self) -> &Platform {
        &self.inner.platform
    }

    /// Resolves an image once per worker (what a frontend's image-config lookup uses, so
    /// the conversion and the build agree on the digest).
    pub async fn resolve_image(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Arc<ResolvedImage>, OpError> {
        self.inner.resolve(reference, platform).await
    }

    /// A base image's manifest digest and config, resolved once per worker: what a
    /// frontend needs to convert `FROM name` (the build then pins the same digest).
    pub async fn image_info(
        &self,
        name: &str,
        platform: Option<&cairn_llb::pb::Platform>,
    ) -> Result<ImageInfo, OpError> {
        let reference = Reference::parse(name)
            .map_err(|e| OpError::failed(format!("bad image reference {name:?}: {e}")))?;
        let platform = platform.map_or_else(
            || self.inner.platform.clone(),
            |p| {
                let mut out = Platform::new(p.os.clone(), p.architecture.clone());
                out.variant = (!p.variant.is_empty()).then(|| p.variant.clone());
                out
            },
        );
        let img = self.inner.resolve(&reference, &platform).await?;
        Ok(ImageInfo {
            digest: img.digest.to_string(),
            config: img.config.to_vec(),
        })
    }

    /// The vertex graph of `graph` with this worker's ops, bound to `session`.
    pub fn load(
        &self,
        graph: &Graph,
        session: &Arc<Session>,
    ) -> Result<(VertexGraph, crate::graph::Edge), LoadError> {
        load_llb(graph, |op| self.make_op(op, session))
    }

    /// Loads and solves `graph`; the result is a [`WorkerRef`] inside the output.
    pub async fn solve(
        &self,
        graph: &Graph,
        session: Arc<Session>,
        opts: SolveOptions,
    ) -> Result<SolveOutput, WorkerError> {
        let (vg, edge) = self.load(graph, &session)?;
        Ok(self.solver.solve(Arc::new(vg), edge, opts).await?)
    }

    fn make_op(&self, op: &LoadedOp, session: &Arc<Session>) -> Result<Arc<dyn Op>, OpError> {
        let inner = Arc::clone(&self.inner);
        let platform = op
            .op()
            .platform
            .as_ref()
            .map(|p| {
                let mut out = Platform::new(p.os.clone(), p.architecture.clone());
                out.variant = (!p.variant.is_empty()).then(|| p.variant.clone());
                out
            })
            .unwrap_or_else(|| self.inner.platform.clone());
        match &op.op().op {
            Some(OpKind::Source(src)) => {
                let id = src.identifier.as_str();
                if let Some(name) = id.strip_prefix("docker-image://") {
                    Ok(Arc::new(image::ImageSourceOp::new(
                        inner, op, name, platform,
                    )?))
                } else if let Some(name) = id.strip_prefix("local://") {
                    let dir = session.locals.get(name).ok_or_else(|| {
                        OpError::failed(format!(
                            "local source {name:?} was not given a directory (known: {})",
                            known(session.locals.keys())
                        ))
                    })?;
                    Ok(Arc::new(local::LocalSourceOp::new(inner, op, name, dir)?))
                } else {
                    let scheme = id.split_once("://").map_or(id, |(s, _)| s);
                    Err(OpError::failed(format!(
                        "source {id:?}: the {scheme:?} source kind is not supported yet \
                         (supported: docker-image://, local://)"
                    )))
                }
            }
            Some(OpKind::Exec(_)) => {
                Ok(Arc::new(exec::ExecOp::new(inner, op, Arc::clone(session))?))
            }
            Some(OpKind::File(_)) => Ok(Arc::new(file::FileOp::new(inner, op)?)),
            Some(OpKind::Merge(_)) => Ok(Arc::new(merge::MergeOp::new(inner, op)?)),
            Some(OpKind::Diff(_)) => Ok(Arc::new(diff::DiffOp::new(inner, op)?)),
            Some(other) => Err(OpError::failed(format!(
                "{} ops are not supported yet",
                other.name()
            ))),
            None => Err(OpError::failed("op has no kind")),
        }
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let mut v: Vec<&str> = names.map(String::as_str).collect();
    v.sort_unstable();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A resolved base image as a frontend sees it.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    /// The manifest digest (`sha256:…`).
    pub digest: String,
    /// The image config JSON as the registry served it.
    pub config: Vec<u8>,
}

/// Why a worker solve failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Solve(#[from] SolveError),
}
