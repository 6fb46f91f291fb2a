//! `modelmon-tui`: parse the command line, start the monitor, map errors to exit codes.
//! Exit codes: 0 ok, 2 bad usage or config, 1 runtime failure.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use modelmon::cli::{Cli, Command};
use modelmon::runtime::{Hangups, Monitor, Source, exit_signal};
use modelmon::warnings::WarningLog;
use modelmon::{batch, table};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The full-screen display owns the terminal: a log line written there would tear it
    // (the header shows the broker's state instead, and `w` the warnings logged).
    // Redirect stderr to keep the logs.
    let quiet = cli.interactive() && std::io::stderr().is_terminal();
    // The agent has no display: its log is all it says, so it says when things change.
    let default_filter = if matches!(cli.command, Some(Command::Agent(_))) {
        "modelmon=info"
    } else {
        "modelmon=warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODELMON_LOG")
        .unwrap_or_else(|_| default_filter.into());
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(move || -> Box<dyn Write> {
            if quiet {
                Box::new(std::io::sink())
            } else {
                Box::new(std::io::stderr())
            }
        })
        .with_filter(filter);
    // Our own warnings also go where the display can show them, whatever MODELMON_LOG says.
    let shown = modelmon::warnings::Layer::new(WarningLog::global()).with_filter(
        tracing_subscriber::filter::Targets::new().with_target("modelmon", tracing::Level::WARN),
    );
    tracing_subscriber::registry()
        .with(stderr)
        .with(shown)
        .init();
    match &cli.command {
        Some(Command::CheckConfig { path }) => {
            return match cli.config_to_check(path.as_deref()) {
                Ok(path) => check_config(path),
                Err(e) => {
                    let _ = e.print();
                    ExitCode::from(2)
                }
            };
        }
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "modelmon-tui", &mut script);
            return print_all(&script);
        }
        Some(Command::Agent(args)) => return agent(&cli, args),
        Some(Command::Man) => {
            let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            let mut page = Vec::new();
            // Rendering into memory cannot fail.
            let _ = man.render(&mut page);
            return print_all(&page);
        }
        _ => {}
    }
    let cfg = match cli.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("modelmon-tui: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::Report(args)) = &cli.command {
        return modelmon::report::main(args, &cfg, cli.demo);
    }
    let web_options = match cli.web_options(&cfg) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("modelmon-tui: {e}");
            return ExitCode::from(2);
        }
    };
    // Refuse an exposed --serve before anything starts, so the refusal is all one sees.
    if let Some(addr) = cli.serve {
        if let Err(e) = modelmon::web::check_bind(addr, &web_options) {
            eprintln!("modelmon-tui: {e}");
            return ExitCode::from(2);
        }
    }
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
    match rt.block_on(run(&cli, &cfg, web_options)) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`| head`) is the reader saying it has seen enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelmon-tui: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(
    cli: &Cli,
    cfg: &modelmon::config::Config,
    web_options: modelmon::web::Options,
) -> std::io::Result<()> {
    let source = if cli.demo { Source::Demo } else { Source::Amqp };
    if cli.interactive() {
        let opts = modelmon::tui::Options::from_cli(cli).with_alert_rules(&cfg.alerts);
        // The store publishes a view per frame; the UI draws it only if it changed.
        let monitor = Monitor::start(cfg, source, opts.frame_period());
        let web = start_web(cli, &monitor, web_options.clone()).await?;
        let result = modelmon::tui::run(monitor.views.clone(), monitor.alerts.clone(), opts).await;
        if let Some(web) = web {
            web.stop();
        }
        monitor.shutdown().await;
        return result.map_err(std::io::Error::other);
    }
    // A service (headless, or --batch into a file) reloads its config on SIGHUP.
    let mut hangups = Hangups::new();
    if cli.headless {
        let monitor = Monitor::start(cfg, source, cli.interval);
        let web = start_web(cli, &monitor, web_options.clone()).await?;
        loop {
            tokio::select! {
                () = exit_signal() => break,
                () = hangups.next() => reload(cli, cfg, &monitor).await,
            }
        }
        if let Some(web) = web {
            web.stop();
        }
        monitor.shutdown().await;
        return Ok(());
    }
    let mut monitor = Monitor::start(cfg, source, cli.interval);
    let web = start_web(cli, &monitor, web_options.clone()).await?;
    let result = print_views(cli, cfg, &mut monitor, &mut hangups).await;
    if let Some(web) = web {
        web.stop();
    }
    // Every way out of the loop is a clean exit: the last snapshot is written first.
    monitor.shutdown().await;
    result
}

/// `--serve`: starts the web server on the monitor's views; says where on stderr
/// (unless the full-screen display owns the terminal).
async fn start_web(
    cli: &Cli,
    monitor: &Monitor,
    options: modelmon::web::Options,
) -> std::io::Result<Option<modelmon::web::Server>> {
    let Some(addr) = cli.serve else {
        return Ok(None);
    };
    let server = modelmon::web::serve(addr, monitor.views.clone(), options)
        .await
        .map_err(std::io::Error::other)?;
    if !cli.interactive() {
        eprintln!("modelmon-tui: serving on http://{}", server.local_addr);
    }
    tracing::info!("serving on http://{}", server.local_addr);
    Ok(Some(server))
}

async fn print_views(
    cli: &Cli,
    cfg: &modelmon::config::Config,
    monitor: &mut Monitor,
    hangups: &mut Hangups,
) -> std::io::Result<()> {
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
            () = exit_signal() => return Ok(()),
            () = hangups.next() => {
                reload(cli, cfg, monitor).await;
                continue;
            }
        }
        let view = monitor.views.borrow_and_update().clone();
        if cli.batch {
            batch::write_line_with_range(&mut out, &view, cli.range.as_ref())?;
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

/// SIGHUP: reads the config again, with the same command line over it. A bad file
/// leaves the running config as it is; either way one line on stderr says what happened.
async fn reload(cli: &Cli, running: &modelmon::config::Config, monitor: &Monitor) {
    match cli.resolve() {
        Ok(cfg) => {
            monitor.reload(&cfg).await;
            let later = cfg.needs_restart_for(running);
            let later = if later.is_empty() {
                String::new()
            } else {
                format!("; changes to {} apply at the next start", later.join(", "))
            };
            let (rules, hooks) = (cfg.alerts.rules.len(), cfg.notify.webhooks.len());
            eprintln!(
                "modelmon-tui: config reloaded: {rules} alert rule{}, {hooks} webhook{}{later}",
                if rules == 1 { "" } else { "s" },
                if hooks == 1 { "" } else { "s" },
            );
        }
        Err(e) => eprintln!("modelmon-tui: config not reloaded, the running one stays: {e}"),
    }
}

/// `check-config [PATH]` (or `--config PATH`): the same reading and checks as a start,
/// nothing else.
fn check_config(path: Option<&std::path::Path>) -> ExitCode {
    match modelmon::config::Config::load(path) {
        Ok((cfg, Some(path))) => {
            println!(
                "{}: valid ({} alert rule{}, {} webhook{})",
                path.display(),
                cfg.alerts.rules.len(),
                if cfg.alerts.rules.len() == 1 { "" } else { "s" },
                cfg.notify.webhooks.len(),
                if cfg.notify.webhooks.len() == 1 {
                    ""
                } else {
                    "s"
                },
            );
            ExitCode::SUCCESS
        }
        Ok((_, None)) => {
            println!("no config file at the default location: the defaults apply");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("modelmon-tui: {e}");
            ExitCode::from(2)
        }
    }
}

/// `agent`: `--config` and `--amqp` are the monitor's (global: before or after it).
fn agent(cli: &Cli, args: &modelmon::cli::AgentArgs) -> ExitCode {
    let result = modelmon::agent::Options::resolve(
        cli.config.as_deref(),
        cli.amqp.as_deref(),
        args.host.as_deref(),
        args.interval,
    )
    .and_then(modelmon::agent::main);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelmon-tui agent: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Writes generated text to stdout; a reader that has seen enough (`| head`) is fine.
fn print_all(bytes: &[u8]) -> ExitCode {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("modelmon-tui: {e}");
            ExitCode::from(1)
        }
        _ => ExitCode::SUCCESS,
    }
}
