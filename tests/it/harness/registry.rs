//! CNCF distribution (`docker-registry serve`) on a free loopback port, plain or with
//! htpasswd or token auth; the example image; running hoist and skopeo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::tls::TestCa;
use super::token::TokenServer;
use super::{free_port, loopback, spawn_server};

pub enum Auth<'a> {
    None,
    Htpasswd { user: &'a str, password: &'a str },
    Token(&'a TokenServer),
}

pub struct Registry {
    pub addr: SocketAddr,
    /// `127.0.0.1:PORT`, the registry part of references.
    pub host: String,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Registry {
    pub fn start(auth: Auth) -> Registry {
        Registry::serve(auth, None)
    }

    /// A registry serving HTTPS with the test CA's certificate for 127.0.0.1.
    pub fn start_tls(ca: &TestCa) -> Registry {
        Registry::serve(Auth::None, Some(ca))
    }

    fn serve(auth: Auth, tls: Option<&TestCa>) -> Registry {
        let dir = tempfile::tempdir().expect("registry dir");
        let port = free_port();
        let auth_yaml = match auth {
            Auth::None => String::new(),
            Auth::Htpasswd { user, password } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd (apache2-utils) is installed by scripts/test");
                assert!(out.status.success(), "htpasswd failed");
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, out.stdout).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: hoist-test\n    path: {}\n",
                    path.display()
                )
            }
            Auth::Token(token) => format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                token.realm,
                token.service,
                token.issuer,
                token.cert_path.display()
            ),
        };
        let tls_yaml = tls.map_or_else(String::new, |ca| {
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                ca.cert.display(),
                ca.key.display()
            )
        });
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: hoist-test-secret\n{tls_yaml}{auth_yaml}",
            root = dir.path().join("data").display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.path().join("registry.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut command = Command::new("docker-registry");
        command
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = spawn_server(command);
        let addr = loopback(port);
        wait_for_port(addr, &log_path);
        Registry {
            addr,
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
            _child: child,
        }
    }
}

fn wait_for_port(addr: SocketAddr, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "docker-registry did not listen on {addr}; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// The plain registry most tests share.
pub fn shared() -> &'static Registry {
    static SHARED: OnceLock<Registry> = OnceLock::new();
    SHARED.get_or_init(|| Registry::start(Auth::None))
}

/// A second plain registry, for copies between registries (no mounts possible).
pub fn other() -> &'static Registry {
    static OTHER: OnceLock<Registry> = OnceLock::new();
    OTHER.get_or_init(|| Registry::start(Auth::None))
}

/// The example multi-arch image (examples/make-example-image) as an OCI layout, built once.
pub fn example_layout() -> &'static Path {
    static LAYOUT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &LAYOUT
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let layout = dir.path().join("example");
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/make-example-image");
            let out = Command::new(&script)
                .arg(&layout)
                .arg("latest")
                .output()
                .expect("run examples/make-example-image");
            assert!(
                out.status.success(),
                "make-example-image failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (dir, layout)
        })
        .1
}

/// Pushes the example image to `registry/repo:latest` with skopeo (an independent tool).
pub fn seed_example(registry: &Registry, repo: &str, creds: Option<&str>) -> String {
    let reference = format!("{}/{repo}:latest", registry.host);
    let mut args = vec![
        "copy".to_string(),
        "--all".into(),
        "--dest-tls-verify=false".into(),
    ];
    if let Some(creds) = creds {
        args.push(format!("--dest-creds={creds}"));
    }
    args.push(format!("oci:{}:latest", example_layout().display()));
    args.push(format!("docker://{reference}"));
    let out = Command::new("skopeo").args(&args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo seed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    reference
}

/// `skopeo inspect --raw` of a reference (`docker://` added for registry refs); None if absent.
pub fn skopeo_raw(reference: &str, creds: Option<&str>) -> Option<Vec<u8>> {
    skopeo_inspect(reference, creds, &["--raw"])
}

/// The digest of the manifest at `reference` (its bytes as skopeo reads them), if it exists.
pub fn manifest_digest(reference: &str, creds: Option<&str>) -> Option<String> {
    skopeo_inspect(reference, creds, &["--raw"]).map(|raw| format!("sha256:{}", sha256_hex(&raw)))
}

/// Whether every blob the image (or index) at `reference` names can be fetched: skopeo
/// copies it whole.
pub fn complete(reference: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    Command::new("skopeo")
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:x", dir.path().display()))
        .output()
        .unwrap()
        .status
        .success()
}

pub fn skopeo_inspect(reference: &str, creds: Option<&str>, flags: &[&str]) -> Option<Vec<u8>> {
    let transport_ref = if reference.starts_with("oci:") || reference.starts_with("docker-archive:")
    {
        reference.to_string()
    } else {
        format!("docker://{reference}")
    };
    let mut cmd = Command::new("skopeo");
    cmd.arg("inspect").args(flags);
    if !reference.starts_with("oci:") && !reference.starts_with("docker-archive:") {
        cmd.arg("--tls-verify=false");
        if let Some(creds) = creds {
            cmd.arg(format!("--creds={creds}"));
        }
    }
    let out = cmd.arg(transport_ref).output().expect("skopeo");
    out.status.success().then_some(out.stdout)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The result of one hoist run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "hoist failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn fails_with(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    /// The `--json` result object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// hoist with a clean, loopback-only environment and its own empty docker config dir.
pub struct Hoist {
    command: Command,
    stdin: Option<Vec<u8>>,
    _config: tempfile::TempDir,
    pub config_dir: PathBuf,
}

impl Hoist {
    pub fn new() -> Hoist {
        let config = tempfile::tempdir().unwrap();
        // Empty AWS files: the machine user's are never read, and the SDK has nothing to warn.
        std::fs::write(config.path().join("aws-config"), "").unwrap();
        std::fs::write(config.path().join("aws-credentials"), "").unwrap();
        // Each run gets its own build cache unless a test shares one on purpose.
        let cache = config.path().join("cache");
        let mut command = Command::new(env!("CARGO_BIN_EXE_hoist"));
        for var in [
            "DOCKER_AUTH_CONFIG",
            "REGISTRY_AUTH_FILE",
            "CI_REGISTRY",
            "CI_REGISTRY_USER",
            "CI_REGISTRY_PASSWORD",
            "HOIST_REGISTRY_ENDPOINTS",
            "HOIST_INSECURE_REGISTRIES",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_REGION",
            "AWS_ROLE_ARN",
            "AWS_ROLE_SESSION_NAME",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_WEB_IDENTITY_TOKEN_ENV",
            "AWS_ID_TOKEN",
            "GITLAB_OIDC_TOKEN",
            "CI_JOB_JWT_V2",
            "AWS_ENDPOINT_URL",
            "HOIST_LOG",
            "SOURCE_DATE_EPOCH",
            "HOIST_DEFAULT_BRANCH",
            "HOIST_ENVIRONMENT",
        ] {
            command.env_remove(var);
        }
        // The CI running these tests must not look like the CI hoist is asked about.
        for (var, _) in std::env::vars_os() {
            let name = var.to_string_lossy();
            if name == "CI"
                || ["CI_", "GITLAB_", "GITHUB_", "CODEBUILD_"]
                    .iter()
                    .any(|p| name.starts_with(p))
            {
                command.env_remove(&var);
            }
        }
        command
            .env("DOCKER_CONFIG", config.path())
            // No AWS files of the machine's user, and tokens kept in this run's own state dir.
            .env("AWS_CONFIG_FILE", config.path().join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                config.path().join("aws-credentials"),
            )
            .env("XDG_STATE_HOME", config.path().join("state"))
            .env("HOIST_CACHE_DIR", cache)
            .env("HOIST_TEST_LOOPBACK_ONLY", "1")
            .env("HOIST_RETRY_BASE_MS", "5")
            .env("HOIST_RETRY_MAX_ELAPSED_MS", "10000")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_REGION", "us-east-1")
            .arg("--progress=plain");
        Hoist {
            config_dir: config.path().to_path_buf(),
            command,
            stdin: None,
            _config: config,
        }
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn stdin(mut self, input: &str) -> Self {
        self.stdin = Some(input.as_bytes().to_vec());
        self
    }

    /// Writes docker's config.json in this run's config dir.
    pub fn docker_config(self, json: &serde_json::Value) -> Self {
        std::fs::write(self.config_dir.join("config.json"), json.to_string()).unwrap();
        self
    }

    pub fn run<I, S>(mut self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        use std::io::Write;
        self.command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("run hoist");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = &self.stdin {
            stdin.write_all(input).unwrap();
        }
        drop(stdin);
        // A hang fails the test instead of hanging the suite (HOIST_TEST_RUN_TIMEOUT_S).
        let limit = std::time::Duration::from_secs(
            std::env::var("HOIST_TEST_RUN_TIMEOUT_S")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(300),
        );
        let pid = child.id() as i32;
        let (finished, wait) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            let hung = wait.recv_timeout(limit).is_err();
            if hung {
                // SAFETY: kill(2) on our child, which has not been reaped (wait is pending).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            hung
        });
        let output = child.wait_with_output().unwrap();
        let _ = finished.send(());
        assert!(
            !watchdog.join().unwrap(),
            "hoist ran longer than {limit:?} and was killed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Run::from(output)
    }
}

/// A hoist started without waiting; its config directory lives as long as this does.
pub struct Running {
    pub child: std::process::Child,
    _config: tempfile::TempDir,
}

impl Running {
    pub fn wait(self) -> Run {
        Run::from(self.child.wait_with_output().unwrap())
    }
}

impl Hoist {
    /// Starts hoist without waiting: output captured for [`Running::wait`], or discarded
    /// (`capture` false) for tests that kill it.
    pub fn start<I, S>(mut self, args: I, capture: bool) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let output = || {
            if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        let child = self
            .command
            .args(args)
            .stdin(Stdio::null())
            .stdout(output())
            .stderr(output())
            .spawn()
            .expect("start hoist");
        Running {
            child,
            _config: self._config,
        }
    }
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs hoist with default settings.
pub fn hoist<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Hoist::new().run(args)
}
