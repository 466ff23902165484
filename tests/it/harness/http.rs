//! A static HTTP file server (Python's http.server) on a free loopback port, for ADD of URLs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{free_port, spawn_server};

pub struct FileServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub root: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl FileServer {
    /// Serves a fresh directory; put files in `root`.
    pub fn start() -> FileServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        std::fs::create_dir_all(&root).unwrap();
        let port = free_port();
        let log = dir.path().join("access.log");
        let mut command = Command::new("python3");
        command
            .args([
                "-u",
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = spawn_server(command);
        let addr = super::loopback(port);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "python3 http.server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        FileServer {
            url: format!("http://127.0.0.1:{port}"),
            root,
            log,
            _dir: dir,
            _child: child,
        }
    }

    /// How many GET requests for `path` were served.
    pub fn gets(&self, path: &str) -> usize {
        let needle = format!("\"GET {path} ");
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&needle))
            .count()
    }

    pub fn put(&self, name: &str, content: &[u8]) -> &Path {
        std::fs::write(self.root.join(name), content).unwrap();
        &self.root
    }
}

/// A URL on loopback whose every request is answered with `status` (a health endpoint).
pub fn serve_status(status: u16) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind status server");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            );
        }
    });
    format!("http://{addr}/health")
}
