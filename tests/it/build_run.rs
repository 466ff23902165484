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
    // A fixed creation time: digests compare equal whatever second each build ends in.
    Hoist::new()
        .env("HOIST_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", "0")
        .run(&args)
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
    let (run, _) = build_tree(
        dir.path(),
        "FROM $BASE\nRUN for i in $(seq 1 30); do echo line $i; done; echo to stderr >&2; exit 3\n",
        &[],
        &[],
    );
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

/// Builds `dockerfile` (`$BASE` = the example image) into `dir/out` with a cache in
/// `dir/cache`; returns the run and the unpacked tree when it succeeded.
fn build_tree(
    dir: &Path,
    dockerfile: &str,
    files: &[(&str, &str)],
    extra: &[&str],
) -> (Run, Option<crate::harness::tree::Tree>) {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    for (path, content) in files {
        let full = ctx.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile.replace("$BASE", &base())).unwrap();
    let out = dir.join("out");
    let mut args = vec![
        "build".to_string(),
        ctx.display().to_string(),
        "-o".into(),
        format!("oci:{}:img", out.display()),
        "--progress".into(),
        "plain".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = Hoist::new()
        .env("HOIST_CACHE_DIR", dir.join("cache"))
        .run(&args);
    let tree = (run.code == 0).then(|| {
        let _ = std::fs::remove_dir_all(dir.join("unpack"));
        crate::harness::tree::unpack_layout(&out, "img", &dir.join("unpack"))
    });
    (run, tree)
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn layer_bytes(layout: &Path) -> Vec<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let raw = std::fs::read(entry.path()).unwrap();
        let mut plain = Vec::new();
        if flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut plain)
            .is_ok()
        {
            out.push(plain);
        }
        out.push(raw);
    }
    out
}

#[test]
fn secrets_reach_the_command_and_nothing_else() {
    const SECRET: &str = "s3cr3t-Value-0f-the-build";
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("token.txt");
    std::fs::write(&secret_file, SECRET).unwrap();
    // The Dockerfile never spells the secret: the steps record its length only.
    let dockerfile = "FROM $BASE\n\
        RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /file-len\n\
        RUN --mount=type=secret,id=token,env=TOKEN,required echo ${#TOKEN} > /env-len\n\
        RUN --mount=type=secret,id=token,target=/root/.npmrc,mode=0440,uid=1000 stat -c '%a %u' /root/.npmrc > /npmrc-stat\n\
        RUN --mount=type=secret,id=absent ls /run/secrets > /optional-absent 2>&1 || true\n";
    let (run, tree) = build_tree(
        dir.path(),
        dockerfile,
        &[],
        &[
            "--secret",
            &format!("id=token,src={}", secret_file.display()),
            "-vv",
        ],
    );
    run.ok();
    let tree = tree.unwrap();
    let read =
        |p: &str| std::fs::read_to_string(dir.path().join("unpack/bundle/rootfs").join(p)).unwrap();
    assert_eq!(read("file-len").trim(), SECRET.len().to_string());
    assert_eq!(read("env-len").trim(), SECRET.len().to_string());
    assert!(
        !tree.contains_key("/run/secrets/token"),
        "the secret file stayed"
    );
    assert!(!tree.contains_key("/root/.npmrc"));
    assert!(
        !run.all_output().contains(SECRET),
        "the secret reached the log"
    );
    for layer in layer_bytes(&dir.path().join("out")) {
        assert!(
            !layer.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "a blob holds it"
        );
    }
    assert_eq!(
        crate::harness::files_containing(&dir.path().join("cache"), SECRET.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(read("npmrc-stat").trim(), "440 1000");

    // A required secret that was not given stops the build, naming it.
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = build_tree(
        dir.path(),
        "FROM $BASE\nRUN --mount=type=secret,id=npm,required true\n",
        &[],
        &[],
    );
    run.fails_with(1, "Dockerfile:2: secret npm: not found");
}

/// Asks the agent at $SSH_AUTH_SOCK for its identities (the ssh-agent protocol's
/// REQUEST_IDENTITIES) and prints how many it holds: a static client for the busybox base.
const AGENT_CLIENT: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(void) {
  const char *path = getenv("SSH_AUTH_SOCK");
  if (!path) { puts("no SSH_AUTH_SOCK"); return 1; }
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr)) { perror("connect"); return 1; }
  unsigned char request[5] = {0, 0, 0, 1, 11};
  if (write(fd, request, 5) != 5) { perror("write"); return 1; }
  unsigned char answer[9];
  size_t got = 0;
  while (got < 9) {
    ssize_t n = read(fd, answer + got, 9 - got);
    if (n <= 0) { puts("no answer"); return 1; }
    got += n;
  }
  if (answer[4] != 12) { puts("not an identities answer"); return 1; }
  printf("%u keys\n", (answer[5] << 24) | (answer[6] << 16) | (answer[7] << 8) | answer[8]);
  return 0;
}
"#;

/// A running ssh-agent holding one new key, stopped when dropped.
struct Agent {
    child: std::process::Child,
    socket: std::path::PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let key = dir.join("id_ed25519");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(status.success());
        let socket = dir.join("agent.sock");
        let child = std::process::Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut added = false;
        for _ in 0..100 {
            if socket.exists() {
                added = std::process::Command::new("ssh-add")
                    .arg("-q")
                    .arg(&key)
                    .env("SSH_AUTH_SOCK", &socket)
                    .status()
                    .unwrap()
                    .success();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(added, "ssh-agent did not take the key");
        Agent { child, socket }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_mounts_forward_the_agent_and_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path());
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(dir.path().join("client.c"), AGENT_CLIENT).unwrap();
    let status = std::process::Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(ctx.join("agent-keys"))
        .arg(dir.path().join("client.c"))
        .status()
        .unwrap();
    assert!(status.success(), "musl-gcc");
    let dockerfile = "FROM $BASE\n\
        COPY agent-keys /usr/local/bin/\n\
        RUN --mount=type=ssh agent-keys > /keys && echo $SSH_AUTH_SOCK > /where && stat -c '%a %u %g %F' $SSH_AUTH_SOCK > /socket\n\
        RUN --mount=type=ssh,id=deploy,target=/tmp/agent,mode=0660,uid=5,gid=6,required agent-keys > /deploy-keys && stat -c '%a %u %g' /tmp/agent > /deploy-socket\n\
        RUN --mount=type=ssh,id=absent echo ${SSH_AUTH_SOCK:-unset} > /absent && (test -e $SSH_AUTH_SOCK && echo there || echo missing) >> /absent\n";
    let socket = agent.socket.display().to_string();
    let (run, tree) = build_tree(
        dir.path(),
        dockerfile,
        &[],
        &[
            "--ssh",
            &format!("default={socket}"),
            "--ssh",
            &format!("deploy={socket}"),
        ],
    );
    run.ok();
    let tree = tree.unwrap();
    let read =
        |p: &str| std::fs::read_to_string(dir.path().join("unpack/bundle/rootfs").join(p)).unwrap();
    assert_eq!(read("keys"), "1 keys\n");
    assert_eq!(read("where"), "/run/buildkit/ssh_agent.0\n");
    assert_eq!(read("socket"), "600 0 0 socket\n");
    assert_eq!(read("deploy-keys"), "1 keys\n");
    assert_eq!(read("deploy-socket"), "660 5 6\n");
    // Optional and not given: no socket, as BuildKit (which still sets the variable).
    assert_eq!(read("absent"), "/run/buildkit/ssh_agent.0\nmissing\n");
    for path in ["/run/buildkit/ssh_agent.0", "/tmp/agent"] {
        assert!(!tree.contains_key(path), "{path} stayed in the image");
    }
    assert!(
        !tree.contains_key("/run/buildkit"),
        "the mount's parent stayed"
    );

    // A required agent that was not given stops the build, naming it; a key file is no agent.
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = build_tree(
        dir.path(),
        "FROM $BASE\nRUN --mount=type=ssh,required true\n",
        &[],
        &[],
    );
    run.fails_with(1, "Dockerfile:2: ssh default: no agent given");
    let key = dir.path().join("id_ed25519");
    std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    let (run, _) = build_tree(
        dir.path(),
        "FROM $BASE\nRUN --mount=type=ssh true\n",
        &[],
        &["--ssh", &format!("default={}", key.display())],
    );
    run.fails_with(1, "not an ssh-agent socket");
}

#[test]
fn cache_mounts_persist_between_builds_and_stay_out_of_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = "FROM $BASE\n\
        RUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/log && wc -l < /var/cache/app/log > /runs\n";
    let (first, tree) = build_tree(dir.path(), dockerfile, &[], &[]);
    first.ok();
    assert!(!tree.unwrap().contains_key("/var/cache/app/log"));
    let runs = || std::fs::read_to_string(dir.path().join("unpack/bundle/rootfs/runs")).unwrap();
    assert_eq!(runs().trim(), "1");
    // --no-cache runs the step again: the cache mount still holds the first run's line.
    let (second, tree) = build_tree(dir.path(), dockerfile, &[], &["--no-cache"]);
    second.ok();
    assert!(!tree.unwrap().contains_key("/var/cache/app"));
    assert_eq!(runs().trim(), "2");
}

#[test]
fn bind_mounts_from_the_context_and_stages_and_tmpfs_leave_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = "FROM $BASE AS builder\n\
        RUN mkdir /out && echo from-stage > /out/f\n\
        FROM $BASE\n\
        RUN --mount=type=bind,source=src,target=/mnt/src cat /mnt/src/a > /from-context\n\
        RUN --mount=type=bind,target=/ctx,rw touch /ctx/written-by-run && ls /ctx > /ctx-list\n\
        RUN --mount=type=bind,from=builder,source=/out,target=/b cat /b/f > /from-stage\n\
        RUN --mount=type=tmpfs,target=/scratch,size=1m touch /scratch/x && mount | grep -c /scratch > /tmpfs-seen\n\
        RUN --mount=type=bind,source=src,target=/ro touch /ro/nope 2> /ro-error || echo refused > /ro-refused\n\
        RUN --mount=type=bind,source=src/a,target=/one-file cat /one-file > /from-one-file\n";
    let (run, tree) = build_tree(
        dir.path(),
        dockerfile,
        &[
            ("src/a", "context-a\n"),
            (".env", "IGNORED=1\n"),
            (".dockerignore", ".env\n"),
        ],
        &[],
    );
    run.ok();
    let tree = tree.unwrap();
    let read =
        |p: &str| std::fs::read_to_string(dir.path().join("unpack/bundle/rootfs").join(p)).unwrap();
    assert_eq!(read("from-context"), "context-a\n");
    assert_eq!(read("from-stage"), "from-stage\n");
    assert_eq!(read("from-one-file"), "context-a\n");
    assert_eq!(read("ro-refused"), "refused\n");
    assert!(read("ctx-list").contains("written-by-run"));
    assert!(
        !read("ctx-list").contains(".env"),
        ".dockerignore'd files reached the mount"
    );
    assert!(
        !dir.path().join("ctx/written-by-run").exists(),
        "a rw bind wrote into the context"
    );
    for gone in [
        "/mnt/src",
        "/mnt",
        "/ctx",
        "/b",
        "/scratch",
        "/ro",
        "/one-file",
    ] {
        assert!(!tree.contains_key(gone), "{gone} stayed in the image");
    }
}

#[test]
fn run_with_network_none_has_only_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = build_tree(
        dir.path(),
        "FROM $BASE\nRUN --network=none ls /sys/class/net > /nets && hostname > /host\n",
        &[],
        &[],
    );
    run.ok();
    let read =
        |p: &str| std::fs::read_to_string(dir.path().join("unpack/bundle/rootfs").join(p)).unwrap();
    assert_eq!(read("nets"), "lo\n");
    assert_eq!(read("host"), "buildkitsandbox\n");
}

/// Heredoc RUNs follow modern BuildKit's dispatchRun (Docker 20.10's frontend cannot parse
/// them): a lone heredoc is the shell's script, one starting with `#!` runs as a file at
/// /dev/pipes/NAME, anything else goes back to the shell with the bodies appended.
#[test]
fn heredoc_runs_as_buildkit_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = "FROM $BASE\n\
RUN <<EOF\n\
echo one > /one\n\
echo two > /two\n\
EOF\n\
RUN <<-EOF\n\
\techo tabbed > /tabbed\n\
\tEOF\n\
RUN <<EOF\n\
#!/bin/sh\n\
echo \"script $0\" > /script\n\
EOF\n\
RUN cat <<EOF > /expanded\n\
hello $HOME\n\
EOF\n\
RUN cat <<A > /a && cat <<'B' > /b\n\
first\n\
A\n\
second $HOME\n\
B\n";
    let (run, tree) = build_tree(dir.path(), dockerfile, &[], &[]);
    run.ok();
    let tree = tree.unwrap();
    let read =
        |p: &str| std::fs::read_to_string(dir.path().join("unpack/bundle/rootfs").join(p)).unwrap();
    assert_eq!(read("one"), "one\n");
    assert_eq!(read("two"), "two\n");
    assert_eq!(read("tabbed"), "tabbed\n");
    assert_eq!(read("script"), "script /dev/pipes/EOF\n");
    assert_eq!(read("expanded"), "hello /root\n");
    assert_eq!(read("a"), "first\n");
    assert_eq!(read("b"), "second $HOME\n");
    assert!(!tree.contains_key("/dev/pipes"), "the script mount stayed");
}

#[test]
fn onbuild_run_triggers_run_in_the_child_build() {
    let dir = tempfile::tempdir().unwrap();
    let (parent, _) = build_tree(
        dir.path(),
        "FROM $BASE\nONBUILD RUN echo triggered > /onbuild\n",
        &[],
        &[],
    );
    parent.ok();
    let child_dir = tempfile::tempdir().unwrap();
    let child = format!(
        "FROM oci-layout://{}:img\nRUN cat /onbuild > /seen\n",
        dir.path().join("out").display()
    );
    let (run, tree) = build_tree(child_dir.path(), &child, &[], &[]);
    run.ok();
    let tree = tree.unwrap();
    assert!(tree.contains_key("/onbuild") && tree.contains_key("/seen"));
}

/// A world-writable directory holding a copy of the example base and a Dockerfile on it
/// (`$BASE`), for builds as other users.
fn shared_build_dir(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(example_layout())
        .arg(share.join("base"))
        .status()
        .unwrap();
    assert!(status.success());
    let base = format!("oci-layout://{}:latest", share.join("base").display());
    std::fs::write(share.join("Dockerfile"), dockerfile.replace("$BASE", &base)).unwrap();
    let status = std::process::Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// Builds `dir/share` into `dir/share/out:img` with `wrapper` before hoist (to change user
/// and namespaces); the image's creation time is fixed.
fn build_as(dir: &Path, wrapper: &[&str], extra: &[&str]) -> Run {
    let share = dir.join("share");
    let (program, args) = wrapper.split_first().unwrap();
    let out = std::process::Command::new(program)
        .args(args)
        .arg(env!("CARGO_BIN_EXE_hoist"))
        .args([
            "build",
            share.to_str().unwrap(),
            "--progress",
            "plain",
            "-o",
        ])
        .arg(format!("oci:{}:img", share.join("out").display()))
        .args(extra)
        .env("HOIST_CACHE_DIR", share.join("cache"))
        .env("HOME", &share)
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .unwrap();
    Run::from(out)
}

/// The user scripts/test makes, with ranges in /etc/subuid and /etc/subgid.
const ROOTLESS_USER: &str = "hoist-rootless";

/// setpriv arguments that run what follows as `user` (with its primary group).
fn as_user(user: &str) -> Vec<String> {
    let out = std::process::Command::new("id")
        .args(["-g", user])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "user {user} is missing (scripts/test makes {ROOTLESS_USER})"
    );
    let gid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    vec![
        "setpriv".into(),
        "--clear-groups".into(),
        "--inh-caps=-all".into(),
        format!("--reuid={user}"),
        format!("--regid={gid}"),
    ]
}

const USERS_DOCKERFILE: &str = "FROM $BASE AS tools
RUN echo tool > /tool
FROM $BASE
RUN --mount=type=bind,from=tools,target=/t --mount=type=cache,target=/c cat /t/tool > /made && touch /c/kept && rm /etc/group
RUN echo 'bob:x:2000:2000::/home/bob:/bin/sh' >> /etc/passwd && mkdir /home/bob && chown 2000:2000 /home/bob
USER bob
RUN id > /home/bob/id && touch /home/bob/mine
";

#[test]
fn rootless_builds_as_a_user_with_subordinate_ids_what_chroot_builds_as_root() {
    let rootless = shared_build_dir(USERS_DOCKERFILE);
    let wrapper = as_user(ROOTLESS_USER);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let run = build_as(rootless.path(), &wrapper, &["--isolation", "rootless"]);
    run.ok();
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    let chroot = shared_build_dir(USERS_DOCKERFILE);
    let as_root = build_as(chroot.path(), &["env"], &["--isolation", "chroot"]);
    as_root.ok();
    // Same image, byte for byte: owners, whiteouts and files as root makes them.
    assert_eq!(digest(&run), digest(&as_root));
    let tree = crate::harness::tree::unpack_layout(
        &rootless.path().join("share/out"),
        "img",
        &rootless.path().join("unpack"),
    );
    assert_eq!(
        (tree["/home/bob"].uid, tree["/home/bob/mine"].gid),
        (2000, 2000)
    );
    assert_eq!(tree["/home/app"].uid, 1000, "the base's owners are kept");
    assert!(!tree.contains_key("/etc/group") && !tree.contains_key("/t"));
    assert_eq!(
        tree["/made"].sha256,
        crate::harness::tree::Entry::file("/made", 0o644, b"tool\n").sha256
    );
    let id =
        std::fs::read_to_string(rootless.path().join("unpack/bundle/rootfs/home/bob/id")).unwrap();
    assert!(id.starts_with("uid=2000(bob) gid=2000"), "{id}");
}

#[test]
fn rootless_without_subordinate_ids_maps_one_id_and_warns() {
    let dir = shared_build_dir("FROM $BASE\nRUN id -u > /uid && touch /home/app/x\n");
    let wrapper = as_user("nobody");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let run = build_as(dir.path(), &wrapper, &[]);
    run.ok();
    assert!(
        run.stderr.contains(
            "warning: rootless RUN maps a single id (user nobody has no range in /etc/subuid)"
        ),
        "{}",
        run.stderr
    );
    let tree = crate::harness::tree::unpack_layout(
        &dir.path().join("share/out"),
        "img",
        &dir.path().join("unpack"),
    );
    assert_eq!(
        tree["/uid"].sha256,
        crate::harness::tree::Entry::file("/uid", 0o644, b"0\n").sha256
    );
    assert_eq!(tree["/home/app"].uid, 0, "one id: every file is root's");
}

/// Runs what follows as `nobody` in a user namespace that allows no further ones: no root, no
/// user namespaces, as on a locked-down runner.
const NO_USER_NAMESPACES: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
ready, go = os.pipe(), os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:
        os._exit(99)
    os.write(ready[1], b"u")
    os.read(go[0], 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    os.execvp(sys.argv[1], sys.argv[1:])
os.read(ready[0], 1)
for name in ("uid_map", "gid_map"):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write("0 0 1\n65534 65534 1\n")
os.write(go[1], b"g")
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn without_user_namespaces_or_root_run_says_what_each_mode_needs() {
    let dir = shared_build_dir("FROM $BASE\nRUN true\n");
    let run = build_as(dir.path(), &["python3", "-c", NO_USER_NAMESPACES], &[]);
    run.fails_with(1, "Dockerfile:2: RUN cannot set up its sandbox");
    for needle in [
        "cannot make a user namespace: No space left on device",
        "`chroot` needs root with CAP_SYS_ADMIN",
        "`container` runs in the job container itself",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    // A COPY-only build needs no sandbox and still works there.
    let copy_only = shared_build_dir("FROM $BASE\nENV A=1\n");
    build_as(
        copy_only.path(),
        &["python3", "-c", NO_USER_NAMESPACES],
        &[],
    )
    .ok();
    // chroot as someone else than root says so.
    let wrapper = as_user("nobody");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    build_as(dir.path(), &wrapper, &["--isolation", "chroot"])
        .fails_with(1, "hoist is not root, and not root of a user namespace");
}

/// The job image of an unprivileged Docker executor: this test build of hoist (static, see
/// scripts/test) and /tmp. Imported once.
fn hoist_job_image() -> &'static str {
    static IMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IMAGE.get_or_init(|| {
        let hoist = env!("CARGO_BIN_EXE_hoist");
        let mut tar = tar::Builder::new(Vec::new());
        let mut add = |path: &str, bytes: &[u8], mode: u32| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(mode);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path.trim_start_matches('/'), bytes)
                .unwrap();
        };
        add("/hoist/hoist", &std::fs::read(hoist).unwrap(), 0o755);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o1777);
        header.set_size(0);
        tar.append_data(&mut header, "tmp/", &[][..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let name = "hoist-test/job:latest".to_string();
        let mut import = crate::harness::reference::docker()
            .command()
            .args(["import", "-", &name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        import.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = import.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "docker import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        name
    })
}

/// A stage RUN switches away from and back to, mounts of every kind, users, deletions,
/// links and a replaced directory.
const CONTAINER_DOCKERFILE: &str = "FROM $BASE AS tools
RUN echo tool > /tool && mkdir -p /opt/t && echo x > /opt/t/x
FROM $BASE
RUN --mount=type=cache,target=/var/cache/app echo one > /var/cache/app/seen
RUN --mount=type=cache,target=/var/cache/app --mount=type=bind,from=tools,source=/opt/t,target=/mnt/t --mount=type=secret,id=token,target=/run/secrets/token --mount=type=tmpfs,target=/scratch cat /var/cache/app/seen /mnt/t/x > /got && test \"$(wc -c < /run/secrets/token)\" -eq 6 && touch /scratch/gone
RUN echo 'bob:x:2000:2000::/home/bob:/bin/sh' >> /etc/passwd && mkdir /home/bob && chown 2000:2000 /home/bob && chmod 700 /usr && rm -rf /home/app && mkdir /home/app && echo new > /home/app/new && ln -s /got /got-link && ln /got /got-hard && rm /etc/group
USER bob
WORKDIR /home/bob/work
RUN id -u > id && echo $HOME > home
COPY --from=tools /tool /tool
USER root
RUN rm /got-link && mkdir -p /a/b && echo deep > /a/b/c
";

#[test]
fn container_isolation_builds_in_an_unprivileged_container_what_chroot_builds() {
    let dir = shared_build_dir(CONTAINER_DOCKERFILE);
    let share = dir.path().join("share");
    std::fs::write(share.join("token"), "s3cret").unwrap();
    let hoist_args = |isolation: &str| -> Vec<String> {
        vec![
            "build".into(),
            share.display().to_string(),
            "--isolation".into(),
            isolation.into(),
            "--progress".into(),
            "plain".into(),
            "--secret".into(),
            format!("id=token,src={}/token", share.display()),
            "-o".into(),
            format!("oci:{}/out-{isolation}:img", share.display()),
        ]
    };
    let in_job_container = |isolation: &str| {
        let out = crate::harness::reference::docker()
            .command()
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{0}:{0}", share.display()))
            .args([
                "-e",
                &format!("HOIST_CACHE_DIR={}/cache-container", share.display()),
            ])
            .args(["-e", &format!("HOIST_ISOLATION={isolation}")])
            .args([
                "-e",
                "SOURCE_DATE_EPOCH=0",
                hoist_job_image(),
                "/hoist/hoist",
            ])
            .args(
                hoist_args(isolation)
                    .into_iter()
                    .filter(|a| a != "--isolation" && a != isolation),
            )
            .output()
            .unwrap();
        Run::from(out)
    };
    // Without opting in, the unprivileged container says what would work.
    let auto = in_job_container("auto");
    auto.fails_with(1, "Dockerfile:2: RUN cannot set up its sandbox");
    assert!(
        auto.stderr.contains("(`--isolation container`)"),
        "{}",
        auto.stderr
    );
    let in_container = in_job_container("container");
    in_container.ok();
    assert!(!in_container.all_output().contains("s3cret"));
    let chroot = Hoist::new()
        .env("HOIST_CACHE_DIR", share.join("cache-chroot"))
        .env("SOURCE_DATE_EPOCH", "0")
        .run(hoist_args("chroot"));
    chroot.ok();
    let unpack = |isolation: &str| {
        crate::harness::tree::unpack_layout(
            &share.join(format!("out-{isolation}")),
            "img",
            &dir.path().join(format!("unpack-{isolation}")),
        )
    };
    let tree = unpack("container");
    crate::harness::tree::assert_same_tree(
        &unpack("chroot"),
        &tree,
        "container isolation against chroot",
    );
    // Same layers and config, so the same image.
    assert_eq!(digest(&in_container), digest(&chroot));
    assert!(
        !tree.contains_key("/run") && !tree.contains_key("/mnt") && !tree.contains_key("/scratch")
    );
    assert_eq!(
        tree["/home/bob/work/id"].sha256,
        crate::harness::tree::Entry::file("/x", 0o644, b"2000\n").sha256
    );
}

#[test]
fn container_isolation_is_never_picked_by_itself_and_needs_root() {
    let dir = shared_build_dir("FROM $BASE\nRUN true\n");
    let wrapper = as_user("nobody");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    build_as(dir.path(), &wrapper, &["--isolation", "container"]).fails_with(
        1,
        "--isolation container needs hoist to run as root inside the job container",
    );
    // auto as root is chroot: a RUN here (in a container too) leaves this root alone.
    let (run, tree) = build_tree(
        tempfile::tempdir().unwrap().path(),
        "FROM $BASE\nRUN test ! -e /.dockerenv && echo ok > /ok\n",
        &[],
        &[],
    );
    run.ok();
    assert!(tree.unwrap().contains_key("/ok"));
}

/// The entry names of the last layer of `dir/out:img`.
fn last_layer_entries(dir: &Path) -> Vec<String> {
    let layout = dir.join("out");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |digest: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let last = blob(layers.last().unwrap()["digest"].as_str().unwrap());
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&last[..]));
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// The layer of a RUN holds what modern BuildKit's overlay differ would write (worked outcomes
/// in docs/design/run.md §1.5): no unchanged copy-ups, whiteouts only for what the base has,
/// an opaque directory as one whiteout per hidden child, ancestors first.
#[test]
fn run_layers_hold_only_real_changes() {
    let cases: &[(&str, &[&str])] = &[
        ("RUN true", &["dev/", "proc/", "sys/"]),
        (
            "RUN echo x > /tmp/t && rm /tmp/t",
            &["dev/", "proc/", "sys/"],
        ),
        (
            "RUN rm /etc/group",
            &["dev/", "etc/", "etc/.wh.group", "proc/", "sys/"],
        ),
        (
            "RUN chmod 700 /etc/passwd",
            &["dev/", "etc/", "etc/passwd", "proc/", "sys/"],
        ),
        (
            "RUN mkdir -p /d/a /d/b && touch /d/c\nRUN rm -rf /d && mkdir /d && echo y > /d/y",
            &["d/", "d/.wh.a", "d/.wh.b", "d/.wh.c", "d/y"],
        ),
    ];
    for (step, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (run, _) = build_tree(dir.path(), &format!("FROM $BASE\n{step}\n"), &[], &[]);
        run.ok();
        assert_eq!(&last_layer_entries(dir.path()), expected, "{step}");
    }
}

#[test]
fn a_fresh_runner_reuses_run_layers_from_a_cache_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let cache_ref = format!("oci:{}:run-cache", dir.path().join("artifact").display());
    let dockerfile = "FROM $BASE\nRUN echo ran-$((6*7)) && echo data > /data\n";
    let (first, _) = build_tree(dir.path(), dockerfile, &[], &["--cache-to", &cache_ref]);
    first.ok();
    assert!(first.stderr.contains("ran-42"));
    // An empty HOIST_CACHE_DIR (a new CI runner): the layer comes from the artifact.
    std::fs::remove_dir_all(dir.path().join("cache")).unwrap();
    let (second, tree) = build_tree(dir.path(), dockerfile, &[], &["--cache-from", &cache_ref]);
    second.ok();
    assert!(!second.stderr.contains("ran-42"), "{}", second.stderr);
    assert!(tree.unwrap().contains_key("/data"));
    // And a RUN after it still works on top of the imported layer.
    let (third, tree) = build_tree(
        dir.path(),
        &format!("{dockerfile}RUN cat /data > /again\n"),
        &[],
        &["--cache-from", &cache_ref],
    );
    third.ok();
    assert!(tree.unwrap().contains_key("/again"));
}

#[test]
fn bind_sources_never_follow_symlinks_out_of_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let outside = dir.path().join("outside-secret");
    std::fs::write(&outside, "host file").unwrap();
    std::os::unix::fs::symlink(&outside, ctx.join("escape")).unwrap();
    std::os::unix::fs::symlink("../outside-secret", ctx.join("climb")).unwrap();
    for source in ["escape", "climb"] {
        let (run, _) = build_tree(
            dir.path(),
            &format!(
                "FROM $BASE\nRUN --mount=type=bind,source={source},target=/m cat /m > /leak\n"
            ),
            &[],
            &[],
        );
        run.fails_with(1, "not found in the build context");
    }
}

#[test]
fn the_sandbox_keeps_the_command_away_from_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let dockerfile = "FROM $BASE\n\
        RUN grep CapEff /proc/self/status > /capeff\n\
        RUN ls /proc | grep -c '^[0-9]' > /pids\n\
        RUN cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c hoist-canary > /canary || true\n\
        RUN mount -t tmpfs none /mnt 2>/dev/null && echo mounted > /mounted || echo refused > /mounted\n\
        RUN mknod /tmp/disk b 8 0 2>/dev/null; head -c1 /tmp/disk >/dev/null 2>&1 && echo read > /disk || echo blocked > /disk; rm -f /tmp/disk\n\
        RUN (sleep 600 &) ; echo left a process behind\n\
        RUN touch /dev/shm/x && test -c /dev/ptmx && test -d /dev/pts && echo ok > /dev-ok\n";
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile.replace("$BASE", &base())).unwrap();
    let out = dir.path().join("out");
    let run = Hoist::new()
        .env("HOIST_CACHE_DIR", dir.path().join("cache"))
        .env("HOIST_TEST_CANARY", "hoist-canary-value")
        .run([
            "build",
            ctx.to_str().unwrap(),
            "-o",
            &format!("oci:{}:img", out.display()),
        ]);
    run.ok();
    crate::harness::tree::unpack_layout(&out, "img", &dir.path().join("unpack"));
    let read =
        |p: &str| std::fs::read_to_string(dir.path().join("unpack/bundle/rootfs").join(p)).unwrap();
    // Docker's and BuildKit's default capability set, nothing more.
    assert_eq!(read("capeff").trim(), "CapEff:\t00000000a80425fb");
    assert!(
        read("pids").trim().parse::<u32>().unwrap() < 10,
        "host processes are visible"
    );
    assert_eq!(
        read("canary").trim(),
        "0",
        "hoist's environment is readable"
    );
    assert_eq!(read("mounted").trim(), "refused");
    assert_eq!(read("disk").trim(), "blocked");
    assert_eq!(read("dev-ok").trim(), "ok");
}

#[test]
fn a_run_on_top_of_many_layers() {
    // More lower directories than fit into one page of absolute mount options.
    let dir = tempfile::tempdir().unwrap();
    let mut dockerfile = String::from("FROM $BASE\n");
    let mut files = Vec::new();
    for i in 0..60 {
        dockerfile.push_str(&format!("COPY f{i} /many/\n"));
        files.push((format!("f{i}"), format!("{i}")));
    }
    dockerfile.push_str("RUN ls /many | wc -l > /count\n");
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (run, _) = build_tree(dir.path(), &dockerfile, &files, &[]);
    run.ok();
    let count = std::fs::read_to_string(dir.path().join("unpack/bundle/rootfs/count")).unwrap();
    assert_eq!(count.trim(), "60");
}

#[test]
fn a_run_making_a_name_that_is_not_utf8_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = build_tree(
        dir.path(),
        "FROM $BASE\nRUN touch \"/$(printf 'caf\\351')\"\n",
        &[],
        &[],
    );
    run.fails_with(1, "whose name is not UTF-8");
}

#[test]
fn a_file_that_is_not_executable_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = build_tree(dir.path(), "FROM $BASE\nRUN [\"/etc/passwd\"]\n", &[], &[]);
    run.fails_with(1, "process \"/etc/passwd\" cannot start: Permission denied");
    assert!(!run.stderr.contains("CAP_SYS_ADMIN"), "{}", run.stderr);
}

/// `cap_net_raw+ep` as `setcap` writes it (VFS_CAP_REVISION_2, effective).
const NET_RAW_CAPABILITY: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[test]
fn file_capabilities_stay_with_the_files_copy_and_run_put_in_layers() {
    // BuildKit's layer writer keeps `security.capability` of each entry (containerd
    // pkg/archive/tar.go, ChangeWriter.HandleChange), and the context carries xattrs (fsutil
    // Stat.Xattrs): a COPY'd file keeps its capabilities, and so does a RUN's copy-up of it.
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nCOPY ping /ping\nRUN chmod 4755 /ping\n", base()),
    )
    .unwrap();
    let ping = ctx.join("ping");
    std::fs::write(&ping, "not really ping").unwrap();
    let path = std::ffi::CString::new(ping.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            NET_RAW_CAPABILITY.as_ptr().cast(),
            NET_RAW_CAPABILITY.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
    build(&ctx, &dir.path().join("cache"), &[]).ok();
    let mut modes_with_capability = Vec::new();
    for blob in layer_bytes(&dir.path().join("out")) {
        let mut archive = tar::Archive::new(&blob[..]);
        let Ok(entries) = archive.entries() else {
            continue;
        };
        for mut entry in entries.flatten() {
            if entry.path().unwrap().to_str() != Some("ping") {
                continue;
            }
            let mode = entry.header().mode().unwrap();
            let capability = entry.pax_extensions().unwrap().and_then(|pax| {
                pax.flatten()
                    .find(|e| e.key() == Ok("SCHILY.xattr.security.capability"))
                    .map(|e| e.value_bytes().to_vec())
            });
            assert_eq!(
                capability.as_deref(),
                Some(&NET_RAW_CAPABILITY[..]),
                "mode {mode:o}"
            );
            modes_with_capability.push(mode);
        }
    }
    modes_with_capability.sort();
    assert_eq!(modes_with_capability, [0o644, 0o4755]);
}
