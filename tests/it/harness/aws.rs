//! AWS for the tests: a moto server (ECR, STS, ECS APIs) and an ECR data-plane shim in front
//! of a distribution registry. The shim answers like ECR's registry endpoint: a Basic
//! challenge whose password is what moto's GetAuthorizationToken hands out, `NAME_UNKNOWN` for
//! repositories moto does not know, ECR's refusal to overwrite a tag of an immutable
//! repository (using moto's repository settings), and every pushed manifest recorded in moto
//! with PutImage (with its real digest) so DescribeImages and scans work.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::proxy::FaultProxy;
use super::registry::{Auth, Hoist, Registry, sha256_hex};
use super::tls::TestCa;
use super::{free_port, loopback, runtime, spawn_server};

/// moto's default account, and the ECR host the tests push to.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";
pub const ECR_HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

pub struct Moto {
    pub url: String,
    _dir: tempfile::TempDir,
    _child: Child,
}

/// Where scripts/test installs moto: `$HOIST_TEST_VENV`, else `~/.cache/hoist-test/venv`.
fn moto_server() -> PathBuf {
    let venv = std::env::var_os("HOIST_TEST_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("hoist-test/venv"))
        })
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/hoist-test/venv")
        });
    venv.join("bin/moto_server")
}

impl Moto {
    /// moto over HTTPS with the test CA's certificate for 127.0.0.1.
    pub fn start_tls(ca: &TestCa) -> Moto {
        Moto::start(Some(ca))
    }

    fn start(tls: Option<&TestCa>) -> Moto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log_path = dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new(moto_server());
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ECS_SERVICE_RUNNING", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(ca) = tls {
            command.arg("-c").arg(&ca.cert).arg("-k").arg(&ca.key);
        }
        let child = spawn_server(command);
        let addr = loopback(port);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {addr}; its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            url: format!("{}://{addr}", if tls.is_some() { "https" } else { "http" }),
            _dir: dir,
            _child: child,
        }
    }

    /// Blocking form of [`ecr_api`] for test bodies.
    pub fn ecr_blocking(&self, operation: &str, body: Value) -> Result<Value, (String, String)> {
        runtime().block_on(ecr_api(&self.url, operation, body))
    }

    /// An ECS API operation on moto, blocking.
    pub fn ecs_blocking(&self, operation: &str, body: Value) -> Result<Value, (String, String)> {
        runtime().block_on(json_api(
            &self.url,
            "ecs",
            &format!("AmazonEC2ContainerServiceV20141113.{operation}"),
            body,
        ))
    }
}

/// Calls an ECR API operation (JSON protocol) on moto; the answer or `(code, message)`.
pub async fn ecr_api(url: &str, operation: &str, body: Value) -> Result<Value, (String, String)> {
    json_api(
        url,
        "ecr",
        &format!("AmazonEC2ContainerRegistry_V20150921.{operation}"),
        body,
    )
    .await
}

/// Calls an AWS JSON-protocol operation (`target`) of `service` on moto.
async fn json_api(
    url: &str,
    service: &str,
    target: &str,
    body: Value,
) -> Result<Value, (String, String)> {
    let resp = http()
            .post(url)
            .header("X-Amz-Target", target)
            .header("Content-Type", "application/x-amz-json-1.1")
            // moto routes by the credential scope and does not check the signature.
            .header(
                "Authorization",
                format!("AWS4-HMAC-SHA256 Credential=AKIDSHIM/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=00"),
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| ("Network".to_string(), e.to_string()))?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(answer)
    } else {
        let code = answer["__type"]
            .as_str()
            .unwrap_or("Unknown")
            .rsplit('#')
            .next()
            .unwrap_or_default()
            .to_string();
        Err((code, answer["message"].as_str().unwrap_or("").to_string()))
    }
}

fn http() -> &'static reqwest::Client {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    HTTP.get_or_init(reqwest::Client::new)
}

/// moto, the shim and its backing registry, shared by the tests of this binary.
pub struct Ecr {
    pub moto: Moto,
    pub shim: SocketAddr,
    state: Arc<ShimState>,
    _backend: Registry,
}

struct ShimState {
    backend: String,
    moto_url: String,
    /// `Basic <authorizationToken>` as moto issues it.
    expected: String,
    /// Refuse this many requests that carry the right token (an "expired" token).
    refuse_valid: AtomicU32,
    /// (method, path) of every request, for tests that count calls.
    log: Mutex<Vec<(String, String)>>,
}

pub fn ecr() -> &'static Ecr {
    static ECR: OnceLock<Ecr> = OnceLock::new();
    ECR.get_or_init(Ecr::start)
}

impl Ecr {
    fn start() -> Ecr {
        let moto = Moto::start(None);
        let backend = Registry::start(Auth::None);
        let token = moto
            .ecr_blocking("GetAuthorizationToken", json!({}))
            .expect("moto GetAuthorizationToken");
        let token = token["authorizationData"][0]["authorizationToken"]
            .as_str()
            .expect("a token")
            .to_string();
        let state = Arc::new(ShimState {
            backend: format!("http://{}", backend.host),
            moto_url: moto.url.clone(),
            expected: format!("Basic {token}"),
            refuse_valid: AtomicU32::new(0),
            log: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind shim");
        let shim = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        {
            let _guard = runtime().enter();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let state = state.clone();
            runtime().spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(handle(&state, req).await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
        Ecr {
            moto,
            shim,
            state,
            _backend: backend,
        }
    }

    /// The ECR password moto issues (tests check it never shows up in output).
    pub fn password(&self) -> String {
        let token = self.state.expected.trim_start_matches("Basic ");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .unwrap();
        String::from_utf8(decoded)
            .unwrap()
            .split_once(':')
            .unwrap()
            .1
            .to_string()
    }

    /// The next `n` requests with a valid token are refused as if it had expired.
    pub fn refuse_next_valid_tokens(&self, n: u32) {
        self.state.refuse_valid.store(n, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.log.lock().unwrap().clone()
    }

    /// hoist pointed at moto and the shim, with no AWS credentials of any kind.
    pub fn hoist(&self) -> Hoist {
        Hoist::new().env("AWS_ENDPOINT_URL", &self.moto.url).env(
            "HOIST_REGISTRY_ENDPOINTS",
            format!("{ECR_HOST}=http://{}", self.shim),
        )
    }

    /// hoist with static keys (what moto accepts).
    pub fn hoist_with_keys(&self) -> Hoist {
        self.hoist()
            .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    }

    pub fn repository(&self, name: &str) -> Option<Value> {
        self.moto
            .ecr_blocking("DescribeRepositories", json!({"repositoryNames": [name]}))
            .ok()
            .map(|v| v["repositories"][0].clone())
    }

    /// A fault proxy in front of moto (point AWS_ENDPOINT_URL at it to log or break calls).
    pub fn moto_behind_proxy(&self) -> FaultProxy {
        FaultProxy::start(self.moto.url.trim_start_matches("http://").parse().unwrap())
    }

    pub fn lifecycle_policy(&self, name: &str) -> String {
        let answer = self
            .moto
            .ecr_blocking("GetLifecyclePolicy", json!({"repositoryName": name}))
            .expect("GetLifecyclePolicy");
        answer["lifecyclePolicyText"].as_str().unwrap().to_string()
    }

    pub fn create_repository(&self, name: &str, mutability: &str) {
        self.moto
            .ecr_blocking(
                "CreateRepository",
                json!({"repositoryName": name, "imageTagMutability": mutability}),
            )
            .expect("CreateRepository");
    }
}

pub const TEST_ACCESS_KEY: &str = "AKIAHOISTTESTKEY0001";
pub const TEST_SECRET_KEY: &str = "hoist-test-secret-key/DoNotLeak0123456789";

type ShimResponse = Response<Full<Bytes>>;

fn answer(status: u16, body: Value) -> ShimResponse {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn ecr_error(status: u16, code: &str, message: &str) -> ShimResponse {
    answer(
        status,
        json!({"errors": [{"code": code, "message": message}]}),
    )
}

/// `/v2/<name>/(manifests|blobs|tags)/...` → (name, kind, rest).
fn split_path(path: &str) -> Option<(&str, &str, &str)> {
    let rest = path.strip_prefix("/v2/")?;
    for kind in ["/manifests/", "/blobs/", "/tags/"] {
        if let Some(i) = rest.find(kind) {
            return Some((&rest[..i], kind.trim_matches('/'), &rest[i + kind.len()..]));
        }
    }
    None
}

/// ECR's WILDCARD filters (the shim's own small matcher: it stands in for ECR, not for hoist).
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (head.len()..=text.len())
                    .filter(|i| text.is_char_boundary(*i))
                    .any(|i| wildcard(tail, &text[i..]))
        }
    }
}

fn tag_is_immutable(repo: &Value, tag: &str) -> bool {
    let excluded = repo["imageTagMutabilityExclusionFilters"]
        .as_array()
        .is_some_and(|filters| {
            filters
                .iter()
                .any(|f| wildcard(f["filter"].as_str().unwrap_or(""), tag))
        });
    match repo["imageTagMutability"].as_str().unwrap_or("MUTABLE") {
        "IMMUTABLE" => true,
        "IMMUTABLE_WITH_EXCLUSION" => !excluded,
        "MUTABLE_WITH_EXCLUSION" => excluded,
        _ => false,
    }
}

async fn handle(state: &ShimState, req: Request<Incoming>) -> ShimResponse {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.to_string());
    state
        .log
        .lock()
        .unwrap()
        .push((method.clone(), path.clone()));
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(state.expected.as_str());
    let refused = authorized
        && state
            .refuse_valid
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    if !authorized || refused {
        let mut resp = ecr_error(401, "DENIED", "Not Authorized");
        resp.headers_mut().insert(
            "WWW-Authenticate",
            format!(r#"Basic realm="https://{ECR_HOST}/",service="ecr.amazonaws.com""#)
                .parse()
                .unwrap(),
        );
        return resp;
    }
    if path == "/v2/" || path == "/v2" {
        return answer(200, json!({}));
    }
    let Some((name, kind, rest)) = split_path(&path) else {
        return ecr_error(404, "NOT_FOUND", "unknown path");
    };
    let repo = match ecr_api(
        &state.moto_url,
        "DescribeRepositories",
        json!({"repositoryNames": [name]}),
    )
    .await
    {
        Ok(v) => v["repositories"][0].clone(),
        Err(_) => {
            return ecr_error(
                404,
                "NAME_UNKNOWN",
                &format!(
                    "The repository with name '{name}' does not exist in the registry with id '{ACCOUNT}'"
                ),
            );
        }
    };
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "host" | "authorization" | "content-length"))
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return ecr_error(400, "BAD_REQUEST", "body"),
    };
    let is_tag_put = method == "PUT" && kind == "manifests" && !rest.starts_with("sha256:");
    let digest = format!("sha256:{}", sha256_hex(&body));
    if is_tag_put && tag_is_immutable(&repo, rest) {
        let existing = http()
            .head(format!("{}/v2/{name}/manifests/{rest}", state.backend))
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
            )
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| {
                r.headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            });
        if existing.is_some_and(|d| d != digest) {
            return ecr_error(
                400,
                "TAG_INVALID",
                &format!(
                    "The image tag '{rest}' already exists in the '{name}' repository and cannot be overwritten because the repository is immutable."
                ),
            );
        }
    }
    let mut forward = http().request(
        method.parse().unwrap(),
        format!("{}{}", state.backend, path_and_query),
    );
    for (k, v) in &headers {
        forward = forward.header(k, v);
    }
    let upstream = match forward.body(body.clone()).send().await {
        Ok(r) => r,
        Err(e) => return ecr_error(502, "UNAVAILABLE", &e.to_string()),
    };
    let status = upstream.status().as_u16();
    let mut builder = Response::builder().status(status);
    for (k, v) in upstream.headers() {
        if k == "content-length" || k == "transfer-encoding" || k == "connection" {
            continue;
        }
        let value = v.to_str().unwrap_or_default();
        // Locations the backend builds point at itself; clients must come back here.
        let value = value.replace(&state.backend, "");
        builder = builder.header(k.as_str(), value);
    }
    let bytes = upstream.bytes().await.unwrap_or_default();
    if method == "PUT" && kind == "manifests" && (200..300).contains(&status) {
        let mut put = json!({
            "repositoryName": name,
            "imageManifest": String::from_utf8_lossy(&body),
            "imageDigest": digest,
        });
        if let Some(ct) = content_type {
            put["imageManifestMediaType"] = ct.into();
        }
        if !rest.starts_with("sha256:") {
            put["imageTag"] = rest.into();
        }
        // Same image re-pushed to a tag it has: moto refuses, ECR says nothing. Both fine.
        let _ = ecr_api(&state.moto_url, "PutImage", put).await;
    }
    builder.body(Full::new(bytes)).unwrap()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An unsigned JWT shaped like a GitLab ID token (moto's STS accepts any token).
pub fn gitlab_id_token(aud: serde_json::Value, exp: i64) -> String {
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"alg":"RS256","kid":"test","typ":"JWT"}"#);
    let claims = json!({
        "iss": "https://gitlab.example.com",
        "sub": "project_path:group/app:ref_type:branch:ref:main",
        "aud": aud,
        "exp": exp,
        "iat": now() - 60,
        "project_id": "42",
    });
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJlLW5vdC1jaGVja2VkLWJ5LW1vdG8")
}
