//! The executor: runs one process in a container over a rootfs the caller has mounted.
//!
//! The exec op drives it like this (BuildKit's `llbsolver/ops/exec.go`):
//!
//! 1. ask the cache for a writable snapshot on top of the root input and mount it
//!    (`Snapshotter::prepare` → `Mounts::mount_at` → a guard that unmounts on drop);
//!    mount the other inputs' refs and cache-mount dirs the same way;
//! 2. build a [`RunRequest`] with the rootfs path and [`ExecMount`]s pointing at those
//!    host paths, and call [`Executor::run`];
//! 3. drop the mount guards, then commit the writable snapshot as the step's result.
//!
//! The executor never mounts or commits snapshots itself, so it does not depend on how
//! they are stored (the solver must not depend on `cairn-snapshot`). It does create the
//! working directory in the rootfs and removes again any mount-point stubs the runtime
//! had to create there, so the committed layer holds only what the process wrote.

mod env;
mod error;
mod guard;
mod hostfiles;
mod output;
mod request;
mod rootpath;
mod runc;
mod runtime;
mod spec;
mod stage;
mod user;

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

pub use env::{DEFAULT_PATH, merge_env};
pub use error::ExecError;
pub use hostfiles::{hosts_file, resolv_conf};
pub use output::{OutputSink, channel_output, discard_output};
pub use request::{
    DEFAULT_HOSTNAME, ExecMeta, ExecMount, ExitStatus, HostIp, MountKind, NetMode, RunRequest,
    SecretFile, Ulimit,
};
pub use runc::{RuncConfig, RuncExecutor};
pub use runtime::{Runtime, RuntimeKind};
pub use spec::DEFAULT_CAPS;
pub use user::{Identity, resolve_user};

/// Runs one process in an isolated container.
///
/// Contract:
/// 1. **Caller**: the exec op, once per cache miss, after mounting the rootfs read-write
///    at `req.rootfs` and every [`MountKind::Bind`] source; those stay mounted until
///    `run` returns or its future is dropped.
/// 2. **Before**: the rootfs is a directory the caller owns exclusively for this run.
///    `req.meta.env` is final (see [`merge_env`]).
/// 3. **After success** (`Ok`, exit code among `valid_exit_codes`): the rootfs holds
///    the process's writes plus the working directory if it had to be created; nothing
///    else (mount-point stubs are removed, the parent directory times restored).
/// 4. **After any outcome** (success, [`ExecError::ExitCode`], [`ExecError::Cancelled`],
///    a failed start, the future dropped, a panic): no container process is alive, no
///    mount made by the executor remains, and neither the runtime's state nor the
///    bundle is left on disk. The caller's own mounts are untouched.
/// 5. **Cancellation**: when `cancel` fires, the container is killed, cleaned up as in 4
///    and `run` returns [`ExecError::Cancelled`]. Dropping the future has the same effect
///    except for the return value.
/// 6. **Concurrency**: `run` may be called concurrently on one executor; each run gets its
///    own container id, cgroup and state.
/// 7. **Output**: stdout and stderr chunks reach `output` as they are produced, in order
///    per stream; the last lines are quoted in [`ExecError::ExitCode`].
pub trait Executor: Send + Sync {
    fn run<'a>(
        &'a self,
        req: RunRequest,
        output: OutputSink,
        cancel: CancellationToken,
    ) -> BoxFuture<'a, Result<ExitStatus, ExecError>>;
}
