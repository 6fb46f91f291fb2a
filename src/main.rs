//! `modelmon-tui`: parse the command line, start the monitor, map errors to exit codes.
//! Exit codes: 0 ok, 2 bad usage or config, 1 runtime failure.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use modelmon::cli::Cli;
use modelmon::runtime::{Monitor, Source};
use modelmon::{batch, table};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MODELMON_LOG")
                .unwrap_or_else(|_| "modelmon=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = match cli.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("modelmon-tui: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("modelmon-tui: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(&cli, &cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader saying it has seen enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelmon-tui: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: &Cli, cfg: &modelmon::config::Config) -> std::io::Result<()> {
    let source = if cli.demo { Source::Demo } else { Source::Amqp };
    let mut monitor = Monitor::start(cfg, source, cli.interval);
    let mut out = std::io::stdout().lock();
    let clear = !cli.batch && std::io::stdout().is_terminal();
    // The first view is the empty one the channel starts with; skip it.
    monitor.views.borrow_and_update();
    let mut printed = 0u64;
    loop {
        tokio::select! {
            changed = monitor.views.changed() => {
                if changed.is_err() {
                    return Err(std::io::Error::other("the store stopped"));
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let view = monitor.views.borrow_and_update().clone();
        if cli.batch {
            batch::write_line(&mut out, &view)?;
        } else {
            if clear {
                out.write_all(b"\x1b[H\x1b[2J")?;
            }
            out.write_all(table::render(&view).as_bytes())?;
            out.flush()?;
        }
        printed += 1;
        if cli.iterations.is_some_and(|n| printed >= n) {
            return Ok(());
        }
    }
}
