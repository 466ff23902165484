//! `hoist ci init`: the pipelines the seeds teach writing by hand, written by hoist. Pure text
//! generation (the CLI writes the file); the tests validate it against the official schemas
//! and run the GitLab one under gitlab-ci-local.

mod codebuild;
mod github;
mod gitlab;

pub use codebuild::codebuild;
pub use github::{github, github_setup};
pub use gitlab::{gitlab, gitlab_setup};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// GitLab ID token → AWS_ROLE_ARN (seed 004).
    Oidc,
    /// AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY as masked CI variables.
    Keys,
}

#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The image repository (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME`, any registry's
    /// `host/path`), or None for the CI's own registry.
    pub repository: Option<String>,
    pub region: Option<String>,
    pub auth: Auth,
    pub role_arn: Option<String>,
    pub oidc_aud: String,
    /// The platforms built: in one job (QEMU for foreign RUN steps), or one job each on
    /// `native_runners`.
    pub platforms: Vec<String>,
    /// Runner tags (GitHub: `runs-on` labels), one per platform in order: each platform is
    /// built on its own runner and a merge job joins them.
    pub native_runners: Vec<String>,
    /// (cluster, service) per environment, in the order of `environments`.
    pub deploy: Vec<(String, String)>,
    pub environments: Vec<String>,
    /// The runner cannot do namespaces (unprivileged Docker executor): `HOIST_ISOLATION=container`.
    pub container_isolation: bool,
    /// The job image (a shell is needed).
    pub image: String,
    /// Merge requests push too (the tag table's `mr-<iid>` and short SHA).
    pub push_mr: bool,
    /// A scan gate job failing at these ECR finding severities (`CRITICAL,HIGH`).
    pub scan_fail_on: Vec<String>,
    /// The gate's failure (exit 3) does not fail the pipeline.
    pub scan_allow_failure: bool,
    /// A mirror job (`hoist mirror -f FILE`) on scheduled pipelines and when the file changes.
    pub mirror: Option<String>,
    /// A command run on version tags (vX.Y.Z) with the build jobs' credentials: the project's
    /// own release (hoist's is `scripts/release -t "$IMAGE_REPOSITORY"`).
    pub release: Option<String>,
    /// The release job's image (default: the job image).
    pub release_image: Option<String>,
}

impl InitOptions {
    fn ecr(&self) -> Option<crate::aws::ecr::EcrHost> {
        let repository = self.repository.as_deref()?;
        crate::aws::ecr::parse_host(repository.split('/').next()?)
    }

    fn uses_aws(&self) -> bool {
        self.ecr().is_some() || !self.deploy.is_empty()
    }

    /// Checks what must go together.
    pub fn check(&self) -> Result<()> {
        if self.auth == Auth::Keys && self.role_arn.is_some() {
            return Err(Error::Usage(
                "--role-arn is for --auth oidc; with --auth keys the job uses AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables".into(),
            ));
        }
        if !self.deploy.is_empty() && self.environments.is_empty() {
            return Err(Error::Usage(
                "--deploy-ecs needs --environments (the GitLab environments it deploys to)".into(),
            ));
        }
        if self.deploy.len() > 1 && self.deploy.len() != self.environments.len() {
            return Err(Error::Usage(format!(
                "{} --deploy-ecs for {} environments: give one (used for all) or one per environment, in order",
                self.deploy.len(),
                self.environments.len()
            )));
        }
        if !self.scan_fail_on.is_empty() && self.ecr().is_none() {
            return Err(Error::Usage(
                "--scan-fail-on reads ECR's scan findings: give an ECR --registry".into(),
            ));
        }
        if !self.native_runners.is_empty() && self.native_runners.len() != self.platforms.len() {
            return Err(Error::Usage(format!(
                "--native-runners pairs with --platforms: one runner tag per platform, in order ({} platforms, {} runner tags)",
                self.platforms.len(),
                self.native_runners.len()
            )));
        }
        if self.native() && self.push_mr {
            return Err(Error::Usage(
                "--push-mr with --native-runners: merge requests build each platform on its runner without pushing; drop one of them".into(),
            ));
        }
        if self.uses_aws() && self.region.is_none() && self.ecr().is_none() {
            return Err(Error::Usage(
                "ECS deploys need --region (or an ECR --registry, whose host names it)".into(),
            ));
        }
        Ok(())
    }

    fn native(&self) -> bool {
        !self.native_runners.is_empty()
    }

    /// (platform, tag-safe name, runner) for native-runner builds.
    fn platform_jobs(&self) -> impl Iterator<Item = (&str, String, &str)> {
        self.platforms
            .iter()
            .zip(&self.native_runners)
            .map(|(p, r)| (p.as_str(), p.replace('/', "-"), r.as_str()))
    }

    /// ` --platform a,b` for hoist build, or nothing (native runners: each job its own).
    fn platform_flag(&self) -> String {
        if self.platforms.is_empty() || self.native() {
            String::new()
        } else {
            format!(" --platform {}", self.platforms.join(","))
        }
    }

    /// An ECR repository is created on the first push, scanning on push.
    fn ecr_create_flag(&self) -> &'static str {
        if self.ecr().is_some() {
            " --ecr-create --scan-on-push"
        } else {
            ""
        }
    }

    fn region(&self) -> Option<String> {
        self.region.clone().or_else(|| self.ecr().map(|e| e.region))
    }

    /// The release command as a YAML double-quoted string (any quotes or `: ` it holds kept).
    fn release_command(&self) -> Option<String> {
        self.release
            .as_ref()
            .map(|command| serde_json::Value::from(command.as_str()).to_string())
    }

    fn deploy_for(&self, index: usize) -> Option<&(String, String)> {
        match self.deploy.as_slice() {
            [] => None,
            [only] => Some(only),
            all => all.get(index),
        }
    }
}

/// A YAML file written line by line (comments stay where they explain something).
#[derive(Default)]
struct Lines(String);

impl Lines {
    fn line(&mut self, line: impl AsRef<str>) {
        self.0.push_str(line.as_ref());
        self.0.push('\n');
    }

    fn lines<S: AsRef<str>>(&mut self, lines: impl IntoIterator<Item = S>) {
        for line in lines {
            self.line(line);
        }
    }
}

/// Where the project lives (from `origin`), for the OIDC trust policy's `sub` conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectOrigin {
    /// The git host (`gitlab.com`, `github.com`, a self-managed instance).
    pub host: String,
    /// `group/project` (GitLab) or `owner/repo` (GitHub).
    pub path: String,
    pub default_branch: String,
}

impl ProjectOrigin {
    /// From a remote URL: scp-like `git@host:group/app.git`, `ssh://git@host:22/group/app.git`
    /// or `https://host/group/app.git`.
    pub fn from_url(url: &str, default_branch: Option<String>) -> Option<ProjectOrigin> {
        let (host, path) = match url.split_once("://") {
            Some((_, rest)) => rest.split_once('/')?,
            None => url.split_once(':')?,
        };
        let host = host.rsplit('@').next()?.split(':').next()?;
        let path = path.trim_matches('/').trim_end_matches(".git");
        (!host.is_empty() && path.contains('/')).then(|| ProjectOrigin {
            host: host.to_string(),
            path: path.to_string(),
            default_branch: default_branch.unwrap_or_else(|| "main".into()),
        })
    }
}

/// The CI whose OIDC provider the role trusts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issuer {
    GitLab,
    GitHub,
}

/// The IAM role trust policy for the pipeline's ID tokens, when it uses OIDC: the provider
/// (GitLab's instance, or GitHub's token service), the audience, and `sub` conditions for the
/// default branch, tags and (GitHub) each environment's deploy jobs. `origin` unknown:
/// `GROUP/PROJECT` placeholders.
pub fn trust_policy(
    options: &InitOptions,
    issuer: Issuer,
    origin: Option<&ProjectOrigin>,
) -> Option<serde_json::Value> {
    if !options.uses_aws() || options.auth != Auth::Oidc {
        return None;
    }
    let account = options
        .role_arn
        .as_deref()
        .and_then(|arn| arn.split(':').nth(4))
        .map(str::to_string)
        .or_else(|| options.ecr().map(|e| e.account))
        .unwrap_or_else(|| "ACCOUNT_ID".into());
    let path = origin.map_or("GROUP/PROJECT", |o| o.path.as_str());
    let branch = origin.map_or("main", |o| o.default_branch.as_str());
    let (provider, subjects) = match issuer {
        Issuer::GitLab => (
            origin.map_or("gitlab.com", |o| o.host.as_str()).to_string(),
            vec![
                format!("project_path:{path}:ref_type:branch:ref:{branch}"),
                format!("project_path:{path}:ref_type:tag:ref:*"),
            ],
        ),
        Issuer::GitHub => {
            let mut subjects = vec![
                format!("repo:{path}:ref:refs/heads/{branch}"),
                format!("repo:{path}:ref:refs/tags/v*"),
            ];
            // A job with `environment:` gets a token whose sub names the environment.
            subjects.extend(
                options
                    .environments
                    .iter()
                    .map(|e| format!("repo:{path}:environment:{e}")),
            );
            ("token.actions.githubusercontent.com".to_string(), subjects)
        }
    };
    Some(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::{account}:oidc-provider/{provider}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {format!("{provider}:aud"): options.oidc_aud},
                "StringLike": {format!("{provider}:sub"): subjects},
            }
        }]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> InitOptions {
        InitOptions {
            repository: Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app".into()),
            region: None,
            auth: Auth::Oidc,
            role_arn: None,
            oidc_aud: "sts.amazonaws.com".into(),
            platforms: Vec::new(),
            native_runners: Vec::new(),
            deploy: Vec::new(),
            environments: vec!["staging".into(), "production".into()],
            container_isolation: true,
            image: "$HOIST_IMAGE".into(),
            push_mr: false,
            scan_fail_on: Vec::new(),
            scan_allow_failure: false,
            mirror: None,
            release: None,
            release_image: None,
        }
    }

    #[test]
    fn origins_from_scp_ssh_and_https_urls() {
        let expect = |host: &str, path: &str| ProjectOrigin {
            host: host.into(),
            path: path.into(),
            default_branch: "main".into(),
        };
        for (url, host, path) in [
            (
                "git@gitlab.com:group/sub/app.git",
                "gitlab.com",
                "group/sub/app",
            ),
            (
                "ssh://git@git.corp:2222/team/app.git",
                "git.corp",
                "team/app",
            ),
            ("https://github.com/owner/repo", "github.com", "owner/repo"),
            (
                "https://user@gitlab.example.com/g/app.git/",
                "gitlab.example.com",
                "g/app",
            ),
        ] {
            assert_eq!(
                ProjectOrigin::from_url(url, None),
                Some(expect(host, path)),
                "{url}"
            );
        }
        assert_eq!(ProjectOrigin::from_url("/srv/git/app", None), None);
        assert_eq!(ProjectOrigin::from_url("https://host", None), None);
    }

    #[test]
    fn trust_policies_name_the_provider_audience_and_exact_subjects() {
        let origin =
            ProjectOrigin::from_url("git@gitlab.example.com:g/app.git", Some("trunk".into()));
        let policy = trust_policy(&options(), Issuer::GitLab, origin.as_ref()).unwrap();
        let statement = &policy["Statement"][0];
        assert_eq!(
            statement["Principal"]["Federated"],
            "arn:aws:iam::123456789012:oidc-provider/gitlab.example.com"
        );
        assert_eq!(
            statement["Condition"]["StringEquals"]["gitlab.example.com:aud"],
            "sts.amazonaws.com"
        );
        assert_eq!(
            statement["Condition"]["StringLike"]["gitlab.example.com:sub"],
            serde_json::json!([
                "project_path:g/app:ref_type:branch:ref:trunk",
                "project_path:g/app:ref_type:tag:ref:*"
            ])
        );
        let github = trust_policy(
            &InitOptions {
                role_arn: Some("arn:aws:iam::999999999999:role/ci".into()),
                ..options()
            },
            Issuer::GitHub,
            None,
        )
        .unwrap();
        let statement = &github["Statement"][0];
        assert_eq!(
            statement["Principal"]["Federated"],
            "arn:aws:iam::999999999999:oidc-provider/token.actions.githubusercontent.com"
        );
        assert_eq!(
            statement["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"],
            serde_json::json!([
                "repo:GROUP/PROJECT:ref:refs/heads/main",
                "repo:GROUP/PROJECT:ref:refs/tags/v*",
                "repo:GROUP/PROJECT:environment:staging",
                "repo:GROUP/PROJECT:environment:production"
            ])
        );
        // Keys, or nothing on AWS: no policy.
        let keys = InitOptions {
            auth: Auth::Keys,
            ..options()
        };
        assert!(trust_policy(&keys, Issuer::GitLab, None).is_none());
        let no_aws = InitOptions {
            repository: Some("registry.example.com/app".into()),
            ..options()
        };
        assert!(trust_policy(&no_aws, Issuer::GitLab, None).is_none());
    }
}
