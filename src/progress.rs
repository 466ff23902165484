//! The one way the library tells the outside world what it is doing. The binary decides how to
//! show it (bars, plain lines, nothing); the library never prints.

use std::time::Duration;

use crate::reference::Digest;

/// What happened to one blob on its way to a destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// The destination already had it.
    Exists,
    /// Mounted from another repository of the same registry: no bytes moved.
    Mounted,
    /// Bytes were sent.
    Transferred,
}

#[derive(Clone, Debug)]
pub enum Event {
    BlobStarted {
        digest: Digest,
        size: u64,
    },
    BlobProgress {
        digest: Digest,
        bytes: u64,
    },
    BlobDone {
        digest: Digest,
        size: u64,
        outcome: BlobOutcome,
        elapsed: Duration,
    },
    /// A manifest or index was written at `target`.
    ManifestWritten {
        target: String,
        digest: Digest,
    },
    /// A request is retried after a transient failure.
    Retrying {
        what: String,
        attempt: u32,
        delay: Duration,
        reason: String,
    },
    Warning(String),
    Info(String),
    /// A stage of a command begins (GitLab shows it as a collapsible section).
    SectionStart {
        id: String,
        title: String,
    },
    SectionEnd {
        id: String,
    },
}

pub trait Reporter: Send + Sync {
    fn report(&self, event: Event);
}

/// Drops every event (library callers and tests that do not care).
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _event: Event) {}
}

/// Wraps a blob stream so that its progress is reported as it flows.
pub fn observe(
    stream: crate::registry::ByteStream,
    digest: &Digest,
    reporter: &std::sync::Arc<dyn Reporter>,
) -> crate::registry::ByteStream {
    use futures_util::StreamExt;
    let digest = digest.clone();
    let reporter = reporter.clone();
    let mut seen = 0u64;
    Box::pin(stream.inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            seen += chunk.len() as u64;
            reporter.report(Event::BlobProgress {
                digest: digest.clone(),
                bytes: seen,
            });
        }
    }))
}
