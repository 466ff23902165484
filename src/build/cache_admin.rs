//! `hoist cache verify` and `hoist cache prune`: the local cache checked entry by entry (bad
//! entries removed, so a build never uses them), and trimmed least recently used first.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::cache::CachedLayer;
use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::reference::Digest;

/// Temporary files younger than this may belong to a build running now: left alone.
const IN_PROGRESS: Duration = Duration::from_secs(3600);

/// Builds hold this lock shared for as long as they use the cache; verify and prune hold it
/// exclusively, so they never remove what a running build has just looked up.
const LOCK_FILE: &str = "cache.lock";

/// The cache for a build: waits (calling `waiting` first) while verify or prune runs. None
/// when the lock cannot be taken at all (a read-only cache, which nothing prunes).
pub fn lock_for_build(root: &Path, waiting: impl FnOnce()) -> Option<FileLock> {
    let path = root.join(LOCK_FILE);
    match FileLock::try_shared(&path) {
        Ok(Some(lock)) => Some(lock),
        Ok(None) => {
            waiting();
            FileLock::shared(&path).ok()
        }
        Err(_) => None,
    }
}

/// The cache to itself, for verify and prune: waits (calling `waiting` first) for the
/// builds using it to end.
pub fn lock_exclusive(root: &Path, waiting: impl FnOnce()) -> Result<FileLock> {
    let path = root.join(LOCK_FILE);
    match FileLock::try_acquire(&path)? {
        Some(lock) => Ok(lock),
        None => {
            waiting();
            FileLock::acquire(&path)
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub blobs: u64,
    /// Step → layer records read.
    pub layer_records: u64,
    /// Base path indexes read.
    pub indexes: u64,
    /// Unpacked layer directories found.
    pub unpacked: u64,
    /// What did not match its name or did not parse: removed.
    pub corrupt: Vec<String>,
    /// Layer records whose blob is gone (pruned): removed.
    pub stale: u64,
    /// Temporary files and half-unpacked directories of interrupted runs: removed.
    pub leftovers: u64,
}

/// Checks every entry under `root`, removing what is corrupt, stale or left over.
pub fn verify(root: &Path) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let blobs = root.join("blobs").join("sha256");
    for path in entries(&blobs)? {
        if leftover(&path, &mut report)? {
            continue;
        }
        report.blobs += 1;
        let name = file_name(&path);
        let expected = Digest::parse(&format!("sha256:{name}")).ok();
        if expected.as_ref() != Some(&hash_file(&path)?) {
            report.corrupt.push(format!("blob {name}"));
            remove(&path)?;
        }
    }
    check_records(root, &mut report)?;
    for path in entries(&root.join("index"))? {
        if leftover(&path, &mut report)? {
            continue;
        }
        report.indexes += 1;
        let parses = std::fs::read(&path)
            .ok()
            .is_some_and(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
        if !parses {
            report.corrupt.push(format!("index {}", file_name(&path)));
            remove(&path)?;
        }
    }
    let unpacked = root.join("local").join("layers");
    for path in entries(&unpacked)? {
        let name = file_name(&path);
        if let Some(hex) = name.strip_prefix(".unpacking-") {
            // Half unpacked by a killed build, unless a build holds its lock now.
            if let Some(_lock) = FileLock::try_acquire(&unpacked.join(format!("{hex}.lock")))? {
                report.leftovers += 1;
                remove(&path)?;
            }
        } else if path.is_dir() {
            report.unpacked += 1;
        } else {
            leftover(&path, &mut report)?;
        }
    }
    Ok(report)
}

#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    pub removed: u64,
    pub freed_bytes: u64,
    pub kept: u64,
    pub kept_bytes: u64,
}

/// One prunable entry: a blob, an unpacked layer, a base index or a RUN cache mount.
struct Entry {
    path: PathBuf,
    bytes: u64,
    last_used: SystemTime,
}

/// Removes entries unused for longer than `max_age`, then the least recently used until the
/// rest fits in `max_size` bytes; then the layer records whose blob went (as verify does).
pub fn prune(
    root: &Path,
    max_size: Option<u64>,
    max_age: Option<Duration>,
    now: SystemTime,
) -> Result<PruneReport> {
    let mut candidates = Vec::new();
    let local = root.join("local");
    for dir in [
        root.join("blobs").join("sha256"),
        root.join("index"),
        local.join("layers"),
        local.join("cache-mounts"),
        local.join("stat"),
    ] {
        for path in entries(&dir)? {
            let metadata = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let name = file_name(&path);
            if name.starts_with('.') || name.ends_with(".lock") || name.ends_with(".entries") {
                continue;
            }
            candidates.push(Entry {
                bytes: if metadata.is_dir() {
                    tree_bytes(&path)
                } else {
                    metadata.len()
                },
                last_used: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path,
            });
        }
    }
    // Oldest first.
    candidates.sort_by_key(|e| e.last_used);
    let mut total: u64 = candidates.iter().map(|e| e.bytes).sum();
    let mut report = PruneReport::default();
    for entry in candidates {
        let too_old = max_age.is_some_and(|age| {
            now.duration_since(entry.last_used)
                .is_ok_and(|idle| idle > age)
        });
        let too_big = max_size.is_some_and(|size| total > size);
        if too_old || too_big {
            remove(&entry.path)?;
            // An unpacked layer's listing describes it: it goes too.
            let _ = std::fs::remove_file(entry.path.with_extension("entries"));
            total -= entry.bytes;
            report.removed += 1;
            report.freed_bytes += entry.bytes;
        } else {
            report.kept += 1;
            report.kept_bytes += entry.bytes;
        }
    }
    // Records whose blob just went are stale now.
    check_records(root, &mut VerifyReport::default())?;
    Ok(report)
}

/// Layer records: one that does not parse is corrupt, one whose blob is gone or of another
/// size is stale; both are removed (no hashing: cheap enough for prune too).
fn check_records(root: &Path, report: &mut VerifyReport) -> Result<()> {
    for path in entries(&root.join("layers"))? {
        if leftover(&path, report)? {
            continue;
        }
        report.layer_records += 1;
        match CachedLayer::read(&path) {
            None => {
                report
                    .corrupt
                    .push(format!("layer record {}", file_name(&path)));
                remove(&path)?;
            }
            Some(record) if record.blob(root).is_none() => {
                report.stale += 1;
                remove(&path)?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `10G`, `512M`, `1.5GB`, `800k`, plain bytes (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_uppercase();
    let t = t.strip_suffix("IB").or(t.strip_suffix('B')).unwrap_or(&t);
    let (number, unit) = match t.chars().last() {
        Some(c @ ('K' | 'M' | 'G' | 'T')) => (&t[..t.len() - 1], c),
        _ => (t, ' '),
    };
    let scale = match unit {
        'K' => 1u64 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        'T' => 1 << 40,
        _ => 1,
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| (n * scale as f64) as u64)
        .ok_or_else(|| {
            Error::Usage(format!(
                "size `{text}`: give bytes or a number with K, M, G or T"
            ))
        })
}

/// `7d`, `12h`, `30m`, `45s`.
pub fn parse_age(text: &str) -> Result<Duration> {
    let t = text.trim();
    let bad = || {
        Error::Usage(format!(
            "age `{text}`: give a number with d, h, m or s (7d)"
        ))
    };
    let unit = t.chars().last().ok_or_else(bad)?;
    let seconds = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(bad()),
    };
    let n: u64 = t[..t.len() - 1].parse().map_err(|_| bad())?;
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(read) => read
            .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A temporary file (`.hoist-tmp-*`, `.tmp*`): removed when old enough that no running build
/// can still be writing it; counted as handled either way.
fn leftover(path: &Path, report: &mut VerifyReport) -> Result<bool> {
    if !file_name(path).starts_with('.') {
        return Ok(false);
    }
    let age = std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default();
    if age > IN_PROGRESS {
        report.leftovers += 1;
        remove(path)?;
    }
    Ok(true)
}

fn remove(path: &Path) -> Result<()> {
    let result = if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn hash_file(path: &Path) -> Result<Digest> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Hasher::new("sha256")?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buffer[..n]);
    }
}

/// Disk bytes of everything under `dir` (symlinks not followed).
fn tree_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(read) = std::fs::read_dir(dir) else {
        return 0;
    };
    read.filter_map(|e| e.ok())
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => tree_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_parse_with_units() {
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("1.5GB").unwrap(), 3 << 29);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("800k").unwrap(), 800 << 10);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1G").is_err());
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_age("30m").unwrap(), Duration::from_secs(1_800));
        assert!(parse_age("7 days").is_err());
        assert!(parse_age("").is_err());
    }
}
