//! Dockerfile shell-word processing: quote removal, escapes, and `$VAR` / `${VAR...}` expansion.
//!
//! A port of Moby BuildKit's `frontend/dockerfile/shell/lex.go` (Apache-2.0, read at commit
//! 73ed6825c4b7569379ef89df0aedcdbe64473d31), kept behaviour-for-behaviour so hoist expands words
//! the way `docker build` does. Names reach the `env` callback as written (BuildKit on Unix is
//! case-sensitive). Deliberate differences are marked "Deviation".

use std::collections::BTreeSet;
use std::fmt::{Display, Write as _};
use std::iter::Peekable;
use std::str::Chars;

/// Deepest `${...}` nesting accepted. Deviation: BuildKit recurses without a limit; hostile input
/// must not overflow our stack.
const MAX_DEPTH: usize = 100;

/// Why a word could not be processed. Messages are BuildKit's; the public API always returns
/// [`ShellError::Process`] wrapping the specific cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${{x}`, `${:x}`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// The operator after the name, e.g. `=` or `:#`; U+FFFD stands for end of input, as in Go.
    #[error("unsupported modifier ({}) in substitution", one_line(.0))]
    UnsupportedModifier(String),
    /// `${name?message}` / `${name:?message}` on an unset (or empty) variable.
    #[error("{name}: {}", one_line(.message))]
    Required { name: String, message: String },
    /// A `#`, `%` or `/` pattern with an escape other than `\*`, `\?`, `\\`; `escaped` is the
    /// character after the backslash (U+FFFD at end of pattern).
    #[error(
        "invalid pattern ({}) in substitution: invalid escape '\\{}'",
        one_line(.pattern),
        one_line(.escaped)
    )]
    InvalidPattern { pattern: String, escaped: char },
    #[error("substitutions nested more than {0} deep")]
    TooDeep(usize),
    /// Names the whole input (Go `%q`-quoted, so always one line) and the cause.
    #[error("failed to process {}: {error}", go_quote(.word))]
    Process {
        word: String,
        error: Box<ShellError>,
    },
}

/// Expands Dockerfile words. The public flags mirror BuildKit's `Lex` fields; all are off for
/// instruction arguments and only matter for heredoc detection and step names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    /// Keep quote characters in the output (`RawQuotes`).
    pub raw_quotes: bool,
    /// Keep escape characters in the output (`RawEscapes`).
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters (`SkipProcessQuotes`).
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (`SkipUnsetEnv`).
    pub skip_unset_env: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl Lexer {
    /// `escape` is the Dockerfile escape character: `\` by default, `` ` `` after the
    /// ``# escape=` `` parser directive.
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Like BuildKit `ProcessWord`: expand one word (quotes removed, vars expanded), result is a
    /// single string with inner whitespace kept.
    pub fn process_word(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ShellError> {
        self.process(word, env).map(|e| e.result)
    }

    /// Like BuildKit `ProcessWords`: expand, then split on unquoted whitespace (including
    /// whitespace that came from a `$VAR`), as for `EXPOSE` or heredoc detection. Empty words are
    /// dropped, so `''` alone gives no word.
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, ShellError> {
        self.process(word, env).map(|e| e.words)
    }

    /// Like BuildKit `ProcessWordWithMatches`: [`Lexer::process_word`] plus the names that were
    /// looked up and found (set, possibly empty) and those that were looked up and unset.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, BTreeSet<String>, BTreeSet<String>), ShellError> {
        self.process(word, env)
            .map(|e| (e.result, e.matched, e.unmatched))
    }

    fn process(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Expansion, ShellError> {
        let mut walker = Walker {
            lex: self,
            env,
            // Go's text/scanner skips a leading byte-order mark.
            chars: word
                .strip_prefix('\u{feff}')
                .unwrap_or(word)
                .chars()
                .peekable(),
            raw_escapes: self.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match walker.stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expansion {
                result,
                words,
                matched: walker.matched,
                unmatched: walker.unmatched,
            }),
            Err(error) => Err(ShellError::Process {
                word: word.to_owned(),
                error: Box::new(error),
            }),
        }
    }
}

struct Expansion {
    result: String,
    words: Vec<String>,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// One pass over one input: Go's `shellWord`.
struct Walker<'a> {
    lex: &'a Lexer,
    env: &'a dyn Fn(&str) -> Option<String>,
    chars: Peekable<Chars<'a>>,
    raw_escapes: bool,
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Splits the expanded text into words as it is produced.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add(&mut self, ch: char) {
        if !ch.is_whitespace() {
            self.add_raw(ch);
        } else if self.in_word && !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
            self.in_word = false;
        }
    }

    fn add_raw(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add(c));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

impl Walker<'_> {
    fn peek_ch(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    fn bump(&mut self) -> Option<char> {
        self.chars.next()
    }

    /// Go `processStopOn`: process up to `stop` (consumed) or the end of input.
    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        // Only `${...}` bodies pass a stop character, so this bounds the recursion.
        if stop.is_some() {
            if self.depth >= MAX_DEPTH {
                return Err(ShellError::TooDeep(MAX_DEPTH));
            }
            self.depth += 1;
        }
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let out = self.scan(stop);
        self.raw_escapes = saved;
        if stop.is_some() {
            self.depth -= 1;
        }
        out
    }

    // Deviation: BuildKit (since 2024, commit 4c935cf9) shares one word buffer between nested
    // calls, so `process_words("a${x:-b}c")` loses the `a`; each call keeps its own here.
    fn scan(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ShellError> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lex.skip_process_quotes;
        while let Some(ch) = self.peek_ch() {
            if Some(ch) == stop {
                self.bump();
                return Ok((result, words.finish()));
            }
            let special = match ch {
                '$' => Some(self.dollar()?),
                '<' => Some(self.possible_heredoc()),
                '\'' if quotes => Some(self.single_quote()?),
                '"' if quotes => Some(self.double_quote()?),
                _ => None,
            };
            if let Some(text) = special {
                result.push_str(&text);
                // Expanded values split into words; quoted text and `<< ` stay whole.
                if ch == '$' {
                    words.add_str(&text);
                } else {
                    words.add_raw_str(&text);
                }
                continue;
            }
            self.bump();
            if ch == self.lex.escape {
                if self.raw_escapes {
                    words.add_raw(ch);
                    result.push(ch);
                }
                // The escape makes the next character literal; a trailing one is dropped.
                let Some(escaped) = self.bump() else { break };
                words.add_raw(escaped);
                result.push(escaped);
            } else {
                words.add(ch);
                result.push(ch);
            }
        }
        match stop {
            None => Ok((result, words.finish())),
            // Callers report running out of input with their own message; these match them.
            Some('/') => Err(ShellError::MissingSlash),
            Some(_) => Err(ShellError::MissingBrace),
        }
    }

    /// Everything up to the next `'` is literal; there is no escape.
    fn single_quote(&mut self) -> Result<String, ShellError> {
        let mut out = String::new();
        let open = self.bump();
        if self.lex.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.bump() {
                None => return Err(ShellError::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// `$` expands; the escape character only escapes `"`, `$` and itself, otherwise it stays.
    fn double_quote(&mut self) -> Result<String, ShellError> {
        let mut out = String::new();
        let open = self.bump();
        if self.lex.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek_ch() {
                None => return Err(ShellError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.bump();
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(mut ch) => {
                    self.bump();
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek_ch() {
                            // The missing quote is reported on the next turn.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.lex.escape => {
                                self.bump();
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn dollar(&mut self) -> Result<String, ShellError> {
        self.bump();
        if self.peek_ch() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.bump();
        match self.peek_ch() {
            None => return Err(ShellError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellError::BadSubstitution),
            Some(_) => {}
        }
        let name = self.name();
        let op = self.bump();
        // Go formats end of input (-1) as U+FFFD.
        let mut modifier = String::from(op.unwrap_or(char::REPLACEMENT_CHARACTER));
        match op {
            Some('}') => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let op = self.bump();
                modifier.push(op.unwrap_or(char::REPLACEMENT_CHARACTER));
                self.modifier(&name, op, modifier, true)
            }
            Some('+' | '-' | '?' | '#' | '%') => self.modifier(&name, op, modifier, false),
            Some('/') => self.replace(&name),
            _ => Err(ShellError::UnsupportedModifier(modifier)),
        }
    }

    /// `${name-word}`, `+`, `?`, `#`, `##`, `%`, `%%`; `null_is_unset` for the `:` forms.
    fn modifier(
        &mut self,
        name: &str,
        op: Option<char>,
        modifier: String,
        null_is_unset: bool,
    ) -> Result<String, ShellError> {
        let pattern_op = matches!(op, Some('#' | '%'));
        if null_is_unset && pattern_op {
            return Err(ShellError::UnsupportedModifier(modifier));
        }
        // Patterns keep their escapes so `\*` stays a literal star for the matcher.
        let body = self.stop_on(Some('}'), pattern_op);
        let (word, _) = self.at_end_means(body, ShellError::MissingBrace)?;
        let value = self.lookup(name);
        if value.is_none() && self.lex.skip_unset_env {
            return Ok(format!("${{{name}{modifier}{word}}}"));
        }
        let usable = value
            .as_deref()
            .is_some_and(|v| !(null_is_unset && v.is_empty()));
        match op {
            Some('-') if usable => Ok(value.unwrap_or_default()),
            Some('-') => Ok(word),
            Some('+') if usable => Ok(word),
            Some('+') => Ok(String::new()),
            Some('?') => match value {
                Some(v) if usable => Ok(v),
                _ => {
                    let message = if !word.is_empty() {
                        word
                    } else if value.is_none() {
                        "is not allowed to be unset".to_owned()
                    } else {
                        "is not allowed to be empty".to_owned()
                    };
                    Err(ShellError::Required {
                        name: name.to_owned(),
                        message,
                    })
                }
            },
            Some(c @ ('#' | '%')) => {
                let value = value.unwrap_or_default();
                // A doubled operator (checked after expansion, as in Go) asks for the longest match.
                let (pattern, greedy) = match word.strip_prefix(c) {
                    Some(rest) => (rest, true),
                    None => (word.as_str(), false),
                };
                if c == '%' {
                    trim_suffix(pattern, &value, greedy)
                } else {
                    trim_prefix(pattern, &value, greedy)
                }
            }
            _ => Err(ShellError::UnsupportedModifier(modifier)),
        }
    }

    /// `${name/pattern/replacement}` (first match) and `${name//pattern/replacement}` (all).
    fn replace(&mut self, name: &str) -> Result<String, ShellError> {
        let all = self.peek_ch() == Some('/');
        if all {
            self.bump();
        }
        let pattern = self.stop_on(Some('/'), true);
        let (pattern, _) = self.at_end_means(pattern, ShellError::MissingSlash)?;
        let replacement = self.stop_on(Some('}'), true);
        let (replacement, _) = self.at_end_means(replacement, ShellError::MissingBrace)?;
        let value = self.lookup(name);
        if value.is_none() && self.lex.skip_unset_env {
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        let value = value.unwrap_or_default();
        let compiled =
            Pattern::parse(&pattern, true).map_err(|escaped| ShellError::InvalidPattern {
                pattern: pattern.clone(),
                escaped,
            })?;
        if all {
            return Ok(replace_all(&compiled, &value, &replacement));
        }
        Ok(match compiled.find(&value, 0, false) {
            // Go's first-match path inserts the replacement literally (no `$0` expansion).
            Some((start, end)) => format!("{}{replacement}{}", &value[..start], &value[end..]),
            None => value,
        })
    }

    /// BuildKit reports any failure that ran into the end of input inside `${` as the missing
    /// terminator.
    fn at_end_means<T>(
        &mut self,
        result: Result<T, ShellError>,
        at_end: ShellError,
    ) -> Result<T, ShellError> {
        result.map_err(|e| if self.peek_ch().is_none() { at_end } else { e })
    }

    /// A name: letters, digits and `_`; or all the digits of a positional parameter; or one
    /// special parameter character.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek_ch() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek_ch().filter(|&c| is_digit(c)) {
                    self.bump();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.bump();
                return ch.to_string();
            }
            if !is_letter(ch) && !is_digit(ch) && ch != '_' {
                break;
            }
            self.bump();
            name.push(ch);
        }
        name
    }

    /// `<<` keeps the blanks after it so `<< EOF` stays one word for the heredoc parser.
    fn possible_heredoc(&mut self) -> String {
        self.bump();
        if self.peek_ch() != Some('<') {
            return "<".to_owned();
        }
        self.bump();
        let mut out = "<<".to_owned();
        while let Some(c) = self.peek_ch().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            self.bump();
            out.push(c);
        }
        out
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        let value = (self.env)(name);
        let seen = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        seen.insert(name.to_owned());
        value
    }
}

/// POSIX special parameters; never set in a Dockerfile but still parsed as names.
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// Go `unicode.IsLetter` (category L). Deviation: approximated by Rust's Alphabetic property
/// minus numerals, which also admits some combining vowel signs; exact for ASCII and most scripts.
fn is_letter(c: char) -> bool {
    c.is_alphabetic() && !c.is_numeric()
}

/// First code point of every run of ten decimal digits (category Nd, Unicode 15 as in Go).
const DIGIT_ZEROS: [u32; 68] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66,
    0xde6, 0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
    0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10,
    0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650,
    0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x11f50, 0x16a60, 0x16ac0,
    0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e4f0, 0x1e950,
    0x1fbf0,
];

/// Go `unicode.IsDigit` (category Nd): `$١` is a positional parameter there, `$²` is not.
fn is_digit(c: char) -> bool {
    let c = u32::from(c);
    DIGIT_ZEROS
        .partition_point(|&zero| zero <= c)
        .checked_sub(1)
        .and_then(|i| DIGIT_ZEROS.get(i))
        .is_some_and(|&zero| c - zero < 10)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one character other than newline (Go's `.`).
    Any,
    /// `*`: any run of characters other than newline (Go's `.*` or `.*?`).
    Star,
}

impl Tok {
    fn accepts(self, c: char) -> bool {
        match self {
            Tok::Lit(l) => c == l,
            Tok::Any | Tok::Star => c != '\n',
        }
    }
}

/// A shell wildcard pattern. BuildKit compiles it to a Go regexp; this matcher reproduces that
/// regexp's leftmost-first semantics without a regex dependency.
#[derive(Debug, PartialEq)]
struct Pattern {
    toks: Vec<Tok>,
    greedy: bool,
}

impl Pattern {
    /// Go `convertShellPatternToRegex`: `*` and `?` are wildcards, `\` escapes `*`, `?` and `\`,
    /// and `\}` / `\/` are the escaped `${}` delimiters. Fails with the character after a bad
    /// escape (U+FFFD at end).
    fn parse(pattern: &str, greedy: bool) -> Result<Self, char> {
        let mut toks = Vec::new();
        // Go's text/scanner skips a leading byte-order mark here too.
        let mut it = pattern
            .strip_prefix('\u{feff}')
            .unwrap_or(pattern)
            .chars()
            .peekable();
        while let Some(c) = it.next() {
            let tok = match c {
                '*' => Tok::Star,
                '?' => Tok::Any,
                '\\' if matches!(it.peek(), Some('}' | '/')) => continue,
                '\\' => match it.next() {
                    Some(e @ ('*' | '?' | '\\')) => Tok::Lit(e),
                    other => return Err(other.unwrap_or(char::REPLACEMENT_CHARACTER)),
                },
                c => Tok::Lit(c),
            };
            // `**` matches exactly like `*` (all stars share one greediness); collapsing keeps
            // each thread's epsilon closure to two states.
            if !(tok == Tok::Star && toks.last() == Some(&Tok::Star)) {
                toks.push(tok);
            }
        }
        Ok(Self { toks, greedy })
    }

    /// Leftmost-first match (Go regexp semantics) as byte offsets, searching from byte `from`
    /// (a char boundary); `anchored` only tries a match starting at `from`. A Pike VM, so time is
    /// linear in input length times pattern length.
    fn find(&self, hay: &str, from: usize, anchored: bool) -> Option<(usize, usize)> {
        // Threads are (state, match start) in priority order; state == toks.len() is a match.
        let mut seen = vec![0usize; self.toks.len() + 1];
        let mut mark = 1;
        let mut clist = Vec::new();
        let mut nlist = Vec::new();
        self.add(0, from, &mut clist, &mut seen, mark);
        let mut found = None;
        let mut pos = from;
        loop {
            let c = hay.get(pos..).and_then(|rest| rest.chars().next());
            mark += 1;
            for &(state, start) in &clist {
                let Some(&tok) = self.toks.get(state) else {
                    // Lower-priority threads can no longer win.
                    found = Some((start, pos));
                    break;
                };
                if c.is_some_and(|c| tok.accepts(c)) {
                    let next = if tok == Tok::Star { state } else { state + 1 };
                    self.add(next, start, &mut nlist, &mut seen, mark);
                }
            }
            let Some(c) = c else { break };
            pos += c.len_utf8();
            if found.is_none() && !anchored {
                self.add(0, pos, &mut nlist, &mut seen, mark);
            }
            if nlist.is_empty() {
                break;
            }
            std::mem::swap(&mut clist, &mut nlist);
            nlist.clear();
        }
        found
    }

    fn add(
        &self,
        state: usize,
        start: usize,
        list: &mut Vec<(usize, usize)>,
        seen: &mut [usize],
        mark: usize,
    ) {
        let mut push = |s: usize| {
            if let Some(m) = seen.get_mut(s).filter(|m| **m != mark) {
                *m = mark;
                list.push((s, start));
            }
        };
        if self.toks.get(state) == Some(&Tok::Star) {
            // A star may take one more character or stop; greediness decides which is tried first.
            if self.greedy {
                push(state);
                push(state + 1);
            } else {
                push(state + 1);
                push(state);
            }
        } else {
            push(state);
        }
    }
}

/// `${x#pattern}` / `${x##pattern}`.
fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, ShellError> {
    let compiled =
        Pattern::parse(pattern, greedy).map_err(|escaped| ShellError::InvalidPattern {
            pattern: pattern.to_owned(),
            escaped,
        })?;
    Ok(match compiled.find(value, 0, true) {
        Some((_, end)) => value[end..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${x%pattern}` / `${x%%pattern}`: a leftmost match cannot find the shortest rightmost one, so
/// reverse both and trim a prefix (errors then show the reversed pattern, as in BuildKit).
fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, ShellError> {
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reverse_string(value), greedy)?;
    Ok(reverse_string(&trimmed))
}

fn reverse_string(s: &str) -> String {
    s.chars().rev().collect()
}

/// Reverses a pattern but keeps each `\x` escape in order: `a\*c` becomes `c\*a`.
fn reverse_pattern(pattern: &str) -> String {
    let mut units = Vec::new();
    let mut it = pattern.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let mut end = i + c.len_utf8();
        if c == '\\'
            && let Some((j, next)) = it.next()
        {
            end = j + next.len_utf8();
        }
        units.push(&pattern[i..end]);
    }
    units.into_iter().rev().collect()
}

/// Go `Regexp.ReplaceAllString`: non-overlapping matches, no empty match right after a
/// previous match, and `$` expansion in the replacement.
fn replace_all(pattern: &Pattern, src: &str, replacement: &str) -> String {
    let mut out = String::new();
    let mut last_end = 0;
    let mut search = 0;
    while search <= src.len() {
        let Some((start, end)) = pattern.find(src, search, false) else {
            break;
        };
        out.push_str(&src[last_end..start]);
        if end > last_end || start == 0 {
            expand(&mut out, replacement, &src[start..end]);
        }
        last_end = end;
        // Always advance at least one character.
        let width = src[search..].chars().next().map_or(0, char::len_utf8);
        search = if search + width > end {
            search + width
        } else if search + 1 > end {
            search + 1
        } else {
            end
        };
    }
    out.push_str(&src[last_end..]);
    out
}

/// Go `Regexp.Expand` for a pattern without groups: `$$` is `$`, `$0` / `${0}` the match, any
/// other well-formed `$name` nothing, and a malformed `$` stays literal.
fn expand(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match expand_name(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// The `name` or `{name}` after a `$` and the text after it.
fn expand_name(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, s),
    };
    let len = body
        .find(|c: char| !(is_letter(c) || is_digit(c) || c == '_'))
        .unwrap_or(body.len());
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if braced {
        after.strip_prefix('}').map(|after| (name, after))
    } else {
        Some((name, after))
    }
}

/// Cf (format) ranges, Unicode 15: not printable for Go's `%q`.
const FORMAT_CHARS: [(u32, u32); 21] = [
    (0xad, 0xad),
    (0x600, 0x605),
    (0x61c, 0x61c),
    (0x6dd, 0x6dd),
    (0x70f, 0x70f),
    (0x890, 0x891),
    (0x8e2, 0x8e2),
    (0x180e, 0x180e),
    (0x200b, 0x200f),
    (0x202a, 0x202e),
    (0x2060, 0x2064),
    (0x2066, 0x206f),
    (0xfeff, 0xfeff),
    (0xfff9, 0xfffb),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x1343f),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0001, 0xe0001),
    (0xe0020, 0xe007f),
];

/// Go `strconv.IsPrint`. Deviation: unassigned code points count as printable.
fn is_go_print(c: char) -> bool {
    let cp = u32::from(c);
    match cp {
        0x20..=0x7e => true,
        0..=0xff => cp >= 0xa1 && cp != 0xad,
        _ => {
            let private = matches!(cp, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd);
            !(c.is_whitespace()
                || c.is_control()
                || private
                || FORMAT_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&cp)))
        }
    }
}

/// Go's `%q` (`strconv.Quote`), so the wrapper message matches BuildKit's.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        let cp = u32::from(c);
        // Writing to a String cannot fail.
        let _ = match c {
            '"' | '\\' => write!(out, "\\{c}"),
            '\x07' => out.write_str("\\a"),
            '\x08' => out.write_str("\\b"),
            '\x0c' => out.write_str("\\f"),
            '\n' => out.write_str("\\n"),
            '\r' => out.write_str("\\r"),
            '\t' => out.write_str("\\t"),
            '\x0b' => out.write_str("\\v"),
            c if is_go_print(c) => out.write_char(c),
            _ if cp < 0x20 || cp == 0x7f => write!(out, "\\x{cp:02x}"),
            _ if cp < 0x10000 => write!(out, "\\u{cp:04x}"),
            _ => write!(out, "\\U{cp:08x}"),
        };
    }
    out.push('"');
    out
}

/// Deviation: user text inside messages has control characters and line separators escaped so
/// every message is one line (Go prints them raw).
fn one_line(text: &(impl Display + ?Sized)) -> String {
    let mut out = String::new();
    for c in text.to_string().chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Go `EnvsFromSlice`: `k=v` entries, `k` alone is set to empty, the last one wins.
    fn env_from(entries: &[&str]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = entries
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect();
        move |k| map.get(k).cloned()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// TestShellParser4EnvVars over BuildKit's `envVarTest`: `platform | input | expected`.
    #[test]
    fn env_var_table() {
        let lex = Lexer::new('\\');
        let env = env_from(&["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
        let (mut ran, mut windows_only) = (0, 0);
        for (n, line) in ENV_VAR_TEST.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line.trim().split('|').map(str::trim).collect();
            let [platform, source, expected] = cols[..] else {
                panic!("line {}: want 3 columns: {line:?}", n + 1);
            };
            assert!(matches!(platform, "A" | "U" | "W"), "line {}", n + 1);
            // Hoist builds Linux images: Unix rules (case-sensitive names), as BuildKit on Unix.
            if platform == "W" {
                windows_only += 1;
                continue;
            }
            let got = lex.process_word(source, &env);
            if expected == "error" {
                assert!(got.is_err(), "line {}: {source:?} gave {got:?}", n + 1);
            } else {
                assert_eq!(got.as_deref(), Ok(expected), "line {}: {source:?}", n + 1);
            }
            ran += 1;
        }
        assert_eq!((ran, windows_only), (228, 2));
    }

    /// TestShellParser4Words over BuildKit's `wordsTest`: `ENV k=v` lines accumulate, other
    /// lines are `input | comma-separated words` (or `error`).
    #[test]
    fn words_table() {
        // Go also loops over a RawQuotes+SkipUnsetEnv mode, but its reader is already drained
        // by then, so only this mode is ever checked.
        let lex = Lexer::new('\\');
        let mut envs: Vec<&str> = Vec::new();
        let mut ran = 0;
        for (n, line) in WORDS_TEST.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            if let Some(entry) = line.strip_prefix("ENV ") {
                envs.push(entry.trim_start_matches(' '));
                continue;
            }
            let cols: Vec<&str> = line.split('|').collect();
            let [input, expected] = cols[..] else {
                panic!("line {}: want exactly one |: {line:?}", n + 1);
            };
            let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
            let got = lex
                .process_words(input.trim(), &env_from(&envs))
                .unwrap_or_else(|_| vec!["error".to_owned()]);
            assert_eq!(got, expected, "line {}: {input:?}", n + 1);
            ran += 1;
        }
        assert_eq!(ran, 24);
    }

    #[test]
    fn mandatory_env_vars() {
        let lex = Lexer::new('\\');
        let set_envs = env_from(&["VAR=plain", "ARG=x"]);
        let empty_envs = env_from(&["VAR=", "ARG=x"]);
        let unset_envs = env_from(&["ARG=x"]);
        let no_empty = "${VAR:?message here$ARG}";
        let no_unset = "${VAR?message here$ARG}";
        let err_text = |r: Result<String, ShellError>| r.map_err(|e| e.to_string()).unwrap_err();

        assert_eq!(
            lex.process_word(no_empty, &set_envs).as_deref(),
            Ok("plain")
        );
        assert!(err_text(lex.process_word(no_empty, &empty_envs)).contains("message herex"));
        assert!(err_text(lex.process_word(no_empty, &unset_envs)).contains("message herex"));

        assert_eq!(
            lex.process_word(no_unset, &set_envs).as_deref(),
            Ok("plain")
        );
        assert_eq!(lex.process_word(no_unset, &empty_envs).as_deref(), Ok(""));
        assert!(err_text(lex.process_word(no_unset, &unset_envs)).contains("message herex"));
    }

    /// TestGetEnv, through `$foo`.
    #[test]
    fn get_env() {
        let lex = Lexer::new('\\');
        let get = |entries: &[&str], name: &str| {
            lex.process_word(&format!("${name}"), &env_from(entries))
                .ok()
        };
        assert_eq!(get(&[], "foo").as_deref(), Some(""));
        assert_eq!(get(&["foo"], "foo").as_deref(), Some(""));
        assert_eq!(get(&["foo="], "foo").as_deref(), Some(""));
        assert_eq!(get(&["foo=bar"], "foo").as_deref(), Some("bar"));
        assert_eq!(get(&["foo=bar", "car=hat"], "foo").as_deref(), Some("bar"));
        assert_eq!(get(&["foo=bar", "car=hat"], "car").as_deref(), Some("hat"));
        assert_eq!(
            get(&["foo=bar", "car=hat", "car=bike"], "car").as_deref(),
            Some("bike")
        );
    }

    struct MatchCase {
        input: &'static str,
        envs: &'static [&'static str],
        /// `None`: an error is expected.
        expected: Option<&'static str>,
        matches: &'static [&'static str],
        unmatched: &'static [&'static str],
    }

    const fn ok(
        input: &'static str,
        envs: &'static [&'static str],
        expected: &'static str,
        matches: &'static [&'static str],
        unmatched: &'static [&'static str],
    ) -> MatchCase {
        MatchCase {
            input,
            envs,
            expected: Some(expected),
            matches,
            unmatched,
        }
    }

    const fn fails(input: &'static str, envs: &'static [&'static str]) -> MatchCase {
        MatchCase {
            input,
            envs,
            expected: None,
            matches: &[],
            unmatched: &[],
        }
    }

    const FOO_BAR: &[&str] = &["FOO=xxx", "BAR="];

    /// TestProcessWithMatches.
    const MATCH_CASES: &[MatchCase] = &[
        ok("x", &["DUMMY=dummy"], "x", &[], &[]),
        ok("x ${UNUSED}", &["DUMMY=dummy"], "x ", &[], &["UNUSED"]),
        ok("x ${FOO}", &["FOO=y"], "x y", &["FOO"], &[]),
        ok(
            "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
            FOO_BAR,
            "xxx  ccc",
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ok(
            "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
            FOO_BAR,
            "xxx bbb ccc",
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ok("${FOO:-}", FOO_BAR, "xxx", &["FOO"], &[]),
        ok("${FOO:-}", &[], "", &[], &["FOO"]),
        ok(
            "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
            FOO_BAR,
            "aaa bbb ",
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ok(
            "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
            FOO_BAR,
            "aaa  ",
            &["FOO", "BAR"],
            &["BAZ"],
        ),
        ok("${FOO?aaa}", FOO_BAR, "xxx", &["FOO"], &[]),
        ok("${BAR?bbb}", FOO_BAR, "", &["BAR"], &[]),
        fails("${BAZ?ccc}", FOO_BAR),
        ok("${FOO:?aaa}", FOO_BAR, "xxx", &["FOO"], &[]),
        fails("${BAR:?bbb}", FOO_BAR),
        fails("${BAZ:?ccc}", FOO_BAR),
        fails("${BAZ:?}", FOO_BAR),
        fails("${FOO=aaa}", FOO_BAR),
        fails("${FOO=:aaa}", FOO_BAR),
        fails("${FOO=}", &[]),
        // Regex metacharacters are literal; `\}` keeps `}` from closing the `${}`.
        ok(
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            &["FOO=()[]{}^$.*?|\\x"],
            "x",
            &["FOO"],
            &[],
        ),
        ok("${FOO%%\\**}", &["FOO=xx**"], "xx", &["FOO"], &[]),
        ok("${FOO#*x*y}", &["FOO=xxyy"], "y", &["FOO"], &[]),
        ok("${FOO#*}", &["FOO=xxyy"], "xxyy", &["FOO"], &[]),
        ok(
            "${FOO#$BAR}",
            &["FOO=xxyy", "BAR=x"],
            "xyy",
            &["FOO", "BAR"],
            &[],
        ),
        ok(
            "${FOO#$BAR}",
            &["FOO=xxyy", "BAR="],
            "xxyy",
            &["FOO", "BAR"],
            &[],
        ),
        ok("${FOO#}", &["FOO=xxyy"], "xxyy", &["FOO"], &[]),
        ok("${FOO##*x}", &["FOO=xxyy"], "yy", &["FOO"], &[]),
        ok("${FOO##}", &["FOO=xxyy"], "xxyy", &["FOO"], &[]),
        ok("${FOO#?\\?}", &["FOO=???y"], "?y", &["FOO"], &[]),
        ok(
            "${ABC:-.}${FOO%x}${ABC:-.}",
            &["FOO=xxyy"],
            ".xxyy.",
            &["FOO"],
            &["ABC"],
        ),
        ok("${FOO%%\\**\\*}", &["FOO=a***yy*"], "a", &["FOO"], &[]),
        ok("${FOO%}", &["FOO=xxyy"], "xxyy", &["FOO"], &[]),
        ok(
            "${FOO%%$BAR}",
            &["FOO=xxyy", "BAR="],
            "xxyy",
            &["FOO", "BAR"],
            &[],
        ),
        fails("${FOO:#}", &[]),
        fails("${FOO:##}", &[]),
        fails("${FOO:%}", &[]),
        fails("${FOO:%%}", &[]),
        // Wildcards.
        ok(
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &["FOO=/foo*/*/*.txt", "NEEDLE=\\*/"],
            "/foo.*/*.txt - /foo..*.txt",
            &["FOO", "NEEDLE"],
            &[],
        ),
        // `/` in patterns.
        ok(
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &["FOO=/tmp/tmp/bar.txt", "NEEDLE=/tmp"],
            "/tmp/bar.txt - /bar.txt",
            &["FOO", "NEEDLE"],
            &[],
        ),
        ok(
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &["FOO=/a/foo/b/c.txt", "NEEDLE=/?/", "REPLACEMENT=/"],
            "/foo/b/c.txt - /foo/c.txt",
            &["FOO", "NEEDLE", "REPLACEMENT"],
            &[],
        ),
        ok(
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[
                "FOO=http://google.de",
                "NEEDLE=http://",
                "REPLACEMENT=https://",
            ],
            "https://google.de",
            &["FOO", "NEEDLE", "REPLACEMENT"],
            &[],
        ),
        // Escaped separators.
        ok(
            "${FOO//\\//\\/}",
            &["FOO=/tmp/foo.txt"],
            "\\/tmp\\/foo.txt",
            &["FOO"],
            &[],
        ),
        // Partial input: not guaranteed behaviour upstream, but must not crash.
        ok(
            "${FOO/$BAR/ww}",
            &["FOO=xxyy", "BAR="],
            "wwxxyy",
            &["FOO", "BAR"],
            &[],
        ),
        fails("${FOO//ww}", &["FOO=xxyy"]),
        fails("${FOO//}", &["FOO=xxyy"]),
        ok("${FOO///}", &["FOO=xxyy"], "xxyy", &["FOO"], &[]),
        ok("${FOO///}", &[], "", &[], &["FOO"]),
    ];

    #[test]
    fn process_with_matches() {
        let lex = Lexer::new('\\');
        for case in MATCH_CASES {
            let got = lex.process_word_with_matches(case.input, &env_from(case.envs));
            match case.expected {
                None => assert!(got.is_err(), "{}: {got:?}", case.input),
                Some(expected) => assert_eq!(
                    got,
                    Ok((expected.to_owned(), set(case.matches), set(case.unmatched))),
                    "{}",
                    case.input
                ),
            }
        }
        assert_eq!(MATCH_CASES.len(), 47);
    }

    /// TestProcessWithMatchesPlatform.
    #[test]
    fn release_file_name() {
        let lex = Lexer::new('\\');
        let release = "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
        let cases: [(&[&str], &str); 3] = [
            (
                &["TARGETARCH=arm", "TARGETVARIANT=v7"],
                "something-v1.2.3.linux-arm-v7.tar.gz",
            ),
            (
                &["TARGETARCH=arm64", "TARGETVARIANT="],
                "something-v1.2.3.linux-arm64.tar.gz",
            ),
            (&["TARGETARCH=arm64"], "something-v1.2.3.linux-arm64.tar.gz"),
        ];
        for (extra, expected) in cases {
            let mut entries = vec!["VERSION=v1.2.3", "TARGETOS=linux"];
            entries.extend(extra);
            let got = lex.process_word_with_matches(release, &env_from(&entries));
            assert_eq!(got.map(|r| r.0).as_deref(), Ok(expected));
        }
    }

    /// TestConvertShellPatternToRegex, as tokens instead of regex text.
    #[test]
    fn pattern_parse() {
        use Tok::{Any, Lit, Star};
        let toks = |p: &str| Pattern::parse(p, true).map(|p| p.toks);
        assert_eq!(toks("*"), Ok(vec![Star]));
        assert_eq!(toks("?"), Ok(vec![Any]));
        assert_eq!(toks("\\*"), Ok(vec![Lit('*')]));
        assert_eq!(
            toks("(()[]{\\}^$.\\*\\?|\\\\"),
            Ok("(()[]{}^$.*?|\\".chars().map(Lit).collect())
        );
        assert_eq!(toks("\\"), Err(char::REPLACEMENT_CHARACTER));
        assert_eq!(toks("\\x"), Err('x'));
        assert_eq!(toks("\\\\\\"), Err(char::REPLACEMENT_CHARACTER));
    }

    /// TestReverseString and TestReversePattern.
    #[test]
    fn reversing() {
        assert_eq!(reverse_string("54321"), "12345");
        assert_eq!(reverse_string("🖖🚀👽"), "👽🚀🖖");
        for (pattern, expected) in [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("👽\\🚀🖖", "🖖\\🚀👽"),
            ("\\\\b", "b\\\\"),
        ] {
            assert_eq!(reverse_pattern(pattern), expected, "{pattern:?}");
        }
    }

    #[test]
    fn error_messages() {
        let lex = Lexer::new('\\');
        let env = env_from(&["E=", "X=abc", "B=\\"]);
        let cases = [
            ("${", "syntax error: missing '}'"),
            ("${x", "unsupported modifier (\u{fffd}) in substitution"),
            ("${x:-a", "syntax error: missing '}'"),
            ("${x:-'a}", "syntax error: missing '}'"),
            ("${x/a", "syntax error: missing '/' in ${}"),
            ("${x/a/b", "syntax error: missing '}'"),
            ("${}", "syntax error: bad substitution"),
            ("${:-a}", "syntax error: bad substitution"),
            ("${x=a}", "unsupported modifier (=) in substitution"),
            ("${x:#a}", "unsupported modifier (:#) in substitution"),
            ("${x\n}", "unsupported modifier (\\n) in substitution"),
            ("${x?}", "x: is not allowed to be unset"),
            ("${E:?}", "E: is not allowed to be empty"),
            ("${E:?a\nb}", "E: a\\nb"),
            (
                "'a",
                "unexpected end of statement while looking for matching single-quote",
            ),
            (
                "\"a\\",
                "unexpected end of statement while looking for matching double-quote",
            ),
            (
                "${X#\\x}",
                "invalid pattern (\\x) in substitution: invalid escape '\\x'",
            ),
            // `%` reverses the pattern first, and BuildKit reports the reversed one.
            ("${X%ab\\\\\\}", "syntax error: missing '}'"),
            (
                "${X%$X\\c}",
                "invalid pattern (\\ccba) in substitution: invalid escape '\\c'",
            ),
            (
                "${X#$B}",
                "invalid pattern (\\) in substitution: invalid escape '\\\u{fffd}'",
            ),
        ];
        for (input, cause) in cases {
            let err = lex.process_word(input, &env).unwrap_err();
            let text = err.to_string();
            assert_eq!(
                text,
                format!("failed to process {}: {cause}", go_quote(input))
            );
            assert!(!text.contains('\n'), "{text:?}");
        }
        let err = lex.process_word("\"${x\u{2028}\x01é", &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to process \"\\\"${x\\u2028\\x01é\": unsupported modifier (\\u{2028}) in \
             substitution"
        );
    }

    #[test]
    fn go_quote_matches_strconv() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\x07\x08\x0c\n\r\t\x0b"), r#""\a\b\f\n\r\t\v""#);
        assert_eq!(
            go_quote("\x00\x7f\u{85}\u{a0}\u{ad}"),
            r#""\x00\x7f\u0085\u00a0\u00ad""#
        );
        assert_eq!(
            go_quote("한국어 é\u{200b}\u{e000}\u{f0000}"),
            "\"한국어 é\\u200b\\ue000\\U000f0000\""
        );
    }

    #[test]
    fn backtick_escape() {
        let lex = Lexer::new('`');
        let env = env_from(&["A=x"]);
        for (input, expected) in [
            (r"C:\path\to", r"C:\path\to"),
            ("a`$A", "a$A"),
            ("a``$A", "a`x"),
            ("\"a`\"b\"", "a\"b"),
            ("\"a\\b`$A\"", "a\\b$A"),
            ("'a`b'", "a`b"),
            ("x`", "x"),
            ("x` y", "x y"),
        ] {
            assert_eq!(
                lex.process_word(input, &env).as_deref(),
                Ok(expected),
                "{input:?}"
            );
        }
        assert_eq!(
            lex.process_words("a` b c", &env),
            Ok(vec!["a b".to_owned(), "c".to_owned()])
        );
    }

    #[test]
    fn flags() {
        let empty = env_from(&[]);
        // Heredoc detection in BuildKit's parser: RawQuotes + SkipUnsetEnv.
        let mut lex = Lexer::new('\\');
        lex.skip_unset_env = true;
        assert_eq!(
            lex.process_words("<<\"EOF\"", &empty),
            Ok(vec!["<<EOF".to_owned()])
        );
        lex.raw_quotes = true;
        assert_eq!(
            lex.process_words("<<\"EOF\" '$X'", &empty),
            Ok(vec!["<<\"EOF\"".to_owned(), "'$X'".to_owned()])
        );
        assert_eq!(
            lex.process_word(
                "$FOO ${BAR} ${BAZ:-x} ${Q/a/b} ${R%%y} $",
                &env_from(&["BAR=1"])
            ),
            Ok("$FOO 1 ${BAZ:-x} ${Q/a/b} ${R%%y} $".to_owned())
        );

        let mut lex = Lexer::new('\\');
        lex.raw_escapes = true;
        assert_eq!(
            lex.process_word("a\\\"b\\", &empty).as_deref(),
            Ok("a\\\"b\\")
        );
        assert_eq!(
            lex.process_word("\"a\\$b\"", &empty).as_deref(),
            Ok("a\\$b")
        );
        // Quirk kept from Go: an escape before an ordinary character is written twice.
        assert_eq!(
            lex.process_word("\"a\\b\"", &empty).as_deref(),
            Ok("a\\\\b")
        );

        let mut lex = Lexer::new('\\');
        lex.skip_process_quotes = true;
        assert_eq!(
            lex.process_word("'$A' \"$A\"", &env_from(&["A=x"]))
                .as_deref(),
            Ok("'x' \"x\"")
        );
    }

    #[test]
    fn heredoc_words() {
        let lex = Lexer::default();
        let env = env_from(&[]);
        assert_eq!(
            lex.process_words("cat << EOF > out", &env),
            Ok(vec!["cat", "<< EOF", ">", "out"]
                .into_iter()
                .map(String::from)
                .collect())
        );
        assert_eq!(
            lex.process_word("a <\t<\tb", &env).as_deref(),
            Ok("a <\t<\tb")
        );
    }

    #[test]
    fn words_keep_text_before_nested_substitution() {
        // Deviation: BuildKit returns ["xbar"] and ["x", "ybar"] here.
        let lex = Lexer::default();
        let env = env_from(&[]);
        assert_eq!(
            lex.process_words("foo${a:-x}bar", &env),
            Ok(vec!["fooxbar".to_owned()])
        );
        assert_eq!(
            lex.process_words("foo${a:-x y}bar", &env),
            Ok(vec!["foox".to_owned(), "ybar".to_owned()])
        );
    }

    #[test]
    fn names_and_specials() {
        let lex = Lexer::default();
        let env = env_from(&["a_1=v", "é=e", "1=one", "@=at"]);
        for (input, expected) in [
            ("$a_1-", "v-"),
            ("$é.", "e."),
            ("$1x", "onex"),
            ("${1}", "one"),
            ("$@x", "atx"),
            ("$١٢", ""),
            ("$²", "$²"),
            ("\u{feff}$a_1", "v"),
            ("a\u{feff}", "a\u{feff}"),
            ("a\0b", "a\0b"),
        ] {
            assert_eq!(
                lex.process_word(input, &env).as_deref(),
                Ok(expected),
                "{input:?}"
            );
        }
        assert!(DIGIT_ZEROS.windows(2).all(|w| w[0] < w[1]));
        let (_, matched, unmatched) = lex
            .process_word_with_matches("$١٢ $a_1 ${@:-x}", &env)
            .unwrap_or_default();
        assert_eq!((matched, unmatched), (set(&["@", "a_1"]), set(&["١٢"])));
    }

    #[test]
    fn patterns() {
        let lex = Lexer::default();
        let env = env_from(&["F=a\nb.b", "R=[$0]", "S=x$$y$1${0}${0$", "U=ééé"]);
        for (input, expected) in [
            // Go's `.` does not match a newline.
            ("${F##*}", "\nb.b"),
            ("${F%*}", "a\nb.b"),
            ("${F%%.*}", "a\nb"),
            ("${F#?}", "\nb.b"),
            // Only the replace-all form expands `$` in the replacement, like ReplaceAllString.
            ("${F//b/$R}", "a\n[b].[b]"),
            ("${F/b/$R}", "a\n[$0].b"),
            ("${F//b/$S}", "a\nx$yb${0$.x$yb${0$"),
            ("${U//é/-}", "---"),
            ("${U//*/-}", "-"),
            ("${U//?é/-}", "-é"),
            ("${U%é}", "éé"),
            // An empty match right after a match is skipped.
            ("${F//*/-}", "-\n-"),
            ("${U///-}", "-é-é-é-"),
        ] {
            assert_eq!(
                lex.process_word(input, &env).as_deref(),
                Ok(expected),
                "{input:?}"
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let lex = Lexer::default();
        let env = env_from(&[]);
        let nested = |n: usize| format!("{}x{}", "${a:-".repeat(n), "}".repeat(n));
        assert_eq!(
            lex.process_word(&nested(MAX_DEPTH), &env).as_deref(),
            Ok("x")
        );
        for input in [
            nested(MAX_DEPTH + 1),
            nested(10_000),
            "${a:-\"".repeat(10_000),
            "${a/".repeat(10_000),
            "${a#${b%".repeat(10_000),
        ] {
            match lex.process_word(&input, &env) {
                Err(ShellError::Process { error, .. }) => {
                    assert_eq!(*error, ShellError::TooDeep(MAX_DEPTH))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let lex = Lexer::default();
        let env = env_from(&["a=\\", "b=*", "c=é\n"]);
        let inputs = [
            "",
            "$",
            "${",
            "${a",
            "${a:",
            "${a:-",
            "${a/",
            "${a//",
            "${a/x/",
            "${a#",
            "${a%%",
            "\\",
            "'",
            "\"",
            "\"\\",
            "\"$",
            "`",
            "<",
            "<<",
            "${a#$a}",
            "${a%$a}",
            "${a/$a/}",
            "${a//$b/$$}",
            "${c##$b}",
            "${é}",
            "${\u{feff}}",
            "$\u{feff}",
            "\u{feff}",
            "${a:\u{0}",
        ];
        for input in inputs {
            let _ = lex.process_word(input, &env);
            let _ = lex.process_words(input, &env);
            let _ = lex.process_word_with_matches(input, &env);
        }
        // Pseudo-random strings over the characters the lexer cares about.
        let alphabet: Vec<char> = "${}:-+?#%/\\'\"` <\n*aé0".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let input: String = (0..len)
                .map(|i| alphabet[((seed >> (i * 5)) % alphabet.len() as u64) as usize])
                .collect();
            let _ = lex.process_word(&input, &env);
            let _ = lex.process_words(&input, &env);
        }
    }

    /// Backtracking reference for Go's leftmost-first semantics, on uncollapsed stars.
    fn backtrack(toks: &[Tok], greedy: bool, hay: &[char], pos: usize) -> Option<usize> {
        let Some((&tok, rest)) = toks.split_first() else {
            return Some(pos);
        };
        match tok {
            Tok::Star => {
                let max = hay[pos..].iter().take_while(|&&c| c != '\n').count();
                let mut lens: Vec<usize> = (0..=max).collect();
                if greedy {
                    lens.reverse();
                }
                lens.into_iter()
                    .find_map(|k| backtrack(rest, greedy, hay, pos + k))
            }
            _ => hay
                .get(pos)
                .filter(|&&c| tok.accepts(c))
                .and_then(|_| backtrack(rest, greedy, hay, pos + 1)),
        }
    }

    #[test]
    fn matcher_agrees_with_backtracking() {
        let pat_chars: Vec<char> = "ab*?é\n".chars().collect();
        let hay_chars: Vec<char> = "abé\n".chars().collect();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let r = next();
            let pattern: String = (0..r % 6)
                .map(|i| pat_chars[((r >> (8 + i * 4)) % 6) as usize])
                .collect();
            let r = next();
            let hay: Vec<char> = (0..r % 9)
                .map(|i| hay_chars[((r >> (8 + i * 3)) % 4) as usize])
                .collect();
            let hay_str: String = hay.iter().collect();
            let byte = |i: usize| hay[..i].iter().map(|c| c.len_utf8()).sum::<usize>();
            let raw: Vec<Tok> = pattern
                .chars()
                .map(|c| match c {
                    '*' => Tok::Star,
                    '?' => Tok::Any,
                    c => Tok::Lit(c),
                })
                .collect();
            for greedy in [false, true] {
                let Ok(compiled) = Pattern::parse(&pattern, greedy) else {
                    panic!("{pattern:?}");
                };
                let anchored = backtrack(&raw, greedy, &hay, 0).map(|e| (0, byte(e)));
                assert_eq!(
                    compiled.find(&hay_str, 0, true),
                    anchored,
                    "{pattern:?} {hay_str:?}"
                );
                let unanchored = (0..=hay.len())
                    .find_map(|s| backtrack(&raw, greedy, &hay, s).map(|e| (byte(s), byte(e))));
                assert_eq!(
                    compiled.find(&hay_str, 0, false),
                    unanchored,
                    "{pattern:?} {hay_str:?} greedy={greedy}"
                );
            }
        }
    }

    /// BuildKit `frontend/dockerfile/shell/envVarTest`, verbatim.
    const ENV_VAR_TEST: &str = r#"A|hello                    |     hello
A|he'll'o                  |     hello
A|he'llo                   |     error
A|he\'llo                  |     he'llo
A|he\\'llo                 |     error
A|abc\tdef                 |     abctdef
A|"abc\tdef"               |     abc\tdef
A|"abc\\tdef"              |     abc\tdef
A|'abc\tdef'               |     abc\tdef
A|hello\                   |     hello
A|hello\\                  |     hello\
A|"hello                   |     error
A|"hello\"                 |     error
A|"hel'lo"                 |     hel'lo
A|'hello                   |     error
A|'hello\'                 |     hello\
A|'hello\there'            |     hello\there
A|'hello\\there'           |     hello\\there
A|"''"                     |     ''
A|$.                       |     $.
A|he$1x                    |     hex
A|he$.x                    |     he$.x
# Next one is different on Windows as $pwd==$PWD
U|he$pwd.                  |     he.
W|he$pwd.                  |     he/home.
A|he$PWD                   |     he/home
A|he\$PWD                  |     he$PWD
A|he\\$PWD                 |     he\/home
A|"he\$PWD"                |     he$PWD
A|"he\\$PWD"               |     he\/home
A|\${}                     |     ${}
A|\${}aaa                  |     ${}aaa
A|he\${}                   |     he${}
A|he\${}xx                 |     he${}xx
A|${}                      |     error
A|${}aaa                   |     error
A|he${}                    |     error
A|he${}xx                  |     error
A|he${hi}                  |     he
A|he${hi}xx                |     hexx
A|he${PWD}                 |     he/home
A|he${.}                   |     error
A|he${XXX:-000}xx          |     he000xx
A|he${PWD:-000}xx          |     he/homexx
A|he${XXX:-$PWD}xx         |     he/homexx
A|he${XXX:-${PWD:-yyy}}xx  |     he/homexx
A|he${XXX:-${YYY:-yyy}}xx  |     heyyyxx
A|he${XXX:YYY}             |     error
A|he${XXX?}                |     error
A|he${XXX:?}               |     error
A|he${PWD?}                |     he/home
A|he${PWD:?}               |     he/home
A|he${NULL?}               |     he
A|he${NULL:?}              |     error
A|he${XXX:+${PWD}}xx       |     hexx
A|he${PWD:+${XXX}}xx       |     hexx
A|he${PWD:+${SHELL}}xx     |     hebashxx
A|he${XXX:+000}xx          |     hexx
A|he${PWD:+000}xx          |     he000xx
A|'he${XX}'                |     he${XX}
A|"he${PWD}"               |     he/home
A|"he'$PWD'"               |     he'/home'
A|"$PWD"                   |     /home
A|'$PWD'                   |     $PWD
A|'\$PWD'                  |     \$PWD
A|'"hello"'                |     "hello"
A|he\$PWD                  |     he$PWD
A|"he\$PWD"                |     he$PWD
A|'he\$PWD'                |     he\$PWD
A|he${PWD                  |     error
A|he${PWD:=000}xx          |     error
A|he${PWD:+${PWD}:}xx      |     he/home:xx
A|he${XXX:-\$PWD:}xx       |     he$PWD:xx
A|he${XXX:-\${PWD}z}xx     |     he${PWDz}xx
A|안녕하세요                 |     안녕하세요
A|안'녕'하세요               |     안녕하세요
A|안'녕하세요                |     error
A|안녕\'하세요               |     안녕'하세요
A|안\\'녕하세요              |     error
A|안녕\t하세요               |     안녕t하세요
A|"안녕\t하세요"             |     안녕\t하세요
A|'안녕\t하세요              |     error
A|안녕하세요\                |     안녕하세요
A|안녕하세요\\               |     안녕하세요\
A|"안녕하세요                |     error
A|"안녕하세요\"              |     error
A|"안녕'하세요"              |     안녕'하세요
A|'안녕하세요                |     error
A|'안녕하세요\'              |     안녕하세요\
A|안녕$1x                    |     안녕x
A|안녕$.x                    |     안녕$.x
# Next one is different on Windows as $pwd==$PWD
U|안녕$pwd.                  |     안녕.
W|안녕$pwd.                  |     안녕/home.
A|안녕$PWD                   |     안녕/home
A|안녕\$PWD                  |     안녕$PWD
A|안녕\\$PWD                 |     안녕\/home
A|안녕\${}                   |     안녕${}
A|안녕\${}xx                 |     안녕${}xx
A|안녕${}                    |     error
A|안녕${}xx                  |     error
A|안녕${hi}                  |     안녕
A|안녕${hi}xx                |     안녕xx
A|안녕${PWD}                 |     안녕/home
A|안녕${.}                   |     error
A|안녕${XXX:-000}xx          |     안녕000xx
A|안녕${PWD:-000}xx          |     안녕/homexx
A|안녕${XXX:-$PWD}xx         |     안녕/homexx
A|안녕${XXX:-${PWD:-yyy}}xx  |     안녕/homexx
A|안녕${XXX:-${YYY:-yyy}}xx  |     안녕yyyxx
A|안녕${XXX:YYY}             |     error
A|안녕${XXX:+${PWD}}xx       |     안녕xx
A|안녕${PWD:+${XXX}}xx       |     안녕xx
A|안녕${PWD:+${SHELL}}xx     |     안녕bashxx
A|안녕${XXX:+000}xx          |     안녕xx
A|안녕${PWD:+000}xx          |     안녕000xx
A|'안녕${XX}'                |     안녕${XX}
A|"안녕${PWD}"               |     안녕/home
A|"안녕'$PWD'"               |     안녕'/home'
A|'"안녕"'                   |     "안녕"
A|안녕\$PWD                  |     안녕$PWD
A|"안녕\$PWD"                |     안녕$PWD
A|'안녕\$PWD'                |     안녕\$PWD
A|안녕${PWD                  |     error
A|안녕${PWD:=000}xx          |     error
A|안녕${PWD:+${PWD}:}xx      |     안녕/home:xx
A|안녕${XXX:-\$PWD:}xx       |     안녕$PWD:xx
A|안녕${XXX:-\${PWD}z}xx     |     안녕${PWDz}xx
A|$KOREAN                    |     한국어
A|안녕$KOREAN                |     안녕한국어
A|${{aaa}                   |     error
A|${aaa}}                   |     }
A|${aaa                     |     error
A|${{aaa:-bbb}              |     error
A|${aaa:-bbb}}              |     bbb}
A|${aaa:-bbb                |     error
A|${aaa:-bbb}               |     bbb
A|${aaa:-${bbb:-ccc}}       |     ccc
A|${aaa:-bbb ${foo}         |     error
A|${aaa:-bbb {foo}          |     bbb {foo
A|${:}                      |     error
A|${:-bbb}                  |     error
A|${:+bbb}                  |     error

# Positional parameters won't be set:
# http://pubs.opengroup.org/onlinepubs/009695399/utilities/xcu_chap02.html#tag_02_05_01
A|$1                        |
A|${1}                      |
A|${1:+bbb}                 |
A|${1:-bbb}                 |     bbb
A|$2                        |
A|${2}                      |
A|${2:+bbb}                 |
A|${2:-bbb}                 |     bbb
A|$3                        |
A|${3}                      |
A|${3:+bbb}                 |
A|${3:-bbb}                 |     bbb
A|$4                        |
A|${4}                      |
A|${4:+bbb}                 |
A|${4:-bbb}                 |     bbb
A|$5                        |
A|${5}                      |
A|${5:+bbb}                 |
A|${5:-bbb}                 |     bbb
A|$6                        |
A|${6}                      |
A|${6:+bbb}                 |
A|${6:-bbb}                 |     bbb
A|$7                        |
A|${7}                      |
A|${7:+bbb}                 |
A|${7:-bbb}                 |     bbb
A|$8                        |
A|${8}                      |
A|${8:+bbb}                 |
A|${8:-bbb}                 |     bbb
A|$9                        |
A|${9}                      |
A|${9:+bbb}                 |
A|${9:-bbb}                 |     bbb
A|$999                      |
A|${999}                    |
A|${999:+bbb}               |
A|${999:-bbb}               |     bbb
A|$999aaa                   |     aaa
A|${999}aaa                 |     aaa
A|${999:+bbb}aaa            |     aaa
A|${999:-bbb}aaa            |     bbbaaa
A|$001                      |
A|${001}                    |
A|${001:+bbb}               |
A|${001:-bbb}               |     bbb
A|$001aaa                   |     aaa
A|${001}aaa                 |     aaa
A|${001:+bbb}aaa            |     aaa
A|${001:-bbb}aaa            |     bbbaaa

# Special parameters won't be set in the Dockerfile:
# http://pubs.opengroup.org/onlinepubs/009695399/utilities/xcu_chap02.html#tag_02_05_02
A|$@                        |
A|${@}                      |
A|${@:+bbb}                 |
A|${@:-bbb}                 |     bbb
A|$@@@                      |     @@
A|$@aaa                     |     aaa
A|${@}aaa                   |     aaa
A|${@:+bbb}aaa              |     aaa
A|${@:-bbb}aaa              |     bbbaaa
A|$*                        |
A|${*}                      |
A|${*:+bbb}                 |
A|${*:-bbb}                 |     bbb
A|$#                        |
A|${#}                      |
A|${#:+bbb}                 |
A|${#:-bbb}                 |     bbb
A|$?                        |
A|${?}                      |
A|${?:+bbb}                 |
A|${?:-bbb}                 |     bbb
A|$-                        |
A|${-}                      |
A|${-:+bbb}                 |
A|${-:-bbb}                 |     bbb
A|$$                        |
A|${$}                      |
A|${$:+bbb}                 |
A|${$:-bbb}                 |     bbb
A|$!                        |
A|${!}                      |
A|${!:+bbb}                 |
A|${!:-bbb}                 |     bbb
A|$0                        |
A|${0}                      |
A|${0:+bbb}                 |
A|${0:-bbb}                 |     bbb
"#;

    /// BuildKit `frontend/dockerfile/shell/wordsTest`, verbatim (three lines end in spaces).
    const WORDS_TEST: &str = r#"hello | hello
hello${hi}bye | hellobye
ENV hi=hi
hello${hi}bye | hellohibye
ENV space=abc  def
hello${space}bye | helloabc,defbye
hello"${space}"bye | helloabc  defbye
hello "${space}"bye | hello,abc  defbye
ENV leading=  ab c
hello${leading}def | hello,ab,cdef
hello"${leading}" def | hello  ab c,def
hello"${leading}" | hello  ab c
hello${leading} | hello,ab,c
# next line MUST have 3 trailing spaces, don't erase them!
ENV trailing=ab c   
hello${trailing} | helloab,c
hello${trailing}d | helloab,c,d
hello"${trailing}"d | helloab c   d
# next line MUST have 3 trailing spaces, don't erase them!
hel"lo${trailing}" | helloab c   
hello" there  " | hello there  
hello there     | hello,there
hello\ there | hello there
hello" there | error
hello\" there | hello",there
hello"\\there" | hello\there
hello"\there" | hello\there
hello'\\there' | hello\\there
hello'\there' | hello\there
hello'$there' | hello$there
"#;
}
