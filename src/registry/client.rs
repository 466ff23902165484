//! The registry client: one HTTP client, one retry policy, per-host auth state.
//!
//! Every call goes through [`RegistryClient::send`], which attaches credentials (answering
//! Basic and Bearer challenges, with token scopes per call), retries transient failures, and
//! turns registry error bodies into typed errors.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, LOCATION,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::auth::{self, Challenge, Credential};
use super::ecr::PutOutcome;
use super::error::error_from_response;
use super::retry::{Attempt, RetryPolicy, parse_retry_after};
use super::upload::{Session, content_range};
use crate::aws::ecr::{self, RepositoryInfo, RepositorySpec};
use crate::aws::{Aws, AwsSettings};
use crate::error::{Error, Result};
use crate::oci::{RawManifest, media};
use crate::progress::{Reporter, Silent};
use crate::reference::{DOCKER_HUB, Digest, RegistryRef};

/// A stream of blob bytes. Errors are io errors so the stream can be a request body.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Largest manifest we read; registries must accept 4 MB, a bigger one is hostile.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Settings read from the environment (design.md: endpoints, insecure hosts, loopback only).
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// `HOIST_REGISTRY_ENDPOINTS=host[:port]=http://127.0.0.1:PORT,...`
    pub endpoints: HashMap<String, Url>,
    /// `HOIST_INSECURE_REGISTRIES=host[:port],...`: plain HTTP or unverified TLS allowed.
    pub insecure: Vec<String>,
    /// `HOIST_TEST_LOOPBACK_ONLY=1`: refuse every non-loopback connection.
    pub loopback_only: bool,
    /// Pull mirrors: a registry → repository prefixes tried in order before it
    /// (`HOIST_REGISTRY_MIRRORS=docker.io=mirror.example/hub,other.example/hub;quay.io=...`,
    /// and `[mirrors]` in hoist.toml).
    pub mirrors: HashMap<String, Vec<String>>,
    pub retry: RetryPolicy,
    pub aws: AwsSettings,
    pub upload: super::upload::UploadSettings,
}

impl Settings {
    pub fn from_env() -> Result<Self> {
        let mut endpoints = HashMap::new();
        if let Ok(spec) = std::env::var("HOIST_REGISTRY_ENDPOINTS") {
            for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let bad = || {
                    Error::Usage(format!(
                        "HOIST_REGISTRY_ENDPOINTS entry `{item}` is not host[:port]=http(s)://endpoint"
                    ))
                };
                let (host, url) = item.split_once('=').ok_or_else(bad)?;
                let url = Url::parse(url).map_err(|_| bad())?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(bad());
                }
                endpoints.insert(host.trim().to_string(), url);
            }
        }
        let insecure = std::env::var("HOIST_INSECURE_REGISTRIES")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let mut mirrors = HashMap::new();
        if let Ok(spec) = std::env::var("HOIST_REGISTRY_MIRRORS") {
            for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                let (registry, prefixes) = item.split_once('=').ok_or_else(|| {
                    Error::Usage(format!(
                        "HOIST_REGISTRY_MIRRORS entry `{item}` is not registry=prefix[,prefix...]"
                    ))
                })?;
                mirrors.insert(
                    registry.trim().to_string(),
                    prefixes.split(',').map(|p| p.trim().to_string()).collect(),
                );
            }
        }
        Ok(Settings {
            endpoints,
            insecure,
            mirrors,
            loopback_only: std::env::var("HOIST_TEST_LOOPBACK_ONLY").is_ok_and(|v| v == "1"),
            retry: RetryPolicy::from_env(),
            aws: AwsSettings::from_env(),
            upload: super::upload::UploadSettings::from_env(),
        })
    }
}

/// Registry URLs shown to users: no credentials, no query (presigned blob URLs carry secrets).
pub fn redact_url(url: &Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str("?…");
    }
    shown
}

/// `host` of `host[:port]` (IPv6 brackets kept).
fn host_name(registry: &str) -> &str {
    match registry.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.contains(']') => host,
        _ => registry,
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn network_error(url: &Url, e: &reqwest::Error) -> Error {
    if let Some(detail) = crate::error::untrusted_certificate(e) {
        return Error::Untrusted {
            url: redact_url(url),
            detail,
        };
    }
    // A body stream that failed its digest check: that is the error, and it is final.
    if let Some(content) = crate::error::find_in_chain(e, &|s| {
        s.downcast_ref::<Error>().and_then(Error::content_error)
    }) {
        return content;
    }
    // reqwest's own message names the URL with its query; ours is redacted.
    let mut detail = e.without_url_ref().to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    Error::Network {
        url: redact_url(url),
        detail,
    }
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let kind = if self.is_timeout() {
            "timed out"
        } else if self.is_connect() {
            "cannot connect"
        } else if self.is_body() {
            "connection broke while sending or receiving the body"
        } else if self.is_decode() {
            "cannot decode the response"
        } else if self.is_redirect() {
            "too many or bad redirects"
        } else {
            "request failed"
        };
        kind.to_string()
    }
}

#[derive(Debug)]
struct Token {
    value: String,
    expires: Instant,
}

/// What we know about one registry host.
struct Host {
    registry: String,
    base: OnceCell<Url>,
    challenge: Mutex<Option<Challenge>>,
    /// `None` until looked up; then the credential, if any.
    credential: tokio::sync::Mutex<Option<Option<Credential>>>,
    /// An ECR token is refreshed at most once per run after the registry refused it.
    ecr_refreshed: AtomicBool,
    tokens: Mutex<HashMap<String, Token>>,
}

struct Inner {
    http: Arc<HttpClients>,
    settings: Settings,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    reporter: Arc<dyn Reporter>,
    aws: Arc<Aws>,
    /// `--ecr-create`: the repository settings to ensure before pushing to ECR.
    ecr_create: Mutex<Option<RepositorySpec>>,
    /// Tags expected to move to newer images (`latest`, `v1`, branches): an immutable ECR
    /// repository skips them instead of failing.
    moving_tags: Mutex<std::collections::HashSet<String>>,
    /// Per pushed ECR repository: checked (and created) once per run.
    push_checks: Mutex<HashMap<String, Arc<OnceCell<Option<RepositoryInfo>>>>>,
    /// Blobs this run saw in or put into a repository (`registry/name@digest`): a build's
    /// early uploads and its final push do not ask twice.
    present: Mutex<std::collections::HashSet<String>>,
    /// Blob pushes under way or done, by the same key.
    pushes: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// Manifest PUTs, one at a time per manifest and repository (same key).
    manifest_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The HTTP clients, each built on first use: building one reads every CA certificate of the
/// system, wasted on a run that only talks to loopback registries.
struct HttpClients {
    loopback_only: bool,
    verifying: OnceLock<std::result::Result<reqwest::Client, String>>,
    /// For insecure registries: accepts any certificate.
    insecure: OnceLock<std::result::Result<reqwest::Client, String>>,
}

impl HttpClients {
    fn new(loopback_only: bool) -> Self {
        HttpClients {
            loopback_only,
            verifying: OnceLock::new(),
            insecure: OnceLock::new(),
        }
    }

    fn get(&self, insecure: bool) -> Result<&reqwest::Client> {
        let cell = if insecure {
            &self.insecure
        } else {
            &self.verifying
        };
        cell.get_or_init(|| self.build(insecure))
            .as_ref()
            .map_err(|e| Error::Internal(format!("cannot build the HTTP client: {e}")))
    }

    fn build(&self, insecure: bool) -> std::result::Result<reqwest::Client, String> {
        let loopback_only = self.loopback_only;
        let redirect = || {
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    attempt.error("too many redirects")
                } else if loopback_only && !attempt.url().host_str().is_some_and(is_loopback_host) {
                    attempt.error("HOIST_TEST_LOOPBACK_ONLY refuses a redirect off loopback")
                } else {
                    attempt.follow()
                }
            })
        };
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(30))
                .read_timeout(Duration::from_secs(120))
                .pool_idle_timeout(Duration::from_secs(30))
                .redirect(redirect())
                .tls_danger_accept_invalid_certs(insecure)
        };
        builder()
            .build()
            .or_else(|e| {
                // No CA certificates on this machine (a bare job container): plain HTTP
                // and local work still go; a TLS registry then fails its handshake.
                tracing::debug!("no system CA certificates ({e}): TLS peers cannot be verified");
                builder().tls_certs_only([]).build()
            })
            .map_err(|e| e.to_string())
    }
}

#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

/// What a pushed or pulled repository needs from its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl RegistryClient {
    pub fn new(settings: Settings, reporter: Arc<dyn Reporter>) -> Result<Self> {
        let aws = Arc::new(Aws::new(settings.aws.clone(), reporter.clone()));
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http: Arc::new(HttpClients::new(settings.loopback_only)),
                settings,
                hosts: Mutex::new(HashMap::new()),
                reporter,
                aws,
                ecr_create: Mutex::new(None),
                moving_tags: Mutex::new(["latest".to_string()].into()),
                push_checks: Mutex::new(HashMap::new()),
                present: Mutex::new(std::collections::HashSet::new()),
                pushes: Mutex::new(HashMap::new()),
                manifest_locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A client configured from the environment that reports nothing.
    pub fn from_env() -> Result<Self> {
        Self::new(Settings::from_env()?, Arc::new(Silent))
    }

    /// A client that uses `credential` for `registry` instead of looking one up (`login`).
    pub fn with_credential(&self, registry: &str, credential: Credential) -> RegistryClient {
        let client = RegistryClient {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                settings: self.inner.settings.clone(),
                hosts: Mutex::new(HashMap::new()),
                reporter: self.inner.reporter.clone(),
                aws: self.inner.aws.clone(),
                ecr_create: Mutex::new(None),
                moving_tags: Mutex::new(["latest".to_string()].into()),
                push_checks: Mutex::new(HashMap::new()),
                present: Mutex::new(std::collections::HashSet::new()),
                pushes: Mutex::new(HashMap::new()),
                manifest_locks: Mutex::new(HashMap::new()),
            }),
        };
        let host = client.host(registry);
        *host
            .credential
            .try_lock()
            .expect("a fresh host is not in use") = Some(Some(credential));
        client
    }

    /// The run's AWS context (ECR tokens and repositories).
    pub fn aws(&self) -> &Arc<Aws> {
        &self.inner.aws
    }

    /// `--ecr-create`: pushes to an ECR repository first ensure it exists with these settings.
    pub fn set_ecr_create(&self, spec: RepositorySpec) {
        *self.inner.ecr_create.lock().expect("ecr_create lock") = Some(spec);
    }

    /// Marks `tag` as one that moves (`--tags auto` knows which do); `latest` always does.
    pub fn mark_moving_tag(&self, tag: &str) {
        self.inner
            .moving_tags
            .lock()
            .expect("moving tags lock")
            .insert(tag.to_string());
    }

    pub fn is_moving_tag(&self, tag: &str) -> bool {
        self.inner
            .moving_tags
            .lock()
            .expect("moving tags lock")
            .contains(tag)
    }

    pub(super) fn ecr_create(&self) -> Option<RepositorySpec> {
        self.inner
            .ecr_create
            .lock()
            .expect("ecr_create lock")
            .clone()
    }

    /// The once-per-run push check of one repository.
    pub(super) fn push_check(
        &self,
        registry: &str,
        repository: &str,
    ) -> Arc<OnceCell<Option<RepositoryInfo>>> {
        self.inner
            .push_checks
            .lock()
            .expect("push check lock")
            .entry(format!("{registry}/{repository}"))
            .or_default()
            .clone()
    }

    pub fn reporter(&self) -> &Arc<dyn Reporter> {
        &self.inner.reporter
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.settings.retry
    }

    pub fn upload_settings(&self) -> &super::upload::UploadSettings {
        &self.inner.settings.upload
    }

    fn host(&self, registry: &str) -> Arc<Host> {
        let mut hosts = self.inner.hosts.lock().expect("host map lock");
        hosts
            .entry(registry.to_string())
            .or_insert_with(|| {
                Arc::new(Host {
                    registry: registry.to_string(),
                    base: OnceCell::new(),
                    challenge: Mutex::new(None),
                    credential: tokio::sync::Mutex::new(None),
                    ecr_refreshed: AtomicBool::new(false),
                    tokens: Mutex::new(HashMap::new()),
                })
            })
            .clone()
    }

    fn is_insecure(&self, registry: &str) -> bool {
        is_loopback_host(host_name(registry))
            || self.inner.settings.insecure.iter().any(|h| h == registry)
    }

    fn http_for(&self, registry: &str) -> Result<&reqwest::Client> {
        self.inner.http.get(self.is_insecure(registry))
    }

    fn check_loopback(&self, url: &Url) -> Result<()> {
        if self.inner.settings.loopback_only && !url.host_str().is_some_and(is_loopback_host) {
            // Permanent, not a network failure: retrying cannot help.
            return Err(Error::Usage(format!(
                "{}: HOIST_TEST_LOOPBACK_ONLY=1 refuses connections off loopback",
                redact_url(url)
            )));
        }
        Ok(())
    }

    /// The base URL of a registry (`https://host`), found once: an explicit endpoint, Docker
    /// Hub's registry host, https, or (for loopback and insecure hosts) http when https fails.
    /// The ping also learns the registry's auth challenge.
    async fn base(&self, host: &Host) -> Result<Url> {
        host.base
            .get_or_try_init(|| async {
                let registry = host.registry.as_str();
                let candidates: Vec<Url> =
                    if let Some(url) = self.inner.settings.endpoints.get(registry) {
                        vec![url.clone()]
                    } else if registry == DOCKER_HUB {
                        vec![Url::parse("https://registry-1.docker.io").expect("static URL")]
                    } else if self.is_insecure(registry) {
                        // Loopback registries are nearly always plain HTTP: try that first.
                        let mut both = vec![
                            parse_base(&format!("https://{registry}"))?,
                            parse_base(&format!("http://{registry}"))?,
                        ];
                        if is_loopback_host(host_name(registry)) {
                            both.reverse();
                        }
                        both
                    } else {
                        vec![parse_base(&format!("https://{registry}"))?]
                    };
                let last = candidates.len() - 1;
                let http = self.http_for(registry)?;
                for (i, base) in candidates.into_iter().enumerate() {
                    let ping = base.join("/v2/").expect("static path");
                    self.check_loopback(&ping)?;
                    // Probing the scheme: one short try; no answer, or an answer that is not
                    // a registry's (a TLS server's 400 to plain HTTP), means "next". A 429, a
                    // 5xx or a connection cut after it was made is a server speaking this
                    // scheme, failing for now: retried below.
                    let probed = if i < last {
                        match http
                            .get(ping.clone())
                            .timeout(Duration::from_secs(5))
                            .send()
                            .await
                        {
                            Ok(resp)
                                if resp.status().is_success()
                                    || resp.status() == StatusCode::UNAUTHORIZED =>
                            {
                                Some(resp)
                            }
                            Ok(resp)
                                if resp.status() == StatusCode::TOO_MANY_REQUESTS
                                    || resp.status().is_server_error() =>
                            {
                                None
                            }
                            Ok(resp) => {
                                let s = resp.status();
                                tracing::debug!(%s, "not a registry answer, trying the next scheme");
                                continue;
                            }
                            // Connected, then cut off: this scheme's server, failing now.
                            Err(e) if !e.is_connect() && !e.is_timeout() => None,
                            // Refused, or no TLS/HTTP handshake: not this scheme.
                            Err(e) => {
                                let e = network_error(&ping, &e);
                                tracing::debug!(%e, "scheme probe failed, trying the next scheme");
                                continue;
                            }
                        }
                    } else {
                        None
                    };
                    let resp = match probed {
                        Some(resp) => resp,
                        None => {
                            let policy = self.inner.settings.retry.clone();
                            policy
                                .run(&redact_url(&ping), &self.inner.reporter, || async {
                                    let resp = http
                                        .get(ping.clone())
                                        .send()
                                        .await
                                        .map_err(|e| Attempt::from(network_error(&ping, &e)))?;
                                    retry_on_status(resp).await
                                })
                                .await?
                        }
                    };
                    if resp.status() == StatusCode::UNAUTHORIZED {
                        let challenge = resp
                            .headers()
                            .get(WWW_AUTHENTICATE)
                            .and_then(|v| v.to_str().ok())
                            .and_then(auth::parse_challenge);
                        *host.challenge.lock().expect("challenge lock") = challenge;
                    }
                    return Ok(base);
                }
                unreachable!("the last candidate returns")
            })
            .await
            .cloned()
    }

    async fn credential(&self, host: &Host) -> Result<Option<Credential>> {
        let mut slot = host.credential.lock().await;
        if let Some(known) = &*slot {
            return Ok(known.clone());
        }
        let found = self.look_up_credential(&host.registry).await?;
        *slot = Some(found.clone());
        Ok(found)
    }

    /// ECR hosts: a token from the AWS credentials (falling back to a docker login entry when
    /// there are no AWS credentials); other hosts: docker config, helpers, CI variables.
    async fn look_up_credential(&self, registry: &str) -> Result<Option<Credential>> {
        let from_docker_config = || {
            let registry = registry.to_string();
            async move {
                tokio::task::spawn_blocking(move || auth::find_credential(&registry))
                    .await
                    .map_err(|e| Error::Internal(format!("credential lookup panicked: {e}")))?
            }
        };
        let Some(ecr) = ecr::parse_host(registry) else {
            return from_docker_config().await;
        };
        match self.inner.aws.ecr_credential(registry, &ecr, false).await {
            Ok(credential) => Ok(Some(credential)),
            Err(aws_error) => match from_docker_config().await? {
                Some(credential) => {
                    tracing::debug!(
                        registry,
                        "no ECR token from AWS ({aws_error}); using the docker config entry"
                    );
                    Ok(Some(credential))
                }
                None => Err(aws_error),
            },
        }
    }

    /// After an ECR registry refused the token in `used`: fetch a fresh one (once per run).
    /// True when the request should be tried again with the new credential.
    async fn refresh_credential(&self, host: &Host, used: &str) -> Result<bool> {
        let Some(ecr) = ecr::parse_host(&host.registry) else {
            return Ok(false);
        };
        let mut slot = host.credential.lock().await;
        let current = slot.clone().flatten().map(|c| c.basic_header());
        if current.as_deref() != Some(used) {
            // Another request refreshed it meanwhile.
            return Ok(current.is_some());
        }
        if host.ecr_refreshed.swap(true, AtomicOrdering::SeqCst) {
            return Ok(false);
        }
        tracing::debug!(
            registry = host.registry,
            "the registry refused the ECR token; fetching a new one"
        );
        let fresh = self
            .inner
            .aws
            .ecr_credential(&host.registry, &ecr, true)
            .await?;
        *slot = Some(Some(fresh));
        Ok(true)
    }

    /// The `Authorization` header for a request needing `scopes`, or none for an open registry.
    async fn authorization(&self, host: &Host, scopes: &[String]) -> Result<Option<String>> {
        let challenge = host.challenge.lock().expect("challenge lock").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credential(host).await?.map(|c| c.basic_header())),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scopes.join(" ");
                if let Some(token) = host.tokens.lock().expect("token lock").get(&key)
                    && token.expires > Instant::now()
                {
                    return Ok(Some(format!("Bearer {}", token.value)));
                }
                let token = self
                    .fetch_token(host, &realm, service.as_deref(), scopes)
                    .await?;
                let header = format!("Bearer {}", token.value);
                host.tokens.lock().expect("token lock").insert(key, token);
                Ok(Some(header))
            }
        }
    }

    /// The token flow: `GET realm?service=&scope=...`, with Basic credentials when we have them.
    async fn fetch_token(
        &self,
        host: &Host,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token> {
        let mut url = Url::parse(realm).map_err(|_| Error::Registry {
            registry: host.registry.clone(),
            repository: String::new(),
            status: 401,
            code: "UNAUTHORIZED".into(),
            message: "the registry's token realm is not a URL".into(),
        })?;
        let credential = self.credential(host).await?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
            if let Some(c) = &credential {
                query.append_pair("account", &c.username);
            }
        }
        self.check_loopback(&url)?;
        let shown = redact_url(&url);
        let policy = self.inner.settings.retry.clone();
        let http = self.http_for(&host.registry)?;
        let resp = policy
            .run(&shown, &self.inner.reporter, || async {
                let mut req = http.get(url.clone());
                if let Some(c) = &credential {
                    req = req.header(AUTHORIZATION, c.basic_header());
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| Attempt::from(network_error(&url, &e)))?;
                retry_on_status(resp).await
            })
            .await?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Error::Unauthorized {
                registry: host.registry.clone(),
                detail: match credential {
                    Some(c) => format!(
                        "the token service rejected the credentials for user `{}`",
                        c.username
                    ),
                    None => "the token service requires credentials and none were found".into(),
                },
            });
        }
        if !status.is_success() {
            return Err(error_from_response(resp, &host.registry, "").await);
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer = resp
            .json()
            .await
            .map_err(|e| Error::malformed(format!("token from {shown}"), e))?;
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::malformed(format!("token from {shown}"), "no token in answer"))?;
        // Refresh a little early; the spec's default lifetime is 60 s.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(60).max(60));
        Ok(Token {
            value,
            expires: Instant::now() + lifetime.saturating_sub(Duration::from_secs(10)),
        })
    }

    /// Sends one request with credentials, answering one 401 by re-reading the challenge and
    /// fetching a fresh token. No retries here: see [`RegistryClient::send`].
    async fn send_once<F, Fut>(
        &self,
        host: &Host,
        scopes: &[String],
        make: &F,
    ) -> Result<Response, Attempt>
    where
        F: Fn(&reqwest::Client, &Url) -> Fut,
        Fut: Future<Output = Result<(RequestBuilder, Url)>>,
    {
        let base = self.base(host).await?;
        let http = self.http_for(&host.registry)?;
        let mut challenged = false;
        let mut refreshed = false;
        loop {
            let (mut req, url) = make(http, &base).await?;
            self.check_loopback(&url)?;
            let header = self.authorization(host, scopes).await?;
            if let Some(header) = &header {
                req = req.header(AUTHORIZATION, header);
            }
            let sent = std::time::Instant::now();
            let resp = req
                .send()
                .await
                .map_err(|e| Attempt::from(network_error(&url, &e)))?;
            tracing::trace!(
                url = %redact_url(&url),
                status = resp.status().as_u16(),
                ms = sent.elapsed().as_millis() as u64,
                "registry request"
            );
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if challenged
                && !refreshed
                && let Some(used) = &header
                && self.refresh_credential(host, used).await?
            {
                refreshed = true;
                continue;
            }
            if challenged {
                let detail = match self.credential(host).await? {
                    Some(c) => format!(
                        "the registry rejected the credentials of user `{}` for {}",
                        c.username,
                        scopes.join(" ")
                    ),
                    None => {
                        "authentication required and no credentials were found for this registry"
                            .into()
                    }
                };
                return Err(Attempt::Fail(Error::Unauthorized {
                    registry: host.registry.clone(),
                    detail,
                }));
            }
            // A first 401: the registry may want auth we did not know about, or the token expired.
            challenged = true;
            let challenge = resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge);
            if challenge.is_none() {
                return Ok(resp);
            }
            *host.challenge.lock().expect("challenge lock") = challenge;
            host.tokens
                .lock()
                .expect("token lock")
                .remove(&scopes.join(" "));
        }
    }

    /// Sends a request built by `make` (called again for each attempt), with auth and retries.
    /// Answers 429 and 5xx are retried; other answers are returned for the caller to judge.
    pub async fn send<F, Fut>(
        &self,
        registry: &str,
        scopes: &[String],
        what: &str,
        make: F,
    ) -> Result<Response>
    where
        F: Fn(&reqwest::Client, &Url) -> Fut,
        Fut: Future<Output = Result<(RequestBuilder, Url)>>,
    {
        let host = self.host(registry);
        let policy = self.inner.settings.retry.clone();
        policy
            .run(what, &self.inner.reporter, || async {
                let resp = self.send_once(&host, scopes, &make).await?;
                retry_on_status(resp).await
            })
            .await
    }

    /// Like [`RegistryClient::send`] but a single attempt: for requests whose body is a stream
    /// that cannot be replayed; the caller retries the whole transfer.
    pub async fn send_single<F, Fut>(
        &self,
        registry: &str,
        scopes: &[String],
        make: F,
    ) -> Result<Response>
    where
        F: Fn(&reqwest::Client, &Url) -> Fut,
        Fut: Future<Output = Result<(RequestBuilder, Url)>>,
    {
        let host = self.host(registry);
        match self.send_once(&host, scopes, &make).await {
            Ok(resp) => match retry_on_status(resp).await {
                Ok(resp) => Ok(resp),
                Err(Attempt::Retry { error, .. } | Attempt::Fail(error)) => Err(error),
            },
            Err(Attempt::Retry { error, .. } | Attempt::Fail(error)) => Err(error),
        }
    }

    /// A handle on one repository with the token scope for `access`.
    /// Where to pull `reference` from: the first configured mirror that has it (mirror prefix +
    /// the same repository path, `library/` kept for Docker Hub), else the reference itself.
    /// A mirror that fails or lacks the image is passed over.
    pub async fn pull_from(&self, reference: &RegistryRef) -> RegistryRef {
        let Some(prefixes) = self.inner.settings.mirrors.get(&reference.registry) else {
            return reference.clone();
        };
        for prefix in prefixes.iter().filter_map(|p| expand_env(p)) {
            let Ok(candidate) = RegistryRef::parse(&format!(
                "{}/{}",
                prefix.trim_end_matches('/'),
                reference.repository
            )) else {
                tracing::debug!(prefix, "not a repository prefix; mirror skipped");
                continue;
            };
            let candidate = RegistryRef {
                tag: reference.tag.clone(),
                digest: reference.digest.clone(),
                ..candidate
            };
            let repo = self.repository(&candidate, Access::Pull);
            match repo.head_manifest(&reference.manifest_reference()).await {
                Ok(Some(_)) => {
                    self.inner
                        .reporter
                        .report(crate::progress::Event::Info(format!(
                            "pulling {reference} through the mirror {candidate}"
                        )));
                    return candidate;
                }
                Ok(None) => tracing::debug!(%candidate, "the mirror lacks it"),
                Err(e) => tracing::debug!(%candidate, %e, "the mirror failed"),
            }
        }
        reference.clone()
    }

    pub fn repository(&self, reference: &RegistryRef, access: Access) -> Repository {
        Repository {
            client: self.clone(),
            registry: reference.registry.clone(),
            name: reference.repository.clone(),
            scopes: vec![scope(&reference.repository, access)],
            access,
        }
    }
}

fn parse_base(s: &str) -> Result<Url> {
    Url::parse(s).map_err(|_| Error::InvalidReference {
        input: s.to_string(),
        reason: "registry host does not form a URL".into(),
    })
}

fn scope(repository: &str, access: Access) -> String {
    match access {
        Access::Pull => format!("repository:{repository}:pull"),
        Access::Push => format!("repository:{repository}:pull,push"),
    }
}

/// Turns a 429/5xx answer into a retry (with the server's `Retry-After`), passes others on.
async fn retry_on_status(resp: Response) -> Result<Response, Attempt> {
    let status = resp.status();
    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return Ok(resp);
    }
    let after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let url = resp.url().clone();
    let error = error_from_response(resp, url.host_str().unwrap_or(""), url.path()).await;
    Err(Attempt::Retry { error, after })
}

/// The outcome of asking for a cross-repository mount.
pub enum MountOutcome {
    Mounted,
    /// The registry started an upload session instead.
    Upload(Session),
}

/// One repository on one registry, with the token scopes its calls need.
#[derive(Clone)]
pub struct Repository {
    pub(super) client: RegistryClient,
    pub registry: String,
    pub name: String,
    pub(super) scopes: Vec<String>,
    access: Access,
}

impl Repository {
    fn url(&self, base: &Url, path: &str) -> Url {
        base.join(&format!("/v2/{}/{path}", self.name))
            .expect("repository paths are valid URL paths")
    }

    fn what(&self, path: &str) -> String {
        format!("{}/{}/{}", self.registry, self.name, path)
    }

    async fn send<F>(&self, what: &str, make: F) -> Result<Response>
    where
        F: Fn(&reqwest::Client, &Url) -> Result<(RequestBuilder, Url)>,
    {
        if self.access == Access::Push {
            self.ready_for_push().await?;
        }
        self.client
            .send(&self.registry, &self.scopes, what, |http, base| {
                std::future::ready(make(http, base))
            })
            .await
    }

    pub(super) async fn error(&self, resp: Response) -> Error {
        error_from_response(resp, &self.registry, &self.name).await
    }

    /// Checks that the registry accepts our credentials (`GET /v2/` with them).
    pub async fn verify_login(&self) -> Result<()> {
        let resp = self
            .send(&format!("{}/v2/", self.registry), |http, base| {
                let url = base.join("/v2/").expect("static path");
                Ok((http.get(url.clone()), url))
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.error(resp).await)
        }
    }

    /// Fetches a manifest by tag or digest; a digest reference is verified against the bytes.
    /// A GET read whole (at most `limit` bytes) within the retry policy, so a body cut off
    /// half-way is asked for again. `Ok(None)`: 404.
    async fn get_whole<F>(&self, what: &str, limit: usize, make: F) -> Result<Option<Whole>>
    where
        F: Fn(&reqwest::Client, &Url) -> Result<(RequestBuilder, Url)>,
    {
        self.client
            .retry_policy()
            .run(what, self.client.reporter(), || async {
                let resp = self.send(what, &make).await?;
                if resp.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !resp.status().is_success() {
                    return Err(Attempt::Fail(self.error(resp).await));
                }
                let (url, headers) = (resp.url().clone(), resp.headers().clone());
                let bytes = read_limited(resp, limit, what).await?;
                Ok(Some(Whole {
                    url,
                    headers,
                    bytes,
                }))
            })
            .await
    }

    pub async fn get_manifest(&self, reference: &str) -> Result<RawManifest> {
        let path = format!("manifests/{reference}");
        let what = self.what(&path);
        let Some(Whole { headers, bytes, .. }) = self
            .get_whole(&what, MAX_MANIFEST_BYTES, |http, base| {
                let url = self.url(base, &path);
                Ok((
                    http.get(url.clone()).header(ACCEPT, media::MANIFEST_ACCEPT),
                    url,
                ))
            })
            .await?
        else {
            return Err(Error::NotFound {
                what: format!("{}/{}:{}", self.registry, self.name, reference)
                    .replace(":sha256:", "@sha256:"),
            });
        };
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let manifest = RawManifest::new(bytes, content_type, &what)?;
        if let Ok(expected) = Digest::parse(reference) {
            verify_digest(&expected, &manifest.bytes, &what)?;
        }
        Ok(manifest)
    }

    /// Whether a manifest exists, and its digest (cheap: HEAD).
    pub async fn head_manifest(&self, reference: &str) -> Result<Option<Digest>> {
        let path = format!("manifests/{reference}");
        let resp = self
            .send(&self.what(&path), |http, base| {
                let url = self.url(base, &path);
                Ok((
                    http.head(url.clone())
                        .header(ACCEPT, media::MANIFEST_ACCEPT),
                    url,
                ))
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Digest::parse(v).ok())),
            _ => Err(self.error(resp).await),
        }
    }

    /// Stores a manifest under a tag or its digest. The registry's digest must equal ours.
    pub async fn put_manifest(
        &self,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<PutOutcome> {
        if Digest::parse(reference).is_err()
            && let Some(outcome) = self.guard_ecr_tag(reference, manifest).await?
        {
            return Ok(outcome);
        }
        // One PUT of a given manifest into a repository at a time: distribution stores a
        // manifest as a blob, and concurrent writes of the same one (several tags, or the same
        // index child from several copies) can make it read a half-written file and answer
        // DIGEST_INVALID.
        let lock = {
            let mut locks = self
                .client
                .inner
                .manifest_locks
                .lock()
                .expect("manifest locks");
            locks
                .entry(self.blob_key(&manifest.digest))
                .or_default()
                .clone()
        };
        let _held = lock.lock().await;
        self.put_manifest_unguarded(reference, manifest)
            .await
            .map(|()| PutOutcome::Written)
    }

    pub(super) async fn put_manifest_unguarded(
        &self,
        reference: &str,
        manifest: &RawManifest,
    ) -> Result<()> {
        let path = format!("manifests/{reference}");
        let what = self.what(&path);
        // distribution checks the manifest's blobs as it stores it, and may answer
        // DIGEST_INVALID for a blob another client's upload is committing at that moment:
        // asked again a little later, it finds the blob whole.
        let resp = self
            .client
            .retry_policy()
            .run(&what, self.client.reporter(), || async {
                let resp = self
                    .send(&what, |http, base| {
                        let url = self.url(base, &path);
                        Ok((
                            http.put(url.clone())
                                .header(CONTENT_TYPE, manifest.media_type.as_str())
                                .body(manifest.bytes.clone()),
                            url,
                        ))
                    })
                    .await?;
                if resp.status().is_success() {
                    return Ok(resp);
                }
                match self.error(resp).await {
                    error @ Error::Registry { .. }
                        if matches!(&error, Error::Registry { code, .. } if code == "DIGEST_INVALID") =>
                    {
                        Err(Attempt::Retry { error, after: None })
                    }
                    error => Err(Attempt::Fail(
                        self.immutable_tag_refusal(reference, manifest, error).await,
                    )),
                }
            })
            .await?;
        if let Some(theirs) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && theirs != manifest.digest.as_str()
            // The answer may be wrong rather than the manifest: is ours there?
            && self
                .head_manifest(manifest.digest.as_str())
                .await?
                .is_none()
        {
            return Err(Error::ManifestRewritten {
                target: self.what(&path),
                sent: manifest.digest.to_string(),
                stored: theirs.to_string(),
            });
        }
        Ok(())
    }

    /// The size of a blob if the repository has it.
    /// Whether the repository has the blob (a HEAD, unless this run saw it there already).
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        if self
            .client
            .inner
            .present
            .lock()
            .expect("present lock")
            .contains(&self.blob_key(digest))
        {
            return Ok(true);
        }
        let path = format!("blobs/{digest}");
        let resp = self
            .send(&self.what(&path), |http, base| {
                let url = self.url(base, &path);
                Ok((http.head(url.clone()), url))
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => {
                self.mark_present(digest);
                Ok(true)
            }
            _ => Err(self.error(resp).await),
        }
    }

    /// Remembers for this run that the repository has the blob (uploaded or mounted).
    pub fn mark_present(&self, digest: &Digest) {
        let key = self.blob_key(digest);
        self.client
            .inner
            .present
            .lock()
            .expect("present lock")
            .insert(key);
    }

    /// The one push of `digest` into this repository this run.
    pub fn push_flight(&self, digest: &Digest) -> Arc<OnceCell<()>> {
        let key = self.blob_key(digest);
        let mut pushes = self.client.inner.pushes.lock().expect("pushes lock");
        pushes.entry(key).or_default().clone()
    }

    fn blob_key(&self, digest: &Digest) -> String {
        format!("{}/{}@{digest}", self.registry, self.name)
    }

    /// Opens a blob for reading. The stream fails at its end if the bytes do not hash to
    /// `digest` or are not `size` long, so a consumer never commits corrupt content.
    pub async fn get_blob(&self, digest: &Digest, size: u64) -> Result<ByteStream> {
        let path = format!("blobs/{digest}");
        let what = self.what(&path);
        let resp = self
            .send(&what, |http, base| {
                let url = self.url(base, &path);
                Ok((http.get(url.clone()), url))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound { what });
        }
        if !resp.status().is_success() {
            return Err(self.error(resp).await);
        }
        let url = resp.url().clone();
        let stream = resp
            .bytes_stream()
            .map_err(move |e| std::io::Error::other(network_error(&url, &e)));
        Ok(crate::digest::verify_stream(
            Box::pin(stream),
            digest.clone(),
            size,
            what,
        ))
    }

    /// Asks for `digest` to be mounted from `from` (another repository of this registry).
    /// The token must cover pull on `from`: this repository handle asks for it.
    pub async fn mount_blob(&self, digest: &Digest, from: &str) -> Result<MountOutcome> {
        let mut scopes = self.scopes.clone();
        scopes.push(scope(from, Access::Pull));
        let what = self.what("blobs/uploads/");
        let resp = self
            .client
            .send(&self.registry, &scopes, &what, |http, base| {
                let mut url = self.url(base, "blobs/uploads/");
                url.query_pairs_mut()
                    .append_pair("mount", digest.as_str())
                    .append_pair("from", from);
                std::future::ready(Ok((http.post(url.clone()).header(CONTENT_LENGTH, 0), url)))
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => Ok(MountOutcome::Upload(self.session(&resp)?)),
            _ => Err(self.error(resp).await),
        }
    }

    /// Starts an upload session.
    pub async fn start_upload(&self) -> Result<Session> {
        let what = self.what("blobs/uploads/");
        let resp = self
            .send(&what, |http, base| {
                let url = self.url(base, "blobs/uploads/");
                Ok((http.post(url.clone()).header(CONTENT_LENGTH, 0), url))
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.error(resp).await);
        }
        self.session(&resp)
    }

    /// The upload session an answer (to POST, PATCH or GET) points at.
    pub(super) fn session(&self, resp: &Response) -> Result<Session> {
        let min_part = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        Ok(Session {
            location: self.location(resp)?,
            min_part,
        })
    }

    fn location(&self, resp: &Response) -> Result<Url> {
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::malformed(
                    self.what("blobs/uploads/"),
                    "upload answer has no Location header",
                )
            })?;
        // Relative locations resolve against the URL that answered.
        resp.url()
            .join(location)
            .map_err(|e| Error::malformed(self.what("blobs/uploads/"), e))
    }

    /// Finishes an upload session with one streamed PUT carrying the blob's bytes from
    /// `start` on (`len` of them): the whole blob (a monolithic upload), or the last part.
    /// One attempt: the body cannot be replayed, so the caller retries from a new session.
    pub async fn put_blob(
        &self,
        location: Url,
        digest: &Digest,
        start: u64,
        len: u64,
        body: ByteStream,
    ) -> Result<()> {
        let mut url = location;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let body = Mutex::new(Some(body));
        let resp = self
            .client
            .send_single(&self.registry, &self.scopes, |http, _base| {
                let body = body.lock().expect("body lock").take();
                let url = url.clone();
                let http = http.clone();
                async move {
                    let body = body.ok_or_else(|| {
                        // A 401 asked for the body a second time; the caller starts over.
                        Error::Network {
                            url: redact_url(&url),
                            detail: "authorization changed during the upload".into(),
                        }
                    })?;
                    let mut put = http
                        .put(url.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, HeaderValue::from(len));
                    if start > 0 {
                        put = put.header(CONTENT_RANGE, content_range(start, len));
                    }
                    Ok((put.body(reqwest::Body::wrap_stream(body)), url))
                }
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error(resp).await);
        }
        Ok(())
    }

    /// All tags, following `Link` pagination.
    pub async fn tags(&self) -> Result<Vec<String>> {
        let mut tags = Vec::new();
        let mut next: Option<Url> = None;
        let what = self.what("tags/list");
        loop {
            let page = next.take();
            let Some(Whole {
                url: answered,
                headers,
                bytes,
            }) = self
                .get_whole(&what, 64 * 1024 * 1024, |http, base| {
                    let url = match &page {
                        Some(u) => u.clone(),
                        None => {
                            let mut u = self.url(base, "tags/list");
                            u.query_pairs_mut().append_pair("n", &tag_page_size());
                            u
                        }
                    };
                    Ok((http.get(url.clone()), url))
                })
                .await?
            else {
                return Err(Error::NotFound {
                    what: format!("repository {}/{}", self.registry, self.name),
                });
            };
            next = link_next(&headers, &answered)?;
            #[derive(Deserialize)]
            struct TagList {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let page: TagList =
                serde_json::from_slice(&bytes).map_err(|e| Error::malformed(&what, e))?;
            tags.extend(page.tags.unwrap_or_default());
            if next.is_none() {
                return Ok(tags);
            }
        }
    }
}

/// Tags asked for per page; `HOIST_TAG_PAGE_SIZE` lets tests exercise pagination.
fn tag_page_size() -> String {
    std::env::var("HOIST_TAG_PAGE_SIZE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1000)
        .to_string()
}

/// The `rel="next"` target of a `Link` header, resolved against the answering URL.
/// A whole answer: where it came from, its headers, its body.
struct Whole {
    url: Url,
    headers: reqwest::header::HeaderMap,
    bytes: Bytes,
}

/// The `rel="next"` target of a `Link` header, resolved against the page's URL.
fn link_next(headers: &reqwest::header::HeaderMap, page: &Url) -> Result<Option<Url>> {
    for value in headers.get_all("link") {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let target = parts.next().unwrap_or("").trim();
            let is_next = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next
                && let Some(target) = target.strip_prefix('<').and_then(|t| t.strip_suffix('>'))
            {
                return page
                    .join(target)
                    .map(Some)
                    .map_err(|e| Error::malformed("tag list Link header", e));
            }
        }
    }
    Ok(None)
}

async fn read_limited(resp: Response, limit: usize, what: &str) -> Result<Bytes> {
    if resp.content_length().is_some_and(|len| len > limit as u64) {
        return Err(Error::malformed(what, format!("larger than {limit} bytes")));
    }
    let url = resp.url().clone();
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| network_error(&url, &e))?;
        if out.len() + chunk.len() > limit {
            return Err(Error::malformed(what, format!("larger than {limit} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

pub fn verify_digest(expected: &Digest, bytes: &[u8], what: &str) -> Result<()> {
    let actual = crate::digest::compute(expected.algorithm(), bytes)?;
    if &actual != expected {
        return Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// `$NAME` and `${NAME}` replaced from the environment; `None` when one is unset or empty (a
/// CI variable that only exists on some runners turns its mirror off).
fn expand_env(value: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}')?;
                (&braced[..end], &braced[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let value = std::env::var(name).ok().filter(|v| !v.is_empty())?;
        out.push_str(&value);
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::expand_env;

    #[test]
    fn mirror_prefixes_take_variables_and_drop_out_without_them() {
        // SAFETY: this test's own variable names; no other test reads or writes them.
        unsafe {
            std::env::set_var(
                "HOIST_TEST_PROXY_PREFIX",
                "gitlab.example.com:443/group/dependency_proxy/containers",
            );
            std::env::remove_var("HOIST_TEST_UNSET_PREFIX");
        }
        assert_eq!(
            expand_env("$HOIST_TEST_PROXY_PREFIX").as_deref(),
            Some("gitlab.example.com:443/group/dependency_proxy/containers")
        );
        assert_eq!(
            expand_env("${HOIST_TEST_PROXY_PREFIX}/x").as_deref(),
            Some("gitlab.example.com:443/group/dependency_proxy/containers/x")
        );
        assert_eq!(
            expand_env("mirror.example/hub").as_deref(),
            Some("mirror.example/hub")
        );
        assert_eq!(expand_env("$HOIST_TEST_UNSET_PREFIX/hub"), None);
    }
}
