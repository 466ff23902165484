//! The image filesystem as metadata only: every path with its type, mode, owner and where its
//! content lives (a base layer, a context file, bytes). Bases are never unpacked: their layers'
//! tar headers build this view, and each step records which paths it changed so that exactly
//! those (with their parent directories, as containerd writes diffs) become the step's layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::statcache::FileStamp;
use crate::reference::Digest;

/// Symlinks followed in one resolution before giving up (Linux's limit is 40).
const MAX_SYMLINK_HOPS: usize = 255;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Kind {
    Dir,
    File,
    Symlink(String),
    /// A hard link to another path of the image (absolute).
    Hardlink(String),
    /// Fifos and device nodes (a RUN makes them; bases and contexts carry them).
    Other(Special),
}

/// What kind of special file, with a device's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Special {
    Fifo,
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
}

impl Special {
    /// The special file `meta` describes, if it is one (sockets are not: they are skipped).
    pub fn of(meta: &std::fs::Metadata) -> Option<Special> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let file_type = meta.file_type();
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        if file_type.is_fifo() {
            Some(Special::Fifo)
        } else if file_type.is_char_device() {
            Some(Special::Char { major, minor })
        } else if file_type.is_block_device() {
            Some(Special::Block { major, minor })
        } else {
            None
        }
    }

    /// The special file a tar header describes, if it is one.
    pub fn of_tar(header: &tar::Header) -> Option<Special> {
        let major = || header.device_major().ok().flatten().unwrap_or(0);
        let minor = || header.device_minor().ok().flatten().unwrap_or(0);
        match header.entry_type() {
            tar::EntryType::Fifo => Some(Special::Fifo),
            tar::EntryType::Char => Some(Special::Char {
                major: major(),
                minor: minor(),
            }),
            tar::EntryType::Block => Some(Special::Block {
                major: major(),
                minor: minor(),
            }),
            _ => None,
        }
    }
}

/// A layer's entry: an absolute path and its node, borrowed from a view.
pub type Entry<'a> = (&'a str, &'a Node);

/// Borrows owned entries (a RUN step's changes) as layer entries.
pub fn borrow_entries(entries: &[(String, Node)]) -> Vec<Entry<'_>> {
    entries.iter().map(|(p, n)| (p.as_str(), n)).collect()
}

/// Where a file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    None,
    /// Inside a base layer (compressed digest) at this tar path.
    Layer {
        layer: Digest,
        path: String,
    },
    /// A file on local disk (the build context, an extracted file); shared, since views copy
    /// nodes by the thousand.
    Local(Arc<LocalFile>),
    Bytes(Arc<Vec<u8>>),
}

impl Content {
    /// A local file whose stat is not known yet.
    pub fn local(path: PathBuf) -> Self {
        Content::Local(Arc::new(LocalFile { path, stamp: None }))
    }
}

/// A file on local disk, with the stat the context walk saw when it is a context file (what
/// the stat cache compares, so the file is not stat'ed again).
#[derive(Debug)]
pub struct LocalFile {
    pub path: PathBuf,
    pub stamp: Option<FileStamp>,
}

/// The same file: the stamp is only what the walk saw of it.
impl PartialEq for LocalFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for LocalFile {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky (0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub content: Content,
}

impl Node {
    pub fn dir(mode: u32, uid: u32, gid: u32, mtime: i64) -> Self {
        Node {
            kind: Kind::Dir,
            mode,
            uid,
            gid,
            mtime,
            size: 0,
            content: Content::None,
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FsError {
    #[error("{0}: too many levels of symbolic links")]
    SymlinkLoop(String),
    #[error("{0}: not a directory")]
    NotADirectory(String),
    #[error("cannot replace directory {0} with a file")]
    ReplaceDirectory(String),
    #[error("cannot copy a directory to non-directory {0}")]
    CopyToNonDirectory(String),
}

/// Joins and cleans like Go's `path.Join("/", p)`: absolute, no `.`/`..`/empty components,
/// `..` never above the root.
pub fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        "/".to_string()
    } else {
        format!("/{}", parts.join("/"))
    }
}

pub fn parent_of(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    Some(match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    })
}

pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[derive(Clone, Debug, Default)]
pub struct FsView {
    nodes: BTreeMap<String, Node>,
    /// Paths changed since the last `take_changes`.
    changed: BTreeSet<String>,
}

impl FsView {
    /// An empty filesystem: just the root directory (0755 root:root), as scratch is.
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert("/".to_string(), Node::dir(0o755, 0, 0, 0));
        FsView {
            nodes,
            changed: BTreeSet::new(),
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// Every node, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// `root` and everything below it, in path order.
    pub fn subtree(&self, root: &str) -> Vec<Entry<'_>> {
        self.under(root).collect()
    }

    /// Whether `root` or anything below it is a hard link.
    pub fn has_hardlinks_under(&self, root: &str) -> bool {
        self.under(root)
            .any(|(_, n)| matches!(n.kind, Kind::Hardlink(_)))
    }

    fn under<'a>(&'a self, root: &str) -> impl Iterator<Item = Entry<'a>> + 'a {
        use std::ops::Bound::{Included, Unbounded};
        // What every path below `root` starts with.
        let prefix = join(root, "");
        let below = self
            .nodes
            .range::<str, _>((Included(prefix.as_str()), Unbounded));
        self.nodes
            .get_key_value(root)
            .into_iter()
            .chain(below.take_while(move |(k, _)| k.starts_with(&prefix)))
            .map(|(k, n)| (k.as_str(), n))
    }

    /// Direct children of a directory, in name order.
    pub fn children<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
        // What every path below `dir` starts with.
        let prefix = join(dir, "");
        // The keys under `prefix` in order; a child directory's own entries (`child/...`, all
        // sorting before `child0`, '0' being the character after '/') are jumped over instead
        // of walked: listing every directory of a deep tree stays O(n log n).
        use std::ops::Bound::{Included, Unbounded};
        let nodes = &self.nodes;
        let mut entries = nodes.range::<str, _>((Included(prefix.as_str()), Unbounded));
        std::iter::from_fn(move || {
            loop {
                let (key, node) = entries.next()?;
                let name = key.strip_prefix(prefix.as_str())?;
                match name.find('/') {
                    None if !name.is_empty() => return Some((key, node)),
                    None => {}
                    Some(slash) => {
                        let after = format!("{prefix}{}0", &name[..slash]);
                        entries = nodes.range::<str, _>((Included(after.as_str()), Unbounded));
                    }
                }
            }
        })
    }

    /// Removes a path and everything under it.
    pub fn remove_tree(&mut self, path: &str) {
        if path == "/" {
            let root = self.nodes.remove("/");
            self.nodes.clear();
            if let Some(root) = root {
                self.nodes.insert("/".into(), root);
            }
            return;
        }
        self.nodes.remove(path);
        let prefix = format!("{path}/");
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Removes everything under a directory, keeping the directory (an opaque whiteout).
    pub fn clear_dir(&mut self, dir: &str) {
        let keep = self.nodes.get(dir).cloned();
        self.remove_tree(dir);
        if let Some(node) = keep {
            self.nodes.insert(dir.to_string(), node);
        }
    }

    /// Sets a node from a base layer: missing parents appear as 0755 root directories, the way
    /// tar extraction creates them. Not recorded as a change.
    pub fn put_base(&mut self, path: &str, node: Node) {
        self.put_base_owned(path.to_string(), node);
    }

    /// [`FsView::put_base`] of a path the caller owns already.
    pub fn put_base_owned(&mut self, path: String, node: Node) {
        self.ensure_parents_silently(&path);
        if !node.is_dir() {
            // A non-directory replaces a directory and its contents.
            if self.nodes.get(&path).is_some_and(Node::is_dir) {
                self.remove_tree(&path);
            }
        }
        self.nodes.insert(path, node);
    }

    fn ensure_parents_silently(&mut self, path: &str) {
        let mut missing = Vec::new();
        let mut p = parent_of(path);
        while let Some(dir) = p {
            if self.nodes.get(dir).is_some_and(Node::is_dir) {
                break;
            }
            missing.push(dir.to_string());
            p = parent_of(dir);
        }
        for dir in missing.into_iter().rev() {
            self.nodes.insert(dir, Node::dir(0o755, 0, 0, 0));
        }
    }

    /// Sets a node as part of the current step.
    pub fn put(&mut self, path: &str, node: Node) {
        self.nodes.insert(path.to_string(), node);
        self.changed.insert(path.to_string());
    }

    /// Resolves symlinks in `path` inside this filesystem, like containerd's `fs.RootPath`:
    /// `..` stops at the root, absolute link targets restart at the root. The last component
    /// is followed only if `follow_last`. Components that do not exist are kept as they are.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, FsError> {
        let mut pending: Vec<String> = clean_abs(path)
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut current = "/".to_string();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            if component == ".." {
                current = parent_of(&current).unwrap_or("/").to_string();
                continue;
            }
            let candidate = join(&current, &component);
            let is_last = pending.is_empty();
            match self.nodes.get(&candidate).map(|n| &n.kind) {
                Some(Kind::Symlink(target)) if !is_last || follow_last => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(FsError::SymlinkLoop(path.to_string()));
                    }
                    if target.starts_with('/') {
                        current = "/".to_string();
                    }
                    pending.extend(
                        target
                            .split('/')
                            .filter(|c| !c.is_empty() && *c != ".")
                            .rev()
                            .map(str::to_string),
                    );
                }
                _ => current = candidate,
            }
        }
        Ok(current)
    }

    /// `os.Stat` semantics: the node at `path` with every symlink followed.
    pub fn stat(&self, path: &str) -> Result<Option<(String, &Node)>, FsError> {
        let resolved = self.resolve(path, true)?;
        Ok(self.nodes.get(&resolved).map(|n| (resolved.clone(), n)))
    }

    /// `MkdirAll` as fsutil does it: creates missing directories of the already-resolved
    /// `path` with `mode` and owner, records them as changed, leaves existing ones alone.
    pub fn mkdir_all(
        &mut self,
        path: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: i64,
    ) -> Result<(), FsError> {
        let mut missing = Vec::new();
        let mut p = Some(path);
        while let Some(dir) = p {
            match self.nodes.get(dir) {
                Some(n) if n.is_dir() => break,
                Some(_) => return Err(FsError::NotADirectory(dir.to_string())),
                None => missing.push(dir.to_string()),
            }
            p = parent_of(dir);
        }
        for dir in missing.into_iter().rev() {
            self.put(&dir, Node::dir(mode, uid, gid, mtime));
        }
        Ok(())
    }

    /// The paths changed since the last call, clearing the record.
    pub fn take_changes(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.changed)
    }

    /// The entries of a diff layer for `changed`: each changed path that still exists, plus its
    /// parent directories (as containerd's diff writer includes them), in path order.
    pub fn layer_entries(&self, changed: &BTreeSet<String>) -> Vec<Entry<'_>> {
        let mut paths: BTreeSet<&str> = BTreeSet::new();
        for path in changed {
            if !self.nodes.contains_key(path) {
                continue;
            }
            let mut p = Some(path.as_str());
            while let Some(dir) = p {
                if dir == "/" || !paths.insert(dir) {
                    break;
                }
                p = parent_of(dir);
            }
        }
        let (mut entries, mut links): (Vec<_>, Vec<_>) = paths
            .into_iter()
            .filter_map(|p| self.nodes.get_key_value(p))
            .map(|(p, n)| (p.as_str(), n))
            .partition(|(_, n)| !matches!(n.kind, Kind::Hardlink(_)));
        // A hard link must come after its target in a tar, whatever their names: links go
        // last, each once the link it points to (if that is in this layer too) is written.
        while !links.is_empty() {
            let pending: BTreeSet<&str> = links.iter().map(|(p, _)| *p).collect();
            let (ready, waiting): (Vec<_>, Vec<_>) = links.into_iter().partition(
                |(_, n)| !matches!(&n.kind, Kind::Hardlink(target) if pending.contains(target.as_str())),
            );
            links = waiting;
            if ready.is_empty() {
                // Links pointing at each other cannot be ordered; write them as they are.
                entries.append(&mut links);
                break;
            }
            entries.extend(ready);
        }
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_skip_grandchildren_and_keep_siblings_that_sort_among_them() {
        let mut view = FsView::new();
        for dir in ["/a", "/a/x", "/a0", "/b"] {
            view.put_base(dir, Node::dir(0o755, 0, 0, 0));
        }
        for file in ["/a-b", "/a.c", "/a/x/y", "/a/z", "/a0/q", "/b/r"] {
            view.put_base(file, Node::dir(0o755, 0, 0, 0));
        }
        let names =
            |dir: &str| -> Vec<String> { view.children(dir).map(|(k, _)| k.clone()).collect() };
        assert_eq!(names("/"), ["/a", "/a-b", "/a.c", "/a0", "/b"]);
        assert_eq!(names("/a"), ["/a/x", "/a/z"]);
        assert_eq!(names("/a/x"), ["/a/x/y"]);
        assert!(names("/a/z").is_empty());
        assert!(names("/missing").is_empty());
    }

    fn file(mode: u32) -> Node {
        Node {
            kind: Kind::File,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            content: Content::None,
        }
    }

    fn link(target: &str) -> Node {
        Node {
            kind: Kind::Symlink(target.to_string()),
            ..file(0o777)
        }
    }

    #[test]
    fn clean_paths_like_go() {
        assert_eq!(clean_abs("a/b/../c/./"), "/a/c");
        assert_eq!(clean_abs("../../x"), "/x");
        assert_eq!(clean_abs(""), "/");
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(parent_of("/a/b"), Some("/a"));
    }

    #[test]
    fn resolves_symlinked_parents_inside_the_root() {
        let mut fs = FsView::new();
        fs.put_base("/usr/bin", Node::dir(0o755, 0, 0, 0));
        fs.put_base("/bin", link("usr/bin"));
        fs.put_base("/abs", link("/usr"));
        fs.put_base("/up", link("../../../usr"));
        fs.put_base("/loop", link("loop"));
        assert_eq!(fs.resolve("/bin/sh", true).unwrap(), "/usr/bin/sh");
        assert_eq!(fs.resolve("/bin", false).unwrap(), "/bin");
        assert_eq!(fs.resolve("/abs/bin", true).unwrap(), "/usr/bin");
        assert_eq!(fs.resolve("/up/bin", true).unwrap(), "/usr/bin");
        assert!(matches!(
            fs.resolve("/loop/x", true),
            Err(FsError::SymlinkLoop(_))
        ));
    }

    #[test]
    fn base_layers_create_parents_and_replace_trees() {
        let mut fs = FsView::new();
        fs.put_base("/a/b/c", file(0o644));
        assert!(fs.get("/a").unwrap().is_dir());
        assert!(fs.get("/a/b").unwrap().is_dir());
        fs.put_base("/a", file(0o600));
        assert!(fs.get("/a/b/c").is_none());
        let names: Vec<_> = fs.children("/").map(|(k, _)| k.clone()).collect();
        assert_eq!(names, ["/a"]);
    }

    #[test]
    fn hard_links_come_after_their_targets() {
        let mut fs = FsView::new();
        fs.put("/z", file(0o644));
        fs.put(
            "/a",
            Node {
                kind: Kind::Hardlink("/z".into()),
                ..file(0o644)
            },
        );
        fs.put(
            "/b",
            Node {
                kind: Kind::Hardlink("/a".into()),
                ..file(0o644)
            },
        );
        let changed = fs.take_changes();
        let paths: Vec<_> = fs
            .layer_entries(&changed)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["/z", "/a", "/b"]);
    }

    #[test]
    fn layer_entries_include_parents_once() {
        let mut fs = FsView::new();
        fs.put_base("/etc", Node::dir(0o755, 0, 0, 0));
        fs.mkdir_all("/app/sub", 0o755, 1, 1, 0).unwrap();
        fs.put("/app/sub/f", file(0o644));
        fs.put("/etc/x", file(0o644));
        let changed = fs.take_changes();
        let paths: Vec<_> = fs
            .layer_entries(&changed)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["/app", "/app/sub", "/app/sub/f", "/etc", "/etc/x"]);
        assert!(fs.take_changes().is_empty());
    }
}
