//! The catch-up of a subscription whose `Last-Event-ID` the local rings cannot serve: the
//! events after it are read from the stream with `XRANGE`, page by page, up to where the
//! rings are complete; then the subscription reads its rings from exactly there.
//!
//! Hand-over: the catch-up tracks `after`, the newest position it delivered or skipped. It
//! asks the hub for a plan at `after`: if every followed ring still holds everything after
//! `after` (each ring's lost position is at or before it) and the hub has seen `after`, the
//! ring cursors start right after it: no gap, no duplicate. Otherwise it reads the stream up
//! to the newest position any followed ring lost (which the hub has seen, so the entries are
//! in Redis unless trimmed) and asks again. Rings only lose old events, so this ends; the scan
//! is capped by [`RedisConfig::max_replay`](super::RedisConfig::max_replay).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use super::backend::{Backend, Failure, until_closed, with_timeout};
use super::entry::{RawEntry, StreamId};
use super::reader::hub_event;
use crate::EncodedEvent;
use crate::hub::marker::{self, ResetReason};
use crate::hub::state::{Inner, Plan};
use crate::hub::topic::Topic;

/// What a catch-up yields to its subscription.
pub(crate) enum Step {
    /// The next event.
    Event(EncodedEvent),
    /// Done: read the rings from these cursors (one per topic, in the subscription's order).
    Live(Vec<u64>),
    /// The stream could not be read: end the subscription (the client reconnects and
    /// resumes from the last event it received).
    End,
}

/// The result of one step against Redis.
enum Outcome {
    /// Entries scanned after `after`, up to `last`; `events` are those of the followed topics.
    Page {
        events: Vec<EncodedEvent>,
        last: StreamId,
        scanned: usize,
    },
    /// Events after `after` are gone, or it is not an id of this stream yet.
    Reset { reason: ResetReason, at: u64 },
    /// Plan again.
    Again,
    /// Redis failed or the hub closed.
    Failed,
}

/// `Sync` through the mutex, which is only ever used through `get_mut`.
type StepFuture = Mutex<Pin<Box<dyn Future<Output = Outcome> + Send>>>;

/// A subscription's catch-up from the stream.
pub(crate) struct CatchUp {
    backend: Arc<Backend>,
    inner: Arc<Inner>,
    /// The followed topics, sorted by name (the subscription's order).
    topics: Arc<[Arc<Topic>]>,
    after: StreamId,
    scanned: usize,
    ready: VecDeque<EncodedEvent>,
    pending: Option<StepFuture>,
}

impl CatchUp {
    pub(crate) fn new(
        backend: Arc<Backend>,
        inner: Arc<Inner>,
        topics: Vec<Arc<Topic>>,
        after: u64,
    ) -> CatchUp {
        CatchUp {
            backend,
            inner,
            topics: topics.into(),
            after: StreamId::from_position(after),
            scanned: 0,
            ready: VecDeque::new(),
            pending: None,
        }
    }

    pub(crate) fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Step> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Poll::Ready(Step::Event(event));
            }
            if let Some(pending) = self.pending.as_mut() {
                let future = pending.get_mut().unwrap_or_else(PoisonError::into_inner);
                let outcome = ready!(future.as_mut().poll(cx));
                self.pending = None;
                match outcome {
                    Outcome::Page {
                        events,
                        last,
                        scanned,
                    } => {
                        self.ready.extend(events);
                        self.after = self.after.max(last);
                        self.scanned = self.scanned.saturating_add(scanned);
                    }
                    Outcome::Reset { reason, at } => self.reset(reason, at),
                    Outcome::Again => {}
                    Outcome::Failed => return Poll::Ready(Step::End),
                }
                continue;
            }
            match self
                .inner
                .resume_plan(&self.topics, self.after.floor_position())
            {
                Plan::Live(cursors) => return Poll::Ready(Step::Live(cursors)),
                Plan::Fetch { upto } => {
                    let config = &self.backend.config;
                    let budget = config.max_replay.saturating_sub(self.scanned);
                    if budget == 0 {
                        self.reset(ResetReason::Stale, upto);
                        continue;
                    }
                    let future = fetch(
                        Arc::clone(&self.backend),
                        Arc::clone(&self.inner),
                        Arc::clone(&self.topics),
                        self.after,
                        upto,
                        config.replay_page.min(budget),
                    );
                    self.pending = Some(Mutex::new(Box::pin(future)));
                }
                Plan::Ahead => {
                    let future = wait_ahead(
                        Arc::clone(&self.backend),
                        Arc::clone(&self.inner),
                        self.after,
                    );
                    self.pending = Some(Mutex::new(Box::pin(future)));
                }
            }
        }
    }

    /// Queues a `reset` marker and continues after `at`.
    fn reset(&mut self, reason: ResetReason, at: u64) {
        self.inner.counters.resets.fetch_add(1, Ordering::Relaxed);
        self.ready
            .push_back(marker::reset(reason, &self.inner.id_of(at)));
        self.after = StreamId::from_position(at);
    }
}

/// Reads one page of entries after `after`, up to `upto`, keeping the followed topics' events.
async fn fetch(
    backend: Arc<Backend>,
    inner: Arc<Inner>,
    topics: Arc<[Arc<Topic>]>,
    after: StreamId,
    upto: u64,
    count: usize,
) -> Outcome {
    let end = StreamId::from_position(upto);
    let reading = async {
        let entries = backend.range(after, end, count).await?;
        // Asked after the range: if nothing after `after` was removed by now, nothing was
        // before the range was read either (Redis only ever removes entries).
        let info = backend.info().await?;
        Ok::<_, Failure>((entries, info))
    };
    let (entries, info) = match until_closed(&inner, with_timeout(&backend.config, reading)).await {
        None => return Outcome::Failed,
        Some(Err(failure)) => {
            tracing::warn!(stream = %backend.key, error = %failure, %after, "cannot replay from Redis; ending the subscription");
            return Outcome::Failed;
        }
        Some(Ok(read)) => read,
    };
    if info.may_have_lost_after(after) {
        return Outcome::Reset {
            reason: ResetReason::Stale,
            at: upto,
        };
    }
    let scanned = entries.len();
    let last = match entries.last() {
        Some(last) if scanned >= count => last.id,
        // The whole range was read.
        _ => end,
    };
    Outcome::Page {
        events: followed_events(&inner, &backend.key, &topics, entries),
        last,
        scanned,
    }
}

/// The events of the followed `topics` (sorted by name) among `entries`, in stream order.
/// Entries that are not events of this hub are skipped and counted as the reader skips them.
fn followed_events(
    inner: &Inner,
    stream: &str,
    topics: &[Arc<Topic>],
    entries: Vec<RawEntry>,
) -> Vec<EncodedEvent> {
    let followed = |topic: &str| topics.binary_search_by(|t| (**t.name()).cmp(topic)).is_ok();
    entries
        .into_iter()
        .filter_map(|raw| hub_event(inner, stream, raw, followed))
        .map(|remote| remote.event)
        .collect()
}

/// `after` is newer than what this instance has read: if Redis never generated it, it is from
/// the future; otherwise wait for the reader to get there.
async fn wait_ahead(backend: Arc<Backend>, inner: Arc<Inner>, after: StreamId) -> Outcome {
    let info = match until_closed(&inner, with_timeout(&backend.config, backend.info())).await {
        None => return Outcome::Failed,
        Some(Err(failure)) => {
            tracing::warn!(stream = %backend.key, error = %failure, %after, "cannot check an id with Redis; ending the subscription");
            return Outcome::Failed;
        }
        Some(Ok(info)) => info,
    };
    if after > info.last_generated {
        return Outcome::Reset {
            reason: ResetReason::Future,
            at: inner.watermark(),
        };
    }
    let target = after.floor_position();
    loop {
        let mut notified = pin!(backend.advanced.notified());
        notified.as_mut().enable();
        if inner.watermark() >= target {
            return Outcome::Again;
        }
        // Woken by the reader; the timeout only re-checks in case an entry was deleted.
        let waiting = tokio::time::timeout(backend.config.block, notified);
        if until_closed(&inner, waiting).await.is_none() {
            return Outcome::Failed;
        }
    }
}

#[cfg(test)]
mod tests {
    use ::redis::Value;

    use super::*;
    use crate::hub::HubBuilder;

    fn entry(id: &str, fields: &[&[u8]]) -> RawEntry {
        let fields = fields.iter().map(|f| Value::BulkString(f.to_vec()));
        RawEntry {
            id: StreamId::parse(id).unwrap(),
            fields: Value::Array(fields.collect()),
        }
    }

    /// A catch-up keeps the events of the followed topics and counts the entries that are
    /// not hub events, as the reader does; an event of another topic is not a skip.
    #[test]
    fn a_catch_up_counts_the_entries_it_skips() {
        let inner = Inner::new_stream(HubBuilder::new(), 0);
        let topics = [
            Arc::new(Topic::new("a".into(), 0)),
            Arc::new(Topic::new("c".into(), 0)),
        ];
        let entries = vec![
            entry("1-0", &[b"topic", b"a", b"event", b"data: 1\n"]),
            entry("2-0", &[b"topic", b"b", b"event", b"data: 2\n"]),
            entry("3-0", &[b"foo", b"bar"]),
            entry("4-0", &[b"topic", b"c", b"event", b"data: x\n\ndata: y\n"]),
            entry("5-1048576", &[b"topic", b"a", b"event", b"data: 5\n"]),
            entry("6-0", &[b"topic", b"", b"event", b"data: 6\n"]),
            entry("7-0", &[b"topic", b"c", b"event", b"data: 7\n"]),
        ];
        let events = followed_events(&inner, "test:events", &topics, entries);
        let texts: Vec<&[u8]> = events.iter().map(EncodedEvent::as_bytes).collect();
        assert_eq!(
            texts,
            [&b"data: 1\nid: 1-0\n\n"[..], b"data: 7\nid: 7-0\n\n"]
        );
        // The foreign entry, the one with a blank line, the one whose id has no position
        // and the one with an empty topic name.
        assert_eq!(inner.counters.snapshot().entries_skipped, 4);
    }
}
