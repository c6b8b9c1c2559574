//! The hub over Redis Streams, for many server instances (feature `redis`).
//!
//! Several instances of a server build their [`Hub`] with the same Redis and key prefix and
//! behave as one hub: an event published on any instance reaches the subscribers of every
//! instance, all in one order, with one id everywhere, and a client can resume on any instance
//! with the `Last-Event-ID` it got from another. The API is the hub's; only construction
//! differs:
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use tower_sse::Event;
//! use tower_sse::hub::Hub;
//! use tower_sse::hub::redis::RedisConfig;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::builder()
//!     .capacity(256) // per topic, in this instance's memory
//!     .redis(RedisConfig::new("redis://127.0.0.1:6379").key_prefix("myapp"))
//!     .connect()
//!     .await?; // Redis unreachable: HubError::Backend
//!
//! let mut live = hub.subscribe(["room:lobby"], None)?;
//! // The id is the stream entry's id, e.g. "1712345678901-0", the same on every instance.
//! let id = hub.publish("room:lobby", Event::new().event("msg")?.data("hi")).await?;
//! let event = live.next().await.unwrap();
//! assert!(event.as_bytes().ends_with(format!("id: {id}\n\n").as_bytes()));
//!
//! // On any instance, a reconnecting client resumes with the id it last received.
//! let resumed = hub.subscribe(["room:lobby"], Some(&id))?;
//! let response = tower_sse::Sse::new(resumed).into_response();
//! # drop(response);
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! All instances with one key prefix share one stream, `<prefix>:events`. Each entry holds a
//! topic name and the event's encoded lines (without the hub's `id:` line).
//!
//! - [`Hub::publish`] is `XADD <prefix>:events MAXLEN ~ <max_len> * topic <t> event <lines>`
//!   on a shared, automatically reconnecting connection, and returns the entry id once
//!   Redis has the entry. It does not add the event to the local rings itself.
//! - Each instance runs **one reader** (a task, on its own connection named by
//!   [`RedisConfig::reader_name`]) that follows the stream with `XREAD BLOCK` and adds each
//!   entry to the local topic rings, appending `id: <entry id>`: an event is encoded once per
//!   instance, and local fan-out, replay, limits, the lag limit and the [`OverflowPolicy`]
//!   are those of the in-memory hub (lag is counted in entries and bytes, so the gaps
//!   between positions do not matter). Since every instance, the publishing one included,
//!   delivers entries in stream order, all subscribers everywhere see one order.
//! - Ids are entry ids, `<ms>-<seq>`; within an instance an id is the ring position
//!   `ms << 20 | seq`. Entries with a sequence part of 2^20 or more (a million in one
//!   millisecond) cannot be ordered this way and are skipped and logged.
//!
//! # Resume
//!
//! [`Hub::subscribe`] with a `Last-Event-ID` from any instance:
//!
//! | the id is ...                                          | the subscription gets              |
//! |--------------------------------------------------------|------------------------------------|
//! | within what the local rings hold                       | replay from the rings, then live   |
//! | older than the rings but still in the stream           | replay read with `XRANGE` (exclusive start, pages of [`replay_page`](RedisConfig::replay_page) entries, filtered by the subscription's topics) up to where the rings start, then the rings, then live |
//! | newer than this instance has read (another instance was faster) | waits for the reader to reach it, then live |
//! | older than the stream's oldest entry after trimming    | `reset` marker, reason `"stale"`, then the rings |
//! | so old that the replay would scan more than [`max_replay`](RedisConfig::max_replay) entries | the events up to the cap, then a `reset` marker (`"stale"`), then the rings |
//! | after the stream's newest entry id                     | `reset` marker, reason `"future"`  |
//! | not of the form `<ms>-<seq>`                           | `reset` marker, reason `"unknown"` |
//!
//! A `reset` marker carries the position the subscription continues from. The hand-over
//! from the stream to the rings and from the rings to live events has no gap and no
//! duplicate. Because Redis trims in whole blocks, "trimmed" is decided conservatively: an id
//! whose own entry was trimmed gets a reset even if nothing after it was. The in-memory
//! reason `"epoch"` does not occur: entry ids are shared by every instance and run.
//!
//! # Guarantees and failures
//!
//! | situation | behaviour |
//! |---|---|
//! | Redis unreachable at [`connect`](RedisHubBuilder::connect) | [`HubError::Backend`] of kind [`Connect`](crate::hub::BackendErrorKind::Connect) |
//! | Redis lost while running: publish | [`HubError::Backend`] of kind [`Command`](crate::hub::BackendErrorKind::Command), never a silent drop; the connection is re-established by the next publishes. An error after the request was sent may hide a stored entry, which is then delivered |
//! | Redis lost while running: reader | logs a warning, reconnects with capped exponential backoff with jitter ([`reconnect_backoff`](RedisConfig::reconnect_backoff)), and reads on from the last entry it saw: subscribers miss nothing that reached Redis; [`HubStats::reader_reconnects`](crate::hub::HubStats::reader_reconnects) counts it |
//! | entries trimmed before a slow or disconnected reader read them | detected (a full read batch triggers a check of the stream's first entry); every local subscription falls behind (its [`OverflowPolicy`] applies: by default it ends, and the client resumes and gets a `reset` marker): never a silent gap |
//! | Redis restarted without persistence | the stream starts again; entries not yet read by a reader are lost with it; new entries (with larger ids) are read as usual |
//! | Redis lost during a resume's replay | the subscription ends; the client reconnects and resumes |
//! | a malformed or foreign entry in the stream | skipped, logged with `tracing` at warn level, counted in [`HubStats::entries_skipped`](crate::hub::HubStats::entries_skipped); the following entries are delivered |
//! | an entry larger than this instance's limits | recorded as lost in its topic: that topic's subscribers fall behind and resume from the stream |
//! | the hub closed or its last handle dropped | the reader stops (its connection closes); subscriptions end as in memory |
//! | [`Hub::publish_now`] | refused ([`Unsupported`](crate::hub::BackendErrorKind::Unsupported)): publishing needs a round trip |
//!
//! Publish returns when Redis has the entry, before the local reader has delivered it; the
//! hub's [`Hub::last_id`] is the newest entry this instance has read.
//!
//! [`Hub`]: crate::hub::Hub
//! [`Hub::publish`]: crate::hub::Hub::publish
//! [`Hub::publish_now`]: crate::hub::Hub::publish_now
//! [`Hub::subscribe`]: crate::hub::Hub::subscribe
//! [`Hub::last_id`]: crate::hub::Hub::last_id
//! [`HubError::Backend`]: crate::hub::HubError::Backend
//! [`OverflowPolicy`]: crate::hub::OverflowPolicy

mod backend;
mod config;
mod entry;
mod reader;
mod resume;

pub use config::RedisConfig;

pub(crate) use backend::Backend;
pub(crate) use entry::{MAX_ID_SUFFIX, StreamId};
pub(crate) use resume::{CatchUp, Step};

use super::{Hub, HubBuilder, HubError};

/// A [`HubBuilder`] with Redis settings, from [`HubBuilder::redis`]; connect it with
/// [`connect`](RedisHubBuilder::connect).
#[derive(Debug)]
#[must_use]
pub struct RedisHubBuilder {
    builder: HubBuilder,
    config: RedisConfig,
}

impl RedisHubBuilder {
    pub(crate) fn new(builder: HubBuilder, config: RedisConfig) -> RedisHubBuilder {
        RedisHubBuilder { builder, config }
    }

    /// Connects to Redis, reads where the stream ends, starts this instance's reader (a tokio
    /// task: call this within a tokio runtime) and returns the hub.
    ///
    /// The hub's limits, overflow policy and shutdown token come from the [`HubBuilder`];
    /// its [`epoch`](HubBuilder::epoch) is not used (ids are the stream's).
    ///
    /// # Errors
    ///
    /// [`HubError::Backend`] of kind [`Connect`](crate::hub::BackendErrorKind::Connect) when
    /// the URL is invalid, Redis cannot be reached within the
    /// [`connect_timeout`](RedisConfig::connect_timeout) (with one retry), refuses the
    /// credentials, or the stream's key holds something other than a stream.
    pub async fn connect(self) -> Result<Hub, HubError> {
        backend::connect(self.builder, self.config).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::FutureExt;
    use futures_util::StreamExt;

    use super::StreamId;
    use crate::Event;
    use crate::hub::state::{Inner, Remote};
    use crate::hub::{HubBuilder, Subscription};

    fn remote(pos: u64, topic: &str) -> Remote {
        let mut event = Event::new().data(pos.to_string());
        event.push_id_unchecked(&StreamId::from_position(pos).to_string());
        Remote {
            pos,
            topic: topic.to_owned(),
            event: event.encode(),
        }
    }

    fn subscribe(inner: &Arc<Inner>, topics: &[&str]) -> Subscription {
        let opened = inner.subscribe(topics, None).unwrap();
        Subscription::new(Arc::clone(inner), opened)
    }

    #[test]
    fn losing_entries_makes_every_subscription_fall_behind() {
        let inner = Arc::new(Inner::new_stream(HubBuilder::new(), 10));
        let mut sub = subscribe(&inner, &["t"]);
        let mut quiet = subscribe(&inner, &["q"]);
        inner.insert_remote([remote(11, "t"), remote(12, "t")], 12);
        assert!(sub.next().now_or_never().flatten().is_some());
        assert!(sub.next().now_or_never().flatten().is_some());
        assert!(sub.next().now_or_never().is_none(), "waiting");
        inner.lose_everything_upto(20);
        inner.insert_remote([remote(21, "t")], 21);
        assert_eq!(
            sub.next().now_or_never(),
            Some(None),
            "ended, not a silent gap"
        );
        assert_eq!(quiet.next().now_or_never(), Some(None));
        assert_eq!(inner.counters.snapshot().lagged_ends, 2);
        // A new subscription starts after the gap.
        let mut fresh = subscribe(&inner, &["t"]);
        inner.insert_remote([remote(22, "t")], 22);
        let event = fresh.next().now_or_never().flatten().unwrap();
        assert!(event.as_bytes().starts_with(b"data: 22\n"));
    }

    /// Entry ids map to positions `ms << 20 | seq`, far apart: lag is counted in entries.
    #[test]
    fn the_lag_limit_counts_entries_not_positions() {
        let position = |i: u64| ((1_700_000_000_000 + 7 * i) << 20) | (i % 3);
        let inner = Arc::new(Inner::new_stream(HubBuilder::new().capacity(100), 0));
        let mut sub = subscribe(&inner, &["t"]);
        let mut i = 0;
        let mut insert = |n: u64| {
            let events: Vec<Remote> = (i..i + n).map(|j| remote(position(j), "t")).collect();
            i += n;
            inner.insert_remote(events, position(i - 1));
        };
        insert(5);
        for _ in 0..5 {
            assert!(sub.next().now_or_never().flatten().is_some());
        }
        // 75 entries behind, millions of positions: within the limit (75 of 100).
        insert(75);
        assert!(sub.next().now_or_never().flatten().is_some());
        // 76 behind, all still held: ended before anything it has not read is evicted.
        insert(2);
        assert_eq!(sub.next().now_or_never(), Some(None));
        let stats = inner.counters.snapshot();
        assert_eq!((stats.lagged_ends, stats.lagged_ends_lossless), (1, 1));
        assert_eq!(stats.events_held, 82);
    }
}
