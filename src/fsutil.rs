//! Small filesystem helpers: atomic writes and advisory locks.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader sees the old content or the new, never a torn file; synced to disk first.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_replacing(path, bytes, mode, true)
}

/// Like [`write_atomic`] without waiting for the disk: for cache entries, which are checked
/// when read and only cost a rebuild when lost.
pub fn write_cache_entry(path: &Path, bytes: &[u8]) -> Result<()> {
    write_replacing(path, bytes, 0o644, false)
}

fn write_replacing(path: &Path, bytes: &[u8], mode: u32, durable: bool) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".hoist-tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(tmp.path(), e))?;
    if durable {
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// An advisory lock held until dropped (flock on a lock file): exclusive, or shared with
/// other shared holders.
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits for the lock.
    pub fn acquire(path: &Path) -> Result<Self> {
        Ok(Self::lock(path, true, false)?.expect("a blocking flock returns locked"))
    }

    /// The lock if nobody holds it now.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>> {
        Self::lock(path, false, false)
    }

    /// Waits for a shared lock: held by any number at once, never with an exclusive one.
    pub fn shared(path: &Path) -> Result<Self> {
        Ok(Self::lock(path, true, true)?.expect("a blocking flock returns locked"))
    }

    /// A shared lock if no exclusive holder has it now.
    pub fn try_shared(path: &Path) -> Result<Option<Self>> {
        Self::lock(path, false, true)
    }

    fn lock(path: &Path, wait: bool, shared: bool) -> Result<Option<Self>> {
        use std::os::fd::AsRawFd;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let kind = if shared { libc::LOCK_SH } else { libc::LOCK_EX };
        let operation = if wait { kind } else { kind | libc::LOCK_NB };
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            if !wait && error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(Error::io(path, error));
        }
        Ok(Some(FileLock { _file: file }))
    }
}

/// Marks a cache entry (file or directory) as used now: its mtime is what `hoist cache
/// prune` orders by. A best effort: a read-only cache is still a cache.
pub fn touch(path: &Path) {
    if let Ok(file) = File::open(path) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// A file's `security.capability` xattr (file capabilities, as `setcap` writes them), if it
/// has one. Symlinks are not followed.
pub fn file_capability(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut value = vec![0u8; 64];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    (n > 0).then(|| {
        value.truncate(n as usize);
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclude_the_exclusive_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = FileLock::shared(&path).unwrap();
        let second = FileLock::try_shared(&path).unwrap();
        assert!(second.is_some(), "two shared holders");
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        drop((first, second));
        let exclusive = FileLock::try_acquire(&path).unwrap().expect("free again");
        assert!(FileLock::try_shared(&path).unwrap().is_none());
        drop(exclusive);
        assert!(FileLock::try_shared(&path).unwrap().is_some());
    }
}
