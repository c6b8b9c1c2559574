//! Hub configuration: [`HubBuilder`], its limits, and [`OverflowPolicy`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Hub;

/// What happens to a subscription that falls behind: past the
/// [lag limit](HubBuilder::lag_limit_percent) when it is polled, or so far that events it has
/// not read yet were evicted to make room for newer ones.
///
/// Publishing never waits for a subscriber, so a subscriber that reads more slowly than events
/// arrive eventually loses its place; it is never buffered without bound. See "Slow
/// subscribers" in the [module documentation](super) for how the two cases differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// The subscription ends (the stream returns `None`) between two events. An `EventSource`
    /// then reconnects with `Last-Event-ID` and gets what is still held after that id.
    ///
    /// Past the lag limit it ends at once, before any event it has not delivered is evicted,
    /// so a reconnect that comes before the rest of the ring fills replays everything it
    /// missed, without a marker. If events it had not read were evicted anyway (it was not
    /// polled in time), it first delivers the events it had already copied out of the ring,
    /// in order, then ends before the first lost one; the reconnect then gets a `reset`
    /// marker (`"stale"`). Counted in [`HubStats::lagged_ends`](super::HubStats::lagged_ends),
    /// the first case also in
    /// [`HubStats::lagged_ends_lossless`](super::HubStats::lagged_ends_lossless). The default.
    #[default]
    End,
    /// The subscription skips every event it has not read yet, in all its topics, and continues
    /// with live events. It first yields a marker:
    ///
    /// ```text
    /// event: lagged
    /// data: {"skipped":<n>}
    /// id: <current position>
    /// ```
    ///
    /// where `<n>` is the number of events skipped. This happens past the lag limit too, so a
    /// subscriber under this policy is never further behind than the limit when it is polled:
    /// the events it gets are recent ones. Counted in
    /// [`HubStats::lagged_skips`](super::HubStats::lagged_skips).
    SkipToLive,
}

/// How far behind a subscription may fall before the overflow policy applies, in the units of
/// each limit; from [`HubBuilder::lag_limit_percent`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LagLimit {
    /// Unread events in one topic.
    pub(crate) events: u64,
    /// Unread bytes in one topic.
    pub(crate) topic_bytes: u64,
    /// Bytes the hub received after the subscription's oldest unread event; only while the hub
    /// holds more than this, i.e. when its own byte limit may evict that event soon.
    pub(crate) hub_bytes: u64,
    /// Memory the hub charged after the subscription's oldest unread event; only while it
    /// holds more than this, i.e. when its memory limit may evict that event soon.
    pub(crate) hub_memory: u64,
}

/// The default of [`HubBuilder::lag_limit_percent`].
const DEFAULT_LAG_LIMIT_PERCENT: u8 = 75;

/// The hub's limits, with their defaults.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) capacity: usize,
    pub(crate) max_topic_bytes: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_memory: usize,
    pub(crate) max_age: Option<Duration>,
    pub(crate) overflow: OverflowPolicy,
    /// Percent of each limit, 1 to 100; 100 turns the lag limit off.
    pub(crate) lag_limit_percent: u8,
    pub(crate) max_subscribers: usize,
    pub(crate) max_topics_per_subscription: usize,
    pub(crate) max_topic_len: usize,
    pub(crate) max_idle_topics: usize,
    pub(crate) initial_id: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            capacity: 1024,
            max_topic_bytes: 1 << 20,
            max_bytes: 64 << 20,
            max_memory: 256 << 20,
            max_age: None,
            overflow: OverflowPolicy::End,
            lag_limit_percent: DEFAULT_LAG_LIMIT_PERCENT,
            max_subscribers: 100_000,
            max_topics_per_subscription: 64,
            max_topic_len: 256,
            max_idle_topics: 16_384,
            initial_id: false,
        }
    }
}

impl Limits {
    /// The lag limit in each limit's units; `None` when it is off (100 %).
    pub(crate) fn lag_limit(&self) -> Option<LagLimit> {
        let percent = u64::from(self.lag_limit_percent);
        if percent >= 100 {
            return None;
        }
        let part = |limit: usize| {
            let limit = u64::try_from(limit).unwrap_or(u64::MAX);
            // `limit / 100 * percent` plus the remainder's share: no overflow near `u64::MAX`.
            limit / 100 * percent + limit % 100 * percent / 100
        };
        Some(LagLimit {
            events: part(self.capacity),
            topic_bytes: part(self.max_topic_bytes),
            hub_bytes: part(self.max_bytes),
            hub_memory: part(self.max_memory),
        })
    }
}

/// Configures and builds a [`Hub`].
///
/// ```
/// use std::time::Duration;
/// use tower_sse::hub::{Hub, OverflowPolicy};
///
/// let hub = Hub::builder()
///     .capacity(256)
///     .max_topic_bytes(256 * 1024)
///     .max_bytes(32 * 1024 * 1024)
///     .max_age(Duration::from_secs(300))
///     .overflow(OverflowPolicy::SkipToLive)
///     .lag_limit_percent(50)
///     .build();
/// # drop(hub);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct HubBuilder {
    pub(crate) limits: Limits,
    pub(crate) epoch: Option<u64>,
    pub(crate) shutdown: Option<CancellationToken>,
}

impl HubBuilder {
    /// A builder with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most events one topic holds for replay and live delivery (default 1024). The oldest
    /// event is evicted when a new one would exceed it. `0` is treated as `1`.
    pub fn capacity(mut self, events: usize) -> Self {
        self.limits.capacity = events.max(1);
        self
    }

    /// The most encoded bytes one topic holds (default 1 MiB). The oldest events are evicted
    /// to stay within it; a single event larger than this is refused with
    /// [`HubError::EventTooLarge`](super::HubError::EventTooLarge).
    pub fn max_topic_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_topic_bytes = bytes;
        self
    }

    /// The most encoded bytes the whole hub holds, across all topics (default 64 MiB). When a
    /// publish would exceed it, the oldest events of the hub are evicted first, whatever their
    /// topic. A single event larger than this is refused.
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_bytes = bytes;
        self
    }

    /// The most memory the hub's held events and the topics holding them may cost (default
    /// 256 MiB), as the hub charges it: each event's encoded bytes plus a fixed bookkeeping
    /// cost (288 bytes on 64-bit targets: its ring slot, its place in the eviction order,
    /// its buffer's header and spare room), and each topic holding events its name plus 576
    /// bytes. [`HubStats::memory_held`](super::HubStats::memory_held) reads the charge.
    /// When a publish would exceed it, the oldest events of the hub are evicted first, as for
    /// [`max_bytes`](Self::max_bytes), and the topics they empty are reclaimed.
    ///
    /// [`max_bytes`](Self::max_bytes) and [`capacity`](Self::capacity) usually bind first;
    /// this limit is what bounds the hub when events are tiny or spread over very many
    /// topics (one topic per user, each with a few small events). The
    /// [lag limit](Self::lag_limit_percent) anticipates its evictions as it does those of
    /// `max_bytes`.
    ///
    /// It also caps the size of one event: an event is admitted only if it fits, with its
    /// bookkeeping and its topic's, within this limit. A limit under about 1 KiB refuses
    /// every publish with [`HubError::EventTooLarge`](super::HubError::EventTooLarge).
    ///
    /// Not charged: topics that hold no events, whose number is bounded by the open
    /// subscriptions ([`max_subscribers`](Self::max_subscribers) times
    /// [`max_topics_per_subscription`](Self::max_topics_per_subscription)) and by
    /// [`max_idle_topics`](Self::max_idle_topics).
    pub fn max_memory(mut self, bytes: usize) -> Self {
        self.limits.max_memory = bytes;
        self
    }

    /// How long an event is held for replay (default: no age limit). Expired events are evicted
    /// when the hub is next used (a publish or a subscribe); the hub runs no background task.
    /// Also bounds how long the hub remembers, for an idle topic, which events it lost.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.limits.max_age = Some(age);
        self
    }

    /// What happens to a subscription that falls behind (default [`OverflowPolicy::End`]).
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.limits.overflow = policy;
        self
    }

    /// How far behind a subscription may fall before the [`OverflowPolicy`] applies, as a
    /// percentage of the ring's limits (default 75). Values are clamped to 1..=100.
    ///
    /// Each time a subscription is polled it checks, in each topic it follows where it has more
    /// than one event to read, whether it is behind the newest event by more than this
    /// percentage of [`capacity`](Self::capacity) events or of
    /// [`max_topic_bytes`](Self::max_topic_bytes) bytes; and, while the hub holds more than
    /// this percentage of [`max_bytes`](Self::max_bytes), whether the hub received more than
    /// that many bytes after the oldest event it has not read (and the same in memory against
    /// [`max_memory`](Self::max_memory), while the hub's charge is over this percentage of
    /// it). If so the policy applies at once, at an event boundary, while every event it has
    /// not read is still held: under [`OverflowPolicy::End`] the client's `Last-Event-ID` then
    /// resumes without loss, provided it reconnects before the remaining part of the ring
    /// fills. Lag is counted in events
    /// and bytes, never in id positions (which are not dense with Redis).
    ///
    /// The limit applies to a subscription only once a poll has found it within the limit,
    /// so a resume that starts with a long replay is not ended for the backlog it came for;
    /// and [`End`](OverflowPolicy::End) does not end a subscription whose client has no id to
    /// resume from yet (no `Last-Event-ID`, no event received): it delivers one event first. Bursts that a healthy client sees between two reads should stay well
    /// within the limit; raise the capacity rather than the percentage if they do not.
    ///
    /// `100` turns the limit off: a subscription falls behind only when an event it has not
    /// read is evicted (in memory, its client then gets a `reset` marker on reconnect). Low values end subscriptions at short bursts.
    pub fn lag_limit_percent(mut self, percent: u8) -> Self {
        self.limits.lag_limit_percent = percent.clamp(1, 100);
        self
    }

    /// The most subscriptions open at once (default 100,000); beyond it
    /// [`Hub::subscribe`] fails with
    /// [`HubError::TooManySubscribers`](super::HubError::TooManySubscribers).
    pub fn max_subscribers(mut self, subscribers: usize) -> Self {
        self.limits.max_subscribers = subscribers;
        self
    }

    /// The most topics one subscription may follow (default 64), counting duplicates; beyond it
    /// [`Hub::subscribe`] fails with
    /// [`HubError::TooManyTopics`](super::HubError::TooManyTopics).
    pub fn max_topics_per_subscription(mut self, topics: usize) -> Self {
        self.limits.max_topics_per_subscription = topics;
        self
    }

    /// The longest topic name, in bytes (default 256).
    pub fn max_topic_len(mut self, bytes: usize) -> Self {
        self.limits.max_topic_len = bytes;
        self
    }

    /// How many idle topics the hub remembers (default 16,384).
    ///
    /// A topic with no subscribers and no events left is idle. If it never lost an event the
    /// hub forgets it at once. If events were evicted from it, the hub keeps a small record of
    /// the last one lost so that a client coming back with an older `Last-Event-ID` gets a
    /// `reset` marker, and one that saw everything resumes without a spurious reset. Beyond
    /// this number (or after [`max_age`](Self::max_age)) the oldest records are forgotten; the
    /// hub then answers conservatively: a `Last-Event-ID` older than the newest event it ever
    /// forgot gets a `reset` for a topic it no longer knows.
    pub fn max_idle_topics(mut self, topics: usize) -> Self {
        self.limits.max_idle_topics = topics;
        self
    }

    /// Whether a subscription opened without a `Last-Event-ID` starts with an id-only event
    /// carrying the current position (default `false`):
    ///
    /// ```text
    /// id: <current position>
    /// ```
    ///
    /// Browsers dispatch nothing for it but remember the id, so if the connection drops before
    /// the first real event, the reconnect resumes from where it started instead of missing
    /// what was published in between.
    pub fn initial_id(mut self, enabled: bool) -> Self {
        self.limits.initial_id = enabled;
        self
    }

    /// Sets the hub's epoch, the first part of every id (default: random per hub).
    ///
    /// Ids carry the epoch so that an id from an earlier run is recognised and answered with a
    /// `reset` marker. Reusing an epoch across runs defeats that, since the sequence restarts
    /// at 1: fix it only for tests or when the sequence truly continues.
    pub fn epoch(mut self, epoch: u64) -> Self {
        self.epoch = Some(epoch);
        self
    }

    /// Closes the hub when `token` is cancelled, like [`Hub::close`]. Pass the same token that
    /// shuts down the server so that every subscription ends with it.
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// Builds the hub, in memory.
    pub fn build(self) -> Hub {
        Hub::from_builder(self)
    }

    /// Shares the hub between server instances through Redis Streams, with these settings;
    /// finish with [`connect`](super::redis::RedisHubBuilder::connect). The limits set on
    /// this builder apply to each instance's rings. See [`hub::redis`](super::redis).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(self, config: super::redis::RedisConfig) -> super::redis::RedisHubBuilder {
        super::redis::RedisHubBuilder::new(self, config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_limit_in_each_unit() {
        let limits = HubBuilder::new()
            .capacity(1000)
            .max_topic_bytes(4000)
            .max_bytes(usize::MAX)
            .limits;
        assert_eq!(
            limits.lag_limit(),
            Some(LagLimit {
                events: 750,
                topic_bytes: 3000,
                hub_bytes: u64::try_from(usize::MAX).unwrap() / 4 * 3 + 2,
                hub_memory: (256 << 20) / 4 * 3,
            })
        );
        let off = HubBuilder::new().lag_limit_percent(100).limits;
        assert_eq!(off.lag_limit(), None);
        let clamped = HubBuilder::new().lag_limit_percent(200).limits;
        assert_eq!(clamped.lag_limit(), None);
        let low = HubBuilder::new().capacity(50).lag_limit_percent(0).limits;
        assert_eq!(low.lag_limit_percent, 1);
        assert_eq!(low.lag_limit().map(|l| l.events), Some(0));
    }
}
