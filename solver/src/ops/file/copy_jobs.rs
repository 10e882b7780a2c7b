//! The regular files of a copy, copied on several threads once the tree's directories
//! exist: a large `COPY` is bound by per-file system calls, which run in parallel in the
//! kernel. The copier queues a job per file (its owner, mode and times already decided),
//! and runs the queue before anything that depends on the files being there: directory
//! times, and the next source of the action.

use std::fs::File;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags, Timestamps};
use tokio_util::sync::CancellationToken;

use super::error::{FileOpError, io_err};
use super::sys;
use super::user::Owner;

/// Below this many files, threads cost more than they save.
const PARALLEL_FROM: usize = 32;

/// One regular file to copy, with everything about its target decided.
pub(super) struct FileJob {
    pub(super) src: PathBuf,
    pub(super) target: PathBuf,
    /// How the target is named in errors (relative to the destination root).
    pub(super) shown: String,
    pub(super) owner: Owner,
    pub(super) mode: u32,
    pub(super) times: Timestamps,
}

/// Runs `jobs`, on several threads when there are enough; the first error stops the rest.
pub(super) fn run(jobs: &[FileJob], cancel: &CancellationToken) -> Result<(), FileOpError> {
    if jobs.len() < PARALLEL_FROM {
        return jobs.iter().try_for_each(|j| copy_one(j, cancel));
    }
    crate::parallel::try_for_each(jobs, |j, _: &mut Vec<()>| copy_one(j, cancel)).map(drop)
}

/// Creates the target (it must not exist), copies the bytes, then sets owner, mode (after
/// the owner: a chown clears setuid and setgid), times and extended attributes, all on
/// the open descriptors.
fn copy_one(j: &FileJob, cancel: &CancellationToken) -> Result<(), FileOpError> {
    if cancel.is_cancelled() {
        return Err(FileOpError::Cancelled);
    }
    let src = rustix::fs::open(
        &j.src,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("copy", j.shown.clone())(e.into()))?;
    let dst = rustix::fs::open(
        &j.target,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(j.mode & 0o777),
    )
    .map_err(|e| io_err("copy", j.shown.clone())(e.into()))?;
    let (mut src, mut dst) = (File::from(src), File::from(dst));
    sys::copy_bytes(&mut src, &mut dst).map_err(io_err("copy", j.shown.clone()))?;
    rustix::fs::fchown(
        &dst,
        Some(rustix::fs::Uid::from_raw(j.owner.uid)),
        Some(rustix::fs::Gid::from_raw(j.owner.gid)),
    )
    .map_err(|e| io_err("chown", j.shown.clone())(e.into()))?;
    rustix::fs::fchmod(&dst, Mode::from_raw_mode(j.mode & 0o7777))
        .map_err(|e| io_err("chmod", j.shown.clone())(e.into()))?;
    rustix::fs::futimens(&dst, &j.times)
        .map_err(|e| io_err("utimes", j.shown.clone())(e.into()))?;
    sys::copy_xattrs_fd(&src, &dst);
    Ok(())
}
