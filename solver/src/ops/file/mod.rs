//! FileOp actions executed on plain directories: mkdir, mkfile, rm, symlink and copy,
//! with BuildKit's semantics (`solver/llbsolver/file/`, fsutil's `copy`), every path
//! resolved inside its root so no symlink leads out of it.
//!
//! The functions are blocking; run them in a blocking task. Copies check a
//! cancellation token between files.

pub mod actions;
pub mod chain;
pub mod copy;
mod copy_jobs;
pub mod error;
pub mod hashes;
pub mod mode;
pub mod op;
pub mod pattern;
pub mod root;
pub(crate) mod sys;
pub mod unpack;
pub mod user;

pub use actions::{mkdir, mkfile, resolve_wildcards, rm, symlink};
pub use chain::{
    BasePlan, BaseSource, Plan, clone_tree, fill_tree, plan_bases, run_file_actions,
    run_file_actions_in,
};
pub use copy::copy;
pub use error::FileOpError;
pub use hashes::{FileHashes, NoHashes};
pub use op::{DirFileOp, DirResult};
pub use root::{root_path, root_path_nofollow};
pub use user::{Owner, resolve_owner};

#[cfg(test)]
mod tests;
