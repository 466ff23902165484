//! `hoist deploy ecs` against moto's ECS (register, update, describe). moto keeps every
//! deployment's rolloutState IN_PROGRESS, so deploys here pass --force except where the
//! refusal itself is tested.

use serde_json::{Value, json};

use crate::harness::aws::ecr;
use crate::harness::registry::{Hoist, Run, seed_example, shared};

/// A cluster with service `api` running task definition family `family`: container `web`
/// (image `image`, a secret, awslogs), a sidecar, a volume, tags, on `arch`.
fn service(cluster: &str, family: &str, image: &str, arch: &str) {
    let moto = &ecr().moto;
    moto.ecs_blocking("CreateCluster", json!({"clusterName": cluster}))
        .unwrap();
    moto.ecs_blocking(
        "RegisterTaskDefinition",
        json!({
            "family": family,
            "containerDefinitions": [
                {"name": "web", "image": image, "memory": 128,
                 "secrets": [{"name": "DB_PASSWORD", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/db"}],
                 "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web"}},
                 "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]},
                {"name": "sidecar", "image": "public.ecr.aws/nginx/nginx:1", "memory": 64}
            ],
            "volumes": [{"name": "data"}],
            "runtimePlatform": {"cpuArchitecture": arch, "operatingSystemFamily": "LINUX"},
            "tags": [{"key": "team", "value": "payments"}]
        }),
    )
    .unwrap();
    moto.ecs_blocking(
        "CreateService",
        json!({"cluster": cluster, "serviceName": "api", "taskDefinition": family, "desiredCount": 1}),
    )
    .unwrap();
}

/// Cluster `name` with service `api` (family `{name}web`, on amd64) and the example image
/// as `deploy/{name}` to deploy there.
fn service_and_image(name: &str) -> String {
    let image = seed_example(shared(), &format!("deploy/{name}"), None);
    service(name, &format!("{name}web"), "nginx:1", "X86_64");
    image
}

fn deploy(args: &[&str]) -> Run {
    let mut all = vec!["--json", "deploy", "ecs"];
    all.extend(args);
    ecr().hoist_with_keys().run(all)
}

fn task_definition(arn: &str) -> Value {
    ecr()
        .moto
        .ecs_blocking(
            "DescribeTaskDefinition",
            json!({"taskDefinition": arn, "include": ["TAGS"]}),
        )
        .unwrap()
}

#[test]
fn a_deploy_registers_the_same_definition_with_the_image_pinned_and_updates_the_service() {
    let image = seed_example(shared(), "deploy/web", None);
    service(
        "prod",
        "web",
        &format!("{}/deploy/web:old", shared().host),
        "X86_64",
    );
    // moto's first deployment never completes: without --force the deploy is refused.
    deploy(&["--cluster", "prod", "--service", "api", "--image", &image])
        .fails_with(1, "service api has a deployment in progress");

    let dry = deploy(&[
        "--cluster",
        "prod",
        "--service",
        "api",
        "--image",
        &image,
        "--force",
        "--dry-run",
    ]);
    dry.ok();
    let dry = dry.json();
    assert!(dry["task_definition"].is_null(), "{dry}");
    assert_eq!(dry["changes"][0]["container"], "web");

    let run = deploy(&[
        "--cluster",
        "prod",
        "--service",
        "api",
        "--image",
        &image,
        "--force",
    ]);
    run.ok();
    let report = run.json();
    let new_arn = report["task_definition"].as_str().unwrap().to_string();
    assert!(new_arn.ends_with("task-definition/web:2"), "{report}");
    let pinned = report["changes"][0]["to"].as_str().unwrap();
    assert!(
        pinned.starts_with(&format!("{}/deploy/web@sha256:", shared().host)),
        "deployed by digest, never a moving tag: {pinned}"
    );

    let old = task_definition("web:1");
    let new = task_definition(&new_arn);
    let (old_td, new_td) = (&old["taskDefinition"], &new["taskDefinition"]);
    let mut expected = old_td["containerDefinitions"].clone();
    expected[0]["image"] = json!(pinned);
    assert_eq!(
        new_td["containerDefinitions"], expected,
        "only the image changed"
    );
    for kept in ["volumes", "runtimePlatform", "family", "networkMode"] {
        assert_eq!(new_td[kept], old_td[kept], "{kept}");
    }
    assert_eq!(new["tags"], json!([{"key": "team", "value": "payments"}]));
    let services = ecr()
        .moto
        .ecs_blocking(
            "DescribeServices",
            json!({"cluster": "prod", "services": ["api"]}),
        )
        .unwrap();
    assert_eq!(services["services"][0]["taskDefinition"], json!(new_arn));
}

#[test]
fn deploy_mistakes_name_what_exists() {
    let image = seed_example(shared(), "deploy/other", None);
    service("staging", "other", "nginx:1", "X86_64");
    deploy(&["--cluster", "nope", "--service", "api", "--image", &image]).fails_with(
        1,
        "ECS cluster `nope` does not exist in us-east-1 (clusters: ",
    );
    deploy(&[
        "--cluster",
        "staging",
        "--service",
        "apx",
        "--image",
        &image,
    ])
    .fails_with(
        1,
        "ECS service `apx` is not in cluster staging (services: api)",
    );
    deploy(&[
        "--cluster",
        "staging",
        "--service",
        "api",
        "--container",
        &format!("wbe={image}"),
        "--force",
    ])
    .fails_with(
        1,
        "has no container `wbe` (containers: web=nginx:1, sidecar=public.ecr.aws/nginx/nginx:1)",
    );
    deploy(&[
        "--cluster",
        "staging",
        "--service",
        "api",
        "--image",
        &image,
        "--force",
    ])
    .fails_with(1, "matches no single container");
}

#[test]
fn an_image_without_the_task_platform_is_refused() {
    // An amd64-only image for an ARM64 task definition.
    let amd64_only = format!("{}/deploy/amd64only:v1", shared().host);
    Hoist::new()
        .run([
            "copy",
            "--platform",
            "linux/amd64",
            &seed_example(shared(), "deploy/multi", None),
            &amd64_only,
        ])
        .ok();
    service("arm", "armweb", "nginx:1", "ARM64");
    deploy(&[
        "--cluster",
        "arm",
        "--service",
        "api",
        "--container",
        &format!("web={amd64_only}"),
        "--force",
    ])
    .fails_with(
        1,
        "has no linux/arm64 image (it has: linux/amd64), and task definition",
    );
}

#[test]
fn a_missing_iam_permission_is_named() {
    let image = service_and_image("denied");
    let proxy = ecr().moto_behind_proxy();
    proxy.add_rule(crate::harness::proxy::Rule {
        method: None,
        path_contains: "RegisterTaskDefinition".into(),
        times: None,
        action: crate::harness::proxy::Action::AwsError {
            code: "AccessDeniedException".into(),
        },
    });
    let run = ecr()
        .hoist_with_keys()
        .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))
        .run([
            "deploy",
            "ecs",
            "--cluster",
            "denied",
            "--service",
            "api",
            "--container",
            &format!("web={image}"),
            "--force",
        ]);
    run.fails_with(
        1,
        "ECS RegisterTaskDefinition (us-east-1): AccessDeniedException",
    );
    assert!(
        run.stderr
            .contains("lacks the IAM permission `ecs:RegisterTaskDefinition`"),
        "{}",
        run.stderr
    );
}

use crate::harness::ecs_script::{ScriptedEcs, Step};

/// Deploys `image` to cluster/api through a scripted ECS (see harness::ecs_script): the
/// rollout follows `steps`. Polling every 10 ms; `extra` flags added.
fn deploy_scripted(
    cluster: &str,
    image: &str,
    steps: &[Step],
    extra: &[&str],
) -> (Run, ScriptedEcs) {
    let scripted = ScriptedEcs::start(&ecr().moto.url, steps);
    let mut args = vec![
        "--json",
        "deploy",
        "ecs",
        "--cluster",
        cluster,
        "--service",
        "api",
        "--container",
    ];
    let container = format!("web={image}");
    args.push(&container);
    args.extend(extra);
    let run = ecr()
        .hoist_with_keys()
        .env("AWS_ENDPOINT_URL", format!("http://{}", scripted.addr))
        .env("HOIST_ECS_POLL_MS", "10")
        .run(args);
    (run, scripted)
}

#[test]
fn a_completed_rollout_passes_the_health_check_and_promotes_stable() {
    let image = service_and_image("good");
    let health = crate::harness::http::serve_status(200);
    let (run, _) = deploy_scripted(
        "good",
        &image,
        &[Step::InProgress, Step::InProgress, Step::Completed],
        &["--wait", "--health-url", &health, "--promote-tag", "stable"],
    );
    run.ok();
    let out = run.json();
    assert_eq!(out["rollout"]["outcome"], "completed", "{out}");
    // The new service events (printed as they come without --json).
    assert!(
        out["events"]
            .as_array()
            .unwrap()
            .contains(&json!("(service api) has reached a steady state.")),
        "{out}"
    );
    let stable = format!("{}/deploy/good:stable", shared().host);
    assert_eq!(
        crate::harness::registry::skopeo_raw(&stable, None),
        crate::harness::registry::skopeo_raw(&image, None),
        "stable is the deployed image"
    );
}

#[test]
fn a_circuit_breaker_rollback_is_a_failure_even_though_the_service_is_stable() {
    let image = service_and_image("bad");
    let (run, scripted) = deploy_scripted(
        "bad",
        &image,
        &[Step::InProgress, Step::FailedRolledBack],
        &["--wait", "--rollback", "--promote-tag", "stable"],
    );
    run.fails_with(3, "failed: ECS deployment circuit breaker: tasks failed to start.; ECS's circuit breaker rolled back to");
    assert!(run.stderr.contains("badweb:1"), "{}", run.stderr);
    // ECS already went back: hoist does not update the service again, nor promote.
    assert_eq!(scripted.updates().len(), 1);
    assert!(
        crate::harness::registry::skopeo_raw(&format!("{}/deploy/bad:stable", shared().host), None)
            .is_none()
    );
}

#[test]
fn a_stuck_rollout_times_out_and_rolls_back_when_asked() {
    let image = service_and_image("stuck");
    let (run, scripted) = deploy_scripted(
        "stuck",
        &image,
        &[Step::InProgress],
        &["--wait", "--timeout", "1s"],
    );
    run.fails_with(
        3,
        "did not finish within 1s (rollout state IN_PROGRESS); not rolled back",
    );
    assert_eq!(scripted.updates().len(), 1);

    let (run, scripted) = deploy_scripted(
        "stuck",
        &image,
        &[Step::InProgress],
        &["--wait", "--timeout", "1s", "--rollback"],
    );
    run.fails_with(3, "rolled back to");
    let updates = scripted.updates();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(
        updates[1].ends_with("stuckweb:2"),
        "back to the revision before this deploy: {updates:?}"
    );
}

#[test]
fn a_failed_health_check_rolls_back() {
    let image = service_and_image("sick");
    let health = crate::harness::http::serve_status(503);
    let (run, scripted) = deploy_scripted(
        "sick",
        &image,
        &[Step::Completed],
        &[
            "--wait",
            "--timeout",
            "1s",
            "--health-url",
            &health,
            "--rollback",
        ],
    );
    run.fails_with(
        3,
        &format!("completed, but {health} did not answer 2xx; rolled back to"),
    );
    assert_eq!(scripted.updates().len(), 2);
}

#[test]
fn imagedefinitions_in_dotenv_out_and_rollbacks_to_a_tag_or_a_revision() {
    let image = seed_example(shared(), "deploy/rb", None);
    let repo = format!("{}/deploy/rb", shared().host);
    Hoist::new().run(["tag", &image, "stable"]).ok();
    service("rb", "rbweb", &format!("{repo}:old"), "X86_64");
    let dir = tempfile::tempdir().unwrap();
    let definitions = dir.path().join("imagedefinitions.json");
    std::fs::write(
        &definitions,
        json!([{"name": "web", "imageUri": image}]).to_string(),
    )
    .unwrap();
    let dotenv = dir.path().join("deploy.env");
    deploy(&[
        "--cluster",
        "rb",
        "--service",
        "api",
        "--force",
        "--imagedefinitions",
        definitions.to_str().unwrap(),
        "--dotenv",
        dotenv.to_str().unwrap(),
    ])
    .ok();
    let env = std::fs::read_to_string(&dotenv).unwrap();
    assert!(env.contains("task-definition/rbweb:2\n"), "{env}");
    assert!(env.contains("ECS_PREVIOUS_TASK_DEFINITION=arn:aws:ecs:us-east-1:123456789012:task-definition/rbweb:1\n"), "{env}");
    assert!(env.contains(&format!("ECS_IMAGE={repo}@sha256:")), "{env}");

    // The manual rollback job: the images `stable` points to, pinned.
    let run = deploy(&[
        "--cluster",
        "rb",
        "--service",
        "api",
        "--force",
        "--rollback-to",
        "stable",
    ]);
    run.ok();
    let out = run.json();
    assert_eq!(out["changes"][0]["container"], "web", "{out}");
    assert!(
        out["changes"][0]["to"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{repo}@sha256:"))
    );
    // Or straight back to a revision.
    let run = deploy(&["--cluster", "rb", "--service", "api", "--rollback-to", "1"]);
    run.ok();
    let services = ecr()
        .moto
        .ecs_blocking(
            "DescribeServices",
            json!({"cluster": "rb", "services": ["api"]}),
        )
        .unwrap();
    assert!(
        services["services"][0]["taskDefinition"]
            .as_str()
            .unwrap()
            .ends_with("rbweb:1"),
        "{services}"
    );
}

#[test]
fn blue_green_services_are_left_to_codedeploy() {
    let image = seed_example(shared(), "deploy/bg", None);
    let moto = &ecr().moto;
    moto.ecs_blocking("CreateCluster", json!({"clusterName": "bg"}))
        .unwrap();
    moto.ecs_blocking(
        "RegisterTaskDefinition",
        json!({"family": "bgweb", "containerDefinitions": [{"name": "web", "image": "nginx:1", "memory": 64}]}),
    )
    .unwrap();
    moto.ecs_blocking(
        "CreateService",
        json!({"cluster": "bg", "serviceName": "api", "taskDefinition": "bgweb", "desiredCount": 1,
               "deploymentController": {"type": "CODE_DEPLOY"}}),
    )
    .unwrap();
    deploy(&[
        "--cluster",
        "bg",
        "--service",
        "api",
        "--image",
        &image,
        "--force",
    ])
    .fails_with(
        1,
        "service api is deployed by CODE_DEPLOY, not by ECS rolling updates",
    );
}
