//! Desktop notifications over the D-Bus session bus (freedesktop notifications).
//!
//! The resolve notification reuses the firing one's id, so the daemon replaces the red
//! bubble instead of stacking a second one. Over plain ssh there is no session bus: the
//! monitor says so once and runs on without desktop notifications.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use notify_rust::{Notification, Timeout, Urgency};
use tokio::sync::mpsc;

use super::{headline, show_value};
use crate::alert::engine::{AlertKey, Transition, TransitionKind};
use crate::alert::rules::Severity;

/// A bus that does not answer within this is treated as absent.
const SHOW_TIMEOUT: Duration = Duration::from_secs(5);

/// Why there can be no session bus, if that is visible without trying.
pub fn no_bus_reason() -> Option<String> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty()) {
        return None;
    }
    // zbus also finds the per-user bus socket systemd creates.
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(std::path::PathBuf::from(format!("/run/user/{}", uid()))));
    if runtime.is_some_and(|d| d.join("bus").exists()) {
        return None;
    }
    Some("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set: an ssh session?)".into())
}

fn uid() -> String {
    // The owner of /proc/self is this process' user; no libc call needed.
    std::fs::metadata("/proc/self").map_or_else(
        |_| String::new(),
        |m| std::os::unix::fs::MetadataExt::uid(&m).to_string(),
    )
}

fn urgency(s: Severity) -> Urgency {
    match s {
        Severity::Info => Urgency::Low,
        Severity::Warning => Urgency::Normal,
        Severity::Critical => Urgency::Critical,
    }
}

/// Summary and body of the notification for `t`.
pub fn texts(t: &Transition, link: Option<&str>) -> (String, String) {
    let a = &t.alert;
    let word = match t.kind {
        TransitionKind::Firing => "firing",
        TransitionKind::Reminder => "still firing",
        TransitionKind::Resolved => "resolved",
    };
    let summary = format!("{}: {} {word}", a.model, a.rule);
    let op = if a.metric.fires_below() {
        "below"
    } else {
        "above"
    };
    let mut body = format!(
        "{} is {} ({op} threshold {})",
        a.metric.as_str(),
        show_value(a.metric, a.value),
        show_value(a.metric, Some(a.threshold)),
    );
    if let Some(l) = link {
        body.push('\n');
        body.push_str(l);
    }
    (summary, body)
}

/// Shows what arrives on `rx` until the monitor stops.
pub async fn run(mut rx: mpsc::Receiver<Arc<Transition>>, link: Option<String>) {
    let mut off = no_bus_reason();
    if let Some(why) = &off {
        tracing::warn!("desktop notifications are off: {why}");
    }
    let mut ids: HashMap<AlertKey, u32> = HashMap::new();
    while let Some(t) = rx.recv().await {
        if off.is_some() {
            // Keep draining, so the store task's queue never reports this notifier as slow.
            continue;
        }
        let (summary, body) = texts(&t, link.as_deref());
        let key = t.alert.key();
        let mut n = Notification::new();
        n.appname("modelmon")
            .summary(&summary)
            .body(&body)
            .urgency(urgency(t.alert.severity));
        if t.kind == TransitionKind::Resolved {
            n.urgency(Urgency::Low)
                .timeout(Timeout::Milliseconds(10_000));
        }
        if let Some(&id) = ids.get(&key) {
            n.id(id);
        }
        match tokio::time::timeout(SHOW_TIMEOUT, n.show_async()).await {
            Ok(Ok(handle)) => {
                if t.kind == TransitionKind::Resolved {
                    ids.remove(&key);
                } else {
                    ids.insert(key, handle.id());
                }
                tracing::debug!("desktop notification: {}", headline(&t));
            }
            Ok(Err(e)) => {
                let why = format!("the session bus refused the notification: {e}");
                tracing::warn!("desktop notifications are off: {why}");
                off = Some(why);
            }
            Err(_) => {
                let why = format!("the session bus did not answer within {SHOW_TIMEOUT:?}");
                tracing::warn!("desktop notifications are off: {why}");
                off = Some(why);
            }
        }
    }
}
