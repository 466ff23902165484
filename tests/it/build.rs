//! `hoist build` end to end: outputs, pushing onto the base's registry without moving base
//! bytes, reproducible digests, and one clear error per broken input.

use std::path::Path;

use crate::harness::context;
use crate::harness::proxy::FaultProxy;
use crate::harness::registry::{Hoist, Run, hoist, sha256_hex, shared, skopeo_inspect, skopeo_raw};

fn build_in(ctx: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["build".to_string(), ctx.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    Hoist::new().run(&args)
}

#[test]
fn broken_inputs_name_the_dockerfile_line_and_write_nothing() {
    let target = format!("{}/broken/never:v1", shared().host);
    // (Dockerfile, other context files, what the error says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "FROM scratch\nFOO bar\n",
            &[],
            "Dockerfile:2: unknown instruction: FOO",
        ),
        ("FROM scratch\nCOPY <<EOF /x\nabc\n", &[], "Dockerfile:2:"),
        ("# escape=x\nFROM scratch\n", &[], "Dockerfile:1:"),
        ("FROM scratch\nCOPY nope.txt /\n", &[], "Dockerfile:2:"),
        (
            "FROM scratch\nCOPY secret.txt /\n",
            &[(".dockerignore", "secret.txt\n"), ("secret.txt", "s")],
            "Dockerfile:2: COPY source \"secret.txt\" is excluded by .dockerignore",
        ),
        (
            "FROM scratch AS a\nCOPY --from=b /x /\nFROM scratch AS b\nCOPY --from=a /y /\n",
            &[],
            "circular dependency",
        ),
        (
            "FROM scratch\nCOPY --chmod=999 a /\n",
            &[("a", "a")],
            "Dockerfile:2: invalid chmod parameter",
        ),
        (
            "FROM scratch\nRUN echo hi\n",
            &[],
            "Dockerfile:2: process \"/bin/sh -c echo hi\" cannot start: /bin/sh: no such file or directory in the image",
        ),
        (
            "FROM scratch\nADD https://example.com/app.git#main /src\n",
            &[],
            "Dockerfile:2: ADD from a git repository",
        ),
        (
            "FROM scratch\nCOPY --from=nosuchstage/x:1 /a /\n",
            &[],
            "Dockerfile:2:",
        ),
    ];
    for (dockerfile, files, needle) in cases {
        let mut all = files.to_vec();
        all.push(("Dockerfile", dockerfile));
        let ctx = context(&all);
        let out = ctx.path().join("out");
        let run = build_in(
            ctx.path(),
            &[
                "-t",
                &target,
                "--push",
                "-o",
                &format!("oci:{}", out.display()),
            ],
        );
        run.fails_with(1, needle);
        assert_eq!(
            run.stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .count(),
            1,
            "{}",
            run.stderr
        );
        assert!(!out.exists(), "no output for {dockerfile:?}");
    }
    assert!(skopeo_raw(&target, None).is_none(), "nothing pushed");

    // Errors about the build as a whole, not one line.
    let ctx = context(&[("Dockerfile", "FROM scratch AS one\nCOPY Dockerfile /\n")]);
    build_in(ctx.path(), &["--target", "two"])
        .fails_with(1, "target stage \"two\" could not be found");
    let missing_base = format!("FROM {}/nothing/here:v1\n", shared().host);
    let ctx = context(&[("Dockerfile", &missing_base)]);
    build_in(ctx.path(), &[]).fails_with(1, "Dockerfile:1:");
    let ctx = context(&[]);
    build_in(ctx.path(), &[]).fails_with(1, "no such Dockerfile");
}

#[test]
fn the_default_output_is_an_oci_layout_in_the_current_directory() {
    let ctx = context(&[("Dockerfile", "FROM scratch\nCOPY a /\n"), ("a", "a\n")]);
    let cwd = tempfile::tempdir().unwrap();
    let build = || {
        Hoist::new().current_dir(cwd.path()).run([
            "build",
            ctx.path().to_str().unwrap(),
            "-t",
            "example/app:v3",
        ])
    };
    build().ok();
    let layout = cwd.path().join("hoist-out");
    assert!(skopeo_raw(&format!("oci:{}:v3", layout.display()), None).is_some());
    // A rebuild replaces the entry of the same name.
    build().ok();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn outputs_and_context_inside_each_other_stay_apart() {
    // The output layout sits inside the context: a second build must not copy it.
    let ctx = context(&[("Dockerfile", "FROM scratch\nCOPY . /ctx/\n"), ("a", "a\n")]);
    let out = ctx.path().join("hoist-out");
    for _ in 0..2 {
        build_in(
            ctx.path(),
            &["-o", &format!("oci:{}:x", out.display()), "--format", "oci"],
        )
        .ok();
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = crate::harness::tree::unpack_layout(&out, "x", dir.path());
    let paths: Vec<&String> = tree.keys().collect();
    assert_eq!(paths, ["/ctx", "/ctx/Dockerfile", "/ctx/a"]);
}

#[test]
fn push_and_docker_archive_outputs() {
    let ctx = context(&[
        ("Dockerfile", "FROM scratch\nCOPY a /a\nCMD [\"/a\"]\n"),
        ("a", "a\n"),
    ]);
    let tag = format!("{}/built/app:v1", shared().host);
    let archive = ctx.path().join("img.tar");
    let run = Hoist::new().run([
        "--json",
        "build",
        ctx.path().to_str().unwrap(),
        "-t",
        &tag,
        "--push",
        "-o",
        &format!("docker-archive:{}", archive.display()),
    ]);
    let digest = run.ok().json()["digest"].as_str().unwrap().to_string();
    let pushed = skopeo_raw(&tag, None).expect("pushed");
    assert_eq!(format!("sha256:{}", sha256_hex(&pushed)), digest);
    let manifest: serde_json::Value = serde_json::from_slice(&pushed).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let info: serde_json::Value = serde_json::from_slice(
        &skopeo_inspect(&format!("docker-archive:{}", archive.display()), None, &[]).unwrap(),
    )
    .unwrap();
    assert_eq!(info["Architecture"], "amd64");
}

#[test]
fn same_inputs_and_source_date_epoch_give_the_same_digest() {
    let digest_of = |mtime: &str| {
        let ctx = context(&[
            ("Dockerfile", "FROM scratch\nCOPY . /app/\nENV X=1\n"),
            ("src/main.c", "int main(){}\n"),
            ("README", "r\n"),
        ]);
        for f in ["src/main.c", "README", "src", "Dockerfile"] {
            let status = std::process::Command::new("touch")
                .args(["-h", "-d", mtime])
                .arg(ctx.path().join(f))
                .status()
                .unwrap();
            assert!(status.success());
        }
        let run = Hoist::new().env("SOURCE_DATE_EPOCH", "1700000000").run([
            "--json",
            "build",
            ctx.path().to_str().unwrap(),
            "-o",
            &format!("oci:{}", ctx.path().join("o").display()),
        ]);
        run.ok().json()["digest"].as_str().unwrap().to_string()
    };
    // Two checkouts made at different times: mtimes after the epoch are clamped to it.
    assert_eq!(digest_of("2024-01-01 10:00"), digest_of("2025-06-30 23:59"));
}

#[test]
fn a_copy_only_build_on_a_big_base_moves_no_base_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("big");
    let out = std::process::Command::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/make-example-image"),
    )
    .env("EXAMPLE_IMAGE_PAD_MB", "50")
    .arg(&layout)
    .arg("latest")
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = format!("{}/fast/base:latest", shared().host);
    let status = std::process::Command::new("skopeo")
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{base}"))
        .status()
        .unwrap();
    assert!(status.success());

    let proxy = FaultProxy::start(shared().addr);
    let via = |r: &str| r.replace(&shared().host, &proxy.addr.to_string());
    let ctx = context(&[
        (
            "Dockerfile",
            &format!("FROM {}\nCOPY app.txt /srv/\n", via(&base)),
        ),
        ("app.txt", "hi\n"),
    ]);
    let cache = dir.path().join("cache");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let target = via(&format!("{}/fast/app:v1", shared().host));
    Hoist::new()
        .env("HOIST_CACHE_DIR", &cache)
        .env("TMPDIR", &tmp)
        .run([
            "build",
            ctx.path().to_str().unwrap(),
            "-t",
            &target,
            "--push",
        ])
        .ok();
    let uploaded = proxy.uploaded_bytes();
    assert!(
        uploaded < 10_000,
        "only the new layer and config are uploaded, not the 50 MB base: {uploaded} bytes"
    );
    let downloaded = proxy.blob_downloads();
    assert_eq!(
        downloaded, 2,
        "the base's config and its one layer's headers are read once"
    );
    assert!(
        dir_size(&cache) < 1_000_000,
        "no base layer stored in the cache"
    );
    assert!(dir_size(&tmp) < 1_000_000, "no base layer left on disk");
    assert!(skopeo_raw(&format!("{}/fast/app:v1", shared().host), None).is_some());

    // A second build reads the base's path index and config from the cache: no blob is
    // fetched, and no blob is asked about twice (early uploads and the final push share what
    // they learnt).
    proxy.clear_log();
    Hoist::new()
        .env("HOIST_CACHE_DIR", &cache)
        .run([
            "build",
            ctx.path().to_str().unwrap(),
            "-t",
            &target,
            "--push",
        ])
        .ok();
    let blob_reads = proxy.blob_downloads();
    assert_eq!(blob_reads, 0, "{:#?}", proxy.log());
    let mut heads: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|r| r.method == "HEAD" && r.path.contains("/blobs/"))
        .map(|r| r.path)
        .collect();
    let asked = heads.len();
    heads.sort();
    heads.dedup();
    assert_eq!(heads.len(), asked, "{:#?}", proxy.log());
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_size(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
fn hoist_reads_a_dockerfile_from_stdin_and_outside_the_context() {
    let ctx = context(&[("a", "a\n")]);
    let elsewhere = context(&[("build.Dockerfile", "FROM scratch\nCOPY a /from-file\n")]);
    build_in(
        ctx.path(),
        &[
            "-f",
            elsewhere.path().join("build.Dockerfile").to_str().unwrap(),
            "-o",
            &format!("oci:{}", ctx.path().join("o1").display()),
        ],
    )
    .ok();
    let run = Hoist::new()
        .stdin("FROM scratch\nCOPY a /from-stdin\n")
        .run([
            "build",
            ctx.path().to_str().unwrap(),
            "-f",
            "-",
            "-o",
            &format!("oci:{}", ctx.path().join("o2").display()),
        ]);
    run.ok();
    let _ = hoist([
        "inspect",
        &format!("oci:{}", ctx.path().join("o2").display()),
    ])
    .ok();
}

/// README's main job (scripts/demo): the example project on the example base, into the
/// default ./hoist-out layout.
#[test]
fn the_example_project_builds_on_the_example_base() {
    let cwd = tempfile::tempdir().unwrap();
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app");
    let base = crate::harness::registry::example_layout();
    Hoist::new()
        .current_dir(cwd.path())
        .run([
            "build",
            app.to_str().unwrap(),
            "--build-arg",
            &format!("BASE=oci-layout://{}:latest", base.display()),
            "-t",
            "hoist/example:latest",
        ])
        .ok();
    let layout = cwd.path().join("hoist-out");
    let tree = crate::harness::tree::unpack_layout(&layout, "latest", &cwd.path().join("unpack"));
    let index = &tree["/home/app/site/index.html"];
    assert_eq!((index.uid, index.gid), (1000, 1000));
    assert_eq!(tree["/usr/local/bin/hello"].mode, 0o755);
    assert!(
        tree.contains_key("/bin/busybox"),
        "the base's files are there"
    );
    let config: serde_json::Value = serde_json::from_slice(
        &skopeo_inspect(
            &format!("oci:{}:latest", layout.display()),
            None,
            &["--config", "--raw"],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(config["config"]["User"], "app");
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["/usr/local/bin/hello"])
    );
}

/// Layers are compressed in fixed blocks on all cores: the digest does not depend on how many
/// threads did it, for gzip and zstd alike.
#[test]
fn compression_does_not_depend_on_the_thread_count() {
    let ctx = context(&[("Dockerfile", "FROM scratch\nCOPY data /data\n")]);
    // ~3 MB of varied bytes: several compression blocks.
    let data: Vec<u8> = (0u32..3_000_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(ctx.path().join("data"), &data).unwrap();
    for compression in ["gzip", "zstd"] {
        let digests: Vec<String> = ["1", "2"]
            .iter()
            .map(|threads| {
                let out = ctx.path().join(format!("out-{compression}-{threads}"));
                let run = Hoist::new()
                    .env("HOIST_COMPRESS_THREADS", threads)
                    .env("SOURCE_DATE_EPOCH", "1700000000")
                    .run([
                        "--json",
                        "build",
                        ctx.path().to_str().unwrap(),
                        "--compression",
                        compression,
                        "-o",
                        &format!("oci:{}", out.display()),
                    ]);
                run.ok().json()["digest"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(digests[0], digests[1], "{compression}");
    }
}

#[test]
fn zstd_layers_are_oci_and_readable_as_bases_and_archives() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(&[("Dockerfile", "FROM scratch\nCOPY a /a\n"), ("a", "a\n")]);
    let base = dir.path().join("base");
    build_in(
        ctx.path(),
        &[
            "--compression",
            "zstd",
            "-o",
            &format!("oci:{}:z", base.display()),
        ],
    )
    .ok();
    let manifest: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&format!("oci:{}:z", base.display()), None).unwrap())
            .unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    build_in(ctx.path(), &["--compression", "zstd", "--format", "docker"])
        .fails_with(1, "--format oci");

    // A zstd base: its path index is read, and a docker-archive of it decompresses it.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM oci-layout://{}:z\nCOPY a /b\n", base.display()),
    )
    .unwrap();
    let archive = dir.path().join("img.tar");
    build_in(
        ctx.path(),
        &["-o", &format!("docker-archive:{}", archive.display())],
    )
    .ok();
    let info: serde_json::Value = serde_json::from_slice(
        &skopeo_inspect(&format!("docker-archive:{}", archive.display()), None, &[]).unwrap(),
    )
    .unwrap();
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn add_url_checksums_are_verified_and_cached_downloads_are_not_fetched_again() {
    let server = crate::harness::http::FileServer::start();
    server.put("tool.sh", b"#!/bin/sh\necho tool\n");
    let sum = format!("sha256:{}", sha256_hex(b"#!/bin/sh\necho tool\n"));
    let url = format!("{}/tool.sh", server.url);
    let cache = tempfile::tempdir().unwrap();
    let build_with = |checksum: &str| {
        let ctx = context(&[(
            "Dockerfile",
            &format!("FROM scratch\nADD --checksum={checksum} {url} /bin/tool\n"),
        )]);
        Hoist::new().env("HOIST_CACHE_DIR", cache.path()).run([
            "build",
            ctx.path().to_str().unwrap(),
            "-o",
            &format!("oci:{}", ctx.path().join("o").display()),
        ])
    };
    let wrong = format!("sha256:{}", "0".repeat(64));
    build_with(&wrong).fails_with(1, "digest mismatch");
    build_with(&sum).ok();
    let fetched = server.gets("/tool.sh");
    build_with(&sum).ok();
    assert_eq!(
        server.gets("/tool.sh"),
        fetched,
        "a pinned, cached download is not fetched again"
    );
    let ctx = context(&[("Dockerfile", &format!("FROM scratch\nCOPY {url} /x\n"))]);
    build_in(ctx.path(), &[]).fails_with(1, "source can't be a URL for COPY");
}

#[test]
fn unused_build_args_warn_but_predefined_ones_do_not() {
    let ctx = context(&[
        ("Dockerfile", "ARG USED\nFROM scratch\nCOPY a /\n"),
        ("a", "a\n"),
    ]);
    let run = build_in(
        ctx.path(),
        &[
            "--build-arg",
            "USED=1",
            "--build-arg",
            "TYPO=1",
            "--build-arg",
            "HTTP_PROXY=http://proxy:3128",
            "--build-arg",
            "BUILDKIT_INLINE_CACHE=1",
            "-o",
            &format!("oci:{}", ctx.path().join("o").display()),
        ],
    );
    run.ok();
    assert!(
        run.stderr
            .contains("build-args not consumed by any ARG: TYPO\n"),
        "{}",
        run.stderr
    );
}
