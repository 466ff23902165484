use hoist::Result;
use hoist::copy::{CopyOptions, PlatformChoice};
use hoist::reference::ImageRef;

use super::Context;
use super::progress::human_bytes;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source: registry reference or oci:DIR[:NAME].
    pub source: String,
    /// Destination: registry reference, oci:DIR[:NAME] or docker-archive:FILE[:NAME:TAG].
    pub destination: String,
    /// `all` (default; the host's platform for docker-archive) or os/arch[/variant][,...].
    #[arg(long)]
    pub platform: Option<String>,
    /// Copy every tag of the source repository.
    #[arg(long)]
    pub all_tags: bool,
    #[command(flatten)]
    pub ecr: super::ecr::EcrCreateArgs,
    #[command(flatten)]
    pub auto_tags: super::ci::AutoTagArgs,
    #[command(flatten)]
    pub files: super::ci::OutputFileArgs,
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    args.ecr.apply(&ctx.client)?;
    let src = ImageRef::parse(&args.source)?;
    let mut dst = ImageRef::parse(&args.destination)?;
    let mut extra_tags = Vec::new();
    if args.auto_tags.auto() {
        let ImageRef::Registry(repo) = &dst else {
            return Err(hoist::Error::Usage(
                "--tags auto needs a registry destination".into(),
            ));
        };
        let (ci, config) = super::ci::detect(ctx, true)?;
        let refs =
            super::ci::expand(ctx, &args.auto_tags, &ci, &config, vec![repo.clone()]).await?;
        let (first, extra) = super::ci::group_by_repository(refs)
            .into_iter()
            .next()
            .expect("one repository");
        dst = ImageRef::Registry(first);
        extra_tags = extra;
    }
    let options = CopyOptions {
        platforms: args
            .platform
            .as_deref()
            .map(PlatformChoice::parse)
            .transpose()?,
        all_tags: args.all_tags,
        extra_tags: extra_tags.clone(),
        ..Default::default()
    };
    let reports = hoist::copy::copy(&ctx.client, &src, &dst, &options).await?;
    if let Some(last) = reports.last() {
        let mut destinations = vec![dst.clone()];
        if let ImageRef::Registry(r) = &dst {
            destinations.extend(extra_tags.iter().map(|t| ImageRef::Registry(r.with_tag(t))));
        }
        args.files
            .write(&super::ci::pushed_image(&destinations, &last.digest))?;
    }
    let human = || {
        reports
            .iter()
            .map(|r| {
                use std::sync::atomic::Ordering::Relaxed;
                format!(
                    "copied {} to {} ({}; {} blobs, {} sent, {} mounted, {} already there)",
                    r.source,
                    r.destination,
                    r.digest,
                    r.stats.blobs_transferred.load(Relaxed)
                        + r.stats.blobs_mounted.load(Relaxed)
                        + r.stats.blobs_existing.load(Relaxed),
                    human_bytes(r.stats.bytes_transferred.load(Relaxed)),
                    r.stats.blobs_mounted.load(Relaxed),
                    r.stats.blobs_existing.load(Relaxed),
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    #[derive(serde::Serialize)]
    struct Out<'a> {
        copies: &'a [hoist::copy::CopyReport],
    }
    ctx.print(&Out { copies: &reports }, human);
    Ok(())
}
