//! The build context: a directory seen through `.dockerignore` (moby's pattern matcher, as
//! fsutil applies it while walking), with hoist's own cache and outputs always left out.
//! It becomes an [`FsView`] whose files are read from disk only when a layer is written.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fsview::{Content, FsView, Kind, LocalFile, Node, Special};
use super::ignore::{PatternMatcher, parse_ignore_file};
use super::statcache::FileStamp;
use crate::error::{Error, Result};

pub struct Context {
    root: PathBuf,
    matcher: Option<PatternMatcher>,
    /// Which ignore file the patterns came from, for messages.
    ignore_file: Option<PathBuf>,
    /// Absolute paths never part of the context (cache dir, outputs).
    skipped: Vec<PathBuf>,
}

impl Context {
    /// Opens `root`; the ignore file is `<Dockerfile>.dockerignore` beside the Dockerfile,
    /// else `.dockerignore`, else `.containerignore` at the root.
    pub fn open(root: &Path, dockerfile: Option<&Path>, skipped: &[PathBuf]) -> Result<Self> {
        let meta = std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
        if !meta.is_dir() {
            return Err(Error::Usage(format!(
                "build context {} is not a directory",
                root.display()
            )));
        }
        let mut candidates = Vec::new();
        if let Some(df) = dockerfile
            && let Some(name) = df.file_name()
        {
            let mut specific = name.to_os_string();
            specific.push(".dockerignore");
            candidates.push(df.with_file_name(specific));
        }
        candidates.push(root.join(".dockerignore"));
        candidates.push(root.join(".containerignore"));
        let mut matcher = None;
        let mut ignore_file = None;
        for candidate in candidates {
            match std::fs::read_to_string(&candidate) {
                Ok(text) => {
                    // Named with the line of the bad pattern, where it can be found.
                    let bad = |e: super::ignore::IgnoreError| {
                        let line = match &e {
                            super::ignore::IgnoreError::BadPattern { pattern, .. } => text
                                .lines()
                                .position(|l| l.contains(pattern.trim_start_matches('!')))
                                .map(|i| format!(":{}", i + 1)),
                            super::ignore::IgnoreError::LineTooLong { .. } => None,
                        };
                        Error::Malformed {
                            what: format!("{}{}", candidate.display(), line.unwrap_or_default()),
                            reason: e.to_string(),
                        }
                    };
                    let patterns = parse_ignore_file(&text).map_err(bad)?;
                    matcher = Some(PatternMatcher::new(&patterns).map_err(bad)?);
                    ignore_file = Some(candidate);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&candidate, e)),
            }
        }
        let skipped = skipped
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        Ok(Context {
            root: std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?,
            matcher,
            ignore_file,
            skipped,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the ignore file excludes `path` (relative to the root): explains a missing
    /// COPY source.
    pub fn ignored(&self, path: &str) -> Option<&Path> {
        let rel = path.trim_start_matches('/');
        let matcher = self.matcher.as_ref()?;
        matcher
            .is_excluded(rel)
            .then_some(self.ignore_file.as_deref())
            .flatten()
    }

    /// Walks the context (lstat only) into a view: context files belong to root (BuildKit
    /// resets their owner), keep their mode and mtime, and are read when a layer is written.
    /// Each file carries the stat the walk saw, for the stat cache.
    pub fn view(&self) -> Result<FsView> {
        let mut view = FsView::new();
        let root_meta = std::fs::metadata(&self.root).map_err(|e| Error::io(&self.root, e))?;
        view.put_base(
            "/",
            Node::dir(root_meta.mode() & 0o7777, 0, 0, root_meta.mtime()),
        );
        self.walk(&self.root, "", false, &mut view, &mut HashMap::new())?;
        Ok(view)
    }

    /// Adds the entries under `dir` (`abs_dir` in the view, "" for the root); returns whether
    /// anything was included.
    fn walk(
        &self,
        dir: &Path,
        abs_dir: &str,
        parent_excluded: bool,
        view: &mut FsView,
        inodes: &mut HashMap<(u64, u64), String>,
    ) -> Result<bool> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .map(|e| e.map(|e| (e.file_name(), e)))
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(dir, e))?;
        entries.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        let mut any = false;
        for (name, entry) in entries {
            let path = dir.join(&name);
            if self.skipped.contains(&path) {
                continue;
            }
            let Some(name) = name.to_str() else {
                return Err(Error::Usage(format!(
                    "{}: file names in the build context must be UTF-8",
                    path.display()
                )));
            };
            let abs = format!("{abs_dir}/{name}");
            let child_rel = &abs[1..];
            let excluded = self
                .matcher
                .as_ref()
                .is_some_and(|m| m.matches_with_parent(child_rel, parent_excluded));
            // fstatat on the open directory: no path walk per file.
            let meta = entry.metadata().map_err(|e| Error::io(&path, e))?;
            let file_type = meta.file_type();
            if file_type.is_dir() {
                let descend = !excluded
                    || self
                        .matcher
                        .as_ref()
                        .is_some_and(|m| m.may_reinclude_under(child_rel));
                let node = Node::dir(meta.mode() & 0o7777, 0, 0, meta.mtime());
                if descend {
                    // Put the directory first so its children have a parent, drop it again if
                    // it was excluded and nothing under it came back in.
                    view.put_base(&abs, node);
                    let included = self.walk(&path, &abs, excluded, view, inodes)?;
                    if excluded && !included {
                        view.remove_tree(&abs);
                    } else {
                        any = true;
                    }
                }
                continue;
            }
            if excluded {
                continue;
            }
            // Hard links within the context stay hard links (the first path in walk order
            // holds the content), as BuildKit's copy keeps them.
            let linked = (file_type.is_file() && meta.nlink() > 1)
                .then(|| inodes.get(&(meta.dev(), meta.ino())).cloned())
                .flatten();
            if file_type.is_file() && meta.nlink() > 1 && linked.is_none() {
                inodes.insert((meta.dev(), meta.ino()), abs.clone());
            }
            let kind = if let Some(first) = linked {
                Kind::Hardlink(first)
            } else if file_type.is_file() {
                Kind::File
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
                Kind::Symlink(target.to_string_lossy().into_owned())
            } else if let Some(special) = Special::of(&meta) {
                Kind::Other(special)
            } else {
                // Sockets (and anything stranger) are not copied, as BuildKit skips them.
                continue;
            };
            let size = if kind == Kind::File { meta.len() } else { 0 };
            view.put_base(
                &abs,
                Node {
                    content: if kind == Kind::File {
                        Content::Local(Arc::new(LocalFile {
                            path,
                            stamp: Some(FileStamp::of(&meta)),
                        }))
                    } else {
                        Content::None
                    },
                    kind,
                    mode: meta.mode() & 0o7777,
                    uid: 0,
                    gid: 0,
                    mtime: meta.mtime(),
                    size,
                },
            );
            any = true;
        }
        Ok(any)
    }
}
