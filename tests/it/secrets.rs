//! Secret hygiene: every command run at -vv with known secrets (registry password, the
//! DOCKER_AUTH_CONFIG entry, AWS keys and session token, the ECR token, an OIDC JWT, a build
//! secret, CI_REGISTRY_PASSWORD) must not show any of them in stdout or stderr, nor leave them
//! in a layer, the history, the cache, the OCI layout, the state directory or any file but the
//! docker config `hoist login` was asked to write.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;

use crate::harness::aws::{ECR_HOST, TEST_ACCESS_KEY, TEST_SECRET_KEY, ecr, gitlab_id_token, now};
use crate::harness::files_containing;
use crate::harness::registry::{Auth, Registry, Run, example_layout};

const USER: &str = "leaktest";
const PASSWORD: &str = "Reg1stry-Pa55word-c0ffee";
const SESSION_TOKEN: &str = "FwoGZXIvYXdzLeakTestSessionToken0123456789abcdef";
const BUILD_SECRET: &str = "bu1ld-Secret-Value-deadbeef";

#[test]
fn no_secret_shows_up_in_output_layers_cache_or_files() {
    let registry = Registry::start(Auth::Htpasswd {
        user: USER,
        password: PASSWORD,
    });
    let env = ecr();
    env.create_repository("leak/app", "MUTABLE");
    let jwt = gitlab_id_token(json!("sts.amazonaws.com"), now() + 3600);
    let ecr_token = BASE64.encode(format!("AWS:{}", env.password()));
    let basic = BASE64.encode(format!("{USER}:{PASSWORD}"));
    let secrets: Vec<(&str, String)> = vec![
        ("registry password", PASSWORD.into()),
        ("registry basic auth", basic.clone()),
        ("AWS secret key", TEST_SECRET_KEY.into()),
        ("AWS session token", SESSION_TOKEN.into()),
        ("ECR password", env.password()),
        ("ECR token", ecr_token),
        ("OIDC JWT", jwt.clone()),
        ("build secret", BUILD_SECRET.into()),
    ];

    let work = tempfile::tempdir().unwrap();
    let (docker, state, cache, layout, ctx) = (
        work.path().join("docker"),
        work.path().join("state"),
        work.path().join("cache"),
        work.path().join("layout"),
        work.path().join("ctx"),
    );
    std::fs::create_dir_all(&docker).unwrap();
    std::fs::create_dir_all(&ctx).unwrap();
    let secret_file = work.path().join("secret.txt");
    std::fs::write(&secret_file, BUILD_SECRET).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci-layout://{}:latest\nRUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /len\nRUN --mount=type=secret,id=tok,env=TOK echo ${{#TOK}} >> /len\n",
            example_layout().display()
        ),
    )
    .unwrap();
    let host = registry.host.clone();
    let app = format!("{host}/leak/app");
    let hoist = || {
        env.hoist()
            .env("DOCKER_CONFIG", &docker)
            .env("XDG_STATE_HOME", &state)
            .env("HOIST_CACHE_DIR", &cache)
            .env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
            .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
            .env("CI_REGISTRY", &host)
            .env("CI_REGISTRY_USER", USER)
            .env("CI_REGISTRY_PASSWORD", PASSWORD)
    };
    let mut runs: Vec<(String, Run)> = Vec::new();
    let mut record = |what: &str, run: Run| {
        assert_eq!(run.code, 0, "{what}: {}", run.all_output());
        runs.push((what.to_string(), run));
    };
    record(
        "login",
        hoist()
            .stdin(PASSWORD)
            .run(["-vv", "login", &host, "-u", USER, "--password-stdin"]),
    );
    record(
        "build --push with a secret",
        hoist().run([
            "-vv".to_string(),
            "build".into(),
            ctx.display().to_string(),
            "--secret".into(),
            format!("id=tok,src={}", secret_file.display()),
            "-t".into(),
            format!("{app}:1"),
            "--push".into(),
            "-o".into(),
            format!("oci:{}", layout.display()),
        ]),
    );
    record(
        "copy",
        hoist().run(["-vv", "copy", &format!("{app}:1"), &format!("{app}:copy")]),
    );
    record("tag", hoist().run(["-vv", "tag", &format!("{app}:1"), "2"]));
    record(
        "inspect",
        hoist().run(["-vv", "inspect", &format!("{app}:1")]),
    );
    record("tags", hoist().run(["-vv", "tags", &app]));
    // DOCKER_AUTH_CONFIG in place of the login.
    record(
        "copy with DOCKER_AUTH_CONFIG",
        hoist()
            .env(
                "DOCKER_AUTH_CONFIG",
                json!({"auths": {&host: {"auth": basic}}}).to_string(),
            )
            .env("DOCKER_CONFIG", work.path().join("empty-docker"))
            .run(["-vv", "copy", &format!("{app}:1"), &format!("{app}:dac")]),
    );
    record(
        "ecr ensure",
        hoist().run([
            "-vv",
            "ecr",
            "ensure",
            &format!("{ECR_HOST}/leak/app"),
            "--keep",
            "5",
        ]),
    );
    record(
        "copy to ECR with keys",
        hoist().run([
            "-vv".to_string(),
            "copy".into(),
            format!("oci:{}", layout.display()),
            format!("{ECR_HOST}/leak/app:keys"),
        ]),
    );
    record(
        "copy to ECR with an OIDC token",
        hoist()
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci")
            .env("AWS_ID_TOKEN", &jwt)
            .run([
                "-vv".to_string(),
                "copy".into(),
                format!("oci:{}", layout.display()),
                format!("{ECR_HOST}/leak/app:oidc"),
            ]),
    );
    let mirror = work.path().join("mirror.yaml");
    std::fs::write(
        &mirror,
        format!("target: {ECR_HOST}/leak\nimages:\n  - source: {app}\n    tags: [\"1\"]\n    target: mirrored\necr: {{create: true}}\n"),
    )
    .unwrap();
    record(
        "mirror",
        hoist().run(["-vv", "mirror", "-f", &mirror.display().to_string()]),
    );

    record(
        "manifest merge",
        hoist().run([
            "-vv",
            "manifest",
            "merge",
            "-t",
            &format!("{app}:merged"),
            &format!("{app}:1"),
        ]),
    );
    record(
        "ecr scan",
        hoist().env("HOIST_ECR_SCAN_POLL_MS", "50").run([
            "-vv",
            "ecr",
            "scan",
            &format!("{ECR_HOST}/leak/app:keys"),
            "--wait",
        ]),
    );
    record(
        "ci tags",
        hoist()
            .env("GITLAB_CI", "true")
            .env("CI_COMMIT_SHA", "0123456789abcdef0123456789abcdef01234567")
            .env("CI_COMMIT_BRANCH", "main")
            .env("CI_DEFAULT_BRANCH", "main")
            .env("CI_JOB_TOKEN", PASSWORD)
            .run(["-vv", "ci", "tags", "-t", &app]),
    );
    record("cache verify", hoist().run(["-vv", "cache", "verify"]));
    let moto = &env.moto;
    moto.ecs_blocking("CreateCluster", json!({"clusterName": "leak"}))
        .unwrap();
    moto.ecs_blocking(
        "RegisterTaskDefinition",
        json!({"family": "leak-app", "containerDefinitions": [{"name": "app", "image": "nginx:1", "memory": 64}]}),
    )
    .unwrap();
    moto.ecs_blocking(
        "CreateService",
        json!({"cluster": "leak", "serviceName": "api", "taskDefinition": "leak-app", "desiredCount": 1}),
    )
    .unwrap();
    record(
        "deploy ecs",
        hoist().run([
            "-vv".to_string(),
            "deploy".into(),
            "ecs".into(),
            "--cluster".into(),
            "leak".into(),
            "--service".into(),
            "api".into(),
            "--image".into(),
            format!("{ECR_HOST}/leak/app:keys"),
            "--force".into(),
        ]),
    );
    let mut leaks = Vec::new();
    for (what, run) in &runs {
        for (name, secret) in &secrets {
            if run.all_output().contains(secret.as_str()) {
                leaks.push(format!("{name} in the output of {what}"));
            }
        }
    }
    // Files: the only one allowed a secret is the docker config login wrote; the build
    // secret's own source file is the user's.
    let allowed = [docker.join("config.json"), secret_file.clone()];
    for (name, secret) in &secrets {
        for file in files_containing(work.path(), secret.as_bytes()) {
            if !allowed.contains(&file) {
                leaks.push(format!("{name} in {}", file.display()));
            }
        }
    }
    assert!(leaks.is_empty(), "{leaks:#?}");
    // The login did store the credential (the one place it belongs).
    assert!(!files_containing(&docker, basic.as_bytes()).is_empty());
    assert_layout_has_image(&layout);
    crate::harness::figures(&format!(
        "secrets: {} commands at -vv, {} secrets, leaks 0",
        runs.len(),
        secrets.len()
    ));
}

fn assert_layout_has_image(layout: &Path) {
    assert!(layout.join("index.json").is_file());
}
