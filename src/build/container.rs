//! Isolation `container` (kaniko's model), for job containers that may not make namespaces or
//! mounts: the container itself is the sandbox. A stage's file system is put at `/` (all else
//! removed, except mount points and the files hoist needs), the command runs directly, and a
//! stat-diff of `/` before and after (see `snapshot::scan`) finds what it changed. `RUN
//! --mount`s are emulated with copies and symlinks, and never reach a layer.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use super::run::{self, MountSource, Outcome, RunSpec};
use crate::error::{Error, Result};
use crate::reference::Digest;

/// Where the rest of this module works: the real root, always.
const ROOT: &str = "/";

/// Why `container` isolation may not run here, if it may not.
pub fn check() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Usage(
            "--isolation container needs hoist to run as root inside the job container (as kaniko does)".into(),
        ));
    }
    if !inside_container() {
        return Err(Error::Usage(
            "--isolation container replaces the root file system with the image's, so it runs only inside a container (no /.dockerenv, /run/.containerenv or Kubernetes service environment here): use chroot or rootless on this machine".into(),
        ));
    }
    Ok(())
}

/// Docker, podman and Kubernetes each leave a sign in the container.
fn inside_container() -> bool {
    Path::new("/.dockerenv").exists()
        || Path::new("/run/.containerenv").exists()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || std::env::var_os("container").is_some()
}

/// The mount points of this mount namespace, relative to `/` (the root itself left out).
fn mount_points() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter_map(|p| {
            PathBuf::from(p)
                .strip_prefix(ROOT)
                .ok()
                .map(Path::to_path_buf)
        })
        .filter(|p| !p.as_os_str().is_empty())
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The root file system as a build stage's: what it holds now and what must never be touched.
pub struct RootFs {
    /// Relative to `/`: never removed, written or put into a layer.
    protected: Vec<PathBuf>,
    /// The diff IDs `/` holds, bottom first; `None` when unknown (first use, failed command).
    layers: Option<Vec<Digest>>,
}

impl RootFs {
    /// `own`: what hoist needs during the build (its executable, the context, the cache, the
    /// work directory, outputs, credentials); mount points are added.
    pub fn new(own: &[PathBuf]) -> Result<RootFs> {
        check()?;
        let mut protected = mount_points();
        for path in own {
            let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            if let Ok(rel) = path.strip_prefix(ROOT)
                && !rel.as_os_str().is_empty()
            {
                protected.push(rel.to_path_buf());
            }
        }
        protected.sort();
        protected.dedup();
        Ok(RootFs {
            protected,
            layers: None,
        })
    }

    /// The protected paths, absolute.
    pub fn protected_paths(&self) -> Vec<PathBuf> {
        self.protected
            .iter()
            .map(|p| Path::new(ROOT).join(p))
            .collect()
    }

    /// The protected paths, relative to `/` (what a scan leaves out).
    pub fn protected(&self) -> &[PathBuf] {
        &self.protected
    }

    /// How many of `chain` (bottom first) `/` holds already; when it holds anything else,
    /// it is emptied first and the answer is 0. The caller applies the rest, then calls
    /// [`RootFs::holds`].
    pub fn prepare(&mut self, chain: &[Digest]) -> Result<usize> {
        match &self.layers {
            Some(held) if chain.starts_with(held) => Ok(held.len()),
            _ => {
                self.layers = None;
                self.empty_dir(Path::new(""))?;
                Ok(0)
            }
        }
    }

    /// `/` now holds `chain`; `None`: unknown (a command failed half-way).
    pub fn holds(&mut self, chain: Option<Vec<Digest>>) {
        self.layers = chain;
    }

    /// Removes everything under `rel` but protected paths (and the directories holding them).
    fn empty_dir(&self, rel: &Path) -> Result<()> {
        let dir = Path::new(ROOT).join(rel);
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let child = rel.join(entry.file_name());
            if self.protected.iter().any(|p| child.starts_with(p)) {
                continue;
            }
            let path = Path::new(ROOT).join(&child);
            let is_dir = entry.file_type().map_err(|e| Error::io(&path, e))?.is_dir();
            if self.protected.iter().any(|p| p.starts_with(&child)) {
                self.empty_dir(&child)?;
            } else if is_dir {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
            } else {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// What [`stage_mounts`] did, undone in reverse order after the command.
enum Undo {
    Remove(PathBuf),
    /// A directory made for a mount target, removed when empty again.
    RemoveEmptyDir(PathBuf),
    /// What the image had at a mount target, put back.
    PutBack {
        held: PathBuf,
        target: PathBuf,
    },
    /// A directory's mtime before its children changed.
    Mtime(PathBuf, std::time::SystemTime),
}

fn undo(steps: Vec<Undo>) -> Result<()> {
    for step in steps.into_iter().rev() {
        match step {
            Undo::Remove(path) => remove_any(&path)?,
            Undo::RemoveEmptyDir(path) => {
                let _ = std::fs::remove_dir(&path);
            }
            Undo::PutBack { held, target } => {
                std::fs::rename(&held, &target).map_err(|e| Error::io(&target, e))?
            }
            Undo::Mtime(path, mtime) => {
                let times = std::fs::FileTimes::new().set_modified(mtime);
                std::fs::File::open(&path)
                    .and_then(|f| f.set_times(times))
                    .map_err(|e| Error::io(&path, e))?;
            }
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<()> {
    let removed = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    };
    removed.map_err(|e| Error::io(path, e))
}

/// Copies a file or tree with modes, owners and symlinks (not hard links: a mount's view).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(from).map_err(|e| Error::io(from, e))?;
    if meta.is_dir() {
        std::fs::create_dir(to).map_err(|e| Error::io(to, e))?;
        for entry in std::fs::read_dir(from).map_err(|e| Error::io(from, e))? {
            let entry = entry.map_err(|e| Error::io(from, e))?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| Error::io(from, e))?;
        std::os::unix::fs::symlink(target, to).map_err(|e| Error::io(to, e))?;
    } else {
        std::fs::copy(from, to).map_err(|e| Error::io(to, e))?;
    }
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))
        .map_err(|e| Error::io(to, e))?;
    if !meta.file_type().is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| Error::io(to, e))?;
    }
    Ok(())
}

/// Puts each mount's content at its target: a secret or bound file as a copy, a cache
/// directory as a symlink to it (writes land in the cache), a bound tree as a copy, a tmpfs
/// as an empty directory. What the image had there is moved aside and put back after.
fn stage_mounts(spec: &RunSpec, protected: &[PathBuf], steps: &mut Vec<Undo>) -> Result<()> {
    for (n, mount) in spec.mounts.iter().enumerate() {
        let rel = Path::new(mount.target.trim_start_matches('/'));
        if let Some(own) = protected
            .iter()
            .find(|p| p.starts_with(rel) || rel.starts_with(p))
        {
            return Err(Error::Usage(format!(
                "RUN --mount target {} would hide /{}, which the build needs: with --isolation container, mount at another path",
                mount.target,
                own.display()
            )));
        }
        let target = Path::new(ROOT).join(rel);
        let mut missing = Vec::new();
        for ancestor in target.ancestors().skip(1) {
            match std::fs::symlink_metadata(ancestor) {
                Ok(meta) => {
                    let mtime = meta.modified().map_err(|e| Error::io(ancestor, e))?;
                    steps.push(Undo::Mtime(ancestor.to_path_buf(), mtime));
                }
                Err(_) => missing.push(ancestor.to_path_buf()),
            }
        }
        for dir in missing.into_iter().rev() {
            std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            steps.push(Undo::RemoveEmptyDir(dir));
        }
        if std::fs::symlink_metadata(&target).is_ok() {
            let name = target.file_name().unwrap_or_default().to_string_lossy();
            let held = target.with_file_name(format!(".hoist-held-{n}-{name}"));
            std::fs::rename(&target, &held).map_err(|e| Error::io(&target, e))?;
            steps.push(Undo::PutBack {
                held,
                target: target.clone(),
            });
        }
        steps.push(Undo::Remove(target.clone()));
        match &mount.source {
            MountSource::Host { path, .. } if path.is_dir() => {
                std::os::unix::fs::symlink(path, &target).map_err(|e| Error::io(&target, e))?
            }
            MountSource::Host { path, .. } => copy_tree(path, &target)?,
            MountSource::Tmpfs { .. } => {
                std::fs::create_dir(&target).map_err(|e| Error::io(&target, e))?;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o1777))
                    .map_err(|e| Error::io(&target, e))?;
            }
            MountSource::Layers {
                lowers, subpath, ..
            } => {
                let Some(tree) = lowers.first() else {
                    std::fs::create_dir(&target).map_err(|e| Error::io(&target, e))?;
                    continue;
                };
                copy_tree(&tree.join(subpath.trim_start_matches('/')), &target)?;
            }
        }
    }
    Ok(())
}

/// Runs `spec` directly in this container, its mounts emulated for the time it runs
/// (`protected`: relative paths they may not cover).
pub fn run(spec: &RunSpec, protected: &[PathBuf], output: &mut dyn FnMut(&str)) -> Result<Outcome> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| Error::Usage("RUN has an empty command".into()))?;
    let mut steps = Vec::new();
    let staged = stage_mounts(spec, protected, &mut steps);
    let result = staged.and_then(|()| run_staged(spec, program, args, output));
    // Undone whatever happened: mounts never reach the layer.
    undo(steps)?;
    result
}

fn run_staged(
    spec: &RunSpec,
    program: &str,
    args: &[String],
    output: &mut dyn FnMut(&str),
) -> Result<Outcome> {
    let cwd = Path::new(ROOT).join(spec.cwd.trim_start_matches('/'));
    if !cwd.exists() {
        // Made for the user (and kept), as runc does.
        std::fs::create_dir_all(&cwd).map_err(|e| Error::io(&cwd, e))?;
        std::os::unix::fs::lchown(&cwd, Some(spec.uid), Some(spec.gid))
            .map_err(|e| Error::io(&cwd, e))?;
    }
    let mut command = run::command_of(program, args, &spec.env);
    command.current_dir(&cwd);
    let (uid, gid) = (spec.uid, spec.gid);
    let groups: Vec<libc::gid_t> = spec.groups.clone();
    // SAFETY: only system calls on data prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (spawned, tail) = run::stream_output(command, output)?;
    let mut child = spawned.map_err(|e| run::cannot_start(spec, e))?;
    let status = child.wait().map_err(|e| Error::io("<RUN>", e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(Outcome {
        code: status.code(),
        signal: status.signal(),
        tail,
        stubs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
