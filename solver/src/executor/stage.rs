//! Everything done before the runtime starts: checking the request, resolving the
//! user, creating the working directory, noting which mount points will be stubs,
//! writing hosts and resolv.conf, staging secrets and writing `config.json`.

use std::path::Path;

use super::error::ExecError;
use super::guard::RunGuard;
use super::hostfiles::{hosts_file, resolv_conf};
use super::request::{DEFAULT_HOSTNAME, MountKind, RunRequest};
use super::rootpath::Root;
use super::runc::{RuncConfig, cgroup2_unified};
use super::spec::{SpecInput, SpecMount, build_spec};
use super::user::{Identity, resolve_user};

pub(crate) fn validate(req: &RunRequest) -> Result<(), ExecError> {
    if req.meta.args.is_empty() {
        return Err(ExecError::Invalid(
            "no command given (args is empty)".into(),
        ));
    }
    if !req.meta.cwd.starts_with('/') {
        return Err(ExecError::Invalid(format!(
            "working directory {:?} is not absolute",
            req.meta.cwd
        )));
    }
    for m in &req.mounts {
        if !m.dest.starts_with('/') || m.dest.trim_matches('/').is_empty() {
            return Err(ExecError::Invalid(format!(
                "mount destination {:?} must be an absolute path below /",
                m.dest
            )));
        }
        if let MountKind::Bind { src, .. } = &m.kind
            && !src.is_absolute()
        {
            return Err(ExecError::Invalid(format!(
                "bind source {} is not absolute",
                src.display()
            )));
        }
    }
    if !req.rootfs.is_absolute() {
        return Err(ExecError::Invalid(format!(
            "rootfs {} is not absolute",
            req.rootfs.display()
        )));
    }
    Ok(())
}

pub(crate) fn stage_err(
    what: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> ExecError {
    let path = path.to_owned();
    move |source| ExecError::Stage { what, path, source }
}

/// Everything before the runtime starts: user, cwd, stubs, host files, secrets, spec.
pub(crate) fn stage(
    cfg: &RuncConfig,
    req: &RunRequest,
    guard: &mut RunGuard,
) -> Result<(), ExecError> {
    let meta = &req.meta;
    let rootfs = &req.rootfs;
    let rp_err = |path: &str| {
        let path = path.to_owned();
        let rootfs = rootfs.clone();
        move |source| ExecError::RootfsPath {
            path,
            rootfs,
            source,
        }
    };
    std::fs::create_dir(&guard.run_dir).map_err(stage_err("run dir", &guard.run_dir))?;
    let identity: Identity = resolve_user(rootfs, &meta.user)?;
    let root = Root::open(rootfs).map_err(rp_err("/"))?;

    root.mkdir_all(&meta.cwd, identity.uid, identity.gid)
        .map_err(rp_err(&meta.cwd))?;

    // Mount points the runtime will create: remember which did not exist so they can be
    // removed again and never end up in the step's layer. After the cwd, which stays.
    let mut dests: Vec<&str> = vec!["/proc", "/dev", "/sys", "/etc/resolv.conf", "/etc/hosts"];
    dests.extend(req.mounts.iter().map(|m| m.dest.as_str()));
    for d in dests {
        let missing = root.missing(d).map_err(rp_err(d))?;
        if let Some(first) = missing.first() {
            let times = root.parent_times(first).map_err(rp_err(d))?;
            guard.stubs.push((missing, times));
        }
    }

    let hostname = meta.hostname.as_deref().unwrap_or(DEFAULT_HOSTNAME);
    let hosts = guard.run_dir.join("hosts");
    std::fs::write(&hosts, hosts_file(hostname, &meta.extra_hosts))
        .map_err(stage_err("hosts file", &hosts))?;
    let host_resolv = match std::fs::read_to_string(&cfg.host_resolv_conf) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(stage_err("host resolv.conf", &cfg.host_resolv_conf)(e)),
    };
    let resolv = guard.run_dir.join("resolv.conf");
    std::fs::write(&resolv, resolv_conf(&host_resolv, meta.network))
        .map_err(stage_err("resolv.conf", &resolv))?;

    let mut mounts = Vec::new();
    for (i, m) in req.mounts.iter().enumerate() {
        let sm = match &m.kind {
            MountKind::Bind { src, readonly } => {
                let mut options = vec!["rbind".to_owned()];
                if *readonly {
                    options.push("ro".into());
                }
                SpecMount {
                    dest: m.dest.clone(),
                    typ: "bind",
                    source: src.clone(),
                    options,
                }
            }
            MountKind::Tmpfs { size } => {
                let mut options = vec!["nosuid".to_owned(), "nodev".to_owned()];
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                SpecMount {
                    dest: m.dest.clone(),
                    typ: "tmpfs",
                    source: "tmpfs".into(),
                    options,
                }
            }
            MountKind::Secret(secret) => {
                let dir = guard.secrets_dir()?;
                let file = dir.join(i.to_string());
                write_secret(&file, secret).map_err(stage_err("secret file", &file))?;
                SpecMount {
                    dest: m.dest.clone(),
                    typ: "bind",
                    source: file,
                    options: ["rbind", "ro", "nosuid", "nodev", "noexec"]
                        .map(String::from)
                        .to_vec(),
                }
            }
        };
        mounts.push(sm);
    }
    // Parents before children, whatever order the caller used.
    mounts.sort_by_key(|m| m.dest.split('/').filter(|c| !c.is_empty()).count());

    let spec = build_spec(&SpecInput {
        rootfs,
        meta,
        identity: &identity,
        hosts: &hosts,
        resolv_conf: &resolv,
        mounts: &mounts,
        cgroups_path: &format!("/{}/{}", cfg.cgroup_parent, guard.id),
        no_new_privileges: cfg.no_new_privileges,
        cgroup_namespace: cgroup2_unified(),
    })?;
    let config = guard.run_dir.join("config.json");
    let json = serde_json::to_vec_pretty(&spec).map_err(|e| ExecError::Spec(e.to_string()))?;
    std::fs::write(&config, json).map_err(stage_err("config.json", &config))?;
    Ok(())
}

fn write_secret(path: &Path, s: &super::request::SecretFile) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&s.data)?;
    std::os::unix::fs::fchown(&f, Some(s.uid), Some(s.gid))?;
    f.set_permissions(std::fs::Permissions::from_mode(s.mode & 0o7777))?;
    Ok(())
}
