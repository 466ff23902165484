//! The reference builder: BuildKit inside Debian's dockerd 20.10 (package docker.io), which
//! hoist's builds must match. One private dockerd per test binary, started on first use.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::spawn_server;
use super::tree::{Tree, unpack_layout};

/// Absolute paths: a newer docker client may come first on PATH.
const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";
/// Serialises test binaries: the holder owns STATE_DIR and the dockerd running in it.
const LOCK_PATH: &str = "/tmp/hoist-test-dockerd.lock";
const STATE_DIR: &str = "/tmp/hoist-test-dockerd";

pub struct Reference {
    /// `unix://…/docker.sock`, for `docker -H`.
    host: String,
    /// An empty DOCKER_CONFIG, so the user's client config (helpers, contexts) is ignored.
    client_config: PathBuf,
    _dir: tempfile::TempDir,
    _child: Child,
    _lock: File,
}

/// The dockerd of this test binary.
pub fn docker() -> &'static Reference {
    static DOCKER_D: OnceLock<Reference> = OnceLock::new();
    DOCKER_D.get_or_init(Reference::start)
}

/// A built image as BuildKit made it.
pub struct RefImage {
    /// The unpacked root filesystem (umoci).
    pub tree: Tree,
    /// The whole image config JSON (architecture, os, config, history, rootfs).
    pub config: serde_json::Value,
    /// An OCI layout holding the image under ref "ref".
    pub layout: PathBuf,
    _dir: tempfile::TempDir,
}

impl Reference {
    fn start() -> Reference {
        for binary in [DOCKERD, DOCKER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install docker.io (scripts/test does)"
            );
        }
        let lock = take_lock();
        // The previous holder's state is stale now; a partial cleanup only costs disk.
        unmount_under(STATE_DIR);
        let _ = std::fs::remove_dir_all(STATE_DIR);
        std::fs::create_dir_all(STATE_DIR).unwrap();
        // Short prefix: unix socket paths under the exec root must stay below 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("d")
            .tempdir_in(STATE_DIR)
            .unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::create_dir(path("client")).unwrap();
        // Our own empty daemon.json, so a host /etc/docker/daemon.json cannot interfere.
        std::fs::write(path("daemon.json"), "{}").unwrap();
        let log_path = path("dockerd.log");
        let log = File::create(&log_path).unwrap();
        let socket = path("docker.sock");
        let mut command = Command::new(DOCKERD);
        command
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .arg("--config-file")
            .arg(path("daemon.json"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(path("data"))
            .arg("--exec-root")
            .arg(path("exec"))
            .arg("--pidfile")
            .arg(path("docker.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let mut child = spawn_server(command);
        let host = format!("unix://{}", socket.display());
        let client_config = path("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client(&host, &client_config)
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                panic!(
                    "dockerd did not become ready ({}); last lines of {}:\n{}",
                    exited.map_or("30 s timeout".to_string(), |s| format!("exited: {s}")),
                    log_path.display(),
                    lines[lines.len().saturating_sub(40)..].join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Reference {
            host,
            client_config,
            _dir: dir,
            _child: child,
            _lock: lock,
        }
    }

    /// `/usr/bin/docker -H <our socket>` with an isolated client config; add the subcommand.
    pub fn command(&self) -> Command {
        client(&self.host, &self.client_config)
    }

    /// `docker build --network host` of `context` (its Dockerfile unless `dockerfile`), then
    /// the image exported with `docker save` and turned into an OCI layout by skopeo.
    /// `# syntax=` directives are dropped first: they would make dockerd fetch a frontend
    /// image from the network (error messages then count lines one lower). Err is the
    /// build's output.
    pub fn build(
        &self,
        context: &Path,
        dockerfile: Option<&Path>,
        build_args: &[(&str, &str)],
        target: Option<&str>,
    ) -> Result<RefImage, String> {
        static BUILDS: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().unwrap();
        let source = dockerfile.map_or_else(|| context.join("Dockerfile"), Path::to_path_buf);
        let text = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
        // Same file name, so a `<name>.dockerignore` next to it still applies.
        let name = source.file_name().expect("a Dockerfile file name");
        std::fs::create_dir(dir.path().join("df")).unwrap();
        let copy = dir.path().join("df").join(name);
        std::fs::write(&copy, strip_syntax_directive(&text)).unwrap();
        let mut ignore_name = name.to_os_string();
        ignore_name.push(".dockerignore");
        let ignore = source.with_file_name(&ignore_name);
        if ignore.exists() {
            std::fs::copy(&ignore, dir.path().join("df").join(&ignore_name)).unwrap();
        }

        // Unique across concurrent builds of this binary (and binaries, by the pid).
        let tag = format!(
            "hoist-reference/build-{}-{}:latest",
            std::process::id(),
            BUILDS.fetch_add(1, Ordering::Relaxed)
        );
        let mut command = self.command();
        command
            .args(["build", "--network", "host", "-f"])
            .arg(&copy);
        for (key, value) in build_args {
            command.arg("--build-arg").arg(format!("{key}={value}"));
        }
        if let Some(target) = target {
            command.args(["--target", target]);
        }
        let out = command
            .args(["-t", &tag])
            .arg(context)
            .output()
            .expect("run docker build");
        if !out.status.success() {
            return Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }

        let archive = dir.path().join("image.tar");
        run(self.command().args(["save", "-o"]).arg(&archive).arg(&tag));
        let layout = dir.path().join("layout");
        run(Command::new("skopeo")
            .arg("copy")
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("oci:{}:ref", layout.display())));
        let tree = unpack_layout(&layout, "ref", &dir.path().join("unpacked"));
        // The config as Docker stored it: the OCI copy would drop Docker's own fields
        // (Healthcheck, OnBuild, Shell) in the conversion.
        let raw = run(Command::new("skopeo")
            .args(["inspect", "--config", "--raw"])
            .arg(format!("docker-archive:{}", archive.display())));
        let config = serde_json::from_slice(&raw).expect("image config is JSON");
        Ok(RefImage {
            tree,
            config,
            layout,
            _dir: dir,
        })
    }

    /// `docker load` of a docker-archive; the id of the (first) image loaded.
    pub fn load(&self, archive: &Path) -> Result<String, String> {
        let out = self
            .command()
            .args(["load", "-i"])
            .arg(archive)
            .output()
            .expect("run docker load");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
        }
        // Tagged archives report "Loaded image: NAME", untagged ones "Loaded image ID: ID".
        for line in stdout.lines() {
            if let Some(id) = line.strip_prefix("Loaded image ID: ") {
                return Ok(id.trim().to_string());
            }
            if let Some(name) = line.strip_prefix("Loaded image: ") {
                let id = run(self.command().args([
                    "image",
                    "inspect",
                    "--format",
                    "{{.Id}}",
                    name.trim(),
                ]));
                return Ok(String::from_utf8_lossy(&id).trim().to_string());
            }
        }
        Err(format!("docker load printed no image: {stdout}"))
    }
}

/// The comparable part of an image config: `config.{Env, Cmd, …}` (missing as null) plus
/// architecture and os; timestamps, history and layer ids are left out.
pub fn comparable_config(config: &serde_json::Value) -> serde_json::Value {
    const FIELDS: [&str; 12] = [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "Labels",
        "Volumes",
        "StopSignal",
        "Healthcheck",
        "Shell",
        "OnBuild",
    ];
    let fields: serde_json::Map<String, serde_json::Value> = FIELDS
        .iter()
        .map(|f| (f.to_string(), config["config"][f].clone()))
        .collect();
    serde_json::json!({
        "architecture": config["architecture"],
        "os": config["os"],
        "config": fields,
    })
}

/// The docker client for the daemon at `host` only, DOCKER_* settings of the caller ignored.
fn client(host: &str, config: &Path) -> Command {
    let mut command = Command::new(DOCKER);
    for var in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
    ] {
        command.env_remove(var);
    }
    command
        .env("DOCKER_CONFIG", config)
        .env("DOCKER_BUILDKIT", "1")
        .env("BUILDKIT_PROGRESS", "plain")
        .args(["-H", host]);
    command
}

/// Runs a harness command that must succeed; its stdout.
fn run(command: &mut Command) -> Vec<u8> {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Drops leading `# syntax=` parser directives, keeping the others (e.g. `# escape=`).
fn strip_syntax_directive(dockerfile: &str) -> String {
    let mut out = String::with_capacity(dockerfile.len());
    let mut in_directives = true;
    for line in dockerfile.split_inclusive('\n') {
        if in_directives {
            match directive_key(line) {
                Some(key) if key.eq_ignore_ascii_case("syntax") => continue,
                Some(_) => {}
                // Directives are only recognised before the first other line.
                None => in_directives = false,
            }
        }
        out.push_str(line);
    }
    out
}

/// The key of a `# key=value` parser directive line.
fn directive_key(line: &str) -> Option<&str> {
    let (key, _) = line.trim().strip_prefix('#')?.split_once('=')?;
    let key = key.trim();
    let valid = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && key.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then_some(key)
}

/// Waits (up to 10 min, a whole other test run) for the lock another test binary may hold.
fn take_lock() -> File {
    use std::os::fd::AsRawFd;
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_PATH)
        .unwrap_or_else(|e| panic!("open {LOCK_PATH}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut warned = false;
    loop {
        // SAFETY: flock on a file descriptor we own; released when the file is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return file;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(
            err.raw_os_error(),
            Some(libc::EWOULDBLOCK),
            "flock {LOCK_PATH}: {err}"
        );
        assert!(
            Instant::now() < deadline,
            "another test binary held {LOCK_PATH} (its dockerd) for 10 minutes"
        );
        if !warned {
            eprintln!("waiting for {LOCK_PATH}: another test binary is using its dockerd");
            warned = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Lazily unmounts what a killed dockerd left mounted under `dir`, so removing `dir`
/// cannot reach into overlay mounts.
fn unmount_under(dir: &str) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    // Deepest first.
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let c_point = std::ffi::CString::new(point).unwrap();
        // SAFETY: a valid NUL-terminated path; failure just leaves the mount.
        unsafe { libc::umount2(c_point.as_ptr(), libc::MNT_DETACH) };
    }
}
