//! The tags of a build (design.md's table): short SHA always; the branch slug on branches;
//! `latest` on the default branch; `v1.2.3`, `v1.2`, `v1` (and `latest`) for a release, where a
//! moving tag never moves backwards; `mr-<iid>` for merge requests; the environment's name.

use std::cmp::Ordering;

use serde::Serialize;

use super::CiContext;
use super::config::TagConfig;

/// One tag to push. `moving` tags are expected to point at newer images over time (`latest`,
/// `v1`, a branch): on an immutable ECR repository they are skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlannedTag {
    pub name: String,
    pub moving: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TagPlan {
    pub tags: Vec<PlannedTag>,
    /// Things the user should know (a non-semver tag, a tag that did not move).
    pub notices: Vec<String>,
}

impl TagPlan {
    fn add(&mut self, name: String, moving: bool) {
        if !self.tags.iter().any(|t| t.name == name) {
            self.tags.push(PlannedTag { name, moving });
        }
    }

    pub fn names(&self) -> Vec<String> {
        self.tags.iter().map(|t| t.name.clone()).collect()
    }
}

/// GitLab's `CI_COMMIT_REF_SLUG`: lowercase, every character outside `[0-9a-z]` becomes `-`,
/// at most 63 bytes, no leading or trailing `-`.
pub fn slug(s: &str) -> String {
    let lowered: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let cut: String = lowered.chars().take(63).collect();
    cut.trim_matches('-').to_string()
}

/// Makes any text a valid tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
pub fn sanitize_tag(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(['.', '-']);
    trimmed.chars().take(128).collect()
}

/// A semantic version as found in git tags (`v1.2.3`, `1.2.3-rc.1+build`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub v_prefix: bool,
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Option<String>,
    pub build: Option<String>,
}

impl Version {
    pub fn parse(tag: &str) -> Option<Version> {
        let (v_prefix, rest) = match tag.strip_prefix(['v', 'V']) {
            Some(rest) => (true, rest),
            None => (false, tag),
        };
        let (rest, build) = match rest.split_once('+') {
            Some((r, b)) => (r, Some(b.to_string())),
            None => (rest, None),
        };
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) if !p.is_empty() => (c, Some(p.to_string())),
            Some(_) => return None,
            None => (rest, None),
        };
        let number = |s: &str| -> Option<u64> {
            if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
                return None;
            }
            s.parse().ok()
        };
        let mut parts = core.split('.');
        let version = Version {
            v_prefix,
            major: number(parts.next()?)?,
            minor: number(parts.next()?)?,
            patch: number(parts.next()?)?,
            pre,
            build,
        };
        parts.next().is_none().then_some(version)
    }

    fn core(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }

    /// Semver precedence (build metadata ignored).
    pub fn precedence(&self, other: &Version) -> Ordering {
        self.core()
            .cmp(&other.core())
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => compare_pre(a, b),
            })
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let ord = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => p.cmp(q),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// The tags for `ctx`, given the tags the target repository already has (`existing`, for
/// "a moving tag never moves backwards").
pub fn plan(ctx: &CiContext, config: &TagConfig, existing: &[String]) -> TagPlan {
    let mut plan = TagPlan::default();
    let short_sha = ctx.short_sha().map(|s| {
        s.chars()
            .take(config.sha_length.unwrap_or(8))
            .collect::<String>()
    });
    if config.sha
        && let Some(sha) = &short_sha
    {
        plan.add(sha.clone(), false);
    }
    let branch_slug = ctx
        .branch
        .as_ref()
        .map(|b| ctx.ref_slug.clone().unwrap_or_else(|| slug(b)));
    let mut version: Option<Version> = None;
    if let Some(mr) = &ctx.merge_request {
        plan.add(format!("mr-{}", sanitize_tag(mr)), true);
    } else if let Some(tag) = &ctx.git_tag {
        match Version::parse(tag) {
            Some(v) => {
                release_tags(&mut plan, &v, config, existing);
                version = Some(v);
            }
            None => {
                let own = sanitize_tag(tag);
                plan.notices.push(format!(
                    "git tag `{tag}` is not a semantic version (vMAJOR.MINOR.PATCH): tagged `{own}` only"
                ));
                plan.add(own, false);
            }
        }
    } else if let Some(slug) = branch_slug.as_ref().filter(|_| ctx.in_ci()) {
        if config.branch && !slug.is_empty() {
            plan.add(slug.clone(), true);
        }
        if config.latest && ctx.branch.is_some() && ctx.branch == ctx.default_branch {
            plan.add("latest".into(), true);
        }
    }
    if let Some(environment) = &ctx.environment {
        plan.add(sanitize_tag(environment), true);
    }
    for template in &config.extra {
        let values = TemplateValues {
            sha: short_sha.as_deref(),
            full_sha: ctx.sha.as_deref(),
            branch: branch_slug.as_deref(),
            tag: ctx.git_tag.as_deref(),
            version: version.as_ref(),
            mr: ctx.merge_request.as_deref(),
            environment: ctx.environment.as_deref(),
        };
        if let Some(name) = render(template, &values) {
            let moving = !["{sha}", "{full_sha}", "{tag}", "{version}"]
                .iter()
                .any(|p| template.contains(p));
            plan.add(sanitize_tag(&name), moving);
        }
    }
    plan
}

fn release_tags(plan: &mut TagPlan, v: &Version, config: &TagConfig, existing: &[String]) {
    let prefix = if v.v_prefix && !config.strip_v {
        "v"
    } else {
        ""
    };
    let full = sanitize_tag(&format!(
        "{prefix}{}.{}.{}{}{}",
        v.major,
        v.minor,
        v.patch,
        v.pre.as_ref().map(|p| format!("-{p}")).unwrap_or_default(),
        v.build
            .as_ref()
            .map(|b| format!("-{b}"))
            .unwrap_or_default(),
    ));
    plan.add(full, false);
    if v.pre.is_some() {
        return;
    }
    let releases: Vec<Version> = existing
        .iter()
        .filter_map(|t| Version::parse(t))
        .filter(|e| e.pre.is_none())
        .collect();
    // The newest existing release that the moving tag `name` would skip over, if any.
    let newer = |same: &dyn Fn(&Version) -> bool| {
        releases
            .iter()
            .filter(|e| same(e) && e.precedence(v) == Ordering::Greater)
            .max_by(|a, b| a.precedence(b))
            .map(|e| format!("{}.{}.{}", e.major, e.minor, e.patch))
    };
    let mut moving = vec![
        (
            format!("{prefix}{}.{}", v.major, v.minor),
            newer(&|e: &Version| e.major == v.major && e.minor == v.minor),
        ),
        (
            format!("{prefix}{}", v.major),
            newer(&|e: &Version| e.major == v.major),
        ),
    ];
    if config.latest {
        moving.push(("latest".into(), newer(&|_: &Version| true)));
    }
    for (name, newer) in moving {
        match newer {
            None => plan.add(name, true),
            Some(newer) => plan.notices.push(format!(
                "`{name}` stays where it is: release {newer} is newer than {}.{}.{}",
                v.major, v.minor, v.patch
            )),
        }
    }
}

struct TemplateValues<'a> {
    sha: Option<&'a str>,
    full_sha: Option<&'a str>,
    branch: Option<&'a str>,
    tag: Option<&'a str>,
    version: Option<&'a Version>,
    mr: Option<&'a str>,
    environment: Option<&'a str>,
}

/// The placeholders `[tags] extra` templates may use.
pub const PLACEHOLDERS: [&str; 7] = ["sha", "full_sha", "branch", "tag", "version", "mr", "env"];

/// Renders `dev-{sha}`-style templates; `None` when a placeholder has no value here (e.g.
/// `{branch}` in a tag pipeline).
fn render(template: &str, values: &TemplateValues) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let value = match &rest[start + 1..end] {
            "sha" => values.sha?.to_string(),
            "full_sha" => values.full_sha?.to_string(),
            "branch" => values.branch?.to_string(),
            "tag" => values.tag?.to_string(),
            "version" => {
                let v = values.version?;
                format!("{}.{}.{}", v.major, v.minor, v.patch)
            }
            "mr" => values.mr?.to_string(),
            "env" => values.environment?.to_string(),
            _ => return None,
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::Provider;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn gitlab() -> CiContext {
        CiContext {
            provider: Some(Provider::GitLab),
            sha: Some(SHA.into()),
            default_branch: Some("main".into()),
            ..Default::default()
        }
    }

    fn names(ctx: &CiContext, existing: &[&str]) -> Vec<String> {
        let existing: Vec<String> = existing.iter().map(|s| s.to_string()).collect();
        plan(ctx, &TagConfig::default(), &existing).names()
    }

    #[test]
    fn the_design_table() {
        let branch = CiContext {
            branch: Some("Feature/Login_Page".into()),
            ..gitlab()
        };
        assert_eq!(names(&branch, &[]), ["01234567", "feature-login-page"]);
        let main = CiContext {
            branch: Some("main".into()),
            ..gitlab()
        };
        assert_eq!(names(&main, &[]), ["01234567", "main", "latest"]);
        let release = CiContext {
            git_tag: Some("v1.2.3".into()),
            ..gitlab()
        };
        assert_eq!(
            names(&release, &[]),
            ["01234567", "v1.2.3", "v1.2", "v1", "latest"]
        );
        let pre = CiContext {
            git_tag: Some("v1.3.0-rc.1".into()),
            ..gitlab()
        };
        assert_eq!(names(&pre, &["v1.2.3"]), ["01234567", "v1.3.0-rc.1"]);
        let mr = CiContext {
            merge_request: Some("42".into()),
            branch: None,
            ..gitlab()
        };
        assert_eq!(names(&mr, &[]), ["01234567", "mr-42"]);
        let production = CiContext {
            branch: Some("main".into()),
            environment: Some("production".into()),
            ..gitlab()
        };
        assert_eq!(
            names(&production, &[]),
            ["01234567", "main", "latest", "production"]
        );
        let laptop = CiContext {
            provider: Some(Provider::Local),
            sha: Some(SHA.into()),
            branch: Some("main".into()),
            default_branch: Some("main".into()),
            ..Default::default()
        };
        assert_eq!(names(&laptop, &[]), ["01234567"]);
    }

    #[test]
    fn an_older_patch_tagged_later_does_not_move_newer_tags() {
        let ctx = CiContext {
            git_tag: Some("v1.2.4".into()),
            ..gitlab()
        };
        let existing = [
            "v1.2.3",
            "v1.2",
            "v1",
            "latest",
            "v1.3.0",
            "v1.3.1-rc.1",
            "v2.0.0",
        ];
        let existing: Vec<String> = existing.iter().map(|s| s.to_string()).collect();
        let p = plan(&ctx, &TagConfig::default(), &existing);
        // v1.2 moves (1.2.4 is the newest 1.2), v1 and latest do not.
        assert_eq!(p.names(), ["01234567", "v1.2.4", "v1.2"]);
        assert!(
            p.notices
                .iter()
                .any(|n| n.contains("`v1` stays") && n.contains("1.3.0"))
        );
        assert!(
            p.notices
                .iter()
                .any(|n| n.contains("`latest` stays") && n.contains("2.0.0"))
        );
    }

    #[test]
    fn non_semver_tags_get_their_sanitised_name_and_a_notice() {
        let ctx = CiContext {
            git_tag: Some("release/2024 spring".into()),
            ..gitlab()
        };
        let p = plan(&ctx, &TagConfig::default(), &[]);
        assert_eq!(p.names(), ["01234567", "release-2024-spring"]);
        assert!(p.notices[0].contains("not a semantic version"));
    }

    #[test]
    fn config_templates_v_less_semver_and_no_latest() {
        let config = TagConfig {
            latest: false,
            strip_v: true,
            extra: vec![
                "dev-{sha}".into(),
                "{branch}-latest".into(),
                "{mr}-x".into(),
            ],
            ..TagConfig::default()
        };
        let main = CiContext {
            branch: Some("main".into()),
            ..gitlab()
        };
        let p = plan(&main, &config, &[]);
        assert_eq!(
            p.names(),
            ["01234567", "main", "dev-01234567", "main-latest"]
        );
        assert!(!p.tags[2].moving && p.tags[3].moving);
        let release = CiContext {
            git_tag: Some("v2.0.1".into()),
            ..gitlab()
        };
        assert_eq!(
            plan(&release, &config, &[]).names(),
            ["01234567", "2.0.1", "2.0", "2", "dev-01234567"]
        );
    }

    #[test]
    fn semver_parsing_and_precedence() {
        let v = |s| Version::parse(s).unwrap();
        assert!(Version::parse("v1.2").is_none());
        assert!(Version::parse("v01.2.3").is_none());
        assert!(Version::parse("1.2.3.4").is_none());
        assert!(Version::parse("v1.2.3-").is_none());
        assert_eq!(v("1.2.3+b5").build.as_deref(), Some("b5"));
        assert_eq!(v("v1.0.0-rc.1").precedence(&v("v1.0.0")), Ordering::Less);
        assert_eq!(
            v("v1.0.0-rc.2").precedence(&v("v1.0.0-rc.10")),
            Ordering::Less
        );
        assert_eq!(
            v("v1.0.0-alpha").precedence(&v("v1.0.0-1")),
            Ordering::Greater
        );
        assert_eq!(v("v1.10.0").precedence(&v("v1.9.9")), Ordering::Greater);
    }

    #[test]
    fn slugs_follow_gitlab() {
        assert_eq!(slug("Feature/ABC_1"), "feature-abc-1");
        assert_eq!(slug("-x-"), "x");
        assert_eq!(slug(&"a".repeat(70)).len(), 63);
        assert_eq!(sanitize_tag(".hidden tag"), "hidden-tag");
    }
}
