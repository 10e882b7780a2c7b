//! Finding an OCI runtime that works on this host.
//!
//! `--version` succeeding is not enough: Debian's crun 1.8 starts but refuses hybrid
//! cgroup v1/v2 hosts, which only shows when it creates a container. So the probe runs
//! a real trivial container (the runtime's own `--version`, with the host's `/usr` bound
//! read-only for its libraries) under a cgroup, and the first candidate that gets
//! exit code 0 wins.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::error::ExecError;
use super::spec::{SpecInput, SpecMount, build_spec};

/// Which runtime CLI the binary speaks; both take the same `run`/`kill`/`delete` verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Runc,
    Crun,
    /// Another runtime with the runc command line (youki, runsc, ...).
    Other,
}

/// A runtime binary that passed the probe.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub path: PathBuf,
    pub kind: RuntimeKind,
    /// First line of `--version`.
    pub version: String,
}

/// Resolves a runtime name through `$PATH`; a name with a `/` is taken as a path.
pub fn find_binary(name: &Path) -> Option<PathBuf> {
    if name.components().count() > 1 || name.is_absolute() {
        return name.is_file().then(|| name.to_owned());
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Tries `candidates` in order and returns the first runtime that runs a container.
/// `scratch` is a directory the probe may use; it is emptied again before returning.
pub async fn probe(
    candidates: &[PathBuf],
    scratch: &Path,
    cgroup_parent: &str,
) -> Result<Runtime, ExecError> {
    let mut reasons = Vec::new();
    for cand in candidates {
        match probe_one(cand, scratch, cgroup_parent).await {
            Ok(rt) => {
                tracing::debug!(runtime = %rt.path.display(), version = %rt.version, "OCI runtime chosen");
                return Ok(rt);
            }
            Err(reason) => {
                tracing::debug!(runtime = %cand.display(), %reason, "OCI runtime rejected");
                reasons.push(format!("{}: {reason}", cand.display()));
            }
        }
    }
    Err(ExecError::NoRuntime {
        tried: candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        reasons: reasons.join("; "),
    })
}

async fn probe_one(cand: &Path, scratch: &Path, cgroup_parent: &str) -> Result<Runtime, String> {
    let path = find_binary(cand).ok_or_else(|| "not found".to_owned())?;
    let out = tokio::process::Command::new(&path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("--version: {e}"))?;
    if !out.status.success() {
        return Err(format!("--version exited with {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next().unwrap_or("").trim().to_owned();
    let kind = match version.split_whitespace().next() {
        Some("runc") => RuntimeKind::Runc,
        Some("crun") => RuntimeKind::Crun,
        _ => RuntimeKind::Other,
    };
    let id = format!(
        "cairn-probe-{}-{}",
        std::process::id(),
        super::runc::next_seq()
    );
    let dir = scratch.join(&id);
    let res = trivial_container(&path, &dir, &id, cgroup_parent).await;
    // The state dir and rootfs hold only what the probe made.
    let _ = tokio::process::Command::new(&path)
        .arg("--root")
        .arg(dir.join("state"))
        .args(["delete", "--force", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    res.map(|()| Runtime {
        path,
        kind,
        version,
    })
}

async fn trivial_container(
    bin: &Path,
    dir: &Path,
    id: &str,
    cgroup_parent: &str,
) -> Result<(), String> {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| format!("creating {}: {e}", rootfs.display()))?;
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, super::hostfiles::hosts_file("probe", &[]))
        .map_err(|e| e.to_string())?;
    let resolv = dir.join("resolv.conf");
    std::fs::write(&resolv, "").map_err(|e| e.to_string())?;
    // The binary and its shared libraries, from wherever the host keeps them.
    let mut mounts = vec![SpecMount {
        dest: "/probe-runtime".into(),
        typ: "bind",
        source: bin.to_owned(),
        options: vec!["rbind".into(), "ro".into()],
    }];
    for d in ["/usr", "/lib", "/lib64", "/lib32"] {
        if let Ok(real) = std::fs::canonicalize(d)
            && real.is_dir()
            && !mounts.iter().any(|m: &SpecMount| m.dest == d)
        {
            mounts.push(SpecMount {
                dest: d.to_owned(),
                typ: "bind",
                source: real,
                options: vec!["rbind".into(), "ro".into()],
            });
        }
    }
    let meta = super::request::ExecMeta::new(vec!["/probe-runtime".into(), "--version".into()]);
    let identity = super::user::Identity {
        uid: 0,
        gid: 0,
        additional_gids: vec![0],
    };
    let spec = build_spec(&SpecInput {
        rootfs: &rootfs,
        meta: &meta,
        identity: &identity,
        hosts: &hosts,
        resolv_conf: &resolv,
        mounts: &mounts,
        cgroups_path: &format!("/{cgroup_parent}/{id}"),
        no_new_privileges: true,
        cgroup_namespace: super::runc::cgroup2_unified(),
    })
    .map_err(|e| e.to_string())?;
    let json = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("config.json"), json).map_err(|e| e.to_string())?;
    let out = tokio::process::Command::new(bin)
        .arg("--root")
        .arg(dir.join("state"))
        .arg("run")
        .arg("--bundle")
        .arg(dir)
        .arg(id)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "trivial container failed ({}): {}",
            out.status,
            err.lines().last().unwrap_or("").trim()
        ))
    }
}
