//! One retry policy for every call: 429 with Retry-After, 5xx and dropped connections are
//! survived; a permanent failure stops after the bounded number of attempts with nothing pushed.

use crate::harness::proxy::{Action, FaultProxy, Rule};
use crate::harness::registry::{
    Hoist, example_layout, other, seed_example, sha256_hex, shared, skopeo_raw,
};

fn rule(method: &str, path: &str, times: u32, action: Action) -> Rule {
    Rule {
        method: Some(method.to_string()),
        path_contains: path.to_string(),
        times: Some(times),
        action,
    }
}

/// `hoist copy` of the example image to `target`.
fn copy_example(target: &str) -> crate::harness::registry::Run {
    Hoist::new().run([
        "copy",
        &format!("oci:{}:latest", example_layout().display()),
        target,
    ])
}

#[test]
fn transient_faults_are_retried_and_the_copy_completes() {
    let proxy = FaultProxy::start(shared().addr);
    proxy.add_rule(rule(
        "HEAD",
        "/blobs/",
        1,
        Action::Status {
            code: 429,
            retry_after: Some(1),
        },
    ));
    proxy.add_rule(rule(
        "PUT",
        "/manifests/",
        2,
        Action::Status {
            code: 503,
            retry_after: None,
        },
    ));
    proxy.add_rule(rule("PUT", "/blobs/uploads/", 1, Action::Reset));
    proxy.add_rule(rule(
        "POST",
        "/blobs/uploads/",
        1,
        Action::Status {
            code: 502,
            retry_after: None,
        },
    ));
    let target = format!("{}/retry/target:v1", proxy.addr);
    copy_example(&target).ok();
    let faults = proxy.log().iter().filter(|r| r.fault).count();
    assert_eq!(
        faults,
        5,
        "every injected fault was hit: {:#?}",
        proxy.log()
    );
    let expected = std::fs::read(example_layout().join("index.json")).unwrap();
    let index: serde_json::Value = serde_json::from_slice(&expected).unwrap();
    let pushed = skopeo_raw(&format!("{}/retry/target:v1", shared().host), None).unwrap();
    assert_eq!(
        format!("sha256:{}", sha256_hex(&pushed)),
        index["manifests"][0]["digest"].as_str().unwrap()
    );
}

#[test]
fn broken_downloads_are_retried_from_a_fresh_stream() {
    let src = seed_example(shared(), "retry/download", None);
    let proxy = FaultProxy::start(shared().addr);
    proxy.add_rule(rule("GET", "/blobs/sha256:", 2, Action::CutResponse));
    proxy.add_rule(rule("GET", "/manifests/", 1, Action::Reset));
    let dst = format!("{}/retry/downloaded:v1", other().host);
    Hoist::new()
        .run([
            "-vv",
            "copy",
            &src.replace(&shared().host, &proxy.addr.to_string()),
            &dst,
        ])
        .ok();
    assert_eq!(proxy.log().iter().filter(|r| r.fault).count(), 3);
    assert_eq!(
        sha256_hex(&skopeo_raw(&dst, None).unwrap()),
        sha256_hex(&skopeo_raw(&src, None).unwrap())
    );
}

#[test]
fn a_permanent_500_stops_after_the_bounded_attempts_and_pushes_no_manifest() {
    let proxy = FaultProxy::start(shared().addr);
    proxy.add_rule(Rule {
        method: Some("PUT".into()),
        path_contains: "/manifests/".into(),
        times: None,
        action: Action::Status {
            code: 500,
            retry_after: None,
        },
    });
    let target = format!("{}/retry/permanent:v1", proxy.addr);
    let run = Hoist::new().env("HOIST_RETRY_ATTEMPTS", "4").run([
        "copy",
        "--platform",
        "linux/amd64",
        &format!("oci:{}:latest", example_layout().display()),
        &target,
    ]);
    run.fails_with(1, "gave up after 4 attempts");
    let manifest_puts = proxy
        .log()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/manifests/"))
        .count();
    assert_eq!(manifest_puts, 4, "exactly the bounded number of attempts");
    assert!(skopeo_raw(&format!("{}/retry/permanent:v1", shared().host), None).is_none());
}

/// Regression: two jobs pushing images that share blobs to one distribution registry at
/// once (the native-runner pipeline) made one fail: distribution answered its manifest PUT
/// with DIGEST_INVALID while the other job's upload of a shared blob was being committed.
/// Asked again, it accepts the manifest.
#[test]
fn a_manifest_put_answered_digest_invalid_is_asked_again() {
    let proxy = FaultProxy::start(shared().addr);
    proxy.add_rule(rule(
        "PUT",
        "/manifests/",
        1,
        Action::ReplaceAnswer {
            status: 400,
            error: "DIGEST_INVALID",
        },
    ));
    let target = format!("{}/retry/raced:v1", proxy.addr);
    copy_example(&target).ok();
    // The refused manifest was put again and stored.
    let log = proxy.log();
    let refused = log.iter().find(|r| r.fault).expect("the fault was hit");
    let statuses: Vec<Option<u16>> = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path == refused.path)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(400), Some(201)], "{log:#?}");
    assert!(skopeo_raw(&format!("{}/retry/raced:v1", shared().host), None).is_some());
}

/// Regression (found by the soak): a loopback registry whose first `/v2/` ping was cut off
/// was taken for an HTTPS one, and the push failed (or hung on the TLS handshake).
#[test]
fn a_plain_http_registry_that_drops_the_first_ping_is_still_plain_http() {
    let proxy = FaultProxy::start(shared().addr);
    proxy.add_rule(rule("GET", "/v2/", 1, Action::Reset));
    let target = format!("{}/retry/first-ping:v1", proxy.addr);
    copy_example(&target).ok();
    assert!(skopeo_raw(&format!("{}/retry/first-ping:v1", shared().host), None).is_some());
}

/// Regression (found by the soak): a manifest whose answer was cut off half-way was not
/// asked for again, so the copy failed.
#[test]
fn a_manifest_answer_cut_off_half_way_is_asked_for_again() {
    let src = seed_example(shared(), "retry/cut-manifest", None);
    let proxy = FaultProxy::start(shared().addr);
    proxy.add_rule(rule("GET", "/manifests/", 2, Action::CutResponse));
    let dst = format!("{}/retry/cut-manifest-copy:v1", other().host);
    Hoist::new()
        .run([
            "copy",
            &src.replacen(&shared().host, &proxy.addr.to_string(), 1),
            &dst,
        ])
        .ok();
    assert_eq!(proxy.log().iter().filter(|r| r.fault).count(), 2);
    assert!(skopeo_raw(&dst, None).is_some());
}

/// A wrong Docker-Content-Digest on a manifest PUT whose manifest is stored as sent is not
/// a failure (the answer was wrong); a registry that really stored something else is.
#[test]
fn a_wrong_digest_answer_to_a_manifest_put_is_checked_against_the_registry() {
    let proxy = FaultProxy::start(shared().addr);
    proxy.add_rule(rule("PUT", "/manifests/", 1, Action::WrongDigest));
    let layout = format!("oci:{}:latest", example_layout().display());
    Hoist::new()
        .run([
            "copy",
            &layout,
            &format!("{}/retry/wrong-answer:v1", proxy.addr),
        ])
        .ok();
    proxy.add_rule(rule("PUT", "/manifests/", 1, Action::WrongDigest));
    proxy.add_rule(rule(
        "HEAD",
        "/manifests/sha256:",
        1,
        Action::Status {
            code: 404,
            retry_after: None,
        },
    ));
    Hoist::new()
        .run([
            "copy",
            &layout,
            &format!("{}/retry/rewritten:v1", proxy.addr),
        ])
        .fails_with(1, "the registry stored the manifest as sha256:0000");
}
