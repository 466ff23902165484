//! The hostile-input corpus, `tests/corpus/<kind>.cases`: blocks headed
//! `=== name | exit code | message fragment`, the input below. Every case must end with its
//! exit code and exactly one `error:` line holding the fragment: never a panic, never a write
//! outside its target. `{{repeat:TEXT:N}}` in an input stands for TEXT N times (huge inputs
//! without huge files). Figures go to the end of scripts/test's output.

use std::path::{Path, PathBuf};

use crate::harness::registry::{Hoist, Run};

#[derive(Debug)]
struct Case {
    name: String,
    code: i32,
    fragment: String,
    input: String,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn expand(input: &str) -> String {
    let mut out = String::new();
    let mut rest = input;
    while let Some(start) = rest.find("{{repeat:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "{{repeat:".len()..];
        let end = after.find("}}").expect("a closed {{repeat:...}}");
        let (text, count) = after[..end].rsplit_once(':').expect("{{repeat:TEXT:N}}");
        let text = text.replace("\\n", "\n");
        out.push_str(&text.repeat(count.parse().expect("a count")));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn cases(kind: &str) -> Vec<Case> {
    let path = corpus_dir().join(format!("{kind}.cases"));
    let bytes = std::fs::read(&path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let mut cases: Vec<Case> = Vec::new();
    for line in text.split_inclusive('\n') {
        if let Some(header) = line.strip_prefix("=== ") {
            let mut parts = header.trim_end().splitn(3, " | ");
            let (name, code, fragment) = (parts.next(), parts.next(), parts.next());
            cases.push(Case {
                name: name.expect("a case name").to_string(),
                code: code.and_then(|c| c.parse().ok()).expect("an exit code"),
                fragment: fragment.unwrap_or_default().to_string(),
                input: String::new(),
            });
        } else if let Some(case) = cases.last_mut() {
            case.input.push_str(line);
        }
    }
    for case in &mut cases {
        case.input = expand(&case.input);
    }
    cases
}

/// What went wrong with a run, if anything.
fn judge(case: &Case, run: &Run) -> Option<String> {
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    let problem = if run.stderr.contains("panicked") {
        "panicked"
    } else if run.code != case.code {
        "wrong exit code"
    } else if case.code != 0 && errors.len() != 1 {
        "not exactly one error line"
    } else if case.code != 0 && !errors[0].contains(&case.fragment) {
        "fragment missing"
    } else if errors.first().is_some_and(|e| e.len() > 2000) {
        "error line longer than 2000 characters"
    } else {
        return None;
    };
    Some(format!(
        "{}: {problem} (want exit {} and `{}`): exit {}: {}",
        case.name,
        case.code,
        case.fragment,
        run.code,
        run.stderr.chars().take(600).collect::<String>()
    ))
}

/// Runs every case of `kind` with `run`, asserts each, reports the count.
fn check(kind: &str, run: impl Fn(&Case, &Path) -> Run) -> usize {
    let cases = cases(kind);
    let mut failures = Vec::new();
    for case in &cases {
        let dir = tempfile::tempdir().unwrap();
        let result = run(case, dir.path());
        failures.extend(judge(case, &result));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    crate::harness::figures(&format!(
        "corpus: {kind}: {} cases, panics 0, escapes 0",
        cases.len()
    ));
    cases.len()
}

/// A small build context: a file, a directory.
fn build_context(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(ctx.join("dir")).unwrap();
    std::fs::write(ctx.join("a.txt"), "a\n").unwrap();
    std::fs::write(ctx.join("dir/b.txt"), "b\n").unwrap();
    ctx
}

fn build(ctx: &Path, dockerfile: &Path, out: &Path) -> Run {
    Hoist::new().run([
        "build".to_string(),
        ctx.display().to_string(),
        "-f".into(),
        dockerfile.display().to_string(),
        "-o".into(),
        format!("oci:{}", out.display()),
    ])
}

#[test]
fn dockerfiles() {
    check("dockerfile", |case, dir| {
        let ctx = build_context(dir);
        let file = dir.join("Dockerfile");
        std::fs::write(&file, &case.input).unwrap();
        build(&ctx, &file, &dir.join("out"))
    });
}

#[test]
fn references() {
    check("reference", |case, _| {
        Hoist::new().run(["inspect", case.input.trim_end_matches('\n')])
    });
}

#[test]
fn dockerignore_files() {
    check("dockerignore", |case, dir| {
        let ctx = build_context(dir);
        std::fs::write(ctx.join(".dockerignore"), &case.input).unwrap();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
        build(&ctx, &ctx.join("Dockerfile"), &dir.join("out"))
    });
}

#[test]
fn mirror_files() {
    check("mirror", |case, dir| {
        let file = dir.join("mirror.yaml");
        std::fs::write(&file, &case.input).unwrap();
        Hoist::new().run(["mirror", "-f", &file.display().to_string(), "--dry-run"])
    });
}

#[test]
fn hoist_toml_files() {
    check("hoist-toml", |case, dir| {
        std::fs::write(dir.join("hoist.toml"), &case.input).unwrap();
        Hoist::new().current_dir(dir).run(["ci", "tags"])
    });
}

/// Where the hostile archives aim their writes (`../…/tmp/hoist-corpus-escape`, absolute
/// symlinks to it): it must never appear.
const ESCAPE: &str = "/tmp/hoist-corpus-escape";

#[test]
fn hostile_archives_added_to_an_image() {
    check("tar", |case, dir| {
        let ctx = build_context(dir);
        let name = case.input.trim();
        std::fs::copy(corpus_dir().join("tar").join(name), ctx.join(name)).unwrap();
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM scratch\nADD {name} /x/\n"),
        )
        .unwrap();
        let run = build(&ctx, &ctx.join("Dockerfile"), &dir.join("out"));
        assert!(
            !Path::new(ESCAPE).exists(),
            "{}: wrote outside its root",
            case.name
        );
        run
    });
}

/// Layouts too big to keep in the repository, made when a case names them (`@name`): a
/// config over 8 MiB and an index over 4 MiB, each otherwise valid.
fn generated_layout(name: &str, dir: &Path) -> PathBuf {
    let root = dir.join("layout");
    let blobs = root.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let hex = crate::harness::registry::sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).unwrap();
        serde_json::json!({"digest": format!("sha256:{hex}"), "size": bytes.len()})
    };
    let pad = "x".repeat(9 << 20);
    let (media_type, top) = match name {
        "@big-config" => {
            let config = serde_json::json!({"architecture": "amd64", "os": "linux",
                "config": {"Labels": {"pad": pad}}, "rootfs": {"type": "layers", "diff_ids": []}});
            let mut config_desc = put(config.to_string().as_bytes());
            config_desc["mediaType"] = "application/vnd.oci.image.config.v1+json".into();
            let manifest = serde_json::json!({"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": []});
            (
                "application/vnd.oci.image.manifest.v1+json",
                manifest.to_string(),
            )
        }
        _ => (
            "application/vnd.oci.image.index.v1+json",
            serde_json::json!({"schemaVersion": 2, "manifests": [],
                "annotations": {"pad": pad}})
            .to_string(),
        ),
    };
    let mut top_desc = put(top.as_bytes());
    top_desc["mediaType"] = media_type.into();
    top_desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    std::fs::write(
        root.join("index.json"),
        serde_json::json!({"schemaVersion": 2, "manifests": [top_desc]}).to_string(),
    )
    .unwrap();
    std::fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    root
}

#[test]
fn broken_oci_layouts() {
    check("layout", |case, dir| {
        let (verb, name) = case.input.trim().split_once(' ').expect("VERB LAYOUT");
        let path = if name.starts_with('@') {
            generated_layout(name, dir)
        } else {
            corpus_dir().join("layout").join(name)
        };
        let layout = format!("oci:{}:latest", path.display());
        match verb {
            "copy" => Hoist::new().run([
                "copy".to_string(),
                layout,
                format!("oci:{}", dir.join("out").display()),
            ]),
            _ => Hoist::new().run(["inspect".to_string(), layout]),
        }
    });
}

/// A registry that answers `/v2/` with 200 and everything else with `response` (the case's
/// status line, headers, a blank line and a body; Content-Length added when missing).
fn raw_registry(response: &str) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let (head, body) = response.split_once("\n\n").unwrap_or((response, ""));
    let mut answer = head.replace('\n', "\r\n");
    if !head.to_ascii_lowercase().contains("content-length") {
        answer.push_str(&format!("\r\nContent-Length: {}", body.len()));
    }
    answer.push_str("\r\nConnection: close\r\n\r\n");
    let mut bytes = answer.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut stream = reader.into_inner();
            let _ = if first.starts_with("GET /v2/ ") || first.starts_with("HEAD /v2/ ") {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            } else {
                stream.write_all(&bytes)
            };
        }
    });
    addr
}

#[test]
fn registry_answers() {
    check("registry", |case, _| {
        let addr = raw_registry(&case.input);
        Hoist::new()
            .env("HOIST_RETRY_ATTEMPTS", "2")
            .run(["inspect", &format!("{addr}/corpus/app:1")])
    });
}
