//! Features Docker 20.10's Dockerfile frontend cannot build (heredocs, `--link`, `--exclude`,
//! `--parents`): hoist's result is checked against expectations written from modern
//! BuildKit's source (moby/buildkit 73ed6825, tonistiigi/fsutil 6d9dc2eb), cited per case.

use std::os::unix::fs::PermissionsExt;

use crate::harness::registry::{Hoist, seed_example, shared};
use crate::harness::tree::{Entry, Tree, assert_same_tree, tree, unpack_layout};

/// Builds with hoist (OCI format, one output) and returns the unpacked tree and config.
fn build(files: &[(&str, &str, u32)], dockerfile: &str) -> (Tree, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    for (path, content, mode) in files {
        let full = ctx.join(path.trim_end_matches('/'));
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        if path.ends_with('/') {
            std::fs::create_dir_all(&full).unwrap();
        } else {
            std::fs::write(&full, content).unwrap();
        }
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let out = dir.path().join("out");
    Hoist::new()
        .env("HOIST_CACHE_DIR", dir.path().join("cache"))
        .run([
            "build",
            ctx.to_str().unwrap(),
            "--format",
            "oci",
            "-o",
            &format!("oci:{}:img", out.display()),
        ])
        .ok();
    let tree = unpack_layout(&out, "img", &dir.path().join("unpack"));
    let config = crate::harness::registry::skopeo_inspect(
        &format!("oci:{}:img", out.display()),
        None,
        &["--config", "--raw"],
    )
    .unwrap();
    (tree, serde_json::from_slice(&config).unwrap())
}

/// COPY heredocs: each document is a 0644 file made on scratch and copied to the destination
/// (dockerfile2llb/convert_copy.go: `llb.Mkfile(f, 0644, data)`); unquoted delimiters expand
/// variables (instructions/commands.go `SourcesAndDest.ExpandRaw`), quoted ones do not.
#[test]
fn copy_heredocs() {
    let (tree_, _) = build(
        &[],
        "FROM scratch\nENV NAME=world\nCOPY <<EOF /etc/motd\nhello $NAME\nEOF\nCOPY <<'RAW' <<-TABS /docs/\n$NAME stays\nRAW\n\tindented\n\tTABS\n",
    );
    assert_same_tree(
        &tree([
            Entry::dir("/etc", 0o755),
            Entry::file("/etc/motd", 0o644, b"hello world\n"),
            Entry::dir("/docs", 0o755),
            Entry::file("/docs/RAW", 0o644, b"$NAME stays\n"),
            Entry::file("/docs/TABS", 0o644, b"indented\n"),
        ]),
        &tree_,
        "copy_heredocs",
    );
}

/// `COPY --link` copies onto scratch and merges the result on top (convert_copy.go:
/// `llb.Merge([]llb.State{d.state, llb.Scratch().File(a)})`): destination symlinks of the
/// base are not followed, and directories the copy creates replace the base's metadata.
#[test]
fn copy_link_does_not_follow_base_symlinks() {
    let files = [("tool", "t\n", 0o755), ("a.txt", "a\n", 0o644)];
    let (linked, _) = build(
        &files,
        "FROM scratch AS base\nCOPY tool /usr/bin/tool0\nCOPY --chown=1000:1000 a.txt /home/app/\nFROM base\nCOPY --link tool /usr/bin/\nCOPY --link a.txt /home/app/b.txt\n",
    );
    assert_same_tree(
        &tree([
            Entry::dir("/usr", 0o755),
            Entry::dir("/usr/bin", 0o755),
            Entry::file("/usr/bin/tool0", 0o755, b"t\n"),
            Entry::file("/usr/bin/tool", 0o755, b"t\n"),
            Entry::dir("/home", 0o755),
            // Created 0755 root on scratch: its metadata wins over the base's 1000:1000.
            Entry::dir("/home/app", 0o755),
            Entry::file("/home/app/a.txt", 0o644, b"a\n").owned(1000, 1000),
            Entry::file("/home/app/b.txt", 0o644, b"a\n"),
        ]),
        &linked,
        "copy --link",
    );
}

/// `--exclude` patterns are matched against paths relative to each source
/// (fsutil copy/copy.go `copier.exclude` with `MatchesUsingParentResults`).
#[test]
fn copy_exclude_patterns() {
    let files = [
        ("src/main.c", "m\n", 0o644),
        ("src/util.c", "u\n", 0o644),
        ("src/notes.txt", "n\n", 0o644),
        ("src/gen/", "", 0o755),
        ("src/gen/out.c", "o\n", 0o644),
        ("README.txt", "r\n", 0o644),
    ];
    let (tree_, _) = build(
        &files,
        "FROM scratch\nCOPY --exclude=*.txt --exclude=gen src /app/\n",
    );
    assert_same_tree(
        &tree([
            Entry::dir("/app", 0o755),
            Entry::file("/app/main.c", 0o644, b"m\n"),
            Entry::file("/app/util.c", 0o644, b"u\n"),
        ]),
        &tree_,
        "copy --exclude",
    );
}

/// `--parents` keeps each source's path below the context root, or below `/./`
/// (convert_copy.go: `strings.Cut(src, "/./")`, `IncludePatterns`); the parents come from
/// the source with its metadata (fsutil `createParentDirs`).
#[test]
fn copy_parents() {
    let files = [
        ("a/", "", 0o750),
        ("a/b/", "", 0o700),
        ("a/b/c.txt", "c\n", 0o644),
        ("x/y/", "", 0o755),
        ("x/y/z.txt", "z\n", 0o600),
    ];
    let (tree_, _) = build(
        &files,
        "FROM scratch\nCOPY --parents a/b/c.txt x/./y/z.txt /p/\n",
    );
    assert_same_tree(
        &tree([
            Entry::dir("/p", 0o755),
            Entry::dir("/p/a", 0o750),
            Entry::dir("/p/a/b", 0o700),
            Entry::file("/p/a/b/c.txt", 0o644, b"c\n"),
            Entry::dir("/p/y", 0o755),
            Entry::file("/p/y/z.txt", 0o600, b"z\n"),
        ]),
        &tree_,
        "copy --parents",
    );
}

/// ONBUILD triggers of a base run at the start of the stage built on it, then are cleared
/// (convert.go `initOnBuildTriggers`, `d.image.Config.OnBuild = nil`).
#[test]
fn onbuild_triggers_run_in_the_child_build() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("base");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY a.txt /base.txt\nONBUILD COPY a.txt /from-trigger.txt\nONBUILD ENV TRIGGERED=yes\n").unwrap();
    Hoist::new()
        .run([
            "build",
            ctx.to_str().unwrap(),
            "--format",
            "oci",
            "-o",
            &format!("oci:{}:base", layout.display()),
        ])
        .ok();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM oci-layout://{}:base\nCOPY a.txt /child.txt\n",
            layout.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    Hoist::new()
        .run([
            "build",
            ctx.to_str().unwrap(),
            "--format",
            "oci",
            "-o",
            &format!("oci:{}:child", out.display()),
        ])
        .ok();
    let built = unpack_layout(&out, "child", &dir.path().join("unpack"));
    assert_same_tree(
        &tree([
            Entry::file("/base.txt", 0o644, b"a\n"),
            Entry::file("/from-trigger.txt", 0o644, b"a\n"),
            Entry::file("/child.txt", 0o644, b"a\n"),
        ]),
        &built,
        "onbuild",
    );
    let config: serde_json::Value = serde_json::from_slice(
        &crate::harness::registry::skopeo_inspect(
            &format!("oci:{}:child", out.display()),
            None,
            &["--config", "--raw"],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["config"]["OnBuild"],
        serde_json::Value::Null,
        "triggers are cleared"
    );
    assert!(
        config["config"]["Env"]
            .to_string()
            .contains("TRIGGERED=yes")
    );
}

/// A build's result has BuildKit's history: one entry per instruction, `# buildkit` on the
/// ones that make a layer, `empty_layer` on the rest (convert.go `commitToHistory`).
#[test]
fn history_follows_buildkit() {
    let base = seed_example(shared(), "golden/base", None);
    let (_, config) = build(
        &[("a.txt", "a\n", 0o644)],
        &format!("FROM {base}\nENV A=1\nCOPY a.txt /a\nCMD [\"sh\"]\n"),
    );
    let history: Vec<(String, bool)> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1) // the base's own entry
        .map(|h| {
            (
                h["created_by"].as_str().unwrap().to_string(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("ENV A=1".to_string(), true),
            ("COPY a.txt /a # buildkit".to_string(), false),
            ("CMD [\"sh\"]".to_string(), true),
        ]
    );
    assert_eq!(
        config["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["empty_layer"] != true)
            .count(),
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        "one layer per non-empty history entry"
    );
}

/// `--build-context NAME=...` (dockerui named contexts): a directory or image usable in FROM
/// and COPY --from, replacing a stage or base of the same name.
#[test]
fn named_build_contexts() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    let extra = dir.path().join("extra");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::create_dir_all(extra.join("sub")).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    std::fs::write(extra.join("sub/x"), "x\n").unwrap();
    std::fs::write(extra.join("ignored.log"), "l\n").unwrap();
    std::fs::write(extra.join(".dockerignore"), "*.log\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch AS deps\nCOPY does-not-exist /\nFROM base\nCOPY --from=deps /sub /from-deps\nCOPY --from=extra / /extra/\nCOPY a.txt /a\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let example = crate::harness::registry::example_layout();
    Hoist::new()
        .run([
            "build",
            ctx.to_str().unwrap(),
            "--build-context",
            &format!("deps={}", extra.display()),
            "--build-context",
            &format!("extra={}", extra.display()),
            "--build-context",
            &format!("base=oci-layout://{}:latest", example.display()),
            "-o",
            &format!("oci:{}:img", out.display()),
        ])
        .ok();
    let built = unpack_layout(&out, "img", &dir.path().join("unpack"));
    assert!(
        built.contains_key("/bin/busybox"),
        "FROM base is the example image"
    );
    assert_eq!(
        built["/from-deps/x"].sha256,
        Entry::file("/x", 0o644, b"x\n").sha256
    );
    assert!(built.contains_key("/extra/sub/x"));
    assert!(
        !built.contains_key("/extra/ignored.log"),
        "the named context's .dockerignore applies"
    );
    assert!(built.contains_key("/a"));
}

/// Hard links unpacked by ADD are written after their targets even when their names sort
/// first; Docker refuses a layer otherwise ("link ... no such file or directory").
#[test]
fn unpacked_hard_links_load_into_docker() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("z-target"), "data\n").unwrap();
    std::fs::hard_link(src.join("z-target"), src.join("a-link")).unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let status = std::process::Command::new("tar")
        .arg("cf")
        .arg(ctx.join("root.tar"))
        .arg("-C")
        .arg(&src)
        .args(["z-target", "a-link"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nADD root.tar /\n").unwrap();
    let archive = dir.path().join("img.tar");
    Hoist::new()
        .run([
            "build",
            ctx.to_str().unwrap(),
            "-o",
            &format!("docker-archive:{}:hoist/links:v1", archive.display()),
        ])
        .ok();
    crate::harness::reference::docker()
        .load(&archive)
        .unwrap_or_else(|e| panic!("docker load: {e}"));
}
