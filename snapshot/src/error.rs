//! Errors at the crate boundary. Each variant names the entry, path or snapshot it is about,
//! so a user reading `cairn build` output can tell which layer entry or directory failed.

use std::io;
use std::path::PathBuf;

/// Why a layer tar could not be applied. Entry names are the names as found in the tar.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("reading layer stream")]
    Read(#[source] io::Error),
    #[error("malformed tar entry {entry:?}")]
    BadEntry {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("tar entry {entry:?} has a `..` component; refusing to write outside the layer")]
    DotDot { entry: String },
    #[error(
        "tar entry {entry:?} resolves outside the layer directory (through a symlink or an absolute path)"
    )]
    Escapes { entry: String },
    #[error("hard link {entry:?} points at {target:?}, which is outside the layer or missing")]
    BadHardlink { entry: String, target: String },
    #[error("tar entry {entry:?} has unsupported type {kind:?}")]
    UnsupportedType { entry: String, kind: String },
    #[error("writing tar entry {entry:?} under {dest}")]
    Write {
        entry: String,
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("opening layer destination {dest}")]
    Dest {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer apply into {dest} cancelled")]
    Cancelled { dest: PathBuf },
}

/// Errors of the snapshotter, diff, merge and layer writing.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "invalid snapshot id {0:?} (expected 1-128 chars of [A-Za-z0-9._-], not starting with '.')"
    )]
    BadId(String),
    #[error("snapshot {0:?} does not exist")]
    NotFound(String),
    #[error("snapshot {0:?} already exists")]
    Exists(String),
    #[error("snapshot {id:?} is {actual}, expected {expected}")]
    WrongKind {
        id: String,
        actual: &'static str,
        expected: &'static str,
    },
    #[error("snapshot metadata {path} is corrupt: {reason}")]
    BadMeta { path: PathBuf, reason: String },
    #[error("{op} on {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("mounting {fstype} at {target}")]
    Mount {
        fstype: &'static str,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unmounting {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("applying layer")]
    Apply(#[from] ApplyError),
    #[error("writing layer tar for entry {path}")]
    WriteLayer {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("operation cancelled")]
    Cancelled,
    #[error("{what} is not supported by the {driver} snapshotter")]
    Unsupported {
        driver: &'static str,
        what: &'static str,
    },
    #[error("uid/gid {id} of {path} has no mapping in the id map")]
    Unmapped { path: PathBuf, id: u32 },
    #[error("creating a user namespace to carry id map {map}")]
    UserNamespace {
        map: String,
        #[source]
        source: io::Error,
    },
    #[error("ID-mapped mount of {path} ({step})")]
    IdmappedMount {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SnapshotError {
    /// Shorthand for the common I/O case, keeping the path that failed.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> SnapshotError {
        let path = path.into();
        move |source| SnapshotError::Io { op, path, source }
    }
}
