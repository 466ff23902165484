//! Copies between registries, OCI layouts and docker-archives keep digests byte for byte.

use crate::harness::proxy::FaultProxy;
use crate::harness::registry::{
    hoist, other, seed_example, sha256_hex, shared, skopeo_inspect, skopeo_raw,
};

fn index_children(raw: &[u8]) -> Vec<(String, String)> {
    let index: serde_json::Value = serde_json::from_slice(raw).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_string(),
                format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap(),
                    m["platform"]["architecture"].as_str().unwrap()
                ),
            )
        })
        .collect()
}

#[test]
fn multi_arch_index_registry_to_registry_keeps_every_digest() {
    let src = seed_example(shared(), "copy/source", None);
    let src_raw = skopeo_raw(&src, None).unwrap();
    let dst = format!("{}/copy/target:v1", other().host);
    hoist(["copy", &src, &dst]).ok();
    let dst_raw = skopeo_raw(&dst, None).expect("target exists");
    assert_eq!(
        sha256_hex(&dst_raw),
        sha256_hex(&src_raw),
        "index digest preserved"
    );
    for (digest, platform) in index_children(&src_raw) {
        let child = skopeo_raw(&format!("{}/copy/target@{digest}", other().host), None)
            .unwrap_or_else(|| panic!("{platform} manifest copied"));
        assert_eq!(format!("sha256:{}", sha256_hex(&child)), digest);
    }
}

#[test]
fn registry_to_layout_to_registry_round_trip_keeps_digests() {
    let src = seed_example(shared(), "roundtrip/source", None);
    let src_digest = sha256_hex(&skopeo_raw(&src, None).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:kept", dir.path().display());
    hoist(["copy", &src, &layout]).ok();
    let layout_raw = skopeo_raw(&layout, None).expect("skopeo reads the layout");
    assert_eq!(sha256_hex(&layout_raw), src_digest);
    // skopeo can copy every platform out of it: the layout is complete.
    let check = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--all",
            &layout,
            &format!("oci:{}/skopeo:x", dir.path().display()),
        ])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let back = format!("{}/roundtrip/back:again", other().host);
    hoist(["copy", &layout, &back]).ok();
    assert_eq!(sha256_hex(&skopeo_raw(&back, None).unwrap()), src_digest);
}

#[test]
fn registry_to_docker_archive_for_one_platform() {
    let src = seed_example(shared(), "archive/source", None);
    let dir = tempfile::tempdir().unwrap();
    let archive = format!(
        "docker-archive:{}/arm.tar:example/app:arm",
        dir.path().display()
    );
    hoist(["copy", "--platform", "linux/arm64", &src, &archive]).ok();

    let source_config: serde_json::Value = serde_json::from_slice(
        &skopeo_inspect(&src, None, &["--config", "--override-arch", "arm64"]).unwrap(),
    )
    .unwrap();
    let archive_config_raw =
        skopeo_inspect(&archive, None, &["--config", "--raw"]).expect("skopeo reads the archive");
    let source_config_raw = skopeo_inspect(
        &src,
        None,
        &["--config", "--raw", "--override-arch", "arm64"],
    )
    .unwrap();
    assert_eq!(
        sha256_hex(&archive_config_raw),
        sha256_hex(&source_config_raw),
        "config digest"
    );
    let archive_info: serde_json::Value =
        serde_json::from_slice(&skopeo_inspect(&archive, None, &[]).unwrap()).unwrap();
    assert_eq!(archive_info["Architecture"], "arm64");
    assert_eq!(
        archive_info["Layers"], source_config["rootfs"]["diff_ids"],
        "layers are the diff_ids"
    );
    // docker load tags the image with the name given in the destination.
    let mut tar = tar::Archive::new(std::fs::File::open(dir.path().join("arm.tar")).unwrap());
    let manifest: serde_json::Value = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .map(|e| serde_json::from_reader(e).unwrap())
        .expect("manifest.json in the archive");
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["example/app:arm"])
    );
}

#[test]
fn same_registry_copy_mounts_blobs_and_skips_present_ones() {
    let src = seed_example(shared(), "mount/source", None);
    let proxy = FaultProxy::start(shared().addr);
    let via_proxy = |r: &str| r.replace(&shared().host, &proxy.addr.to_string());
    let dst = format!("{}/mount/target:v1", shared().host);

    let run = hoist(["--json", "copy", &via_proxy(&src), &via_proxy(&dst)]);
    run.ok();
    let stats = &run.json()["copies"][0]["stats"];
    assert_eq!(
        stats["blobs_mounted"], 4,
        "2 configs + 2 layers mounted: {stats}"
    );
    assert_eq!(stats["bytes_transferred"], 0);
    let log = proxy.log();
    let uploaded = proxy.uploaded_bytes();
    assert_eq!(uploaded, 0, "no blob bytes uploaded: {log:#?}");
    assert!(
        log.iter()
            .any(|r| r.method == "POST" && r.path.contains("mount="))
    );

    // Again: every blob is already there; only HEADs, no upload sessions.
    proxy.clear_log();
    let run = hoist(["--json", "copy", &via_proxy(&src), &via_proxy(&dst)]);
    run.ok();
    assert_eq!(run.json()["copies"][0]["stats"]["blobs_existing"], 4);
    assert!(
        !proxy.log().iter().any(|r| r.method == "POST"),
        "no upload started"
    );
    assert_eq!(
        sha256_hex(&skopeo_raw(&dst, None).unwrap()),
        sha256_hex(&skopeo_raw(&src, None).unwrap())
    );
}

#[test]
fn one_platform_of_an_index_is_copied_as_its_own_manifest() {
    let src = seed_example(shared(), "single/source", None);
    let src_raw = skopeo_raw(&src, None).unwrap();
    let (arm_digest, _) = index_children(&src_raw)
        .into_iter()
        .find(|(_, p)| p == "linux/arm64")
        .unwrap();
    let dst = format!("{}/single/arm:only", other().host);
    hoist(["copy", "--platform", "linux/arm64/v8", &src, &dst]).ok();
    let raw = skopeo_raw(&dst, None).unwrap();
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), arm_digest);
}

#[test]
fn all_tags_copies_each_tag() {
    let src = seed_example(shared(), "alltags/source", None);
    hoist(["tag", &src, "v1", "v2"]).ok();
    let src_repo = format!("{}/alltags/source", shared().host);
    let dst_repo = format!("{}/alltags/target", other().host);
    hoist(["copy", "--all-tags", &src_repo, &dst_repo]).ok();
    let tags = hoist(["--json", "tags", &dst_repo]);
    let mut got: Vec<String> = serde_json::from_value(tags.ok().json()["tags"].clone()).unwrap();
    got.sort();
    assert_eq!(got, ["latest", "v1", "v2"]);
}
