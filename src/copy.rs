//! Copying images between registries, OCI layouts and docker-archives.
//!
//! Order matters for never leaving a destination half-written: every blob of a manifest is
//! confirmed present before the manifest is written, every child manifest before its index, and
//! the tag (or layout ref name) last. Blobs stream from source to destination without touching
//! local disk; on the same registry they are mounted instead of moved.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::{BoxFuture, try_join_all};
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use serde::Serialize;
use tokio::sync::{OnceCell, Semaphore};

use crate::error::{Error, Result};
use crate::oci::{Descriptor, Index, Parsed, Platform, RawManifest, media, to_json_bytes};
use crate::progress::{BlobOutcome, Event, observe};
use crate::reference::{ArchiveRef, Digest, ImageRef, RegistryRef};
use bytes::Bytes;

use crate::registry::ByteStream;
use crate::registry::upload::{Session, check_progress};
use crate::registry::{Access, MountOutcome, PutOutcome, RegistryClient, Repository};
use crate::sink::{Layout, archive};
use crate::source::{BlobOrigin, Source, platforms_of, select_platform};

/// Blob transfers in flight at once, across all manifests of one copy.
const PARALLEL_BLOBS: usize = 8;
/// Indexes inside indexes: real images use one level (two with attestations); a chain
/// longer than this is hostile.
const MAX_INDEX_DEPTH: usize = 8;

/// Which platforms of a multi-platform image to copy.
#[derive(Clone, Debug, PartialEq)]
pub enum PlatformChoice {
    /// The whole index, byte for byte.
    All,
    /// One platform (the image manifest itself), or several (a new index of those).
    Only(Vec<Platform>),
}

impl PlatformChoice {
    /// `all` or `os/arch[/variant][,...]`.
    pub fn parse(s: &str) -> Result<Self> {
        if s.trim() == "all" {
            return Ok(PlatformChoice::All);
        }
        let platforms = s
            .split(',')
            .map(|p| Platform::parse(p.trim()).map_err(Error::Usage))
            .collect::<Result<Vec<_>>>()?;
        Ok(PlatformChoice::Only(platforms))
    }
}

#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// None: everything for registries and layouts, the host's platform for a docker-archive.
    pub platforms: Option<PlatformChoice>,
    /// Copy every tag of the source repository.
    pub all_tags: bool,
    /// More tags for a registry destination: one manifest PUT each after the copy.
    pub extra_tags: Vec<String>,
    /// With a platform choice from an index: always write a new OCI index (even for one
    /// platform) carrying these annotations, so the copy can be recognised later.
    pub subset_annotations: Option<BTreeMap<String, String>>,
}

/// Counts of what a copy moved, for `--json` and for tests.
#[derive(Debug, Default, Serialize)]
pub struct TransferStats {
    pub blobs_transferred: AtomicU64,
    pub bytes_transferred: AtomicU64,
    pub blobs_mounted: AtomicU64,
    pub blobs_existing: AtomicU64,
    pub manifests_written: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct CopyReport {
    pub source: String,
    pub destination: String,
    pub digest: Digest,
    pub media_type: String,
    pub stats: TransferStats,
}

pub async fn copy(
    client: &RegistryClient,
    src: &ImageRef,
    dst: &ImageRef,
    options: &CopyOptions,
) -> Result<Vec<CopyReport>> {
    if !options.all_tags {
        return Ok(vec![copy_one(client, src, dst, options).await?]);
    }
    let ImageRef::Registry(src_repo) = src else {
        return Err(Error::Usage(
            "--all-tags needs a registry repository as source".into(),
        ));
    };
    if src_repo.tag.is_some() || src_repo.digest.is_some() {
        return Err(Error::Usage(format!(
            "--all-tags copies a whole repository: name {} without a tag or digest",
            src_repo.repository_name()
        )));
    }
    let tags = client.repository(src_repo, Access::Pull).tags().await?;
    let mut reports = Vec::new();
    for tag in tags {
        let dst_tagged = match dst {
            ImageRef::Registry(r) if r.tag.is_none() && r.digest.is_none() => {
                ImageRef::Registry(r.with_tag(&tag))
            }
            ImageRef::Layout(l) if l.name.is_none() => {
                ImageRef::Layout(crate::reference::LayoutRef {
                    dir: l.dir.clone(),
                    name: Some(tag.clone()),
                })
            }
            _ => {
                return Err(Error::Usage(
                    "--all-tags needs a destination repository or OCI layout without a tag".into(),
                ));
            }
        };
        let src_tagged = ImageRef::Registry(src_repo.with_tag(&tag));
        reports.push(copy_one(client, &src_tagged, &dst_tagged, options).await?);
    }
    Ok(reports)
}

async fn copy_one(
    client: &RegistryClient,
    src: &ImageRef,
    dst: &ImageRef,
    options: &CopyOptions,
) -> Result<CopyReport> {
    let source = Source::open_pull(client, src).await?;
    copy_source(client, &source, dst, options, Some(src)).await
}

/// Copies an opened source (a registry image, a layout, or an image just built) to `dst`.
/// `src` names it for docker-archive tags when it is a registry reference.
pub async fn copy_source(
    client: &RegistryClient,
    source: &Source,
    dst: &ImageRef,
    options: &CopyOptions,
    src: Option<&ImageRef>,
) -> Result<CopyReport> {
    let choice = options.platforms.clone().unwrap_or(match dst {
        ImageRef::Archive(_) => PlatformChoice::Only(vec![Platform::host()]),
        _ => PlatformChoice::All,
    });
    let root = source.root().await?;
    let top = choose_platforms(source, root, &choice, options.subset_annotations.as_ref()).await?;
    let stats = TransferStats::default();
    let destination = match dst {
        ImageRef::Registry(r) => {
            let reference = destination_reference(r, source, &top)?;
            let repo = client.repository(r, Access::Push);
            let copier = Copier::new(client, source, Writer::Registry(repo.clone()), &stats);
            copier.copy_children(&top, 0).await?;
            let outcome = repo.put_manifest(&reference, &top).await?;
            let target = if reference.starts_with("sha") || outcome == PutOutcome::Skipped {
                r.with_digest(top.digest.clone()).to_string()
            } else {
                r.with_tag(&reference).to_string()
            };
            if outcome != PutOutcome::Unchanged {
                stats.manifests_written.fetch_add(1, Ordering::Relaxed);
                client.reporter().report(Event::ManifestWritten {
                    target: target.clone(),
                    digest: top.digest.clone(),
                });
            }
            for tag in options.extra_tags.iter().filter(|t| **t != reference) {
                if repo.put_manifest(tag, &top).await? == PutOutcome::Written {
                    stats.manifests_written.fetch_add(1, Ordering::Relaxed);
                    client.reporter().report(Event::ManifestWritten {
                        target: r.with_tag(tag).to_string(),
                        digest: top.digest.clone(),
                    });
                }
            }
            target
        }
        ImageRef::Layout(l) => {
            let layout = Layout::create(&l.dir)?;
            let name = l
                .name
                .clone()
                .or_else(|| source.tag().map(str::to_string))
                .unwrap_or_else(|| "latest".to_string());
            let copier = Copier::new(client, source, Writer::Layout(layout.clone()), &stats);
            copier.copy_children(&top, 0).await?;
            copier.write_manifest(&top).await?;
            layout.set_ref(&name, &top.descriptor())?;
            let target = format!("oci:{}:{name}", l.dir.display());
            client.reporter().report(Event::ManifestWritten {
                target: target.clone(),
                digest: top.digest.clone(),
            });
            target
        }
        ImageRef::Archive(a) => {
            write_archive(client, source, src, a, &top, &stats).await?;
            a.path.display().to_string()
        }
    };
    Ok(CopyReport {
        source: source.describe(),
        destination,
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        stats,
    })
}

/// The tag or digest to store the top manifest under: the destination's own, else the
/// source's tag, else `latest`. A destination digest must be the digest being copied.
fn destination_reference(dst: &RegistryRef, source: &Source, top: &RawManifest) -> Result<String> {
    if let Some(digest) = &dst.digest {
        if *digest != top.digest {
            return Err(Error::Usage(format!(
                "destination {dst} names digest {digest}, but the image copied is {}",
                top.digest
            )));
        }
        if dst.tag.is_none() {
            return Ok(digest.to_string());
        }
    }
    Ok(dst
        .tag
        .clone()
        .or_else(|| source.tag().map(str::to_string))
        .unwrap_or_else(|| "latest".to_string()))
}

/// Applies the platform choice to the root: the root itself, one child manifest, or a new
/// index holding the chosen children.
async fn choose_platforms(
    source: &Source,
    root: RawManifest,
    choice: &PlatformChoice,
    annotations: Option<&BTreeMap<String, String>>,
) -> Result<RawManifest> {
    let Parsed::Index(index) = root.parse()? else {
        return Ok(root);
    };
    let PlatformChoice::Only(platforms) = choice else {
        return Ok(root);
    };
    let mut chosen: Vec<Descriptor> = Vec::new();
    for platform in platforms {
        let desc = select_platform(&index.manifests, platform).ok_or_else(|| {
            Error::Usage(format!(
                "{} has no image for {platform} (it has: {})",
                source.describe(),
                platforms_of(&index.manifests)
            ))
        })?;
        if !chosen.contains(desc) {
            chosen.push(desc.clone());
        }
    }
    if let Some(annotations) = annotations {
        let mut subset = Index::new(media::OCI_INDEX, chosen);
        subset.annotations = Some(annotations.clone());
        return RawManifest::new(
            to_json_bytes(&subset),
            Some(media::OCI_INDEX),
            "platform subset index",
        );
    }
    if let [only] = chosen.as_slice() {
        return source.manifest(only).await;
    }
    let media_type = root.media_type.clone();
    let subset = Index {
        manifests: chosen,
        ..*index
    };
    let bytes = to_json_bytes(&subset);
    RawManifest::new(bytes, Some(&media_type), "platform subset index")
}

enum Writer {
    Registry(Repository),
    Layout(Layout),
}

struct Copier<'a> {
    client: &'a RegistryClient,
    source: &'a Source,
    writer: Writer,
    stats: &'a TransferStats,
    /// One transfer per digest, however many manifests share the blob.
    blobs: Mutex<HashMap<Digest, Arc<OnceCell<()>>>>,
    permits: Semaphore,
}

impl<'a> Copier<'a> {
    fn new(
        client: &'a RegistryClient,
        source: &'a Source,
        writer: Writer,
        stats: &'a TransferStats,
    ) -> Self {
        Copier {
            client,
            source,
            writer,
            stats,
            blobs: Mutex::new(HashMap::new()),
            permits: Semaphore::new(PARALLEL_BLOBS),
        }
    }

    /// Copies everything `manifest` refers to (blobs, child manifests), but not the manifest.
    /// `depth`: how many indexes lead here (bounded: a hostile chain must end).
    fn copy_children<'b>(
        &'b self,
        manifest: &'b RawManifest,
        depth: usize,
    ) -> BoxFuture<'b, Result<()>> {
        async move {
            if depth > MAX_INDEX_DEPTH {
                return Err(Error::malformed(
                    format!("manifest {}", manifest.digest),
                    format!("indexes nest more than {MAX_INDEX_DEPTH} deep"),
                ));
            }
            match manifest.parse()? {
                Parsed::Image(m) => {
                    let blobs = std::iter::once(m.config).chain(m.layers);
                    futures_util::stream::iter(blobs.map(|d| self.copy_blob(d)))
                        .buffer_unordered(PARALLEL_BLOBS)
                        .try_collect::<Vec<()>>()
                        .await?;
                }
                Parsed::Index(index) => {
                    try_join_all(index.manifests.iter().map(|desc| async move {
                        if !media::is_index(&desc.media_type)
                            && !media::is_image_manifest(&desc.media_type)
                        {
                            // An artifact manifest we cannot parse is still a manifest to copy.
                            tracing::debug!(
                                media_type = desc.media_type,
                                "copying an unfamiliar manifest"
                            );
                        }
                        let child = self.source.manifest(desc).await?;
                        self.copy_children(&child, depth + 1).await?;
                        self.write_manifest(&child).await
                    }))
                    .await?;
                }
            }
            Ok(())
        }
        .boxed()
    }

    /// Writes a manifest by digest (an index's child, or a layout blob).
    async fn write_manifest(&self, manifest: &RawManifest) -> Result<()> {
        match &self.writer {
            Writer::Registry(repo) => {
                // Written once per run however many copies share it (tags of one image).
                repo.push_flight(&manifest.digest)
                    .get_or_try_init(|| async {
                        repo.put_manifest(manifest.digest.as_str(), manifest)
                            .await
                            .map(|_| ())
                    })
                    .await?;
            }
            Writer::Layout(layout) => {
                layout
                    .write_blob_bytes(&manifest.descriptor(), manifest.bytes.clone())
                    .await?
            }
        }
        self.stats.manifests_written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn copy_blob(&self, desc: Descriptor) -> Result<()> {
        let cell = self
            .blobs
            .lock()
            .expect("blob map lock")
            .entry(desc.digest.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let _permit = self
                .permits
                .acquire()
                .await
                .expect("semaphore is never closed");
            let started = Instant::now();
            let reporter = self.client.reporter();
            reporter.report(Event::BlobStarted {
                digest: desc.digest.clone(),
                size: desc.size,
            });
            let outcome = match &self.writer {
                Writer::Registry(repo) => self.push_blob(repo, &desc).await?,
                Writer::Layout(layout) => self.store_blob(layout, &desc).await?,
            };
            let counter = match outcome {
                BlobOutcome::Exists => &self.stats.blobs_existing,
                BlobOutcome::Mounted => &self.stats.blobs_mounted,
                BlobOutcome::Transferred => {
                    self.stats
                        .bytes_transferred
                        .fetch_add(desc.size, Ordering::Relaxed);
                    &self.stats.blobs_transferred
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
            reporter.report(Event::BlobDone {
                digest: desc.digest.clone(),
                size: desc.size,
                outcome,
                elapsed: started.elapsed(),
            });
            Ok(())
        })
        .await
        .copied()
    }

    async fn push_blob(&self, repo: &Repository, desc: &Descriptor) -> Result<BlobOutcome> {
        push_blob(self.client, self.source, repo, desc).await
    }

    async fn store_blob(&self, layout: &Layout, desc: &Descriptor) -> Result<BlobOutcome> {
        if layout.has_blob(desc) {
            return Ok(BlobOutcome::Exists);
        }
        let what = format!("blob {} into {}", desc.digest, layout.dir().display());
        self.client
            .retry_policy()
            .run(&what, self.client.reporter(), || async {
                let stream = observe(
                    self.source.blob(desc).await?,
                    &desc.digest,
                    self.client.reporter(),
                );
                layout.write_blob(desc, stream).await?;
                Ok(BlobOutcome::Transferred)
            })
            .await
    }
}

async fn write_archive(
    client: &RegistryClient,
    source: &Source,
    src: Option<&ImageRef>,
    dst: &ArchiveRef,
    top: &RawManifest,
    stats: &TransferStats,
) -> Result<()> {
    let Parsed::Image(manifest) = top.parse()? else {
        return Err(Error::Usage(
            "a docker-archive holds one platform: choose it with --platform os/arch".into(),
        ));
    };
    let (config_desc, config, summary) = source.config(top).await?;
    let diff_ids = summary.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    let name = dst.name.clone().or_else(|| match src {
        Some(ImageRef::Registry(r)) if r.tag.is_some() => Some(r.with_tag(r.tag_or_latest())),
        _ => None,
    });
    let image = archive::ArchiveImage {
        config,
        config_digest: config_desc.digest,
        layers: manifest.layers,
        diff_ids,
        name,
    };
    archive::write(&dst.path, image, |desc| {
        stats
            .bytes_transferred
            .fetch_add(desc.size, Ordering::Relaxed);
        stats.blobs_transferred.fetch_add(1, Ordering::Relaxed);
        async move {
            Ok(observe(
                source.blob(&desc).await?,
                &desc.digest,
                client.reporter(),
            ))
        }
    })
    .await?;
    stats.manifests_written.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Where a blob to push comes from: a source image, or one blob of a build.
pub trait BlobSource: Sync {
    /// The repository of the same registry it can be mounted from, if any.
    fn mount_origin(&self, desc: &Descriptor) -> Option<&Repository>;
    /// Its bytes, verified against the descriptor.
    fn open<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<ByteStream>>;
    /// Whether [`BlobSource::read_part`] works (a local file or bytes in memory).
    fn reads_parts(&self) -> bool {
        false
    }
    /// `len` bytes (fewer at the end) from byte `start`.
    fn read_part<'a>(
        &'a self,
        _desc: &'a Descriptor,
        _start: u64,
        _len: u64,
    ) -> BoxFuture<'a, Result<Bytes>> {
        async { Err(Error::Internal("this blob source reads no parts".into())) }.boxed()
    }
}

/// Uploads a blob in parts (PATCH), the last one with the closing PUT. A part that fails
/// on the way is resumed from what the registry says it holds, within the retry policy;
/// what else fails goes to the caller, which starts a new session.
async fn upload_in_parts(
    client: &RegistryClient,
    source: &dyn BlobSource,
    repo: &Repository,
    desc: &Descriptor,
    session: Session,
    what: &str,
) -> Result<()> {
    let part_size = client.upload_settings().part_size(&repo.registry, &session);
    let policy = client.retry_policy();
    let mut session = session;
    let mut start = 0u64;
    let mut failures = 0u32;
    let started = std::time::Instant::now();
    loop {
        let len = part_size.min(desc.size - start);
        let part = source.read_part(desc, start, len).await?;
        let last = start + len == desc.size;
        let sent = if last {
            let body: ByteStream = Box::pin(futures_util::stream::once(async move { Ok(part) }));
            repo.put_blob(session.location.clone(), &desc.digest, start, len, body)
                .await
                .map(|()| None)
        } else {
            repo.patch_part(&session, start, part).await.map(Some)
        };
        client.reporter().report(Event::BlobProgress {
            digest: desc.digest.clone(),
            bytes: start + len,
        });
        let error = match sent {
            Ok(None) => return Ok(()),
            Ok(Some(progress)) => {
                check_progress(what, progress.received, start + len)?;
                session = progress.session;
                start = progress.received;
                continue;
            }
            Err(error) if error.is_transient() => error,
            Err(error) => return Err(error),
        };
        failures += 1;
        policy
            .back_off(what, client.reporter(), started, failures, error, None)
            .await?;
        if last && repo.has_blob(&desc.digest).await? {
            // The closing PUT went through; its answer was lost.
            return Ok(());
        }
        let progress = repo.upload_progress(&session).await?;
        check_progress(what, progress.received, start + len)?;
        session = progress.session;
        start = progress.received;
    }
}

impl BlobSource for Source {
    fn mount_origin(&self, desc: &Descriptor) -> Option<&Repository> {
        Source::mount_origin(self, desc)
    }

    fn open<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<ByteStream>> {
        self.blob(desc).boxed()
    }
}

impl BlobSource for BlobOrigin {
    fn mount_origin(&self, desc: &Descriptor) -> Option<&Repository> {
        match self {
            BlobOrigin::Remote(source) => source.mount_origin(desc),
            BlobOrigin::File(_) | BlobOrigin::Bytes(_) => None,
        }
    }

    fn reads_parts(&self) -> bool {
        !matches!(self, BlobOrigin::Remote(_))
    }

    fn read_part<'a>(
        &'a self,
        desc: &'a Descriptor,
        start: u64,
        len: u64,
    ) -> BoxFuture<'a, Result<Bytes>> {
        async move {
            match self {
                BlobOrigin::Bytes(bytes) => {
                    let end = (start + len).min(bytes.len() as u64);
                    Ok(bytes.slice(start.min(end) as usize..end as usize))
                }
                BlobOrigin::File(path) => {
                    use tokio::io::{AsyncReadExt, AsyncSeekExt};
                    let io = |e| Error::io(path, e);
                    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
                    file.seek(std::io::SeekFrom::Start(start))
                        .await
                        .map_err(io)?;
                    let mut part = Vec::with_capacity(len as usize);
                    file.take(len).read_to_end(&mut part).await.map_err(io)?;
                    if (part.len() as u64) < len.min(desc.size - start) {
                        return Err(Error::malformed(
                            format!("blob {}", desc.digest),
                            format!("{} is shorter than its {} bytes", path.display(), desc.size),
                        ));
                    }
                    Ok(Bytes::from(part))
                }
                BlobOrigin::Remote(_) => {
                    Err(Error::Internal("remote blobs are not read in parts".into()))
                }
            }
        }
        .boxed()
    }

    fn open<'a>(&'a self, desc: &'a Descriptor) -> BoxFuture<'a, Result<ByteStream>> {
        async move {
            match self {
                BlobOrigin::Remote(source) => source.blob(desc).await,
                BlobOrigin::File(path) => {
                    let file = tokio::fs::File::open(path)
                        .await
                        .map_err(|e| Error::io(path, e))?;
                    let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
                    Ok(crate::digest::verify_stream(
                        Box::pin(stream),
                        desc.digest.clone(),
                        desc.size,
                        format!("blob {}", desc.digest),
                    ))
                }
                BlobOrigin::Bytes(bytes) => {
                    let bytes = bytes.clone();
                    let stream = futures_util::stream::once(async move { Ok(bytes) });
                    Ok(crate::digest::verify_stream(
                        Box::pin(stream),
                        desc.digest.clone(),
                        desc.size,
                        format!("blob {}", desc.digest),
                    ))
                }
            }
        }
        .boxed()
    }
}

/// Puts one blob into a repository: HEAD, then a cross-repository mount when source and
/// destination share the registry, then a streamed monolithic upload; the whole transfer is
/// retried on transient failure.
pub async fn push_blob(
    client: &RegistryClient,
    source: &dyn BlobSource,
    repo: &Repository,
    desc: &Descriptor,
) -> Result<BlobOutcome> {
    // One push per blob and repository at a time: a second caller waits for the first and
    // finds the blob there (or tries again if the first failed).
    let flight = repo.push_flight(&desc.digest);
    let mut outcome = BlobOutcome::Exists;
    flight
        .get_or_try_init(|| async {
            outcome = push_blob_once(client, source, repo, desc).await?;
            Ok::<(), Error>(())
        })
        .await?;
    Ok(outcome)
}

async fn push_blob_once(
    client: &RegistryClient,
    source: &dyn BlobSource,
    repo: &Repository,
    desc: &Descriptor,
) -> Result<BlobOutcome> {
    if repo.has_blob(&desc.digest).await? {
        return Ok(BlobOutcome::Exists);
    }
    let mount_from = source
        .mount_origin(desc)
        .filter(|s| s.registry == repo.registry && s.name != repo.name);
    let what = format!(
        "upload of {} to {}/{}",
        desc.digest, repo.registry, repo.name
    );
    let outcome = client
        .retry_policy()
        .run(&what, client.reporter(), || async {
            let session = match mount_from {
                Some(from) => match repo.mount_blob(&desc.digest, &from.name).await? {
                    MountOutcome::Mounted => return Ok(BlobOutcome::Mounted),
                    MountOutcome::Upload(session) => session,
                },
                None => repo.start_upload().await?,
            };
            if desc.size >= client.upload_settings().chunked_from && source.reads_parts() {
                upload_in_parts(client, source, repo, desc, session, &what).await?;
            } else {
                let stream = observe(source.open(desc).await?, &desc.digest, client.reporter());
                repo.put_blob(session.location, &desc.digest, 0, desc.size, stream)
                    .await?;
            }
            Ok(BlobOutcome::Transferred)
        })
        .await?;
    repo.mark_present(&desc.digest);
    Ok(outcome)
}

/// Adds tags to an image in the same repository: one manifest PUT per tag, no blob moves.
pub async fn tag(client: &RegistryClient, source: &RegistryRef, tags: &[String]) -> Result<Digest> {
    let repo = client.repository(source, Access::Push);
    let manifest = repo.get_manifest(&source.manifest_reference()).await?;
    for tag in tags {
        if repo.put_manifest(tag, &manifest).await? == PutOutcome::Written {
            client.reporter().report(Event::ManifestWritten {
                target: source.with_tag(tag).to_string(),
                digest: manifest.digest.clone(),
            });
        }
    }
    Ok(manifest.digest)
}
