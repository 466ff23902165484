//! `hoist deploy ecs`: the service's task definition again with each named container's image
//! replaced by an exact digest, registered and rolled out (ecr-ci-aws.md §5).

use aws_sdk_ecs::error::ProvideErrorMetadata;
use aws_sdk_ecs::types::{ContainerDefinition, DeploymentControllerType, TaskDefinitionField};
use serde::Serialize;

use crate::aws::api_error;
use crate::error::{Error, Result};
use crate::oci::{Parsed, Platform};
use crate::reference::{ImageRef, RegistryRef};
use crate::registry::RegistryClient;
use crate::source::Source;

/// An image to deploy, into the named container or the one it matches.
#[derive(Clone, Debug)]
pub struct ImageChoice {
    pub container: Option<String>,
    pub reference: RegistryRef,
}

#[derive(Clone, Debug)]
pub struct DeployOptions {
    pub cluster: String,
    pub service: String,
    pub images: Vec<ImageChoice>,
    /// Deploy even while another rollout is in progress.
    pub force: bool,
    /// Say what would change; change nothing.
    pub dry_run: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ContainerChange {
    pub container: String,
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct DeployReport {
    pub cluster: String,
    pub service: String,
    pub previous_task_definition: String,
    /// The new revision (`None` on a dry run).
    pub task_definition: Option<String>,
    pub changes: Vec<ContainerChange>,
    pub dry_run: bool,
}

/// An image pinned to its digest, with the platforms it has.
struct Pinned {
    container: Option<String>,
    reference: RegistryRef,
    pinned: String,
    platforms: Vec<Platform>,
}

async fn pin(client: &RegistryClient, choice: &ImageChoice) -> Result<Pinned> {
    let reference = &choice.reference;
    let source = Source::open(client, &ImageRef::Registry(reference.clone()))?;
    let root = source.root().await?;
    let platforms = match root.parse()? {
        Parsed::Index(index) => index
            .manifests
            .iter()
            .filter_map(|d| d.platform.clone())
            .filter(|p| p.os != "unknown")
            .map(Platform::normalized)
            .collect(),
        Parsed::Image(_) => {
            let (_, _, config) = source.config(&root).await?;
            vec![
                Platform::new(&config.os, &config.architecture, config.variant.as_deref())
                    .normalized(),
            ]
        }
    };
    let pinned = RegistryRef {
        tag: None,
        digest: Some(root.digest.clone()),
        ..reference.clone()
    };
    Ok(Pinned {
        container: choice.container.clone(),
        reference: reference.clone(),
        pinned: pinned.to_string(),
        platforms,
    })
}

/// The repository of an image string as a task definition holds it (`nginx:1`, `host/r@sha…`).
fn repository_of(image: &str) -> Option<(String, String)> {
    let parsed = RegistryRef::parse(image).ok()?;
    Some((parsed.registry, parsed.repository))
}

/// Deploys `options.images` to the service: the new task definition's ARN and what changed.
pub async fn deploy(
    registry: &RegistryClient,
    ecs: &aws_sdk_ecs::Client,
    region: &str,
    options: &DeployOptions,
) -> Result<DeployReport> {
    let mut pinned = Vec::new();
    for choice in &options.images {
        pinned.push(pin(registry, choice).await?);
    }
    let answer = ecs
        .describe_services()
        .cluster(&options.cluster)
        .services(&options.service)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) if e.code() == Some("ClusterNotFoundException") => {
            let clusters = ecs
                .list_clusters()
                .send()
                .await
                .map_err(failed("ListClusters", region))?;
            let names: Vec<&str> = clusters
                .cluster_arns()
                .iter()
                .map(|a| a.rsplit('/').next().unwrap_or(a))
                .collect();
            return Err(Error::Usage(format!(
                "ECS cluster `{}` does not exist in {region} (clusters: {})",
                options.cluster,
                list_or_none(&names)
            )));
        }
        Err(e) => return Err(ecs_error("DescribeServices", region, e)),
    };
    let Some(service) = answer
        .services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
    else {
        let services = ecs
            .list_services()
            .cluster(&options.cluster)
            .send()
            .await
            .map_err(failed("ListServices", region))?;
        let names: Vec<&str> = services
            .service_arns()
            .iter()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .collect();
        return Err(Error::Usage(format!(
            "ECS service `{}` is not in cluster {} (services: {})",
            options.service,
            options.cluster,
            list_or_none(&names)
        )));
    };
    if let Some(controller) = service
        .deployment_controller()
        .map(|c| c.r#type())
        .filter(|t| **t != DeploymentControllerType::Ecs)
    {
        return Err(Error::Usage(format!(
            "service {} is deployed by {}, not by ECS rolling updates: for blue/green, hand the image to CodeDeploy (`hoist build --push --image-detail FILE` writes imageDetail.json for an AppSpec)",
            options.service,
            controller.as_str()
        )));
    }
    let in_progress = service.deployments().len() > 1
        || service
            .deployments()
            .iter()
            .any(|d| d.rollout_state().map(|s| s.as_str()) == Some("IN_PROGRESS"));
    if in_progress && !options.force {
        return Err(Error::Usage(format!(
            "service {} has a deployment in progress: wait for it, or pass --force to deploy over it",
            options.service
        )));
    }
    let previous = service.task_definition().unwrap_or_default().to_string();
    let described = ecs
        .describe_task_definition()
        .task_definition(&previous)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .map_err(failed("DescribeTaskDefinition", region))?;
    let Some(definition) = described.task_definition() else {
        return Err(Error::Internal(format!(
            "ECS described no task definition for {previous}"
        )));
    };
    let mut containers: Vec<ContainerDefinition> = definition.container_definitions().to_vec();
    let listing = || {
        containers
            .iter()
            .map(|c| format!("{}={}", c.name().unwrap_or("?"), c.image().unwrap_or("?")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut changes = Vec::new();
    let mut targets = Vec::new();
    for image in &pinned {
        let index = match &image.container {
            Some(name) => containers.iter().position(|c| c.name() == Some(name)),
            None if containers.len() == 1 => Some(0),
            None => {
                let wanted = (
                    image.reference.registry.clone(),
                    image.reference.repository.clone(),
                );
                let matching: Vec<usize> = containers
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.image().and_then(repository_of) == Some(wanted.clone()))
                    .map(|(i, _)| i)
                    .collect();
                match matching.as_slice() {
                    [only] => Some(*only),
                    _ => None,
                }
            }
        };
        let Some(index) = index else {
            return Err(Error::Usage(match &image.container {
                Some(name) => format!(
                    "task definition {previous} has no container `{name}` (containers: {})",
                    listing()
                ),
                None => format!(
                    "--image {} matches no single container of {previous} (containers: {}): name it with --container NAME=REF",
                    image.reference,
                    listing()
                ),
            }));
        };
        targets.push((index, image));
    }
    // The platform the task definition runs on must be in the image.
    if let Some(arch) = definition
        .runtime_platform()
        .and_then(|p| p.cpu_architecture())
    {
        let wanted = match arch.as_str() {
            "ARM64" => "arm64",
            _ => "amd64",
        };
        for (_, image) in &targets {
            if !image
                .platforms
                .iter()
                .any(|p| p.os == "linux" && p.architecture == wanted)
            {
                let has: Vec<String> = image.platforms.iter().map(|p| p.to_string()).collect();
                return Err(Error::Usage(format!(
                    "{} has no linux/{wanted} image (it has: {}), and task definition {previous} runs on {}",
                    image.reference,
                    has.join(", "),
                    arch.as_str()
                )));
            }
        }
    }
    for (index, image) in &targets {
        let container = &containers[*index];
        changes.push(ContainerChange {
            container: container.name().unwrap_or_default().to_string(),
            from: container.image().unwrap_or_default().to_string(),
            to: image.pinned.clone(),
        });
        containers[*index].image = Some(image.pinned.clone());
    }
    let mut report = DeployReport {
        cluster: options.cluster.clone(),
        service: options.service.clone(),
        previous_task_definition: previous.clone(),
        task_definition: None,
        changes,
        dry_run: options.dry_run,
    };
    if options.dry_run {
        return Ok(report);
    }
    // The same definition, read-only fields left out (ARN, revision, status,
    // requiresAttributes, compatibilities, registered/deregistered at/by).
    let tags = described.tags().to_vec();
    let registered = ecs
        .register_task_definition()
        .set_family(definition.family().map(str::to_string))
        .set_task_role_arn(definition.task_role_arn().map(str::to_string))
        .set_execution_role_arn(definition.execution_role_arn().map(str::to_string))
        .set_network_mode(definition.network_mode().cloned())
        .set_container_definitions(Some(containers))
        .set_volumes(Some(definition.volumes().to_vec()).filter(|v| !v.is_empty()))
        .set_placement_constraints(
            Some(definition.placement_constraints().to_vec()).filter(|v| !v.is_empty()),
        )
        .set_requires_compatibilities(
            Some(definition.requires_compatibilities().to_vec()).filter(|v| !v.is_empty()),
        )
        .set_cpu(definition.cpu().map(str::to_string))
        .set_memory(definition.memory().map(str::to_string))
        .set_tags(Some(tags).filter(|t| !t.is_empty()))
        .set_pid_mode(definition.pid_mode().cloned())
        .set_ipc_mode(definition.ipc_mode().cloned())
        .set_proxy_configuration(definition.proxy_configuration().cloned())
        .set_ephemeral_storage(definition.ephemeral_storage().cloned())
        .set_runtime_platform(definition.runtime_platform().cloned())
        .set_enable_fault_injection(definition.enable_fault_injection())
        .send()
        .await
        .map_err(failed("RegisterTaskDefinition", region))?;
    let new_arn = registered
        .task_definition()
        .and_then(|t| t.task_definition_arn())
        .ok_or_else(|| Error::Internal("ECS registered a task definition without an ARN".into()))?
        .to_string();
    ecs.update_service()
        .cluster(&options.cluster)
        .service(&options.service)
        .task_definition(&new_arn)
        .send()
        .await
        .map_err(failed("UpdateService", region))?;
    report.task_definition = Some(new_arn);
    Ok(report)
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn ecs_error<E>(operation: &str, region: &str, e: E) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    api_error("ECS", operation, region, e)
}

/// Maps the error of ECS operation `op`.
fn failed<'a, E>(op: &'static str, region: &'a str) -> impl FnOnce(E) -> Error + 'a
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| ecs_error(op, region, e)
}

/// How a rollout ended.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Rollout {
    /// The new revision is the PRIMARY deployment, COMPLETED.
    Completed,
    /// FAILED; `rolled_back_to` is the revision ECS's circuit breaker went back to, if it did.
    Failed {
        reason: String,
        rolled_back_to: Option<String>,
    },
    /// Still going when the time ran out.
    TimedOut { state: String },
}

/// One ECS service, as the calls after a deploy address it.
pub struct ServiceAt<'a> {
    pub ecs: &'a aws_sdk_ecs::Client,
    pub region: &'a str,
    pub cluster: &'a str,
    pub service: &'a str,
}

/// How long to keep looking, and how often.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    pub timeout: std::time::Duration,
    pub interval: std::time::Duration,
}

/// Follows the service's rollout to `task_definition` until it ends or the patience runs
/// out; new service events go to `event` as they appear.
pub async fn follow_rollout(
    at: &ServiceAt<'_>,
    task_definition: &str,
    patience: Patience,
    event: &mut dyn FnMut(&str),
) -> Result<Rollout> {
    let ServiceAt {
        ecs,
        region,
        cluster,
        service,
    } = *at;
    let Patience { timeout, interval } = patience;
    let started = std::time::Instant::now();
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut first = true;
    loop {
        let answer = ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(failed("DescribeServices", region))?;
        let Some(current) = answer.services().first() else {
            return Err(Error::Usage(format!(
                "ECS service `{service}` vanished from cluster {cluster} during the rollout"
            )));
        };
        // Events come newest first; the ones before this deploy are not news.
        let mut fresh: Vec<&str> = Vec::new();
        for e in current.events() {
            let id = e.id().unwrap_or_default().to_string();
            if seen.insert(id) && !first {
                fresh.push(e.message().unwrap_or_default());
            }
        }
        first = false;
        for message in fresh.into_iter().rev() {
            event(message);
        }
        let deployments = current.deployments();
        let primary = deployments.iter().find(|d| d.status() == Some("PRIMARY"));
        let ours = deployments
            .iter()
            .find(|d| d.task_definition() == Some(task_definition));
        let state = |d: &aws_sdk_ecs::types::Deployment| {
            d.rollout_state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default()
        };
        match (ours, primary) {
            (Some(d), Some(p)) if d.id() == p.id() && state(d) == "COMPLETED" => {
                return Ok(Rollout::Completed);
            }
            (Some(d), primary) if state(d) == "FAILED" => {
                return Ok(Rollout::Failed {
                    reason: d.rollout_state_reason().unwrap_or("failed").to_string(),
                    rolled_back_to: primary
                        .filter(|p| p.id() != d.id())
                        .and_then(|p| p.task_definition())
                        .map(str::to_string),
                });
            }
            // Ours is gone and another revision is PRIMARY: the circuit breaker rolled back.
            (None, Some(p)) => {
                return Ok(Rollout::Failed {
                    reason: "the deployment was replaced (rolled back by ECS)".into(),
                    rolled_back_to: p.task_definition().map(str::to_string),
                });
            }
            _ => {}
        }
        if started.elapsed() >= timeout {
            return Ok(Rollout::TimedOut {
                state: ours.map(state).unwrap_or_else(|| "unknown".into()),
            });
        }
        tokio::time::sleep(interval).await;
    }
}

/// Points the service back at `task_definition`.
pub async fn roll_back(at: &ServiceAt<'_>, task_definition: &str) -> Result<()> {
    at.ecs
        .update_service()
        .cluster(at.cluster)
        .service(at.service)
        .task_definition(task_definition)
        .send()
        .await
        .map_err(failed("UpdateService", at.region))?;
    Ok(())
}

/// Polls `url` until it answers 2xx (true) or the patience runs out (false).
pub async fn healthy(url: &str, patience: Patience) -> Result<bool> {
    let Patience { timeout, interval } = patience;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build the health-check client: {e}")))?;
    let started = std::time::Instant::now();
    loop {
        if let Ok(resp) = http.get(url).send().await
            && resp.status().is_success()
        {
            return Ok(true);
        }
        if started.elapsed() >= timeout {
            return Ok(false);
        }
        tokio::time::sleep(interval).await;
    }
}

/// The images to roll back to by tag (`--rollback-to stable`): for each container of the
/// service's current task definition whose repository has `tag`, that image.
pub async fn tagged_images(
    registry: &RegistryClient,
    at: &ServiceAt<'_>,
    tag: &str,
) -> Result<Vec<ImageChoice>> {
    let current = current_task_definition(at).await?;
    let described = at
        .ecs
        .describe_task_definition()
        .task_definition(&current)
        .send()
        .await
        .map_err(failed("DescribeTaskDefinition", at.region))?;
    let mut choices = Vec::new();
    let mut problems = Vec::new();
    let containers = described
        .task_definition()
        .map(|t| t.container_definitions().to_vec())
        .unwrap_or_default();
    for container in &containers {
        let Some(image) = container.image().and_then(|i| RegistryRef::parse(i).ok()) else {
            continue;
        };
        let tagged = RegistryRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..image
        };
        let repo = registry.repository(&tagged, crate::registry::Access::Pull);
        // A sidecar from a registry we cannot read is not what is rolled back.
        match repo.head_manifest(tag).await {
            Ok(Some(_)) => choices.push(ImageChoice {
                container: container.name().map(str::to_string),
                reference: tagged,
            }),
            Ok(None) => {}
            Err(e) => problems.push(format!("{tagged}: {e}")),
        }
    }
    if choices.is_empty() {
        let seen = if problems.is_empty() {
            String::new()
        } else {
            format!(" ({})", problems.join("; "))
        };
        return Err(Error::Usage(format!(
            "no container image of {current} has a `{tag}` tag in its repository{seen}: is --promote-tag {tag} used on successful deploys?"
        )));
    }
    Ok(choices)
}

/// The task definition the service runs now.
pub async fn current_task_definition(at: &ServiceAt<'_>) -> Result<String> {
    let answer = at
        .ecs
        .describe_services()
        .cluster(at.cluster)
        .services(at.service)
        .send()
        .await
        .map_err(failed("DescribeServices", at.region))?;
    answer
        .services()
        .first()
        .and_then(|s| s.task_definition())
        .map(str::to_string)
        .ok_or_else(|| {
            Error::Usage(format!(
                "ECS service `{}` is not in cluster {}",
                at.service, at.cluster
            ))
        })
}

/// `N`, `family:N` or an ARN as a task definition for the service (`N`: its family's).
pub fn revision_of(current: &str, wanted: &str) -> Option<String> {
    if wanted.starts_with("arn:") || (wanted.contains(':') && !wanted.ends_with(':')) {
        return Some(wanted.to_string());
    }
    wanted.parse::<u32>().ok()?;
    let family = current
        .rsplit('/')
        .next()
        .and_then(|f| f.rsplit_once(':'))
        .map(|(family, _)| family)?;
    Some(format!("{family}:{wanted}"))
}

#[cfg(test)]
mod tests {
    use super::revision_of;

    #[test]
    fn revisions_are_read_like_the_console_writes_them() {
        let current = "arn:aws:ecs:us-east-1:1:task-definition/web:7";
        assert_eq!(revision_of(current, "5").as_deref(), Some("web:5"));
        assert_eq!(revision_of(current, "api:2").as_deref(), Some("api:2"));
        assert_eq!(
            revision_of(current, "arn:aws:ecs:us-east-1:1:task-definition/web:3").as_deref(),
            Some("arn:aws:ecs:us-east-1:1:task-definition/web:3")
        );
        assert_eq!(revision_of(current, "stable"), None);
    }
}
