//! The local build cache: unchanged context files are not read again, unchanged layers are
//! not compressed again, concurrent builds share it, and damaged entries are never used.

use std::path::Path;

use crate::harness::registry::{Hoist, Run};

const DOCKERFILE: &str = "FROM scratch\nCOPY a /a\nCOPY dir /dir\nCOPY b /b\n";

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("dir")).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("a"), "a\n").unwrap();
    std::fs::write(ctx.join("b"), "b\n").unwrap();
    for i in 0..20 {
        std::fs::write(ctx.join("dir").join(format!("f{i}")), format!("{i}\n")).unwrap();
    }
    dir
}

fn build(dir: &Path, extra: &[&str]) -> Run {
    build_with_cache(dir, &dir.join("cache"), extra)
}

/// Builds `dir`/ctx into `dir`/out with the cache in `cache`.
fn build_with_cache(dir: &Path, cache: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "--json".to_string(),
        "build".into(),
        dir.join("ctx").display().to_string(),
        "-o".into(),
        format!("oci:{}", dir.join("out").display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Hoist::new()
        .env("HOIST_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .run(&args)
}

fn counts(run: &Run) -> (u64, u64, u64, u64) {
    let json = run.json();
    let c = &json["cache"];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("no {k} in {c}"));
    (
        n("files_hashed"),
        n("files_unchanged"),
        n("layers_built"),
        n("layers_reused"),
    )
}

#[test]
fn a_second_build_reads_no_file_and_compresses_nothing() {
    let dir = project();
    let first = build(dir.path(), &[]);
    assert_eq!(counts(first.ok()), (22, 0, 3, 0));
    let second = build(dir.path(), &[]);
    assert_eq!(
        counts(second.ok()),
        (0, 22, 0, 3),
        "everything from the caches"
    );
    assert_eq!(first.json()["digest"], second.json()["digest"]);

    // One changed file: it alone is read, its layer alone is built.
    std::fs::write(dir.path().join("ctx/dir/f7"), "changed\n").unwrap();
    let third = build(dir.path(), &[]);
    assert_eq!(counts(third.ok()), (1, 21, 1, 2));
    assert_ne!(third.json()["digest"], second.json()["digest"]);

    // --no-cache builds every layer again (the stat cache still saves the reading).
    let fourth = build(dir.path(), &["--no-cache"]);
    assert_eq!(counts(fourth.ok()).2, 3);
    assert_eq!(fourth.json()["digest"], third.json()["digest"]);
}

/// Each context keeps its own stat cache: a cache dir shared by many projects does not make
/// every build read (and rewrite) the stat entries of all of them.
#[test]
fn each_context_has_its_own_stat_cache() {
    let dir = project();
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("ctx")).unwrap();
    for entry in std::fs::read_dir(dir.path().join("ctx")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), other.join("ctx").join(entry.file_name())).unwrap();
        }
    }
    std::fs::create_dir_all(other.join("ctx/dir")).unwrap();
    std::fs::write(other.join("ctx/dir/only"), "only\n").unwrap();
    let cache = dir.path().join("cache");
    // The single stat file of earlier versions goes with the first save.
    let old_format = cache.join("local/stat.v1.tsv");
    std::fs::create_dir_all(old_format.parent().unwrap()).unwrap();
    std::fs::write(&old_format, "1\t2\t3\t4\t5\tsha256:00\t/x\n").unwrap();
    let with_cache = |project: &Path| build_with_cache(project, &cache, &[]);
    assert_eq!(counts(with_cache(dir.path()).ok()).0, 22);
    assert_eq!(counts(with_cache(&other).ok()).0, 3);
    let stat_dir = dir.path().join("cache/local/stat");
    let mut lines: Vec<usize> = std::fs::read_dir(&stat_dir)
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [3, 22],
        "one stat file per context, each with its own files"
    );
    // Both still hit: neither build dropped the other's entries.
    assert_eq!(counts(with_cache(dir.path()).ok()).0, 0);
    assert_eq!(counts(with_cache(&other).ok()).0, 0);
}

#[test]
fn concurrent_builds_share_one_cache() {
    let dir = project();
    let ctx = dir.path().join("ctx");
    let cache = dir.path().join("cache");
    let children: Vec<_> = (0..4)
        .map(|i| {
            std::process::Command::new(env!("CARGO_BIN_EXE_hoist"))
                .env("HOIST_CACHE_DIR", &cache)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["--json", "--progress", "quiet", "build"])
                .arg(&ctx)
                .arg("-o")
                .arg(format!(
                    "oci:{}",
                    dir.path().join(format!("out{i}")).display()
                ))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // All four run at once; then collect them.
    let digests: Vec<String> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .map(|out| {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            json["digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
}

#[test]
fn damaged_cache_entries_are_ignored_and_replaced() {
    let dir = project();
    let good = build(dir.path(), &[]);
    good.ok();
    // Damage every cached blob as a crash would (truncated), and leave a stray temp file.
    let blobs = dir.path().join("cache/blobs/sha256");
    for blob in std::fs::read_dir(&blobs).unwrap().flatten() {
        let len = blob.metadata().unwrap().len();
        let bytes = std::fs::read(blob.path()).unwrap();
        std::fs::write(blob.path(), &bytes[..(len / 2) as usize]).unwrap();
    }
    std::fs::write(blobs.join(".hoist-layer-leftover"), b"half a layer").unwrap();
    let again = build(dir.path(), &[]);
    assert_eq!(counts(again.ok()).2, 3, "every damaged layer built again");
    assert_eq!(again.json()["digest"], good.json()["digest"]);
    // The rebuilt blobs are whole: the image in the layout reads back.
    let tree = crate::harness::tree::unpack_layout(
        &dir.path().join("out"),
        "latest",
        &dir.path().join("u"),
    );
    assert_eq!(
        tree["/dir/f3"].sha256.as_deref(),
        Some(crate::harness::registry::sha256_hex(b"3\n").as_str())
    );
}

/// A fresh CI runner: an empty cache dir, but `--cache-from` a cache artifact or an image
/// hoist pushed earlier; no layer is compressed again and the digest is the same.
#[test]
fn the_registry_cache_serves_a_fresh_runner() {
    let dir = project();
    let registry = &crate::harness::registry::shared().host;
    let cache_ref = format!("{registry}/cache/app:buildcache");
    let image_ref = format!("{registry}/cache/app:v1");
    let build_with = |cache_dir: &str, extra: &[&str]| {
        let mut args = vec![
            "--json".to_string(),
            "build".into(),
            dir.path().join("ctx").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Hoist::new()
            .env("HOIST_CACHE_DIR", dir.path().join(cache_dir))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .run(&args)
    };
    let first = build_with(
        "cache-a",
        &["-t", &image_ref, "--push", "--cache-to", &cache_ref],
    );
    assert_eq!(counts(first.ok()).2, 3);

    for (cache_dir, from) in [("cache-b", &cache_ref), ("cache-c", &image_ref)] {
        let again = build_with(
            cache_dir,
            &["-t", &image_ref, "--push", "--cache-from", from],
        );
        let (_, _, built, reused) = counts(again.ok());
        assert_eq!((built, reused), (0, 3), "from {from}: nothing recompressed");
        assert_eq!(again.json()["digest"], first.json()["digest"]);
    }

    // A cache reference that does not exist yet only warns.
    let missing = format!("{registry}/cache/none:buildcache");
    let cold = build_with(
        "cache-d",
        &[
            "--cache-from",
            &missing,
            "-o",
            &format!("oci:{}", dir.path().join("o").display()),
        ],
    );
    assert!(cold.ok().stderr.contains("not used"), "{}", cold.stderr);
}

/// Without SOURCE_DATE_EPOCH, directories hoist creates (missing parents, WORKDIR) do not
/// carry the build time, so an unchanged step is still the same layer and is reused.
#[test]
fn unchanged_steps_are_reused_without_source_date_epoch() {
    let dir = project();
    std::fs::write(
        dir.path().join("ctx/Dockerfile"),
        "FROM scratch\nWORKDIR /srv/app\nCOPY dir /deep/new/dir\nCOPY <<EOF /etc/note\nhi\nEOF\n",
    )
    .unwrap();
    let run = |_: usize| {
        Hoist::new()
            .env("HOIST_CACHE_DIR", dir.path().join("cache"))
            .run([
                "--json",
                "build",
                dir.path().join("ctx").to_str().unwrap(),
                "-o",
                &format!("oci:{}", dir.path().join("out").display()),
            ])
    };
    let first = run(1);
    assert_eq!(counts(first.ok()).2, 3);
    let second = run(2);
    let (_, _, built, reused) = counts(second.ok());
    assert_eq!((built, reused), (0, 3));
}
