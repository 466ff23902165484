//! A test certificate authority and a certificate for 127.0.0.1 it signed (made with openssl),
//! for TLS servers that a client trusts only through a CA bundle holding that CA.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub struct TestCa {
    /// The CA's certificate (PEM): what a CA bundle must hold to trust the servers.
    pub ca: PathBuf,
    /// The server certificate (IP SAN 127.0.0.1) and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

/// The CA shared by this test binary's TLS servers.
pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl (installed by scripts/test)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let p256 = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509", "-days", "2", "-subj", "/CN=hoist-test-ca"][..],
                &p256,
                &["-keyout", "ca.key", "-out", "ca.pem"],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req", "-new", "-subj", "/CN=127.0.0.1"][..],
                &p256,
                &["-keyout", "server.key", "-out", "server.csr"],
            ]
            .concat(),
        );
        std::fs::write(
            path("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        TestCa {
            ca: path("ca.pem"),
            cert: path("server.pem"),
            key: path("server.key"),
            _dir: dir,
        }
    })
}
