//! `ExecOp`: run a process over a set of mounts.

use serde::Serialize;

use super::{is_false, is_zero_i32, is_zero_i64, is_zero_u32};

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ExecOp {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[prost(message, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[prost(enumeration = "NetMode", tag = "3")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub network: i32,
    #[prost(enumeration = "SecurityMode", tag = "4")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub security: i32,
    #[prost(message, repeated, tag = "5")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secretenv: Vec<SecretEnv>,
    #[prost(message, repeated, tag = "6")]
    #[serde(rename = "cdiDevices", skip_serializing_if = "Vec::is_empty")]
    pub cdi_devices: Vec<CdiDevice>,
}

/// The process: argv, environment, working directory, user and sandbox details.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Meta {
    #[prost(string, repeated, tag = "1")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `KEY=VALUE` strings.
    #[prost(string, repeated, tag = "2")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[prost(string, tag = "3")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cwd: String,
    #[prost(string, tag = "4")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[prost(message, optional, tag = "5")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_env: Option<ProxyEnv>,
    #[prost(message, repeated, tag = "6")]
    #[serde(rename = "extraHosts", skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<HostIp>,
    #[prost(string, tag = "7")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    // Field 8 (shmSize) was removed from BuildKit in 2021 and must not be reused.
    #[prost(message, repeated, tag = "9")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ulimit: Vec<Ulimit>,
    #[prost(string, tag = "10")]
    #[serde(rename = "cgroupParent", skip_serializing_if = "String::is_empty")]
    pub cgroup_parent: String,
    #[prost(bool, tag = "11")]
    #[serde(rename = "removeMountStubsRecursive", skip_serializing_if = "is_false")]
    pub remove_mount_stubs_recursive: bool,
    /// Exit codes counted as success; empty means only 0.
    #[prost(int32, repeated, tag = "12")]
    #[serde(rename = "validExitCodes", skip_serializing_if = "Vec::is_empty")]
    pub valid_exit_codes: Vec<i32>,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct HostIp {
    #[prost(string, tag = "1")]
    #[serde(rename = "Host", skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[prost(string, tag = "2")]
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct Ulimit {
    #[prost(string, tag = "1")]
    #[serde(rename = "Name", skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[prost(int64, tag = "2")]
    #[serde(rename = "Soft", skip_serializing_if = "is_zero_i64")]
    pub soft: i64,
    #[prost(int64, tag = "3")]
    #[serde(rename = "Hard", skip_serializing_if = "is_zero_i64")]
    pub hard: i64,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct ProxyEnv {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub http_proxy: String,
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub https_proxy: String,
    #[prost(string, tag = "3")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ftp_proxy: String,
    #[prost(string, tag = "4")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub no_proxy: String,
    #[prost(string, tag = "5")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub all_proxy: String,
}

/// A secret exposed as an environment variable.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct SecretEnv {
    #[prost(string, tag = "1")]
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The environment variable's name.
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[prost(bool, tag = "3")]
    #[serde(skip_serializing_if = "is_false")]
    pub optional: bool,
}

/// A CDI device request such as `vendor.com/gpu=0` (BuildKit v0.20+).
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct CdiDevice {
    #[prost(string, tag = "1")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[prost(bool, tag = "2")]
    #[serde(skip_serializing_if = "is_false")]
    pub optional: bool,
}

/// One mount of the process. `input` indexes `Op.inputs` (or is -1 for scratch);
/// `output` is the exec's output index for this mount (or -1 for none).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Mount {
    #[prost(int64, tag = "1")]
    pub input: i64,
    #[prost(string, tag = "2")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub selector: String,
    #[prost(string, tag = "3")]
    #[serde(skip_serializing_if = "String::is_empty")]
    pub dest: String,
    #[prost(int64, tag = "4")]
    pub output: i64,
    #[prost(bool, tag = "5")]
    #[serde(skip_serializing_if = "is_false")]
    pub readonly: bool,
    #[prost(enumeration = "MountType", tag = "6")]
    #[serde(rename = "mountType", skip_serializing_if = "is_zero_i32")]
    pub mount_type: i32,
    #[prost(message, optional, tag = "19")]
    #[serde(rename = "TmpfsOpt", skip_serializing_if = "Option::is_none")]
    pub tmpfs_opt: Option<TmpfsOpt>,
    #[prost(message, optional, tag = "20")]
    #[serde(rename = "cacheOpt", skip_serializing_if = "Option::is_none")]
    pub cache_opt: Option<CacheOpt>,
    #[prost(message, optional, tag = "21")]
    #[serde(rename = "secretOpt", skip_serializing_if = "Option::is_none")]
    pub secret_opt: Option<SecretOpt>,
    #[prost(message, optional, tag = "22")]
    #[serde(rename = "SSHOpt", skip_serializing_if = "Option::is_none")]
    pub ssh_opt: Option<SshOpt>,
    /// A result from a gateway container, mounted instead of an input.
    #[prost(string, tag = "23")]
    #[serde(rename = "resultID", skip_serializing_if = "String::is_empty")]
    pub result_id: String,
    #[prost(enumeration = "MountContentCache", tag = "24")]
    #[serde(rename = "contentCache", skip_serializing_if = "is_zero_i32")]
    pub content_cache: i32,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct TmpfsOpt {
    /// Size limit in bytes; 0 means the kernel default.
    #[prost(int64, tag = "1")]
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub size: i64,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct CacheOpt {
    /// The cache namespace shared by every mount with the same ID.
    #[prost(string, tag = "1")]
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[prost(enumeration = "CacheSharingOpt", tag = "2")]
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub sharing: i32,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct SecretOpt {
    #[prost(string, tag = "1")]
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[prost(uint32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub uid: u32,
    #[prost(uint32, tag = "3")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub gid: u32,
    #[prost(uint32, tag = "4")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    #[prost(bool, tag = "5")]
    #[serde(skip_serializing_if = "is_false")]
    pub optional: bool,
}

#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct SshOpt {
    #[prost(string, tag = "1")]
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[prost(uint32, tag = "2")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub uid: u32,
    #[prost(uint32, tag = "3")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub gid: u32,
    #[prost(uint32, tag = "4")]
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    #[prost(bool, tag = "5")]
    #[serde(skip_serializing_if = "is_false")]
    pub optional: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum NetMode {
    /// The default sandboxed network.
    Unset = 0,
    Host = 1,
    None = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SecurityMode {
    Sandbox = 0,
    /// Privileged; gated by the `security.insecure` entitlement.
    Insecure = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MountType {
    Bind = 0,
    Secret = 1,
    Ssh = 2,
    Cache = 3,
    Tmpfs = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MountContentCache {
    Default = 0,
    On = 1,
    Off = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CacheSharingOpt {
    /// Concurrent writers share one mount.
    Shared = 0,
    /// A second writer gets a fresh mount.
    Private = 1,
    /// A second writer waits.
    Locked = 2,
}
