//! OCI and Docker schema 2 documents: descriptors, manifests, indexes, platforms.
//!
//! These are our own serde types rather than oci-spec's: oci-spec keeps annotations and labels in
//! `HashMap`s, whose serialisation order changes from run to run, and every document hoist writes
//! must serialise to the same bytes (the same digest) for the same content. Unknown fields are
//! kept (`extra`) so a document read and written again loses nothing.

pub mod platform;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::reference::Digest;

pub use platform::Platform;

pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

    /// What we accept when fetching a manifest, most preferred first.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

    pub fn is_index(media_type: &str) -> bool {
        media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
    }

    pub fn is_image_manifest(media_type: &str) -> bool {
        media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
    }
}

pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            extra: BTreeMap::new(),
        }
    }

    /// The descriptor of a document given as bytes.
    pub fn of_bytes(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor::new(media_type, Digest::sha256_of(bytes), bytes.len() as u64)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Index {
    pub fn new(media_type: &str, manifests: Vec<Descriptor>) -> Self {
        Index {
            schema_version: 2,
            media_type: Some(media_type.to_string()),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: None,
            extra: BTreeMap::new(),
        }
    }
}

/// A manifest as fetched: the exact bytes (which the digest covers) and what they parse to.
#[derive(Clone, Debug)]
pub struct RawManifest {
    pub bytes: bytes::Bytes,
    pub media_type: String,
    pub digest: Digest,
}

pub enum Parsed {
    Image(Box<Manifest>),
    Index(Box<Index>),
}

impl RawManifest {
    /// Wraps fetched bytes. The media type comes from the document itself when it names one,
    /// else from the transport's content type.
    pub fn new(bytes: bytes::Bytes, content_type: Option<&str>, what: &str) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            schema_version: Option<u32>,
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(&bytes)
            .map_err(|e| Error::malformed(what, format!("manifest is not valid JSON: {e}")))?;
        let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim());
        let media_type = match (probe.media_type, content_type) {
            (Some(m), _) => m,
            (None, Some(c)) if media::is_index(c) || media::is_image_manifest(c) => c.to_string(),
            // OCI documents may omit mediaType: tell them apart by shape.
            (None, _) if probe.manifests.is_some() => media::OCI_INDEX.to_string(),
            (None, _) => media::OCI_MANIFEST.to_string(),
        };
        if media_type == media::DOCKER_SCHEMA1 || media_type == media::DOCKER_SCHEMA1_SIGNED {
            return Err(Error::malformed(
                what,
                "Docker schema 1 manifests are not supported (re-push the image with a current Docker)",
            ));
        }
        if probe.schema_version != Some(2) {
            return Err(Error::malformed(what, "manifest schemaVersion is not 2"));
        }
        let digest = Digest::sha256_of(&bytes);
        Ok(RawManifest {
            bytes,
            media_type,
            digest,
        })
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            &self.media_type,
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }

    pub fn parse(&self) -> Result<Parsed> {
        let what = || format!("manifest {}", self.digest);
        if media::is_index(&self.media_type) {
            serde_json::from_slice(&self.bytes)
                .map(|i| Parsed::Index(Box::new(i)))
                .map_err(|e| Error::malformed(what(), e))
        } else if media::is_image_manifest(&self.media_type) {
            serde_json::from_slice(&self.bytes)
                .map(|m| Parsed::Image(Box::new(m)))
                .map_err(|e| Error::malformed(what(), e))
        } else {
            Err(Error::malformed(
                what(),
                format!("unsupported manifest media type `{}`", self.media_type),
            ))
        }
    }
}

/// The parts of an image config hoist reads (`inspect`, docker-archive, platform checks).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ImageConfigSummary {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// Serialises a document compactly, the way registries and Docker write them.
pub fn to_json_bytes<T: Serialize>(value: &T) -> bytes::Bytes {
    serde_json::to_vec(value)
        .expect("serialising an in-memory document cannot fail")
        .into()
}

/// A reader of a layer's uncompressed tar, for the layer media types hoist reads.
pub fn layer_tar_reader<'a, R: std::io::Read + Send + 'a>(
    media_type: &str,
    reader: R,
    what: &str,
) -> Result<Box<dyn std::io::Read + Send + 'a>> {
    match media_type {
        media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP => {
            Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
        }
        media::OCI_LAYER_TAR => Ok(Box::new(reader)),
        media::OCI_LAYER_ZSTD => Ok(Box::new(
            zstd::stream::read::Decoder::new(reader)
                .map_err(|e| Error::malformed(what, format!("cannot start zstd: {e}")))?,
        )),
        other => Err(Error::Usage(format!(
            "{what} has media type {other}, which hoist cannot read yet"
        ))),
    }
}
