//! Reading images: from a registry repository or an OCI layout, with every manifest and blob
//! verified against its digest.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::oci::{Descriptor, ImageConfigSummary, Parsed, Platform, RawManifest};
use crate::reference::{Digest, ImageRef, RegistryRef};
use crate::registry::{Access, ByteStream, RegistryClient, Repository};
use crate::sink::Layout;

/// Configs larger than this are refused (real ones are a few KiB).
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

pub enum Source {
    Registry {
        repo: Repository,
        reference: RegistryRef,
    },
    Layout {
        layout: Layout,
        name: Option<String>,
    },
    /// An image `hoist build` just made: new blobs on local disk, base blobs where they are.
    Built(Arc<BuiltImage>),
}

/// Where one blob of a built image is.
#[derive(Clone)]
pub enum BlobOrigin {
    File(PathBuf),
    Bytes(Bytes),
    /// In a base image's source (registry or layout): streamed or mounted from there.
    Remote(Arc<Source>),
}

pub struct BuiltImage {
    /// The image's manifest, or the index of a multi-platform build.
    pub manifest: RawManifest,
    /// An index's platform manifests, by digest (empty for a single image).
    pub children: HashMap<Digest, RawManifest>,
    pub blobs: HashMap<Digest, BlobOrigin>,
    /// Keeps the directories holding the new layers alive as long as the image.
    pub work: Vec<Arc<tempfile::TempDir>>,
}

impl Source {
    pub fn open(client: &RegistryClient, image: &ImageRef) -> Result<Self> {
        match image {
            ImageRef::Registry(r) => Ok(Source::Registry {
                repo: client.repository(r, Access::Pull),
                reference: r.clone(),
            }),
            ImageRef::Layout(l) => Ok(Source::Layout {
                layout: Layout::open(&l.dir)?,
                name: l.name.clone(),
            }),
            ImageRef::Archive(a) => Err(Error::Usage(format!(
                "reading from a docker-archive ({}) is not supported; it can only be written",
                a.path.display()
            ))),
        }
    }

    /// [`Source::open`] for reading an image: a registry image comes through a configured
    /// pull mirror when one has it.
    pub async fn open_pull(client: &RegistryClient, image: &ImageRef) -> Result<Self> {
        match image {
            ImageRef::Registry(r) => {
                let from = client.pull_from(r).await;
                Source::open(client, &ImageRef::Registry(from))
            }
            other => Source::open(client, other),
        }
    }

    /// The registry repository a blob can be mounted from, if it lives in one.
    pub fn mount_origin(&self, desc: &Descriptor) -> Option<&Repository> {
        match self {
            Source::Registry { repo, .. } => Some(repo),
            Source::Layout { .. } => None,
            Source::Built(image) => match image.blobs.get(&desc.digest)? {
                BlobOrigin::Remote(source) => source.mount_origin(desc),
                BlobOrigin::File(_) | BlobOrigin::Bytes(_) => None,
            },
        }
    }

    /// The tag this source names, if any: the default tag of a copy's destination.
    pub fn tag(&self) -> Option<&str> {
        match self {
            Source::Registry { reference, .. } => reference.tag.as_deref(),
            Source::Layout { name, .. } => name.as_deref(),
            Source::Built(_) => None,
        }
    }

    /// The manifest or index the reference points at.
    pub async fn root(&self) -> Result<RawManifest> {
        match self {
            Source::Registry { repo, reference } => {
                repo.get_manifest(&reference.manifest_reference()).await
            }
            Source::Layout { layout, name } => {
                let desc = layout.resolve(name.as_deref())?;
                self.manifest(&desc).await
            }
            Source::Built(image) => Ok(image.manifest.clone()),
        }
    }

    /// A manifest named by a descriptor (an index entry), verified.
    pub async fn manifest(&self, desc: &Descriptor) -> Result<RawManifest> {
        let what = format!("manifest {}", desc.digest);
        let raw = match self {
            Source::Registry { repo, .. } => repo.get_manifest(desc.digest.as_str()).await?,
            Source::Layout { layout, .. } => RawManifest::new(
                layout.read_blob_bytes(desc, MAX_MANIFEST_BYTES)?,
                Some(&desc.media_type),
                &what,
            )?,
            Source::Built(image) => image
                .children
                .get(&desc.digest)
                .unwrap_or(&image.manifest)
                .clone(),
        };
        if raw.digest != desc.digest {
            return Err(Error::DigestMismatch {
                what,
                expected: desc.digest.to_string(),
                actual: raw.digest.to_string(),
            });
        }
        Ok(raw)
    }

    /// A blob's bytes as a stream that fails at its end if they do not match the descriptor.
    pub async fn blob(&self, desc: &Descriptor) -> Result<ByteStream> {
        match self {
            Source::Registry { repo, .. } => repo.get_blob(&desc.digest, desc.size).await,
            Source::Layout { layout, .. } => layout.read_blob(desc).await,
            Source::Built(image) => match image.blobs.get(&desc.digest) {
                Some(origin) => crate::copy::BlobSource::open(origin, desc).await,
                None => Err(Error::NotFound {
                    what: format!("blob {}", desc.digest),
                }),
            },
        }
    }

    /// A small blob (a config) read whole and verified.
    pub async fn blob_bytes(&self, desc: &Descriptor) -> Result<Bytes> {
        if desc.size > MAX_CONFIG_BYTES {
            return Err(Error::malformed(
                format!("blob {}", desc.digest),
                format!(
                    "{} bytes is more than the {MAX_CONFIG_BYTES} allowed",
                    desc.size
                ),
            ));
        }
        match self {
            Source::Layout { layout, .. } => layout.read_blob_bytes(desc, MAX_CONFIG_BYTES),
            Source::Registry { .. } | Source::Built(_) => {
                use futures_util::TryStreamExt;
                let what = format!("blob {}", desc.digest);
                let chunks: Vec<Bytes> = self
                    .blob(desc)
                    .await?
                    .try_collect()
                    .await
                    .map_err(|e| crate::digest::error_from_stream(e, &what))?;
                Ok(chunks.concat().into())
            }
        }
    }

    /// Resolves the root to one image manifest for `platform` (the root itself if it is one).
    pub async fn image_for(&self, platform: &Platform) -> Result<RawManifest> {
        let root = self.root().await?;
        match root.parse()? {
            Parsed::Image(_) => Ok(root),
            Parsed::Index(index) => {
                let desc = select_platform(&index.manifests, platform).ok_or_else(|| {
                    Error::Usage(format!(
                        "{} has no image for {platform} (it has: {})",
                        self.describe(),
                        platforms_of(&index.manifests)
                    ))
                })?;
                self.manifest(desc).await
            }
        }
    }

    /// The parsed config summary of an image manifest.
    pub async fn config(
        &self,
        manifest: &RawManifest,
    ) -> Result<(Descriptor, Bytes, ImageConfigSummary)> {
        let Parsed::Image(m) = manifest.parse()? else {
            return Err(Error::Internal("config asked of an index".into()));
        };
        let bytes = self.blob_bytes(&m.config).await?;
        let summary: ImageConfigSummary = serde_json::from_slice(&bytes)
            .map_err(|e| Error::malformed(format!("image config {}", m.config.digest), e))?;
        Ok((m.config, bytes, summary))
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Registry { reference, .. } => reference.to_string(),
            Source::Layout { layout, name } => match name {
                Some(n) => format!("oci:{}:{n}", layout.dir().display()),
                None => format!("oci:{}", layout.dir().display()),
            },
            Source::Built(image) => format!("built image {}", image.manifest.digest),
        }
    }
}

/// The best entry of an index for `platform` (containerd's matching and preference).
pub fn select_platform<'a>(
    manifests: &'a [Descriptor],
    platform: &Platform,
) -> Option<&'a Descriptor> {
    manifests
        .iter()
        .filter(|d| d.platform.as_ref().is_some_and(|p| platform.accepts(p)))
        .max_by_key(|d| platform.preference(d.platform.as_ref().expect("filtered on platform")))
}

/// `linux/amd64, linux/arm64` for messages.
pub fn platforms_of(manifests: &[Descriptor]) -> String {
    let list: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.clone().normalized().to_string())
        .collect();
    if list.is_empty() {
        "no platforms".into()
    } else {
        list.join(", ")
    }
}
