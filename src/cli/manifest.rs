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
    /// Where the index goes: host/repo:tag.
    #[arg(short = 't', long = "tag", required = true)]
    pub target: String,
    /// The images to join: host/repo:tag or host/repo@digest (each an image or an index).
    #[arg(required = true)]
    pub sources: Vec<String>,
    /// A platform given twice keeps the later source's image instead of failing.
    #[arg(long)]
    pub replace: bool,
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
    let merged = hoist::merge::merge(&ctx.client, &sources, &target, args.replace).await?;
    let digest = &merged.index.digest;
    let written = target.with_tag(target.tag_or_latest());
    args.files.write(&super::ci::pushed_image(
        &[ImageRef::Registry(written.clone())],
        digest,
    ))?;
    #[derive(serde::Serialize)]
    struct Entry {
        platform: String,
        source: String,
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        digest: &'a hoist::reference::Digest,
        tag: String,
        media_type: &'a str,
        platforms: Vec<Entry>,
    }
    let out = Out {
        digest,
        tag: written.to_string(),
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
        format!("merged {} → {} ({digest})", platforms.join(", "), out.tag)
    });
    Ok(())
}
