//! The test harness: real servers started by the tests themselves on free loopback ports,
//! shared by all tests of this binary, killed when the binary exits.

pub mod aws;
pub mod ecs_script;
pub mod http;
pub mod proxy;
pub mod reference;
pub mod registry;
pub mod tls;
pub mod token;
pub mod tree;

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;

/// A runtime that lives as long as the test binary, for in-process servers (token server,
/// fault proxy). Tests have their own runtimes that end with each test.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("harness")
            .build()
            .expect("harness runtime")
    })
}

/// A free loopback port (bound then released; the tiny race is acceptable in tests).
/// Figures a test reports (faults injected, cases run, ...): appended to
/// `target/tmp/figures.txt`, which scripts/test prints after the run.
pub fn figures(line: &str) {
    use std::io::Write;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("figures.txt");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(file, "{line}");
    }
    println!("{line}");
}

/// Files under `dir` holding `needle`, gzip files searched unpacked as well.
pub fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    use std::io::Read;
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    let holds = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if meta.is_file()
            && let Ok(bytes) = std::fs::read(&path)
        {
            let mut plain = Vec::new();
            let unpacked = bytes.starts_with(&[0x1f, 0x8b])
                && flate2::read::MultiGzDecoder::new(&bytes[..])
                    .read_to_end(&mut plain)
                    .is_ok();
            if holds(&bytes) || (unpacked && holds(&plain)) {
                found.push(path);
            }
        }
    }
    found
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

type SpawnJob = Box<dyn FnOnce() -> std::io::Result<Child> + Send>;

/// Spawns a server process from one thread that lives as long as the binary, with
/// PR_SET_PDEATHSIG so the kernel kills the server when the test binary exits (the signal
/// follows the spawning *thread*, hence the dedicated thread).
pub fn spawn_server(mut command: Command) -> Child {
    static SPAWNER: OnceLock<mpsc::Sender<(SpawnJob, mpsc::Sender<std::io::Result<Child>>)>> =
        OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(SpawnJob, mpsc::Sender<std::io::Result<Child>>)>();
        std::thread::Builder::new()
            .name("server-spawner".into())
            .spawn(move || {
                for (job, reply) in rx {
                    let _ = reply.send(job());
                }
                // Keep this thread alive even if the channel closes: its children die with it.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawner thread");
        tx
    });
    let program = format!("{:?}", command.get_program());
    let job: SpawnJob = Box::new(move || {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command.spawn()
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .send((job, reply_tx))
        .expect("spawner thread is alive");
    reply_rx
        .recv()
        .expect("spawner replies")
        .unwrap_or_else(|e| {
            panic!("cannot start {program}: {e} (did scripts/test install the test stack?)")
        })
}

/// A temporary build context holding `files` (path, content).
pub fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    dir
}
