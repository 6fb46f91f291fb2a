//! The publishing thread's loop: take events off the queue, batch them, publish with
//! confirms, keep the connection alive.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::Confirmation;
use modelmon_contract::{Event, MAX_EVENTS_PER_BATCH, Source};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::backoff::Backoff;
use crate::held::{Held, LetGo};
use crate::link::{Link, LinkEvent, Sent, Unconfirmed};
use crate::pending::{Encoded, Pending, encode, source};
use crate::stats::Shared;
use crate::{BrokerState, Config, PublishError};

/// How long the broker may take to confirm a batch before the link is presumed dead.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the worker keeps trying to deliver when the last handle is dropped.
const DROP_FLUSH: Duration = Duration::from_secs(2);
/// Bounds of the interval at which the queue is emptied (a fifth of the batch delay).
const MIN_DRAIN_EVERY: Duration = Duration::from_millis(1);
const MAX_DRAIN_EVERY: Duration = Duration::from_millis(50);
/// Reconnect delays: a short first step for a broker that restarts, capped so a
/// publisher never waits long after it is back.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// A message the broker refuses this many times, each time alone in flight, is dropped:
/// its refusal (a topic permission, say) will not change by sending it again, and every
/// try costs a new connection.
const MAX_REFUSALS: u32 = 3;

pub(crate) enum Command {
    /// `until`: when the caller stops waiting (`None`: never).
    Flush {
        reply: SyncSender<bool>,
        until: Option<std::time::Instant>,
    },
    Shutdown {
        timeout: Duration,
        done: SyncSender<()>,
    },
}

pub(crate) struct Worker {
    config: Config,
    source: Source<'static>,
    shared: Arc<Shared>,
    events: mpsc::Receiver<Event<'static>>,
    commands: mpsc::UnboundedReceiver<Command>,
    events_open: bool,
    /// The queue is polled on a timer rather than awaited: awaiting it would wake this
    /// thread once per event, a context switch on every request of the host app.
    drain_at: Instant,
    drain_every: Duration,
    /// The interval in use: `drain_every` while events arrive, growing to
    /// `MAX_DRAIN_EVERY` while none do, so that a short batch delay costs no wake-ups
    /// when the app is idle.
    drain_now_every: Duration,
    pending: Pending,
    buf: Vec<Event<'static>>,
    link: Option<Link>,
    /// The nodes `config.amqp_url` names, and the one in use or to try first.
    nodes: Vec<String>,
    node: usize,
    backoff: Backoff,
    retry_at: Instant,
    /// When the current link was opened.
    connected_at: Instant,
    /// Part of `shared.dropped` already reported in a confirmed batch.
    reported_dropped: u64,
    /// Sent on the current link before the broker blocked it, awaiting their confirms.
    unconfirmed: Vec<Unconfirmed>,
    /// Sent on a link that was lost before confirming them: they go out again first, as
    /// they were (see [`Sent`]).
    resend: Vec<Sent>,
    /// Batches that came back unrouted, waiting for a queue.
    held: Held,
    /// Held and queued events together stay within this (the configured buffer).
    buffer_events: usize,
    /// The `message_id` of the next message, after this process's `run` prefix.
    next_id: u64,
    run: u64,
    /// Ids of messages the broker returned whose confirm has not been seen yet: lapin
    /// hands a returned message to whichever confirm it resolves next, not always the
    /// returned message's own.
    returned_ids: HashSet<u64>,
    flush_waiters: Vec<(SyncSender<bool>, Option<std::time::Instant>)>,
}

impl Worker {
    pub fn new(
        mut config: Config,
        buffer_events: usize,
        shared: Arc<Shared>,
        events: mpsc::Receiver<Event<'static>>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        config.max_batch_events = config.max_batch_events.clamp(1, MAX_EVENTS_PER_BATCH);
        let drain_every = (config.max_batch_delay / 5).clamp(MIN_DRAIN_EVERY, MAX_DRAIN_EVERY);
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        Worker {
            source: source(&config),
            shared,
            events,
            commands,
            events_open: true,
            drain_at: Instant::now(),
            drain_every,
            drain_now_every: drain_every,
            pending: Pending::default(),
            buf: Vec::new(),
            link: None,
            nodes: crate::broker_nodes(&config.amqp_url)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            node: 0,
            backoff: Backoff::new(RECONNECT_FIRST, RECONNECT_MAX, seed),
            retry_at: Instant::now(),
            connected_at: Instant::now(),
            reported_dropped: 0,
            unconfirmed: Vec::new(),
            resend: Vec::new(),
            held: Held::default(),
            buffer_events,
            next_id: 0,
            run: seed,
            returned_ids: HashSet::new(),
            flush_waiters: Vec::new(),
            config,
        }
    }

    pub async fn run(mut self) {
        loop {
            self.tend_held();
            self.answer_flushes();
            if self.link.is_none() && Instant::now() >= self.retry_at {
                self.connect().await;
            }
            if self.ready()
                && (!self.unconfirmed.is_empty()
                    || !self.resend.is_empty()
                    || self.probe_due()
                    || (!self.pending.is_empty() && (self.full() || self.due())))
            {
                self.publish(Instant::now() + CONFIRM_TIMEOUT).await;
                self.answer_flushes();
                continue;
            }
            // What waits to be sent again takes room too: a link that fails every send
            // must not let the queue's bound be bypassed.
            let room = self
                .config
                .max_batch_events
                .saturating_sub(self.pending.len() + self.resend_events());
            let send_at = if self.ready() {
                self.pending
                    .oldest()
                    .map(|t| Instant::from_std(t) + self.config.max_batch_delay)
            } else {
                None
            };
            let retry_at = self.link.is_none().then_some(self.retry_at);
            // Probes only go out on a usable link; expiries happen regardless.
            let held_at = self
                .ready()
                .then(|| self.held.next_probe())
                .flatten()
                .into_iter()
                .chain(self.held.next_expiry())
                .min()
                .map(Instant::from_std);
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Flush { reply, until }) => {
                        self.drain_queue();
                        self.flush_waiters.push((reply, until));
                        if self.ready() && !self.idle() {
                            self.publish(Instant::now() + CONFIRM_TIMEOUT).await;
                        }
                        self.answer_flushes();
                    }
                    Some(Command::Shutdown { timeout, done }) => {
                        self.stop(timeout).await;
                        let _ = done.try_send(());
                        return;
                    }
                    None => {
                        self.stop(DROP_FLUSH).await;
                        return;
                    }
                },
                ev = next_link_event(self.link.as_mut()) => self.on_link_event(ev).await,
                () = sleep_until(self.drain_at), if room > 0 && self.events_open => self.drain_some(room),
                () = sleep_until(send_at.unwrap_or_else(Instant::now)), if send_at.is_some() => {}
                () = sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {}
                () = sleep_until(held_at.unwrap_or_else(Instant::now)), if held_at.is_some() => {}
            }
        }
    }

    fn ready(&self) -> bool {
        self.link.as_ref().is_some_and(|l| !l.is_blocked())
    }

    /// Nothing waits to be sent, confirmed, or routed.
    fn idle(&self) -> bool {
        self.pending.is_empty()
            && self.unconfirmed.is_empty()
            && self.resend.is_empty()
            && self.held.is_empty()
    }

    fn probe_due(&self) -> bool {
        self.held
            .next_probe()
            .is_some_and(|t| t <= std::time::Instant::now())
    }

    fn count_let_go(&self, let_go: LetGo) {
        Shared::add(&self.shared.dropped, let_go.dropped);
        Shared::add(&self.shared.unrouted, let_go.unrouted);
    }

    /// Keeps held events within their bounds: the hold time, and the buffer shared with
    /// the queue (the oldest held events go first).
    fn tend_held(&mut self) {
        if self.held.tracks_nothing() {
            return;
        }
        let mut let_go = self.held.expire(std::time::Instant::now());
        let excess = (self.events.len() + self.held.len()).saturating_sub(self.buffer_events);
        if excess > 0 {
            let_go.dropped += self.held.evict(excess);
        }
        self.count_let_go(let_go);
        Shared::set(&self.shared.held, self.held.len() as u64);
    }

    fn full(&self) -> bool {
        self.pending.len() >= self.config.max_batch_events
    }

    fn due(&self) -> bool {
        self.pending
            .oldest()
            .is_some_and(|t| t.elapsed() >= self.config.max_batch_delay)
    }

    fn take_buf(&mut self) {
        let now = std::time::Instant::now();
        let mut sanitised = 0;
        for ev in self.buf.drain(..) {
            sanitised += u64::from(self.pending.push(ev, now));
        }
        Shared::add(&self.shared.sanitised, sanitised);
    }

    /// Up to `room` queued events; comes back at once if more may be waiting.
    fn drain_some(&mut self, room: usize) {
        while self.buf.len() < room {
            match self.events.try_recv() {
                Ok(ev) => self.buf.push(ev),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.events_open = false;
                    break;
                }
            }
        }
        let full = self.buf.len() >= room;
        self.drain_now_every = if self.buf.is_empty() {
            (self.drain_now_every * 2).min(MAX_DRAIN_EVERY.max(self.drain_every))
        } else {
            self.drain_every
        };
        self.take_buf();
        self.drain_at = if full {
            Instant::now()
        } else {
            Instant::now() + self.drain_now_every
        };
    }

    /// Everything queued so far, regardless of the batch size: a flush covers all of it.
    /// Within the buffer all the same (plus a batch, as [`Worker::drain_some`] allows):
    /// flushes during a long outage would otherwise pile everything recorded meanwhile
    /// up in `pending`. What finds no room is dropped and counted, as `record` does.
    fn drain_queue(&mut self) {
        self.tend_held();
        let unconfirmed: usize = self
            .unconfirmed
            .iter()
            .map(|u| u.sent.group.events.len())
            .sum();
        let waiting = self.pending.len() + self.resend_events() + unconfirmed + self.held.len();
        let room = (self.buffer_events + self.config.max_batch_events).saturating_sub(waiting);
        let mut excess = 0;
        while let Ok(ev) = self.events.try_recv() {
            if self.buf.len() < room {
                self.buf.push(ev);
            } else {
                excess += 1;
            }
        }
        Shared::add(&self.shared.dropped, excess);
        self.take_buf();
    }

    /// Events in the messages waiting to be sent again.
    fn resend_events(&self) -> usize {
        self.resend.iter().map(|s| s.group.events.len()).sum()
    }

    fn answer_flushes(&mut self) {
        let now = std::time::Instant::now();
        self.flush_waiters
            .retain(|(_, until)| until.is_none_or(|t| t > now));
        if self.idle() {
            for (w, _) in self.flush_waiters.drain(..) {
                let _ = w.try_send(true);
            }
        }
    }

    /// Tries each node once, from the one in use (or the next after it was lost); the
    /// backoff only starts once a whole round has failed, so a cluster that lost one
    /// node is back in use at once.
    async fn connect(&mut self) {
        self.shared.set_state(BrokerState::Connecting);
        let mut failed = None;
        for k in 0..self.nodes.len() {
            let i = (self.node + k) % self.nodes.len();
            match Link::open(&self.config, &self.nodes[i]).await {
                Ok(link) => {
                    self.node = i;
                    self.shared.set_node(&self.nodes[i]);
                    self.shared.set_blocked(link.is_blocked());
                    self.link = Some(link);
                    // The backoff is reset by a confirm on this link, not by the
                    // connection alone: a broker that accepts connections and then
                    // closes every channel must not be reconnected to in a tight loop.
                    self.connected_at = Instant::now();
                    self.held.connected(std::time::Instant::now());
                    Shared::add(&self.shared.connections, 1);
                    self.shared.set_state(BrokerState::Connected);
                    return;
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            self.shared.set_error(&e);
        }
        self.shared.set_state(BrokerState::Down);
        self.retry_at = Instant::now() + self.backoff.next_delay();
    }

    async fn on_link_event(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Blocked => self.shared.set_blocked(true),
            LinkEvent::Unblocked => self.shared.set_blocked(false),
            LinkEvent::Lost(e) => self.lose_link(&e).await,
        }
    }

    async fn lose_link(&mut self, error: &PublishError) {
        self.shared.set_error(error);
        self.shared.set_state(BrokerState::Down);
        self.shared.set_blocked(false);
        // What the lost connection had not confirmed goes out again on the next one.
        let unconfirmed = std::mem::take(&mut self.unconfirmed);
        self.resend.extend(unconfirmed.into_iter().map(|u| u.sent));
        // Returns of this link that were not matched yet belong to messages just put back.
        self.returned_ids.clear();
        self.held.link_lost(std::time::Instant::now());
        if let Some(link) = self.link.take() {
            link.close().await;
        }
        // The node just lost is the one least likely to answer: start with the next.
        self.node = (self.node + 1) % self.nodes.len();
        // A link that lasted was a working one, even if it had nothing to confirm: the
        // broker is back to be reconnected to at once.
        if self.connected_at.elapsed() >= RECONNECT_MAX {
            self.backoff.reset();
        }
        self.retry_at = Instant::now() + self.backoff.next_delay();
    }

    /// Publishes everything pending (and the probes due) and waits for the broker's
    /// confirms (until `deadline`). What is not confirmed goes back to `pending` for the
    /// next link, unless the broker blocked this one: then it stays in `unconfirmed`.
    /// What comes back unrouted is held (see `held`), and its drop count travels again.
    async fn publish(&mut self, deadline: Instant) {
        let Some(link) = self.link.as_ref() else {
            return;
        };
        if link.is_blocked() {
            self.shared.set_blocked(true);
            return;
        }
        let now = std::time::Instant::now();
        let mut let_go = LetGo::default();
        // Messages held through a block were sent first, so they are confirmed first. The
        // drop counts they carry, and those of the messages a lost link left to send
        // again, must not go out in new bodies too.
        let mut in_flight = std::mem::take(&mut self.unconfirmed);
        let mut again = std::mem::take(&mut self.resend);
        // After the broker closed a channel over one message it refused, the messages
        // that were in flight go out one at a time, until the culprit is known: it is the
        // one refused while alone. The others wait their turn, and nothing new goes out.
        let alone = in_flight.is_empty()
            && match again.iter().position(|s| s.suspect) {
                Some(i) => {
                    let suspect = again.remove(i);
                    self.resend = std::mem::replace(&mut again, vec![suspect]);
                    true
                }
                None => false,
            };
        let claimed: u64 = in_flight
            .iter()
            .map(|u| &u.sent)
            .chain(&again)
            .chain(&self.resend)
            .map(|s| s.dropped)
            .sum();
        let mut carry = self
            .shared
            .dropped
            .load(Ordering::Relaxed)
            .saturating_sub(self.reported_dropped + claimed);
        // A model whose batches come back sends only its probe; the rest waits (or, if
        // nobody watches it, is let go) instead of coming back again.
        let mut routed = Vec::new();
        let mut probes = Vec::new();
        let taken = if alone {
            Vec::new()
        } else {
            self.pending.take(self.config.max_batch_events)
        };
        for group in taken {
            if self.held.is_unrouted(&group.model) {
                probes.extend(self.held.withhold(group, now, &mut let_go));
            } else {
                routed.push(group);
            }
        }
        if !alone {
            probes.extend(self.held.probes(now));
        }
        let mut encoded: Vec<Encoded> = Vec::new();
        let mut unsendable = 0;
        // Probes last: the drop count rides in the first body, which should be one
        // that is likely to be routed.
        for group in routed {
            carry = encode(group, &self.source, carry, &mut encoded, &mut unsendable);
        }
        let first_probe = encoded.len();
        for group in probes {
            carry = encode(group, &self.source, carry, &mut encoded, &mut unsendable);
        }
        Shared::add(&self.shared.dropped, unsendable);

        // What a lost link left unconfirmed goes first, as it was; then the new bodies,
        // each under the next id.
        let fresh: Vec<Sent> = encoded
            .into_iter()
            .enumerate()
            .map(|(i, msg)| {
                self.next_id += 1;
                Sent {
                    group: msg.group,
                    body: Arc::new(msg.body),
                    dropped: msg.dropped,
                    id: self.next_id - 1,
                    probe: i >= first_probe,
                    suspect: false,
                    refusals: 0,
                }
            })
            .collect();
        let mut error: Option<PublishError> = None;
        // The broker closed the channel over a message it refused.
        let mut refused = false;
        for sent in again.into_iter().chain(fresh) {
            if error.is_some() {
                self.resend.push(sent);
                continue;
            }
            let body = Arc::clone(&sent.body);
            let mut sending = match link.publish(&sent.group.model, body, self.run, sent.id) {
                Ok(sending) => sending,
                Err(e) => {
                    // No routing key can carry this model: no retry would send it.
                    Shared::add(&self.shared.dropped, sent.group.events.len() as u64);
                    if sent.probe {
                        self.held.probe_failed(&sent.group.model);
                    }
                    self.shared.set_error(&e);
                    continue;
                }
            };
            match timeout_at(deadline, &mut sending).await {
                Ok(Ok(confirm)) => in_flight.push(Unconfirmed {
                    sent,
                    confirm: Box::pin(confirm),
                }),
                Ok(Err(e)) => {
                    refused |= refused_by_channel(&e);
                    error = Some(e.into());
                    refuse_or_resend(&mut self.resend, &self.shared, sent, alone && refused);
                }
                Err(_) => {
                    error = Some(PublishError::ConfirmTimeout(CONFIRM_TIMEOUT));
                    // Lapin holds its frames and sends them when it can: it is in flight.
                    in_flight.push(Unconfirmed {
                        sent,
                        confirm: Box::pin(async move { sending.await?.await }),
                    });
                }
            }
        }
        // Every confirm first: a returned message may ride on another message's confirm.
        let mut late = Vec::new();
        let mut settled = Vec::new();
        for mut msg in in_flight {
            match timeout_at(deadline, &mut msg.confirm).await {
                Ok(Ok(c)) => {
                    let (ack, returned) = match c {
                        Confirmation::Ack(r) => (true, r),
                        Confirmation::Nack(r) => (false, r),
                        Confirmation::NotRequested => (true, None),
                    };
                    // A return without our id cannot be matched; every message we send has one.
                    if let Some(id) = returned.and_then(|r| {
                        r.properties
                            .message_id()
                            .as_ref()
                            .and_then(|id| crate::link::message_number(id.as_str()))
                    }) {
                        self.returned_ids.insert(id);
                    }
                    settled.push((msg.sent, ack));
                }
                Ok(Err(e)) => {
                    refused |= refused_by_channel(&e);
                    error.get_or_insert(e.into());
                    if msg.sent.probe {
                        self.held.probe_failed(&msg.sent.group.model);
                    }
                    refuse_or_resend(&mut self.resend, &self.shared, msg.sent, alone && refused);
                }
                Err(_) => {
                    error.get_or_insert(PublishError::ConfirmTimeout(CONFIRM_TIMEOUT));
                    late.push(msg);
                }
            }
        }
        let now = std::time::Instant::now();
        if !settled.is_empty() {
            // The broker answers on this link: the next outage starts from short delays.
            self.backoff.reset();
        }
        for (msg, ack) in settled {
            let n = msg.group.events.len() as u64;
            let returned = self.returned_ids.remove(&msg.id);
            if !ack {
                // A nack means the broker will not take it; retrying would loop.
                Shared::add(&self.shared.dropped, n);
                self.shared.set_error(&PublishError::Nacked);
                if msg.probe {
                    self.held.probe_failed(&msg.group.model);
                }
            } else if returned {
                // Not published: no queue took it. Its drop count was not delivered
                // either, so it is carried by a later batch.
                Shared::add(&self.shared.returned, 1);
                self.held.returned(msg.group, msg.probe, now, &mut let_go);
            } else {
                Shared::add(&self.shared.published_events, n);
                Shared::add(&self.shared.published_batches, 1);
                self.reported_dropped += msg.dropped;
                if self.held.is_unrouted(&msg.group.model) {
                    // A queue takes this model again: what waited for one goes out now.
                    self.pending
                        .restore(self.held.routed(&msg.group.model), now);
                }
            }
        }
        self.count_let_go(let_go);
        Shared::set(&self.shared.held, self.held.len() as u64);
        // A block explains a silent broker: the link stays, and what it has not confirmed
        // yet is confirmed when the alarm clears. Otherwise the link is presumed dead.
        let blocked = self.link.as_ref().is_some_and(Link::is_blocked);
        if blocked {
            self.unconfirmed = late;
        } else {
            self.resend.extend(late.into_iter().map(|u| u.sent));
        }
        if refused && !alone {
            // Any of the messages that were in flight may be the one refused.
            for sent in &mut self.resend {
                sent.suspect = true;
            }
        }
        if let Some(e) = error {
            if blocked {
                self.shared.set_blocked(true);
                self.shared.set_error(&e);
            } else {
                self.lose_link(&e).await;
            }
        }
    }

    /// Delivers what it can until `timeout`, then counts the rest as dropped and closes.
    async fn stop(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        // Nothing recorded from now on is accepted, so the count below is final.
        self.events.close();
        self.drain_queue();
        self.held.probe_now(std::time::Instant::now());
        while !self.idle() && Instant::now() < deadline {
            if self.link.is_none() {
                if Instant::now() >= self.retry_at {
                    let _ = timeout_at(deadline, self.connect()).await;
                } else {
                    sleep_until(self.retry_at.min(deadline)).await;
                }
                continue;
            }
            if self.ready() {
                let sendable = !self.pending.is_empty()
                    || !self.unconfirmed.is_empty()
                    || !self.resend.is_empty()
                    || self.probe_due();
                if sendable {
                    self.publish(deadline.min(Instant::now() + CONFIRM_TIMEOUT))
                        .await;
                } else {
                    // Only held batches are left: wait for their next probe.
                    let wake = self
                        .held
                        .next_probe()
                        .map_or(deadline, Instant::from_std)
                        .min(deadline);
                    sleep_until(wake).await;
                }
            } else {
                // Blocked: wait for the broker to say something, or give up at the deadline.
                if let Ok(ev) = timeout_at(deadline, next_link_event(self.link.as_mut())).await {
                    self.on_link_event(ev).await;
                }
            }
        }
        let delivered = self.idle();
        let unconfirmed = self.unconfirmed.iter().map(|u| &u.sent);
        let unsent: usize = unconfirmed
            .chain(&self.resend)
            .map(|s| s.group.events.len())
            .sum();
        Shared::add(
            &self.shared.dropped,
            (self.pending.len() + unsent) as u64 + self.held.clear(),
        );
        Shared::set(&self.shared.held, 0);
        self.pending = Pending::default();
        self.unconfirmed.clear();
        self.resend.clear();
        for (w, _) in self.flush_waiters.drain(..) {
            let _ = w.try_send(delivered);
        }
        if let Some(link) = self.link.take() {
            link.close().await;
        }
        self.shared.set_state(BrokerState::Down);
    }
}

/// Puts a message the link failed to confirm back to be sent again, unless the broker
/// refused it (`refused`: it closed the channel while the message was alone in flight)
/// too often: then it is dropped and counted, and the drop count it carried goes out in
/// another message.
fn refuse_or_resend(resend: &mut Vec<Sent>, shared: &Shared, mut sent: Sent, refused: bool) {
    if refused {
        sent.refusals += 1;
        if sent.refusals >= MAX_REFUSALS {
            Shared::add(&shared.dropped, sent.group.events.len() as u64);
            return;
        }
    }
    resend.push(sent);
}

/// The broker closed the channel over what was sent on it (a soft error such as
/// `ACCESS_REFUSED` for a topic permission, `NOT_FOUND` for a missing exchange), which
/// the connection survives; unlike a connection error, it may be the message's fault.
fn refused_by_channel(e: &lapin::Error) -> bool {
    use lapin::protocol::AMQPErrorKind;
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if matches!(p.kind(), AMQPErrorKind::Soft(_)))
}

async fn next_link_event(link: Option<&mut Link>) -> LinkEvent {
    match link {
        Some(l) => l.next_event().await,
        None => std::future::pending().await,
    }
}
