//! Registry credentials and challenges: `WWW-Authenticate` parsing, docker `config.json`
//! (`auths`, `credHelpers`, `credsStore`), GitLab's `DOCKER_AUTH_CONFIG` and `CI_REGISTRY_*`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::reference::DOCKER_HUB;

/// The key Docker writes Docker Hub credentials under.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A username and password (or token used as password). Debug never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential {{ username: {:?}, secret: <redacted> }}",
            self.username
        )
    }
}

impl Credential {
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            BASE64.encode(format!("{}:{}", self.username, self.secret))
        )
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// The scope the registry asked for on the failed request, if any.
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = parse_auth_params(rest);
            Some(Challenge::Bearer {
                realm: params.get("realm")?.clone(),
                service: params.get("service").cloned(),
                scope: params.get("scope").cloned(),
            })
        }
        _ => None,
    }
}

/// `key="quoted, value",key2=token` → map (keys lower-cased).
fn parse_auth_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.insert(key, value);
    }
    out
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Where docker's config.json lives: `REGISTRY_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`,
/// else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// The host part of a config.json `auths` key (`https://host/v1/` → `host`).
fn auth_key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn same_registry(key: &str, registry: &str) -> bool {
    let host = auth_key_host(key);
    let hub = |h: &str| {
        matches!(
            h,
            "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com"
        )
    };
    host == registry || (hub(host) && hub(registry))
}

/// Finds credentials for one registry host, in this order: `DOCKER_AUTH_CONFIG` (GitLab),
/// docker's config.json (credHelpers for the host, `auths`, then credsStore), and
/// `CI_REGISTRY_USER`/`CI_REGISTRY_PASSWORD` when `CI_REGISTRY` is that host.
pub fn find_credential(registry: &str) -> Result<Option<Credential>> {
    if let Ok(json) = std::env::var("DOCKER_AUTH_CONFIG")
        && !json.trim().is_empty()
    {
        let config: DockerConfig = serde_json::from_str(&json).map_err(|e| {
            Error::malformed(
                "DOCKER_AUTH_CONFIG",
                format!("not a docker config.json: {e}"),
            )
        })?;
        if let Some(c) = from_config(&config, registry, "DOCKER_AUTH_CONFIG")? {
            return Ok(Some(c));
        }
    }
    if let Some(path) = docker_config_path() {
        match std::fs::read(&path) {
            Ok(bytes) => {
                let config: DockerConfig = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::malformed(path.display().to_string(), e))?;
                if let Some(c) = from_config(&config, registry, &path.display().to_string())? {
                    return Ok(Some(c));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    if let (Ok(ci_registry), Ok(user), Ok(password)) = (
        std::env::var("CI_REGISTRY"),
        std::env::var("CI_REGISTRY_USER"),
        std::env::var("CI_REGISTRY_PASSWORD"),
    ) && same_registry(&ci_registry, registry)
        && !user.is_empty()
    {
        return Ok(Some(Credential {
            username: user,
            secret: password,
        }));
    }
    Ok(None)
}

fn from_config(config: &DockerConfig, registry: &str, source: &str) -> Result<Option<Credential>> {
    if let Some((_, helper)) = config
        .cred_helpers
        .iter()
        .find(|(k, _)| same_registry(k, registry))
    {
        return run_credential_helper(helper, registry);
    }
    if let Some((_, entry)) = config
        .auths
        .iter()
        .find(|(k, _)| same_registry(k, registry))
    {
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            let decoded = BASE64
                .decode(auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Error::malformed(source, format!("auths entry for {registry} is not base64"))
                })?;
            let (username, secret) = decoded.split_once(':').ok_or_else(|| {
                Error::malformed(
                    source,
                    format!("auths entry for {registry} is not base64 of user:password"),
                )
            })?;
            return Ok(Some(Credential {
                username: username.to_string(),
                secret: secret.to_string(),
            }));
        }
        if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
            return Ok(Some(Credential {
                username: u.clone(),
                secret: p.clone(),
            }));
        }
    }
    if let Some(store) = config.creds_store.as_deref().filter(|s| !s.is_empty()) {
        return run_credential_helper(store, registry);
    }
    Ok(None)
}

/// Runs `docker-credential-HELPER get` with the server URL on stdin (the docker protocol).
fn run_credential_helper(helper: &str, registry: &str) -> Result<Option<Credential>> {
    let fail = |reason: String| Error::CredentialHelper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let server = if registry == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY
    } else {
        registry
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("cannot read its answer: {e}")))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        // The helper's own words may carry secrets in theory; keep only the first short line.
        let first: String = said
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(120)
            .collect();
        return Err(fail(format!("exited with {}: {first}", out.status)));
    }
    #[derive(Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .map_err(|_| fail("answered with something that is not its JSON format".into()))?;
    Ok(Some(Credential {
        username: answer.username,
        secret: answer.secret,
    }))
}

/// Sets `registry`'s entry in the `section` object (`auths`, `credHelpers`) of the config.json
/// at `path`, dropping its entries in `drop_from`, keeping the rest of the file; written
/// atomically with mode 0600.
fn set_config_entry(
    path: &std::path::Path,
    section: &str,
    drop_from: &str,
    registry: &str,
    value: serde_json::Value,
) -> Result<()> {
    let mut doc: serde_json::Map<String, serde_json::Value> = match std::fs::read(path) {
        Ok(bytes) if !bytes.is_empty() => serde_json::from_slice(&bytes)
            .map_err(|e| Error::malformed(path.display().to_string(), e))?,
        Ok(_) => Default::default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(Error::io(path, e)),
    };
    let key = if registry == DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        registry.to_string()
    };
    for name in [section, drop_from] {
        let entries = doc
            .entry(name)
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        let Some(entries) = entries.as_object_mut() else {
            return Err(Error::malformed(
                path.display().to_string(),
                format!("`{name}` is not an object"),
            ));
        };
        entries.retain(|k, _| !same_registry(k, registry));
        if name == section {
            entries.insert(key.clone(), value.clone());
        }
    }
    let bytes = serde_json::to_vec_pretty(&doc).expect("JSON map serialises");
    crate::fsutil::write_atomic(path, &bytes, 0o600)
}

/// Stores `cred` as the `auths` entry for `registry` (replacing a credential helper entry).
pub fn store_credential(path: &std::path::Path, registry: &str, cred: &Credential) -> Result<()> {
    let auth = BASE64.encode(format!("{}:{}", cred.username, cred.secret));
    set_config_entry(
        path,
        "auths",
        "credHelpers",
        registry,
        serde_json::json!({ "auth": auth }),
    )
}

/// Makes `docker-credential-HELPER` the source of `registry`'s credentials (`credHelpers`),
/// removing a stored password for it.
pub fn store_credential_helper(path: &std::path::Path, registry: &str, helper: &str) -> Result<()> {
    set_config_entry(path, "credHelpers", "auths", registry, helper.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(
                r#"Basic realm="https://1.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com""#
            ),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm=http://127.0.0.1:1/t, service="a,b""#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("a,b".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn config_lookup_matches_hub_aliases_and_decodes_auth() {
        let config: DockerConfig = serde_json::from_str(
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"localhost:5000":{"username":"a","password":"b"}}}"#,
        )
        .unwrap();
        let hub = from_config(&config, "docker.io", "test").unwrap().unwrap();
        assert_eq!((hub.username.as_str(), hub.secret.as_str()), ("u", "p"));
        let local = from_config(&config, "localhost:5000", "test")
            .unwrap()
            .unwrap();
        assert_eq!(local.username, "a");
        assert!(from_config(&config, "other:1", "test").unwrap().is_none());
        let broken: DockerConfig =
            serde_json::from_str(r#"{"auths":{"h":{"auth":"!!!"}}}"#).unwrap();
        assert!(from_config(&broken, "h", "test").is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let c = Credential {
            username: "u".into(),
            secret: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
