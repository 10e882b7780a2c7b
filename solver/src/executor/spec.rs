//! The OCI runtime `config.json` for one build step: containerd's default Linux spec as
//! BuildKit adjusts it (`executor/oci/spec.go`, `spec_linux.go`), written with `oci-spec`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimit, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use super::error::ExecError;
use super::request::{ExecMeta, NetMode, Ulimit};
use super::user::Identity;

/// containerd's `defaultUnixCaps`, which BuildKit uses unchanged for sandboxed steps.
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// containerd's default masked paths: kernel interfaces a build has no business reading.
const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// containerd's default read-only paths.
const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A mount already decided by the executor: host source, type and options.
#[derive(Debug, Clone)]
pub(crate) struct SpecMount {
    pub dest: String,
    pub typ: &'static str,
    pub source: PathBuf,
    pub options: Vec<String>,
}

/// Inputs to [`build_spec`] that the executor computed for this run.
pub(crate) struct SpecInput<'a> {
    pub rootfs: &'a Path,
    pub meta: &'a ExecMeta,
    pub identity: &'a Identity,
    pub hosts: &'a Path,
    pub resolv_conf: &'a Path,
    pub mounts: &'a [SpecMount],
    pub cgroups_path: &'a str,
    /// BuildKit sets `WithNewPrivileges` so `su`/`sudo` work in `RUN`; the config may
    /// tighten that.
    pub no_new_privileges: bool,
    /// Only on a pure cgroup v2 host, as BuildKit's `cgroupV2NamespaceSupported`.
    pub cgroup_namespace: bool,
}

fn spec_err(e: impl std::fmt::Display) -> ExecError {
    ExecError::Spec(e.to_string())
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, ExecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
        .build()
        .map_err(spec_err)
}

/// The standard kernel file systems every container gets (containerd's `defaultMounts`
/// minus `/run`, which BuildKit removes so images keep their own `/run`), then the
/// read-only cgroup file system and the generated resolv.conf and hosts.
fn base_mounts(resolv_conf: &Path, hosts: &Path) -> Result<Vec<Mount>, ExecError> {
    let ro_file = ["nosuid", "noexec", "nodev", "rbind", "ro"];
    let path_str = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| ExecError::Spec(format!("state path {} is not UTF-8", p.display())))
    };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/etc/resolv.conf",
            "bind",
            &path_str(resolv_conf)?,
            &ro_file,
        )?,
        mount("/etc/hosts", "bind", &path_str(hosts)?, &ro_file)?,
    ])
}

fn rlimit(u: &Ulimit) -> Result<PosixRlimit, ExecError> {
    let name = format!("RLIMIT_{}", u.name.to_ascii_uppercase());
    let typ: PosixRlimitType = serde_json::from_value(serde_json::Value::String(name.clone()))
        .map_err(|_| ExecError::Invalid(format!("unknown ulimit {:?}", u.name)))?;
    if u.soft > u.hard {
        return Err(ExecError::Invalid(format!(
            "ulimit {}: soft limit {} above hard limit {}",
            u.name, u.soft, u.hard
        )));
    }
    PosixRlimitBuilder::default()
        .typ(typ)
        .soft(u.soft)
        .hard(u.hard)
        .build()
        .map_err(spec_err)
}

pub(crate) fn build_spec(input: &SpecInput<'_>) -> Result<Spec, ExecError> {
    let meta = input.meta;
    let caps: Capabilities = DEFAULT_CAPS.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .permitted(caps.clone())
        .effective(caps)
        .build()
        .map_err(spec_err)?;
    let user = UserBuilder::default()
        .uid(input.identity.uid)
        .gid(input.identity.gid)
        .additional_gids(input.identity.additional_gids.clone())
        .build()
        .map_err(spec_err)?;
    let rlimits = meta
        .ulimits
        .iter()
        .map(rlimit)
        .collect::<Result<Vec<_>, _>>()?;
    // Always set: the builder's default would otherwise bring oci-spec's NOFILE=1024,
    // while BuildKit leaves the limits alone unless the step asks.
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(meta.args.clone())
        .env(meta.env.clone())
        .cwd(meta.cwd.as_str())
        .capabilities(capabilities)
        .no_new_privileges(input.no_new_privileges)
        .rlimits(rlimits)
        .build()
        .map_err(spec_err)?;

    let mut ns_types = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if meta.network == NetMode::None {
        // runc and crun bring `lo` up in a network namespace they create themselves.
        ns_types.push(LinuxNamespaceType::Network);
    }
    if input.cgroup_namespace {
        ns_types.push(LinuxNamespaceType::Cgroup);
    }
    let namespaces = ns_types
        .into_iter()
        .map(|t| {
            LinuxNamespaceBuilder::default()
                .typ(t)
                .build()
                .map_err(spec_err)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let deny_all_devices = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .map_err(spec_err)?;
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(input.cgroups_path)
        .resources(
            LinuxResourcesBuilder::default()
                .devices(vec![deny_all_devices])
                .build()
                .map_err(spec_err)?,
        )
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(spec_err)?;

    let mut mounts = base_mounts(input.resolv_conf, input.hosts)?;
    for m in input.mounts {
        mounts.push(
            MountBuilder::default()
                .destination(m.dest.as_str())
                .typ(m.typ)
                .source(m.source.clone())
                .options(m.options.clone())
                .build()
                .map_err(spec_err)?,
        );
    }

    SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(input.rootfs)
                .readonly(false)
                .build()
                .map_err(spec_err)?,
        )
        .process(process)
        .hostname(
            meta.hostname
                .as_deref()
                .unwrap_or(super::request::DEFAULT_HOSTNAME),
        )
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(spec_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_spec(meta: &ExecMeta) -> Result<Spec, ExecError> {
        let id = Identity {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![1000, 10],
        };
        let mounts = [SpecMount {
            dest: "/cache".into(),
            typ: "bind",
            source: "/host/cache".into(),
            options: vec!["rbind".into()],
        }];
        build_spec(&SpecInput {
            rootfs: Path::new("/r"),
            meta,
            identity: &id,
            hosts: Path::new("/s/hosts"),
            resolv_conf: Path::new("/s/resolv.conf"),
            mounts: &mounts,
            cgroups_path: "/cairn/x",
            no_new_privileges: false,
            cgroup_namespace: false,
        })
    }

    #[test]
    fn spec_has_buildkit_defaults() {
        let mut meta = ExecMeta::new(vec!["sh".into()]);
        meta.ulimits.push(Ulimit {
            name: "nofile".into(),
            soft: 10,
            hard: 20,
        });
        let v = serde_json::to_value(input_spec(&meta).unwrap()).unwrap();
        assert_eq!(v["hostname"], "buildkitsandbox");
        assert_eq!(
            v["process"]["user"]["additionalGids"],
            serde_json::json!([1000, 10])
        );
        assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 14);
        assert!(caps.contains(&serde_json::json!("CAP_NET_BIND_SERVICE")));
        let ns: Vec<_> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_owned())
            .collect();
        assert!(ns.contains(&"network".to_owned()), "{ns:?}");
        let dests: Vec<_> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(dests.last().map(String::as_str), Some("/cache"));
        assert!(dests.contains(&"/etc/hosts".to_owned()));
        assert!(!dests.contains(&"/run".to_owned()));
        assert_eq!(v["linux"]["maskedPaths"].as_array().unwrap().len(), 11);
    }

    #[test]
    fn host_network_has_no_netns_and_bad_ulimits_fail() {
        let mut meta = ExecMeta::new(vec!["sh".into()]);
        meta.network = NetMode::Host;
        let v = serde_json::to_value(input_spec(&meta).unwrap()).unwrap();
        assert!(!v["linux"]["namespaces"].to_string().contains("network"));
        assert_eq!(v["process"]["rlimits"], serde_json::json!([]));
        meta.ulimits.push(Ulimit {
            name: "bogus".into(),
            soft: 1,
            hard: 1,
        });
        assert!(input_spec(&meta).is_err());
    }
}
