//! hoist's own images (release/Dockerfile, as scripts/release builds them), made by the hoist
//! under test. scripts/test builds this suite for x86_64-unknown-linux-musl, so that hoist is
//! the static binary the release ships. The images are unpacked with umoci and hoist is run
//! from their rootfs with chroot (root only, like the RUN tests), with the image's Env.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::aws::{ECR_HOST, Moto};
use crate::harness::registry::{Hoist, Registry, Run};
use crate::harness::tls::test_ca;
use crate::harness::tree::{Kind, Tree};

struct ReleaseImage {
    rootfs: PathBuf,
    tree: Tree,
    config: serde_json::Value,
}

struct ReleaseImages {
    release: ReleaseImage,
    debug: ReleaseImage,
    _dir: tempfile::TempDir,
}

/// The context release/Dockerfile expects for amd64, as scripts/release makes it: rootfs-amd64/
/// (hoist, the CA roots, /tmp) and debug-amd64/ (busybox and its applet links). The CA roots
/// are the machine's bundle (when it has one) plus the test CA, as a company's bundle would be.
fn release_context(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let context = dir.join("context");
    let rootfs = context.join("rootfs-amd64");
    for sub in ["usr/local/bin", "etc/ssl/certs", "tmp"] {
        std::fs::create_dir_all(rootfs.join(sub)).unwrap();
    }
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_hoist"),
        rootfs.join("usr/local/bin/hoist"),
    )
    .unwrap();
    let mut bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
    bundle.extend(std::fs::read(&test_ca().ca).unwrap());
    std::fs::write(rootfs.join("etc/ssl/certs/ca-certificates.crt"), bundle).unwrap();
    let bin = context.join("debug-amd64/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("/bin/busybox (busybox-static, installed by scripts/test)");
    let applets = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8(applets.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    context
}

fn release_images() -> &'static ReleaseImages {
    static IMAGES: OnceLock<ReleaseImages> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let context = release_context(dir.path());
        let dockerfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("release/Dockerfile");
        let layout = dir.path().join("layout");
        let image = |target: &str| {
            Hoist::new()
                .env("SOURCE_DATE_EPOCH", "0")
                .run([
                    "build".as_ref(),
                    context.as_os_str(),
                    "-f".as_ref(),
                    dockerfile.as_os_str(),
                    "--target".as_ref(),
                    target.as_ref(),
                    "-o".as_ref(),
                    format!("oci:{}:{target}", layout.display()).as_ref(),
                ])
                .ok();
            let unpacked = dir.path().join(target);
            let tree = crate::harness::tree::unpack_layout(&layout, target, &unpacked);
            let config = crate::harness::registry::hoist([
                "inspect",
                "--config",
                &format!("oci:{}:{target}", layout.display()),
            ]);
            config.ok();
            ReleaseImage {
                rootfs: unpacked.join("bundle/rootfs"),
                tree,
                config: serde_json::from_str(&config.stdout).unwrap(),
            }
        };
        ReleaseImages {
            release: image("release"),
            debug: image("debug"),
            _dir: dir,
        }
    })
}

/// `chroot ROOTFS ARGS...` with only the image's Env (and HOME, loopback only).
fn in_rootfs(image: &ReleaseImage, rootfs: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("/usr/sbin/chroot");
    command.arg(rootfs).args(args).env_clear();
    for pair in image.config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let (key, value) = pair.as_str().unwrap().split_once('=').unwrap();
        command.env(key, value);
    }
    command
        .env("HOME", "/tmp")
        .env("HOIST_TEST_LOOPBACK_ONLY", "1");
    command
}

fn run(mut command: Command) -> Run {
    Run::from(command.output().expect("chroot"))
}

/// Whether an ELF executable needs no loader and no shared library: no PT_INTERP program
/// header and no DT_NEEDED entry (a static-pie still has a PT_DYNAMIC for its relocations).
fn statically_linked(elf: &[u8]) -> Result<(), String> {
    let u16_at = |at: usize| u16::from_le_bytes(elf[at..at + 2].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return Err("not a little-endian 64-bit ELF file".into());
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    for header in (0..phnum).map(|i| phoff + i * phentsize) {
        let kind = u32::from_le_bytes(elf[header..header + 4].try_into().unwrap());
        const PT_DYNAMIC: u32 = 2;
        const PT_INTERP: u32 = 3;
        if kind == PT_INTERP {
            return Err("it names a program interpreter (dynamic loader)".into());
        }
        if kind == PT_DYNAMIC {
            let (offset, size) = (u64_at(header + 8), u64_at(header + 32));
            const DT_NEEDED: u64 = 1;
            let needs = (offset..offset + size)
                .step_by(16)
                .any(|entry| u64_at(entry) as u64 == DT_NEEDED);
            if needs {
                return Err("it needs shared libraries (DT_NEEDED)".into());
            }
        }
    }
    Ok(())
}

#[test]
fn release_images_run_the_static_hoist_from_their_unpacked_rootfs() {
    let images = release_images();
    let hoist = std::fs::read(env!("CARGO_BIN_EXE_hoist")).unwrap();
    statically_linked(&hoist).unwrap_or_else(|why| {
        panic!("hoist is not statically linked ({why}): scripts/test builds the suite for x86_64-unknown-linux-musl")
    });
    // The checker itself tells a dynamic executable apart.
    assert!(statically_linked(&std::fs::read("/usr/bin/openssl").unwrap()).is_err());

    // The release image: hoist, the CA roots and /tmp, nothing else.
    let release = &images.release;
    let paths: Vec<(&str, Kind, u32)> = release
        .tree
        .values()
        .map(|e| (e.path.as_str(), e.kind, e.mode))
        .collect();
    assert_eq!(
        paths,
        [
            ("/etc", Kind::Dir, 0o755),
            ("/etc/ssl", Kind::Dir, 0o755),
            ("/etc/ssl/certs", Kind::Dir, 0o755),
            ("/etc/ssl/certs/ca-certificates.crt", Kind::File, 0o644),
            ("/tmp", Kind::Dir, 0o1777),
            ("/usr", Kind::Dir, 0o755),
            ("/usr/local", Kind::Dir, 0o755),
            ("/usr/local/bin", Kind::Dir, 0o755),
            ("/usr/local/bin/hoist", Kind::File, 0o755),
        ]
    );
    assert_eq!(
        release.tree["/usr/local/bin/hoist"].sha256.as_deref(),
        Some(crate::harness::registry::sha256_hex(&hoist).as_str())
    );
    let config = &release.config["config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/hoist"])
    );
    assert!(
        config["Env"]
            .as_array()
            .unwrap()
            .contains(&"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".into()),
        "{config}"
    );

    // hoist runs from the rootfs: --version names the same build, completions and the man
    // page come out of it.
    let version = crate::harness::registry::hoist(["--version"]);
    let from_rootfs = |args: &[&str]| {
        let run = run(in_rootfs(release, &release.rootfs, args));
        run.ok();
        run.stdout
    };
    assert_eq!(
        from_rootfs(&["/usr/local/bin/hoist", "--version"]),
        version.ok().stdout
    );
    let bash = from_rootfs(&["/usr/local/bin/hoist", "completions", "bash"]);
    let man = from_rootfs(&["/usr/local/bin/hoist", "completions", "man"]);
    assert!(
        man.contains(".TH hoist 1") && man.contains(".SH SUBCOMMANDS"),
        "{man}"
    );
    // The bash completion is a script bash accepts and that completes hoist's commands.
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), &bash).unwrap();
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(hoist de); COMP_CWORD=1; _hoist hoist de hoist; echo \"${{COMPREPLY[@]}}\"",
            script.path().display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&completed.stdout).trim(), "deploy");

    // The debug image: the same hoist with a shell on PATH, as GitLab's Docker executor runs
    // a job's script.
    let debug = &images.debug;
    assert_eq!(
        debug.config["config"]["Cmd"],
        serde_json::json!(["/bin/sh"])
    );
    assert!(debug.config["config"]["Entrypoint"].is_null());
    let script = run(in_rootfs(
        debug,
        &debug.rootfs,
        &[
            "/bin/sh",
            "-c",
            "cd /tmp && hoist --version && ls /bin/sh && test -w /tmp",
        ],
    ));
    script.ok();
    assert!(
        script.stdout.starts_with(&version.stdout),
        "{}",
        script.stdout
    );
    assert_eq!(
        debug.tree["/usr/local/bin/hoist"].sha256,
        release.tree["/usr/local/bin/hoist"].sha256
    );
}

#[test]
fn the_image_ca_bundle_is_what_hoist_trusts_for_registries_and_the_aws_api() {
    let images = release_images();
    let release = &images.release;
    let ca = test_ca();
    let registry = Registry::start_tls(ca);
    let moto = Moto::start_tls(ca);
    // A registry name that is not loopback (loopback registries are trusted without
    // verification), served by the TLS registry.
    let endpoints = format!("registry.test=https://{}", registry.host);
    // The host's hoist trusts the test CA through SSL_CERT_FILE.
    let example = crate::harness::registry::example_layout();
    Hoist::new()
        .env("SSL_CERT_FILE", &ca.ca)
        .env("HOIST_REGISTRY_ENDPOINTS", &endpoints)
        .run([
            "copy".to_string(),
            format!("oci:{}:latest", example.display()),
            "registry.test/example:1".into(),
        ])
        .ok();

    // A rootfs like the release image's but without the CA bundle.
    let bare = release.rootfs.parent().unwrap().join("rootfs-without-ca");
    std::fs::create_dir_all(bare.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(bare.join("tmp")).unwrap();
    std::fs::copy(
        release.rootfs.join("usr/local/bin/hoist"),
        bare.join("usr/local/bin/hoist"),
    )
    .unwrap();

    let aws: &[(&str, &str)] = &[
        ("AWS_ENDPOINT_URL", &moto.url),
        ("AWS_ACCESS_KEY_ID", "AKIDRELEASETEST"),
        ("AWS_SECRET_ACCESS_KEY", "release-test-secret"),
        ("AWS_REGION", crate::harness::aws::REGION),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("HOIST_REGISTRY_ENDPOINTS", &endpoints),
    ];
    let hoist = |rootfs: &Path, unset: &[&str], args: &[&str]| {
        let args = [&["/usr/local/bin/hoist"][..], args].concat();
        let mut command = in_rootfs(release, rootfs, &args);
        command.envs(aws.iter().copied());
        for var in unset {
            command.env_remove(var);
        }
        run(command)
    };
    let inspect = ["inspect", "registry.test/example:1"];
    let ensure = |name: &str| format!("{ECR_HOST}/release/{name}");
    // With the image's bundle: through SSL_CERT_FILE (the image's Env), and found at its usual
    // path when SSL_CERT_FILE is not set (a job that overrides the environment).
    for (how, unset) in [
        ("SSL_CERT_FILE", &[][..]),
        ("usual path", &["SSL_CERT_FILE"][..]),
    ] {
        let run = hoist(&release.rootfs, unset, &inspect);
        assert_eq!(run.code, 0, "registry, {how}: {}", run.stderr);
        assert!(run.stdout.contains("sha256:"), "{}", run.stdout);
        let name = ensure(&how.replace(' ', "-").to_lowercase());
        let run = hoist(&release.rootfs, unset, &["ecr", "ensure", &name, "--json"]);
        assert_eq!(run.code, 0, "AWS API, {how}: {}", run.stderr);
        assert_eq!(run.json()["created"], true);
    }
    // Without it, both refuse the unknown issuer at once (no retries), in one line that says
    // where hoist looks for CA roots.
    for args in [&inspect[..], &["ecr", "ensure", &ensure("bare")]] {
        let run = hoist(&bare, &[], args);
        run.fails_with(
            1,
            "TLS certificate is not trusted (invalid peer certificate: UnknownIssuer)",
        );
        assert!(
            run.stderr
                .contains("hint: hoist trusts the CA roots in SSL_CERT_FILE"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    }
}
