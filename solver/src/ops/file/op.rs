//! An LLB FileOp as an engine [`Op`] whose results are plain directories.
//!
//! This is the file op for results that are directories on disk (tests, staging for a
//! local export). The cache-backed variant mounts refs instead and commits the outputs;
//! it reuses [`run_file_actions`] on the mounted paths.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_llb::Digest;
use cairn_llb::definition::LoadedOp;
use cairn_llb::pb::{FileActionKind, FileOp, OpKind};
use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};

use super::actions::resolve_wildcards;
use super::chain::run_file_actions;
use super::hashes::{FileHashes, NoHashes};
use crate::error::OpError;
use crate::op::{CacheMap, ComputeDigest, Dep, ExecCtx, Op, OpCtx};
use crate::result::{ResultRef, SolverResult, downcast};

/// A result that is a directory on disk.
#[derive(Debug)]
pub struct DirResult {
    path: PathBuf,
}

impl DirResult {
    pub fn new(path: PathBuf) -> DirResult {
        DirResult { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SolverResult for DirResult {
    fn id(&self) -> String {
        format!("dir:{}", self.path.display())
    }
}

/// Runs a FileOp on [`DirResult`] inputs, creating its outputs under `work_root`.
#[derive(Debug)]
pub struct DirFileOp {
    digest: Digest,
    file: FileOp,
    inputs: usize,
    work_root: PathBuf,
}

/// Makes directory names unique within the process; the op digest separates processes'
/// work roots only if the caller gives each its own root.
static RUNS: AtomicU64 = AtomicU64::new(0);

impl DirFileOp {
    /// Wraps `op`, which must be a FileOp.
    pub fn new(op: &LoadedOp, work_root: PathBuf) -> Result<DirFileOp, OpError> {
        match &op.op().op {
            Some(OpKind::File(file)) => Ok(DirFileOp {
                digest: op.digest().clone(),
                file: file.clone(),
                inputs: op.op().inputs.len(),
                work_root,
            }),
            _ => Err(OpError::failed(format!(
                "op {} is not a file op",
                op.digest()
            ))),
        }
    }
}

/// The copy sources a FileOp reads from input `i`: (path, follow symlinks, wildcard).
pub(crate) fn copy_sources(file: &FileOp, i: usize) -> Vec<(String, bool, bool)> {
    file.actions
        .iter()
        .filter(|a| usize::try_from(a.secondary_input).ok() == Some(i))
        .filter_map(|a| match &a.action {
            Some(FileActionKind::Copy(c)) => {
                Some((c.src.clone(), c.follow_symlink, c.allow_wildcard))
            }
            _ => None,
        })
        .collect()
}

/// BuildKit's selector for input `i`: the copy sources read from it, sorted,
/// reversed ("historical reasons" in BuildKit), joined by NUL and hashed; none when
/// the input is only a base that actions write on.
pub(crate) fn selector(file: &FileOp, i: usize) -> Option<String> {
    let mut paths: Vec<&str> = file
        .actions
        .iter()
        .filter(|a| usize::try_from(a.secondary_input).ok() == Some(i))
        .filter_map(|a| match &a.action {
            Some(FileActionKind::Copy(c)) => Some(c.src.as_str()),
            _ => None,
        })
        .collect();
    if paths.is_empty() {
        return None;
    }
    paths.sort_unstable();
    paths.reverse();
    let joined = paths.join("\0");
    Some(Digest::from_sha256(Sha256::digest(joined.as_bytes()).into()).to_string())
}

impl Op for DirFileOp {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        async move {
            Ok(CacheMap {
                digest: Some(self.digest.clone()),
                deps: (0..self.inputs)
                    .map(|i| {
                        let selector = selector(&self.file, i);
                        let sources = copy_sources(&self.file, i);
                        let compute_digest =
                            (!sources.is_empty()).then(|| content_checksum(sources));
                        Dep {
                            selector,
                            compute_digest,
                        }
                    })
                    .collect(),
                ..CacheMap::default()
            })
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        inputs: Vec<ResultRef>,
    ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>> {
        async move {
            let mut dirs = Vec::with_capacity(inputs.len());
            for (i, r) in inputs.iter().enumerate() {
                let d = downcast::<DirResult>(r).ok_or_else(|| {
                    OpError::failed(format!(
                        "input {i} of the file op is not a directory ({r:?})"
                    ))
                })?;
                dirs.push(d.path.clone());
            }
            let run = RUNS.fetch_add(1, Ordering::Relaxed);
            let work = self.work_root.join(format!(
                "{}-{}-{run}",
                self.digest.hex(),
                std::process::id()
            ));
            let actions = self.file.actions.clone();
            let cancel = ctx.cancel.clone();
            let outputs = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&work).map_err(OpError::other)?;
                run_file_actions(&actions, &dirs, &work, &cancel).map_err(OpError::other)
            })
            .await
            .map_err(|e| OpError::failed(format!("file op task failed: {e}")))??;
            Ok(outputs
                .into_iter()
                .map(|p| Arc::new(DirResult::new(p)) as ResultRef)
                .collect())
        }
        .boxed()
    }
}

/// Keys a copy by the bytes it reads: a checksum over every file under each source path
/// of a [`DirResult`] (names, types, modes, owners, link targets and contents, never
/// times). Include/exclude patterns are not applied, so an excluded file's change costs
/// a miss, never a wrong hit. Results of the cache use the cache's content hash instead.
fn content_checksum(sources: Vec<(String, bool, bool)>) -> ComputeDigest {
    let sources = Arc::new(sources);
    Arc::new(move |r: ResultRef, _selector: Option<String>| {
        let sources = Arc::clone(&sources);
        async move {
            let root = downcast::<DirResult>(&r)
                .ok_or_else(|| OpError::failed(format!("copy source is not a directory ({r:?})")))?
                .path
                .clone();
            tokio::task::spawn_blocking(move || checksum_sources(&root, &sources, &mut NoHashes))
                .await
                .map_err(|e| OpError::failed(format!("checksum task failed: {e}")))?
        }
        .boxed()
    })
}

/// The checksum of `sources` under `root`: every entry's relative name, mode, owner and
/// link target or content hash, in walk order. Content hashes come from `hashes` when it
/// has them for the file's current metadata; the digest is the same either way.
pub(crate) fn checksum_sources(
    root: &Path,
    sources: &[(String, bool, bool)],
    hashes: &mut dyn FileHashes,
) -> Result<Digest, OpError> {
    use std::os::unix::fs::MetadataExt;
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    let mut sorted: Vec<&(String, bool, bool)> = sources.iter().collect();
    sorted.sort();
    for (src, follow, wildcard) in sorted {
        field(src.as_bytes());
        let matches = if *wildcard {
            resolve_wildcards(root, src, *follow).map_err(OpError::other)?
        } else {
            vec![super::root::clean_abs(src)]
        };
        for m in matches {
            let start = if *follow {
                super::root::root_path(root, &m)
            } else {
                super::root::root_path_nofollow(root, &m)
            }
            .map_err(OpError::other)?;
            field(m.as_bytes());
            if std::fs::symlink_metadata(&start).is_err() {
                field(b"missing");
                continue;
            }
            for e in walkdir::WalkDir::new(&start)
                .follow_links(false)
                .sort_by_file_name()
            {
                let e = e.map_err(|e| OpError::failed(format!("checksum walk: {e}")))?;
                let meta = e
                    .metadata()
                    .map_err(|e| OpError::failed(format!("checksum stat: {e}")))?;
                let rel = e.path().strip_prefix(&start).unwrap_or(e.path());
                field(rel.as_os_str().as_encoded_bytes());
                field(&meta.mode().to_le_bytes());
                field(&meta.uid().to_le_bytes());
                field(&meta.gid().to_le_bytes());
                if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(e.path()).map_err(OpError::other)?;
                    field(target.as_os_str().as_encoded_bytes());
                } else if meta.is_file() {
                    let key = e.path().strip_prefix(root).unwrap_or(e.path());
                    let sum = match hashes.get(key, &meta) {
                        Some(sum) => sum,
                        None => {
                            let mut fh = Sha256::new();
                            let mut f = std::fs::File::open(e.path()).map_err(OpError::other)?;
                            std::io::copy(&mut f, &mut fh).map_err(OpError::other)?;
                            let sum: [u8; 32] = fh.finalize().into();
                            hashes.put(key, &meta, sum);
                            sum
                        }
                    };
                    field(&sum);
                }
            }
        }
    }
    Ok(Digest::from_sha256(h.finalize().into()))
}
