//! File trees as comparable values: what an image's root filesystem holds (kind, mode,
//! ownership, content digest, link target), read from disk with lstat, and unpacked from
//! OCI layouts with umoci (an independent tool, never hoist's reader).

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use super::registry::sha256_hex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// A regular file sharing its inode with an earlier path (in sorted order) of the tree.
    Hardlink,
    /// Devices, fifos, sockets.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Hex sha256 of the content, for files and hardlinks.
    pub sha256: Option<String>,
    /// Symlink target, or for a hardlink the path of the first link to its inode.
    pub link: Option<String>,
}

impl Entry {
    /// A regular file owned by 0:0.
    pub fn file(path: &str, mode: u32, content: &[u8]) -> Entry {
        Entry {
            sha256: Some(sha256_hex(content)),
            ..Entry::new(path, Kind::File, mode)
        }
    }

    /// A directory owned by 0:0.
    pub fn dir(path: &str, mode: u32) -> Entry {
        Entry::new(path, Kind::Dir, mode)
    }

    /// A symlink owned by 0:0 (Linux symlinks always have mode 0777).
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            link: Some(target.to_string()),
            ..Entry::new(path, Kind::Symlink, 0o777)
        }
    }

    pub fn owned(self, uid: u32, gid: u32) -> Entry {
        Entry { uid, gid, ..self }
    }

    fn new(path: &str, kind: Kind, mode: u32) -> Entry {
        Entry {
            path: path.to_string(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            sha256: None,
            link: None,
        }
    }
}

/// Paths ("/etc/passwd") to entries.
pub type Tree = BTreeMap<String, Entry>;

pub fn tree(entries: impl IntoIterator<Item = Entry>) -> Tree {
    entries.into_iter().map(|e| (e.path.clone(), e)).collect()
}

/// Everything under `root` (not `root` itself), without following symlinks.
pub fn read_tree(root: &Path) -> Tree {
    let mut tree = Tree::new();
    // (dev, ino) of multiply-linked files, to name hardlinks once the whole tree is known.
    let mut inodes: HashMap<String, (u64, u64)> = HashMap::new();
    walk(root, "", &mut tree, &mut inodes);
    let mut first_link: HashMap<(u64, u64), String> = HashMap::new();
    // BTreeMap order makes the first link of an inode independent of readdir order.
    for entry in tree.values_mut() {
        let Some(inode) = inodes.get(&entry.path) else {
            continue;
        };
        match first_link.get(inode) {
            Some(first) => {
                entry.kind = Kind::Hardlink;
                entry.link = Some(first.clone());
            }
            None => {
                first_link.insert(*inode, entry.path.clone());
            }
        }
    }
    tree
}

fn walk(dir: &Path, prefix: &str, tree: &mut Tree, inodes: &mut HashMap<String, (u64, u64)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
    for dirent in entries {
        let dirent = dirent.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        let fs_path = dirent.path();
        let path = format!("{prefix}/{}", dirent.file_name().to_string_lossy());
        let meta = std::fs::symlink_metadata(&fs_path)
            .unwrap_or_else(|e| panic!("lstat {}: {e}", fs_path.display()));
        let file_type = meta.file_type();
        let mut entry = Entry {
            path: path.clone(),
            kind: Kind::Other,
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            sha256: None,
            link: None,
        };
        if file_type.is_dir() {
            entry.kind = Kind::Dir;
            walk(&fs_path, &path, tree, inodes);
        } else if file_type.is_symlink() {
            entry.kind = Kind::Symlink;
            let target = std::fs::read_link(&fs_path)
                .unwrap_or_else(|e| panic!("readlink {}: {e}", fs_path.display()));
            entry.link = Some(target.to_string_lossy().into_owned());
        } else if file_type.is_file() {
            entry.kind = Kind::File;
            let content = std::fs::read(&fs_path)
                .unwrap_or_else(|e| panic!("read {}: {e}", fs_path.display()));
            entry.sha256 = Some(sha256_hex(&content));
            if meta.nlink() > 1 {
                inodes.insert(path.clone(), (meta.dev(), meta.ino()));
            }
        }
        tree.insert(path, entry);
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::Hardlink => "hardlink",
        Kind::Other => "other",
    }
}

fn show(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

/// Human-readable differences, one per missing/extra path or differing field.
pub fn diff(expected: &Tree, actual: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in expected {
        let Some(got) = actual.get(path) else {
            out.push(format!("missing {path} ({})", kind_name(want.kind)));
            continue;
        };
        if want.kind != got.kind {
            out.push(format!(
                "{path}: kind: expected {}, got {}",
                kind_name(want.kind),
                kind_name(got.kind)
            ));
        }
        if want.mode != got.mode {
            out.push(format!(
                "{path}: mode: expected {:04o}, got {:04o}",
                want.mode, got.mode
            ));
        }
        if want.uid != got.uid {
            out.push(format!(
                "{path}: uid: expected {}, got {}",
                want.uid, got.uid
            ));
        }
        if want.gid != got.gid {
            out.push(format!(
                "{path}: gid: expected {}, got {}",
                want.gid, got.gid
            ));
        }
        if want.sha256 != got.sha256 {
            out.push(format!(
                "{path}: sha256: expected {}, got {}",
                show(&want.sha256),
                show(&got.sha256)
            ));
        }
        if want.link != got.link {
            out.push(format!(
                "{path}: link: expected {}, got {}",
                show(&want.link),
                show(&got.link)
            ));
        }
    }
    for (path, got) in actual {
        if !expected.contains_key(path) {
            out.push(format!("extra {path} ({})", kind_name(got.kind)));
        }
    }
    out
}

#[track_caller]
pub fn assert_same_tree(expected: &Tree, actual: &Tree, context: &str) {
    let differences = diff(expected, actual);
    assert!(
        differences.is_empty(),
        "{context}: {} difference(s) (expected vs actual):\n  {}",
        differences.len(),
        differences.join("\n  ")
    );
}

/// Unpacks `layout:refname` with `umoci unpack` into the scratch directory `into` (created
/// if missing; the bundle goes to `into/bundle`) and reads its rootfs. Must run as root so
/// umoci keeps the layers' ownership. umoci only unpacks single-manifest refs: a ref naming
/// an index is first narrowed with `skopeo copy` to the host's platform, so pass
/// single-platform images to compare any other platform.
pub fn unpack_layout(layout: &Path, refname: &str, into: &Path) -> Tree {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "unpack_layout must run as root: rootless umoci would map every owner to the caller"
    );
    std::fs::create_dir_all(into).unwrap();
    let mut image = format!("{}:{refname}", layout.display());
    if ref_is_index(layout, refname) {
        let single = into.join("image");
        let out = Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{image}"))
            .arg(format!("oci:{}:{refname}", single.display()))
            .output()
            .expect("skopeo");
        assert!(
            out.status.success(),
            "skopeo copy of one platform of {image} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        image = format!("{}:{refname}", single.display());
    }
    let bundle = into.join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle)
        .output()
        .expect("umoci (installed by scripts/test)");
    assert!(
        out.status.success(),
        "umoci unpack {image} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_tree(&bundle.join("rootfs"))
}

fn ref_is_index(layout: &Path, refname: &str) -> bool {
    let raw = std::fs::read(layout.join("index.json"))
        .unwrap_or_else(|e| panic!("{}/index.json: {e}", layout.display()));
    let index: serde_json::Value = serde_json::from_slice(&raw).expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["annotations"]["org.opencontainers.image.ref.name"] == refname)
        .any(|d| d["mediaType"] == "application/vnd.oci.image.index.v1+json")
}
