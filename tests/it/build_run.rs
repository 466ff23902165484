//! RUN beyond the differential cases: a failing command's error, the RUN cache, output streamed
//! live, hostile base layers refused before anything runs.

use std::path::Path;

use crate::harness::context;
use crate::harness::registry::{Hoist, Run, example_layout};

fn base() -> String {
    format!("oci-layout://{}:latest", example_layout().display())
}

fn build(ctx: &Path, cache: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "build".to_string(),
        ctx.display().to_string(),
        "-o".into(),
        format!("oci:{}:img", ctx.join("..").join("out").display()),
        "--progress".into(),
        "plain".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Hoist::new().env("HOIST_CACHE_DIR", cache).run(&args)
}

/// The digest of `built sha256:... → ...`.
fn digest(run: &Run) -> String {
    run.stdout
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .expect("a digest")
        .to_string()
}

#[test]
fn a_failing_run_names_the_step_the_command_and_its_last_output() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nRUN for i in $(seq 1 30); do echo line $i; done; echo to stderr >&2; exit 3\n",
            base()
        ),
    )
    .unwrap();
    let run = Hoist::new().run(["build", ctx.to_str().unwrap(), "-o", "oci:/dev/null/x"]);
    run.fails_with(1, "Dockerfile:2: process \"/bin/sh -c for i in");
    assert!(
        run.stderr
            .contains("did not complete successfully: exit code: 3"),
        "{}",
        run.stderr
    );
    // The last 20 lines, stderr included; earlier ones only in the live output.
    let error = &run.stderr[run.stderr.find("error:").unwrap()..];
    assert!(
        error.contains("line 30") && error.contains("to stderr"),
        "{error}"
    );
    assert!(!error.contains("line 10\n"), "{error}");
    assert!(
        run.stderr.contains("line 1\n"),
        "output is streamed: {}",
        run.stderr
    );
}

#[test]
fn an_unchanged_run_is_not_run_again_and_a_change_below_it_reruns_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("input"), "one").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY input /input\nRUN echo ran-the-$((1+1))-step && cp /input /output\n",
            base()
        ),
    )
    .unwrap();
    let first = build(&ctx, &cache, &[]);
    first.ok();
    assert!(first.stderr.contains("ran-the-2-step"));
    let second = build(&ctx, &cache, &[]);
    second.ok();
    assert!(
        !second.stderr.contains("ran-the-2-step"),
        "{}",
        second.stderr
    );
    assert_eq!(digest(&second), digest(&first));
    std::fs::write(ctx.join("input"), "two").unwrap();
    let third = build(&ctx, &cache, &[]);
    third.ok();
    assert!(third.stderr.contains("ran-the-2-step"));
    assert_ne!(digest(&third), digest(&first));
    // --no-cache runs it again even when nothing changed.
    let fourth = build(&ctx, &cache, &["--no-cache"]);
    assert!(fourth.stderr.contains("ran-the-2-step"));
}

/// A one-layer OCI layout whose layer is `tar` (uncompressed).
fn layout_with_layer(dir: &Path, tar: &[u8]) {
    use sha2::Digest;
    let hex = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let layer = hex(tar);
    std::fs::write(blobs.join(&layer), tar).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer}")]},
    })
    .to_string();
    std::fs::write(blobs.join(hex(config.as_bytes())), &config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", hex(config.as_bytes())), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": format!("sha256:{layer}"), "size": tar.len()}],
    })
    .to_string();
    std::fs::write(blobs.join(hex(manifest.as_bytes())), &manifest).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", hex(manifest.as_bytes())), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"}}]})
        .to_string(),
    )
    .unwrap();
}

/// A tar with raw entry names (the tar crate's own setters refuse hostile ones).
fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let mut header = tar::Header::new_old();
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(if *kind == tar::EntryType::Regular {
            5
        } else {
            0
        });
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"pwned"
        } else {
            b""
        };
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// (name, tar entries: path, type, link target; what the error says)
type HostileCase<'a> = (&'a str, Vec<(&'a str, tar::EntryType, &'a str)>, &'a str);

#[test]
fn hostile_base_layers_are_refused_before_anything_runs() {
    let outer = tempfile::tempdir().unwrap();
    let victim = outer.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let victim_path = victim.to_str().unwrap().to_string();
    let escape = format!("{}/victim", outer.path().display());
    let cases: Vec<HostileCase> = vec![
        (
            "traversal",
            vec![(
                "../../../../../../tmp/hoist-hostile",
                tar::EntryType::Regular,
                "",
            )],
            "climbs out of the root",
        ),
        (
            "symlink-then-write",
            vec![
                (
                    "evil",
                    tar::EntryType::Symlink,
                    outer.path().to_str().unwrap(),
                ),
                ("evil/victim", tar::EntryType::Regular, ""),
            ],
            "writes through the symlink `evil`",
        ),
        (
            "hardlink-out",
            vec![("stolen", tar::EntryType::Link, &victim_path)],
            "outside the root",
        ),
    ];
    for (name, entries, why) in cases {
        let dir = tempfile::tempdir().unwrap();
        layout_with_layer(&dir.path().join("base"), &raw_tar(&entries));
        let ctx = context(&[(
            "Dockerfile",
            &format!(
                "FROM oci-layout://{}:latest\nRUN echo should not run\n",
                dir.path().join("base").display()
            ),
        )]);
        let run = Hoist::new()
            .env("HOIST_CACHE_DIR", dir.path().join("cache"))
            .run([
                "build",
                ctx.path().to_str().unwrap(),
                "-o",
                "oci:/dev/null/x",
            ]);
        run.fails_with(1, why);
        assert!(
            run.stderr.contains("layer sha256:"),
            "{name}: {}",
            run.stderr
        );
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "untouched",
            "{name}"
        );
        assert!(!Path::new(&escape).with_file_name("stolen").exists());
        assert!(!Path::new("/tmp/hoist-hostile").exists(), "{name}");
    }
}
