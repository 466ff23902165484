//! Reliability: the cache checked and trimmed (`hoist cache verify|prune`), builds and pushes
//! killed at random points (every rerun succeeds, no corrupt entry, no tag naming a missing
//! blob), and many pushes and builds at once on one registry and one cache directory.
//! Sizes and counts shrink with HOIST_TEST_KILLS / HOIST_TEST_CONCURRENT_PUSHES.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::harness::registry::{Hoist, Run, complete, shared, skopeo_raw};

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A context of `files` small files plus one of `big` pseudo-random bytes.
fn context(dir: &Path, files: usize, big: usize, salt: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY src /app/src\nCOPY big.bin /app/\nCOPY salt /app/\n",
    )
    .unwrap();
    for i in 0..files {
        std::fs::write(dir.join("src").join(format!("f{i}.txt")), format!("{i}\n")).unwrap();
    }
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let bytes: Vec<u8> = (0..big)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(dir.join("big.bin"), bytes).unwrap();
    std::fs::write(dir.join("salt"), salt).unwrap();
}

fn hoist(cache: &Path) -> Hoist {
    Hoist::new()
        .env("HOIST_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
}

fn verify(cache: &Path) -> Value {
    let run = hoist(cache).run(["--json", "cache", "verify"]);
    run.ok();
    run.json()
}

fn build_to(cache: &Path, context: &Path, out: &Path) -> Run {
    hoist(cache).run([
        "--json".to_string(),
        "build".into(),
        context.display().to_string(),
        "-o".into(),
        format!("oci:{}", out.display()),
    ])
}

fn cache_counts(run: &Run) -> (u64, u64) {
    let json = run.json();
    (
        json["cache"]["layers_built"].as_u64().unwrap(),
        json["cache"]["layers_reused"].as_u64().unwrap(),
    )
}

#[test]
fn cache_verify_removes_what_is_corrupt_and_the_next_build_makes_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, cache) = (dir.path().join("ctx"), dir.path().join("cache"));
    context(&ctx, 5, 4096, "one");
    let first = build_to(&cache, &ctx, &dir.path().join("out1"));
    first.ok();
    let digest = first.json()["digest"].clone();
    assert_eq!(verify(&cache)["corrupt"], serde_json::json!([]));

    // A blob with one byte changed (same size: a size check alone would use it), a record
    // that does not parse, and an old temporary file of a killed run.
    let blobs = cache.join("blobs/sha256");
    let blob = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let record = std::fs::read_dir(cache.join("layers"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&record, "{\"descriptor\":").unwrap();
    let temp = blobs.join(".hoist-tmp-killed");
    std::fs::write(&temp, "partial").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&temp)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();

    let report = verify(&cache);
    assert_eq!(report["corrupt"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["leftovers"], 1, "{report}");
    assert!(!blob.exists() && !record.exists() && !temp.exists());
    assert_eq!(verify(&cache)["corrupt"], serde_json::json!([]));

    // The next build rebuilds what was removed and makes the same image.
    let again = build_to(&cache, &ctx, &dir.path().join("out2"));
    again.ok();
    assert_eq!(again.json()["digest"], digest);
}

#[test]
fn cache_prune_removes_the_least_recently_used_first_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    context(&a, 3, 64 << 10, "a");
    context(&b, 3, 64 << 10, "b");
    build_to(&cache, &a, &dir.path().join("out")).ok();
    build_to(&cache, &b, &dir.path().join("out")).ok();
    // A used again: its entries are now the most recent.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        cache_counts(build_to(&cache, &a, &dir.path().join("out")).ok()),
        (0, 3)
    );
    let everything = hoist(&cache).run(["--json", "cache", "prune", "--max-size", "1T"]);
    let total = everything.ok().json()["kept_bytes"].as_u64().unwrap();
    assert_eq!(everything.json()["removed"], 0);
    // Room for all but B's big layer: B's go first, A's stay.
    let pruned = hoist(&cache).run([
        "--json",
        "cache",
        "prune",
        "--max-size",
        &(total - 1).to_string(),
    ]);
    assert!(pruned.ok().json()["removed"].as_u64().unwrap() >= 1);
    assert_eq!(
        cache_counts(build_to(&cache, &a, &dir.path().join("out")).ok()),
        (0, 3)
    );
    let (built, _) = cache_counts(build_to(&cache, &b, &dir.path().join("out")).ok());
    assert!(built >= 1, "B's oldest layer was pruned");
    // Nothing is older than a day; everything is older than no time at all.
    let young = hoist(&cache).run(["--json", "cache", "prune", "--max-age", "1d"]);
    assert_eq!(young.ok().json()["removed"], 0);
    std::thread::sleep(Duration::from_millis(1100));
    let all = hoist(&cache).run(["--json", "cache", "prune", "--max-age", "1s"]);
    assert_eq!(all.ok().json()["kept"], 0);
    let stat_files = std::fs::read_dir(cache.join("local/stat")).unwrap().count();
    assert_eq!(stat_files, 0, "stat caches are pruned like the rest");
    assert_eq!(
        cache_counts(build_to(&cache, &a, &dir.path().join("out")).ok()),
        (3, 0)
    );
    hoist(&cache)
        .run(["cache", "prune", "--max-size", "lots"])
        .fails_with(1, "size `lots`");
    hoist(&cache)
        .run(["cache", "prune"])
        .fails_with(1, "--max-size");
}

/// Builds hold the cache shared while they run; prune (and verify) hold it exclusively, so
/// neither removes what the other is using. The test holds the lock as the other side would.
#[test]
fn cache_prune_and_builds_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let lock = cache.join("cache.lock");
    let a = dir.path().join("a");
    context(&a, 1, 1 << 10, "a");
    let out = format!("oci:{}", dir.path().join("out").display());
    build_to(&cache, &a, &dir.path().join("out")).ok();
    let build = hoist::fsutil::FileLock::shared(&lock).unwrap();
    let prune = ["--json", "cache", "prune", "--max-size", "0"].map(String::from);
    let report = run_once_unlocked(
        &cache,
        &prune,
        "waiting for the builds using the cache",
        build,
    );
    assert_eq!(report["kept"], 0, "{report}");
    let pruning = hoist::fsutil::FileLock::acquire(&lock).unwrap();
    let args = ["--json", "build", a.to_str().unwrap(), "-o", &out].map(String::from);
    let report = run_once_unlocked(&cache, &args, "waiting for `hoist cache", pruning);
    assert_eq!(report["cache"]["layers_built"], 3, "{report}");
}

/// Starts hoist with `args`, waits until it says `waiting` (held up by `lock`), checks it is
/// still held up, releases the lock and returns its JSON result.
fn run_once_unlocked(
    cache: &Path,
    args: &[String],
    waiting: &str,
    lock: hoist::fsutil::FileLock,
) -> Value {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hoist"))
        .env("HOIST_CACHE_DIR", cache)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kept open to the end: a closed pipe would fail its later writes.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let said = stderr
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.contains(waiting));
    assert!(said.is_some(), "never said it waits ({args:?})");
    assert!(child.try_wait().unwrap().is_none(), "{args:?} did not wait");
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{args:?}");
    drop(stderr);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn builds_and_pushes_killed_at_random_points_leave_nothing_broken() {
    let kills = env_count("HOIST_TEST_KILLS", 50);
    let dir = tempfile::tempdir().unwrap();
    let (ctx, cache) = (dir.path().join("ctx"), dir.path().join("cache"));
    context(&ctx, 300, 2 << 20, "killed");
    let target = format!("{}/reliability/killed:latest", shared().host);
    let push = |salt: usize| {
        std::fs::write(ctx.join("salt"), format!("{salt}")).unwrap();
        vec![
            "--json".to_string(),
            "build".into(),
            ctx.display().to_string(),
            "-t".into(),
            target.clone(),
            "--push".into(),
        ]
    };
    // How long a run takes (a new salt: one small new layer, the rest cached), to kill
    // across all of it.
    hoist(&cache).run(push(kills)).ok();
    let started = Instant::now();
    hoist(&cache).run(push(kills + 1)).ok();
    let whole = started.elapsed().as_micros().max(1000) as u64;
    let clean = tempfile::tempdir().unwrap();
    let mut state = 0x2545f4914f6cdd1d_u64;
    let mut killed_early = 0;
    // Until `kills` runs were killed while running (those that finished first do not count).
    let mut i = 0;
    while killed_early < kills && i < kills * 4 {
        i += 1;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut running = hoist(&cache).start(push(i), false);
        let child = &mut running.child;
        std::thread::sleep(Duration::from_micros(state % (whole * 4 / 5)));
        if child.try_wait().unwrap().is_none() {
            killed_early += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The tag names a whole image or nothing new.
        if skopeo_raw(&target, None).is_some() {
            assert!(
                complete(&target),
                "after kill {i}: {target} names a missing blob"
            );
        }
        // The rerun succeeds, and (checked every tenth time) makes what a clean cache makes.
        let rerun = hoist(&cache).run(push(i));
        rerun.ok();
        if i % 10 == 0 {
            let reference = hoist(clean.path()).run(push(i));
            assert_eq!(
                rerun.json()["digest"],
                reference.ok().json()["digest"],
                "run {i}"
            );
        }
        assert!(complete(&target));
    }
    assert_eq!(
        killed_early, kills,
        "only {killed_early} of {i} runs were still running"
    );
    let report = verify(&cache);
    let corrupt = report["corrupt"].as_array().unwrap().len();
    assert_eq!(corrupt, 0, "{report}");
    crate::harness::figures(&format!(
        "reliability: {killed_early} runs SIGKILLed while building or pushing ({i} started), every rerun succeeded, corrupt cache entries found: {corrupt}, manifests with missing blobs: 0"
    ));
}

#[test]
fn many_pushes_sharing_base_layers_and_many_builds_sharing_a_cache_all_succeed() {
    let pushes = env_count("HOIST_TEST_CONCURRENT_PUSHES", 50);
    let base = crate::harness::registry::seed_example(shared(), "reliability/base", None);
    let dir = tempfile::tempdir().unwrap();
    let started: Vec<_> = (0..pushes)
        .map(|i| {
            let ctx = dir.path().join(format!("push{i}"));
            std::fs::create_dir_all(&ctx).unwrap();
            std::fs::write(
                ctx.join("Dockerfile"),
                format!("FROM {base}\nCOPY salt /salt\n"),
            )
            .unwrap();
            std::fs::write(ctx.join("salt"), format!("{}", i % 10)).unwrap();
            let target = format!("{}/reliability/many:t{i}", shared().host);
            let child = Hoist::new().start(
                ["build", &ctx.display().to_string(), "-t", &target, "--push"],
                true,
            );
            (target, child)
        })
        .collect();
    let mut failed = Vec::new();
    for (target, child) in started {
        let run = child.wait();
        if run.code != 0 {
            failed.push(format!("{target}: {}", run.all_output()));
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
    let incomplete: Vec<String> = (0..pushes)
        .map(|i| format!("{}/reliability/many:t{i}", shared().host))
        .filter(|t| !complete(t))
        .collect();
    assert!(incomplete.is_empty(), "{incomplete:?}");

    // Ten builds at once on one cache directory: five of one context, five of another.
    let cache = dir.path().join("cache");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    context(&a, 50, 256 << 10, "a");
    context(&b, 50, 256 << 10, "b");
    let builds: Vec<_> = (0..10)
        .map(|i| {
            let ctx = if i % 2 == 0 { &a } else { &b };
            hoist(&cache).start(
                [
                    "--json".to_string(),
                    "build".into(),
                    ctx.display().to_string(),
                    "-o".into(),
                    format!("oci:{}", dir.path().join(format!("out{i}")).display()),
                ],
                true,
            )
        })
        .collect();
    let digests: Vec<Value> = builds
        .into_iter()
        .map(|child| {
            let run = child.wait();
            run.ok();
            run.json()["digest"].clone()
        })
        .collect();
    for (i, digest) in digests.iter().enumerate() {
        assert_eq!(digest, &digests[i % 2], "build {i}");
    }
    assert_ne!(digests[0], digests[1]);
    assert_eq!(verify(&cache)["corrupt"], serde_json::json!([]));
    crate::harness::figures(&format!(
        "reliability: {pushes} concurrent pushes, 10 concurrent builds on one cache: all succeeded, registry complete"
    ));
}

/// Sends `signal` to the process.
fn signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill(2) on a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
}

#[test]
fn a_first_ctrl_c_stops_before_any_tag_and_a_second_one_quits_at_once() {
    use crate::harness::proxy::{Action, FaultProxy, Rule};
    let dir = tempfile::tempdir().unwrap();
    context(dir.path(), 3, 1 << 20, "interrupted");
    for second in [false, true] {
        let proxy = FaultProxy::start(shared().addr);
        // The blob uploads hang: the interrupt comes while they are under way.
        proxy.add_rule(Rule {
            method: Some("PUT".into()),
            path_contains: "/blobs/uploads/".into(),
            times: None,
            action: Action::Stall,
        });
        let target = format!("{}/reliability/interrupted:v{second}", proxy.addr);
        let mut running = Hoist::new().start(
            [
                "build",
                &dir.path().display().to_string(),
                "-t",
                &target,
                "--push",
            ],
            true,
        );
        // Wait until an upload is under way.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !proxy
            .log()
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/"))
        {
            assert!(Instant::now() < deadline, "no upload started");
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(&running.child, libc::SIGINT);
        if second {
            std::thread::sleep(Duration::from_millis(5));
            let _ = unsafe { libc::kill(running.child.id() as i32, libc::SIGINT) };
        }
        let status = running.child.wait().unwrap();
        if !second {
            let mut stderr = String::new();
            std::io::Read::read_to_string(running.child.stderr.as_mut().unwrap(), &mut stderr)
                .unwrap();
            assert_eq!(status.code(), Some(130), "{stderr}");
            assert!(stderr.contains("error: interrupted"), "{stderr}");
        } else {
            // Ended by the signal itself, or by the first one's clean exit.
            assert!(status.code().is_none_or(|c| c == 130), "{status:?}");
        }
        let target = format!("{}/reliability/interrupted:v{second}", shared().host);
        assert!(skopeo_raw(&target, None).is_none(), "nothing was tagged");
        assert!(
            !proxy.log().iter().any(|r| r.path.contains("/manifests/")),
            "no manifest was sent"
        );
    }
}

#[test]
fn big_blobs_go_up_in_parts_and_a_cut_part_resumes_where_the_registry_stands() {
    use crate::harness::proxy::{Action, FaultProxy, Rule};
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    // An incompressible 5 MiB file: a layer of about 5 MiB, sent in 1 MiB parts.
    context(&ctx, 2, 5 << 20, "parts");
    let push = |proxy: &FaultProxy, repo: &str| {
        let run = hoist(&dir.path().join(format!("cache-{repo}")))
            .env("HOIST_CHUNKED_UPLOAD_FROM", (1u64 << 20).to_string())
            .env("HOIST_UPLOAD_PART_BYTES", (1u64 << 20).to_string())
            .run([
                "--json",
                "build",
                &ctx.display().to_string(),
                "-t",
                &format!("{}/reliability/{repo}:v1", proxy.addr),
                "--push",
            ]);
        run.ok();
        run.json()["digest"].clone()
    };
    let clean = FaultProxy::start(shared().addr);
    let expected = push(&clean, "parts-clean");
    let patches = clean.log().iter().filter(|r| r.method == "PATCH").count();
    assert!(patches >= 4, "{:#?}", clean.log());

    let proxy = FaultProxy::start(shared().addr);
    proxy.add_rule(Rule {
        method: Some("PATCH".into()),
        path_contains: "/blobs/uploads/".into(),
        times: Some(1),
        action: Action::CutRequest { after: 300_000 },
    });
    assert_eq!(push(&proxy, "parts-cut"), expected);
    let log = proxy.log();
    // The registry was asked where the upload stood, and the blob was not sent again whole.
    assert!(
        log.iter()
            .any(|r| r.method == "GET" && r.path.contains("/blobs/uploads/")),
        "{log:#?}"
    );
    // At most the cut-off bytes and that one part again (distribution may drop what a cut
    // PATCH carried), never the whole 5 MiB.
    assert!(
        proxy.uploaded_bytes() <= clean.uploaded_bytes() + 300_000 + (1 << 20),
        "{} bytes sent, {} without the fault",
        proxy.uploaded_bytes(),
        clean.uploaded_bytes()
    );
    assert!(complete(&format!(
        "{}/reliability/parts-cut:v1",
        shared().host
    )));
}
