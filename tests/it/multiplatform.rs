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

/// Builds `dir/ctx` for linux/amd64 and linux/arm64 into the layout `dir/out` (ref `img`).
fn build_both_into_layout(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("out");
    Hoist::new()
        .env("HOIST_CACHE_DIR", dir.join("cache"))
        .run([
            "build",
            dir.join("ctx").to_str().unwrap(),
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("oci:{}:img", out.display()),
        ])
        .ok();
    out
}

fn file_sha(content: &[u8]) -> Option<String> {
    crate::harness::tree::Entry::file("/x", 0o644, content).sha256
}

#[test]
fn two_platforms_make_one_index_and_the_arm64_run_runs_under_qemu() {
    let dir = project(
        "ARG TARGETPLATFORM\nCOPY hello /hello\nRUN echo $TARGETPLATFORM $(uname -m) > /p\n",
    );
    let out = build_both_into_layout(dir.path());
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

#[test]
fn merging_platforms_built_apart_equals_the_combined_build_and_moves_no_layer() {
    let dir = project("COPY hello /hello\nRUN uname -m > /machine\n");
    let proxy = crate::harness::proxy::FaultProxy::start(shared().addr);
    let host = proxy.addr.to_string();
    let build = |platforms: &str, target: &str| {
        Hoist::new()
            .env("HOIST_CACHE_DIR", dir.path().join("cache"))
            .env("SOURCE_DATE_EPOCH", "0")
            .run([
                "build",
                dir.path().join("ctx").to_str().unwrap(),
                "--platform",
                platforms,
                "-t",
                target,
                "--push",
            ])
            .ok();
    };
    let amd64 = format!("{host}/merge/amd64:v1");
    let arm64 = format!("{host}/merge/arm64:v1");
    let both = format!("{host}/merge/app:both");
    build("linux/amd64", &amd64);
    build("linux/arm64", &arm64);
    build("linux/amd64,linux/arm64", &both);
    proxy.clear_log();
    let merged = format!("{host}/merge/app:merged");
    let run = Hoist::new().run(["--json", "manifest", "merge", "-t", &merged, &amd64, &arm64]);
    run.ok();
    let out = run.json();
    // Entries in the order the sources were given: the same index as the combined build's.
    let raw = |r: &str| skopeo_raw(r, None).unwrap();
    assert_eq!(raw(&merged), raw(&both));
    assert_eq!(
        out["digest"].as_str().unwrap(),
        format!(
            "sha256:{}",
            crate::harness::registry::sha256_hex(&raw(&both))
        )
    );
    assert_eq!(out["platforms"][1]["platform"], "linux/arm64");
    // Only the two configs were read (for their platforms); layers were mounted, not moved.
    let configs: Vec<String> = [&amd64, &arm64]
        .iter()
        .map(|r| {
            let manifest: serde_json::Value = serde_json::from_slice(&raw(r)).unwrap();
            manifest["config"]["digest"].as_str().unwrap().to_string()
        })
        .collect();
    let fetched: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/sha256:"))
        .map(|r| r.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert!(
        fetched.iter().all(|d| configs.contains(d)),
        "{fetched:?} {configs:?}"
    );
    assert_eq!(proxy.uploaded_bytes(), 0, "{:#?}", proxy.log());

    // The same platform twice is refused, unless the later one should win.
    Hoist::new()
        .run(["manifest", "merge", "-t", &merged, &both, &arm64])
        .fails_with(
            1,
            &format!("linux/arm64 is in both {both} and {arm64}: pass --replace"),
        );
    Hoist::new()
        .run([
            "manifest",
            "merge",
            "-t",
            &merged,
            &both,
            &arm64,
            "--replace",
        ])
        .ok();
}

#[test]
fn a_build_platform_stage_runs_natively_for_every_target() {
    // The cross-compiling pattern: the tool stage runs on the build machine, its output is
    // copied into each target platform's image.
    let dir = project(
        "ARG TARGETARCH\nCOPY hello /hello\n\
         FROM --platform=$BUILDPLATFORM oci-layout://BASE:latest AS tools\n\
         ARG TARGETARCH\nRUN echo \"$(uname -m) for $TARGETARCH\" > /made\n\
         FROM oci-layout://BASE:latest\nCOPY --from=tools /made /made\n",
    );
    let dockerfile = dir.path().join("ctx/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(
        &dockerfile,
        text.replace("BASE", &example_layout().display().to_string()),
    )
    .unwrap();
    let out = build_both_into_layout(dir.path());
    let arm64 = unpack_platform(&out, "arm64", &dir.path().join("arm64"));
    assert_eq!(arm64["/made"].sha256, file_sha(b"x86_64 for arm64\n"));
}

#[test]
fn one_cache_artifact_serves_every_platform_of_a_fresh_runner() {
    let dir = project("COPY hello /hello\nRUN uname -m > /machine\n");
    let cache_ref = format!("{}/multi/cache:buildcache", shared().host);
    let target = |n: u32| format!("{}/multi/cached:{n}", shared().host);
    let build = |cache: &str, n: u32, flag: &str| {
        let run = Hoist::new()
            .env("HOIST_CACHE_DIR", dir.path().join(cache))
            .env("SOURCE_DATE_EPOCH", "0")
            .run([
                "--json",
                "build",
                dir.path().join("ctx").to_str().unwrap(),
                "--platform",
                "linux/amd64,linux/arm64",
                "-t",
                &target(n),
                "--push",
                flag,
                &cache_ref,
            ]);
        run.ok();
        run.json()
    };
    let first = build("cache-a", 1, "--cache-to");
    // A fresh runner: an empty cache dir, the artifact of the first run.
    let second = build("cache-b", 2, "--cache-from");
    assert_eq!(first["digest"], second["digest"]);
    assert!(
        second["size"].as_u64().unwrap() > 2 * 1_000_000,
        "both platforms' busybox layers count: {second}"
    );
    assert_eq!(second["cache"]["layers_built"], 0, "{second}");
    assert_eq!(
        second["cache"]["layers_reused"], 4,
        "COPY and RUN, per platform: {second}"
    );
}
