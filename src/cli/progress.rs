//! How the binary shows the library's progress events: bars on a TTY, plain lines otherwise,
//! or nothing. Warnings are always shown.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use hoist::progress::{BlobOutcome, Event, Reporter};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Plain,
    Quiet,
}

pub fn reporter(mode: ProgressMode) -> Box<dyn Reporter> {
    match mode {
        ProgressMode::Auto if std::io::stderr().is_terminal() => Box::new(Bars::new()),
        ProgressMode::Auto | ProgressMode::Plain => Box::new(Plain {
            gitlab: std::env::var_os("GITLAB_CI").is_some(),
        }),
        ProgressMode::Quiet => Box::new(Quiet),
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn short(digest: &hoist::reference::Digest) -> &str {
    &digest.as_str()[..digest.as_str().len().min(19)]
}

/// The line for an event that is worth a line of its own, if any.
fn line(event: &Event) -> Option<String> {
    Some(match event {
        Event::BlobDone {
            digest,
            size,
            outcome,
            elapsed,
        } => match outcome {
            BlobOutcome::Exists => {
                format!("{}  {}  already present", short(digest), human_bytes(*size))
            }
            BlobOutcome::Mounted => format!("{}  {}  mounted", short(digest), human_bytes(*size)),
            BlobOutcome::Transferred => {
                let secs = elapsed.as_secs_f64().max(0.001);
                format!(
                    "{}  {}  copied in {:.1}s ({}/s)",
                    short(digest),
                    human_bytes(*size),
                    secs,
                    human_bytes((*size as f64 / secs) as u64)
                )
            }
        },
        Event::ManifestWritten { target, digest } => format!("wrote {target} ({digest})"),
        Event::Retrying {
            what,
            attempt,
            delay,
            reason,
        } => format!(
            "retrying {what} in {:.1}s (attempt {attempt} failed: {reason})",
            delay.as_secs_f64()
        ),
        Event::Warning(w) => format!("warning: {w}"),
        Event::Info(i) => i.clone(),
        Event::BlobStarted { .. }
        | Event::BlobProgress { .. }
        | Event::SectionStart { .. }
        | Event::SectionEnd { .. } => return None,
    })
}

/// Plain lines; in GitLab CI, stages become collapsible log sections.
struct Plain {
    gitlab: bool,
}

/// GitLab's section markers (`section_start:UNIX_TIME:NAME`, then the header).
fn gitlab_section(event: &Event) -> Option<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    match event {
        Event::SectionStart { id, title } => Some(format!(
            "\x1b[0Ksection_start:{now}:{id}[collapsed=false]\r\x1b[0K{title}"
        )),
        Event::SectionEnd { id } => Some(format!("\x1b[0Ksection_end:{now}:{id}\r\x1b[0K")),
        _ => None,
    }
}

impl Reporter for Plain {
    fn report(&self, event: Event) {
        let text = if self.gitlab {
            gitlab_section(&event).or_else(|| line(&event))
        } else {
            line(&event)
        };
        if let Some(text) = text {
            eprintln!("{text}");
        }
    }
}

struct Quiet;

impl Reporter for Quiet {
    fn report(&self, event: Event) {
        if let Event::Warning(w) = event {
            eprintln!("warning: {w}");
        }
    }
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
    style: ProgressStyle,
}

impl Bars {
    fn new() -> Self {
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
            style: ProgressStyle::with_template(
                "{msg:19} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
            )
            .expect("static template")
            .progress_chars("=> "),
        }
    }
}

impl Reporter for Bars {
    fn report(&self, event: Event) {
        let mut bars = self.bars.lock().expect("bar map lock");
        match &event {
            Event::BlobStarted { digest, size } => {
                let bar = self
                    .multi
                    .add(ProgressBar::new(*size).with_style(self.style.clone()));
                bar.set_message(short(digest).to_string());
                bars.insert(digest.to_string(), bar);
            }
            Event::BlobProgress { digest, bytes } => {
                if let Some(bar) = bars.get(digest.as_str()) {
                    bar.set_position(*bytes);
                }
            }
            Event::BlobDone { digest, .. } => {
                if let Some(bar) = bars.remove(digest.as_str()) {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }
        if let Some(line) = line(&event) {
            let _ = self.multi.println(line);
        }
    }
}
