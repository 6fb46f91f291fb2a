//! Desktop notifications over the D-Bus session bus (freedesktop notifications).
//!
//! One notification per group: one alert reads "<model>: <rule> firing" with its
//! explanation as the body; several read "modelmon: 3 firing, 1 resolved" with a line
//! each. A notification reuses the id of the earlier one when it tells about everything
//! that one told about (typically the resolve of what fired together), so the daemon
//! replaces the red bubble instead of stacking a second one. Over plain ssh there is no
//! session bus: the monitor says so once and runs on without desktop notifications.

use std::collections::HashMap;
use std::time::Duration;

use notify_rust::{Notification, Timeout, Urgency};
use tokio::sync::mpsc;

use super::{Group, counts, deep_link, explanation, headline};
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

fn word(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::Firing => "firing",
        TransitionKind::Reminder => "still firing",
        TransitionKind::Resolved => "resolved",
    }
}

/// Summary and body of the notification for `group`.
pub fn texts(group: &[Transition], link: Option<&str>) -> (String, String) {
    if let [t] = group {
        let a = &t.alert;
        let mut body = explanation(a);
        if let Some(base) = link {
            body.push('\n');
            body.push_str(&deep_link(base, a));
        }
        return (
            format!("{}: {} {}", a.subject(), a.rule, word(t.kind)),
            body,
        );
    }
    let (firing, resolved) = counts(group);
    let summary = match (firing, resolved) {
        (f, 0) => format!("modelmon: {f} firing"),
        (0, r) => format!("modelmon: {r} resolved"),
        (f, r) => format!("modelmon: {f} firing, {r} resolved"),
    };
    let mut lines: Vec<String> = group
        .iter()
        .map(|t| {
            let a = &t.alert;
            // Firing is what the summary leads with; the others say what they are.
            let state = match t.kind {
                TransitionKind::Firing => String::new(),
                k => format!(" {}", word(k)),
            };
            format!("{} {}{state}: {}", a.subject(), a.rule, explanation(a))
        })
        .collect();
    if let Some(base) = link {
        lines.push(format!("{}/", base.trim_end_matches('/')));
    }
    (summary, lines.join("\n"))
}

/// The urgency of the worst alert the group says is firing; low when all resolved.
fn group_urgency(group: &[Transition]) -> Urgency {
    group
        .iter()
        .filter(|t| t.kind != TransitionKind::Resolved)
        .map(|t| t.alert.severity)
        .max()
        .map_or(Urgency::Low, urgency)
}

/// The earlier notification this group replaces: the one its alerts were last shown
/// in, if they were all in the same one and the group tells about all of that one's
/// alerts (replacing it must not hide an alert that is still firing).
fn replaces(ids: &HashMap<AlertKey, u32>, group: &[Transition]) -> Option<u32> {
    let keys: Vec<AlertKey> = group.iter().map(|t| t.alert.key()).collect();
    let mut earlier = keys.iter().filter_map(|k| ids.get(k).copied());
    let id = earlier.next()?;
    if earlier.any(|other| other != id) {
        return None;
    }
    let covered = ids
        .iter()
        .filter(|&(_, &shown)| shown == id)
        .all(|(k, _)| keys.contains(k));
    covered.then_some(id)
}

/// Shows what arrives on `rx` until the monitor stops.
pub async fn run(mut rx: mpsc::Receiver<Group>, link: Option<String>) {
    let mut off = no_bus_reason();
    if let Some(why) = &off {
        tracing::warn!("desktop notifications are off: {why}");
    }
    // Which notification each alert was last shown in, until it resolves.
    let mut ids: HashMap<AlertKey, u32> = HashMap::new();
    while let Some(group) = rx.recv().await {
        if off.is_some() {
            // Keep draining, so the store task's queue never reports this notifier as slow.
            continue;
        }
        let (summary, body) = texts(&group, link.as_deref());
        let mut n = Notification::new();
        n.appname("modelmon")
            .summary(&summary)
            .body(&body)
            .urgency(group_urgency(&group));
        if counts(&group).0 == 0 {
            n.timeout(Timeout::Milliseconds(10_000));
        }
        if let Some(id) = replaces(&ids, &group) {
            n.id(id);
        }
        match tokio::time::timeout(SHOW_TIMEOUT, n.show_async()).await {
            Ok(Ok(handle)) => {
                for t in group.iter() {
                    if t.kind == TransitionKind::Resolved {
                        ids.remove(&t.alert.key());
                    } else {
                        ids.insert(t.alert.key(), handle.id());
                    }
                }
                for t in group.iter() {
                    tracing::debug!("desktop notification: {}", headline(t));
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::MONITOR;
    use crate::alert::notify::tests::transition;

    #[test]
    fn one_alert_keeps_its_own_summary_and_several_get_a_line_each() {
        let one = [transition(TransitionKind::Firing, "slow", "resnet50")];
        assert_eq!(
            texts(&one, Some("http://mon:9464")),
            (
                "resnet50: slow firing".to_owned(),
                "p95 470 ms, 117× its normal 4.0 ms (last hour)\nhttp://mon:9464/#/model/resnet50"
                    .to_owned()
            )
        );
        let many = [
            transition(TransitionKind::Firing, "slow", "a"),
            transition(TransitionKind::Reminder, "slow", "b"),
            transition(TransitionKind::Resolved, "broker_down", MONITOR),
        ];
        let (summary, body) = texts(&many, None);
        assert_eq!(summary, "modelmon: 2 firing, 1 resolved");
        let why = "p95 470 ms, 117× its normal 4.0 ms (last hour)";
        assert_eq!(
            body,
            format!(
                "a slow: {why}\nb slow still firing: {why}\nmonitor broker_down resolved: {why}"
            )
        );
        assert_eq!(group_urgency(&many), Urgency::Normal);
        assert_eq!(group_urgency(&many[2..]), Urgency::Low);
    }

    #[test]
    fn a_notification_is_replaced_only_by_one_that_covers_all_it_told() {
        let key = |m: &str| transition(TransitionKind::Firing, "slow", m).alert.key();
        let ids: HashMap<AlertKey, u32> = [(key("a"), 7), (key("b"), 7), (key("c"), 9)].into();
        let resolved = |m: &str| transition(TransitionKind::Resolved, "slow", m);
        assert_eq!(replaces(&ids, &[resolved("a"), resolved("b")]), Some(7));
        assert_eq!(replaces(&ids, &[resolved("a")]), None, "b still fires in 7");
        assert_eq!(replaces(&ids, &[resolved("c")]), Some(9));
        assert_eq!(
            replaces(
                &ids,
                &[
                    resolved("c"),
                    transition(TransitionKind::Firing, "slow", "d")
                ]
            ),
            Some(9)
        );
        assert_eq!(
            replaces(&ids, &[resolved("a"), resolved("b"), resolved("c")]),
            None
        );
        assert_eq!(replaces(&ids, &[resolved("d")]), None);
    }
}
