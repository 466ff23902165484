//! Dockerfile parser, a port of BuildKit's (moby/buildkit at 73ed6825,
//! `frontend/dockerfile/parser` and `frontend/dockerfile/instructions`).
//!
//! It runs in BuildKit's two phases so errors come out in the same order: first the whole file
//! is split into nodes (`parser.Parse`: directives, continuations, heredocs, per-instruction
//! line parsers), then each node becomes a typed [`Command`] (`instructions.Parse`: argument
//! counts, flags). Nothing is variable-expanded here: words keep their quotes and `$`s exactly as
//! BuildKit hands them to dispatch, which expands them later.

use std::borrow::Cow;
use std::time::Duration;

/// A Dockerfile error at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile:{line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\` or `` ` ``) set by the `# escape=` directive.
    pub escape: char,
    /// The `# syntax=` directive's value as BuildKit's DetectSyntax reads it (full value,
    /// options included).
    pub syntax: Option<String>,
    /// All instructions in order, including ARGs before the first FROM.
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based first line.
    pub line: usize,
    /// Last line, heredoc bodies included.
    pub end_line: usize,
    /// BuildKit's `node.Original`: the instruction with continuations joined (escape and newline
    /// removed, continuation lines not trimmed) and heredoc bodies left out.
    pub original: String,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// Shell form: the text to append to the shell (BuildKit joins the arguments with a space).
    Shell(String),
    /// JSON (exec) form.
    Exec(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    /// For RUN the body as written (BuildKit's ShellInlineFile: dispatch strips tabs when
    /// `chomp`); for COPY/ADD already tab-stripped when `chomp` (BuildKit's SourceContent).
    pub content: String,
    /// False when the delimiter was quoted (`<<'EOF'`, `<<"EOF"`, `<<E"OF"`).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body.
    pub chomp: bool,
}

/// COPY and ADD. Empty string flags (`--chown=`) read as unset, as in BuildKit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs {
    /// Non-heredoc sources, in order.
    pub sources: Vec<String>,
    pub dest: String,
    /// Heredoc sources, in order (BuildKit's SourceContents).
    pub heredocs: Vec<Heredoc>,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub exclude: Vec<String>,
    pub parents: bool,
    /// ADD only; `Some` when the flag was given.
    pub keep_git_dir: Option<bool>,
    /// ADD only.
    pub checksum: Option<String>,
    /// ADD only; `Some` when the flag was given.
    pub unpack: Option<bool>,
}

/// HEALTHCHECK. Zero durations and retries are `None`, as the image config leaves them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthArgs {
    /// `None` for `HEALTHCHECK NONE`; `Shell` becomes `["CMD-SHELL", s]`, `Exec` `["CMD", ..]`.
    pub test: Option<ShellOrExec>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `name` is lower-cased and validated; an empty `--platform=` is `None`.
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    /// `network`/`security` are `Some` when the flag was given (already validated: `default`,
    /// `none`, `host` / `sandbox`, `insecure`). `mounts` are the raw `--mount` values.
    Run {
        cmd: ShellOrExec,
        heredocs: Vec<Heredoc>,
        mounts: Vec<String>,
        network: Option<String>,
        security: Option<String>,
    },
    Cmd(ShellOrExec),
    Entrypoint(ShellOrExec),
    Shell(Vec<String>),
    /// Keys and values raw (quotes kept), as BuildKit's parseNameVal splits them.
    Label(Vec<(String, String)>),
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Maintainer(String),
    /// Sorted, as BuildKit sorts them.
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Add(CopyArgs),
    Copy(CopyArgs),
    Healthcheck(HealthArgs),
    Onbuild {
        /// The trigger as stored in the image config's OnBuild list: the original text after
        /// `ONBUILD` (keyword case kept), heredoc bodies appended.
        expression: String,
        trigger: Box<Instruction>,
    },
}

/// Parses a Dockerfile as BuildKit does. Stage structure (only ARG before the first FROM) is
/// left to the caller.
pub fn parse(source: &str) -> Result<Dockerfile, ParseError> {
    let ast = parse_ast(source)?;
    let instructions = ast
        .nodes
        .iter()
        .map(|node| {
            to_instruction(node, &node.heredocs, node.start_line, node.end_line)
                .map_err(|message| perr(node.start_line, message))
        })
        .collect::<Result<_, _>>()?;
    Ok(Dockerfile {
        escape: ast.escape,
        syntax: detect_syntax(source),
        instructions,
    })
}

/// Parses an ONBUILD trigger from a base image's config as BuildKit's initOnBuildTriggers does:
/// a Dockerfile of exactly one instruction (default escape), FROM not allowed. Lines are
/// relative to the trigger text.
pub fn parse_trigger(expression: &str) -> Result<Instruction, ParseError> {
    let ast = parse_ast(expression)?;
    let [node] = ast.nodes.as_slice() else {
        return Err(perr(1, "onbuild trigger should be a single expression"));
    };
    let line = node.start_line;
    let instruction = to_instruction(node, &node.heredocs, line, node.end_line)
        .map_err(|message| perr(line, message))?;
    if matches!(instruction.command, Command::From { .. }) {
        return Err(perr(line, "FROM isn't allowed as an ONBUILD trigger"));
    }
    Ok(instruction)
}

/// BuildKit's MustParseHeredoc: the heredoc a single word such as `<<EOF` or `<<-'EOF'` opens
/// (content empty). Dispatch uses it to tell `RUN <<EOF` (run the body) from
/// `RUN <<EOF python3` (hand the shell the command with the bodies appended).
pub fn parse_heredoc_word(word: &str) -> Option<Heredoc> {
    parse_heredoc(word).ok().flatten()
}

/// BuildKit's ChompHeredocContent: strips leading tabs from every line.
pub fn chomp_heredoc(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Phase 1: lines to nodes (parser.go, line_parsers.go, split_command.go, directives.go).

/// bufio.Scanner's default limit: longer lines fail the whole parse in BuildKit.
const MAX_LINE: usize = 65535;

struct Ast {
    nodes: Vec<Node>,
    escape: char,
}

/// BuildKit's `parser.Node`, flattened: `args` is the `Next` chain, `sub` the ONBUILD child.
#[derive(Debug)]
struct Node {
    value: String,
    original: String,
    flags: Vec<String>,
    args: Vec<String>,
    sub: Option<Box<Node>>,
    json: bool,
    heredocs: Vec<Heredoc>,
    start_line: usize,
    end_line: usize,
}

impl Drop for Node {
    // `ONBUILD ONBUILD ...` chains can be arbitrarily deep; drop them without recursion.
    fn drop(&mut self) {
        let mut next = self.sub.take();
        while let Some(mut node) = next {
            next = node.sub.take();
        }
    }
}

impl Node {
    fn new(
        value: String,
        original: String,
        flags: Vec<String>,
        args: Vec<String>,
        json: bool,
    ) -> Self {
        Node {
            value,
            original,
            flags,
            args,
            sub: None,
            json,
            heredocs: Vec::new(),
            start_line: 0,
            end_line: 0,
        }
    }

    fn can_contain_heredoc(&self) -> bool {
        let mut node = self;
        if node.value.to_lowercase() == "onbuild"
            && let Some(child) = &node.sub
        {
            node = child;
        }
        matches!(node.value.to_lowercase().as_str(), "add" | "copy" | "run") && !node.json
    }
}

/// Yields lines with their newline, like BuildKit's scanLines, and stops (remembering why) at a
/// line bufio.Scanner could not hold.
struct Lines<'a> {
    rest: &'a str,
    too_long: bool,
}

impl<'a> Lines<'a> {
    fn next_line(&mut self) -> Option<&'a str> {
        if self.too_long || self.rest.is_empty() {
            return None;
        }
        let end = self.rest.find('\n').map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        if line.strip_suffix('\n').unwrap_or(line).len() > MAX_LINE {
            self.too_long = true;
            return None;
        }
        self.rest = rest;
        Some(line)
    }
}

fn perr(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

fn parse_ast(source: &str) -> Result<Ast, ParseError> {
    let mut directives = DirectiveParser::default();
    let mut escape = '\\';
    let mut lines = Lines {
        rest: source,
        too_long: false,
    };
    let mut current_line = 0;
    let mut nodes = Vec::new();

    while let Some(mut raw) = lines.next_line() {
        if current_line == 0 {
            raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        }
        // The first line of an instruction is left-trimmed and may be a parser directive.
        let token = raw.trim_end_matches(['\r', '\n']).trim_start();
        match directives.parse_line(token) {
            Ok(Some((key, value))) if key == "escape" => {
                escape = escape_token(&value).map_err(|m| perr(current_line + 1, m))?;
            }
            Ok(_) => {}
            Err(message) => return Err(perr(current_line + 1, message)),
        }
        let token = if is_comment(token) { "" } else { token };
        current_line += 1;
        let start_line = current_line;

        let (first, mut end_of_line) = trim_continuation(token, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        while !end_of_line {
            let Some(raw) = lines.next_line() else { break };
            current_line += 1;
            // Comments and blank lines inside a continuation are skipped, not terminators.
            if is_comment(raw) {
                continue;
            }
            let token = raw.trim_end_matches(['\r', '\n']);
            if token.trim_start().is_empty() {
                continue;
            }
            let (part, end) = trim_continuation(token, escape);
            end_of_line = end;
            line.push_str(part);
        }

        let mut node = new_node_from_line(&line, escape).map_err(|m| perr(start_line, m))?;
        if node.can_contain_heredoc() && line.contains("<<") {
            for mut heredoc in heredocs_from_line(&line).map_err(|m| perr(start_line, m))? {
                let mut content = String::new();
                let mut terminated = false;
                while let Some(raw) = lines.next_line() {
                    current_line += 1;
                    let mut candidate = raw.trim_end_matches(['\r', '\n']);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(perr(start_line, "unterminated heredoc"));
                }
                heredoc.content = content;
                node.heredocs.push(heredoc);
            }
        }
        node.start_line = start_line;
        node.end_line = current_line;
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(perr(current_line.max(1), "file with no instructions"));
    }
    if lines.too_long {
        return Err(perr(
            current_line + 1,
            format!("dockerfile line greater than max allowed size of {MAX_LINE}"),
        ));
    }
    Ok(Ast { nodes, escape })
}

fn escape_token(value: &str) -> Result<char, String> {
    match value {
        "\\" => Ok('\\'),
        "`" => Ok('`'),
        _ => Err(format!(
            "invalid escape token '{value}' does not match ` or \\"
        )),
    }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The continuation regex `([^E])E[ \t]*$|^E[ \t]*$`: a trailing escape (spaces and tabs may
/// follow) that is not itself escaped. Returns the line without it, and whether the line ends.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    if let Some(before) = line.trim_end_matches([' ', '\t']).strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before, false);
    }
    (line, true)
}

/// BuildKit's DirectiveParser: `#name=value` lines before anything else.
#[derive(Default)]
struct DirectiveParser {
    seen: Vec<String>,
    done: bool,
}

impl DirectiveParser {
    fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let Some((key, value)) = match_directive(rest.trim_start()) else {
            self.done = true;
            return Ok(None);
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        self.seen.push(key.clone());
        Ok(Some((key, value.to_string())))
    }
}

/// Go's RE2 `\s`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn match_directive(s: &str) -> Option<(&str, &str)> {
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let name_end = s
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    let (name, rest) = s.split_at(name_end);
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    if !value.is_empty() {
        return Some((name, value));
    }
    // `.+?` still needs one character: an all-space value matches as its last space.
    let last = rest.chars().next_back()?;
    Some((name, &rest[rest.len() - last.len_utf8()..]))
}

/// BuildKit's DetectSyntax for `#` directives: BOM and a `#!` first line are skipped.
fn detect_syntax(source: &str) -> Option<String> {
    let mut dt = source.strip_prefix('\u{feff}').unwrap_or(source);
    if dt.starts_with("#!") {
        dt = dt.split_once('\n').map_or("", |(_, rest)| rest);
    }
    let mut parser = DirectiveParser::default();
    for line in dt.split_inclusive('\n') {
        let line = line.strip_suffix('\n').unwrap_or(line);
        if parser.done || line.len() > MAX_LINE {
            break;
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        match parser.parse_line(line) {
            Ok(Some((key, value))) if key == "syntax" => return Some(value),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    None
}

/// newNodeFromLine. ONBUILD nests the rest of its line; the chain is built iteratively.
fn new_node_from_line(line: &str, escape: char) -> Result<Node, String> {
    let mut chain = Vec::new();
    // Holds the rest of the line in the rare case the flag split had to copy it.
    let mut owned: String;
    let mut line = line;
    let mut node = loop {
        let (cmd, flags, args) = split_command(line, escape);
        let (args, json) = match cmd.to_lowercase().as_str() {
            "onbuild" if !args.is_empty() => {
                // Only the outermost ONBUILD's text is ever read (a nested one is rejected
                // first); keeping every level's would make long chains quadratic.
                let original = if chain.is_empty() {
                    line.to_string()
                } else {
                    String::new()
                };
                chain.push(Node::new(
                    cmd.to_string(),
                    original,
                    flags,
                    Vec::new(),
                    false,
                ));
                match args {
                    Cow::Borrowed(rest) => line = rest,
                    Cow::Owned(rest) => {
                        owned = rest;
                        line = &owned;
                    }
                }
                continue;
            }
            "add" | "copy" | "volume" => parse_maybe_json_to_list(&args)?,
            "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&args)?,
            "env" => (parse_name_val(&args, "ENV", escape)?, false),
            "label" => (parse_name_val(&args, "LABEL", escape)?, false),
            "arg" => (parse_words(&args, escape), false),
            "expose" | "from" => (split_ws(&args), false),
            "healthcheck" => parse_health_config(&args)?,
            "maintainer" | "stopsignal" | "user" | "workdir" => (parse_string(&args), false),
            // Empty ONBUILD, and unknown instructions (rejected in phase 2).
            _ => (Vec::new(), false),
        };
        break Node::new(cmd.to_string(), line.to_string(), flags, args, json);
    };
    while let Some(mut parent) = chain.pop() {
        parent.sub = Some(Box::new(node));
        node = parent;
    }
    Ok(node)
}

/// Go's `unicode.IsSpace` on a single byte taken as a rune, as extractBuilderFlags and
/// parseHealthConfig test it.
fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// splitCommand: the keyword, the leading `--flags`, and the trimmed rest.
fn split_command(line: &str, escape: char) -> (&str, Vec<String>, Cow<'_, str>) {
    let trimmed = line.trim();
    match split_ws_n(trimmed, Some(2)).as_slice() {
        [cmd, rest] => {
            let (args, flags) = extract_builder_flags(rest, escape);
            let args = match args {
                Cow::Borrowed(args) => Cow::Borrowed(args.trim()),
                Cow::Owned(args) => Cow::Owned(args.trim().to_string()),
            };
            (cmd, flags, args)
        }
        [cmd] => (cmd, Vec::new(), Cow::Borrowed("")),
        _ => ("", Vec::new(), Cow::Borrowed("")),
    }
}

/// `regexp.MustCompile("[\t\v\f\r ]+").Split(s, -1)`.
fn split_ws(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    split_ws_n(s, None).into_iter().map(String::from).collect()
}

/// Go's `Regexp.Split` for `[\t\v\f\r ]+`, quirks included (an empty first part when the
/// text starts with a separator, `[""]` for empty text; at most `n` parts).
fn split_ws_n(s: &str, n: Option<usize>) -> Vec<&str> {
    let is_sep = |c: char| matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ');
    if s.is_empty() {
        return vec![""];
    }
    let mut parts = Vec::new();
    let (mut beg, mut end) = (0, 0);
    let mut pos = 0;
    while let Some(off) = s[pos..].find(is_sep) {
        if n.is_some_and(|n| parts.len() + 1 == n) {
            break;
        }
        let start = pos + off;
        let stop = s[start..]
            .find(|c: char| !is_sep(c))
            .map_or(s.len(), |i| start + i);
        end = start;
        if stop != 0 {
            parts.push(&s[beg..end]);
        }
        beg = stop;
        pos = stop;
        if pos >= s.len() {
            break;
        }
    }
    if end != s.len() {
        parts.push(&s[beg..]);
    }
    parts
}

/// extractBuilderFlags. BuildKit walks bytes and writes each one as a rune, so non-ASCII bytes
/// in flags come out Latin-1 decoded (`ø` becomes `Ã¸`); that is mirrored here.
fn extract_builder_flags(line: &str, escape: char) -> (Cow<'_, str>, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let b = line.as_bytes();
    let esc = escape as u8;
    // A split inside a multibyte character (at a 0x85/0xa0 byte) can't be a &str.
    let rest_at = |pos: usize| match line.get(pos..) {
        Some(rest) => Cow::Borrowed(rest),
        None => Cow::Owned(String::from_utf8_lossy(&b[pos..]).into_owned()),
    };
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= b.len() {
        let at_end = pos == b.len();
        let mut ch = if at_end { 0 } else { b[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || b.get(pos + 1) != Some(&b'-') {
                return (rest_at(pos), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space_byte(ch) {
                if word == "--" {
                    return (rest_at(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                phase = Phase::Spaces;
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
        } else if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == esc {
            if pos + 1 == b.len() {
                // A trailing escape is dropped (and closes an open quote).
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = b[pos];
        }
        word.push(char::from(ch));
        pos += 1;
    }
    (Cow::Borrowed(""), words)
}

/// parseWords: splits on whitespace outside quotes, keeping quotes and escapes.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= n {
        let Some(&c) = chars.get(pos) else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        let mut ch = c;
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                // Unquoted, the escape and the next character are both kept.
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        if ch == quote {
            phase = Phase::Word;
        }
        // Inside single quotes the escape is literal.
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            word.push(ch);
            pos += 1;
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// parseNameVal (ENV, LABEL) as `key, value, delimiter` triples: `KEY name value` (delimiter
/// empty) or `KEY n=v n2="v 2"`.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let parts = split_ws_n(rest, Some(2));
        let [name, value] = parts.as_slice() else {
            return Err(format!("{key} must have two arguments"));
        };
        return Ok(vec![name.to_string(), value.to_string(), String::new()]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                crate::build::gofmt::quote(word)
            ));
        };
        out.extend([name.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(out)
}

fn parse_string(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![rest.to_string()]
    }
}

const ERR_NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// parseMaybeJSON: a JSON string array (exec form), else the whole text (shell form).
fn parse_maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        JsonArray::Strings(words) => Ok((words, true)),
        JsonArray::NotStrings => Err(ERR_NOT_STRING_ARRAY.to_string()),
        JsonArray::Invalid => Ok((vec![rest.to_string()], false)),
    }
}

/// parseMaybeJSONToList: a JSON string array, else whitespace-separated words.
fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    match parse_json(rest) {
        JsonArray::Strings(words) => Ok((words, true)),
        JsonArray::NotStrings => Err(ERR_NOT_STRING_ARRAY.to_string()),
        JsonArray::Invalid => Ok((split_ws(rest), false)),
    }
}

/// parseHealthConfig: the type word, then the command as parseMaybeJSON reads it.
fn parse_health_config(rest: &str) -> Result<(Vec<String>, bool), String> {
    let b = rest.as_bytes();
    let sep = b.iter().position(|&c| is_space_byte(c)).unwrap_or(b.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let next = b[sep..]
        .iter()
        .position(|&c| !is_space_byte(c))
        .map_or(b.len(), |i| sep + i);
    let (cmd, json) = parse_maybe_json(&String::from_utf8_lossy(&b[next..]))?;
    let mut args = vec![String::from_utf8_lossy(&b[..sep]).into_owned()];
    args.extend(cmd);
    Ok((args, json))
}

fn parse_json(rest: &str) -> JsonArray {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return JsonArray::Invalid;
    }
    go_json_array(rest)
}

// ---------------------------------------------------------------------------------------------
// Go's encoding/json, as far as `json.Unmarshal(rest, &[]any{})` decides exec form.

enum JsonArray {
    Strings(Vec<String>),
    /// Valid JSON with a non-string element: an error in BuildKit.
    NotStrings,
    /// Not JSON (or a number out of float64 range): shell form.
    Invalid,
}

/// encoding/json's maxNestingDepth.
const JSON_MAX_DEPTH: usize = 10000;

fn go_json_array(s: &str) -> JsonArray {
    let mut parser = Json {
        b: s.as_bytes(),
        pos: 0,
    };
    match parser.top_level() {
        Some((elements, false)) => {
            if elements.iter().all(Option::is_some) {
                JsonArray::Strings(elements.into_iter().flatten().collect())
            } else {
                JsonArray::NotStrings
            }
        }
        _ => JsonArray::Invalid,
    }
}

struct Json<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Json<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.peek() == Some(c)).then(|| self.pos += 1)
    }

    /// Validates the whole text iteratively (no recursion, so any depth is safe) and returns
    /// the top-level elements (`None` for non-strings) and whether a number overflowed float64.
    fn top_level(&mut self) -> Option<(Vec<Option<String>>, bool)> {
        let mut stack: Vec<u8> = Vec::new();
        let mut elements = Vec::new();
        let mut overflow = false;
        let mut want_value = true;
        loop {
            self.ws();
            if !want_value {
                let Some(&open) = stack.last() else {
                    return (self.pos == self.b.len()).then_some((elements, overflow));
                };
                match (self.peek()?, open) {
                    (b',', b'[') => self.pos += 1,
                    (b',', _) => {
                        self.pos += 1;
                        self.object_key()?;
                    }
                    (b']', b'[') | (b'}', b'{') => {
                        self.pos += 1;
                        stack.pop();
                        continue;
                    }
                    _ => return None,
                }
                want_value = true;
                continue;
            }
            if stack.len() == 1 {
                elements.push(None);
            }
            match self.peek()? {
                c @ (b'[' | b'{') => {
                    self.pos += 1;
                    stack.push(c);
                    if stack.len() > JSON_MAX_DEPTH {
                        return None;
                    }
                    self.ws();
                    let close = if c == b'[' { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.pos += 1;
                        stack.pop();
                        want_value = false;
                    } else if c == b'{' {
                        self.object_key()?;
                    }
                    continue;
                }
                b'"' => {
                    let s = self.string()?;
                    if stack.len() == 1
                        && let Some(last) = elements.last_mut()
                    {
                        *last = Some(s);
                    }
                }
                b'-' | b'0'..=b'9' => overflow |= !self.number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => return None,
            }
            want_value = false;
        }
    }

    fn object_key(&mut self) -> Option<()> {
        self.ws();
        if self.peek() != Some(b'"') {
            return None;
        }
        self.string()?;
        self.eat(b':')
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.pos..]
            .starts_with(word)
            .then(|| self.pos += word.len())
    }

    /// A number; `Some(false)` when float64 can't hold it (Go's decoder then fails).
    fn number(&mut self) -> Option<bool> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.peek().is_some_and(|c| c.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos > from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        let text = std::str::from_utf8(&self.b[start..self.pos]).ok()?;
        Some(text.parse::<f64>().is_ok_and(f64::is_finite))
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.b.get(at..at + 4)?;
        let text = std::str::from_utf8(digits).ok()?;
        if !text.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(text, 16).ok()
    }

    /// A string, decoded as Go does (a lone surrogate becomes U+FFFD).
    fn string(&mut self) -> Option<String> {
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.pos += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.pos += 1;
                    let decoded = match e {
                        b'"' | b'\\' | b'/' => char::from(e),
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let first = self.hex4(self.pos)?;
                            self.pos += 4;
                            self.surrogate_pair(first)
                        }
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(decoded.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return None,
                _ => out.push(c),
            }
        }
    }

    fn surrogate_pair(&mut self, first: u32) -> char {
        if !(0xd800..0xe000).contains(&first) {
            return char::from_u32(first).unwrap_or('\u{fffd}');
        }
        if (0xd800..0xdc00).contains(&first)
            && self.b.get(self.pos..self.pos + 2) == Some(b"\\u")
            && let Some(second) = self.hex4(self.pos + 2)
            && (0xdc00..0xe000).contains(&second)
        {
            self.pos += 6;
            let code = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
            return char::from_u32(code).unwrap_or('\u{fffd}');
        }
        '\u{fffd}'
    }
}

// ---------------------------------------------------------------------------------------------
// Heredocs: BuildKit finds them with its shell lexer (frontend/dockerfile/shell), run with no
// variables and SkipUnsetEnv, so only its word splitting and quote handling matter here.

/// Nesting cap for `${a:-${b:-...}}` (Go's stacks grow; ours don't).
const LEX_MAX_DEPTH: usize = 512;

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
    /// Shared across nested calls on purpose: BuildKit's shellWord.wordsBuffer is, and a
    /// nested `${x:-...}` resets it.
    buf: String,
    depth: usize,
}

/// shell.wordsStruct.
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_str(buf, ch.encode_utf8(&mut [0; 4]));
        }
    }

    fn add_raw_str(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

impl Lexer {
    /// `shell.NewLex('\\')` over `s`; text/scanner drops a leading BOM.
    fn new(s: &str, raw_quotes: bool, raw_escapes: bool) -> Self {
        Lexer {
            chars: s.strip_prefix('\u{feff}').unwrap_or(s).chars().collect(),
            pos: 0,
            raw_quotes,
            raw_escapes,
            buf: String::new(),
            depth: 0,
        }
    }

    fn process_words(mut self) -> Result<Vec<String>, String> {
        let raw_escapes = self.raw_escapes;
        self.stop_on(None, raw_escapes).map(|(_, words)| words)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// processStopOn: reads to `stop` (or the end), returning the text and its words.
    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        self.depth += 1;
        if self.depth > LEX_MAX_DEPTH {
            return Err("nesting too deep".to_string());
        }
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let result = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        result
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        self.buf.clear();
        let mut words = Words {
            words: Vec::new(),
            in_word: false,
        };
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish(&mut self.buf)));
            }
            let special = match ch {
                '$' => Some(self.dollar()?),
                '<' => Some(self.possible_heredoc()),
                '\'' => Some(self.single_quote()?),
                '"' => Some(self.double_quote()?),
                _ => None,
            };
            if let Some(text) = special {
                result.push_str(&text);
                if ch == '$' {
                    for c in text.chars() {
                        words.add_char(&mut self.buf, c);
                    }
                } else {
                    words.add_raw_str(&mut self.buf, &text);
                }
                continue;
            }
            self.pos += 1;
            if ch == '\\' {
                if self.raw_escapes {
                    words.add_raw_str(&mut self.buf, "\\");
                    result.push(ch);
                }
                let Some(escaped) = self.next() else { break };
                words.add_raw_str(&mut self.buf, escaped.encode_utf8(&mut [0; 4]));
                result.push(escaped);
            } else {
                words.add_char(&mut self.buf, ch);
                result.push(ch);
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish(&mut self.buf)))
    }

    fn single_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        if self.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_string(),
                    );
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut out = String::new();
        if self.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_string(),
                    );
                }
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == '\\' {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c @ ('"' | '$' | '\\')) => {
                                self.pos += 1;
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// processDollar with every variable unset and SkipUnsetEnv: the text is kept as written
    /// (modulo BuildKit's own re-rendering), only syntax errors matter.
    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_string()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_string()),
            Some(_) => {}
        }
        let name = self.name();
        let ch = self.next();
        // Go prints EOF (-1) as U+FFFD.
        let mut chs = ch.unwrap_or('\u{fffd}').to_string();
        match ch {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut modifier = ch;
                if ch == Some(':') {
                    modifier = self.next();
                    chs.push(modifier.unwrap_or('\u{fffd}'));
                    if matches!(modifier, Some('#' | '%')) {
                        return Err(format!("unsupported modifier ({chs}) in substitution"));
                    }
                }
                let raw = matches!(modifier, Some('#' | '%'));
                let word = self.stop_on_or(Some('}'), raw, "syntax error: missing '}'")?;
                Ok(format!("${{{name}{chs}{word}}}"))
            }
            Some('/') => {
                if self.peek() == Some('/') {
                    self.pos += 1;
                }
                let pattern =
                    self.stop_on_or(Some('/'), true, "syntax error: missing '/' in ${}")?;
                let replacement = self.stop_on_or(Some('}'), true, "syntax error: missing '}'")?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    /// A nested read whose failure at the end of input reads as `at_end`.
    fn stop_on_or(
        &mut self,
        stop: Option<char>,
        raw: bool,
        at_end: &str,
    ) -> Result<String, String> {
        match self.stop_on(stop, raw) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(at_end.to_string()),
            Err(e) => Err(e),
        }
    }

    /// processName: digits, one special parameter, or a letter/digit/underscore run.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(c) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(c);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }

    /// processPossibleHeredoc: `<<` keeps the blanks after it, so `<<  EOF` stays one word.
    fn possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.pos += 1;
        let mut out = "<<".to_string();
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.pos += 1;
        }
        out
    }
}

/// heredocsFromLine: every word of the line that opens a heredoc.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    // Lexing errors mean no heredocs, as in BuildKit.
    let words = Lexer::new(line, true, true)
        .process_words()
        .unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(heredoc) = parse_heredoc(&word)? {
            docs.push(heredoc);
        }
    }
    Ok(docs)
}

/// ParseHeredoc: matches `^(\d*)<<(-?)\s*([^<]*)$` and lexes the delimiter word.
fn parse_heredoc(src: &str) -> Result<Option<Heredoc>, String> {
    let after_fd = src.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(after) = after_fd.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches(is_re_space);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let lex = |raw_quotes| {
        Lexer::new(rest, raw_quotes, false)
            .process_words()
            .map_err(|e| {
                format!(
                    "failed to process {}: {e}",
                    crate::build::gofmt::quote(rest)
                )
            })
    };
    let words = lex(false)?;
    let [word] = words.as_slice() else {
        return Ok(None);
    };
    let raw_words = lex(true)?;
    let [raw_word] = raw_words.as_slice() else {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    };
    // Quotes that lexing removed mean part of the delimiter was quoted: no expansion.
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(Heredoc {
        name: word.clone(),
        content: String::new(),
        expand: quotes(word) == quotes(raw_word),
        chomp,
    }))
}

// ---------------------------------------------------------------------------------------------
// Phase 2: nodes to commands (instructions/parse.go, bflag.go).

const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// nodeArgs: the arguments, with an ONBUILD child flattened in.
fn node_args(mut node: &Node) -> Vec<String> {
    let mut args = Vec::new();
    while let Some(child) = &node.sub {
        args.push(child.value.clone());
        node = child;
    }
    args.extend(node.args.iter().cloned());
    args
}

/// One instruction; `heredocs` and lines come from the top-level node (ONBUILD triggers share
/// them with their parent).
fn to_instruction(
    node: &Node,
    heredocs: &[Heredoc],
    line: usize,
    end_line: usize,
) -> Result<Instruction, String> {
    let args = node_args(node);
    let shell_or_exec = |args: Vec<String>| {
        if node.json {
            ShellOrExec::Exec(args)
        } else {
            ShellOrExec::Shell(args.join(" "))
        }
    };
    let command = match node.value.to_lowercase().as_str() {
        "env" => {
            parse_flags(&node.flags, &[])?;
            Command::Env(parse_kvps(&args, "ENV")?)
        }
        "maintainer" => {
            let arg = exactly_one(args, "MAINTAINER")?;
            parse_flags(&node.flags, &[])?;
            Command::Maintainer(arg)
        }
        "label" => {
            parse_flags(&node.flags, &[])?;
            Command::Label(parse_kvps(&args, "LABEL")?)
        }
        "add" => {
            if args.len() < 2 {
                return Err(err_no_destination("ADD"));
            }
            let f = parse_flags(
                &node.flags,
                &[
                    ("chown", Kind::Str),
                    ("chmod", Kind::Str),
                    ("link", Kind::Bool),
                    ("keep-git-dir", Kind::Bool),
                    ("checksum", Kind::Str),
                    ("unpack", Kind::Bool),
                    ("exclude", Kind::Strs),
                ],
            )?;
            let mut copy = sources_and_dest(&args, heredocs, "ADD")?;
            copy.chown = f.string("chown");
            copy.chmod = f.string("chmod");
            copy.link = f.bool("link") == Some(true);
            copy.keep_git_dir = f.bool("keep-git-dir");
            copy.checksum = f.string("checksum");
            copy.unpack = f.bool("unpack");
            copy.exclude = f.strings("exclude");
            Command::Add(copy)
        }
        "copy" => {
            if args.len() < 2 {
                return Err(err_no_destination("COPY"));
            }
            let f = parse_flags(
                &node.flags,
                &[
                    ("chown", Kind::Str),
                    ("from", Kind::Str),
                    ("chmod", Kind::Str),
                    ("link", Kind::Bool),
                    ("exclude", Kind::Strs),
                    ("parents", Kind::Bool),
                ],
            )?;
            let mut copy = sources_and_dest(&args, heredocs, "COPY")?;
            copy.from = f.string("from");
            copy.chown = f.string("chown");
            copy.chmod = f.string("chmod");
            copy.link = f.bool("link") == Some(true);
            copy.exclude = f.strings("exclude");
            copy.parents = f.bool("parents") == Some(true);
            Command::Copy(copy)
        }
        "from" => {
            let name = parse_stage_name(&args)?;
            let f = parse_flags(&node.flags, &[("platform", Kind::Str)])?;
            Command::From {
                image: args[0].clone(),
                name,
                platform: f.string("platform"),
            }
        }
        "onbuild" => {
            let Some(child) = &node.sub else {
                return Err(err_at_least_one("ONBUILD"));
            };
            parse_flags(&node.flags, &[])?;
            let keyword = child.value.trim().to_uppercase();
            match keyword.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string());
                }
                "MAINTAINER" | "FROM" => {
                    return Err(format!("{keyword} isn't allowed as an ONBUILD trigger"));
                }
                _ => {}
            }
            let mut expression = strip_onbuild(&node.original).to_string();
            for heredoc in heredocs {
                expression.push('\n');
                expression.push_str(&heredoc.content);
                expression.push_str(&heredoc.name);
            }
            // Stricter than BuildKit, which checks the trigger only when the image is used.
            let trigger = to_instruction(child, heredocs, line, end_line)?;
            Command::Onbuild {
                expression,
                trigger: Box::new(trigger),
            }
        }
        "workdir" => {
            let arg = exactly_one(args, "WORKDIR")?;
            parse_flags(&node.flags, &[])?;
            Command::Workdir(arg)
        }
        "run" => {
            // BuildKit registers these through its RUN hooks, in this order.
            let f = parse_flags(
                &node.flags,
                &[
                    ("device", Kind::Strs),
                    ("mount", Kind::Strs),
                    ("network", Kind::Str),
                    ("security", Kind::Str),
                ],
            )?;
            if !f.strings("device").is_empty() {
                return Err("RUN --device is not supported".to_string());
            }
            let mounts = f.strings("mount");
            for mount in &mounts {
                check_mount(mount)?;
            }
            let network = f.used_string("network");
            if let Some(mode) = &network
                && !matches!(mode.as_str(), "default" | "none" | "host")
            {
                return Err(format!(
                    "invalid network mode {}",
                    crate::build::gofmt::quote(mode)
                ));
            }
            let security = f.used_string("security");
            if let Some(mode) = &security
                && !matches!(mode.as_str(), "insecure" | "sandbox")
            {
                return Err(format!(
                    "security {} is not valid",
                    crate::build::gofmt::quote(mode)
                ));
            }
            Command::Run {
                cmd: shell_or_exec(args),
                heredocs: heredocs.to_vec(),
                mounts,
                network,
                security,
            }
        }
        "cmd" => {
            parse_flags(&node.flags, &[])?;
            Command::Cmd(shell_or_exec(args))
        }
        "healthcheck" => Command::Healthcheck(parse_healthcheck(node, args)?),
        "entrypoint" => {
            parse_flags(&node.flags, &[])?;
            Command::Entrypoint(shell_or_exec(args))
        }
        "expose" => {
            if args.is_empty() {
                return Err(err_at_least_one("EXPOSE"));
            }
            parse_flags(&node.flags, &[])?;
            let mut ports = args;
            ports.sort();
            Command::Expose(ports)
        }
        "user" => {
            let arg = exactly_one(args, "USER")?;
            parse_flags(&node.flags, &[])?;
            Command::User(arg)
        }
        "volume" => {
            if args.is_empty() {
                return Err(err_at_least_one("VOLUME"));
            }
            parse_flags(&node.flags, &[])?;
            let mut volumes = Vec::with_capacity(args.len());
            for arg in &args {
                let volume = arg.trim();
                if volume.is_empty() {
                    return Err("VOLUME specified can not be an empty string".to_string());
                }
                volumes.push(volume.to_string());
            }
            Command::Volume(volumes)
        }
        // BuildKit does not parse STOPSIGNAL's or ARG's flags: any are ignored.
        "stopsignal" => Command::StopSignal(exactly_one(args, "STOPSIGNAL")?),
        "arg" => {
            if args.is_empty() {
                return Err(err_at_least_one("ARG"));
            }
            let mut pairs = Vec::with_capacity(args.len());
            for arg in args {
                match arg.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".to_string()),
                    Some((key, value)) => pairs.push((key.to_string(), Some(value.to_string()))),
                    None => pairs.push((arg, None)),
                }
            }
            Command::Arg(pairs)
        }
        "shell" => {
            parse_flags(&node.flags, &[])?;
            if args.is_empty() {
                return Err(err_at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".to_string());
            }
            Command::Shell(args)
        }
        _ => {
            let message = format!("unknown instruction: {}", node.value);
            return Err(with_suggestion(message, &node.value, &INSTRUCTIONS, false));
        }
    };
    Ok(Instruction {
        line,
        end_line,
        original: node.original.clone(),
        command,
    })
}

fn parse_healthcheck(node: &Node, args: Vec<String>) -> Result<HealthArgs, String> {
    let Some(first) = args.first() else {
        return Err(err_at_least_one("HEALTHCHECK"));
    };
    let typ = first.to_uppercase();
    let rest = &args[1..];
    let mut health = HealthArgs {
        test: None,
        interval: None,
        timeout: None,
        start_period: None,
        start_interval: None,
        retries: None,
    };
    // Like BuildKit, NONE ignores any flags.
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".to_string());
        }
        return Ok(health);
    }
    let f = parse_flags(
        &node.flags,
        &[
            ("interval", Kind::Str),
            ("timeout", Kind::Str),
            ("start-period", Kind::Str),
            ("start-interval", Kind::Str),
            ("retries", Kind::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            crate::build::gofmt::quote(&typ)
        ));
    }
    if rest.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".to_string());
    }
    health.test = Some(if node.json {
        ShellOrExec::Exec(rest.to_vec())
    } else {
        ShellOrExec::Shell(rest.join(" "))
    });
    health.interval = interval(&f, "interval")?;
    health.timeout = interval(&f, "timeout")?;
    health.start_period = interval(&f, "start-period")?;
    health.start_interval = interval(&f, "start-interval")?;
    if let Some(value) = f.string("retries") {
        let retries = go_parse_int32(&value)?;
        if retries < 0 {
            return Err(format!("--retries cannot be negative ({retries})"));
        }
        health.retries = u32::try_from(retries).ok().filter(|&r| r != 0);
    }
    Ok(health)
}

/// parseOptInterval: unset or zero is `None`; otherwise at least 1ms.
fn interval(f: &FlagValues, name: &str) -> Result<Option<Duration>, String> {
    let Some(value) = f.string(name) else {
        return Ok(None);
    };
    match go_parse_duration(&value)? {
        0 => Ok(None),
        ns if ns < 1_000_000 => Err(format!(
            "Interval {} cannot be less than 1ms",
            crate::build::gofmt::quote(name)
        )),
        ns => Ok(Some(Duration::from_nanos(ns.unsigned_abs()))),
    }
}

fn strip_onbuild(original: &str) -> &str {
    // `(?i)^\s*ONBUILD\s*`
    let s = original.trim_start_matches(is_re_space);
    match s.get(..7) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => {
            s[7..].trim_start_matches(is_re_space)
        }
        _ => original,
    }
}

fn exactly_one(args: Vec<String>, command: &str) -> Result<String, String> {
    match <[String; 1]>::try_from(args) {
        Ok([arg]) => Ok(arg),
        Err(_) => Err(format!("{command} requires exactly one argument")),
    }
}

fn err_at_least_one(command: &str) -> String {
    format!("{command} requires at least one argument")
}

fn err_no_destination(command: &str) -> String {
    format!(
        "{command} requires at least two arguments, but only one was provided. Destination could not be determined"
    )
}

/// parseKvps over `key, value, delimiter` triples.
fn parse_kvps(args: &[String], command: &str) -> Result<Vec<(String, String)>, String> {
    if args.is_empty() {
        return Err(err_at_least_one(command));
    }
    if !args.len().is_multiple_of(3) {
        return Err(format!("Bad input to {command}, too many arguments"));
    }
    args.chunks(3)
        .map(|kv| {
            if kv[0].is_empty() {
                Err(format!("{command} names can not be blank"))
            } else {
                Ok((kv[0].clone(), kv[1].clone()))
            }
        })
        .collect()
}

/// parseSourcesAndDest: heredoc sources take their bodies from the instruction's heredocs.
fn sources_and_dest(
    args: &[String],
    heredocs: &[Heredoc],
    command: &str,
) -> Result<CopyArgs, String> {
    let Some((dest, srcs)) = args.split_last() else {
        return Err(err_no_destination(command));
    };
    if parse_heredoc_word(dest).is_some() {
        return Err(format!(
            "{command} cannot accept a heredoc as a destination"
        ));
    }
    let mut sources = Vec::new();
    let mut contents = Vec::new();
    for src in srcs {
        match parse_heredoc_word(src) {
            Some(mut heredoc) => {
                // Last heredoc of that name wins, as with BuildKit's lookup map.
                let body = heredocs
                    .iter()
                    .rev()
                    .find(|h| h.name == heredoc.name)
                    .map_or("", |h| h.content.as_str());
                heredoc.content = if heredoc.chomp {
                    chomp_heredoc(body)
                } else {
                    body.to_string()
                };
                contents.push(heredoc);
            }
            None => sources.push(src.clone()),
        }
    }
    Ok(CopyArgs {
        sources,
        dest: dest.clone(),
        heredocs: contents,
        from: None,
        chown: None,
        chmod: None,
        link: false,
        exclude: Vec::new(),
        parents: false,
        keep_git_dir: None,
        checksum: None,
        unpack: None,
    })
}

/// parseBuildStageName: `image` or `image AS name`.
fn parse_stage_name(args: &[String]) -> Result<Option<String>, String> {
    match args {
        [_, as_kw, name] if as_kw.to_uppercase() == "AS" => {
            let lower = name.to_lowercase();
            // ^[a-z][a-z0-9-_.]*$
            let valid = lower.starts_with(|c: char| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    crate::build::gofmt::quote(name)
                ));
            }
            Ok(Some(lower))
        }
        [_] => Ok(None),
        _ => Err("FROM requires either one or three arguments".to_string()),
    }
}

/// The parse-time part of BuildKit's parseMount (no expander yet): the value must be CSV and
/// `from` can't use variables. Everything else is checked after expansion.
fn check_mount(value: &str) -> Result<(), String> {
    let fields = csv_fields(value).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    for field in fields {
        if let Some((key, value)) = field.split_once('=')
            && key.to_lowercase() == "from"
            && value.find('$').is_some_and(|i| i != value.len() - 1)
        {
            return Err(
                "'from' doesn't support variable expansion, define alias stage instead".to_string(),
            );
        }
    }
    Ok(())
}

/// go-csvvalue's Fields (encoding/csv rules for one record, comma-separated, strict quotes).
pub(crate) fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    // A trailing newline (or CRLF) is allowed.
    let line = match line.strip_suffix('\n') {
        Some(l) => l.strip_suffix('\r').unwrap_or(l),
        None => line,
    };
    if line.is_empty() {
        return Err("EOF".to_string());
    }
    let full = line.len();
    let col = |rest: &str, i: usize| full - rest.len() + i + 1;
    let mut fields: Vec<String> = Vec::new();
    let mut rest = line;
    'field: loop {
        if !rest.starts_with('"') {
            let (field, next) = match rest.find(',') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            if let Some(j) = field.find('"') {
                return Err(format!(
                    "parse error on line 1, column {}: bare \" in non-quoted-field",
                    col(rest, j)
                ));
            }
            fields.push(field.to_string());
            match next {
                Some(next) => {
                    rest = next;
                    continue;
                }
                None => break,
            }
        }
        rest = &rest[1..];
        let mut field = String::new();
        loop {
            let Some(i) = rest.find('"') else {
                return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    col(rest, 0)
                ));
            };
            field.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(next) = rest.strip_prefix('"') {
                field.push('"');
                rest = next;
            } else if let Some(next) = rest.strip_prefix(',') {
                fields.push(field);
                rest = next;
                continue 'field;
            } else if rest.is_empty() {
                fields.push(field);
                break 'field;
            } else {
                return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    col(rest, 0) - 1
                ));
            }
        }
    }
    Ok(fields)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bool,
    Str,
    Strs,
}

/// The flags that were given: each name with its value(s), in order.
#[derive(Debug)]
struct FlagValues {
    used: Vec<(&'static str, Vec<String>)>,
}

impl FlagValues {
    fn values(&self, name: &str) -> Option<&Vec<String>> {
        self.used.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// A given string flag; empty counts as unset, as in BuildKit.
    fn string(&self, name: &str) -> Option<String> {
        self.used_string(name).filter(|v| !v.is_empty())
    }

    fn used_string(&self, name: &str) -> Option<String> {
        self.values(name).and_then(|v| v.last().cloned())
    }

    fn bool(&self, name: &str) -> Option<bool> {
        self.values(name)
            .map(|v| v.last().is_some_and(|v| v == "true"))
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.values(name).cloned().unwrap_or_default()
    }
}

/// BuildKit's BFlags.Parse: checks the instruction's `--name=value` / `--bool` words against
/// the flags it accepts.
fn parse_flags(args: &[String], spec: &[(&'static str, Kind)]) -> Result<FlagValues, String> {
    let mut values = FlagValues { used: Vec::new() };
    for arg in args {
        if arg == "--" {
            break;
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!("arg should start with -- : {arg}"));
        };
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        let flag_name = &arg[..name.len() + 2];
        let Some(&(name, kind)) = spec.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
            let message = format!("unknown flag: {flag_name}");
            return Err(with_suggestion(message, name, &names, true));
        };
        let seen = values.used.iter().position(|(n, _)| *n == name);
        if seen.is_some() && kind != Kind::Strs {
            return Err(format!("duplicate flag specified: {flag_name}"));
        }
        let missing = || format!("missing a value on flag: {flag_name}");
        let value = match (kind, value) {
            (Kind::Bool, Some("")) => return Err(missing()),
            (Kind::Bool, value) => match value.map(str::to_lowercase).as_deref() {
                None | Some("true") => "true".to_string(),
                Some("false") => "false".to_string(),
                Some(_) => {
                    return Err(format!(
                        "expecting boolean value for flag {flag_name}, not: {}",
                        value.unwrap_or_default()
                    ));
                }
            },
            (_, None) => return Err(missing()),
            (_, Some(value)) => value.to_string(),
        };
        match seen {
            Some(i) => values.used[i].1.push(value),
            None => values.used.push((name, vec![value])),
        }
    }
    Ok(values)
}

/// suggest.WrapError: appends the closest option within edit distance 2.
fn with_suggestion(message: String, value: &str, options: &[&str], case_sensitive: bool) -> String {
    let fold = |s: &str| {
        if case_sensitive {
            s.to_string()
        } else {
            s.to_lowercase()
        }
    };
    let value_folded = fold(value);
    let mut best: Option<String> = None;
    let mut min_distance = 3;
    for option in options {
        let option = fold(option);
        if option == value_folded {
            return message;
        }
        let distance = levenshtein(&value_folded, &option);
        if distance < min_distance {
            min_distance = distance;
            best = Some(option);
        }
    }
    let Some(mut best) = best else {
        return message;
    };
    if !case_sensitive && value == value.to_uppercase() && value != value.to_lowercase() {
        best = best.to_uppercase();
    }
    format!("{message} (did you mean {best}?)")
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Go library behaviour the messages and values depend on.

/// strconv.ParseInt(s, 10, 32).
fn go_parse_int32(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            crate::build::gofmt::quote(s)
        ));
    }
    s.parse::<i32>().map(i64::from).map_err(|_| {
        format!(
            "strconv.ParseInt: parsing {}: value out of range",
            crate::build::gofmt::quote(s)
        )
    })
}

/// time.ParseDuration, in nanoseconds.
fn go_parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || {
        format!(
            "time: invalid duration {}",
            crate::build::gofmt::quote(orig)
        )
    };
    let mut s = orig.as_bytes();
    let mut negative = false;
    if let Some((&sign @ (b'-' | b'+'), rest)) = s.split_first() {
        negative = sign == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part; overflow is an error.
        let int_len = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &s[..int_len] {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        s = &s[int_len..];
        // Fraction; digits past u64 precision are ignored.
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix(b".") {
            let frac_len = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &rest[..frac_len] {
                if overflow || f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(c - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = frac_len > 0;
            s = &rest[frac_len..];
        }
        if int_len == 0 && !post {
            return Err(invalid());
        }
        let unit_len = s
            .iter()
            .take_while(|&&c| c != b'.' && !c.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                crate::build::gofmt::quote(orig)
            ));
        }
        let unit_bytes = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u64 = match unit_bytes {
            b"ns" => 1,
            // "µs" (U+00B5) and "μs" (U+03BC) as well.
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::build::gofmt::quote(&String::from_utf8_lossy(unit_bytes)),
                    crate::build::gofmt::quote(orig)
                ));
            }
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // Truncating float math, as Go does.
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        // Wrapping like Go's uint64 (a sum of exactly 2^64 wraps to 0 there too).
        total = total.wrapping_add(v);
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BuildKit's `Node.Dump` for one instruction, the format of the testfiles' `result`.
    fn dump(node: &Node) -> String {
        let mut out = node.value.to_lowercase();
        if !node.flags.is_empty() {
            let flags: Vec<String> = node
                .flags
                .iter()
                .map(|f| crate::build::gofmt::quote(f))
                .collect();
            out.push_str(&format!(" [{}]", flags.join(" ")));
        }
        if let Some(child) = &node.sub {
            out.push_str(&format!(" ({})", dump(child)));
        }
        for arg in &node.args {
            out.push(' ');
            out.push_str(&crate::build::gofmt::quote(arg));
        }
        out.trim().to_string()
    }

    fn dump_all(source: &str) -> String {
        let ast = parse_ast(source).unwrap();
        ast.nodes
            .iter()
            .map(|n| format!("({})\n", dump(n)))
            .collect()
    }

    fn ok(source: &str) -> Vec<Instruction> {
        match parse(source) {
            Ok(df) => df.instructions,
            Err(e) => panic!("{source:?}: {e}"),
        }
    }

    /// The command of the last instruction of `FROM scratch\n{body}`.
    fn cmd(body: &str) -> Command {
        ok(&format!("FROM scratch\n{body}")).pop().unwrap().command
    }

    fn err(source: &str) -> String {
        match parse(source) {
            Ok(df) => panic!("{source:?} parsed: {df:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The error of `FROM scratch\n{body}`, without the `Dockerfile:N: ` prefix.
    fn cmd_err(body: &str) -> String {
        let e = parse(&format!("FROM scratch\n{body}")).unwrap_err();
        e.message
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn heredoc(name: &str, content: &str, expand: bool, chomp: bool) -> Heredoc {
        Heredoc {
            name: name.into(),
            content: content.into(),
            expand,
            chomp,
        }
    }

    fn copy_args(sources: &[&str], dest: &str, heredocs: Vec<Heredoc>) -> CopyArgs {
        CopyArgs {
            sources: strings(sources),
            dest: dest.into(),
            heredocs,
            from: None,
            chown: None,
            chmod: None,
            link: false,
            exclude: Vec::new(),
            parents: false,
            keep_git_dir: None,
            checksum: None,
            unpack: None,
        }
    }

    // ---- parser/parser_test.go: TestParseCases, TestParseErrorCases ----

    #[test]
    fn buildkit_testfiles_ast() {
        for (name, dockerfile, result) in TESTFILES {
            assert_eq!(dump_all(dockerfile), *result, "testfiles/{name}");
        }
        assert_eq!(TESTFILES.len(), 33);
    }

    #[test]
    fn buildkit_testfiles_instructions() {
        // What instructions.Parse says about each testfile.
        let failing = [
            ("flags", "Dockerfile:3: unknown flag: --user"),
            (
                "health",
                "Dockerfile:4: HEALTHCHECK requires at least one argument",
            ),
        ];
        for (name, dockerfile, _) in TESTFILES {
            match failing.iter().find(|(n, _)| n == name) {
                Some((_, expected)) => assert_eq!(err(dockerfile), *expected, "{name}"),
                None => {
                    ok(dockerfile);
                }
            }
        }
    }

    #[test]
    fn buildkit_negative_testfiles() {
        assert_eq!(err(""), "Dockerfile:1: file with no instructions");
        assert_eq!(
            err("# Hello\n# These are just comments\n\n"),
            "Dockerfile:3: file with no instructions"
        );
        assert_eq!(
            err("FROM busybox\n\nENV PATH\n"),
            "Dockerfile:3: ENV must have two arguments"
        );
        assert_eq!(
            err("CMD [ \"echo\", [ \"nested json\" ] ]\n"),
            "Dockerfile:1: when using JSON array syntax, arrays must be comprised of strings only"
        );
    }

    #[test]
    fn testfile_line_numbers() {
        let ast = parse_ast(TESTFILE_LINE).unwrap();
        let lines: Vec<(usize, usize)> = ast
            .nodes
            .iter()
            .map(|n| (n.start_line, n.end_line))
            .collect();
        assert_eq!(lines, [(5, 5), (11, 12), (17, 31)]);
        let df = parse(TESTFILE_LINE).unwrap();
        assert_eq!(df.instructions[2].line, 17);
        assert_eq!(df.instructions[2].end_line, 31);
    }

    #[test]
    fn parse_words_table() {
        let cases: [(&str, &[&str]); 8] = [
            ("foo", &["foo"]),
            ("foo bar", &["foo", "bar"]),
            ("foo\\ bar", &["foo\\ bar"]),
            ("foo=bar", &["foo=bar"]),
            ("foo bar 'abc xyz'", &["foo", "bar", "'abc xyz'"]),
            (r#"foo bar "abc xyz""#, &["foo", "bar", r#""abc xyz""#]),
            ("àöû", &["àöû"]),
            (r#"föo bàr "âbc xÿz""#, &["föo", "bàr", r#""âbc xÿz""#]),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_words(input, '\\'), strings(expected), "{input}");
        }
    }

    #[test]
    fn long_line_is_an_error_like_bufio_scanner() {
        let label = "a".repeat(65536);
        let source = format!("\n\t\tFROM image\n\t\tLABEL test={label}\n");
        assert_eq!(
            err(&source),
            "Dockerfile:3: dockerfile line greater than max allowed size of 65535"
        );
        // One byte shorter fits.
        let label = "a".repeat(65535 - "LABEL test=".len());
        ok(&format!("FROM image\nLABEL test={label}"));
    }

    #[test]
    fn empty_continuation_lines_are_skipped() {
        let source = "\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n\nRUN non-indented \\\n# this is a comment\n   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n\t";
        assert_eq!(
            dump_all(source),
            "(from \"alpine:3.6\")\n(run \"valid     continuation\")\n(run \"something     following     more\")\n(run \"another     thing\")\n(run \"non-indented    after-comment\")\n(run \"indented     comment\")\n"
        );
    }

    // ---- parser/line_parsers_test.go, json_test.go ----

    #[test]
    fn parse_name_val_formats() {
        assert_eq!(
            parse_name_val("foo bar", "LABEL", '\\').unwrap(),
            strings(&["foo", "bar", ""])
        );
        assert_eq!(
            parse_name_val("foo=bar thing=star", "LABEL", '\\').unwrap(),
            strings(&["foo", "bar", "=", "thing", "star", "="])
        );
        assert_eq!(
            parse_name_val("foo", "ENV", '\\').unwrap_err(),
            "ENV must have two arguments"
        );
        assert_eq!(
            parse_name_val("a=b c", "ENV", '\\').unwrap_err(),
            "Syntax error - can't find = in \"c\". Must be of the form: name=value"
        );
    }

    #[test]
    fn json_arrays_of_strings() {
        let valid: [(&str, &[&str]); 8] = [
            ("[]", &[]),
            (r#"[""]"#, &[""]),
            (r#"["a"]"#, &["a"]),
            (r#"["a","b"]"#, &["a", "b"]),
            (r#"[ "a", "b" ]"#, &["a", "b"]),
            ("[\t\"a\",\t\"b\"\t]", &["a", "b"]),
            ("\t[\t\"a\",\t\"b\"\t]\t", &["a", "b"]),
            (
                r#"["abc 123", "♥", "☃", "\" \\ \/ \b \f \n \r \t \u0000"]"#,
                &["abc 123", "♥", "☃", "\" \\ / \u{8} \u{c} \n \r \t \0"],
            ),
        ];
        for (json, expected) in valid {
            match parse_json(json) {
                JsonArray::Strings(words) => assert_eq!(words, strings(expected), "{json}"),
                _ => panic!("{json} should be a JSON string array"),
            }
        }
        for json in [
            r#"["a",42,"b"]"#,
            r#"["a",123.456,"b"]"#,
            r#"["a",{},"b"]"#,
            r#"["a",{"c": "d"},"b"]"#,
            r#"["a",["c"],"b"]"#,
            r#"["a",true,"b"]"#,
            r#"["a",false,"b"]"#,
            r#"["a",null,"b"]"#,
        ] {
            assert!(matches!(parse_json(json), JsonArray::NotStrings), "{json}");
        }
    }

    #[test]
    fn json_follows_go_encoding_json() {
        let words = |json: &str| match parse_json(json) {
            JsonArray::Strings(w) => Some(w),
            _ => None,
        };
        // Lone surrogates decode to U+FFFD; pairs combine.
        assert_eq!(
            words(r#"["\ud800", "\ud83d\ude00", "\udc00x"]"#).unwrap(),
            strings(&["\u{fffd}", "😀", "\u{fffd}x"])
        );
        // Invalid JSON (trailing comma, single quotes, junk after) is shell form.
        for json in [
            r#"["a",]"#,
            "['a']",
            r#"["a"] b"#,
            r#"["a\x"]"#,
            "[01]",
            "[\"\t\"]",
        ] {
            assert!(matches!(parse_json(json), JsonArray::Invalid), "{json}");
        }
        // A number float64 can't hold makes Go's decoder fail: shell form, not an error.
        assert!(matches!(parse_json(r#"["a", 1e400]"#), JsonArray::Invalid));
        assert!(matches!(
            parse_json(r#"["a", 1e-400]"#),
            JsonArray::NotStrings
        ));
        // Go allows 10000 levels of nesting.
        let deep = |n: usize| format!("[\"a\", {}{}]", "[".repeat(n - 1), "]".repeat(n - 1));
        assert!(matches!(parse_json(&deep(10000)), JsonArray::NotStrings));
        assert!(matches!(parse_json(&deep(10001)), JsonArray::Invalid));
        assert_eq!(
            cmd_err(r#"CMD ["a", {"k": [1, {"x": null}]}]"#),
            ERR_NOT_STRING_ARRAY
        );
        assert_eq!(
            cmd("CMD [\"a\", 1e400]"),
            Command::Cmd(ShellOrExec::Shell("[\"a\", 1e400]".into()))
        );
    }

    // ---- parser/directives_test.go ----

    fn directives(source: &str) -> Vec<(String, String)> {
        let mut parser = DirectiveParser::default();
        let mut out = Vec::new();
        for line in source.lines() {
            if parser.done {
                break;
            }
            if let Some(d) = parser.parse_line(line).unwrap() {
                out.push(d);
            }
        }
        out
    }

    #[test]
    fn directive_parser() {
        let expected = vec![("escape".to_string(), "\\".to_string())];
        assert_eq!(
            directives("#escape=\\\n# key = FOO bar\n\n# smth\n"),
            expected
        );
        assert_eq!(
            directives("# EScape=\\\n# KEY = FOO bar\n\n# smth\n"),
            expected
        );
        assert_eq!(
            directives("# syntax = a b \n#check=skip=all\n# escape  =  `\n"),
            [("syntax", "a b"), ("check", "skip=all"), ("escape", "`")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        let mut parser = DirectiveParser::default();
        parser.parse_line("# syntax=a").unwrap();
        assert_eq!(
            parser.parse_line("# SYNTAX=b").unwrap_err(),
            "only one syntax parser directive can be used"
        );
    }

    #[test]
    fn detect_syntax_directive() {
        let syntax = |s: &str| detect_syntax(s);
        assert_eq!(
            syntax("# syntax = dockerfile:experimental // opts\nFROM busybox\n").as_deref(),
            Some("dockerfile:experimental // opts")
        );
        assert_eq!(
            syntax("#!/bin/sh\n# syntax = dockerfile:experimental\nFROM busybox\n").as_deref(),
            Some("dockerfile:experimental")
        );
        assert_eq!(
            syntax("#!/bin/sh\n\n# syntax = dockerfile:experimental\n"),
            None
        );
        assert_eq!(syntax("FROM busybox\nRUN ls\n"), None);
        assert_eq!(
            syntax("\u{feff}# syntax = myfrontend\nFROM busybox\n").as_deref(),
            Some("myfrontend")
        );
        let df =
            parse("# syntax=docker/dockerfile:1.7\r\n# check=error=true\r\nFROM a\r\n").unwrap();
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1.7"));
        assert_eq!(df.escape, '\\');
    }

    #[test]
    fn escape_directive() {
        let df = parse("# escape=`\nFROM a\nRUN echo \\\nRUN b `\n  c\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.instructions[1].original, "RUN echo \\");
        assert_eq!(df.instructions[2].original, "RUN b   c");
        // Case-insensitive, spaces around `=`, any whitespace before the name.
        assert_eq!(parse("#   ESCAPE =  `  \nFROM a\n").unwrap().escape, '`');
        // Only before anything else: after a comment, a blank line or an instruction it is a
        // comment.
        for source in [
            "# hello\n# escape=`\nFROM a\n",
            "\n# escape=`\nFROM a\n",
            "FROM a\n# escape=`\n",
        ] {
            assert_eq!(parse(source).unwrap().escape, '\\', "{source:?}");
        }
        assert_eq!(
            err("# escape=x\nFROM a\n"),
            "Dockerfile:1: invalid escape token 'x' does not match ` or \\"
        );
        assert_eq!(
            err("# syntax=a\n# escape=`\n# escape=\\\nFROM a\n"),
            "Dockerfile:3: only one escape parser directive can be used"
        );
        // An unknown directive name ends the directives.
        assert_eq!(
            parse("# foo=bar\n# escape=`\nFROM a\n").unwrap().escape,
            '\\'
        );
    }

    // ---- parser/parser_heredoc_test.go ----

    #[test]
    fn heredocs_extracted() {
        let source = "
FROM alpine:3.6

ENV NAME=me

RUN ls

USER <<INVALID
INVALID

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN \"<<NOHEREDOC\"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<EOF /quotes
\"foo\"
'bar'
EOF

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

COPY <<file.txt /dest
hello world
file.txt

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'e'o\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF
EOF

RUN <<  EOF  > foo
EOF
\t";
        let h = |name: &str, content: &str, expand: bool, chomp: bool| {
            vec![heredoc(name, content, expand, chomp)]
        };
        let expected: Vec<Vec<Heredoc>> = vec![
            vec![],
            vec![],
            vec![],
            vec![],
            h("EMPTY", "", true, false),
            h("EMPTY2", "", true, false),
            vec![],
            h("INDENT", "\tfoo\n\tbar\n", true, false),
            h("UNINDENT", "\tbaz\n\tquux\n", true, true),
            h("UNINDENT2", "\tbaz\n\tquux\n", true, true),
            h("EXPAND", "\texpand $NAME\n", true, true),
            h("NOEXPAND", "\tdon't expand $NAME\n", false, true),
            h("COPY", "echo hello world\necho foo bar\n", true, false),
            h(
                "COMMENT",
                "# internal comment\necho hello world\necho foo bar # trailing comment\n",
                true,
                false,
            ),
            h("MOUNT", "echo hello\n", true, false),
            vec![
                heredoc("FILE1", "content 1\n", true, false),
                heredoc("FILE2", "content 2\n", true, false),
            ],
            h("EOF", "\"foo\"\n'bar'\n", true, false),
            vec![
                heredoc("X", "Y\n", true, false),
                heredoc("Y", "X\n", true, false),
            ],
            h("COMPLEX", "print('hello world')\n", true, false),
            h("file.txt", "hello world\n", true, false),
            h("eof", "echo foo\n", false, false),
            h("eo'f", "echo foo\n", true, false),
            h("eo'f", "echo foo\n", false, false),
            h("one two", "echo bar\n", false, false),
            h("$EOF", "", true, false),
            h("EOF", "", true, false),
            h("EOF", "", true, false),
        ];
        let ast = parse_ast(source).unwrap();
        assert_eq!(ast.nodes.len(), expected.len() + 1);
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(&ast.nodes[i + 1].heredocs, want, "node {}", i + 1);
        }
        // `USER <<INVALID` is not a heredoc instruction, so `INVALID` is an unknown one.
        assert_eq!(err(source), "Dockerfile:9: unknown instruction: INVALID");
    }

    #[test]
    fn json_form_has_no_heredocs() {
        let source =
            "\nFROM alpine:3.6\n\nRUN [\"whoami\"]\nRUN [\"<<EOF\"]\nRUN [\"<<'EOF'\"]\n\t";
        let ast = parse_ast(source).unwrap();
        assert!(ast.nodes[1..].iter().all(|n| n.heredocs.is_empty()));
    }

    #[test]
    fn heredoc_chomp() {
        assert_eq!(chomp_heredoc("\thello\n\tworld\n"), "hello\nworld\n");
        assert_eq!(chomp_heredoc("\t\ta\n b\n\t"), "a\n b\n");
    }

    #[test]
    fn heredoc_word_helpers() {
        for src in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
            "<<EO\"F\"",
            "<< EOF",
            "<<- EOF",
        ] {
            assert_eq!(parse_heredoc(src).unwrap().unwrap().name, "EOF", "{src}");
        }
        for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc(src).is_err(), "{src}");
        }
        for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
            assert_eq!(parse_heredoc(src).unwrap(), None, "{src}");
        }
        assert_eq!(
            parse_heredoc("<<'EOF").unwrap_err(),
            "failed to process \"'EOF\": unexpected end of statement while looking for matching single-quote"
        );
        assert_eq!(parse_heredoc_word("<<'EOF"), None);
        assert_eq!(
            parse_heredoc_word("12<<-\"A\"B"),
            Some(heredoc("AB", "", false, true))
        );
    }

    #[test]
    fn heredocs_in_lines() {
        let names = |line: &str| -> Vec<String> {
            heredocs_from_line(line)
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        let cases: [(&str, &[&str]); 10] = [
            ("RUN <<EOF", &["EOF"]),
            ("RUN <<-EOF", &["EOF"]),
            ("RUN <<EOF", &["EOF"]),
            // BuildKit's test lists EOF here but never checks it: `-` ends the `<<` token and
            // the space splits the word.
            ("RUN <<- EOF", &[]),
            ("RUN << -EOF", &["-EOF"]),
            ("RUN <<'EOF'", &["EOF"]),
            ("RUN 4<<EOF", &["EOF"]),
            ("RUN <<EOF <<EOF2", &["EOF", "EOF2"]),
            ("RUN '<<EOF'", &[]),
            ("RUN \"<<EOF\"", &[]),
        ];
        for (line, expected) in cases {
            assert_eq!(names(line), strings(expected), "{line}");
        }
        // BuildKit's lexer resets its word buffer inside `${x:-...}`, so this `<<` is lost.
        assert!(names("RUN <<${x:-y}").is_empty());
        assert_eq!(names("RUN <<${x}"), strings(&["${x}"]));
        // A line the lexer rejects has no heredocs.
        assert!(names("RUN 'unterminated <<EOF").is_empty());
    }

    #[test]
    fn heredoc_errors() {
        assert_eq!(
            err("FROM a\nRUN <<EOF\nhello\n"),
            "Dockerfile:2: unterminated heredoc"
        );
        assert_eq!(
            err("FROM a\nCOPY <<A <<B /x\na\nA\nb\n"),
            "Dockerfile:2: unterminated heredoc"
        );
        // Phase 1 errors come before any instruction error, wherever they are.
        assert_eq!(
            err("FROM a\nFOO\nRUN <<EOF\n"),
            "Dockerfile:3: unterminated heredoc"
        );
        // The whole line fails to lex, so BuildKit sees no heredoc at all.
        assert_eq!(
            cmd("RUN <<'EOF"),
            Command::Run {
                cmd: ShellOrExec::Shell("<<'EOF".into()),
                heredocs: vec![],
                mounts: vec![],
                network: None,
                security: None,
            }
        );
    }

    #[test]
    fn heredoc_line_numbers_and_crlf() {
        let df = parse("FROM a\r\nRUN <<EOF\r\necho hi\r\nEOF\r\nRUN x\r\n").unwrap();
        assert_eq!(
            (df.instructions[1].line, df.instructions[1].end_line),
            (2, 4)
        );
        assert_eq!(df.instructions[2].line, 5);
        // Bodies keep their line endings, as BuildKit's do.
        let Command::Run { heredocs, .. } = &df.instructions[1].command else {
            panic!()
        };
        assert_eq!(heredocs, &[heredoc("EOF", "echo hi\r\n", true, false)]);
    }

    // ---- instructions/parse_test.go, parse_heredoc_test.go ----

    #[test]
    fn commands_exactly_one_argument() {
        for command in ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"] {
            assert_eq!(
                cmd_err(command),
                format!("{command} requires exactly one argument")
            );
        }
    }

    #[test]
    fn commands_at_least_one_argument() {
        for command in [
            "ENV",
            "LABEL",
            "ONBUILD",
            "HEALTHCHECK",
            "EXPOSE",
            "VOLUME",
            "ARG",
        ] {
            assert_eq!(
                cmd_err(command),
                format!("{command} requires at least one argument")
            );
        }
    }

    #[test]
    fn commands_no_destination_argument() {
        for command in ["ADD", "COPY"] {
            assert_eq!(
                cmd_err(&format!("{command} arg1")),
                format!(
                    "{command} requires at least two arguments, but only one was provided. Destination could not be determined"
                )
            );
        }
        // `COPY\t` ends at its line; the next lines are another instruction.
        assert!(
            cmd_err("COPY\t\n\t\tquux \\\n      bar")
                .starts_with("COPY requires at least two arguments")
        );
    }

    #[test]
    fn commands_too_many_arguments_and_blank_names() {
        for command in ["ENV", "LABEL"] {
            let node = Node::new(
                command.to_lowercase(),
                format!("{command}arg1 arg2 arg3"),
                Vec::new(),
                strings(&["arg1", "arg2", "arg3", ""]),
                false,
            );
            assert_eq!(
                to_instruction(&node, &[], 1, 1).unwrap_err(),
                format!("Bad input to {command}, too many arguments")
            );
            let node = Node::new(
                command.to_lowercase(),
                format!("{command} =arg2"),
                Vec::new(),
                strings(&["", "arg2", "="]),
                false,
            );
            assert_eq!(
                to_instruction(&node, &[], 1, 1).unwrap_err(),
                format!("{command} names can not be blank")
            );
        }
        assert_eq!(cmd_err("ARG =x"), "ARG names can not be blank");
    }

    #[test]
    fn healthcheck_cmd() {
        let node = Node::new(
            "healthcheck".into(),
            String::new(),
            Vec::new(),
            strings(&["CMD", "hello", "world"]),
            false,
        );
        let Command::Healthcheck(health) = to_instruction(&node, &[], 1, 1).unwrap().command else {
            panic!()
        };
        assert_eq!(health.test, Some(ShellOrExec::Shell("hello world".into())));
    }

    #[test]
    fn opt_interval() {
        assert_eq!(
            cmd_err("HEALTHCHECK --interval=50ns CMD x"),
            "Interval \"interval\" cannot be less than 1ms"
        );
        let Command::Healthcheck(h) = cmd("HEALTHCHECK --interval=0ms --timeout=1ms CMD x") else {
            panic!()
        };
        assert_eq!(h.interval, None);
        assert_eq!(h.timeout, Some(Duration::from_millis(1)));
    }

    #[test]
    fn instruction_error_cases() {
        let cases = [
            (
                "ONBUILD FROM scratch",
                "FROM isn't allowed as an ONBUILD trigger",
            ),
            (
                "ONBUILD maintainer me",
                "MAINTAINER isn't allowed as an ONBUILD trigger",
            ),
            ("MAINTAINER --boo joe@example.com", "unknown flag: --boo"),
            (
                "ONBUILD ONBUILD RUN touch foobar",
                "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ),
            ("FOO bar", "unknown instruction: FOO (did you mean FROM?)"),
            ("foo bar", "unknown instruction: foo (did you mean from?)"),
            (
                "COPY /foo <<EOF\nEOF",
                "COPY cannot accept a heredoc as a destination",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(cmd_err(body), expected, "{body}");
        }
        assert_eq!(
            err("FROM a\nBAR baz"),
            "Dockerfile:2: unknown instruction: BAR (did you mean ARG?)"
        );
    }

    #[test]
    fn unknown_instruction_suggestions() {
        assert_eq!(
            cmd_err("RUNN x"),
            "unknown instruction: RUNN (did you mean RUN?)"
        );
        assert_eq!(
            cmd_err("cpoy a b"),
            "unknown instruction: cpoy (did you mean copy?)"
        );
        assert_eq!(
            cmd_err("Frm a"),
            "unknown instruction: Frm (did you mean from?)"
        );
        assert_eq!(
            cmd_err("COPY --chmodd=1 a b"),
            "unknown flag: --chmodd (did you mean chmod?)"
        );
        assert_eq!(cmd_err("XYZZY"), "unknown instruction: XYZZY");
        // A lone escape joins nothing into an empty instruction.
        assert_eq!(err("FROM a\n\\\n"), "Dockerfile:2: unknown instruction: ");
    }

    #[test]
    fn copy_heredocs() {
        let cases = [
            ("COPY /foo /bar", copy_args(&["/foo"], "/bar", vec![])),
            (
                "COPY <<EOF /bar\nEOF",
                copy_args(&[], "/bar", vec![heredoc("EOF", "", true, false)]),
            ),
            (
                "COPY <<EOF /bar\nTESTING\nEOF",
                copy_args(&[], "/bar", vec![heredoc("EOF", "TESTING\n", true, false)]),
            ),
            (
                "COPY <<-EOF /bar\n\tTESTING\nEOF",
                copy_args(&[], "/bar", vec![heredoc("EOF", "TESTING\n", true, true)]),
            ),
            (
                "COPY <<'EOF' /bar\nTESTING\nEOF",
                copy_args(&[], "/bar", vec![heredoc("EOF", "TESTING\n", false, false)]),
            ),
            (
                "COPY <<EOF1 <<EOF2 /bar\nthis is the first file\nEOF1\nthis is the second file\nEOF2",
                copy_args(
                    &[],
                    "/bar",
                    vec![
                        heredoc("EOF1", "this is the first file\n", true, false),
                        heredoc("EOF2", "this is the second file\n", true, false),
                    ],
                ),
            ),
            (
                "COPY <<EOF foo.txt /bar\nthis is inline\nEOF",
                copy_args(
                    &["foo.txt"],
                    "/bar",
                    vec![heredoc("EOF", "this is inline\n", true, false)],
                ),
            ),
            (
                "COPY <<EOF /quotes\n\"quotes\"\nEOF",
                copy_args(
                    &[],
                    "/quotes",
                    vec![heredoc("EOF", "\"quotes\"\n", true, false)],
                ),
            ),
            // JSON form has no heredoc bodies, but BuildKit still reads `<<EOF` as one.
            (
                "COPY [\"<<EOF\", \"/x\"]",
                copy_args(&[], "/x", vec![heredoc("EOF", "", true, false)]),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(cmd(body), Command::Copy(expected), "{body}");
        }
    }

    #[test]
    fn run_heredocs() {
        let run = |body: &str| match cmd(body) {
            Command::Run { cmd, heredocs, .. } => (cmd, heredocs),
            other => panic!("{other:?}"),
        };
        let shell = |s: &str| ShellOrExec::Shell(s.into());
        let exec = |w: &[&str]| ShellOrExec::Exec(strings(w));
        assert_eq!(run("RUN [\"ls\", \"/\"]"), (exec(&["ls", "/"]), vec![]));
        assert_eq!(run("RUN [\"<<EOF\"]"), (exec(&["<<EOF"]), vec![]));
        assert_eq!(run("RUN ls /"), (shell("ls /"), vec![]));
        assert_eq!(
            run("RUN <<EOF\nls /\nwhoami\nEOF"),
            (
                shell("<<EOF"),
                vec![heredoc("EOF", "ls /\nwhoami\n", true, false)]
            )
        );
        assert_eq!(
            run("RUN <<'EOF' | python\nprint(\"hello\")\nprint(\"world\")\nEOF"),
            (
                shell("<<'EOF' | python"),
                vec![heredoc(
                    "EOF",
                    "print(\"hello\")\nprint(\"world\")\n",
                    false,
                    false
                )]
            )
        );
        // RUN keeps the tabs: dispatch chomps.
        assert_eq!(
            run("RUN <<-EOF\n\techo test\nEOF"),
            (
                shell("<<-EOF"),
                vec![heredoc("EOF", "\techo test\n", true, true)]
            )
        );
    }

    #[test]
    fn run_mount_flag() {
        let Command::Run { mounts, .. } = cmd("RUN --mount=type=tmpfs,target=/foo/ echo hello")
        else {
            panic!()
        };
        assert_eq!(mounts, strings(&["type=tmpfs,target=/foo/"]));
    }

    // ---- instructions/bflag_test.go ----

    #[test]
    fn builder_flags() {
        let parse =
            |args: &[&str], spec: &[(&'static str, Kind)]| parse_flags(&strings(args), spec);
        let spec = [("str1", Kind::Str), ("bool1", Kind::Bool)];
        assert!(parse(&[], &[]).unwrap().used.is_empty());
        assert!(parse(&["--"], &[]).unwrap().used.is_empty());
        let f = parse(&[], &spec).unwrap();
        assert_eq!((f.string("str1"), f.bool("bool1")), (None, None));
        assert_eq!(
            parse(&["--str1"], &spec).unwrap_err(),
            "missing a value on flag: --str1"
        );
        assert_eq!(
            parse(&["--str1="], &spec)
                .unwrap()
                .used_string("str1")
                .unwrap(),
            ""
        );
        assert_eq!(
            parse(&["--str1=BYE"], &spec)
                .unwrap()
                .string("str1")
                .unwrap(),
            "BYE"
        );
        for (arg, value) in [
            ("--bool1", true),
            ("--bool1=true", true),
            ("--bool1=TRUE", true),
            ("--bool1=false", false),
        ] {
            assert_eq!(
                parse(&[arg], &spec).unwrap().bool("bool1"),
                Some(value),
                "{arg}"
            );
        }
        assert_eq!(
            parse(&["--bool1=false1"], &spec).unwrap_err(),
            "expecting boolean value for flag --bool1, not: false1"
        );
        assert_eq!(
            parse(&["--bool1="], &spec).unwrap_err(),
            "missing a value on flag: --bool1"
        );
        assert_eq!(
            parse(&["--bool2"], &spec).unwrap_err(),
            "unknown flag: --bool2 (did you mean bool1?)"
        );
        assert_eq!(
            parse(&["--str1=a", "--str1=b"], &spec).unwrap_err(),
            "duplicate flag specified: --str1"
        );
        let f = parse(&["--bool1", "--str1=BYE"], &spec).unwrap();
        assert_eq!(
            (f.string("str1").unwrap(), f.bool("bool1")),
            ("BYE".into(), Some(true))
        );
        let f = parse(&["--x=1", "--x=2"], &[("x", Kind::Strs)]).unwrap();
        assert_eq!(f.strings("x"), strings(&["1", "2"]));
        // Stops at `--`.
        assert!(parse(&["--", "--bogus"], &[]).unwrap().used.is_empty());
    }

    // ---- Instructions ----

    #[test]
    fn from_forms() {
        assert_eq!(
            cmd("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build-Env"),
            Command::From {
                image: "golang:1.22".into(),
                name: Some("build-env".into()),
                platform: Some("$BUILDPLATFORM".into()),
            }
        );
        assert_eq!(
            cmd("from alpine as x"),
            Command::From {
                image: "alpine".into(),
                name: Some("x".into()),
                platform: None,
            }
        );
        assert_eq!(
            cmd_err("FROM a AS 1x"),
            "invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
        );
        assert_eq!(
            cmd_err("FROM a b"),
            "FROM requires either one or three arguments"
        );
        assert_eq!(
            cmd_err("FROM a to b"),
            "FROM requires either one or three arguments"
        );
        assert_eq!(
            cmd_err("FROM"),
            "FROM requires either one or three arguments"
        );
        assert_eq!(
            cmd_err("FROM --platfrom=x a"),
            "unknown flag: --platfrom (did you mean platform?)"
        );
        let all = ok("ARG A=1 B\nARG C\nFROM a\nARG A\n");
        assert_eq!(
            all[0].command,
            Command::Arg(vec![("A".into(), Some("1".into())), ("B".into(), None)])
        );
    }

    #[test]
    fn run_flags() {
        assert_eq!(
            cmd(
                "RUN --mount=type=cache,target=/a --mount=type=secret,id=x --network=none --security=insecure make"
            ),
            Command::Run {
                cmd: ShellOrExec::Shell("make".into()),
                heredocs: vec![],
                mounts: strings(&["type=cache,target=/a", "type=secret,id=x"]),
                network: Some("none".into()),
                security: Some("insecure".into()),
            }
        );
        assert_eq!(
            cmd_err("RUN --network=bridge x"),
            "invalid network mode \"bridge\""
        );
        assert_eq!(
            cmd_err("RUN --network=$NET x"),
            "invalid network mode \"$NET\""
        );
        assert_eq!(cmd_err("RUN --network= x"), "invalid network mode \"\"");
        assert_eq!(cmd_err("RUN --security=x y"), "security \"x\" is not valid");
        assert_eq!(
            cmd_err("RUN --mount=type=bind,from=$STAGE x"),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        // `$` last is allowed, and everything else waits for expansion.
        cmd("RUN --mount=from=a$,type=$T,bogus x");
        assert_eq!(cmd_err("RUN --mount= x"), "failed to parse csv mounts: EOF");
        assert_eq!(
            cmd_err("RUN --mount=a\\\"b x"),
            "failed to parse csv mounts: parse error on line 1, column 2: bare \" in non-quoted-field"
        );
        assert_eq!(
            cmd_err("RUN --mount='\"a\"b' x"),
            "failed to parse csv mounts: parse error on line 1, column 3: extraneous or missing \" in quoted-field"
        );
        cmd("RUN --mount='\"type=bind,x\",\"a\"\"b\"' x");
        assert_eq!(cmd_err("RUN --mount x"), "missing a value on flag: --mount");
        assert_eq!(
            cmd_err("RUN --device=gpu x"),
            "RUN --device is not supported"
        );
        assert_eq!(
            cmd_err("RUN --netwrk=host x"),
            "unknown flag: --netwrk (did you mean network?)"
        );
        assert_eq!(
            cmd("RUN -- --mount=x"),
            Command::Run {
                cmd: ShellOrExec::Shell("--mount=x".into()),
                heredocs: vec![],
                mounts: vec![],
                network: None,
                security: None,
            }
        );
    }

    #[test]
    fn flag_words_like_buildkit() {
        // Quotes are removed and escapes taken, in flags only.
        let Command::Copy(c) = cmd("COPY --chown=\"a b\" --from=x\\ y src dst") else {
            panic!()
        };
        assert_eq!(
            (c.chown.as_deref(), c.from.as_deref()),
            (Some("a b"), Some("x y"))
        );
        // BuildKit reads flag bytes as runes: non-ASCII comes out Latin-1 decoded.
        let Command::Copy(c) = cmd("COPY --chown=bjørn src dst") else {
            panic!()
        };
        assert_eq!(c.chown.as_deref(), Some("bjÃ¸rn"));
    }

    #[test]
    fn copy_and_add_flags() {
        let mut expected = copy_args(&["a", "b"], "/dst/", vec![]);
        expected.from = Some("build".into());
        expected.chown = Some("1:2".into());
        expected.chmod = Some("755".into());
        expected.link = true;
        expected.exclude = strings(&["*.md", "x"]);
        expected.parents = true;
        assert_eq!(
            cmd(
                "COPY --from=build --chown=1:2 --chmod=755 --link --exclude=*.md --exclude=x --parents a b /dst/"
            ),
            Command::Copy(expected)
        );
        let mut expected = copy_args(&["https://x/y.tar"], "/y", vec![]);
        expected.keep_git_dir = Some(false);
        expected.checksum = Some("sha256:abc".into());
        expected.unpack = Some(true);
        expected.link = false;
        assert_eq!(
            cmd(
                "ADD --keep-git-dir=false --checksum=sha256:abc --unpack --link=false https://x/y.tar /y"
            ),
            Command::Add(expected)
        );
        assert_eq!(cmd_err("ADD --from=x a b"), "unknown flag: --from");
        assert_eq!(cmd_err("COPY --unpack a b"), "unknown flag: --unpack");
        assert_eq!(
            cmd_err("COPY --link=yes a b"),
            "expecting boolean value for flag --link, not: yes"
        );
        assert_eq!(
            cmd_err("COPY --from=a --from=b a b"),
            "duplicate flag specified: --from"
        );
        // An empty string flag is unset.
        let Command::Copy(c) = cmd("COPY --from= a b") else {
            panic!()
        };
        assert_eq!(c.from, None);
        assert_eq!(
            cmd("COPY [\"a b\", \"c\"]"),
            Command::Copy(copy_args(&["a b"], "c", vec![]))
        );
    }

    #[test]
    fn healthcheck_forms() {
        let health = |body: &str| match cmd(body) {
            Command::Healthcheck(h) => h,
            other => panic!("{other:?}"),
        };
        let h = health(
            "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=1.5s --start-interval=2h --retries=3 \\\n  CMD curl -f http://localhost/ || exit 1",
        );
        assert_eq!(
            h,
            HealthArgs {
                test: Some(ShellOrExec::Shell(
                    "curl -f http://localhost/ || exit 1".into()
                )),
                interval: Some(Duration::from_secs(90)),
                timeout: Some(Duration::from_millis(500)),
                start_period: Some(Duration::from_millis(1500)),
                start_interval: Some(Duration::from_secs(7200)),
                retries: Some(3),
            }
        );
        let h = health("healthcheck cmd [\"a\", \"b\"]");
        assert_eq!(h.test, Some(ShellOrExec::Exec(strings(&["a", "b"]))));
        assert_eq!(h.retries, None);
        let h = health("HEALTHCHECK --bogus=1 NONE");
        assert_eq!(h.test, None);
        assert_eq!(
            cmd_err("HEALTHCHECK NONE x"),
            "HEALTHCHECK NONE takes no arguments"
        );
        assert_eq!(
            cmd_err("HEALTHCHECK CMD"),
            "Missing command after HEALTHCHECK CMD"
        );
        assert_eq!(
            cmd_err("HEALTHCHECK CMD []"),
            "Missing command after HEALTHCHECK CMD"
        );
        assert_eq!(
            cmd_err("HEALTHCHECK CONNECT TCP 7000"),
            "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"
        );
        assert_eq!(
            cmd_err("HEALTHCHECK --retries=-1 CMD x"),
            "--retries cannot be negative (-1)"
        );
        assert_eq!(
            cmd_err("HEALTHCHECK --retries=x CMD x"),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            cmd_err("HEALTHCHECK --retries=2147483648 CMD x"),
            "strconv.ParseInt: parsing \"2147483648\": value out of range"
        );
        assert_eq!(
            cmd_err("HEALTHCHECK --timeout=5 CMD x"),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            cmd_err("HEALTHCHECK --timeout=5d CMD x"),
            "time: unknown unit \"d\" in duration \"5d\""
        );
        assert_eq!(
            cmd_err("HEALTHCHECK --timeout=-5s CMD x"),
            "Interval \"timeout\" cannot be less than 1ms"
        );
        assert_eq!(
            cmd_err("HEALTHCHECK --interval=5s --interval=6s CMD x"),
            "duplicate flag specified: --interval"
        );
    }

    #[test]
    fn go_durations() {
        let cases = [
            ("0", 0),
            ("-0", 0),
            ("1ns", 1),
            ("1.5h", 5_400_000_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("1µs", 1000),
            ("1μs", 1000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("+2s", 2_000_000_000),
            ("-1.5m", -90_000_000_000),
            ("9223372036854775807ns", i64::MAX),
            ("0.0000000001s", 0),
        ];
        for (text, ns) in cases {
            assert_eq!(go_parse_duration(text), Ok(ns), "{text}");
        }
        for text in [
            "",
            "s",
            ".s",
            "1",
            "1.5",
            "-",
            "9223372036854775808ns",
            "1x",
            "1e3s",
        ] {
            assert!(go_parse_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn env_label_arg_raw() {
        assert_eq!(
            cmd("ENV a=b c=\"d e\" f=g\\ h"),
            Command::Env(vec![
                ("a".into(), "b".into()),
                ("c".into(), "\"d e\"".into()),
                ("f".into(), "g\\ h".into()),
            ])
        );
        assert_eq!(
            cmd("ENV PATH /usr/bin:$PATH extra"),
            Command::Env(vec![("PATH".into(), "/usr/bin:$PATH extra".into())])
        );
        assert_eq!(
            cmd("LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0"),
            Command::Label(vec![
                ("\"com.example.vendor\"".into(), "\"ACME Inc\"".into()),
                ("version".into(), "1.0".into()),
            ])
        );
        assert_eq!(
            cmd_err("ENV a=b c"),
            "Syntax error - can't find = in \"c\". Must be of the form: name=value"
        );
        assert_eq!(cmd_err("ENV x"), "ENV must have two arguments");
        assert_eq!(cmd_err("ENV --x=1 a=b"), "unknown flag: --x");
        assert_eq!(cmd_err("LABEL =x"), "LABEL names can not be blank");
        // ARG ignores flags, as BuildKit never parses them.
        assert_eq!(
            cmd("ARG --x=1 a=\"b c\" d"),
            Command::Arg(vec![
                ("a".into(), Some("\"b c\"".into())),
                ("d".into(), None)
            ])
        );
    }

    #[test]
    fn simple_instructions() {
        assert_eq!(
            cmd("MAINTAINER Jo <jo@x>"),
            Command::Maintainer("Jo <jo@x>".into())
        );
        assert_eq!(
            cmd("EXPOSE 8080/tcp 443 80"),
            Command::Expose(strings(&["443", "80", "8080/tcp"]))
        );
        assert_eq!(cmd("VOLUME /a /b"), Command::Volume(strings(&["/a", "/b"])));
        assert_eq!(
            cmd("VOLUME [\"/a\", \" /b \"]"),
            Command::Volume(strings(&["/a", "/b"]))
        );
        assert_eq!(
            cmd_err("VOLUME [\"/a\", \" \"]"),
            "VOLUME specified can not be an empty string"
        );
        assert_eq!(cmd("USER  app:app "), Command::User("app:app".into()));
        assert_eq!(cmd("WORKDIR /a b"), Command::Workdir("/a b".into()));
        assert_eq!(
            cmd("STOPSIGNAL --x SIGKILL"),
            Command::StopSignal("SIGKILL".into())
        );
        assert_eq!(cmd_err("USER --x=1 a"), "unknown flag: --x");
        assert_eq!(
            cmd("SHELL [\"powershell\", \"-command\"]"),
            Command::Shell(strings(&["powershell", "-command"]))
        );
        assert_eq!(
            cmd_err("SHELL /bin/sh -c"),
            "SHELL requires the arguments to be in JSON form"
        );
        assert_eq!(cmd_err("SHELL []"), "SHELL requires at least one argument");
        assert_eq!(cmd("CMD"), Command::Cmd(ShellOrExec::Shell(String::new())));
        assert_eq!(cmd("CMD []"), Command::Cmd(ShellOrExec::Exec(vec![])));
        assert_eq!(
            cmd("entrypoint [\"/bin/app\", \"--flag\"]"),
            Command::Entrypoint(ShellOrExec::Exec(strings(&["/bin/app", "--flag"])))
        );
        assert_eq!(
            cmd("CMD ['single', 'quotes']"),
            Command::Cmd(ShellOrExec::Shell("['single', 'quotes']".into()))
        );
        assert_eq!(cmd_err("CMD --x y"), "unknown flag: --x");
    }

    #[test]
    fn onbuild() {
        let all = ok(
            "FROM a\nonbuild   RUN --mount=type=cache,target=/c make  \nONBUILD COPY <<EOF /x\nhi\nEOF\n",
        );
        let Command::Onbuild {
            expression,
            trigger,
        } = &all[1].command
        else {
            panic!()
        };
        assert_eq!(expression, "RUN --mount=type=cache,target=/c make  ");
        assert_eq!(trigger.original, "RUN --mount=type=cache,target=/c make");
        assert_eq!(
            trigger.command,
            Command::Run {
                cmd: ShellOrExec::Shell("make".into()),
                heredocs: vec![],
                mounts: strings(&["type=cache,target=/c"]),
                network: None,
                security: None,
            }
        );
        let Command::Onbuild {
            expression,
            trigger,
        } = &all[2].command
        else {
            panic!()
        };
        assert_eq!(expression, "COPY <<EOF /x\nhi\nEOF");
        assert_eq!((trigger.line, trigger.end_line), (3, 5));
        assert_eq!(
            trigger.command,
            Command::Copy(copy_args(
                &[],
                "/x",
                vec![heredoc("EOF", "hi\n", true, false)]
            ))
        );
        assert_eq!(
            dump_all("ONBUILD RUN [\"a\"]\nONBUILD ONBUILD ADD a b\n"),
            "(onbuild (run \"a\"))\n(onbuild (onbuild (add \"a\" \"b\")))\n"
        );
        // Stricter than BuildKit: the trigger must be a valid instruction now.
        assert_eq!(cmd_err("ONBUILD BOGUS x"), "unknown instruction: BOGUS");
        assert_eq!(cmd_err("ONBUILD --x RUN y"), "unknown flag: --x");
    }

    #[test]
    fn continuations_and_originals() {
        let all = ok("FROM a\nRUN a \\  \n  b \\\n\n  # comment\n  c\nRUN d\\\\\nRUN e\n");
        assert_eq!(all[1].original, "RUN a   b   c");
        assert_eq!((all[1].line, all[1].end_line), (2, 6));
        assert_eq!(
            all[1].command,
            Command::Run {
                cmd: ShellOrExec::Shell("a   b   c".into()),
                heredocs: vec![],
                mounts: vec![],
                network: None,
                security: None,
            }
        );
        // An escaped escape does not continue.
        assert_eq!(all[2].original, "RUN d\\\\");
        assert_eq!(all[3].line, 8);
        // BOM, CRLF, leading whitespace, lowercase keywords, continuation at EOF.
        let all = ok("\u{feff}  from a\r\n\r\n\trun b \\\r\n");
        assert_eq!(all[1].original, "run b ");
        assert_eq!(
            all[1].command,
            Command::Run {
                cmd: ShellOrExec::Shell("b".into()),
                heredocs: vec![],
                mounts: vec![],
                network: None,
                security: None,
            }
        );
    }

    #[test]
    fn onbuild_trigger_round_trip() {
        // What ONBUILD stores is what parse_trigger reads back, heredocs included.
        let all = ok("FROM a\nONBUILD COPY <<EOF /x\nhi\nEOF\nONBUILD run echo $A");
        for instruction in &all[1..] {
            let Command::Onbuild {
                expression,
                trigger,
            } = &instruction.command
            else {
                panic!()
            };
            let parsed = parse_trigger(expression).unwrap();
            assert_eq!(parsed.command, trigger.command, "{expression}");
            assert_eq!(parsed.original, trigger.original);
        }
        assert_eq!(
            parse_trigger("RUN a\nRUN b").unwrap_err().message,
            "onbuild trigger should be a single expression"
        );
        assert_eq!(
            parse_trigger("FROM x").unwrap_err().message,
            "FROM isn't allowed as an ONBUILD trigger"
        );
        assert_eq!(
            parse_trigger("").unwrap_err().message,
            "file with no instructions"
        );
    }

    /// A small xorshift generator, so the fuzz cases are reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // Random bytes.
        for _ in 0..300 {
            let len = rng.below(400);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }
        // Random Dockerfile-ish token soup.
        let tokens = [
            "FROM",
            "RUN",
            "COPY",
            "ADD",
            "ONBUILD",
            "HEALTHCHECK",
            "CMD",
            "ENV",
            "ARG",
            "LABEL",
            "SHELL",
            "EXPOSE",
            "VOLUME",
            "USER",
            " ",
            "\t",
            "\n",
            "\r\n",
            "\\",
            "`",
            "\\\n",
            "<<",
            "<<-",
            "EOF",
            "'",
            "\"",
            "$",
            "${",
            "}",
            ":-",
            "[",
            "]",
            ",",
            "=",
            "--",
            "--mount=",
            "--from=",
            "--chown=",
            "--interval=",
            "NONE",
            "#",
            "# escape=`\n",
            "# syntax=x\n",
            "\u{a0}",
            "é",
            "\u{800}",
            "\u{feff}",
            "\0",
            "{",
            "\\u",
            "1e999",
            "AS",
            "x",
        ];
        for _ in 0..3000 {
            let n = rng.below(40);
            let source: String = (0..n).map(|_| tokens[rng.below(tokens.len())]).collect();
            let _ = parse(&source);
        }
        // Deep nesting and huge instructions, built from lines within BuildKit's limit.
        let continued = |piece: &str, count: usize| -> String {
            let mut s = String::new();
            for _ in 0..count {
                s.push_str(piece);
                s.push_str("\\\n");
            }
            s
        };
        let big = [
            format!("FROM a\nCMD {}\n", continued(&"[".repeat(60000), 20)),
            format!(
                "FROM a\nCMD [\"a\", {}\n",
                continued(&"{\"k\":[".repeat(6000), 20)
            ),
            format!("FROM a\n{}RUN x\n", continued(&"ONBUILD ".repeat(7000), 30)),
            format!(
                "FROM a\nRUN {}<<EOF\nEOF\n",
                continued(&"${a:-".repeat(10000), 10)
            ),
            format!(
                "FROM a\nRUN \"{}\" <<EOF\nEOF\n",
                continued(&"$".repeat(60000), 20)
            ),
            format!("FROM a\nENV {}\n", continued(&"a=\"b\" ".repeat(8000), 20)),
            format!(
                "FROM a\nCOPY {}<<E /x\nE\n",
                continued(&"<<E ".repeat(10000), 5)
            ),
            format!("FROM a\nLABEL x={}\n", "y".repeat(1 << 20)),
        ];
        for source in &big {
            let _ = parse(source);
        }
        assert!(err(&big[2]).ends_with("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"));
        assert!(err(&big[7]).ends_with("dockerfile line greater than max allowed size of 65535"));
    }

    /// BuildKit's `frontend/dockerfile/parser/testfiles`: (name, Dockerfile, AST dump).
    const TESTFILES: &[(&str, &str, &str)] = &[
    (
        "ADD-COPY-with-JSON",
        "FROM\tubuntu:14.04
LABEL\tmaintainer\tSeongyeol Lim <seongyeol37@gmail.com>

COPY\t.\t/go/src/github.com/docker/docker
ADD\t\t.\t/
ADD\t\tnull /
COPY\tnullfile /tmp
ADD\t\t[ \"vimrc\", \"/tmp\" ]
COPY\t[ \"bashrc\", \"/tmp\" ]
COPY\t[ \"test file\", \"/tmp\" ]
ADD\t\t[ \"test file\", \"/tmp/test file\" ]
",
        "(from \"ubuntu:14.04\")
(label \"maintainer\" \"Seongyeol Lim <seongyeol37@gmail.com>\" \"\")
(copy \".\" \"/go/src/github.com/docker/docker\")
(add \".\" \"/\")
(add \"null\" \"/\")
(copy \"nullfile\" \"/tmp\")
(add \"vimrc\" \"/tmp\")
(copy \"bashrc\" \"/tmp\")
(copy \"test file\" \"/tmp\")
(add \"test file\" \"/tmp/test file\")
",
    ),
    (
        "args",
        "ARG foo bar=baz
FROM ubuntu
ARG abc=\"123 456\" def
",
        "(arg \"foo\" \"bar=baz\")
(from \"ubuntu\")
(arg \"abc=\\\"123 456\\\"\" \"def\")
",
    ),
    (
        "brimstone-consuldock",
        "#escape=\\
FROM brimstone/ubuntu:14.04

LABEL maintainer brimstone@the.narro.ws

# TORUN -v /var/run/docker.sock:/var/run/docker.sock

ENV GOPATH /go

# Set our command
ENTRYPOINT [\"/usr/local/bin/consuldock\"]

# Install the packages we need, clean up after them and us
RUN apt-get update \\
\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \\
    && apt-get --no-install-recommends install -y git golang ca-certificates \\
    && apt-get clean \\
    && rm -rf /var/lib/apt/lists \\

\t&& go get -v github.com/brimstone/consuldock \\
    && mv $GOPATH/bin/consuldock /usr/local/bin/consuldock \\

\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\
\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\
\t&& rm /tmp/dpkg.* \\
\t&& rm -rf $GOPATH
",
        "(from \"brimstone/ubuntu:14.04\")
(label \"maintainer\" \"brimstone@the.narro.ws\" \"\")
(env \"GOPATH\" \"/go\" \"\")
(entrypoint \"/usr/local/bin/consuldock\")
(run \"apt-get update \\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get --no-install-recommends install -y git golang ca-certificates     && apt-get clean     && rm -rf /var/lib/apt/lists \\t&& go get -v github.com/brimstone/consuldock     && mv $GOPATH/bin/consuldock /usr/local/bin/consuldock \\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\t&& rm /tmp/dpkg.* \\t&& rm -rf $GOPATH\")
",
    ),
    (
        "brimstone-docker-consul",
        "FROM brimstone/ubuntu:14.04

CMD []

ENTRYPOINT [\"/usr/bin/consul\", \"agent\", \"-server\", \"-data-dir=/consul\", \"-client=0.0.0.0\", \"-ui-dir=/webui\"]

EXPOSE 8500 8600 8400 8301 8302

RUN apt-get update \\
    && apt-get --no-install-recommends install -y unzip wget \\
\t&& apt-get clean \\
\t&& rm -rf /var/lib/apt/lists

RUN cd /tmp \\
    && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip \\
       -O web_ui.zip \\
    && unzip web_ui.zip \\
    && mv dist /webui \\
    && rm web_ui.zip

RUN apt-get update \\
\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \\
    && apt-get --no-install-recommends install -y unzip wget \\
    && apt-get clean \\
    && rm -rf /var/lib/apt/lists \\

    && cd /tmp \\
    && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip \\
       -O web_ui.zip \\
    && unzip web_ui.zip \\
    && mv dist /webui \\
    && rm web_ui.zip \\

\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\
\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\
\t&& rm /tmp/dpkg.*

ENV GOPATH /go

RUN apt-get update \\
\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \\
    && apt-get --no-install-recommends install -y git golang ca-certificates build-essential \\
    && apt-get clean \\
    && rm -rf /var/lib/apt/lists \\

\t&& go get -v github.com/hashicorp/consul \\
\t&& mv $GOPATH/bin/consul /usr/bin/consul \\

\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\
\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\
\t&& rm /tmp/dpkg.* \\
\t&& rm -rf $GOPATH
",
        "(from \"brimstone/ubuntu:14.04\")
(cmd)
(entrypoint \"/usr/bin/consul\" \"agent\" \"-server\" \"-data-dir=/consul\" \"-client=0.0.0.0\" \"-ui-dir=/webui\")
(expose \"8500\" \"8600\" \"8400\" \"8301\" \"8302\")
(run \"apt-get update     && apt-get --no-install-recommends install -y unzip wget \\t&& apt-get clean \\t&& rm -rf /var/lib/apt/lists\")
(run \"cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zip\")
(run \"apt-get update \\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get --no-install-recommends install -y unzip wget     && apt-get clean     && rm -rf /var/lib/apt/lists     && cd /tmp     && wget https://dl.bintray.com/mitchellh/consul/0.3.1_web_ui.zip        -O web_ui.zip     && unzip web_ui.zip     && mv dist /webui     && rm web_ui.zip \\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\t&& rm /tmp/dpkg.*\")
(env \"GOPATH\" \"/go\" \"\")
(run \"apt-get update \\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean     && apt-get --no-install-recommends install -y git golang ca-certificates build-essential     && apt-get clean     && rm -rf /var/lib/apt/lists \\t&& go get -v github.com/hashicorp/consul \\t&& mv $GOPATH/bin/consul /usr/bin/consul \\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\t&& rm /tmp/dpkg.* \\t&& rm -rf $GOPATH\")
",
    ),
    (
        "continue-at-eof",
        "FROM alpine:3.5

RUN something \\",
        "(from \"alpine:3.5\")
(run \"something\")
",
    ),
    (
        "continueIndent",
        "FROM ubuntu:14.04

RUN echo hello\\
  world\\
  goodnight  \\
  moon\\
  light\\
ning
RUN echo hello  \\
  world
RUN echo hello  \\
world
RUN echo hello \\
goodbye\\
frog
RUN echo hello  \\\x20\x20
world
RUN echo hi \\
 \\
 world \\
\\
 good\\
\\
night
RUN echo goodbye\\
frog
RUN echo good\\
bye\\
frog

RUN echo hello \\
# this is a comment

# this is a comment with a blank line surrounding it

this is some more useful stuff
",
        "(from \"ubuntu:14.04\")
(run \"echo hello  world  goodnight    moon  lightning\")
(run \"echo hello    world\")
(run \"echo hello  world\")
(run \"echo hello goodbyefrog\")
(run \"echo hello  world\")
(run \"echo hi   world  goodnight\")
(run \"echo goodbyefrog\")
(run \"echo goodbyefrog\")
(run \"echo hello this is some more useful stuff\")
",
    ),
    (
        "cpuguy83-nagios",
        "FROM cpuguy83/ubuntu
ENV NAGIOS_HOME /opt/nagios
ENV NAGIOS_USER nagios
ENV NAGIOS_GROUP nagios
ENV NAGIOS_CMDUSER nagios
ENV NAGIOS_CMDGROUP nagios
ENV NAGIOSADMIN_USER nagiosadmin
ENV NAGIOSADMIN_PASS nagios
ENV APACHE_RUN_USER nagios
ENV APACHE_RUN_GROUP nagios
ENV NAGIOS_TIMEZONE UTC

RUN sed -i 's/universe/universe multiverse/' /etc/apt/sources.list
RUN apt-get update && apt-get --no-install-recommends install -y iputils-ping netcat build-essential snmp snmpd snmp-mibs-downloader php5-cli apache2 libapache2-mod-php5 runit bc postfix bsd-mailx
RUN ( egrep -i  \"^${NAGIOS_GROUP}\" /etc/group || groupadd $NAGIOS_GROUP ) && ( egrep -i \"^${NAGIOS_CMDGROUP}\" /etc/group || groupadd $NAGIOS_CMDGROUP )
RUN ( id -u $NAGIOS_USER || useradd --system $NAGIOS_USER -g $NAGIOS_GROUP -d $NAGIOS_HOME ) && ( id -u $NAGIOS_CMDUSER || useradd --system -d $NAGIOS_HOME -g $NAGIOS_CMDGROUP $NAGIOS_CMDUSER )

ADD http://downloads.sourceforge.net/project/nagios/nagios-3.x/nagios-3.5.1/nagios-3.5.1.tar.gz?r=http%3A%2F%2Fwww.nagios.org%2Fdownload%2Fcore%2Fthanks%2F%3Ft%3D1398863696&ts=1398863718&use_mirror=superb-dca3 /tmp/nagios.tar.gz
RUN cd /tmp && tar -zxvf nagios.tar.gz && cd nagios  && ./configure --prefix=${NAGIOS_HOME} --exec-prefix=${NAGIOS_HOME} --enable-event-broker --with-nagios-command-user=${NAGIOS_CMDUSER} --with-command-group=${NAGIOS_CMDGROUP} --with-nagios-user=${NAGIOS_USER} --with-nagios-group=${NAGIOS_GROUP} && make all && make install && make install-config && make install-commandmode && cp sample-config/httpd.conf /etc/apache2/conf.d/nagios.conf
ADD http://www.nagios-plugins.org/download/nagios-plugins-1.5.tar.gz /tmp/
RUN cd /tmp && tar -zxvf nagios-plugins-1.5.tar.gz && cd nagios-plugins-1.5 && ./configure --prefix=${NAGIOS_HOME} && make && make install

RUN sed -i.bak 's/.*\\=www\\-data//g' /etc/apache2/envvars
RUN export DOC_ROOT=\"DocumentRoot $(echo $NAGIOS_HOME/share)\"; sed -i \"s,DocumentRoot.*,$DOC_ROOT,\" /etc/apache2/sites-enabled/000-default

RUN ln -s ${NAGIOS_HOME}/bin/nagios /usr/local/bin/nagios && mkdir -p /usr/share/snmp/mibs && chmod 0755 /usr/share/snmp/mibs && touch /usr/share/snmp/mibs/.foo

RUN echo \"use_timezone=$NAGIOS_TIMEZONE\" >> ${NAGIOS_HOME}/etc/nagios.cfg && echo \"SetEnv TZ \\\"${NAGIOS_TIMEZONE}\\\"\" >> /etc/apache2/conf.d/nagios.conf

RUN mkdir -p ${NAGIOS_HOME}/etc/conf.d && mkdir -p ${NAGIOS_HOME}/etc/monitor && ln -s /usr/share/snmp/mibs ${NAGIOS_HOME}/libexec/mibs
RUN echo \"cfg_dir=${NAGIOS_HOME}/etc/conf.d\" >> ${NAGIOS_HOME}/etc/nagios.cfg
RUN echo \"cfg_dir=${NAGIOS_HOME}/etc/monitor\" >> ${NAGIOS_HOME}/etc/nagios.cfg
RUN download-mibs && echo \"mibs +ALL\" > /etc/snmp/snmp.conf

RUN sed -i 's,/bin/mail,/usr/bin/mail,' /opt/nagios/etc/objects/commands.cfg && \\
  sed -i 's,/usr/usr,/usr,' /opt/nagios/etc/objects/commands.cfg
RUN cp /etc/services /var/spool/postfix/etc/

RUN mkdir -p /etc/sv/nagios && mkdir -p /etc/sv/apache && rm -rf /etc/sv/getty-5 && mkdir -p /etc/sv/postfix
ADD nagios.init /etc/sv/nagios/run
ADD apache.init /etc/sv/apache/run
ADD postfix.init /etc/sv/postfix/run
ADD postfix.stop /etc/sv/postfix/finish

ADD start.sh /usr/local/bin/start_nagios

ENV APACHE_LOCK_DIR /var/run
ENV APACHE_LOG_DIR /var/log/apache2

EXPOSE 80

VOLUME [\"/opt/nagios/var\", \"/opt/nagios/etc\", \"/opt/nagios/libexec\", \"/var/log/apache2\", \"/usr/share/snmp/mibs\"]

CMD [\"/usr/local/bin/start_nagios\"]
",
        "(from \"cpuguy83/ubuntu\")
(env \"NAGIOS_HOME\" \"/opt/nagios\" \"\")
(env \"NAGIOS_USER\" \"nagios\" \"\")
(env \"NAGIOS_GROUP\" \"nagios\" \"\")
(env \"NAGIOS_CMDUSER\" \"nagios\" \"\")
(env \"NAGIOS_CMDGROUP\" \"nagios\" \"\")
(env \"NAGIOSADMIN_USER\" \"nagiosadmin\" \"\")
(env \"NAGIOSADMIN_PASS\" \"nagios\" \"\")
(env \"APACHE_RUN_USER\" \"nagios\" \"\")
(env \"APACHE_RUN_GROUP\" \"nagios\" \"\")
(env \"NAGIOS_TIMEZONE\" \"UTC\" \"\")
(run \"sed -i 's/universe/universe multiverse/' /etc/apt/sources.list\")
(run \"apt-get update && apt-get --no-install-recommends install -y iputils-ping netcat build-essential snmp snmpd snmp-mibs-downloader php5-cli apache2 libapache2-mod-php5 runit bc postfix bsd-mailx\")
(run \"( egrep -i  \\\"^${NAGIOS_GROUP}\\\" /etc/group || groupadd $NAGIOS_GROUP ) && ( egrep -i \\\"^${NAGIOS_CMDGROUP}\\\" /etc/group || groupadd $NAGIOS_CMDGROUP )\")
(run \"( id -u $NAGIOS_USER || useradd --system $NAGIOS_USER -g $NAGIOS_GROUP -d $NAGIOS_HOME ) && ( id -u $NAGIOS_CMDUSER || useradd --system -d $NAGIOS_HOME -g $NAGIOS_CMDGROUP $NAGIOS_CMDUSER )\")
(add \"http://downloads.sourceforge.net/project/nagios/nagios-3.x/nagios-3.5.1/nagios-3.5.1.tar.gz?r=http%3A%2F%2Fwww.nagios.org%2Fdownload%2Fcore%2Fthanks%2F%3Ft%3D1398863696&ts=1398863718&use_mirror=superb-dca3\" \"/tmp/nagios.tar.gz\")
(run \"cd /tmp && tar -zxvf nagios.tar.gz && cd nagios  && ./configure --prefix=${NAGIOS_HOME} --exec-prefix=${NAGIOS_HOME} --enable-event-broker --with-nagios-command-user=${NAGIOS_CMDUSER} --with-command-group=${NAGIOS_CMDGROUP} --with-nagios-user=${NAGIOS_USER} --with-nagios-group=${NAGIOS_GROUP} && make all && make install && make install-config && make install-commandmode && cp sample-config/httpd.conf /etc/apache2/conf.d/nagios.conf\")
(add \"http://www.nagios-plugins.org/download/nagios-plugins-1.5.tar.gz\" \"/tmp/\")
(run \"cd /tmp && tar -zxvf nagios-plugins-1.5.tar.gz && cd nagios-plugins-1.5 && ./configure --prefix=${NAGIOS_HOME} && make && make install\")
(run \"sed -i.bak 's/.*\\\\=www\\\\-data//g' /etc/apache2/envvars\")
(run \"export DOC_ROOT=\\\"DocumentRoot $(echo $NAGIOS_HOME/share)\\\"; sed -i \\\"s,DocumentRoot.*,$DOC_ROOT,\\\" /etc/apache2/sites-enabled/000-default\")
(run \"ln -s ${NAGIOS_HOME}/bin/nagios /usr/local/bin/nagios && mkdir -p /usr/share/snmp/mibs && chmod 0755 /usr/share/snmp/mibs && touch /usr/share/snmp/mibs/.foo\")
(run \"echo \\\"use_timezone=$NAGIOS_TIMEZONE\\\" >> ${NAGIOS_HOME}/etc/nagios.cfg && echo \\\"SetEnv TZ \\\\\\\"${NAGIOS_TIMEZONE}\\\\\\\"\\\" >> /etc/apache2/conf.d/nagios.conf\")
(run \"mkdir -p ${NAGIOS_HOME}/etc/conf.d && mkdir -p ${NAGIOS_HOME}/etc/monitor && ln -s /usr/share/snmp/mibs ${NAGIOS_HOME}/libexec/mibs\")
(run \"echo \\\"cfg_dir=${NAGIOS_HOME}/etc/conf.d\\\" >> ${NAGIOS_HOME}/etc/nagios.cfg\")
(run \"echo \\\"cfg_dir=${NAGIOS_HOME}/etc/monitor\\\" >> ${NAGIOS_HOME}/etc/nagios.cfg\")
(run \"download-mibs && echo \\\"mibs +ALL\\\" > /etc/snmp/snmp.conf\")
(run \"sed -i 's,/bin/mail,/usr/bin/mail,' /opt/nagios/etc/objects/commands.cfg &&   sed -i 's,/usr/usr,/usr,' /opt/nagios/etc/objects/commands.cfg\")
(run \"cp /etc/services /var/spool/postfix/etc/\")
(run \"mkdir -p /etc/sv/nagios && mkdir -p /etc/sv/apache && rm -rf /etc/sv/getty-5 && mkdir -p /etc/sv/postfix\")
(add \"nagios.init\" \"/etc/sv/nagios/run\")
(add \"apache.init\" \"/etc/sv/apache/run\")
(add \"postfix.init\" \"/etc/sv/postfix/run\")
(add \"postfix.stop\" \"/etc/sv/postfix/finish\")
(add \"start.sh\" \"/usr/local/bin/start_nagios\")
(env \"APACHE_LOCK_DIR\" \"/var/run\" \"\")
(env \"APACHE_LOG_DIR\" \"/var/log/apache2\" \"\")
(expose \"80\")
(volume \"/opt/nagios/var\" \"/opt/nagios/etc\" \"/opt/nagios/libexec\" \"/var/log/apache2\" \"/usr/share/snmp/mibs\")
(cmd \"/usr/local/bin/start_nagios\")
",
    ),
    (
        "docker",
        "# This file describes the standard way to build Docker, using docker
#
# Usage:
#
# # Assemble the full dev environment. This is slow the first time.
# docker build -t docker .
#
# # Mount your source in an interactive container for quick testing:
# docker run -v `pwd`:/go/src/github.com/docker/docker --privileged -i -t docker bash
#
# # Run the test suite:
# docker run --privileged docker hack/make.sh test-unit test-integration test-docker-py
#
# Note: AppArmor used to mess with privileged mode, but this is no longer
# the case. Therefore, you don't have to disable it anymore.
#

FROM\tubuntu:14.04
LABEL\tmaintainer\tTianon Gravi <admwiggin@gmail.com> (@tianon)

# Packaged dependencies
RUN\tapt-get update && DEBIAN_FRONTEND=noninteractive apt-get --no-install-recommends install -yq \\
\tapt-utils \\
\taufs-tools \\
\tautomake \\
\tbtrfs-tools \\
\tbuild-essential \\
\tcurl \\
\tdpkg-sig \\
\tgit \\
\tiptables \\
\tlibapparmor-dev \\
\tlibcap-dev \\
\tmercurial \\
\tpandoc \\
\tparallel \\
\treprepro \\
\truby1.9.1 \\
\truby1.9.1-dev \\
\ts3cmd=1.1.0* \\
\t--no-install-recommends

# Get lvm2 source for compiling statically
RUN\tgit clone --no-checkout https://git.fedorahosted.org/git/lvm2.git /usr/local/lvm2 && cd /usr/local/lvm2 && git checkout -q v2_02_103
# see https://git.fedorahosted.org/cgit/lvm2.git/refs/tags for release tags
# note: we don't use \"git clone -b\" above because it then spews big nasty warnings about 'detached HEAD' state that we can't silence as easily as we can silence them using \"git checkout\" directly

# Compile and install lvm2
RUN\tcd /usr/local/lvm2 && ./configure --enable-static_link && make device-mapper && make install_device-mapper
# see https://git.fedorahosted.org/cgit/lvm2.git/tree/INSTALL

# Install Go
RUN\tcurl -sSL https://golang.org/dl/go1.3.src.tar.gz | tar -v -C /usr/local -xz
ENV\tPATH\t/usr/local/go/bin:$PATH
ENV\tGOPATH\t/go:/go/src/github.com/docker/docker/vendor
RUN\tcd /usr/local/go/src && ./make.bash --no-clean 2>&1

# Compile Go for cross compilation
ENV\tDOCKER_CROSSPLATFORMS\t\\
\tlinux/386 linux/arm \\
\tdarwin/amd64 darwin/386 \\
\tfreebsd/amd64 freebsd/386 freebsd/arm
# (set an explicit GOARM of 5 for maximum compatibility)
ENV\tGOARM\t5
RUN\tcd /usr/local/go/src && bash -xc 'for platform in $DOCKER_CROSSPLATFORMS; do GOOS=${platform%/*} GOARCH=${platform##*/} ./make.bash --no-clean 2>&1; done'

# Grab Go's cover tool for dead-simple code coverage testing
RUN\tgo get golang.org/x/tools/cmd/cover

# TODO replace FPM with some very minimal debhelper stuff
RUN\tgem install --no-rdoc --no-ri fpm --version 1.0.2

# Get the \"busybox\" image source so we can build locally instead of pulling
RUN\tgit clone -b buildroot-2014.02 https://github.com/jpetazzo/docker-busybox.git /docker-busybox

# Setup s3cmd config
RUN\t/bin/echo -e '[default]\\naccess_key=$AWS_ACCESS_KEY\\nsecret_key=$AWS_SECRET_KEY' > /.s3cfg

# Set user.email so crosbymichael's in-container merge commits go smoothly
RUN\tgit config --global user.email 'docker-dummy@example.com'

# Add an unprivileged user to be used for tests which need it
RUN groupadd -r docker
RUN useradd --create-home --gid docker unprivilegeduser

VOLUME\t/var/lib/docker
WORKDIR\t/go/src/github.com/docker/docker
ENV\tDOCKER_BUILDTAGS\tapparmor selinux

# Wrap all commands in the \"docker-in-docker\" script to allow nested containers
ENTRYPOINT\t[\"hack/dind\"]

# Upload docker source
COPY\t.\t/go/src/github.com/docker/docker
",
        "(from \"ubuntu:14.04\")
(label \"maintainer\" \"Tianon Gravi <admwiggin@gmail.com> (@tianon)\" \"\")
(run \"apt-get update && DEBIAN_FRONTEND=noninteractive apt-get --no-install-recommends install -yq \\tapt-utils \\taufs-tools \\tautomake \\tbtrfs-tools \\tbuild-essential \\tcurl \\tdpkg-sig \\tgit \\tiptables \\tlibapparmor-dev \\tlibcap-dev \\tmercurial \\tpandoc \\tparallel \\treprepro \\truby1.9.1 \\truby1.9.1-dev \\ts3cmd=1.1.0* \\t--no-install-recommends\")
(run \"git clone --no-checkout https://git.fedorahosted.org/git/lvm2.git /usr/local/lvm2 && cd /usr/local/lvm2 && git checkout -q v2_02_103\")
(run \"cd /usr/local/lvm2 && ./configure --enable-static_link && make device-mapper && make install_device-mapper\")
(run \"curl -sSL https://golang.org/dl/go1.3.src.tar.gz | tar -v -C /usr/local -xz\")
(env \"PATH\" \"/usr/local/go/bin:$PATH\" \"\")
(env \"GOPATH\" \"/go:/go/src/github.com/docker/docker/vendor\" \"\")
(run \"cd /usr/local/go/src && ./make.bash --no-clean 2>&1\")
(env \"DOCKER_CROSSPLATFORMS\" \"linux/386 linux/arm \\tdarwin/amd64 darwin/386 \\tfreebsd/amd64 freebsd/386 freebsd/arm\" \"\")
(env \"GOARM\" \"5\" \"\")
(run \"cd /usr/local/go/src && bash -xc 'for platform in $DOCKER_CROSSPLATFORMS; do GOOS=${platform%/*} GOARCH=${platform##*/} ./make.bash --no-clean 2>&1; done'\")
(run \"go get golang.org/x/tools/cmd/cover\")
(run \"gem install --no-rdoc --no-ri fpm --version 1.0.2\")
(run \"git clone -b buildroot-2014.02 https://github.com/jpetazzo/docker-busybox.git /docker-busybox\")
(run \"/bin/echo -e '[default]\\\\naccess_key=$AWS_ACCESS_KEY\\\\nsecret_key=$AWS_SECRET_KEY' > /.s3cfg\")
(run \"git config --global user.email 'docker-dummy@example.com'\")
(run \"groupadd -r docker\")
(run \"useradd --create-home --gid docker unprivilegeduser\")
(volume \"/var/lib/docker\")
(workdir \"/go/src/github.com/docker/docker\")
(env \"DOCKER_BUILDTAGS\" \"apparmor selinux\" \"\")
(entrypoint \"hack/dind\")
(copy \".\" \"/go/src/github.com/docker/docker\")
",
    ),
    (
        "env",
        "FROM ubuntu
ENV name value
ENV name=value
ENV name=value name2=value2
ENV name=\"value value1\"
ENV name=value\\ value2
ENV name=\"value'quote space'value2\"
ENV name='value\"double quote\"value2'
ENV name=value\\ value2 name2=value2\\ value3
ENV name=\"a\\\"b\"
ENV name=\"a\\'b\"
ENV name='a\\'b'
ENV name='a\\'b''
ENV name='a\\\"b'
ENV name=\"''\"
# don't put anything after the next line - it must be the last line of the
# Dockerfile and it must end with \\
ENV name=value \\
    name1=value1 \\
    name2=\"value2a \\
           value2b\" \\
    name3=\"value3a\\n\\\"value3b\\\"\" \\
\tname4=\"value4a\\\\nvalue4b\" \\
",
        "(from \"ubuntu\")
(env \"name\" \"value\" \"\")
(env \"name\" \"value\" \"=\")
(env \"name\" \"value\" \"=\" \"name2\" \"value2\" \"=\")
(env \"name\" \"\\\"value value1\\\"\" \"=\")
(env \"name\" \"value\\\\ value2\" \"=\")
(env \"name\" \"\\\"value'quote space'value2\\\"\" \"=\")
(env \"name\" \"'value\\\"double quote\\\"value2'\" \"=\")
(env \"name\" \"value\\\\ value2\" \"=\" \"name2\" \"value2\\\\ value3\" \"=\")
(env \"name\" \"\\\"a\\\\\\\"b\\\"\" \"=\")
(env \"name\" \"\\\"a\\\\'b\\\"\" \"=\")
(env \"name\" \"'a\\\\'b'\" \"=\")
(env \"name\" \"'a\\\\'b''\" \"=\")
(env \"name\" \"'a\\\\\\\"b'\" \"=\")
(env \"name\" \"\\\"''\\\"\" \"=\")
(env \"name\" \"value\" \"=\" \"name1\" \"value1\" \"=\" \"name2\" \"\\\"value2a            value2b\\\"\" \"=\" \"name3\" \"\\\"value3a\\\\n\\\\\\\"value3b\\\\\\\"\\\"\" \"=\" \"name4\" \"\\\"value4a\\\\\\\\nvalue4b\\\"\" \"=\")
",
    ),
    (
        "escape",
        "#escape = `

FROM image
LABEL maintainer foo@bar.com
ENV GOPATH `
\\go",
        "(from \"image\")
(label \"maintainer\" \"foo@bar.com\" \"\")
(env \"GOPATH\" \"\\\\go\" \"\")
",
    ),
    (
        "escape-after-comment",
        "# Comment here. Should not be looking for the following parser directive.
# Hence the following line will be ignored, and the subsequent backslash
# continuation will be the default.
# escape = `

FROM image
LABEL maintainer foo@bar.com
ENV GOPATH \\
\\go",
        "(from \"image\")
(label \"maintainer\" \"foo@bar.com\" \"\")
(env \"GOPATH\" \"\\\\go\" \"\")
",
    ),
    (
        "escape-nonewline",
        "# escape = `
# There is no white space line after the directives. This still succeeds, but goes
# against best practices.
FROM image
LABEL maintainer foo@bar.com
ENV GOPATH `
\\go
",
        "(from \"image\")
(label \"maintainer\" \"foo@bar.com\" \"\")
(env \"GOPATH\" \"\\\\go\" \"\")
",
    ),
    (
        "escape-with-syntax",
        "# syntax = docker/dockerfile
# escape = `

FROM `
    image
",
        "(from \"image\")
",
    ),
    (
        "escapes",
        "FROM ubuntu:14.04
LABEL maintainer Erik \\\\Hollensbe <erik@hollensbe.org>\\\"

RUN apt-get \\update && \\
  apt-get \\\"install znc -y
ADD \\conf\\\\\" /.znc

RUN foo \\

bar \\

baz

CMD [ \"\\/usr\\\\\\\"/bin/znc\", \"-f\", \"-r\" ]
",
        "(from \"ubuntu:14.04\")
(label \"maintainer\" \"Erik \\\\\\\\Hollensbe <erik@hollensbe.org>\\\\\\\"\" \"\")
(run \"apt-get \\\\update &&   apt-get \\\\\\\"install znc -y\")
(add \"\\\\conf\\\\\\\\\\\"\" \"/.znc\")
(run \"foo bar baz\")
(cmd \"/usr\\\\\\\"/bin/znc\" \"-f\" \"-r\")
",
    ),
    (
        "flags",
        "FROM scratch
COPY foo /tmp/
COPY --user=me foo /tmp/
COPY --doit=true foo /tmp/
COPY --user=me --doit=true foo /tmp/
COPY --doit=true -- foo /tmp/
COPY -- foo /tmp/
CMD --doit [ \"a\", \"b\" ]
CMD --doit=true -- [ \"a\", \"b\" ]
CMD --doit -- [ ]
",
        "(from \"scratch\")
(copy \"foo\" \"/tmp/\")
(copy [\"--user=me\"] \"foo\" \"/tmp/\")
(copy [\"--doit=true\"] \"foo\" \"/tmp/\")
(copy [\"--user=me\" \"--doit=true\"] \"foo\" \"/tmp/\")
(copy [\"--doit=true\"] \"foo\" \"/tmp/\")
(copy \"foo\" \"/tmp/\")
(cmd [\"--doit\"] \"a\" \"b\")
(cmd [\"--doit=true\"] \"a\" \"b\")
(cmd [\"--doit\"])
",
    ),
    (
        "health",
        "FROM debian
ADD check.sh main.sh /app/
CMD /app/main.sh
HEALTHCHECK
HEALTHCHECK --interval=5s --timeout=3s --retries=3 \\
  CMD /app/check.sh --quiet
HEALTHCHECK CMD
HEALTHCHECK   CMD   a b
HEALTHCHECK --timeout=3s CMD [\"foo\"]
HEALTHCHECK CONNECT TCP 7000
HEALTHCHECK --start-period=0s --start-interval=0s --interval=5s --timeout=0s --retries=0 CMD [\"foo\"]
",
        "(from \"debian\")
(add \"check.sh\" \"main.sh\" \"/app/\")
(cmd \"/app/main.sh\")
(healthcheck)
(healthcheck [\"--interval=5s\" \"--timeout=3s\" \"--retries=3\"] \"CMD\" \"/app/check.sh --quiet\")
(healthcheck \"CMD\")
(healthcheck \"CMD\" \"a b\")
(healthcheck [\"--timeout=3s\"] \"CMD\" \"foo\")
(healthcheck \"CONNECT\" \"TCP 7000\")
(healthcheck [\"--start-period=0s\" \"--start-interval=0s\" \"--interval=5s\" \"--timeout=0s\" \"--retries=0\"] \"CMD\" \"foo\")
",
    ),
    (
        "influxdb",
        "FROM ubuntu:14.04

RUN apt-get update && apt-get install wget -y
RUN wget http://s3.amazonaws.com/influxdb/influxdb_latest_amd64.deb
RUN dpkg -i influxdb_latest_amd64.deb
RUN rm -r /opt/influxdb/shared

VOLUME /opt/influxdb/shared

CMD /usr/bin/influxdb --pidfile /var/run/influxdb.pid -config /opt/influxdb/shared/config.toml

EXPOSE 8083
EXPOSE 8086
EXPOSE 8090
EXPOSE 8099
",
        "(from \"ubuntu:14.04\")
(run \"apt-get update && apt-get install wget -y\")
(run \"wget http://s3.amazonaws.com/influxdb/influxdb_latest_amd64.deb\")
(run \"dpkg -i influxdb_latest_amd64.deb\")
(run \"rm -r /opt/influxdb/shared\")
(volume \"/opt/influxdb/shared\")
(cmd \"/usr/bin/influxdb --pidfile /var/run/influxdb.pid -config /opt/influxdb/shared/config.toml\")
(expose \"8083\")
(expose \"8086\")
(expose \"8090\")
(expose \"8099\")
",
    ),
    (
        "jeztah-invalid-json-json-inside-string",
        "CMD '[\"echo\", \"Well, JSON in a string is JSON too?\"]'
",
        "(cmd \"'[\\\"echo\\\", \\\"Well, JSON in a string is JSON too?\\\"]'\")
",
    ),
    (
        "jeztah-invalid-json-json-inside-string-double",
        "CMD \"[\\\"echo\\\", \\\"Phew, I just managed to escaped those double quotes\\\"]\"
",
        "(cmd \"\\\"[\\\\\\\"echo\\\\\\\", \\\\\\\"Phew, I just managed to escaped those double quotes\\\\\\\"]\\\"\")
",
    ),
    (
        "jeztah-invalid-json-single-quotes",
        "CMD ['echo','single quotes are invalid JSON']
",
        "(cmd \"['echo','single quotes are invalid JSON']\")
",
    ),
    (
        "jeztah-invalid-json-unterminated-bracket",
        "CMD [\"echo\", \"Please, close the brackets when you're done\"
",
        "(cmd \"[\\\"echo\\\", \\\"Please, close the brackets when you're done\\\"\")
",
    ),
    (
        "jeztah-invalid-json-unterminated-string",
        "CMD [\"echo\", \"look ma, no quote!]
",
        "(cmd \"[\\\"echo\\\", \\\"look ma, no quote!]\")
",
    ),
    (
        "json",
        "CMD []
CMD [\"\"]
CMD [\"a\"]
CMD [\"a\",\"b\"]
CMD [ \"a\", \"b\" ]
CMD [\t\"a\",\t\"b\"\t]
CMD\t[\t\"a\",\t\"b\"\t]\t
CMD [\"abc 123\", \"♥\", \"☃\", \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0000\"]
",
        "(cmd)
(cmd \"\")
(cmd \"a\")
(cmd \"a\" \"b\")
(cmd \"a\" \"b\")
(cmd \"a\" \"b\")
(cmd \"a\" \"b\")
(cmd \"abc 123\" \"♥\" \"☃\" \"\\\" \\\\ / \\b \\f \\n \\r \\t \\x00\")
",
    ),
    (
        "kartar-entrypoint-oddities",
        "FROM ubuntu:14.04
LABEL maintainer James Turnbull \"james@example.com\"
ENV REFRESHED_AT 2014-06-01
RUN apt-get update
RUN apt-get --no-install-recommends install -y redis-server redis-tools
EXPOSE 6379
ENTRYPOINT [ \"/usr/bin/redis-server\" ]
",
        "(from \"ubuntu:14.04\")
(label \"maintainer\" \"James Turnbull \\\"james@example.com\\\"\" \"\")
(env \"REFRESHED_AT\" \"2014-06-01\" \"\")
(run \"apt-get update\")
(run \"apt-get --no-install-recommends install -y redis-server redis-tools\")
(expose \"6379\")
(entrypoint \"/usr/bin/redis-server\")
",
    ),
    (
        "lk4d4-the-edge-case-generator",
        "FROM busybox:buildroot-2014.02

LABEL maintainer docker <docker@docker.io>

ONBUILD RUN [\"echo\", \"test\"]
ONBUILD RUN echo test
ONBUILD COPY . /


# RUN Commands \\
# linebreak in comment \\
RUN [\"ls\", \"-la\"]
RUN [\"echo\", \"'1234'\"]
RUN echo \"1234\"
RUN echo 1234
RUN echo '1234' && \\
    echo \"456\" && \\
    echo 789
RUN    sh -c 'echo root:testpass \\
        > /tmp/passwd'
RUN mkdir -p /test /test2 /test3/test

# ENV \\
ENV SCUBA 1 DUBA 3
ENV SCUBA \"1 DUBA 3\"

# CMD \\
CMD [\"echo\", \"test\"]
CMD echo test
CMD echo \"test\"
CMD echo 'test'
CMD echo 'test' | wc -

#EXPOSE\\
EXPOSE 3000
EXPOSE 9000 5000 6000

USER docker
USER docker:root

VOLUME [\"/test\"]
VOLUME [\"/test\", \"/test2\"]
VOLUME /test3

WORKDIR /test

ADD . /
COPY . copy
",
        "(from \"busybox:buildroot-2014.02\")
(label \"maintainer\" \"docker <docker@docker.io>\" \"\")
(onbuild (run \"echo\" \"test\"))
(onbuild (run \"echo test\"))
(onbuild (copy \".\" \"/\"))
(run \"ls\" \"-la\")
(run \"echo\" \"'1234'\")
(run \"echo \\\"1234\\\"\")
(run \"echo 1234\")
(run \"echo '1234' &&     echo \\\"456\\\" &&     echo 789\")
(run \"sh -c 'echo root:testpass         > /tmp/passwd'\")
(run \"mkdir -p /test /test2 /test3/test\")
(env \"SCUBA\" \"1 DUBA 3\" \"\")
(env \"SCUBA\" \"\\\"1 DUBA 3\\\"\" \"\")
(cmd \"echo\" \"test\")
(cmd \"echo test\")
(cmd \"echo \\\"test\\\"\")
(cmd \"echo 'test'\")
(cmd \"echo 'test' | wc -\")
(expose \"3000\")
(expose \"9000\" \"5000\" \"6000\")
(user \"docker\")
(user \"docker:root\")
(volume \"/test\")
(volume \"/test\" \"/test2\")
(volume \"/test3\")
(workdir \"/test\")
(add \".\" \"/\")
(copy \".\" \"copy\")
",
    ),
    (
        "mail",
        "FROM ubuntu:14.04

RUN apt-get update -qy && apt-get install mutt offlineimap vim-nox abook elinks curl tmux cron zsh -y
ADD .muttrc /
ADD .offlineimaprc /
ADD .tmux.conf /
ADD mutt /.mutt
ADD vim /.vim
ADD vimrc /.vimrc
ADD crontab /etc/crontab
RUN chmod 644 /etc/crontab
RUN mkdir /Mail
RUN mkdir /.offlineimap
RUN echo \"export TERM=screen-256color\" >/.zshenv

CMD setsid cron; tmux -2
",
        "(from \"ubuntu:14.04\")
(run \"apt-get update -qy && apt-get install mutt offlineimap vim-nox abook elinks curl tmux cron zsh -y\")
(add \".muttrc\" \"/\")
(add \".offlineimaprc\" \"/\")
(add \".tmux.conf\" \"/\")
(add \"mutt\" \"/.mutt\")
(add \"vim\" \"/.vim\")
(add \"vimrc\" \"/.vimrc\")
(add \"crontab\" \"/etc/crontab\")
(run \"chmod 644 /etc/crontab\")
(run \"mkdir /Mail\")
(run \"mkdir /.offlineimap\")
(run \"echo \\\"export TERM=screen-256color\\\" >/.zshenv\")
(cmd \"setsid cron; tmux -2\")
",
    ),
    (
        "multiple-volumes",
        "FROM foo

VOLUME /opt/nagios/var /opt/nagios/etc /opt/nagios/libexec /var/log/apache2 /usr/share/snmp/mibs
",
        "(from \"foo\")
(volume \"/opt/nagios/var\" \"/opt/nagios/etc\" \"/opt/nagios/libexec\" \"/var/log/apache2\" \"/usr/share/snmp/mibs\")
",
    ),
    (
        "mumble",
        "FROM ubuntu:14.04

RUN apt-get update && apt-get install libcap2-bin mumble-server -y

ADD ./mumble-server.ini /etc/mumble-server.ini

CMD /usr/sbin/murmurd
",
        "(from \"ubuntu:14.04\")
(run \"apt-get update && apt-get install libcap2-bin mumble-server -y\")
(add \"./mumble-server.ini\" \"/etc/mumble-server.ini\")
(cmd \"/usr/sbin/murmurd\")
",
    ),
    (
        "nginx",
        "FROM ubuntu:14.04
LABEL maintainer Erik Hollensbe <erik@hollensbe.org>

RUN apt-get update && apt-get install nginx-full -y
RUN rm -rf /etc/nginx
ADD etc /etc/nginx
RUN chown -R root:root /etc/nginx
RUN /usr/sbin/nginx -qt
RUN mkdir /www

CMD [\"/usr/sbin/nginx\"]

VOLUME /www
EXPOSE 80
",
        "(from \"ubuntu:14.04\")
(label \"maintainer\" \"Erik Hollensbe <erik@hollensbe.org>\" \"\")
(run \"apt-get update && apt-get install nginx-full -y\")
(run \"rm -rf /etc/nginx\")
(add \"etc\" \"/etc/nginx\")
(run \"chown -R root:root /etc/nginx\")
(run \"/usr/sbin/nginx -qt\")
(run \"mkdir /www\")
(cmd \"/usr/sbin/nginx\")
(volume \"/www\")
(expose \"80\")
",
    ),
    (
        "tf2",
        "FROM ubuntu:12.04

EXPOSE 27015
EXPOSE 27005
EXPOSE 26901
EXPOSE 27020

RUN apt-get update && apt-get install libc6-dev-i386 curl unzip -y
RUN mkdir -p /steam
RUN curl http://media.steampowered.com/client/steamcmd_linux.tar.gz | tar vxz -C /steam
ADD ./script /steam/script
RUN /steam/steamcmd.sh +runscript /steam/script
RUN curl http://mirror.pointysoftware.net/alliedmodders/mmsource-1.10.0-linux.tar.gz | tar vxz -C /steam/tf2/tf
RUN curl http://mirror.pointysoftware.net/alliedmodders/sourcemod-1.5.3-linux.tar.gz | tar vxz -C /steam/tf2/tf
ADD ./server.cfg /steam/tf2/tf/cfg/server.cfg
ADD ./ctf_2fort.cfg /steam/tf2/tf/cfg/ctf_2fort.cfg
ADD ./sourcemod.cfg /steam/tf2/tf/cfg/sourcemod/sourcemod.cfg
RUN rm -r /steam/tf2/tf/addons/sourcemod/configs
ADD ./configs /steam/tf2/tf/addons/sourcemod/configs
RUN mkdir -p /steam/tf2/tf/addons/sourcemod/translations/en
RUN cp /steam/tf2/tf/addons/sourcemod/translations/*.txt /steam/tf2/tf/addons/sourcemod/translations/en

CMD cd /steam/tf2 && ./srcds_run -port 27015 +ip 0.0.0.0 +map ctf_2fort -autoupdate -steam_dir /steam -steamcmd_script /steam/script +tf_bot_quota 12 +tf_bot_quota_mode fill
",
        "(from \"ubuntu:12.04\")
(expose \"27015\")
(expose \"27005\")
(expose \"26901\")
(expose \"27020\")
(run \"apt-get update && apt-get install libc6-dev-i386 curl unzip -y\")
(run \"mkdir -p /steam\")
(run \"curl http://media.steampowered.com/client/steamcmd_linux.tar.gz | tar vxz -C /steam\")
(add \"./script\" \"/steam/script\")
(run \"/steam/steamcmd.sh +runscript /steam/script\")
(run \"curl http://mirror.pointysoftware.net/alliedmodders/mmsource-1.10.0-linux.tar.gz | tar vxz -C /steam/tf2/tf\")
(run \"curl http://mirror.pointysoftware.net/alliedmodders/sourcemod-1.5.3-linux.tar.gz | tar vxz -C /steam/tf2/tf\")
(add \"./server.cfg\" \"/steam/tf2/tf/cfg/server.cfg\")
(add \"./ctf_2fort.cfg\" \"/steam/tf2/tf/cfg/ctf_2fort.cfg\")
(add \"./sourcemod.cfg\" \"/steam/tf2/tf/cfg/sourcemod/sourcemod.cfg\")
(run \"rm -r /steam/tf2/tf/addons/sourcemod/configs\")
(add \"./configs\" \"/steam/tf2/tf/addons/sourcemod/configs\")
(run \"mkdir -p /steam/tf2/tf/addons/sourcemod/translations/en\")
(run \"cp /steam/tf2/tf/addons/sourcemod/translations/*.txt /steam/tf2/tf/addons/sourcemod/translations/en\")
(cmd \"cd /steam/tf2 && ./srcds_run -port 27015 +ip 0.0.0.0 +map ctf_2fort -autoupdate -steam_dir /steam -steamcmd_script /steam/script +tf_bot_quota 12 +tf_bot_quota_mode fill\")
",
    ),
    (
        "trailing-backslash",
        "# https://github.com/docker/for-win/issues/5254

FROM hello-world

ENV A path
ENV B another\\\\path
ENV C trailing\\\\backslash\\\\
ENV D This should not be appended to C
ENV E hello\\
\\
world
ENV F hello\\
 \\
world
ENV G hello \\
\\
world
",
        "(from \"hello-world\")
(env \"A\" \"path\" \"\")
(env \"B\" \"another\\\\\\\\path\" \"\")
(env \"C\" \"trailing\\\\\\\\backslash\\\\\\\\\" \"\")
(env \"D\" \"This should not be appended to C\" \"\")
(env \"E\" \"helloworld\" \"\")
(env \"F\" \"hello world\" \"\")
(env \"G\" \"hello world\" \"\")
",
    ),
    (
        "weechat",
        "FROM ubuntu:14.04

RUN apt-get update -qy && apt-get install tmux zsh weechat-curses -y

ADD .weechat /.weechat
ADD .tmux.conf /
RUN echo \"export TERM=screen-256color\" >/.zshenv

CMD zsh -c weechat
",
        "(from \"ubuntu:14.04\")
(run \"apt-get update -qy && apt-get install tmux zsh weechat-curses -y\")
(add \".weechat\" \"/.weechat\")
(add \".tmux.conf\" \"/\")
(run \"echo \\\"export TERM=screen-256color\\\" >/.zshenv\")
(cmd \"zsh -c weechat\")
",
    ),
    (
        "znc",
        "FROM ubuntu:14.04
LABEL maintainer Erik Hollensbe <erik@hollensbe.org>

RUN apt-get update && apt-get install znc -y
ADD conf /.znc

CMD [ \"/usr/bin/znc\", \"-f\", \"-r\" ]
",
        "(from \"ubuntu:14.04\")
(label \"maintainer\" \"Erik Hollensbe <erik@hollensbe.org>\" \"\")
(run \"apt-get update && apt-get install znc -y\")
(add \"conf\" \"/.znc\")
(cmd \"/usr/bin/znc\" \"-f\" \"-r\")
",
    ),
];

    const TESTFILE_LINE: &str = "# ESCAPE=\\



FROM brimstone/ubuntu:14.04


# TORUN -v /var/run/docker.sock:/var/run/docker.sock


ENV GOPATH \\
/go



# Install the packages we need, clean up after them and us
RUN apt-get update \\
\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.clean \\


    && apt-get --no-install-recommends install -y git golang ca-certificates \\
    && apt-get clean \\
    && rm -rf /var/lib/apt/lists \\

\t&& go get -v github.com/brimstone/consuldock \\
    && mv $GOPATH/bin/consuldock /usr/local/bin/consuldock \\

\t&& dpkg -l | awk '/^ii/ {print $2}' > /tmp/dpkg.dirty \\
\t&& apt-get remove --purge -y $(diff /tmp/dpkg.clean /tmp/dpkg.dirty | awk '/^>/ {print $2}') \\
\t&& rm /tmp/dpkg.* \\
\t&& rm -rf $GOPATH




";
}
