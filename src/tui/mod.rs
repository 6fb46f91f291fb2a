//! The full-screen terminal UI.
//!
//! The loop waits on three things at once: terminal events, new views from the store,
//! and a frame tick. It never waits on ingest: the store publishes views on its own
//! schedule and the loop only takes the newest. A key is drawn at once; a new view is
//! drawn at the next tick, so `--fps` caps the redraw rate and an idle screen costs
//! nothing (the tick is disabled until something changed).

pub mod app;
pub(crate) mod format;
pub mod health;
pub(crate) mod own_usage;
pub mod range;
pub(crate) mod term;
pub mod theme;
pub mod views;

use std::time::Duration;

use crossterm::event::EventStream;
use futures_lite::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use app::{AppState, Outcome};
use health::Thresholds;
use own_usage::Sampler;
use theme::Theme;

use crate::alert::{AlertControl, Command};
use crate::live::Live;

/// How the UI runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Most redraws per second.
    pub fps: u32,
    pub theme: Theme,
    pub thresholds: Thresholds,
}

impl Options {
    /// The options the command line asks for, in this process's environment.
    pub fn from_cli(cli: &crate::cli::Cli) -> Self {
        Self {
            fps: cli.fps,
            theme: Theme::detect(cli.color, cli.ascii, |k| std::env::var(k).ok()),
            thresholds: Thresholds::default(),
        }
    }

    /// Colours from the alert rules every model gets (per-model overrides are left out:
    /// the columns share one scale). Disabled alerting keeps the defaults.
    #[must_use]
    pub fn with_alert_rules(mut self, section: &crate::alert::AlertsSection) -> Self {
        if section.enabled
            && let Ok(mut rules) = crate::alert::RuleSet::new(section)
        {
            // No model is named "": this is the base set every model starts from.
            self.thresholds = self.thresholds.with_rules(&rules.for_model(""));
        }
        self
    }

    /// Time between two frames.
    pub fn frame_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.fps.max(1)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    #[error("terminal: {0}")]
    Io(#[from] std::io::Error),
    #[error("the store stopped publishing views")]
    StoreStopped,
}

/// Runs the UI until the user quits or a signal arrives. The terminal is restored on
/// every way out. Silences and acknowledgements typed in the alerts pane go to `alerts`.
pub async fn run(
    views: watch::Receiver<Live>,
    alerts: AlertControl,
    opts: Options,
) -> Result<(), TuiError> {
    let mut session = term::Session::enter()?;
    let result = event_loop(&mut session, views, &alerts, opts).await;
    drop(session);
    result
}

async fn event_loop(
    session: &mut term::Session,
    mut views: watch::Receiver<Live>,
    alerts: &AlertControl,
    opts: Options,
) -> Result<(), TuiError> {
    let mut events = EventStream::new();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut tick = tokio::time::interval(opts.frame_period());
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let mut app = AppState::new(opts.thresholds, opts.theme);
    let mut sampler = Sampler::default();
    app.own = sampler.sample();
    let mut live = views.borrow_and_update().clone();
    let mut dirty = true;
    loop {
        tokio::select! {
            // Keys first: they are what the user is waiting for.
            biased;
            ev = events.next() => {
                let ev = match ev {
                    Some(ev) => ev?,
                    None => return Ok(()),
                };
                let outcome = app.handle(&ev, &live, session.size()?);
                send_commands(&mut app, alerts);
                match outcome {
                    Outcome::Quit => return Ok(()),
                    Outcome::Redraw => {
                        draw(session, &live, &mut app)?;
                        dirty = false;
                    }
                    Outcome::Ignored => {}
                }
            }
            _ = sigterm.recv() => return Ok(()),
            _ = sighup.recv() => return Ok(()),
            changed = views.changed() => {
                if changed.is_err() {
                    return Err(TuiError::StoreStopped);
                }
                live = views.borrow_and_update().clone();
                app.own = sampler.sample();
                // Paused: the frozen view stays on screen, so there is nothing to redraw.
                dirty |= !app.paused();
            }
            _ = tick.tick(), if dirty => {
                draw(session, &live, &mut app)?;
                dirty = false;
            }
        }
    }
}

/// Hands the commands the keys queued to the alert engine; they apply at the next view.
fn send_commands(app: &mut AppState, alerts: &AlertControl) {
    for cmd in app.take_commands() {
        let sent = match cmd {
            Command::Silence { target, for_ } => alerts.silence(target, for_),
            Command::Unsilence(target) => alerts.unsilence(target),
            Command::Acknowledge(key) => alerts.acknowledge(key),
        };
        if !sent {
            app.notice = Some("the alert engine did not take the command (stopped or busy)".into());
        }
    }
}

fn draw(session: &mut term::Session, live: &Live, app: &mut AppState) -> std::io::Result<()> {
    let shown = app.shown(live).clone();
    app.follow_alert(&shown);
    app.see_warnings(&shown);
    let view = app.shown(live);
    session
        .terminal()
        .draw(|frame| views::draw(frame, view, app))?;
    Ok(())
}
