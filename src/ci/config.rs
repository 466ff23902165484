//! `hoist.toml`: project settings read from the current directory: `[mirrors]` (pull mirrors:
//! `"docker.io" = ["123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub",
//! "$CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX"]`, tried in order, then the registry itself) and
//! `[tags]`:
//!
//! ```toml
//! [tags]
//! latest = true        # `latest` on the default branch and on the newest release
//! sha = true           # the short commit SHA
//! sha-length = 8
//! branch = true        # the branch slug on branch pipelines
//! strip-v = false      # true: release v1.2.3 is tagged 1.2.3, 1.2, 1
//! extra = ["dev-{sha}", "{branch}-latest"]   # {sha} {full_sha} {branch} {tag} {version} {mr} {env}
//! ```

use std::path::Path;

use serde::Deserialize;

use super::tags::PLACEHOLDERS;
use crate::error::{Error, Result};

pub const FILE_NAME: &str = "hoist.toml";

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    #[serde(default)]
    pub tags: TagConfig,
    /// Pull mirrors: registry → repository prefixes tried in order (`$VAR`s expanded).
    #[serde(default)]
    pub mirrors: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct TagConfig {
    pub latest: bool,
    pub sha: bool,
    pub sha_length: Option<usize>,
    pub branch: bool,
    pub strip_v: bool,
    pub extra: Vec<String>,
}

impl Default for TagConfig {
    fn default() -> Self {
        TagConfig {
            latest: true,
            sha: true,
            sha_length: None,
            branch: true,
            strip_v: false,
            extra: Vec::new(),
        }
    }
}

/// Reads `hoist.toml` in `dir` (defaults when there is none).
pub fn load(dir: &Path) -> Result<ProjectConfig> {
    let path = dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProjectConfig::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

pub fn parse(text: &str, name: &str) -> Result<ProjectConfig> {
    let config: ProjectConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |span| {
            text[..span.start.min(text.len())].matches('\n').count() + 1
        });
        Error::Usage(format!("{name}:{line}: {}", e.message().trim()))
    })?;
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map_or(1, |i| i + 1)
    };
    if let Some(n) = config.tags.sha_length
        && !(4..=40).contains(&n)
    {
        return Err(Error::Usage(format!(
            "{name}:{}: sha-length must be between 4 and 40",
            line_of("sha-length")
        )));
    }
    for template in &config.tags.extra {
        if let Some(problem) = template_problem(template) {
            return Err(Error::Usage(format!(
                "{name}:{}: extra tag `{template}`: {problem}",
                line_of(template)
            )));
        }
    }
    for (registry, prefixes) in &config.mirrors {
        let host_ok = crate::reference::RegistryRef::parse(&format!("{registry}/x"))
            .is_ok_and(|r| r.registry == *registry || registry == "index.docker.io");
        if !host_ok {
            return Err(Error::Usage(format!(
                "{name}:{}: [mirrors] key `{registry}` is not a registry host",
                line_of(registry)
            )));
        }
        // Prefixes with `$VAR`s are checked once expanded, when used.
        for prefix in prefixes.iter().filter(|p| !p.contains('$')) {
            crate::reference::RegistryRef::parse(prefix)
                .ok()
                .filter(|r| r.tag.is_none() && r.digest.is_none())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{name}:{}: mirror `{prefix}` for {registry} is not host/path",
                        line_of(prefix)
                    ))
                })?;
        }
    }
    Ok(config)
}

/// What is wrong with an `extra` tag template, if anything: an unknown or unclosed
/// placeholder, or a tag that is invalid whatever the placeholders become.
fn template_problem(template: &str) -> Option<String> {
    let mut rest = template;
    let mut filled = String::new();
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            return Some("a `{` is not closed".into());
        };
        let name = &rest[start + 1..start + end];
        if !PLACEHOLDERS.contains(&name) {
            return Some(format!(
                "unknown placeholder `{{{name}}}` (known: {})",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
            ));
        }
        filled.push_str(&rest[..start]);
        filled.push('x');
        rest = &rest[start + end + 1..];
    }
    filled.push_str(rest);
    crate::reference::validate_tag(&filled).err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_syntax() {
        let c = parse(
            "[tags]\nlatest = false\nsha-length = 10\nstrip-v = true\nextra = [\"dev-{sha}\", \"{branch}-latest\"]\n",
            "hoist.toml",
        )
        .unwrap();
        assert!(!c.tags.latest && c.tags.strip_v && c.tags.sha && c.tags.branch);
        assert_eq!(c.tags.sha_length, Some(10));
        assert_eq!(c.tags.extra.len(), 2);
        assert_eq!(parse("", "x").unwrap().tags, TagConfig::default());
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (
                "[tags]\nlatest = true\nlatset = false\n",
                "hoist.toml:3:",
                "unknown field",
            ),
            ("[tags]\n\nlatest = yes\n", "hoist.toml:3:", ""),
            ("[tagz]\n", "hoist.toml:1:", "unknown field"),
            (
                "[tags]\nextra = [\"x-{commit}\"]\n",
                "hoist.toml:2:",
                "unknown placeholder `{commit}`",
            ),
            (
                "[tags]\nsha-length = 99\n",
                "hoist.toml:2:",
                "between 4 and 40",
            ),
        ];
        for (text, place, what) in cases {
            let e = parse(text, "hoist.toml").unwrap_err().to_string();
            assert!(e.starts_with(place) && e.contains(what), "{text:?} → {e}");
        }
    }
}
