//! A RUN step's changes as layer entries: the overlay upper directory walked in name order,
//! whiteout devices (0/0) as `.wh.NAME` entries, opaque directories (xattr) as the directory
//! plus `.wh..wh..opq`, hard links within the layer kept as links.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use super::fsview::{Content, Kind, Node};
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

/// The entries of the layer an upper directory makes, in tar order.
pub fn upper_entries(upper: &Path) -> Result<Vec<(String, Node)>> {
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
        if file_type.is_char_device() && meta.rdev() == 0 {
            entries.push(whiteout(format!("{rel}/.wh.{name}")));
            continue;
        }
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
            entries.push((abs.clone(), node));
            if is_opaque(&path) {
                entries.push(whiteout(format!("{abs}/.wh..wh..opq")));
            }
            walk(&path, &abs, entries, inodes)?;
            continue;
        }
        if file_type.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
            node.kind = Kind::Symlink(target.to_string_lossy().into_owned());
        } else if file_type.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = inodes.get(&key) {
                    node.kind = Kind::Hardlink(first.clone());
                    entries.push((abs, node));
                    continue;
                }
                inodes.insert(key, abs.clone());
            }
            node.size = meta.len();
            node.content = Content::Local(path.clone());
        } else {
            node.kind = Kind::Other;
        }
        entries.push((abs, node));
    }
    Ok(())
}
