//! Errors of file actions. Paths are shown as the user wrote them or relative to the
//! root they were resolved in, never with the host directory in front.

use std::io;

use super::mode::BadMode;
use super::pattern::BadPattern;

#[derive(Debug, thiserror::Error)]
pub enum FileOpError {
    /// A file-system call failed on `path` (inside the action's root).
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    /// A source or a path to remove does not exist.
    #[error("{path} not found")]
    NotFound { path: String },
    /// A copy would put a file where a directory is.
    #[error("cannot replace directory {path} with a file")]
    DirWithFile { path: String },
    /// A copy would merge a directory into something that is not one.
    #[error("cannot copy to non-directory: {path}")]
    NotADirectory { path: String },
    /// An empty or otherwise unusable path.
    #[error("invalid path {path:?}")]
    InvalidPath { path: String },
    #[error(transparent)]
    Pattern(#[from] BadPattern),
    #[error(transparent)]
    Mode(#[from] BadMode),
    /// The action chain refers to an input or action that does not exist or comes later.
    #[error(
        "file action {action}: {what} index {index} is out of range (inputs: {inputs}, earlier actions: {action})"
    )]
    BadIndex {
        action: usize,
        what: &'static str,
        index: i64,
        inputs: usize,
    },
    /// The outputs of the chain are not exactly `0..k`.
    #[error("file op outputs must be numbered 0..k without gaps or duplicates, got {0:?}")]
    BadOutputs(Vec<i64>),
    /// An action without a kind (a newer BuildKit's action this version does not know).
    #[error("file action {0} has no known action type")]
    UnknownAction(usize),
    /// The action named a feature this implementation does not have.
    #[error("file action {action}: {feature} is not supported")]
    Unsupported {
        action: usize,
        feature: &'static str,
    },
    /// [`run_file_actions_in`](super::run_file_actions_in) was given a plan made for
    /// another op: (inputs, actions) it was planned for and given.
    #[error("file op planned for {planned:?} (inputs, actions), run with {given:?}")]
    PlanMismatch {
        planned: (usize, usize),
        given: (usize, usize),
    },
    /// The caller gave no directory for an action that needs one of its own.
    #[error("file action {action}: no directory was given to work in")]
    MissingDir { action: usize },
    /// The work was cancelled between files.
    #[error("file op cancelled")]
    Cancelled,
}

/// Shorthand for an I/O error on an in-root path.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<String>,
) -> impl FnOnce(io::Error) -> FileOpError {
    let path = path.into();
    move |source| FileOpError::Io { op, path, source }
}
