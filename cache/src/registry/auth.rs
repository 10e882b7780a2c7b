//! Registry authentication: `WWW-Authenticate` challenges, Docker credentials, and the
//! bearer tokens fetched for them.
//!
//! Credentials come from explicitly set logins first, then `~/.docker/config.json`
//! (`$DOCKER_CONFIG/config.json`): `credHelpers.<host>`, then `credsStore`, both run as
//! `docker-credential-<name> get`, then `auths.<host>.auth` (base64 `user:pass`). A
//! missing helper binary means anonymous access, as Docker does. An identity token (user
//! `<token>`) is an OAuth2 refresh token, exchanged at the token endpoint by `POST`.
//! Bearer tokens are cached per (host, scope) until shortly before they expire.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;

use super::error::RegistryError;

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The user name Docker uses for a login that is an identity (OAuth2 refresh) token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

impl Login {
    /// A login holding an identity token, as Docker stores it.
    pub fn identity_token(token: impl Into<String>) -> Login {
        Login {
            username: IDENTITY_TOKEN_USER.to_owned(),
            password: token.into(),
        }
    }

    /// Whether `password` is an identity token to exchange at the token endpoint.
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USER
    }

    /// The `Authorization: Basic …` value.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            B64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// One parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value (`Bearer realm="…",service="…",scope="…"`).
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    Some(Challenge::Bearer {
        realm: params.get("realm")?.clone(),
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `k=v` or `k="v with \" escapes"`, comma separated; keys lowercased.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n);
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), val.trim().to_owned());
    }
    out
}

/// Where logins come from.
#[derive(Debug, Default)]
pub struct CredentialStore {
    explicit: BTreeMap<String, Login>,
    docker_config: Option<PathBuf>,
    /// Searched for `docker-credential-*` before `PATH`.
    helper_dirs: Vec<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperReply {
    username: String,
    secret: String,
}

impl CredentialStore {
    /// No credentials at all.
    pub fn anonymous() -> CredentialStore {
        CredentialStore::default()
    }

    /// Docker's config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn from_docker_env() -> CredentialStore {
        let path = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .map(|d| d.join("config.json"));
        CredentialStore {
            docker_config: path,
            ..CredentialStore::default()
        }
    }

    /// Reads logins from this Docker config file.
    pub fn with_docker_config(mut self, path: impl Into<PathBuf>) -> CredentialStore {
        self.docker_config = Some(path.into());
        self
    }

    /// Looks for credential helpers in `dir` before `PATH`.
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> CredentialStore {
        self.helper_dirs.push(dir.into());
        self
    }

    /// Uses `login` for `host`, ahead of any config file.
    pub fn with_login(mut self, host: &str, login: Login) -> CredentialStore {
        self.explicit.insert(host.to_owned(), login);
        self
    }

    /// The login for `host` (the reference host, e.g. `docker.io`), if any.
    pub fn lookup(&self, host: &str) -> Result<Option<Login>, RegistryError> {
        if let Some(l) = self.explicit.get(host) {
            return Ok(Some(l.clone()));
        }
        let Some(path) = &self.docker_config else {
            return Ok(None);
        };
        let cfg = match read_docker_config(path)? {
            Some(c) => c,
            None => return Ok(None),
        };
        let keys = config_keys(host);
        let helper = keys
            .iter()
            .find_map(|k| cfg.cred_helpers.get(k))
            .or(cfg.creds_store.as_ref());
        if let Some(helper) = helper
            && let Some(l) = run_helper(&self.helper_dirs, helper, &keys[0])?
        {
            return Ok(Some(l));
        }
        for k in &keys {
            if let Some(entry) = cfg.auths.get(k) {
                return decode_auth(path, k, entry);
            }
        }
        // Keys written as URLs (`https://host/v1/`).
        for (k, entry) in &cfg.auths {
            if keys.iter().any(|h| strip_url(k) == h) {
                return decode_auth(path, k, entry);
            }
        }
        Ok(None)
    }
}

fn read_docker_config(path: &Path) -> Result<Option<DockerConfigFile>, RegistryError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(RegistryError::Credentials {
                source_name: path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| RegistryError::Credentials {
            source_name: path.display().to_string(),
            message: format!("invalid JSON: {e}"),
        })
}

/// The keys Docker may have stored `host` under, most specific first.
fn config_keys(host: &str) -> Vec<String> {
    if host == crate::reference::DOCKER_HUB {
        vec![
            "https://index.docker.io/v1/".to_owned(),
            "index.docker.io".to_owned(),
            "docker.io".to_owned(),
            "registry-1.docker.io".to_owned(),
        ]
    } else {
        vec![host.to_owned()]
    }
}

fn strip_url(k: &str) -> &str {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    k.split('/').next().unwrap_or(k)
}

fn decode_auth(path: &Path, key: &str, entry: &DockerAuth) -> Result<Option<Login>, RegistryError> {
    let err = |message: String| RegistryError::Credentials {
        source_name: format!("{} (auths.{key})", path.display()),
        message,
    };
    if let Some(token) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Login::identity_token(token)));
    }
    if let Some(a) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = B64
            .decode(a.trim())
            .map_err(|e| err(format!("auth is not base64: {e}")))?;
        let text = String::from_utf8(raw).map_err(|_| err("auth is not UTF-8".into()))?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| err("auth is not user:password".into()))?;
        return Ok(Some(Login {
            username: u.to_owned(),
            password: p.to_owned(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Login {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

/// Runs `docker-credential-<helper> get` with the server on stdin.
fn run_helper(
    dirs: &[PathBuf],
    helper: &str,
    server: &str,
) -> Result<Option<Login>, RegistryError> {
    use std::io::Write as _;
    let bin = format!("docker-credential-{helper}");
    let program = dirs
        .iter()
        .map(|d| d.join(&bin))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(&bin));
    let err = |message: String| RegistryError::Credentials {
        source_name: bin.clone(),
        message,
    };
    let child = std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(helper = %bin, "credential helper not installed; anonymous access");
            return Ok(None);
        }
        Err(e) => return Err(err(format!("cannot run: {e}"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| err(format!("writing stdin: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        // Helpers report an unknown server this way; that means "no login", not failure.
        if text.contains("credentials not found") {
            return Ok(None);
        }
        return Err(err(format!("exited with {}: {}", out.status, text.trim())));
    }
    let reply: HelperReply =
        serde_json::from_slice(&out.stdout).map_err(|e| err(format!("invalid reply: {e}")))?;
    Ok(Some(Login {
        username: reply.username,
        password: reply.secret,
    }))
}

/// Bearer tokens by (host, scope), and which hosts answered with a Basic challenge.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: Mutex<HashMap<(String, String), (String, Instant)>>,
    basic_hosts: Mutex<HashMap<String, ()>>,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
pub(crate) struct TokenReply {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenCache {
    pub fn get(&self, host: &str, scope: &str) -> Option<String> {
        let map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(host.to_owned(), scope.to_owned()))
            .filter(|(_, until)| *until > Instant::now())
            .map(|(t, _)| t.clone())
    }

    pub fn put(&self, host: &str, scope: &str, token: String, expires_in: Option<u64>) {
        // Registries must give at least 60 s; renew 10 s early so a request in flight
        // does not race the expiry.
        let life = Duration::from_secs(expires_in.unwrap_or(60).max(60) - 10);
        let mut map = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(
            (host.to_owned(), scope.to_owned()),
            (token, Instant::now() + life),
        );
    }

    pub fn mark_basic(&self, host: &str) {
        self.basic_hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_owned(), ());
    }

    pub fn is_basic(&self, host: &str) -> bool {
        self.basic_hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        let c = parse_challenge(r#"bearer realm=http://h/t, scope="a:b:pull,push", x="q\"q""#);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "http://h/t".into(),
                service: None,
                scope: Some("a:b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn reads_docker_config_auths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = B64.encode("alice:s3cret:x");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},
                "http://reg.example.com:5000/v2/":{{"username":"bob","password":"pw"}},
                "bad.example.com":{{"auth":"!!!"}},
                "tok.example.com":{{"auth":"","identitytoken":"refresh-me"}}}}}}"#
            ),
        )
        .unwrap();
        let store = CredentialStore::anonymous().with_docker_config(&path);
        assert_eq!(
            store.lookup("tok.example.com").unwrap(),
            Some(Login::identity_token("refresh-me"))
        );
        assert!(
            store
                .lookup("tok.example.com")
                .unwrap()
                .unwrap()
                .is_identity_token()
        );
        let l = store.lookup("docker.io").unwrap().unwrap();
        assert_eq!(
            (l.username.as_str(), l.password.as_str()),
            ("alice", "s3cret:x")
        );
        let l = store.lookup("reg.example.com:5000").unwrap().unwrap();
        assert_eq!(l.username, "bob");
        assert_eq!(store.lookup("other.example.com").unwrap(), None);
        let e = store.lookup("bad.example.com").unwrap_err().to_string();
        assert!(
            e.contains("auths.bad.example.com") && e.contains("base64"),
            "{e}"
        );
        let store = store.with_login(
            "other.example.com",
            Login {
                username: "u".into(),
                password: "p".into(),
            },
        );
        assert_eq!(
            store
                .lookup("other.example.com")
                .unwrap()
                .unwrap()
                .basic_header(),
            "Basic dTpw"
        );
    }

    #[test]
    fn missing_config_or_helper_means_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore::anonymous().with_docker_config(dir.path().join("none.json"));
        assert_eq!(store.lookup("docker.io").unwrap(), None);
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credsStore":"cairn-test-no-such-helper"}"#).unwrap();
        let store = CredentialStore::anonymous().with_docker_config(&path);
        assert_eq!(store.lookup("docker.io").unwrap(), None);
        std::fs::write(&path, "{not json").unwrap();
        assert!(store.lookup("docker.io").is_err());
    }

    #[test]
    fn runs_a_credential_helper() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("docker-credential-cairntest");
        std::fs::write(
            &bin,
            "#!/bin/sh\nread server\necho \"{\\\"ServerURL\\\":\\\"$server\\\",\\\"Username\\\":\\\"helper-user\\\",\\\"Secret\\\":\\\"$server\\\"}\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"reg.example.com":"cairntest"}}"#).unwrap();
        let store = CredentialStore::anonymous()
            .with_docker_config(&path)
            .with_helper_dir(dir.path());
        let l = store.lookup("reg.example.com").unwrap().unwrap();
        assert_eq!(
            (l.username.as_str(), l.password.as_str()),
            ("helper-user", "reg.example.com")
        );
    }

    #[test]
    fn token_cache_is_per_scope() {
        let c = TokenCache::default();
        c.put("h", "repository:a:pull", "t1".into(), Some(300));
        assert_eq!(c.get("h", "repository:a:pull").as_deref(), Some("t1"));
        assert_eq!(c.get("h", "repository:a:pull,push"), None);
        assert_eq!(c.get("other", "repository:a:pull"), None);
        assert!(!c.is_basic("h"));
        c.mark_basic("h");
        assert!(c.is_basic("h"));
    }
}
