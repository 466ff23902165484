use std::fmt::Write;

use hoist::oci::Platform;
use hoist::reference::ImageRef;
use hoist::source::Source;
use hoist::{Error, Result};

use super::Context;
use super::progress::human_bytes;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Registry reference or oci:DIR[:NAME].
    pub reference: String,
    /// Print the manifest (or index) exactly as stored.
    #[arg(long, conflicts_with = "config")]
    pub raw: bool,
    /// Print the image config exactly as stored (for an index: the --platform image).
    #[arg(long)]
    pub config: bool,
    /// Which image of an index to describe (default: this machine's platform).
    #[arg(long)]
    pub platform: Option<String>,
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    let source = Source::open(&ctx.client, &ImageRef::parse(&args.reference)?)?;
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).map_err(Error::Usage)?,
        None => Platform::host(),
    };
    if args.raw {
        let root = source.root().await?;
        println!("{}", String::from_utf8_lossy(&root.bytes));
        return Ok(());
    }
    if args.config {
        let manifest = source.image_for(&platform).await?;
        let (_, bytes, _) = source.config(&manifest).await?;
        println!("{}", String::from_utf8_lossy(&bytes));
        return Ok(());
    }
    let inspection = hoist::inspect::inspect(&source, &platform).await?;
    ctx.print(&inspection, || human(&inspection));
    Ok(())
}

fn human(i: &hoist::inspect::Inspection) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Name:       {}", i.reference);
    let _ = writeln!(out, "Digest:     {}", i.digest);
    let _ = writeln!(out, "MediaType:  {}", i.media_type);
    for m in &i.manifests {
        let _ = writeln!(
            out,
            "  {:<16} {}  {}",
            m.platform.as_deref().unwrap_or("(no platform)"),
            m.digest,
            m.media_type
        );
    }
    if let Some(image) = &i.image {
        if !i.manifests.is_empty() {
            let _ = writeln!(out, "Image:      {} ({})", image.digest, image.platform);
        } else {
            let _ = writeln!(out, "Platform:   {}", image.platform);
        }
        let _ = writeln!(out, "Config:     {}", image.config_digest);
        if let Some(created) = &image.created {
            let _ = writeln!(out, "Created:    {created}");
        }
        let _ = writeln!(
            out,
            "Layers:     {} ({})",
            image.layers.len(),
            human_bytes(image.layers_size)
        );
        if let Some(config) = image.config.as_ref().and_then(|c| c.as_object()) {
            for key in [
                "User",
                "WorkingDir",
                "Entrypoint",
                "Cmd",
                "Env",
                "ExposedPorts",
                "Labels",
            ] {
                if let Some(value) = config.get(key).filter(|v| !v.is_null()) {
                    let _ = writeln!(out, "{:<11} {value}", format!("{key}:"));
                }
            }
        }
    }
    out.trim_end().to_string()
}
