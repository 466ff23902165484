//! A RUN step's changes as layer entries, as modern BuildKit's overlay differ computes them
//! (util/overlay/overlay_linux.go `Changes`, containerd's `ChangeWriter`): the upper directory
//! walked in name order and compared with the lower layers, so copied-up but unchanged files and
//! directories are left out, whiteouts only name what a lower layer has, an opaque directory
//! becomes one `.wh.NAME` per lower child it hides, and every ancestor of an entry is written
//! once before it (with the upper directory's metadata).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fsview::{Content, Kind, Node, Special};
use crate::error::{Error, Result};

/// Whether overlayfs marked the directory opaque (it hides everything below it).
fn is_opaque(dir: &Path) -> bool {
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 2];
    for name in [c"trusted.overlay.opaque", c"user.overlay.opaque"] {
        // SAFETY: valid NUL-terminated strings and a buffer of the given length.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n == 1 && value[0] == b'y' {
            return true;
        }
    }
    false
}

fn whiteout(path: String) -> (String, Node) {
    (
        path,
        Node {
            kind: Kind::File,
            mode: 0,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            content: Content::Bytes(Arc::new(Vec::new())),
        },
    )
}

/// One entry of a layer directory's saved listing (contents stay in the directory): path,
/// kind, mode, uid, gid, mtime, size. A JSON array, not an object: a cached RUN step reads
/// thousands of them.
#[derive(serde::Serialize, serde::Deserialize)]
struct Listed(String, Kind, u32, u32, u32, i64, u64);

/// [`dir_entries`] of an unpacked layer directory that never changes once made, from a
/// listing saved beside it (`DIR.entries`) after the first walk: a cached RUN step then
/// reads one file instead of stat'ing every path of its layer.
pub fn layer_dir_entries(dir: &Path) -> Result<Vec<(String, Node)>> {
    let listing = dir.with_extension("entries");
    if let Some(listed) = std::fs::read(&listing)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<Listed>>(&b).ok())
    {
        return Ok(listed
            .into_iter()
            .map(|Listed(path, kind, mode, uid, gid, mtime, size)| {
                let content = match kind {
                    Kind::File => Content::local(dir.join(path.trim_start_matches('/'))),
                    _ => Content::None,
                };
                let node = Node {
                    kind,
                    mode,
                    uid,
                    gid,
                    mtime,
                    size,
                    content,
                };
                (path, node)
            })
            .collect());
    }
    let entries = dir_entries(dir)?;
    let listed: Vec<Listed> = entries
        .iter()
        .map(|(path, n)| {
            Listed(
                path.clone(),
                n.kind.clone(),
                n.mode,
                n.uid,
                n.gid,
                n.mtime,
                n.size,
            )
        })
        .collect();
    // A listing that cannot be saved only costs a walk next time.
    let _ = crate::fsutil::write_cache_entry(
        &listing,
        &serde_json::to_vec(&listed).expect("listings serialise"),
    );
    Ok(entries)
}

/// Everything in an unpacked overlay layer directory as entries (whiteout devices as `.wh.`
/// entries, opaque directories with `.wh..wh..opq`): how a stage's view learns a layer.
pub fn dir_entries(upper: &Path) -> Result<Vec<(String, Node)>> {
    let mut entries = Vec::new();
    let mut inodes = HashMap::new();
    walk(upper, "", &mut entries, &mut inodes)?;
    Ok(entries)
}

fn walk(
    dir: &Path,
    rel: &str,
    entries: &mut Vec<(String, Node)>,
    inodes: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    children.sort_by_key(|c| c.file_name());
    for child in children {
        let path = child.path();
        let name = child.file_name().to_string_lossy().into_owned();
        let abs = format!("{rel}/{name}");
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let file_type = meta.file_type();
        if is_whiteout(&meta) {
            entries.push(whiteout(format!("{rel}/.wh.{name}")));
            continue;
        }
        let mut node = node_of(&path, &meta)?;
        if file_type.is_dir() {
            entries.push((abs.clone(), node));
            if is_opaque(&path) {
                entries.push(whiteout(format!("{abs}/.wh..wh..opq")));
            }
            walk(&path, &abs, entries, inodes)?;
            continue;
        }
        if file_type.is_file() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = inodes.get(&key) {
                node.kind = Kind::Hardlink(first.clone());
                node.size = 0;
                node.content = Content::None;
            } else {
                inodes.insert(key, abs.clone());
            }
        }
        entries.push((abs, node));
    }
    Ok(())
}

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Where `rel` is in the merged view of `lowers` (top first): overlay's rules for whiteouts,
/// opaque directories and files hiding what is below them. `None`: not in the lowers.
fn lower_lookup(lowers: &[PathBuf], rel: &Path) -> Option<PathBuf> {
    let mut visible: Vec<&PathBuf> = lowers.iter().collect();
    let parts: Vec<_> = rel.components().collect();
    let mut prefix = PathBuf::new();
    for (i, part) in parts.iter().enumerate() {
        prefix.push(part);
        let last = i + 1 == parts.len();
        let mut below = Vec::new();
        for lower in &visible {
            let path = lower.join(&prefix);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if is_whiteout(&meta) {
                break;
            }
            if last {
                return Some(path);
            }
            if !meta.is_dir() {
                break;
            }
            below.push(*lower);
            if is_opaque(&path) {
                break;
            }
        }
        if below.is_empty() {
            return None;
        }
        visible = below;
    }
    None
}

/// The names in directory `rel` of the merged lowers.
fn lower_children(lowers: &[PathBuf], rel: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let Some(_) = lower_lookup(lowers, rel) else {
        return names;
    };
    let mut candidates = BTreeSet::new();
    for lower in lowers {
        if let Ok(dir) = std::fs::read_dir(lower.join(rel)) {
            candidates.extend(
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    for name in candidates {
        if lower_lookup(lowers, &rel.join(&name)).is_some() {
            names.insert(name);
        }
    }
    names
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(mut x), Ok(mut y)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut bx, mut by) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    loop {
        let n = match x.read(&mut bx) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if y.read_exact(&mut by[..n]).is_err() || bx[..n] != by[..n] {
            return false;
        }
        if n == 0 {
            return y.read(&mut by[..1]).map(|m| m == 0).unwrap_or(false);
        }
    }
}

/// BuildKit's sameDirent: whether an upper entry equals the lower one it was copied up from.
fn same_dirent(lower: &Path, upper: &Path) -> bool {
    let (Ok(l), Ok(u)) = (
        std::fs::symlink_metadata(lower),
        std::fs::symlink_metadata(upper),
    ) else {
        return false;
    };
    if l.mode() != u.mode() || l.uid() != u.uid() || l.gid() != u.gid() || l.rdev() != u.rdev() {
        return false;
    }
    if crate::fsutil::file_capability(lower) != crate::fsutil::file_capability(upper) {
        return false;
    }
    if u.is_dir() {
        return true;
    }
    if l.size() != u.size() || l.mtime() != u.mtime() {
        return false;
    }
    if l.mtime_nsec() != 0 || u.mtime_nsec() != 0 {
        return l.mtime_nsec() == u.mtime_nsec();
    }
    if u.file_type().is_symlink() {
        return std::fs::read_link(lower).ok() == std::fs::read_link(upper).ok();
    }
    u.size() == 0 || same_bytes(lower, upper)
}

#[derive(Debug, PartialEq, Eq)]
enum Change {
    AddOrModify,
    Delete,
}

/// The changes of `upper` against `lowers` (top first), in walk order.
fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<(PathBuf, Change)>> {
    let mut out = Vec::new();
    walk_changes(upper, lowers, Path::new(""), false, &mut out)?;
    Ok(out)
}

fn walk_changes(
    upper: &Path,
    lowers: &[PathBuf],
    rel: &Path,
    hidden_below: bool,
    out: &mut Vec<(PathBuf, Change)>,
) -> Result<()> {
    let dir = upper.join(rel);
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let name = entry.map_err(|e| Error::io(&dir, e))?.file_name();
        // Layer entries (and the build's view of files) are UTF-8 paths.
        let Some(name) = name.to_str() else {
            return Err(Error::Usage(format!(
                "the command made {}, whose name is not UTF-8: hoist cannot put it into a layer",
                dir.join(&name).display()
            )));
        };
        names.insert(name.to_string());
    }
    if hidden_below {
        // Inside an opaque directory: each lower child not in the upper is deleted.
        for gone in lower_children(lowers, rel) {
            if !names.contains(&gone) {
                names.insert(gone);
            }
        }
    }
    for name in names {
        let child = rel.join(&name);
        let path = upper.join(&child);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            // Only in the lowers (under an opaque directory): gone.
            out.push((child, Change::Delete));
            continue;
        };
        let lower = lower_lookup(lowers, &child);
        if is_whiteout(&meta) {
            // A whiteout for something no lower layer has needs no entry.
            if lower.is_some() {
                out.push((child, Change::Delete));
            }
            continue;
        }
        let opaque = meta.is_dir() && is_opaque(&path) && lower.is_some();
        match &lower {
            Some(lower) if same_dirent(lower, &path) => {}
            _ => out.push((child.clone(), Change::AddOrModify)),
        }
        if meta.is_dir() {
            walk_changes(upper, lowers, &child, hidden_below || opaque, out)?;
        }
    }
    Ok(())
}

fn node_of(path: &Path, meta: &std::fs::Metadata) -> Result<Node> {
    let file_type = meta.file_type();
    let mut node = Node {
        kind: Kind::File,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
        size: 0,
        content: Content::None,
    };
    if file_type.is_dir() {
        node.kind = Kind::Dir;
    } else if file_type.is_symlink() {
        let target = std::fs::read_link(path).map_err(|e| Error::io(path, e))?;
        node.kind = Kind::Symlink(target.to_string_lossy().into_owned());
    } else if file_type.is_file() {
        node.size = meta.len();
        node.content = Content::local(path.to_path_buf());
    } else if let Some(special) = Special::of(meta) {
        node.kind = Kind::Other(special);
    } else {
        return Err(Error::Usage(format!(
            "{}: a socket or unknown file type cannot go into a layer",
            path.display()
        )));
    }
    Ok(node)
}

/// The layer entries of a RUN: `upper`'s changes against `lowers` (top first), each after
/// its ancestors, hard links within the layer kept as links.
pub fn layer_changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<(String, Node)>> {
    entries_of_changes(upper, changes(upper, lowers)?)
}

/// The layer entries for `changes` of the tree at `upper`.
fn entries_of_changes(
    upper: &Path,
    changes: Vec<(PathBuf, Change)>,
) -> Result<Vec<(String, Node)>> {
    let mut entries = Vec::new();
    let mut emitted_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    for (rel, change) in changes {
        // Ancestors first, once, with the upper directory's metadata.
        let mut ancestors: Vec<&Path> = rel.ancestors().skip(1).collect();
        ancestors.retain(|a| !a.as_os_str().is_empty());
        for ancestor in ancestors.into_iter().rev() {
            if emitted_dirs.insert(ancestor.to_path_buf()) {
                let path = upper.join(ancestor);
                let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
                entries.push((format!("/{}", ancestor.display()), node_of(&path, &meta)?));
            }
        }
        let abs = format!("/{}", rel.display());
        if change == Change::Delete {
            let (parent, name) = abs.rsplit_once('/').unwrap_or(("", &abs));
            entries.push(whiteout(format!("{parent}/.wh.{name}")));
            continue;
        }
        let path = upper.join(&rel);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        if meta.is_dir() {
            if !emitted_dirs.insert(rel.clone()) {
                continue;
            }
        } else if meta.file_type().is_socket() {
            continue;
        } else if meta.is_file() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = inodes.get(&key) {
                let mut node = node_of(&path, &meta)?;
                node.kind = Kind::Hardlink(first.clone());
                node.size = 0;
                node.content = Content::None;
                entries.push((abs, node));
                continue;
            }
            inodes.insert(key, abs.clone());
        }
        entries.push((abs, node_of(&path, &meta)?));
    }
    Ok(entries)
}

/// What a stat-diff compares of an entry: a change to any of it (the inode included, for a
/// replaced file) puts the entry into the layer. A ctime-only change (chmod to the same mode,
/// a new hard link) does not, as overlay's differ skips a copied-up entry equal to its lower.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stat {
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
}

impl Stat {
    fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            ino: meta.ino(),
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: if meta.is_dir() { 0 } else { meta.size() },
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }
}

/// A tree's entries by directory (relative, "" for the root), for [`scan_changes`]: the
/// stat-diff of `container` isolation, which has no overlay to tell what a command changed.
pub struct Scan {
    dirs: HashMap<PathBuf, BTreeMap<String, Stat>>,
}

/// Walks `root`, leaving out `skipped` paths (relative: mount points, hoist's own files).
pub fn scan(root: &Path, skipped: &[PathBuf]) -> Result<Scan> {
    let mut scan = Scan {
        dirs: HashMap::new(),
    };
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let dir = root.join(&rel);
        let mut children = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let child = rel.join(entry.file_name());
            if skipped.contains(&child) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                return Err(Error::Usage(format!(
                    "the command made {}, whose name is not UTF-8: hoist cannot put it into a layer",
                    root.join(&child).display()
                )));
            };
            // Gone since listed (a process still running): not there.
            let Ok(meta) = std::fs::symlink_metadata(root.join(&child)) else {
                continue;
            };
            if meta.is_dir() {
                pending.push(child);
            }
            children.insert(name, Stat::of(&meta));
        }
        scan.dirs.insert(rel, children);
    }
    Ok(scan)
}

/// The layer entries for what changed in `root` from `before` to `after` (two [`scan`]s), in
/// the order [`layer_changes`] gives: deleted entries as whiteouts, a replaced directory's
/// old children each as a whiteout.
pub fn scan_changes(root: &Path, before: &Scan, after: &Scan) -> Result<Vec<(String, Node)>> {
    let mut changes = Vec::new();
    walk_scans(before, after, Path::new(""), &mut changes);
    entries_of_changes(root, changes)
}

/// [`walk_changes`] for two scans: each name in order, a directory's changes right after it.
fn walk_scans(before: &Scan, after: &Scan, rel: &Path, out: &mut Vec<(PathBuf, Change)>) {
    let empty = BTreeMap::new();
    let old = before.dirs.get(rel).unwrap_or(&empty);
    let new = after.dirs.get(rel).unwrap_or(&empty);
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for name in names {
        let child = rel.join(name);
        match (old.get(name), new.get(name)) {
            (Some(_), None) => out.push((child, Change::Delete)),
            (old_stat, Some(stat)) => {
                if old_stat != Some(stat) {
                    out.push((child.clone(), Change::AddOrModify));
                }
                if stat.is_dir() {
                    walk_scans(before, after, &child, out);
                }
            }
            (None, None) => {}
        }
    }
}

/// Adds a directory `/name` to a RUN's entries where a walk would have put it (after the
/// entries of lesser top-level names), unless it is there already.
pub fn insert_top_level(entries: &mut Vec<(String, Node)>, name: &str, node: Node) {
    let path = format!("/{name}");
    let top = |p: &str| {
        p.trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
            .to_string()
    };
    if entries.iter().any(|(p, _)| *p == path) {
        return;
    }
    let at = entries
        .iter()
        .position(|(p, _)| top(p).as_str() > name)
        .unwrap_or(entries.len());
    entries.insert(at, (path, node));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_directories_go_where_a_walk_puts_them() {
        let dir = |mtime| Node {
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime,
            size: 0,
            content: Content::None,
        };
        let mut entries = vec![
            ("/bin".to_string(), dir(1)),
            ("/etc".to_string(), dir(1)),
            ("/etc/passwd".to_string(), dir(1)),
            ("/tmp".to_string(), dir(1)),
        ];
        insert_top_level(&mut entries, "proc", dir(2));
        insert_top_level(&mut entries, "dev", dir(2));
        insert_top_level(&mut entries, "etc", dir(2));
        insert_top_level(&mut entries, "sys", dir(2));
        let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/bin",
                "/dev",
                "/etc",
                "/etc/passwd",
                "/proc",
                "/sys",
                "/tmp"
            ]
        );
        assert_eq!(entries[2].1.mtime, 1, "an entry already there stays");
    }

    #[test]
    fn a_layer_directory_is_walked_once_then_read_from_its_listing() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("layer");
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("etc/a"), "a").unwrap();
        let first = layer_dir_entries(&dir).unwrap();
        assert!(parent.path().join("layer.entries").exists());
        // Unpacked layers never change: a later file is not looked for.
        std::fs::write(dir.join("etc/b"), "b").unwrap();
        let second = layer_dir_entries(&dir).unwrap();
        assert_eq!(second, first);
        assert_eq!(
            second.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["/etc", "/etc/a"]
        );
        assert_eq!(second[1].1.content, Content::local(dir.join("etc/a")));
    }
}
