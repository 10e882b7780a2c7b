//! What can go wrong talking to a registry, each variant naming the URL, host, reference
//! or digest involved so a failed pull or push says where it failed.

use cairn_llb::Digest;

use crate::reference::ReferenceError;

/// An error from the registry client.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request never got an HTTP answer (connect, TLS, timeout, body read).
    #[error("request to {url} failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status; `code`/`message` come from the
    /// distribution error body when there is one.
    #[error("{url}: registry answered {status}{}: {message}", code_suffix(code))]
    ServerError {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{reference}: not found")]
    NotFound { reference: String },
    #[error("{host}: unauthorized ({detail})")]
    Unauthorized { host: String, detail: String },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("{what}: {size} bytes is larger than the {limit}-byte limit")]
    TooLarge { what: String, size: u64, limit: u64 },
    #[error("{what}: invalid JSON")]
    InvalidDocument {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{reference}: unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("{reference}: no manifest for platform {platform} (index offers: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{url}: bad {header} header {value:?}")]
    BadHeader {
        url: String,
        header: &'static str,
        value: String,
    },
    #[error("{host}: invalid endpoint URL {url:?}")]
    BadEndpoint { host: String, url: String },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("reading credentials from {source_name}: {message}")]
    Credentials {
        source_name: String,
        message: String,
    },
    #[error("reading blob source for {digest}")]
    Io {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    /// A cross-host operation, such as mounting a blob from another registry.
    #[error("{message}")]
    Unsupported { message: String },
}

fn code_suffix(code: &str) -> String {
    if code.is_empty() {
        String::new()
    } else {
        format!(" {code}")
    }
}

impl RegistryError {
    /// Whether trying again (same endpoint, after a pause) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Http { source, .. } => {
                source.is_connect()
                    || source.is_timeout()
                    || source.is_request()
                    || source.is_body()
            }
            RegistryError::ServerError { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }

    /// Whether the next endpoint (mirror or origin) is worth trying after this error.
    /// Integrity failures are: a mirror may serve corrupt bytes the origin has right.
    pub fn try_next_endpoint(&self) -> bool {
        !matches!(
            self,
            RegistryError::Reference(_)
                | RegistryError::NoMatchingPlatform { .. }
                | RegistryError::Io { .. }
                | RegistryError::Credentials { .. }
        )
    }
}

/// The body of a distribution-spec error response.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<ErrorEntry>,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ErrorEntry {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Builds a `ServerError` from a non-success response body.
pub(crate) fn server_error(url: &str, status: u16, body: &[u8]) -> RegistryError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.errors.is_empty() => {
            let code = b
                .errors
                .iter()
                .map(|e| e.code.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let msg = b
                .errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            (code, msg)
        }
        _ => {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)])
                .trim()
                .to_owned();
            (
                String::new(),
                if text.is_empty() {
                    "(empty body)".to_owned()
                } else {
                    text
                },
            )
        }
    };
    RegistryError::ServerError {
        url: url.to_owned(),
        status,
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_reads_distribution_error_bodies() {
        let body = br#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry","detail":"x"}]}"#;
        let e = server_error("http://h/v2/x", 404, body);
        let text = e.to_string();
        assert!(
            text.contains("404 BLOB_UNKNOWN") && text.contains("blob unknown"),
            "{text}"
        );
        let e = server_error("http://h/v2/x", 502, b"<html>bad gateway</html>");
        assert!(e.is_transient());
        assert!(e.to_string().contains("bad gateway"));
        assert!(!server_error("u", 404, b"").is_transient());
        assert!(server_error("u", 429, b"").is_transient());
    }
}
