//! The fault soak: copy, build --push and mirror run again and again through chaos proxies
//! (429 with and without Retry-After, 500/502/503, resets, requests cut at a random byte,
//! truncated and slow answers, wrong digests) until HOIST_TEST_SOAK_FAULTS (1000) faults were
//! injected. Each run either gives the fault-free digest or fails cleanly (exit 1, an
//! `error:` line, no panic); afterwards no tag names a missing blob, the build cache has no
//! corrupt entry, and every operation works again without faults.

use std::path::Path;

use serde_json::Value;

use crate::harness::proxy::FaultProxy;
use crate::harness::registry::{
    Hoist, Run, complete, example_layout, manifest_digest, other, seed_example, shared,
};

#[derive(Clone, Copy, Debug)]
enum Operation {
    Copy,
    Build,
    Mirror,
}

struct Soak {
    /// In front of the registry everything is written to.
    target: FaultProxy,
    /// In front of the registry bases and mirror sources are read from.
    source: FaultProxy,
    dir: tempfile::TempDir,
}

impl Soak {
    fn run(&self, operation: Operation, n: usize) -> Run {
        let target = self.target.addr;
        let cache = self.dir.path().join("cache");
        match operation {
            Operation::Copy => Hoist::new().run([
                "--json".to_string(),
                "copy".into(),
                format!("oci:{}:latest", example_layout().display()),
                format!("{target}/soak/copy:t{}", n % 3),
            ]),
            Operation::Build => Hoist::new()
                .env("HOIST_CACHE_DIR", &cache)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .run([
                    "--json".to_string(),
                    "build".into(),
                    self.dir.path().join("ctx").display().to_string(),
                    "-t".into(),
                    format!("{target}/soak/build:t{}", n % 3),
                    "--push".into(),
                ]),
            Operation::Mirror => Hoist::new().run([
                "--json".to_string(),
                "mirror".into(),
                "-f".into(),
                self.dir.path().join("mirror.yaml").display().to_string(),
            ]),
        }
    }
}

/// The digest a successful run made: its JSON's, or (mirror) what the target tag names.
fn digest_of_run(operation: Operation, run: &Run) -> String {
    match operation {
        Operation::Mirror => {
            manifest_digest(&format!("{}/soak/mirrored:latest", other().host), None)
                .unwrap_or_default()
        }
        _ => run.json()["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// Tags of `repository` in `registry` whose image (or index) names a blob the registry lacks.
fn incomplete_tags(registry: &str, repository: &str) -> Vec<String> {
    let out = std::process::Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{registry}/{repository}"))
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new();
    }
    let tags: Value = serde_json::from_slice(&out.stdout).unwrap();
    tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{registry}/{repository}:{}", t.as_str().unwrap()))
        .filter(|reference| !complete(reference))
        .collect()
}

fn context(dir: &Path, base: &str) {
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nCOPY app /app\n"),
    )
    .unwrap();
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(ctx.join("app"), big).unwrap();
}

#[test]
fn a_thousand_faults_across_copy_build_and_mirror() {
    let wanted: usize = std::env::var("HOIST_TEST_SOAK_FAULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let upstream = seed_example(shared(), "soak/upstream", None);
    let soak = Soak {
        target: FaultProxy::start(other().addr),
        source: FaultProxy::start(shared().addr),
        dir: tempfile::tempdir().unwrap(),
    };
    let through_source =
        |reference: &str| reference.replacen(&shared().host, &soak.source.addr.to_string(), 1);
    context(soak.dir.path(), &through_source(&upstream));
    std::fs::write(
        soak.dir.path().join("mirror.yaml"),
        format!(
            "target: {}/soak\nimages:\n  - source: {}\n    tags: [latest]\n    target: mirrored\n",
            soak.target.addr,
            through_source(upstream.trim_end_matches(":latest"))
        ),
    )
    .unwrap();
    let operations = [Operation::Copy, Operation::Build, Operation::Mirror];

    // Fault-free runs first: the digests every run must give.
    let expected: Vec<String> = operations
        .iter()
        .map(|&op| {
            let run = soak.run(op, 0);
            run.ok();
            digest_of_run(op, &run)
        })
        .collect();

    soak.target.chaos(7, 250);
    soak.source.chaos(11, 250);
    let (mut runs, mut successes, mut clean_failures) = (0, 0, 0);
    let mut unclean = Vec::new();
    while soak.target.faults() + soak.source.faults() < wanted {
        // One of each at a time, as CI jobs would overlap.
        let finished: Vec<(usize, Run)> = std::thread::scope(|scope| {
            let handles: Vec<_> = operations
                .iter()
                .enumerate()
                .map(|(i, &op)| {
                    let soak = &soak;
                    scope.spawn(move || (i, soak.run(op, runs + i)))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, run) in finished {
            runs += 1;
            let op = operations[i];
            if run.code == 0 {
                successes += 1;
                // A mirror's target tag may since have been rewritten by nobody else: it
                // only ever holds the upstream image.
                assert_eq!(
                    digest_of_run(op, &run),
                    expected[i],
                    "{op:?}: {}",
                    run.all_output()
                );
            } else if run.code == 1
                && run.stderr.contains("error: ")
                && !run.stderr.contains("panicked")
            {
                clean_failures += 1;
            } else {
                unclean.push(format!("{op:?} exit {}: {}", run.code, run.all_output()));
            }
        }
    }
    let faults = soak.target.faults() + soak.source.faults();
    soak.target.chaos(0, 0);
    soak.source.chaos(0, 0);
    assert!(unclean.is_empty(), "{unclean:#?}");

    // No tag names a missing blob; the cache has nothing corrupt; everything works again.
    let mut missing = Vec::new();
    for repository in ["soak/copy", "soak/build", "soak/mirrored"] {
        missing.extend(incomplete_tags(&other().host, repository));
    }
    assert!(missing.is_empty(), "{missing:?}");
    let verify = Hoist::new()
        .env("HOIST_CACHE_DIR", soak.dir.path().join("cache"))
        .run(["--json", "cache", "verify"]);
    let corrupt = verify.ok().json()["corrupt"].as_array().unwrap().len();
    assert_eq!(corrupt, 0, "{}", verify.stdout);
    for (i, &op) in operations.iter().enumerate() {
        let run = soak.run(op, 0);
        run.ok();
        assert_eq!(
            digest_of_run(op, &run),
            expected[i],
            "{op:?} after the soak"
        );
    }
    crate::harness::figures(&format!(
        "soak: faults injected {faults}, operations {runs}, clean failures {clean_failures}, successes {successes}, corrupt cache entries {corrupt}, manifests with missing blobs {}",
        missing.len()
    ));
}
