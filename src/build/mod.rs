//! `hoist build`: Dockerfile → image, without a daemon.

pub mod baseindex;
pub mod cache;
pub mod cache_admin;
pub mod container;
pub mod context;
pub mod dockerfile;
pub mod download;
pub mod execute;
pub mod extract;
pub mod fileop;
pub mod fsview;
pub mod gofmt;
pub mod ignore;
pub mod image;
pub mod layer;
pub mod plan;
pub mod remote_cache;
pub mod run;
pub mod runmount;
pub mod shell;
pub mod snapshot;
pub mod sshagent;
pub mod statcache;
pub mod userns;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::registry::RegistryClient;
use crate::source::{BuiltImage, Source};

pub use execute::{BuildOptions, ImageFormat};

/// A finished build: the image (not yet written anywhere) and what the cache did.
pub struct Built {
    pub image: Arc<BuiltImage>,
    pub cache: Arc<cache::Cache>,
}

/// Parses, plans and runs a build, then writes its `--cache-to` artifacts.
pub async fn build(client: &RegistryClient, options: &BuildOptions) -> Result<Built> {
    let (built, made) = build_image(client, options).await?;
    for destination in &options.cache_to {
        remote_cache::export(client, destination, &made).await?;
    }
    Ok(built)
}

/// Parses, plans and runs a build; returns the image and the layers it made or reused.
async fn build_image(
    client: &RegistryClient,
    options: &BuildOptions,
) -> Result<(Built, Vec<execute::CacheEntry>)> {
    let dockerfile_error = |line: usize, message: String| {
        Error::Usage(message).at_dockerfile_line(&options.dockerfile_name, line)
    };
    let dockerfile =
        dockerfile::parse(&options.dockerfile).map_err(|e| dockerfile_error(e.line, e.message))?;
    if let Some(syntax) = &dockerfile.syntax {
        client
            .reporter()
            .report(crate::progress::Event::Info(format!(
                "ignoring `# syntax={syntax}`: hoist has its own Dockerfile frontend"
            )));
    }
    let named = options.build_contexts.keys().cloned().collect();
    let plan = plan::plan(
        &dockerfile,
        &options.build_args,
        options.target.as_deref(),
        &crate::oci::Platform::host(),
        &options.platform,
        &named,
    )
    .map_err(|e| dockerfile_error(e.line, e.message))?;
    let cache = Arc::new(cache::Cache::open(
        options.cache_dir.as_deref(),
        !options.no_cache,
        &options.context,
        || {
            client.reporter().report(crate::progress::Event::Warning(
                "waiting for `hoist cache verify`/`prune` to finish with the cache".into(),
            ))
        },
    ));
    cache.import(remote_cache::import(client, &options.cache_from, &options.platform).await);
    let builder = execute::Builder::new(client, options, &dockerfile, &plan, cache.clone())?;
    let (image, made) = builder.run().await?;
    Ok((
        Built {
            image: Arc::new(image),
            cache,
        },
        made,
    ))
}

/// Builds the image for each of `platforms` (all at once) and joins them in one index: a
/// Docker manifest list for Docker-format images, else an OCI index. Entries keep the order
/// given; no attestation manifests (AWS Lambda refuses indexes holding them). One platform
/// gives a plain image.
pub async fn build_platforms(
    client: &RegistryClient,
    options: &BuildOptions,
    platforms: &[crate::oci::Platform],
) -> Result<Built> {
    if let [platform] = platforms {
        let options = BuildOptions {
            platform: platform.clone(),
            ..options.clone()
        };
        return build(client, &options).await;
    }
    let builds = futures_util::future::try_join_all(platforms.iter().map(|platform| {
        // Steps and errors say which platform's build they belong to, as buildx does.
        let options = BuildOptions {
            platform: platform.clone(),
            dockerfile_name: format!("[{platform}] {}", options.dockerfile_name),
            ..options.clone()
        };
        async move { build_image(client, &options).await }
    }))
    .await?;
    // One cache artifact for all platforms: each build's would overwrite the others'.
    let (builds, made): (Vec<Built>, Vec<Vec<execute::CacheEntry>>) = builds.into_iter().unzip();
    let made: Vec<execute::CacheEntry> = made.into_iter().flatten().collect();
    for destination in &options.cache_to {
        remote_cache::export(client, destination, &made).await?;
    }
    let media_type = match options.format {
        ImageFormat::Docker => crate::oci::media::DOCKER_MANIFEST_LIST,
        ImageFormat::Oci => crate::oci::media::OCI_INDEX,
    };
    let mut entries = Vec::new();
    let mut children = std::collections::HashMap::new();
    let mut blobs = std::collections::HashMap::new();
    let mut work = Vec::new();
    for (built, platform) in builds.iter().zip(platforms) {
        let image = &built.image;
        let mut entry = image.manifest.descriptor();
        entry.platform = Some(platform.clone());
        entries.push(entry);
        children.insert(image.manifest.digest.clone(), image.manifest.clone());
        blobs.extend(image.blobs.iter().map(|(d, o)| (d.clone(), o.clone())));
        work.extend(image.work.iter().cloned());
    }
    let index = crate::oci::Index::new(media_type, entries);
    let manifest = crate::oci::RawManifest::new(
        crate::oci::to_json_bytes(&index),
        Some(media_type),
        "the built index",
    )?;
    let cache = builds[0].cache.clone();
    for other in &builds[1..] {
        cache.stats.add(&other.cache.stats);
    }
    Ok(Built {
        image: Arc::new(BuiltImage {
            manifest,
            children,
            blobs,
            work,
        }),
        cache,
    })
}

/// The image as a copy source, for writing it to layouts, archives and registries.
pub fn as_source(image: &Arc<BuiltImage>) -> Source {
    Source::Built(image.clone())
}
