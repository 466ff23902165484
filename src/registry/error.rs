//! Registry error bodies (`{"errors":[{"code","message","detail"}]}`) as typed errors.

use reqwest::{Response, StatusCode};
use serde::Deserialize;

use crate::error::Error;

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Reads a failed answer's body (bounded) and maps it to an error naming the registry,
/// repository, HTTP status and the registry's error code.
pub async fn error_from_response(resp: Response, registry: &str, repository: &str) -> Error {
    let status = resp.status();
    let body = match resp.bytes().await {
        Ok(b) => b.slice(..b.len().min(16 * 1024)),
        Err(_) => Default::default(),
    };
    let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    let first = parsed.as_ref().and_then(|b| b.errors.first());
    let code = first
        .map(|e| e.code.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| default_code(status).to_string());
    let message = first
        .map(|e| e.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            // A non-JSON body (a proxy's HTML page): its first line, short, as printable text.
            let text = String::from_utf8_lossy(&body);
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("");
            let line: String = line.chars().filter(|c| !c.is_control()).take(200).collect();
            if line.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase()
            } else {
                line
            }
        });
    match (status, code.as_str()) {
        (StatusCode::UNAUTHORIZED, _) | (_, "UNAUTHORIZED") => Error::Unauthorized {
            registry: registry.to_string(),
            detail: message,
        },
        (StatusCode::FORBIDDEN, _) | (_, "DENIED") => Error::Denied {
            registry: registry.to_string(),
            detail: format!("{repository}: {message}"),
        },
        _ => Error::Registry {
            registry: registry.to_string(),
            repository: repository.trim_start_matches('/').to_string(),
            status: status.as_u16(),
            code,
            message,
        },
    }
}

fn default_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BAD_REQUEST",
        401 => "UNAUTHORIZED",
        403 => "DENIED",
        404 => "NOT_FOUND",
        405 => "UNSUPPORTED",
        413 => "TOO_LARGE",
        416 => "RANGE_INVALID",
        429 => "TOOMANYREQUESTS",
        s if s >= 500 => "SERVER_ERROR",
        _ => "ERROR",
    }
}
