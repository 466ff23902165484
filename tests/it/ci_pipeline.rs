//! The pipeline `hoist ci init gitlab` writes, run by gitlab-ci-local (a GitLab runner
//! emulator; `--force-shell-executor`: every job in a shell, no Docker, no privilege) against
//! moto + the ECR shim and a scripted ECS endpoint (moto keeps rollouts IN_PROGRESS forever;
//! see harness::ecs_script). gitlab-ci-local mints no ID tokens, so the job's `AWS_ID_TOKEN` is
//! passed as a variable, like the endpoints.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::ci::git;
use crate::harness::aws::{ECR_HOST, TEST_ACCESS_KEY, TEST_SECRET_KEY, ecr, gitlab_id_token, now};
use crate::harness::ecs_script::{ScriptedEcs, Step};
use crate::harness::registry::{seed_example, shared, skopeo_inspect};

const REPOSITORY: &str = "pipeline/app";

fn head(dir: &Path) -> String {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// gitlab-ci-local as scripts/test installs it.
fn gitlab_ci_local() -> PathBuf {
    let venv = std::env::var_os("HOIST_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/hoist-test/venv")
        });
    venv.parent()
        .unwrap()
        .join("gitlab-ci-local/node_modules/.bin/gitlab-ci-local")
}

/// A cluster with service `api` running container `app`.
fn service(cluster: &str) {
    let moto = &ecr().moto;
    moto.ecs_blocking("CreateCluster", json!({"clusterName": cluster}))
        .unwrap();
    moto.ecs_blocking(
        "RegisterTaskDefinition",
        json!({"family": format!("{cluster}-app"),
               "containerDefinitions": [{"name": "app", "image": "nginx:1", "memory": 128}]}),
    )
    .unwrap();
    moto.ecs_blocking(
        "CreateService",
        json!({"cluster": cluster, "serviceName": "api", "taskDefinition": format!("{cluster}-app"), "desiredCount": 1}),
    )
    .unwrap();
}

/// The image of container `app` in the service's current task definition.
fn deployed_image(cluster: &str) -> String {
    let moto = &ecr().moto;
    let services = moto
        .ecs_blocking(
            "DescribeServices",
            json!({"cluster": cluster, "services": ["api"]}),
        )
        .unwrap();
    let revision = services["services"][0]["taskDefinition"]
        .as_str()
        .unwrap()
        .to_string();
    let definition = moto
        .ecs_blocking(
            "DescribeTaskDefinition",
            json!({"taskDefinition": revision}),
        )
        .unwrap();
    definition["taskDefinition"]["containerDefinitions"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The project: a Dockerfile, a file, a GitLab-like origin, and the pipeline `hoist ci init
/// gitlab INIT...` wrote (committed); with what init printed (--json).
fn project(init: &[&str]) -> (tempfile::TempDir, Value) {
    let dir = crate::harness::context(&[
        ("Dockerfile", "FROM scratch\nCOPY hello.txt /\n"),
        ("hello.txt", "hello from the pipeline\n"),
        (
            "release.sh",
            "set -e\nhoist build . -t \"$1:$CI_COMMIT_TAG-release\" --push\n",
        ),
    ]);
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(
        dir.path(),
        &[
            "remote",
            "add",
            "origin",
            "git@gitlab.example.com:group/app.git",
        ],
    );
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "app"]);
    // What a clone has: origin/HEAD naming the default branch.
    git(
        dir.path(),
        &["update-ref", "refs/remotes/origin/main", "HEAD"],
    );
    git(
        dir.path(),
        &[
            "symbolic-ref",
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/main",
        ],
    );
    let mut args = vec!["--json", "ci", "init", "gitlab"];
    args.extend(init);
    let run = crate::harness::registry::Hoist::new()
        .current_dir(dir.path())
        .run(&args);
    run.ok();
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "pipeline"]);
    (dir, run.json())
}

/// Runs a pipeline (or `jobs`) of the project with gitlab-ci-local: `variables` on top of the
/// endpoints and credentials every job gets, `unset` predefined variables removed.
struct Pipeline<'a> {
    dir: &'a Path,
    ecs: &'a ScriptedEcs,
    home: tempfile::TempDir,
}

impl Pipeline<'_> {
    fn run(&self, variables: &[(&str, &str)], unset: &[&str], args: &[&str]) -> Output {
        let hoist = PathBuf::from(env!("CARGO_BIN_EXE_hoist"));
        let path = format!(
            "{}:{}",
            hoist.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let home = self.home.path();
        std::fs::write(home.join("aws-empty"), "").unwrap();
        let token = gitlab_id_token(json!("sts.amazonaws.com"), now() + 3600);
        let mut all: Vec<(String, String)> = [
            ("GITLAB_CI", "true"),
            ("HOIST_TEST_LOOPBACK_ONLY", "1"),
            ("HOIST_RETRY_BASE_MS", "5"),
            ("HOIST_ECS_POLL_MS", "10"),
            ("HOIST_ECR_SCAN_POLL_MS", "50"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_ID_TOKEN", &token),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        all.extend([
            (
                "AWS_ENDPOINT_URL".to_string(),
                format!("http://{}", self.ecs.addr),
            ),
            (
                "HOIST_REGISTRY_ENDPOINTS".to_string(),
                format!("{ECR_HOST}=http://{}", ecr().shim),
            ),
            (
                "AWS_CONFIG_FILE".to_string(),
                home.join("aws-empty").display().to_string(),
            ),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                home.join("aws-empty").display().to_string(),
            ),
            (
                "DOCKER_CONFIG".to_string(),
                home.join("docker").display().to_string(),
            ),
            (
                "XDG_STATE_HOME".to_string(),
                home.join("state").display().to_string(),
            ),
        ]);
        all.extend(
            variables
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let mut command = Command::new(gitlab_ci_local());
        command
            .env_clear()
            .env("PATH", path)
            .env("HOME", home)
            .current_dir(self.dir)
            .args(["--force-shell-executor", "--no-color", "--concurrency", "2"]);
        let overridden: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
        command.arg(format!("--ignore-predefined-vars={}", overridden.join(",")));
        for (k, v) in &all {
            command.arg("--variable").arg(format!("{k}={v}"));
        }
        for name in unset {
            command.arg("--unset-variable").arg(name);
        }
        command.args(args);
        command
            .output()
            .expect("gitlab-ci-local (scripts/test installs it)")
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sorted(tags: &[&str]) -> Vec<String> {
    let mut tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    tags.sort();
    tags
}

/// Tags of the repository in the ECR shim, sorted.
fn tags(repository: &str) -> Vec<String> {
    let out = Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("--creds=AWS:{}", ecr().password()))
        .arg(format!("docker://{}/{repository}", ecr().shim))
        .output()
        .expect("skopeo");
    if !out.status.success() {
        return Vec::new();
    }
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut tags: Vec<String> = listed["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

fn digest_of(repository: &str, tag: &str) -> String {
    let reference = format!("{}/{repository}:{tag}", ecr().shim);
    let creds = format!("AWS:{}", ecr().password());
    crate::harness::registry::manifest_digest(&reference, Some(&creds))
        .unwrap_or_else(|| panic!("{reference} exists"))
}

/// The dotenv the `build` job handed on, as gitlab-ci-local keeps it.
fn build_dotenv(dir: &Path) -> String {
    std::fs::read_to_string(
        dir.join(".gitlab-ci-local/artifacts/build/.gitlab-ci-reports/dotenv/build.env"),
    )
    .unwrap_or_default()
}

#[test]
fn the_generated_gitlab_pipeline_runs_merge_request_branch_and_tag_pipelines() {
    service("pipeline-stg");
    service("pipeline-prod");
    let (dir, init) = project(&[
        "--registry",
        ECR_HOST,
        "--repository",
        REPOSITORY,
        "--role-arn",
        "arn:aws:iam::123456789012:role/gitlab-ci",
        "--deploy-ecs",
        "pipeline-stg/api",
        "--deploy-ecs",
        "pipeline-prod/api",
        "--environments",
        "staging,production",
        "--scan-fail-on",
        "HIGH",
        "--scan-allow-failure",
        "--release",
        "sh release.sh \"$IMAGE_REPOSITORY\"",
    ]);
    // The role's trust policy names this project's provider and refs (origin: gitlab.example.com).
    let statement = &init["trust_policy"]["Statement"][0];
    assert_eq!(
        statement["Principal"]["Federated"],
        "arn:aws:iam::123456789012:oidc-provider/gitlab.example.com",
        "{init}"
    );
    assert_eq!(
        statement["Condition"]["StringLike"]["gitlab.example.com:sub"],
        json!([
            "project_path:group/app:ref_type:branch:ref:main",
            "project_path:group/app:ref_type:tag:ref:*"
        ])
    );
    let ecs = ScriptedEcs::start(&ecr().moto.url, &[Step::InProgress, Step::Completed]);
    let pipeline = Pipeline {
        dir: dir.path(),
        ecs: &ecs,
        home: tempfile::tempdir().unwrap(),
    };
    let sha = head(dir.path());
    let short = &sha[..8];

    // A merge request: built, nothing pushed, nothing deployed.
    let out = pipeline.run(
        &[
            ("CI_PIPELINE_SOURCE", "merge_request_event"),
            ("CI_MERGE_REQUEST_IID", "7"),
        ],
        &["CI_COMMIT_BRANCH"],
        &[],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("build:merge-request"), "{log}");
    assert!(!log.contains("deploy:staging"), "{log}");
    assert_eq!(tags(REPOSITORY), Vec::<String>::new(), "{log}");
    assert!(ecs.updates().is_empty());
    assert_eq!(deployed_image("pipeline-stg"), "nginx:1");

    // The default branch: pushed with the tag table's tags, deployed to staging by digest.
    let out = pipeline.run(&[], &[], &[]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("deploy:production"), "{log}");
    // moto finds one HIGH: the gate says so (exit 3), allowed, and the deploys go on.
    assert!(log.contains("scan gate: 1 HIGH"), "{log}");
    assert_eq!(
        tags(REPOSITORY),
        sorted(&[short, "buildcache", "latest", "main"]),
        "{log}"
    );
    let digest = digest_of(REPOSITORY, "main");
    let image_ref = format!("{ECR_HOST}/{REPOSITORY}@{digest}");
    let dotenv = build_dotenv(dir.path());
    assert!(
        dotenv.contains(&format!("IMAGE_REF={image_ref}")),
        "{dotenv}\n{log}"
    );
    assert_eq!(deployed_image("pipeline-stg"), image_ref, "{log}");
    assert_eq!(deployed_image("pipeline-prod"), "nginx:1");

    // A release tag: v1.2.0, v1.2, v1 and latest; the release job's own push; staging
    // deployed, production by hand (promoting `stable`), then the manual rollback job goes
    // back to `stable`.
    git(dir.path(), &["tag", "v1.2.0"]);
    let tag_pipeline: [(&str, &str); 2] = [
        ("CI_COMMIT_TAG", "v1.2.0"),
        ("CI_COMMIT_REF_NAME", "v1.2.0"),
    ];
    let out = pipeline.run(
        &tag_pipeline,
        &["CI_COMMIT_BRANCH"],
        &["--manual", "deploy:production"],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("deploy:production"), "{log}");
    assert!(!log.contains("rollback:production"), "{log}");
    assert_eq!(
        tags(REPOSITORY),
        sorted(&[
            short,
            "buildcache",
            "latest",
            "main",
            "stable",
            "v1",
            "v1.2",
            "v1.2.0",
            "v1.2.0-release"
        ]),
        "{log}"
    );
    // The release build differs from main's by its version label; the moving tags, the
    // commit's tag and `stable` all point at it; `main` stays.
    let release = digest_of(REPOSITORY, "v1.2.0");
    assert_ne!(release, digest);
    for tag in ["v1", "v1.2", "latest", short, "stable"] {
        assert_eq!(digest_of(REPOSITORY, tag), release, "{tag}");
    }
    assert_eq!(digest_of(REPOSITORY, "main"), digest);
    let image_ref = format!("{ECR_HOST}/{REPOSITORY}@{release}");
    assert!(build_dotenv(dir.path()).contains(&format!("IMAGE_REF={image_ref}")));
    assert_eq!(deployed_image("pipeline-stg"), image_ref, "{log}");
    assert_eq!(deployed_image("pipeline-prod"), image_ref, "{log}");
    let deploys = ecs.updates().len();

    let out = pipeline.run(
        &tag_pipeline,
        &["CI_COMMIT_BRANCH"],
        &["rollback:production"],
    );
    let log = text(&out);
    // (The rollback job may fail without failing the pipeline: it must not have.)
    assert!(out.status.success() && !log.contains("error:"), "{log}");
    assert_eq!(ecs.updates().len(), deploys + 1, "{log}");
    assert_eq!(deployed_image("pipeline-prod"), image_ref, "{log}");
}

#[test]
fn native_runner_jobs_merge_into_one_index_and_a_scheduled_pipeline_only_mirrors() {
    let upstream = seed_example(shared(), "pipeline/upstream", None);
    let upstream = upstream.trim_end_matches(":latest");
    let (dir, _) = project(&[
        "--registry",
        ECR_HOST,
        "--repository",
        "pipeline/multi",
        "--auth",
        "keys",
        "--platforms",
        "linux/amd64,linux/arm64",
        "--native-runners",
        "amd64-runner,arm64-runner",
        "--mirror",
        "mirror.yaml",
    ]);
    std::fs::write(
        dir.path().join("mirror.yaml"),
        format!("target: {ECR_HOST}/pipeline\necr: {{create: true}}\nimages:\n  - source: {upstream}\n    tags: [latest]\n    target: mirrored\n"),
    )
    .unwrap();
    git(dir.path(), &["add", "mirror.yaml"]);
    git(dir.path(), &["commit", "-qm", "mirror"]);
    let ecs = ScriptedEcs::start(&ecr().moto.url, &[]);
    let pipeline = Pipeline {
        dir: dir.path(),
        ecs: &ecs,
        home: tempfile::tempdir().unwrap(),
    };
    let keys = [
        ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY),
        ("HOIST_INSECURE_REGISTRIES", shared().host.as_str()),
    ];

    // A schedule: the mirror job alone.
    let mut schedule = keys.to_vec();
    schedule.push(("CI_PIPELINE_SOURCE", "schedule"));
    let out = pipeline.run(&schedule, &[], &[]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("build:platform"), "{log}");
    assert_eq!(tags("pipeline/multi"), Vec::<String>::new(), "{log}");
    assert_eq!(tags("pipeline/mirrored"), vec!["latest"], "{log}");

    // The default branch: one job per platform, then one index with the tag table's tags.
    let out = pipeline.run(&keys, &[], &[]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let short = &head(dir.path())[..8];
    let index = digest_of("pipeline/multi", "main");
    for tag in [short, "latest"] {
        assert_eq!(digest_of("pipeline/multi", tag), index, "{log}");
    }
    let raw = skopeo_inspect(
        &format!("{}/pipeline/multi:main", ecr().shim),
        Some(&format!("AWS:{}", ecr().password())),
        &["--raw"],
    )
    .unwrap();
    let raw: Value = serde_json::from_slice(&raw).unwrap();
    let platforms: Vec<&str> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"], "{raw}");
    assert!(
        build_dotenv(dir.path()).contains(&format!("IMAGE_REF={ECR_HOST}/pipeline/multi@{index}")),
        "{log}"
    );
}
