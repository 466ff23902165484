//! `hoist deploy ecs`: an exact image digest into an ECS service.

use hoist::deploy::ecs::{DeployOptions, ImageChoice};
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
    #[arg(long, value_name = "REF", required_unless_present = "containers")]
    pub image: Option<String>,
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
    ctx.print(&report, || {
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
        lines.join("\n")
    });
    Ok(())
}
