use std::io::Read;

use hoist::reference::RegistryRef;
use hoist::registry::Access;
use hoist::registry::auth::{Credential, docker_config_path, store_credential};
use hoist::{Error, Result};

use super::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Registry host, e.g. registry.gitlab.com or localhost:5000.
    pub registry: String,
    #[arg(short, long)]
    pub username: String,
    /// Read the password from standard input (the only way: never on the command line).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    let registry = registry_host(&args.registry)?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| Error::io("<stdin>", e))?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(Error::Usage("no password on standard input".into()));
    }
    let credential = Credential {
        username: args.username.clone(),
        secret: password,
    };
    // Check the credentials before storing them: ask for a token on a throwaway scope.
    let probe = RegistryRef::parse(&format!("{registry}/hoist-login-check"))?;
    let client = ctx.client.with_credential(&registry, credential.clone());
    client
        .repository(&probe, Access::Pull)
        .verify_login()
        .await?;
    let path = docker_config_path().ok_or_else(|| {
        Error::Usage("cannot find a home directory for config.json; set DOCKER_CONFIG".into())
    })?;
    store_credential(&path, &registry, &credential)?;
    #[derive(serde::Serialize)]
    struct Out {
        registry: String,
        config: String,
    }
    let out = Out {
        registry: registry.clone(),
        config: path.display().to_string(),
    };
    ctx.print(&out, || {
        format!(
            "Login Succeeded: {registry} (credentials in {})",
            out.config
        )
    });
    Ok(())
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
