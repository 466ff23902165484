//! `hoist deploy ecs`: an exact image digest into an ECS service.

use hoist::deploy::ecs::{DeployOptions, ImageChoice, Patience, Rollout, ServiceAt};
use hoist::reference::RegistryRef;
use hoist::{Error, Result};

use super::Context;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Register the service's task definition again with the image(s) pinned to their digest
    /// and update the service to it.
    Ecs(EcsArgs),
}

#[derive(clap::Args, Debug)]
pub struct EcsArgs {
    #[arg(long)]
    pub cluster: String,
    #[arg(long)]
    pub service: String,
    /// The image for the task definition's only container (or the one from its repository).
    #[arg(
        long,
        value_name = "REF",
        required_unless_present_any = ["containers", "imagedefinitions", "rollback_to"]
    )]
    pub image: Option<String>,
    /// The images per container from a CodePipeline imagedefinitions.json.
    #[arg(long, value_name = "FILE", conflicts_with = "image")]
    pub imagedefinitions: Option<std::path::PathBuf>,
    /// Roll the service back: to a revision (`N`, `family:N`, an ARN), or to the images a
    /// tag (`stable`) points to in each container's repository.
    #[arg(long, value_name = "stable|REVISION", conflicts_with_all = ["image", "containers", "imagedefinitions"])]
    pub rollback_to: Option<String>,
    /// Write ECS_TASK_DEFINITION, ECS_PREVIOUS_TASK_DEFINITION and ECS_IMAGE to this dotenv
    /// file (GitLab `artifacts: reports: dotenv`).
    #[arg(long, value_name = "FILE")]
    pub dotenv: Option<std::path::PathBuf>,
    /// The image for a named container (repeatable).
    #[arg(long = "container", value_name = "NAME=REF", conflicts_with = "image")]
    pub containers: Vec<String>,
    /// The AWS region (default: AWS_REGION, the profile's, or the ECR host's).
    #[arg(long)]
    pub region: Option<String>,
    /// Deploy even while another deployment is in progress.
    #[arg(long)]
    pub force: bool,
    /// Show the image changes; register and update nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Follow the rollout to COMPLETED, FAILED or a circuit-breaker rollback (exit 3 unless it
    /// completes), printing the service's events.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait follows the rollout (and the health check polls).
    #[arg(long, default_value = "10m", value_parser = super::ecr::parse_duration)]
    pub timeout: std::time::Duration,
    /// On failure, a timeout or a failed health check: update the service back to the
    /// previous task definition (unless ECS's circuit breaker did) and wait for it.
    #[arg(long)]
    pub rollback: bool,
    /// After the rollout completes, poll this URL until it answers 2xx (else: failure).
    #[arg(long, value_name = "URL")]
    pub health_url: Option<String>,
    /// After success, give the deployed image this tag too (e.g. `stable`), in its repository.
    #[arg(long, value_name = "TAG")]
    pub promote_tag: Option<String>,
}

pub async fn run(ctx: &Context, command: Command) -> Result<()> {
    let Command::Ecs(args) = command;
    let mut images = Vec::new();
    if let Some(image) = &args.image {
        images.push(ImageChoice {
            container: None,
            reference: RegistryRef::parse(image)?,
        });
    }
    if let Some(file) = &args.imagedefinitions {
        images.extend(image_definitions(file)?);
    }
    for item in &args.containers {
        let (name, reference) = item
            .split_once('=')
            .filter(|(n, r)| !n.is_empty() && !r.is_empty())
            .ok_or_else(|| Error::Usage(format!("--container `{item}` is not NAME=REF")))?;
        images.push(ImageChoice {
            container: Some(name.to_string()),
            reference: RegistryRef::parse(reference)?,
        });
    }
    // An ECR image names its region; else the usual AWS region settings.
    let ecr_region = images
        .iter()
        .find_map(|i| hoist::aws::ecr::parse_host(&i.reference.registry).map(|e| e.region));
    let region = match (&args.region, ecr_region) {
        (Some(r), _) => r.clone(),
        (None, Some(r)) => r,
        (None, None) => hoist::aws::default_region(None).await?,
    };
    let ecs = ctx.client.aws().ecs_client(&region).await?;
    let at = ServiceAt {
        ecs: &ecs,
        region: &region,
        cluster: &args.cluster,
        service: &args.service,
    };
    // Polling every 10 s by default (the services-stable waiter's 15 s is slow to notice).
    let interval = std::time::Duration::from_millis(
        std::env::var("HOIST_ECS_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000),
    );
    let patience = Patience {
        timeout: args.timeout,
        interval,
    };
    if let Some(target) = &args.rollback_to {
        let current = hoist::deploy::ecs::current_task_definition(&at).await?;
        match hoist::deploy::ecs::revision_of(&current, target) {
            Some(revision) => {
                return roll_back_to_revision(ctx, &args, &at, patience, &current, &revision).await;
            }
            None => images = hoist::deploy::ecs::tagged_images(&ctx.client, &at, target).await?,
        }
    }
    let pinned_refs = images.clone();
    let report = hoist::deploy::ecs::deploy(
        &ctx.client,
        &ecs,
        &region,
        &DeployOptions {
            cluster: args.cluster.clone(),
            service: args.service.clone(),
            images,
            force: args.force,
            dry_run: args.dry_run,
        },
    )
    .await?;
    write_dotenv(&args, &report)?;
    let follow =
        args.wait || args.rollback || args.health_url.is_some() || args.promote_tag.is_some();
    let Some(new) = report.task_definition.clone().filter(|_| follow) else {
        return print_report(ctx, &report, None);
    };
    let reporter = ctx.client.reporter().clone();
    let mut events: Vec<String> = Vec::new();
    let mut event = |message: &str| {
        reporter.report(hoist::progress::Event::Info(format!("ecs: {message}")));
        events.push(message.to_string());
    };
    let rollout = hoist::deploy::ecs::follow_rollout(&at, &new, patience, &mut event).await?;
    let mut failure = match &rollout {
        Rollout::Completed => None,
        Rollout::Failed { reason, .. } => Some(format!("failed: {reason}")),
        Rollout::TimedOut { state } => Some(format!(
            "did not finish within {}s (rollout state {state})",
            args.timeout.as_secs()
        )),
    };
    if failure.is_none()
        && let Some(url) = &args.health_url
        && !hoist::deploy::ecs::healthy(url, patience).await?
    {
        failure = Some(format!("completed, but {url} did not answer 2xx"));
    }
    let Some(failure) = failure else {
        let mut outcome = Outcome {
            rollout,
            rolled_back_to: None,
            promoted: Vec::new(),
            events,
        };
        if let Some(tag) = &args.promote_tag {
            for choice in &pinned_refs {
                let digest =
                    hoist::copy::tag(&ctx.client, &choice.reference, std::slice::from_ref(tag))
                        .await?;
                outcome.promoted.push(
                    choice
                        .reference
                        .with_digest(digest)
                        .with_tag(tag)
                        .to_string(),
                );
            }
        }
        return print_report(ctx, &report, Some(&outcome));
    };
    let previous = &report.previous_task_definition;
    let (rolled_back_to, what) = match &rollout {
        Rollout::Failed {
            rolled_back_to: Some(to),
            ..
        } => (
            Some(to.clone()),
            format!("ECS's circuit breaker rolled back to {to}"),
        ),
        _ if args.rollback => {
            hoist::deploy::ecs::roll_back(&at, previous).await?;
            let back =
                hoist::deploy::ecs::follow_rollout(&at, previous, patience, &mut event).await?;
            let state = if back == Rollout::Completed {
                "done"
            } else {
                "not finished"
            };
            (
                Some(previous.clone()),
                format!("rolled back to {previous} ({state})"),
            )
        }
        _ => (
            None,
            format!(
                "not rolled back (the service stays on {new}; --rollback would return to {previous})"
            ),
        ),
    };
    let outcome = Outcome {
        rollout,
        rolled_back_to,
        promoted: Vec::new(),
        events,
    };
    print_report(ctx, &report, Some(&outcome))?;
    Err(Error::Gate {
        message: format!(
            "deployment of {new} to {}/{} {failure}; {what}",
            args.cluster, args.service
        ),
        hint: None,
    })
}

/// `[{"name": CONTAINER, "imageUri": REF}, ...]` (CodePipeline's imagedefinitions.json).
fn image_definitions(file: &std::path::Path) -> Result<Vec<ImageChoice>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Definition {
        name: String,
        image_uri: String,
    }
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let definitions: Vec<Definition> =
        serde_json::from_str(&text).map_err(|e| Error::malformed(file.display().to_string(), e))?;
    definitions
        .into_iter()
        .map(|d| {
            Ok(ImageChoice {
                container: Some(d.name),
                reference: RegistryRef::parse(&d.image_uri)?,
            })
        })
        .collect()
}

fn write_dotenv(args: &EcsArgs, report: &hoist::deploy::ecs::DeployReport) -> Result<()> {
    let (Some(file), Some(new)) = (&args.dotenv, &report.task_definition) else {
        return Ok(());
    };
    let image = report
        .changes
        .first()
        .map(|c| c.to.as_str())
        .unwrap_or_default();
    let text = format!(
        "ECS_TASK_DEFINITION={new}\nECS_PREVIOUS_TASK_DEFINITION={}\nECS_IMAGE={image}\n",
        report.previous_task_definition
    );
    std::fs::write(file, text).map_err(|e| Error::io(file, e))
}

/// `--rollback-to REVISION`: the service back on that revision, followed with --wait.
async fn roll_back_to_revision(
    ctx: &Context,
    args: &EcsArgs,
    at: &ServiceAt<'_>,
    patience: Patience,
    current: &str,
    revision: &str,
) -> Result<()> {
    let report = hoist::deploy::ecs::DeployReport {
        cluster: args.cluster.clone(),
        service: args.service.clone(),
        previous_task_definition: current.to_string(),
        task_definition: (!args.dry_run).then(|| revision.to_string()),
        changes: Vec::new(),
        dry_run: args.dry_run,
    };
    if args.dry_run {
        return print_report(ctx, &report, None);
    }
    hoist::deploy::ecs::roll_back(at, revision).await?;
    write_dotenv(args, &report)?;
    if !args.wait {
        return print_report(ctx, &report, None);
    }
    let mut events = Vec::new();
    let rollout = hoist::deploy::ecs::follow_rollout(at, revision, patience, &mut |m| {
        events.push(m.to_string())
    })
    .await?;
    let done = rollout == Rollout::Completed;
    let outcome = Outcome {
        rollout,
        rolled_back_to: None,
        promoted: Vec::new(),
        events,
    };
    print_report(ctx, &report, Some(&outcome))?;
    if done {
        return Ok(());
    }
    Err(Error::Gate {
        message: format!(
            "the rollback of {}/{} to {revision} did not complete",
            args.cluster, args.service
        ),
        hint: None,
    })
}

/// What --wait found, after a deploy.
#[derive(serde::Serialize)]
struct Outcome {
    rollout: Rollout,
    rolled_back_to: Option<String>,
    promoted: Vec<String>,
    /// The service events that appeared while following the rollout.
    events: Vec<String>,
}

fn print_report(
    ctx: &Context,
    report: &hoist::deploy::ecs::DeployReport,
    outcome: Option<&Outcome>,
) -> Result<()> {
    #[derive(serde::Serialize)]
    struct Out<'a> {
        #[serde(flatten)]
        report: &'a hoist::deploy::ecs::DeployReport,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        outcome: Option<&'a Outcome>,
    }
    let out = Out { report, outcome };
    ctx.print(&out, || {
        let mut lines: Vec<String> = report
            .changes
            .iter()
            .map(|c| format!("  {}: {} → {}", c.container, c.from, c.to))
            .collect();
        let head = match &report.task_definition {
            Some(new) => format!(
                "deployed to {}/{}: {} → {new}",
                report.cluster, report.service, report.previous_task_definition
            ),
            None => format!(
                "dry run: {}/{} would get a new revision of {}",
                report.cluster, report.service, report.previous_task_definition
            ),
        };
        lines.insert(0, head);
        if let Some(outcome) = outcome {
            lines.push(match &outcome.rollout {
                Rollout::Completed => "rollout completed".to_string(),
                other => format!("rollout: {other:?}"),
            });
            lines.extend(outcome.promoted.iter().map(|p| format!("promoted {p}")));
        }
        lines.join("\n")
    });
    Ok(())
}
