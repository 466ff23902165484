//! The path index of a base image: each layer's tar headers (never its file contents, except
//! /etc/passwd and /etc/group, which `--chown` and `USER` need) streamed once per layer digest
//! and cached, then applied in order with OCI whiteouts to give the base's [`FsView`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsview::{Content, FsView, Kind, Node, Special, clean_abs, join, parent_of};
use crate::digest::error_from_reader;
use crate::error::{Error, Result};
use crate::fsutil::write_cache_entry;
use crate::oci::{Descriptor, layer_tar_reader};
use crate::reference::Digest;
use crate::source::Source;

/// Files whose content the index keeps, for user and group lookups.
const CAPTURED: [&str; 2] = ["/etc/passwd", "/etc/group"];
/// Bump when the cached format changes, so old entries are ignored rather than misread.
const INDEX_VERSION: u32 = 2;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum EntryKind {
    Node(Kind),
    /// `.wh.NAME`: NAME from lower layers is deleted.
    Whiteout,
    /// `.wh..wh..opq`: the directory's lower-layer contents are deleted.
    Opaque,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IndexEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LayerIndex {
    version: u32,
    pub entries: Vec<IndexEntry>,
    /// Contents of the CAPTURED files this layer carries.
    pub captured: BTreeMap<String, String>,
}

/// Linux's PATH_MAX and NAME_MAX: longer entries could not be unpacked anywhere.
const MAX_PATH_BYTES: usize = 4096;
const MAX_NAME_BYTES: usize = 255;

/// A tar entry name as an absolute, clean path; names that climb out of the root, or that
/// no filesystem could hold (a path over 4096 bytes, a name over 255), are refused.
pub fn entry_path(raw: &[u8], what: &str) -> Result<String> {
    let name = String::from_utf8_lossy(raw);
    let refuse = |why: String| {
        let shown: String = name.chars().take(120).collect();
        let more = if name.chars().count() > 120 {
            "…"
        } else {
            ""
        };
        Err(Error::malformed(
            what,
            format!("entry `{shown}{more}` {why}"),
        ))
    };
    if name.split('/').any(|c| c == "..") {
        return refuse("climbs out of the root with `..`".into());
    }
    if raw.len() > MAX_PATH_BYTES {
        return refuse(format!(
            "has a path of {} bytes (at most {MAX_PATH_BYTES})",
            raw.len()
        ));
    }
    if let Some(long) = name.split('/').find(|c| c.len() > MAX_NAME_BYTES) {
        return refuse(format!(
            "has a name of {} bytes (at most {MAX_NAME_BYTES})",
            long.len()
        ));
    }
    Ok(clean_abs(&name))
}

/// Reads a layer's tar headers (blocking).
pub fn read_index(tar: impl Read, what: &str) -> Result<LayerIndex> {
    let mut archive = tar::Archive::new(tar);
    let mut index = LayerIndex {
        version: INDEX_VERSION,
        ..Default::default()
    };
    let bad = |e: std::io::Error| error_from_reader(e, what, "unreadable tar");
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let header = entry.header().clone();
        let path = entry_path(&entry.path_bytes(), what)?;
        if path == "/" {
            continue;
        }
        let name = super::fsview::base_name(&path);
        let dir = parent_of(&path).unwrap_or("/");
        let (path, kind) = if name == ".wh..wh..opq" {
            (dir.to_string(), EntryKind::Opaque)
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            (join(dir, hidden), EntryKind::Whiteout)
        } else {
            let link = || -> Result<String> {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                Ok(target)
            };
            let kind = match header.entry_type() {
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
                tar::EntryType::Symlink => Kind::Symlink(link()?),
                tar::EntryType::Link => {
                    let target = link()?;
                    Kind::Hardlink(entry_path(target.as_bytes(), what)?)
                }
                // Anything else a tar may hold has no place in a file tree.
                _ => match Special::of_tar(&header) {
                    Some(special) => Kind::Other(special),
                    None => continue,
                },
            };
            (path, EntryKind::Node(kind))
        };
        let size = header.size().unwrap_or(0);
        if CAPTURED.contains(&path.as_str()) && size <= 1 << 20 {
            let mut text = String::new();
            if entry.read_to_string(&mut text).is_ok() {
                index.captured.insert(path.clone(), text);
            }
        }
        index.entries.push(IndexEntry {
            path,
            kind,
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
            mtime: header.mtime().unwrap_or(0) as i64,
            size,
        });
    }
    Ok(index)
}

/// The index of one layer: from the cache when present, else streamed from the source.
pub async fn layer_index(
    source: &Source,
    layer: &Descriptor,
    cache_dir: Option<&Path>,
) -> Result<LayerIndex> {
    let cached = cache_dir.map(|d| d.join("index").join(format!("{}.json", layer.digest.hex())));
    if let Some(path) = &cached
        && let Ok(bytes) = std::fs::read(path)
        && let Ok(index) = serde_json::from_slice::<LayerIndex>(&bytes)
        && index.version == INDEX_VERSION
    {
        crate::fsutil::touch(path);
        return Ok(index);
    }
    let what = format!("layer {}", layer.digest);
    let stream = source.blob(layer).await?;
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let media_type = layer.media_type.clone();
    let index = tokio::task::spawn_blocking(move || {
        let tar = layer_tar_reader(&media_type, reader, &what)?;
        read_index(tar, &what)
    })
    .await
    .map_err(|e| Error::Internal(format!("layer indexing panicked: {e}")))??;
    if let Some(path) = &cached {
        // A cache that cannot be written only costs a re-read next time.
        let _ = write_cache_entry(path, &serde_json::to_vec(&index).expect("index serialises"));
    }
    Ok(index)
}

/// Applies one layer's index on top of `view`: deletions first (they only hide lower layers),
/// then the entries.
pub fn apply(view: &mut FsView, layer: &Digest, index: &LayerIndex) {
    for entry in &index.entries {
        match entry.kind {
            EntryKind::Whiteout => view.remove_tree(&entry.path),
            EntryKind::Opaque => view.clear_dir(&entry.path),
            EntryKind::Node(_) => {}
        }
    }
    for entry in &index.entries {
        let EntryKind::Node(kind) = &entry.kind else {
            continue;
        };
        let content = match kind {
            Kind::File => Content::Layer {
                layer: layer.clone(),
                path: entry.path.clone(),
            },
            _ => Content::None,
        };
        view.put_base(
            &entry.path,
            Node {
                kind: kind.clone(),
                mode: entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                mtime: entry.mtime,
                size: entry.size,
                content,
            },
        );
    }
}

/// Copies the named files out of a layer into `dir` (one streamed pass over the layer).
/// Returns tar path → local file.
pub async fn extract_files(
    source: &Source,
    layer: &Descriptor,
    wanted: BTreeSet<String>,
    dir: &Path,
) -> Result<BTreeMap<String, PathBuf>> {
    let what = format!("layer {}", layer.digest);
    let stream = source.blob(layer).await?;
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let media_type = layer.media_type.clone();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let tar = layer_tar_reader(&media_type, reader, &what)?;
        let mut archive = tar::Archive::new(tar);
        let bad = |e: std::io::Error| error_from_reader(e, &what, "unreadable tar");
        let mut found = BTreeMap::new();
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let path = entry_path(&entry.path_bytes(), &what)?;
            if !wanted.contains(&path) || entry.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let file = dir.join(format!("f{}", found.len()));
            let mut out = std::fs::File::create(&file).map_err(|e| Error::io(&file, e))?;
            std::io::copy(&mut entry, &mut out).map_err(bad)?;
            found.insert(path, file);
            if found.len() == wanted.len() {
                break;
            }
        }
        Ok(found)
    })
    .await
    .map_err(|e| Error::Internal(format!("layer extraction panicked: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            h.set_size(data.len() as u64);
            if let Some(link) = link {
                h.set_link_name(link).unwrap();
            }
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers() {
        let lower = read_index(
            &tar_of(&[
                ("etc/", tar::EntryType::Directory, b"", None),
                (
                    "etc/passwd",
                    tar::EntryType::Regular,
                    b"root:x:0:0::/root:/bin/sh\n",
                    None,
                ),
                ("keep/a", tar::EntryType::Regular, b"a", None),
                ("gone/b", tar::EntryType::Regular, b"b", None),
                ("bin", tar::EntryType::Symlink, b"", Some("usr/bin")),
            ])[..],
            "lower",
        )
        .unwrap();
        assert!(lower.captured["/etc/passwd"].starts_with("root:x:0"));
        let upper = read_index(
            &tar_of(&[
                ("gone/.wh..wh..opq", tar::EntryType::Regular, b"", None),
                ("gone/new", tar::EntryType::Regular, b"n", None),
                ("keep/.wh.a", tar::EntryType::Regular, b"", None),
            ])[..],
            "upper",
        )
        .unwrap();
        let mut view = FsView::new();
        let d = Digest::sha256_of(b"x");
        apply(&mut view, &d, &lower);
        apply(&mut view, &d, &upper);
        assert!(view.get("/keep/a").is_none());
        assert!(view.get("/gone/b").is_none());
        assert!(view.get("/gone/new").is_some());
        assert_eq!(
            view.get("/bin").unwrap().kind,
            Kind::Symlink("usr/bin".into())
        );
    }

    #[test]
    fn entries_climbing_out_are_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
        let err = read_index(&b.into_inner().unwrap()[..], "layer x").unwrap_err();
        assert!(err.to_string().contains("climbs out"), "{err}");
    }
}
