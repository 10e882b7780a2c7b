//! A builder for LLB graphs in the spirit of BuildKit's Go `llb.State`.
//!
//! A [`State`] is an immutable value: a file-system result (or scratch) plus the process
//! settings (env, cwd, user, network, platform…) that the next `run` inherits. Every op
//! is marshalled the moment it is created, so its digest is known and equal inputs are
//! deduplicated exactly as the Go client does; metadata (names, ignore-cache, progress
//! groups) is kept beside the op because it is not part of any digest.
//! [`State::marshal`] produces a [`Definition`](crate::Definition) whose bytes match
//! what BuildKit's Go client emits for the same graph.

mod exec;
mod file;
mod marshal;
mod source;
mod state;

pub use exec::{BindOptions, ExecState, Run, SecretOptions, SshOptions};
pub use file::{
    ChownSpec, CopyOptions, FileActions, MkdirOptions, MkfileOptions, RmOptions, SymlinkOptions,
    UserSpec,
};
pub use source::{ImageOptions, LocalOptions, ResolveMode, image, image_with, local, source};
pub use state::{State, diff, merge, scratch};

/// Capability and description keys the builder writes (BuildKit's `solver/pb/caps.go`).
pub(crate) mod caps {
    pub const CONSTRAINTS: &str = "constraints";
    pub const PLATFORM: &str = "platform";
    pub const META_IGNORE_CACHE: &str = "meta.ignorecache";
    pub const META_DESCRIPTION: &str = "meta.description";
    pub const META_EXPORT_CACHE: &str = "meta.exportcache";
    pub const CUSTOM_NAME: &str = "llb.customname";
}
