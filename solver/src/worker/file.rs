//! FileOp on cache refs. Each chain of actions works in one writable snapshot: over its
//! base input when it has one (so `COPY a /a` onto an image writes only `/a`, never a
//! copy of the image), empty for scratch. Copy sources and `--chown` user databases are
//! read from read-only mounts of the inputs. The snapshots holding outputs are committed;
//! the others are dropped.
//!
//! The key reads only what the op reads: a copy's input is keyed by a checksum of the
//! copied paths, so an unrelated change elsewhere in the build context still hits.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_cache::{DescHandlers, ImmutableRef, MutableRef};
use cairn_llb::Digest;
use cairn_llb::definition::LoadedOp;
use cairn_llb::pb::{self, FileActionKind, OpKind, UserOptKind};
use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};

use super::Inner;
use super::handlers::handlers_from;
use super::mount::Mounted;
use super::result::{result, worker_ref};
use super::stat_cache::ScopeHashes;
use crate::error::OpError;
use crate::op::{CacheMap, ComputeDigest, Dep, ExecCtx, Op, OpCtx};
use crate::ops::file::op::{checksum_sources, copy_sources, selector};
use crate::ops::file::{BasePlan, BaseSource, Plan, plan_bases, run_file_actions_in};
use crate::result::ResultRef;

pub(crate) struct FileOp {
    inner: Arc<Inner>,
    digest: Digest,
    file: pb::FileOp,
    inputs: usize,
    plan: Plan,
    /// Inputs some action reads files from (copy sources, user databases).
    read: BTreeSet<usize>,
}

impl FileOp {
    pub(crate) fn new(inner: Arc<Inner>, op: &LoadedOp) -> Result<FileOp, OpError> {
        let Some(OpKind::File(file)) = &op.op().op else {
            return Err(OpError::failed("file op is not a file op"));
        };
        let inputs = op.op().inputs.len();
        let plan = plan_bases(&file.actions, inputs)
            .map_err(|e| OpError::failed(format!("file op {}: {e}", op.digest())))?;
        let mut read = BTreeSet::new();
        for a in &file.actions {
            let owner = match &a.action {
                Some(FileActionKind::Copy(c)) => {
                    if let Ok(k) = usize::try_from(a.secondary_input) {
                        read.insert(k);
                    }
                    c.owner.as_ref()
                }
                Some(FileActionKind::Mkdir(m)) => m.owner.as_ref(),
                Some(FileActionKind::Mkfile(m)) => m.owner.as_ref(),
                Some(FileActionKind::Symlink(s)) => s.owner.as_ref(),
                _ => None,
            };
            for u in owner
                .into_iter()
                .flat_map(|o| [o.user.as_ref(), o.group.as_ref()])
                .flatten()
            {
                if let Some(UserOptKind::ByName(n)) = &u.user
                    && let Ok(k) = usize::try_from(n.input)
                {
                    read.insert(k);
                }
            }
        }
        read.retain(|k| *k < inputs);
        Ok(FileOp {
            inner,
            digest: op.digest().clone(),
            file: file.clone(),
            inputs,
            plan,
            read,
        })
    }
}

/// Keys a copy source by the bytes it reads. A ref whose files are not on disk is keyed
/// by its layer chain instead (the same layers are the same files), so checking a cache
/// hit never downloads an image. File contents already hashed in the ref's snapshot are
/// taken from the stat cache (`stat_cache`): only changed or new files are read.
fn content_checksum(inner: Arc<Inner>, sources: Vec<(String, bool, bool)>) -> ComputeDigest {
    let sources = Arc::new(sources);
    Arc::new(move |r: ResultRef, _selector: Option<String>| {
        let (inner, sources) = (Arc::clone(&inner), Arc::clone(&sources));
        async move {
            let Some(r) = worker_ref(&r, "copy source")? else {
                return Ok(Digest::of_bytes(format!("scratch {sources:?}").as_bytes()));
            };
            if r.is_lazy().map_err(OpError::from)? {
                return Ok(identity_checksum(&r, &sources));
            }
            let mounted = Mounted::new(
                &inner.mount_root,
                "sum",
                &r.mounts(&DescHandlers::new())
                    .await
                    .map_err(OpError::from)?,
            )?;
            let root = mounted.path().to_path_buf();
            let (cache, scope) = (inner.cache.clone(), r.record().snapshot_id.clone());
            let sum = tokio::task::spawn_blocking(move || {
                let db = cache.metadata();
                let mut hashes = ScopeHashes::snapshot(db, &scope)?;
                let sum = checksum_sources(&root, &sources, &mut hashes)?;
                // Not remembering only costs reading these files again next time.
                if let Err(e) = hashes.save(db) {
                    tracing::warn!(error = %e, "storing file checksums");
                }
                Ok::<_, OpError>(sum)
            })
            .await
            .map_err(|e| OpError::failed(format!("checksum task failed: {e}")))??;
            mounted.unmount()?;
            Ok(sum)
        }
        .boxed()
    })
}

fn identity_checksum(r: &ImmutableRef, sources: &[(String, bool, bool)]) -> Digest {
    let mut h = Sha256::new();
    h.update(b"cairn lazy copy source v1\0");
    match r.layer_chain() {
        Ok(chain) if chain.iter().all(|c| c.blob.is_some()) => {
            for c in chain {
                if let Some(b) = c.blob {
                    h.update(b.diff_id.as_str().as_bytes());
                    h.update(b"\0");
                }
            }
        }
        // No content identity to go by: the record itself (never a false hit).
        _ => h.update(r.id().as_str().as_bytes()),
    }
    h.update(format!("{sources:?}").as_bytes());
    Digest::from_sha256(h.finalize().into())
}

impl Op for FileOp {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        async move {
            Ok(CacheMap {
                digest: Some(self.digest.clone()),
                deps: (0..self.inputs)
                    .map(|i| {
                        let sources = copy_sources(&self.file, i);
                        Dep {
                            selector: selector(&self.file, i),
                            compute_digest: (!sources.is_empty())
                                .then(|| content_checksum(Arc::clone(&self.inner), sources)),
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
            let handlers = handlers_from(&ctx.cache_opts, &ctx.progress);
            let root = &self.inner.mount_root;
            let refs = inputs
                .iter()
                .map(|r| worker_ref(r, "file op input"))
                .collect::<Result<Vec<_>, _>>()?;
            let mut read_mounts = Vec::with_capacity(refs.len());
            for (k, r) in refs.iter().enumerate() {
                read_mounts.push(match r {
                    Some(r) if self.read.contains(&k) => {
                        Mounted::new(root, "src", &r.mounts(&handlers).await?)?
                    }
                    _ => Mounted::empty(root, "src")?,
                });
            }
            let mut writable: Vec<Option<(MutableRef, Mounted)>> =
                (0..self.plan.bases.len()).map(|_| None).collect();
            for (i, b) in self.plan.bases.iter().enumerate() {
                let BasePlan::Fresh(src) = b else { continue };
                let parent = match src {
                    BaseSource::Input(k) => refs[*k].as_ref(),
                    BaseSource::Scratch | BaseSource::CloneOf(_) => None,
                };
                let m = self
                    .inner
                    .cache
                    .new_mutable(parent, &handlers, &ctx.name)
                    .await?;
                let mounted = Mounted::new(root, "file", m.mounts())?;
                writable[i] = Some((m, mounted));
            }
            let scratch = Mounted::empty(root, "scratch")?;
            let input_paths: Vec<PathBuf> =
                read_mounts.iter().map(|m| m.path().to_path_buf()).collect();
            let dirs: Vec<Option<PathBuf>> = writable
                .iter()
                .map(|w| w.as_ref().map(|(_, m)| m.path().to_path_buf()))
                .collect();
            let (actions, plan, scratch_dir, cancel) = (
                self.file.actions.clone(),
                self.plan.clone(),
                scratch.path().to_path_buf(),
                ctx.cancel.clone(),
            );
            tokio::task::spawn_blocking(move || {
                run_file_actions_in(&actions, &plan, &input_paths, &dirs, &scratch_dir, &cancel)
            })
            .await
            .map_err(|e| OpError::failed(format!("file op task failed: {e}")))?
            .map_err(|e| match e {
                crate::ops::file::FileOpError::Cancelled => OpError::Cancelled,
                e => OpError::failed(e.to_string()),
            })?;
            for m in read_mounts {
                m.unmount()?;
            }
            let mut outputs = Vec::with_capacity(self.plan.roots.len());
            let mut taken: Vec<Option<(MutableRef, Mounted)>> = writable;
            for &r in &self.plan.roots {
                let (m, mounted) = taken[r]
                    .take()
                    .ok_or_else(|| OpError::failed("file op output has no snapshot"))?;
                mounted.unmount()?;
                outputs.push(result(Some(m.commit().await?)));
            }
            Ok(outputs)
        }
        .boxed()
    }
}
