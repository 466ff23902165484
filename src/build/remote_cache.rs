//! The build cache in a registry (or OCI layout), for CI runners that start empty:
//! `--cache-to REF` pushes an OCI artifact whose first layer is a keys document (cache key →
//! layer) and whose other layers are the layer blobs themselves; `--cache-from REF` reads
//! such an artifact, or an image hoist pushed (its config carries the keys inline). A hit
//! needs no download: the blob is mounted or copied from there when the image is written.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::cache::RemoteLayer;
use super::execute::CacheEntry;
use super::image::ImageConfig;
use crate::copy::{CopyOptions, copy_source};
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Manifest, Parsed, Platform, RawManifest, media, to_json_bytes};
use crate::progress::Event;
use crate::reference::{Digest, ImageRef};
use crate::registry::RegistryClient;
use crate::source::{BlobOrigin, BuiltImage, Source};

pub const ARTIFACT_TYPE: &str = "application/vnd.hoist.build-cache.v1";
const KEYS_MEDIA_TYPE: &str = "application/vnd.hoist.build-cache.keys.v1+json";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

#[derive(Serialize, Deserialize)]
struct KeysDocument {
    layers: Vec<KeyEntry>,
}

#[derive(Serialize, Deserialize)]
struct KeyEntry {
    key: Digest,
    diff_id: Digest,
    /// Index into the artifact's layers.
    layer: usize,
}

/// Reads every `--cache-from` reference; one that cannot be read is a warning, not an error
/// (a first build has no cache yet).
pub async fn import(
    client: &RegistryClient,
    references: &[ImageRef],
    platform: &Platform,
) -> Vec<(Digest, RemoteLayer)> {
    let mut layers = Vec::new();
    for reference in references {
        match import_one(client, reference, platform).await {
            Ok(found) => {
                client.reporter().report(Event::Info(format!(
                    "cache from {reference}: {} layers",
                    found.len()
                )));
                layers.extend(found);
            }
            Err(e) => client.reporter().report(Event::Warning(format!(
                "cache from {reference} not used: {e}"
            ))),
        }
    }
    layers
}

async fn import_one(
    client: &RegistryClient,
    reference: &ImageRef,
    platform: &Platform,
) -> Result<Vec<(Digest, RemoteLayer)>> {
    let source = Arc::new(Source::open(client, reference)?);
    let root = source.root().await?;
    let remote = |descriptor: &Descriptor, diff_id: &Digest| RemoteLayer {
        descriptor: descriptor.clone(),
        diff_id: diff_id.clone(),
        source: source.clone(),
    };
    if let Parsed::Image(manifest) = root.parse()?
        && manifest.artifact_type.as_deref() == Some(ARTIFACT_TYPE)
    {
        let keys_desc = manifest
            .layers
            .first()
            .ok_or_else(|| Error::malformed(reference.to_string(), "cache artifact has no keys"))?;
        let doc: KeysDocument = serde_json::from_slice(&source.blob_bytes(keys_desc).await?)
            .map_err(|e| Error::malformed(reference.to_string(), e))?;
        return doc
            .layers
            .iter()
            .map(|entry| {
                let layer = manifest.layers.get(entry.layer).ok_or_else(|| {
                    Error::malformed(reference.to_string(), "cache key names a missing layer")
                })?;
                Ok((entry.key.clone(), remote(layer, &entry.diff_id)))
            })
            .collect();
    }
    // An image: its config carries the keys of the layers hoist built.
    let image = source.image_for(platform).await?;
    let Parsed::Image(manifest) = image.parse()? else {
        return Ok(Vec::new());
    };
    let (_, config, _) = source.config(&image).await?;
    let config: ImageConfig = serde_json::from_slice(&config)
        .map_err(|e| Error::malformed(format!("image config of {reference}"), e))?;
    let keys = config.cache_keys.unwrap_or_default();
    Ok(keys
        .iter()
        .zip(&manifest.layers)
        .zip(&config.rootfs.diff_ids)
        .filter_map(|((key, layer), diff_id)| Some((key.clone()?, remote(layer, diff_id))))
        .collect())
}

/// Writes the cache artifact for `entries` to `destination`.
pub async fn export(
    client: &RegistryClient,
    destination: &ImageRef,
    entries: &[CacheEntry],
) -> Result<()> {
    let mut blobs: HashMap<Digest, BlobOrigin> = HashMap::new();
    let mut layers = Vec::new();
    let mut keys = Vec::new();
    for entry in entries {
        if blobs.contains_key(&entry.descriptor.digest) {
            // The same blob under another key: point at its first position.
            let at = layers
                .iter()
                .position(|d: &Descriptor| d.digest == entry.descriptor.digest)
                .map_or(0, |i| i + 1);
            keys.push(KeyEntry {
                key: entry.key.clone(),
                diff_id: entry.diff_id.clone(),
                layer: at,
            });
            continue;
        }
        blobs.insert(entry.descriptor.digest.clone(), entry.origin.clone());
        layers.push(entry.descriptor.clone());
        keys.push(KeyEntry {
            key: entry.key.clone(),
            diff_id: entry.diff_id.clone(),
            layer: layers.len(),
        });
    }
    let doc = to_json_bytes(&KeysDocument { layers: keys });
    let doc_desc = Descriptor::of_bytes(KEYS_MEDIA_TYPE, &doc);
    let empty = Bytes::from_static(b"{}");
    let empty_desc = Descriptor::of_bytes(EMPTY_MEDIA_TYPE, &empty);
    blobs.insert(doc_desc.digest.clone(), BlobOrigin::Bytes(doc));
    blobs.insert(empty_desc.digest.clone(), BlobOrigin::Bytes(empty));
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        artifact_type: Some(ARTIFACT_TYPE.to_string()),
        config: empty_desc,
        layers: std::iter::once(doc_desc).chain(layers).collect(),
        subject: None,
        annotations: None,
        extra: Default::default(),
    };
    let manifest = RawManifest::new(
        to_json_bytes(&manifest),
        Some(media::OCI_MANIFEST),
        "cache manifest",
    )?;
    let artifact = Source::Built(Arc::new(BuiltImage {
        manifest,
        blobs,
        children: Default::default(),
        work: Vec::new(),
    }));
    copy_source(
        client,
        &artifact,
        destination,
        &CopyOptions::default(),
        None,
    )
    .await?;
    Ok(())
}
