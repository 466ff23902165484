//! Command-line parsing and the glue from subcommands to the library.

pub mod build;
pub mod cache;
pub mod ci;
pub mod copy;
pub mod credential_helper;
pub mod deploy;
pub mod ecr;
pub mod inspect;
pub mod login;
pub mod manifest;
pub mod mirror;
pub mod progress;
pub mod tag;
pub mod tags;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Serialize;

use hoist::Result;
use hoist::progress::Reporter;
use hoist::registry::{RegistryClient, Settings};

#[derive(Parser, Debug)]
#[command(
    name = "hoist",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HOIST_GIT_REVISION"), ")"),
    about = "Build, copy and push container images from CI, without a Docker daemon"
)]
pub struct Cli {
    /// More logs on stderr: -v debug, -vv trace (secrets are never logged).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Print one JSON result object on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// The env var holding a GitLab ID token for AWS_ROLE_ARN (default: AWS_ID_TOKEN,
    /// GITLAB_OIDC_TOKEN, then the deprecated CI_JOB_JWT_V2).
    #[arg(
        long,
        global = true,
        env = "AWS_WEB_IDENTITY_TOKEN_ENV",
        value_name = "VAR"
    )]
    pub web_identity_token_env: Option<String>,
    /// Progress display: bars on a terminal (auto), plain lines, or nothing.
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub progress: progress::ProgressMode,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build an image from a Dockerfile (no daemon).
    Build(Box<build::Args>),
    /// Copy an image or index between registries, OCI layouts and docker-archives.
    Copy(copy::Args),
    /// Add tags to an image in the same repository (no blobs move).
    Tag(tag::Args),
    /// Show an image's manifest and config.
    Inspect(inspect::Args),
    /// List a repository's tags.
    Tags(tags::Args),
    /// Store registry credentials in docker's config.json (ECR: from AWS credentials).
    Login(login::Args),
    /// CI integration: the tags of this build.
    Ci {
        #[command(subcommand)]
        command: ci::Command,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) or the man page (`man`).
    Completions {
        #[arg(value_name = "SHELL|man")]
        shell: String,
    },
    /// Deploy an exact image digest (ECS services).
    Deploy {
        #[command(subcommand)]
        command: deploy::Command,
    },
    /// Keep upstream images in a registry (ECR or any) from one file; copies only what changed.
    Mirror(mirror::Args),
    /// Multi-platform indexes: join per-platform images built on separate runners.
    Manifest {
        #[command(subcommand)]
        command: manifest::Command,
    },
    /// The local build cache: verify it, prune it.
    Cache {
        #[command(subcommand)]
        command: cache::Command,
    },
    /// Amazon ECR: create/converge repositories, gate on scan findings.
    Ecr {
        #[command(subcommand)]
        command: ecr::Command,
    },
}

/// What every subcommand gets: the registry client and how to print results.
pub struct Context {
    pub client: RegistryClient,
    pub json: bool,
    /// hoist.toml of the current directory, read once.
    pub project: hoist::ci::config::ProjectConfig,
}

impl Context {
    /// Prints a result: as `{"schema":1,...}` JSON with --json, else the human text.
    pub fn print<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            println!("{}", json_result(value));
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{text}");
            }
        }
    }
}

/// A result object with the schema version first.
pub fn json_result<T: Serialize>(value: &T) -> String {
    let mut object = serde_json::Map::new();
    object.insert("schema".into(), 1.into());
    match serde_json::to_value(value).expect("results serialise") {
        serde_json::Value::Object(fields) => object.extend(fields),
        other => {
            object.insert("result".into(), other);
        }
    }
    serde_json::Value::Object(object).to_string()
}

pub async fn run(cli: Cli, reporter: Arc<dyn Reporter>) -> Result<()> {
    let mut settings = Settings::from_env()?;
    // hoist.toml's pull mirrors, where HOIST_REGISTRY_MIRRORS does not name the registry.
    let cwd = std::env::current_dir().map_err(|e| hoist::Error::io(".", e))?;
    let project = hoist::ci::config::load(&cwd)?;
    for (registry, prefixes) in &project.mirrors {
        settings
            .mirrors
            .entry(registry.clone())
            .or_insert_with(|| prefixes.clone());
    }
    if cli.web_identity_token_env.is_some() {
        settings.aws.web_identity_token_env = cli.web_identity_token_env.clone();
    }
    let client = RegistryClient::new(settings, reporter)?;
    let ctx = Context {
        client,
        json: cli.json,
        project,
    };
    match cli.command {
        Command::Build(args) => build::run(&ctx, *args).await,
        Command::Copy(args) => copy::run(&ctx, args).await,
        Command::Tag(args) => tag::run(&ctx, args).await,
        Command::Inspect(args) => inspect::run(&ctx, args).await,
        Command::Tags(args) => tags::run(&ctx, args).await,
        Command::Login(args) => login::run(&ctx, args).await,
        Command::Ecr { command } => ecr::run(&ctx, command).await,
        Command::Manifest { command } => manifest::run(&ctx, command).await,
        Command::Mirror(args) => mirror::run(&ctx, args).await,
        Command::Cache { command } => cache::run(&ctx, command),
        Command::Deploy { command } => deploy::run(&ctx, command).await,
        Command::Completions { shell } => completions(&shell),
        Command::Ci { command } => ci::run(&ctx, command).await,
    }
}

/// `hoist completions SHELL|man`: written to stdout.
fn completions(shell: &str) -> Result<()> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    if shell == "man" {
        return clap_mangen::Man::new(command)
            .render(&mut out)
            .map_err(|e| hoist::Error::io("<stdout>", e));
    }
    let shell: clap_complete::Shell = shell.parse().map_err(|_| {
        hoist::Error::Usage(format!(
            "completions for `{shell}`: choose bash, zsh, fish, elvish, powershell or man"
        ))
    })?;
    clap_complete::generate(shell, &mut command, "hoist", &mut out);
    Ok(())
}
