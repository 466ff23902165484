//! CI integration: tags per CI system and situation (`hoist ci tags`), `--tags auto` pushes
//! against a real registry (moving tags never move backwards), reproducible CI builds, OCI
//! labels, output files, GitLab log sections, and bad input.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::harness::context;
use crate::harness::registry::{Hoist, Run, shared, skopeo_inspect};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn gitlab(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("GITLAB_CI", "true"),
        ("CI_COMMIT_SHA", SHA),
        ("CI_COMMIT_SHORT_SHA", "01234567"),
        ("CI_DEFAULT_BRANCH", "main"),
        ("CI_COMMIT_TIMESTAMP", "2024-05-01T10:00:00+00:00"),
        ("CI_PROJECT_URL", "https://gitlab.example.com/group/app"),
        ("CI_PROJECT_NAME", "app"),
    ];
    env.extend_from_slice(extra);
    env.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn with_env(mut hoist: Hoist, env: &[(String, String)]) -> Hoist {
    for (k, v) in env {
        hoist = hoist.env(k, v);
    }
    hoist
}

fn ci_tags(env: &[(String, String)], dir: &Path) -> serde_json::Value {
    let run = with_env(Hoist::new(), env)
        .current_dir(dir)
        .run(["ci", "tags", "--json"]);
    run.ok();
    run.json()
}

fn tag_names(v: &serde_json::Value) -> Vec<String> {
    v["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// git with a fixed identity and dates.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .env("GIT_COMMITTER_DATE", "2024-01-02T03:04:05Z")
        .env("GIT_AUTHOR_DATE", "2024-01-02T03:04:05Z")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (situation, env, expected tags)
type Case<'a> = (&'a str, Vec<(String, String)>, Vec<&'a str>);

#[test]
fn tags_for_each_ci_and_situation() {
    let dir = tempfile::tempdir().unwrap();
    let own = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let event = dir.path().join("event.json");
    std::fs::write(&event, r#"{"repository":{"default_branch":"main"}}"#).unwrap();
    let event = event.to_str().unwrap();
    let cases: Vec<Case> = vec![
        (
            "gitlab branch",
            gitlab(&[
                ("CI_COMMIT_BRANCH", "Feature/Login"),
                ("CI_COMMIT_REF_SLUG", "feature-login"),
            ]),
            vec!["01234567", "feature-login"],
        ),
        (
            "gitlab default branch",
            gitlab(&[("CI_COMMIT_BRANCH", "main"), ("CI_COMMIT_REF_SLUG", "main")]),
            vec!["01234567", "main", "latest"],
        ),
        (
            "gitlab semver tag",
            gitlab(&[("CI_COMMIT_TAG", "v1.2.3")]),
            vec!["01234567", "v1.2.3", "v1.2", "v1", "latest"],
        ),
        (
            "gitlab pre-release",
            gitlab(&[("CI_COMMIT_TAG", "v1.3.0-rc.1")]),
            vec!["01234567", "v1.3.0-rc.1"],
        ),
        (
            "gitlab merge request",
            gitlab(&[
                ("CI_MERGE_REQUEST_IID", "42"),
                ("CI_COMMIT_REF_SLUG", "feature"),
            ]),
            vec!["01234567", "mr-42"],
        ),
        (
            "gitlab environment",
            gitlab(&[
                ("CI_COMMIT_BRANCH", "main"),
                ("CI_ENVIRONMENT_NAME", "production"),
            ]),
            vec!["01234567", "main", "latest", "production"],
        ),
        (
            "github default branch",
            own(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_SHA", SHA),
                ("GITHUB_REF", "refs/heads/main"),
                ("GITHUB_EVENT_NAME", "push"),
                ("GITHUB_EVENT_PATH", event),
            ]),
            vec!["01234567", "main", "latest"],
        ),
        (
            "github pull request",
            own(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_SHA", SHA),
                ("GITHUB_REF", "refs/pull/7/merge"),
                ("GITHUB_EVENT_NAME", "pull_request"),
                ("GITHUB_EVENT_PATH", event),
            ]),
            vec!["01234567", "mr-7"],
        ),
        (
            "github tag",
            own(&[
                ("GITHUB_ACTIONS", "true"),
                ("GITHUB_SHA", SHA),
                ("GITHUB_REF", "refs/tags/v2.0.0"),
                ("GITHUB_EVENT_PATH", event),
            ]),
            vec!["01234567", "v2.0.0", "v2.0", "v2", "latest"],
        ),
        (
            "codebuild branch",
            own(&[
                ("CODEBUILD_BUILD_ID", "app:1"),
                ("CODEBUILD_RESOLVED_SOURCE_VERSION", SHA),
                ("CODEBUILD_WEBHOOK_HEAD_REF", "refs/heads/develop"),
                ("CODEBUILD_WEBHOOK_TRIGGER", "branch/develop"),
            ]),
            vec!["01234567", "develop"],
        ),
        (
            "codebuild tag",
            own(&[
                ("CODEBUILD_BUILD_ID", "app:2"),
                ("CODEBUILD_RESOLVED_SOURCE_VERSION", SHA),
                ("CODEBUILD_WEBHOOK_TRIGGER", "tag/v0.1.0"),
            ]),
            vec!["01234567", "v0.1.0", "v0.1", "v0", "latest"],
        ),
    ];
    for (situation, env, expected) in cases {
        assert_eq!(
            tag_names(&ci_tags(&env, dir.path())),
            expected,
            "{situation}"
        );
    }
}

#[test]
fn no_ci_reads_git_and_refuses_a_dirty_tree() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("file"), "one").unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    git(repo.path(), &["add", "file"]);
    git(repo.path(), &["commit", "-q", "-m", "first"]);
    let head = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(repo.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let tags = ci_tags(&[], repo.path());
    assert_eq!(tag_names(&tags), [&head[..8]]);
    assert_eq!(tags["provider"], "local");
    std::fs::write(repo.path().join("file"), "changed").unwrap();
    Hoist::new()
        .current_dir(repo.path())
        .run(["ci", "tags"])
        .fails_with(1, "uncommitted changes");
    let allowed = Hoist::new()
        .current_dir(repo.path())
        .run(["ci", "tags", "--allow-dirty"]);
    allowed.ok();
    assert_eq!(allowed.stdout.trim(), &head[..8]);
    let nowhere = tempfile::tempdir().unwrap();
    Hoist::new()
        .current_dir(nowhere.path())
        .run(["ci", "tags"])
        .fails_with(1, "needs a commit");
}

fn push_release(version: &str, repo: &str, content: &str) -> Run {
    let ctx = context(&[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", content)]);
    with_env(Hoist::new(), &gitlab(&[("CI_COMMIT_TAG", version)])).run([
        "build",
        ctx.path().to_str().unwrap(),
        "--push",
        "--tags",
        "auto",
        "-t",
        repo,
        "--json",
    ])
}

fn digest_of(reference: &str) -> String {
    crate::harness::registry::manifest_digest(reference, None).expect("tag exists")
}

#[test]
fn an_older_patch_tagged_later_does_not_move_v1_or_latest() {
    let repo = format!("{}/ci/release", shared().host);
    let newer = push_release("v1.3.0", &repo, "1.3.0");
    newer.ok();
    let newer_digest = newer.json()["digest"].as_str().unwrap().to_string();
    let older = push_release("v1.2.4", &repo, "1.2.4");
    older.ok();
    let older_digest = older.json()["digest"].as_str().unwrap().to_string();
    assert_eq!(digest_of(&format!("{repo}:v1.2.4")), older_digest);
    assert_eq!(digest_of(&format!("{repo}:v1.2")), older_digest);
    assert_eq!(
        digest_of(&format!("{repo}:v1")),
        newer_digest,
        "v1 moved back"
    );
    assert_eq!(
        digest_of(&format!("{repo}:latest")),
        newer_digest,
        "latest moved back"
    );
    // One upload, then one manifest PUT per extra tag: the JSON lists every tag pushed.
    let tags = older.json()["tags"].clone();
    assert_eq!(
        tags,
        json!([
            format!("{repo}:01234567"),
            format!("{repo}:v1.2.4"),
            format!("{repo}:v1.2")
        ])
    );
}

#[test]
fn a_retried_gitlab_build_gives_the_same_digest_with_labels_and_output_files() {
    let ctx = context(&[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "same")]);
    let out = tempfile::tempdir().unwrap();
    let repo = format!("{}/ci/retried", shared().host);
    let env = gitlab(&[("CI_COMMIT_BRANCH", "main"), ("CI_COMMIT_REF_SLUG", "main")]);
    let build = |touch: bool| {
        if touch {
            // A fresh clone has new mtimes: they are clamped to the commit time.
            std::fs::write(ctx.path().join("f"), "same").unwrap();
        }
        let run = with_env(Hoist::new(), &env).run([
            "build",
            ctx.path().to_str().unwrap(),
            "--push",
            "--tags",
            "auto",
            "-t",
            &repo,
            "--dotenv",
            out.path().join("build.env").to_str().unwrap(),
            "--digest-file",
            out.path().join("digest").to_str().unwrap(),
            "--imagedefinitions",
            out.path().join("imagedefinitions.json").to_str().unwrap(),
            "--container",
            "web",
            "--image-detail",
            out.path().join("imageDetail.json").to_str().unwrap(),
            "--json",
        ]);
        run.ok();
        run.json()["digest"].as_str().unwrap().to_string()
    };
    let first = build(false);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        build(true),
        first,
        "a retried job must give the same digest"
    );
    let read = |name: &str| std::fs::read_to_string(out.path().join(name)).unwrap();
    assert_eq!(
        read("build.env"),
        format!(
            "IMAGE_REPOSITORY={repo}\nIMAGE_REF={repo}@{first}\nIMAGE_DIGEST={first}\nIMAGE_TAGS=01234567,main,latest\n"
        )
    );
    assert_eq!(read("digest"), first);
    assert_eq!(
        read("imagedefinitions.json"),
        // The order of AWS's documentation (and of what hoist writes, in every build).
        format!(r#"[{{"name":"web","imageUri":"{repo}@{first}"}}]"#)
    );
    assert_eq!(
        read("imageDetail.json"),
        format!(r#"{{"ImageURI":"{repo}@{first}"}}"#)
    );
    let inspected: serde_json::Value =
        serde_json::from_slice(&skopeo_inspect(&format!("{repo}:main"), None, &[]).unwrap())
            .unwrap();
    let labels = &inspected["Labels"];
    assert_eq!(labels["org.opencontainers.image.revision"], SHA);
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://gitlab.example.com/group/app"
    );
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2024-05-01T10:00:00Z"
    );
    assert_eq!(labels["org.opencontainers.image.ref.name"], "main");
    assert_eq!(labels["org.opencontainers.image.version"], "main");
    assert_eq!(labels["org.opencontainers.image.title"], "app");
    assert_eq!(inspected["Created"], "2024-05-01T10:00:00Z");

    // --no-ci-labels: none of them.
    let plain = with_env(Hoist::new(), &env).run([
        "build",
        ctx.path().to_str().unwrap(),
        "--push",
        "-t",
        &format!("{repo}:nolabels"),
        "--no-ci-labels",
    ]);
    plain.ok();
    let inspected: serde_json::Value =
        serde_json::from_slice(&skopeo_inspect(&format!("{repo}:nolabels"), None, &[]).unwrap())
            .unwrap();
    assert!(inspected["Labels"].is_null() || inspected["Labels"].as_object().unwrap().is_empty());
}

#[test]
fn gitlab_push_without_t_uses_the_project_registry_with_sections_and_a_summary() {
    let ctx = context(&[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x")]);
    let image = format!("{}/ci/project", shared().host);
    let run = with_env(
        Hoist::new(),
        &gitlab(&[
            ("CI_COMMIT_BRANCH", "feature/x"),
            ("CI_REGISTRY_IMAGE", &image),
        ]),
    )
    .run(["build", ctx.path().to_str().unwrap(), "--push"]);
    run.ok();
    assert!(digest_of(&format!("{image}:feature-x")).starts_with("sha256:"));
    assert!(digest_of(&format!("{image}:01234567")).starts_with("sha256:"));
    assert!(
        run.stderr.contains("\x1b[0Ksection_start:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(":hoist_push[collapsed=false]\r\x1b[0Kwrite ")
    );
    assert!(run.stderr.contains("\x1b[0Ksection_end:"));
    for row in [
        "image   ",
        "digest  sha256:",
        "tags    ",
        "size    ",
        "time    ",
        "cache   ",
    ] {
        assert!(
            run.stdout.contains(row),
            "summary lacks {row:?}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn copy_and_tag_take_auto_tags_too() {
    let source = crate::harness::registry::seed_example(shared(), "ci/copy-source", None);
    let target = format!("{}/ci/copied", shared().host);
    let env = gitlab(&[("CI_COMMIT_BRANCH", "main")]);
    let out = tempfile::tempdir().unwrap();
    let dotenv = out.path().join("copy.env");
    with_env(Hoist::new(), &env)
        .run([
            "copy",
            &source,
            &target,
            "--tags",
            "auto",
            "--dotenv",
            dotenv.to_str().unwrap(),
        ])
        .ok();
    let digest = digest_of(&format!("{target}:latest"));
    assert_eq!(digest_of(&format!("{target}:01234567")), digest);
    assert!(
        std::fs::read_to_string(&dotenv)
            .unwrap()
            .contains("IMAGE_TAGS=01234567,main,latest\n")
    );
    with_env(
        Hoist::new(),
        &gitlab(&[
            ("CI_ENVIRONMENT_NAME", "staging"),
            ("CI_COMMIT_BRANCH", "main"),
        ]),
    )
    .run(["tag", &format!("{target}:latest"), "--tags", "auto"])
    .ok();
    assert_eq!(digest_of(&format!("{target}:staging")), digest);
}

#[test]
fn bad_ci_input_a_non_semver_tag_and_a_broken_hoist_toml() {
    let dir = tempfile::tempdir().unwrap();
    let env = gitlab(&[("CI_COMMIT_TAG", "release 2024/spring")]);
    let run = with_env(Hoist::new(), &env)
        .current_dir(dir.path())
        .run(["ci", "tags"]);
    run.ok();
    assert_eq!(run.stdout.trim(), "01234567\nrelease-2024-spring");
    assert!(
        run.stderr.contains("not a semantic version"),
        "{}",
        run.stderr
    );

    std::fs::write(
        dir.path().join("hoist.toml"),
        "[tags]\nlatest = false\nextra = [\"dev-{sha}\"]\nlatset = true\n",
    )
    .unwrap();
    with_env(Hoist::new(), &env)
        .current_dir(dir.path())
        .run(["ci", "tags"])
        .fails_with(1, "hoist.toml:4: unknown field `latset`");
    std::fs::write(
        dir.path().join("hoist.toml"),
        "[tags]\nlatest = false\nstrip-v = true\nextra = [\"dev-{sha}\"]\n",
    )
    .unwrap();
    let run = with_env(Hoist::new(), &gitlab(&[("CI_COMMIT_TAG", "v3.1.4")]))
        .current_dir(dir.path())
        .run(["ci", "tags"]);
    run.ok();
    assert_eq!(run.stdout.trim(), "01234567\n3.1.4\n3.1\n3\ndev-01234567");
}

/// `check-jsonschema` from the test venv (scripts/test installs it).
fn check_jsonschema() -> std::path::PathBuf {
    let venv = std::env::var_os("HOIST_TEST_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap())
                .join(".cache/hoist-test/venv")
        });
    venv.join("bin/check-jsonschema")
}

#[test]
fn ci_init_writes_pipelines_the_official_schemas_accept() {
    let ecr = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    let matrix: Vec<Vec<&str>> = vec![
        vec![],
        vec![
            "--isolation",
            "auto",
            "--platforms",
            "linux/amd64,linux/arm64",
        ],
        vec![
            "--registry",
            ecr,
            "--repository",
            "multi",
            "--platforms",
            "linux/amd64,linux/arm64/v8",
            "--native-runners",
            "saas-linux-small-amd64,saas-linux-small-arm64",
            "--mirror",
            "ci/mirror.yaml",
            "--release",
            "scripts/release -t \"$IMAGE_REPOSITORY\": all # of it",
            "--release-image",
            "rust:1.95-bookworm",
            "--deploy-ecs",
            "c/s",
            "--environments",
            "staging,production",
        ],
        vec![
            "--registry",
            ecr,
            "--repository",
            "scanned",
            "--push-mr",
            "--scan-fail-on",
            "CRITICAL,HIGH",
            "--scan-allow-failure",
            "--deploy-ecs",
            "c/s",
            "--environments",
            "production",
        ],
        vec![
            "--registry",
            ecr,
            "--repository",
            "team/app",
            "--deploy-ecs",
            "prod/api",
            "--environments",
            "staging,production",
        ],
        vec![
            "--registry",
            ecr,
            "--repository",
            "app",
            "--auth",
            "keys",
            "--deploy-ecs",
            "dev/api",
            "--deploy-ecs",
            "prod/api",
            "--environments",
            "dev,production",
        ],
        vec![
            "--registry",
            "registry.example.com",
            "--repository",
            "group/app",
            "--deploy-ecs",
            "c/s",
            "--environments",
            "production",
            "--region",
            "us-east-2",
            "--role-arn",
            "arn:aws:iam::123456789012:role/ci",
            "--oidc-aud",
            "https://gitlab.example.com",
        ],
    ];
    for (ci, file, schema) in [
        ("gitlab", ".gitlab-ci.yml", "vendor.gitlab-ci"),
        (
            "github",
            ".github/workflows/hoist.yml",
            "vendor.github-workflows",
        ),
    ] {
        for options in &matrix {
            if ci != "gitlab" && options.contains(&"--push-mr") {
                continue; // GitLab-only options.
            }
            let dir = tempfile::tempdir().unwrap();
            let mut args = vec!["ci", "init", ci];
            args.extend(options.iter().copied());
            Hoist::new().current_dir(dir.path()).run(&args).ok();
            let file = dir.path().join(file);
            let out = std::process::Command::new(check_jsonschema())
                .args(["--builtin-schema", schema])
                .arg(&file)
                .output()
                .expect("check-jsonschema (scripts/test installs it)");
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                out.status.success(),
                "{ci} {options:?}: {}\n{text}",
                String::from_utf8_lossy(&out.stdout)
            );
            // No privileged runner, no Docker-in-Docker service.
            assert!(
                !text.contains("dind") && !text.contains("privileged: true"),
                "{text}"
            );
            // The release command comes back from the YAML as given (quotes, `: `, ` #`).
            if let Some(at) = options.iter().position(|o| *o == "--release") {
                let yaml: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
                let (script, image) = if ci == "gitlab" {
                    (&yaml["release"]["script"][0], &yaml["release"]["image"])
                } else {
                    let job = &yaml["jobs"]["release"];
                    (
                        &job["steps"][job["steps"].as_array().unwrap().len() - 1]["run"],
                        &job["container"],
                    )
                };
                assert_eq!(script, options[at + 1], "{text}");
                assert_eq!(image, "rust:1.95-bookworm", "{text}");
            }
        }
    }
}

#[test]
fn ci_init_refuses_unknown_names_conflicts_and_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let init = |args: &[&str]| {
        let mut all = vec!["ci", "init"];
        all.extend(args);
        Hoist::new().current_dir(dir.path()).run(&all)
    };
    init(&["jenkins"]).fails_with(1, "invalid value 'jenkins'");
    init(&["codebuild"]).fails_with(1, "a CodeBuild pipeline needs --registry");
    init(&[
        "gitlab",
        "--auth",
        "keys",
        "--role-arn",
        "arn:aws:iam::1:role/x",
    ])
    .fails_with(1, "--role-arn is for --auth oidc");
    init(&["gitlab", "--deploy-ecs", "c/s"]).fails_with(1, "--deploy-ecs needs --environments");
    init(&["gitlab", "--scan-fail-on", "HIGH"])
        .fails_with(1, "--scan-fail-on reads ECR's scan findings");
    init(&["github", "--push-mr"]).fails_with(1, "for gitlab pipelines only");
    init(&[
        "gitlab",
        "--platforms",
        "linux/amd64,linux/arm64",
        "--native-runners",
        "x",
    ])
    .fails_with(
        1,
        "one runner tag per platform, in order (2 platforms, 1 runner tags)",
    );
    init(&["gitlab", "--native-runners", "x"]).fails_with(1, "--platforms");
    init(&[
        "gitlab",
        "--platforms",
        "linux/amd64",
        "--native-runners",
        "x",
        "--push-mr",
    ])
    .fails_with(1, "--push-mr with --native-runners");
    init(&[
        "codebuild",
        "--registry",
        "r.example.com",
        "--mirror",
        "mirror.yaml",
    ])
    .fails_with(
        1,
        "--native-runners, --mirror and --release are for gitlab and github",
    );
    init(&["gitlab", "--release-image", "rust:1"]).fails_with(1, "--release <COMMAND>");
    init(&["gitlab"]).ok();
    init(&["gitlab"]).fails_with(1, ".gitlab-ci.yml exists: pass --force");
    init(&["gitlab", "--force"]).ok();
}

#[test]
fn ci_init_codebuild_writes_a_buildspec_codebuild_can_read() {
    // No official buildspec schema: the structure CodeBuild documents (version 0.2, phases,
    // exported variables, artifacts, cache paths).
    let dir = tempfile::tempdir().unwrap();
    Hoist::new()
        .current_dir(dir.path())
        .run([
            "ci",
            "init",
            "codebuild",
            "--registry",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "--repository",
            "shop/web",
            "--container",
            "web",
            "--deploy-ecs",
            "prod/web",
            "--environments",
            "production",
        ])
        .ok();
    let text = std::fs::read_to_string(dir.path().join("buildspec.yml")).unwrap();
    let spec: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(spec["version"], 0.2, "{text}");
    assert_eq!(spec["env"]["variables"]["AWS_REGION"], "eu-west-1");
    assert_eq!(spec["env"]["exported-variables"][0], "IMAGE_REF");
    assert_eq!(spec["phases"]["build"]["on-failure"], "ABORT");
    let build = spec["phases"]["build"]["commands"][0].as_str().unwrap();
    assert!(
        build.starts_with("hoist build . -t \"$IMAGE_REPOSITORY\" --tags auto --push --ecr-create"),
        "{build}"
    );
    assert!(
        build.ends_with("--imagedefinitions imagedefinitions.json --container web"),
        "{build}"
    );
    assert!(
        spec["phases"]["post_build"]["commands"][0]
            .as_str()
            .unwrap()
            .starts_with(
                "hoist deploy ecs --cluster \"prod\" --service \"web\" --image \"$IMAGE_REF\""
            )
    );
    assert_eq!(spec["artifacts"]["files"][0], "imagedefinitions.json");
    assert_eq!(spec["cache"]["paths"][0], "/root/.hoist-cache/**/*");
}
