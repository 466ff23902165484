//! Registry auth: anonymous bearer tokens, basic auth, config.json (auths, credsStore helper),
//! DOCKER_AUTH_CONFIG, CI_REGISTRY_*, `hoist login`; wrong passwords never leak.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::harness::registry::{
    Auth, Hoist, Registry, example_layout, seed_example, sha256_hex, skopeo_raw,
};
use crate::harness::token::TokenServer;

const USER: &str = "alice";
const PASSWORD: &str = "pw-Secret-9f3a";
const WRONG: &str = "wrong-Secret-77c1";

fn token_registry() -> &'static (TokenServer, Registry, tempfile::TempDir) {
    static TOKEN: OnceLock<(TokenServer, Registry, tempfile::TempDir)> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let server = TokenServer::start(dir.path(), &[(USER, PASSWORD)]);
        let registry = Registry::start(Auth::Token(&server));
        (server, registry, dir)
    })
}

fn basic_registry() -> &'static Registry {
    static BASIC: OnceLock<Registry> = OnceLock::new();
    BASIC.get_or_init(|| {
        Registry::start(Auth::Htpasswd {
            user: USER,
            password: PASSWORD,
        })
    })
}

fn creds() -> String {
    format!("{USER}:{PASSWORD}")
}

fn auths_config(host: &str, password: &str) -> serde_json::Value {
    serde_json::json!({ "auths": { host: { "auth": BASE64.encode(format!("{USER}:{password}")) } } })
}

fn example() -> String {
    format!("oci:{}:latest", example_layout().display())
}

#[test]
fn anonymous_token_flow_pulls_from_a_token_registry() {
    let (server, registry, _) = token_registry();
    let src = seed_example(registry, "token/public", Some(&creds()));
    let before = server.requests();
    let dir = tempfile::tempdir().unwrap();
    Hoist::new()
        .run(["copy", &src, &format!("oci:{}", dir.path().display())])
        .ok();
    assert!(server.requests() > before, "a token was requested");
    assert!(
        server
            .scopes_seen()
            .iter()
            .any(|s| s.contains("repository:token/public:pull")),
        "{:?}",
        server.scopes_seen()
    );
}

#[test]
fn config_json_credentials_push_through_the_token_flow() {
    let (server, registry, _) = token_registry();
    let dst = format!("{}/token/pushed:v1", registry.host);
    Hoist::new()
        .docker_config(&auths_config(&registry.host, PASSWORD))
        .run(["copy", &example(), &dst])
        .ok();
    assert!(skopeo_raw(&dst, Some(&creds())).is_some());
    assert!(
        server
            .scopes_seen()
            .iter()
            .any(|s| s.contains("repository:token/pushed:pull,push"))
    );
}

#[test]
fn pushing_without_credentials_is_refused_clearly() {
    let (_, registry, _) = token_registry();
    let dst = format!("{}/token/anonymous-push:v1", registry.host);
    let run = Hoist::new().run(["copy", &example(), &dst]);
    run.fails_with(1, &registry.host);
    assert!(
        run.stderr.contains("unauthorized") || run.stderr.contains("denied"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"));
    assert!(skopeo_raw(&dst, Some(&creds())).is_none(), "nothing pushed");
}

#[test]
fn basic_auth_from_docker_auth_config() {
    let registry = basic_registry();
    let dst = format!("{}/basic/gitlab:v1", registry.host);
    Hoist::new()
        .env(
            "DOCKER_AUTH_CONFIG",
            auths_config(&registry.host, PASSWORD).to_string(),
        )
        .run(["copy", &example(), &dst])
        .ok();
    assert!(skopeo_raw(&dst, Some(&creds())).is_some());
}

#[test]
fn basic_auth_from_ci_registry_variables() {
    let registry = basic_registry();
    let dst = format!("{}/basic/ci:v1", registry.host);
    Hoist::new()
        .env("CI_REGISTRY", &registry.host)
        .env("CI_REGISTRY_USER", USER)
        .env("CI_REGISTRY_PASSWORD", PASSWORD)
        .run(["copy", &example(), &dst])
        .ok();
    assert!(skopeo_raw(&dst, Some(&creds())).is_some());
}

#[test]
fn creds_store_helper_is_run_for_the_host() {
    use std::os::unix::fs::PermissionsExt;
    let registry = basic_registry();
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-hoisttest");
    let asked = bin.path().join("asked");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" > {asked}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
            asked = asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let dst = format!("{}/basic/helper:v1", registry.host);
    Hoist::new()
        .env("PATH", path)
        .docker_config(&serde_json::json!({ "credsStore": "hoisttest" }))
        .run(["copy", &example(), &dst])
        .ok();
    assert_eq!(
        std::fs::read_to_string(&asked).unwrap().trim(),
        registry.host
    );
    assert!(skopeo_raw(&dst, Some(&creds())).is_some());
}

#[test]
fn wrong_password_exits_1_naming_the_registry_and_never_shows_the_password() {
    let (_, token_reg, _) = token_registry();
    for registry in [basic_registry(), token_reg] {
        let dst = format!("{}/wrong/pw:v1", registry.host);
        let run = Hoist::new()
            .docker_config(&auths_config(&registry.host, WRONG))
            .run(["-vv", "copy", &example(), &dst]);
        run.fails_with(1, "unauthorized");
        assert!(run.stderr.contains(&registry.host), "{}", run.stderr);
        let output = run.all_output();
        assert!(!output.contains(WRONG), "password leaked:\n{output}");
        assert!(
            !output.contains(&BASE64.encode(format!("{USER}:{WRONG}"))),
            "encoded password leaked"
        );
        assert!(skopeo_raw(&dst, Some(&creds())).is_none(), "nothing pushed");
    }
}

#[test]
fn login_checks_then_stores_credentials_for_later_commands() {
    for registry in [basic_registry(), &token_registry().1] {
        let config = tempfile::tempdir().unwrap();
        let bad = Hoist::new()
            .env("DOCKER_CONFIG", config.path())
            .stdin(&format!("{WRONG}\n"))
            .run(["login", &registry.host, "-u", USER, "--password-stdin"]);
        bad.fails_with(1, "unauthorized");
        assert!(!bad.all_output().contains(WRONG));
        assert!(
            !config.path().join("config.json").exists(),
            "nothing stored on failure"
        );

        let good = Hoist::new()
            .env("DOCKER_CONFIG", config.path())
            .stdin(&format!("{PASSWORD}\n"))
            .run(["login", &registry.host, "-u", USER, "--password-stdin"]);
        good.ok();
        assert!(!good.all_output().contains(PASSWORD));
        let stored = std::fs::read_to_string(config.path().join("config.json")).unwrap();
        assert!(stored.contains(&registry.host));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(config.path().join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let dst = format!("{}/login/after:v1", registry.host);
        Hoist::new()
            .env("DOCKER_CONFIG", config.path())
            .run(["copy", &example(), &dst])
            .ok();
        let pushed = skopeo_raw(&dst, Some(&creds())).unwrap();
        let expected = std::fs::read(example_layout().join("index.json")).unwrap();
        let index: serde_json::Value = serde_json::from_slice(&expected).unwrap();
        assert_eq!(
            format!("sha256:{}", sha256_hex(&pushed)),
            index["manifests"][0]["digest"].as_str().unwrap()
        );
    }
}

#[test]
fn a_mount_on_a_token_registry_asks_one_token_for_both_repositories() {
    let (server, registry, _) = token_registry();
    let src = seed_example(registry, "token/mount-src", Some(&creds()));
    let dst = format!("{}/token/mount-dst:v1", registry.host);
    let run = Hoist::new()
        .docker_config(&auths_config(&registry.host, PASSWORD))
        .run(["--json", "copy", &src, &dst]);
    assert_eq!(run.ok().json()["copies"][0]["stats"]["blobs_mounted"], 4);
    assert!(
        server.scopes_seen().iter().any(|s| {
            s.contains("repository:token/mount-dst:pull,push")
                && s.contains("repository:token/mount-src:pull")
        }),
        "{:?}",
        server.scopes_seen()
    );
}
