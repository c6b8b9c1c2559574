//! Hub statistics.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// A snapshot of a hub's counters, from [`Hub::stats`](super::Hub::stats).
///
/// Reading it is a handful of atomic loads. Fields are read independently, so under concurrent
/// use they may describe slightly different instants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HubStats {
    /// Open subscriptions.
    pub subscribers: usize,
    /// Topics the hub keeps, including idle ones.
    pub topics: usize,
    /// Topics with no subscribers and no events, kept only to answer `Last-Event-ID` precisely
    /// (see [`HubBuilder::max_idle_topics`](super::HubBuilder::max_idle_topics)).
    pub idle_topics: usize,
    /// Events published since the hub was built. With Redis: events this instance read from
    /// the stream and added to its topics, whichever instance published them.
    pub events_published: u64,
    /// Events held for replay and delivery, across all topics.
    pub events_held: usize,
    /// Encoded bytes of the events held, bounded by
    /// [`HubBuilder::max_bytes`](super::HubBuilder::max_bytes).
    pub bytes_held: usize,
    /// What the events held and the topics holding them cost in memory, as the hub charges it
    /// against [`HubBuilder::max_memory`](super::HubBuilder::max_memory): their encoded bytes
    /// plus a fixed bookkeeping cost per event and per topic.
    pub memory_held: usize,
    /// Subscriptions ended because they fell behind
    /// ([`OverflowPolicy::End`](super::OverflowPolicy::End)): past the lag limit, or after
    /// losing events.
    pub lagged_ends: u64,
    /// Of [`lagged_ends`](Self::lagged_ends), those ended at the
    /// [lag limit](super::HubBuilder::lag_limit_percent) while every event they had not
    /// delivered was still held, so that their clients could resume without loss. The others
    /// had already lost events when they were polled; their clients get a `reset` marker when
    /// they reconnect (with Redis, unless the stream still holds what the rings lost).
    pub lagged_ends_lossless: u64,
    /// Times a subscription skipped to live events because it fell behind
    /// ([`OverflowPolicy::SkipToLive`](super::OverflowPolicy::SkipToLive)), past the lag limit
    /// or after losing events.
    pub lagged_skips: u64,
    /// `reset` markers sent for a `Last-Event-ID` that could not be resumed.
    pub resets: u64,
    /// Times the backend's reader lost its connection and connected again (always `0` in
    /// memory).
    pub reader_reconnects: u64,
    /// Times an entry of the backend's stream was skipped because it was not an event of this
    /// hub (foreign or malformed) or was too large for this hub's limits: by the reader, or by
    /// a resume that read past it, so one entry may count more than once (always `0` in
    /// memory).
    pub entries_skipped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) subscribers: AtomicUsize,
    pub(crate) topics: AtomicUsize,
    pub(crate) idle_topics: AtomicUsize,
    pub(crate) events_published: AtomicU64,
    pub(crate) events_held: AtomicUsize,
    pub(crate) bytes_held: AtomicUsize,
    pub(crate) memory_held: AtomicUsize,
    pub(crate) lagged_ends: AtomicU64,
    pub(crate) lagged_ends_lossless: AtomicU64,
    pub(crate) lagged_skips: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) reader_reconnects: AtomicU64,
    pub(crate) entries_skipped: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> HubStats {
        HubStats {
            subscribers: self.subscribers.load(Relaxed),
            topics: self.topics.load(Relaxed),
            idle_topics: self.idle_topics.load(Relaxed),
            events_published: self.events_published.load(Relaxed),
            events_held: self.events_held.load(Relaxed),
            bytes_held: self.bytes_held.load(Relaxed),
            memory_held: self.memory_held.load(Relaxed),
            lagged_ends: self.lagged_ends.load(Relaxed),
            lagged_ends_lossless: self.lagged_ends_lossless.load(Relaxed),
            lagged_skips: self.lagged_skips.load(Relaxed),
            resets: self.resets.load(Relaxed),
            reader_reconnects: self.reader_reconnects.load(Relaxed),
            entries_skipped: self.entries_skipped.load(Relaxed),
        }
    }
}
