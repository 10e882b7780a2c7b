//! Registry hosts configuration in the `buildkitd.toml` shape users already know:
//!
//! ```toml
//! [registry."docker.io"]
//! mirrors = ["127.0.0.1:5000"]
//! [registry."127.0.0.1:5000"]
//! http = true
//! ```
//!
//! `RegistryConfig` is the table under `registry` (it deserialises transparently from
//! the host map), so the CLI's config struct can hold it as a field.

use std::collections::BTreeMap;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use super::error::RegistryError;
use crate::reference::api_host;

/// Per-host settings, keyed by the host as written in references (`docker.io`,
/// `127.0.0.1:5000`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RegistryConfig {
    pub hosts: BTreeMap<String, HostConfig>,
}

/// One `[registry."host"]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// Hosts tried, in order, before this one when pulling. Pushes never use mirrors.
    pub mirrors: Vec<String>,
    /// Speak plain HTTP to this host.
    pub http: bool,
    /// Accept any TLS certificate from this host.
    pub insecure: bool,
}

/// One place to send registry API requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host key (`docker.io`, `127.0.0.1:5000`), used for config, credentials and
    /// token caching.
    pub host: String,
    /// `scheme://api-host` without a trailing path.
    pub base: Url,
    /// Skip TLS verification.
    pub insecure: bool,
    /// A mirror of another host rather than the origin.
    pub mirror: bool,
}

impl RegistryConfig {
    /// The settings for `host`, or the defaults.
    pub fn host(&self, host: &str) -> HostConfig {
        self.hosts.get(host).cloned().unwrap_or_default()
    }

    /// Where to pull `host`'s content from: its mirrors in order, then the origin.
    pub fn pull_endpoints(&self, host: &str) -> Result<Vec<Endpoint>, RegistryError> {
        let mut out = Vec::new();
        for m in &self.host(host).mirrors {
            out.push(self.endpoint_for(m, true)?);
        }
        out.push(self.endpoint_for(host, false)?);
        Ok(out)
    }

    /// Where to push to `host`: the origin only.
    pub fn push_endpoint(&self, host: &str) -> Result<Endpoint, RegistryError> {
        self.endpoint_for(host, false)
    }

    /// Builds the endpoint for a host or mirror entry. A mirror may carry an explicit
    /// `http://` or `https://` prefix; otherwise the scheme comes from that host's own
    /// `http` flag. Loopback hosts without a config entry speak plain HTTP, as Docker
    /// treats `127.0.0.0/8` as an insecure registry by default.
    fn endpoint_for(&self, entry: &str, mirror: bool) -> Result<Endpoint, RegistryError> {
        let bad = || RegistryError::BadEndpoint {
            host: entry.to_owned(),
            url: entry.to_owned(),
        };
        let (scheme, host) = if let Some(h) = entry.strip_prefix("http://") {
            (Some("http"), h)
        } else if let Some(h) = entry.strip_prefix("https://") {
            (Some("https"), h)
        } else {
            (None, entry)
        };
        let host = host.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let cfg = self.hosts.get(host);
        let http = match (scheme, cfg) {
            (Some(s), _) => s == "http",
            (None, Some(c)) => c.http,
            (None, None) => is_loopback(host),
        };
        let scheme = if http { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{}", api_host(host))).map_err(|_| bad())?;
        Ok(Endpoint {
            host: host.to_owned(),
            base,
            insecure: cfg.is_some_and(|c| c.insecure),
            mirror,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name == "localhost" || name == "::1" || name.starts_with("127.")
}

impl Endpoint {
    /// `base` + `/v2/<path>`.
    pub fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base
            .join(&format!("/v2/{path}"))
            .map_err(|_| RegistryError::BadEndpoint {
                host: self.host.clone(),
                url: format!("{}/v2/{path}", self.base),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RegistryConfig {
        let toml_like = serde_json::json!({
            "docker.io": { "mirrors": ["127.0.0.1:5000", "https://mirror.example.com"] },
            "127.0.0.1:5000": { "http": true },
            "secure.example.com:8443": { "insecure": true },
        });
        serde_json::from_value(toml_like).unwrap()
    }

    #[test]
    fn mirrors_come_first_then_the_origin() {
        let eps = cfg().pull_endpoints("docker.io").unwrap();
        let urls: Vec<String> = eps.iter().map(|e| e.base.to_string()).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:5000/",
                "https://mirror.example.com/",
                "https://registry-1.docker.io/"
            ]
        );
        assert_eq!(
            eps.iter().map(|e| e.mirror).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(eps[2].host, "docker.io");
        assert_eq!(cfg().push_endpoint("docker.io").unwrap().host, "docker.io");
    }

    #[test]
    fn scheme_and_tls_follow_host_settings() {
        let c = cfg();
        let e = c.push_endpoint("secure.example.com:8443").unwrap();
        assert_eq!(e.base.as_str(), "https://secure.example.com:8443/");
        assert!(e.insecure);
        assert_eq!(
            c.push_endpoint("localhost:9000").unwrap().base.scheme(),
            "http"
        );
        assert_eq!(
            c.push_endpoint("127.0.0.2:1").unwrap().base.scheme(),
            "http"
        );
        assert_eq!(c.push_endpoint("[::1]:5000").unwrap().base.scheme(), "http");
        assert_eq!(c.push_endpoint("quay.io").unwrap().base.scheme(), "https");
        assert_eq!(
            c.push_endpoint("quay.io")
                .unwrap()
                .url("a/b/manifests/t")
                .unwrap()
                .as_str(),
            "https://quay.io/v2/a/b/manifests/t"
        );
        assert!(c.push_endpoint("bad host/x").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let bad = serde_json::json!({ "docker.io": { "mirror": ["x"] } });
        assert!(serde_json::from_value::<RegistryConfig>(bad).is_err());
    }
}
