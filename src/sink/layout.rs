//! OCI image layouts (`oci:DIR[:NAME]`): `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.
//! Blobs are hashed while written and renamed into place only when their digest checks out;
//! `index.json` is replaced atomically under a lock, so readers never see a torn layout.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::digest::{Hasher, error_from_stream, verify_stream};
use crate::error::{Error, Result};
use crate::fsutil::{FileLock, write_atomic};
use crate::oci::{Descriptor, Index, REF_NAME_ANNOTATION, media, to_json_bytes};
use crate::reference::Digest;
use crate::registry::ByteStream;

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_VERSION: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

#[derive(Clone, Debug)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// Opens an existing layout for reading.
    pub fn open(dir: &Path) -> Result<Self> {
        let marker = dir.join(LAYOUT_FILE);
        if !marker.is_file() {
            return Err(Error::NotFound {
                what: format!("OCI layout {} (no {LAYOUT_FILE} file)", dir.display()),
            });
        }
        // Version 1.x is what this reader knows (the spec's only version so far).
        let version = std::fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["imageLayoutVersion"].as_str().map(str::to_string));
        if !version.as_deref().is_some_and(|v| v.starts_with("1.")) {
            return Err(Error::malformed(
                marker.display().to_string(),
                format!(
                    "imageLayoutVersion {}: hoist reads OCI layouts of version 1.x",
                    version.as_deref().unwrap_or("missing")
                ),
            ));
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    /// Opens a layout for writing, creating it if needed.
    pub fn create(dir: &Path) -> Result<Self> {
        let blobs = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        let marker = dir.join(LAYOUT_FILE);
        if !marker.is_file() {
            write_atomic(&marker, LAYOUT_VERSION, 0o644)?;
        }
        let index = dir.join("index.json");
        if !index.is_file() {
            write_atomic(
                &index,
                &to_json_bytes(&Index::new(media::OCI_INDEX, vec![])),
                0o644,
            )?;
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// Whether the blob is present with the right size (content was checked when written).
    pub fn has_blob(&self, desc: &Descriptor) -> bool {
        std::fs::metadata(self.blob_path(&desc.digest)).is_ok_and(|m| m.len() == desc.size)
    }

    /// Streams a blob into the layout; it appears only if its digest and size check out.
    pub async fn write_blob(&self, desc: &Descriptor, mut stream: ByteStream) -> Result<()> {
        let path = self.blob_path(&desc.digest);
        let dir = path
            .parent()
            .expect("blob paths have a parent")
            .to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io(&dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".hoist-tmp-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        let (std_file, tmp_path) = tmp.into_parts();
        let mut file =
            tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(std_file));
        let mut hasher = Hasher::new(desc.digest.algorithm())?;
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| error_from_stream(e, &format!("blob {}", desc.digest)))?;
            written += chunk.len() as u64;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io(&*tmp_path, e))?;
        }
        file.flush().await.map_err(|e| Error::io(&*tmp_path, e))?;
        let what = || format!("blob {}", desc.digest);
        if written != desc.size {
            return Err(Error::SizeMismatch {
                what: what(),
                expected: desc.size,
                actual: written,
            });
        }
        let actual = hasher.finish();
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                what: what(),
                expected: desc.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        tmp_path
            .persist(&path)
            .map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }

    pub async fn write_blob_bytes(&self, desc: &Descriptor, bytes: Bytes) -> Result<()> {
        if self.has_blob(desc) {
            return Ok(());
        }
        let stream: ByteStream = Box::pin(futures_util::stream::once(async { Ok(bytes) }));
        self.write_blob(desc, stream).await
    }

    /// A verified stream of a blob's bytes.
    pub async fn read_blob(&self, desc: &Descriptor) -> Result<ByteStream> {
        let path = self.blob_path(&desc.digest);
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound {
                    what: format!("blob {} in {}", desc.digest, self.dir.display()),
                }
            } else {
                Error::io(&path, e)
            }
        })?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        Ok(verify_stream(
            Box::pin(stream),
            desc.digest.clone(),
            desc.size,
            format!("blob {} in {}", desc.digest, self.dir.display()),
        ))
    }

    /// A small blob (manifest, config) read whole and verified.
    pub fn read_blob_bytes(&self, desc: &Descriptor, limit: u64) -> Result<Bytes> {
        if desc.size > limit {
            return Err(Error::malformed(
                format!("blob {} in {}", desc.digest, self.dir.display()),
                format!("{} bytes is more than the {limit} allowed", desc.size),
            ));
        }
        let path = self.blob_path(&desc.digest);
        let what = || format!("blob {} in {}", desc.digest, self.dir.display());
        // The size first: a blob other than described is not read at all.
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        if size != desc.size {
            return Err(Error::SizeMismatch {
                what: what(),
                expected: desc.size,
                actual: size,
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        crate::registry::client::verify_digest(
            &desc.digest,
            &bytes,
            &format!("blob {} in {}", desc.digest, self.dir.display()),
        )?;
        Ok(bytes.into())
    }

    pub fn index(&self) -> Result<Index> {
        let path = self.dir.join("index.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::malformed(path.display().to_string(), e))
    }

    /// The descriptor `index.json` names `name`, or its only entry when no name is given.
    pub fn resolve(&self, name: Option<&str>) -> Result<Descriptor> {
        let index = self.index()?;
        let names = || {
            let names: Vec<&str> = index
                .manifests
                .iter()
                .filter_map(|d| d.annotation(REF_NAME_ANNOTATION))
                .collect();
            if names.is_empty() {
                "it has no named images".to_string()
            } else {
                format!("it has: {}", names.join(", "))
            }
        };
        match name {
            Some(name) => index
                .manifests
                .iter()
                .find(|d| d.annotation(REF_NAME_ANNOTATION) == Some(name))
                .cloned()
                .ok_or_else(|| Error::NotFound {
                    what: format!(
                        "image `{name}` in OCI layout {} ({})",
                        self.dir.display(),
                        names()
                    ),
                }),
            None => match index.manifests.as_slice() {
                [only] => Ok(only.clone()),
                [] => Err(Error::NotFound {
                    what: format!(
                        "image in OCI layout {} (index.json is empty)",
                        self.dir.display()
                    ),
                }),
                _ => Err(Error::Usage(format!(
                    "OCI layout {} holds several images; name one as oci:DIR:NAME ({})",
                    self.dir.display(),
                    names()
                ))),
            },
        }
    }

    /// Points `name` at `desc` in `index.json`, replacing an entry of the same name.
    pub fn set_ref(&self, name: &str, desc: &Descriptor) -> Result<()> {
        let _lock = FileLock::acquire(&self.dir.join(".index.json.lock"))?;
        let mut index = self.index()?;
        index
            .manifests
            .retain(|d| d.annotation(REF_NAME_ANNOTATION) != Some(name));
        let mut entry = desc.clone();
        entry
            .annotations
            .get_or_insert_with(Default::default)
            .insert(REF_NAME_ANNOTATION.to_string(), name.to_string());
        index.manifests.push(entry);
        write_atomic(&self.dir.join("index.json"), &to_json_bytes(&index), 0o644)
    }
}
