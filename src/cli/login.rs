use std::io::Read;

use hoist::aws::ecr::parse_host;
use hoist::reference::RegistryRef;
use hoist::registry::Access;
use hoist::registry::auth::{
    Credential, docker_config_path, store_credential, store_credential_helper,
};
use hoist::{Error, Result};

use super::Context;
use super::credential_helper::HELPER_PREFIX;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Registry host, e.g. registry.gitlab.com, localhost:5000, or an ECR host.
    pub registry: String,
    /// User name (not needed for ECR: the AWS credentials give a token).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password from standard input (the only way: never on the command line).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(serde::Serialize)]
struct Out {
    registry: String,
    config: String,
    /// How the credentials are kept: `password`, `token` (ECR, expires) or `helper`.
    stored: &'static str,
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    let registry = registry_host(&args.registry)?;
    let config_path = docker_config_path().ok_or_else(|| {
        Error::Usage("cannot find a home directory for config.json; set DOCKER_CONFIG".into())
    })?;
    let (credential, ecr) = match (&args.username, parse_host(&registry)) {
        (None, Some(ecr)) => (
            ctx.client
                .aws()
                .ecr_credential(&registry, &ecr, false)
                .await?,
            true,
        ),
        (None, None) => {
            return Err(Error::Usage(format!(
                "{registry}: pass -u USER --password-stdin (only ECR hosts log in without them)"
            )));
        }
        (Some(username), _) => (
            Credential {
                username: username.clone(),
                secret: read_password(args.password_stdin)?,
            },
            false,
        ),
    };
    // Check the credentials before storing them: ask for a token on a throwaway scope.
    let probe = RegistryRef::parse(&format!("{registry}/hoist-login-check"))?;
    ctx.client
        .with_credential(&registry, credential.clone())
        .repository(&probe, Access::Pull)
        .verify_login()
        .await?;
    let helper = format!("{HELPER_PREFIX}hoist");
    let stored = if ecr && on_path(&helper) {
        store_credential_helper(&config_path, &registry, "hoist")?;
        "helper"
    } else {
        store_credential(&config_path, &registry, &credential)?;
        if ecr { "token" } else { "password" }
    };
    let out = Out {
        registry: registry.clone(),
        config: config_path.display().to_string(),
        stored,
    };
    ctx.print(&out, || {
        let how = match stored {
            "helper" => format!("{helper} gives docker, skopeo and buildah fresh ECR tokens"),
            "token" => format!(
                "an ECR token, valid 12 hours; for fresh tokens put a symlink named {helper} to hoist on PATH and log in again"
            ),
            _ => "credentials stored".into(),
        };
        format!("Login Succeeded: {registry} ({how}; {})", out.config)
    });
    Ok(())
}

fn read_password(from_stdin: bool) -> Result<String> {
    if !from_stdin {
        return Err(Error::Usage(
            "pass the password with --password-stdin (never on the command line)".into(),
        ));
    }
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| Error::io("<stdin>", e))?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(Error::Usage("no password on standard input".into()));
    }
    Ok(password)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// `https://host/v1/` or `host/whatever` → `host`, validated as a registry host.
fn registry_host(input: &str) -> Result<String> {
    let host = input
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let parsed = RegistryRef::parse(&format!("{host}/x"))?;
    Ok(parsed.registry)
}
