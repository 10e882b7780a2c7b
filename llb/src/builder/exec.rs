//! `State::run`: an exec op with its mounts.

use std::sync::Arc;

use crate::pb::{self, CacheSharingOpt, MountType, NetMode, OpKind, OpMetadata, SecurityMode};

use super::caps;
use super::state::{Output, State, Vertex, add_input, cap};

/// Options of a bind mount of another state.
#[derive(Clone, Debug, Default)]
pub struct BindOptions {
    /// Mount only this path of the source.
    pub selector: Option<String>,
    /// Read-only mounts produce no output.
    pub readonly: bool,
    /// A writable mount whose changes are discarded.
    pub no_output: bool,
}

/// A secret mounted as a file.
#[derive(Clone, Debug, Default)]
pub struct SecretOptions {
    pub id: String,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits; the Go client's default is 0o400.
    pub mode: u32,
    /// A missing secret is not an error.
    pub optional: bool,
}

/// An SSH agent socket forwarded into the process.
#[derive(Clone, Debug, Default)]
pub struct SshOptions {
    pub id: String,
    /// Socket path; defaults to `/run/buildkit/ssh_agent.N`.
    pub target: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub optional: bool,
}

#[derive(Clone, Debug)]
enum MountKind {
    Bind,
    Cache {
        id: String,
        sharing: CacheSharingOpt,
    },
    Tmpfs {
        size: i64,
    },
}

#[derive(Clone, Debug)]
struct MountSpec {
    target: String,
    source: Option<Output>,
    selector: String,
    readonly: bool,
    no_output: bool,
    kind: MountKind,
}

/// An exec op being configured; finish with [`Run::root`] or [`Run::build`].
#[derive(Clone, Debug)]
pub struct Run {
    base: State,
    args: Vec<String>,
    mounts: Vec<MountSpec>,
    secrets: Vec<(String, SecretOptions)>,
    secret_env: Vec<pb::SecretEnv>,
    ssh: Vec<SshOptions>,
    proxy_env: Option<pb::ProxyEnv>,
    valid_exit_codes: Vec<i32>,
    metadata: OpMetadata,
    /// This step's own network and security modes: like Go's `llb.Network` run option they
    /// never reach the state the step returns, which keeps the state's own modes.
    network: Option<NetMode>,
    security: Option<SecurityMode>,
}

/// A built exec op: one state per mount that has an output.
#[derive(Clone, Debug)]
pub struct ExecState {
    base: State,
    vertex: Arc<Vertex>,
    /// (mount target, output index)
    outputs: Vec<(String, i64)>,
}

impl State {
    /// Runs `args` with this state as the root file system, inheriting its env, cwd,
    /// user, network and platform.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Run {
            base: self.clone(),
            args: args.into_iter().map(Into::into).collect(),
            mounts: vec![MountSpec {
                target: "/".to_owned(),
                source: self.output.clone(),
                selector: String::new(),
                readonly: false,
                no_output: false,
                kind: MountKind::Bind,
            }],
            secrets: Vec::new(),
            secret_env: Vec::new(),
            ssh: Vec::new(),
            network: None,
            security: None,
            proxy_env: None,
            valid_exit_codes: Vec::new(),
            metadata: OpMetadata::default(),
        }
    }
}

impl Run {
    fn push(
        mut self,
        target: &str,
        source: Option<Output>,
        kind: MountKind,
        opts: BindOptions,
    ) -> Run {
        // A later mount on the same target replaces the earlier one (the root included).
        self.mounts.retain(|m| m.target != target);
        self.mounts.push(MountSpec {
            target: target.to_owned(),
            source,
            selector: opts.selector.unwrap_or_default(),
            readonly: opts.readonly,
            no_output: opts.no_output,
            kind,
        });
        self
    }

    /// Bind-mounts `source` at `target`.
    pub fn mount(self, target: &str, source: &State, opts: BindOptions) -> Run {
        self.push(target, source.output.clone(), MountKind::Bind, opts)
    }

    /// Mounts the root file system read-only (the exec then has no root output).
    pub fn readonly_root(mut self) -> Run {
        if let Some(root) = self.mounts.iter_mut().find(|m| m.target == "/") {
            root.readonly = true;
        }
        self
    }

    /// A persistent cache directory shared by every exec using the same `id`.
    pub fn cache(self, target: &str, id: &str, sharing: CacheSharingOpt) -> Run {
        let kind = MountKind::Cache {
            id: id.to_owned(),
            sharing,
        };
        self.push(target, None, kind, BindOptions::default())
    }

    /// A persistent cache mount whose directory starts as `selector` of `source` the
    /// first time it is created (BuildKit's cache mount with `from`, or with `uid`, `gid`
    /// or `mode`, which the frontend gives as a state holding one directory).
    pub fn cache_from(
        self,
        target: &str,
        id: &str,
        sharing: CacheSharingOpt,
        source: &State,
        selector: Option<String>,
    ) -> Run {
        let kind = MountKind::Cache {
            id: id.to_owned(),
            sharing,
        };
        let opts = BindOptions {
            selector,
            ..BindOptions::default()
        };
        self.push(target, source.output.clone(), kind, opts)
    }

    /// A tmpfs at `target`, limited to `size` bytes when given.
    pub fn tmpfs(self, target: &str, size: Option<i64>) -> Run {
        let kind = MountKind::Tmpfs {
            size: size.unwrap_or(0),
        };
        self.push(target, None, kind, BindOptions::default())
    }

    /// A secret mounted as the file `target`.
    pub fn secret(mut self, target: &str, opts: SecretOptions) -> Run {
        self.secrets.push((target.to_owned(), opts));
        self
    }

    /// A secret exposed as the environment variable `name`.
    pub fn secret_env(mut self, name: &str, id: &str, optional: bool) -> Run {
        self.secret_env.push(pb::SecretEnv {
            id: id.to_owned(),
            name: name.to_owned(),
            optional,
        });
        self
    }

    pub fn ssh(mut self, opts: SshOptions) -> Run {
        self.ssh.push(opts);
        self
    }

    pub fn proxy_env(mut self, proxy: pb::ProxyEnv) -> Run {
        self.proxy_env = Some(proxy);
        self
    }

    pub fn valid_exit_codes(mut self, codes: &[i32]) -> Run {
        self.valid_exit_codes = codes.to_vec();
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.base = self.base.env(key, value);
        self
    }

    pub fn cwd(mut self, dir: &str) -> Run {
        self.base = self.base.cwd(dir);
        self
    }

    pub fn user(mut self, user: &str) -> Run {
        self.base = self.base.user(user);
        self
    }

    /// The network mode of this step only.
    pub fn network(mut self, mode: NetMode) -> Run {
        self.network = Some(mode);
        self
    }

    /// The security mode of this step only.
    pub fn security(mut self, mode: SecurityMode) -> Run {
        self.security = Some(mode);
        self
    }

    pub fn custom_name(self, name: &str) -> Run {
        self.description(caps::CUSTOM_NAME, name)
    }

    pub fn description(mut self, key: &str, value: &str) -> Run {
        self.metadata
            .description
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Records that the op needs solver capability `id`.
    pub fn cap(mut self, id: &str) -> Run {
        cap(&mut self.metadata, id);
        self
    }

    pub fn ignore_cache(mut self) -> Run {
        self.metadata.ignore_cache = true;
        self
    }

    pub fn progress_group(mut self, id: &str, name: &str, weak: bool) -> Run {
        self.metadata.progress_group = Some(pb::ProgressGroup {
            id: id.to_owned(),
            name: name.to_owned(),
            weak,
        });
        self
    }

    /// The state of the root mount after the process ran.
    pub fn root(self) -> State {
        self.build().root()
    }

    /// Marshals the exec op the way BuildKit's Go client does: mounts sorted by target,
    /// equal inputs shared, an output only for writable bind mounts, secret and SSH
    /// mounts appended last.
    pub fn build(self) -> ExecState {
        let Run {
            base,
            args,
            mut mounts,
            secrets,
            secret_env,
            mut ssh,
            proxy_env,
            valid_exit_codes,
            mut metadata,
            network,
            security,
        } = self;
        mounts.sort_by(|a, b| a.target.cmp(&b.target));

        let mut env: Vec<(String, String)> = base.env.clone();
        for (i, s) in ssh.iter_mut().enumerate() {
            if s.target.is_none() {
                s.target = Some(format!("/run/buildkit/ssh_agent.{i}"));
            }
        }
        if let Some(first) = ssh.first()
            && !env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK")
        {
            env.push((
                "SSH_AUTH_SOCK".to_owned(),
                first.target.clone().unwrap_or_default(),
            ));
        }

        let network = network.or(base.network).unwrap_or(NetMode::Unset);
        let security = security.or(base.security).unwrap_or(SecurityMode::Sandbox);
        let meta = pb::Meta {
            args,
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: base.get_cwd().to_owned(),
            user: base.user.clone().unwrap_or_default(),
            proxy_env: proxy_env.clone(),
            extra_hosts: base.extra_hosts.clone(),
            hostname: base.hostname.clone().unwrap_or_default(),
            ulimit: base.ulimits.clone(),
            cgroup_parent: base.cgroup_parent.clone().unwrap_or_default(),
            remove_mount_stubs_recursive: true,
            valid_exit_codes: valid_exit_codes.clone(),
        };
        if !meta.ulimit.is_empty() {
            cap(&mut metadata, "exec.meta.ulimit");
        }
        if !meta.cgroup_parent.is_empty() {
            cap(&mut metadata, "exec.meta.cgroup.parent");
        }
        if !valid_exit_codes.is_empty() {
            cap(&mut metadata, "exec.validexitcode");
        }
        if network != NetMode::Unset {
            cap(&mut metadata, "exec.meta.network");
        }
        if security != SecurityMode::Sandbox {
            cap(&mut metadata, "exec.meta.security");
        }
        if proxy_env.is_some() {
            cap(&mut metadata, "exec.meta.proxyenv");
        }
        cap(&mut metadata, "exec.meta.base");
        for m in &mounts {
            if !m.selector.is_empty() {
                cap(&mut metadata, "exec.mount.selector");
            }
            match &m.kind {
                MountKind::Cache { .. } => {
                    cap(&mut metadata, "exec.mount.cache");
                    cap(&mut metadata, "exec.mount.cache.sharing");
                }
                MountKind::Tmpfs { size } => {
                    cap(&mut metadata, "exec.mount.tmpfs");
                    if *size > 0 {
                        cap(&mut metadata, "exec.mount.tmpfs.size");
                    }
                }
                MountKind::Bind if m.source.is_some() => cap(&mut metadata, "exec.mount.bind"),
                MountKind::Bind => {}
            }
        }
        if !secrets.is_empty() || !secret_env.is_empty() {
            cap(&mut metadata, "exec.mount.secret");
        }
        if !secret_env.is_empty() {
            cap(&mut metadata, "exec.secretenv");
        }
        if !ssh.is_empty() {
            cap(&mut metadata, "exec.mount.ssh");
        }

        let mut inputs = Vec::new();
        let mut pb_mounts = Vec::new();
        let mut outputs = Vec::new();
        let mut next_output = 0;
        for m in &mounts {
            let input = match &m.source {
                Some(out) => add_input(&mut inputs, out),
                None => pb::EMPTY_INPUT,
            };
            let is_bind = matches!(m.kind, MountKind::Bind);
            let output = if is_bind && !m.readonly && !m.no_output {
                next_output += 1;
                outputs.push((m.target.clone(), next_output - 1));
                next_output - 1
            } else {
                pb::SKIP_OUTPUT
            };
            let mut pm = pb::Mount {
                input,
                selector: m.selector.clone(),
                dest: m.target.clone(),
                output,
                readonly: m.readonly,
                ..Default::default()
            };
            match &m.kind {
                MountKind::Bind => {}
                MountKind::Cache { id, sharing } => {
                    pm.mount_type = MountType::Cache as i32;
                    pm.cache_opt = Some(pb::CacheOpt {
                        id: id.clone(),
                        sharing: *sharing as i32,
                    });
                }
                MountKind::Tmpfs { size } => {
                    pm.mount_type = MountType::Tmpfs as i32;
                    pm.tmpfs_opt = Some(pb::TmpfsOpt { size: *size });
                }
            }
            pb_mounts.push(pm);
        }
        // As in BuildKit's client, secret and SSH mounts have no input and leave `output`
        // unset (0); the solver never gives them outputs.
        for (target, s) in &secrets {
            pb_mounts.push(pb::Mount {
                input: pb::EMPTY_INPUT,
                dest: target.clone(),
                mount_type: MountType::Secret as i32,
                secret_opt: Some(pb::SecretOpt {
                    id: s.id.clone(),
                    uid: s.uid,
                    gid: s.gid,
                    mode: s.mode,
                    optional: s.optional,
                }),
                ..Default::default()
            });
        }
        for s in &ssh {
            pb_mounts.push(pb::Mount {
                input: pb::EMPTY_INPUT,
                dest: s.target.clone().unwrap_or_default(),
                mount_type: MountType::Ssh as i32,
                ssh_opt: Some(pb::SshOpt {
                    id: s.id.clone(),
                    uid: s.uid,
                    gid: s.gid,
                    mode: s.mode,
                    optional: s.optional,
                }),
                ..Default::default()
            });
        }

        let exec = pb::ExecOp {
            meta: Some(meta),
            mounts: pb_mounts,
            network: network as i32,
            security: security as i32,
            secretenv: secret_env,
            cdi_devices: Vec::new(),
        };
        let op = pb::Op {
            op: Some(OpKind::Exec(exec)),
            platform: Some(base.resolved_platform()),
            constraints: Some(pb::WorkerConstraints::default()),
            ..Default::default()
        };
        ExecState {
            vertex: Vertex::new(op, inputs, metadata),
            outputs,
            base,
        }
    }
}

impl ExecState {
    /// The root file system after the run (scratch if the root was read-only).
    pub fn root(&self) -> State {
        self.mount_output("/")
            .unwrap_or_else(|| self.base.with_output(None))
    }

    /// The state of the writable bind mount at `target` after the run.
    pub fn mount_output(&self, target: &str) -> Option<State> {
        let (_, index) = self.outputs.iter().find(|(t, _)| t == target)?;
        Some(self.base.with_output(Some(Output {
            vertex: self.vertex.clone(),
            index: *index,
        })))
    }
}
