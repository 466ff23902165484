//! `hoist build --platform a,b`: one image per platform in one index, foreign RUN steps under
//! QEMU (scripts/test registers Debian's qemu-aarch64 binfmt_misc handler), platform errors.

use std::path::Path;

use crate::harness::registry::{Hoist, example_layout, shared, skopeo_raw};
use crate::harness::tree::{Tree, unpack_layout};

/// A context whose Dockerfile builds on the example base (amd64 and arm64).
fn project(dockerfile_tail: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("hello"), "hello\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci-layout://{}:latest\n{dockerfile_tail}",
            example_layout().display()
        ),
    )
    .unwrap();
    dir
}

/// One platform of an index in an OCI layout, unpacked (skopeo picks it, umoci unpacks).
fn unpack_platform(layout: &Path, arch: &str, into: &Path) -> Tree {
    std::fs::create_dir_all(into).unwrap();
    let single = into.join("single");
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--override-os", "linux", "--override-arch", arch])
        .arg(format!("oci:{}:img", layout.display()))
        .arg(format!("oci:{}:img", single.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy of {arch}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    unpack_layout(&single, "img", &into.join("unpacked"))
}

fn file_sha(content: &[u8]) -> Option<String> {
    crate::harness::tree::Entry::file("/x", 0o644, content).sha256
}

#[test]
fn two_platforms_make_one_index_and_the_arm64_run_runs_under_qemu() {
    let dir = project(
        "ARG TARGETPLATFORM\nCOPY hello /hello\nRUN echo $TARGETPLATFORM $(uname -m) > /p\n",
    );
    let out = dir.path().join("out");
    Hoist::new()
        .env("HOIST_CACHE_DIR", dir.path().join("cache"))
        .run([
            "build",
            dir.path().join("ctx").to_str().unwrap(),
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("oci:{}:img", out.display()),
        ])
        .ok();
    let index: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&format!("oci:{}:img", out.display()), None).unwrap())
            .unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        platforms,
        ["linux/amd64", "linux/arm64"],
        "in the order asked"
    );
    let amd64 = unpack_platform(&out, "amd64", &dir.path().join("amd64"));
    let arm64 = unpack_platform(&out, "arm64", &dir.path().join("arm64"));
    assert_eq!(amd64["/p"].sha256, file_sha(b"linux/amd64 x86_64\n"));
    // An aarch64 process wrote it: the command ran under QEMU.
    assert_eq!(arm64["/p"].sha256, file_sha(b"linux/arm64 aarch64\n"));
    assert_eq!(amd64["/hello"].sha256, arm64["/hello"].sha256);
    assert_ne!(
        amd64["/bin/busybox"].sha256, arm64["/bin/busybox"].sha256,
        "each platform on its own base"
    );
}

#[test]
fn a_multi_platform_push_is_a_manifest_list_with_only_the_platforms() {
    let dir = project("COPY hello /hello\n");
    let target = format!("{}/multi/app:v1", shared().host);
    Hoist::new()
        .env("HOIST_CACHE_DIR", dir.path().join("cache"))
        .run([
            "build",
            dir.path().join("ctx").to_str().unwrap(),
            "--platform",
            "linux/arm64,linux/amd64",
            "-t",
            &target,
            "--push",
        ])
        .ok();
    let list: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&target, None).unwrap()).unwrap();
    assert_eq!(
        list["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let manifests = list["manifests"].as_array().unwrap();
    // No attestation manifests (unknown/unknown entries): AWS Lambda refuses them.
    assert_eq!(manifests.len(), 2, "{list}");
    for (manifest, arch) in manifests.iter().zip(["arm64", "amd64"]) {
        assert_eq!(manifest["platform"]["architecture"], arch);
        assert_eq!(
            manifest["mediaType"],
            "application/vnd.docker.distribution.manifest.v2+json"
        );
        // Each platform's image is in the repository by digest.
        let digest = manifest["digest"].as_str().unwrap();
        let by_digest = format!("{}/multi/app@{digest}", shared().host);
        assert!(skopeo_raw(&by_digest, None).is_some(), "{by_digest}");
    }
}

#[test]
fn platform_mistakes_are_named() {
    let dir = project("COPY hello /hello\n");
    let ctx = dir.path().join("ctx");
    let build = |platforms: &str| {
        Hoist::new().run([
            "build",
            ctx.to_str().unwrap(),
            "--platform",
            platforms,
            "-o",
            &format!("oci:{}:img", dir.path().join("out").display()),
        ])
    };
    build("linux/amd64,linux/arm64/v8,linux/arm64")
        .fails_with(1, "--platform names linux/arm64 twice");
    build("linux//amd64").fails_with(1, "--platform: platform `linux//amd64` is not of the form");
    build("linux/amd64,linux/s390x").fails_with(
        1,
        "has no image for linux/s390x (it has: linux/amd64, linux/arm64)",
    );
    assert!(!dir.path().join("out").exists(), "nothing written");
}

#[test]
fn a_foreign_run_without_an_emulator_names_the_missing_handler() {
    assert!(
        !Path::new("/proc/sys/fs/binfmt_misc/qemu-s390x").exists(),
        "this test needs a machine without an s390x emulator"
    );
    let ctx = crate::harness::context(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY tool /tool\nRUN [\"/tool\"]\n",
        ),
        ("tool", "#!/bin/sh\n"),
    ]);
    Hoist::new()
        .run([
            "build",
            ctx.path().to_str().unwrap(),
            "--platform",
            "linux/s390x",
        ])
        .fails_with(
            1,
            "Dockerfile:3: RUN for linux/s390x needs to emulate s390x, and this machine has no binfmt_misc handler for it (qemu-s390x): install qemu-user-static",
        );
}
