//! Events taken off the queue and waiting to be published, grouped by model, and
//! their encoding into message bodies that respect the contract's limits.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use modelmon_contract::{
    Batch, Event, MAX_BODY_BYTES, MAX_EVENTS_PER_BATCH, MAX_ML_ENTRIES, Source, VERSION,
};

/// Events of one model, in the order they were recorded.
#[derive(Debug)]
pub(crate) struct Group {
    pub model: String,
    pub events: Vec<Event<'static>>,
}

#[derive(Debug, Default)]
pub(crate) struct Pending {
    groups: HashMap<String, Vec<Event<'static>>>,
    len: usize,
    oldest: Option<Instant>,
}

impl Pending {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// When the oldest waiting event arrived, to send it no later than the batch delay.
    pub fn oldest(&self) -> Option<Instant> {
        self.oldest
    }

    /// Adds an event; returns true if its `ml` had to be cleaned.
    pub fn push(&mut self, mut event: Event<'static>, now: Instant) -> bool {
        let sanitised = sanitise_ml(&mut event);
        self.oldest.get_or_insert(now);
        self.len += 1;
        if let Some(v) = self.groups.get_mut(event.model.as_ref()) {
            v.push(event);
        } else {
            self.groups.insert(event.model.to_string(), vec![event]);
        }
        sanitised
    }

    /// Puts back groups that could not be delivered, ahead of anything newer.
    pub fn restore(&mut self, groups: Vec<Group>, now: Instant) {
        for g in groups {
            self.len += g.events.len();
            match self.groups.get_mut(&g.model) {
                Some(v) => {
                    let newer = std::mem::replace(v, g.events);
                    v.extend(newer);
                }
                None => {
                    self.groups.insert(g.model, g.events);
                }
            }
        }
        if self.len > 0 {
            self.oldest.get_or_insert(now);
        }
    }

    /// Everything waiting, one group per model, each at most `max_events` long.
    pub fn take(&mut self, max_events: usize) -> Vec<Group> {
        let max_events = max_events.clamp(1, MAX_EVENTS_PER_BATCH);
        self.len = 0;
        self.oldest = None;
        let mut out = Vec::with_capacity(self.groups.len());
        for (model, mut events) in self.groups.drain() {
            while events.len() > max_events {
                let rest = events.split_off(max_events);
                out.push(Group {
                    model: model.clone(),
                    events,
                });
                events = rest;
            }
            out.push(Group { model, events });
        }
        out
    }
}

/// JSON cannot carry NaN or infinities, and the contract allows 16 entries: an event
/// breaking either rule would make the whole body unencodable or the event rejected.
fn sanitise_ml(event: &mut Event<'static>) -> bool {
    let before = event.ml.len();
    event.ml.retain(|(_, v)| v.is_finite());
    event.ml.truncate(MAX_ML_ENTRIES);
    event.ml.len() != before
}

/// One message ready to publish: the body and the events it carries (kept so they
/// can be retried if the broker does not confirm it).
#[derive(Debug)]
pub(crate) struct Encoded {
    pub group: Group,
    pub body: Vec<u8>,
    pub dropped: u64,
}

/// Encodes a group into one or more bodies under [`MAX_BODY_BYTES`], halving it until
/// each part fits. Events that cannot fit on their own are counted as unsendable.
/// `dropped` goes into the first body that fits; what could not be placed is returned.
pub(crate) fn encode(
    group: Group,
    source: &Source<'static>,
    dropped: u64,
    out: &mut Vec<Encoded>,
    unsendable: &mut u64,
) -> u64 {
    let mut stack = vec![group];
    let mut dropped = dropped;
    while let Some(group) = stack.pop() {
        let batch = Batch {
            v: VERSION,
            source: source.clone(),
            dropped,
            events: group.events,
        };
        let body = batch.to_json();
        let events = batch.events;
        if body.len() <= MAX_BODY_BYTES {
            out.push(Encoded {
                group: Group {
                    model: group.model,
                    events,
                },
                body,
                dropped,
            });
            // The drop count travels once, in the first message that fits.
            dropped = 0;
        } else if events.len() > 1 {
            let mut first = events;
            let second = first.split_off(first.len() / 2);
            // Popped in order: first half, then second half.
            stack.push(Group {
                model: group.model.clone(),
                events: second,
            });
            stack.push(Group {
                model: group.model,
                events: first,
            });
        } else {
            *unsendable += events.len() as u64;
        }
    }
    dropped
}

/// The source block of every body this publisher sends.
pub(crate) fn source(config: &crate::Config) -> Source<'static> {
    Source {
        kind: config.source_kind,
        instance: Cow::Owned(config.instance.clone()),
        pid: std::process::id(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelmon_contract::{SourceKind, decode_batch};

    fn event(model: &str, route: String, ml: Vec<(Cow<'static, str>, f64)>) -> Event<'static> {
        Event {
            ts: 1_700_000_000_000_000,
            model: Cow::Owned(model.to_owned()),
            version: None,
            instance: Cow::Borrowed("i"),
            method: Cow::Borrowed("POST"),
            route: Cow::Owned(route),
            status: 200,
            duration_us: 10,
            ttfb_us: None,
            req_bytes: None,
            resp_bytes: None,
            error: None,
            ml,
        }
    }

    fn src() -> Source<'static> {
        Source {
            kind: SourceKind::Proxy,
            instance: Cow::Borrowed("t"),
            pid: 1,
        }
    }

    #[test]
    fn non_finite_ml_values_are_removed_and_the_batch_still_encodes() {
        let mut p = Pending::default();
        let ml = vec![
            (Cow::Borrowed("a"), f64::NAN),
            (Cow::Borrowed("b"), 2.0),
            (Cow::Borrowed("c"), f64::INFINITY),
        ];
        assert!(p.push(event("m", "/r".into(), ml), Instant::now()));
        assert!(!p.push(event("m", "/r".into(), vec![]), Instant::now()));
        let (mut out, mut bad) = (Vec::new(), 0);
        for g in p.take(100) {
            encode(g, &src(), 3, &mut out, &mut bad);
        }
        assert_eq!((out.len(), bad), (1, 0));
        let now = 1_700_000_000_000_000;
        let d = decode_batch(&out[0].body, Some("m"), now).expect("decodes");
        assert_eq!(d.dropped, 3);
        assert_eq!(d.events.len(), 2);
        assert!(d.rejects.is_empty());
        assert_eq!(d.events[0].ml, vec![(Cow::Borrowed("b"), 2.0)]);
    }

    #[test]
    fn groups_are_split_by_count_and_by_body_size() {
        let mut p = Pending::default();
        for _ in 0..25 {
            p.push(event("a", "/x".into(), vec![]), Instant::now());
        }
        let groups = p.take(10);
        let mut sizes: Vec<usize> = groups.iter().map(|g| g.events.len()).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![5, 10, 10]);
        assert!(p.is_empty());

        // 40 events of ~60 KB each cannot fit in one 1 MiB body.
        let big: Vec<Event<'static>> = (0..40)
            .map(|_| event("b", "x".repeat(60_000), vec![]))
            .collect();
        let (mut out, mut bad) = (Vec::new(), 0);
        let left = encode(
            Group {
                model: "b".into(),
                events: big,
            },
            &src(),
            7,
            &mut out,
            &mut bad,
        );
        assert_eq!(left, 0);
        assert_eq!(bad, 0);
        assert!(out.len() > 1);
        assert!(out.iter().all(|e| e.body.len() <= MAX_BODY_BYTES));
        assert_eq!(out.iter().map(|e| e.group.events.len()).sum::<usize>(), 40);
        assert_eq!(out.iter().map(|e| e.dropped).sum::<u64>(), 7);

        let huge = event("c", "y".repeat(MAX_BODY_BYTES + 1), vec![]);
        let mut out = Vec::new();
        let left = encode(
            Group {
                model: "c".into(),
                events: vec![huge],
            },
            &src(),
            4,
            &mut out,
            &mut bad,
        );
        assert_eq!(left, 4, "the drop count waits for a body that fits");
        assert!(out.is_empty());
        assert_eq!(bad, 1);
    }
}
