//! What `.git` says when no CI does (and the commit time when the CI does not): read with
//! gix, no `git` binary needed.

use std::path::Path;

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitInfo {
    pub sha: String,
    /// The checked-out branch; `None` when HEAD is detached.
    pub branch: Option<String>,
    pub commit_time: i64,
    /// Uncommitted changes to tracked files (or files added to the index).
    pub dirty: bool,
    /// `origin`'s default branch, when the clone recorded it (`refs/remotes/origin/HEAD`).
    pub default_branch: Option<String>,
    /// `origin`'s fetch URL, as configured.
    pub origin_url: Option<String>,
}

/// Reads the repository containing `dir`; `None` when there is none or it has no commit.
/// `check_dirty` compares the work tree with HEAD (a walk of the tree: only when needed).
pub fn read(dir: &Path, check_dirty: bool) -> Result<Option<GitInfo>> {
    let Ok(repo) = gix::discover(dir) else {
        return Ok(None);
    };
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Error::malformed(
            format!("git repository {}", repo.path().display()),
            format!("{what}: {e}"),
        )
    };
    let Ok(commit) = repo.head_commit() else {
        return Ok(None);
    };
    let commit_time = commit
        .time()
        .map_err(|e| fail("cannot read the commit time", &e))?
        .seconds;
    let branch = repo
        .head_name()
        .ok()
        .flatten()
        .map(|name| name.shorten().to_string());
    let dirty = check_dirty
        && repo
            .is_dirty()
            .map_err(|e| fail("cannot compare the work tree with HEAD", &e))?;
    let default_branch = repo
        .try_find_reference("refs/remotes/origin/HEAD")
        .ok()
        .flatten()
        .and_then(|r| {
            r.target().try_name().map(|n| {
                n.shorten()
                    .to_string()
                    .trim_start_matches("origin/")
                    .to_string()
            })
        });
    let origin_url = repo.find_remote("origin").ok().and_then(|remote| {
        remote
            .url(gix::remote::Direction::Fetch)
            .map(|url| url.to_bstring().to_string())
    });
    Ok(Some(GitInfo {
        sha: commit.id.to_string(),
        branch,
        commit_time,
        dirty,
        default_branch,
        origin_url,
    }))
}
