//! Hashing content while it streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use sha2::Digest as _;

use crate::error::{Error, Result};
use crate::reference::Digest;
use crate::registry::ByteStream;

/// An incremental hasher for the algorithms digests may use.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: &str) -> Result<Self> {
        match algorithm {
            "sha256" => Ok(Hasher::Sha256(sha2::Sha256::new())),
            "sha512" => Ok(Hasher::Sha512(sha2::Sha512::new())),
            other => Err(Error::Usage(format!(
                "digest algorithm `{other}` is not supported"
            ))),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_sha256(h.finalize().as_slice()),
            Hasher::Sha512(h) => Digest::parse(&format!("sha512:{}", hex::encode(h.finalize())))
                .expect("a sha512 hex digest is valid"),
        }
    }
}

pub fn compute(algorithm: &str, bytes: &[u8]) -> Result<Digest> {
    let mut h = Hasher::new(algorithm)?;
    h.update(bytes);
    Ok(h.finish())
}

/// Wraps a stream so that it yields an error instead of its end when the bytes do not match
/// `digest` and `size`. A consumer that commits only on a clean end never keeps corrupt data.
pub fn verify_stream(inner: ByteStream, digest: Digest, size: u64, what: String) -> ByteStream {
    let hasher = Hasher::new(digest.algorithm()).ok();
    Box::pin(Verifying {
        inner,
        hasher,
        expected: digest,
        size,
        seen: 0,
        what,
        done: false,
    })
}

struct Verifying {
    inner: ByteStream,
    hasher: Option<Hasher>,
    expected: Digest,
    size: u64,
    seen: u64,
    what: String,
    done: bool,
}

impl Verifying {
    fn fail(&mut self, error: Error) -> Poll<Option<std::io::Result<Bytes>>> {
        self.done = true;
        Poll::Ready(Some(Err(std::io::Error::other(error))))
    }
}

impl Stream for Verifying {
    type Item = std::io::Result<Bytes>;

    /// The last chunk is only released once the whole content hashed right, so a consumer
    /// (a registry upload, a file) never receives the complete bytes of corrupt content.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                if self.seen > self.size {
                    let e = Error::SizeMismatch {
                        what: self.what.clone(),
                        expected: self.size,
                        actual: self.seen,
                    };
                    return self.fail(e);
                }
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&chunk);
                }
                if self.seen == self.size
                    && let Some(actual) = self.hasher.take().map(Hasher::finish)
                    && actual != self.expected
                {
                    let e = Error::DigestMismatch {
                        what: self.what.clone(),
                        expected: self.expected.to_string(),
                        actual: actual.to_string(),
                    };
                    return self.fail(e);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) if self.seen != self.size => {
                let e = Error::SizeMismatch {
                    what: self.what.clone(),
                    expected: self.size,
                    actual: self.seen,
                };
                self.fail(e)
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

/// The hoist error an io error carries, when a byte stream failed for a reason of ours (a
/// network failure at the source, corrupt content).
pub fn carried_error(e: &std::io::Error) -> Option<Error> {
    match e.get_ref()?.downcast_ref::<Error>()? {
        Error::Network { url, detail } => Some(Error::Network {
            url: url.clone(),
            detail: detail.clone(),
        }),
        other => other.content_error(),
    }
}

/// The error a byte stream failed with: the one it carries, else a network failure.
pub fn error_from_stream(e: std::io::Error, what: &str) -> Error {
    carried_error(&e).unwrap_or_else(|| Error::Network {
        url: what.to_string(),
        detail: e.to_string(),
    })
}

/// The error reading a tar (or other format) from a stream failed with: the one the stream
/// carries, else the content is malformed.
pub fn error_from_reader(e: std::io::Error, what: &str, reading: &str) -> Error {
    carried_error(&e).unwrap_or_else(|| Error::malformed(what, format!("{reading}: {e}")))
}
