//! ExecOp on cache refs: each writable mount gets a fresh snapshot over its input, each
//! read-only mount a view of it; the process runs in a container over them; the mounts
//! with an output index are committed as the op's results, in output order.
//!
//! Nothing half-made survives a failure or a cancellation: mount points unmount and
//! vanish when dropped, uncommitted snapshots are removed with their `MutableRef`, and
//! the executor's contract covers the container itself.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_cache::lock::{FileLock, LockMode};
use cairn_cache::{DescHandlers, ImmutableRef, MutableRef};
use cairn_llb::definition::LoadedOp;
use cairn_llb::pb::{self, CacheSharingOpt, MountType, OpKind, SecurityMode};
use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};

use super::handlers::handlers_from;
use super::mount::{Mounted, fresh_dir};
use super::result::{result, worker_ref};
use super::{Inner, Session};
use crate::error::OpError;
use crate::executor::{
    ExecError, ExecMeta, ExecMount, HostIp, MountKind, NetMode, RunRequest, SecretFile, Ulimit,
    merge_env,
};
use crate::op::{CacheMap, ExecCtx, Op, OpCtx};
use crate::ops::file::root_path;
use crate::progress::Stream;
use crate::result::ResultRef;

pub(crate) struct ExecOp {
    inner: Arc<Inner>,
    session: Arc<Session>,
    digest: cairn_llb::Digest,
    exec: pb::ExecOp,
    inputs: usize,
    outputs: usize,
}

impl ExecOp {
    pub(crate) fn new(
        inner: Arc<Inner>,
        op: &LoadedOp,
        session: Arc<Session>,
    ) -> Result<ExecOp, OpError> {
        let Some(OpKind::Exec(exec)) = &op.op().op else {
            return Err(OpError::failed("exec op is not an exec"));
        };
        let bad = |what: String| OpError::failed(format!("exec {}: {what}", op.digest()));
        if exec.meta.as_ref().is_none_or(|m| m.args.is_empty()) {
            return Err(bad("has no command".into()));
        }
        if exec.security == SecurityMode::Insecure as i32 {
            return Err(bad(
                "security=insecure is not supported (no privileged build containers)".into(),
            ));
        }
        if !exec.mounts.iter().any(|m| m.dest == "/") {
            return Err(bad("has no root mount".into()));
        }
        let inputs = op.op().inputs.len();
        let mut outputs = 0usize;
        for m in &exec.mounts {
            if m.input >= 0 && usize::try_from(m.input).is_ok_and(|i| i >= inputs) {
                return Err(bad(format!(
                    "mount {} uses input {} of {inputs}",
                    m.dest, m.input
                )));
            }
            if let Ok(o) = usize::try_from(m.output) {
                outputs = outputs.max(o + 1);
            }
        }
        Ok(ExecOp {
            inner,
            session,
            digest: op.digest().clone(),
            exec: exec.clone(),
            inputs,
            outputs,
        })
    }

    fn meta(&self) -> Result<ExecMeta, OpError> {
        let m = self.exec.meta.clone().unwrap_or_default();
        let mut env = m.env.clone();
        if let Some(p) = &m.proxy_env {
            for (k, v) in [
                ("HTTP_PROXY", &p.http_proxy),
                ("HTTPS_PROXY", &p.https_proxy),
                ("FTP_PROXY", &p.ftp_proxy),
                ("NO_PROXY", &p.no_proxy),
                ("ALL_PROXY", &p.all_proxy),
            ] {
                if !v.is_empty() {
                    env.push(format!("{k}={v}"));
                    env.push(format!("{}={v}", k.to_ascii_lowercase()));
                }
            }
        }
        for s in &self.exec.secretenv {
            match self.session.secret(&s.id) {
                Some(bytes) => env.push(format!("{}={}", s.name, String::from_utf8_lossy(bytes))),
                None if s.optional => {}
                None => return Err(missing_secret(&s.id)),
            }
        }
        Ok(ExecMeta {
            args: m.args,
            env: merge_env(&[], &env),
            cwd: if m.cwd.is_empty() { "/".into() } else { m.cwd },
            user: m.user,
            hostname: (!m.hostname.is_empty()).then_some(m.hostname),
            // The sandbox is loopback only unless the definition asks for the host's
            // network (`RUN --network=host`).
            network: if self.exec.network == pb::NetMode::Host as i32 {
                NetMode::Host
            } else {
                NetMode::None
            },
            extra_hosts: m
                .extra_hosts
                .into_iter()
                .map(|h| HostIp {
                    host: h.host,
                    ip: h.ip,
                })
                .collect(),
            ulimits: m
                .ulimit
                .into_iter()
                .map(|u| Ulimit {
                    name: u.name,
                    soft: u.soft.max(0) as u64,
                    hard: u.hard.max(0) as u64,
                })
                .collect(),
            valid_exit_codes: m.valid_exit_codes,
        })
    }
}

fn missing_secret(id: &str) -> OpError {
    OpError::failed(format!(
        "secret {id:?} was not provided (pass it with --secret id={id},src=FILE or id={id},env=VAR)"
    ))
}

/// What one mount became while the process runs. Dropping it undoes it.
enum Prepared {
    /// A writable snapshot; committed afterwards when `output` is set.
    Writable {
        snapshot: Box<MutableRef>,
        mounted: Mounted,
        output: Option<usize>,
    },
    /// A read-only view of a ref (kept alive by `_ref`).
    ReadOnly {
        mounted: Mounted,
        _ref: Option<ImmutableRef>,
    },
    /// A cache-mount directory, with the lock its sharing mode asks for.
    CacheDir {
        _lock: Option<FileLock>,
        /// A private mount that found the shared one busy gets a throw-away directory.
        _scratch: Option<Mounted>,
    },
    Plain,
}

impl ExecOp {
    async fn prepare(
        &self,
        m: &pb::Mount,
        input: Option<ImmutableRef>,
        handlers: &DescHandlers,
        name: &str,
    ) -> Result<(Prepared, Option<MountKind>), OpError> {
        let root = &self.inner.mount_root;
        let mount_type = MountType::try_from(m.mount_type).unwrap_or(MountType::Bind);
        let output = usize::try_from(m.output).ok();
        Ok(match mount_type {
            MountType::Bind if m.readonly && output.is_none() => {
                let mounted = match &input {
                    Some(r) => Mounted::new(root, "ro", &r.mounts(handlers).await?)?,
                    None => Mounted::empty(root, "ro")?,
                };
                let src = select(&mounted, &m.selector)?;
                (
                    Prepared::ReadOnly {
                        mounted,
                        _ref: input,
                    },
                    Some(MountKind::Bind {
                        src,
                        readonly: true,
                    }),
                )
            }
            MountType::Bind => {
                let snapshot = self
                    .inner
                    .cache
                    .new_mutable(input.as_ref(), handlers, name)
                    .await?;
                let mounted = Mounted::new(root, "rw", snapshot.mounts())?;
                let src = select(&mounted, &m.selector)?;
                (
                    Prepared::Writable {
                        snapshot: Box::new(snapshot),
                        mounted,
                        output,
                    },
                    Some(MountKind::Bind {
                        src,
                        readonly: m.readonly,
                    }),
                )
            }
            MountType::Cache => {
                let (prepared, path) = self.cache_dir(m, input, handlers).await?;
                (
                    prepared,
                    Some(MountKind::Bind {
                        src: path,
                        readonly: m.readonly,
                    }),
                )
            }
            MountType::Tmpfs => (
                Prepared::Plain,
                Some(MountKind::Tmpfs {
                    size: m
                        .tmpfs_opt
                        .as_ref()
                        .and_then(|t| u64::try_from(t.size).ok())
                        .filter(|s| *s > 0),
                }),
            ),
            MountType::Secret => {
                let opt = m.secret_opt.clone().unwrap_or_default();
                match self.session.secret(&opt.id) {
                    Some(data) => (
                        Prepared::Plain,
                        Some(MountKind::Secret(SecretFile {
                            data: data.to_vec(),
                            uid: opt.uid,
                            gid: opt.gid,
                            mode: if opt.mode == 0 { 0o400 } else { opt.mode },
                        })),
                    ),
                    None if opt.optional => (Prepared::Plain, None),
                    None => return Err(missing_secret(&opt.id)),
                }
            }
            MountType::Ssh => {
                if m.ssh_opt.as_ref().is_some_and(|o| o.optional) {
                    (Prepared::Plain, None)
                } else {
                    return Err(OpError::failed(format!(
                        "mount {}: SSH agent forwarding (--mount=type=ssh) is not supported yet",
                        m.dest
                    )));
                }
            }
        })
    }

    /// The directory behind `--mount=type=cache,id=…`, shared by every build on this
    /// state root and kept between builds. A new one starts with the `from` input's files.
    async fn cache_dir(
        &self,
        m: &pb::Mount,
        input: Option<ImmutableRef>,
        handlers: &DescHandlers,
    ) -> Result<(Prepared, PathBuf), OpError> {
        let opt = m.cache_opt.clone().unwrap_or_default();
        let id = if opt.id.is_empty() {
            m.dest.clone()
        } else {
            opt.id.clone()
        };
        let hex = hex::encode(Sha256::digest(id.as_bytes()));
        let base = &self.inner.cache_mount_root;
        std::fs::create_dir_all(base)
            .map_err(|e| OpError::failed(format!("creating {}: {e}", base.display())))?;
        let dir = base.join(&hex);
        let lock_path = base.join(format!("{hex}.lock"));
        let sharing = CacheSharingOpt::try_from(opt.sharing).unwrap_or(CacheSharingOpt::Shared);
        let lock_err = |e: cairn_cache::lock::LockError| OpError::other(e);
        let (lock, scratch) = match sharing {
            CacheSharingOpt::Shared => (
                Some(
                    FileLock::acquire(&lock_path, LockMode::Shared)
                        .await
                        .map_err(lock_err)?,
                ),
                None,
            ),
            CacheSharingOpt::Locked => (
                Some(
                    FileLock::acquire(&lock_path, LockMode::Exclusive)
                        .await
                        .map_err(lock_err)?,
                ),
                None,
            ),
            CacheSharingOpt::Private => {
                match FileLock::try_acquire(&lock_path, LockMode::Exclusive).map_err(lock_err)? {
                    Some(l) => (Some(l), None),
                    None => (None, Some(Mounted::empty(&self.inner.mount_root, "cache")?)),
                }
            }
        };
        let path = match &scratch {
            Some(s) => s.path().to_path_buf(),
            None => {
                if !dir.exists() {
                    self.seed_cache_dir(&dir, input, handlers, &m.selector)
                        .await?;
                }
                dir
            }
        };
        Ok((
            Prepared::CacheDir {
                _lock: lock,
                _scratch: scratch,
            },
            path,
        ))
    }

    /// Creates a cache-mount directory atomically: built aside, renamed into place.
    async fn seed_cache_dir(
        &self,
        dir: &std::path::Path,
        input: Option<ImmutableRef>,
        handlers: &DescHandlers,
        selector: &str,
    ) -> Result<(), OpError> {
        let staging = fresh_dir(&self.inner.mount_root, "cache-seed")?;
        let tmp = staging.join("dir");
        let res = async {
            match input {
                None => std::fs::create_dir(&tmp)
                    .map_err(|e| OpError::failed(format!("creating cache mount: {e}")))?,
                Some(r) => {
                    let mounted =
                        Mounted::new(&self.inner.mount_root, "seed", &r.mounts(handlers).await?)?;
                    let src = select(&mounted, selector)?;
                    let (src2, tmp2) = (src.clone(), tmp.clone());
                    tokio::task::spawn_blocking(move || {
                        crate::ops::file::clone_tree(
                            &src2,
                            &tmp2,
                            &tokio_util::sync::CancellationToken::new(),
                        )
                    })
                    .await
                    .map_err(|e| OpError::failed(format!("seeding cache mount: {e}")))?
                    .map_err(OpError::other)?;
                    mounted.unmount()?;
                }
            }
            match std::fs::rename(&tmp, dir) {
                Ok(()) => Ok(()),
                // Another build made it first; theirs is as good as ours.
                Err(_) if dir.is_dir() => Ok(()),
                Err(e) => Err(OpError::failed(format!(
                    "creating cache mount {}: {e}",
                    dir.display()
                ))),
            }
        }
        .await;
        let _ = std::fs::remove_dir_all(&staging);
        res
    }
}

/// The path a mount's selector picks inside a mounted input, resolved within it.
fn select(mounted: &Mounted, selector: &str) -> Result<PathBuf, OpError> {
    if selector.is_empty() || selector == "/" {
        return Ok(mounted.path().to_path_buf());
    }
    let p = root_path(mounted.path(), selector)
        .map_err(|e| OpError::failed(format!("mount selector {selector:?}: {e}")))?;
    if std::fs::symlink_metadata(&p).is_err() {
        return Err(OpError::failed(format!(
            "mount source path {selector:?} does not exist in its input"
        )));
    }
    Ok(p)
}

impl Op for ExecOp {
    fn cache_map<'a>(&'a self, _ctx: &'a OpCtx) -> BoxFuture<'a, Result<CacheMap, OpError>> {
        async move {
            Ok(CacheMap {
                digest: Some(self.digest.clone()),
                deps: vec![Default::default(); self.inputs],
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
            let meta = self.meta()?;
            let executor = self.inner.executor().await?;
            let handlers = handlers_from(&ctx.cache_opts, &ctx.progress);
            let mut prepared = Vec::with_capacity(self.exec.mounts.len());
            let mut rootfs = None;
            let mut mounts = Vec::new();
            for m in &self.exec.mounts {
                let input = match usize::try_from(m.input) {
                    Ok(i) => worker_ref(&inputs[i], "exec input")?,
                    Err(_) => None,
                };
                let (p, kind) = self.prepare(m, input, &handlers, &ctx.name).await?;
                if m.dest == "/" {
                    match &p {
                        Prepared::Writable { mounted, .. } | Prepared::ReadOnly { mounted, .. } => {
                            rootfs = Some(mounted.path().to_path_buf());
                        }
                        _ => {
                            return Err(OpError::failed(
                                "the root mount must be a bind of an input or scratch",
                            ));
                        }
                    }
                } else if let Some(kind) = kind {
                    mounts.push(ExecMount {
                        dest: m.dest.clone(),
                        kind,
                    });
                }
                prepared.push(p);
            }
            let rootfs = rootfs.ok_or_else(|| OpError::failed("exec has no root mount"))?;
            let progress = ctx.progress.clone();
            let sink: crate::executor::OutputSink =
                Arc::new(move |s: Stream, b: &[u8]| progress.log(s, b));
            let run = executor
                .run(
                    RunRequest {
                        rootfs,
                        meta,
                        mounts,
                    },
                    sink,
                    ctx.cancel.clone(),
                )
                .await;
            match run {
                Ok(_) => {}
                Err(ExecError::Cancelled { .. }) => return Err(OpError::Cancelled),
                Err(ExecError::ExitCode { args, code, tail }) => {
                    return Err(OpError::Failed {
                        message: format!(
                            "process {} did not complete successfully: exit code: {code}",
                            shown_args(&args)
                        ),
                        log_tail: tail,
                    });
                }
                Err(e) => return Err(OpError::other(e)),
            }
            let mut outputs: Vec<Option<ResultRef>> = vec![None; self.outputs];
            for p in prepared {
                if let Prepared::Writable {
                    snapshot,
                    mounted,
                    output,
                } = p
                {
                    mounted.unmount()?;
                    if let Some(o) = output {
                        let r = snapshot.commit().await?;
                        outputs[o] = Some(result(Some(r)));
                    }
                }
            }
            outputs
                .into_iter()
                .enumerate()
                .map(|(i, o)| {
                    o.ok_or_else(|| {
                        OpError::failed(format!("exec output {i} has no writable mount"))
                    })
                })
                .collect()
        }
        .boxed()
    }
}

/// The command as BuildKit quotes it in a failure: `"/bin/sh -c make"`.
fn shown_args(args: &[String]) -> String {
    format!("{:?}", args.join(" "))
}
