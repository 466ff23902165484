//! Amazon ECR: hosts, registry tokens (GetAuthorizationToken, kept in memory or in a 0600
//! state file, never in the cache dir), repositories (describe, create, converge), tag
//! mutability rules and image scans.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageIdentifier, ImageScanningConfiguration,
    ImageTagMutability, ImageTagMutabilityExclusionFilter, ImageTagMutabilityExclusionFilterType,
    Tag,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use aws_sdk_ecr::error::ProvideErrorMetadata;

use super::{Aws, api_error};
use crate::error::{Error, Result};
use crate::progress::Event;
use crate::registry::auth::Credential;

/// A private ECR registry host: `<account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]` and the
/// other partitions' suffixes (the credential helper's list).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EcrHost {
    pub account: String,
    pub region: String,
}

const HOST_SUFFIXES: [&str; 9] = [
    "amazonaws.com",
    "amazonaws.com.cn",
    "amazonaws.eu",
    "on.aws",
    "on.amazonwebservices.com.cn",
    "sc2s.sgov.gov",
    "c2s.ic.gov",
    "cloud.adc-e.uk",
    "csp.hci.ic.gov",
];

pub fn parse_host(registry: &str) -> Option<EcrHost> {
    let host = registry.split(':').next()?.to_ascii_lowercase();
    let (account, rest) = host.split_once('.')?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let rest = ["dkr.ecr-fips.", "dkr-ecr-fips.", "dkr.ecr.", "dkr-ecr."]
        .iter()
        .find_map(|p| rest.strip_prefix(p))?;
    let (region, suffix) = rest.split_once('.')?;
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (region_ok && HOST_SUFFIXES.contains(&suffix)).then(|| EcrHost {
        account: account.to_string(),
        region: region.to_string(),
    })
}

/// "3h 5m", "42s": how long ago or until something.
pub fn describe_duration(secs: i64) -> String {
    let secs = secs.unsigned_abs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d", secs / 86400),
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Registry tokens

/// A stored token is used only while it has at least this long to live.
const TOKEN_MARGIN_SECS: i64 = 15 * 60;

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    #[serde(default)]
    tokens: BTreeMap<String, StoredToken>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredToken {
    registry: String,
    /// ECR's authorizationToken: base64 of `AWS:<password>`.
    token: String,
    expires_at: i64,
}

/// `$XDG_STATE_HOME/hoist` (default `~/.local/state/hoist`): tokens live here, never in the
/// cache dir that CI uploads.
pub fn state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join("hoist"))
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".local").join("state").join("hoist"))
        })
}

fn token_key(registry: &str, identity: &str) -> String {
    hex::encode(Sha256::digest(format!("{registry}\n{identity}").as_bytes()))[..32].to_string()
}

fn decode_token(token: &str, registry: &str) -> Result<Credential> {
    let bad = || Error::Aws {
        message: format!(
            "ECR returned an authorization token for {registry} that is not base64 of user:password"
        ),
        hint: None,
    };
    let decoded = BASE64
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (user, password) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Credential {
        username: user.to_string(),
        secret: password.to_string(),
    })
}

/// The token store: one JSON file, 0600, in a 0700 directory, updated under a lock.
struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    fn open() -> Option<TokenStore> {
        state_dir().map(|dir| TokenStore {
            path: dir.join("ecr-tokens.json"),
        })
    }

    fn read(&self) -> TokenFile {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn get(&self, key: &str, now: i64) -> Option<String> {
        self.read()
            .tokens
            .get(key)
            .filter(|t| t.expires_at - now > TOKEN_MARGIN_SECS)
            .map(|t| t.token.clone())
    }

    /// Applies `change` to the file, dropping expired entries on the way.
    fn update(&self, now: i64, change: impl FnOnce(&mut TokenFile)) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self
            .path
            .parent()
            .expect("the token file is in a directory");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(dir, e))?;
        let _lock = crate::fsutil::FileLock::acquire(&self.path.with_extension("lock"))?;
        let mut file = self.read();
        file.tokens.retain(|_, t| t.expires_at > now);
        change(&mut file);
        let bytes = serde_json::to_vec_pretty(&file).expect("token file serialises");
        crate::fsutil::write_atomic(&self.path, &bytes, 0o600)
    }
}

impl Aws {
    /// Registry credentials for an ECR host: a stored token while it lives, else a fresh one
    /// from GetAuthorizationToken (stored unless it expires too soon). `refresh` skips the
    /// stored token (the registry just refused it).
    pub async fn ecr_credential(
        &self,
        registry: &str,
        ecr: &EcrHost,
        refresh: bool,
    ) -> Result<Credential> {
        // Keyed by the identity the credentials resolved to, not by what the environment
        // claims: a job that only names a role must not get the token of one that assumed it.
        let key = token_key(
            registry,
            &format!("key:{}", self.identity(&ecr.region).await?),
        );
        let store = TokenStore::open();
        let now = now_unix();
        if !refresh && let Some(token) = store.as_ref().and_then(|s| s.get(&key, now)) {
            tracing::debug!(registry, "using the stored ECR token");
            return decode_token(&token, registry);
        }
        let client = self.ecr_client(&ecr.region).await?;
        let answer = client.get_authorization_token().send().await.map_err(|e| {
            region_mismatch_hint(
                api_error("ECR", "GetAuthorizationToken", &ecr.region, e),
                &ecr.region,
                std::env::var("AWS_REGION")
                    .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                    .ok(),
            )
        })?;
        let data = answer
            .authorization_data()
            .first()
            .ok_or_else(|| Error::Aws {
                message: format!(
                    "ECR GetAuthorizationToken ({}) returned no token",
                    ecr.region
                ),
                hint: None,
            })?;
        let token = data.authorization_token().unwrap_or_default().to_string();
        let credential = decode_token(&token, registry)?;
        let expires_at = data.expires_at().map(|t| t.secs());
        match (expires_at, &store) {
            (Some(expires_at), Some(store)) if expires_at - now > TOKEN_MARGIN_SECS => {
                store.update(now, |file| {
                    file.tokens.insert(
                        key,
                        StoredToken {
                            registry: registry.to_string(),
                            token,
                            expires_at,
                        },
                    );
                })?;
            }
            (Some(expires_at), _) => {
                // Already expired (or about to): use it for this run only.
                tracing::debug!(
                    registry,
                    expires_at,
                    "ECR token not stored: it expires too soon"
                );
                if let Some(store) = &store {
                    store.update(now, |file| {
                        file.tokens.remove(&key);
                    })?;
                }
            }
            (None, _) => {}
        }
        Ok(credential)
    }
}

/// Mentions it in the hint when the registry host's region differs from `AWS_REGION`: a
/// common slip when an image moves between regions (hoist always asks the host's region).
fn region_mismatch_hint(error: Error, host_region: &str, configured: Option<String>) -> Error {
    let configured = configured.filter(|r| !r.is_empty() && r != host_region);
    match (error, configured) {
        (Error::Aws { message, hint }, Some(region)) => {
            let note = format!(
                "the registry is in {host_region} while AWS_REGION is {region}: credentials and IAM policies must allow {host_region}"
            );
            Error::Aws {
                message,
                hint: Some(match hint {
                    Some(h) => format!("{h}; {note}"),
                    None => note,
                }),
            }
        }
        (error, _) => error,
    }
}

// ---------------------------------------------------------------------------------------------
// Repositories

/// What ECR says about one repository.
#[derive(Clone, Debug, Serialize)]
pub struct RepositoryInfo {
    pub name: String,
    pub uri: String,
    pub arn: String,
    pub mutability: String,
    /// Wildcard filters of the `*_WITH_EXCLUSION` modes.
    pub exclusions: Vec<String>,
    pub scan_on_push: bool,
    pub encryption: String,
    pub kms_key: Option<String>,
}

impl RepositoryInfo {
    fn from_sdk(r: &aws_sdk_ecr::types::Repository) -> RepositoryInfo {
        let encryption = r.encryption_configuration();
        RepositoryInfo {
            name: r.repository_name().unwrap_or_default().to_string(),
            uri: r.repository_uri().unwrap_or_default().to_string(),
            arn: r.repository_arn().unwrap_or_default().to_string(),
            mutability: r
                .image_tag_mutability()
                .map_or("MUTABLE", |m| m.as_str())
                .to_string(),
            exclusions: r
                .image_tag_mutability_exclusion_filters()
                .iter()
                .map(|f| f.filter().to_string())
                .collect(),
            scan_on_push: r
                .image_scanning_configuration()
                .is_some_and(|c| c.scan_on_push()),
            encryption: encryption
                .map_or("AES256", |e| e.encryption_type().as_str())
                .to_string(),
            kms_key: encryption.and_then(|e| e.kms_key().map(str::to_string)),
        }
    }

    /// Whether an existing `tag` may be overwritten in this repository.
    pub fn tag_is_mutable(&self, tag: &str) -> bool {
        let excluded = self.exclusions.iter().any(|f| wildcard_match(f, tag));
        match self.mutability.as_str() {
            "IMMUTABLE" => false,
            "IMMUTABLE_WITH_EXCLUSION" => excluded,
            "MUTABLE_WITH_EXCLUSION" => !excluded,
            _ => true,
        }
    }
}

/// ECR's `WILDCARD` filters: `*` matches any run of characters.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Where a repository lives: a region and (optionally) the account of its registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryAt {
    pub region: String,
    pub account: Option<String>,
    pub name: String,
}

impl RepositoryAt {
    fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.region,
            self.account.as_deref().unwrap_or("-"),
            self.name
        )
    }
}

/// The wanted state of a repository (`hoist ecr ensure`, `--ecr-create`). `None` fields are
/// left as they are (or at ECR's defaults on creation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepositorySpec {
    pub scan_on_push: Option<bool>,
    pub mutability: Option<Mutability>,
    pub encryption: Option<Encryption>,
    /// A lifecycle policy document (JSON).
    pub lifecycle_policy: Option<String>,
    pub tags: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutability {
    Mutable,
    Immutable,
    /// Immutable except tags matching these wildcard filters (at most 5).
    ImmutableExcept(Vec<String>),
}

impl Mutability {
    fn sdk(&self) -> (ImageTagMutability, Vec<ImageTagMutabilityExclusionFilter>) {
        match self {
            Mutability::Mutable => (ImageTagMutability::Mutable, vec![]),
            Mutability::Immutable => (ImageTagMutability::Immutable, vec![]),
            Mutability::ImmutableExcept(filters) => (
                ImageTagMutability::ImmutableWithExclusion,
                filters
                    .iter()
                    .map(|f| {
                        ImageTagMutabilityExclusionFilter::builder()
                            .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                            .filter(f)
                            .build()
                            .expect("filter type and filter are set")
                    })
                    .collect(),
            ),
        }
    }

    fn matches(&self, info: &RepositoryInfo) -> bool {
        let (mode, filters) = self.sdk();
        let mut wanted: Vec<&str> = filters.iter().map(|f| f.filter()).collect();
        let mut have: Vec<&str> = info.exclusions.iter().map(String::as_str).collect();
        wanted.sort();
        have.sort();
        mode.as_str() == info.mutability && wanted == have
    }

    fn describe(&self) -> String {
        match self {
            Mutability::Mutable => "MUTABLE".into(),
            Mutability::Immutable => "IMMUTABLE".into(),
            Mutability::ImmutableExcept(f) => format!("IMMUTABLE except {}", f.join(", ")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    Aes256,
    Kms(Option<String>),
}

/// The lifecycle policy for `--keep N` (keep the newest N images) and `--expire-untagged DAYS`.
pub fn lifecycle_policy(keep: Option<u32>, expire_untagged_days: Option<u32>) -> Option<String> {
    let mut rules = Vec::new();
    if let Some(days) = expire_untagged_days {
        rules.push(serde_json::json!({
            "rulePriority": rules.len() + 1,
            "description": format!("expire untagged images after {days} days"),
            "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                          "countUnit": "days", "countNumber": days},
            "action": {"type": "expire"},
        }));
    }
    if let Some(keep) = keep {
        // A tagStatus `any` rule must have the highest priority number.
        rules.push(serde_json::json!({
            "rulePriority": rules.len() + 1,
            "description": format!("keep the newest {keep} images"),
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                          "countNumber": keep},
            "action": {"type": "expire"},
        }));
    }
    (!rules.is_empty()).then(|| serde_json::json!({ "rules": rules }).to_string())
}

/// What `ensure` did.
#[derive(Clone, Debug, Serialize)]
pub struct EnsureReport {
    pub repository: String,
    pub uri: String,
    pub created: bool,
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
}

/// What `ecr ensure --pull-through` did.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PullThroughReport {
    pub prefix: String,
    pub upstream: String,
    pub created: bool,
}

/// The ECR pull-through cache rule `prefix` → `upstream` (a registry host), made when
/// missing. Docker Hub needs the ARN of a Secrets Manager secret (named
/// `ecr-pullthroughcache/...`) holding its credentials.
pub async fn ensure_pull_through_rule(
    client: &aws_sdk_ecr::Client,
    region: &str,
    prefix: &str,
    upstream: &str,
    credential_arn: Option<&str>,
) -> Result<PullThroughReport> {
    let report = |created| PullThroughReport {
        prefix: prefix.to_string(),
        upstream: upstream.to_string(),
        created,
    };
    let existing = client
        .describe_pull_through_cache_rules()
        .ecr_repository_prefixes(prefix)
        .send()
        .await;
    match existing {
        Ok(answer) => {
            if let Some(rule) = answer.pull_through_cache_rules().first() {
                let have = rule.upstream_registry_url().unwrap_or_default();
                if have.trim_end_matches('/') == upstream.trim_end_matches('/') {
                    return Ok(report(false));
                }
                return Err(Error::Usage(format!(
                    "the ECR pull-through rule `{prefix}` already pulls from {have}, not {upstream}: delete it first (aws ecr delete-pull-through-cache-rule --ecr-repository-prefix {prefix})"
                )));
            }
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_pull_through_cache_rule_not_found_exception()) => {}
        Err(e) => return Err(api_error("ECR", "DescribePullThroughCacheRules", region, e)),
    }
    if upstream.contains("docker.io") && credential_arn.is_none() {
        return Err(Error::Usage(format!(
            "a pull-through rule for Docker Hub ({upstream}) needs --pull-through-credential ARN: a Secrets Manager secret named ecr-pullthroughcache/... with the Docker Hub user and access token"
        )));
    }
    client
        .create_pull_through_cache_rule()
        .ecr_repository_prefix(prefix)
        .upstream_registry_url(upstream)
        .set_credential_arn(credential_arn.map(str::to_string))
        .send()
        .await
        .map_err(|e| api_error("ECR", "CreatePullThroughCacheRule", region, e))?;
    Ok(report(true))
}

fn repository_not_found<E: ProvideErrorMetadata>(e: &E) -> bool {
    e.code() == Some("RepositoryNotFoundException")
}

/// Maps an ECR API error of operation `op` on the repository `at`.
fn failed<'a, E>(at: &'a RepositoryAt, op: &'static str) -> impl FnOnce(E) -> Error + 'a
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| api_error("ECR", op, &at.region, e)
}

impl Aws {
    /// DescribeRepositories for one repository, cached for the run; `None`: it does not exist.
    pub async fn describe_repository(&self, at: &RepositoryAt) -> Result<Option<RepositoryInfo>> {
        if let Some(known) = self.repositories.lock().await.get(&at.key()) {
            return Ok(known.clone());
        }
        let client = self.ecr_client(&at.region).await?;
        let answer = client
            .describe_repositories()
            .set_registry_id(at.account.clone())
            .repository_names(&at.name)
            .send()
            .await;
        let info = match answer {
            Ok(answer) => answer.repositories().first().map(RepositoryInfo::from_sdk),
            Err(e) if repository_not_found(&e) => None,
            Err(e) => return Err(api_error("ECR", "DescribeRepositories", &at.region, e)),
        };
        self.remember(at, info.clone()).await;
        Ok(info)
    }

    async fn remember(&self, at: &RepositoryAt, info: Option<RepositoryInfo>) {
        self.repositories.lock().await.insert(at.key(), info);
    }

    /// Creates the repository when missing, else converges what can change (scan on push,
    /// tag mutability, lifecycle policy, resource tags). Idempotent.
    pub async fn ensure_repository(
        &self,
        at: &RepositoryAt,
        spec: &RepositorySpec,
    ) -> Result<EnsureReport> {
        let client = self.ecr_client(&at.region).await?;
        let mut report = EnsureReport {
            repository: at.name.clone(),
            uri: String::new(),
            created: false,
            changes: Vec::new(),
            warnings: Vec::new(),
        };
        let existing = self.describe_repository(at).await?;
        let info = match existing {
            Some(info) => info,
            None => {
                let mut create = client
                    .create_repository()
                    .set_registry_id(at.account.clone())
                    .repository_name(&at.name);
                if let Some(scan) = spec.scan_on_push {
                    create = create.image_scanning_configuration(
                        ImageScanningConfiguration::builder()
                            .scan_on_push(scan)
                            .build(),
                    );
                }
                if let Some(m) = &spec.mutability {
                    let (mode, filters) = m.sdk();
                    create = create
                        .image_tag_mutability(mode)
                        .set_image_tag_mutability_exclusion_filters(
                            (!filters.is_empty()).then_some(filters),
                        );
                }
                if let Some(enc) = &spec.encryption {
                    create = create.encryption_configuration(encryption_config(enc));
                }
                for (k, v) in &spec.tags {
                    create = create.tags(
                        Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .expect("key and value are set"),
                    );
                }
                let created = match create.send().await {
                    Ok(answer) => answer.repository().map(RepositoryInfo::from_sdk),
                    // Someone else created it meanwhile: converge instead.
                    Err(e) if e.code() == Some("RepositoryAlreadyExistsException") => None,
                    Err(e) => return Err(failed(at, "CreateRepository")(e)),
                };
                self.repositories.lock().await.remove(&at.key());
                let info = match created {
                    Some(info) => {
                        report.created = true;
                        info
                    }
                    None => self
                        .describe_repository(at)
                        .await?
                        .ok_or_else(|| Error::Aws {
                            message: format!(
                                "ECR repository {} vanished while being created",
                                at.name
                            ),
                            hint: None,
                        })?,
                };
                self.remember(at, Some(info.clone())).await;
                info
            }
        };
        report.uri = info.uri.clone();
        if !report.created {
            self.converge(&client, at, spec, &info, &mut report).await?;
        }
        if let Some(policy) = &spec.lifecycle_policy {
            let current = match client
                .get_lifecycle_policy()
                .set_registry_id(at.account.clone())
                .repository_name(&at.name)
                .send()
                .await
            {
                Ok(answer) => answer.lifecycle_policy_text().map(str::to_string),
                Err(e) if e.code() == Some("LifecyclePolicyNotFoundException") => None,
                Err(e) => return Err(failed(at, "GetLifecyclePolicy")(e)),
            };
            let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
            if current.as_deref().and_then(parse) != parse(policy) {
                client
                    .put_lifecycle_policy()
                    .set_registry_id(at.account.clone())
                    .repository_name(&at.name)
                    .lifecycle_policy_text(policy)
                    .send()
                    .await
                    .map_err(failed(at, "PutLifecyclePolicy"))?;
                if !report.created {
                    report.changes.push(if current.is_some() {
                        "lifecycle policy replaced".into()
                    } else {
                        "lifecycle policy set".into()
                    });
                }
            }
        }
        if report.created || !report.changes.is_empty() {
            // The run's cached view is stale now.
            self.repositories.lock().await.remove(&at.key());
        }
        Ok(report)
    }

    async fn converge(
        &self,
        client: &aws_sdk_ecr::Client,
        at: &RepositoryAt,
        spec: &RepositorySpec,
        info: &RepositoryInfo,
        report: &mut EnsureReport,
    ) -> Result<()> {
        if let Some(scan) = spec.scan_on_push
            && scan != info.scan_on_push
        {
            client
                .put_image_scanning_configuration()
                .set_registry_id(at.account.clone())
                .repository_name(&at.name)
                .image_scanning_configuration(
                    ImageScanningConfiguration::builder()
                        .scan_on_push(scan)
                        .build(),
                )
                .send()
                .await
                .map_err(failed(at, "PutImageScanningConfiguration"))?;
            report
                .changes
                .push(format!("scan on push {} → {scan}", info.scan_on_push));
        }
        if let Some(m) = &spec.mutability
            && !m.matches(info)
        {
            let (mode, filters) = m.sdk();
            client
                .put_image_tag_mutability()
                .set_registry_id(at.account.clone())
                .repository_name(&at.name)
                .image_tag_mutability(mode)
                .set_image_tag_mutability_exclusion_filters(
                    (!filters.is_empty()).then_some(filters),
                )
                .send()
                .await
                .map_err(failed(at, "PutImageTagMutability"))?;
            report.changes.push(format!(
                "tag mutability {} → {}",
                info.mutability,
                m.describe()
            ));
        }
        if let Some(enc) = &spec.encryption {
            let (kind, key) = match enc {
                Encryption::Aes256 => ("AES256", None),
                Encryption::Kms(key) => ("KMS", key.as_deref()),
            };
            if kind != info.encryption || key.is_some_and(|k| Some(k) != info.kms_key.as_deref()) {
                report.warnings.push(format!(
                    "encryption is {} and can only be chosen when the repository is created (asked: {kind})",
                    info.encryption
                ));
            }
        }
        if !spec.tags.is_empty() {
            let current: HashMap<String, String> = client
                .list_tags_for_resource()
                .resource_arn(&info.arn)
                .send()
                .await
                .map_err(failed(at, "ListTagsForResource"))?
                .tags()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect();
            let missing: Vec<&(String, String)> = spec
                .tags
                .iter()
                .filter(|(k, v)| current.get(k) != Some(v))
                .collect();
            if !missing.is_empty() {
                client
                    .tag_resource()
                    .resource_arn(&info.arn)
                    .set_tags(Some(
                        missing
                            .iter()
                            .map(|(k, v)| {
                                Tag::builder()
                                    .key(k)
                                    .value(v)
                                    .build()
                                    .expect("key and value are set")
                            })
                            .collect(),
                    ))
                    .send()
                    .await
                    .map_err(failed(at, "TagResource"))?;
                for (k, v) in missing {
                    report.changes.push(format!("tag {k}={v}"));
                }
            }
        }
        Ok(())
    }
}

fn encryption_config(enc: &Encryption) -> EncryptionConfiguration {
    let (kind, key) = match enc {
        Encryption::Aes256 => (EncryptionType::Aes256, None),
        Encryption::Kms(key) => (EncryptionType::Kms, key.clone()),
    };
    EncryptionConfiguration::builder()
        .encryption_type(kind)
        .set_kms_key(key)
        .build()
        .expect("encryption type is set")
}

// ---------------------------------------------------------------------------------------------
// Scans

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub name: String,
    pub severity: String,
    pub uri: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ScanReport {
    pub status: String,
    pub description: Option<String>,
    pub counts: BTreeMap<String, i32>,
    /// Highest severity first.
    pub findings: Vec<Finding>,
}

/// Severities from worst to least bad, as ECR (basic and enhanced) names them.
pub const SEVERITIES: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

fn severity_rank(s: &str) -> usize {
    SEVERITIES
        .iter()
        .position(|x| x.eq_ignore_ascii_case(s))
        .unwrap_or(SEVERITIES.len())
}

fn scan_poll_interval() -> Duration {
    Duration::from_millis(
        std::env::var("HOIST_ECR_SCAN_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5000),
    )
}

impl Aws {
    /// The findings of an image's scan, starting a (basic) scan when there is none; with
    /// `wait`, polls until the scan is finished or the time is up.
    pub async fn scan_image(
        &self,
        at: &RepositoryAt,
        digest: &str,
        wait: Option<Duration>,
    ) -> Result<ScanReport> {
        let client = self.ecr_client(&at.region).await?;
        let image = ImageIdentifier::builder().image_digest(digest).build();
        let deadline = wait.map(|w| tokio::time::Instant::now() + w);
        let mut started = false;
        loop {
            let answer = client
                .describe_image_scan_findings()
                .set_registry_id(at.account.clone())
                .repository_name(&at.name)
                .image_id(image.clone())
                .send()
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) if e.code() == Some("ScanNotFoundException") && !started => {
                    client
                        .start_image_scan()
                        .set_registry_id(at.account.clone())
                        .repository_name(&at.name)
                        .image_id(image.clone())
                        .send()
                        .await
                        .map_err(|e| api_error("ECR", "StartImageScan", &at.region, e))?;
                    self.reporter.report(Event::Info(format!(
                        "started a scan of {}@{digest}",
                        at.name
                    )));
                    started = true;
                    continue;
                }
                Err(e) => {
                    return Err(api_error("ECR", "DescribeImageScanFindings", &at.region, e));
                }
            };
            let status = answer.image_scan_status();
            let state = status
                .and_then(|s| s.status())
                .map_or("UNKNOWN", |s| s.as_str())
                .to_string();
            let finished = !matches!(state.as_str(), "IN_PROGRESS" | "PENDING" | "UNKNOWN");
            match deadline {
                Some(deadline) if !finished => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(Error::Gate {
                            message: format!(
                                "the scan of {}@{digest} is still {state} after --timeout",
                                at.name
                            ),
                            hint: Some(
                                "raise --timeout, or run `hoist ecr scan` again later".into(),
                            ),
                        });
                    }
                    tokio::time::sleep(scan_poll_interval()).await;
                    continue;
                }
                _ => {}
            }
            let mut counts = BTreeMap::new();
            let mut findings = Vec::new();
            if let Some(f) = answer.image_scan_findings() {
                if let Some(c) = f.finding_severity_counts() {
                    for (severity, n) in c {
                        counts.insert(severity.as_str().to_string(), *n);
                    }
                }
                for x in f.findings() {
                    findings.push(Finding {
                        name: x.name().unwrap_or_default().to_string(),
                        severity: x.severity().map_or("UNDEFINED", |s| s.as_str()).to_string(),
                        uri: x.uri().map(str::to_string),
                        description: x.description().map(str::to_string),
                    });
                }
                for x in f.enhanced_findings() {
                    findings.push(Finding {
                        name: x.title().unwrap_or_default().to_string(),
                        severity: x.severity().unwrap_or("UNDEFINED").to_string(),
                        uri: x
                            .package_vulnerability_details()
                            .and_then(|d| d.source_url())
                            .map(str::to_string),
                        description: x.description().map(str::to_string),
                    });
                }
            }
            findings.sort_by_key(|f| severity_rank(&f.severity));
            return Ok(ScanReport {
                status: state,
                description: status.and_then(|s| s.description()).map(str::to_string),
                counts,
                findings,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_ecr_hosts() {
        let h = parse_host("123456789012.dkr.ecr.us-east-1.amazonaws.com").unwrap();
        assert_eq!(
            (h.account.as_str(), h.region.as_str()),
            ("123456789012", "us-east-1")
        );
        assert_eq!(
            parse_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com")
                .unwrap()
                .region,
            "us-gov-west-1"
        );
        assert!(parse_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").is_some());
        assert!(parse_host("123456789012.dkr-ecr.eu-west-1.on.aws").is_some());
        for not in [
            "public.ecr.aws",
            "12345678901.dkr.ecr.us-east-1.amazonaws.com",
            "123456789012.dkr.ecr.us-east-1.example.com",
            "123456789012.ecr.us-east-1.amazonaws.com",
            "localhost:5000",
            "docker.io",
        ] {
            assert!(parse_host(not).is_none(), "{not}");
        }
    }

    #[test]
    fn wildcard_filters() {
        assert!(wildcard_match("latest", "latest"));
        assert!(!wildcard_match("latest", "latest2"));
        assert!(wildcard_match("dev-*", "dev-abc"));
        assert!(wildcard_match("*-rc*", "v1-rc2"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a*b", "ab-"));
        assert!(wildcard_match("a*b*c", "aXbYc"));
        assert!(!wildcard_match("a*b*c", "acb"));
    }

    #[test]
    fn tag_mutability_rules() {
        let mut info = RepositoryInfo {
            name: "r".into(),
            uri: String::new(),
            arn: String::new(),
            mutability: "IMMUTABLE".into(),
            exclusions: vec![],
            scan_on_push: false,
            encryption: "AES256".into(),
            kms_key: None,
        };
        assert!(!info.tag_is_mutable("latest"));
        info.mutability = "IMMUTABLE_WITH_EXCLUSION".into();
        info.exclusions = vec!["latest".into(), "dev-*".into()];
        assert!(info.tag_is_mutable("latest") && info.tag_is_mutable("dev-1"));
        assert!(!info.tag_is_mutable("v1.2.3"));
        info.mutability = "MUTABLE_WITH_EXCLUSION".into();
        assert!(!info.tag_is_mutable("latest") && info.tag_is_mutable("v1.2.3"));
        info.mutability = "MUTABLE".into();
        assert!(info.tag_is_mutable("anything"));
    }

    #[test]
    fn lifecycle_rules_put_the_any_rule_last() {
        assert_eq!(lifecycle_policy(None, None), None);
        let p: serde_json::Value =
            serde_json::from_str(&lifecycle_policy(Some(50), Some(7)).unwrap()).unwrap();
        let rules = p["rules"].as_array().unwrap();
        assert_eq!(rules[0]["selection"]["tagStatus"], "untagged");
        assert_eq!(rules[0]["selection"]["countNumber"], 7);
        assert_eq!(rules[1]["selection"]["tagStatus"], "any");
        assert_eq!(rules[1]["rulePriority"], 2);
        assert_eq!(rules[1]["selection"]["countNumber"], 50);
    }

    #[test]
    fn tokens_decode_and_keys_depend_on_identity() {
        let c = decode_token(&BASE64.encode("AWS:secret-pw"), "r").unwrap();
        assert_eq!(
            (c.username.as_str(), c.secret.as_str()),
            ("AWS", "secret-pw")
        );
        assert!(decode_token("!!", "r").is_err());
        assert!(decode_token(&BASE64.encode("nocolon"), "r").is_err());
        assert_ne!(token_key("r", "key:A"), token_key("r", "key:B"));
        assert_ne!(token_key("r1", "key:A"), token_key("r2", "key:A"));
    }

    #[test]
    fn token_store_keeps_live_tokens_only_in_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore {
            path: dir.path().join("hoist").join("ecr-tokens.json"),
        };
        let now = 1_000_000;
        store
            .update(now, |f| {
                f.tokens.insert(
                    "live".into(),
                    StoredToken {
                        registry: "r".into(),
                        token: "t1".into(),
                        expires_at: now + 3600,
                    },
                );
                f.tokens.insert(
                    "soon".into(),
                    StoredToken {
                        registry: "r".into(),
                        token: "t2".into(),
                        expires_at: now + 60,
                    },
                );
            })
            .unwrap();
        assert_eq!(store.get("live", now).as_deref(), Some("t1"));
        assert_eq!(store.get("soon", now), None, "too close to expiry");
        assert_eq!(store.get("live", now + 3000), None);
        let mode = std::fs::metadata(&store.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(store.path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        // Expired entries are dropped on the next write.
        store.update(now + 4000, |_| {}).unwrap();
        assert!(store.read().tokens.is_empty());
    }

    #[test]
    fn a_region_other_than_the_hosts_is_pointed_out() {
        let error = || Error::Aws {
            message: "ECR GetAuthorizationToken (eu-west-1): AccessDeniedException".into(),
            hint: Some(
                "the AWS identity lacks the IAM permission `ecr:GetAuthorizationToken`".into(),
            ),
        };
        let hint = region_mismatch_hint(error(), "eu-west-1", Some("us-east-1".into()))
            .hint()
            .unwrap();
        assert!(hint.contains("ecr:GetAuthorizationToken"), "{hint}");
        assert!(
            hint.contains("in eu-west-1 while AWS_REGION is us-east-1"),
            "{hint}"
        );
        let same = region_mismatch_hint(error(), "eu-west-1", Some("eu-west-1".into()));
        assert!(!same.hint().unwrap().contains("AWS_REGION"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(describe_duration(5), "5s");
        assert_eq!(describe_duration(-600), "10m");
        assert_eq!(describe_duration(3 * 3600 + 300), "3h 5m");
        assert_eq!(describe_duration(3 * 86400), "3d");
    }
}

/// Pull-through cache rules: moto has no ECR pull-through API, so these tests stub the SDK
/// calls with aws-smithy-mocks (as the test rules allow for what no emulator covers).
#[cfg(test)]
mod pull_through_tests {
    use aws_sdk_ecr::operation::create_pull_through_cache_rule::CreatePullThroughCacheRuleOutput;
    use aws_sdk_ecr::operation::describe_pull_through_cache_rules::{
        DescribePullThroughCacheRulesError, DescribePullThroughCacheRulesOutput,
    };
    use aws_sdk_ecr::types::PullThroughCacheRule;
    use aws_sdk_ecr::types::error::PullThroughCacheRuleNotFoundException;
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    fn no_rule() -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_ecr::Client::describe_pull_through_cache_rules).then_error(|| {
            DescribePullThroughCacheRulesError::PullThroughCacheRuleNotFoundException(
                PullThroughCacheRuleNotFoundException::builder()
                    .message("not found")
                    .build(),
            )
        })
    }

    fn rule_to(upstream: &'static str) -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_ecr::Client::describe_pull_through_cache_rules).then_output(move || {
            DescribePullThroughCacheRulesOutput::builder()
                .pull_through_cache_rules(
                    PullThroughCacheRule::builder()
                        .ecr_repository_prefix("quay")
                        .upstream_registry_url(upstream)
                        .build(),
                )
                .build()
        })
    }

    #[tokio::test]
    async fn a_missing_rule_is_created_and_an_existing_one_left_alone() {
        let create = mock!(aws_sdk_ecr::Client::create_pull_through_cache_rule)
            .match_requests(|r| {
                r.ecr_repository_prefix() == Some("quay")
                    && r.upstream_registry_url() == Some("quay.io")
                    && r.credential_arn().is_none()
            })
            .then_output(|| CreatePullThroughCacheRuleOutput::builder().build());
        let client = mock_client!(aws_sdk_ecr, [&no_rule(), &create]);
        let report = ensure_pull_through_rule(&client, "us-east-1", "quay", "quay.io", None)
            .await
            .unwrap();
        assert!(report.created);
        assert_eq!(create.num_calls(), 1);

        let client = mock_client!(aws_sdk_ecr, [&rule_to("quay.io")]);
        let report = ensure_pull_through_rule(&client, "us-east-1", "quay", "quay.io", None)
            .await
            .unwrap();
        assert!(!report.created);
    }

    #[tokio::test]
    async fn a_rule_to_elsewhere_and_docker_hub_without_credentials_are_refused() {
        let client = mock_client!(aws_sdk_ecr, [&rule_to("ghcr.io")]);
        let e = ensure_pull_through_rule(&client, "us-east-1", "quay", "quay.io", None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("already pulls from ghcr.io"), "{e}");

        let client = mock_client!(aws_sdk_ecr, [&no_rule()]);
        let e = ensure_pull_through_rule(
            &client,
            "us-east-1",
            "docker-hub",
            "registry-1.docker.io",
            None,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("--pull-through-credential"), "{e}");
    }
}
