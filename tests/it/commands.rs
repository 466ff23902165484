//! `hoist tag`, `tags`, `inspect` against the real registry.

use crate::harness::registry::{
    Hoist, hoist, seed_example, sha256_hex, shared, skopeo_inspect, skopeo_raw,
};

#[test]
fn tag_adds_tags_without_moving_blobs() {
    let src = seed_example(shared(), "tagging/app", None);
    let run = hoist([
        "--json",
        "tag",
        &src,
        "v1.2.3",
        &format!("{}/tagging/app:stable", shared().host),
    ]);
    let json = run.ok().json();
    assert_eq!(json["schema"], 1);
    let digest = sha256_hex(&skopeo_raw(&src, None).unwrap());
    for tag in ["v1.2.3", "stable"] {
        let raw = skopeo_raw(&format!("{}/tagging/app:{tag}", shared().host), None).unwrap();
        assert_eq!(sha256_hex(&raw), digest);
    }
    hoist(["tag", &src, &format!("{}/elsewhere/app:x", shared().host)])
        .fails_with(1, "another repository");
}

#[test]
fn tags_follow_link_pagination() {
    let src = seed_example(shared(), "paging/app", None);
    let new: Vec<String> = (0..7).map(|i| format!("t{i}")).collect();
    let mut args = vec!["tag".to_string(), src.clone()];
    args.extend(new.iter().cloned());
    hoist(&args).ok();
    let run = Hoist::new().env("HOIST_TAG_PAGE_SIZE", "3").run([
        "--json",
        "tags",
        &format!("{}/paging/app", shared().host),
    ]);
    let mut tags: Vec<String> = serde_json::from_value(run.ok().json()["tags"].clone()).unwrap();
    tags.sort();
    let mut expected = new.clone();
    expected.push("latest".into());
    expected.sort();
    assert_eq!(tags, expected, "all 8 tags over 3 pages");
}

#[test]
fn inspect_reports_index_image_and_raw_bytes() {
    let src = seed_example(shared(), "inspect/app", None);
    let run = hoist(["--json", "inspect", "--platform", "linux/arm64", &src]);
    let json = run.ok().json();
    let raw = skopeo_raw(&src, None).unwrap();
    assert_eq!(json["digest"], format!("sha256:{}", sha256_hex(&raw)));
    assert_eq!(json["manifests"].as_array().unwrap().len(), 2);
    assert_eq!(json["image"]["platform"], "linux/arm64");
    assert_eq!(
        json["image"]["config"]["Cmd"],
        serde_json::json!(["/bin/sh"])
    );

    let printed = hoist(["inspect", "--raw", &src]);
    assert_eq!(printed.ok().stdout.trim_end().as_bytes(), raw.as_slice());
    let config = hoist(["inspect", "--config", "--platform", "linux/arm64", &src]);
    let skopeo_config = skopeo_inspect(
        &src,
        None,
        &["--config", "--raw", "--override-arch", "arm64"],
    )
    .unwrap();
    assert_eq!(
        config.ok().stdout.trim_end().as_bytes(),
        skopeo_config.as_slice()
    );
}

#[test]
fn version_names_the_revision_and_completions_and_the_man_page_are_printed() {
    let version = crate::harness::registry::hoist(["--version"]);
    version.ok();
    let line = version.stdout.trim();
    assert!(
        line.starts_with("hoist ") && line.ends_with(')') && line.contains(" ("),
        "{line}"
    );
    let completions = |shell: &str| {
        let run = crate::harness::registry::hoist(["completions", shell]);
        run.ok();
        run.stdout
    };
    assert!(completions("bash").contains("_hoist()"));
    assert!(completions("zsh").starts_with("#compdef hoist"));
    assert!(completions("fish").contains("complete -c hoist"));
    let man = completions("man");
    assert!(
        man.contains(".TH hoist 1") && man.contains("deploy"),
        "{man}"
    );
    crate::harness::registry::hoist(["completions", "tcsh"])
        .fails_with(1, "completions for `tcsh`: choose bash, zsh, fish");
}
