//! A token server after distribution's token auth spec: `GET /token?service=&scope=&account=`
//! answers an ES256 JWT that `docker-registry` (auth.token with `rootcertbundle`) accepts.
//! Anonymous callers get pull access only, like Docker Hub.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::proxy::{Head, read_head};
use super::runtime;

/// Token lifetime in seconds, also announced as `expires_in`.
const LIFETIME: u64 = 300;

pub struct TokenServer {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub cert_path: PathBuf,
    shared: Arc<Shared>,
    accept: tokio::task::AbortHandle,
}

struct Shared {
    service: String,
    issuer: String,
    key: SigningKey,
    /// The signing certificate, base64 (standard) DER, for the JWT `x5c` header.
    cert_der_b64: String,
    users: Vec<(String, String)>,
    requests: AtomicUsize,
    scopes: Mutex<Vec<String>>,
}

impl TokenServer {
    /// Generates a P-256 key and a self-signed certificate (also the registry's root bundle) in
    /// `dir`, then serves tokens on a free loopback port. `users` are the accepted Basic
    /// credentials.
    pub fn start(dir: &Path, users: &[(&str, &str)]) -> TokenServer {
        let key_path = dir.join("key.pem");
        let cert_path = dir.join("cert.pem");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=hoist-test-token", "-keyout"])
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path)
            .output()
            .expect("cannot run openssl");
        assert!(
            out.status.success(),
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key_pem = std::fs::read_to_string(&key_path).expect("read key.pem");
        let key = SigningKey::from_pkcs8_pem(&key_pem).expect("openssl wrote a PKCS#8 P-256 key");
        let cert_pem = std::fs::read_to_string(&cert_path).expect("read cert.pem");
        // A PEM body is exactly the standard base64 of the DER that x5c wants.
        let cert_der_b64: String = cert_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();

        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let port = std_listener.local_addr().expect("local addr").port();
        std_listener.set_nonblocking(true).expect("nonblocking");
        let service = "hoist-test-registry".to_string();
        let issuer = "hoist-test-token".to_string();
        let shared = Arc::new(Shared {
            service: service.clone(),
            issuer: issuer.clone(),
            key,
            cert_der_b64,
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            requests: AtomicUsize::new(0),
            scopes: Mutex::new(Vec::new()),
        });
        let accept = {
            // from_std registers with the reactor of the runtime entered here.
            let _guard = runtime().enter();
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
            let shared = shared.clone();
            runtime()
                .spawn(async move {
                    loop {
                        if let Ok((stream, _)) = listener.accept().await {
                            tokio::spawn(serve(stream, shared.clone()));
                        }
                    }
                })
                .abort_handle()
        };
        TokenServer {
            realm: format!("http://127.0.0.1:{port}/token"),
            service,
            issuer,
            cert_path,
            shared,
            accept,
        }
    }

    /// How many token requests were answered (any outcome).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The scopes of every request so far, each request's `scope` parameters joined by a space.
    pub fn scopes_seen(&self) -> Vec<String> {
        self.shared
            .scopes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One request per connection: answer, then close.
async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let mut stream = BufReader::new(stream);
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let (status, body) = answer(&head, &shared);
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let body = body.to_string();
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn answer(head: &Head, shared: &Shared) -> (u16, Value) {
    let mut start = head.start.split(' ');
    let method = start.next().unwrap_or_default();
    let target = start.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/token" {
        return (404, error("NOT_FOUND", "no such endpoint"));
    }
    if method != "GET" {
        return (405, error("UNSUPPORTED", "only GET is supported"));
    }
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| *name == "scope")
        .map(|(_, value)| percent_decode(value))
        .collect();
    let scopes = scopes.join(" ");
    // Count before answering so a test that just got its answer sees it.
    shared.requests.fetch_add(1, Ordering::SeqCst);
    shared
        .scopes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(scopes.clone());

    let user = match head.get("authorization") {
        None => None,
        Some(value) => match check_basic(value, &shared.users) {
            Some(user) => Some(user),
            None => return (401, error("UNAUTHORIZED", "invalid username or password")),
        },
    };
    let token = sign(shared, user.as_deref(), &scopes);
    let now = unix_now();
    (
        200,
        json!({
            "token": token,
            "access_token": token,
            "expires_in": LIFETIME,
            "issued_at": rfc3339(now),
        }),
    )
}

fn error(code: &str, message: &str) -> Value {
    json!({ "errors": [{ "code": code, "message": message }] })
}

/// The user name if `header` is `Basic` with accepted credentials.
fn check_basic(header: &str, users: &[(String, String)]) -> Option<String> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    users
        .iter()
        .any(|(u, p)| u == user && p == password)
        .then(|| user.to_string())
}

/// The granted `access` claim: `type:name:actions` where the name may hold `:` (host:port);
/// anonymous callers keep only `pull`.
fn grants(scopes: &str, authenticated: bool) -> Vec<Value> {
    scopes
        .split_whitespace()
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| !a.is_empty() && (authenticated || *a == "pull"))
                .collect();
            Some(json!({ "type": kind, "name": name, "actions": actions }))
        })
        .collect()
}

/// A compact JWS: ES256 over `base64url(header).base64url(claims)`, raw r||s signature.
fn sign(shared: &Shared, user: Option<&str>, scopes: &str) -> String {
    let now = unix_now();
    let header = json!({ "typ": "JWT", "alg": "ES256", "x5c": [shared.cert_der_b64] });
    let claims = json!({
        "iss": shared.issuer,
        "sub": user.unwrap_or_default(),
        "aud": shared.service,
        "exp": now + LIFETIME,
        "nbf": now,
        "iat": now,
        "jti": hex::encode(rand::random::<[u8; 16]>()),
        "access": grants(scopes, user.is_some()),
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: Signature = shared.key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Decodes a query value (`+` is a space; malformed escapes stay as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let Some(byte) = bytes.get(i + 1..i + 3).and_then(|h| hex::decode(h).ok()) {
                    out.extend(byte);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SSZ` (days to civil date after Howard Hinnant's algorithm).
fn rfc3339(unix: u64) -> String {
    let (days, secs) = ((unix / 86_400) as i64, unix % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn scopes_split_at_the_last_colon() {
        let granted = grants("repository:127.0.0.1:5000/a/b:pull,push,delete junk", false);
        assert_eq!(
            granted,
            vec![json!({"type": "repository", "name": "127.0.0.1:5000/a/b", "actions": ["pull"]})]
        );
        let granted = grants("repository:a:push registry:catalog:*", true);
        assert_eq!(granted[0]["actions"], json!(["push"]));
        assert_eq!(
            granted[1],
            json!({"type": "registry", "name": "catalog", "actions": ["*"]})
        );
    }

    #[test]
    fn query_values_decode() {
        assert_eq!(
            percent_decode("repository%3Aa%2Fb%3Apull%2Cpush+x%"),
            "repository:a/b:pull,push x%"
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
