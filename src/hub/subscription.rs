//! [`Subscription`]: the stream of one client's events, merged across its topics.

use std::collections::VecDeque;
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
use super::state::{Inner, Opened};
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
    id: u64,
    members: Vec<Member>,
    first: Option<EncodedEvent>,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    done: bool,
    /// The hub's lag limit; `None` when off.
    lag_limit: Option<LagLimit>,
    /// Set once a poll found the subscription within the lag limit: only then does the limit
    /// apply, so a resume that starts with a long replay is not ended for its backlog.
    armed: bool,
    /// Whether the client has an id to resume from: its `Last-Event-ID`, a marker's, or the
    /// last event's. Ending it before then would lose what it has not read.
    has_id: bool,
    /// Events to fetch from the backend before reading the rings.
    #[cfg(feature = "redis")]
    catch_up: Option<Box<super::redis::CatchUp>>,
}

/// One followed topic: its ring, the cursor into it, and events copied out but not yet yielded
/// (the entries just before `next`).
struct Member {
    topic: Arc<Topic>,
    next: u64,
    buf: VecDeque<Entry>,
}

impl Subscription {
    pub(crate) fn new(inner: Arc<Inner>, opened: Opened) -> Subscription {
        let shutdown = inner.shutdown_future();
        Subscription {
            id: opened.id,
            members: opened
                .members
                .into_iter()
                .map(|(topic, next)| Member {
                    topic,
                    next,
                    buf: VecDeque::new(),
                })
                .collect(),
            first: opened.first,
            shutdown,
            lag_limit: inner.limits.lag_limit(),
            armed: false,
            has_id: opened.has_id,
            inner,
            done: false,
            #[cfg(feature = "redis")]
            catch_up: None,
        }
    }

    /// The topics followed, in the order of the cursors a catch-up returns.
    #[cfg(feature = "redis")]
    pub(crate) fn topics(&self) -> Vec<Arc<Topic>> {
        self.members.iter().map(|m| Arc::clone(&m.topic)).collect()
    }

    /// Makes the subscription deliver what `catch_up` fetches before reading its rings.
    #[cfg(feature = "redis")]
    pub(crate) fn set_catch_up(&mut self, catch_up: super::redis::CatchUp) {
        self.catch_up = Some(Box::new(catch_up));
    }

    /// The number of topics this subscription follows (after removing duplicates); `0` once
    /// it has ended.
    pub fn topic_count(&self) -> usize {
        self.members.len()
    }

    /// Whether the stream has ended.
    pub fn is_ended(&self) -> bool {
        self.done
    }

    /// Ends the stream and unsubscribes.
    fn finish(&mut self) -> Poll<Option<EncodedEvent>> {
        self.done = true;
        self.first = None;
        #[cfg(feature = "redis")]
        {
            self.catch_up = None;
        }
        self.release();
        Poll::Ready(None)
    }

    fn release(&mut self) {
        if !self.members.is_empty() {
            let members = std::mem::take(&mut self.members);
            self.inner
                .unsubscribe(self.id, members.iter().map(|m| &m.topic));
        }
    }

    /// Copies what can be delivered from the rings of members with nothing buffered.
    fn refill(&mut self, upto: u64, waker: &Waker) -> Refill {
        let mut newer = false;
        for member in &mut self.members {
            if !member.buf.is_empty() {
                continue;
            }
            let mut old_waker = None;
            {
                let mut ring = member.topic.lock();
                match ring.read(&mut member.next, upto, BATCH, &mut member.buf) {
                    Read::Lagged => return Refill::Lagged,
                    Read::Copied { newer: true } => newer = true,
                    Read::Copied { newer: false } => {
                        if member.buf.is_empty() {
                            old_waker = ring.register(self.id, waker);
                        }
                    }
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
            .iter_mut()
            .filter_map(|m| m.buf.front().map(|entry| entry.pos).zip(Some(m)))
            .min_by_key(|(pos, _)| *pos)
            .map(|(_, m)| m)?;
        member.buf.pop_front().map(|entry| entry.event)
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
        for member in &self.members {
            let Some(oldest) = member.buf.front() else {
                continue;
            };
            let progress = member.topic.progress();
            let index = member.next.saturating_sub(member.buf.len() as u64);
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
                let held = self.inner.counters.bytes_held.load(Ordering::Relaxed);
                let pressed = u64::try_from(held).unwrap_or(u64::MAX) > limit.hub_bytes;
                pressed.then(|| self.inner.bytes_pushed())
            });
            beyond = hub_pushed
                .is_some_and(|pushed| pushed.saturating_sub(oldest.hub_offset) > limit.hub_bytes);
        }
        if beyond { Lag::Beyond } else { Lag::Within }
    }

    /// Applies the lag limit after a refill: `Some` when the overflow policy applies now.
    fn check_lag(&mut self) -> Option<Poll<Option<EncodedEvent>>> {
        let limit = self.lag_limit?;
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
                for member in &mut self.members {
                    skipped += member.buf.len() as u64;
                    member.buf.clear();
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
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(shutdown) = this.shutdown.as_mut() {
            if shutdown.as_mut().poll(cx).is_ready() {
                this.inner.close();
            }
        }
        if this.inner.is_closed() {
            return this.finish();
        }
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(first));
        }
        #[cfg(feature = "redis")]
        if let Some(catch_up) = this.catch_up.as_mut() {
            use super::redis::Step;
            match catch_up.poll_step(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Step::Event(event)) => return Poll::Ready(Some(event)),
                Poll::Ready(Step::Live(cursors)) => {
                    for (member, next) in this.members.iter_mut().zip(cursors) {
                        member.next = next;
                    }
                    this.catch_up = None;
                }
                Poll::Ready(Step::End) => return this.finish(),
            }
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
        if self.done { (0, Some(0)) } else { (0, None) }
    }
}

impl FusedStream for Subscription {
    fn is_terminated(&self) -> bool {
        self.done
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
                    .iter()
                    .map(|m| &**m.topic.name())
                    .collect::<Vec<_>>(),
            )
            .field("ended", &self.done)
            .finish_non_exhaustive()
    }
}
