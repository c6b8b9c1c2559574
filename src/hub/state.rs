//! The state shared by a hub's handles and subscriptions, and every operation that changes it.
//!
//! # Locking
//!
//! One hub-wide mutex (`state`) serializes everything that changes what the rings hold:
//! assigning positions, inserting, evicting, creating and reclaiming topics, counting
//! subscribers. Each topic has its own mutex; the order is always hub, then one topic.
//! Subscriptions read with only their topics' mutexes, so reading never contends with the hub
//! mutex, and no lock is held while a waker runs. To measure how far behind they are, they
//! load counters without any lock: each ring's indices and bytes pushed (`topic::Progress`)
//! and the hub's bytes pushed, stored under the mutexes that change them.
//!
//! # Order across topics
//!
//! A publish assigns the position and inserts the event under the hub mutex, then stores the
//! position in `published` before it releases the topic mutex. So every event at or below
//! `published` is in its ring, and an event a reader cannot see yet has a position above the
//! `published` value the reader loaded first. A reader that delivers only events at or below
//! that value, smallest first, delivers each subscription's events in position order with no
//! gap: a client's `Last-Event-ID` is then a precise resume point for every topic it follows.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::HubError;
use super::config::{HubBuilder, LagLimit, Limits};
use super::id::{Ids, random_epoch};
use super::marker::{self, ResetReason};
use super::stats::Counters;
use super::topic::{Entry, MAX_SUBSCRIBERS, Progress, Topic};
use crate::event::KEPT_SLACK;
use crate::{EncodedEvent, Event};

/// Memory a held event costs beyond its encoded bytes, charged against
/// [`max_memory`](super::HubBuilder::max_memory): its slot in its ring and its entry in the
/// hub's eviction index (a B-tree), each counted twice for the spare room rings and nodes keep;
/// its buffer's allocation header and rounding and the shared header its first clone adds
/// (64); and the room a buffer may keep beyond its bytes ([`KEPT_SLACK`], which also covers
/// the part of the longest id's room a shorter id leaves).
pub(crate) const EVENT_OVERHEAD: usize =
    2 * size_of::<Entry>() + 2 * size_of::<(u64, Held)>() + 64 + KEPT_SLACK;

/// Memory a topic costs while it holds events, beyond its name's bytes: the topic and its
/// counters with their reference counts, the smallest buffer its ring allocates (four slots),
/// its entry in the hub's map (counted twice for the map's spare room) and its name's header.
pub(crate) const TOPIC_OVERHEAD: usize = size_of::<Topic>()
    + size_of::<Progress>()
    + 4 * size_of::<Entry>()
    + 2 * size_of::<(Arc<str>, Arc<Topic>)>()
    + 64;

/// What holding an event of `len` encoded bytes costs.
fn event_charge(len: usize) -> usize {
    len.saturating_add(EVENT_OVERHEAD)
}

/// What a topic named `name` costs while it holds events.
fn topic_charge(name: &str) -> usize {
    name.len().saturating_add(TOPIC_OVERHEAD)
}

pub(crate) struct Inner {
    pub(crate) limits: Limits,
    /// The lag limit in each limit's units, from `limits`; `None` when off.
    pub(crate) lag_limit: Option<LagLimit>,
    pub(crate) ids: Ids,
    state: Mutex<State>,
    /// The newest position inserted in its ring; every event at or below it is visible.
    published: AtomicU64,
    /// Encoded bytes added to the rings since the hub was built (the next entry's hub offset),
    /// changed under the state mutex; subscriptions measure hub-wide lag with it.
    bytes_pushed: AtomicU64,
    /// What the hub charged against its memory limit since it was built (the next entry's
    /// memory offset): every event's charge, and a topic's when it starts holding events.
    /// Changed under the state mutex; subscriptions measure memory lag with it.
    memory_pushed: AtomicU64,
    closed: AtomicBool,
    /// Cancelled when the hub closes; a child of the shutdown token when one was given.
    closed_token: CancellationToken,
    /// Whether a shutdown token was given.
    external_shutdown: bool,
    /// Set when a task watches the shutdown token for the whole hub (see
    /// [`Inner::watch_shutdown`]); otherwise each subscription watches it.
    watched: AtomicBool,
    pub(crate) counters: Counters,
}

struct State {
    topics: HashMap<Arc<str>, Arc<Topic>>,
    /// Every event held in a ring, by position: the hub-wide age and byte eviction order.
    held: BTreeMap<u64, Held>,
    bytes: usize,
    /// What the held events and the topics holding them cost (see [`EVENT_OVERHEAD`] and
    /// [`TOPIC_OVERHEAD`]), bounded by `max_memory`.
    memory: usize,
    /// Idle topics kept to answer `Last-Event-ID`, oldest first.
    idle: BTreeMap<u64, Idle>,
    next_idle_key: u64,
    /// The newest position lost by a topic the hub no longer remembers.
    forgotten_upto: u64,
    last_seq: u64,
    subscribers: usize,
}

struct Held {
    at: Instant,
    topic: Arc<Topic>,
}

struct Idle {
    since: Instant,
    topic: Arc<Topic>,
}

/// What [`Inner::hub_pressure`] found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HubPressure {
    /// The hub's bytes pushed, when it holds more bytes than the lag limit.
    pub(crate) bytes_pushed: Option<u64>,
    /// The memory the hub charged so far, when it holds more than the lag limit.
    pub(crate) memory_pushed: Option<u64>,
}

impl HubPressure {
    /// Whether an entry pushed at these hub offsets is further behind than `limit`.
    pub(crate) fn beyond(&self, entry: &Entry, limit: &LagLimit) -> bool {
        self.bytes_pushed
            .is_some_and(|pushed| pushed.saturating_sub(entry.hub_offset) > limit.hub_bytes)
            || self
                .memory_pushed
                .is_some_and(|pushed| pushed.saturating_sub(entry.memory_offset) > limit.hub_memory)
    }
}

/// Where a new subscription starts.
#[derive(Clone, Copy)]
enum Start {
    Fresh,
    After(u64),
    Reset(ResetReason),
    /// After this position, which the rings cannot serve (yet): a backend's catch-up does.
    Deferred(u64),
}

/// A subscription as registered: its place in each topic, and the event to yield first.
pub(crate) struct Opened {
    pub(crate) members: Vec<Joined>,
    pub(crate) first: Option<EncodedEvent>,
    /// Whether the client has an id to resume from before the first event: it sent a
    /// `Last-Event-ID`, or `first` carries one.
    pub(crate) has_id: bool,
    /// Set when the subscription must catch up from the backend after this position before
    /// reading its rings (whose cursors are then placed by the catch-up).
    pub(crate) resume_after: Option<u64>,
}

/// A subscription's place in one topic.
pub(crate) struct Joined {
    pub(crate) topic: Arc<Topic>,
    /// Its slot in the topic's waiter table, held until it unsubscribes.
    pub(crate) slot: u32,
    /// The topic-local index of the next entry to read.
    pub(crate) next: u64,
}

/// An event read from a backend, encoded with its id line, at its position.
#[cfg(feature = "redis")]
pub(crate) struct Remote {
    pub(crate) pos: u64,
    pub(crate) topic: String,
    pub(crate) event: EncodedEvent,
}

/// How a catch-up from a backend continues after a position.
#[cfg(feature = "redis")]
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// The rings hold everything after it: read them from these cursors.
    Live(Vec<u64>),
    /// At least one ring lost events after it, up to `upto`: fetch those from the backend.
    Fetch { upto: u64 },
    /// It is after everything this hub has seen so far.
    Ahead,
}

impl Inner {
    pub(crate) fn new(builder: HubBuilder) -> Inner {
        let ids = Ids::Epoch(builder.epoch.unwrap_or_else(random_epoch));
        Inner::with_ids(builder, ids, 0)
    }

    /// A hub whose ids are a Redis stream's entry ids, which has seen everything up to `start`
    /// (and holds none of it).
    #[cfg(feature = "redis")]
    pub(crate) fn new_stream(builder: HubBuilder, start: u64) -> Inner {
        Inner::with_ids(builder, Ids::Stream, start)
    }

    fn with_ids(builder: HubBuilder, ids: Ids, start: u64) -> Inner {
        let external_shutdown = builder.shutdown.is_some();
        let closed_token = match builder.shutdown {
            Some(token) => token.child_token(),
            None => CancellationToken::new(),
        };
        Inner {
            lag_limit: builder.limits.lag_limit(),
            limits: builder.limits,
            ids,
            state: Mutex::new(State {
                topics: HashMap::new(),
                held: BTreeMap::new(),
                bytes: 0,
                memory: 0,
                idle: BTreeMap::new(),
                next_idle_key: 0,
                // Nothing before `start` is held: a topic created later reports it as lost.
                forgotten_upto: start,
                last_seq: start,
                subscribers: 0,
            }),
            published: AtomicU64::new(start),
            bytes_pushed: AtomicU64::new(0),
            memory_pushed: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            closed_token,
            external_shutdown,
            watched: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest visible position.
    pub(crate) fn watermark(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Encoded bytes added to the rings since the hub was built.
    pub(crate) fn bytes_pushed(&self) -> u64 {
        self.bytes_pushed.load(Ordering::Acquire)
    }

    /// The hub-wide counters a lagging subscription compares its oldest unread event with,
    /// each only while the hub holds more than `limit` allows in its unit, i.e. while the
    /// matching hub limit may soon evict that event.
    pub(crate) fn hub_pressure(&self, limit: &LagLimit) -> HubPressure {
        let over = |held: &std::sync::atomic::AtomicUsize, limit: u64| {
            u64::try_from(held.load(Ordering::Relaxed)).unwrap_or(u64::MAX) > limit
        };
        HubPressure {
            bytes_pushed: over(&self.counters.bytes_held, limit.hub_bytes)
                .then(|| self.bytes_pushed()),
            memory_pushed: over(&self.counters.memory_held, limit.hub_memory)
                .then(|| self.memory_pushed.load(Ordering::Acquire)),
        }
    }

    pub(crate) fn id_of(&self, seq: u64) -> String {
        self.ids.format(seq)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the hub if its shutdown token was cancelled.
    pub(crate) fn check_shutdown(&self) {
        if self.external_shutdown && !self.is_closed() && self.closed_token.is_cancelled() {
            self.close();
        }
    }

    /// Watches the shutdown token, if one was given, from one task for the whole hub, so that
    /// subscriptions need no watch of their own (an allocation each). Without a Tokio runtime
    /// at hand, each subscription watches the token instead. The task ends when the hub
    /// closes, for whatever reason, and does not keep the hub alive.
    pub(crate) fn watch_shutdown(inner: &Arc<Inner>) {
        if !inner.external_shutdown {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let closed = inner.closed_token.clone();
        let weak = Arc::downgrade(inner);
        runtime.spawn(async move {
            // A child of the shutdown token: cancelled by it, or by `close`.
            closed.cancelled().await;
            if let Some(inner) = weak.upgrade() {
                inner.close();
            }
        });
        inner.watched.store(true, Ordering::Release);
    }

    /// A future that a subscription polls when a shutdown token was given and no task
    /// watches it for the whole hub.
    pub(crate) fn shutdown_future(&self) -> Option<Pin<Box<WaitForCancellationFutureOwned>>> {
        (self.external_shutdown && !self.watched.load(Ordering::Acquire))
            .then(|| Box::pin(self.closed_token.clone().cancelled_owned()))
    }

    pub(crate) fn closed_future(&self) -> WaitForCancellationFutureOwned {
        self.closed_token.clone().cancelled_owned()
    }

    pub(crate) fn validate_topic(&self, name: &str) -> Result<(), HubError> {
        if name.is_empty() {
            return Err(HubError::EmptyTopic);
        }
        let limit = self.limits.max_topic_len;
        if name.len() > limit {
            return Err(HubError::TopicTooLong {
                len: name.len(),
                limit,
            });
        }
        Ok(())
    }

    /// The largest encoded event topic `topic` can hold: within a topic's and the hub's byte
    /// limits and, with its own bookkeeping and its topic's, within `max_memory`. The topic is
    /// charged whether or not it holds events already, so that the answer depends only on
    /// the limits and the name.
    pub(crate) fn max_event_len(&self, topic: &str) -> usize {
        let limits = &self.limits;
        let memory = limits
            .max_memory
            .saturating_sub(EVENT_OVERHEAD)
            .saturating_sub(topic_charge(topic));
        limits.max_topic_bytes.min(limits.max_bytes).min(memory)
    }

    /// Checks that an event for `topic` of `lines` bytes (without its id line and closing blank line) fits
    /// this hub once closed with the longest id it can give, so that whether an event is
    /// admitted never depends on the id it happens to get.
    pub(crate) fn admit(&self, topic: &str, lines: usize) -> Result<(), HubError> {
        let len = lines.saturating_add(self.ids.max_suffix());
        let limit = self.max_event_len(topic);
        if len > limit {
            return Err(HubError::EventTooLarge { len, limit });
        }
        Ok(())
    }

    pub(crate) fn publish(&self, name: &str, event: Event) -> Result<String, HubError> {
        self.validate_topic(name)?;
        self.check_shutdown();
        if self.is_closed() {
            return Err(HubError::Closed);
        }
        self.admit(name, event.as_bytes().len())?;
        // Copied to its final buffer before the lock; under it only the id line is appended.
        let lines = event.into_lines_with_room(self.ids.max_suffix());
        let mut wakers = Vec::new();
        let id;
        {
            let mut st = self.lock_state();
            if self.is_closed() {
                return Err(HubError::Closed);
            }
            let now = Instant::now();
            self.expire(&mut st, now);
            let Some(seq) = st.last_seq.checked_add(1) else {
                return Err(HubError::Closed);
            };
            id = self.id_of(seq);
            let encoded = EncodedEvent::close_with_id(lines, &id);
            self.insert_locked(&mut st, name, seq, encoded, now, &mut wakers);
            self.sync_counters(&st);
        }
        for waker in wakers {
            waker.wake();
        }
        Ok(id)
    }

    /// Appends `encoded` at position `seq`, above every position used so far, to topic `name`
    /// (created if needed), evicts what the limits require, and makes it visible. The caller
    /// wakes `wakers` after unlocking.
    fn insert_locked(
        &self,
        st: &mut State,
        name: &str,
        seq: u64,
        encoded: EncodedEvent,
        now: Instant,
        wakers: &mut Vec<Waker>,
    ) {
        let len = encoded.len();
        let topic = self.topic_or_create(st, name);
        {
            let mut ring = topic.lock();
            let had_events = !ring.is_empty();
            // Both only changed under the state mutex, which is held.
            let hub_offset = self.bytes_pushed.load(Ordering::Relaxed);
            let memory_offset = self.memory_pushed.load(Ordering::Relaxed);
            if ring.push(seq, encoded, hub_offset, memory_offset) {
                self.bytes_pushed
                    .store(hub_offset.saturating_add(len as u64), Ordering::Release);
                let mut charged = event_charge(len);
                if !had_events {
                    charged = charged.saturating_add(topic_charge(topic.name()));
                }
                self.memory_pushed.store(
                    memory_offset.saturating_add(charged as u64),
                    Ordering::Release,
                );
                st.held.insert(
                    seq,
                    Held {
                        at: now,
                        topic: Arc::clone(&topic),
                    },
                );
                st.bytes += len;
                st.memory = st.memory.saturating_add(event_charge(len));
            }
            while ring.len() > self.limits.capacity || ring.bytes() > self.limits.max_topic_bytes {
                let Some((pos, len)) = ring.pop_front() else {
                    break;
                };
                st.held.remove(&pos);
                release_event(st, len);
            }
            charge_topic(st, &topic, had_events, !ring.is_empty());
            st.last_seq = seq;
            // Stored before the topic unlocks: a reader that sees the event sees this too.
            self.published.store(seq, Ordering::Release);
            ring.take_waiters(wakers);
        }
        while st.bytes > self.limits.max_bytes || st.memory > self.limits.max_memory {
            if !self.evict_oldest(st, now) {
                break;
            }
        }
        self.counters
            .events_published
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Inserts events read from the backend, in increasing position order, then records that
    /// everything up to `seen` was read (skipped entries included). An event larger than this
    /// hub may hold is recorded as lost in its topic, so that its subscribers fall behind and
    /// resume from the backend instead of silently missing it. Returns how many such events
    /// there were.
    #[cfg(feature = "redis")]
    pub(crate) fn insert_remote(&self, events: impl IntoIterator<Item = Remote>, seen: u64) -> u64 {
        let mut wakers = Vec::new();
        let mut too_large = 0;
        {
            let mut st = self.lock_state();
            if self.is_closed() {
                return 0;
            }
            let now = Instant::now();
            self.expire(&mut st, now);
            for Remote { pos, topic, event } in events {
                if pos <= st.last_seq {
                    continue;
                }
                let limit = self.max_event_len(&topic);
                if event.len() > limit {
                    tracing::warn!(
                        id = %self.id_of(pos),
                        len = event.len(),
                        limit,
                        "event larger than this hub holds; its topic's subscribers resume from Redis",
                    );
                    too_large += 1;
                    let topic = self.topic_or_create(&mut st, &topic);
                    self.lose_all(&mut st, &topic, pos, &mut wakers);
                    st.last_seq = pos;
                    self.published.store(pos, Ordering::Release);
                    self.settle(&mut st, &topic, now);
                    continue;
                }
                self.insert_locked(&mut st, &topic, pos, event, now, &mut wakers);
            }
            if seen > st.last_seq {
                st.last_seq = seen;
                self.published.store(seen, Ordering::Release);
            }
            self.sync_counters(&st);
        }
        for waker in wakers {
            waker.wake();
        }
        too_large
    }

    /// Records that every position up to `upto` may have been lost in every topic (the backend
    /// dropped entries before this hub read them): rings are emptied and every subscription
    /// falls behind, so the overflow policy applies and resumes are answered precisely.
    #[cfg(feature = "redis")]
    pub(crate) fn lose_everything_upto(&self, upto: u64) {
        let mut wakers = Vec::new();
        {
            let mut st = self.lock_state();
            if self.is_closed() {
                return;
            }
            let now = Instant::now();
            let topics: Vec<Arc<Topic>> = st.topics.values().cloned().collect();
            for topic in &topics {
                self.lose_all(&mut st, topic, upto, &mut wakers);
            }
            st.forgotten_upto = st.forgotten_upto.max(upto);
            if upto > st.last_seq {
                st.last_seq = upto;
                self.published.store(upto, Ordering::Release);
            }
            for topic in &topics {
                self.settle(&mut st, topic, now);
            }
            self.sync_counters(&st);
        }
        for waker in wakers {
            waker.wake();
        }
    }

    /// Empties `topic`'s ring and records everything up to `upto` as lost in it.
    #[cfg(feature = "redis")]
    fn lose_all(&self, st: &mut State, topic: &Arc<Topic>, upto: u64, wakers: &mut Vec<Waker>) {
        let mut ring = topic.lock();
        let had_events = !ring.is_empty();
        ring.lose_all(upto, |pos, len| {
            st.held.remove(&pos);
            release_event(st, len);
        });
        charge_topic(st, topic, had_events, false);
        ring.take_waiters(wakers);
    }

    /// Where a catch-up that delivered everything up to `after` continues, for a subscription
    /// following `topics`.
    #[cfg(feature = "redis")]
    pub(crate) fn resume_plan(&self, topics: &[Arc<Topic>], after: u64) -> Plan {
        // Every event at or below the watermark is in its ring (see the module docs).
        if after > self.watermark() {
            return Plan::Ahead;
        }
        let mut cursors = Vec::with_capacity(topics.len());
        let mut upto: Option<u64> = None;
        for topic in topics {
            let ring = topic.lock();
            let lost = ring.lost_upto();
            if lost > after {
                upto = Some(upto.map_or(lost, |u| u.max(lost)));
            } else if upto.is_none() {
                cursors.push(ring.index_after(after));
            }
        }
        match upto {
            Some(upto) => Plan::Fetch { upto },
            None => Plan::Live(cursors),
        }
    }

    /// Registers a subscription to `names` (non-empty, validated, sorted, deduplicated).
    pub(crate) fn subscribe(
        &self,
        names: &[&str],
        last_event_id: Option<&str>,
    ) -> Result<Opened, HubError> {
        self.check_shutdown();
        let mut start = match last_event_id {
            None | Some("") => Start::Fresh,
            Some(text) => match self.ids.parse(text) {
                Err(reason) => Start::Reset(reason),
                Ok(seq) => Start::After(seq),
            },
        };
        // With a backend, a position the rings cannot serve is caught up from it.
        let backend = self.ids.has_backend();
        let mut st = self.lock_state();
        if self.is_closed() {
            return Err(HubError::Closed);
        }
        // Each topic's subscribers fit its waiter table.
        let limit = self.limits.max_subscribers.min(MAX_SUBSCRIBERS);
        if st.subscribers >= limit {
            return Err(HubError::TooManySubscribers { limit });
        }
        self.expire(&mut st, Instant::now());
        let current = st.last_seq;
        if let Start::After(seq) = start {
            if seq > current {
                start = if backend {
                    Start::Deferred(seq)
                } else {
                    Start::Reset(ResetReason::Future)
                };
            }
        }
        let mut stale = false;
        let mut members: Vec<Joined> = names
            .iter()
            .map(|name| {
                let topic = self.topic_or_create(&mut st, name);
                let slot = {
                    let mut ring = topic.lock();
                    if let Start::After(seq) = start {
                        stale |= ring.lost_upto() > seq;
                    }
                    ring.add_subscriber()
                };
                Joined {
                    topic,
                    slot,
                    next: 0,
                }
            })
            .collect();
        if stale {
            start = match start {
                Start::After(seq) if backend => Start::Deferred(seq),
                _ => Start::Reset(ResetReason::Stale),
            };
        }
        for member in &mut members {
            let ring = member.topic.lock();
            member.next = match start {
                Start::After(seq) => ring.index_after(seq),
                Start::Fresh | Start::Reset(_) | Start::Deferred(_) => ring.tail(),
            };
        }
        st.subscribers += 1;
        self.sync_counters(&st);
        drop(st);
        let first = match start {
            Start::Reset(reason) => {
                self.counters.resets.fetch_add(1, Ordering::Relaxed);
                Some(marker::reset(reason, &self.id_of(current)))
            }
            Start::Fresh if self.limits.initial_id => Some(marker::position(&self.id_of(current))),
            Start::Fresh | Start::After(_) | Start::Deferred(_) => None,
        };
        Ok(Opened {
            members,
            has_id: first.is_some() || !matches!(start, Start::Fresh),
            first,
            resume_after: match start {
                Start::Deferred(seq) => Some(seq),
                _ => None,
            },
        })
    }

    /// Unregisters a subscription from its topics, given with the slot it holds in each.
    pub(crate) fn unsubscribe<'a>(&self, topics: impl Iterator<Item = (&'a Arc<Topic>, u32)>) {
        let mut old_wakers = Vec::new();
        let mut st = self.lock_state();
        let now = Instant::now();
        for (topic, slot) in topics {
            old_wakers.extend(topic.lock().remove_subscriber(slot));
            self.settle(&mut st, topic, now);
        }
        st.subscribers = st.subscribers.saturating_sub(1);
        self.sync_counters(&st);
        drop(st);
        drop(old_wakers);
    }

    /// Closes the hub: refuses further use, releases every held event and wakes every
    /// subscription, which then ends.
    pub(crate) fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut wakers = Vec::new();
        {
            let mut st = self.lock_state();
            for topic in st.topics.values() {
                let mut ring = topic.lock();
                ring.take_waiters(&mut wakers);
                ring.clear();
                ring.idle_key = None;
            }
            st.held.clear();
            st.bytes = 0;
            st.memory = 0;
            st.idle.clear();
            st.topics.retain(|_, topic| topic.lock().subscribers() > 0);
            self.sync_counters(&st);
        }
        self.closed_token.cancel();
        for waker in wakers {
            waker.wake();
        }
    }

    /// The topic named `name`, created if needed; no longer idle either way.
    fn topic_or_create(&self, st: &mut State, name: &str) -> Arc<Topic> {
        if let Some(topic) = st.topics.get(name) {
            let topic = Arc::clone(topic);
            let idle_key = topic.lock().idle_key.take();
            if let Some(key) = idle_key {
                st.idle.remove(&key);
            }
            return topic;
        }
        let name: Arc<str> = Arc::from(name);
        // A topic the hub does not know may have lost anything the hub forgot.
        let topic = Arc::new(Topic::new(Arc::clone(&name), st.forgotten_upto));
        st.topics.insert(name, Arc::clone(&topic));
        topic
    }

    /// Reclaims `topic` if it has no subscribers and holds nothing: forgotten at once if it
    /// knows nothing the hub does not (it never lost an event after `forgotten_upto`),
    /// otherwise kept as idle.
    fn settle(&self, st: &mut State, topic: &Arc<Topic>, now: Instant) {
        let mut ring = topic.lock();
        if ring.subscribers() > 0 || !ring.is_empty() || ring.idle_key.is_some() {
            return;
        }
        if self.is_closed() || ring.lost_upto() <= st.forgotten_upto {
            drop(ring);
            remove_topic(st, topic);
            return;
        }
        let key = st.next_idle_key;
        st.next_idle_key += 1;
        ring.idle_key = Some(key);
        drop(ring);
        st.idle.insert(
            key,
            Idle {
                since: now,
                topic: Arc::clone(topic),
            },
        );
        while st.idle.len() > self.limits.max_idle_topics {
            match st.idle.pop_first() {
                Some((_, idle)) => forget(st, &idle.topic),
                None => break,
            }
        }
    }

    /// Evicts the hub's oldest event; `false` if it holds none.
    fn evict_oldest(&self, st: &mut State, now: Instant) -> bool {
        let Some((pos, held)) = st.held.pop_first() else {
            return false;
        };
        {
            let mut ring = held.topic.lock();
            let had_events = !ring.is_empty();
            while ring.front_pos().is_some_and(|front| front <= pos) {
                let Some((evicted, len)) = ring.pop_front() else {
                    break;
                };
                release_event(st, len);
                if evicted != pos {
                    st.held.remove(&evicted);
                }
            }
            charge_topic(st, &held.topic, had_events, !ring.is_empty());
        }
        self.settle(st, &held.topic, now);
        true
    }

    /// Evicts events and forgets idle topics older than `max_age`.
    fn expire(&self, st: &mut State, now: Instant) {
        let Some(age) = self.limits.max_age else {
            return;
        };
        while st
            .held
            .first_key_value()
            .is_some_and(|(_, held)| now.saturating_duration_since(held.at) >= age)
        {
            self.evict_oldest(st, now);
        }
        while st
            .idle
            .first_key_value()
            .is_some_and(|(_, idle)| now.saturating_duration_since(idle.since) >= age)
        {
            if let Some((_, idle)) = st.idle.pop_first() {
                forget(st, &idle.topic);
            }
        }
    }

    fn sync_counters(&self, st: &State) {
        let c = &self.counters;
        c.subscribers.store(st.subscribers, Ordering::Relaxed);
        c.topics.store(st.topics.len(), Ordering::Relaxed);
        c.idle_topics.store(st.idle.len(), Ordering::Relaxed);
        c.events_held.store(st.held.len(), Ordering::Relaxed);
        c.bytes_held.store(st.bytes, Ordering::Relaxed);
        c.memory_held.store(st.memory, Ordering::Relaxed);
    }
}

/// Uncharges an evicted event of `len` encoded bytes.
fn release_event(st: &mut State, len: usize) {
    st.bytes = st.bytes.saturating_sub(len);
    st.memory = st.memory.saturating_sub(event_charge(len));
}

/// Charges or uncharges `topic` when it starts or stops holding events.
fn charge_topic(st: &mut State, topic: &Topic, had_events: bool, has_events: bool) {
    match (had_events, has_events) {
        (false, true) => st.memory = st.memory.saturating_add(topic_charge(topic.name())),
        (true, false) => st.memory = st.memory.saturating_sub(topic_charge(topic.name())),
        _ => {}
    }
}

/// Forgets an idle topic (already taken out of the idle list), folding what it lost into the
/// hub-wide record.
fn forget(st: &mut State, topic: &Arc<Topic>) {
    let lost = {
        let mut ring = topic.lock();
        ring.idle_key = None;
        ring.lost_upto()
    };
    st.forgotten_upto = st.forgotten_upto.max(lost);
    remove_topic(st, topic);
}

/// Removes `topic` from the map if the map still holds this very topic.
fn remove_topic(st: &mut State, topic: &Arc<Topic>) {
    if st
        .topics
        .get(topic.name())
        .is_some_and(|held| Arc::ptr_eq(held, topic))
    {
        st.topics.remove(topic.name());
        // Give back the table's memory after mass reclaim; halving keeps it amortized.
        let capacity = st.topics.capacity();
        if capacity > 1024 && st.topics.len() < capacity / 4 {
            st.topics.shrink_to(st.topics.len() * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The figures `HubBuilder::max_memory` documents, on 64-bit targets.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn documented_overheads() {
        assert_eq!((EVENT_OVERHEAD, TOPIC_OVERHEAD), (288, 576));
    }
}
