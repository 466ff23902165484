//! `hoist mirror`: keep upstream images in a registry (ECR or any), from one file. Each run
//! copies only what changed: an unfiltered copy keeps the source digest (a HEAD compares it);
//! a platform-filtered copy is an OCI index carrying the source digest and platforms in
//! annotations, so it is recognised as up to date too.

pub mod config;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::copy::{CopyOptions, PlatformChoice, copy_source};
use crate::error::{Error, Result};
use crate::oci::Parsed;
use crate::reference::{ImageRef, RegistryRef};
use crate::registry::{Access, RegistryClient};
use crate::source::Source;
use config::{ImageSpec, MirrorFile, Selector, tag_version};

/// The annotation holding the digest a platform-filtered copy was made from.
pub const SOURCE_DIGEST_ANNOTATION: &str = "io.hoist.mirror.source-digest";
/// The annotation holding the platforms it kept.
pub const PLATFORMS_ANNOTATION: &str = "io.hoist.mirror.platforms";

pub struct MirrorOptions {
    pub dry_run: bool,
    /// Tags copied at once.
    pub jobs: usize,
    /// Tags copied at once from one source registry (Docker Hub limits pulls).
    pub per_registry: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Copied,
    UpToDate,
    /// `--dry-run`: would be copied.
    WouldCopy,
    Failed,
}

/// What happened to one source tag (or, when its tags could not be listed, one source).
#[derive(Debug, Serialize)]
pub struct TagResult {
    pub source: String,
    pub targets: Vec<String>,
    pub outcome: Outcome,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Mirrors every image of `file`; a failing image or tag is reported, the rest go on.
pub async fn run(
    client: &RegistryClient,
    file: &MirrorFile,
    options: &MirrorOptions,
) -> Vec<TagResult> {
    let permits = Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1)));
    let mut per_registry: std::collections::HashMap<&str, Arc<tokio::sync::Semaphore>> =
        std::collections::HashMap::new();
    for image in &file.images {
        per_registry
            .entry(image.source.registry.as_str())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(options.per_registry.max(1))));
    }
    let per_image = file.images.iter().map(|image| {
        let permits = permits.clone();
        let registry_permits = per_registry[image.source.registry.as_str()].clone();
        async move {
            let tags = match select_tags(client, image).await {
                Ok(tags) => tags,
                Err(e) => {
                    return vec![TagResult {
                        source: image.source.to_string(),
                        targets: vec![image.target.to_string()],
                        outcome: Outcome::Failed,
                        bytes: 0,
                        error: Some(e.to_string()),
                    }];
                }
            };
            futures_util::future::join_all(tags.into_iter().map(|tag| {
                let permits = permits.clone();
                let registry_permits = registry_permits.clone();
                async move {
                    let _permit = permits.acquire().await.expect("the semaphore stays open");
                    let _registry = registry_permits
                        .acquire()
                        .await
                        .expect("the semaphore stays open");
                    mirror_tag(client, image, &tag, options.dry_run).await
                }
            }))
            .await
        }
    });
    futures_util::future::join_all(per_image)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The tags of `image` to mirror, oldest first.
async fn select_tags(client: &RegistryClient, image: &ImageSpec) -> Result<Vec<String>> {
    let (selected, latest) = match &image.selector {
        Selector::Exact(tags) => return Ok(tags.clone()),
        Selector::Semver(range) => {
            let mut versions: Vec<(semver::Version, String)> = list(client, image)
                .await?
                .into_iter()
                .filter_map(|t| tag_version(&t).map(|v| (v, t)))
                .filter(|(v, _)| range.matches(v))
                .collect();
            versions.sort();
            (versions.into_iter().map(|(_, t)| t).collect(), image.latest)
        }
        Selector::Regex(pattern) => {
            let matching: Vec<String> = list(client, image)
                .await?
                .into_iter()
                .filter(|t| pattern.is_match(t))
                .collect();
            // Newest by version when every tag reads as one, else the registry's order.
            let versions: Option<Vec<(semver::Version, String)>> = matching
                .iter()
                .map(|t| tag_version(t).map(|v| (v, t.clone())))
                .collect();
            let ordered = match versions {
                Some(mut versions) => {
                    versions.sort();
                    versions.into_iter().map(|(_, t)| t).collect()
                }
                None => matching,
            };
            (ordered, image.latest)
        }
    };
    let skip = latest.map_or(0, |n| selected.len().saturating_sub(n));
    Ok(selected.into_iter().skip(skip).collect())
}

async fn list(client: &RegistryClient, image: &ImageSpec) -> Result<Vec<String>> {
    client.repository(&image.source, Access::Pull).tags().await
}

/// The tags `tag` gets at the target.
fn target_tags(image: &ImageSpec, tag: &str) -> Vec<String> {
    match image.rename.get(tag) {
        Some(names) => names.iter().map(|n| n.replace("{tag}", tag)).collect(),
        None => vec![tag.to_string()],
    }
}

async fn mirror_tag(
    client: &RegistryClient,
    image: &ImageSpec,
    tag: &str,
    dry_run: bool,
) -> TagResult {
    let source = image.source.with_tag(tag);
    let tags = target_tags(image, tag);
    let mut result = TagResult {
        source: source.to_string(),
        targets: tags
            .iter()
            .map(|t| image.target.with_tag(t).to_string())
            .collect(),
        outcome: Outcome::Failed,
        bytes: 0,
        error: None,
    };
    match mirror_tag_inner(client, image, &source, &tags, dry_run).await {
        Ok((outcome, bytes)) => {
            result.outcome = outcome;
            result.bytes = bytes;
        }
        Err(e) => result.error = Some(e.to_string()),
    }
    result
}

async fn mirror_tag_inner(
    client: &RegistryClient,
    image: &ImageSpec,
    source: &RegistryRef,
    tags: &[String],
    dry_run: bool,
) -> Result<(Outcome, u64)> {
    let opened = Source::open_pull(client, &ImageRef::Registry(source.clone())).await?;
    let root = opened.root().await?;
    // A filter applies to an index; a single image is copied as it is.
    let filter = match (&image.platforms, root.parse()?) {
        (Some(platforms), Parsed::Index(_)) => Some(platforms.clone()),
        _ => None,
    };
    let annotations = filter.as_ref().map(|platforms| {
        BTreeMap::from([
            (
                SOURCE_DIGEST_ANNOTATION.to_string(),
                root.digest.to_string(),
            ),
            (
                PLATFORMS_ANNOTATION.to_string(),
                platforms
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ])
    });
    let target = client.repository(&image.target, Access::Push);
    let mut stale = Vec::new();
    for tag in tags {
        let current = match &annotations {
            None => target.head_manifest(tag).await? == Some(root.digest.clone()),
            Some(wanted) => match target.get_manifest(tag).await {
                Ok(raw) => match raw.parse()? {
                    Parsed::Index(index) => index
                        .annotations
                        .as_ref()
                        .is_some_and(|have| wanted.iter().all(|(k, v)| have.get(k) == Some(v))),
                    Parsed::Image(_) => false,
                },
                Err(Error::NotFound { .. }) => false,
                Err(e) => return Err(e),
            },
        };
        if !current {
            stale.push(tag.clone());
        }
    }
    let Some((first, rest)) = stale.split_first() else {
        return Ok((Outcome::UpToDate, 0));
    };
    if dry_run {
        return Ok((Outcome::WouldCopy, 0));
    }
    let report = copy_source(
        client,
        &opened,
        &ImageRef::Registry(image.target.with_tag(first)),
        &CopyOptions {
            platforms: filter.map(PlatformChoice::Only),
            extra_tags: rest.to_vec(),
            subset_annotations: annotations,
            ..Default::default()
        },
        None,
    )
    .await?;
    let bytes = report
        .stats
        .bytes_transferred
        .load(std::sync::atomic::Ordering::Relaxed);
    Ok((Outcome::Copied, bytes))
}
