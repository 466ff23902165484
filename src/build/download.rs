//! `ADD https://...`: the file is downloaded into the cache's blob store (content-addressed),
//! with its ETag and Last-Modified remembered per URL, so a rebuild asks with
//! `If-None-Match` and a `--checksum` that is already cached needs no request at all
//! (BuildKit's source/http does the same). The file's mtime is its Last-Modified.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::fsutil::write_cache_entry;
use crate::reference::Digest;

/// A downloaded file: where its bytes are and the mtime it gets in the image.
pub struct Downloaded {
    pub path: PathBuf,
    pub size: u64,
    pub mtime: i64,
}

#[derive(Serialize, Deserialize)]
struct UrlRecord {
    digest: Digest,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// The file name BuildKit gives a URL's download: the last path segment, or `__unnamed__`.
pub fn file_name(url: &reqwest::Url) -> String {
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .map_or("__unnamed__".to_string(), str::to_string)
}

/// Downloads `url` into `store` (a `blobs/sha256` directory), verifying `checksum` if given.
pub async fn fetch(
    url: &str,
    checksum: Option<&Digest>,
    store: &Path,
    records: &Path,
) -> Result<Downloaded> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| Error::Usage(format!("ADD {url}: not a URL: {e}")))?;
    let shown = crate::registry::client::redact_url(&parsed);
    if std::env::var("HOIST_TEST_LOOPBACK_ONLY").is_ok_and(|v| v == "1")
        && !parsed.host_str().is_some_and(|h| {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
    {
        return Err(Error::Usage(format!(
            "{shown}: HOIST_TEST_LOOPBACK_ONLY=1 refuses connections off loopback"
        )));
    }
    let record_path = records.join(format!("{}.json", Digest::sha256_of(url.as_bytes()).hex()));
    let record: Option<UrlRecord> = std::fs::read(&record_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let cached = |r: &UrlRecord| {
        let path = store.join(r.digest.hex());
        std::fs::metadata(&path).ok().map(|m| Downloaded {
            path,
            size: m.len(),
            mtime: r.last_modified.as_deref().and_then(http_date).unwrap_or(0),
        })
    };
    // A pinned checksum already downloaded: nothing to ask.
    if let (Some(sum), Some(r)) = (checksum, &record)
        && &r.digest == sum
        && let Some(hit) = cached(r)
    {
        return Ok(hit);
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
    let mut request = client.get(parsed.clone());
    if let Some(etag) = record.as_ref().and_then(|r| r.etag.clone()) {
        request = request.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    let network = |e: reqwest::Error| Error::Network {
        url: shown.clone(),
        detail: e.without_url().to_string(),
    };
    let response = request.send().await.map_err(network)?;
    if response.status() == reqwest::StatusCode::NOT_MODIFIED
        && let Some(r) = &record
        && let Some(hit) = cached(r)
    {
        return Ok(hit);
    }
    if !response.status().is_success() {
        return Err(Error::Usage(format!(
            "ADD {shown}: HTTP {}",
            response.status()
        )));
    }
    let header = |name: reqwest::header::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header(reqwest::header::ETAG);
    let last_modified = header(reqwest::header::LAST_MODIFIED);
    tokio::fs::create_dir_all(store)
        .await
        .map_err(|e| Error::io(store, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".hoist-download-")
        .tempfile_in(store)
        .map_err(|e| Error::io(store, e))?;
    let (file, tmp_path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Hasher::new("sha256")?;
    let mut size = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(network)?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::io(&*tmp_path, e))?;
    }
    file.flush().await.map_err(|e| Error::io(&*tmp_path, e))?;
    let digest = hasher.finish();
    if let Some(sum) = checksum
        && *sum != digest
    {
        return Err(Error::DigestMismatch {
            what: format!("ADD --checksum of {shown}"),
            expected: sum.to_string(),
            actual: digest.to_string(),
        });
    }
    let path = store.join(digest.hex());
    tmp_path
        .persist(&path)
        .map_err(|e| Error::io(&path, e.error))?;
    let mtime = last_modified.as_deref().and_then(http_date).unwrap_or(0);
    let record = UrlRecord {
        digest,
        etag,
        last_modified,
    };
    // A record that cannot be written only costs a download next time.
    let _ = write_cache_entry(
        &record_path,
        &serde_json::to_vec(&record).expect("record serialises"),
    );
    Ok(Downloaded { path, size, mtime })
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) as Unix seconds.
fn http_date(s: &str) -> Option<i64> {
    crate::registry::retry::parse_http_date(s)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
}
