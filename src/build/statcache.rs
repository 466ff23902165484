//! The stat cache of one build context: a file's (size, mtime, ctime, inode, mode) → its
//! sha256, so an unchanged context is walked, not read.
//!
//! One file per context (`local/stat/<hash of the context's path>.tsv` in the cache), so
//! contexts neither grow nor overwrite each other's. One line per file, sorted by path
//! (relative to the context), tab-separated:
//! `path size mtime_ns ctime_ns inode mode digest`. It is read on every build, so it is kept as
//! one string and searched in place: a lookup parses only its own line.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use crate::reference::Digest;

/// What the stat cache compares to know a file unchanged without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    mode: u32,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        FileStamp {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            mode: meta.mode(),
        }
    }
}

#[derive(Default)]
pub struct StatCache {
    text: String,
    /// Each line of `text`, in path order: where it starts, where its path ends.
    lines: Vec<(usize, usize)>,
    /// Files hashed by this build: new ones, or changed since `text` was written.
    fresh: BTreeMap<String, (FileStamp, Digest)>,
}

impl StatCache {
    /// A cache read back from `text`; text out of path order (not written by hoist) is
    /// dropped rather than searched wrongly.
    pub fn parse(text: String) -> Self {
        let mut lines = Vec::with_capacity(text.len() / 128);
        let mut start = 0;
        while start < text.len() {
            let line = text[start..].split('\n').next().unwrap_or_default();
            lines.push((start, start + path_of(line).len()));
            start += line.len() + 1;
        }
        let cache = StatCache {
            text,
            lines,
            fresh: BTreeMap::new(),
        };
        let sorted = cache
            .lines
            .windows(2)
            .all(|w| cache.path(w[0]) < cache.path(w[1]));
        if sorted { cache } else { Self::default() }
    }

    fn path(&self, (start, end): (usize, usize)) -> &str {
        &self.text[start..end]
    }

    fn line(&self, (start, _): (usize, usize)) -> &str {
        let rest = &self.text[start..];
        rest.split('\n').next().unwrap_or(rest)
    }

    /// The digest of `path` if it was recorded with this same stamp.
    pub fn get(&self, path: &str, stamp: &FileStamp) -> Option<Digest> {
        if let Some((known, digest)) = self.fresh.get(path) {
            return (known == stamp).then(|| digest.clone());
        }
        let i = self
            .lines
            .binary_search_by(|&line| self.path(line).cmp(path))
            .ok()?;
        let (known, digest) = parse_line(self.line(self.lines[i]))?.1;
        (known == *stamp).then_some(digest)
    }

    /// Records a file just hashed; paths with tabs or newlines are simply not remembered.
    pub fn insert(&mut self, path: String, stamp: FileStamp, digest: Digest) {
        if !path.contains(['\t', '\n']) {
            self.fresh.insert(path, (stamp, digest));
        }
    }

    /// Whether anything was recorded since it was read.
    pub fn changed(&self) -> bool {
        !self.fresh.is_empty()
    }

    /// The text to write back: the lines read (those that still parse) merged with the
    /// fresh entries, which replace lines of the same path.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(self.text.len() + self.fresh.len() * 160);
        let write = |out: &mut String, path: &str, (stamp, digest): &(FileStamp, Digest)| {
            let _ = writeln!(
                out,
                "{path}\t{}\t{}\t{}\t{}\t{}\t{digest}",
                stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.ino, stamp.mode
            );
        };
        let mut fresh = self.fresh.iter().peekable();
        for &at in &self.lines {
            let line = self.line(at);
            let Some((path, _)) = parse_line(line) else {
                continue;
            };
            while let Some((p, entry)) = fresh.next_if(|(p, _)| p.as_str() <= path) {
                write(&mut out, p, entry);
            }
            if !self.fresh.contains_key(path) {
                out.push_str(line);
                out.push('\n');
            }
        }
        for (p, entry) in fresh {
            write(&mut out, p, entry);
        }
        out
    }
}

fn path_of(line: &str) -> &str {
    line.split('\t').next().unwrap_or(line)
}

/// A line's path and entry; None for a line that does not parse (the file is only a cache).
fn parse_line(line: &str) -> Option<(&str, (FileStamp, Digest))> {
    let mut f = line.split('\t');
    let path = f.next()?;
    let stamp = FileStamp {
        size: f.next()?.parse().ok()?,
        mtime_ns: f.next()?.parse().ok()?,
        ctime_ns: f.next()?.parse().ok()?,
        ino: f.next()?.parse().ok()?,
        mode: f.next()?.parse().ok()?,
    };
    let digest = Digest::parse(f.next()?).ok()?;
    f.next().is_none().then_some((path, (stamp, digest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64) -> FileStamp {
        FileStamp {
            size,
            mtime_ns: 1_700_000_000_123_456_789,
            ctime_ns: -5,
            ino: 42,
            mode: 0o100644,
        }
    }

    #[test]
    fn round_trips_in_path_order_and_skips_odd_paths() {
        let mut cache = StatCache::default();
        cache.insert("b/x".into(), stamp(2), Digest::sha256_of(b"b"));
        cache.insert("a file".into(), stamp(1), Digest::sha256_of(b"a"));
        cache.insert("tab\there".into(), stamp(3), Digest::sha256_of(b"t"));
        cache.insert("new\nline".into(), stamp(3), Digest::sha256_of(b"n"));
        assert!(cache.changed());
        let text = cache.to_text();
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with("a file\t1\t"));
        let read = StatCache::parse(text.clone());
        assert!(!read.changed());
        assert_eq!(read.get("a file", &stamp(1)), Some(Digest::sha256_of(b"a")));
        assert_eq!(read.get("b/x", &stamp(2)), Some(Digest::sha256_of(b"b")));
        // Another stamp (the file changed) or another path: no digest.
        assert_eq!(read.get("b/x", &stamp(9)), None);
        assert_eq!(read.get("b", &stamp(2)), None);
        assert_eq!(read.get("tab\there", &stamp(3)), None);
        assert_eq!(read.to_text(), text);
    }

    #[test]
    fn fresh_entries_replace_and_merge_with_the_lines_read() {
        let mut first = StatCache::default();
        for name in ["a", "c", "e"] {
            first.insert(name.into(), stamp(1), Digest::sha256_of(name.as_bytes()));
        }
        let mut second = StatCache::parse(first.to_text());
        second.insert("c".into(), stamp(2), Digest::sha256_of(b"c2"));
        second.insert("d".into(), stamp(1), Digest::sha256_of(b"d"));
        second.insert("0".into(), stamp(1), Digest::sha256_of(b"0"));
        second.insert("z".into(), stamp(1), Digest::sha256_of(b"z"));
        assert_eq!(second.get("c", &stamp(2)), Some(Digest::sha256_of(b"c2")));
        assert_eq!(second.get("c", &stamp(1)), None);
        let third = StatCache::parse(second.to_text());
        let paths: Vec<_> = third.lines.iter().map(|&l| third.path(l)).collect();
        assert_eq!(paths, ["0", "a", "c", "d", "e", "z"]);
        assert_eq!(third.get("c", &stamp(2)), Some(Digest::sha256_of(b"c2")));
        assert_eq!(third.get("e", &stamp(1)), Some(Digest::sha256_of(b"e")));
    }

    #[test]
    fn damaged_or_unsorted_text_is_never_a_wrong_hit() {
        let mut cache = StatCache::default();
        cache.insert("a".into(), stamp(1), Digest::sha256_of(b"a"));
        cache.insert("b".into(), stamp(1), Digest::sha256_of(b"b"));
        let text = cache.to_text();
        // A torn or edited line is skipped; the others still answer.
        let damaged = text.replacen("\t1\t", "\tx\t", 1);
        let read = StatCache::parse(damaged);
        assert_eq!(read.get("a", &stamp(1)), None);
        assert_eq!(read.get("b", &stamp(1)), Some(Digest::sha256_of(b"b")));
        assert_eq!(read.to_text().lines().count(), 1);
        // Out of order: dropped whole.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.reverse();
        let read = StatCache::parse(lines.join("\n"));
        assert_eq!(read.get("a", &stamp(1)), None);
        assert_eq!(read.get("b", &stamp(1)), None);
        assert!(
            StatCache::parse("garbage\n1\t2\n".into())
                .get("1", &stamp(1))
                .is_none()
        );
    }
}
