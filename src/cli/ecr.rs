//! `hoist ecr ensure|scan`, and the repository options shared with `--ecr-create`.

use std::path::PathBuf;
use std::time::Duration;

use hoist::aws::ecr::{
    Encryption, Mutability, RepositoryAt, RepositorySpec, SEVERITIES, ScanReport, lifecycle_policy,
    parse_host,
};
use hoist::oci::Parsed;
use hoist::reference::{Digest, RegistryRef};
use hoist::registry::{Access, RegistryClient};
use hoist::{Error, Result};

use super::Context;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create an ECR repository, or converge an existing one to the options given.
    Ensure(EnsureArgs),
    /// Gate on an image's ECR scan findings (exit 3 when --fail-on severities are found).
    Scan(ScanArgs),
}

#[derive(clap::Args, Debug, Default, Clone)]
pub struct RepositoryOptions {
    /// Scan images on push.
    #[arg(long, conflicts_with = "no_scan_on_push")]
    pub scan_on_push: bool,
    /// Do not scan images on push.
    #[arg(long)]
    pub no_scan_on_push: bool,
    /// Tags cannot be overwritten.
    #[arg(long, conflicts_with_all = ["mutable", "immutable_except"])]
    pub immutable: bool,
    /// Tags can be overwritten.
    #[arg(long, conflicts_with = "immutable_except")]
    pub mutable: bool,
    /// Immutable tags, except those matching these wildcard patterns (e.g. latest, dev-*).
    #[arg(long, value_name = "PATTERN")]
    pub immutable_except: Vec<String>,
    /// Encryption at rest (chosen at creation only).
    #[arg(long, value_enum)]
    pub encryption: Option<EncryptionArg>,
    /// The KMS key for --encryption KMS (default: the AWS managed key).
    #[arg(long, value_name = "KEY", requires = "encryption")]
    pub kms: Option<String>,
    /// Lifecycle: keep the newest N images.
    #[arg(long, value_name = "N")]
    pub keep: Option<u32>,
    /// Lifecycle: expire untagged images after DAYS days.
    #[arg(long, value_name = "DAYS")]
    pub expire_untagged: Option<u32>,
    /// A lifecycle policy JSON file (instead of --keep/--expire-untagged).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keep", "expire_untagged"])]
    pub lifecycle_policy: Option<PathBuf>,
    /// A resource tag KEY=VALUE (repeatable).
    #[arg(long = "resource-tag", value_name = "KEY=VALUE")]
    pub resource_tags: Vec<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptionArg {
    #[value(name = "AES256", alias = "aes256")]
    Aes256,
    #[value(name = "KMS", alias = "kms")]
    Kms,
}

impl RepositoryOptions {
    fn given(&self) -> bool {
        self.spec().is_ok_and(|s| s != RepositorySpec::default())
    }

    pub fn spec(&self) -> Result<RepositorySpec> {
        if self.immutable_except.len() > 5 {
            return Err(Error::Usage(
                "ECR allows at most 5 --immutable-except patterns".into(),
            ));
        }
        let lifecycle = match &self.lifecycle_policy {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                serde_json::from_str::<serde_json::Value>(&text)
                    .map_err(|e| Error::malformed(path.display().to_string(), e))?;
                Some(text)
            }
            None => lifecycle_policy(self.keep, self.expire_untagged),
        };
        Ok(RepositorySpec {
            scan_on_push: match (self.scan_on_push, self.no_scan_on_push) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            mutability: if !self.immutable_except.is_empty() {
                Some(Mutability::ImmutableExcept(self.immutable_except.clone()))
            } else if self.immutable {
                Some(Mutability::Immutable)
            } else if self.mutable {
                Some(Mutability::Mutable)
            } else {
                None
            },
            encryption: self.encryption.map(|e| match e {
                EncryptionArg::Aes256 => Encryption::Aes256,
                EncryptionArg::Kms => Encryption::Kms(self.kms.clone()),
            }),
            lifecycle_policy: lifecycle,
            tags: self
                .resource_tags
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| {
                            Error::Usage(format!("--resource-tag `{kv}` is not KEY=VALUE"))
                        })
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// `--ecr-create` and its repository options, for commands that push.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct EcrCreateArgs {
    /// Create a missing ECR repository before pushing (and converge the options below).
    #[arg(long)]
    pub ecr_create: bool,
    #[command(flatten)]
    pub repository: RepositoryOptions,
}

impl EcrCreateArgs {
    pub fn apply(&self, client: &RegistryClient) -> Result<()> {
        if self.ecr_create {
            client.set_ecr_create(self.repository.spec()?);
        } else if self.repository.given() {
            return Err(Error::Usage(
                "ECR repository options need --ecr-create (or use `hoist ecr ensure`)".into(),
            ));
        }
        Ok(())
    }
}

#[derive(clap::Args, Debug)]
pub struct EnsureArgs {
    /// A repository name (with --region or AWS_REGION), or ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME.
    #[arg(required_unless_present = "pull_through")]
    pub repository: Option<String>,
    #[arg(long)]
    pub region: Option<String>,
    /// An ECR pull-through cache rule: PREFIX=UPSTREAM (e.g. docker-hub=registry-1.docker.io),
    /// created when missing; builds then pull through it with `[mirrors]` in hoist.toml.
    #[arg(long, value_name = "PREFIX=UPSTREAM", conflicts_with = "repository")]
    pub pull_through: Option<String>,
    /// The Secrets Manager secret ARN with the upstream's credentials (Docker Hub needs one).
    #[arg(long, value_name = "ARN", requires = "pull_through")]
    pub pull_through_credential: Option<String>,
    #[command(flatten)]
    pub options: RepositoryOptions,
}

#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// The image: ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG or @sha256:...
    pub reference: String,
    /// Wait for the scan to finish.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 30s, 10m).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Exit 3 when findings of these severities exist (e.g. CRITICAL,HIGH).
    #[arg(long, value_delimiter = ',', value_name = "SEVERITY,...")]
    pub fail_on: Vec<String>,
}

pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 10m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{s}` is not a duration like 90s, 10m or 1h")),
    };
    Ok(Duration::from_secs(secs))
}

pub async fn run(ctx: &Context, command: Command) -> Result<()> {
    match command {
        Command::Ensure(args) => ensure(ctx, args).await,
        Command::Scan(args) => scan(ctx, args).await,
    }
}

/// `NAME` (region from --region/AWS_REGION) or `HOST/NAME` on an ECR host.
async fn repository_at(input: &str, region: Option<&str>) -> Result<RepositoryAt> {
    if let Some((host, name)) = input.split_once('/')
        && let Some(ecr) = parse_host(host)
    {
        if let Some(region) = region
            && region != ecr.region
        {
            return Err(Error::Usage(format!(
                "--region {region} contradicts the host {host}, which is in {}",
                ecr.region
            )));
        }
        return Ok(RepositoryAt {
            region: ecr.region,
            account: Some(ecr.account),
            name: name.to_string(),
        });
    }
    let parsed = RegistryRef::parse(&format!("host.invalid/{input}"));
    if input.contains(':') || input.contains('@') || parsed.is_err() {
        return Err(Error::Usage(format!(
            "`{input}` is not an ECR repository name (lowercase letters, digits, . _ - /) or ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME"
        )));
    }
    Ok(RepositoryAt {
        region: hoist::aws::default_region(region).await?,
        account: None,
        name: input.to_string(),
    })
}

async fn ensure(ctx: &Context, args: EnsureArgs) -> Result<()> {
    if let Some(rule) = &args.pull_through {
        let (prefix, upstream) = rule
            .split_once('=')
            .filter(|(p, u)| !p.is_empty() && !u.is_empty())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--pull-through `{rule}` is not PREFIX=UPSTREAM (e.g. docker-hub=registry-1.docker.io)"
                ))
            })?;
        let region = hoist::aws::default_region(args.region.as_deref()).await?;
        let client = ctx.client.aws().ecr_client(&region).await?;
        let report = hoist::aws::ecr::ensure_pull_through_rule(
            &client,
            &region,
            prefix,
            upstream,
            args.pull_through_credential.as_deref(),
        )
        .await?;
        ctx.print(&report, || {
            let state = if report.created {
                "created"
            } else {
                "up to date"
            };
            format!("pull-through rule {prefix} → {upstream}: {state}")
        });
        return Ok(());
    }
    let Some(repository) = &args.repository else {
        return Err(Error::Usage("ecr ensure needs a repository".into()));
    };
    let at = repository_at(repository, args.region.as_deref()).await?;
    let spec = args.options.spec()?;
    let report = ctx.client.aws().ensure_repository(&at, &spec).await?;
    ctx.print(&report, || {
        let mut lines = vec![if report.created {
            format!("created {}", report.uri)
        } else if report.changes.is_empty() {
            format!("{}: up to date", report.uri)
        } else {
            format!("{}: updated", report.uri)
        }];
        lines.extend(report.changes.iter().map(|c| format!("  changed: {c}")));
        lines.extend(report.warnings.iter().map(|w| format!("  warning: {w}")));
        lines.join("\n")
    });
    Ok(())
}

async fn scan(ctx: &Context, args: ScanArgs) -> Result<()> {
    let reference = RegistryRef::parse(&args.reference)?;
    let Some(ecr) = parse_host(&reference.registry) else {
        return Err(Error::Usage(format!(
            "{} is not an ECR registry: `hoist ecr scan` reads ECR's scan findings",
            reference.registry
        )));
    };
    let fail_on: Vec<String> = args
        .fail_on
        .iter()
        .map(|s| s.trim().to_ascii_uppercase())
        .collect();
    if let Some(bad) = fail_on.iter().find(|s| !SEVERITIES.contains(&s.as_str())) {
        return Err(Error::Usage(format!(
            "--fail-on {bad}: severities are {}",
            SEVERITIES.join(", ")
        )));
    }
    let at = RepositoryAt {
        region: ecr.region,
        account: Some(ecr.account),
        name: reference.repository.clone(),
    };
    // ECR scans image manifests: an index is scanned through its images.
    let repo = ctx.client.repository(&reference, Access::Pull);
    let top = repo.get_manifest(&reference.manifest_reference()).await?;
    let digests: Vec<Digest> = match top.parse()? {
        Parsed::Index(index) => index.manifests.iter().map(|m| m.digest.clone()).collect(),
        Parsed::Image(_) => vec![top.digest.clone()],
    };
    let wait = args.wait.then_some(args.timeout);
    let mut scans = Vec::new();
    for digest in &digests {
        let report = ctx
            .client
            .aws()
            .scan_image(&at, digest.as_str(), wait)
            .await?;
        scans.push(ImageScan {
            digest: digest.clone(),
            report,
        });
    }
    let mut counts = std::collections::BTreeMap::<String, i32>::new();
    for scan in &scans {
        for (severity, n) in &scan.report.counts {
            *counts.entry(severity.clone()).or_default() += n;
        }
    }
    // A gate needs finished scans: an unfinished or failed one must not pass as "no findings".
    if !fail_on.is_empty()
        && let Some(scan) = scans
            .iter()
            .find(|s| !matches!(s.report.status.as_str(), "COMPLETE" | "ACTIVE"))
    {
        return Err(Error::Gate {
            message: format!(
                "scan gate: the scan of {}@{} is {}{}",
                reference.repository_name(),
                scan.digest,
                scan.report.status,
                scan.report
                    .description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ),
            hint: Some(
                "pass --wait (and a long enough --timeout) so the gate sees a finished scan".into(),
            ),
        });
    }
    let reached: Vec<String> = fail_on
        .iter()
        .filter(|s| counts.get(*s).copied().unwrap_or(0) > 0)
        .map(|s| format!("{} {s}", counts[s]))
        .collect();
    let out = ScanOut {
        reference: reference.to_string(),
        counts: &counts,
        images: &scans,
        fail_on: &fail_on,
        passed: reached.is_empty(),
    };
    ctx.print(&out, || human_scan(&reference, &scans, &counts));
    if !reached.is_empty() {
        return Err(Error::Gate {
            message: format!(
                "scan gate: {} in {reference} (--fail-on {})",
                reached.join(", "),
                fail_on.join(",")
            ),
            hint: Some("fix or accept the findings; `allow_failure: exit_codes: [3]` in GitLab tells this gate from a broken job".into()),
        });
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct ImageScan {
    digest: Digest,
    #[serde(flatten)]
    report: ScanReport,
}

#[derive(serde::Serialize)]
struct ScanOut<'a> {
    reference: String,
    counts: &'a std::collections::BTreeMap<String, i32>,
    images: &'a [ImageScan],
    fail_on: &'a [String],
    passed: bool,
}

/// Top findings shown in the human output.
const TOP_FINDINGS: usize = 10;

fn human_scan(
    reference: &RegistryRef,
    scans: &[ImageScan],
    counts: &std::collections::BTreeMap<String, i32>,
) -> String {
    let status: Vec<&str> = scans.iter().map(|s| s.report.status.as_str()).collect();
    let summary = SEVERITIES
        .iter()
        .filter_map(|s| counts.get(*s).map(|n| format!("{s} {n}")))
        .collect::<Vec<_>>();
    let mut lines = vec![format!(
        "scan of {reference}: {} — {}",
        status.join(", "),
        if summary.is_empty() {
            "no findings".to_string()
        } else {
            summary.join(", ")
        }
    )];
    let mut findings: Vec<_> = scans.iter().flat_map(|s| &s.report.findings).collect();
    findings.sort_by_key(|f| SEVERITIES.iter().position(|s| *s == f.severity));
    for f in findings.iter().take(TOP_FINDINGS) {
        lines.push(format!(
            "  {:<13} {}{}",
            f.severity,
            f.name,
            f.uri
                .as_deref()
                .map(|u| format!("  {u}"))
                .unwrap_or_default()
        ));
    }
    if findings.len() > TOP_FINDINGS {
        lines.push(format!(
            "  … and {} more (--json lists all)",
            findings.len() - TOP_FINDINGS
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }

    #[test]
    fn repository_options_become_a_spec() {
        let options = RepositoryOptions {
            scan_on_push: true,
            immutable_except: vec!["latest".into()],
            keep: Some(50),
            resource_tags: vec!["team=web".into()],
            ..Default::default()
        };
        let spec = options.spec().unwrap();
        assert_eq!(spec.scan_on_push, Some(true));
        assert_eq!(
            spec.mutability,
            Some(Mutability::ImmutableExcept(vec!["latest".into()]))
        );
        assert!(
            spec.lifecycle_policy
                .unwrap()
                .contains("imageCountMoreThan")
        );
        assert_eq!(spec.tags, [("team".to_string(), "web".to_string())]);
        assert!(!RepositoryOptions::default().given());
        let bad = RepositoryOptions {
            resource_tags: vec!["novalue".into()],
            ..Default::default()
        };
        assert!(bad.spec().is_err());
    }
}
