//! COPY and ADD as BuildKit's file operation performs them (solver/llbsolver/file/backend.go
//! `docopy` and tonistiigi/fsutil `copy.Copy`), on [`FsView`]s instead of mounted snapshots:
//! wildcards resolved against the source, the source path followed through symlinks, directory
//! contents copied (not the directory), destination symlinks followed, missing destination
//! directories created, existing directories under a copied tree given the source's metadata.

use super::fsview::{Content, FsError, FsView, Kind, Node, base_name, clean_abs, join, parent_of};
use super::ignore::PatternMatcher;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileOpError {
    #[error("{0}: not found")]
    NotFound(String),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{0}: bad wildcard pattern")]
    BadPattern(String),
}

/// How a copy sets ownership, modes and times.
#[derive(Clone, Debug, Default)]
pub struct CopySpec<'a> {
    /// `--chown` resolved to numbers; else sources keep theirs.
    pub chown: Option<(u32, u32)>,
    /// `--chmod` (octal, with setuid/setgid/sticky).
    pub chmod: Option<u32>,
    /// `--parents`: only paths matching these are copied (their parents come along).
    pub include: Option<&'a PatternMatcher>,
    /// `--exclude`.
    pub exclude: Option<&'a PatternMatcher>,
    /// mtime for directories the copy creates.
    pub now: i64,
}

/// BuildKit's `cleanPath`: absolute and clean, but a trailing `/` or `/.` is kept because it
/// means "a directory".
pub fn clean_keep_slash(p: &str) -> String {
    let cleaned = clean_abs(p);
    if p.ends_with("/.") {
        if cleaned == "/" {
            "/.".into()
        } else {
            format!("{cleaned}/.")
        }
    } else if p.ends_with('/') && cleaned != "/" {
        format!("{cleaned}/")
    } else {
        cleaned
    }
}

/// Copies `src_path` of `src` to `dest` in `dst` with wildcards allowed (a pattern matching
/// nothing copies nothing, as BuildKit allows for COPY).
pub fn copy(
    src: &FsView,
    src_path: &str,
    dst: &mut FsView,
    dest: &str,
    spec: &CopySpec,
) -> Result<(), FileOpError> {
    let src_path = clean_keep_slash(src_path);
    let dest = clean_keep_slash(dest);
    for matched in resolve_wildcards(src, &src_path)? {
        copy_one(src, &matched, dst, &dest, spec)?;
    }
    Ok(())
}

/// fsutil `Copy` for one source (already wildcard-resolved).
pub fn copy_one(
    src: &FsView,
    src_path: &str,
    dst: &mut FsView,
    dest: &str,
    spec: &CopySpec,
) -> Result<(), FileOpError> {
    let (owner_uid, owner_gid) = spec.chown.unwrap_or((0, 0));
    let dir_mode = spec.chmod.map_or(0o755, |m| m & 0o777);
    // The destination's directory part (or all of it, for `dir/`) must exist.
    let (dir_part, file_part) = match dest.rfind('/') {
        Some(i) => (&dest[..=i], &dest[i + 1..]),
        None => ("/", dest),
    };
    let ensure = if !file_part.is_empty() && file_part != "." {
        dir_part
    } else {
        dest
    };
    let ensure = dst.resolve(ensure, true)?;
    dst.mkdir_all(&ensure, dir_mode, owner_uid, owner_gid, spec.now)?;

    let dest_resolved = dst.resolve(&clean_abs(dest), true)?;
    let src_followed = src.resolve(src_path, true)?;
    let src_node = src
        .get(&src_followed)
        .ok_or_else(|| FileOpError::NotFound(src_path.to_string()))?;

    // prepareTargetDir
    let dest_is_dir = dst.stat(&dest_resolved)?.map(|(_, n)| n.is_dir());
    let mut target = dest_resolved.clone();
    if !src_node.is_dir() && dest_is_dir == Some(true) {
        target = join(&dest_resolved, base_name(&clean_abs(src_path)));
    }
    let parent = if src_node.is_dir() && dest_is_dir.is_none() {
        target.clone()
    } else {
        parent_of(&target).unwrap_or("/").to_string()
    };
    let parent = dst.resolve(&parent, true)?;
    dst.mkdir_all(&parent, dir_mode, owner_uid, owner_gid, spec.now)?;

    let mut copier = Copier {
        src,
        dst,
        spec,
        parents: Vec::new(),
        copied: Default::default(),
        track_copies: src.has_hardlinks_under(&src_followed),
    };
    copier.copy_node(&src_followed, "", &target, false, false, false)
}

struct PendingParent {
    src: String,
    dst: String,
    copied: bool,
}

struct Copier<'a, 'b> {
    src: &'a FsView,
    dst: &'a mut FsView,
    spec: &'a CopySpec<'b>,
    /// Directories entered but not yet created in the destination (they were not included).
    parents: Vec<PendingParent>,
    /// Files copied so far: source path → destination path, so hard links follow them.
    copied: std::collections::HashMap<String, String>,
    /// Whether the source has hard links to follow (else `copied` stays empty).
    track_copies: bool,
}

impl<'a> Copier<'a, '_> {
    /// fsutil `copier.copy`: `components` is the path relative to the copy's source root.
    fn copy_node(
        &mut self,
        src: &str,
        components: &str,
        target: &str,
        overwrite: bool,
        parent_included: bool,
        parent_excluded: bool,
    ) -> Result<(), FileOpError> {
        let mut include = true;
        let mut excluded = false;
        if !components.is_empty() {
            if let Some(m) = self.spec.include {
                include = m.matches_with_parent(components, parent_included);
            }
            if let Some(m) = self.spec.exclude
                && m.matches_with_parent(components, parent_excluded)
            {
                include = false;
                excluded = true;
            }
            let exclusions = self
                .spec
                .exclude
                .is_some_and(PatternMatcher::has_exclusions);
            if !include && self.spec.include.is_none() && !exclusions {
                return Ok(());
            }
        }
        let Some(node) = self.src.get(src).cloned() else {
            return Err(FileOpError::NotFound(src.to_string()));
        };
        if !include && !node.is_dir() {
            return Ok(());
        }
        if include {
            self.create_parent_dirs(overwrite)?;
        }
        if !node.is_dir() {
            // ensureEmptyFileTarget: a file replaces a file or link, never a directory.
            if self.dst.get(target).is_some_and(Node::is_dir) {
                return Err(FsError::ReplaceDirectory(target.to_string()).into());
            }
        }
        match &node.kind {
            Kind::Dir => {
                self.parents.push(PendingParent {
                    src: src.to_string(),
                    dst: target.to_string(),
                    copied: false,
                });
                // Children inherit a pattern match of this directory, never the implicit
                // inclusion of the copy's root.
                let matched = !components.is_empty() && include && self.spec.include.is_some();
                let result = self.copy_dir(
                    src,
                    components,
                    target,
                    &node,
                    overwrite,
                    (include, matched),
                    excluded,
                );
                self.parents.pop();
                result
            }
            Kind::Hardlink(to) => {
                if let Some(copied) = self.copied.get(to).cloned() {
                    // Its file was copied by this same copy: link to the copy (fsutil's
                    // getLinkSource).
                    let link = Node {
                        kind: Kind::Hardlink(copied),
                        size: 0,
                        content: Content::None,
                        ..node
                    };
                    self.put_with_info(target, link);
                } else {
                    // Otherwise it is a file with the linked file's content.
                    let linked = self
                        .src
                        .get(to)
                        .cloned()
                        .ok_or_else(|| FileOpError::NotFound(to.clone()))?;
                    let file = Node {
                        kind: Kind::File,
                        size: linked.size,
                        content: linked.content,
                        ..node
                    };
                    self.put_with_info(target, file);
                    self.remember_copy(to, target);
                }
                Ok(())
            }
            kind => {
                if *kind == Kind::File {
                    self.remember_copy(src, target);
                }
                self.put_with_info(target, node);
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_dir(
        &mut self,
        src: &str,
        components: &str,
        target: &str,
        node: &Node,
        overwrite: bool,
        (include, matched): (bool, bool),
        excluded: bool,
    ) -> Result<(), FileOpError> {
        let mut created = false;
        if include {
            created = self.copy_directory_only(target, node, overwrite)?;
            if let Some(p) = self.parents.last_mut() {
                p.copied = true;
            }
        }
        let exclusions = self
            .spec
            .exclude
            .is_some_and(PatternMatcher::has_exclusions);
        if !excluded || exclusions {
            let view: &'a FsView = self.src;
            for (child, _) in view.children(src) {
                let name = base_name(child);
                let child_components = if components.is_empty() {
                    name.to_string()
                } else {
                    format!("{components}/{name}")
                };
                self.copy_node(
                    child,
                    &child_components,
                    &join(target, name),
                    true,
                    matched,
                    excluded,
                )?;
            }
        }
        // The directory's own metadata: always under a copied tree, else only if created.
        if include && (overwrite || created) {
            let mut dir = self
                .dst
                .get(target)
                .cloned()
                .unwrap_or_else(|| node.clone());
            self.apply_info(&mut dir, node);
            self.dst.put(target, dir);
        }
        Ok(())
    }

    /// fsutil `copyDirectoryOnly`: creates the directory, or re-modes an existing one when
    /// overwriting metadata; a non-directory in the way is an error.
    fn copy_directory_only(
        &mut self,
        target: &str,
        node: &Node,
        overwrite: bool,
    ) -> Result<bool, FileOpError> {
        match self.dst.get(target) {
            None => {
                self.dst.put(
                    target,
                    Node {
                        content: super::fsview::Content::None,
                        ..node.clone()
                    },
                );
                Ok(true)
            }
            Some(existing) if !existing.is_dir() => {
                Err(FsError::CopyToNonDirectory(target.to_string()).into())
            }
            Some(existing) => {
                if overwrite {
                    let mut dir = existing.clone();
                    dir.mode = node.mode;
                    self.dst.put(target, dir);
                }
                Ok(false)
            }
        }
    }

    /// Creates the parents (entered, not included) of an included path, with the source's
    /// metadata, as fsutil's `createParentDirs` does for `--parents` and include patterns.
    fn create_parent_dirs(&mut self, overwrite: bool) -> Result<(), FileOpError> {
        for i in 0..self.parents.len() {
            if self.parents[i].copied {
                continue;
            }
            let (src, dst) = (self.parents[i].src.clone(), self.parents[i].dst.clone());
            let node = self
                .src
                .stat(&src)?
                .map(|(_, n)| n.clone())
                .ok_or_else(|| FileOpError::NotFound(src.clone()))?;
            if !node.is_dir() {
                return Err(FsError::NotADirectory(src).into());
            }
            if self.copy_directory_only(&dst, &node, overwrite)? {
                let mut dir = self.dst.get(&dst).cloned().expect("just created");
                self.apply_info(&mut dir, &node);
                self.dst.put(&dst, dir);
            }
            self.parents[i].copied = true;
        }
        Ok(())
    }

    /// fsutil `copyFileInfo`: owner (`--chown` or the source's), mode (`--chmod` or the
    /// source's; links keep theirs), the source's mtime.
    fn apply_info(&self, into: &mut Node, from: &Node) {
        let (uid, gid) = self.spec.chown.unwrap_or((from.uid, from.gid));
        into.uid = uid;
        into.gid = gid;
        if !matches!(into.kind, Kind::Symlink(_)) {
            into.mode = self.spec.chmod.unwrap_or(from.mode) & 0o7777;
        }
        into.mtime = from.mtime;
    }

    fn remember_copy(&mut self, src: &str, target: &str) {
        if self.track_copies {
            self.copied.insert(src.to_string(), target.to_string());
        }
    }

    fn put_with_info(&mut self, target: &str, node: Node) {
        let mut copied = node.clone();
        self.apply_info(&mut copied, &node);
        self.dst.put(target, copied);
    }
}

/// fsutil `ResolveWildcards`: the path up to the first component with a wildcard is followed,
/// the rest is matched (Go `filepath.Match`) against paths below it; a matched directory is
/// not searched further. Without wildcards the path itself is returned.
pub fn resolve_wildcards(src: &FsView, path: &str) -> Result<Vec<String>, FileOpError> {
    let mut fixed = Vec::new();
    let mut pattern = Vec::new();
    for component in path.split('/').filter(|c| !c.is_empty()) {
        if pattern.is_empty() && !has_wildcards(component) {
            fixed.push(component);
        } else {
            pattern.push(component);
        }
    }
    if pattern.is_empty() {
        return Ok(vec![path.to_string()]);
    }
    let base = src.resolve(&format!("/{}", fixed.join("/")), true)?;
    let pattern = pattern.join("/");
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        let children: Vec<(String, bool)> = src
            .children(&dir)
            .map(|(k, n)| (k.clone(), n.is_dir()))
            .collect();
        // Visit in name order (a stack reverses it).
        let mut descend = Vec::new();
        for (child, is_dir) in children {
            let rel = child[base.len()..].trim_start_matches('/');
            if go_match(&pattern, rel).map_err(|_| FileOpError::BadPattern(path.to_string()))? {
                out.push(child);
            } else if is_dir {
                descend.push(child);
            }
        }
        stack.extend(descend.into_iter().rev());
    }
    out.sort();
    Ok(out)
}

fn has_wildcards(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// A malformed wildcard pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, PartialEq, Eq)]
pub struct BadPattern;

/// Go's `path/filepath.Match` on `/`-separated names: `*` (not across `/`), `?`, `[...]`
/// classes with ranges and `^` negation, `\` escapes. Err on a malformed pattern.
pub fn go_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matching with one backtrack point per `*` (segments never cross '/').
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                c if ni < n.len() => {
                    let (ok, next) = match c {
                        '?' => (n[ni] != '/', pi + 1),
                        '[' => {
                            let (ok, next) = match_class(&p, pi, n[ni])?;
                            (ok && n[ni] != '/', next)
                        }
                        '\\' => {
                            let esc = *p.get(pi + 1).ok_or(BadPattern)?;
                            (esc == n[ni], pi + 2)
                        }
                        c => (c == n[ni], pi + 1),
                    };
                    if ok {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        // Backtrack: let the last `*` swallow one more character (never a '/').
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => {
                // Go reports a bad pattern even when the name fails to match early.
                validate_rest(&p, pi)?;
                return Ok(false);
            }
        }
    }
}

fn validate_rest(p: &[char], mut i: usize) -> Result<(), BadPattern> {
    while i < p.len() {
        match p[i] {
            '[' => i = match_class(p, i, '\0')?.1,
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(BadPattern);
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Matches `c` against the class starting at `p[start] == '['`; returns (matched, index after `]`).
fn match_class(p: &[char], start: usize, c: char) -> Result<(bool, usize), BadPattern> {
    let mut i = start + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i).ok_or(BadPattern)?;
        if ch == ']' && !first {
            return Ok((matched != negated, i + 1));
        }
        first = false;
        let lo = read_class_char(p, &mut i)?;
        let hi = if p.get(i) == Some(&'-') {
            i += 1;
            read_class_char(p, &mut i)?
        } else {
            lo
        };
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

/// Go's `getEsc`: one class character, `\` escapes; a bare `-` or `]` here is malformed.
fn read_class_char(p: &[char], i: &mut usize) -> Result<char, BadPattern> {
    let mut ch = *p.get(*i).ok_or(BadPattern)?;
    if ch == '-' || ch == ']' {
        return Err(BadPattern);
    }
    if ch == '\\' {
        *i += 1;
        ch = *p.get(*i).ok_or(BadPattern)?;
    }
    *i += 1;
    if *i >= p.len() {
        return Err(BadPattern);
    }
    Ok(ch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::fsview::Content;

    fn file(size: u64) -> Node {
        Node {
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 7,
            size,
            content: Content::None,
        }
    }

    fn context() -> FsView {
        let mut fs = FsView::new();
        fs.put_base("/a.txt", file(1));
        fs.put_base("/b.txt", file(2));
        fs.put_base("/dir", Node::dir(0o750, 0, 0, 0));
        fs.put_base("/dir/x", file(3));
        fs.put_base("/dir/sub", Node::dir(0o700, 0, 0, 0));
        fs.put_base(
            "/dir/sub/y",
            Node {
                mode: 0o755,
                ..file(4)
            },
        );
        fs.put_base(
            "/link",
            Node {
                kind: Kind::Symlink("dir".into()),
                ..file(0)
            },
        );
        fs
    }

    fn paths(fs: &FsView) -> Vec<String> {
        fs.iter().map(|(k, _)| k.clone()).collect()
    }

    #[test]
    fn go_match_semantics() {
        assert_eq!(go_match("*.txt", "a.txt"), Ok(true));
        assert_eq!(go_match("*.txt", "d/a.txt"), Ok(false));
        assert_eq!(go_match("d/*", "d/a"), Ok(true));
        assert_eq!(go_match("[a-c]?", "b1"), Ok(true));
        assert_eq!(go_match("[^a-c]", "b"), Ok(false));
        assert_eq!(go_match("\\*", "*"), Ok(true));
        assert_eq!(go_match("a*b*c", "aXbYc"), Ok(true));
        assert_eq!(go_match("[", "a"), Err(BadPattern));
        assert_eq!(go_match("*", ""), Ok(true));
        assert_eq!(go_match("[]a]", "a"), Err(BadPattern));
        assert_eq!(go_match("[a-]", "a"), Err(BadPattern));
    }

    #[test]
    fn file_to_new_path_and_into_directory() {
        let src = context();
        let mut dst = FsView::new();
        copy(&src, "/a.txt", &mut dst, "/new/name", &CopySpec::default()).unwrap();
        copy(&src, "/b.txt", &mut dst, "/into/", &CopySpec::default()).unwrap();
        assert_eq!(
            paths(&dst),
            ["/", "/into", "/into/b.txt", "/new", "/new/name"]
        );
    }

    #[test]
    fn directory_contents_not_the_directory() {
        let src = context();
        let mut dst = FsView::new();
        copy(&src, "/dir", &mut dst, "/app", &CopySpec::default()).unwrap();
        assert_eq!(
            paths(&dst),
            ["/", "/app", "/app/sub", "/app/sub/y", "/app/x"]
        );
        // prepareTargetDir creates the destination itself with 0755 before copying into it.
        assert_eq!(dst.get("/app").unwrap().mode, 0o755);
        // Through a symlinked source path too.
        let mut dst2 = FsView::new();
        copy(&src, "/link", &mut dst2, "/app", &CopySpec::default()).unwrap();
        assert_eq!(paths(&dst2), paths(&dst));
    }

    #[test]
    fn wildcards_and_chown_chmod() {
        let src = context();
        let mut dst = FsView::new();
        let spec = CopySpec {
            chown: Some((1000, 1000)),
            chmod: Some(0o600),
            ..Default::default()
        };
        copy(&src, "/*.txt", &mut dst, "/out/", &spec).unwrap();
        assert_eq!(paths(&dst), ["/", "/out", "/out/a.txt", "/out/b.txt"]);
        let out = dst.get("/out").unwrap();
        assert_eq!(
            (out.uid, out.mode),
            (1000, 0o600),
            "created dirs get chown and chmod perms"
        );
        let a = dst.get("/out/a.txt").unwrap();
        assert_eq!((a.uid, a.gid, a.mode), (1000, 1000, 0o600));
        // A wildcard matching nothing is not an error.
        copy(&src, "/*.none", &mut dst, "/x/", &CopySpec::default()).unwrap();
        assert!(dst.get("/x").is_none());
        // A missing plain path is.
        assert_eq!(
            copy(&src, "/missing", &mut dst, "/x/", &CopySpec::default()),
            Err(FileOpError::NotFound("/missing".into()))
        );
    }

    #[test]
    fn destination_symlinks_are_followed_and_existing_dirs_take_source_metadata() {
        let src = context();
        let mut dst = FsView::new();
        dst.put_base("/usr/bin", Node::dir(0o755, 0, 0, 0));
        dst.put_base(
            "/bin",
            Node {
                kind: Kind::Symlink("usr/bin".into()),
                ..file(0)
            },
        );
        dst.put_base("/app/sub", Node::dir(0o777, 5, 5, 0));
        copy(&src, "/a.txt", &mut dst, "/bin/", &CopySpec::default()).unwrap();
        assert!(dst.get("/usr/bin/a.txt").is_some());
        copy(&src, "/dir", &mut dst, "/app", &CopySpec::default()).unwrap();
        let sub = dst.get("/app/sub").unwrap();
        assert_eq!(
            (sub.mode, sub.uid),
            (0o700, 0),
            "existing dir under the copy takes source metadata"
        );
        assert_eq!(dst.get("/app").unwrap().uid, 0);
        copy(&src, "/a.txt", &mut dst, "/app/sub", &CopySpec::default()).unwrap();
        assert!(
            dst.get("/app/sub/a.txt").is_some(),
            "into an existing directory"
        );
        // A file cannot replace a directory.
        dst.put_base("/app/b.txt", Node::dir(0o755, 0, 0, 0));
        assert!(matches!(
            copy(&src, "/b.txt", &mut dst, "/app/", &CopySpec::default()),
            Err(FileOpError::Fs(FsError::ReplaceDirectory(_)))
        ));
    }
}
