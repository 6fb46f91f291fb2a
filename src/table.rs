//! A plain-text table of the view: what `modelmon-tui` prints until the full-screen UI lands,
//! and what it prints when its output is not a terminal.

use std::fmt::Write as _;

use crate::store::View;

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{x:.1}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |x| format!("{:.2}%", x * 100.0))
}

/// Renders the view as a fixed-width table.
pub fn render(view: &View) -> String {
    let mut out = String::new();
    let i = &view.ingest;
    let _ = writeln!(
        out,
        "broker {}  events {} ({:.0}/s)  rejected {}  dropped at source {}  late {}",
        view.broker.state.as_str(),
        i.events,
        i.events_per_s,
        i.rejected,
        i.dropped_at_source,
        i.late
    );
    if let Some(e) = &view.broker.error {
        let _ = writeln!(out, "  {e}");
    }
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9}",
        "MODEL", "QPS", "P50 ms", "P95 ms", "P99 ms", "MAX ms", "ERR", "4XX", "LAST SEEN"
    );
    for m in &view.models {
        let s = &m.stats;
        let seen = m.last_seen_ms_ago.map_or_else(
            || "never".to_owned(),
            |ms| format!("{:.1}s", ms as f64 / 1000.0),
        );
        let _ = writeln!(
            out,
            "{:<24} {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9}",
            truncate(&m.model, 24),
            s.qps,
            ms(s.p50_ms),
            ms(s.p95_ms),
            ms(s.p99_ms),
            ms(s.max_ms),
            pct(s.error_rate),
            pct(s.client_error_rate),
            seen
        );
    }
    if view.models.is_empty() {
        let _ = writeln!(out, "(no events yet)");
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
