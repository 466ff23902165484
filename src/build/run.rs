//! The RUN sandbox (isolations `chroot` and `rootless`): as root with mount rights (of the
//! host, or of a user namespace: see `userns`), a child process gets its own mount namespace
//! with an overlay of the image's layers (changes go to an upper directory), /proc, a minimal
//! /dev, the build's /etc/hosts and /etc/resolv.conf, then chroots into it and runs the
//! command. The upper directory becomes the layer (see `snapshot`).

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::userns::{self, Mapping};
use crate::error::{Error, Result};

/// Lines of output kept for the error of a failed command.
pub const TAIL_LINES: usize = 20;

/// The files and directories the sandbox mounts over, made when the image lacks them. The
/// first three stay in the layer, as with BuildKit (runc makes them; MountStubsCleaner only
/// removes the /etc files and `--mount` targets, executor/stubs.go).
pub const MOUNT_STUBS: [&str; 5] = ["proc", "dev", "sys", "etc/hosts", "etc/resolv.conf"];

/// How many of [`MOUNT_STUBS`] are kept.
pub const KEPT_STUBS: usize = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Network {
    /// The host's network (hoist's sandbox has no network namespace of its own by default).
    Host,
    /// A network namespace with nothing in it.
    None,
}

/// What a `RUN --mount` puts at its target.
#[derive(Clone, Debug)]
pub enum MountSource {
    /// A host file or directory (a secret file, a cache directory, the build context).
    Host {
        path: PathBuf,
        readonly: bool,
    },
    /// A stage's file system (its layer directories, top first) at `subpath`; writes go to
    /// a throwaway upper directory.
    Layers {
        lowers: Vec<PathBuf>,
        subpath: String,
        readonly: bool,
    },
    Tmpfs {
        size: Option<u64>,
    },
}

#[derive(Clone, Debug)]
pub struct SandboxMount {
    /// Absolute inside the image, symlinks already resolved within it.
    pub target: String,
    pub source: MountSource,
    /// The target is a file (a secret), else a directory.
    pub file: bool,
}

/// What to run and as whom.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub argv: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// Absolute, inside the image.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub network: Network,
    pub mounts: Vec<SandboxMount>,
    /// [`MOUNT_STUBS`] with symlinks resolved inside the image (a mount must never follow an
    /// image's symlink out of its root).
    pub builtin_targets: Vec<String>,
}

/// How a command ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The last [`TAIL_LINES`] lines of output.
    pub tail: Vec<String>,
    /// Mount points made in the upper directory, for [`remove_stubs`].
    pub stubs: Vec<PathBuf>,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The error of a command that failed: its status and last lines.
    pub fn check(&self, spec: &RunSpec) -> Result<()> {
        if self.success() {
            return Ok(());
        }
        let status = match (self.code, self.signal) {
            (Some(code), _) => format!("exit code: {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => "failed".to_string(),
        };
        let tail = self.tail.join("\n  ");
        Err(Error::Usage(format!(
            "process \"{}\" did not complete successfully: {status}{}",
            spec.argv.join(" "),
            if tail.is_empty() {
                String::new()
            } else {
                format!("\nlast output:\n  {tail}")
            }
        )))
    }
}

/// How RUN steps are kept apart from the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces and an overlay ([`run`]), as root of the host (`chroot`) or of a user
    /// namespace (`rootless`).
    Sandbox,
    /// The job container itself (see `container`).
    Container,
}

/// The directories of one RUN: `upper` (the changes), overlay's `work`, the `merged` mount
/// point and generated `/etc` files.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn create(dir: &Path) -> Result<Sandbox> {
        for sub in ["upper", "work", "merged", "etc"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        Ok(Sandbox {
            dir: dir.to_path_buf(),
        })
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
}

/// Whether `rel` exists in the stack of overlay lower directories (top first): the first
/// directory that has it (or a whiteout for it) decides.
pub fn exists_in_lowers(lowers: &[PathBuf], rel: &str) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for lower in lowers {
        if let Ok(meta) = std::fs::symlink_metadata(lower.join(rel)) {
            let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
            return !whiteout;
        }
    }
    false
}

/// Makes the mount points the image lacks, directly in the upper directory (the merged view
/// shows them). Parent directories made on the way copy the lower directory's mode, owner and
/// mtime, as an overlay copy-up would. Returns what was made, parents first.
fn make_stubs(
    upper: &Path,
    lowers: &[PathBuf],
    targets: &[(String, bool)],
) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut made = Vec::new();
    for (target, file) in targets {
        let stub = target.trim_start_matches('/');
        if exists_in_lowers(lowers, stub) || upper.join(stub).exists() {
            continue;
        }
        let mut rel = PathBuf::new();
        let parts: Vec<_> = Path::new(stub).components().collect();
        for (i, part) in parts.iter().enumerate() {
            rel.push(part);
            let path = upper.join(&rel);
            if std::fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            let last = i == parts.len() - 1;
            if last && *file {
                std::fs::write(&path, "").map_err(|e| Error::io(&path, e))?;
            } else {
                std::fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
                let lower = lowers
                    .iter()
                    .find_map(|l| std::fs::symlink_metadata(l.join(&rel)).ok());
                if let Some(meta) = lower.filter(|m| m.is_dir()) {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(meta.mode()))
                        .map_err(|e| Error::io(&path, e))?;
                    std::os::unix::fs::lchown(&path, Some(meta.uid()), Some(meta.gid()))
                        .map_err(|e| Error::io(&path, e))?;
                    let mtime = std::fs::FileTimes::new().set_modified(
                        std::time::UNIX_EPOCH
                            + std::time::Duration::from_secs(meta.mtime().max(0) as u64),
                    );
                    std::fs::File::open(&path)
                        .and_then(|f| f.set_times(mtime))
                        .map_err(|e| Error::io(&path, e))?;
                }
            }
            made.push(path);
        }
    }
    Ok(made)
}

/// Removes the stubs [`make_stubs`] made once the run is over, deepest first, where they are
/// still empty, like BuildKit's MountStubsCleaner: they never reach a layer.
pub fn remove_stubs(made: &[PathBuf]) -> Result<()> {
    for path in made.iter().rev() {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue;
        };
        let removed = if meta.is_dir() {
            if std::fs::read_dir(path)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
            {
                continue;
            }
            std::fs::remove_dir(path)
        } else if meta.is_file() && meta.len() == 0 {
            std::fs::remove_file(path)
        } else {
            continue;
        };
        removed.map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

fn cstring(s: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(s.as_ref()).map_err(|_| Error::Usage("a RUN argument contains a NUL byte".into()))
}

fn cpath(p: &Path) -> Result<CString> {
    cstring(p.as_os_str().as_bytes())
}

/// One step the child does before exec, prepared (allocated) before the fork.
enum Setup {
    Mount {
        source: CString,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    Mkdir {
        path: CString,
    },
    Chdir {
        path: CString,
    },
    /// The first step, or when it fails the second (an option older kernels lack).
    Either(Box<Setup>, Box<Setup>),
    CreateFile {
        path: CString,
    },
}

fn run_setup(steps: &[Setup]) -> std::io::Result<()> {
    for step in steps {
        match step {
            Setup::Either(first, second) => {
                if run_setup(std::slice::from_ref(first)).is_err() {
                    run_setup(std::slice::from_ref(second))?;
                }
            }
            other => run_step(other)?,
        }
    }
    Ok(())
}

fn run_step(step: &Setup) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    };
    {
        // SAFETY: every pointer is a NUL-terminated string prepared before the fork (no
        // allocation happens here, as required between fork and exec).
        unsafe {
            match step {
                Setup::Either(..) => unreachable!("run_setup unfolds Either"),
                Setup::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    fstype.as_ref().map_or(std::ptr::null(), |f| f.as_ptr()),
                    *flags,
                    data.as_ref()
                        .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
                ))?,
                Setup::Symlink { target, link } => {
                    check(libc::symlink(target.as_ptr(), link.as_ptr()))?
                }
                Setup::Mkdir { path } => check(libc::mkdir(path.as_ptr(), 0o755))?,
                Setup::Chdir { path } => check(libc::chdir(path.as_ptr()))?,
                Setup::CreateFile { path } => {
                    let fd = libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
            }
        }
    }
    Ok(())
}

/// The error when RUN cannot have a sandbox here, saying what each isolation mode needs.
fn no_sandbox(why: &str) -> Error {
    let rootless = match userns::unavailable() {
        Some(reason) => format!("{reason}: "),
        None => String::new(),
    };
    Error::Usage(format!(
        "RUN cannot set up its sandbox ({why}): `rootless` needs user namespaces ({rootless}sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1 where it exists, a seccomp/AppArmor profile that allows unshare); `chroot` needs root with CAP_SYS_ADMIN (a job container with `--cap-add SYS_ADMIN`, or privileged); `container` runs in the job container itself (`--isolation container`)"
    ))
}

/// The name QEMU and binfmt_misc give the machine of `platform` (`qemu-aarch64`), or `None`
/// when this machine runs its programs itself.
fn emulated_machine(platform: &crate::oci::Platform) -> Option<&'static str> {
    let host = crate::oci::Platform::host();
    let native = platform.architecture == host.architecture
        || (host.architecture == "amd64" && platform.architecture == "386")
        || (host.architecture == "arm64" && platform.architecture == "arm");
    if native {
        return None;
    }
    Some(match platform.architecture.as_str() {
        "amd64" => "x86_64",
        "386" => "i386",
        "arm64" => "aarch64",
        "arm" => "arm",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        _ => "unknown",
    })
}

/// Fails when a RUN for `platform` cannot run here: a foreign machine needs an enabled
/// binfmt_misc handler (QEMU user emulation) for it.
pub fn check_emulation(platform: &crate::oci::Platform) -> Result<()> {
    let platform = &platform.clone().normalized();
    let Some(machine) = emulated_machine(platform) else {
        return Ok(());
    };
    let handlers = Path::new("/proc/sys/fs/binfmt_misc");
    let enabled = |name: &str| {
        std::fs::read_to_string(handlers.join(name))
            .is_ok_and(|h| h.lines().next() == Some("enabled"))
    };
    let globally_on =
        std::fs::read_to_string(handlers.join("status")).is_ok_and(|s| s.trim() == "enabled");
    // Debian's qemu-user-static, tonistiigi/binfmt and multiarch/qemu-user-static all name
    // the handler qemu-<machine>.
    if globally_on && enabled(&format!("qemu-{machine}")) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "RUN for {platform} needs to emulate {machine}, and this machine has no binfmt_misc handler for it (qemu-{machine}): install qemu-user-static and binfmt-support on the runner (or run `docker run --privileged --rm tonistiigi/binfmt --install {arch}` once), or build each platform on a native runner and join them with `hoist manifest merge`",
        arch = platform.architecture
    )))
}

/// Fails early, before any layer is unpacked, when RUN cannot work here.
pub fn check_sandbox() -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(no_sandbox(
            "hoist is not root, and not root of a user namespace",
        ));
    }
    Ok(())
}

/// The capabilities a RUN keeps: Docker's and BuildKit's default set (CHOWN, DAC_OVERRIDE,
/// FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT,
/// MKNOD, AUDIT_WRITE, SETFCAP): no CAP_SYS_ADMIN, so no mounts and no way out.
const DEFAULT_CAPABILITIES: u64 = 0xa80425fb;

/// Drops every other capability from the bounding, permitted, effective and inheritable
/// sets. Only system calls: it runs between fork and exec.
unsafe fn limit_capabilities() -> std::io::Result<()> {
    for cap in 0..64 {
        if DEFAULT_CAPABILITIES & (1 << cap) == 0 {
            // SAFETY: prctl with plain integers; EINVAL past the kernel's last capability.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
            if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let low = DEFAULT_CAPABILITIES as u32;
    let high = (DEFAULT_CAPABILITIES >> 32) as u32;
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        Data {
            effective: low,
            permitted: low,
            inheritable: low,
        },
        Data {
            effective: high,
            permitted: high,
            inheritable: high,
        },
    ];
    // SAFETY: capset with a v3 header and two data words, as the kernel expects.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// overlay's `lowerdir=` value for `lowers`, and the directory to mount from. mount(2) takes
/// one page of options: lower directories side by side (the cache's `layers/`) are named
/// relative to their parent, mounted from there, so dozens of layers fit.
fn lowerdir_option(lowers: &[PathBuf]) -> (Option<PathBuf>, String) {
    let shared_parent = lowers
        .first()
        .and_then(|l| l.parent())
        .filter(|p| lowers.iter().all(|l| l.parent() == Some(*p)))
        .map(Path::to_path_buf);
    let lowerdir = lowers
        .iter()
        .map(|l| match &shared_parent {
            Some(_) => l
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            None => l.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(":");
    (shared_parent, lowerdir)
}

/// A new `fstype` (proc, sysfs) mounted at `target`, else the host's bound there.
fn mount_or_bind(fstype: &str, target: &Path, flags: libc::c_ulong) -> Result<Setup> {
    let host = format!("/{}", if fstype == "sysfs" { "sys" } else { fstype });
    Ok(Setup::Either(
        Box::new(Setup::Mount {
            source: cstring(fstype)?,
            target: cpath(target)?,
            fstype: Some(cstring(fstype)?),
            flags,
            data: None,
        }),
        Box::new(Setup::Mount {
            source: cstring(host)?,
            target: cpath(target)?,
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REC,
            data: None,
        }),
    ))
}

/// overlay's mount options; in a user namespace its marks are `user.overlay.*` xattrs.
fn overlay_options(lowerdir: &str, upper: &Path, work: &Path, mapping: Mapping) -> String {
    let mut options = format!(
        "lowerdir={lowerdir},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if mapping != Mapping::Host {
        options.push_str(",userxattr");
    }
    options
}

/// The default `/etc/hosts` of a RUN (BuildKit's, with the host network).
const HOSTS: &str =
    "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// Runs `spec` on top of `lowers` (overlay lower directories, top first) in `sandbox`;
/// output lines go to `output` as they come.
pub fn run(
    lowers: &[PathBuf],
    sandbox: &Sandbox,
    spec: &RunSpec,
    output: &mut dyn FnMut(&str),
) -> Result<Outcome> {
    let merged = sandbox.dir.join("merged");
    let upper = sandbox.upper();
    let inside = |target: &str| merged.join(target.trim_start_matches('/'));
    let builtin = |name: &str| -> String {
        MOUNT_STUBS
            .iter()
            .position(|s| *s == name)
            .and_then(|i| spec.builtin_targets.get(i).cloned())
            .unwrap_or_else(|| format!("/{name}"))
    };
    let mut targets: Vec<(String, bool)> = MOUNT_STUBS
        .iter()
        .map(|s| (builtin(s), s.starts_with("etc/")))
        .collect();
    let kept: Vec<(String, bool)> = targets.drain(..KEPT_STUBS).collect();
    make_stubs(&upper, lowers, &kept)?;
    // Targets under /dev live on the sandbox's own /dev (a tmpfs): made there, not stubbed.
    let dev = format!("{}/", builtin("dev").trim_end_matches('/'));
    targets.extend(
        spec.mounts
            .iter()
            .filter(|m| !m.target.starts_with(&dev))
            .map(|m| (m.target.clone(), m.file)),
    );
    let stubs = make_stubs(&upper, lowers, &targets)?;
    // A missing working directory is made for the user (and kept), as runc does.
    let cwd_rel = spec.cwd.trim_start_matches('/');
    if !cwd_rel.is_empty() && !exists_in_lowers(lowers, cwd_rel) && !upper.join(cwd_rel).exists() {
        for dir in make_stubs(&upper, lowers, &[(spec.cwd.clone(), false)])? {
            std::os::unix::fs::lchown(&dir, Some(spec.uid), Some(spec.gid))
                .map_err(|e| Error::io(&dir, e))?;
        }
    }
    let hosts = sandbox.dir.join("etc/hosts");
    std::fs::write(&hosts, HOSTS).map_err(|e| Error::io(&hosts, e))?;
    let resolv = sandbox.dir.join("etc/resolv.conf");
    let host_resolv = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    std::fs::write(&resolv, host_resolv).map_err(|e| Error::io(&resolv, e))?;

    let mapping = userns::mapping();
    let (shared_parent, lowerdir) = lowerdir_option(lowers);
    let root_overlay = overlay_options(&lowerdir, &upper, &sandbox.dir.join("work"), mapping);
    let none = cstring("none")?;
    let mut steps = vec![
        // Our mounts must not propagate to the host.
        Setup::Mount {
            source: none.clone(),
            target: cstring("/")?,
            fstype: None,
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: None,
        },
        Setup::Chdir {
            path: cpath(shared_parent.as_deref().unwrap_or(Path::new("/")))?,
        },
        // nodev: device nodes in the image (or made by the command) open nothing. volatile
        // (Linux 5.10+): no sync on every copy-up.
        Setup::Either(
            Box::new(Setup::Mount {
                source: cstring("overlay")?,
                target: cpath(&merged)?,
                fstype: Some(cstring("overlay")?),
                flags: libc::MS_NODEV,
                data: Some(cstring(format!("{root_overlay},volatile"))?),
            }),
            Box::new(Setup::Mount {
                source: cstring("overlay")?,
                target: cpath(&merged)?,
                fstype: Some(cstring("overlay")?),
                flags: libc::MS_NODEV,
                data: Some(cstring(&root_overlay)?),
            }),
        ),
        // In a user namespace a new proc needs a fully visible one (a container runtime's
        // masked paths forbid it), and sysfs a network namespace of its own: the host's are
        // bound instead, as rootless podman does.
        mount_or_bind(
            "proc",
            &inside(&builtin("proc")),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        )?,
        // The host's sysfs files belong to its root: read-only for a namespace's root.
        mount_or_bind(
            "sysfs",
            &inside(&builtin("sys")),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY,
        )?,
        Setup::Mount {
            source: cstring("tmpfs")?,
            target: cpath(&inside(&builtin("dev")))?,
            fstype: Some(cstring("tmpfs")?),
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_STRICTATIME,
            data: Some(cstring("mode=755,size=65536k")?),
        },
    ];
    // The host's own nodes, each bound onto a file of the nodev /dev.
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let node = cpath(&inside(&builtin("dev")).join(name))?;
        steps.push(Setup::CreateFile { path: node.clone() });
        steps.push(Setup::Mount {
            source: cpath(&Path::new("/dev").join(name))?,
            target: node,
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        });
    }
    // /dev/shm (POSIX semaphores, multiprocessing) and a private /dev/pts with /dev/ptmx.
    let dev_dir = inside(&builtin("dev"));
    steps.push(Setup::Mkdir {
        path: cpath(&dev_dir.join("shm"))?,
    });
    steps.push(Setup::Mount {
        source: cstring("shm")?,
        target: cpath(&dev_dir.join("shm"))?,
        fstype: Some(cstring("tmpfs")?),
        flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        data: Some(cstring("mode=1777,size=65536k")?),
    });
    steps.push(Setup::Mkdir {
        path: cpath(&dev_dir.join("pts"))?,
    });
    steps.push(Setup::Mount {
        source: cstring("devpts")?,
        target: cpath(&dev_dir.join("pts"))?,
        fstype: Some(cstring("devpts")?),
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: Some(cstring("newinstance,ptmxmode=0666,mode=0620")?),
    });
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        steps.push(Setup::Symlink {
            target: cstring(target)?,
            link: cpath(&inside(&builtin("dev")).join(link))?,
        });
    }
    for (file, target) in [(&hosts, "etc/hosts"), (&resolv, "etc/resolv.conf")] {
        steps.push(Setup::Mount {
            source: cpath(file)?,
            target: cpath(&inside(&builtin(target)))?,
            fstype: None,
            flags: libc::MS_BIND,
            data: None,
        });
    }
    for (n, mount) in spec.mounts.iter().enumerate() {
        let target = cpath(&inside(&mount.target))?;
        if let Some(rel) = mount.target.strip_prefix(&dev) {
            let mut dir = inside(&builtin("dev"));
            let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
            for part in &parts[..parts.len().saturating_sub(1)] {
                dir.push(part);
                steps.push(Setup::Mkdir { path: cpath(&dir)? });
            }
            steps.push(if mount.file {
                Setup::CreateFile {
                    path: target.clone(),
                }
            } else {
                Setup::Mkdir {
                    path: target.clone(),
                }
            });
        }
        let bind = |source: CString, readonly: bool| -> Vec<Setup> {
            let mut steps = vec![Setup::Mount {
                source: source.clone(),
                target: target.clone(),
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
            }];
            if readonly {
                steps.push(Setup::Mount {
                    source,
                    target: target.clone(),
                    fstype: None,
                    flags: libc::MS_BIND
                        | libc::MS_REMOUNT
                        | libc::MS_RDONLY
                        | libc::MS_NOSUID
                        | libc::MS_NODEV
                        | libc::MS_REC,
                    data: None,
                });
            }
            steps
        };
        match &mount.source {
            MountSource::Host { path, readonly } => steps.extend(bind(cpath(path)?, *readonly)),
            MountSource::Tmpfs { size } => steps.push(Setup::Mount {
                source: cstring("tmpfs")?,
                target: target.clone(),
                fstype: Some(cstring("tmpfs")?),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: size.map(|s| cstring(format!("size={s}"))).transpose()?,
            }),
            MountSource::Layers {
                lowers: stage,
                subpath,
                readonly,
            } => {
                let dir = sandbox.dir.join("mounts").join(n.to_string());
                for sub in ["upper", "work", "merged"] {
                    let path = dir.join(sub);
                    std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                }
                let (parent, lowerdir) = if stage.is_empty() {
                    let empty = dir.join("empty");
                    std::fs::create_dir_all(&empty).map_err(|e| Error::io(&empty, e))?;
                    (None, empty.display().to_string())
                } else {
                    lowerdir_option(stage)
                };
                steps.push(Setup::Chdir {
                    path: cpath(parent.as_deref().unwrap_or(Path::new("/")))?,
                });
                steps.push(Setup::Mount {
                    source: cstring("overlay")?,
                    target: cpath(&dir.join("merged"))?,
                    fstype: Some(cstring("overlay")?),
                    flags: 0,
                    data: Some(cstring(overlay_options(
                        &lowerdir,
                        &dir.join("upper"),
                        &dir.join("work"),
                        mapping,
                    ))?),
                });
                let source = dir.join("merged").join(subpath.trim_start_matches('/'));
                steps.extend(bind(cpath(&source)?, *readonly));
            }
        }
    }
    let root = cpath(&merged)?;
    let cwd = cstring(&spec.cwd)?;
    let (uid, gid) = (spec.uid, spec.gid);
    let groups: Vec<libc::gid_t> = spec.groups.clone();
    let new_net = spec.network == Network::None;
    let single_id = mapping == Mapping::Single;

    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| Error::Usage("RUN has an empty command".into()))?;
    let mut command = command_of(program, args, &spec.env);
    // SAFETY: the closure only makes system calls on data prepared above (no allocation).
    unsafe {
        command.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            let mut flags =
                libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC;
            if new_net {
                flags |= libc::CLONE_NEWNET;
            }
            if libc::unshare(flags) != 0 {
                return fail();
            }
            // The command must be pid 1 of the new PID namespace (its own /proc, and every
            // process it leaves behind dies with it): this process waits for it and exits
            // with its status.
            match libc::fork() {
                -1 => return fail(),
                0 => {}
                pid => {
                    let mut status = 0;
                    while libc::waitpid(pid, &mut status, 0) == -1 {}
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    };
                    libc::_exit(code);
                }
            }
            let hostname = b"buildkitsandbox";
            if libc::sethostname(hostname.as_ptr().cast(), hostname.len()) != 0 {
                return fail();
            }
            run_setup(&steps)?;
            // pivot_root, not chroot: the host's root is gone from this mount namespace.
            if libc::chdir(root.as_ptr()) != 0
                || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
                || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
                || libc::chdir(c"/".as_ptr()) != 0
                || libc::chdir(cwd.as_ptr()) != 0
            {
                return fail();
            }
            limit_capabilities()?;
            // A single-id namespace denies setgroups (the only group is already root).
            if (!single_id && libc::setgroups(groups.len(), groups.as_ptr()) != 0)
                || libc::setgid(gid) != 0
                || libc::setuid(uid) != 0
            {
                return fail();
            }
            Ok(())
        });
    }
    let (spawned, tail) = stream_output(command, output)?;
    let mut child = spawned.map_err(|e| {
        // EPERM comes from setting up namespaces and mounts; EACCES from exec (a file that
        // is not executable), which the message below covers.
        if e.raw_os_error() == Some(libc::EPERM) {
            return no_sandbox(&e.to_string());
        }
        cannot_start(spec, e)
    })?;
    // No sync of the upper directory: syncfs(2) would wait for every dirty page of the file
    // system (other builds' and jobs' too). Killing hoist loses nothing; a machine crash may
    // leave a layer directory incomplete, as any unsynced write.
    let status = child.wait().map_err(|e| Error::io("<RUN>", e))?;
    use std::os::unix::process::ExitStatusExt;
    // The waiting process reports a signal as 128 + its number.
    let (code, signal) = match status.code() {
        Some(code) if code > 128 && code < 128 + 65 => (None, Some(code - 128)),
        code => (code, status.signal()),
    };
    Ok(Outcome {
        code,
        signal,
        tail,
        stubs,
    })
}

/// The error for a command that did not start.
pub(super) fn cannot_start(spec: &RunSpec, e: std::io::Error) -> Error {
    let why = if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "{}: no such file or directory in the image",
            spec.argv.first().map_or("", String::as_str)
        )
    } else {
        e.to_string()
    };
    Error::Usage(format!(
        "process \"{}\" cannot start: {why}",
        spec.argv.join(" ")
    ))
}

/// The command of a RUN with exactly `env` and no input.
pub(super) fn command_of(program: &str, args: &[String], env: &[String]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|kv| kv.split_once('=').unwrap_or((kv, ""))))
        .stdin(Stdio::null());
    command
}

/// Spawns `command` with its stdout and stderr on pipes of ours, passing each line to
/// `output` until every writer is closed. Returns the spawn result and the last
/// [`TAIL_LINES`] lines. The sandbox's spawn() returns only once the command ended (its
/// waiting process never execs), so the lines are read by threads started before it.
pub(super) fn stream_output(
    mut command: Command,
    output: &mut dyn FnMut(&str),
) -> Result<(std::io::Result<std::process::Child>, Vec<String>)> {
    let (out_reader, out_writer) = std::io::pipe().map_err(|e| Error::io("<pipe>", e))?;
    let (err_reader, err_writer) = std::io::pipe().map_err(|e| Error::io("<pipe>", e))?;
    command.stdout(out_writer).stderr(err_writer);
    let (sender, lines) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(out_reader) as Box<dyn std::io::Read + Send>,
        Box::new(err_reader),
    ]
    .into_iter()
    .map(|stream| {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).split(b'\n').map_while(|l| l.ok()) {
                let _ = sender.send(String::from_utf8_lossy(&line).into_owned());
            }
        })
    })
    .collect();
    drop(sender);
    let mut tail = std::collections::VecDeque::new();
    let spawned = std::thread::scope(|scope| {
        let spawning = scope.spawn(|| {
            let spawned = command.spawn();
            // Our copies of the pipe ends: the readers see EOF once the command is gone.
            drop(command);
            spawned
        });
        for line in lines {
            output(&line);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        spawning.join().expect("the spawning thread does not panic")
    });
    for reader in readers {
        let _ = reader.join();
    }
    Ok((spawned, tail.into_iter().collect()))
}
