//! The `sessiond` binary: parse the command line, load the settings, run.
//! Every failure is one line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;
use sessiond::cli::{self, Cli, Command};
use sessiond::config::Config;
use sessiond::server::Application;
use sessiond::{log_line, log_writer};

/// mimalloc, not glibc's malloc: sled allocates for every node it reads,
/// and after a large load glibc's bins made each allocation a search.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log_writer = init_logging();
    let config = match Config::load(cli.config.as_deref(), &|k| std::env::var(k).ok()) {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        offline => cli::run(&config, offline).await.map_err(|e| e.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    app.run_until_stopped(stop_signal())
        .await
        .map_err(|e| e.to_string())
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("sessiond: {e}");
    ExitCode::FAILURE
}

/// Logs go to stderr through `log_writer`'s batching thread; the guard
/// writes what is left when `main` returns. Without that thread (out of
/// threads at start-up) lines go straight to stderr.
fn init_logging() -> Option<log_writer::FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .event_format(log_line::LogLine);
    match log_writer::spawn(std::io::stderr()) {
        Ok((writer, guard)) => {
            logs.with_writer(writer).init();
            Some(guard)
        }
        Err(_) => {
            logs.with_writer(std::io::stderr).init();
            None
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
