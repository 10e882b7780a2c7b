//! A bearer-token service for the real registry's `auth.token` mode, so the client's
//! `WWW-Authenticate: Bearer` flow runs against Distribution's own token verification.
//!
//! Distribution checks the token completely: ES256 signature, an `x5c` certificate that
//! chains to the configured root bundle, issuer, audience, expiry, and the `access`
//! claim against the request. The service grants whatever scope is asked (optionally
//! only after a Basic login) and records every request, so tests can assert which scopes
//! were asked for and that cached tokens were reused. Keys, certificates and signatures
//! come from the `openssl` command line.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cairn_cache::registry::Login;

use crate::tools::{Skip, require_tool};

/// The issuer and service names written into the registry config and tokens.
pub const ISSUER: &str = "cairn-test-issuer";
pub const SERVICE: &str = "cairn-test-registry";

/// One request the token service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub scopes: Vec<String>,
    pub service: Option<String>,
    /// The `Authorization` header sent, if any.
    pub authorization: Option<String>,
    /// `POST` (OAuth2 refresh-token grant) or `GET` (Docker token protocol).
    pub method: String,
    /// The `refresh_token` of a `POST`.
    pub refresh_token: Option<String>,
    /// The status the service answered with.
    pub status: u16,
}

/// A running token service on a loopback port; stopped on drop.
pub struct TokenServer {
    port: u16,
    dir: tempfile::TempDir,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Signer {
    key: PathBuf,
    cert_der_b64: String,
    openssl: PathBuf,
    dir: PathBuf,
}

impl TokenServer {
    /// Starts the service. With `login`, token requests must carry that Basic login, or
    /// for an identity token ([`Login::identity_token`]) be a refresh-token `POST` with it.
    pub fn start(login: Option<Login>) -> Result<TokenServer, Skip> {
        let openssl = require_tool("openssl", "openssl")?;
        Ok(TokenServer::launch(openssl, login))
    }

    /// Makes the key and certificate and starts serving; panics (failing the test) when
    /// any of that fails.
    fn launch(openssl: PathBuf, login: Option<Login>) -> TokenServer {
        let dir = tempfile::tempdir().expect("tempdir for token keys");
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        run(Command::new(&openssl)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args([
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=cairn-test-token-signer",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let der = dir.path().join("cert.der");
        run(Command::new(&openssl)
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .arg("-out")
            .arg(&der));
        let der = std::fs::read(&der).expect("reading the DER certificate openssl wrote");
        let signer = Signer {
            key,
            cert_der_b64: STANDARD.encode(der),
            openssl,
            dir: dir.path().to_owned(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the token service");
        let port = listener.local_addr().expect("token service address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let req = serve(conn, &signer, login.as_ref());
                        if let Some(r) = req {
                            requests.lock().unwrap_or_else(|p| p.into_inner()).push(r);
                        }
                    }
                }
            })
        };
        TokenServer {
            port,
            dir,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The `auth.token` section for the registry config ([`crate::RegistryOptions::extra_yaml`]).
    pub fn registry_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    \
             issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.dir.path().join("cert.pem").display()
        )
    }

    /// Every token request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Answers one HTTP/1.x request on `conn`.
fn serve(conn: TcpStream, signer: &Signer, login: Option<&Login>) -> Option<TokenRequest> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split(' ');
    let method = words.next()?.to_owned();
    let target = words.next()?.to_owned();
    let mut authorization = None;
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim();
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_owned());
            } else if k.eq_ignore_ascii_case("content-length") {
                content_length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; content_length.min(1 << 20)];
    std::io::Read::read_exact(&mut reader, &mut body).ok()?;
    let form = if method == "POST" {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        target.split_once('?').map_or("", |(_, q)| q).to_owned()
    };
    let mut scopes = Vec::new();
    let (mut service, mut refresh_token) = (None, None);
    for pair in form.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            // The refresh grant sends all scopes space-separated in one field.
            "scope" if method == "POST" => scopes.extend(v.split(' ').map(str::to_owned)),
            "scope" => scopes.push(v),
            "service" => service = Some(v),
            "refresh_token" => refresh_token = Some(v),
            _ => {}
        }
    }
    let allowed = match login {
        None => true,
        Some(l) if l.is_identity_token() => {
            method == "POST" && refresh_token.as_deref() == Some(l.password.as_str())
        }
        Some(l) => authorization.as_deref() == Some(l.basic_header().as_str()),
    };
    let (status, reply) = if allowed {
        let token = signer.token(&scopes);
        // The OAuth2 grant answers `access_token`; the Docker protocol `token`.
        let field = if method == "POST" {
            "access_token"
        } else {
            "token"
        };
        (200, format!(r#"{{"{field}":"{token}","expires_in":300}}"#))
    } else {
        (401, r#"{"details":"bad credentials"}"#.to_owned())
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    Some(TokenRequest {
        scopes,
        service,
        authorization,
        method,
        refresh_token,
        status,
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Signer {
    /// A JWT granting `scopes` (`repository:<name>:<a,b>`), signed ES256 with the
    /// certificate in `x5c`.
    fn token(&self, scopes: &[String]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                let (kind, rest) = (parts.next()?, parts.collect::<Vec<_>>());
                // Repository names have no ':'; the last field is the action list.
                let (name, actions) = (rest.first()?, rest.get(1)?);
                Some(serde_json::json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }))
            })
            .collect();
        let header =
            serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.cert_der_b64] });
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": "cairn-test", "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", scopes.join(",")), "access": access,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.sign(&input);
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// ES256 over `input`: openssl's DER signature converted to JOSE's fixed `r || s`.
    fn sign(&self, input: &str) -> Vec<u8> {
        let file = tempfile::NamedTempFile::new_in(&self.dir).expect("temp file for signing");
        std::fs::write(file.path(), input).expect("writing the signing input");
        let out = Command::new(&self.openssl)
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .arg(file.path())
            .output()
            .expect("running openssl dgst");
        assert!(
            out.status.success(),
            "openssl dgst: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        der_signature_to_raw(&out.stdout).expect("openssl wrote a DER ECDSA signature")
    }
}

/// `SEQUENCE { INTEGER r, INTEGER s }` → 32-byte big-endian `r` then `s`.
fn der_signature_to_raw(der: &[u8]) -> Option<Vec<u8>> {
    let (tag, body, _) = der_item(der)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, r, rest) = der_item(body)?;
    let (t2, s, _) = der_item(rest)?;
    if t1 != 2 || t2 != 2 {
        return None;
    }
    let mut out = Vec::with_capacity(64);
    for n in [r, s] {
        let n = if n.len() > 32 { &n[n.len() - 32..] } else { n };
        out.extend(std::iter::repeat_n(0u8, 32 - n.len()));
        out.extend_from_slice(n);
    }
    Some(out)
}

/// One DER TLV with a short or one/two-byte long length: (tag, value, rest).
fn der_item(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)? as usize;
    let (len, start) = match first {
        n if n < 0x80 => (n, 2usize),
        0x81 => (*b.get(2)? as usize, 3),
        0x82 => ((*b.get(2)? as usize) << 8 | *b.get(3)? as usize, 4),
        _ => return None,
    };
    let end = start.checked_add(len)?;
    Some((tag, b.get(start..end)?, b.get(end..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_signatures_become_fixed_width() {
        // r has a leading zero (high bit set), s is short.
        let mut der = vec![0x30, 0, 0x02, 33, 0x00];
        der.extend([0xff; 32]);
        der.extend([0x02, 2, 0x01, 0x02]);
        der[1] = (der.len() - 2) as u8;
        let raw = der_signature_to_raw(&der).unwrap();
        assert_eq!(raw.len(), 64);
        assert_eq!(&raw[..32], &[0xff; 32]);
        assert_eq!(&raw[32..62], &[0u8; 30]);
        assert_eq!(&raw[62..], &[1, 2]);
        assert_eq!(der_signature_to_raw(&[0x31, 0]), None);
        assert_eq!(der_signature_to_raw(&[0x30, 5, 2]), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("repository%3Aa%2Fb%3Apull%2Cpush"),
            "repository:a/b:pull,push"
        );
        assert_eq!(percent_decode("a+b%"), "a b%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
