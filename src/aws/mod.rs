//! AWS: credentials (the default chain plus GitLab ID tokens from env vars), ECR registry
//! tokens and repository management, through the AWS SDK for Rust.

pub mod credentials;
pub mod ecr;
pub mod jwt;

use std::collections::HashMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_ecr::error::ProvideErrorMetadata;

use crate::error::{Error, Result};
use crate::progress::Reporter;

/// Options that change how AWS credentials are found.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// The env var holding a GitLab ID token (`--web-identity-token-env`); when unset,
    /// `AWS_WEB_IDENTITY_TOKEN_ENV`, then the usual names are tried.
    pub web_identity_token_env: Option<String>,
}

impl AwsSettings {
    pub fn from_env() -> Self {
        AwsSettings {
            web_identity_token_env: std::env::var("AWS_WEB_IDENTITY_TOKEN_ENV")
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }
}

/// A loaded SDK config, or why loading failed (message, hint).
type LoadedConfig = Result<(SdkConfig, String), (String, Option<String>)>;

/// One run's AWS context: SDK configs per region (credentials resolved once) and what ECR told
/// us about repositories.
pub struct Aws {
    settings: AwsSettings,
    reporter: Arc<dyn Reporter>,
    /// Per region; a failure is kept too, so a run without credentials looks for them once.
    configs: tokio::sync::Mutex<HashMap<String, LoadedConfig>>,
    repositories: tokio::sync::Mutex<HashMap<String, Option<ecr::RepositoryInfo>>>,
}

impl Aws {
    pub fn new(settings: AwsSettings, reporter: Arc<dyn Reporter>) -> Aws {
        Aws {
            settings,
            reporter,
            configs: Default::default(),
            repositories: Default::default(),
        }
    }

    /// The SDK config for `region`, loading credentials on first use.
    pub async fn config(&self, region: &str) -> Result<SdkConfig> {
        Ok(self.loaded(region).await?.0)
    }

    /// The access key id the credentials for `region` resolved to: whose they are.
    pub async fn identity(&self, region: &str) -> Result<String> {
        Ok(self.loaded(region).await?.1)
    }

    async fn loaded(&self, region: &str) -> Result<(SdkConfig, String)> {
        let mut configs = self.configs.lock().await;
        let known = match configs.get(region) {
            Some(known) => known.clone(),
            None => {
                let loaded = credentials::load(region, &self.settings, &self.reporter)
                    .await
                    .map_err(|e| match e {
                        Error::Aws { message, hint } => (message, hint),
                        other => (other.to_string(), other.hint()),
                    });
                configs.insert(region.to_string(), loaded.clone());
                loaded
            }
        };
        known.map_err(|(message, hint)| Error::Aws { message, hint })
    }

    pub async fn ecr_client(&self, region: &str) -> Result<aws_sdk_ecr::Client> {
        Ok(aws_sdk_ecr::Client::new(&self.config(region).await?))
    }

    pub async fn ecs_client(&self, region: &str) -> Result<aws_sdk_ecs::Client> {
        Ok(aws_sdk_ecs::Client::new(&self.config(region).await?))
    }

    pub fn reporter(&self) -> &Arc<dyn Reporter> {
        &self.reporter
    }
}

/// The region to use when no ECR host names one: `--region`, else the SDK's own resolution
/// (`AWS_REGION`, `AWS_DEFAULT_REGION`, the profile).
pub async fn default_region(explicit: Option<&str>) -> Result<String> {
    if let Some(region) = explicit {
        return Ok(region.to_string());
    }
    aws_config::default_provider::region::DefaultRegionChain::builder()
        .build()
        .region()
        .await
        .map(|r| r.to_string())
        .ok_or_else(|| Error::Aws {
            message: "no AWS region: none given and none configured".into(),
            hint: Some("pass --region, set AWS_REGION, or use the full ECR host (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO)".into()),
        })
}

/// `what` failed because an AWS endpoint's TLS certificate is not trusted: say so, and where
/// hoist looks for CA roots.
pub fn untrusted_endpoint(what: &str, err: &(dyn std::error::Error + 'static)) -> Option<Error> {
    crate::error::untrusted_certificate(err).map(|detail| Error::Aws {
        message: format!("{what}: the endpoint's TLS certificate is not trusted ({detail})"),
        hint: Some(crate::error::TRUST_HINT.into()),
    })
}

/// An AWS API error as one line naming the call and region, with a hint for the common causes.
pub fn api_error<E>(service: &str, operation: &str, region: &str, err: E) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let call = format!("{service} {operation} ({region})");
    let Some(code) = err.code().map(str::to_string) else {
        // No service answer: connection, credentials or timeout trouble.
        if let Some(untrusted) = untrusted_endpoint(&call, &err) {
            return untrusted;
        }
        return Error::Aws {
            message: format!("{call}: {}", crate::error::described_chain(&err)),
            hint: Some(
                "check network access to AWS (AWS_ENDPOINT_URL overrides the endpoint)".into(),
            ),
        };
    };
    let message = err.message().unwrap_or("").to_string();
    let action = format!("{}:{operation}", service.to_ascii_lowercase());
    let hint = match code.as_str() {
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => Some(format!(
            "the AWS identity lacks the IAM permission `{action}` (add it to the role or user's policy)"
        )),
        "ExpiredTokenException" | "ExpiredToken" => Some(
            "the AWS session token expired: renew the credentials (re-run the job, or `aws sso login`)".into(),
        ),
        "UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException"
        | "SignatureDoesNotMatch" => Some(
            "AWS rejected the access key: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys)".into(),
        ),
        "RepositoryNotFoundException" => Some(
            "create it with `hoist ecr ensure REPO`, or pass --ecr-create to create it on push".into(),
        ),
        "ThrottlingException" => {
            Some("AWS throttled the calls; retry later or lower --jobs".into())
        }
        _ => None,
    };
    Error::Aws {
        message: format!("{call}: {code}: {message}"),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::error::ErrorMetadata;
    use aws_sdk_ecr::operation::get_authorization_token::GetAuthorizationTokenError;

    fn service_error(code: &str, message: &str) -> GetAuthorizationTokenError {
        GetAuthorizationTokenError::generic(
            ErrorMetadata::builder().code(code).message(message).build(),
        )
    }

    #[test]
    fn api_errors_name_the_call_and_what_to_do() {
        let denied = api_error(
            "ECR",
            "GetAuthorizationToken",
            "us-east-1",
            service_error(
                "AccessDeniedException",
                "User: arn:aws:iam::1:user/ci is not authorized to perform: ecr:GetAuthorizationToken",
            ),
        );
        assert!(
            denied
                .to_string()
                .starts_with("ECR GetAuthorizationToken (us-east-1): AccessDeniedException: User:")
        );
        assert!(
            denied
                .hint()
                .unwrap()
                .contains("`ecr:GetAuthorizationToken`")
        );
        let expired = api_error(
            "ECR",
            "DescribeRepositories",
            "eu-west-1",
            service_error(
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ),
        );
        assert!(expired.hint().unwrap().contains("session token expired"));
        let missing = api_error(
            "ECR",
            "DescribeImageScanFindings",
            "eu-west-1",
            service_error("RepositoryNotFoundException", "no such repository"),
        );
        assert!(missing.hint().unwrap().contains("--ecr-create"));
        let other = api_error("ECR", "X", "r", service_error("SomethingNew", "m"));
        assert_eq!(other.to_string(), "ECR X (r): SomethingNew: m");
        assert_eq!(other.hint(), None);
    }
}
