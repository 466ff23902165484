//! Typed errors. Every message names what it is about (reference, registry, file) and never a
//! secret; `hint` gives the one line telling the user what to do.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid reference `{input}`: {reason}")]
    InvalidReference { input: String, reason: String },

    #[error("{registry}: unauthorized: {detail}")]
    Unauthorized { registry: String, detail: String },

    #[error("{registry}: denied: {detail}")]
    Denied { registry: String, detail: String },

    #[error("{what}: not found")]
    NotFound { what: String },

    /// A registry answered with an error the client does not handle itself.
    #[error("{registry}/{repository}: {code}: {message} (HTTP {status})")]
    Registry {
        registry: String,
        repository: String,
        status: u16,
        code: String,
        message: String,
    },

    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("{target}: the registry stored the manifest as {stored}, not as the {sent} pushed")]
    ManifestRewritten {
        target: String,
        sent: String,
        stored: String,
    },

    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    /// A connection-level failure; `url` is already redacted.
    #[error("{url}: {detail}")]
    Network { url: String, detail: String },

    /// The server's TLS certificate does not chain to a CA hoist trusts; `url` is redacted.
    #[error("{url}: the server's TLS certificate is not trusted ({detail})")]
    Untrusted { url: String, detail: String },

    #[error("{url}: gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        url: String,
        attempts: u32,
        last: String,
    },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// Malformed content: a manifest, config, archive or layout that cannot be read.
    #[error("{what}: {reason}")]
    Malformed { what: String, reason: String },

    /// The user asked for something that cannot be done (bad flag combination, unsupported
    /// destination, no matching platform).
    #[error("{0}")]
    Usage(String),

    #[error("credential helper `{helper}` for {registry}: {reason}")]
    CredentialHelper {
        helper: String,
        registry: String,
        reason: String,
    },

    /// A problem with a Dockerfile instruction, or with what it refers to.
    #[error("{file}:{line}: {message}")]
    Dockerfile {
        file: String,
        line: usize,
        message: String,
        /// The hint of the error the instruction ran into, if it had one.
        hint: Option<String>,
    },

    /// AWS and ECR trouble: credentials, API errors, repository rules. The message is complete.
    #[error("{message}")]
    Aws {
        message: String,
        hint: Option<String>,
    },

    /// A policy gate said no (scan threshold reached): exit code 3.
    #[error("{message}")]
    Gate {
        message: String,
        hint: Option<String>,
    },

    /// Some items of a batch (mirror) failed; each was reported with the result: exit 1.
    #[error("{0}")]
    PartlyFailed(String),

    #[error("internal error: {0}")]
    Internal(String),
}

/// What to do about a TLS certificate hoist does not trust.
pub const TRUST_HINT: &str = "hoist trusts the CA roots in SSL_CERT_FILE/SSL_CERT_DIR or the system bundle (/etc/ssl/certs/ca-certificates.crt): install ca-certificates, or add your CA to that bundle";

/// Each error of a chain once, joined by `: ` (wrappers often repeat their source's text).
pub fn described_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text = format!("{text}: {part}");
        }
        source = s.source();
    }
    text
}

/// The first `Some` that `find` gives for an error of the chain. io errors are looked into
/// too: their `source` skips the error they wrap, and rustls's errors and our own stream
/// errors travel inside them.
pub fn find_in_chain<R>(
    error: &(dyn std::error::Error + 'static),
    find: &dyn Fn(&(dyn std::error::Error + 'static)) -> Option<R>,
) -> Option<R> {
    if let Some(found) = find(error) {
        return Some(found);
    }
    let wrapped = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .map(|inner| inner as &(dyn std::error::Error + 'static));
    wrapped
        .and_then(|inner| find_in_chain(inner, find))
        .or_else(|| {
            error
                .source()
                .and_then(|source| find_in_chain(source, find))
        })
}

/// The certificate error (`invalid peer certificate: UnknownIssuer`) somewhere in a chain of
/// HTTP client errors, if the failure was an untrusted server certificate.
pub fn untrusted_certificate(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    find_in_chain(error, &|e| match e.downcast_ref::<rustls::Error>() {
        Some(tls @ rustls::Error::InvalidCertificate(_)) => Some(tls.to_string()),
        _ => None,
    })
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn malformed(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// A copy of a corrupt-content error (they travel inside io errors of byte streams).
    pub fn content_error(&self) -> Option<Error> {
        match self {
            Error::DigestMismatch {
                what,
                expected,
                actual,
            } => Some(Error::DigestMismatch {
                what: what.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            }),
            Error::SizeMismatch {
                what,
                expected,
                actual,
            } => Some(Error::SizeMismatch {
                what: what.clone(),
                expected: *expected,
                actual: *actual,
            }),
            _ => None,
        }
    }

    /// The error as it happened at a Dockerfile line (errors already placed are kept).
    pub fn at_dockerfile_line(self, file: &str, line: usize) -> Error {
        match self {
            Error::Dockerfile { .. } => self,
            other => Error::Dockerfile {
                file: file.to_string(),
                line,
                hint: other.hint(),
                message: other.to_string(),
            },
        }
    }

    /// A copy of an [`Error::Aws`] (errors travel through the AWS SDK as boxed sources).
    pub fn aws_copy(&self) -> Option<Error> {
        match self {
            Error::Aws { message, hint } => Some(Error::Aws {
                message: message.clone(),
                hint: hint.clone(),
            }),
            _ => None,
        }
    }

    /// 1: the input or the remote said no; 2: a bug in hoist; 3: a policy gate said no.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) => 2,
            Error::Gate { .. } => 3,
            _ => 1,
        }
    }

    /// One line telling the user what to do next, where there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::InvalidReference { .. } => {
                "references look like host[:port]/repo[:tag][@sha256:...], alpine:3.20, oci:DIR[:NAME] or docker-archive:FILE".into()
            }
            Error::Unauthorized { registry, .. } => format!(
                "check the credentials for {registry}: `hoist login {registry} -u USER --password-stdin`, DOCKER_AUTH_CONFIG or ~/.docker/config.json"
            ),
            Error::Denied { registry, .. } => format!(
                "the credentials for {registry} were accepted but lack permission for this repository or action"
            ),
            Error::NotFound { .. } => {
                "check the repository and tag; `hoist tags REPO` lists the tags that exist".into()
            }
            Error::ManifestRewritten { .. } => {
                "the registry (or a proxy before it) rewrote the manifest, so the tag does not name the image built; push to it directly, or check the tag with `hoist inspect`".into()
            }
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => {
                "the source served corrupt content; nothing was written at the destination".into()
            }
            Error::Network { .. } => {
                "check that the registry address is right and reachable (HOIST_REGISTRY_ENDPOINTS maps a host to another endpoint)".into()
            }
            Error::Untrusted { .. } => format!(
                "{TRUST_HINT}; a registry without a valid certificate can be named in HOIST_INSECURE_REGISTRIES"
            ),
            Error::RetriesExhausted { .. } => {
                "the registry kept failing; retry later (HOIST_RETRY_MAX_ELAPSED_MS raises the time spent retrying)".into()
            }
            Error::CredentialHelper { helper, .. } => {
                format!("check that docker-credential-{helper} is installed and on PATH")
            }
            Error::Internal(_) => "this is a bug in hoist; please report it with the output of -vv".into(),
            Error::Dockerfile { hint, .. } | Error::Aws { hint, .. } | Error::Gate { hint, .. } => {
                return hint.clone();
            }
            Error::Registry { registry, repository, code, .. }
                if code == "NAME_UNKNOWN" && crate::aws::ecr::parse_host(registry).is_some() =>
            {
                crate::registry::ecr::create_hint(registry, repository)
            }
            Error::Registry { .. }
            | Error::Io { .. }
            | Error::Malformed { .. }
            | Error::Usage(_)
            | Error::PartlyFailed(_) => {
                return None;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untrusted_certificate_is_found_inside_nested_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(inner);
        assert_eq!(
            untrusted_certificate(&outer).as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(untrusted_certificate(&refused), None);
    }

    #[test]
    fn a_described_chain_names_each_error_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("dispatch failure: {0}")]
        struct Repeats(#[source] std::io::Error);
        let chain = Repeats(std::io::Error::other("connection reset"));
        assert_eq!(
            described_chain(&chain),
            "dispatch failure: connection reset"
        );
    }
}
