//! Batches the broker returned because no queue was bound to their model, held until a
//! queue appears.
//!
//! A monitor's default queue lives and dies with its connection, so after a broker
//! restart a publisher often reconnects first and its batches have nowhere to go. Those
//! come back (they are published `mandatory`) and wait here, per model, while one of
//! them is sent again now and then as a probe: when a probe is routed, everything held
//! for its model goes out again. Holding is bounded twice: a held event older than
//! [`HOLD`] is let go (counted as dropped), and the worker evicts the oldest when held
//! and queued events together pass the buffer bound.
//!
//! A model whose batches keep coming back for [`HOLD`] of connected time is taken to be
//! watched by nobody (a monitor with `--models` elsewhere): what it held is dropped, and
//! from then on its batches are let go as they come, counted as `unrouted` rather than
//! dropped (no monitor lost them, so none is told), with one probe at most every
//! [`PROBE_MAX`]. Memory stays flat and the broker sees one message per model per
//! [`PROBE_MAX`], however long nobody binds it.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::pending::Group;

/// How long returned events wait for a queue: a broker restart takes seconds, and a
/// monitor reconnects within about 6 s of the broker (its backoff tops out at 5 s).
pub(crate) const HOLD: Duration = Duration::from_secs(30);
/// First wait before a returned model is probed again; it doubles up to [`PROBE_MAX`].
const PROBE_FIRST: Duration = Duration::from_millis(250);
pub(crate) const PROBE_MAX: Duration = Duration::from_secs(5);

struct HeldGroup {
    group: Group,
    /// When it first came back: the hold bound runs from here.
    since: Instant,
}

/// One model whose batches come back.
struct Unrouted {
    /// The "watched by nobody" verdict needs [`HOLD`] of returns while connected: time
    /// without a broker says nothing about who watches. This is the connected time
    /// counted on earlier connections...
    counted: Duration,
    /// ... and when counting began on this one (`None` while disconnected).
    since: Option<Instant>,
    retry_at: Instant,
    backoff: Duration,
    /// Oldest first.
    groups: VecDeque<HeldGroup>,
    /// A probe of this model is out; no other is sent until it is settled.
    probing: bool,
    /// When the probe out now first came back: a probe that comes back again keeps
    /// its age, so that probing never extends the hold bound.
    probe_since: Option<Instant>,
    /// Last time a batch of this model came along, to forget models that went quiet.
    seen: Instant,
}

impl Unrouted {
    fn unwatched(&self, now: Instant) -> bool {
        self.counted
            + self
                .since
                .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
            >= HOLD
    }

    /// When the verdict falls, if connected.
    fn verdict_at(&self) -> Option<Instant> {
        Some(self.since? + HOLD.saturating_sub(self.counted))
    }
}

/// What the worker must count after a call, in events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LetGo {
    /// Held too long, or evicted: reported as dropped.
    pub dropped: u64,
    /// Of a model nobody watches: counted apart, not reported.
    pub unrouted: u64,
}

impl std::ops::AddAssign for LetGo {
    fn add_assign(&mut self, o: LetGo) {
        self.dropped += o.dropped;
        self.unrouted += o.unrouted;
    }
}

#[derive(Default)]
pub(crate) struct Held {
    models: HashMap<String, Unrouted>,
    events: usize,
}

impl Held {
    /// Events held now.
    pub fn len(&self) -> usize {
        self.events
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// No model's batches come back: nothing here needs tending.
    pub fn tracks_nothing(&self) -> bool {
        self.models.is_empty()
    }

    /// Whether batches of `model` come back: then new ones are not sent but go through
    /// [`Held::withhold`].
    pub fn is_unrouted(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    /// A batch of an unrouted model, about to be sent: held, or let go if nobody watches
    /// the model. Returned instead when it should go out as that model's probe.
    pub fn withhold(&mut self, group: Group, now: Instant, let_go: &mut LetGo) -> Option<Group> {
        let Some(u) = self.models.get_mut(&group.model) else {
            return Some(group);
        };
        u.seen = now;
        if !u.unwatched(now) {
            self.events += group.events.len();
            u.groups.push_back(HeldGroup { group, since: now });
            return None;
        }
        if !u.probing && u.retry_at <= now {
            u.probing = true;
            return Some(group);
        }
        let_go.unrouted += group.events.len() as u64;
        None
    }

    /// Probes due now: the oldest held batch of each model whose wait is over.
    pub fn probes(&mut self, now: Instant) -> Vec<Group> {
        let mut out = Vec::new();
        for u in self.models.values_mut() {
            if u.probing || u.retry_at > now {
                continue;
            }
            if let Some(h) = u.groups.pop_front() {
                self.events -= h.group.events.len();
                u.probing = true;
                u.probe_since = Some(h.since);
                out.push(h.group);
            }
        }
        out
    }

    /// A batch of `group.model` came back. `probe`: it was that model's probe.
    pub fn returned(&mut self, group: Group, probe: bool, now: Instant, let_go: &mut LetGo) {
        let u = self
            .models
            .entry(group.model.clone())
            .or_insert_with(|| Unrouted {
                counted: Duration::ZERO,
                since: Some(now),
                retry_at: now + PROBE_FIRST,
                backoff: PROBE_FIRST,
                groups: VecDeque::new(),
                probing: false,
                probe_since: None,
                seen: now,
            });
        u.seen = now;
        let mut since = now;
        if probe {
            since = u.probe_since.take().unwrap_or(now);
            u.probing = false;
            u.backoff = (u.backoff * 2).min(PROBE_MAX);
            u.retry_at = now + u.backoff;
        }
        if u.unwatched(now) {
            let_go.unrouted += group.events.len() as u64;
            return;
        }
        self.events += group.events.len();
        let held = HeldGroup { group, since };
        // A probe is the oldest held batch: it goes back to the front.
        if probe {
            u.groups.push_front(held);
        } else {
            u.groups.push_back(held);
        }
    }

    /// A batch of `model` was routed: a queue takes its batches again. Whatever was held
    /// for it is handed back, oldest first, to be sent at once.
    pub fn routed(&mut self, model: &str) -> Vec<Group> {
        let Some(u) = self.models.remove(model) else {
            return Vec::new();
        };
        let groups: Vec<Group> = u.groups.into_iter().map(|h| h.group).collect();
        self.events -= groups.iter().map(|g| g.events.len()).sum::<usize>();
        groups
    }

    /// A probe of `model` was neither routed nor returned (refused, or the link went):
    /// another may be sent.
    pub fn probe_failed(&mut self, model: &str) {
        if let Some(u) = self.models.get_mut(model) {
            u.probing = false;
            u.probe_since = None;
        }
    }

    /// The link was lost. Probes in flight went with it, and the verdict's clock stops
    /// until the next connection, after which every model is probed soon: a monitor may
    /// have come back with the broker.
    pub fn link_lost(&mut self, now: Instant) {
        for u in self.models.values_mut() {
            u.probing = false;
            u.probe_since = None;
            if let Some(s) = u.since.take() {
                u.counted += now.saturating_duration_since(s);
            }
            u.backoff = PROBE_FIRST;
            u.retry_at = now;
        }
    }

    /// Shutting down: there is no later to back off to, so every model is probed now.
    pub fn probe_now(&mut self, now: Instant) {
        for u in self.models.values_mut() {
            u.retry_at = u.retry_at.min(now);
        }
    }

    /// Connected again: the verdict's clock runs again.
    pub fn connected(&mut self, now: Instant) {
        for u in self.models.values_mut() {
            u.since = Some(now);
            u.retry_at = now + PROBE_FIRST;
        }
    }

    /// Lets go of events held longer than [`HOLD`], and of everything held for a model
    /// that has now come back for [`HOLD`]; forgets models not seen for [`HOLD`].
    pub fn expire(&mut self, now: Instant) -> LetGo {
        let mut let_go = LetGo::default();
        let mut released = 0;
        self.models.retain(|_, u| {
            let unwatched = u.unwatched(now);
            while let Some(h) = u.groups.front() {
                if !unwatched && now.saturating_duration_since(h.since) < HOLD {
                    break;
                }
                let n = h.group.events.len();
                released += n;
                let_go.dropped += n as u64;
                u.groups.pop_front();
            }
            // A model that stopped publishing needs no probe; if it comes back, it
            // starts afresh (held first, as after a restart).
            !(unwatched
                && u.groups.is_empty()
                && !u.probing
                && now.saturating_duration_since(u.seen) >= HOLD)
        });
        self.events -= released;
        let_go
    }

    /// Lets go of the `n` oldest held events (counted as dropped), to keep held and
    /// queued events within the buffer bound.
    pub fn evict(&mut self, mut n: usize) -> u64 {
        let mut evicted = 0;
        while n > 0 && self.events > 0 {
            let oldest = self
                .models
                .values_mut()
                .filter(|u| !u.groups.is_empty())
                .min_by_key(|u| u.groups.front().map(|h| h.since));
            let Some(u) = oldest else { break };
            let Some(front) = u.groups.front_mut() else {
                break;
            };
            let k = n.min(front.group.events.len());
            front.group.events.drain(..k);
            if front.group.events.is_empty() {
                u.groups.pop_front();
            }
            self.events -= k;
            n -= k;
            evicted += k as u64;
        }
        evicted
    }

    /// Everything held, given up (at shutdown).
    pub fn clear(&mut self) -> u64 {
        let n = self.events as u64;
        self.models.clear();
        self.events = 0;
        n
    }

    /// When the next probe is due (it may be past: then one is due now).
    pub fn next_probe(&self) -> Option<Instant> {
        self.models
            .values()
            .filter(|u| !u.probing && !u.groups.is_empty())
            .map(|u| u.retry_at)
            .min()
    }

    /// When held events next pass a bound ([`Held::expire`] lets them go).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.models
            .values()
            .filter_map(|u| {
                let own = u.groups.front()?.since + HOLD;
                Some(u.verdict_at().map_or(own, |v| v.min(own)))
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use modelmon_contract::Event;

    use super::*;

    fn group(model: &str, n: usize) -> Group {
        let e = Event {
            ts: 1,
            model: Cow::Owned(model.to_owned()),
            version: None,
            instance: Cow::Borrowed("i"),
            method: Cow::Borrowed("GET"),
            route: Cow::Borrowed("/"),
            status: 200,
            duration_us: 1,
            ttfb_us: None,
            req_bytes: None,
            resp_bytes: None,
            error: None,
            ml: Vec::new(),
        };
        Group {
            model: model.to_owned(),
            events: vec![e; n],
        }
    }

    #[test]
    fn returned_batches_wait_for_a_probe_and_go_out_when_it_is_routed() {
        let t0 = Instant::now();
        let mut h = Held::default();
        let mut lg = LetGo::default();
        h.returned(group("a", 3), false, t0, &mut lg);
        assert!(h.is_unrouted("a"));
        assert!(
            h.withhold(group("a", 2), t0, &mut lg).is_none(),
            "held, not sent"
        );
        assert_eq!((h.len(), lg), (5, LetGo::default()));
        assert!(h.probes(t0).is_empty(), "not before the first wait");
        let probes = h.probes(t0 + PROBE_FIRST);
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0].events.len(), 3, "the oldest batch probes");
        assert!(h.probes(t0 + PROBE_MAX).is_empty(), "one probe at a time");
        let back = h.routed("a");
        assert_eq!(back.iter().map(|g| g.events.len()).collect::<Vec<_>>(), [2]);
        assert!(h.is_empty() && !h.is_unrouted("a"));
    }

    #[test]
    fn a_model_nobody_binds_is_held_for_the_bound_then_let_go_as_it_comes() {
        let t0 = Instant::now();
        let mut h = Held::default();
        let mut lg = LetGo::default();
        h.returned(group("x", 10), false, t0, &mut lg);
        let mut t = t0;
        let mut probes = 0;
        // Two minutes of one batch a second, every probe coming back.
        for _ in 0..120 {
            t += Duration::from_secs(1);
            lg += h.expire(t);
            if let Some(p) = h.withhold(group("x", 10), t, &mut lg) {
                probes += 1;
                h.returned(p, true, t, &mut lg);
            }
            for p in h.probes(t) {
                probes += 1;
                h.returned(p, true, t, &mut lg);
            }
            assert!(h.len() <= 10 * 31, "held {}", h.len());
        }
        assert_eq!(h.len(), 0, "nothing held once nobody is taken to watch it");
        assert!(lg.dropped > 0 && lg.dropped <= 10 * 31, "{lg:?}");
        assert_eq!(
            lg.dropped + lg.unrouted,
            10 * 121,
            "every event accounted for"
        );
        // Probes: a handful while backing off, then one per PROBE_MAX.
        assert!(
            probes <= 8 + 120 / PROBE_MAX.as_secs() as usize,
            "{probes} probes"
        );
    }

    #[test]
    fn eviction_takes_the_oldest_events_first() {
        let t0 = Instant::now();
        let mut h = Held::default();
        let mut lg = LetGo::default();
        h.returned(group("old", 4), false, t0, &mut lg);
        h.returned(group("new", 4), false, t0 + Duration::from_secs(1), &mut lg);
        assert_eq!(h.evict(6), 6);
        assert_eq!(h.len(), 2);
        assert!(h.routed("old").is_empty());
        assert_eq!(h.routed("new")[0].events.len(), 2);
    }

    #[test]
    fn only_connected_time_counts_towards_watched_by_nobody() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut h = Held::default();
        let mut lg = LetGo::default();
        h.returned(group("a", 1), false, at(0), &mut lg);
        // 20 s connected, 20 s without a broker.
        h.link_lost(at(20));
        h.connected(at(40));
        // The first batch is past its own bound; the model is not judged unwatched.
        let lg = h.expire(at(41));
        assert_eq!(lg.dropped, 1);
        let mut lg = LetGo::default();
        assert!(h.withhold(group("a", 2), at(41), &mut lg).is_none());
        assert_eq!((h.len(), lg.unrouted), (2, 0));
        // 10 s more connected make 30: what is held goes, and later batches are let go.
        assert_eq!(h.next_expiry(), Some(at(50)));
        assert_eq!(h.expire(at(50)).dropped, 2);
        let probe = h.withhold(group("a", 3), at(50), &mut lg);
        assert!(probe.is_some(), "the first batch after the verdict probes");
        assert!(h.withhold(group("a", 4), at(50), &mut lg).is_none());
        assert_eq!((h.len(), lg.unrouted), (0, 4));
        // The verdict survives a reconnect: a monitor that comes with the broker is
        // found by the next probe.
        h.probe_failed("a");
        h.link_lost(at(60));
        h.connected(at(70));
        assert!(h.withhold(group("a", 5), at(70), &mut lg).is_none());
        assert_eq!(lg.unrouted, 9);
        assert!(h.withhold(group("a", 1), at(71), &mut lg).is_some());
    }
}
