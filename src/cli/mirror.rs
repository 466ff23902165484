//! `hoist mirror -f mirror.yaml`: keep upstream images in a registry.

use std::path::PathBuf;

use hoist::mirror::{MirrorOptions, Outcome, TagResult};
use hoist::{Error, Result};

use super::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The mirror file (see README).
    #[arg(short = 'f', long = "file", default_value = "mirror.yaml")]
    pub file: PathBuf,
    /// Say what would be copied; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Tags copied at once.
    #[arg(long, default_value_t = 8)]
    pub jobs: usize,
    /// Tags copied at once from any one source registry (Docker Hub rate-limits pulls; 429
    /// answers are waited out as Retry-After says).
    #[arg(long, default_value_t = 4)]
    pub per_registry: usize,
}

pub async fn run(ctx: &Context, args: Args) -> Result<()> {
    let name = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).map_err(|e| Error::io(&args.file, e))?;
    let file = hoist::mirror::config::parse(&text, &name)?;
    if file.ecr.create {
        ctx.client.set_ecr_create(hoist::aws::ecr::RepositorySpec {
            scan_on_push: Some(file.ecr.scan_on_push),
            lifecycle_policy: hoist::aws::ecr::lifecycle_policy(file.ecr.keep, None),
            ..Default::default()
        });
    }
    let results = hoist::mirror::run(
        &ctx.client,
        &file,
        &MirrorOptions {
            dry_run: args.dry_run,
            jobs: args.jobs,
            per_registry: args.per_registry,
        },
    )
    .await;
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
    let failed = count(Outcome::Failed);
    #[derive(serde::Serialize)]
    struct Out<'a> {
        copied: usize,
        up_to_date: usize,
        would_copy: usize,
        failed: usize,
        bytes: u64,
        results: &'a [TagResult],
    }
    let out = Out {
        copied: count(Outcome::Copied),
        up_to_date: count(Outcome::UpToDate),
        would_copy: count(Outcome::WouldCopy),
        failed,
        bytes: results.iter().map(|r| r.bytes).sum(),
        results: &results,
    };
    ctx.print(&out, || {
        let mut lines: Vec<String> = results
            .iter()
            .map(|r| {
                let outcome = match r.outcome {
                    Outcome::Copied => "copied",
                    Outcome::UpToDate => "up to date",
                    Outcome::WouldCopy => "would copy",
                    Outcome::Failed => "FAILED",
                };
                let detail = match (&r.error, r.outcome) {
                    (Some(e), _) => format!(": {e}"),
                    (None, Outcome::Copied) => {
                        format!(" ({})", super::progress::human_bytes(r.bytes))
                    }
                    _ => String::new(),
                };
                format!(
                    "{outcome:<11} {} → {}{detail}",
                    r.source,
                    r.targets.join(", ")
                )
            })
            .collect();
        lines.push(format!(
            "{} copied, {} up to date{}, {} failed, {} sent",
            out.copied,
            out.up_to_date,
            if args.dry_run {
                format!(", {} would be copied", out.would_copy)
            } else {
                String::new()
            },
            failed,
            super::progress::human_bytes(out.bytes)
        ));
        lines.join("\n")
    });
    if failed > 0 {
        return Err(Error::PartlyFailed(format!(
            "{failed} of {} mirrored tags failed (see above)",
            results.len()
        )));
    }
    Ok(())
}
