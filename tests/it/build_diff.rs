//! Differential tests: each Dockerfile is built by Docker's BuildKit (the reference) and by
//! hoist; the root filesystems (path, type, mode, owner, content, link target; read by umoci)
//! and the image configs (read by skopeo) must be the same.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

use crate::harness::reference::{comparable_config, docker};
use crate::harness::registry::{Hoist, seed_example, shared, skopeo_inspect};
use crate::harness::tree::{assert_same_tree, diff, unpack_layout};

/// (Docker cannot save an image without layers, so metadata cases copy one file first.)
/// A context file: path, content, mode; a path ending in `/` is a directory; `-> target` a
/// symlink, `=> target` a hard link to an earlier file.
type File<'a> = (&'a str, &'a str, u32);

/// A file server shared by the ADD-from-URL cases.
fn file_server() -> &'static crate::harness::http::FileServer {
    static FILES: OnceLock<crate::harness::http::FileServer> = OnceLock::new();
    FILES.get_or_init(|| {
        let server = crate::harness::http::FileServer::start();
        server.put("hello.txt", b"hello over http\n");
        server.put("data.bin", &[7u8; 3000]);
        server
    })
}

/// The example busybox image in the shared registry, the base most cases build on.
fn base() -> &'static str {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| seed_example(shared(), "diff/base", None))
}

fn write_context(dir: &Path, files: &[File]) {
    for (path, content, mode) in files {
        let full = dir.join(path.trim_end_matches('/'));
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        if path.ends_with('/') {
            std::fs::create_dir_all(&full).unwrap();
        } else if let Some(target) = content.strip_prefix("-> ") {
            std::os::unix::fs::symlink(target, &full).unwrap();
            continue;
        } else if let Some(target) = content.strip_prefix("=> ") {
            std::fs::hard_link(dir.join(target), &full).unwrap();
            continue;
        } else {
            std::fs::write(&full, content).unwrap();
        }
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

/// Builds `dockerfile` (with `$BASE` replaced by the base image) both ways and compares.
fn same_as_buildkit(
    name: &str,
    files: &[File],
    dockerfile: &str,
    args: &[(&str, &str)],
    target: Option<&str>,
) {
    differs_from_old_buildkit(name, files, dockerfile, args, target, &[]);
}

/// Like [`same_as_buildkit`], but the tree must differ from Docker 20.10's BuildKit in exactly
/// `known` ways: where modern BuildKit (whose source each case cites) behaves differently.
fn differs_from_old_buildkit(
    name: &str,
    files: &[File],
    dockerfile: &str,
    args: &[(&str, &str)],
    target: Option<&str>,
    known: &[&str],
) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    write_context(&ctx, files);
    let dockerfile = dockerfile.replace("$BASE", base());
    let dockerfile = if dockerfile.contains("$HTTP") {
        dockerfile.replace("$HTTP", &file_server().url)
    } else {
        dockerfile
    };
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let known: Vec<String> = known.iter().map(|k| k.to_string()).collect();
    compare(name, dir.path(), args, target, &known);
}

/// Builds the context `dir/ctx` both ways and compares trees (up to `known` differences) and
/// configs.
fn compare(name: &str, dir: &Path, args: &[(&str, &str)], target: Option<&str>, known: &[String]) {
    let ctx = dir.join("ctx");

    let reference = docker()
        .build(&ctx, None, args, target)
        .unwrap_or_else(|e| panic!("{name}: BuildKit failed: {e}"));

    let out = dir.join("out");
    let mut cmd: Vec<String> = vec![
        "build".into(),
        ctx.display().to_string(),
        "--format".into(),
        "oci".into(),
        "-o".into(),
        format!("oci:{}:img", out.display()),
    ];
    for (k, v) in args {
        cmd.push("--build-arg".into());
        cmd.push(format!("{k}={v}"));
    }
    if let Some(t) = target {
        cmd.push("--target".into());
        cmd.push(t.into());
    }
    let run = Hoist::new().run(&cmd);
    assert_eq!(run.code, 0, "{name}: hoist build failed:\n{}", run.stderr);

    let tree = unpack_layout(&out, "img", &dir.join("unpack"));
    if known.is_empty() {
        assert_same_tree(&reference.tree, &tree, name);
    } else {
        assert_eq!(
            diff(&reference.tree, &tree),
            known,
            "{name}: the known differences"
        );
    }
    let config: serde_json::Value = serde_json::from_slice(
        &skopeo_inspect(
            &format!("oci:{}:img", out.display()),
            None,
            &["--config", "--raw"],
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        comparable_config(&config),
        comparable_config(&reference.config),
        "{name}: config differs"
    );
}

macro_rules! diff_case {
    ($name:ident, $files:expr, $dockerfile:expr) => {
        #[test]
        fn $name() {
            same_as_buildkit(stringify!($name), $files, $dockerfile, &[], None);
        }
    };
    ($name:ident, $files:expr, $dockerfile:expr, args = $args:expr) => {
        #[test]
        fn $name() {
            same_as_buildkit(stringify!($name), $files, $dockerfile, $args, None);
        }
    };
    ($name:ident, $files:expr, $dockerfile:expr, target = $target:expr) => {
        #[test]
        fn $name() {
            same_as_buildkit(stringify!($name), $files, $dockerfile, &[], Some($target));
        }
    };
}

const SIMPLE: &[File] = &[
    ("a.txt", "a\n", 0o644),
    ("b.txt", "bb\n", 0o600),
    ("run.sh", "#!/bin/sh\necho hi\n", 0o755),
    ("dir/", "", 0o750),
    ("dir/x", "x\n", 0o644),
    ("dir/sub/", "", 0o700),
    ("dir/sub/y", "y\n", 0o640),
    ("dir/link", "-> x", 0o777),
    ("toplink", "-> dir", 0o777),
    ("with space.txt", "s\n", 0o644),
    ("ünïcødé.txt", "u\n", 0o644),
];

diff_case!(
    scratch_copy_one_file,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\n"
);
diff_case!(
    copy_to_a_new_name,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /renamed\n"
);
diff_case!(
    copy_into_new_dir_with_slash,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /new/dir/\n"
);
diff_case!(
    copy_dir_copies_contents,
    SIMPLE,
    "FROM scratch\nCOPY dir /app\n"
);
diff_case!(
    copy_dir_to_slash_dest,
    SIMPLE,
    "FROM scratch\nCOPY dir /app/\n"
);
diff_case!(
    copy_several_sources,
    SIMPLE,
    "FROM scratch\nCOPY a.txt b.txt run.sh /bin/\n"
);
diff_case!(copy_wildcard, SIMPLE, "FROM scratch\nCOPY *.txt /t/\n");
diff_case!(copy_wildcard_dirs, SIMPLE, "FROM scratch\nCOPY di* /w/\n");
diff_case!(
    copy_wildcard_nothing,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nCOPY *.none /none/\n"
);
diff_case!(
    copy_spaces_and_unicode,
    SIMPLE,
    "FROM scratch\nCOPY [\"with space.txt\", \"ünïcødé.txt\", \"/names/\"]\n"
);
diff_case!(
    copy_symlinked_source_is_followed,
    SIMPLE,
    "FROM scratch\nCOPY toplink /followed\n"
);
diff_case!(copy_whole_context, SIMPLE, "FROM scratch\nCOPY . /ctx/\n");
diff_case!(
    copy_dot_to_workdir,
    SIMPLE,
    "FROM scratch\nWORKDIR /srv/app\nCOPY . .\n"
);
diff_case!(
    copy_overwrites_a_file,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /f\nCOPY b.txt /f\n"
);
diff_case!(
    chown_numeric,
    SIMPLE,
    "FROM scratch\nCOPY --chown=1000:1001 dir /app\n"
);
diff_case!(
    chown_by_name,
    SIMPLE,
    "FROM $BASE\nCOPY --chown=app:app a.txt dir /home/app/\n"
);
diff_case!(
    chown_user_only,
    SIMPLE,
    "FROM $BASE\nCOPY --chown=app a.txt /home/app/x/\n"
);
diff_case!(
    chown_unknown_name_is_root,
    SIMPLE,
    "FROM $BASE\nCOPY --chown=nosuchuser a.txt /opt/\n"
);
diff_case!(
    chmod_file,
    SIMPLE,
    "FROM scratch\nCOPY --chmod=0755 a.txt /bin/a\n"
);
/// Modern BuildKit creates missing destination directories with the --chmod mode
/// (tonistiigi/fsutil copy/copy.go `Copy`: `perm = *ci.Mode`, vendored in moby/buildkit
/// 73ed6825); Docker 20.10's BuildKit used 0755.
#[test]
fn chmod_dir_and_created_parents() {
    differs_from_old_buildkit(
        "chmod_dir_and_created_parents",
        SIMPLE,
        "FROM scratch\nCOPY --chmod=640 dir /deep/app/\n",
        &[],
        None,
        &[
            "/deep: mode: expected 0755, got 0640",
            "/deep/app: mode: expected 0755, got 0640",
        ],
    );
}
diff_case!(
    implicit_parents_keep_base_owner,
    SIMPLE,
    "FROM $BASE\nCOPY a.txt /home/app/sub/file\n"
);
diff_case!(
    copy_over_existing_base_dir,
    SIMPLE,
    "FROM $BASE\nCOPY dir /etc/\n"
);
diff_case!(
    workdir_relative_and_created,
    SIMPLE,
    "FROM scratch\nWORKDIR /a\nWORKDIR b/c\nWORKDIR ../d\nCOPY a.txt .\n"
);
diff_case!(
    workdir_owned_by_user,
    SIMPLE,
    "FROM $BASE\nUSER app\nWORKDIR /home/app/work\nUSER 1000:1000\nWORKDIR /data\n"
);
diff_case!(
    env_forms_and_in_place_update,
    SIMPLE,
    "FROM $BASE\nENV A=1 B=\"two words\" C=${A}x\nENV D set the legacy way\nENV PATH=/opt/bin:$PATH A=changed\n"
);
diff_case!(
    env_expands_in_copy_and_workdir,
    SIMPLE,
    "FROM scratch\nENV DIR=/opt/app NAME=cfg\nWORKDIR $DIR\nCOPY a.txt ${NAME}.txt\nCOPY b.txt $DIR/sub/\n"
);
diff_case!(
    arg_defaults_and_overrides,
    SIMPLE,
    "ARG V=1\nFROM scratch\nCOPY a.txt /\nARG V\nARG W=default\nARG X\nENV V=$V W=$W X=${X:-unset}\nLABEL v=$V\n",
    args = &[("W", "given"), ("X", "x")]
);
diff_case!(
    arg_in_from,
    SIMPLE,
    "ARG IMG=scratch\nFROM $IMG\nCOPY a.txt /\n"
);
diff_case!(
    labels_quoted_and_many,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nLABEL a=1 \"b c\"=\"d e\" f='single'\nLABEL org.opencontainers.image.title=t\n"
);
diff_case!(
    expose_ports,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nEXPOSE 80 443/udp 8000-8002\nEXPOSE 53/UDP\n"
);
diff_case!(
    user_and_stopsignal,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nUSER 1234:5678\nSTOPSIGNAL SIGQUIT\n"
);
diff_case!(
    cmd_shell_and_exec,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nCMD echo \"hello world\"\n"
);
diff_case!(
    entrypoint_resets_cmd,
    SIMPLE,
    "FROM $BASE\nENTRYPOINT [\"/bin/sh\", \"-c\"]\n"
);
diff_case!(
    cmd_then_entrypoint_keeps_cmd,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nCMD [\"x\"]\nENTRYPOINT top -b\n"
);
diff_case!(
    volume_creates_no_dir,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nVOLUME /data [\"/logs\"]\nVOLUME /a /b\n"
);
diff_case!(
    healthcheck_flags,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nHEALTHCHECK --interval=30s --timeout=5s --start-period=1m --retries=3 CMD curl -f http://localhost/ || exit 1\n"
);
diff_case!(healthcheck_none, SIMPLE, "FROM $BASE\nHEALTHCHECK NONE\n");
diff_case!(
    shell_changes_shell_form,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nCMD echo hi\nENTRYPOINT exec app\n"
);
diff_case!(
    maintainer_and_onbuild,
    SIMPLE,
    "FROM scratch\nCOPY a.txt /\nMAINTAINER someone <a@b.c>\nONBUILD COPY a.txt /onbuild/\nONBUILD ENV X=1\n"
);
diff_case!(
    multi_stage_copy_from_name,
    SIMPLE,
    "FROM scratch AS build\nCOPY dir /out/\nCOPY a.txt /out/a\nFROM scratch\nCOPY --from=build /out /final\n"
);
diff_case!(
    multi_stage_copy_from_index,
    SIMPLE,
    "FROM scratch\nCOPY b.txt /b\nFROM scratch\nCOPY --from=0 /b /c\n"
);
diff_case!(
    from_a_stage_inherits,
    SIMPLE,
    "FROM $BASE AS one\nENV X=1\nCOPY a.txt /a\nFROM one\nCOPY b.txt /b\n"
);
diff_case!(
    target_selects_a_stage,
    SIMPLE,
    "FROM scratch AS first\nCOPY a.txt /\nFROM scratch AS second\nCOPY b.txt /\nFROM scratch\nCOPY run.sh /\n",
    target = "first"
);
diff_case!(
    unused_stages_are_not_needed,
    SIMPLE,
    "FROM scratch AS unused\nCOPY nothing-here /\nFROM scratch\nCOPY a.txt /\n"
);
diff_case!(
    copy_from_base_image_files,
    SIMPLE,
    "FROM scratch\nCOPY --from=$BASE /etc/passwd /etc/group /etc/\nCOPY --from=$BASE /bin/busybox /bin/\n"
);
diff_case!(
    copy_through_symlinked_dir,
    &[
        ("bin", "-> usr/bin", 0o777),
        ("usr/bin/", "", 0o755),
        ("tool", "t\n", 0o755),
    ],
    "FROM scratch AS base\nCOPY bin /bin\nCOPY usr /usr\nFROM base\nCOPY tool /bin/\n"
);
diff_case!(
    dockerignore_and_exceptions,
    &[
        (
            ".dockerignore",
            "*.log\nsecret/\n!secret/keep.txt\n**/tmp\n",
            0o644
        ),
        ("a.log", "l\n", 0o644),
        ("app.txt", "a\n", 0o644),
        ("secret/key", "k\n", 0o600),
        ("secret/keep.txt", "kept\n", 0o644),
        ("src/tmp/x", "x\n", 0o644),
        ("src/main.c", "int main;\n", 0o644),
    ],
    "FROM scratch\nCOPY . /ctx/\n"
);
diff_case!(
    escape_directive_and_continuations,
    SIMPLE,
    "# escape=`\nFROM scratch\nCOPY a.txt `\n     b.txt `\n     /multi/\n# a comment\nENV PATH=C:\\bin `\n    X=1\n"
);
diff_case!(
    comments_inside_continuations,
    SIMPLE,
    "FROM scratch\nLABEL a=1 \\\n# comment in the middle\n      b=2\nCOPY a.txt \\\n  /x\n"
);
diff_case!(
    add_local_file_like_copy,
    SIMPLE,
    "FROM scratch\nADD a.txt dir /added/\n"
);
diff_case!(
    empty_directory,
    &[("empty/", "", 0o755), ("f", "f", 0o644)],
    "FROM scratch\nCOPY empty /e\nCOPY . /all/\n"
);
diff_case!(
    add_from_urls,
    SIMPLE,
    "FROM scratch\nADD $HTTP/hello.txt /web/\nADD $HTTP/data.bin /web/renamed.bin\nADD --chown=5:6 $HTTP/hello.txt /owned\n"
);
diff_case!(
    hard_links_stay_linked_within_a_copy,
    &[
        ("h/one", "same\n", 0o644),
        ("h/two", "=> h/one", 0o644),
        ("h/sub/three", "=> h/one", 0o644),
    ],
    "FROM scratch\nCOPY h /h/\nCOPY h/two /single\n"
);
diff_case!(
    syntax_directive_is_ignored,
    SIMPLE,
    "# syntax=docker/dockerfile:1\nFROM scratch\nCOPY a.txt /\n"
);

#[test]
fn add_unpacks_local_tar_archives() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_context(
        &src,
        &[
            ("top/", "", 0o755),
            ("top/f", "f\n", 0o640),
            ("top/l", "-> f", 0o777),
        ],
    );
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, flags) in [
        ("plain.tar", "cf"),
        ("packed.tar.gz", "czf"),
        ("packed.tar.bz2", "cjf"),
        ("packed.tar.xz", "cJf"),
    ] {
        let mut cmd = std::process::Command::new("tar");
        cmd.arg(flags)
            .arg(dir.path().join(name))
            .args(["--owner=1000", "--group=1000", "-C"])
            .arg(&src)
            .arg("top");
        assert!(cmd.status().unwrap().success());
        files.push((
            name.to_string(),
            std::fs::read(dir.path().join(name)).unwrap(),
        ));
    }
    let contexts: Vec<(&str, Vec<u8>)> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .chain([("notar.gz", b"not really gzip".to_vec())])
        .collect();
    let dockerfile = "FROM scratch\nADD plain.tar /p/\nADD packed.tar.gz /z\nADD packed.tar.bz2 /b/\nADD packed.tar.xz /x/\nADD --chown=7:8 packed.tar.gz /c/\nADD notar.gz /n/\n";
    // Modern BuildKit applies --chown to unpacked entries (solver/llbsolver/file/unpack.go:
    // `opts.ChownOpts` from the copy's user, moby/buildkit 73ed6825); 20.10's did not.
    let known: Vec<String> = ["/c/top", "/c/top/f", "/c/top/l"]
        .iter()
        .flat_map(|p| {
            [
                format!("{p}: uid: expected 1000, got 7"),
                format!("{p}: gid: expected 1000, got 8"),
            ]
        })
        .collect();
    same_as_buildkit_binary(
        "add_unpacks_local_tar_archives",
        &contexts,
        dockerfile,
        &known,
    );
}

/// Fifos and device nodes in an added tar are made, as BuildKit's unpacking (as root) does.
#[test]
fn add_unpacks_fifos_and_device_nodes() {
    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, device: (u32, u32), data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        header.set_device_major(device.0).unwrap();
        header.set_device_minor(device.1).unwrap();
        header.set_size(data.len() as u64);
        archive.append_data(&mut header, path, data).unwrap();
    };
    add("dev/", tar::EntryType::Directory, 0o755, (0, 0), b"");
    add("dev/pipe", tar::EntryType::Fifo, 0o640, (0, 0), b"");
    add("dev/null", tar::EntryType::Char, 0o666, (1, 3), b"");
    add("dev/loop9", tar::EntryType::Block, 0o660, (7, 9), b"");
    add(
        "dev/file",
        tar::EntryType::Regular,
        0o644,
        (0, 0),
        b"plain\n",
    );
    let bytes = archive.into_inner().unwrap();
    same_as_buildkit_binary(
        "add_unpacks_fifos_and_device_nodes",
        &[("dev.tar", bytes)],
        "FROM scratch\nADD dev.tar /x/\n",
        &[],
    );
}

/// Like [`same_as_buildkit`] for a context of binary files (all 0644).
fn same_as_buildkit_binary(
    name: &str,
    files: &[(&str, Vec<u8>)],
    dockerfile: &str,
    known: &[String],
) {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    for (path, bytes) in files {
        std::fs::write(ctx.join(path), bytes).unwrap();
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    compare(name, dir.path(), &[], None, known);
}

// RUN steps on the busybox base (isolation `chroot`, as root). Like BuildKit, the /proc, /dev
// and /sys mount points a RUN needed stay in its layer when the base lacks them.
macro_rules! run_case {
    ($name:ident, $files:expr, $dockerfile:expr) => {
        diff_case!($name, $files, $dockerfile);
    };
}

run_case!(
    run_creates_files_and_dirs,
    SIMPLE,
    "FROM $BASE\nRUN echo hello > /greeting && mkdir -p /data/sub && chmod 750 /data\n"
);
run_case!(
    run_deletes_and_renames_base_files,
    SIMPLE,
    "FROM $BASE\nRUN rm /etc/group && mv /etc/passwd /etc/passwd.old && rm -rf /bin/sh\n"
);
run_case!(
    run_replaces_a_base_directory_opaquely,
    SIMPLE,
    "FROM $BASE\nRUN mkdir -p /srv/a/b && touch /srv/a/b/f\nRUN rm -rf /srv/a && mkdir -p /srv/a && echo new > /srv/a/n\n"
);
run_case!(
    run_chmod_and_chown,
    SIMPLE,
    "FROM $BASE\nCOPY dir /app\nRUN chown -R 1000:1000 /app && chmod 600 /app/x && chmod 4755 /app/sub\n"
);
run_case!(
    run_appends_users_and_groups_then_user_applies,
    SIMPLE,
    "FROM $BASE\nRUN echo 'svc:x:1001:1002::/home/svc:/bin/sh' >> /etc/passwd && echo 'svc:x:1002:' >> /etc/group && echo 'extra:x:1003:svc,other' >> /etc/group && mkdir -p /home/svc && chown svc:svc /home/svc\nUSER svc\nRUN id > /home/svc/id && touch /home/svc/mine\nUSER root\nRUN id > /root-id\nUSER 1001\nRUN id > /tmp/numeric-id\n"
);
run_case!(
    run_hardlinks_symlinks_and_empty_dirs,
    SIMPLE,
    "FROM $BASE\nRUN echo data > /f && ln /f /hard && ln -s /f /soft && ln -s missing /dangling && mkdir /empty\n"
);
run_case!(
    run_shell_form_sees_env_args_and_workdir,
    SIMPLE,
    "FROM $BASE\nARG LEVEL=3\nENV GREETING=hi\nWORKDIR /work\nRUN echo \"$GREETING $LEVEL $(pwd)\" > out\n"
);
run_case!(
    run_exec_form_with_env_and_no_shell,
    SIMPLE,
    "FROM $BASE\nENV TARGET=/exec-out\nRUN [\"/bin/sh\", \"-c\", \"echo exec > $TARGET\"]\nRUN [\"/bin/mkdir\", \"-p\", \"/made/by/exec\"]\n"
);
run_case!(
    run_with_a_changed_shell,
    SIMPLE,
    "FROM $BASE\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN echo $0 $- > /shell-flags\n"
);
run_case!(
    run_modifies_copied_files,
    SIMPLE,
    "FROM $BASE\nCOPY a.txt b.txt /app/\nRUN echo more >> /app/a.txt && rm /app/b.txt\n"
);
run_case!(
    run_in_one_stage_copied_into_another,
    SIMPLE,
    "FROM $BASE AS build\nRUN mkdir /out && echo built > /out/artifact && chmod 640 /out/artifact\nFROM $BASE\nCOPY --from=build /out /dist\nRUN cat /dist/artifact > /dist/copy\n"
);
run_case!(
    run_that_changes_nothing,
    SIMPLE,
    "FROM $BASE\nCOPY a.txt /\nRUN cat /a.txt && true\n"
);
run_case!(
    run_touches_etc_without_leaving_stubs,
    SIMPLE,
    "FROM $BASE\nRUN echo 'nameserver 1.1.1.1' > /etc/resolv.conf.mine && cat /etc/hosts > /hosts-seen\n"
);

#[test]
fn run_history_shows_the_stage_args_like_buildkit() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nARG A=1\nARG B\nENV A=from-env\nRUN echo $A > /a\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN [\"/bin/sh\", \"-c\", \"echo exec > /e\"]\nRUN echo shell > /s\n",
            base()
        ),
    )
    .unwrap();
    let reference = docker()
        .build(&ctx, None, &[("B", "2")], None)
        .unwrap_or_else(|e| panic!("BuildKit failed: {e}"));
    let out = dir.path().join("out");
    Hoist::new()
        .run([
            "build",
            ctx.to_str().unwrap(),
            "--build-arg",
            "B=2",
            "-o",
            &format!("oci:{}:img", out.display()),
        ])
        .ok();
    let config: serde_json::Value = serde_json::from_slice(
        &skopeo_inspect(
            &format!("oci:{}:img", out.display()),
            None,
            &["--config", "--raw"],
        )
        .unwrap(),
    )
    .unwrap();
    let created_by = |c: &serde_json::Value| -> Vec<String> {
        c["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h["created_by"].as_str())
            .filter(|s| s.starts_with("RUN"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(created_by(&config), created_by(&reference.config));
    assert_eq!(created_by(&config).len(), 3);
}
run_case!(
    run_swaps_files_dirs_and_links,
    SIMPLE,
    "FROM $BASE\nRUN mkdir -p /x/dir && echo f > /x/file && ln -s /x/file /x/link\nRUN rm -r /x/dir && echo now-file > /x/dir && rm /x/file && mkdir /x/file && rm /x/link && echo plain > /x/link\n"
);
run_case!(
    run_changes_only_metadata_of_base_entries,
    SIMPLE,
    "FROM $BASE\nRUN chmod 700 /home && chmod 1777 /tmp 2>/dev/null || mkdir -m 1777 /tmp; chmod 2755 /bin && chown 1:1 /etc/passwd\n"
);
run_case!(
    run_deep_tree_then_delete_half,
    SIMPLE,
    "FROM $BASE\nRUN for d in a b c d; do for e in 1 2 3; do mkdir -p /deep/$d/$e && echo $d$e > /deep/$d/$e/f; done; done\nRUN rm -rf /deep/a /deep/c /deep/b/2 && echo extra > /deep/d/3/g\n"
);
run_case!(
    run_names_with_spaces_and_unicode,
    SIMPLE,
    "FROM $BASE\nRUN mkdir '/with space' && echo u > '/with space/ünï cødé' && touch '/with space/.hidden'\n"
);
run_case!(
    run_deletes_what_copy_added_in_the_same_stage,
    SIMPLE,
    "FROM $BASE\nCOPY dir /app\nRUN rm -r /app/sub && rm /app/link && echo changed > /app/x\n"
);
/// `ln base_file new`: overlayfs copies `base_file` up unchanged, so modern BuildKit's overlay
/// differ (util/overlay/overlay_linux.go `Changes`: copied-up entries equal to the lower are not
/// recorded) writes only `new`, as a plain file: the link is lost in the layer, as in hoist's.
/// Docker 20.10 tars the whole upper directory and keeps it.
#[test]
fn run_hardlinks_a_base_file() {
    differs_from_old_buildkit(
        "run_hardlinks_a_base_file",
        SIMPLE,
        "FROM $BASE\nRUN ln /bin/busybox /bb && ln /etc/passwd /etc/passwd.hard\n",
        &[],
        None,
        &[
            "/bin/busybox: kind: expected hardlink, got file",
            "/bin/busybox: link: expected /bb, got -",
            "/etc/passwd.hard: kind: expected hardlink, got file",
            "/etc/passwd.hard: link: expected /etc/passwd, got -",
        ],
    );
}
run_case!(
    run_as_a_user_in_a_new_workdir,
    SIMPLE,
    "FROM $BASE\nUSER app\nWORKDIR /data/app\nRUN touch mine && mkdir sub\n"
);
run_case!(
    run_exec_form_gets_no_shell_expansion,
    SIMPLE,
    "FROM $BASE\nENV WHO=world\nRUN [\"/bin/sh\", \"-c\", \"echo $WHO '$HOME' > /greeting\"]\nRUN [\"/bin/mkdir\", \"/$WHO\"]\n"
);
run_case!(
    run_makes_fifos_and_device_nodes,
    SIMPLE,
    "FROM $BASE\nRUN mkfifo /pipe && mknod /null-copy c 1 3 && chmod 600 /null-copy\n"
);
