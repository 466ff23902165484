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
