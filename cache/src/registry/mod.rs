//! The registry client: resolve image names to manifests, fetch and push blobs and
//! manifests over the OCI distribution API, with mirrors, auth and retries.
//!
//! # Why `reqwest` directly, not `oci-client`
//!
//! `oci-client` covers the happy path, but cairn needs control it does not expose in
//! one place: the exact `Accept` list and raw bytes of every manifest (digests are over
//! received bytes only); per-host plain HTTP and TLS settings for an ordered mirror
//! list in the `buildkitd.toml` shape; streaming blob bodies that start at a byte
//! offset (`Range`) and report progress; a cross-repository mount whose `202` answer
//! becomes the upload session instead of an error; chunked `PATCH` uploads with
//! `Content-Range`; bearer tokens cached per scope (a mount needs a two-repository
//! scope); and errors that keep the URL, status and distribution error code. The
//! protocol is small, so owning it costs about as much as wrapping a client that hides
//! these seams, and leaves one HTTP stack to retry and authenticate.
//!
//! # Behaviour
//!
//! - Pulls try the host's mirrors in order, then the origin; pushes go to the origin.
//! - Every request is retried with exponential backoff on connect errors, timeouts,
//!   `429` and `5xx` (non-idempotent upload steps only when the request never left).
//! - A `401` runs the challenge (Basic or Bearer token flow) once and retries.
//! - Manifests and configs are verified here; layer blobs are streamed unverified and
//!   checked by the consumer with [`BlobVerifier`], because only it sees every byte.
//!
//! The client is cheap to clone and safe to share between tasks.

mod auth;
mod blob;
mod config;
mod error;
mod push;
mod resolve;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::reference::Reference;

pub use auth::{Challenge, CredentialStore, Login, parse_challenge};
pub use blob::{BlobStream, BlobVerifier, ProgressFn};
pub use config::{Endpoint, HostConfig, RegistryConfig};
pub use error::RegistryError;
pub use push::{BlobData, MountResult, PushOutcome};
pub use resolve::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, RawManifest, ResolvedImage};

use auth::{TokenCache, TokenReply};

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, including the first.
    pub attempts: u32,
    /// Pause before the first retry; doubled each time up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Blobs larger than this are uploaded in chunks of this size by default.
pub const DEFAULT_CHUNK_SIZE: usize = 16 << 20;

/// A registry client bound to one registry configuration and credential source.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    http_insecure: reqwest::Client,
    config: RegistryConfig,
    creds: CredentialStore,
    logins: Mutex<HashMap<String, Option<Login>>>,
    tokens: TokenCache,
    retry: RetryPolicy,
    chunk_size: usize,
}

/// Builds a [`RegistryClient`].
pub struct RegistryClientBuilder {
    config: RegistryConfig,
    creds: CredentialStore,
    retry: RetryPolicy,
    chunk_size: usize,
    user_agent: String,
}

impl RegistryClientBuilder {
    pub fn credentials(mut self, creds: CredentialStore) -> Self {
        self.creds = creds;
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Blobs larger than `bytes` are uploaded with chunked `PATCH`es of this size.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(1);
        self
    }

    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    pub fn build(self) -> Result<RegistryClient, RegistryError> {
        let make = |insecure: bool| {
            reqwest::Client::builder()
                .user_agent(self.user_agent.clone())
                .connect_timeout(Duration::from_secs(30))
                // No overall timeout (layers can take long), but a connection that stalls
                // fails instead of hanging; the consumer resumes with a `Range`.
                .read_timeout(Duration::from_secs(120))
                .tls_danger_accept_invalid_certs(insecure)
                .build()
                .map_err(|source| RegistryError::Http {
                    url: "(client setup)".into(),
                    source,
                })
        };
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http: make(false)?,
                http_insecure: make(true)?,
                config: self.config,
                creds: self.creds,
                logins: Mutex::new(HashMap::new()),
                tokens: TokenCache::default(),
                retry: self.retry,
                chunk_size: self.chunk_size,
            }),
        })
    }
}

/// Whether a request may be sent again after it reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotent {
    Yes,
    /// Upload steps: retried only when the request never left (connect errors).
    No,
}

impl RegistryClient {
    /// A builder with Docker's credentials (`~/.docker/config.json`) and default retries.
    pub fn builder(config: RegistryConfig) -> RegistryClientBuilder {
        RegistryClientBuilder {
            config,
            creds: CredentialStore::from_docker_env(),
            retry: RetryPolicy::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            user_agent: concat!("cairn/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// A client with Docker's credentials and default settings.
    pub fn new(config: RegistryConfig) -> Result<RegistryClient, RegistryError> {
        RegistryClient::builder(config).build()
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    fn login(&self, host: &str) -> Result<Option<Login>, RegistryError> {
        if let Some(l) = self
            .inner
            .logins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
        {
            return Ok(l.clone());
        }
        let l = self.inner.creds.lookup(host)?;
        self.inner
            .logins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(host.to_owned(), l.clone());
        Ok(l)
    }

    fn auth_header(&self, ep: &Endpoint, scope: &str) -> Result<Option<String>, RegistryError> {
        if let Some(t) = self.inner.tokens.get(&ep.host, scope) {
            return Ok(Some(format!("Bearer {t}")));
        }
        if self.inner.tokens.is_basic(&ep.host) {
            return Ok(self.login(&ep.host)?.map(|l| l.basic_header()));
        }
        Ok(None)
    }

    /// Sends a request built by `make`, authenticating and retrying as the module header
    /// describes. Returns any HTTP answer; status checks are the caller's.
    pub(crate) async fn send(
        &self,
        ep: &Endpoint,
        scope: &str,
        idempotent: Idempotent,
        make: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let client = if ep.insecure {
            &self.inner.http_insecure
        } else {
            &self.inner.http
        };
        let retry = self.inner.retry;
        let mut attempt = 0u32;
        let mut authenticated = false;
        loop {
            let mut rb = make(client);
            if let Some(h) = self.auth_header(ep, scope)? {
                rb = rb.header(AUTHORIZATION, h);
            }
            let req = rb.build().map_err(|source| RegistryError::Http {
                url: ep.base.to_string(),
                source,
            })?;
            let url = req.url().to_string();
            let method = req.method().clone();
            let more = attempt + 1 < retry.attempts;
            match client.execute(req).await {
                Err(source) => {
                    let err = RegistryError::Http {
                        url: url.clone(),
                        source,
                    };
                    let retryable = match idempotent {
                        Idempotent::Yes => err.is_transient(),
                        Idempotent::No => {
                            matches!(&err, RegistryError::Http { source, .. } if source.is_connect())
                        }
                    };
                    if retryable && more {
                        tracing::debug!(%method, %url, attempt, error = %err, "retrying");
                        tokio::time::sleep(retry.delay(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(err);
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED && !authenticated {
                        authenticated = true;
                        self.authenticate(ep, scope, &resp).await?;
                        continue;
                    }
                    let transient =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if transient && idempotent == Idempotent::Yes && more {
                        tracing::debug!(%method, %url, attempt, %status, "retrying");
                        tokio::time::sleep(retry_after(&resp).unwrap_or(retry.delay(attempt)))
                            .await;
                        attempt += 1;
                        continue;
                    }
                    return Ok(resp);
                }
            }
        }
    }

    /// Answers a `401`: records Basic hosts, or fetches and caches a bearer token.
    async fn authenticate(
        &self,
        ep: &Endpoint,
        scope: &str,
        resp: &Response,
    ) -> Result<(), RegistryError> {
        let unauthorized = |detail: String| RegistryError::Unauthorized {
            host: ep.host.clone(),
            detail,
        };
        let challenge = resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_challenge)
            .ok_or_else(|| {
                unauthorized("401 without a usable WWW-Authenticate challenge".into())
            })?;
        let login = self.login(&ep.host)?;
        match challenge {
            Challenge::Basic => {
                if login.is_none() {
                    return Err(unauthorized(
                        "basic auth required and no credentials are configured".into(),
                    ));
                }
                self.inner.tokens.mark_basic(&ep.host);
                Ok(())
            }
            Challenge::Bearer {
                realm,
                service,
                scope: offered,
            } => {
                let realm_url =
                    reqwest::Url::parse(&realm).map_err(|_| RegistryError::BadHeader {
                        url: resp.url().to_string(),
                        header: "WWW-Authenticate",
                        value: realm.clone(),
                    })?;
                let scopes: Vec<&str> = if scope.is_empty() {
                    offered
                        .as_deref()
                        .map(|s| s.split(' ').collect())
                        .unwrap_or_default()
                } else {
                    scope.split(' ').collect()
                };
                let client = if ep.insecure {
                    &self.inner.http_insecure
                } else {
                    &self.inner.http
                };
                let url = realm_url.to_string();
                let rb = match &login {
                    // An identity token is an OAuth2 refresh token: exchanged by POST.
                    Some(l) if l.is_identity_token() => {
                        let mut form = reqwest::Url::parse("form:").map_err(|_| {
                            RegistryError::BadEndpoint {
                                host: ep.host.clone(),
                                url: url.clone(),
                            }
                        })?;
                        {
                            let mut q = form.query_pairs_mut();
                            q.append_pair("grant_type", "refresh_token");
                            q.append_pair("refresh_token", &l.password);
                            q.append_pair("client_id", "cairn");
                            q.append_pair("scope", &scopes.join(" "));
                            if let Some(s) = &service {
                                q.append_pair("service", s);
                            }
                        }
                        client
                            .post(realm_url.clone())
                            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                            .body(form.query().unwrap_or_default().to_owned())
                    }
                    _ => {
                        let mut query: Vec<(&str, &str)> = Vec::new();
                        if let Some(s) = &service {
                            query.push(("service", s));
                        }
                        query.extend(scopes.iter().map(|s| ("scope", *s)));
                        let rb = client.get(realm_url.clone()).query(&query);
                        match &login {
                            Some(l) => rb.header(AUTHORIZATION, l.basic_header()),
                            None => rb,
                        }
                    }
                };
                let r = rb.send().await.map_err(|source| RegistryError::Http {
                    url: url.clone(),
                    source,
                })?;
                let status = r.status();
                let body = read_limited(r, 1 << 20).await;
                if !status.is_success() {
                    return Err(unauthorized(format!(
                        "token endpoint {url} answered {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(256)]).trim()
                    )));
                }
                let reply: TokenReply = serde_json::from_slice(&body).map_err(|source| {
                    RegistryError::InvalidDocument {
                        what: format!("token reply from {url}"),
                        source,
                    }
                })?;
                let token = reply
                    .token
                    .or(reply.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        unauthorized(format!("token endpoint {url} returned no token"))
                    })?;
                if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
                    return Err(unauthorized(format!(
                        "token endpoint {url} returned an invalid token"
                    )));
                }
                self.inner
                    .tokens
                    .put(&ep.host, scope, token, reply.expires_in);
                Ok(())
            }
        }
    }

    /// Runs `op` on each pull endpoint of `reference`'s host (mirrors, then the origin)
    /// until one succeeds or fails in a way another endpoint cannot fix.
    pub(crate) async fn on_pull_endpoints<T, F, Fut>(
        &self,
        reference: &Reference,
        op: F,
    ) -> Result<T, RegistryError>
    where
        F: Fn(Endpoint) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let eps = self
            .inner
            .config
            .pull_endpoints(reference.registry_host())?;
        let mut errors = Vec::new();
        for ep in eps {
            let base = ep.base.clone();
            match op(ep).await {
                Ok(v) => return Ok(v),
                Err(e) if e.try_next_endpoint() => {
                    tracing::debug!(endpoint = %base, error = %e, "trying the next endpoint");
                    errors.push(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(
            pick_error(errors).unwrap_or_else(|| RegistryError::NotFound {
                reference: reference.to_string(),
            }),
        )
    }

    /// Checks a response's status: `ok` passes, 404 is `NotFound { what }`, 401/403 are
    /// `Unauthorized`, anything else a `ServerError` with the registry's error body.
    pub(crate) async fn expect(
        &self,
        ep: &Endpoint,
        resp: Response,
        ok: &[u16],
        what: &str,
    ) -> Result<Response, RegistryError> {
        let status = resp.status().as_u16();
        if ok.contains(&status) {
            return Ok(resp);
        }
        let url = resp.url().to_string();
        let body = read_limited(resp, 64 << 10).await;
        Err(match status {
            404 => RegistryError::NotFound {
                reference: what.to_owned(),
            },
            401 | 403 => RegistryError::Unauthorized {
                host: ep.host.clone(),
                detail: match error::server_error(&url, status, &body) {
                    RegistryError::ServerError { code, message, .. } => {
                        format!("{status} {code} {message}")
                    }
                    other => other.to_string(),
                },
            },
            _ => error::server_error(&url, status, &body),
        })
    }
}

/// Reads at most `limit` bytes of a body (for error bodies: a hostile server cannot make
/// us buffer gigabytes). A body that fails midway yields what arrived.
async fn read_limited(mut resp: Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    out
}

/// The error to report when every endpoint failed: the first one a server answered
/// (not found, unauthorized, bad digest) over transport failures of other endpoints,
/// because an unreachable origin behind a working mirror is the usual offline setup and
/// "connection refused" from the origin would hide the mirror's real answer.
fn pick_error(errors: Vec<RegistryError>) -> Option<RegistryError> {
    let answered = errors
        .iter()
        .position(|e| !matches!(e, RegistryError::Http { .. }));
    match answered {
        Some(i) => errors.into_iter().nth(i),
        None => errors.into_iter().last(),
    }
}

/// `Retry-After` in seconds, capped so a server cannot stall us for long.
fn retry_after(resp: &Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(30)))
}

/// The auth scope for pulling from `repo`.
pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

/// The auth scope for pushing to `repo`.
pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_answer_beats_a_transport_failure() {
        // A real transport error: nothing listens on a port we just released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let source = reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        let transport = RegistryError::Http {
            url: "u".into(),
            source,
        };
        assert!(transport.is_transient());
        let nf = RegistryError::NotFound {
            reference: "x".into(),
        };
        let picked = pick_error(vec![transport, nf]);
        assert!(
            matches!(picked, Some(RegistryError::NotFound { .. })),
            "{picked:?}"
        );
        let source = reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        let only = pick_error(vec![RegistryError::Http {
            url: "u".into(),
            source,
        }]);
        assert!(matches!(only, Some(RegistryError::Http { .. })));
        assert!(pick_error(vec![]).is_none());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0), Duration::from_millis(200));
        assert_eq!(p.delay(1), Duration::from_millis(400));
        assert_eq!(p.delay(2), Duration::from_millis(800));
        assert_eq!(p.delay(10), Duration::from_secs(5));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(5));
    }
}
