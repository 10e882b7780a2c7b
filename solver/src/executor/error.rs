//! What can go wrong while running a process in a container, each variant naming the
//! path, user or command it concerns so a failed `RUN` can be told apart from a broken
//! host set-up.

use std::io;
use std::path::PathBuf;

/// Failure of [`super::Executor::run`] or of the runtime probe.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No candidate runtime could run a trivial container on this host.
    #[error("no working OCI runtime found (tried {tried}): {reasons}")]
    NoRuntime { tried: String, reasons: String },
    /// Starting or talking to the runtime binary failed.
    #[error("running {runtime} {action}")]
    Spawn {
        runtime: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// A file or directory the executor stages (bundle, hosts, secrets) could not be written.
    #[error("preparing {what} at {path}")]
    Stage {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The runtime spec could not be built (an invalid value reached a builder).
    #[error("building the OCI runtime spec: {0}")]
    Spec(String),
    /// The user string names a user or group the rootfs does not know.
    #[error("resolving user {user:?} in {rootfs}: {reason}")]
    User {
        user: String,
        rootfs: PathBuf,
        reason: String,
    },
    /// A path inside the rootfs (cwd, a mount stub) could not be created or inspected.
    #[error("path {path:?} inside rootfs {rootfs}")]
    RootfsPath {
        path: String,
        rootfs: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The request itself is unusable (empty args, relative mount destination, ...).
    #[error("invalid exec request: {0}")]
    Invalid(String),
    /// The process ran and exited with a code outside the accepted list.
    #[error("process {args:?} did not complete successfully: exit code {code}{}", tail_suffix(.tail))]
    ExitCode {
        args: Vec<String>,
        code: i32,
        /// The last lines the process wrote to stdout and stderr, oldest first.
        tail: Vec<String>,
    },
    /// The cancellation token fired; the container was killed and everything removed.
    #[error("process {args:?} was cancelled")]
    Cancelled { args: Vec<String> },
    /// A blocking task of the executor (staging, cleanup) panicked; its guard still
    /// cleaned up what it had made.
    #[error("executor {stage} task for container {id} failed: {reason}")]
    Task {
        stage: &'static str,
        id: String,
        reason: String,
    },
    /// Tearing the run down failed; something may be left at `path`.
    #[error("cleaning up after container {id} ({path})")]
    Cleanup {
        id: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn tail_suffix(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n{}", tail.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_message_carries_the_tail() {
        let e = ExecError::ExitCode {
            args: vec!["sh".into(), "-c".into(), "false".into()],
            code: 3,
            tail: vec!["a".into(), "b".into()],
        };
        let s = e.to_string();
        assert!(s.contains("exit code 3"), "{s}");
        assert!(s.ends_with("\na\nb"), "{s}");
    }
}
