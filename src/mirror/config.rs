//! `mirror.yaml`: which upstream images and tags to keep where. Checked whole before anything
//! runs; every mistake names the file and line.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::oci::Platform;
use crate::reference::RegistryRef;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    target: String,
    #[serde(default)]
    ecr: Option<RawEcr>,
    #[serde(default)]
    platforms: Option<Vec<String>>,
    images: Vec<RawImage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEcr {
    #[serde(default)]
    create: bool,
    #[serde(default)]
    scan_on_push: bool,
    #[serde(default)]
    keep: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    source: String,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    semver: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    latest: Option<usize>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    rename: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    platforms: Option<Vec<String>>,
}

/// Which tags of a source to mirror.
#[derive(Debug)]
pub enum Selector {
    Exact(Vec<String>),
    Semver(semver::VersionReq),
    Regex(regex::Regex),
}

#[derive(Debug)]
pub struct ImageSpec {
    /// The repository upstream (no tag).
    pub source: RegistryRef,
    pub selector: Selector,
    /// With a range or pattern: only the newest N.
    pub latest: Option<usize>,
    /// The repository it is copied to.
    pub target: RegistryRef,
    /// Source tag → the tags it gets at the target (`{tag}` = its own name).
    pub rename: BTreeMap<String, Vec<String>>,
    /// None: every platform the source has.
    pub platforms: Option<Vec<Platform>>,
}

#[derive(Debug, Default)]
pub struct EcrSettings {
    pub create: bool,
    pub scan_on_push: bool,
    pub keep: Option<u32>,
}

#[derive(Debug)]
pub struct MirrorFile {
    pub ecr: EcrSettings,
    pub images: Vec<ImageSpec>,
}

/// Parses and checks a mirror file; `name` is how errors call it.
pub fn parse(text: &str, name: &str) -> Result<MirrorFile> {
    let raw: RawFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}", l.line()))
            .unwrap_or_default();
        let message = e.to_string();
        let message = first_line(&message);
        // The line is in front already.
        let message = message.split(" at line ").next().unwrap_or(message);
        Error::Usage(format!("{name}{at}: {message}"))
    })?;
    let finder = LineFinder::new(text);
    let at = |image: usize, key: &str| format!("{name}:{}", finder.line(image, key));
    let target_prefix = raw.target.trim_end_matches('/').to_string();
    RegistryRef::parse(&format!("{target_prefix}/x"))
        .map_err(|e| Error::Usage(format!("{name}:{}: target: {e}", finder.top("target"))))?;
    let platforms = |list: &Option<Vec<String>>, image: Option<usize>| -> Result<_> {
        list.as_ref()
            .map(|l| {
                l.iter()
                    .map(|p| {
                        Platform::parse(p).map_err(|e| {
                            let line = match image {
                                Some(i) => finder.line(i, "platforms"),
                                None => finder.top("platforms"),
                            };
                            Error::Usage(format!("{name}:{line}: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()
    };
    let default_platforms = platforms(&raw.platforms, None)?;
    let mut images = Vec::new();
    for (i, image) in raw.images.into_iter().enumerate() {
        let source = RegistryRef::parse(&image.source)
            .map_err(|e| Error::Usage(format!("{}: source: {e}", at(i, "source"))))?;
        if source.tag.is_some() || source.digest.is_some() {
            return Err(Error::Usage(format!(
                "{}: source {} names a tag or digest: give the repository, and its tags under `tags:`",
                at(i, "source"),
                image.source
            )));
        }
        let selector = match (image.tags, image.semver, image.regex) {
            (Some(tags), None, None) if !tags.is_empty() => {
                for tag in &tags {
                    crate::reference::validate_tag(tag)
                        .map_err(|e| Error::Usage(format!("{}: tags: {e}", at(i, "tags"))))?;
                }
                Selector::Exact(tags)
            }
            (None, Some(range), None) => {
                Selector::Semver(semver::VersionReq::parse(&range).map_err(|e| {
                    Error::Usage(format!("{}: semver range `{range}`: {e}", at(i, "semver")))
                })?)
            }
            (None, None, Some(pattern)) => {
                Selector::Regex(regex::Regex::new(&pattern).map_err(|e| {
                    Error::Usage(format!(
                        "{}: regex `{pattern}`: {}",
                        at(i, "regex"),
                        first_line(&e.to_string().replace('\n', " "))
                    ))
                })?)
            }
            _ => {
                return Err(Error::Usage(format!(
                    "{}: image {} needs exactly one of `tags:` (a non-empty list), `semver:` or `regex:`",
                    at(i, "source"),
                    image.source
                )));
            }
        };
        if image.latest.is_some() && matches!(selector, Selector::Exact(_)) {
            return Err(Error::Usage(format!(
                "{}: `latest:` picks among the tags of a `semver:` or `regex:`, not a list of tags",
                at(i, "latest")
            )));
        }
        if image.latest == Some(0) {
            return Err(Error::Usage(format!(
                "{}: `latest: 0` would mirror nothing",
                at(i, "latest")
            )));
        }
        let path = image
            .target
            .clone()
            .unwrap_or_else(|| source.repository.clone());
        let target = RegistryRef::parse(&format!("{target_prefix}/{}", path.trim_matches('/')))
            .map_err(|e| Error::Usage(format!("{}: target: {e}", at(i, "target"))))?;
        let rename = image.rename.unwrap_or_default();
        for tags in rename.values() {
            for tag in tags {
                let resolved = tag.replace("{tag}", "x");
                crate::reference::validate_tag(&resolved)
                    .map_err(|e| Error::Usage(format!("{}: rename: {e}", at(i, "rename"))))?;
            }
        }
        images.push(ImageSpec {
            source,
            selector,
            latest: image.latest,
            target,
            rename,
            platforms: match platforms(&image.platforms, Some(i))? {
                Some(list) => Some(list),
                None => default_platforms.clone(),
            },
        });
    }
    // Two images writing one tag: the second would silently replace the first.
    let mut written: BTreeMap<String, usize> = BTreeMap::new();
    for (i, image) in images.iter().enumerate() {
        let Selector::Exact(tags) = &image.selector else {
            continue;
        };
        for tag in tags {
            let names = image
                .rename
                .get(tag)
                .map(|r| r.iter().map(|n| n.replace("{tag}", tag)).collect())
                .unwrap_or_else(|| vec![tag.clone()]);
            for written_tag in names {
                let key = image.target.with_tag(&written_tag).to_string();
                if let Some(first) = written.insert(key.clone(), i)
                    && first != i
                {
                    return Err(Error::Usage(format!(
                        "{}: images {} and {} both write {key}: give one a `target:` or `rename:`",
                        at(i, "source"),
                        first + 1,
                        i + 1
                    )));
                }
            }
        }
    }
    let ecr = raw.ecr.map_or_else(EcrSettings::default, |e| EcrSettings {
        create: e.create,
        scan_on_push: e.scan_on_push,
        keep: e.keep,
    });
    Ok(MirrorFile { ecr, images })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Line numbers of keys, for errors found after parsing: the n-th `- source:` item of
/// `images:`, then the key within it.
struct LineFinder<'a> {
    lines: Vec<&'a str>,
    /// Line index of each image item's start.
    items: Vec<usize>,
}

impl<'a> LineFinder<'a> {
    fn new(text: &'a str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let images = lines
            .iter()
            .position(|l| l.trim_start().starts_with("images:"))
            .unwrap_or(0);
        let items = lines
            .iter()
            .enumerate()
            .skip(images + 1)
            .filter(|(_, l)| l.trim_start().starts_with("- "))
            .filter(|(_, l)| {
                let indent = l.len() - l.trim_start().len();
                // Items of `images:` are its least indented dashes.
                indent <= 4
            })
            .map(|(n, _)| n)
            .collect();
        LineFinder { lines, items }
    }

    /// 1-based line of `key:` in image item `image` (its first line if not found).
    fn line(&self, image: usize, key: &str) -> usize {
        let Some(&start) = self.items.get(image) else {
            return 1;
        };
        let end = self
            .items
            .get(image + 1)
            .copied()
            .unwrap_or(self.lines.len());
        let needle = format!("{key}:");
        (start..end)
            .find(|&n| {
                self.lines[n]
                    .trim_start()
                    .trim_start_matches("- ")
                    .starts_with(&needle)
            })
            .unwrap_or(start)
            + 1
    }

    /// 1-based line of a top-level `key:`.
    fn top(&self, key: &str) -> usize {
        let needle = format!("{key}:");
        self.lines
            .iter()
            .position(|l| l.starts_with(&needle))
            .unwrap_or(0)
            + 1
    }
}

/// A tag as a version, for ranges and ordering: `v` dropped, `1.27` read as `1.27.0`.
pub fn tag_version(tag: &str) -> Option<semver::Version> {
    let bare = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
    if let Ok(v) = semver::Version::parse(bare) {
        return Some(v);
    }
    let (core, rest) = match bare.find(['-', '+']) {
        Some(at) => bare.split_at(at),
        None => (bare, ""),
    };
    let padded = match core.split('.').count() {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => return None,
    };
    semver::Version::parse(&padded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"target: registry.example.com/mirror
ecr: {create: true, scan-on-push: true, keep: 50}
platforms: [linux/amd64, linux/arm64]
images:
  - source: docker.io/library/nginx
    tags: ["1.27", "1.27-alpine"]
  - source: ghcr.io/org/tool
    semver: ">=2.3, <3"
    latest: 5
  - source: quay.io/org/x
    regex: "^v[0-9]+\\.[0-9]+\\.[0-9]+$"
    target: team/x
    rename: {"stable": ["{tag}", "latest"]}
    platforms: [linux/amd64]
"#;

    #[test]
    fn the_issue_example_parses() {
        let file = parse(GOOD, "mirror.yaml").unwrap();
        assert!(file.ecr.create && file.ecr.scan_on_push);
        assert_eq!(file.ecr.keep, Some(50));
        assert_eq!(file.images.len(), 3);
        assert_eq!(
            file.images[0].target.to_string(),
            "registry.example.com/mirror/library/nginx"
        );
        assert_eq!(
            file.images[2].target.to_string(),
            "registry.example.com/mirror/team/x"
        );
        assert_eq!(file.images[0].platforms.as_ref().unwrap().len(), 2);
        assert_eq!(file.images[2].platforms.as_ref().unwrap().len(), 1);
        assert_eq!(file.images[1].latest, Some(5));
    }

    #[test]
    fn mistakes_name_the_line() {
        let bad = |from: &str, to: &str| {
            parse(&GOOD.replace(from, to), "mirror.yaml")
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad("    latest: 5", "    newest: 5")
                .starts_with("mirror.yaml:9: images[1]: unknown field `newest`, expected one of"),
            "{}",
            bad("    latest: 5", "    newest: 5")
        );
        assert!(bad(">=2.3, <3", ">=2.x.y.z").starts_with("mirror.yaml:8: semver range"));
        assert!(
            bad("^v[0-9]+", "^v[0-9+").starts_with("mirror.yaml:11: regex"),
            "{}",
            bad("^v[0-9]+", "^v[0-9+")
        );
        assert!(
            bad("platforms: [linux/amd64]\n", "platforms: [linux//amd64]\n")
                .starts_with("mirror.yaml:14: platform `linux//amd64`")
        );
        assert!(
            bad("    tags: [\"1.27\", \"1.27-alpine\"]\n", "")
                .starts_with("mirror.yaml:5: image docker.io/library/nginx needs exactly one of")
        );
        assert!(
            bad("docker.io/library/nginx", "docker.io/library/nginx:1")
                .starts_with("mirror.yaml:5: source docker.io/library/nginx:1 names a tag")
        );
    }

    #[test]
    fn tags_read_as_versions_where_they_can() {
        let v = |t: &str| tag_version(t).map(|v| v.to_string());
        assert_eq!(v("1.27").as_deref(), Some("1.27.0"));
        assert_eq!(v("v2.3.1").as_deref(), Some("2.3.1"));
        assert_eq!(v("1.27-alpine").as_deref(), Some("1.27.0-alpine"));
        assert_eq!(v("latest"), None);
        let req = semver::VersionReq::parse(">=2.3, <3").unwrap();
        assert!(req.matches(&tag_version("2.4").unwrap()));
        assert!(!req.matches(&tag_version("3.0.0").unwrap()));
        assert!(!req.matches(&tag_version("2.4.0-rc1").unwrap()));
    }
}
