//! Bad input gets one clear line, exit code 1, and nothing half-written.

use crate::harness::registry::{example_layout, hoist, shared, skopeo_raw};

#[test]
fn invalid_references_name_the_reference() {
    for (args, needle) in [
        (
            vec!["copy", "UPPER/case", "oci:/tmp/never"],
            "invalid reference `UPPER/case`",
        ),
        (
            vec!["inspect", "has space"],
            "invalid reference `has space`",
        ),
        (
            vec!["copy", "docker-daemon:x", "oci:/tmp/never"],
            "not supported",
        ),
        (vec!["tags", "localhost:99999/x"], "port"),
        (
            vec!["copy", "alpine@sha256:1234", "oci:/tmp/never"],
            "digest",
        ),
        (vec!["copy", "oci:", "oci:/tmp/never"], "needs a directory"),
    ] {
        let run = hoist(&args);
        run.fails_with(1, needle);
        assert_eq!(
            run.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1
        );
    }
    assert!(!std::path::Path::new("/tmp/never").exists());
}

#[test]
fn a_missing_source_tag_is_not_found_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let src = format!("{}/nothing/here:missing", shared().host);
    hoist(["copy", &src, &format!("oci:{}", out.display())]).fails_with(1, "not found");
    assert!(!out.exists(), "no layout created");
    hoist(["inspect", &src]).fails_with(1, "nothing/here:missing: not found");
}

/// A layout whose amd64 layer blob is garbage of the right size.
fn corrupt_layout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(example_layout())
        .arg(dir.path().join("img"))
        .status()
        .unwrap();
    assert!(status.success());
    let img = dir.path().join("img");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(img.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        img.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let top: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let amd64 = top["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "amd64")
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(amd64["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    let size = std::fs::metadata(&layer).unwrap().len() as usize;
    std::fs::write(&layer, vec![0x5a; size]).unwrap();
    dir
}

#[test]
fn a_corrupt_blob_fails_the_copy_and_nothing_is_pushed() {
    let dir = corrupt_layout();
    let src = format!("oci:{}:latest", dir.path().join("img").display());
    let dst = format!("{}/corrupt/image:v1", shared().host);
    hoist(["copy", &src, &dst]).fails_with(1, "digest mismatch");
    assert!(skopeo_raw(&dst, None).is_none(), "no manifest pushed");

    let out = dir.path().join("out");
    hoist(["copy", &src, &format!("oci:{}:v1", out.display())]).fails_with(1, "digest mismatch");
    let index = std::fs::read_to_string(out.join("index.json")).unwrap_or_default();
    assert!(!index.contains(r#""v1""#), "no ref written: {index}");
}
