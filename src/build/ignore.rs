//! `.dockerignore` handling, ported from Docker/BuildKit so that a context is filtered exactly
//! as `docker build` filters it.
//!
//! Ported (not copied) from moby/patternmatcher @ 5a6d8429 (`patternmatcher.go`,
//! `ignorefile/ignorefile.go` and their tests) and tonistiigi/fsutil @ 6d9dc2eb (`filter.go`,
//! which replaced `walker.go` in 87ffeebb). Unix only: `/` is the only separator and `\`
//! escapes.
//!
//! # Ignore files ([`parse_ignore_file`], `ignorefile.ReadAll`)
//!
//! Lines are split on `\n` (a trailing `\r` dropped); a UTF-8 BOM is dropped from the first
//! line; a line starting with `#` (before trimming) is a comment; the rest is trimmed and
//! blank lines skipped. A leading `!` marks an exception and is trimmed again; the remainder
//! is `filepath.Clean`ed and one leading `/` removed (unless the result is just `/`). An
//! empty exception stays `"!"` and is rejected later by [`PatternMatcher::new`]. A line of
//! 64 KiB or more fails the whole file, as Go's `bufio.Scanner` does.
//!
//! # Patterns ([`PatternMatcher::new`])
//!
//! Each pattern is trimmed (blank ones skipped), cleaned (before the `!` is looked at, so
//! `!./a` keeps its `./`), checked with `filepath.Match`'s syntax rules and then, like
//! upstream, translated into a Go regular expression: `**` (eating one following `/`) is
//! `(.*/)?`, or `.*` at the end; `*` is `[^/]*`; `?` is `[^/]`; `\x` stays `\x`; `[`/`]` pass
//! through; only `$ ( ) + .` are escaped. Patterns without wildcards are compared as strings:
//! plain ones exactly, `prefix**` by prefix, `**suffix` by suffix (also matching the suffix
//! without its leading `/`). The regular expression is what decides, quirks included:
//! `|`, `{` and `}` reach it unescaped (upstream's escape bitmap overflows for bytes >= 64),
//! so `*.js|*.ts` is an alternation; `\d`, `\b`, `\Q…\E`, `[[:alpha:]]` and `x{2,3}` keep
//! their regexp meaning; a `[` opened in a pattern swallows the regexp text generated for
//! a following `*` or `?`. The private `re` module implements that regexp dialect with a
//! Pike VM, so matching is linear in the path and never backtracks.
//!
//! Patterns apply in order and the last one that matches decides: the path is excluded
//! unless that pattern is an exception. A pattern also matches everything below a directory
//! it matches. A pattern is only evaluated when it could change the verdict so far, which
//! shapes the state the walk hands down (see below).
//!
//! # How BuildKit walks a context (fsutil `filterFS.Walk`)
//!
//! The walk is top-down. Each entry is matched with `MatchesUsingParentResults`, passing the
//! per-pattern results of its parent directory ([`MatchInfo`]): a pattern that matched the
//! parent counts as matching the child without being re-evaluated, so a directory pattern
//! covers everything below it. An excluded file is dropped. An excluded directory is:
//! - skipped entirely when there are no exceptions;
//! - skipped when every exception is a plain path (ignoring a trailing `/*` or `/**`, no
//!   `* [ ] ? ^ \`) and none of them lies inside it;
//! - otherwise descended into without being emitted; if something below is included, the
//!   excluded parents are emitted first so the tree stays connected.
//!
//! [`PatternMatcher::may_reinclude_under`] is that descend-or-skip decision.
//!
//! # Differences from upstream
//!
//! - Regexp errors (e.g. `[z-a]`, `\x`) are reported by [`PatternMatcher::new`]; upstream
//!   compiles lazily and fails only when the pattern is first evaluated.
//! - Unicode classes (`\pL`, `\p{Greek}`) are rejected: std has no Unicode tables.

use std::iter::once;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    #[error("invalid ignore pattern {pattern:?}: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("ignore file line {line} is too long (64 KiB or more)")]
    LineTooLong { line: usize },
}

/// `bufio.Scanner`'s default buffer: `ReadAll` fails on a line this long (without its `\n`).
const MAX_LINE: usize = 64 * 1024;

/// Parse a .dockerignore file's bytes into patterns (ReadAll semantics).
pub fn parse_ignore_file(content: &str) -> Result<Vec<String>, IgnoreError> {
    let mut patterns = Vec::new();
    for (index, raw) in content.split('\n').enumerate() {
        if raw.len() >= MAX_LINE {
            return Err(IgnoreError::LineTooLong { line: index + 1 });
        }
        let mut line = raw.strip_suffix('\r').unwrap_or(raw);
        if index == 0 {
            line = line.strip_prefix('\u{FEFF}').unwrap_or(line);
        }
        // Comments are recognised before trimming: "  # x" is a pattern.
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (invert, rest) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        let mut pattern = String::new();
        if !rest.is_empty() {
            pattern = clean(rest);
            if pattern.len() > 1 && pattern.starts_with('/') {
                pattern.remove(0);
            }
        }
        if invert {
            pattern.insert(0, '!');
        }
        patterns.push(pattern);
    }
    Ok(patterns)
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Go's `filepath.Dir`.
fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".to_string(),
    }
}

/// Per-pattern results for a directory, handed to its children while walking top-down
/// (upstream's `MatchInfo`). The default value means "no information about the parent".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

#[derive(Debug)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
    /// fsutil's `onlyPrefixExcludeExceptions`: every exception is a plain path.
    only_prefix_exceptions: bool,
    /// The last path evaluated top-down with each ancestor's [`MatchInfo`]: a walker asks
    /// about siblings and children next, so most ancestors are reused.
    chain: Mutex<Vec<(String, MatchInfo)>>,
}

#[derive(Debug)]
struct Pattern {
    /// The cleaned pattern without its `!` (upstream's `cleanedPattern`).
    text: String,
    exclusion: bool,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex(re::Regex),
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        let text = self.text.as_bytes();
        let path_bytes = path.as_bytes();
        match &self.kind {
            Kind::Exact => path == self.text,
            // Upstream slices bytes: a BOM before "**" leaves a partial character here.
            Kind::Prefix => {
                path_bytes.starts_with(text.get(..text.len().saturating_sub(2)).unwrap_or_default())
            }
            Kind::Suffix => {
                let suffix = text.get(2..).unwrap_or_default();
                path_bytes.ends_with(suffix)
                    || suffix.first() == Some(&b'/') && path_bytes == &suffix[1..]
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }

    /// Whether the pattern matches a parent directory of `path` (no parent information).
    fn matches_a_parent(&self, path: &str) -> bool {
        let parent = dir(path);
        if parent == "." {
            return false;
        }
        // Upstream splits the parent on '/' and re-joins each leading run of elements.
        parent
            .match_indices('/')
            .map(|(i, _)| &parent[..i])
            .chain(once(parent.as_str()))
            .any(|d| self.matches(d))
    }
}

impl PatternMatcher {
    pub fn new(patterns: &[String]) -> Result<Self, IgnoreError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for raw in patterns {
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let bad = |reason: String| IgnoreError::BadPattern {
                pattern: trimmed.to_string(),
                reason,
            };
            let cleaned = clean(trimmed);
            let (exclusion, text) = match cleaned.strip_prefix('!') {
                Some("") => return Err(bad("illegal exclusion pattern: \"!\"".to_string())),
                Some(rest) => (true, rest.to_string()),
                None => (false, cleaned),
            };
            if !glob_syntax_ok(&text) {
                return Err(bad("syntax error in pattern".to_string()));
            }
            let kind = match translate(&text) {
                (MatchType::Exact, _) => Kind::Exact,
                (MatchType::Prefix, _) => Kind::Prefix,
                (MatchType::Suffix, _) => Kind::Suffix,
                (MatchType::Regex, source) => Kind::Regex(
                    re::Regex::new(&source)
                        .map_err(|e| bad(format!("syntax error in pattern ({e})")))?,
                ),
            };
            compiled.push(Pattern {
                text,
                exclusion,
                kind,
            });
        }
        let exclusions = compiled.iter().any(|p| p.exclusion);
        let only_prefix_exceptions = !compiled.iter().any(|p| {
            p.exclusion && without_trailing_glob(&p.text).contains(['*', '[', ']', '?', '^', '\\'])
        });
        Ok(PatternMatcher {
            patterns: compiled,
            exclusions,
            only_prefix_exceptions,
            chain: Mutex::new(Vec::new()),
        })
    }

    /// Whether `path` (slash-separated, relative to the context root, no leading "./") is excluded,
    /// given whether its parent directory was excluded — the MatchesUsingParentResults semantics
    /// fsutil uses while walking top-down.
    ///
    /// Without exceptions the parent's verdict is all that carries over. With exceptions the
    /// per-pattern state does not fit in a bool, so the ancestors are evaluated here (cached
    /// between calls) and `parent_excluded` is not needed.
    pub fn matches_with_parent(&self, path: &str, parent_excluded: bool) -> bool {
        if self.exclusions {
            return self.top_down(path);
        }
        parent_excluded || self.patterns.iter().any(|p| p.matches(path))
    }

    /// Upstream's `MatchesUsingParentResults`: the verdict for `path` and the state its
    /// children need. With `MatchInfo::default()` (or one from another matcher) parents are
    /// matched from the path itself, which is `MatchesOrParentMatches`.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> (bool, MatchInfo) {
        let context = (!parent.parent_matched.is_empty()
            && parent.parent_matched.len() == self.patterns.len())
        .then_some(parent.parent_matched.as_slice());
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = context.is_some_and(|c| c[i]);
            if !hit {
                // Only a pattern that could flip the verdict is evaluated.
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(path) || context.is_none() && pattern.matches_a_parent(path);
            }
            info[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        (
            matched,
            MatchInfo {
                parent_matched: info,
            },
        )
    }

    /// Convenience for a single path: evaluates all parents top-down (MatchesOrParentMatches semantics).
    ///
    /// The path is cleaned first and "." is never excluded. Parents are evaluated the way
    /// the walk does, so this agrees with what ends up in the context; upstream's
    /// `MatchesOrParentMatches` (`matches_using_parent_results` with no parent information)
    /// differs in rare cases, e.g. `**/c` then `!a` keeps `a/b/c` but the walk drops it.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path);
        path != "." && self.top_down(&path)
    }

    /// Whether any exception (`!pattern`) exists.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether a directory that is excluded may still contain re-included entries so the
    /// walker must descend into it (fsutil's logic); false means skip it entirely.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        if !self.exclusions {
            return false;
        }
        if !self.only_prefix_exceptions {
            return true;
        }
        // fsutil: (pattern + "/").starts_with(dir + "/").
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            without_trailing_glob(&p.text)
                .strip_prefix(dir)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The walk's verdict for `path`, evaluating each ancestor with its parent's state.
    fn top_down(&self, path: &str) -> bool {
        let mut chain = self.chain.lock().unwrap_or_else(PoisonError::into_inner);
        let ends = path
            .match_indices('/')
            .map(|(i, _)| i)
            .chain(once(path.len()));
        let mut depth = 0;
        for end in ends {
            let prefix = &path[..end];
            if chain.get(depth).is_none_or(|(p, _)| p != prefix) {
                chain.truncate(depth);
                let parent = chain
                    .last()
                    .map(|(_, info)| info.clone())
                    .unwrap_or_default();
                let (_, info) = self.matches_using_parent_results(prefix, &parent);
                chain.push((prefix.to_string(), info));
            }
            depth += 1;
        }
        chain.truncate(depth);
        let info = chain.last().map(|(_, info)| info.parent_matched.as_slice());
        // The verdict is set by the last pattern that matched.
        self.patterns
            .iter()
            .zip(info.unwrap_or_default())
            .rev()
            .find(|(_, hit)| **hit)
            .is_some_and(|(p, _)| !p.exclusion)
    }
}

/// fsutil's `patternWithoutTrailingGlob`.
fn without_trailing_glob(pattern: &str) -> &str {
    let pattern = pattern.strip_suffix("/**").unwrap_or(pattern);
    pattern.strip_suffix("/*").unwrap_or(pattern)
}

/// Whether `filepath.Match` accepts `pattern`: upstream calls it only for its error, and
/// Go checks every chunk (the text between unbracketed `*`s) even when the match fails.
fn glob_syntax_ok(pattern: &str) -> bool {
    let mut rest = pattern.trim_start_matches('*');
    while !rest.is_empty() {
        let bytes = rest.as_bytes();
        let mut in_range = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if i + 1 < bytes.len() => i += 1,
                b'[' => in_range = true,
                b']' => in_range = false,
                b'*' if !in_range => break,
                _ => {}
            }
            i += 1;
        }
        // `i` stops on an ASCII byte or the end, so both slices are on char boundaries.
        if !glob_chunk_ok(&rest[..i]) {
            return false;
        }
        rest = rest[i..].trim_start_matches('*');
    }
    true
}

/// The syntax half of Go's `matchChunk`.
fn glob_chunk_ok(mut chunk: &str) -> bool {
    while let Some(first) = chunk.chars().next() {
        chunk = &chunk[first.len_utf8()..];
        match first {
            '[' => {
                chunk = chunk.strip_prefix('^').unwrap_or(chunk);
                let mut ranges = 0;
                loop {
                    if ranges > 0 && chunk.starts_with(']') {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some(rest) = glob_class_char(chunk) else {
                        return false;
                    };
                    chunk = rest;
                    if let Some(hi) = chunk.strip_prefix('-') {
                        let Some(rest) = glob_class_char(hi) else {
                            return false;
                        };
                        chunk = rest;
                    }
                    ranges += 1;
                }
            }
            '\\' => match chunk.chars().next() {
                Some(escaped) => chunk = &chunk[escaped.len_utf8()..],
                None => return false,
            },
            _ => {}
        }
    }
    true
}

/// Go's `getEsc`: one possibly escaped class character, which must not end the chunk.
fn glob_class_char(chunk: &str) -> Option<&str> {
    if chunk.is_empty() || chunk.starts_with(['-', ']']) {
        return None;
    }
    let chunk = chunk.strip_prefix('\\').unwrap_or(chunk);
    let c = chunk.chars().next()?;
    let rest = &chunk[c.len_utf8()..];
    (!rest.is_empty()).then_some(rest)
}

#[derive(Debug, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// Upstream's `Pattern.compile`: the match type, and the regexp source (used for `Regex`).
fn translate(pattern: &str) -> (MatchType, String) {
    // text/scanner skips a leading BOM.
    let body = pattern.strip_prefix('\u{FEFF}').unwrap_or(pattern);
    let mut chars = body.chars().peekable();
    let mut source = String::from("^");
    let mut kind = MatchType::Exact;
    let mut index = 0;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                chars.next_if_eq(&'/');
                if chars.peek().is_none() {
                    if kind == MatchType::Exact {
                        kind = MatchType::Prefix;
                    } else {
                        source.push_str(".*");
                        kind = MatchType::Regex;
                    }
                } else {
                    source.push_str("(.*/)?");
                    kind = MatchType::Regex;
                }
                if index == 0 {
                    kind = MatchType::Suffix;
                }
            }
            '*' => {
                source.push_str("[^/]*");
                kind = MatchType::Regex;
            }
            '?' => {
                source.push_str("[^/]");
                kind = MatchType::Regex;
            }
            // Upstream's bitmap meant to cover `.+()|{}$` only works below byte 64.
            '$' | '(' | ')' | '+' | '.' => {
                source.push('\\');
                source.push(c);
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    source.push('\\');
                    source.push(escaped);
                    kind = MatchType::Regex;
                }
                None => source.push('\\'),
            },
            '[' | ']' => {
                source.push(c);
                kind = MatchType::Regex;
            }
            _ => source.push(c),
        }
        index += 1;
    }
    if kind == MatchType::Regex {
        source.push('$');
    }
    (kind, source)
}

/// The subset of Go's `regexp` (RE2 syntax, `Perl` flags) that translated patterns reach,
/// parsed like `regexp/syntax` and run as a Pike VM: time is linear in the path times the
/// program size, with no backtracking.
mod re {
    use std::cmp::Ordering;

    /// Sorted, disjoint, inclusive code point ranges.
    type Ranges = Vec<(u32, u32)>;

    const MAX_RUNE: u32 = 0x10FFFF;
    /// Go's `maxRepeat` for `{n,m}`.
    const MAX_REPEAT: i64 = 1000;
    /// Go's `maxSize` (128 MiB of 40-byte instructions): bigger programs are "too large".
    const MAX_INSTS: usize = (128 << 20) / 40;
    /// Bounds recursion over the tree (Go's `maxHeight` plays this role).
    const MAX_DEPTH: usize = 1000;

    #[derive(Debug, Clone, Copy)]
    enum Look {
        BeginText,
        EndText,
        WordBoundary,
        NotWordBoundary,
    }

    impl Look {
        fn holds(self, prev: Option<char>, next: Option<char>) -> bool {
            // Go's \b is ASCII-only.
            let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            match self {
                Look::BeginText => prev.is_none(),
                Look::EndText => next.is_none(),
                Look::WordBoundary => word(prev) != word(next),
                Look::NotWordBoundary => word(prev) == word(next),
            }
        }
    }

    enum Node {
        Class(Ranges),
        AnyNotNl,
        Look(Look),
        Concat(Vec<Node>),
        Alt(Vec<Node>),
        Repeat {
            sub: Box<Node>,
            min: u32,
            max: Option<u32>,
            /// Written `{n,m}`: only these count towards Go's nested repeat limit.
            counted: bool,
        },
    }

    #[derive(Debug)]
    enum Inst {
        Class(Box<[(u32, u32)]>),
        AnyNotNl,
        Look(Look),
        Split(usize, usize),
        Jmp(usize),
        Match,
    }

    #[derive(Debug)]
    pub(super) struct Regex {
        insts: Vec<Inst>,
    }

    impl Regex {
        pub(super) fn new(source: &str) -> Result<Regex, String> {
            let tree = parse(source)?;
            if size(&tree) >= MAX_INSTS {
                return Err("expression too large".to_string());
            }
            let mut insts = Vec::new();
            emit(&tree, &mut insts);
            insts.push(Inst::Match);
            Ok(Regex { insts })
        }

        /// Go's `MatchString`: a match anywhere (the translated `^` anchors most patterns).
        pub(super) fn is_match(&self, text: &str) -> bool {
            let mut current = Threads::new(self.insts.len());
            let mut next = Threads::new(self.insts.len());
            let mut stack = Vec::new();
            let mut chars = text.chars().peekable();
            let mut c = chars.next();
            self.add(&mut current, &mut stack, 0, None, c);
            loop {
                for &pc in &current.dense {
                    let advances = match self.insts.get(pc) {
                        Some(Inst::Match) => return true,
                        Some(Inst::Class(ranges)) => c.is_some_and(|c| contains(ranges, c as u32)),
                        Some(Inst::AnyNotNl) => c.is_some_and(|c| c != '\n'),
                        _ => false,
                    };
                    if advances {
                        self.add(&mut next, &mut stack, pc + 1, c, chars.peek().copied());
                    }
                }
                let Some(prev) = c else {
                    return false;
                };
                c = chars.next();
                std::mem::swap(&mut current, &mut next);
                next.clear();
                // Unanchored: a match may also start here (top-level `|` can drop the `^`).
                self.add(&mut current, &mut stack, 0, Some(prev), c);
            }
        }

        /// Adds `pc` and everything reachable from it without consuming input.
        fn add(
            &self,
            threads: &mut Threads,
            stack: &mut Vec<usize>,
            pc: usize,
            prev: Option<char>,
            next: Option<char>,
        ) {
            stack.push(pc);
            while let Some(pc) = stack.pop() {
                if !threads.insert(pc) {
                    continue;
                }
                match self.insts.get(pc) {
                    Some(Inst::Jmp(to)) => stack.push(*to),
                    Some(Inst::Split(a, b)) => {
                        stack.push(*b);
                        stack.push(*a);
                    }
                    Some(Inst::Look(look)) if look.holds(prev, next) => stack.push(pc + 1),
                    _ => {}
                }
            }
        }
    }

    /// A sparse set of program counters: O(1) insert, clear and membership.
    struct Threads {
        dense: Vec<usize>,
        sparse: Vec<usize>,
    }

    impl Threads {
        fn new(len: usize) -> Threads {
            Threads {
                dense: Vec::new(),
                sparse: vec![0; len],
            }
        }

        fn insert(&mut self, pc: usize) -> bool {
            let Some(&slot) = self.sparse.get(pc) else {
                return false;
            };
            if self.dense.get(slot) == Some(&pc) {
                return false;
            }
            self.sparse[pc] = self.dense.len();
            self.dense.push(pc);
            true
        }

        fn clear(&mut self) {
            self.dense.clear();
        }
    }

    fn contains(ranges: &[(u32, u32)], c: u32) -> bool {
        ranges
            .binary_search_by(|&(lo, hi)| {
                if hi < c {
                    Ordering::Less
                } else if lo > c {
                    Ordering::Greater
                } else {
                    Ordering::Equal
                }
            })
            .is_ok()
    }

    /// Instructions `emit` produces for `node`, saturating.
    fn size(node: &Node) -> usize {
        match node {
            Node::Class(_) | Node::AnyNotNl | Node::Look(_) => 1,
            Node::Concat(subs) => subs.iter().fold(0, |n, s| n.saturating_add(size(s))),
            Node::Alt(subs) => subs.iter().fold(subs.len().saturating_sub(1) * 2, |n, s| {
                n.saturating_add(size(s))
            }),
            Node::Repeat { sub, min, max, .. } => {
                let one = size(sub);
                let optional = match max {
                    None => one.saturating_add(2),
                    Some(max) => {
                        (max.saturating_sub(*min) as usize).saturating_mul(one.saturating_add(1))
                    }
                };
                (*min as usize).saturating_mul(one).saturating_add(optional)
            }
        }
    }

    fn emit(node: &Node, insts: &mut Vec<Inst>) {
        match node {
            Node::Class(ranges) => insts.push(Inst::Class(ranges.clone().into_boxed_slice())),
            Node::AnyNotNl => insts.push(Inst::AnyNotNl),
            Node::Look(look) => insts.push(Inst::Look(*look)),
            Node::Concat(subs) => subs.iter().for_each(|s| emit(s, insts)),
            Node::Alt(subs) => {
                let mut jumps = Vec::new();
                for (i, sub) in subs.iter().enumerate() {
                    if i + 1 == subs.len() {
                        emit(sub, insts);
                        break;
                    }
                    let split = insts.len();
                    insts.push(Inst::Split(split + 1, 0));
                    emit(sub, insts);
                    jumps.push(insts.len());
                    insts.push(Inst::Jmp(0));
                    insts[split] = Inst::Split(split + 1, insts.len());
                }
                let end = insts.len();
                for jump in jumps {
                    insts[jump] = Inst::Jmp(end);
                }
            }
            Node::Repeat { sub, min, max, .. } => {
                for _ in 0..*min {
                    emit(sub, insts);
                }
                match max {
                    None => {
                        let split = insts.len();
                        insts.push(Inst::Split(split + 1, 0));
                        emit(sub, insts);
                        insts.push(Inst::Jmp(split));
                        insts[split] = Inst::Split(split + 1, insts.len());
                    }
                    // `x{0,3}` as `x?x?x?`: the same strings as Go's nested form.
                    Some(max) => {
                        for _ in *min..*max {
                            let split = insts.len();
                            insts.push(Inst::Split(split + 1, 0));
                            emit(sub, insts);
                            insts[split] = Inst::Split(split + 1, insts.len());
                        }
                    }
                }
            }
        }
    }

    #[derive(Default)]
    struct Frame {
        alternatives: Vec<Node>,
        current: Vec<Node>,
    }

    impl Frame {
        fn finish(mut self) -> Node {
            if self.alternatives.is_empty() {
                return Node::Concat(self.current);
            }
            self.alternatives.push(Node::Concat(self.current));
            Node::Alt(self.alternatives)
        }
    }

    fn literal(c: u32) -> Node {
        Node::Class(vec![(c, c)])
    }

    /// Go's `regexp/syntax.Parse` with `Perl` flags, for the constructs Go accepts.
    fn parse(source: &str) -> Result<Node, String> {
        let mut stack = vec![Frame::default()];
        let mut t = source;
        let mut last_was_repeat = false;
        while let Some(c) = t.chars().next() {
            let mut repeat = false;
            let Some(frame) = stack.last_mut() else {
                return Err("unexpected )".to_string());
            };
            match c {
                '(' => {
                    if stack.len() > MAX_DEPTH {
                        return Err("expression nests too deeply".to_string());
                    }
                    stack.push(Frame::default());
                    t = &t[1..];
                }
                '|' => {
                    let current = std::mem::take(&mut frame.current);
                    frame.alternatives.push(Node::Concat(current));
                    t = &t[1..];
                }
                ')' => {
                    if stack.len() < 2 {
                        return Err("unexpected )".to_string());
                    }
                    let node = stack.pop().map(Frame::finish);
                    if let (Some(node), Some(parent)) = (node, stack.last_mut()) {
                        parent.current.push(node);
                    }
                    t = &t[1..];
                }
                '^' | '$' | '.' => {
                    frame.current.push(match c {
                        '^' => Node::Look(Look::BeginText),
                        '$' => Node::Look(Look::EndText),
                        _ => Node::AnyNotNl,
                    });
                    t = &t[1..];
                }
                '[' => {
                    let (ranges, rest) = parse_class(t)?;
                    frame.current.push(Node::Class(ranges));
                    t = rest;
                }
                '*' | '+' | '?' => {
                    let (min, max) = match c {
                        '*' => (0, None),
                        '+' => (1, None),
                        _ => (0, Some(1)),
                    };
                    t = repeat_op(
                        &mut frame.current,
                        &t[1..],
                        (min, max),
                        false,
                        last_was_repeat,
                    )?;
                    repeat = true;
                }
                '{' => match parse_repeat(t) {
                    None => {
                        frame.current.push(literal('{' as u32));
                        t = &t[1..];
                    }
                    Some((min, max, rest)) => {
                        if !(0..=MAX_REPEAT).contains(&min)
                            || max > MAX_REPEAT
                            || max >= 0 && min > max
                        {
                            return Err(format!(
                                "invalid repeat count: `{}`",
                                &t[..t.len() - rest.len()]
                            ));
                        }
                        let bounds = (min as u32, u32::try_from(max).ok());
                        let before = t;
                        t = repeat_op(&mut frame.current, rest, bounds, true, last_was_repeat)?;
                        if (min >= 2 || max >= 2)
                            && !frame
                                .current
                                .last()
                                .is_some_and(|n| repeat_is_valid(n, MAX_REPEAT))
                        {
                            return Err(format!(
                                "invalid repeat count: `{}`",
                                &before[..before.len() - t.len()]
                            ));
                        }
                        repeat = true;
                    }
                },
                '\\' => t = parse_backslash(t, &mut frame.current)?,
                _ => {
                    frame.current.push(literal(c as u32));
                    t = &t[c.len_utf8()..];
                }
            }
            last_was_repeat = repeat;
        }
        if stack.len() != 1 {
            return Err("missing closing )".to_string());
        }
        Ok(stack
            .pop()
            .map(Frame::finish)
            .unwrap_or(Node::Concat(Vec::new())))
    }

    /// Applies `*`, `+`, `?` or `{n,m}` to the last atom; returns the text after it.
    fn repeat_op<'a>(
        current: &mut Vec<Node>,
        after: &'a str,
        (min, max): (u32, Option<u32>),
        counted: bool,
        last_was_repeat: bool,
    ) -> Result<&'a str, String> {
        // A non-greedy marker changes which match is reported, not whether there is one.
        let after = after.strip_prefix('?').unwrap_or(after);
        if last_was_repeat {
            return Err("invalid nested repetition operator".to_string());
        }
        let sub = current
            .pop()
            .ok_or_else(|| "missing argument to repetition operator".to_string())?;
        current.push(Node::Repeat {
            sub: Box::new(sub),
            min,
            max,
            counted,
        });
        Ok(after)
    }

    /// Go's `repeatIsValid`: nested `{n,m}` counts may multiply to at most `n`.
    fn repeat_is_valid(node: &Node, mut n: i64) -> bool {
        match node {
            Node::Repeat {
                sub,
                min,
                max,
                counted,
                ..
            } => {
                if *counted {
                    let m = match max {
                        Some(0) => return true,
                        Some(max) => i64::from(*max),
                        None => i64::from(*min),
                    };
                    if m > n {
                        return false;
                    }
                    if m > 0 {
                        n /= m;
                    }
                }
                repeat_is_valid(sub, n)
            }
            Node::Concat(subs) | Node::Alt(subs) => subs.iter().all(|s| repeat_is_valid(s, n)),
            _ => true,
        }
    }

    /// Go's `parseRepeat`: `{n}`, `{n,}` or `{n,m}` (max -1 when open, -1 values when too
    /// big); `None` makes the `{` a literal.
    fn parse_repeat(s: &str) -> Option<(i64, i64, &str)> {
        let s = s.strip_prefix('{')?;
        let (mut min, s) = parse_int(s)?;
        let (max, s) = match s.strip_prefix(',') {
            None => (min, s),
            Some(s) if s.starts_with('}') => (-1, s),
            Some(s) => {
                let (max, s) = parse_int(s)?;
                if max < 0 {
                    min = -1;
                }
                (max, s)
            }
        };
        Some((min, max, s.strip_prefix('}')?))
    }

    /// Go's `parseInt`: decimal without leading zeros, -1 when too big.
    fn parse_int(s: &str) -> Option<(i64, &str)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 1 && s.starts_with('0') {
            return None;
        }
        let mut n: i64 = 0;
        for d in s[..digits].bytes() {
            if n >= 100_000_000 {
                n = -1;
                break;
            }
            n = n * 10 + i64::from(d - b'0');
        }
        Some((n, &s[digits..]))
    }

    /// A `\` outside a class; returns the text after the escape.
    fn parse_backslash<'a>(t: &'a str, current: &mut Vec<Node>) -> Result<&'a str, String> {
        let look = match t.as_bytes().get(1) {
            Some(b'A') => Some(Look::BeginText),
            Some(b'z') => Some(Look::EndText),
            Some(b'b') => Some(Look::WordBoundary),
            Some(b'B') => Some(Look::NotWordBoundary),
            Some(b'C') => return Err("invalid escape sequence: `\\C`".to_string()),
            Some(b'Q') => {
                let (quoted, rest) = t[2..].split_once("\\E").unwrap_or((&t[2..], ""));
                current.extend(quoted.chars().map(|c| literal(c as u32)));
                return Ok(rest);
            }
            _ => None,
        };
        if let Some(look) = look {
            current.push(Node::Look(look));
            return Ok(&t[2..]);
        }
        unsupported_unicode_class(t)?;
        if let Some((ranges, rest)) = perl_class(t) {
            current.push(Node::Class(ranges));
            return Ok(rest);
        }
        let (c, rest) = parse_escape(t)?;
        current.push(literal(c));
        Ok(rest)
    }

    fn unsupported_unicode_class(t: &str) -> Result<(), String> {
        if t.starts_with("\\p") || t.starts_with("\\P") {
            return Err("Unicode classes (\\p, \\P) are not supported".to_string());
        }
        Ok(())
    }

    /// Go's `parseEscape`: a single-character escape.
    fn parse_escape(s: &str) -> Result<(u32, &str), String> {
        let mut t = &s[1..];
        let invalid = |t: &str| {
            Err(format!(
                "invalid escape sequence: `{}`",
                &s[..s.len() - t.len()]
            ))
        };
        let Some(c) = t.chars().next() else {
            return Err("trailing backslash at end of expression".to_string());
        };
        t = &t[c.len_utf8()..];
        let is_octal = |t: &str| {
            t.as_bytes()
                .first()
                .is_some_and(|b| (b'0'..=b'7').contains(b))
        };
        match c {
            // A lone non-zero digit would be a backreference.
            '1'..='7' if !is_octal(t) => invalid(t),
            '0'..='7' => {
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    if !is_octal(t) {
                        break;
                    }
                    r = r * 8 + u32::from(t.as_bytes()[0] - b'0');
                    t = &t[1..];
                }
                Ok((r, t))
            }
            'x' => {
                let Some(c) = t.chars().next() else {
                    return invalid(t);
                };
                t = &t[c.len_utf8()..];
                if c != '{' {
                    let Some(d) = t.chars().next() else {
                        return invalid(t);
                    };
                    t = &t[d.len_utf8()..];
                    return match (c.to_digit(16), d.to_digit(16)) {
                        (Some(x), Some(y)) => Ok((x * 16 + y, t)),
                        _ => invalid(t),
                    };
                }
                let mut r: u32 = 0;
                let mut digits = 0;
                loop {
                    let Some(c) = t.chars().next() else {
                        return invalid(t);
                    };
                    t = &t[c.len_utf8()..];
                    if c == '}' {
                        break;
                    }
                    let Some(v) = c.to_digit(16) else {
                        return invalid(t);
                    };
                    r = r * 16 + v;
                    if r > MAX_RUNE {
                        return invalid(t);
                    }
                    digits += 1;
                }
                if digits == 0 {
                    return invalid(t);
                }
                Ok((r, t))
            }
            'a' => Ok((7, t)),
            'f' => Ok((12, t)),
            'n' => Ok((10, t)),
            'r' => Ok((13, t)),
            't' => Ok((9, t)),
            'v' => Ok((11, t)),
            _ if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c as u32, t)),
            _ => invalid(t),
        }
    }

    /// `\d \s \w` and their negations.
    fn perl_class(t: &str) -> Option<(Ranges, &str)> {
        let rest = t.strip_prefix('\\')?;
        let name = *rest.as_bytes().first()?;
        let ranges: &[(u32, u32)] = match name.to_ascii_lowercase() {
            b'd' => &[(0x30, 0x39)],
            b's' => &[(0x9, 0xa), (0xc, 0xd), (0x20, 0x20)],
            b'w' => &[(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)],
            _ => return None,
        };
        Some((signed(ranges, name.is_ascii_lowercase()), &rest[1..]))
    }

    /// `[:alpha:]` and friends, inside a class; `[:^alpha:]` negates.
    fn posix_class(name: &str) -> Option<Ranges> {
        let inner = name.strip_prefix("[:")?.strip_suffix(":]")?;
        let (positive, inner) = match inner.strip_prefix('^') {
            Some(inner) => (false, inner),
            None => (true, inner),
        };
        let ranges: &[(u32, u32)] = match inner {
            "alnum" => &[(0x30, 0x39), (0x41, 0x5a), (0x61, 0x7a)],
            "alpha" => &[(0x41, 0x5a), (0x61, 0x7a)],
            "ascii" => &[(0x0, 0x7f)],
            "blank" => &[(0x9, 0x9), (0x20, 0x20)],
            "cntrl" => &[(0x0, 0x1f), (0x7f, 0x7f)],
            "digit" => &[(0x30, 0x39)],
            "graph" => &[(0x21, 0x7e)],
            "lower" => &[(0x61, 0x7a)],
            "print" => &[(0x20, 0x7e)],
            "punct" => &[(0x21, 0x2f), (0x3a, 0x40), (0x5b, 0x60), (0x7b, 0x7e)],
            "space" => &[(0x9, 0xd), (0x20, 0x20)],
            "upper" => &[(0x41, 0x5a)],
            "word" => &[(0x30, 0x39), (0x41, 0x5a), (0x5f, 0x5f), (0x61, 0x7a)],
            "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
            _ => return None,
        };
        Some(signed(ranges, positive))
    }

    fn signed(ranges: &[(u32, u32)], positive: bool) -> Ranges {
        if positive {
            ranges.to_vec()
        } else {
            negate(ranges)
        }
    }

    /// Go's `parseClass`; `s` starts at the `[`.
    fn parse_class(s: &str) -> Result<(Ranges, &str), String> {
        let mut t = &s[1..];
        let negated = t.starts_with('^');
        if negated {
            t = &t[1..];
        }
        let mut ranges = Vec::new();
        // A `]` right after `[` or `[^` is a literal.
        let mut first = true;
        while first || !t.starts_with(']') {
            first = false;
            if t.len() > 2
                && t.starts_with("[:")
                && let Some(end) = t[2..].find(":]")
            {
                let name = &t[..end + 4];
                let class = posix_class(name)
                    .ok_or_else(|| format!("invalid character class range: `{name}`"))?;
                ranges.extend(class);
                t = &t[end + 4..];
                continue;
            }
            unsupported_unicode_class(t)?;
            if let Some((class, rest)) = perl_class(t) {
                ranges.extend(class);
                t = rest;
                continue;
            }
            let start = t;
            let (lo, rest) = class_char(t, s)?;
            t = rest;
            let mut hi = lo;
            // `[a-]` is `a` or `-`.
            if t.len() >= 2 && t.starts_with('-') && t.as_bytes()[1] != b']' {
                let (h, rest) = class_char(&t[1..], s)?;
                t = rest;
                hi = h;
                if hi < lo {
                    return Err(format!(
                        "invalid character class range: `{}`",
                        &start[..start.len() - t.len()]
                    ));
                }
            }
            ranges.push((lo, hi));
        }
        let ranges = normalize(ranges);
        Ok((if negated { negate(&ranges) } else { ranges }, &t[1..]))
    }

    fn class_char<'a>(t: &'a str, whole: &str) -> Result<(u32, &'a str), String> {
        if t.starts_with('\\') {
            return parse_escape(t);
        }
        match t.chars().next() {
            Some(c) => Ok((c as u32, &t[c.len_utf8()..])),
            None => Err(format!("missing closing ]: `{whole}`")),
        }
    }

    /// Sorts and merges overlapping or adjacent ranges.
    fn normalize(mut ranges: Ranges) -> Ranges {
        ranges.sort_unstable();
        let mut merged: Ranges = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        merged
    }

    /// The complement within `0..=MAX_RUNE` of sorted, disjoint ranges.
    fn negate(ranges: &[(u32, u32)]) -> Ranges {
        let mut out = Vec::with_capacity(ranges.len() + 1);
        let mut next = 0;
        for &(lo, hi) in ranges {
            if lo > next {
                out.push((next, lo - 1));
            }
            next = hi.saturating_add(1);
        }
        if next <= MAX_RUNE {
            out.push((next, MAX_RUNE));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(patterns: &[&str]) -> PatternMatcher {
        let patterns: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        match PatternMatcher::new(&patterns) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    fn new(patterns: &[&str]) -> Result<PatternMatcher, IgnoreError> {
        let patterns: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        PatternMatcher::new(&patterns)
    }

    /// Upstream's package-level `Matches`/`MatchesOrParentMatches(file, patterns)`.
    fn go_matches(file: &str, patterns: &[&str]) -> Result<bool, IgnoreError> {
        let pm = new(patterns)?;
        let file = clean(file);
        if file == "." {
            return Ok(false);
        }
        Ok(pm
            .matches_using_parent_results(&file, &MatchInfo::default())
            .0)
    }

    /// The prefixes of `filepath.Dir(text)` that upstream's tests walk through.
    fn parent_dirs(text: &str) -> Vec<String> {
        let parent = dir(text);
        if parent == "." {
            return Vec::new();
        }
        let parts: Vec<&str> = parent.split('/').collect();
        (1..=parts.len()).map(|i| parts[..i].join("/")).collect()
    }

    // TestMatches' single-pattern table, plus its non-Windows addition.
    const MATCHES: &[(&str, &str, bool)] = &[
        ("**", "file", true),
        ("**", "file/", true),
        ("**/", "file", true),
        ("**/", "file/", true),
        ("**", "/", true),
        ("**/", "/", true),
        ("**", "dir/file", true),
        ("**/", "dir/file", true),
        ("**", "dir/file/", true),
        ("**/", "dir/file/", true),
        ("**/**", "dir/file", true),
        ("**/**", "dir/file/", true),
        ("dir/**", "dir/file", true),
        ("dir/**", "dir/file/", true),
        ("dir/**", "dir/dir2/file", true),
        ("dir/**", "dir/dir2/file/", true),
        ("**/dir", "dir", true),
        ("**/dir", "dir/file", true),
        ("**/dir2/*", "dir/dir2/file", true),
        ("**/dir2/*", "dir/dir2/file/", true),
        ("**/dir2/**", "dir/dir2/dir3/file", true),
        ("**/dir2/**", "dir/dir2/dir3/file/", true),
        ("**file", "file", true),
        ("**file", "dir/file", true),
        ("**/file", "dir/file", true),
        ("**file", "dir/dir/file", true),
        ("**/file", "dir/dir/file", true),
        ("**/file*", "dir/dir/file", true),
        ("**/file*", "dir/dir/file.txt", true),
        ("**/file*txt", "dir/dir/file.txt", true),
        ("**/file*.txt", "dir/dir/file.txt", true),
        ("**/file*.txt*", "dir/dir/file.txt", true),
        ("**/**/*.txt", "dir/dir/file.txt", true),
        ("**/**/*.txt2", "dir/dir/file.txt", false),
        ("**/*.txt", "file.txt", true),
        ("**/**/*.txt", "file.txt", true),
        ("a**/*.txt", "a/file.txt", true),
        ("a**/*.txt", "a/dir/file.txt", true),
        ("a**/*.txt", "a/dir/dir/file.txt", true),
        ("a/*.txt", "a/dir/file.txt", false),
        ("a/*.txt", "a/file.txt", true),
        ("a/*.txt**", "a/file.txt", true),
        ("a[b-d]e", "ae", false),
        ("a[b-d]e", "ace", true),
        ("a[b-d]e", "aae", false),
        ("a[^b-d]e", "aze", true),
        (".*", ".foo", true),
        (".*", "foo", false),
        ("abc.def", "abcdef", false),
        ("abc.def", "abc.def", true),
        ("abc.def", "abcZdef", false),
        ("abc?def", "abcZdef", true),
        ("abc?def", "abcdef", false),
        ("a\\\\", "a\\", true),
        ("**/foo/bar", "foo/bar", true),
        ("**/foo/bar", "dir/foo/bar", true),
        ("**/foo/bar", "dir/dir2/foo/bar", true),
        ("abc/**", "abc", false),
        ("abc/**", "abc/def", true),
        ("abc/**", "abc/def/ghi", true),
        ("**/.foo", ".foo", true),
        ("**/.foo", "bar.foo", false),
        ("a(b)c/def", "a(b)c/def", true),
        ("a(b)c/def", "a(b)c/xyz", false),
        ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
        (
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        (
            "dist/*.whl",
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        ("a\\*b", "a*b", true),
    ];

    // TestMatches' multi-pattern table.
    const MULTI: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            ],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
        (
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
    ];

    fn all_cases() -> Vec<(Vec<&'static str>, &'static str, bool)> {
        MATCHES
            .iter()
            .map(|&(p, t, pass)| (vec![p], t, pass))
            .chain(MULTI.iter().map(|&(p, t, pass)| (p.to_vec(), t, pass)))
            .collect()
    }

    #[test]
    fn matches_or_parent_matches() {
        for (patterns, text, pass) in all_cases() {
            let pm = matcher(&patterns);
            let (res, _) = pm.matches_using_parent_results(text, &MatchInfo::default());
            assert_eq!(res, pass, "patterns={patterns:?} text={text:?}");
        }
    }

    #[test]
    fn matches_using_parent_result_bool() {
        // Upstream runs the single-bool variant on the single-pattern table only.
        for &(pattern, text, pass) in MATCHES {
            let pm = matcher(&[pattern]);
            let mut parent = false;
            for d in parent_dirs(text) {
                parent = pm.matches_with_parent(&d, parent);
            }
            let res = pm.matches_with_parent(text, parent);
            assert_eq!(res, pass, "pattern={pattern:?} text={text:?}");
        }
    }

    #[test]
    fn matches_with_parent_bool_on_multi_patterns() {
        // Exact here too: with exceptions the ancestors are evaluated from the path.
        for (patterns, text, pass) in all_cases() {
            let pm = matcher(&patterns);
            let mut parent = false;
            for d in parent_dirs(text) {
                parent = pm.matches_with_parent(&d, parent);
            }
            assert_eq!(
                pm.matches_with_parent(text, parent),
                pass,
                "{patterns:?} {text:?}"
            );
        }
    }

    #[test]
    fn matches_using_parent_results() {
        for (patterns, text, pass) in all_cases() {
            let pm = matcher(&patterns);
            let mut info = MatchInfo::default();
            for d in parent_dirs(text) {
                info = pm.matches_using_parent_results(&d, &info).1;
            }
            let (res, _) = pm.matches_using_parent_results(text, &info);
            assert_eq!(res, pass, "patterns={patterns:?} text={text:?}");
        }
    }

    #[test]
    fn matches_using_parent_results_no_context() {
        for (patterns, text, pass) in all_cases() {
            let pm = matcher(&patterns);
            let fresh = MatchInfo::default();
            assert_eq!(
                pm.matches_using_parent_results(text, &fresh).0,
                pass,
                "{patterns:?} {text:?}"
            );
        }
    }

    #[test]
    fn is_excluded_agrees_with_table() {
        for (patterns, text, pass) in all_cases() {
            assert_eq!(
                matcher(&patterns).is_excluded(text),
                pass,
                "{patterns:?} {text:?}"
            );
        }
    }

    #[test]
    fn upstream_single_tests() {
        // TestWildcardMatches .. TestMatchesWithMalformedPatterns.
        assert!(go_matches("fileutils.go", &["*"]).unwrap());
        assert!(go_matches("fileutils.go", &["*.go"]).unwrap());
        assert!(go_matches("fileutils.go", &["!fileutils.go", "*.go"]).unwrap());
        assert!(!go_matches("docs/README.md", &["docs", "!docs/README.md"]).unwrap());
        assert!(!go_matches("docs/README.md", &["docs/", "!docs/README.md"]).unwrap());
        assert!(!go_matches("docs/README.md", &["docs/*", "!docs/README.md"]).unwrap());
        assert!(!go_matches("fileutils.go", &["*.go", "!fileutils.go"]).unwrap());
        assert!(!go_matches(".", &["*.go"]).unwrap());
        assert!(go_matches("fileutils.go", &["!"]).is_err());
        assert!(!go_matches("/any/path/there", &[]).unwrap());
        assert!(go_matches("/any/path/there", &["["]).is_err());
    }

    #[test]
    fn upstream_clean_patterns() {
        assert_eq!(matcher(&["docs", "config"]).patterns.len(), 2);
        assert_eq!(matcher(&["docs", "config", ""]).patterns.len(), 2);
        assert!(matcher(&["docs", "!docs/README.md"]).has_exclusions());
        assert!(matcher(&["docs", "  !docs/README.md"]).has_exclusions());
        assert!(matcher(&["docs", "!docs/README.md  "]).has_exclusions());
        assert!(new(&["!"]).is_err());
    }

    // Go's filepath.Match table as upstream's TestMatch runs it; None = ErrBadPattern.
    const GLOB: &[(&str, &str, Option<bool>)] = &[
        ("abc", "abc", Some(true)),
        ("*", "abc", Some(true)),
        ("*c", "abc", Some(true)),
        ("a*", "a", Some(true)),
        ("a*", "abc", Some(true)),
        ("a*", "ab/c", Some(true)),
        ("a*/b", "abc/b", Some(true)),
        ("a*/b", "a/c/b", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
        ("ab[c]", "abc", Some(true)),
        ("ab[b-d]", "abc", Some(true)),
        ("ab[e-g]", "abc", Some(false)),
        ("ab[^c]", "abc", Some(false)),
        ("ab[^b-d]", "abc", Some(false)),
        ("ab[^e-g]", "abc", Some(true)),
        ("a\\*b", "a*b", Some(true)),
        ("a\\*b", "ab", Some(false)),
        ("a?b", "a☺b", Some(true)),
        ("a[^a]b", "a☺b", Some(true)),
        ("a???b", "a☺b", Some(false)),
        ("a[^a][^a][^a]b", "a☺b", Some(false)),
        ("[a-ζ]*", "α", Some(true)),
        ("*[a-ζ]", "A", Some(false)),
        ("a?b", "a/b", Some(false)),
        ("a*b", "a/b", Some(false)),
        ("[\\]a]", "]", Some(true)),
        ("[\\-]", "-", Some(true)),
        ("[x\\-]", "x", Some(true)),
        ("[x\\-]", "-", Some(true)),
        ("[x\\-]", "z", Some(false)),
        ("[\\-x]", "x", Some(true)),
        ("[\\-x]", "-", Some(true)),
        ("[\\-x]", "a", Some(false)),
        ("[]a]", "]", None),
        ("[-]", "-", None),
        ("[x-]", "x", None),
        ("[x-]", "-", None),
        ("[x-]", "z", None),
        ("[-x]", "x", None),
        ("[-x]", "-", None),
        ("[-x]", "a", None),
        ("\\", "a", None),
        ("[a-b-c]", "a", None),
        ("[", "a", None),
        ("[^", "a", None),
        ("[^bc", "a", None),
        ("a[", "a", None),
        ("a[", "ab", None),
        ("*x", "xxx", Some(true)),
    ];

    #[test]
    fn upstream_match_table() {
        for &(pattern, s, want) in GLOB {
            let got = go_matches(s, &[pattern]).ok();
            assert_eq!(got, want, "Match({pattern:?}, {s:?})");
        }
    }

    #[test]
    fn upstream_compile_table() {
        use MatchType::*;
        let table: &[(&str, MatchType, &str)] = &[
            ("*", Regex, "^[^/]*$"),
            ("file*", Regex, "^file[^/]*$"),
            ("*file", Regex, "^[^/]*file$"),
            ("a*/b", Regex, "^a[^/]*/b$"),
            ("**", Suffix, ""),
            ("**/**", Regex, "^(.*/)?.*$"),
            ("dir/**", Prefix, ""),
            ("**/dir", Suffix, ""),
            ("**/dir2/*", Regex, "^(.*/)?dir2/[^/]*$"),
            ("**/dir2/**", Regex, "^(.*/)?dir2/.*$"),
            ("**file", Suffix, ""),
            ("**/file*txt", Regex, "^(.*/)?file[^/]*txt$"),
            ("**/**/*.txt", Regex, "^(.*/)?(.*/)?[^/]*\\.txt$"),
            ("a[b-d]e", Regex, "^a[b-d]e$"),
            (".*", Regex, "^\\.[^/]*$"),
            ("abc.def", Exact, ""),
            ("abc?def", Regex, "^abc[^/]def$"),
            ("**/foo/bar", Suffix, ""),
            ("a(b)c/def", Exact, ""),
            ("a.|)$(}+{bc", Exact, ""),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                Exact,
                "",
            ),
        ];
        for (pattern, kind, source) in table {
            let (got_kind, got_source) = translate(&clean(pattern));
            assert_eq!(&got_kind, kind, "{pattern}");
            if *kind == Regex {
                assert_eq!(got_source, *source, "{pattern}");
            }
        }
    }

    #[test]
    fn malformed_regexp_is_an_error_not_a_panic() {
        // Upstream accepts "[Local-Only]/" in New and fails on every match (moby#52203);
        // here New fails: `l-O` is a reversed range.
        let err = new(&["[Local-Only]/"]).unwrap_err();
        assert!(err.to_string().contains("[Local-Only]/"), "{err}");
    }

    #[test]
    fn upstream_read_all() {
        assert!(parse_ignore_file("").unwrap().is_empty());
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            parse_ignore_file(content).unwrap(),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
    }

    #[test]
    fn ignore_file_details() {
        let content = "\u{FEFF}# bom then comment\r\n../foo\r\n/../bar\nfoo/../baz\n./qux/\n  # not a comment\n/\n//x//y/.\n!./keep\n\t\n";
        assert_eq!(
            parse_ignore_file(content).unwrap(),
            [
                "../foo",
                "bar",
                "baz",
                "qux",
                "# not a comment",
                "/",
                "x/y",
                "!keep"
            ]
        );
        let long = format!("ok\n{}\n", "a".repeat(MAX_LINE));
        assert!(matches!(
            parse_ignore_file(&long),
            Err(IgnoreError::LineTooLong { line: 2 })
        ));
        assert_eq!(
            parse_ignore_file(&"a".repeat(MAX_LINE - 1)).unwrap().len(),
            1
        );
    }

    #[test]
    fn exception_reincludes_file_in_excluded_dir() {
        let pm = matcher(&["docs", "!docs/README.md"]);
        assert!(pm.is_excluded("docs"));
        assert!(!pm.is_excluded("docs/README.md"));
        assert!(pm.is_excluded("docs/other.md"));
        assert!(pm.may_reinclude_under("docs"));
        assert!(!pm.may_reinclude_under("doc"));
        assert!(!pm.may_reinclude_under("docs/sub"));
        // A walker passing only the parent's verdict still gets exact answers.
        assert!(pm.matches_with_parent("docs", false));
        assert!(!pm.matches_with_parent("docs/README.md", true));
        assert!(pm.matches_with_parent("docs/other.md", true));
    }

    #[test]
    fn may_reinclude_under_follows_fsutil() {
        assert!(!matcher(&["node_modules"]).may_reinclude_under("node_modules"));
        let pm = matcher(&["**/*.log", "!important/**"]);
        assert!(pm.may_reinclude_under("important"));
        assert!(!pm.may_reinclude_under("logs"));
        let pm = matcher(&["a", "!a/b/c/*"]);
        assert!(pm.may_reinclude_under("a"));
        assert!(pm.may_reinclude_under("a/b"));
        assert!(pm.may_reinclude_under("a/b/c"));
        assert!(!pm.may_reinclude_under("a/x"));
        // Any wildcard in an exception forces a descent everywhere.
        let pm = matcher(&["*", "!*.md"]);
        assert!(pm.may_reinclude_under("anything"));
        let pm = matcher(&["*", "!src/**/*.rs"]);
        assert!(pm.may_reinclude_under("target"));
    }

    #[test]
    fn double_star_and_parents() {
        let pm = matcher(&["**/node_modules", "!**/node_modules/keep.txt"]);
        assert!(pm.is_excluded("node_modules"));
        assert!(pm.is_excluded("a/b/node_modules/x.js"));
        assert!(!pm.is_excluded("a/node_modules/keep.txt"));
        assert!(!pm.is_excluded("a/b/c.js"));
        let pm = matcher(&["*", "!src", "src/**/*.tmp"]);
        assert!(pm.is_excluded("README.md"));
        assert!(!pm.is_excluded("src/main.rs"));
        assert!(pm.is_excluded("src/a/b.tmp"));
        assert!(!pm.matches_with_parent("src", false));
        assert!(!pm.matches_with_parent("src/lib.rs", false));
    }

    #[test]
    fn cleaning_and_leading_slash() {
        let patterns = parse_ignore_file("/build/../dist\n./cache//\n!/dist/keep\n").unwrap();
        assert_eq!(patterns, ["dist", "cache", "!dist/keep"]);
        let pm = PatternMatcher::new(&patterns).unwrap();
        assert!(pm.is_excluded("dist/x"));
        assert!(!pm.is_excluded("dist/keep"));
        assert!(pm.is_excluded("./cache/a/../b"));
        assert!(!pm.is_excluded("."));
        assert!(!pm.is_excluded(""));
        // New alone does not strip `/`, and cleans before seeing `!`.
        assert!(matcher(&["/abs"]).is_excluded("/abs"));
        assert!(!matcher(&["/abs"]).is_excluded("abs"));
        assert_eq!(matcher(&["!./x"]).patterns[0].text, "./x");
        assert!(new(&["!/"]).is_err());
    }

    #[test]
    fn walk_state_differs_from_no_context() {
        // The walk carries per-pattern state: "!a" is skipped at "a" (nothing excluded yet)
        // so it cannot rescue "a/b/c"; MatchesOrParentMatches re-checks "a" and does.
        let pm = matcher(&["**/c", "!a"]);
        assert!(pm.is_excluded("a/b/c"));
        assert!(
            !pm.matches_using_parent_results("a/b/c", &MatchInfo::default())
                .0
        );
        let mut info = MatchInfo::default();
        for d in ["a", "a/b"] {
            info = pm.matches_using_parent_results(d, &info).1;
        }
        assert!(pm.matches_using_parent_results("a/b/c", &info).0);
    }

    #[test]
    fn bool_walker_agrees_with_match_info_walker() {
        let pm = matcher(&["**/target", "!**/target/keep", "*.o", "!x/*.o", "x/y"]);
        let paths = [
            "a",
            "a/target",
            "a/target/keep",
            "a/target/keep/f",
            "a/target/z",
            "x",
            "x/m.o",
            "x/y",
            "x/y/z.o",
            "x/y/q",
            "m.o",
            "target",
            "target/keep",
        ];
        let mut infos: Vec<(String, MatchInfo, bool)> = Vec::new();
        for path in paths {
            let parent = dir(path);
            let (info, excluded) = infos
                .iter()
                .find(|(p, _, _)| *p == parent)
                .map(|(_, i, e)| (i.clone(), *e))
                .unwrap_or_default();
            let (want, next) = pm.matches_using_parent_results(path, &info);
            assert_eq!(pm.matches_with_parent(path, excluded), want, "{path}");
            assert_eq!(pm.is_excluded(path), want, "{path}");
            infos.push((path.to_string(), next, want));
        }
    }

    #[test]
    fn regexp_quirks_match_upstream() {
        // `|` reaches the regexp unescaped: `^[^/]*\.js|[^/]*\.ts$`.
        let pm = matcher(&["*.js|*.ts"]);
        assert!(pm.is_excluded("src/deep/x.ts"));
        assert!(pm.is_excluded("foo.jsx"));
        assert!(!pm.is_excluded("a/foo.js"));
        // A trailing `|` leaves an empty alternative: everything matches.
        assert!(matcher(&["*|"]).is_excluded("any/thing"));
        // `{n}` counts; `{js,ts}` is literal text.
        let pm = matcher(&["a{2}*"]);
        assert!(pm.is_excluded("aab") && !pm.is_excluded("ab"));
        assert!(matcher(&["*.{js,ts}"]).is_excluded("x.{js,ts}"));
        assert!(!matcher(&["*.{js,ts}"]).is_excluded("x.js"));
        // Escapes keep their regexp meaning.
        let pm = matcher(&["file\\d"]);
        assert!(pm.is_excluded("file7") && !pm.is_excluded("filed"));
        assert!(matcher(&["\\Qa*"]).is_excluded("a[^/]*$/more"));
        assert!(matcher(&["[[:digit:]]*"]).is_excluded("1abc"));
        assert!(!matcher(&["[[:digit:]]*"]).is_excluded("abc"));
        // `[*]` becomes `^[[^/]*]$`: a class of `[^/` repeated, then `]`.
        let pm = matcher(&["[*]"]);
        assert!(pm.is_excluded("]") && pm.is_excluded("[^]"));
        assert!(!pm.is_excluded("*"));
        // `^` outside a class is an anchor in regexp patterns, a character otherwise.
        assert!(!matcher(&["*^b"]).is_excluded("a^b"));
        assert!(matcher(&["a^b"]).is_excluded("a^b"));
        // `.*` stops at a newline, `[^/]*` does not.
        assert!(!matcher(&["a/**/b"]).is_excluded("a/x\ny/b"));
        assert!(matcher(&["a*"]).is_excluded("a\nb"));
        // A leading BOM is skipped when building the regexp.
        assert!(matcher(&["\u{FEFF}*.go"]).is_excluded("x.go"));
        assert!(!matcher(&["\u{FEFF}x.go"]).is_excluded("x.go"));
        // Errors upstream reports when the pattern is first used.
        for bad in [
            "x[b-a]",
            "a\\x",
            "a\\1",
            "a\\pL",
            "[[:nope:]]*",
            "\\*{2}{3}",
            "*|{2}",
        ] {
            assert!(new(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostile_patterns_stay_bounded() {
        for bad in ["[", "\\", "[^", "a[", "[]", "x\\"] {
            assert!(new(&[bad]).is_err(), "{bad}");
        }
        let start = std::time::Instant::now();
        let deep = "**/".repeat(1000) + "x";
        let path = "a/".repeat(20) + &"b".repeat(1000);
        assert!(!matcher(&[&deep]).is_excluded(&path));
        let stars = "*".repeat(2000) + "x?";
        assert!(!matcher(&[&stars, "!a"]).is_excluded(&"a".repeat(3000)));
        let starry = "a*".repeat(500) + "b";
        assert!(!matcher(&[&starry]).is_excluded(&"a".repeat(3000)));
        // Counted repetitions are expanded, so their total size is capped like Go's.
        let huge = "[a]{1000}".repeat(4000);
        assert!(new(&[&huge]).unwrap_err().to_string().contains("too large"));
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet: Vec<char> = "ab/*?[]^!-\\.{}|$()+:0123,xdQEpé\u{FEFF} "
            .chars()
            .collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        for _ in 0..20_000 {
            let len = next(12);
            let pattern: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            let path: String = (0..next(10))
                .map(|_| alphabet[next(alphabet.len())])
                .collect();
            if let Ok(pm) = PatternMatcher::new(&[pattern, "!a*".to_string()]) {
                pm.is_excluded(&path);
                pm.matches_with_parent(&path, true);
                pm.may_reinclude_under(&path);
            }
        }
    }
}
