//! `hoist manifest merge`: per-platform images from separate runners → one index.

use hoist::Result;
use hoist::reference::{ImageRef, RegistryRef};

use super::Context;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Join single-platform images (or indexes) into one index, in the order given, without
    /// moving layers through hoist (blobs are mounted across repositories of one registry).
    Merge(MergeArgs),
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// Where the index goes: host/repo:tag (with --tags auto: host/repo).
    #[arg(short = 't', long = "tag", required = true)]
    pub target: String,
    /// The images to join: host/repo:tag or host/repo@digest (each an image or an index).
    #[arg(required = true)]
    pub sources: Vec<String>,
    /// A platform given twice keeps the later source's image instead of failing.
    #[arg(long)]
    pub replace: bool,
    #[command(flatten)]
    pub auto_tags: super::ci::AutoTagArgs,
    #[command(flatten)]
    pub files: super::ci::OutputFileArgs,
}

pub async fn run(ctx: &Context, command: Command) -> Result<()> {
    let Command::Merge(args) = command;
    let target = RegistryRef::parse(&args.target)?;
    let sources = args
        .sources
        .iter()
        .map(|s| RegistryRef::parse(s))
        .collect::<Result<Vec<_>>>()?;
    // --tags auto: the index is written under the first tag, then tagged with the others.
    let targets = if args.auto_tags.auto() {
        let (ci, config) = super::ci::detect(ctx, true)?;
        super::ci::expand(ctx, &args.auto_tags, &ci, &config, vec![target]).await?
    } else {
        vec![target.with_tag(target.tag_or_latest())]
    };
    let written = &targets[0];
    let merged = hoist::merge::merge(&ctx.client, &sources, written, args.replace).await?;
    let digest = &merged.index.digest;
    let more: Vec<String> = targets[1..].iter().filter_map(|t| t.tag.clone()).collect();
    if !more.is_empty() {
        hoist::copy::tag(&ctx.client, written, &more).await?;
    }
    let refs: Vec<ImageRef> = targets.iter().cloned().map(ImageRef::Registry).collect();
    args.files.write(&super::ci::pushed_image(&refs, digest))?;
    #[derive(serde::Serialize)]
    struct Entry {
        platform: String,
        source: String,
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        digest: &'a hoist::reference::Digest,
        tags: Vec<String>,
        media_type: &'a str,
        platforms: Vec<Entry>,
    }
    let out = Out {
        digest,
        tags: targets.iter().map(|t| t.to_string()).collect(),
        media_type: &merged.index.media_type,
        platforms: merged
            .entries
            .iter()
            .map(|(platform, source)| Entry {
                platform: platform.to_string(),
                source: source.clone(),
            })
            .collect(),
    };
    ctx.print(&out, || {
        let platforms: Vec<String> = out
            .platforms
            .iter()
            .map(|e| format!("{} ({})", e.platform, e.source))
            .collect();
        format!(
            "merged {} → {} ({digest})",
            platforms.join(", "),
            out.tags.join(", ")
        )
    });
    Ok(())
}
