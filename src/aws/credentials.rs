//! AWS credentials: the SDK's default chain (env keys, profiles incl. SSO and
//! credential_process, web identity token file, ECS container credentials, IMDSv2), plus GitLab
//! ID tokens read straight from an env var (no token file needed) and exchanged with STS
//! AssumeRoleWithWebIdentity by a provider of our own.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use aws_sdk_ecr::config::SharedHttpClient;

use super::AwsSettings;
use super::jwt;
use crate::error::{Error, Result};
use crate::progress::{Event, Reporter};

/// Env vars that may hold a GitLab ID token, in the order they are tried.
const TOKEN_VARS: [&str; 3] = ["AWS_ID_TOKEN", "GITLAB_OIDC_TOKEN", "CI_JOB_JWT_V2"];

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The SDK's HTTPS client as its default one (rustls with aws-lc, the system's CA roots,
/// HTTP(S)_PROXY from the environment), except that with no CA roots at all (a bare
/// `FROM scratch` job image) it trusts none instead of tripping the SDK's assertion that some
/// were found: its calls then fail with a certificate error, which says what to install.
fn http_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
    static CLIENT: std::sync::OnceLock<SharedHttpClient> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let has_roots = !rustls_native_certs::load_native_certs().certs.is_empty();
            let context = TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_native_roots(has_roots))
                .build()
                .expect("a trust store without custom certificates is valid");
            Builder::new().build_with_connector_fn(move |settings, components| {
                let mut connector = ConnectorBuilder::default()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::AwsLc,
                    ))
                    .tls_context(context.clone());
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            })
        })
        .clone()
}

/// The SDK config for `region` with credentials resolved once now, so that missing or broken
/// credentials give one clear error instead of a failure deep inside the first API call; and
/// the access key id they resolved to (not secret), which says whose they are.
pub async fn load(
    region: &str,
    settings: &AwsSettings,
    reporter: &Arc<dyn Reporter>,
) -> Result<(SdkConfig, String)> {
    let region = Region::new(region.to_string());
    let provider = match web_identity_from_env(settings, reporter, &region)? {
        Some(provider) => SharedCredentialsProvider::new(provider),
        None => SharedCredentialsProvider::new(
            DefaultCredentialsChain::builder()
                .configure(ProviderConfig::default().with_http_client(http_client()))
                .region(region.clone())
                .build()
                .await,
        ),
    };
    let first = provider
        .provide_credentials()
        .await
        .map_err(|e| credentials_error(&e))?;
    tracing::debug!("AWS credentials resolved");
    let identity = first.access_key_id().to_string();
    let primed = Primed {
        first: Mutex::new(Some(first)),
        inner: provider,
    };
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .region(region)
        .credentials_provider(primed)
        .load()
        .await;
    Ok((config, identity))
}

/// Hands out the credentials resolved up front once, then asks the real provider (the SDK's
/// identity cache sits in front and refreshes before expiry).
#[derive(Debug)]
struct Primed {
    first: Mutex<Option<Credentials>>,
    inner: SharedCredentialsProvider,
}

impl ProvideCredentials for Primed {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let first = self.first.lock().expect("primed lock").take();
        match first {
            Some(c) if c.expiry().is_none_or(|e| e > SystemTime::now()) => {
                future::ProvideCredentials::ready(Ok(c))
            }
            _ => self.inner.provide_credentials(),
        }
    }
}

/// What was tried, in order, for the "no credentials" message.
fn sources_tried(settings: &AwsSettings) -> String {
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let token_vars = settings
        .web_identity_token_env
        .iter()
        .map(String::as_str)
        .chain(TOKEN_VARS)
        .map(|v| format!("${v}"))
        .collect::<Vec<_>>()
        .join("/");
    let imds = if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        "EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)"
    } else {
        "EC2 instance metadata"
    };
    [
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY".to_string(),
        format!("AWS_ROLE_ARN with an ID token in {token_vars}"),
        format!(
            "profile `{profile}` in ~/.aws/config and ~/.aws/credentials (incl. SSO and credential_process)"
        ),
        "AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE".into(),
        "ECS container credentials (AWS_CONTAINER_CREDENTIALS_*)".into(),
        imds.into(),
    ]
    .join(", ")
}

fn credentials_error(e: &CredentialsError) -> Error {
    match e {
        CredentialsError::CredentialsNotLoaded(_) => Error::Aws {
            message: format!(
                "no AWS credentials found; tried, in order: {}",
                sources_tried(&AwsSettings::from_env())
            ),
            hint: Some(
                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN with a GitLab `id_tokens:` token in AWS_ID_TOKEN, or AWS_PROFILE".into(),
            ),
        },
        other => {
            // Our own provider's errors carry a complete message and hint already.
            if let Some(ours) = std::error::Error::source(other)
                .and_then(|s| s.downcast_ref::<Error>())
                .and_then(Error::aws_copy)
            {
                return ours;
            }
            let what = "cannot load AWS credentials";
            if let Some(untrusted) = super::untrusted_endpoint(what, other) {
                return untrusted;
            }
            Error::Aws {
                message: format!("{what}: {}", crate::error::described_chain(other)),
                hint: Some(
                    "check AWS_PROFILE and the files ~/.aws/config and ~/.aws/credentials".into(),
                ),
            }
        }
    }
}

/// GitLab OIDC without files: `AWS_ROLE_ARN` plus a JWT in an env var. Static keys in the
/// environment and `AWS_WEB_IDENTITY_TOKEN_FILE` keep their precedence (the default chain).
fn web_identity_from_env(
    settings: &AwsSettings,
    reporter: &Arc<dyn Reporter>,
    region: &Region,
) -> Result<Option<EnvWebIdentity>> {
    let Some(role_arn) = env("AWS_ROLE_ARN") else {
        return Ok(None);
    };
    if env("AWS_ACCESS_KEY_ID").is_some() || env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
        return Ok(None);
    }
    let var = match &settings.web_identity_token_env {
        Some(var) => {
            if env(var).is_none() {
                return Err(Error::Aws {
                    message: format!(
                        "--web-identity-token-env names ${var}, which is not set or empty"
                    ),
                    hint: Some(format!(
                        "declare the token in .gitlab-ci.yml: `id_tokens: {{{var}: {{aud: {}}}}}`",
                        jwt::STS_AUDIENCE
                    )),
                });
            }
            var.clone()
        }
        None => match TOKEN_VARS.iter().find(|v| env(v).is_some()) {
            Some(var) => var.to_string(),
            None => return Ok(None),
        },
    };
    if var == "CI_JOB_JWT_V2" {
        reporter.report(Event::Warning(
            "using the deprecated $CI_JOB_JWT_V2 (removed in GitLab 17.0): declare `id_tokens: {AWS_ID_TOKEN: {aud: sts.amazonaws.com}}` instead".into(),
        ));
    }
    let token = env(&var).expect("checked above");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    jwt::check(&jwt::claims(&token, &var)?, &var, now)?;
    Ok(Some(EnvWebIdentity {
        role_arn,
        session_name: session_name(
            env("AWS_ROLE_SESSION_NAME"),
            env("CI_PROJECT_ID"),
            env("CI_JOB_ID"),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        ),
        token_var: var,
        region: region.clone(),
    }))
}

/// `AWS_ROLE_SESSION_NAME`, else `gitlab-<project>-<job>`, cut to STS's rules
/// (2–64 characters of `[\w+=,.@-]`).
fn session_name(
    explicit: Option<String>,
    project: Option<String>,
    job: Option<String>,
    now: u64,
) -> String {
    let raw = explicit.unwrap_or_else(|| match (project, job) {
        (Some(project), Some(job)) => format!("gitlab-{project}-{job}"),
        _ => format!("hoist-{now}"),
    });
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while name.len() < 2 {
        name.push('-');
    }
    name
}

#[derive(Debug)]
struct EnvWebIdentity {
    role_arn: String,
    session_name: String,
    token_var: String,
    region: Region,
}

impl EnvWebIdentity {
    async fn assume(&self) -> Result<Credentials, CredentialsError> {
        let token = env(&self.token_var).ok_or_else(|| {
            CredentialsError::not_loaded(format!("${} is no longer set", self.token_var))
        })?;
        // AssumeRoleWithWebIdentity is an unsigned call: no credentials needed.
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            .region(self.region.clone())
            .no_credentials()
            .load()
            .await;
        let answer = aws_sdk_sts::Client::new(&config)
            .assume_role_with_web_identity()
            .role_arn(&self.role_arn)
            .role_session_name(&self.session_name)
            .web_identity_token(token)
            .send()
            .await
            .map_err(|e| {
                let mut error = super::api_error(
                    "STS",
                    "AssumeRoleWithWebIdentity",
                    self.region.as_ref(),
                    e,
                );
                if let Error::Aws { hint, message } = &mut error
                    && (message.contains("InvalidIdentityToken")
                        || message.contains("AccessDenied"))
                {
                    *hint = Some(format!(
                        "the role's trust policy must allow this token: check the OIDC provider's audience (id_tokens: {}: aud:) and the `sub` condition (project_path:GROUP/PROJECT:ref_type:...)",
                        self.token_var
                    ));
                }
                CredentialsError::provider_error(error)
            })?;
        let c = answer.credentials().ok_or_else(|| {
            CredentialsError::provider_error(Error::Aws {
                message: "STS AssumeRoleWithWebIdentity answered without credentials".into(),
                hint: None,
            })
        })?;
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            SystemTime::try_from(*c.expiration()).ok(),
            "GitLabIdTokenFromEnv",
        ))
    }
}

impl ProvideCredentials for EnvWebIdentity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.assume())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_follow_sts_rules() {
        assert_eq!(
            session_name(None, Some("42".into()), Some("1001".into()), 7),
            "gitlab-42-1001"
        );
        assert_eq!(session_name(None, None, Some("1".into()), 7), "hoist-7");
        assert_eq!(session_name(Some("a".into()), None, None, 7), "a-");
        let long = session_name(Some(format!("my job/{}", "x".repeat(80))), None, None, 7);
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("my-job-x"));
    }
}
