//! `hoist mirror`: upstream images into another registry from one file, incrementally.

use crate::harness::proxy::FaultProxy;
use crate::harness::registry::{Hoist, Run, other, seed_example, shared, skopeo_raw};

/// A fresh upstream repository on the shared registry with the example image (amd64+arm64)
/// under `tags`.
fn upstream(repo: &str, tags: &[&str]) -> String {
    let mut args = vec!["tag".to_string(), seed_example(shared(), repo, None)];
    args.extend(tags.iter().map(|t| t.to_string()));
    Hoist::new().run(&args).ok();
    format!("{}/{repo}", shared().host)
}

fn mirror(file: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec!["--json", "mirror", "-f", file.to_str().unwrap()];
    args.extend(extra);
    Hoist::new().run(args)
}

fn digest_of(reference: &str) -> String {
    crate::harness::registry::manifest_digest(reference, None).expect("the tag exists")
}

#[test]
fn mirroring_copies_what_is_new_and_nothing_twice() {
    let source = upstream(
        "up/tool",
        &["1.0.0", "1.1.0", "2.0.0", "2.1.0", "3.0.0", "stable"],
    );
    let proxy = FaultProxy::start(other().addr);
    let target = format!("{}/mirror", proxy.addr);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.yaml");
    std::fs::write(
        &file,
        format!(
            r#"target: {target}
images:
  - source: {source}
    semver: ">=1.1, <3"
    latest: 2
  - source: {source}
    tags: ["1.0.0"]
    target: tool-arm
    platforms: [linux/arm64]
  - source: {host}/up/missing
    tags: ["1"]
  - source: {source}
    regex: "^stable$"
    target: tool-stable
    rename: {{"stable": ["{{tag}}", "latest"]}}
"#,
            host = shared().host
        ),
    )
    .unwrap();

    // First run: the range's newest two, the filtered copy and the renamed one; the missing
    // source fails without stopping the others.
    let first = mirror(&file, &[]);
    first.fails_with(1, "1 of 5 mirrored tags failed");
    let out = first.json();
    assert_eq!(
        (out["copied"].as_u64(), out["failed"].as_u64()),
        (Some(4), Some(1)),
        "{out}"
    );
    let failed: Vec<&serde_json::Value> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "failed")
        .collect();
    assert!(
        failed[0]["source"]
            .as_str()
            .unwrap()
            .ends_with("up/missing:1")
    );
    let at = |path: &str| format!("{}/mirror/{path}", other().host);
    for tag in ["2.0.0", "2.1.0"] {
        assert_eq!(
            digest_of(&at(&format!("up/tool:{tag}"))),
            digest_of(&format!("{source}:{tag}")),
            "an unfiltered copy keeps the source digest"
        );
    }
    assert!(
        skopeo_raw(&at("up/tool:1.1.0"), None).is_none(),
        "only the newest two"
    );
    assert_eq!(
        digest_of(&at("tool-stable:latest")),
        digest_of(&format!("{source}:stable"))
    );
    let filtered: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&at("tool-arm:1.0.0"), None).unwrap()).unwrap();
    assert_eq!(
        filtered["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(filtered["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        filtered["manifests"][0]["platform"]["architecture"],
        "arm64"
    );
    assert_eq!(
        filtered["annotations"]["io.hoist.mirror.source-digest"],
        digest_of(&format!("{source}:1.0.0"))
    );

    // Second run: everything is recognised as up to date, the filtered copy too.
    proxy.clear_log();
    let second = mirror(&file, &[]);
    second.fails_with(1, "1 of 5 mirrored tags failed");
    assert_eq!(second.json()["up_to_date"], 4, "{}", second.stdout);
    assert_eq!(proxy.uploaded_bytes(), 0);
    assert!(
        proxy
            .log()
            .iter()
            .all(|r| r.method == "GET" || r.method == "HEAD"),
        "{:#?}",
        proxy.log()
    );

    // A new upstream tag in range: a dry run names it and writes nothing; a run copies it.
    Hoist::new()
        .run(["tag", &format!("{source}:3.0.0"), "2.2.0"])
        .ok();
    let dry = mirror(&file, &["--dry-run"]);
    let dry_out = dry.json();
    assert_eq!(dry_out["would_copy"], 1, "{dry_out}");
    assert!(skopeo_raw(&at("up/tool:2.2.0"), None).is_none());
    let third = mirror(&file, &[]);
    assert_eq!(third.json()["copied"], 1, "{}", third.stdout);
    assert!(skopeo_raw(&at("up/tool:2.2.0"), None).is_some());
}

#[test]
fn a_bad_mirror_file_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.yaml");
    std::fs::write(
        &file,
        "target: localhost:5000/m\nimages:\n  - source: localhost:5000/a\n    regex: \"[\"\n",
    )
    .unwrap();
    mirror(&file, &[]).fails_with(1, "mirror.yaml:4: regex `[`");
    std::fs::write(
        &file,
        "target: localhost:5000/m\nimages:\n  - source: localhost:5000/a\n    tags: [x]\n    colour: red\n",
    )
    .unwrap();
    mirror(&file, &[]).fails_with(1, "mirror.yaml:5: images[0]: unknown field `colour`");
}

#[test]
fn builds_pull_through_a_mirror_and_fall_back_to_the_registry() {
    // "Docker Hub" is the shared registry; the mirror (the other registry, prefix `hub`) has
    // only library/busybox.
    seed_example(shared(), "library/busybox", None);
    seed_example(shared(), "library/only-upstream", None);
    seed_example(other(), "hub/library/busybox", None);
    let ctx = crate::harness::context(&[
        (
            "Dockerfile",
            "FROM docker.io/library/busybox\nCOPY --from=docker.io/library/only-upstream /bin/busybox /bb\n",
        ),
        (
            "hoist.toml",
            &format!(
                "[mirrors]\n\"docker.io\" = [\"$NOT_SET_HERE/x\", \"{}/hub\"]\n",
                other().host
            ),
        ),
    ]);
    let build = |mirrors_env: Option<&str>| {
        let mut hoist = Hoist::new().current_dir(ctx.path()).env(
            "HOIST_REGISTRY_ENDPOINTS",
            format!("docker.io=http://{}", shared().host),
        );
        if let Some(value) = mirrors_env {
            hoist = hoist.env("HOIST_REGISTRY_MIRRORS", value);
        }
        let run = hoist.run(["build", ".", "--progress", "plain", "-o", "oci:out:img"]);
        run.ok();
        run.stderr
    };
    // From hoist.toml: an unset variable turns its mirror off; the next one has busybox.
    let stderr = build(None);
    assert!(
        stderr.contains(&format!(
            "pulling docker.io/library/busybox through the mirror {}/hub/library/busybox\n",
            other().host
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("only-upstream through"), "{stderr}");
    // HOIST_REGISTRY_MIRRORS overrides the file: a mirror without the image is passed over.
    let stderr = build(Some(&format!("docker.io={}/empty", other().host)));
    assert!(!stderr.contains("through the mirror"), "{stderr}");
}

#[test]
fn a_token_upstream_that_rate_limits_is_mirrored_after_waiting() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let server = crate::harness::token::TokenServer::start(dir.path(), &[("bob", "pw-Mirror-1")]);
    let upstream =
        crate::harness::registry::Registry::start(crate::harness::registry::Auth::Token(&server));
    seed_example(&upstream, "up/limited", Some("bob:pw-Mirror-1"));
    let proxy = FaultProxy::start(upstream.addr);
    // Docker Hub's answer to too many pulls: 429 with Retry-After, twice.
    proxy.add_rule(crate::harness::proxy::Rule {
        method: Some("GET".into()),
        path_contains: "/manifests/".into(),
        times: Some(2),
        action: crate::harness::proxy::Action::Status {
            code: 429,
            retry_after: Some(1),
        },
    });
    let file = dir.path().join("mirror.yaml");
    std::fs::write(
        &file,
        format!(
            "target: {}/limited\nimages:\n  - source: {}/up/limited\n    tags: [latest]\n",
            other().host,
            proxy.addr
        ),
    )
    .unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw-Mirror-1");
    let run = Hoist::new()
        .docker_config(
            &serde_json::json!({ "auths": { proxy.addr.to_string(): { "auth": auth } } }),
        )
        .run(["--json", "mirror", "-f", file.to_str().unwrap()]);
    run.ok();
    assert_eq!(run.json()["copied"], 1, "{}", run.stdout);
    assert_eq!(proxy.log().iter().filter(|r| r.fault).count(), 2);
    assert!(skopeo_raw(&format!("{}/limited/up/limited:latest", other().host), None).is_some());
}

#[test]
fn mirroring_into_ecr_creates_the_repositories_with_the_file_settings() {
    use crate::harness::aws::{ECR_HOST, ecr};
    let source = upstream("up/for-ecr", &["1.0.0"]);
    let env = ecr();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.yaml");
    std::fs::write(
        &file,
        format!(
            "target: {ECR_HOST}/mirror\necr: {{create: true, scan-on-push: true, keep: 7}}\nimages:\n  - source: {source}\n    tags: [\"1.0.0\"]\n"
        ),
    )
    .unwrap();
    let run = |hoist: Hoist| {
        let run = hoist.run(["--json", "mirror", "-f", file.to_str().unwrap()]);
        run.ok();
        run.json()
    };
    assert_eq!(run(env.hoist_with_keys())["copied"], 1);
    let repo = env.repository("mirror/up/for-ecr").expect("created");
    assert_eq!(repo["imageScanningConfiguration"]["scanOnPush"], true);
    assert!(
        env.lifecycle_policy("mirror/up/for-ecr")
            .contains("\"countNumber\":7")
    );
    assert_eq!(run(env.hoist_with_keys())["up_to_date"], 1);
}

#[test]
fn many_tags_of_one_image_at_once_all_arrive() {
    // Regression: copies of tags sharing manifests PUT the same index child and the same
    // index concurrently, and distribution answered some with DIGEST_INVALID.
    let tags: Vec<String> = (0..16).map(|n| format!("1.{n}.0")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let source = upstream("up/many", &tag_refs);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.yaml");
    std::fs::write(
        &file,
        format!(
            "target: {}/many\nimages:\n  - source: {source}\n    semver: \">=1\"\n",
            other().host
        ),
    )
    .unwrap();
    let run = mirror(&file, &["--jobs", "16"]);
    run.ok();
    assert_eq!(run.json()["copied"], 16, "{}", run.stdout);
}

#[test]
fn one_source_registry_gets_at_most_per_registry_tags_at_once() {
    let tags: Vec<String> = (0..8).map(|n| format!("3.{n}.0")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    upstream("up/polite", &tag_refs);
    let proxy = FaultProxy::start(shared().addr);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.yaml");
    std::fs::write(
        &file,
        format!(
            "target: {}/polite\nimages:\n  - source: {}/up/polite\n    semver: \">=3\"\n",
            other().host,
            proxy.addr
        ),
    )
    .unwrap();
    proxy.clear_log();
    let run = mirror(&file, &["--jobs", "8", "--per-registry", "1"]);
    run.ok();
    assert_eq!(run.json()["copied"], 8, "{}", run.stdout);
    // One tag at a time: its index, then its two platforms' manifests and blobs side by side.
    assert!(
        proxy.max_in_flight() <= 4,
        "{} requests at once",
        proxy.max_in_flight()
    );
}
