//! `hoist cache verify` and `hoist cache prune`: the local build cache (HOIST_CACHE_DIR).

use hoist::build::cache_admin::{self, PruneReport, VerifyReport};
use hoist::{Error, Result};

use super::Context;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Re-hash every blob and read every record; remove what is corrupt, stale or left by an
    /// interrupted build (a build never uses a bad entry either way).
    Verify,
    /// Remove entries unused for longer than --max-age, then the least recently used until
    /// the cache fits in --max-size (after the builds using the cache end).
    Prune(PruneArgs),
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Keep at most this much: 10G, 500M, bytes.
    #[arg(long, value_name = "SIZE", required_unless_present = "max_age")]
    pub max_size: Option<String>,
    /// Remove what no build used for this long: 7d, 12h, 30m.
    #[arg(long, value_name = "AGE")]
    pub max_age: Option<String>,
}

pub fn run(ctx: &Context, command: Command) -> Result<()> {
    let root = super::build::cache_dir()
        .ok_or_else(|| Error::Usage("no cache directory: set HOIST_CACHE_DIR (or HOME)".into()))?;
    let _lock = cache_admin::lock_exclusive(&root, || {
        ctx.client
            .reporter()
            .report(hoist::progress::Event::Warning(
                "waiting for the builds using the cache to finish".into(),
            ));
    })?;
    match command {
        Command::Verify => {
            let report = cache_admin::verify(&root)?;
            ctx.print(&report, || verify_text(&report));
        }
        Command::Prune(args) => {
            let max_size = args
                .max_size
                .as_deref()
                .map(cache_admin::parse_size)
                .transpose()?;
            let max_age = args
                .max_age
                .as_deref()
                .map(cache_admin::parse_age)
                .transpose()?;
            let report =
                cache_admin::prune(&root, max_size, max_age, std::time::SystemTime::now())?;
            ctx.print(&report, || prune_text(&report));
        }
    }
    Ok(())
}

fn verify_text(r: &VerifyReport) -> String {
    let mut lines = vec![format!(
        "checked {} blobs, {} layer records, {} base indexes, {} unpacked layers: {} corrupt, {} stale, {} leftovers removed",
        r.blobs,
        r.layer_records,
        r.indexes,
        r.unpacked,
        r.corrupt.len(),
        r.stale,
        r.leftovers
    )];
    lines.extend(r.corrupt.iter().map(|c| format!("  removed corrupt {c}")));
    lines.join("\n")
}

fn prune_text(r: &PruneReport) -> String {
    format!(
        "removed {} entries ({}), kept {} ({})",
        r.removed,
        super::progress::human_bytes(r.freed_bytes),
        r.kept,
        super::progress::human_bytes(r.kept_bytes)
    )
}
