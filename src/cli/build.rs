use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use hoist::build::execute::{NamedContext, SecretSource};
use hoist::build::{BuildOptions, ImageFormat};
use hoist::compress::Codec;
use hoist::copy::{CopyOptions, CopyReport};
use hoist::oci::Platform;
use hoist::progress::Event;
use hoist::reference::{ImageRef, LayoutRef, RegistryRef};
use hoist::{Error, Result};

use super::Context;

/// Where an image goes when neither --push nor --output says.
const DEFAULT_OUTPUT: &str = "hoist-out";

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Docker,
    Oci,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    Auto,
    Rootless,
    Chroot,
    Container,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CompressionArg {
    Gzip,
    Zstd,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The build context directory.
    #[arg(default_value = ".")]
    pub context: PathBuf,
    /// The Dockerfile (default CONTEXT/Dockerfile, else CONTEXT/Containerfile; `-` reads stdin).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Name the image (repeatable); pushed with --push.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Push to every -t reference.
    #[arg(long)]
    pub push: bool,
    #[command(flatten)]
    pub ecr: super::ecr::EcrCreateArgs,
    #[command(flatten)]
    pub auto_tags: super::ci::AutoTagArgs,
    /// Do not add org.opencontainers.image.* labels and annotations from the CI.
    #[arg(long)]
    pub no_ci_labels: bool,
    #[command(flatten)]
    pub files: super::ci::OutputFileArgs,
    /// Write the image to oci:DIR[:NAME], docker-archive:FILE[:NAME:TAG] or a registry reference.
    #[arg(long = "output", short = 'o')]
    pub outputs: Vec<String>,
    /// K=V, or K to take the value from the environment.
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Build this stage instead of the last.
    #[arg(long)]
    pub target: Option<String>,
    /// Add a label to the image config (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Add a manifest annotation (repeatable; written with --format oci).
    #[arg(long = "annotation")]
    pub annotations: Vec<String>,
    /// docker: Docker schema 2 media types (what docker push makes); oci: OCI media types.
    /// Default: docker when pushing to a registry, oci for layouts and archives only.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Layer compression: gzip (default, readable everywhere) or zstd (OCI media types).
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: CompressionArg,
    /// NAME=DIR, NAME=docker-image://REF or NAME=oci-layout://DIR[:REF]: usable in FROM and
    /// COPY --from, and replacing a stage or base image of that name (repeatable).
    #[arg(long = "build-context")]
    pub build_contexts: Vec<String>,
    /// Reuse layers from a cache artifact or an image hoist pushed (repeatable; first hit wins).
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Write this build's layers as a cache artifact to a registry reference or oci:DIR.
    #[arg(long = "cache-to")]
    pub cache_to: Vec<String>,
    /// Build every layer again instead of reusing cached ones.
    #[arg(long)]
    pub no_cache: bool,
    /// A secret for `RUN --mount=type=secret`: id=ID,src=FILE or id=ID,env=VAR (repeatable;
    /// never stored in the image, the cache or logs).
    #[arg(long = "secret", value_name = "id=ID,src=FILE|env=VAR")]
    pub secrets: Vec<String>,
    /// An ssh-agent for `RUN --mount=type=ssh`: `default` ($SSH_AUTH_SOCK) or ID=SOCKET
    /// (repeatable; the command can use the agent's keys, never read them).
    #[arg(long = "ssh", value_name = "default|ID=SOCKET")]
    pub ssh: Vec<String>,
    /// How RUN steps are isolated: auto picks chroot as root (needs CAP_SYS_ADMIN), rootless
    /// (user namespaces, ids from /etc/subuid) otherwise; container runs them in this job
    /// container itself, replacing its files (only inside a container, as root; never auto).
    #[arg(long, value_enum, default_value = "auto", env = "HOIST_ISOLATION")]
    pub isolation: Isolation,
    /// The target platform, or several (`linux/amd64,linux/arm64`: one image per platform,
    /// pushed as one index; RUN for a foreign platform needs a QEMU binfmt_misc handler).
    /// Default: this machine's.
    #[arg(long)]
    pub platform: Option<String>,
}

fn key_values(items: &[String], flag: &str) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::Usage(format!("{flag} `{item}` is not KEY=VALUE"))),
        })
        .collect()
}

/// `--secret id=ID,src=FILE` / `id=ID,env=VAR` (docker's syntax; `source`, `type` accepted).
/// With neither, the env var named like the id, else the file of that name.
fn secrets(items: &[String]) -> Result<BTreeMap<String, SecretSource>> {
    let mut out = BTreeMap::new();
    for item in items {
        let mut id = None;
        let mut source = None;
        for field in item.split(',') {
            let bad = || {
                Error::Usage(format!(
                    "--secret `{item}`: `{field}` is not KEY=VALUE (id, src, env, type)"
                ))
            };
            let (key, value) = field.split_once('=').ok_or_else(bad)?;
            match key.trim() {
                "id" => id = Some(value.to_string()),
                "src" | "source" => source = Some(SecretSource::File(PathBuf::from(value))),
                "env" => source = Some(SecretSource::Env(value.to_string())),
                "type" if matches!(value, "file" | "env") => {}
                _ => return Err(bad()),
            }
        }
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| Error::Usage(format!("--secret `{item}` has no id=")))?;
        let source = source.unwrap_or_else(|| {
            if std::env::var_os(&id).is_some() {
                SecretSource::Env(id.clone())
            } else {
                SecretSource::File(PathBuf::from(&id))
            }
        });
        out.insert(id, source);
    }
    Ok(out)
}

fn build_args(items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            Some(_) => return Err(Error::Usage(format!("--build-arg `{item}` has no name"))),
            // `--build-arg K`: from the environment, like docker; unset means not given.
            None => {
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// Reads the Dockerfile: its name for messages, its path (if a file) and its text.
fn read_dockerfile(
    context: &Path,
    file: Option<&Path>,
) -> Result<(String, Option<PathBuf>, String)> {
    let path = match file {
        Some(p) if p == Path::new("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Error::io("<stdin>", e))?;
            return Ok(("Dockerfile".into(), None, text));
        }
        Some(p) => p.to_path_buf(),
        None => {
            let docker = context.join("Dockerfile");
            let container = context.join("Containerfile");
            if !docker.exists() && container.exists() {
                container
            } else {
                docker
            }
        }
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Usage(format!("{}: no such Dockerfile", path.display()))
        } else {
            Error::io(&path, e)
        }
    })?;
    let name = path
        .file_name()
        .map_or("Dockerfile".into(), |n| n.to_string_lossy().into_owned());
    Ok((name, Some(path), text))
}

fn named_contexts(items: &[String]) -> Result<BTreeMap<String, NamedContext>> {
    items
        .iter()
        .map(|item| {
            let (name, value) = item
                .split_once('=')
                .filter(|(n, v)| !n.is_empty() && !v.is_empty())
                .ok_or_else(|| Error::Usage(format!("--build-context `{item}` is not NAME=VALUE")))?;
            let context = if let Some(reference) = value.strip_prefix("docker-image://") {
                NamedContext::Image(reference.to_string())
            } else if value.starts_with("oci-layout://") {
                NamedContext::Image(value.to_string())
            } else if value.contains("://") {
                return Err(Error::Usage(format!(
                    "--build-context {name}: only a directory, docker-image:// or oci-layout:// is supported"
                )));
            } else {
                NamedContext::Dir(PathBuf::from(value))
            };
            Ok((name.to_ascii_lowercase(), context))
        })
        .collect()
}

fn epoch(build_args: &BTreeMap<String, String>) -> Result<Option<i64>> {
    let value = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .filter(|v| !v.is_empty());
    value
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                Error::Usage(format!(
                    "SOURCE_DATE_EPOCH `{v}` is not a number of seconds"
                ))
            })
        })
        .transpose()
}

/// The build cache: HOIST_CACHE_DIR, else $XDG_CACHE_HOME/hoist or ~/.cache/hoist.
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("HOIST_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("hoist")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("hoist")))
}

/// `--platform a,b,...`: each parsed and normalised, in order, once.
fn parse_platforms(list: &str) -> Result<Vec<Platform>> {
    let mut platforms: Vec<Platform> = Vec::new();
    for item in list.split(',').map(str::trim) {
        let platform =
            Platform::parse(item).map_err(|e| Error::Usage(format!("--platform: {e}")))?;
        if platforms.contains(&platform) {
            return Err(Error::Usage(format!("--platform names {platform} twice")));
        }
        platforms.push(platform);
    }
    Ok(platforms)
}

/// Whether this build runs in a user namespace of its own (`rootless`): asked for, or picked
/// by `auto` when hoist is not root (root uses `chroot`).
pub fn runs_in_user_namespace(args: &Args) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match args.isolation {
        Isolation::Rootless => true,
        Isolation::Auto => !root,
        Isolation::Chroot | Isolation::Container => false,
    }
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    args.ecr.apply(&ctx.client)?;
    let (ci, project) = super::ci::detect(ctx, args.auto_tags.auto())?;
    let mut tags = args
        .tags
        .iter()
        .map(|t| RegistryRef::parse(t))
        .collect::<Result<Vec<_>>>()?;
    let mut auto_tags = args.auto_tags.clone();
    if args.push && tags.is_empty() {
        // GitLab: the project's registry, with this pipeline's tags.
        let Some(image) = &ci.registry_image else {
            return Err(Error::Usage(
                "--push needs at least one -t REFERENCE to push to (in GitLab CI it defaults to $CI_REGISTRY_IMAGE)".into(),
            ));
        };
        tags.push(RegistryRef::parse(image)?);
        auto_tags.mode = Some("auto".into());
    }
    let tags = super::ci::expand(ctx, &auto_tags, &ci, &project, tags).await?;
    let mut destinations: Vec<ImageRef> = args
        .outputs
        .iter()
        .map(|o| ImageRef::parse(o))
        .collect::<Result<_>>()?;
    // Each repository gets one copy; its other tags are one manifest PUT each.
    let mut extra_tags: Vec<Vec<String>> = vec![Vec::new(); destinations.len()];
    if args.push {
        for (first, extra) in super::ci::group_by_repository(tags.clone()) {
            destinations.push(ImageRef::Registry(first));
            extra_tags.push(extra);
        }
    }
    if destinations.is_empty() {
        extra_tags.push(Vec::new());
        destinations.push(ImageRef::Layout(LayoutRef {
            dir: PathBuf::from(DEFAULT_OUTPUT),
            name: Some(
                tags.first()
                    .map_or("latest".into(), |t| t.tag_or_latest().to_string()),
            ),
        }));
    }
    let build_args = build_args(&args.build_args)?;
    let (dockerfile_name, dockerfile_path, dockerfile) =
        read_dockerfile(&args.context, args.file.as_deref())?;
    let platforms = match &args.platform {
        Some(list) => parse_platforms(list)?,
        None => vec![Platform::host()],
    };
    let platform = platforms[0].clone();
    let cache_dir = cache_dir();
    // The outputs and the cache are never part of the context, even when inside it.
    let mut skipped: Vec<PathBuf> = destinations
        .iter()
        .filter_map(|d| match d {
            ImageRef::Layout(l) => Some(l.dir.clone()),
            ImageRef::Archive(a) => Some(a.path.clone()),
            ImageRef::Registry(_) => None,
        })
        .collect();
    skipped.push(PathBuf::from(DEFAULT_OUTPUT));
    skipped.extend(cache_dir.clone());
    // In CI a retried job gives the same digest: the commit time stands in for
    // SOURCE_DATE_EPOCH.
    let epoch = epoch(&build_args)?.or(ci.commit_time.filter(|_| ci.in_ci()));
    let mut labels = key_values(&args.labels, "--label")?;
    let mut annotations = key_values(&args.annotations, "--annotation")?;
    if ci.in_ci() && !args.no_ci_labels {
        for (key, value) in hoist::ci::outputs::oci_labels(&ci, epoch) {
            labels.entry(key.clone()).or_insert_with(|| value.clone());
            annotations.entry(key).or_insert(value);
        }
    }
    let options = BuildOptions {
        secrets: secrets(&args.secrets)?,
        ssh: hoist::build::sshagent::parse_sockets(
            &args.ssh,
            std::env::var("SSH_AUTH_SOCK").ok().as_deref(),
        )?,
        context: args.context.clone(),
        dockerfile_name,
        dockerfile_path,
        dockerfile,
        epoch,
        build_args,
        target: args.target.clone(),
        platform,
        labels,
        annotations,
        no_cache: args.no_cache,
        push_early: destinations
            .iter()
            .filter_map(|d| match d {
                ImageRef::Registry(r) => Some(r.clone()),
                _ => None,
            })
            .collect(),
        build_contexts: named_contexts(&args.build_contexts)?,
        cache_from: args
            .cache_from
            .iter()
            .map(|r| ImageRef::parse(r))
            .collect::<Result<_>>()?,
        cache_to: args
            .cache_to
            .iter()
            .map(|r| ImageRef::parse(r))
            .collect::<Result<_>>()?,
        compression: match args.compression {
            CompressionArg::Gzip => Codec::Gzip,
            CompressionArg::Zstd => Codec::Zstd,
        },
        format: match (args.format, args.compression) {
            (Some(Format::Docker), CompressionArg::Zstd) => {
                return Err(Error::Usage(
                    "--compression zstd needs OCI media types (Docker schema 2 has no zstd layer type): use --format oci".into(),
                ));
            }
            // zstd layers exist only as OCI media types, as BuildKit also decides.
            (_, CompressionArg::Zstd) => ImageFormat::Oci,
            (Some(Format::Docker), _) => ImageFormat::Docker,
            (Some(Format::Oci), _) => ImageFormat::Oci,
            // OCI layouts are read by OCI tools (umoci, skopeo's oci:) that want OCI types.
            (None, _)
                if destinations
                    .iter()
                    .any(|d| matches!(d, ImageRef::Registry(_))) =>
            {
                ImageFormat::Docker
            }
            (None, _) => ImageFormat::Oci,
        },
        cache_dir,
        skipped,
        isolation: if args.isolation == Isolation::Container {
            hoist::build::run::Isolation::Container
        } else {
            hoist::build::run::Isolation::Sandbox
        },
    };
    let reporter = ctx.client.reporter();
    let section = |id: &str, title: Option<String>| {
        reporter.report(match title {
            Some(title) => Event::SectionStart {
                id: id.into(),
                title,
            },
            None => Event::SectionEnd { id: id.into() },
        })
    };
    section(
        "hoist_build",
        Some(format!("build {}", options.dockerfile_name)),
    );
    let built = hoist::build::build_platforms(&ctx.client, &options, &platforms).await?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "built");
    section("hoist_build", None);
    let image = &built.image;
    let source = hoist::build::as_source(image);
    let mut reports: Vec<CopyReport> = Vec::new();
    section(
        "hoist_push",
        Some(format!(
            "write {}",
            destinations
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    );
    for (destination, extra) in destinations.iter().zip(&extra_tags) {
        // An archive is named by the first tag unless the destination names it.
        let destination = match destination {
            ImageRef::Archive(a) if a.name.is_none() => {
                let mut a = a.clone();
                a.name = tags.first().cloned();
                ImageRef::Archive(a)
            }
            other => other.clone(),
        };
        reports.push(
            hoist::copy::copy_source(
                &ctx.client,
                &source,
                &destination,
                &CopyOptions {
                    extra_tags: extra.clone(),
                    ..Default::default()
                },
                None,
            )
            .await?,
        );
    }
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "written");
    section("hoist_push", None);
    let mut written: Vec<ImageRef> = Vec::new();
    for (destination, extra) in destinations.iter().zip(&extra_tags) {
        written.push(destination.clone());
        if let ImageRef::Registry(r) = destination {
            written.extend(extra.iter().map(|t| ImageRef::Registry(r.with_tag(t))));
        }
    }
    let digest = &image.manifest.digest;
    args.files
        .write(&super::ci::pushed_image(&written, digest))?;
    let image_size = |manifest: &hoist::oci::RawManifest| -> Result<u64> {
        Ok(match manifest.parse()? {
            hoist::oci::Parsed::Image(m) => {
                m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>()
            }
            hoist::oci::Parsed::Index(_) => 0,
        })
    };
    // A multi-platform build: every platform's image counts.
    let size = if image.children.is_empty() {
        image_size(&image.manifest)?
    } else {
        image
            .children
            .values()
            .map(image_size)
            .sum::<Result<u64>>()?
    };
    #[derive(serde::Serialize)]
    struct Out<'a> {
        digest: &'a hoist::reference::Digest,
        outputs: Vec<&'a str>,
        tags: Vec<String>,
        size: u64,
        seconds: f64,
        cache: &'a hoist::build::cache::CacheStats,
    }
    let out = Out {
        digest,
        outputs: reports.iter().map(|r| r.destination.as_str()).collect(),
        tags: written
            .iter()
            .filter(|d| matches!(d, ImageRef::Registry(_)))
            .map(|d| d.to_string())
            .collect(),
        size,
        seconds: started.elapsed().as_secs_f64(),
        cache: &built.cache.stats,
    };
    ctx.print(&out, || {
        if !ci.in_ci() {
            return format!("built {digest} → {}", out.outputs.join(", "));
        }
        use std::sync::atomic::Ordering::Relaxed;
        let cache = &built.cache.stats;
        let reused = cache.layers_reused.load(Relaxed);
        let rows = [
            ("image", out.outputs.join(", ")),
            ("digest", digest.to_string()),
            ("tags", out.tags.join(", ")),
            ("size", super::progress::human_bytes(size)),
            ("time", format!("{:.1}s", out.seconds)),
            (
                "cache",
                format!(
                    "{reused} of {} layers reused, {} files unchanged",
                    reused + cache.layers_built.load(Relaxed),
                    cache.files_unchanged.load(Relaxed)
                ),
            ),
        ];
        rows.iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k:<8}{v}"))
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}
