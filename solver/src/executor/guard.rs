//! [`RunGuard`]: the owner of everything one run created on the host.
//!
//! Whatever ends the run (exit, error, cancellation, the future being dropped, a panic)
//! the guard deletes the container with `delete --force`, unmounts what the executor
//! mounted, removes mount-point stubs the runtime created in the rootfs and removes the
//! run's directory. Cleanup is idempotent; `Drop` runs it when nobody did.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::error::ExecError;
use super::rootpath::Root;
use super::stage::stage_err;

/// Owns everything one run created on the host; see the module docs.
pub(crate) struct RunGuard {
    pub(crate) id: String,
    pub(crate) runtime: PathBuf,
    pub(crate) runc_root: PathBuf,
    pub(crate) run_dir: PathBuf,
    pub(crate) rootfs: PathBuf,
    /// Mounts the executor made itself (the secrets tmpfs), unmounted in reverse order.
    pub(crate) mounted: Vec<PathBuf>,
    /// Per mount destination: the in-root paths that did not exist before the run and
    /// the times of the directory holding the first of them.
    pub(crate) stubs: Vec<(Vec<String>, rustix::fs::Timestamps)>,
    pub(crate) done: bool,
}

impl RunGuard {
    /// The private tmpfs for secrets, mounted on first use.
    pub(crate) fn secrets_dir(&mut self) -> Result<PathBuf, ExecError> {
        let dir = self.run_dir.join("secrets");
        if self.mounted.contains(&dir) {
            return Ok(dir);
        }
        std::fs::create_dir(&dir).map_err(stage_err("secrets dir", &dir))?;
        rustix::mount::mount(
            "tmpfs",
            &dir,
            "tmpfs",
            rustix::mount::MountFlags::NOSUID
                | rustix::mount::MountFlags::NODEV
                | rustix::mount::MountFlags::NOEXEC,
            c"mode=0700,size=16m",
        )
        .map_err(|e| stage_err("secrets tmpfs", &dir)(e.into()))?;
        self.mounted.push(dir.clone());
        Ok(dir)
    }

    fn runtime_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(&self.runtime);
        c.arg("--root").arg(&self.runc_root).args(args);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    /// Sends SIGKILL to the container's processes.
    pub(crate) async fn kill(&self) {
        let mut c =
            tokio::process::Command::from(self.runtime_cmd(&["kill", "--all", &self.id, "KILL"]));
        let _ = c.output().await;
    }

    /// Idempotent teardown; every step runs even if an earlier one failed, and the
    /// first failure is reported.
    pub(crate) fn cleanup(&mut self) -> Result<(), ExecError> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let mut first: Option<ExecError> = None;
        let mut note = |e: ExecError| {
            tracing::warn!(error = %e, "executor cleanup");
            if first.is_none() {
                first = Some(e);
            }
        };
        let cleanup_err = |path: &Path, source: std::io::Error| ExecError::Cleanup {
            id: self.id.clone(),
            path: path.to_owned(),
            source,
        };

        // `delete --force` kills whatever still runs and removes cgroups and state; it
        // fails harmlessly when the container was never created.
        let _ = self.runtime_cmd(&["delete", "--force", &self.id]).output();
        let state = self.runc_root.join(&self.id);
        if state.exists()
            && let Err(e) = std::fs::remove_dir_all(&state)
        {
            note(cleanup_err(&state, e));
        }

        for m in self.mounted.drain(..).rev() {
            if let Err(e) = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH) {
                note(cleanup_err(&m, e.into()));
            }
        }

        if !self.stubs.is_empty() {
            match Root::open(&self.rootfs) {
                Ok(root) => {
                    for (paths, times) in self.stubs.iter().rev() {
                        let mut all = true;
                        for p in paths.iter().rev() {
                            match root.remove_stub(p) {
                                Ok(removed) => all &= removed,
                                Err(e) => {
                                    all = false;
                                    note(cleanup_err(&self.rootfs.join(p), e));
                                }
                            }
                        }
                        if all
                            && let Some(first_path) = paths.first()
                            && let Err(e) = root.restore_parent_times(first_path, times)
                        {
                            note(cleanup_err(&self.rootfs.join(first_path), e));
                        }
                    }
                }
                Err(e) => note(cleanup_err(&self.rootfs, e)),
            }
        }

        if self.run_dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.run_dir)
        {
            note(cleanup_err(&self.run_dir, e));
        }
        match first {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        // Reached without `finish` only when the run future was dropped or panicked.
        let _ = self.cleanup();
    }
}
