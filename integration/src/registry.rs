//! A real registry per test: Debian's `docker-registry` (CNCF Distribution 2.8) on a
//! free loopback port with its own storage, config and access log, killed on drop.
//!
//! The access log is how tests see what crossed the wire: [`TestRegistry::requests`]
//! parses it, so a test can assert "no blob was downloaded" or "this blob was mounted,
//! not uploaded" against the server's own record rather than the client's claims.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_cache::registry::HostConfig;
use cairn_cache::registry::{CredentialStore, Login, RegistryClient, RegistryConfig, RetryPolicy};
use cairn_llb::Digest;

use crate::tools::{Skip, require_tool};

/// One line of the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub method: String,
    /// The request URI, query included, as the server logged it.
    pub uri: String,
    pub status: u16,
}

impl AccessEntry {
    /// Whether this request asked for blob `digest`'s bytes (GET on `/blobs/<digest>`).
    pub fn is_blob_download(&self, digest: &Digest) -> bool {
        self.method == "GET" && self.uri.contains("/blobs/") && self.uri.ends_with(digest.as_str())
    }

    /// Whether this request sent bytes for an upload session (`PATCH`, or `PUT` that
    /// closes one). `digest` narrows it to the `PUT` of that blob.
    pub fn is_blob_upload(&self, digest: Option<&Digest>) -> bool {
        if !self.uri.contains("/blobs/uploads/") {
            return false;
        }
        match digest {
            None => self.method == "PATCH" || self.method == "PUT",
            Some(d) => {
                let encoded = d.as_str().replace(':', "%3A");
                self.method == "PUT"
                    && (self.uri.contains(d.as_str()) || self.uri.contains(&encoded))
            }
        }
    }
}

/// Settings for [`TestRegistry::start_with`].
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Require HTTP basic auth (htpasswd, bcrypt) with this user.
    pub basic_auth: Option<Login>,
    /// Extra YAML appended to the config (e.g. a `auth.token` section); must not repeat
    /// top-level keys written here.
    pub extra_yaml: Option<String>,
    /// Serve HTTPS with a fresh self-signed certificate for `127.0.0.1` (needs `openssl`);
    /// clients must use `insecure = true` or trust [`TestRegistry::tls_certificate`].
    pub tls: bool,
}

/// A running `docker-registry`, removed with its storage on drop.
pub struct TestRegistry {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    log: PathBuf,
    login: Option<Login>,
    markers: AtomicU64,
    tls: bool,
}

impl std::fmt::Debug for TestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRegistry")
            .field("port", &self.port)
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl TestRegistry {
    /// Starts an anonymous registry.
    pub fn start() -> Result<TestRegistry, Skip> {
        TestRegistry::start_with(RegistryOptions::default())
    }

    /// Starts a registry with `options`. Panics (failing the test) when the registry is
    /// installed but does not come up, with its log in the message.
    pub fn start_with(options: RegistryOptions) -> Result<TestRegistry, Skip> {
        let bin = require_tool("docker-registry", "docker-registry")?;
        let openssl = if options.tls {
            Some(require_tool("openssl", "openssl")?)
        } else {
            None
        };
        // The port is free when probed but could be taken before the registry binds it;
        // a few attempts make that race harmless.
        let mut last_log = String::new();
        for _ in 0..3 {
            match try_start(&bin, openssl.as_deref(), &options) {
                Ok(r) => return Ok(r),
                Err(log) => last_log = log,
            }
        }
        panic!("docker-registry did not start; its log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`, the host part of references to this registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// The self-signed certificate served when started with `tls`.
    pub fn tls_certificate(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("tls.crt"))
    }

    /// The registry's storage root (`storage.filesystem.rootdirectory`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the registry keeps blob `digest`'s bytes (to corrupt it in tests).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.storage_dir().join(format!(
            "docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ))
    }

    /// The login required when started with basic auth.
    pub fn login(&self) -> Option<&Login> {
        self.login.as_ref()
    }

    /// Registry config for a client talking to this registry directly (plain HTTP).
    pub fn registry_config(&self) -> RegistryConfig {
        let mut cfg = RegistryConfig::default();
        cfg.hosts.insert(
            self.host(),
            HostConfig {
                http: !self.tls,
                insecure: self.tls,
                ..HostConfig::default()
            },
        );
        cfg
    }

    /// Registry config making `docker.io` mirror to this registry over plain HTTP, so
    /// `busybox` resolves here.
    pub fn docker_hub_mirror_config(&self) -> RegistryConfig {
        let mut cfg = self.registry_config();
        cfg.hosts.insert(
            "docker.io".to_owned(),
            HostConfig {
                mirrors: vec![self.host()],
                ..HostConfig::default()
            },
        );
        cfg
    }

    /// The same mirror setup as a `cairn.toml` (the `buildkitd.toml` shape).
    pub fn cairn_toml(&self) -> String {
        format!(
            "[registry.\"docker.io\"]\nmirrors = [\"{host}\"]\n\n[registry.\"{host}\"]\nhttp = true\n",
            host = self.host()
        )
    }

    /// Writes [`TestRegistry::cairn_toml`] to `path`.
    pub fn write_cairn_toml(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.cairn_toml())
    }

    /// A client for this registry: mirror config for `docker.io`, this registry's login
    /// if it has one, no Docker config file, and short retries so failures surface fast.
    pub fn client(&self) -> RegistryClient {
        self.client_builder()
            .build()
            .expect("registry client builds")
    }

    /// The builder behind [`TestRegistry::client`], to adjust (chunk size, credentials).
    pub fn client_builder(&self) -> cairn_cache::registry::RegistryClientBuilder {
        let mut creds = CredentialStore::anonymous();
        if let Some(l) = &self.login {
            creds = creds.with_login(&self.host(), l.clone());
        }
        RegistryClient::builder(self.docker_hub_mirror_config())
            .credentials(creds)
            .retry(RetryPolicy {
                attempts: 2,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(200),
            })
    }

    /// Every request the registry has logged so far, in order. Sends a marker request
    /// first and waits for it to appear, so requests answered before this call are in.
    pub fn requests(&self) -> Vec<AccessEntry> {
        if self.tls {
            // The marker is plain HTTP, which a TLS listener rejects before logging; a
            // pause stands in for it.
            std::thread::sleep(Duration::from_millis(200));
            let entries = parse_access_log(&std::fs::read_to_string(&self.log).unwrap_or_default());
            return entries;
        }
        let n = self.markers.fetch_add(1, Ordering::Relaxed);
        let marker = format!("/v2/?cairn-marker={n}");
        // The answer may be 401 on an auth-enabled registry: it is still logged.
        let _ = http_get(self.port, &marker);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let entries = parse_access_log(&std::fs::read_to_string(&self.log).unwrap_or_default());
            if entries.iter().any(|e| e.uri == marker) || Instant::now() > deadline {
                return entries
                    .into_iter()
                    .filter(|e| !e.uri.starts_with("/v2/?cairn-marker="))
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many times blob `digest`'s bytes were requested.
    pub fn blob_downloads(&self, digest: &Digest) -> usize {
        self.requests()
            .iter()
            .filter(|e| e.is_blob_download(digest))
            .count()
    }

    /// How many upload requests carried bytes (`PATCH`/closing `PUT`), for any blob.
    pub fn blob_upload_requests(&self) -> usize {
        self.requests()
            .iter()
            .filter(|e| e.is_blob_upload(None))
            .count()
    }

    /// The registry's whole log (access and application lines), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn try_start(
    bin: &Path,
    openssl: Option<&Path>,
    options: &RegistryOptions,
) -> Result<TestRegistry, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(&storage).map_err(|e| format!("{}: {e}", storage.display()))?;
    let mut yaml = format!(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  \
         filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: \
         127.0.0.1:{port}\n  secret: cairn-test-secret\n",
        storage.display()
    );
    if let Some(openssl) = openssl {
        let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let out = Command::new(openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output()
            .map_err(|e| format!("running openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl req: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            crt.display(),
            key.display()
        ));
    }
    if let Some(login) = &options.basic_auth {
        let hash = bcrypt::hash(&login.password, 4).map_err(|e| format!("bcrypt: {e}"))?;
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, format!("{}:{hash}\n", login.username))
            .map_err(|e| format!("{}: {e}", htpasswd.display()))?;
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: cairn-test\n    path: {}\n",
            htpasswd.display()
        ));
    }
    if let Some(extra) = &options.extra_yaml {
        yaml.push_str(extra);
    }
    let config = dir.path().join("config.yml");
    std::fs::write(&config, yaml).map_err(|e| format!("{}: {e}", config.display()))?;
    let log = dir.path().join("registry.log");
    let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
    let mut reg = TestRegistry {
        child,
        dir,
        port,
        log,
        login: options.basic_auth.clone(),
        markers: AtomicU64::new(0),
        tls: openssl.is_some(),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = reg.child.try_wait() {
            return Err(format!("exited with {status}\n{}", reg.log()));
        }
        if let Ok(status) = http_get(port, "/v2/") {
            // 401 means up, with auth enabled; 400 is a TLS listener refusing plain HTTP.
            if status == 200 || status == 401 || (status == 400 && reg.tls) {
                return Ok(reg);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no answer on 127.0.0.1:{port}/v2/ within 15 s\n{}",
                reg.log()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A minimal blocking `GET`, returning the status code. Used for readiness and log
/// markers, where pulling in an async client would add nothing.
fn http_get(port: u16, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head)?;
    let text = String::from_utf8_lossy(&head[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad answer {text:?}"),
            )
        })
}

/// Parses the combined-log-format lines of the access log, ignoring application lines:
/// `127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "" "agent"`.
pub fn parse_access_log(text: &str) -> Vec<AccessEntry> {
    text.lines()
        .filter(|l| !l.starts_with("time="))
        .filter_map(|line| {
            let (_, rest) = line.split_once("] \"")?;
            let (request, rest) = rest.split_once('"')?;
            let mut parts = request.split(' ');
            let method = parts.next()?.to_owned();
            let uri = parts.next()?.to_owned();
            let status = rest.trim_start().split(' ').next()?.parse().ok()?;
            Some(AccessEntry {
                method,
                uri,
                status,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_combined_log_lines_only() {
        let log = r#"time="2026-11-23T12:32:44Z" level=info msg="response completed" http.request.uri=/v2/
127.0.0.1 - - [23/Nov/2026:12:32:44 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"
127.0.0.1 - - [23/Nov/2026:12:32:44 +0000] "PUT /v2/a/blobs/uploads/u?_state=x&digest=sha256%3Aab HTTP/1.1" 201 0 "" "cairn/0.1.0"
garbage line
"#;
        let e = parse_access_log(log);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            AccessEntry {
                method: "GET".into(),
                uri: "/v2/".into(),
                status: 200
            }
        );
        assert_eq!(e[1].status, 201);
        assert!(e[1].is_blob_upload(None));
        let d = Digest::of_bytes(b"x");
        let get = AccessEntry {
            method: "GET".into(),
            uri: format!("/v2/a/blobs/{d}"),
            status: 200,
        };
        assert!(get.is_blob_download(&d));
        assert!(!get.is_blob_download(&Digest::of_bytes(b"y")));
        let put = AccessEntry {
            method: "PUT".into(),
            uri: format!(
                "/v2/a/blobs/uploads/u?digest={}",
                d.as_str().replace(':', "%3A")
            ),
            status: 201,
        };
        assert!(put.is_blob_upload(Some(&d)));
        assert!(!put.is_blob_upload(Some(&Digest::of_bytes(b"y"))));
    }
}
