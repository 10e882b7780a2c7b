//! The plain data a caller hands to an [`super::Executor`]: what to run and what to
//! mount. Nothing here touches the host; the exec op fills these from an `ExecOp` and
//! the refs it has already mounted.

use std::fmt;
use std::path::PathBuf;

/// BuildKit's default `hostname` inside build containers (`executor/oci/spec.go`).
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// Network namespace choice, BuildKit's `NetMode` minus `UNSET` (which callers map to
/// `None`: cairn has no CNI sandbox network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetMode {
    /// A fresh network namespace with only the loopback interface, up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// One `--ulimit`, BuildKit's `pb.Ulimit` (`name` without the `RLIMIT_` prefix, e.g. `nofile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// An `--add-host` entry written into the container's `/etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIp {
    pub host: String,
    pub ip: String,
}

/// The process to start (BuildKit's `executor.Meta`).
#[derive(Debug, Clone)]
pub struct ExecMeta {
    /// `argv`; must not be empty.
    pub args: Vec<String>,
    /// The final environment, `K=V`. Build it with [`super::merge_env`], which also adds
    /// the default `PATH`; the executor passes it through unchanged.
    pub env: Vec<String>,
    /// Absolute working directory; created in the rootfs, owned by the user, if missing.
    pub cwd: String,
    /// `""`, `name`, `uid`, `name:group`, `uid:gid`, resolved through the rootfs's
    /// `/etc/passwd` and `/etc/group`.
    pub user: String,
    /// `None` means [`DEFAULT_HOSTNAME`].
    pub hostname: Option<String>,
    pub network: NetMode,
    pub extra_hosts: Vec<HostIp>,
    /// Empty: the process inherits the runtime's limits, as in BuildKit.
    pub ulimits: Vec<Ulimit>,
    /// Exit codes that count as success; empty means only `0` (ExecOp `validExitCodes`).
    pub valid_exit_codes: Vec<i32>,
}

impl ExecMeta {
    /// A process with BuildKit's defaults: cwd `/`, user root, no network.
    pub fn new(args: Vec<String>) -> ExecMeta {
        ExecMeta {
            args,
            env: super::env::merge_env(&[], &[]),
            cwd: "/".to_owned(),
            user: String::new(),
            hostname: None,
            network: NetMode::None,
            extra_hosts: Vec::new(),
            ulimits: Vec::new(),
            valid_exit_codes: Vec::new(),
        }
    }

    /// Whether `code` counts as success.
    pub fn accepts(&self, code: i32) -> bool {
        if self.valid_exit_codes.is_empty() {
            code == 0
        } else {
            self.valid_exit_codes.contains(&code)
        }
    }
}

/// A secret's bytes and how the file showing them is owned. The bytes never reach disk
/// outside a private tmpfs, and the `Debug` output never shows them.
#[derive(Clone)]
pub struct SecretFile {
    pub data: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits; BuildKit's default is `0o400`.
    pub mode: u32,
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFile")
            .field("len", &self.data.len())
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// What backs one extra mount.
#[derive(Debug, Clone)]
pub enum MountKind {
    /// A host directory or file the caller has already made available (a mounted ref,
    /// a cache-mount directory).
    Bind { src: PathBuf, readonly: bool },
    /// A fresh tmpfs; `size` in bytes, `None` for the kernel's default.
    Tmpfs { size: Option<u64> },
    /// A read-only file holding a secret, staged by the executor and removed after.
    Secret(SecretFile),
}

/// One extra mount at an absolute path inside the container.
#[derive(Debug, Clone)]
pub struct ExecMount {
    pub dest: String,
    pub kind: MountKind,
}

/// Everything one [`super::Executor::run`] needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The root file system, already mounted read-write by the caller (see the module
    /// docs for the sequence).
    pub rootfs: PathBuf,
    pub meta: ExecMeta,
    pub mounts: Vec<ExecMount>,
}

/// How a successful run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The process's exit code (`128 + signal` when killed by a signal), one of the
    /// accepted codes.
    pub code: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_zero_is_accepted_by_default() {
        let mut m = ExecMeta::new(vec!["true".into()]);
        assert!(m.accepts(0));
        assert!(!m.accepts(1));
        m.valid_exit_codes = vec![1, 2];
        assert!(!m.accepts(0));
        assert!(m.accepts(2));
    }

    #[test]
    fn secret_debug_hides_bytes() {
        let s = SecretFile {
            data: b"hunter2".to_vec(),
            uid: 0,
            gid: 0,
            mode: 0o400,
        };
        let d = format!("{s:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("400"), "{d}");
    }
}
