//! `docker-credential-hoist` (a symlink to hoist): the docker credential helper protocol, so
//! docker, skopeo and buildah get fresh ECR tokens from the AWS credentials instead of a stored
//! 12-hour password. `get` reads the server URL on stdin and answers JSON on stdout.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use hoist::aws::ecr::parse_host;
use hoist::aws::{Aws, AwsSettings};
use hoist::progress::Silent;
use hoist::registry::Settings;

/// The program name docker looks for: `docker-credential-<helper name>`.
pub const HELPER_PREFIX: &str = "docker-credential-";

pub fn invoked_as_helper() -> bool {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            Path::new(&arg0)
                .file_name()
                .map(|n| n.to_string_lossy().starts_with(HELPER_PREFIX))
        })
        .unwrap_or(false)
}

pub fn main() -> ExitCode {
    let action = std::env::args().nth(1).unwrap_or_default();
    let mut input = String::new();
    if matches!(action.as_str(), "get" | "store" | "erase")
        && let Err(e) = std::io::stdin().read_to_string(&mut input)
    {
        eprintln!("cannot read standard input: {e}");
        return ExitCode::from(1);
    }
    match action.as_str() {
        "get" => match get(input.trim()) {
            Ok(answer) => {
                println!("{answer}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                // Docker's helpers print this exact text on stdout when they have nothing.
                println!("{message}");
                ExitCode::from(1)
            }
        },
        // Nothing is stored: every `get` asks AWS (or the 0600 token file) afresh.
        "store" | "erase" => ExitCode::SUCCESS,
        "list" => {
            println!("{{}}");
            ExitCode::SUCCESS
        }
        "version" => {
            println!("docker-credential-hoist {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: docker-credential-hoist get|store|erase|list|version");
            ExitCode::from(1)
        }
    }
}

fn get(server_url: &str) -> Result<String, String> {
    let host = server_url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    // A tool that rewrote the ECR host to an endpoint (registries.conf, a proxy) asks about
    // the endpoint: HOIST_REGISTRY_ENDPOINTS maps it back.
    let host = match parse_host(&host) {
        Some(_) => host,
        None => Settings::from_env()
            .map_err(|e| e.to_string())?
            .endpoints
            .iter()
            .find(|(_, url)| {
                url.host_str().is_some_and(|h| {
                    format!("{h}:{}", url.port_or_known_default().unwrap_or(0)) == host
                })
            })
            .map(|(ecr_host, _)| ecr_host.clone())
            .unwrap_or(host),
    };
    let Some(ecr) = parse_host(&host) else {
        return Err("credentials not found in native keychain".into());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let aws = Aws::new(AwsSettings::from_env(), Arc::new(Silent));
    let credential = runtime
        .block_on(aws.ecr_credential(&host, &ecr, false))
        .map_err(|e| match e.hint() {
            Some(hint) => format!("{e} ({hint})"),
            None => e.to_string(),
        })?;
    Ok(serde_json::json!({
        "ServerURL": server_url,
        "Username": credential.username,
        "Secret": credential.secret,
    })
    .to_string())
}
