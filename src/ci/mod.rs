//! The CI a command runs in (GitLab, GitHub Actions, CodeBuild, or none: then `.git`), the
//! tags it gets (design.md's table, `hoist.toml`'s `[tags]`), OCI labels from it, and the
//! files later jobs read (dotenv, digest, imagedefinitions, imageDetail).

pub mod config;
pub mod git;
pub mod init;
pub mod outputs;
pub mod tags;

use std::path::Path;

use serde::Serialize;

use crate::error::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    GitLab,
    GitHub,
    CodeBuild,
    /// No CI: what `.git` says.
    Local,
}

/// What the CI (or `.git`) says about the commit being built.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CiContext {
    pub provider: Option<Provider>,
    /// The full commit SHA.
    pub sha: Option<String>,
    /// The CI's own short SHA (GitLab: 8 characters), if it gives one.
    pub short_sha: Option<String>,
    /// The branch of a branch pipeline (not set for tags and merge requests).
    pub branch: Option<String>,
    /// GitLab's `CI_COMMIT_REF_SLUG` when given.
    pub ref_slug: Option<String>,
    /// The git tag of a tag pipeline.
    pub git_tag: Option<String>,
    pub default_branch: Option<String>,
    /// Merge request IID (GitLab) or pull request number.
    pub merge_request: Option<String>,
    pub environment: Option<String>,
    /// Commit time, seconds since the epoch.
    pub commit_time: Option<i64>,
    pub project_url: Option<String>,
    pub project_name: Option<String>,
    /// GitLab's `CI_REGISTRY_IMAGE`.
    pub registry_image: Option<String>,
    /// Uncommitted changes in the work tree (no CI only).
    pub dirty: bool,
}

impl CiContext {
    /// True inside a CI system (not a laptop).
    pub fn in_ci(&self) -> bool {
        matches!(
            self.provider,
            Some(Provider::GitLab | Provider::GitHub | Provider::CodeBuild)
        )
    }

    /// The CI's short SHA, else the first 8 characters of the commit.
    pub fn short_sha(&self) -> Option<String> {
        self.short_sha
            .clone()
            .or_else(|| self.sha.as_ref().map(|s| s.chars().take(8).collect()))
    }

    /// The branch or tag name (`org.opencontainers.image.ref.name`).
    pub fn ref_name(&self) -> Option<&str> {
        self.git_tag.as_deref().or(self.branch.as_deref())
    }
}

/// Reads one env var; empty counts as unset.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Detects the CI from the environment; `repo` is where `.git` is looked for when the CI does
/// not say everything (the commit time on GitHub/CodeBuild) and, with `local`, when there is
/// no CI (then the work tree is also checked for uncommitted changes).
pub fn detect(env: EnvLookup, repo: &Path, local: bool) -> Result<CiContext> {
    let git = || git::read(repo, false);
    let mut ctx = if env("GITLAB_CI").is_some() {
        gitlab(env)
    } else if env("GITHUB_ACTIONS").is_some() {
        github(env)
    } else if env("CODEBUILD_BUILD_ID").is_some() {
        codebuild(env)
    } else {
        let mut ctx = CiContext::default();
        if !local {
            return Ok(ctx);
        }
        if let Some(info) = git::read(repo, true)? {
            ctx.provider = Some(Provider::Local);
            ctx.sha = Some(info.sha);
            ctx.branch = info.branch;
            ctx.commit_time = Some(info.commit_time);
            ctx.dirty = info.dirty;
        }
        return Ok(ctx);
    };
    if ctx.commit_time.is_none() || ctx.default_branch.is_none() {
        // Best effort: a shallow or missing clone just leaves these unknown.
        if let Ok(Some(info)) = git() {
            if ctx.sha.is_none() || ctx.sha.as_deref() == Some(info.sha.as_str()) {
                ctx.commit_time = ctx.commit_time.or(Some(info.commit_time));
            }
            ctx.default_branch = ctx.default_branch.or(info.default_branch);
        }
    }
    if let Some(branch) = env("HOIST_DEFAULT_BRANCH") {
        ctx.default_branch = Some(branch);
    }
    Ok(ctx)
}

fn gitlab(env: EnvLookup) -> CiContext {
    CiContext {
        provider: Some(Provider::GitLab),
        sha: env("CI_COMMIT_SHA"),
        short_sha: env("CI_COMMIT_SHORT_SHA"),
        branch: env("CI_COMMIT_BRANCH"),
        ref_slug: env("CI_COMMIT_REF_SLUG"),
        git_tag: env("CI_COMMIT_TAG"),
        default_branch: env("CI_DEFAULT_BRANCH"),
        merge_request: env("CI_MERGE_REQUEST_IID"),
        environment: env("CI_ENVIRONMENT_NAME"),
        commit_time: env("CI_COMMIT_TIMESTAMP").and_then(|t| crate::time::parse_rfc3339(&t)),
        project_url: env("CI_PROJECT_URL"),
        project_name: env("CI_PROJECT_NAME"),
        registry_image: env("CI_REGISTRY_IMAGE"),
        dirty: false,
    }
}

fn github(env: EnvLookup) -> CiContext {
    let event: serde_json::Value = env("GITHUB_EVENT_PATH")
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let git_ref = env("GITHUB_REF").unwrap_or_default();
    let mut ctx = CiContext {
        provider: Some(Provider::GitHub),
        sha: env("GITHUB_SHA"),
        default_branch: event["repository"]["default_branch"]
            .as_str()
            .map(str::to_string),
        environment: env("HOIST_ENVIRONMENT"),
        commit_time: event["head_commit"]["timestamp"]
            .as_str()
            .and_then(crate::time::parse_rfc3339),
        project_url: match (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY")) {
            (Some(server), Some(repo)) => Some(format!("{server}/{repo}")),
            _ => None,
        },
        project_name: env("GITHUB_REPOSITORY")
            .and_then(|r| r.rsplit('/').next().map(str::to_string)),
        ..Default::default()
    };
    if let Some(branch) = git_ref.strip_prefix("refs/heads/") {
        ctx.branch = Some(branch.to_string());
    } else if let Some(tag) = git_ref.strip_prefix("refs/tags/") {
        ctx.git_tag = Some(tag.to_string());
    } else if let Some(pr) = git_ref.strip_prefix("refs/pull/") {
        ctx.merge_request = pr.split('/').next().map(str::to_string);
        // A pull request builds a merge commit; the PR's head is in the event.
        if let Some(head) = event["pull_request"]["head"]["sha"].as_str() {
            ctx.sha = Some(head.to_string());
        }
    }
    ctx
}

fn codebuild(env: EnvLookup) -> CiContext {
    let mut ctx = CiContext {
        provider: Some(Provider::CodeBuild),
        sha: env("CODEBUILD_RESOLVED_SOURCE_VERSION"),
        environment: env("HOIST_ENVIRONMENT"),
        project_url: env("CODEBUILD_SOURCE_REPO_URL"),
        ..Default::default()
    };
    let head_ref = env("CODEBUILD_WEBHOOK_HEAD_REF").unwrap_or_default();
    let trigger = env("CODEBUILD_WEBHOOK_TRIGGER").unwrap_or_default();
    if let Some(pr) = trigger.strip_prefix("pr/") {
        ctx.merge_request = Some(pr.to_string());
    } else if let Some(tag) = head_ref
        .strip_prefix("refs/tags/")
        .or_else(|| trigger.strip_prefix("tag/"))
    {
        ctx.git_tag = Some(tag.to_string());
    } else if let Some(branch) = head_ref
        .strip_prefix("refs/heads/")
        .or_else(|| trigger.strip_prefix("branch/"))
    {
        ctx.branch = Some(branch.to_string());
    }
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned().filter(|v| !v.is_empty())
    }

    #[test]
    fn gitlab_branch_tag_and_merge_request_pipelines() {
        let none = Path::new("/nonexistent");
        let ctx = detect(
            &env_of(&[
                ("GITLAB_CI", "true"),
                ("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567"),
                ("CI_COMMIT_SHORT_SHA", "01234567"),
                ("CI_COMMIT_BRANCH", "feature/Login"),
                ("CI_COMMIT_REF_SLUG", "feature-login"),
                ("CI_DEFAULT_BRANCH", "main"),
                ("CI_COMMIT_TIMESTAMP", "2024-05-01T10:00:00+00:00"),
                ("CI_PROJECT_URL", "https://gitlab.com/g/app"),
            ]),
            none,
            true,
        )
        .unwrap();
        assert_eq!(ctx.provider, Some(Provider::GitLab));
        assert_eq!(ctx.branch.as_deref(), Some("feature/Login"));
        assert_eq!(ctx.short_sha().as_deref(), Some("01234567"));
        assert_eq!(
            ctx.commit_time,
            crate::time::parse_rfc3339("2024-05-01T10:00:00Z")
        );
        assert!(ctx.in_ci());
    }

    #[test]
    fn github_refs_and_event_file() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(
            &event,
            r#"{"repository":{"default_branch":"trunk"},"pull_request":{"head":{"sha":"feedface00000000000000000000000000000000"}}}"#,
        )
        .unwrap();
        let ctx = detect(
            &env_of(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_SHA", "abcdef0000000000000000000000000000000000"),
                ("GITHUB_REF", "refs/pull/17/merge"),
                ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
                ("GITHUB_SERVER_URL", "https://github.com"),
                ("GITHUB_REPOSITORY", "org/app"),
            ]),
            dir.path(),
            true,
        )
        .unwrap();
        assert_eq!(ctx.merge_request.as_deref(), Some("17"));
        assert_eq!(ctx.default_branch.as_deref(), Some("trunk"));
        assert_eq!(ctx.short_sha().as_deref(), Some("feedface"));
        assert_eq!(
            ctx.project_url.as_deref(),
            Some("https://github.com/org/app")
        );
        let tag = detect(
            &env_of(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_REF", "refs/tags/v1.2.3"),
            ]),
            dir.path(),
            true,
        )
        .unwrap();
        assert_eq!(tag.git_tag.as_deref(), Some("v1.2.3"));
    }

    #[test]
    fn codebuild_webhooks() {
        let dir = tempfile::tempdir().unwrap();
        let branch = detect(
            &env_of(&[
                ("CODEBUILD_BUILD_ID", "app:1"),
                ("CODEBUILD_RESOLVED_SOURCE_VERSION", "1111111122222222"),
                ("CODEBUILD_WEBHOOK_HEAD_REF", "refs/heads/main"),
                ("HOIST_DEFAULT_BRANCH", "main"),
            ]),
            dir.path(),
            true,
        )
        .unwrap();
        assert_eq!(branch.branch.as_deref(), Some("main"));
        assert_eq!(branch.default_branch.as_deref(), Some("main"));
        let pr = detect(
            &env_of(&[
                ("CODEBUILD_BUILD_ID", "app:2"),
                ("CODEBUILD_WEBHOOK_TRIGGER", "pr/5"),
            ]),
            dir.path(),
            true,
        )
        .unwrap();
        assert_eq!(pr.merge_request.as_deref(), Some("5"));
        let tag = detect(
            &env_of(&[
                ("CODEBUILD_BUILD_ID", "app:3"),
                ("CODEBUILD_WEBHOOK_TRIGGER", "tag/v2.0.0"),
            ]),
            dir.path(),
            true,
        )
        .unwrap();
        assert_eq!(tag.git_tag.as_deref(), Some("v2.0.0"));
    }
}
