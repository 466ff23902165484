//! `hoist manifest merge`: single-platform images (or indexes) built on separate runners
//! joined into one index, without moving layers through hoist: each platform's manifest is
//! copied into the target repository (its blobs mounted across repositories of one registry,
//! or found there already), then the index is written.

use std::collections::HashSet;

use crate::copy::{CopyOptions, copy_source};
use crate::error::{Error, Result};
use crate::oci::{Descriptor, Index, Parsed, Platform, RawManifest, media, to_json_bytes};
use crate::reference::{Digest, ImageRef, RegistryRef};
use crate::registry::RegistryClient;
use crate::source::Source;

/// What a merge wrote.
pub struct Merged {
    pub index: RawManifest,
    /// Each entry: its platform and where it came from.
    pub entries: Vec<(Platform, String)>,
}

/// One platform image found in a source.
struct Entry {
    descriptor: Descriptor,
    platform: Platform,
    source: usize,
}

/// The platform images of `sources` (in order; an index contributes its entries in its
/// order), joined into one index at `target`. A platform given twice is refused unless
/// `replace`, where the later source wins (in the earlier one's place).
pub async fn merge(
    client: &RegistryClient,
    sources: &[RegistryRef],
    target: &RegistryRef,
    replace: bool,
) -> Result<Merged> {
    let mut opened = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    for (n, reference) in sources.iter().enumerate() {
        let source = Source::open(client, &ImageRef::Registry(reference.clone()))?;
        for (descriptor, platform) in platform_images(&source, reference).await? {
            let platform = platform.normalized();
            let entry = Entry {
                descriptor,
                platform: platform.clone(),
                source: n,
            };
            match entries.iter().position(|e| e.platform == platform) {
                Some(at) if replace => entries[at] = entry,
                Some(at) => {
                    return Err(Error::Usage(format!(
                        "{platform} is in both {} and {reference}: pass --replace to keep the later one",
                        sources[entries[at].source]
                    )));
                }
                None => entries.push(entry),
            }
        }
        opened.push(source);
    }
    if entries.is_empty() {
        return Err(Error::Usage(
            "nothing to merge: no source has an image".into(),
        ));
    }
    // Each platform's manifest (and so its blobs) into the target repository, by digest.
    let mut copied: HashSet<Digest> = HashSet::new();
    for entry in &entries {
        if !copied.insert(entry.descriptor.digest.clone()) {
            continue;
        }
        let reference = sources[entry.source].with_digest(entry.descriptor.digest.clone());
        let child = Source::open(client, &ImageRef::Registry(reference))?;
        copy_source(
            client,
            &child,
            &ImageRef::Registry(target.with_digest(entry.descriptor.digest.clone())),
            &CopyOptions::default(),
            None,
        )
        .await?;
    }
    // A Docker manifest list when every entry is a Docker manifest (what `docker manifest`
    // and buildx write for Docker images), else an OCI index.
    let media_type = if entries
        .iter()
        .all(|e| e.descriptor.media_type == media::DOCKER_MANIFEST)
    {
        media::DOCKER_MANIFEST_LIST
    } else {
        media::OCI_INDEX
    };
    let manifests = entries
        .iter()
        .map(|e| Descriptor {
            platform: Some(e.platform.clone()),
            ..Descriptor::new(
                &e.descriptor.media_type,
                e.descriptor.digest.clone(),
                e.descriptor.size,
            )
        })
        .collect();
    let index = RawManifest::new(
        to_json_bytes(&Index::new(media_type, manifests)),
        Some(media_type),
        "the merged index",
    )?;
    let repo = client.repository(target, crate::registry::Access::Push);
    repo.put_manifest(target.tag_or_latest(), &index).await?;
    Ok(Merged {
        index,
        entries: entries
            .into_iter()
            .map(|e| (e.platform, sources[e.source].to_string()))
            .collect(),
    })
}

/// The platform images a source offers: an index's entries (attestations and other
/// platform-less entries left out), or the image itself with the platform of its config.
async fn platform_images(
    source: &Source,
    reference: &RegistryRef,
) -> Result<Vec<(Descriptor, Platform)>> {
    let root = source.root().await?;
    match root.parse()? {
        Parsed::Index(index) => Ok(index
            .manifests
            .into_iter()
            .filter_map(|d| {
                let platform = d.platform.clone()?;
                (platform.os != "unknown").then_some((d, platform))
            })
            .collect()),
        Parsed::Image(_) => {
            let (_, _, config) = source.config(&root).await?;
            if config.architecture.is_empty() || config.os.is_empty() {
                return Err(Error::malformed(
                    reference.to_string(),
                    "its config names no os/architecture, so it has no platform to merge under",
                ));
            }
            let platform =
                Platform::new(&config.os, &config.architecture, config.variant.as_deref());
            Ok(vec![(root.descriptor(), platform)])
        }
    }
}
