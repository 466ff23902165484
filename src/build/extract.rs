//! Unpacking image layers into a directory: the root file system RUN steps work on.
//!
//! Layers are applied in order with OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`), hardlinks,
//! symlinks, xattrs where allowed; device nodes only when privileged. Nothing may land outside
//! the root: an entry with `..`, an absolute path, a write through a symlinked parent or a
//! hardlink to outside rejects the whole layer with an error naming the layer and the entry.

use std::collections::HashSet;
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::userns::{self, Mapping};
use crate::copy::BlobSource;
use crate::digest::error_from_reader;
use crate::error::{Error, Result};
use crate::fsutil::FileLock;
use crate::oci::{Descriptor, layer_tar_reader};
use crate::reference::Digest;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// How whiteouts are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Onto a root file system: a whiteout deletes what lower layers put there (for the
    /// `container` isolation to come, which unpacks a stage in place; tested today).
    Merge,
    /// Into a layer directory of its own, as overlayfs wants lower layers: a whiteout becomes
    /// a 0/0 character device, an opaque directory gets `trusted.overlay.opaque=y` (`user.`
    /// in a user namespace).
    Overlay,
}

/// What the unpacking process may do beyond writing files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privileges {
    /// Files become the process's own; device nodes are skipped.
    None,
    /// Root of a user namespace over a range of ids: owners are set, device nodes skipped.
    Owners,
    /// Root: owners and device nodes.
    Full,
}

impl Privileges {
    /// What this process has.
    pub fn current() -> Privileges {
        match userns::mapping() {
            // SAFETY: geteuid has no preconditions.
            Mapping::Host if unsafe { libc::geteuid() } == 0 => Privileges::Full,
            Mapping::Range => Privileges::Owners,
            Mapping::Host | Mapping::Single => Privileges::None,
        }
    }
}

/// What one layer did to the root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub entries: u64,
    pub whiteouts: u64,
    /// Device nodes not created (creating them needs privileges).
    pub devices_skipped: u64,
}

/// Applies one layer's tar stream to `root`. `what` names the layer in errors.
pub fn apply_layer(
    root: &Path,
    tar: impl Read,
    what: &str,
    privileges: Privileges,
    style: Style,
    protected: &[PathBuf],
) -> Result<ApplyStats> {
    let mut applier = Applier {
        root,
        what,
        privileges,
        protected,
        style,
        created: HashSet::new(),
        dirs: Vec::new(),
        stats: ApplyStats::default(),
    };
    let mut archive = tar::Archive::new(tar);
    let bad = |e: std::io::Error| error_from_reader(e, what, "unreadable tar");
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        applier.entry(&mut entry)?;
    }
    applier.finish_dirs()?;
    Ok(applier.stats)
}

struct Applier<'a> {
    root: &'a Path,
    what: &'a str,
    privileges: Privileges,
    style: Style,
    /// Paths under the root a layer leaves alone (mount points and hoist's own files when
    /// unpacking onto `/`), with everything below them.
    protected: &'a [PathBuf],
    /// Paths this layer wrote: an opaque whiteout hides only lower layers' entries.
    created: HashSet<PathBuf>,
    /// Directories whose mode, owner and mtime are set last (children change the mtime, and a
    /// read-only mode would stop the children being written).
    dirs: Vec<(PathBuf, u32, u64, u64, i64)>,
    stats: ApplyStats,
}

/// The kind of file at a path, not following a symlink there.
fn lstat(path: &Path) -> Option<std::fs::Metadata> {
    std::fs::symlink_metadata(path).ok()
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match lstat(path) {
        Some(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Some(_) => std::fs::remove_file(path),
        None => Ok(()),
    }
}

impl Applier<'_> {
    fn is_protected(&self, path: &Path) -> bool {
        self.protected.iter().any(|p| path.starts_with(p))
    }

    fn holds_protected(&self, path: &Path) -> bool {
        self.protected.iter().any(|p| p.starts_with(path))
    }

    /// Removes `path` but what is protected in it.
    fn remove(&self, path: &Path) -> Result<()> {
        if self.is_protected(path) {
            return Ok(());
        }
        if self.holds_protected(path) {
            for child in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
                self.remove(&child.map_err(|e| Error::io(path, e))?.path())?;
            }
            return Ok(());
        }
        remove_any(path).map_err(|e| Error::io(path, e))
    }

    fn reject(&self, entry: &str, why: impl std::fmt::Display) -> Error {
        Error::malformed(self.what, format!("entry `{entry}` {why}"))
    }

    /// An entry name as clean relative components; `..` and absolute names are refused.
    fn components(&self, raw: &[u8]) -> Result<Vec<String>> {
        let name = String::from_utf8_lossy(raw).into_owned();
        if name.contains('\0') {
            return Err(self.reject(&name, "has a NUL byte in its name"));
        }
        if name.starts_with('/') {
            return Err(self.reject(&name, "has an absolute path"));
        }
        let parts: Vec<String> = name
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        if parts.iter().any(|c| c == "..") {
            return Err(self.reject(&name, "climbs out of the root with `..`"));
        }
        Ok(parts)
    }

    /// The directory holding `parents` under the root: created when missing, refused when a
    /// component is a symlink (a write through it could land anywhere) or not a directory.
    fn parent_dir(&mut self, name: &str, parents: &[String]) -> Result<PathBuf> {
        let mut dir = self.root.to_path_buf();
        for part in parents {
            dir.push(part);
            match lstat(&dir) {
                Some(m) if m.file_type().is_symlink() => {
                    let target = std::fs::read_link(&dir).unwrap_or_default();
                    return Err(self.reject(
                        name,
                        format!(
                            "writes through the symlink `{part}` (→ {})",
                            target.display()
                        ),
                    ));
                }
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    return Err(self.reject(name, format!("needs `{part}` to be a directory")));
                }
                None => {
                    std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
                    self.created.insert(dir.clone());
                }
            }
        }
        Ok(dir)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let mut parts = self.components(&raw)?;
        let Some(base) = parts.pop() else {
            return Ok(()); // the root itself
        };
        if self.is_protected(&parts.iter().fold(self.root.to_path_buf(), |p, c| p.join(c))) {
            return Ok(());
        }
        let dir = self.parent_dir(&name, &parts)?;
        self.stats.entries += 1;
        if base == OPAQUE && self.style == Style::Overlay {
            self.stats.whiteouts += 1;
            return set_xattr(&dir, userns::overlay_xattr("opaque").as_bytes(), b"y")
                .map_err(|e| Error::io(&dir, e));
        }
        if base == OPAQUE {
            self.stats.whiteouts += 1;
            let children = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            for child in children {
                let child = child.map_err(|e| Error::io(&dir, e))?.path();
                if !self.created.contains(&child) {
                    self.remove(&child)?;
                }
            }
            return Ok(());
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
            if matches!(hidden, "" | "." | "..") || hidden.contains('/') {
                return Err(self.reject(&name, "is a whiteout of nothing or of a parent"));
            }
            self.stats.whiteouts += 1;
            let path = dir.join(hidden);
            self.remove(&path)?;
            if self.style == Style::Overlay {
                mknod(&path, libc::S_IFCHR, 0)?;
            }
            return Ok(());
        }
        let path = dir.join(&base);
        let header = entry.header();
        // A protected path keeps what it is; a directory holding one stays a directory.
        if self.is_protected(&path)
            || (self.holds_protected(&path) && !header.entry_type().is_dir())
        {
            return Ok(());
        }
        let mode = header.mode().map_err(|e| self.reject(&name, e))? & 0o7777;
        let uid = header.uid().map_err(|e| self.reject(&name, e))?;
        let gid = header.gid().map_err(|e| self.reject(&name, e))?;
        let mtime = header.mtime().map_err(|e| self.reject(&name, e))? as i64;
        let kind = header.entry_type();
        let existing = lstat(&path);
        // A directory over a directory merges; anything else replaces what was there.
        if let Some(m) = &existing
            && !(kind.is_dir() && m.is_dir())
        {
            remove_any(&path).map_err(|e| Error::io(&path, e))?;
        }
        match kind {
            tar::EntryType::Directory => {
                if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                    std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
                }
                self.dirs.push((path.clone(), mode, uid, gid, mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                std::io::copy(entry, &mut file)
                    .map_err(|e| error_from_reader(e, self.what, "unreadable tar"))?;
                drop(file);
                self.finish(&path, Some(mode), uid, gid, mtime)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.reject(&name, "is a symlink without a target"))?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &path)
                    .map_err(|e| Error::io(&path, e))?;
                self.finish(&path, None, uid, gid, mtime)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.reject(&name, "is a hardlink without a target"))?;
                let mut target_parts = self.components(&target).map_err(|_| {
                    self.reject(
                        &name,
                        format!(
                            "links to `{}` outside the root",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
                let target_base = target_parts
                    .pop()
                    .ok_or_else(|| self.reject(&name, "links to the root"))?;
                let target_dir = self.parent_dir(&name, &target_parts)?;
                let source = target_dir.join(target_base);
                match lstat(&source) {
                    Some(m) if m.is_dir() => {
                        return Err(self.reject(&name, "is a hardlink to a directory"));
                    }
                    Some(_) => {}
                    None => {
                        return Err(self.reject(
                            &name,
                            format!(
                                "links to `{}`, which the image does not have",
                                String::from_utf8_lossy(&target)
                            ),
                        ));
                    }
                }
                std::fs::hard_link(&source, &path).map_err(|e| Error::io(&path, e))?;
            }
            tar::EntryType::Fifo => {
                mknod(&path, libc::S_IFIFO | mode, 0)?;
                self.finish(&path, Some(mode), uid, gid, mtime)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                if self.privileges != Privileges::Full {
                    self.stats.devices_skipped += 1;
                    return Ok(());
                }
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let file_type = if kind == tar::EntryType::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                match mknod(&path, file_type | mode, libc::makedev(major, minor)) {
                    // A container's root without CAP_MKNOD (or a device cgroup saying no).
                    Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
                        self.stats.devices_skipped += 1;
                        return Ok(());
                    }
                    made => made?,
                }
                self.finish(&path, Some(mode), uid, gid, mtime)?;
            }
            // PAX and GNU long-name headers are folded into entries by the tar crate.
            _ => return Ok(()),
        }
        self.created.insert(path.clone());
        if let Ok(Some(extensions)) = entry.pax_extensions() {
            for ext in extensions.flatten() {
                if let Some(attr) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    // Where the file system or our privileges do not allow it, leave it out.
                    let _ = set_xattr(&path, attr, ext.value_bytes());
                }
            }
        }
        Ok(())
    }

    /// Mode (not for symlinks), owner (when allowed) and mtime of a non-directory.
    fn finish(&self, path: &Path, mode: Option<u32>, uid: u64, gid: u64, mtime: i64) -> Result<()> {
        if self.privileges != Privileges::None {
            lchown(path, uid, gid)?;
        }
        if let Some(mode) = mode {
            // After chown, which clears setuid bits.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(path, e))?;
        }
        set_mtime(path, mtime)
    }

    fn finish_dirs(&mut self) -> Result<()> {
        // Deepest first, so setting a parent's mtime is the last change to it.
        self.dirs
            .sort_by_key(|(path, ..)| std::cmp::Reverse(path.components().count()));
        for (path, mode, uid, gid, mtime) in std::mem::take(&mut self.dirs) {
            if self.privileges != Privileges::None {
                lchown(&path, uid, gid)?;
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(&path, e))?;
            set_mtime(&path, mtime)?;
        }
        Ok(())
    }
}

/// A layer unpacked as an overlayfs lower directory, `local/layers/<diff id>` in the cache
/// dir: unpacked once and shared by every build and image with that layer (a layer's tar does
/// not depend on the layers under it). The first build unpacks into a temporary directory
/// under a lock and renames it into place, so a directory under its final name is complete.
pub async fn layer_dir(
    local: &Path,
    source: &dyn BlobSource,
    layer: &Descriptor,
    diff_id: &Digest,
) -> Result<PathBuf> {
    let dir = local.join("layers");
    let done = dir.join(diff_id.hex());
    if done.is_dir() {
        crate::fsutil::touch(&done);
        return Ok(done);
    }
    let lock_path = dir.join(format!("{}.lock", diff_id.hex()));
    let _lock = tokio::task::spawn_blocking(move || FileLock::acquire(&lock_path))
        .await
        .map_err(|e| Error::Internal(format!("waiting for the layer lock panicked: {e}")))??;
    if done.is_dir() {
        // Another build unpacked it while we waited.
        return Ok(done);
    }
    let work = dir.join(format!(".unpacking-{}", diff_id.hex()));
    if lstat(&work).is_some() {
        // Left by an interrupted build (we hold the lock, so nobody else is writing it).
        std::fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    unpack(&work, source, layer, diff_id, Style::Overlay, Vec::new())
        .await
        .inspect_err(|_| {
            // Nothing half-unpacked stays behind.
            let _ = std::fs::remove_dir_all(&work);
        })?;
    // A listing saved for an earlier directory of this name would not describe this one.
    let _ = std::fs::remove_file(done.with_extension("entries"));
    std::fs::rename(&work, &done).map_err(|e| Error::io(&done, e))?;
    Ok(done)
}

/// Streams `layer` onto `root` (`protected` paths under it left alone), checking that its
/// bytes hash to `diff_id`.
pub async fn unpack(
    root: &Path,
    source: &dyn BlobSource,
    layer: &Descriptor,
    diff_id: &Digest,
    style: Style,
    protected: Vec<PathBuf>,
) -> Result<()> {
    let what = format!("layer {}", layer.digest);
    let stream = source.open(layer).await?;
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let media_type = layer.media_type.clone();
    let root = root.to_path_buf();
    let expected = diff_id.clone();
    tokio::task::spawn_blocking(move || {
        // A layer directory is shared under the diff ID the image claims: the bytes must hash
        // to it, or one image could plant files for every other that names the same diff ID.
        let mut tar = HashingReader {
            inner: layer_tar_reader(&media_type, reader, &what)?,
            hasher: crate::digest::Hasher::new("sha256")?,
        };
        apply_layer(
            &root,
            &mut tar,
            &what,
            Privileges::current(),
            style,
            &protected,
        )?;
        std::io::copy(&mut tar, &mut std::io::sink())
            .map_err(|e| error_from_reader(e, &what, "unreadable tar"))?;
        let actual = tar.hasher.finish();
        if actual != expected {
            return Err(Error::DigestMismatch {
                what: format!("{what} (uncompressed, the config's diff ID)"),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Internal(format!("unpacking a layer panicked: {e}")))?
}

/// Hashes what is read through it.
struct HashingReader<R> {
    inner: R,
    hasher: crate::digest::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::malformed(path.display().to_string(), "NUL in path"))
}

fn mknod(path: &Path, mode: u32, dev: libc::dev_t) -> Result<()> {
    let c = c_path(path)?;
    // SAFETY: a valid NUL-terminated path; mknod does not keep the pointer.
    if unsafe { libc::mknod(c.as_ptr(), mode, dev) } != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

fn lchown(path: &Path, uid: u64, gid: u64) -> Result<()> {
    let c = c_path(path)?;
    // SAFETY: a valid NUL-terminated path; lchown does not keep the pointer.
    if unsafe { libc::lchown(c.as_ptr(), uid as libc::uid_t, gid as libc::gid_t) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EINVAL) && userns::mapping() != Mapping::Host {
            return Err(Error::Usage(format!(
                "{}: owner {uid}:{gid} is outside the ids rootless isolation maps (give the user a larger range in /etc/subuid and /etc/subgid)",
                path.display()
            )));
        }
        return Err(Error::io(path, error));
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: i64) -> Result<()> {
    let c = c_path(path)?;
    let time = libc::timespec {
        // `as _`: time_t is deprecated by name on musl (it becomes 64-bit there).
        tv_sec: mtime as _,
        tv_nsec: 0,
    };
    let times = [time, time];
    // SAFETY: valid path and a two-element timespec array; AT_SYMLINK_NOFOLLOW sets a
    // symlink's own time.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    let n = CString::new(name)?;
    // SAFETY: valid NUL-terminated strings and a buffer of `value.len()` bytes.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    enum E<'a> {
        Dir(&'a str, u32),
        File(&'a str, &'a str, u32),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Fifo(&'a str),
        Char(&'a str),
    }

    fn tar_of(entries: &[E]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mtime(1_000_000);
            h.set_uid(0);
            h.set_gid(0);
            let (path, data): (&str, &[u8]) = match e {
                E::Dir(p, mode) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    (p, b"")
                }
                E::File(p, content, mode) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    (p, content.as_bytes())
                }
                E::Symlink(p, target) | E::Hardlink(p, target) => {
                    h.set_entry_type(if matches!(e, E::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    });
                    h.set_mode(0o777);
                    // Raw bytes: the tar crate's setters refuse `..` and absolute names.
                    let name = &mut h.as_old_mut().linkname;
                    name[..target.len()].copy_from_slice(target.as_bytes());
                    (p, b"")
                }
                E::Fifo(p) => {
                    h.set_entry_type(tar::EntryType::Fifo);
                    h.set_mode(0o644);
                    (p, b"")
                }
                E::Char(p) => {
                    h.set_entry_type(tar::EntryType::Char);
                    h.set_mode(0o666);
                    (p, b"")
                }
            };
            h.set_size(data.len() as u64);
            let name = &mut h.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            builder.append(&h, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn apply(root: &Path, entries: &[E]) -> Result<ApplyStats> {
        apply_layer(
            root,
            &tar_of(entries)[..],
            "layer sha256:test",
            Privileges::None,
            Style::Merge,
            &[],
        )
    }

    fn read(root: &Path, p: &str) -> String {
        std::fs::read_to_string(root.join(p)).unwrap()
    }

    #[test]
    fn layers_stack_with_whiteouts_and_opaque_directories() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        apply(
            r,
            &[
                E::Dir("etc/", 0o755),
                E::File("etc/a", "a", 0o644),
                E::File("etc/b", "b", 0o600),
                E::Dir("var/", 0o755),
                E::Dir("var/cache/", 0o755),
                E::File("var/cache/old", "old", 0o644),
                E::Symlink("bin", "usr/bin"),
            ],
        )
        .unwrap();
        let stats = apply(
            r,
            &[
                E::File("etc/.wh.a", "", 0o644),
                E::File("etc/b", "b2", 0o644),
                E::Dir("var/cache/", 0o700),
                E::File("var/cache/.wh..wh..opq", "", 0o644),
                E::File("var/cache/new", "new", 0o644),
                E::Hardlink("etc/b-link", "etc/b"),
                E::Fifo("run.fifo"),
                E::Char("dev-null"),
            ],
        )
        .unwrap();
        assert!(!r.join("etc/a").exists());
        assert_eq!(read(r, "etc/b"), "b2");
        assert_eq!(
            std::fs::metadata(r.join("etc/b")).unwrap().mode() & 0o777,
            0o644
        );
        assert!(!r.join("var/cache/old").exists());
        assert_eq!(read(r, "var/cache/new"), "new");
        let cache = std::fs::metadata(r.join("var/cache")).unwrap();
        assert_eq!(cache.mode() & 0o777, 0o700);
        assert_eq!(cache.mtime(), 1_000_000);
        assert_eq!(
            std::fs::read_link(r.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        let link = std::fs::metadata(r.join("etc/b-link")).unwrap();
        assert_eq!(
            link.ino(),
            std::fs::metadata(r.join("etc/b")).unwrap().ino()
        );
        assert!(
            std::fs::symlink_metadata(r.join("run.fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        assert_eq!(stats.whiteouts, 2);
        assert_eq!(stats.devices_skipped, 1);
        assert!(!r.join("dev-null").exists());
    }

    #[tokio::test]
    async fn layers_are_unpacked_once_for_overlay_with_whiteouts_as_devices() {
        // Whiteout devices and trusted.* xattrs need root; hoist's tests run as root.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root");
        let dir = tempfile::tempdir().unwrap();
        let layout = crate::sink::Layout::create(&dir.path().join("layout")).unwrap();
        let tar = tar_of(&[
            E::Dir("etc/", 0o755),
            E::File("etc/.wh.gone", "", 0o644),
            E::Dir("var/", 0o755),
            E::File("var/.wh..wh..opq", "", 0o644),
            E::File("var/new", "n", 0o644),
        ]);
        let diff_id = Digest::sha256_of(&tar);
        let desc = Descriptor::new(
            crate::oci::media::OCI_LAYER_TAR,
            diff_id.clone(),
            tar.len() as u64,
        );
        layout.write_blob_bytes(&desc, tar.into()).await.unwrap();
        let source = crate::source::Source::Layout { layout, name: None };
        let local = dir.path().join("local");
        // A diff ID the bytes do not hash to is refused, and nothing is kept under it.
        let claimed = Digest::sha256_of(b"another layer");
        let refused = layer_dir(&local, &source, &desc, &claimed)
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("diff ID"), "{refused}");
        assert!(!local.join("layers").join(claimed.hex()).exists());
        let (first, second) = tokio::join!(
            layer_dir(&local, &source, &desc, &diff_id),
            layer_dir(&local, &source, &desc, &diff_id)
        );
        let root = first.unwrap();
        assert_eq!(root, second.unwrap());
        assert_eq!(root, local.join("layers").join(diff_id.hex()));
        let gone = std::fs::symlink_metadata(root.join("etc/gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        let mut value = [0u8; 4];
        let c = CString::new(root.join("var").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings and a 4-byte buffer.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                value.as_mut_ptr().cast(),
                4,
            )
        };
        assert_eq!(&value[..n as usize], b"y");
        assert_eq!(read(&root, "var/new"), "n");
        let names: Vec<_> = std::fs::read_dir(local.join("layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert_eq!(names, [diff_id.hex()], "no leftovers");
    }

    #[test]
    fn a_file_replaces_a_directory_and_back() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        apply(r, &[E::Dir("x/", 0o755), E::File("x/inner", "i", 0o644)]).unwrap();
        apply(r, &[E::File("x", "now a file", 0o644)]).unwrap();
        assert_eq!(read(r, "x"), "now a file");
        apply(r, &[E::Dir("x/", 0o755)]).unwrap();
        assert!(r.join("x").is_dir());
    }

    #[test]
    fn hostile_entries_are_rejected_naming_layer_and_entry_and_nothing_escapes() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("root");
        let victim = outer.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        let cases: Vec<(Vec<E>, &str)> = vec![
            (
                vec![E::File("../victim", "pwned", 0o644)],
                "climbs out of the root",
            ),
            (
                vec![E::File("a/../../victim", "pwned", 0o644)],
                "climbs out",
            ),
            (
                vec![E::File("/tmp/hoist-extract-absolute", "x", 0o644)],
                "absolute path",
            ),
            (
                vec![
                    E::Symlink("evil", outer.path().to_str().unwrap()),
                    E::File("evil/victim", "pwned", 0o644),
                ],
                "writes through the symlink `evil`",
            ),
            (
                vec![E::Symlink("up", ".."), E::File("up/victim", "pwned", 0o644)],
                "writes through the symlink `up`",
            ),
            (
                vec![E::Hardlink("stolen", victim.to_str().unwrap())],
                "outside the root",
            ),
            (vec![E::Hardlink("stolen", "../victim")], "outside the root"),
            (
                vec![E::Hardlink("dangling", "nothing/here")],
                "does not have",
            ),
            (vec![E::File(".wh...", "", 0o644)], "whiteout of nothing"),
            (vec![E::File(".wh..", "", 0o644)], "whiteout of nothing"),
            (vec![E::File("etc/.wh.", "", 0o644)], "whiteout of nothing"),
            (
                vec![E::File("f", "x", 0o644), E::File("f/child", "x", 0o644)],
                "needs `f` to be a directory",
            ),
        ];
        for (entries, why) in cases {
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir(&root).unwrap();
            let err = apply(&root, &entries).unwrap_err().to_string();
            assert!(
                err.starts_with("layer sha256:test: entry `") && err.contains(why),
                "{err}"
            );
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
            assert_eq!(std::fs::read_dir(outer.path()).unwrap().count(), 2, "{err}");
        }
        assert!(!Path::new("/tmp/hoist-extract-absolute").exists());
    }
}
