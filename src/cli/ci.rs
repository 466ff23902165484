//! `hoist ci tags`, and the CI pieces of build/copy/tag: `--tags auto`, output files.

use std::path::PathBuf;

use hoist::ci::config::ProjectConfig;
use hoist::ci::outputs::{OutputFiles, PushedImage};
use hoist::ci::tags::TagPlan;
use hoist::ci::{CiContext, Provider};
use hoist::progress::Event;
use hoist::reference::{Digest, ImageRef, RegistryRef};
use hoist::registry::Access;
use hoist::{Error, Result};

use super::Context;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Print the tags this build gets in this CI (the table in `hoist ci tags --help`).
    ///
    /// Short SHA always; + branch slug on branches; + latest on the default branch;
    /// v1.2.3, v1.2, v1 (+ latest) for a semver git tag, moving tags never moving backwards;
    /// only the version for a pre-release; mr-<iid> for merge requests; + the environment name.
    /// `hoist.toml` `[tags]` changes this (see README).
    Tags(TagsArgs),
    /// Write the CI pipeline that builds, pushes and deploys with hoist (.gitlab-ci.yml,
    /// .github/workflows/hoist.yml, buildspec.yml).
    Init(Box<InitArgs>),
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CiName {
    Gitlab,
    Github,
    Codebuild,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthArg {
    Oidc,
    Keys,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerIsolation {
    /// Unprivileged Docker executors (GitLab's default): HOIST_ISOLATION=container.
    Container,
    /// Let hoist choose (privileged or rootless-capable runners).
    Auto,
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    #[arg(value_enum)]
    pub ci: CiName,
    /// The registry host (default: the GitLab project registry).
    #[arg(long)]
    pub registry: Option<String>,
    /// The repository in it (with --registry).
    #[arg(long, requires = "registry")]
    pub repository: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long, value_enum, default_value = "oidc")]
    pub auth: AuthArg,
    /// The IAM role the job assumes with its ID token (default: the AWS_ROLE_ARN variable).
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The `aud` of the ID token (seed 004: sts.amazonaws.com).
    #[arg(long, default_value = "sts.amazonaws.com")]
    pub oidc_aud: String,
    /// Build these platforms in one job (QEMU for foreign RUN steps), or with
    /// --native-runners one job each.
    #[arg(long, value_delimiter = ',', value_name = "P,...")]
    pub platforms: Vec<String>,
    /// Runner tags (GitHub: runs-on labels), one per platform: each platform is built on its
    /// own runner, then `hoist manifest merge` joins them.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "TAG,...",
        requires = "platforms"
    )]
    pub native_runners: Vec<String>,
    /// A mirror job (`hoist mirror -f FILE`) on scheduled pipelines.
    #[arg(long, value_name = "FILE")]
    pub mirror: Option<String>,
    /// A release job on version tags (vX.Y.Z) running this command with the build jobs'
    /// credentials, e.g. `scripts/release -t "$IMAGE_REPOSITORY"`.
    #[arg(long, value_name = "COMMAND")]
    pub release: Option<String>,
    /// The release job's image (default: the job image).
    #[arg(long, value_name = "IMAGE", requires = "release")]
    pub release_image: Option<String>,
    /// Deploy jobs: CLUSTER/SERVICE (one for all environments, or one per environment).
    #[arg(long = "deploy-ecs", value_name = "CLUSTER/SERVICE")]
    pub deploy_ecs: Vec<String>,
    /// The environments deployed in order; the last one (if several) is a manual production
    /// gate on tags, with a manual rollback job.
    #[arg(long, value_delimiter = ',', value_name = "ENV,...")]
    pub environments: Vec<String>,
    /// How RUN steps are isolated on the runners.
    #[arg(long, value_enum, default_value = "container")]
    pub isolation: RunnerIsolation,
    /// The job image: any image with the hoist binary and a shell.
    #[arg(long, default_value = "$HOIST_IMAGE")]
    pub image: String,
    /// Merge requests push too (mr-<iid> and the short SHA).
    #[arg(long)]
    pub push_mr: bool,
    /// A scan gate job before the deploys: fail at these ECR finding severities.
    #[arg(long, value_delimiter = ',', value_name = "SEVERITY,...")]
    pub scan_fail_on: Vec<String>,
    /// The scan gate warns (exit code 3 allowed) instead of failing the pipeline.
    #[arg(long, requires = "scan_fail_on")]
    pub scan_allow_failure: bool,
    /// CodeBuild: the ECS container named in imagedefinitions.json.
    #[arg(long, default_value = "app")]
    pub container: String,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args, Debug)]
pub struct TagsArgs {
    /// The repository whose existing tags keep moving tags from moving backwards
    /// (default: $CI_REGISTRY_IMAGE on GitLab).
    #[arg(short = 't', long = "tag", value_name = "REPO")]
    pub repository: Option<String>,
    #[arg(long)]
    pub allow_dirty: bool,
}

/// `--tags auto` for commands that push.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct AutoTagArgs {
    /// `auto`: push this CI build's tags (`hoist ci tags`) to each -t repository.
    #[arg(id = "tags_mode", long = "tags", value_name = "auto", value_parser = ["auto"])]
    pub mode: Option<String>,
    /// Allow --tags auto with uncommitted changes in the work tree (no CI).
    #[arg(long)]
    pub allow_dirty: bool,
}

impl AutoTagArgs {
    pub fn auto(&self) -> bool {
        self.mode.is_some()
    }
}

/// Files for later jobs.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct OutputFileArgs {
    /// Write IMAGE_REPOSITORY, IMAGE_REF (repo@digest), IMAGE_DIGEST, IMAGE_TAGS (GitLab dotenv).
    #[arg(long, value_name = "FILE")]
    pub dotenv: Option<PathBuf>,
    /// Write the image digest (like docker's --iidfile).
    #[arg(long, value_name = "FILE")]
    pub digest_file: Option<PathBuf>,
    /// Write CodePipeline's imagedefinitions.json for the ECS container --container.
    #[arg(long, value_name = "FILE", requires = "container")]
    pub imagedefinitions: Option<PathBuf>,
    /// The container name for --imagedefinitions.
    #[arg(long, value_name = "NAME", requires = "imagedefinitions")]
    pub container: Option<String>,
    /// Write CodePipeline's imageDetail.json (ECS blue/green).
    #[arg(long, value_name = "FILE")]
    pub image_detail: Option<PathBuf>,
}

impl OutputFileArgs {
    pub fn write(&self, image: &PushedImage) -> Result<()> {
        OutputFiles {
            dotenv: self.dotenv.as_deref(),
            digest: self.digest_file.as_deref(),
            imagedefinitions: self
                .imagedefinitions
                .as_deref()
                .zip(self.container.as_deref()),
            image_detail: self.image_detail.as_deref(),
        }
        .write(image)
    }
}

/// What output files describe: the first registry destination's repository with every tag
/// pushed there, else the first destination as written.
pub fn pushed_image(destinations: &[ImageRef], digest: &Digest) -> PushedImage {
    let registry: Vec<&RegistryRef> = destinations
        .iter()
        .filter_map(|d| match d {
            ImageRef::Registry(r) => Some(r),
            _ => None,
        })
        .collect();
    match registry.first() {
        Some(first) => PushedImage {
            repository: first.repository_name(),
            digest: digest.clone(),
            tags: registry
                .iter()
                .filter(|r| r.repository_name() == first.repository_name())
                .filter_map(|r| r.tag.clone())
                .collect(),
        },
        None => PushedImage {
            repository: destinations
                .first()
                .map(|d| d.to_string())
                .unwrap_or_default(),
            digest: digest.clone(),
            tags: Vec::new(),
        },
    }
}

/// Splits expanded references into the first of each repository (copied to) and the other
/// tags of that repository (one manifest PUT each).
pub fn group_by_repository(refs: Vec<RegistryRef>) -> Vec<(RegistryRef, Vec<String>)> {
    let mut groups: Vec<(RegistryRef, Vec<String>)> = Vec::new();
    for r in refs {
        match groups
            .iter_mut()
            .find(|(first, _)| first.repository_name() == r.repository_name() && r.digest.is_none())
        {
            Some((_, extra)) => extra.extend(r.tag),
            None => groups.push((r, Vec::new())),
        }
    }
    groups
}

/// The CI context of this run and the project's hoist.toml (from the current directory).
/// `local`: without CI, read `.git` (for tags).
pub fn detect(ctx: &Context, local: bool) -> Result<(CiContext, ProjectConfig)> {
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let ci = hoist::ci::detect(&hoist::ci::process_env, &cwd, local)?;
    Ok((ci, ctx.project.clone()))
}

/// Refuses what would make auto tags wrong: no commit to name, or (no CI) uncommitted changes.
fn check_taggable(ci: &CiContext, allow_dirty: bool) -> Result<()> {
    if ci.sha.is_none() {
        return Err(Error::Usage(
            "--tags auto needs a commit: run in GitLab CI, GitHub Actions or CodeBuild, or in a git work tree".into(),
        ));
    }
    if ci.provider == Some(Provider::Local) && ci.dirty && !allow_dirty {
        return Err(Error::Usage(
            "the work tree has uncommitted changes, so the commit SHA would not describe the image: commit first, or pass --allow-dirty".into(),
        ));
    }
    Ok(())
}

/// The tag plan for one repository, checking its existing tags when a release could move
/// `v1`/`latest` backwards.
pub async fn plan_for(
    ctx: &Context,
    ci: &CiContext,
    config: &ProjectConfig,
    repository: Option<&RegistryRef>,
) -> Result<TagPlan> {
    let release = ci
        .git_tag
        .as_deref()
        .and_then(hoist::ci::tags::Version::parse)
        .is_some_and(|v| v.pre.is_none());
    let existing = match repository {
        Some(repo) if release => match ctx.client.repository(repo, Access::Pull).tags().await {
            Ok(tags) => tags,
            Err(Error::NotFound { .. }) => Vec::new(),
            Err(Error::Registry { code, .. }) if code == "NAME_UNKNOWN" => Vec::new(),
            Err(e) => return Err(e),
        },
        _ => Vec::new(),
    };
    let plan = hoist::ci::tags::plan(ci, &config.tags, &existing);
    for notice in &plan.notices {
        ctx.client.reporter().report(Event::Info(notice.clone()));
    }
    Ok(plan)
}

/// `-t` references with `--tags auto` applied: each repository gets the plan's tags plus the
/// tags named explicitly (`-t REPO:TAG`). Moving tags are marked on the client (immutable ECR
/// repositories skip them).
pub async fn expand(
    ctx: &Context,
    args: &AutoTagArgs,
    ci: &CiContext,
    config: &ProjectConfig,
    refs: Vec<RegistryRef>,
) -> Result<Vec<RegistryRef>> {
    if !args.auto() {
        return Ok(refs);
    }
    check_taggable(ci, args.allow_dirty)?;
    let mut repositories: Vec<RegistryRef> = Vec::new();
    for r in &refs {
        let bare = RegistryRef {
            tag: None,
            digest: None,
            ..r.clone()
        };
        if !repositories.contains(&bare) {
            repositories.push(bare);
        }
    }
    let mut expanded = Vec::new();
    for repo in &repositories {
        let plan = plan_for(ctx, ci, config, Some(repo)).await?;
        for tag in &plan.tags {
            if tag.moving {
                ctx.client.mark_moving_tag(&tag.name);
            }
            expanded.push(repo.with_tag(&tag.name));
        }
        for r in refs
            .iter()
            .filter(|r| r.repository_name() == repo.repository_name())
        {
            if let Some(tag) = &r.tag
                && !expanded.iter().any(|e| e == &repo.with_tag(tag))
            {
                expanded.push(repo.with_tag(tag));
            }
        }
    }
    Ok(expanded)
}

pub async fn run(ctx: &Context, command: Command) -> Result<()> {
    match command {
        Command::Tags(args) => tags(ctx, args).await,
        Command::Init(args) => init(ctx, *args),
    }
}

fn init(ctx: &Context, args: InitArgs) -> Result<()> {
    use hoist::ci::init::{Auth, InitOptions, Issuer, ProjectOrigin, trust_policy};
    let deploy = args
        .deploy_ecs
        .iter()
        .map(|d| {
            d.split_once('/')
                .filter(|(c, s)| !c.is_empty() && !s.is_empty())
                .map(|(c, s)| (c.to_string(), s.to_string()))
                .ok_or_else(|| Error::Usage(format!("--deploy-ecs `{d}` is not CLUSTER/SERVICE")))
        })
        .collect::<Result<Vec<_>>>()?;
    let options = InitOptions {
        repository: args.registry.as_ref().map(|r| match &args.repository {
            Some(name) => format!("{}/{}", r.trim_end_matches('/'), name),
            None => r.clone(),
        }),
        region: args.region.clone(),
        auth: match args.auth {
            AuthArg::Oidc => Auth::Oidc,
            AuthArg::Keys => Auth::Keys,
        },
        role_arn: args.role_arn.clone(),
        oidc_aud: args.oidc_aud.clone(),
        platforms: args.platforms.clone(),
        native_runners: args.native_runners.clone(),
        deploy,
        environments: args.environments.clone(),
        container_isolation: args.isolation == RunnerIsolation::Container,
        image: args.image.clone(),
        push_mr: args.push_mr,
        scan_fail_on: args.scan_fail_on.clone(),
        scan_allow_failure: args.scan_allow_failure,
        mirror: args.mirror.clone(),
        release: args.release.clone(),
        release_image: args.release_image.clone(),
    };
    if !matches!(args.ci, CiName::Gitlab) && (args.push_mr || !args.scan_fail_on.is_empty()) {
        return Err(Error::Usage(
            "--push-mr and --scan-fail-on are written for gitlab pipelines only, so far".into(),
        ));
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let origin = hoist::ci::git::read(&cwd, false)?
        .and_then(|git| ProjectOrigin::from_url(git.origin_url.as_deref()?, git.default_branch));
    let trust_policy = match args.ci {
        CiName::Gitlab => trust_policy(&options, Issuer::GitLab, origin.as_ref()),
        CiName::Github => trust_policy(&options, Issuer::GitHub, origin.as_ref()),
        CiName::Codebuild => None,
    };
    let (file, text, setup) = match args.ci {
        CiName::Gitlab => (
            std::path::PathBuf::from(".gitlab-ci.yml"),
            hoist::ci::init::gitlab(&options)?,
            hoist::ci::init::gitlab_setup(&options),
        ),
        CiName::Github => (
            std::path::PathBuf::from(".github/workflows/hoist.yml"),
            hoist::ci::init::github(&options)?,
            hoist::ci::init::github_setup(&options),
        ),
        CiName::Codebuild => (
            std::path::PathBuf::from("buildspec.yml"),
            hoist::ci::init::codebuild(&options, &args.container)?,
            vec![
                "CodeBuild: a service role allowed to push to the repository (ecr:*Layer*, ecr:PutImage, ecr:CreateRepository with --ecr-create) and, for deploys, ecs:RegisterTaskDefinition/UpdateService/Describe* and iam:PassRole".to_string(),
            ],
        ),
    };
    if file.exists() && !args.force {
        return Err(Error::Usage(format!(
            "{} exists: pass --force to overwrite it",
            file.display()
        )));
    }
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(&file, &text).map_err(|e| Error::io(&file, e))?;
    #[derive(serde::Serialize)]
    struct Out {
        file: String,
        setup: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        trust_policy: Option<serde_json::Value>,
    }
    let out = Out {
        file: file.display().to_string(),
        setup,
        trust_policy,
    };
    ctx.print(&out, || {
        let mut lines = vec![format!("wrote {}", out.file)];
        lines.extend(out.setup.iter().map(|s| format!("  to set up: {s}")));
        if let Some(policy) = &out.trust_policy {
            lines.push("the role's trust policy:".into());
            lines.push(serde_json::to_string_pretty(policy).unwrap_or_default());
        }
        lines.join("\n")
    });
    Ok(())
}

async fn tags(ctx: &Context, args: TagsArgs) -> Result<()> {
    let (ci, config) = detect(ctx, true)?;
    check_taggable(&ci, args.allow_dirty)?;
    let repository = match args.repository.or(ci.registry_image.clone()) {
        Some(r) => Some(RegistryRef::parse(&r)?),
        None => None,
    };
    let plan = plan_for(ctx, &ci, &config, repository.as_ref()).await?;
    #[derive(serde::Serialize)]
    struct Out<'a> {
        provider: Option<Provider>,
        repository: Option<String>,
        #[serde(flatten)]
        plan: &'a TagPlan,
    }
    let out = Out {
        provider: ci.provider,
        repository: repository.as_ref().map(|r| r.repository_name()),
        plan: &plan,
    };
    ctx.print(&out, || plan.names().join("\n"));
    Ok(())
}
