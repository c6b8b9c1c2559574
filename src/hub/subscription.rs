//! [`Subscription`]: the stream of one client's events, merged across its topics.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};

use futures_core::{FusedStream, Stream};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::OverflowPolicy;
use super::config::LagLimit;
use super::marker;
use super::state::{Inner, Joined, Opened};
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
    /// What comes before the rings, rarely present.
    cold: Option<Box<Cold>>,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Set once a poll found the subscription within the lag limit: only then does the limit
    /// apply, so a resume that starts with a long replay is not ended for its backlog.
    armed: bool,
    /// Whether the client has an id to resume from: its `Last-Event-ID`, a marker's, or the
    /// last event's. Ending it before then would lose what it has not read.
    has_id: bool,
}

/// What a subscription delivers before reading its rings; dropped once delivered.
struct Cold {
    /// A marker to yield first.
    first: Option<EncodedEvent>,
    /// Events to fetch from the backend before reading the rings.
    #[cfg(feature = "redis")]
    catch_up: Option<super::redis::CatchUp>,
}

impl Cold {
    fn is_empty(&self) -> bool {
        #[cfg(feature = "redis")]
        if self.catch_up.is_some() {
            return false;
        }
        self.first.is_none()
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
    /// The entries copied out, newest first: `buf[..buffered]` are not yielded yet, the oldest
    /// last. Released as soon as the last one is yielded, so that nothing is held between
    /// bursts.
    buf: Box<[Option<Entry>]>,
    buffered: u32,
    slot: u32,
}

impl Member {
    fn new(joined: Joined) -> Member {
        Member {
            topic: joined.topic,
            next: joined.next,
            buf: Box::default(),
            buffered: 0,
            slot: joined.slot,
        }
    }

    /// How many entries are buffered.
    fn buffered(&self) -> usize {
        self.buffered as usize
    }

    /// The oldest buffered entry.
    fn oldest(&self) -> Option<&Entry> {
        let last = self.buffered().checked_sub(1)?;
        self.buf.get(last)?.as_ref()
    }

    /// Takes the oldest buffered entry.
    fn pop(&mut self) -> Option<Entry> {
        let last = self.buffered().checked_sub(1)?;
        let entry = self.buf.get_mut(last).and_then(Option::take);
        self.buffered -= 1;
        if self.buffered == 0 {
            self.buf = Box::default();
        }
        entry
    }

    /// Drops every buffered entry.
    fn clear(&mut self) {
        self.buf = Box::default();
        self.buffered = 0;
    }
}

impl Subscription {
    pub(crate) fn new(inner: Arc<Inner>, opened: Opened) -> Subscription {
        let shutdown = inner.shutdown_future();
        let cold = opened.first.map(|first| {
            Box::new(Cold {
                first: Some(first),
                #[cfg(feature = "redis")]
                catch_up: None,
            })
        });
        Subscription {
            members: Members::new(opened.members),
            cold,
            shutdown,
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

    /// Ends the stream and unsubscribes.
    fn finish(&mut self) -> Poll<Option<EncodedEvent>> {
        self.cold = None;
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

    /// Copies what can be delivered from the rings of members with nothing buffered.
    fn refill(&mut self, upto: u64, waker: &Waker) -> Refill {
        let mut newer = false;
        for member in self.members.as_mut_slice() {
            if member.buffered > 0 {
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
                    // At most `BATCH`, stored newest first.
                    member.buffered = entries.len() as u32;
                    member.buf = entries.rev().cloned().map(Some).collect();
                } else if !stopped {
                    old_waker = ring.register(member.slot, waker);
                }
            }
            drop(old_waker);
        }
        if newer { Refill::Newer } else { Refill::Done }
    }

    /// Yields the buffered event with the smallest position.
    fn pop_smallest(&mut self) -> Option<EncodedEvent> {
        let member = self
            .members
            .as_mut_slice()
            .iter_mut()
            .filter_map(|m| m.oldest().map(|entry| entry.pos).zip(Some(m)))
            .min_by_key(|(pos, _)| *pos)
            .map(|(_, m)| m)?;
        member.pop().map(|entry| entry.event)
    }

    /// Where the subscription stands against `limit`, just after a refill.
    ///
    /// Only members with buffered events can be behind: a refill leaves a member's buffer
    /// empty only when it has nothing visible left to read. For the others, the first buffered
    /// entry is the oldest not delivered; its index and the byte offsets it carries, against
    /// the ring's and the hub's counters, say how far behind the subscription is in entries
    /// and bytes (positions are not dense with every backend, so they are not used). A topic
    /// with a single unread event is never behind: it is the next to deliver.
    fn lag(&self, limit: &LagLimit) -> Lag {
        let mut beyond = false;
        // The hub's bytes pushed, loaded once if its byte limit is close.
        let mut hub: Option<Option<u64>> = None;
        for member in self.members.as_slice() {
            let Some(oldest) = member.oldest() else {
                continue;
            };
            let progress = member.topic.progress();
            let index = member.next.saturating_sub(member.buffered() as u64);
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
            let hub_pushed = *hub.get_or_insert_with(|| {
                let pressed = self.inner.hub_pressed(limit.hub_bytes);
                pressed.then(|| self.inner.bytes_pushed())
            });
            beyond = hub_pushed
                .is_some_and(|pushed| pushed.saturating_sub(oldest.hub_offset) > limit.hub_bytes);
        }
        if beyond { Lag::Beyond } else { Lag::Within }
    }

    /// Applies the lag limit after a refill: `Some` when the overflow policy applies now.
    fn check_lag(&mut self) -> Option<Poll<Option<EncodedEvent>>> {
        let limit = self.inner.lag_limit?;
        match self.lag(&limit) {
            Lag::Within => self.armed = true,
            Lag::Beyond if self.armed => {
                let skip = matches!(self.inner.limits.overflow, OverflowPolicy::SkipToLive);
                // Without an id the client would resume as a new one and miss everything
                // held: deliver the next event first, it carries one.
                if skip || self.has_id {
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
}

impl Stream for Subscription {
    type Item = EncodedEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<EncodedEvent>> {
        let this = self.get_mut();
        if this.members.is_empty() {
            return Poll::Ready(None);
        }
        if let Some(shutdown) = this.shutdown.as_mut() {
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
                if cold.is_empty() {
                    this.cold = None;
                }
                return Poll::Ready(Some(first));
            }
            #[cfg(feature = "redis")]
            if let Some(catch_up) = cold.catch_up.as_mut() {
                use super::redis::Step;
                match catch_up.poll_step(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Step::Event(event)) => return Poll::Ready(Some(event)),
                    Poll::Ready(Step::Live(cursors)) => {
                        let members = this.members.as_mut_slice().iter_mut();
                        for (member, next) in members.zip(cursors) {
                            member.next = next;
                        }
                    }
                    Poll::Ready(Step::End) => return this.finish(),
                }
            }
            this.cold = None;
        }
        loop {
            // Only events at or below `upto` are delivered: all of them are visible, so the
            // smallest buffered one is the next in order.
            let upto = this.inner.watermark();
            let refill = this.refill(upto, cx.waker());
            if let Refill::Lagged = refill {
                return this.on_lag(false);
            }
            if let Some(poll) = this.check_lag() {
                return poll;
            }
            if let Some(event) = this.pop_smallest() {
                this.has_id = true;
                return Poll::Ready(Some(event));
            }
            if let Refill::Done = refill {
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
        assert_eq!((one(&sub).buf.len(), sub.topic_count()), (0, 1));
        publish(&inner, "t", BATCH + 8);
        assert!(sub.next().now_or_never().flatten().is_some());
        assert_eq!(one(&sub).buf.len(), BATCH);
        assert_eq!(one(&sub).buffered(), BATCH - 1);
        for _ in 1..BATCH + 8 {
            assert!(sub.next().now_or_never().flatten().is_some());
        }
        assert!(sub.next().now_or_never().is_none(), "waiting");
        assert_eq!((one(&sub).buf.len(), one(&sub).buffered()), (0, 0));
        publish(&inner, "t", 1);
        assert!(sub.next().now_or_never().flatten().is_some());
        assert_eq!(one(&sub).buf.len(), 0, "a single event is not kept");
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
