//! The hoist binary: parses arguments, runs the library, prints results and maps errors to
//! exit codes (0 ok, 1 input or remote said no, 2 internal error, 3 a policy gate said no).

mod cli;

/// glibc's and musl's malloc are a measurable part of a warm build (many small path strings).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

fn main() -> ExitCode {
    if cli::credential_helper::invoked_as_helper() {
        return cli::credential_helper::main();
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; bad usage is the user's input (1).
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let cli::Command::Build(args) = &cli.command
        && cli::build::runs_in_user_namespace(args)
    {
        match hoist::build::userns::enter() {
            Ok(hoist::build::userns::Entered::Parent(code)) => return ExitCode::from(code),
            Ok(hoist::build::userns::Entered::Continue) => {}
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(e.exit_code() as u8);
            }
        }
    }
    init_logging(cli.verbose);
    let json = cli.json;
    let reporter: Arc<dyn hoist::progress::Reporter> =
        Arc::from(cli::progress::reporter(if json {
            cli::progress::ProgressMode::Quiet
        } else {
            cli.progress
        }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let finished = runtime.block_on(async {
        // Installed before the command starts: its spawned uploads may run before the
        // command's own future yields for the first time.
        let interrupted = interrupted();
        tokio::select! {
            result = cli::run(cli, reporter) => Some(result),
            () = interrupted => None,
        }
    });
    let Some(result) = finished else {
        // The command's future is dropped: nothing more is written. Manifests go last and
        // each is one PUT, so every tag written names a whole image.
        eprintln!(
            "error: interrupted: stopped before the next write (tags already pushed stay; press Ctrl-C again to quit at once)"
        );
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        return ExitCode::from(130);
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let hint = e.hint();
            // Errors quote their input; a huge input must not make a huge line.
            let message = shortened(&e.to_string(), 1000);
            // A gate's or batch's command printed its own result already.
            if json && !matches!(e, hoist::Error::Gate { .. } | hoist::Error::PartlyFailed(_)) {
                #[derive(serde::Serialize)]
                struct ErrorOut {
                    error: String,
                    hint: Option<String>,
                    exit_code: i32,
                }
                println!(
                    "{}",
                    cli::json_result(&ErrorOut {
                        error: message.clone(),
                        hint: hint.clone(),
                        exit_code: e.exit_code(),
                    })
                );
            }
            eprintln!("error: {message}");
            if let Some(hint) = hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// `text` cut to about `max` characters: its start and its end (where the reason usually is).
fn shortened(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max * 7 / 10).collect();
    let tail: String = text.chars().skip(count - max * 2 / 10).collect();
    format!(
        "{head}… ({} characters left out) …{tail}",
        count - head.chars().count() - tail.chars().count()
    )
}

/// The first SIGINT or SIGTERM; from then on either signal ends the process at once. The
/// handlers are installed when this is called, not when the future is first polled.
fn interrupted() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let signals = signal(SignalKind::interrupt())
        .and_then(|int| signal(SignalKind::terminate()).map(|term| (int, term)));
    async move {
        let Ok((mut int, mut term)) = signals else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        // SAFETY: restoring the default action of two signals; no handler of ours runs after.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "hoist=debug,warn",
        _ => "hoist=trace,info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
