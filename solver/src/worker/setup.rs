//! Opening a worker from plain settings, so the command line needs no knowledge of the
//! cache, the snapshotter or the runtime probe.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_cache::CacheManager;
use cairn_cache::descriptor::Platform;
use cairn_cache::registry::{RegistryClient, RegistryConfig};
use cairn_cache::snapshot::{DriverChoice, Snapshotter, probe};
use futures::FutureExt;

use super::{ExecutorFactory, Worker, WorkerOptions};
use crate::engine::SolverConfig;
use crate::error::OpError;
use crate::executor::{Executor, RuncConfig, RuncExecutor};

/// Everything a worker is made from.
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    /// The state root (cache database, blobs, snapshots, executor state).
    pub root: PathBuf,
    pub snapshotter: DriverChoice,
    pub registry: RegistryConfig,
    /// OCI runtimes to try in order (names on `$PATH` or absolute paths).
    pub runtimes: Vec<PathBuf>,
    pub max_parallelism: Option<usize>,
}

/// Why a worker could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening the snapshotter in {root}")]
    Snapshotter {
        root: PathBuf,
        #[source]
        source: cairn_cache::snapshot::SnapshotError,
    },
    #[error("opening the cache in {root}")]
    Cache {
        root: PathBuf,
        #[source]
        source: cairn_cache::CacheError,
    },
    #[error("setting up the registry client")]
    Registry(#[source] cairn_cache::registry::RegistryError),
}

impl Worker {
    /// Opens the state root: probes the snapshotter, opens the cache (sweeping what an
    /// interrupted run left), and prepares (but does not yet probe) the OCI runtime.
    pub fn open(setup: WorkerSetup) -> Result<Worker, OpenError> {
        let (sn, why) =
            probe(&setup.root.join("snapshots"), setup.snapshotter).map_err(|source| {
                OpenError::Snapshotter {
                    root: setup.root.clone(),
                    source,
                }
            })?;
        tracing::debug!(driver = sn.name(), reason = %why, "snapshotter chosen");
        let sn: Arc<dyn Snapshotter> = Arc::new(sn);
        let cache = CacheManager::open(&setup.root, sn).map_err(|source| OpenError::Cache {
            root: setup.root.clone(),
            source,
        })?;
        let registry = RegistryClient::new(setup.registry).map_err(OpenError::Registry)?;
        let mut runc = RuncConfig::new(setup.root.join("executor"));
        if !setup.runtimes.is_empty() {
            runc.runtimes = setup.runtimes;
        }
        let executor: ExecutorFactory = Arc::new(move || {
            let runc = runc.clone();
            async move {
                RuncExecutor::new(runc)
                    .await
                    .map(|e| Arc::new(e) as Arc<dyn Executor>)
                    .map_err(OpError::other)
            }
            .boxed()
        });
        let mut solver = SolverConfig::default();
        if let Some(n) = setup.max_parallelism {
            solver.max_parallelism = n.max(1);
        }
        Ok(Worker::new(
            cache,
            WorkerOptions {
                registry,
                platform: Platform::host(),
                executor,
                solver,
            },
        ))
    }

    /// The name of the snapshotter in use (`overlayfs` or `native`).
    pub fn snapshotter_name(&self) -> &'static str {
        self.cache().snapshotter().name()
    }
}
