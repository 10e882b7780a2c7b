//! [`RuncExecutor`]: runs each step with the `runc` (or `crun`) binary.
//!
//! Layout under the configured state dir (inside cairn's state root, never elsewhere):
//!
//! ```text
//! runc/                runtime state (`--root`), one entry per live container
//! runs/<id>/           per run: config.json, hosts, resolv.conf
//! runs/<id>/secrets/   a private tmpfs holding secret files, unmounted after the run
//! ```
//!
//! Every run owns a [`RunGuard`] from the moment its directory exists, so whatever ends
//! it leaves none of this behind.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::Executor;
use super::error::ExecError;
use super::guard::RunGuard;
use super::output::{OutputSink, Tail, pump};
use super::request::{ExitStatus, RunRequest};
use super::runtime::{Runtime, probe};
use super::stage::{stage, validate};
use crate::progress::Stream;

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A number unique within this process, for container ids.
pub(crate) fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// Whether `/sys/fs/cgroup` is a pure cgroup v2 mount (then a cgroup namespace is used).
pub(crate) fn cgroup2_unified() -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    // `f_type` is i64 on x86_64 but narrower on other architectures.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs("/sys/fs/cgroup").is_ok_and(|s| s.f_type as i64 == CGROUP2_SUPER_MAGIC)
}

/// Settings for [`RuncExecutor`].
#[derive(Debug, Clone)]
pub struct RuncConfig {
    /// Runtime names or paths to try, in order; the first that runs a trivial container
    /// is used. Default: `runc`, then `crun`.
    pub runtimes: Vec<PathBuf>,
    /// Directory for bundles and runtime state; created if missing.
    pub state_dir: PathBuf,
    /// Containers get the cgroup `/<cgroup_parent>/<id>`.
    pub cgroup_parent: String,
    /// On by default, as cairn's exec contract asks: a build step cannot gain privileges
    /// through setuid binaries. BuildKit leaves it off (`WithNewPrivileges`) so `su` and
    /// `sudo` work in `RUN`; turn it off for Dockerfiles that need that.
    pub no_new_privileges: bool,
    /// The host's resolver configuration the container's is derived from.
    pub host_resolv_conf: PathBuf,
    /// How many output lines a failure message quotes.
    pub tail_lines: usize,
}

impl RuncConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> RuncConfig {
        RuncConfig {
            runtimes: vec!["runc".into(), "crun".into()],
            state_dir: state_dir.into(),
            cgroup_parent: "cairn".into(),
            no_new_privileges: true,
            host_resolv_conf: "/etc/resolv.conf".into(),
            tail_lines: 20,
        }
    }
}

/// Runs processes in containers through an OCI runtime binary. Cheap to share behind an
/// `Arc`; runs may overlap freely.
#[derive(Debug)]
pub struct RuncExecutor {
    config: RuncConfig,
    runtime: Runtime,
}

impl RuncExecutor {
    /// Probes the configured runtimes and prepares the state dir.
    pub async fn new(config: RuncConfig) -> Result<RuncExecutor, ExecError> {
        for sub in ["runc", "runs", "probe"] {
            let p = config.state_dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|source| ExecError::Stage {
                what: "executor state dir",
                path: p.clone(),
                source,
            })?;
        }
        let runtime = probe(
            &config.runtimes,
            &config.state_dir.join("probe"),
            &config.cgroup_parent,
        )
        .await?;
        Ok(RuncExecutor { config, runtime })
    }

    /// The runtime the probe chose.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn runc_root(&self) -> PathBuf {
        self.config.state_dir.join("runc")
    }

    async fn run_inner(
        &self,
        req: RunRequest,
        output: OutputSink,
        cancel: CancellationToken,
    ) -> Result<ExitStatus, ExecError> {
        validate(&req)?;
        let id = format!("cairn-{}-{}", std::process::id(), next_seq());
        let guard = RunGuard {
            id: id.clone(),
            runtime: self.runtime.path.clone(),
            runc_root: self.runc_root(),
            run_dir: self.config.state_dir.join("runs").join(&id),
            rootfs: req.rootfs.clone(),
            mounted: Vec::new(),
            stubs: Vec::new(),
            done: false,
        };
        let args = req.meta.args.clone();
        let valid = req.meta.clone();

        // Staging touches the rootfs and writes a few files: one blocking task. If this
        // future is dropped meanwhile the task still finishes, and dropping its result
        // runs the guard.
        let cfg = self.config.clone();
        let (guard, stage_res) = tokio::task::spawn_blocking(move || {
            let mut guard = guard;
            let r = stage(&cfg, &req, &mut guard);
            (guard, r)
        })
        .await
        .map_err(|e| ExecError::Task {
            stage: "staging",
            id: id.clone(),
            reason: e.to_string(),
        })?;
        if let Err(e) = stage_res {
            finish(guard).await?;
            return Err(e);
        }

        if cancel.is_cancelled() {
            finish(guard).await?;
            return Err(ExecError::Cancelled { args });
        }
        let spawned = tokio::process::Command::new(&self.runtime.path)
            .arg("--root")
            .arg(&guard.runc_root)
            .arg("run")
            .arg("--bundle")
            .arg(&guard.run_dir)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(source) => {
                let rt = self.runtime.path.clone();
                finish(guard).await?;
                return Err(ExecError::Spawn {
                    runtime: rt,
                    action: "run",
                    source,
                });
            }
        };
        let tail = Arc::new(Mutex::new(Tail::new(self.config.tail_lines)));
        let mut pumps = Vec::new();
        if let Some(out) = child.stdout.take() {
            pumps.push(tokio::spawn(pump(
                out,
                Stream::Stdout,
                output.clone(),
                tail.clone(),
            )));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(tokio::spawn(pump(
                err,
                Stream::Stderr,
                output.clone(),
                tail.clone(),
            )));
        }

        let waited = tokio::select! {
            st = child.wait() => Some(st),
            () = cancel.cancelled() => None,
        };
        let status = match waited {
            Some(st) => st,
            None => {
                tracing::debug!(container = %id, "cancelled, killing");
                guard.kill().await;
                // `run` returns once the container's init is gone.
                let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                let _ = child.start_kill();
                for p in pumps {
                    p.abort();
                }
                finish(guard).await?;
                return Err(ExecError::Cancelled { args });
            }
        };
        // Init exiting ends the pid namespace, so the pipes close; a bounded wait guards
        // against a runtime that leaves a writer behind.
        for p in pumps {
            let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
        }
        finish(guard).await?;
        let status = status.map_err(|source| ExecError::Spawn {
            runtime: self.runtime.path.clone(),
            action: "run (wait)",
            source,
        })?;
        let code = match (
            status.code(),
            std::os::unix::process::ExitStatusExt::signal(&status),
        ) {
            (Some(c), _) => c,
            (None, Some(sig)) => 128 + sig,
            (None, None) => -1,
        };
        if valid.accepts(code) {
            Ok(ExitStatus { code })
        } else {
            let tail = tail.lock().map(|mut t| t.finish()).unwrap_or_default();
            Err(ExecError::ExitCode { args, code, tail })
        }
    }
}

impl Executor for RuncExecutor {
    fn run<'a>(
        &'a self,
        req: RunRequest,
        output: OutputSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<ExitStatus, ExecError>> {
        Box::pin(self.run_inner(req, output, cancel))
    }
}

/// Runs the guard's cleanup in a blocking task and reports its first failure.
async fn finish(guard: RunGuard) -> Result<(), ExecError> {
    let id = guard.id.clone();
    match tokio::task::spawn_blocking(move || {
        let mut g = guard;
        g.cleanup()
    })
    .await
    {
        Ok(r) => r,
        Err(e) => Err(ExecError::Task {
            stage: "cleanup",
            id,
            reason: e.to_string(),
        }),
    }
}
