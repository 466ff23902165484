//! Amazon ECR against moto (control plane) and the harness's ECR shim (data plane): every way
//! of getting credentials, repositories created and converged, immutable tags, the scan gate,
//! the credential helper, and no secret in any output.

use std::path::Path;

use base64::Engine;
use serde_json::json;

use crate::harness::aws::{ECR_HOST, TEST_ACCESS_KEY, TEST_SECRET_KEY, ecr, gitlab_id_token, now};
use crate::harness::context;
use crate::harness::proxy::{Action, Rule};
use crate::harness::registry::{Hoist, Run};

/// A one-file image context; `content` makes distinct images.
fn image_context(content: &str) -> tempfile::TempDir {
    context(&[
        ("Dockerfile", "FROM scratch\nCOPY hello /hello\n"),
        ("hello", content),
    ])
}

fn push(hoist: Hoist, ctx: &Path, reference: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "build".to_string(),
        ctx.display().to_string(),
        "--push".into(),
        "-t".into(),
        reference.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    hoist.run(&args)
}

/// Creates a mutable repository and pushes a one-file image to its tag `v1`.
fn pushed_image(repository: &str, content: &str) -> String {
    let env = ecr();
    env.create_repository(repository, "MUTABLE");
    let reference = format!("{ECR_HOST}/{repository}:v1");
    push(
        env.hoist_with_keys(),
        image_context(content).path(),
        &reference,
        &[],
    )
    .ok();
    reference
}

/// A directory holding `docker-credential-hoist`, a symlink to hoist, and PATH with it first.
fn helper_on_path() -> (tempfile::TempDir, String) {
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        env!("CARGO_BIN_EXE_hoist"),
        bin.path().join("docker-credential-hoist"),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    (bin, path)
}

/// The key of the ECR token state file: sha256("<host>\n<identity>"), first 32 hex digits.
fn stored_token_key(identity: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        format!("{ECR_HOST}\n{identity}").as_bytes(),
    ))[..32]
        .to_string()
}

fn image_tags(repository: &str) -> Vec<String> {
    let images = ecr()
        .moto
        .ecr_blocking("DescribeImages", json!({"repositoryName": repository}))
        .expect("DescribeImages");
    images["imageDetails"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["imageTags"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

#[test]
fn pushes_with_static_keys_and_keeps_an_already_expired_token_out_of_the_state_file() {
    let env = ecr();
    env.create_repository("keys/app", "MUTABLE");
    let ctx = image_context("keys");
    let state = tempfile::tempdir().unwrap();
    let hoist = env.hoist_with_keys().env("XDG_STATE_HOME", state.path());
    let run = push(
        hoist,
        ctx.path(),
        &format!("{ECR_HOST}/keys/app:v1"),
        &["--json"],
    );
    run.ok();
    let digest = run.json()["digest"].as_str().unwrap().to_string();
    assert_eq!(image_tags("keys/app"), ["v1"]);
    // moto's token "expires" in 2015: used for this run, never stored.
    let stored =
        std::fs::read_to_string(state.path().join("hoist/ecr-tokens.json")).unwrap_or_default();
    assert!(
        !stored.contains(&env.password()) && !stored.contains("\"token\""),
        "{stored}"
    );
    // Any command touching ECR gets credentials the same way.
    let inspected =
        env.hoist_with_keys()
            .run(["inspect", "--json", &format!("{ECR_HOST}/keys/app:v1")]);
    inspected.ok();
    assert!(inspected.stdout.contains(&digest));
}

#[test]
fn pushes_with_a_gitlab_id_token_in_an_env_var() {
    let env = ecr();
    env.create_repository("oidc/app", "MUTABLE");
    let ctx = image_context("oidc");
    let run = push(
        env.hoist()
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gitlab-ci")
            .env(
                "AWS_ID_TOKEN",
                gitlab_id_token(json!("sts.amazonaws.com"), now() + 3600),
            )
            .env("CI_PROJECT_ID", "42")
            .env("CI_JOB_ID", "1001"),
        ctx.path(),
        &format!("{ECR_HOST}/oidc/app:v1"),
        &[],
    );
    run.ok();
    assert_eq!(image_tags("oidc/app"), ["v1"]);
}

#[test]
fn pushes_with_a_profile_from_aws_config_file() {
    let env = ecr();
    env.create_repository("profile/app", "MUTABLE");
    let ctx = image_context("profile");
    let hoist = env.hoist().env("AWS_PROFILE", "ci");
    std::fs::write(
        hoist.config_dir.join("aws-config"),
        format!(
            "[profile ci]\nregion = us-east-1\naws_access_key_id = {TEST_ACCESS_KEY}\naws_secret_access_key = {TEST_SECRET_KEY}\n"
        ),
    )
    .unwrap();
    push(
        hoist,
        ctx.path(),
        &format!("{ECR_HOST}/profile/app:v1"),
        &[],
    )
    .ok();
    assert_eq!(image_tags("profile/app"), ["v1"]);
}

#[test]
fn no_credentials_lists_what_was_tried() {
    let env = ecr();
    env.create_repository("nocreds/app", "MUTABLE");
    let ctx = image_context("nocreds");
    let run = push(
        env.hoist(),
        ctx.path(),
        &format!("{ECR_HOST}/nocreds/app:v1"),
        &[],
    );
    run.fails_with(
        1,
        "no AWS credentials found; tried, in order: AWS_ACCESS_KEY_ID",
    );
    assert!(run.stderr.contains("EC2 instance metadata (disabled"));
    assert!(run.stderr.contains("hint:"));
}

#[test]
fn a_refused_token_is_refreshed_once_and_the_push_goes_on() {
    ecr().refuse_next_valid_tokens(1);
    pushed_image("refresh/app", "refresh");
    assert_eq!(image_tags("refresh/app"), ["v1"]);
}

#[test]
fn oidc_token_problems_are_explained_before_calling_sts() {
    let env = ecr();
    // Every AWS call goes through a proxy that logs it: the expired token must cause none.
    let proxy = env.moto_behind_proxy();
    let ctx = image_context("expired");
    let expired = gitlab_id_token(json!("sts.amazonaws.com"), now() - 600);
    let run = push(
        env.hoist()
            .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr))
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gitlab-ci")
            .env("AWS_ID_TOKEN", &expired),
        ctx.path(),
        &format!("{ECR_HOST}/oidc/expired:v1"),
        &[],
    );
    run.fails_with(1, "the OIDC ID token in $AWS_ID_TOKEN expired 10m ago");
    assert!(run.stderr.contains("timeout"), "{}", run.stderr);
    assert!(!run.all_output().contains(&expired));
    assert!(proxy.log().is_empty(), "AWS was called: {:?}", proxy.log());

    let wrong_aud = gitlab_id_token(json!("https://vault.example.com/ignored"), now() + 600);
    let odd_aud = gitlab_id_token(json!("gitlab"), now() + 600);
    let run = push(
        env.hoist()
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gitlab-ci")
            .env("GITLAB_OIDC_TOKEN", &odd_aud),
        ctx.path(),
        &format!("{ECR_HOST}/oidc/aud:v1"),
        &[],
    );
    run.fails_with(1, "is for audience `gitlab`");
    assert!(
        run.stderr.contains("id_tokens: GITLAB_OIDC_TOKEN: aud:"),
        "{}",
        run.stderr
    );
    assert!(!run.all_output().contains(&odd_aud));
    // The variable named by --web-identity-token-env wins over the usual names.
    let run = push(
        env.hoist()
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gitlab-ci")
            .env(
                "AWS_ID_TOKEN",
                gitlab_id_token(json!("sts.amazonaws.com"), now() + 600),
            )
            .env("MY_TOKEN", gitlab_id_token(json!([]), now() + 600)),
        ctx.path(),
        &format!("{ECR_HOST}/oidc/aud:v1"),
        &["--web-identity-token-env", "MY_TOKEN"],
    );
    run.fails_with(1, "$MY_TOKEN has no `aud` claim");
    drop(wrong_aud);
}

#[test]
fn ecr_ensure_creates_then_does_nothing_then_converges() {
    let env = ecr();
    let name = format!("{ECR_HOST}/ensure/app");
    let ensure = || {
        env.hoist_with_keys().run([
            "ecr",
            "ensure",
            &name,
            "--scan-on-push",
            "--keep",
            "10",
            "--resource-tag",
            "team=web",
            "--json",
        ])
    };
    let first = ensure();
    first.ok();
    assert_eq!(first.json()["created"], true);
    let repo = env.repository("ensure/app").expect("created in moto");
    assert_eq!(repo["imageScanningConfiguration"]["scanOnPush"], true);

    let second = ensure();
    second.ok();
    assert_eq!(second.json()["created"], false);
    assert_eq!(second.json()["changes"], json!([]));

    let third = env.hoist_with_keys().run([
        "ecr",
        "ensure",
        "ensure/app",
        "--region",
        "us-east-1",
        "--keep",
        "20",
        "--immutable",
    ]);
    third.ok();
    assert!(
        third.stdout.contains("lifecycle policy replaced"),
        "{}",
        third.stdout
    );
    assert!(
        third.stdout.contains("tag mutability MUTABLE → IMMUTABLE"),
        "{}",
        third.stdout
    );
    assert!(
        env.lifecycle_policy("ensure/app")
            .contains("\"countNumber\":20")
    );
    assert_eq!(
        env.repository("ensure/app").unwrap()["imageTagMutability"],
        "IMMUTABLE"
    );

    // A policy file replaces the generated rules; encryption cannot change after creation.
    let policy_file = tempfile::NamedTempFile::new().unwrap();
    let custom = json!({"rules": [{"rulePriority": 1, "description": "prod",
        "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*"],
                      "countType": "imageCountMoreThan", "countNumber": 3},
        "action": {"type": "expire"}}]});
    std::fs::write(policy_file.path(), custom.to_string()).unwrap();
    let fourth = env.hoist_with_keys().run([
        "ecr",
        "ensure",
        &name,
        "--lifecycle-policy",
        policy_file.path().to_str().unwrap(),
        "--encryption",
        "KMS",
        "--json",
    ]);
    fourth.ok();
    assert_eq!(
        fourth.json()["changes"],
        json!(["lifecycle policy replaced"])
    );
    assert!(
        fourth.json()["warnings"][0]
            .as_str()
            .unwrap()
            .contains("only be chosen when the repository is created")
    );
    assert!(env.lifecycle_policy("ensure/app").contains("prod*"));
    let bad = env
        .hoist_with_keys()
        .run(["ecr", "ensure", "Bad:Name", "--region", "us-east-1"]);
    bad.fails_with(1, "is not an ECR repository name");
}

#[test]
fn push_to_a_missing_repository_fails_with_the_hint_or_creates_it_with_ecr_create() {
    let env = ecr();
    let ctx = image_context("create");
    let reference = format!("{ECR_HOST}/created/app:v1");
    let run = push(env.hoist_with_keys(), ctx.path(), &reference, &[]);
    run.fails_with(1, "ECR repository `created/app` does not exist");
    assert!(run.stderr.contains("--ecr-create"), "{}", run.stderr);
    assert!(
        !env.requests()
            .iter()
            .any(|(_, p)| p.contains("/created/app/")),
        "bytes were sent before the check"
    );

    let run = push(
        env.hoist_with_keys(),
        ctx.path(),
        &reference,
        &["--ecr-create", "--scan-on-push", "--immutable"],
    );
    run.ok();
    assert!(
        run.stderr.contains("created ECR repository"),
        "{}",
        run.stderr
    );
    let repo = env.repository("created/app").unwrap();
    assert_eq!(repo["imageTagMutability"], "IMMUTABLE");
    assert_eq!(image_tags("created/app"), ["v1"]);
}

#[test]
fn immutable_tags_same_digest_is_a_no_op_another_is_one_clear_error() {
    let env = ecr();
    env.create_repository("immutable/app", "IMMUTABLE");
    let reference = format!("{ECR_HOST}/immutable/app:v1");
    let first = image_context("one");
    // A retried CI job builds the same digest (SOURCE_DATE_EPOCH = the commit time).
    let hoist = || env.hoist_with_keys().env("SOURCE_DATE_EPOCH", "1700000000");
    let run = push(hoist(), first.path(), &reference, &["--json"]);
    run.ok();
    let digest = run.json()["digest"].as_str().unwrap().to_string();
    let again = push(hoist(), first.path(), &reference, &[]);
    again.ok();
    assert!(again.stdout.contains(&digest), "{}", again.stdout);
    assert!(again.stderr.contains("nothing to push"), "{}", again.stderr);

    let second = image_context("two");
    let run = push(env.hoist_with_keys(), second.path(), &reference, &[]);
    run.fails_with(1, "immutable/app:v1 already exists as");
    assert!(run.stderr.contains(&digest), "{}", run.stderr);
    assert!(run.stderr.contains("unique tag"), "{}", run.stderr);
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1
    );

    // `latest` moves, so on an immutable repository it is skipped with a warning.
    let run = push(
        env.hoist_with_keys(),
        second.path(),
        &format!("{ECR_HOST}/immutable/app:latest"),
        &[],
    );
    run.ok();
    assert!(
        run.stderr.contains("skipped the moving tag `latest`"),
        "{}",
        run.stderr
    );
    assert!(!image_tags("immutable/app").contains(&"latest".to_string()));
}

#[test]
fn a_registry_refusal_of_an_immutable_tag_gets_the_same_message() {
    // When hoist cannot read the repository's settings (no ecr:DescribeRepositories, or the
    // repository turned immutable meanwhile), ECR's own refusal is mapped to the same error.
    let env = ecr();
    env.create_repository("race/app", "IMMUTABLE");
    let reference = format!("{ECR_HOST}/race/app:v1");
    let run = push(
        env.hoist_with_keys(),
        image_context("a").path(),
        &reference,
        &["--json"],
    );
    run.ok();
    let first = run.json()["digest"].as_str().unwrap().to_string();
    let proxy = env.moto_behind_proxy();
    proxy.add_rule(Rule {
        method: None,
        path_contains: "DescribeRepositories".into(),
        times: None,
        action: Action::Status {
            code: 403,
            retry_after: None,
        },
    });
    let run = push(
        env.hoist_with_keys()
            .env("AWS_ENDPOINT_URL", format!("http://{}", proxy.addr)),
        image_context("b").path(),
        &reference,
        &[],
    );
    run.fails_with(1, "race/app:v1 already exists as");
    assert!(run.stderr.contains(&first), "{}", run.stderr);
    assert!(
        proxy
            .log()
            .iter()
            .any(|r| r.path.contains("DescribeRepositories")),
        "the check was not attempted"
    );
}

#[test]
fn scan_gate_exits_3_at_the_threshold() {
    let env = ecr();
    let reference = pushed_image("scan/app", "scan");
    let hoist = || env.hoist_with_keys().env("HOIST_ECR_SCAN_POLL_MS", "50");
    // moto reports one HIGH finding once a scan has run.
    let passed = hoist().run(["ecr", "scan", &reference, "--wait", "--fail-on", "CRITICAL"]);
    passed.ok();
    assert!(passed.stdout.contains("HIGH 1"), "{}", passed.stdout);
    let gated = hoist().run([
        "ecr",
        "scan",
        &reference,
        "--wait",
        "--fail-on",
        "critical,HIGH",
        "--json",
    ]);
    assert_eq!(gated.code, 3, "{}{}", gated.stdout, gated.stderr);
    assert_eq!(gated.json()["passed"], false);
    assert!(
        gated.stderr.contains("scan gate: 1 HIGH"),
        "{}",
        gated.stderr
    );
    let report = hoist().run(["ecr", "scan", &reference]);
    report.ok();
    let bad = hoist().run(["ecr", "scan", &reference, "--fail-on", "SEVERE"]);
    bad.fails_with(1, "severities are CRITICAL");
}

#[test]
fn docker_credential_hoist_serves_skopeo() {
    let env = ecr();
    let reference = pushed_image("helper/app", "helper");

    let (bin, path) = helper_on_path();
    let conf = tempfile::tempdir().unwrap();
    let auth = conf.path().join("auth.json");
    let shim = env.shim.to_string();
    std::fs::write(
        &auth,
        json!({"credHelpers": {ECR_HOST: "hoist", shim: "hoist"}}).to_string(),
    )
    .unwrap();
    let registries = conf.path().join("registries.conf");
    std::fs::write(
        &registries,
        format!(
            "[[registry]]\nprefix = \"{ECR_HOST}\"\nlocation = \"{}\"\ninsecure = true\n",
            env.shim
        ),
    )
    .unwrap();
    let out = std::process::Command::new("skopeo")
        .env("PATH", &path)
        // skopeo asks the helper about the rewritten location; hoist maps it back.
        .env(
            "HOIST_REGISTRY_ENDPOINTS",
            format!("{ECR_HOST}=http://{}", env.shim),
        )
        .env("AWS_ENDPOINT_URL", &env.moto.url)
        .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("XDG_STATE_HOME", conf.path().join("state"))
        .args(["--registries-conf"])
        .arg(&registries)
        .args(["inspect", "--raw", "--authfile"])
        .arg(&auth)
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo with docker-credential-hoist failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("schemaVersion"));

    // The helper protocol itself: ECR hosts get AWS/<password>, others "not found".
    let helper = |input: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(bin.path().join("docker-credential-hoist"))
            .arg("get")
            .env("AWS_ENDPOINT_URL", &env.moto.url)
            .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("XDG_STATE_HOME", conf.path().join("state"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let got = helper(&format!("https://{ECR_HOST}"));
    assert!(got.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(answer["Username"], "AWS");
    assert_eq!(answer["Secret"], env.password());
    let other = helper("registry.gitlab.com");
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stdout).contains("credentials not found"));
}

#[test]
fn login_to_ecr_needs_no_password() {
    let env = ecr();
    let docker = tempfile::tempdir().unwrap();
    let config = docker.path().join("config.json");
    let run = env
        .hoist_with_keys()
        .env("DOCKER_CONFIG", docker.path())
        .run(["login", ECR_HOST]);
    run.ok();
    assert!(run.stdout.contains("Login Succeeded"), "{}", run.stdout);
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert!(stored["auths"][ECR_HOST]["auth"].is_string());
    // With docker-credential-hoist on PATH, login points docker at it instead of a password.
    let (_bin, path) = helper_on_path();
    env.hoist_with_keys()
        .env("DOCKER_CONFIG", docker.path())
        .env("PATH", path)
        .run(["login", ECR_HOST])
        .ok();
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(stored["credHelpers"][ECR_HOST], "hoist");
    assert!(stored["auths"].get(ECR_HOST).is_none(), "{stored}");
    let plain = Hoist::new().run(["login", "registry.example.com"]);
    plain.fails_with(1, "pass -u USER --password-stdin");
}

#[test]
fn no_secret_reaches_any_output_even_at_trace_level() {
    let env = ecr();
    env.create_repository("secrets/app", "MUTABLE");
    let ctx = image_context("secrets");
    let session_token = "FwoGZXIvYXdzEHoaDHoistSessionTokenSecretValue0123456789";
    let jwt = gitlab_id_token(json!("sts.amazonaws.com"), now() + 3600);
    let ecr_token =
        base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", env.password()));
    let runs = [
        push(
            env.hoist_with_keys()
                .env("AWS_SESSION_TOKEN", session_token),
            ctx.path(),
            &format!("{ECR_HOST}/secrets/app:keys"),
            &["-vv"],
        ),
        push(
            env.hoist()
                .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/gitlab-ci")
                .env("AWS_ID_TOKEN", &jwt),
            ctx.path(),
            &format!("{ECR_HOST}/secrets/app:oidc"),
            &["-vv"],
        ),
        env.hoist_with_keys()
            .env("AWS_SESSION_TOKEN", session_token)
            .run([
                "-vv",
                "ecr",
                "ensure",
                &format!("{ECR_HOST}/secrets/app"),
                "--keep",
                "5",
            ]),
        env.hoist_with_keys().run([
            "-vv",
            "--json",
            "inspect",
            &format!("{ECR_HOST}/secrets/app:keys"),
        ]),
        env.hoist_with_keys().run(["-vv", "login", ECR_HOST]),
    ];
    for run in &runs {
        run.ok();
        let output = run.all_output();
        for secret in [
            TEST_SECRET_KEY,
            session_token,
            jwt.as_str(),
            &env.password(),
            &ecr_token,
        ] {
            assert!(
                !output.contains(secret),
                "a secret leaked into the output:\n{output}"
            );
        }
    }
}

#[test]
fn more_credential_sources_web_identity_file_ecs_container_and_the_deprecated_jwt() {
    let env = ecr();
    env.create_repository("sources/app", "MUTABLE");
    let ctx = image_context("sources");
    let role = "arn:aws:iam::123456789012:role/ci";
    // The SDK chain's own web identity: a token file.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(
        &token_file,
        gitlab_id_token(json!("sts.amazonaws.com"), now() + 600),
    )
    .unwrap();
    push(
        env.hoist()
            .env("AWS_ROLE_ARN", role)
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file),
        ctx.path(),
        &format!("{ECR_HOST}/sources/app:file"),
        &[],
    )
    .ok();
    // ECS task role credentials from the container credentials endpoint.
    let server = crate::harness::http::FileServer::start();
    server.put(
        "creds",
        json!({
            "AccessKeyId": TEST_ACCESS_KEY,
            "SecretAccessKey": TEST_SECRET_KEY,
            "Token": "ecs-session-token",
            "Expiration": "2099-01-01T00:00:00Z",
        })
        .to_string()
        .as_bytes(),
    );
    push(
        env.hoist().env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("{}/creds", server.url),
        ),
        ctx.path(),
        &format!("{ECR_HOST}/sources/app:ecs"),
        &[],
    )
    .ok();
    assert!(
        server.gets("/creds") >= 1,
        "the container endpoint was not asked"
    );
    // GitLab's deprecated CI_JOB_JWT_V2 still works, with a warning.
    let run = push(
        env.hoist().env("AWS_ROLE_ARN", role).env(
            "CI_JOB_JWT_V2",
            gitlab_id_token(json!("https://gitlab.com"), now() + 600),
        ),
        ctx.path(),
        &format!("{ECR_HOST}/sources/app:jwt"),
        &[],
    );
    run.ok();
    assert!(
        run.stderr.contains("deprecated $CI_JOB_JWT_V2"),
        "{}",
        run.stderr
    );
    let mut tags = image_tags("sources/app");
    tags.sort();
    assert_eq!(tags, ["ecs", "file", "jwt"]);
}

#[test]
fn a_stored_token_is_used_until_shortly_before_it_expires() {
    let env = ecr();
    env.create_repository("stored/app", "MUTABLE");
    let state = tempfile::tempdir().unwrap();
    let key = &stored_token_key(&format!("key:{TEST_ACCESS_KEY}"));
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", env.password()));
    let write = |expires_at: i64| {
        std::fs::create_dir_all(state.path().join("hoist")).unwrap();
        std::fs::write(
            state.path().join("hoist/ecr-tokens.json"),
            json!({"tokens": {key: {"registry": ECR_HOST, "token": token, "expires_at": expires_at}}})
                .to_string(),
        )
        .unwrap();
    };
    // AWS is unreachable: only the stored token can make this push work.
    let offline = || {
        env.hoist_with_keys()
            .env("XDG_STATE_HOME", state.path())
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_MAX_ATTEMPTS", "1")
    };
    write(now() + 3600);
    push(
        offline(),
        image_context("stored").path(),
        &format!("{ECR_HOST}/stored/app:v1"),
        &[],
    )
    .ok();
    // Ten minutes before expiry it is not trusted any more: AWS is asked (and unreachable).
    write(now() + 600);
    let run = push(
        offline(),
        image_context("stored").path(),
        &format!("{ECR_HOST}/stored/app:v2"),
        &[],
    );
    run.fails_with(1, "ECR GetAuthorizationToken (us-east-1)");
    assert_eq!(image_tags("stored/app"), ["v1"]);
}

#[test]
fn copy_and_tag_push_to_ecr_and_immutable_exceptions_let_tags_move() {
    let env = ecr();
    let source = crate::harness::registry::seed_example(
        crate::harness::registry::shared(),
        "ecr-copy-source",
        None,
    );
    let target = format!("{ECR_HOST}/copied/app");
    env.hoist_with_keys()
        .run([
            "copy",
            &source,
            &format!("{target}:v1"),
            "--ecr-create",
            "--immutable-except",
            "latest",
            "--immutable-except",
            "dev-*",
        ])
        .ok();
    let repo = env.repository("copied/app").unwrap();
    assert_eq!(repo["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
    env.hoist_with_keys()
        .run(["tag", &format!("{target}:v1"), "latest", "dev-1"])
        .ok();
    let mut tags = image_tags("copied/app");
    tags.sort();
    assert_eq!(tags, ["dev-1", "latest", "v1"]);
    // Options without --ecr-create are a usage error, not silently ignored.
    env.hoist_with_keys()
        .run(["copy", &source, &format!("{target}:v2"), "--immutable"])
        .fails_with(1, "need --ecr-create");
}

#[test]
fn auto_tags_on_an_immutable_repository_push_fixed_tags_and_skip_moving_ones() {
    let env = ecr();
    env.create_repository("release/app", "IMMUTABLE");
    let ctx = image_context("release");
    let run = push(
        env.hoist_with_keys()
            .env("GITLAB_CI", "true")
            .env("CI_COMMIT_SHA", "89abcdef0123456789abcdef0123456789abcdef")
            .env("CI_COMMIT_TAG", "v1.0.0")
            .env("CI_COMMIT_TIMESTAMP", "2024-05-01T10:00:00Z"),
        ctx.path(),
        &format!("{ECR_HOST}/release/app"),
        &["--tags", "auto"],
    );
    run.ok();
    for moving in ["v1.0", "v1", "latest"] {
        assert!(
            run.stderr
                .contains(&format!("skipped the moving tag `{moving}`")),
            "{}",
            run.stderr
        );
    }
    let mut tags = image_tags("release/app");
    tags.sort();
    assert_eq!(tags, ["89abcdef", "v1.0.0"]);
}

#[test]
fn a_stored_token_is_never_handed_to_a_job_that_only_names_the_role() {
    let env = ecr();
    env.create_repository("stored/role", "MUTABLE");
    let state = tempfile::tempdir().unwrap();
    let role = "arn:aws:iam::123456789012:role/push-prod";
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", env.password()));
    // A token stored by some earlier job, under every key that names the role.
    let mut tokens = serde_json::Map::new();
    for label in [format!("role:{role}"), format!("key:{role}")] {
        let key = stored_token_key(&label);
        tokens.insert(
            key,
            json!({"registry": ECR_HOST, "token": token, "expires_at": now() + 3600}),
        );
    }
    std::fs::create_dir_all(state.path().join("hoist")).unwrap();
    std::fs::write(
        state.path().join("hoist/ecr-tokens.json"),
        json!({"tokens": tokens}).to_string(),
    )
    .unwrap();
    let run = push(
        env.hoist()
            .env("XDG_STATE_HOME", state.path())
            .env("AWS_ROLE_ARN", role),
        image_context("role-only").path(),
        &format!("{ECR_HOST}/stored/role:v1"),
        &[],
    );
    run.fails_with(1, "no AWS credentials found");
    assert!(image_tags("stored/role").is_empty());
}
