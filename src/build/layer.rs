//! Writing a layer: tar (deterministic order and headers), compression on all cores, and the
//! sha256 of both the compressed bytes (the blob digest) and the tar (the diff_id), in one
//! streaming pass.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::fsview::{Content, Entry, Kind, Node, Special};
use crate::compress::{BlockWriter, Codec};
use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::oci::Descriptor;
use crate::reference::Digest;

/// A layer written to local disk.
#[derive(Clone, Debug)]
pub struct BuiltLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub path: PathBuf,
}

/// Hashes everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Opens the bytes of a file node.
pub type ContentOpener<'a> = dyn Fn(&Content) -> Result<Box<dyn Read>> + 'a;

/// Writes `entries` (absolute paths, in order) as a compressed layer into `dir` (named by
/// digest), compressing on `threads` threads with a fixed block layout (see
/// [`crate::compress`]). With `epoch`, mtimes later than it are clamped to it.
pub fn write_layer(
    entries: &[Entry<'_>],
    open: &ContentOpener,
    epoch: Option<i64>,
    codec: Codec,
    threads: usize,
    dir: &Path,
) -> Result<BuiltLayer> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".hoist-layer-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let tmp_path = tmp.path().to_path_buf();
    let io = |e: std::io::Error| Error::io(&tmp_path, e);
    let file = tmp.reopen().map_err(io)?;
    let (diff_id, digest) = std::thread::scope(|scope| -> Result<(Digest, Digest)> {
        let compressed = HashingWriter {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hasher: Hasher::new("sha256")?,
        };
        let uncompressed = HashingWriter {
            inner: BlockWriter::new(scope, compressed, codec, threads),
            hasher: Hasher::new("sha256")?,
        };
        let mut builder = tar::Builder::new(uncompressed);
        for (path, node) in entries {
            append_entry(&mut builder, path, node, open, epoch)?;
        }
        let HashingWriter {
            inner: blocks,
            hasher,
        } = builder.into_inner().map_err(io)?;
        let diff_id = hasher.finish();
        let mut compressed = blocks.finish().map_err(io)?;
        compressed.flush().map_err(io)?;
        Ok((diff_id, compressed.hasher.finish()))
    })?;
    let size = tmp
        .as_file()
        .metadata()
        .map_err(|e| Error::io(tmp.path(), e))?
        .len();
    let path = dir.join(digest.hex());
    tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
    Ok(BuiltLayer {
        descriptor: Descriptor::new(codec.media_type(), digest, size),
        diff_id,
        path,
    })
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    node: &Node,
    open: &ContentOpener,
    epoch: Option<i64>,
) -> Result<()> {
    let name = path.trim_start_matches('/');
    let mut header = tar::Header::new_ustar();
    header.set_mode(node.mode & 0o7777);
    header.set_uid(node.uid.into());
    header.set_gid(node.gid.into());
    let mtime = epoch.map_or(node.mtime, |e| node.mtime.min(e)).max(0);
    header.set_mtime(mtime as u64);
    header.set_size(0);
    let what = || format!("layer entry {path}");
    let tar_err = |e: std::io::Error| Error::malformed(what(), e);
    match &node.kind {
        Kind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            builder
                .append_data(&mut header, format!("{name}/"), std::io::empty())
                .map_err(tar_err)
        }
        Kind::File => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(node.size);
            // File capabilities travel with the file, the only xattr BuildKit's layer writer
            // keeps (containerd pkg/archive/tar.go, ChangeWriter.HandleChange).
            if let Content::Local(source) = &node.content
                && let Some(capability) = crate::fsutil::file_capability(&source.path)
            {
                builder
                    .append_pax_extensions([(
                        "SCHILY.xattr.security.capability",
                        capability.as_slice(),
                    )])
                    .map_err(tar_err)?;
            }
            let reader = open(&node.content)?;
            // A file that changed size since it was looked at would corrupt the tar.
            let mut limited = ExactSize {
                inner: reader,
                left: node.size,
                path,
            };
            builder
                .append_data(&mut header, name, &mut limited)
                .map_err(|e| {
                    crate::digest::carried_error(&e).unwrap_or_else(|| Error::malformed(what(), e))
                })
        }
        Kind::Symlink(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            builder
                .append_link(&mut header, name, target)
                .map_err(tar_err)
        }
        Kind::Hardlink(target) => {
            header.set_entry_type(tar::EntryType::Link);
            builder
                .append_link(&mut header, name, target.trim_start_matches('/'))
                .map_err(tar_err)
        }
        Kind::Other(special) => {
            let (kind, major, minor) = match special {
                Special::Fifo => (tar::EntryType::Fifo, 0, 0),
                Special::Char { major, minor } => (tar::EntryType::Char, *major, *minor),
                Special::Block { major, minor } => (tar::EntryType::Block, *major, *minor),
            };
            header.set_entry_type(kind);
            header.set_device_major(major).map_err(tar_err)?;
            header.set_device_minor(minor).map_err(tar_err)?;
            builder
                .append_data(&mut header, name, std::io::empty())
                .map_err(tar_err)
        }
    }
}

/// Reads exactly `left` bytes or fails: the size in the tar header must be the truth.
struct ExactSize<'a> {
    inner: Box<dyn Read>,
    left: u64,
    path: &'a str,
}

impl Read for ExactSize<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "{} shrank while it was being read",
                self.path
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fsview::borrow_entries;
    use std::sync::Arc;

    fn open(content: &Content) -> Result<Box<dyn Read>> {
        match content {
            Content::Bytes(b) => Ok(Box::new(std::io::Cursor::new(b.to_vec()))),
            other => panic!("unexpected content {other:?}"),
        }
    }

    fn entries() -> Vec<(String, Node)> {
        let data = Arc::new(b"hello\n".to_vec());
        vec![
            ("/app".into(), Node::dir(0o755, 0, 0, 1_700_000_000)),
            (
                "/app/hello".into(),
                Node {
                    kind: Kind::File,
                    mode: 0o4755,
                    uid: 1000,
                    gid: 1000,
                    mtime: 1_800_000_000,
                    size: 6,
                    content: Content::Bytes(data),
                },
            ),
            (
                format!("/app/{}", "long".repeat(40)),
                Node {
                    kind: Kind::Symlink("hello".into()),
                    ..Node::dir(0o777, 0, 0, 0)
                },
            ),
        ]
    }

    #[test]
    fn same_entries_same_digest_and_readable_tar() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_layer(
            &borrow_entries(&entries()),
            &open,
            Some(1_750_000_000),
            Codec::Gzip,
            1,
            dir.path(),
        )
        .unwrap();
        let b = write_layer(
            &borrow_entries(&entries()),
            &open,
            Some(1_750_000_000),
            Codec::Gzip,
            4,
            dir.path(),
        )
        .unwrap();
        assert_eq!(a.descriptor.digest, b.descriptor.digest);
        assert_eq!(
            a.path.file_name().unwrap().to_str().unwrap(),
            a.descriptor.digest.hex()
        );

        let bytes = std::fs::read(&a.path).unwrap();
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut tar_bytes)
            .unwrap();
        assert_eq!(Digest::sha256_of(&tar_bytes), a.diff_id);
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let got: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(got[0], ("app/".into(), 0o755, 1_700_000_000));
        assert_eq!(
            got[1],
            ("app/hello".into(), 0o4755, 1_750_000_000),
            "mtime clamped"
        );
        assert_eq!(
            got[2].0,
            format!("app/{}", "long".repeat(40)),
            "long names survive"
        );
    }
}
