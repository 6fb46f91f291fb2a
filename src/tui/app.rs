//! The state of the UI and every key and mouse action as a pure transition of it.
//!
//! Nothing here draws or does I/O: the loop feeds events in, the views read the state
//! out, and the tests drive it directly.

use std::cmp::Ordering;
use std::time::Duration;

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::{Position, Rect};

use super::health::{Health, Thresholds};
use super::own_usage::OwnUsage;
use super::range::Range;
use super::theme::Theme;
use super::views::layout;
use crate::alert::{Alert, AlertKey, AlertPhase, Command, SilenceTarget};
use crate::live::Live;
use crate::store::view::ModelView;

/// What `x` (one alert) and `X` (its model) step through on repeated presses: silences
/// of growing length, then the silence lifted.
pub const SILENCE_STEPS: [Duration; 3] = [
    Duration::from_secs(15 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(4 * 3600),
];

/// Which screen fills the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Screen {
    #[default]
    Overview,
    Detail,
    Alerts,
    /// The monitor's own warnings, which the full screen keeps off stderr.
    Warnings,
}

/// The overview's sort column. Each has a natural order (see [`SortKey::natural`]);
/// `reversed` flips it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Worst first.
    #[default]
    Health,
    Name,
    Qps,
    P50,
    P95,
    P99,
    ErrorRate,
    ClientErrorRate,
    LastSeen,
}

impl SortKey {
    pub const ALL: [Self; 9] = [
        Self::Health,
        Self::Name,
        Self::Qps,
        Self::P50,
        Self::P95,
        Self::P99,
        Self::ErrorRate,
        Self::ClientErrorRate,
        Self::LastSeen,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Name => "name",
            Self::Qps => "qps",
            Self::P50 => "p50",
            Self::P95 => "p95",
            Self::P99 => "p99",
            Self::ErrorRate => "err%",
            Self::ClientErrorRate => "4xx%",
            Self::LastSeen => "seen",
        }
    }

    fn step(self, by: isize) -> Self {
        let i = Self::ALL.iter().position(|k| *k == self).unwrap_or(0) as isize;
        let n = Self::ALL.len() as isize;
        Self::ALL[(i + by).rem_euclid(n) as usize]
    }

    /// The figure this key sorts by, biggest first (stalest first for last seen);
    /// `None` when unknown. Health and name are compared by the caller.
    fn figure(self, m: &ModelView) -> Option<f64> {
        let s = &m.stats;
        match self {
            Self::Health | Self::Name => None,
            Self::Qps => Some(s.qps),
            Self::P50 => s.p50_ms,
            Self::P95 => s.p95_ms,
            Self::P99 => s.p99_ms,
            Self::ErrorRate => s.error_rate,
            Self::ClientErrorRate => s.client_error_rate,
            Self::LastSeen => m.last_seen_ms_ago.map(|v| v as f64),
        }
    }
}

/// Orders two figures biggest first, or smallest first when `reversed`; an unknown
/// figure goes last either way, since reversing is about the figures, not about
/// whether they are known.
fn by_figure(a: Option<f64>, b: Option<f64>, reversed: bool) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) if reversed => x.total_cmp(&y),
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Names A to Z whatever their case (`alpha` before `Zeta`), then byte order so that
/// names differing only in case still have a fixed order.
fn by_name(a: &str, b: &str) -> Ordering {
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
        .then_with(|| a.cmp(b))
}

/// What the loop should do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The state changed: draw it now.
    Redraw,
    /// Nothing changed.
    Ignored,
    Quit,
}

/// Everything the UI remembers between frames.
#[derive(Debug, Clone, Default)]
pub struct AppState {
    pub screen: Screen,
    pub help: bool,
    /// The selected model, by name, so the selection follows it when rows re-sort.
    pub selected: Option<String>,
    /// First overview row shown.
    pub offset: usize,
    pub sort: SortKey,
    pub reversed: bool,
    /// Case-insensitive substring of model names.
    pub filter: String,
    /// Keys go to the filter line.
    pub editing_filter: bool,
    pub range: Range,
    /// The view on screen while paused; data keeps flowing into the store meanwhile.
    pub frozen: Option<Live>,
    pub thresholds: Thresholds,
    pub theme: Theme,
    /// Sampled by the loop on every new view; shown in the header.
    pub own: OwnUsage,
    /// The selected alert of the alerts pane: its key and when its episode began (the
    /// resolved list can hold several episodes of one key). The engine re-sorts its
    /// alerts at every evaluation, so a row number would point at another alert.
    pub alert_selected: Option<(AlertKey, i64)>,
    /// The row the selected alert was last found at: the selection falls back to it
    /// (clamped) once that alert has left the list.
    pub alert_index: usize,
    /// The last silence typed and its step in [`SILENCE_STEPS`] (the length of the
    /// array means lifted), so pressing the key again moves to the next step.
    pub last_silence: Option<(SilenceTarget, usize)>,
    /// Commands for the alert engine, sent by the loop after each key.
    pub commands: Vec<Command>,
    /// What the last action did, shown in the footer until the next key.
    pub notice: Option<String>,
    /// How many of the monitor's warnings the warnings screen has shown: the header
    /// counts the ones logged since.
    pub warnings_seen: u64,
}

impl AppState {
    pub fn new(thresholds: Thresholds, theme: Theme) -> Self {
        Self {
            thresholds,
            theme,
            ..Self::default()
        }
    }

    pub fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// The view to draw: the frozen one while paused, else the live one.
    pub fn shown<'a>(&'a self, live: &'a Live) -> &'a Live {
        self.frozen.as_ref().unwrap_or(live)
    }

    /// The overview's rows: filtered by name, sorted by the sort key, ties by name.
    pub fn rows<'v>(&self, view: &'v Live) -> Vec<&'v ModelView> {
        let needle = self.filter.to_lowercase();
        // Health is judged once per model, not once per comparison.
        let mut rows: Vec<(&ModelView, Health)> = view
            .models
            .iter()
            .filter(|m| needle.is_empty() || m.model.to_lowercase().contains(&needle))
            .map(|m| (m, self.thresholds.health(m, &view.alerts)))
            .collect();
        rows.sort_by(|(a, ha), (b, hb)| {
            let o = match self.sort {
                // An idle model has no requests to judge: its health is unknown, so it
                // stays last when the order is reversed, as an unknown figure does.
                SortKey::Health => match (*ha == Health::Idle, *hb == Health::Idle) {
                    (false, false) if self.reversed => ha.cmp(hb),
                    (false, false) => hb.cmp(ha),
                    (idle_a, idle_b) => idle_a.cmp(&idle_b),
                },
                SortKey::Name => Ordering::Equal,
                k => by_figure(k.figure(a), k.figure(b), self.reversed),
            };
            o.then_with(|| {
                let o = by_name(&a.model, &b.model);
                if self.reversed && self.sort == SortKey::Name {
                    o.reverse()
                } else {
                    o
                }
            })
        });
        rows.into_iter().map(|(m, _)| m).collect()
    }

    /// Index of the selection among `rows`; the first row when the selection is not shown.
    pub fn selected_index(&self, rows: &[&ModelView]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        Some(
            self.selected
                .as_deref()
                .and_then(|s| rows.iter().position(|m| m.model == s))
                .unwrap_or(0),
        )
    }

    /// The alerts pane's rows: firing, then pending (as the engine orders them), then
    /// resolved in the last 24 h, newest first.
    pub fn alert_rows<'v>(&self, view: &'v Live) -> Vec<&'v Alert> {
        view.alerts
            .active
            .iter()
            .filter(|a| a.state == AlertPhase::Firing)
            .chain(
                view.alerts
                    .active
                    .iter()
                    .filter(|a| a.state != AlertPhase::Firing),
            )
            .chain(&view.alerts.recent)
            .collect()
    }

    /// The row of the selected alert among `rows`: where that alert is now, else the
    /// row it was last seen at, clamped to the list.
    pub fn selected_alert_index(&self, rows: &[&Alert]) -> Option<usize> {
        let last = rows.len().checked_sub(1)?;
        let found = self.alert_selected.as_ref().and_then(|(key, since)| {
            rows.iter().position(|a| {
                a.active_since_ms == *since && a.rule == key.rule && a.model == key.model
            })
        });
        Some(found.unwrap_or(self.alert_index.min(last)))
    }

    /// Called with each frame the alerts pane draws: once the selected alert has left the
    /// list, the cursor holds on to the alert now drawn at its row, so a key acts on what
    /// the user saw there even if the list re-sorts before the key.
    pub fn follow_alert(&mut self, view: &Live) {
        if self.screen != Screen::Alerts {
            return;
        }
        let rows = self.alert_rows(view);
        if let Some(at) = self.selected_alert_index(&rows) {
            self.select_alert(&rows, at);
        }
    }

    /// Selects the alert at row `at` of `rows` by what it is, not where it is.
    fn select_alert(&mut self, rows: &[&Alert], at: usize) {
        self.alert_index = at;
        self.alert_selected = rows.get(at).map(|a| (a.key(), a.active_since_ms));
    }

    /// Opens the alerts pane, holding on to the alert its cursor is on.
    fn open_alerts(&mut self, view: &Live) {
        self.screen = Screen::Alerts;
        self.follow_alert(view);
    }

    /// The commands queued since the last call.
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    /// The model the detail view shows.
    pub fn detail_model<'v>(&self, view: &'v Live) -> Option<&'v ModelView> {
        self.selected.as_deref().and_then(|s| view.model(s))
    }

    /// Handles one terminal event. `live` is the newest view, `size` the terminal's size.
    pub fn handle(&mut self, event: &Event, live: &Live, size: Rect) -> Outcome {
        match event {
            Event::Key(k) if k.kind != KeyEventKind::Release => self.on_key(*k, live, size),
            Event::Mouse(m) => self.on_mouse(*m, live, size),
            // A resize needs a redraw at the new size, nothing else.
            Event::Resize(..) => Outcome::Redraw,
            _ => Outcome::Ignored,
        }
    }

    pub fn on_key(&mut self, key: KeyEvent, live: &Live, size: Rect) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            return Outcome::Quit;
        }
        if self.editing_filter {
            return self.on_filter_key(key);
        }
        // A notice answers the key before; the next key makes it stale.
        let had_notice = self.notice.take().is_some();
        if self.help {
            if key.code == KeyCode::Char('q') {
                return Outcome::Quit;
            }
            // Any other key just closes the overlay, as in `less`.
            self.help = false;
            return Outcome::Redraw;
        }
        match key.code {
            KeyCode::Char('q') => return Outcome::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('p') => self.toggle_pause(live),
            KeyCode::Char('w') => self.screen = Screen::Warnings,
            _ => {
                let view = self.shown(live).clone();
                let outcome = match self.screen {
                    Screen::Overview => self.on_overview_key(key, &view, size),
                    Screen::Detail => self.on_detail_key(key, &view),
                    Screen::Alerts => self.on_alerts_key(key, &view),
                    Screen::Warnings => self.on_warnings_key(key),
                };
                return if had_notice { Outcome::Redraw } else { outcome };
            }
        }
        Outcome::Redraw
    }

    pub fn toggle_pause(&mut self, live: &Live) {
        self.frozen = match self.frozen {
            Some(_) => None,
            None => Some(live.clone()),
        };
    }

    fn on_filter_key(&mut self, key: KeyEvent) -> Outcome {
        match key.code {
            KeyCode::Enter => self.editing_filter = false,
            KeyCode::Esc => {
                self.editing_filter = false;
                self.filter.clear();
            }
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) if !c.is_control() => self.filter.push(c),
            _ => return Outcome::Ignored,
        }
        self.offset = 0;
        Outcome::Redraw
    }

    fn on_overview_key(&mut self, key: KeyEvent, view: &Live, size: Rect) -> Outcome {
        let page = layout::overview_rows(size).height.max(1) as isize;
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => self.move_by(view, 1, size),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(view, -1, size),
            KeyCode::PageDown => self.move_by(view, page, size),
            KeyCode::PageUp => self.move_by(view, -page, size),
            KeyCode::Char('g') | KeyCode::Home => self.move_by(view, isize::MIN / 2, size),
            KeyCode::Char('G') | KeyCode::End => self.move_by(view, isize::MAX / 2, size),
            KeyCode::Enter => return self.open_detail(view),
            KeyCode::Char('/') => self.editing_filter = true,
            KeyCode::Char('s') => self.sort = self.sort.step(1),
            KeyCode::Char('S') => self.sort = self.sort.step(-1),
            KeyCode::Char('r') => self.reversed = !self.reversed,
            KeyCode::Char('a') => self.open_alerts(view),
            KeyCode::Esc if !self.filter.is_empty() => self.filter.clear(),
            _ => return Outcome::Ignored,
        }
        Outcome::Redraw
    }

    fn on_detail_key(&mut self, key: KeyEvent, view: &Live) -> Outcome {
        match key.code {
            KeyCode::Esc | KeyCode::Backspace => self.screen = Screen::Overview,
            KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => self.step_model(view, 1),
            KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => self.step_model(view, -1),
            KeyCode::Char('a') => self.open_alerts(view),
            KeyCode::Char(c) => match Range::ALL.iter().find(|r| r.key() == c) {
                Some(r) => self.range = *r,
                None => return Outcome::Ignored,
            },
            _ => return Outcome::Ignored,
        }
        Outcome::Redraw
    }

    fn on_warnings_key(&mut self, key: KeyEvent) -> Outcome {
        if matches!(key.code, KeyCode::Esc | KeyCode::Backspace) {
            self.screen = Screen::Overview;
            return Outcome::Redraw;
        }
        Outcome::Ignored
    }

    /// The warnings logged since the warnings screen last showed them.
    pub fn unseen_warnings(&self, view: &Live) -> u64 {
        view.warnings.total.saturating_sub(self.warnings_seen)
    }

    /// Called with each frame: what the warnings screen draws counts as seen.
    pub fn see_warnings(&mut self, view: &Live) {
        if self.screen == Screen::Warnings {
            self.warnings_seen = self.warnings_seen.max(view.warnings.total);
        }
    }

    fn on_alerts_key(&mut self, key: KeyEvent, view: &Live) -> Outcome {
        if matches!(key.code, KeyCode::Esc | KeyCode::Backspace) {
            self.screen = Screen::Overview;
            return Outcome::Redraw;
        }
        let rows = self.alert_rows(view);
        let Some(at) = self.selected_alert_index(&rows) else {
            return Outcome::Ignored;
        };
        let last = rows.len() - 1;
        let to = match key.code {
            KeyCode::Down | KeyCode::Char('j') => (at + 1).min(last),
            KeyCode::Up | KeyCode::Char('k') => at.saturating_sub(1),
            KeyCode::Char('g') | KeyCode::Home => 0,
            KeyCode::Char('G') | KeyCode::End => last,
            // The alert the cursor is on now, wherever the engine sorted it.
            KeyCode::Char('x') => return self.silence_selected(view, false),
            KeyCode::Char('X') => return self.silence_selected(view, true),
            KeyCode::Char('a') => return self.acknowledge_selected(view),
            _ => return Outcome::Ignored,
        };
        self.select_alert(&rows, to);
        Outcome::Redraw
    }

    /// The alert under the cursor, cloned so the state can change while it is used.
    pub fn selected_alert(&self, view: &Live) -> Option<Alert> {
        let rows = self.alert_rows(view);
        let at = self.selected_alert_index(&rows)?;
        rows.get(at).map(|a| (*a).clone())
    }

    /// Silences the selected alert (or its whole model) for the next step of
    /// [`SILENCE_STEPS`]: 15 m on the first press, then 1 h, 4 h, and lifted.
    fn silence_selected(&mut self, view: &Live, whole_model: bool) -> Outcome {
        let Some(alert) = self.selected_alert(view) else {
            return Outcome::Ignored;
        };
        let (target, what) = if whole_model {
            (
                SilenceTarget::Model(alert.model.clone()),
                if alert.is_monitor() {
                    "every alert of the monitor".to_owned()
                } else {
                    format!("every alert of {}", alert.model)
                },
            )
        } else {
            (
                SilenceTarget::Alert(alert.key()),
                format!("{} on {}", alert.rule, alert.subject()),
            )
        };
        let step = match &self.last_silence {
            Some((t, s)) if *t == target => (s + 1) % (SILENCE_STEPS.len() + 1),
            _ => 0,
        };
        if let Some(d) = SILENCE_STEPS.get(step) {
            self.commands.push(Command::Silence {
                target: target.clone(),
                for_: *d,
            });
            self.notice = Some(format!(
                "silenced {what} for {} (press again: longer, then lifted)",
                duration_label(*d)
            ));
        } else {
            self.commands.push(Command::Unsilence(target.clone()));
            self.notice = Some(format!("silence lifted: {what}"));
        }
        self.last_silence = Some((target, step));
        Outcome::Redraw
    }

    /// Acknowledges the selected alert: no more reminders until it resolves.
    fn acknowledge_selected(&mut self, view: &Live) -> Outcome {
        let Some(alert) = self.selected_alert(view) else {
            return Outcome::Ignored;
        };
        self.notice = Some(if alert.state == AlertPhase::Firing {
            self.commands.push(Command::Acknowledge(alert.key()));
            format!(
                "acknowledged {} on {}: no reminders until it resolves",
                alert.rule,
                alert.subject()
            )
        } else {
            format!(
                "{} on {} is {}: only a firing alert can be acknowledged",
                alert.rule,
                alert.subject(),
                alert.state.as_str()
            )
        });
        Outcome::Redraw
    }

    fn open_detail(&mut self, view: &Live) -> Outcome {
        let rows = self.rows(view);
        let Some(i) = self.selected_index(&rows) else {
            return Outcome::Ignored;
        };
        self.selected = Some(rows[i].model.clone());
        self.screen = Screen::Detail;
        Outcome::Redraw
    }

    /// Next or previous model in overview order, wrapping, without leaving the detail view.
    /// When the shown model has left the view, the first model is next and the last one
    /// previous: there is no place in the order to step from.
    fn step_model(&mut self, view: &Live, by: isize) {
        let rows = self.rows(view);
        let Some(last) = rows.len().checked_sub(1) else {
            return;
        };
        let shown = self
            .selected
            .as_deref()
            .and_then(|s| rows.iter().position(|m| m.model == s));
        let j = match shown {
            Some(i) => (i as isize + by).rem_euclid(rows.len() as isize) as usize,
            None if by > 0 => 0,
            None => last,
        };
        self.selected = Some(rows[j].model.clone());
    }

    /// Moves the overview selection, clamped to the rows, and scrolls it into sight.
    fn move_by(&mut self, view: &Live, by: isize, size: Rect) {
        let rows = self.rows(view);
        let Some(i) = self.selected_index(&rows) else {
            return;
        };
        let j = (i as isize)
            .saturating_add(by)
            .clamp(0, rows.len() as isize - 1) as usize;
        self.selected = Some(rows[j].model.clone());
        let height = layout::overview_rows(size).height as usize;
        self.offset = visible_offset(self.offset, j, height);
    }

    fn on_mouse(&mut self, m: MouseEvent, live: &Live, size: Rect) -> Outcome {
        let view = self.shown(live).clone();
        match (self.screen, m.kind) {
            (Screen::Overview, MouseEventKind::ScrollDown) => self.move_by(&view, 1, size),
            (Screen::Overview, MouseEventKind::ScrollUp) => self.move_by(&view, -1, size),
            (Screen::Detail, MouseEventKind::ScrollDown) => self.step_model(&view, 1),
            (Screen::Detail, MouseEventKind::ScrollUp) => self.step_model(&view, -1),
            (Screen::Overview, MouseEventKind::Down(MouseButton::Left)) => {
                let area = layout::overview_rows(size);
                if !area.contains(Position::new(m.column, m.row)) {
                    return Outcome::Ignored;
                }
                let rows = self.rows(&view);
                let offset = visible_offset(
                    self.offset,
                    self.selected_index(&rows).unwrap_or(0),
                    area.height as usize,
                );
                let Some(hit) = rows.get(offset + usize::from(m.row - area.y)) else {
                    return Outcome::Ignored;
                };
                // A click on the selected row opens it; a click elsewhere selects.
                if self.selected.as_deref() == Some(hit.model.as_str()) {
                    self.screen = Screen::Detail;
                } else {
                    self.selected = Some(hit.model.clone());
                }
            }
            _ => return Outcome::Ignored,
        }
        Outcome::Redraw
    }
}

/// `15m`, `1h`, `4h`.
pub fn duration_label(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else {
        format!("{}m", s / 60)
    }
}

/// The first row to show so that row `selected` is visible, moving `offset` as little
/// as possible (the list scrolls only when the selection reaches an edge).
pub fn visible_offset(offset: usize, selected: usize, height: usize) -> usize {
    let height = height.max(1);
    if selected < offset {
        selected
    } else if selected >= offset + height {
        selected + 1 - height
    } else {
        offset
    }
}
