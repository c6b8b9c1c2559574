//! [`Subscription`]: the stream of one client's events, merged across its topics.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, RawWakerVTable, Waker};

use futures_core::{FusedStream, Stream};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::OverflowPolicy;
use super::config::LagLimit;
use super::marker;
use super::state::{HubPressure, Inner, Joined, Opened};
use super::topic::{Entry, Read, Topic};
use crate::EncodedEvent;

/// Events copied out of a ring per lock.
const BATCH: usize = 32;

/// A stream of the encoded events of one or more topics, from
/// [`Hub::subscribe`](super::Hub::subscribe).
///
/// Events of all followed topics come in one stream, in id order. Each item is the event's
/// complete encoding, shared with the hub's ring and every other subscriber (a reference count,
/// no copy), ready for [`Sse::new`](crate::Sse::new) or [`SseBody`](crate::SseBody).
///
/// The stream ends (returns `None`, and keeps returning it) when:
/// - the hub closes ([`Hub::close`](super::Hub::close), its shutdown token, or its last handle
///   dropped): at the next poll, between two events; events not read yet are not delivered;
/// - under [`OverflowPolicy::End`], it fell behind: past the
///   [lag limit](super::HubBuilder::lag_limit_percent) when polled, while everything it had
///   not delivered is still held (the client's next `Last-Event-ID` resumes without loss), or
///   so far that events it had not read were evicted (after the events it had already copied
///   out, in order; the client's resume then gets a `reset` marker).
///
/// Dropping it unsubscribes at once. A subscription that is never polled costs no memory
/// beyond its cursors: it does not keep events alive, it only loses its place.
pub struct Subscription {
    inner: Arc<Inner>,
    /// Released (empty) once the stream has ended.
    members: Members,
    /// Rarely used state: what comes before the rings, and a shutdown watch of its own.
    cold: Option<Box<Cold>>,
    /// The waker left in the slot of a one-topic subscription when its cursor reached the
    /// ring's tail, while the slot may still hold it: a poll with the same waker that finds
    /// the tail unmoved has nothing to read and is already registered, so it returns
    /// `Pending` without locking the ring. Cleared whenever the cursor moves.
    parked: Option<WakerId>,
    /// Set once a poll found the subscription within the lag limit: only then does the limit
    /// apply, so a resume that starts with a long replay is not ended for its backlog.
    armed: bool,
    /// Whether the client has an id to resume from: its `Last-Event-ID`, a marker's, or the
    /// last event's. Ending it before then would lose what it has not read.
    has_id: bool,
}

/// What a subscription rarely needs, boxed so that a plain subscription stays small.
struct Cold {
    /// A marker to yield first.
    first: Option<EncodedEvent>,
    /// Events to fetch from the backend before reading the rings.
    #[cfg(feature = "redis")]
    catch_up: Option<super::redis::CatchUp>,
    /// The hub's shutdown token, watched by the subscription itself when no task watches it
    /// for the whole hub.
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl Cold {
    /// Whether something is still to be delivered before the rings.
    fn has_prelude(&self) -> bool {
        #[cfg(feature = "redis")]
        if self.catch_up.is_some() {
            return true;
        }
        self.first.is_some()
    }
}

/// A waker, identified as [`Waker::will_wake`] does: by its data pointer and vtable address.
///
/// It stands for a waker left in a ring slot. While the slot holds that clone, no other waker
/// can take its identity (the clone keeps its task alive), so an equal identity is the same
/// waker. Whatever empties the slot first moves the ring's tail or closes the hub, which
/// [`Subscription::is_parked`] checks; and a task that got the same identity after the old
/// waker was dropped sees that change, since the drop came after it.
#[derive(Clone, Copy)]
struct WakerId {
    vtable: &'static RawWakerVTable,
    data: usize,
}

impl WakerId {
    fn of(waker: &Waker) -> WakerId {
        WakerId {
            vtable: waker.vtable(),
            data: waker.data().addr(),
        }
    }

    fn matches(self, waker: &Waker) -> bool {
        self.data == waker.data().addr() && std::ptr::eq(self.vtable, waker.vtable())
    }
}

/// The followed topics, in name order: the common single topic inline, without an allocation.
enum Members {
    One(Member),
    /// Several topics; none once the subscription has ended and released them.
    Many(Box<[Member]>),
}

impl Members {
    fn new(mut joined: Vec<Joined>) -> Members {
        if joined.len() == 1 {
            if let Some(one) = joined.pop() {
                return Members::One(Member::new(one));
            }
        }
        Members::Many(joined.into_iter().map(Member::new).collect())
    }

    fn released() -> Members {
        Members::Many(Box::default())
    }

    fn as_slice(&self) -> &[Member] {
        match self {
            Members::One(member) => std::slice::from_ref(member),
            Members::Many(members) => members,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Member] {
        match self {
            Members::One(member) => std::slice::from_mut(member),
            Members::Many(members) => members,
        }
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }
}

/// One followed topic: its ring, the slot the subscription holds in its waiter table, the
/// cursor into it, and the entries copied out but not yet yielded (those just before `next`).
struct Member {
    topic: Arc<Topic>,
    next: u64,
    /// The entries copied out and not yielded yet, newest first (the oldest last); `None` when
    /// there are none, so that nothing is held between bursts. A one-topic subscription that
    /// reads a single entry yields it without buffering it.
    buf: Option<Box<Buffered>>,
    slot: u32,
}

/// Entries copied out of a ring: the common single entry in the box itself (one allocation),
/// a burst in a vector, newest first.
enum Buffered {
    One(Entry),
    Many(Vec<Entry>),
}

impl Buffered {
    /// `entries` (oldest first) to yield one by one; `None` if there are none.
    fn of(
        entries: impl ExactSizeIterator<Item = Entry> + DoubleEndedIterator,
    ) -> Option<Box<Self>> {
        let mut entries = entries;
        match entries.len() {
            0 => None,
            1 => entries.next().map(|entry| Box::new(Buffered::One(entry))),
            _ => Some(Box::new(Buffered::Many(entries.rev().collect()))),
        }
    }

    fn len(&self) -> usize {
        match self {
            Buffered::One(_) => 1,
            Buffered::Many(entries) => entries.len(),
        }
    }

    /// The oldest entry.
    fn oldest(&self) -> Option<&Entry> {
        match self {
            Buffered::One(entry) => Some(entry),
            Buffered::Many(entries) => entries.last(),
        }
    }
}

impl Member {
    fn new(joined: Joined) -> Member {
        Member {
            topic: joined.topic,
            next: joined.next,
            buf: None,
            slot: joined.slot,
        }
    }

    /// How many entries are buffered.
    fn buffered(&self) -> usize {
        self.buf.as_ref().map_or(0, |buf| buf.len())
    }

    /// The oldest buffered entry.
    fn oldest(&self) -> Option<&Entry> {
        self.buf.as_ref()?.oldest()
    }

    /// Takes the oldest buffered entry.
    fn pop(&mut self) -> Option<Entry> {
        if let Buffered::Many(entries) = &mut **self.buf.as_mut()? {
            let entry = entries.pop();
            if !entries.is_empty() {
                return entry;
            }
            self.buf = None;
            return entry;
        }
        match *self.buf.take()? {
            Buffered::One(entry) => Some(entry),
            Buffered::Many(_) => None,
        }
    }

    /// Drops every buffered entry.
    fn clear(&mut self) {
        self.buf = None;
    }
}

impl Subscription {
    pub(crate) fn new(inner: Arc<Inner>, opened: Opened) -> Subscription {
        let shutdown = inner.shutdown_future();
        let cold = (opened.first.is_some() || shutdown.is_some()).then(|| {
            Box::new(Cold {
                first: opened.first,
                #[cfg(feature = "redis")]
                catch_up: None,
                shutdown,
            })
        });
        Subscription {
            members: Members::new(opened.members),
            cold,
            parked: None,
            armed: false,
            has_id: opened.has_id,
            inner,
        }
    }

    /// The topics followed, in the order of the cursors a catch-up returns.
    #[cfg(feature = "redis")]
    pub(crate) fn topics(&self) -> Vec<Arc<Topic>> {
        self.members
            .as_slice()
            .iter()
            .map(|m| Arc::clone(&m.topic))
            .collect()
    }

    /// Makes the subscription deliver what `catch_up` fetches before reading its rings.
    #[cfg(feature = "redis")]
    pub(crate) fn set_catch_up(&mut self, catch_up: super::redis::CatchUp) {
        match &mut self.cold {
            Some(cold) => cold.catch_up = Some(catch_up),
            None => {
                self.cold = Some(Box::new(Cold {
                    first: None,
                    catch_up: Some(catch_up),
                    shutdown: None,
                }));
            }
        }
    }

    /// The number of topics this subscription follows (after removing duplicates); `0` once
    /// it has ended.
    pub fn topic_count(&self) -> usize {
        self.members.as_slice().len()
    }

    /// Whether the stream has ended.
    pub fn is_ended(&self) -> bool {
        self.members.is_empty()
    }

    /// Drops the rarely used state once it holds nothing more.
    fn settle_cold(&mut self) {
        let settled = self
            .cold
            .as_ref()
            .is_some_and(|cold| !cold.has_prelude() && cold.shutdown.is_none());
        if settled {
            self.cold = None;
        }
    }

    /// Ends the stream and unsubscribes.
    fn finish(&mut self) -> Poll<Option<EncodedEvent>> {
        self.cold = None;
        self.parked = None;
        self.release();
        Poll::Ready(None)
    }

    fn release(&mut self) {
        if !self.members.is_empty() {
            let members = std::mem::replace(&mut self.members, Members::released());
            self.inner.unsubscribe(
                members
                    .as_slice()
                    .iter()
                    .map(|member| (&member.topic, member.slot)),
            );
        }
    }

    /// Whether this poll can return `Pending` without locking the ring: one topic, nothing
    /// buffered, and the slot was given this waker when the cursor reached the tail, which has
    /// not moved since. (Whatever empties the slot moves the tail first or closes the hub,
    /// and then wakes the waker it took.)
    fn is_parked(&self, waker: &Waker) -> bool {
        let Some(parked) = self.parked else {
            return false;
        };
        let Members::One(member) = &self.members else {
            return false;
        };
        member.buf.is_none()
            && parked.matches(waker)
            && member.topic.progress().tail() <= member.next
    }

    /// Copies what can be delivered from the rings of members with nothing buffered. A
    /// one-topic subscription that finds a single entry gets it back without buffering it.
    fn refill(&mut self, upto: u64, waker: &Waker) -> Refill {
        if let Members::One(member) = &mut self.members {
            if member.buf.is_some() {
                return Refill::Done;
            }
            self.parked = None;
            let mut old_waker = None;
            let refill = {
                let mut ring = member.topic.lock();
                let Read::Entries { mut entries, newer } = ring.read(&mut member.next, upto, BATCH)
                else {
                    return Refill::Lagged;
                };
                let refill = match entries.len() {
                    0 => None,
                    1 => entries.next().cloned().map(Refill::One),
                    _ => {
                        member.buf = Buffered::of(entries.cloned());
                        None
                    }
                };
                // Registered as soon as everything is read, so that the poll that finds
                // nothing more needs no lock.
                if !newer && member.next >= ring.tail() {
                    old_waker = ring.register(member.slot, waker);
                    self.parked = Some(WakerId::of(waker));
                }
                refill.unwrap_or(if newer { Refill::Newer } else { Refill::Done })
            };
            drop(old_waker);
            return refill;
        }
        let mut newer = false;
        for member in self.members.as_mut_slice() {
            if member.buf.is_some() {
                continue;
            }
            let mut old_waker = None;
            {
                let mut ring = member.topic.lock();
                let Read::Entries {
                    entries,
                    newer: stopped,
                } = ring.read(&mut member.next, upto, BATCH)
                else {
                    return Refill::Lagged;
                };
                newer |= stopped;
                if entries.len() > 0 {
                    member.buf = Buffered::of(entries.cloned());
                } else if !stopped {
                    old_waker = ring.register(member.slot, waker);
                }
            }
            drop(old_waker);
        }
        if newer { Refill::Newer } else { Refill::Done }
    }

    /// Takes the buffered entry with the smallest position.
    fn pop_smallest(&mut self) -> Option<Entry> {
        let member = self
            .members
            .as_mut_slice()
            .iter_mut()
            .filter_map(|m| m.oldest().map(|entry| entry.pos).zip(Some(m)))
            .min_by_key(|(pos, _)| *pos)
            .map(|(_, m)| m)?;
        member.pop()
    }

    /// Where the subscription stands against `limit`, just after a refill.
    ///
    /// Only members with buffered events can be behind: a refill leaves a member's buffer
    /// empty only when it has nothing visible left to read. For the others, the first buffered
    /// entry is the oldest not delivered; its index and the byte offsets it carries, against
    /// the ring's and the hub's counters, say how far behind the subscription is in entries
    /// and bytes (positions are not dense with every backend, so they are not used). A topic
    /// with a single unread event is never behind: it is the next to deliver.
    ///
    /// `single` is the entry a one-topic refill returned without buffering it, which counts
    /// as buffered.
    fn lag(&self, limit: &LagLimit, single: Option<&Entry>) -> Lag {
        let mut beyond = false;
        // The hub's counters, loaded once if one of its limits is close.
        let mut hub: Option<HubPressure> = None;
        for member in self.members.as_slice() {
            let (oldest, buffered) = match (single, member.oldest()) {
                (Some(entry), _) => (entry, 1),
                (None, Some(entry)) => (entry, member.buffered()),
                (None, None) => continue,
            };
            let progress = member.topic.progress();
            let index = member.next.saturating_sub(buffered as u64);
            if index < progress.head() {
                return Lag::Lost;
            }
            let unread = progress.tail().saturating_sub(index);
            if unread < 2 || beyond {
                continue;
            }
            if unread > limit.events
                || progress.bytes_pushed().saturating_sub(oldest.topic_offset) > limit.topic_bytes
            {
                beyond = true;
                continue;
            }
            let pressure = hub.get_or_insert_with(|| self.inner.hub_pressure(limit));
            beyond = pressure.beyond(oldest, limit);
        }
        if beyond { Lag::Beyond } else { Lag::Within }
    }

    /// Applies the lag limit after a refill: `Some` when the overflow policy applies now.
    /// `single` is the entry a one-topic refill returned without buffering it; it is given
    /// back to the ring (read again later, or skipped and counted) when the policy applies.
    fn check_lag(&mut self, single: Option<&Entry>) -> Option<Poll<Option<EncodedEvent>>> {
        let limit = self.inner.lag_limit?;
        match self.lag(&limit, single) {
            Lag::Within => self.armed = true,
            Lag::Beyond if self.armed => {
                let skip = matches!(self.inner.limits.overflow, OverflowPolicy::SkipToLive);
                // Without an id the client would resume as a new one and miss everything
                // held: deliver the next event first, it carries one.
                if skip || self.has_id {
                    if single.is_some() {
                        if let Members::One(member) = &mut self.members {
                            member.next -= 1;
                            self.parked = None;
                        }
                    }
                    return Some(self.on_lag(true));
                }
            }
            // The ring read reports a loss once the buffered events are delivered.
            Lag::Beyond | Lag::Lost => {}
        }
        None
    }

    /// Applies the overflow policy; `early` when at the lag limit, with nothing lost yet.
    fn on_lag(&mut self, early: bool) -> Poll<Option<EncodedEvent>> {
        let counters = &self.inner.counters;
        match self.inner.limits.overflow {
            OverflowPolicy::End => {
                counters.lagged_ends.fetch_add(1, Ordering::Relaxed);
                if early {
                    counters
                        .lagged_ends_lossless
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.finish()
            }
            OverflowPolicy::SkipToLive => {
                counters.lagged_skips.fetch_add(1, Ordering::Relaxed);
                self.parked = None;
                let upto = self.inner.watermark();
                let mut skipped = 0u64;
                for member in self.members.as_mut_slice() {
                    skipped += member.buffered() as u64;
                    member.clear();
                    let next = member.topic.lock().index_after(upto);
                    skipped += next.saturating_sub(member.next);
                    member.next = member.next.max(next);
                }
                Poll::Ready(Some(marker::lagged(skipped, &self.inner.id_of(upto))))
            }
        }
    }
}

/// Where a subscription stands against the lag limit.
enum Lag {
    /// Within it in every followed topic.
    Within,
    /// Beyond it in at least one topic, with every event not delivered still held.
    Beyond,
    /// An event not delivered was already evicted.
    Lost,
}

enum Refill {
    /// Nothing more is visible.
    Done,
    /// An event newer than the position limit is visible: load the limit again.
    Newer,
    /// A cursor fell behind its ring.
    Lagged,
    /// The one entry a one-topic subscription read, not buffered.
    One(Entry),
}

impl Stream for Subscription {
    type Item = EncodedEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<EncodedEvent>> {
        let this = self.get_mut();
        if this.members.is_empty() {
            return Poll::Ready(None);
        }
        let shutdown = this.cold.as_mut().and_then(|cold| cold.shutdown.as_mut());
        if let Some(shutdown) = shutdown {
            if shutdown.as_mut().poll(cx).is_ready() {
                this.inner.close();
            }
        } else {
            // The hub's watch task closes it on shutdown and wakes everyone; a poll that comes
            // first sees the cancelled token here.
            this.inner.check_shutdown();
        }
        if this.inner.is_closed() {
            return this.finish();
        }
        if let Some(cold) = this.cold.as_mut() {
            if let Some(first) = cold.first.take() {
                this.settle_cold();
                return Poll::Ready(Some(first));
            }
            #[cfg(feature = "redis")]
            if let Some(catch_up) = cold.catch_up.as_mut() {
                use super::redis::Step;
                match catch_up.poll_step(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Step::Event(event)) => return Poll::Ready(Some(event)),
                    Poll::Ready(Step::Live(cursors)) => {
                        cold.catch_up = None;
                        this.parked = None;
                        let members = this.members.as_mut_slice().iter_mut();
                        for (member, next) in members.zip(cursors) {
                            member.next = next;
                        }
                    }
                    Poll::Ready(Step::End) => return this.finish(),
                }
            }
            this.settle_cold();
        }
        loop {
            if this.is_parked(cx.waker()) {
                // Nothing buffered: within the lag limit.
                this.armed = true;
                break;
            }
            // Only events at or below `upto` are delivered: all of them are visible, so the
            // smallest buffered one is the next in order.
            let upto = this.inner.watermark();
            let (single, newer) = match this.refill(upto, cx.waker()) {
                Refill::Lagged => return this.on_lag(false),
                Refill::One(entry) => (Some(entry), false),
                Refill::Newer => (None, true),
                Refill::Done => (None, false),
            };
            if let Some(poll) = this.check_lag(single.as_ref()) {
                return poll;
            }
            if let Some(entry) = single.or_else(|| this.pop_smallest()) {
                this.has_id = true;
                return Poll::Ready(Some(entry.event));
            }
            if !newer {
                break;
            }
        }
        // Registered with every topic; a close that ran before a registration is seen here.
        if this.inner.is_closed() {
            return this.finish();
        }
        Poll::Pending
    }

    /// `(0, Some(0))` once ended, else `(0, None)`: the stream is open-ended, and events
    /// already copied out of a ring are not promised (a close discards them).
    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.is_ended() {
            (0, Some(0))
        } else {
            (0, None)
        }
    }
}

impl FusedStream for Subscription {
    fn is_terminated(&self) -> bool {
        self.is_ended()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.release();
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field(
                "topics",
                &self
                    .members
                    .as_slice()
                    .iter()
                    .map(|m| &**m.topic.name())
                    .collect::<Vec<_>>(),
            )
            .field("ended", &self.is_ended())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt, StreamExt};

    use super::*;
    use crate::Event;
    use crate::hub::HubBuilder;

    fn subscribe(inner: &Arc<Inner>, topics: &[&str]) -> Subscription {
        Subscription::new(Arc::clone(inner), inner.subscribe(topics, None).unwrap())
    }

    fn publish(inner: &Inner, topic: &str, n: usize) {
        for i in 0..n {
            inner
                .publish(topic, Event::new().data(i.to_string()))
                .unwrap();
        }
    }

    fn one(sub: &Subscription) -> &Member {
        match &sub.members {
            Members::One(member) => member,
            Members::Many(_) => panic!("not inline"),
        }
    }

    #[test]
    fn a_one_topic_subscription_holds_no_buffer_between_bursts() {
        let inner = Arc::new(Inner::new(HubBuilder::new()));
        let mut sub = subscribe(&inner, &["t"]);
        assert!(sub.cold.is_none());
        assert_eq!((one(&sub).buffered(), sub.topic_count()), (0, 1));
        publish(&inner, "t", BATCH + 8);
        assert!(sub.next().now_or_never().flatten().is_some());
        assert_eq!(one(&sub).buffered(), BATCH - 1);
        for _ in 1..BATCH + 8 {
            assert!(sub.next().now_or_never().flatten().is_some());
        }
        assert!(sub.next().now_or_never().is_none(), "waiting");
        assert!(one(&sub).buf.is_none());
        publish(&inner, "t", 1);
        assert!(sub.next().now_or_never().flatten().is_some());
        assert!(one(&sub).buf.is_none(), "a single event is not buffered");
    }

    /// Counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        (Arc::clone(&count), Waker::from(count))
    }

    fn poll(sub: &mut Subscription, waker: &Waker) -> Poll<Option<EncodedEvent>> {
        Pin::new(sub).poll_next(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_poll_that_finds_nothing_after_reading_to_the_tail_is_registered() {
        let inner = Arc::new(Inner::new(HubBuilder::new()));
        let mut sub = subscribe(&inner, &["t"]);
        let (a, waker_a) = counter();
        assert!(poll(&mut sub, &waker_a).is_pending());
        publish(&inner, "t", 1);
        assert_eq!(a.0.load(Ordering::Relaxed), 1);
        // The poll that reads the event leaves the waker in the slot: the next one, with the
        // same waker, needs no lock and is woken by the next event.
        assert!(matches!(poll(&mut sub, &waker_a), Poll::Ready(Some(_))));
        assert!(sub.parked.is_some());
        assert!(poll(&mut sub, &waker_a).is_pending());
        publish(&inner, "t", 1);
        assert_eq!(a.0.load(Ordering::Relaxed), 2);
        // A new event moved the tail: read under the lock.
        assert!(matches!(poll(&mut sub, &waker_a), Poll::Ready(Some(_))));
        // Another waker is registered in place of the parked one, and is the one woken.
        let (b, waker_b) = counter();
        assert!(poll(&mut sub, &waker_b).is_pending());
        publish(&inner, "t", 1);
        assert_eq!(
            (a.0.load(Ordering::Relaxed), b.0.load(Ordering::Relaxed)),
            (2, 1)
        );
        // A burst: buffered, then the poll after the last one is parked.
        assert!(matches!(poll(&mut sub, &waker_b), Poll::Ready(Some(_))));
        publish(&inner, "t", 3);
        assert_eq!(b.0.load(Ordering::Relaxed), 2);
        for _ in 0..3 {
            assert!(matches!(poll(&mut sub, &waker_b), Poll::Ready(Some(_))));
        }
        assert!(poll(&mut sub, &waker_b).is_pending());
        inner.close();
        assert_eq!(b.0.load(Ordering::Relaxed), 3, "woken by the close");
        assert!(matches!(poll(&mut sub, &waker_b), Poll::Ready(None)));
    }

    #[test]
    fn a_single_entry_at_the_lag_limit_is_skipped_and_counted_like_a_buffered_one() {
        let builder = HubBuilder::new()
            .capacity(16)
            .overflow(OverflowPolicy::SkipToLive)
            .lag_limit_percent(50);
        let inner = Arc::new(Inner::new(builder));
        let mut sub = subscribe(&inner, &["t"]);
        publish(&inner, "t", 1);
        let Refill::One(entry) = sub.refill(inner.watermark(), Waker::noop()) else {
            panic!("one entry, not buffered");
        };
        // More arrive before the lag check: the single entry and the 12 after it are unread.
        publish(&inner, "t", 12);
        sub.armed = true;
        let Some(Poll::Ready(Some(marker))) = sub.check_lag(Some(&entry)) else {
            panic!("beyond the limit");
        };
        let text = std::str::from_utf8(marker.as_bytes()).unwrap();
        assert!(text.contains(r#"{"skipped":13}"#), "{text}");
        let (a, waker) = counter();
        assert!(poll(&mut sub, &waker).is_pending(), "skipped to live");
        publish(&inner, "t", 1);
        assert_eq!(a.0.load(Ordering::Relaxed), 1);
        assert!(matches!(poll(&mut sub, &waker), Poll::Ready(Some(_))));
    }

    #[test]
    fn slots_are_held_per_topic_and_reused() {
        let inner = Arc::new(Inner::new(HubBuilder::new()));
        let first = subscribe(&inner, &["a"]);
        let both = subscribe(&inner, &["a", "b"]);
        let Members::Many(members) = &both.members else {
            panic!("two topics");
        };
        let slots: Vec<u32> = members.iter().map(|m| m.slot).collect();
        assert_eq!((one(&first).slot, slots), (0, vec![1, 0]));
        drop(first);
        let again = subscribe(&inner, &["a"]);
        assert_eq!(one(&again).slot, 0);
        let third = subscribe(&inner, &["a"]);
        assert_eq!(one(&third).slot, 2);
    }

    #[test]
    fn the_marker_box_goes_with_the_marker_and_an_end_releases_everything() {
        let inner = Arc::new(Inner::new(HubBuilder::new().initial_id(true)));
        let mut sub = subscribe(&inner, &["a", "b"]);
        assert!(sub.cold.as_ref().is_some_and(|cold| cold.first.is_some()));
        let marker = sub.next().now_or_never().flatten().unwrap();
        assert!(marker.as_bytes().starts_with(b"id: "));
        assert!(sub.cold.is_none());
        assert_eq!(sub.topic_count(), 2);
        inner.close();
        assert_eq!(sub.next().now_or_never(), Some(None));
        assert!(sub.is_ended());
        assert_eq!(sub.topic_count(), 0);
        assert_eq!(inner.counters.snapshot().subscribers, 0);
    }
}
