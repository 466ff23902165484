//! What `hoist inspect` reports about an image or index.

use serde::Serialize;

use crate::error::Result;
use crate::oci::{Descriptor, Parsed, Platform};
use crate::reference::Digest;
use crate::source::Source;

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// The entries of an index.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<IndexEntry>,
    /// The image itself, or the one chosen from the index for the requested platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSummary>,
}

#[derive(Debug, Serialize)]
pub struct IndexEntry {
    pub platform: Option<String>,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct ImageSummary {
    pub digest: Digest,
    pub platform: String,
    pub created: Option<String>,
    pub config_digest: Digest,
    pub layers: Vec<Descriptor>,
    pub layers_size: u64,
    /// The image config's `config` object (Env, Cmd, Entrypoint, Labels, ...).
    pub config: Option<serde_json::Value>,
}

/// Reads the root manifest and, for an index, the image for `platform` if one matches.
pub async fn inspect(source: &Source, platform: &Platform) -> Result<Inspection> {
    let root = source.root().await?;
    let mut manifests = Vec::new();
    let image_manifest = match root.parse()? {
        Parsed::Image(_) => Some(root.clone()),
        Parsed::Index(index) => {
            manifests = index
                .manifests
                .iter()
                .map(|d| IndexEntry {
                    platform: d
                        .platform
                        .as_ref()
                        .map(|p| p.clone().normalized().to_string()),
                    digest: d.digest.clone(),
                    media_type: d.media_type.clone(),
                    size: d.size,
                })
                .collect();
            match crate::source::select_platform(&index.manifests, platform) {
                Some(desc) => Some(source.manifest(desc).await?),
                None => None,
            }
        }
    };
    let image = match image_manifest {
        Some(m) => {
            let Parsed::Image(parsed) = m.parse()? else {
                return Err(crate::Error::malformed(
                    format!("manifest {}", m.digest),
                    "an index entry for a platform is itself an index",
                ));
            };
            let (config_desc, _, summary) = source.config(&m).await?;
            let platform = Platform::new(
                &summary.os,
                &summary.architecture,
                summary.variant.as_deref(),
            )
            .normalized();
            Some(ImageSummary {
                digest: m.digest.clone(),
                platform: platform.to_string(),
                created: summary.created,
                config_digest: config_desc.digest,
                layers_size: parsed.layers.iter().map(|l| l.size).sum(),
                layers: parsed.layers,
                config: summary.config,
            })
        }
        None => None,
    };
    Ok(Inspection {
        reference: source.describe(),
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        size: root.bytes.len() as u64,
        manifests,
        image,
    })
}
