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
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    args.ecr.apply(&ctx.client)?;
    let src = ImageRef::parse(&args.source)?;
    let dst = ImageRef::parse(&args.destination)?;
    let options = CopyOptions {
        platforms: args
            .platform
            .as_deref()
            .map(PlatformChoice::parse)
            .transpose()?,
        all_tags: args.all_tags,
    };
    let reports = hoist::copy::copy(&ctx.client, &src, &dst, &options).await?;
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
