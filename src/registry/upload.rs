//! Chunked blob uploads: big blobs go up in parts (PATCH), and a dropped connection costs
//! the part, not the blob: the registry's `Range` says where to go on.

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, RANGE};
use reqwest::{StatusCode, Url};

use super::client::Repository;
use crate::error::{Error, Result};

/// An upload session: where to send the next request, and the smallest part the registry
/// takes (`OCI-Chunk-Min-Length`).
#[derive(Clone, Debug)]
pub struct Session {
    pub location: Url,
    pub min_part: Option<u64>,
}

/// When and how uploads are split.
#[derive(Clone, Debug)]
pub struct UploadSettings {
    /// Blobs of at least this many bytes go up in parts (`HOIST_CHUNKED_UPLOAD_FROM`).
    pub chunked_from: u64,
    /// The part size (`HOIST_UPLOAD_PART_BYTES`), raised to what the registry asks.
    pub part: u64,
}

/// ECR refuses parts under 5 MiB (except the last) and over 10 MiB.
const ECR_MIN_PART: u64 = 5 << 20;
const ECR_MAX_PART: u64 = 10 << 20;

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            chunked_from: 64 << 20,
            part: 8 << 20,
        }
    }
}

impl UploadSettings {
    pub fn from_env() -> Self {
        let bytes = |name: &str| std::env::var(name).ok()?.trim().parse::<u64>().ok();
        let default = UploadSettings::default();
        UploadSettings {
            chunked_from: bytes("HOIST_CHUNKED_UPLOAD_FROM").unwrap_or(default.chunked_from),
            part: bytes("HOIST_UPLOAD_PART_BYTES")
                .unwrap_or(default.part)
                .max(1),
        }
    }

    /// The part size for this session on this registry.
    pub fn part_size(&self, registry: &str, session: &Session) -> u64 {
        let mut part = self.part.max(session.min_part.unwrap_or(0));
        if crate::aws::ecr::parse_host(registry).is_some() {
            part = part.clamp(
                ECR_MIN_PART,
                ECR_MAX_PART.max(session.min_part.unwrap_or(0)),
            );
        }
        part
    }
}

/// `Content-Range` of `len` bytes from `start` (inclusive end, no unit: the registry API's form).
pub fn content_range(start: u64, len: u64) -> String {
    format!("{start}-{}", start + len.max(1) - 1)
}

/// Bytes a session holds, from `Range: 0-<end>` (`bytes=` tolerated). distribution writes
/// `0-0` for an empty session: read as nothing received.
fn received(range: Option<&str>) -> u64 {
    range
        .map(|r| r.trim().trim_start_matches("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(_, end)| end.trim().parse::<u64>().ok())
        .map_or(0, |end| if end == 0 { 0 } else { end + 1 })
}

/// Where a session stands: its newest location and the bytes it holds.
pub struct Progress {
    pub session: Session,
    pub received: u64,
}

impl Repository {
    /// Sends one part starting at byte `start`. One attempt: on failure, ask
    /// [`Repository::upload_progress`] where to go on.
    pub async fn patch_part(&self, session: &Session, start: u64, part: Bytes) -> Result<Progress> {
        let len = part.len() as u64;
        let resp = self
            .client
            .send_single(&self.registry, &self.scopes, |http, _base| {
                let url = session.location.clone();
                let request = http
                    .patch(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, HeaderValue::from(len))
                    .header(CONTENT_RANGE, content_range(start, len))
                    .body(part.clone());
                std::future::ready(Ok((request, url)))
            })
            .await?;
        // ECR answers 201 where the spec says 202.
        if !matches!(resp.status(), StatusCode::ACCEPTED | StatusCode::CREATED) {
            return Err(self.error(resp).await);
        }
        self.progress(&resp, session)
    }

    /// Asks the registry how much of the session it holds (`GET` → 204 with `Range`).
    pub async fn upload_progress(&self, session: &Session) -> Result<Progress> {
        let resp = self
            .client
            .send(
                &self.registry,
                &self.scopes,
                &format!("{}/{} upload status", self.registry, self.name),
                |http, _base| {
                    let url = session.location.clone();
                    std::future::ready(Ok((http.get(url.clone()), url)))
                },
            )
            .await?;
        if !matches!(resp.status(), StatusCode::NO_CONTENT | StatusCode::OK) {
            return Err(self.error(resp).await);
        }
        self.progress(&resp, session)
    }

    fn progress(&self, resp: &reqwest::Response, current: &Session) -> Result<Progress> {
        let received = received(resp.headers().get(RANGE).and_then(|v| v.to_str().ok()));
        // A registry that sends no new Location keeps the old one.
        let session = match resp.headers().contains_key(reqwest::header::LOCATION) {
            true => Session {
                min_part: current.min_part,
                ..self.session(resp)?
            },
            false => current.clone(),
        };
        Ok(Progress { session, received })
    }
}

/// A registry claiming more bytes than were sent, or going backwards past a part, is not
/// followed blindly.
pub fn check_progress(what: &str, received: u64, sent_to: u64) -> Result<()> {
    if received > sent_to {
        return Err(Error::malformed(
            what,
            format!("the registry says it holds {received} bytes of {sent_to} sent"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_part_sizes() {
        assert_eq!(content_range(0, 10), "0-9");
        assert_eq!(content_range(10, 5), "10-14");
        assert_eq!(received(Some("0-9")), 10);
        assert_eq!(received(Some("bytes=0-1048575")), 1 << 20);
        assert_eq!(received(Some("0-0")), 0);
        assert_eq!(received(None), 0);
        let settings = UploadSettings {
            chunked_from: 1,
            part: 1 << 20,
        };
        let session = |min| Session {
            location: Url::parse("http://r/v2/x/blobs/uploads/1").unwrap(),
            min_part: min,
        };
        assert_eq!(settings.part_size("r.example", &session(None)), 1 << 20);
        assert_eq!(
            settings.part_size("r.example", &session(Some(4 << 20))),
            4 << 20
        );
        assert_eq!(
            settings.part_size(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com",
                &session(None)
            ),
            5 << 20
        );
    }
}
