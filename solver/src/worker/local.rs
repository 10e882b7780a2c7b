//! `local://NAME` sources: a host directory (the build context) brought into the cache.
//!
//! The vertex is keyed by a fingerprint of what would be copied (names, types, modes,
//! sizes, modification times, link targets of every included file), so an unchanged
//! context costs one stat walk and no copy, in this process or the next. Include and
//! exclude patterns have `.dockerignore` semantics; an excluded directory without `!`
//! exceptions is not even entered. Files land owned by root, as `docker build` makes them.
//!
//! The copy also fills the stat cache for the new snapshot (`stat_cache`): a file whose
//! host stat is unchanged since it was last hashed keeps its hash, so the `COPY` keyed on
//! the copy re-reads only the files that changed.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_llb::Digest;
use cairn_llb::definition::LoadedOp;
use cairn_llb::pb::OpKind;
use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};

use super::Inner;
use super::context_copy::copy_into;
use super::mount::Mounted;
use super::result::result;
use super::stat_cache::ContextHashes;
use crate::error::OpError;
use crate::op::{CacheMap, ExecCtx, Op, OpCtx};
use crate::ops::file::pattern::PatternMatcher;
use crate::result::ResultRef;

pub(crate) struct LocalSourceOp {
    inner: Arc<Inner>,
    name: String,
    dir: PathBuf,
    filter: Arc<Filter>,
    /// The walk the key was computed from, so the copy holds exactly what was keyed and
    /// the context is not walked twice.
    walked: std::sync::Mutex<Option<Arc<Vec<Entry>>>>,
}

/// Which paths of the directory take part.
#[derive(Debug)]
struct Filter {
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    /// The patterns as given, part of the key.
    spec: String,
}

impl Filter {
    fn includes(&self, rel: &str) -> bool {
        self.include
            .as_ref()
            .is_none_or(|m| m.matches_or_parent(rel))
    }

    fn excludes(&self, rel: &str) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|m| m.matches_or_parent(rel))
    }

    /// Whether a directory must be entered even though it is excluded (a `!` pattern may
    /// bring something under it back) or not itself included (an include pattern may
    /// name something below it).
    fn may_hold_matches(&self) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(PatternMatcher::has_exclusions)
            || self.include.is_some()
    }
}

fn pattern_list(
    op: &LoadedOp,
    attrs: &std::collections::BTreeMap<String, String>,
    key: &str,
) -> Result<Option<PatternMatcher>, OpError> {
    let Some(raw) = attrs.get(key) else {
        return Ok(None);
    };
    let list: Vec<String> = serde_json::from_str(raw).map_err(|e| {
        OpError::failed(format!(
            "local source {}: {key} is not a JSON list of strings: {e}",
            op.digest()
        ))
    })?;
    if list.is_empty() {
        return Ok(None);
    }
    PatternMatcher::new(&list)
        .map(Some)
        .map_err(|e| OpError::failed(format!("local source {}: {key}: {e}", op.digest())))
}

impl LocalSourceOp {
    pub(crate) fn new(
        inner: Arc<Inner>,
        op: &LoadedOp,
        name: &str,
        dir: &Path,
    ) -> Result<LocalSourceOp, OpError> {
        let Some(OpKind::Source(src)) = &op.op().op else {
            return Err(OpError::failed("local source op is not a source"));
        };
        let include = pattern_list(op, &src.attrs, "local.includepattern")?;
        let exclude = pattern_list(op, &src.attrs, "local.excludepatterns")?;
        let spec = format!(
            "include={:?} exclude={:?}",
            src.attrs.get("local.includepattern"),
            src.attrs.get("local.excludepatterns")
        );
        let meta = std::fs::metadata(dir).map_err(|e| {
            OpError::failed(format!("local source {name:?}: {}: {e}", dir.display()))
        })?;
        if !meta.is_dir() {
            return Err(OpError::failed(format!(
                "local source {name:?}: {} is not a directory",
                dir.display()
            )));
        }
        Ok(LocalSourceOp {
            inner,
            name: name.to_owned(),
            dir: dir.to_path_buf(),
            filter: Arc::new(Filter {
                include,
                exclude,
                spec,
            }),
            walked: std::sync::Mutex::new(None),
        })
    }
}

/// One entry that takes part: its path relative to the root and its metadata.
pub(super) struct Entry {
    pub(super) rel: String,
    pub(super) path: PathBuf,
    pub(super) meta: std::fs::Metadata,
}

/// Every included entry under `root`, parents before children, sorted by name.
fn walk(root: &Path, filter: &Filter) -> Result<Vec<Entry>, OpError> {
    let mut out = Vec::new();
    let deep = filter.may_hold_matches();
    let mut it = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(e) = it.next() {
        let e = e.map_err(|e| OpError::failed(format!("reading {}: {e}", root.display())))?;
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap_or(e.path())
            .to_string_lossy()
            .into_owned();
        let meta = e
            .metadata()
            .map_err(|err| OpError::failed(format!("stat {}: {err}", e.path().display())))?;
        let taken = filter.includes(&rel) && !filter.excludes(&rel);
        if meta.is_dir() && !taken && !deep {
            it.skip_current_dir();
            continue;
        }
        let ft = meta.file_type();
        if taken && (ft.is_dir() || ft.is_file() || ft.is_symlink()) {
            out.push(Entry {
                rel,
                path: e.path().to_path_buf(),
                meta,
            });
        }
    }
    Ok(out)
}

fn fingerprint(name: &str, filter: &Filter, entries: &[Entry]) -> Result<Digest, OpError> {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(b"cairn local source v1");
    field(name.as_bytes());
    field(filter.spec.as_bytes());
    for e in entries {
        let m = &e.meta;
        field(e.rel.as_bytes());
        field(&m.mode().to_le_bytes());
        field(&m.size().to_le_bytes());
        field(&m.mtime().to_le_bytes());
        field(&m.mtime_nsec().to_le_bytes());
        // A file replaced by another of equal size and time still changes inode/ctime.
        field(&m.ino().to_le_bytes());
        field(&m.ctime().to_le_bytes());
        field(&m.ctime_nsec().to_le_bytes());
        if m.file_type().is_symlink() {
            let t = std::fs::read_link(&e.path)
                .map_err(|err| OpError::failed(format!("readlink {}: {err}", e.path.display())))?;
            field(t.as_os_str().as_encoded_bytes());
        }
    }
    Ok(Digest::from_sha256(h.finalize().into()))
}

impl Op for LocalSourceOp {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        async move {
            let (name, dir, filter) = (
                self.name.clone(),
                self.dir.clone(),
                Arc::clone(&self.filter),
            );
            let (digest, entries) = tokio::task::spawn_blocking(move || {
                let entries = walk(&dir, &filter)?;
                let digest = fingerprint(&name, &filter, &entries)?;
                Ok::<_, OpError>((digest, entries))
            })
            .await
            .map_err(|e| OpError::failed(format!("context walk failed: {e}")))??;
            *self.walked.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(entries));
            Ok(CacheMap {
                digest: Some(digest),
                machine_local: true,
                ..CacheMap::default()
            })
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        ctx: &'a ExecCtx,
        _inputs: Vec<ResultRef>,
    ) -> BoxFuture<'a, Result<Vec<ResultRef>, OpError>> {
        async move {
            let cache = &self.inner.cache;
            let m = cache
                .new_mutable(None, &Default::default(), &ctx.name)
                .await
                .map_err(OpError::from)?;
            let mounted = Mounted::new(&self.inner.mount_root, "local", m.mounts())?;
            let walked = self
                .walked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let (dir, filter, dest, cancel, task_cache) = (
                self.dir.clone(),
                Arc::clone(&self.filter),
                mounted.path().to_path_buf(),
                ctx.cancel.clone(),
                cache.clone(),
            );
            let hashes = tokio::task::spawn_blocking(move || {
                let mut hashes = ContextHashes::load(task_cache.metadata(), &dir, &filter.spec)?;
                let entries = match walked {
                    Some(e) => e,
                    None => Arc::new(walk(&dir, &filter)?),
                };
                copy_into(&entries, &dest, &cancel, &mut hashes)?;
                Ok::<_, OpError>(hashes)
            })
            .await
            .map_err(|e| OpError::failed(format!("context copy failed: {e}")))??;
            mounted.unmount()?;
            let r = m.commit().await.map_err(OpError::from)?;
            // The copied files' hashes, so the `COPY` keyed on this snapshot reads none of
            // them again; a failure here only costs that re-read.
            let (task_cache, sid) = (cache.clone(), r.record().snapshot_id.clone());
            let saved =
                tokio::task::spawn_blocking(move || hashes.save(task_cache.metadata(), &sid))
                    .await
                    .map_err(|e| OpError::failed(format!("checksum store task failed: {e}")))
                    .and_then(|r| r);
            if let Err(e) = saved {
                tracing::warn!(error = %e, "storing the context's file checksums");
            }
            Ok(vec![result(Some(r))])
        }
        .boxed()
    }
}
