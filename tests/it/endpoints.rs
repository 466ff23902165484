//! Registry endpoints: Docker Hub short names mapped to a local registry, loopback-only mode,
//! and OCI layouts hoist wrote checked with umoci.

use crate::harness::registry::{Hoist, hoist, seed_example, sha256_hex, shared, skopeo_raw};

#[test]
fn docker_hub_short_names_go_to_the_mapped_endpoint() {
    let src = seed_example(shared(), "library/busybox", None);
    let dir = tempfile::tempdir().unwrap();
    let run = Hoist::new()
        .env(
            "HOIST_REGISTRY_ENDPOINTS",
            format!("docker.io=http://{}", shared().host),
        )
        .run([
            "--json",
            "copy",
            "busybox",
            &format!("oci:{}", dir.path().display()),
        ]);
    let json = run.ok().json();
    assert_eq!(json["copies"][0]["source"], "docker.io/library/busybox");
    assert_eq!(
        json["copies"][0]["digest"],
        format!("sha256:{}", sha256_hex(&skopeo_raw(&src, None).unwrap()))
    );
    assert_eq!(
        json["copies"][0]["destination"],
        format!("oci:{}:latest", dir.path().display())
    );
}

#[test]
fn loopback_only_mode_refuses_other_hosts_before_connecting() {
    let run = hoist(["inspect", "registry.example.com/app:v1"]);
    run.fails_with(1, "HOIST_TEST_LOOPBACK_ONLY");
    assert!(
        run.stderr.contains("registry.example.com"),
        "{}",
        run.stderr
    );
    // An endpoint mapping to a non-loopback address is refused the same way.
    Hoist::new()
        .env("HOIST_REGISTRY_ENDPOINTS", "docker.io=https://203.0.113.1")
        .run(["inspect", "alpine"])
        .fails_with(1, "HOIST_TEST_LOOPBACK_ONLY");
}

#[test]
fn a_bad_endpoint_setting_is_a_clear_error() {
    Hoist::new()
        .env("HOIST_REGISTRY_ENDPOINTS", "docker.io")
        .run(["inspect", "alpine"])
        .fails_with(1, "HOIST_REGISTRY_ENDPOINTS entry `docker.io`");
}

#[test]
fn umoci_unpacks_a_layout_hoist_wrote() {
    let src = seed_example(shared(), "umoci/source", None);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    hoist([
        "copy",
        "--platform",
        "linux/amd64",
        &src,
        &format!("oci:{}:amd64", layout.display()),
    ])
    .ok();
    let bundle = dir.path().join("bundle");
    let out = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:amd64", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rootfs = bundle.join("rootfs");
    assert!(rootfs.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(rootfs.join("bin/sh")).unwrap(),
        std::path::PathBuf::from("busybox")
    );
    assert!(
        std::fs::read_to_string(rootfs.join("etc/passwd"))
            .unwrap()
            .contains("app:x:1000")
    );
}
