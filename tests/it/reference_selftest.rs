//! The reference builder (dockerd's BuildKit read back through skopeo and umoci) and the
//! tree comparison, checked against what BuildKit is known to produce.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::harness::reference::{comparable_config, docker};
use crate::harness::registry::{example_layout, hoist, seed_example, shared};
use crate::harness::tree::{Entry, Kind, assert_same_tree, diff, tree, unpack_layout};

fn write(dir: &Path, name: &str, content: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn scratch_copy_keeps_modes_and_resets_owners() {
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    // The syntax line must be stripped: dockerd would fetch that frontend from the network.
    write(
        c,
        "Dockerfile",
        "# syntax=docker/dockerfile:1\n\
         FROM scratch\n\
         ARG GREETING=unset\n\
         COPY tool /usr/local/bin/tool\n\
         COPY secret /secret\n\
         COPY dir /dir/\n\
         ENV GREETING=$GREETING\n\
         WORKDIR /app\n\
         USER 1000:1000\n\
         CMD [\"tool\"]\n",
    );
    write(c, "tool", "#!/bin/sh\necho tool\n");
    write(c, "secret", "s3cret\n");
    write(c, "dir/suid", "suid\n");
    write(c, "dir/data", "data\n");
    std::fs::hard_link(c.join("dir/data"), c.join("dir/data2")).unwrap();
    std::os::unix::fs::symlink("suid", c.join("dir/link")).unwrap();
    // Owners COPY must not keep; chown before chmod, as chown clears setuid.
    let chown = std::process::Command::new("chown")
        .args(["-R", "-h", "1234:5678"])
        .arg(c)
        .status()
        .unwrap();
    assert!(chown.success());
    chmod(&c.join("tool"), 0o755);
    chmod(&c.join("secret"), 0o600);
    chmod(&c.join("dir/suid"), 0o4755);
    chmod(&c.join("dir"), 0o750);

    let image = docker()
        .build(c, None, &[("GREETING", "hi")], None)
        .unwrap_or_else(|e| panic!("build failed: {e}"));

    // COPY chowns to 0:0 and keeps modes; `COPY dir /dir/` copies the contents into a new
    // 0755 /dir; hardlinks stay hardlinks; WORKDIR creates its directory.
    let expected = tree([
        Entry::dir("/app", 0o755),
        Entry::dir("/dir", 0o755),
        Entry::file("/dir/data", 0o644, b"data\n"),
        Entry {
            kind: Kind::Hardlink,
            link: Some("/dir/data".into()),
            ..Entry::file("/dir/data2", 0o644, b"data\n")
        },
        Entry::symlink("/dir/link", "suid"),
        Entry::file("/dir/suid", 0o4755, b"suid\n"),
        Entry::file("/secret", 0o600, b"s3cret\n"),
        Entry::dir("/usr", 0o755),
        Entry::dir("/usr/local", 0o755),
        Entry::dir("/usr/local/bin", 0o755),
        Entry::file("/usr/local/bin/tool", 0o755, b"#!/bin/sh\necho tool\n"),
    ]);
    assert_same_tree(&expected, &image.tree, "FROM scratch + COPY");
    assert_eq!(
        comparable_config(&image.config),
        json!({
            "architecture": host_arch(),
            "os": "linux",
            "config": {
                "Env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "GREETING=hi",
                ],
                "Cmd": ["tool"],
                "Entrypoint": null,
                "WorkingDir": "/app",
                "User": "1000:1000",
                "ExposedPorts": null,
                "Labels": null,
                "Volumes": null,
                "StopSignal": null,
                "Healthcheck": null,
                "Shell": null,
                "OnBuild": null,
            },
        })
    );
    // One layer per COPY and WORKDIR.
    assert_eq!(
        image.config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        4
    );

    // The kept layout unpacks to the same tree.
    let again = tempfile::tempdir().unwrap();
    assert_same_tree(
        &image.tree,
        &unpack_layout(&image.layout, "ref", again.path()),
        "layout unpacked again",
    );
}

#[test]
fn from_the_local_registry_with_chown_and_run() {
    // Pulled over plain HTTP: dockerd treats 127.0.0.0/8 registries as insecure.
    let base = seed_example(shared(), "refbase/example", None);
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    write(
        c,
        "build.Dockerfile",
        &format!("FROM {base}\nCOPY --chown=app:app f /home/app/\nRUN id -u > /home/app/uid\n"),
    );
    write(c, "f", "f\n");
    chmod(&c.join("f"), 0o640);
    let image = docker()
        .build(c, Some(&c.join("build.Dockerfile")), &[], None)
        .unwrap_or_else(|e| panic!("build failed: {e}"));

    // The example's host platform as umoci sees it, plus the COPY and RUN results; runc
    // leaves its mount points /dev, /proc and /sys behind in the RUN layer.
    let scratch = tempfile::tempdir().unwrap();
    let mut expected = unpack_layout(example_layout(), "latest", scratch.path());
    expected.extend(tree([
        Entry::file("/home/app/f", 0o640, b"f\n").owned(1000, 1000),
        Entry::file("/home/app/uid", 0o644, b"0\n"),
        Entry::dir("/dev", 0o755),
        Entry::dir("/proc", 0o755),
        Entry::dir("/sys", 0o755),
    ]));
    assert_same_tree(&expected, &image.tree, "FROM registry + COPY --chown + RUN");
    assert_eq!(image.config["architecture"], host_arch());
}

#[test]
fn build_args_targets_and_failures() {
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    write(
        c,
        "Dockerfile",
        "FROM scratch AS first\nARG NAME=default\nLABEL name=$NAME\nCOPY a /a\n\
         FROM scratch AS second\nCOPY b /b\n",
    );
    write(c, "a", "a\n");
    write(c, "b", "b\n");
    chmod(&c.join("a"), 0o644);
    let first = docker()
        .build(c, None, &[("NAME", "given")], Some("first"))
        .unwrap_or_else(|e| panic!("build failed: {e}"));
    assert_same_tree(
        &tree([Entry::file("/a", 0o644, b"a\n")]),
        &first.tree,
        "--target first",
    );
    assert_eq!(
        comparable_config(&first.config)["config"]["Labels"],
        json!({"name": "given"})
    );

    write(c, "Dockerfile", "FROM scratch\nCOPY missing /x\n");
    let err = docker()
        .build(c, None, &[], None)
        .err()
        .expect("COPY of a missing file fails");
    assert!(
        err.contains("missing"),
        "build output names the file: {err}"
    );
}

#[test]
fn docker_loads_the_archive_hoist_writes() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("loaded.tar");
    hoist([
        "copy",
        "--platform",
        "linux/amd64",
        &format!("oci:{}:latest", example_layout().display()),
        &format!("docker-archive:{}:hoist/loaded:v1", archive.display()),
    ])
    .ok();
    let id = docker()
        .load(&archive)
        .unwrap_or_else(|e| panic!("docker load failed: {e}"));
    let out = docker()
        .command()
        .args(["image", "inspect", "hoist/loaded:v1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    assert_eq!(inspect[0]["Architecture"], "amd64");
}

#[test]
fn diff_names_every_difference() {
    let expected = tree([
        Entry::dir("/d", 0o755),
        Entry::file("/f", 0o644, b"one"),
        Entry::symlink("/l", "f"),
    ]);
    let actual = tree([
        Entry::dir("/d", 0o700).owned(1, 2),
        Entry::file("/f", 0o644, b"two"),
        Entry::file("/new", 0o644, b""),
    ]);
    let differences = diff(&expected, &actual);
    assert_eq!(
        differences[..4],
        [
            "/d: mode: expected 0755, got 0700",
            "/d: uid: expected 0, got 1",
            "/d: gid: expected 0, got 2",
            "/f: sha256: expected 7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed, \
             got 3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3",
        ]
    );
    assert_eq!(
        differences[4..],
        ["missing /l (symlink)", "extra /new (file)"]
    );
    assert!(diff(&expected, &expected).is_empty());
}
