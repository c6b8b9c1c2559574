//! A broadcast hub with `Last-Event-ID` replay: in memory, or over Redis Streams for many
//! server instances (module `redis`, feature `redis`).
//!
//! A [`Hub`] holds named topics. [`Hub::publish`] gives an event the next id, encodes it once
//! and appends it to the topic's ring; [`Hub::subscribe`] returns a [`Subscription`], a stream
//! of [`EncodedEvent`](crate::EncodedEvent)s of one or more topics that plugs straight into
//! [`Sse::new`](crate::Sse::new) or [`SseBody`](crate::SseBody). One ring per topic serves
//! both live delivery and replay: subscribers are cursors into it and share the encoded
//! bytes, nothing is copied per subscriber, and a publisher never waits for a subscriber.
//!
//! ```
//! use futures_util::StreamExt;
//! use tower_sse::Event;
//! use tower_sse::hub::Hub;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::new();
//!
//! // A user's private topic and a room, in one stream.
//! let mut live = hub.subscribe(["user:alice", "room:lobby"], None)?;
//! let first = hub.publish("room:lobby", Event::new().event("msg")?.data("hi all")).await?;
//! let second = hub.publish("user:alice", Event::new().event("dm")?.data("hi alice")).await?;
//!
//! let event = live.next().await.unwrap();
//! assert_eq!(
//!     event.as_bytes(),
//!     format!("event: msg\ndata: hi all\nid: {first}\n\n").as_bytes(),
//! );
//!
//! // The connection drops after `first`; the browser reconnects with `Last-Event-ID: first`
//! // and gets exactly what came after it, then live events.
//! drop(live);
//! let mut resumed = hub.subscribe(["user:alice", "room:lobby"], Some(&first))?;
//! let event = resumed.next().await.unwrap();
//! assert_eq!(
//!     event.as_bytes(),
//!     format!("event: dm\ndata: hi alice\nid: {second}\n\n").as_bytes(),
//! );
//!
//! // An id from an earlier run of the server: the app is told to reload its state.
//! let mut old = hub.subscribe(["room:lobby"], Some("0123456789abcdef-41"))?;
//! let event = old.next().await.unwrap();
//! assert_eq!(
//!     event.as_bytes(),
//!     format!("event: reset\ndata: {{\"reason\":\"epoch\"}}\nid: {second}\n\n").as_bytes(),
//! );
//!
//! // In a handler, the subscription is the response body's stream.
//! let response = tower_sse::Sse::new(resumed).into_response();
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//! # Ok(())
//! # }
//! ```
//!
//! # Ids
//!
//! Ids are assigned by the hub, increase across the whole hub (not per topic), and carry the
//! hub's epoch: `<epoch>-<seq>`, the epoch as 16 lowercase hex digits, a dash, and the
//! position in decimal, e.g. `3f9a1c02e7b4d815-42`. The epoch is random per hub unless set
//! with [`HubBuilder::epoch`], so an id from before a restart is recognised as such. Because
//! one sequence orders every topic, one `Last-Event-ID` positions a client in every topic it
//! follows. Treat ids as opaque: another backend may spell them differently (over Redis, with
//! feature `redis`, they are the stream's entry ids, `<ms>-<seq>`).
//!
//! # Replay and the `reset` marker
//!
//! Subscribing with a `Last-Event-ID` replays the events after it that the hub still holds,
//! then continues live; replay and live reading are the same cursor, so the hand-over has no
//! gap and no duplicate even while publishing continues. When the hub cannot do that, the
//! subscription starts with this event, then continues with live events:
//!
//! ```text
//! event: reset
//! data: {"reason":"stale"}
//! id: <id of the newest event>
//!
//! ```
//!
//! | `reason`    | when                                                                  |
//! |-------------|-----------------------------------------------------------------------|
//! | `"stale"`   | events after the id were evicted from at least one followed topic     |
//! | `"unknown"` | the id is not in this hub's format                                    |
//! | `"future"`  | the id is after the newest event of this hub                          |
//! | `"epoch"`   | the id comes from another hub or an earlier run                       |
//!
//! The page should listen for it (`source.addEventListener("reset", ...)`) and reload its state.
//! Staleness is decided per topic: a topic that had no event after the id is not stale, one
//! that lost any event after it is.
//!
//! # Limits and eviction
//!
//! Each topic holds at most [`capacity`](HubBuilder::capacity) events and
//! [`max_topic_bytes`](HubBuilder::max_topic_bytes) bytes, the whole hub at most
//! [`max_bytes`](HubBuilder::max_bytes) bytes, each event at most
//! [`max_age`](HubBuilder::max_age) if set; the oldest events are evicted first. A topic with
//! no subscribers and no events is reclaimed (see [`HubBuilder::max_idle_topics`] for the
//! small record kept to answer `Last-Event-ID` precisely). The memory all this costs,
//! bookkeeping included, is bounded by [`max_memory`](HubBuilder::max_memory), which evicts
//! the same way: many tiny events, or one event each in a great many topics, cannot hold
//! more than it, whatever the byte limits say.
//!
//! # Slow subscribers
//!
//! Publishing never waits for a subscriber, and a subscriber that reads more slowly than
//! events arrive is never buffered without bound: it falls behind its rings, and the
//! [`OverflowPolicy`] applies at one of two points.
//!
//! - **At the lag limit**, before anything is lost. Each time a subscription is polled it
//!   checks how far behind it is, in events and bytes: past
//!   [`lag_limit_percent`](HubBuilder::lag_limit_percent) (75 % by default) of a followed
//!   topic's [`capacity`](HubBuilder::capacity) or
//!   [`max_topic_bytes`](HubBuilder::max_topic_bytes), or, while the hub holds that much of
//!   its [`max_bytes`](HubBuilder::max_bytes) (or of its
//!   [`max_memory`](HubBuilder::max_memory)), of the bytes published (or the memory charged)
//!   hub-wide after its oldest unread event, every event it has not delivered is still held.
//!   Under the default [`OverflowPolicy::End`] its stream ends there, between two events;
//!   the browser reconnects with the `Last-Event-ID` of the last event it got and the new
//!   subscription replays exactly what it missed, from the rings, without a marker, provided
//!   the reconnect comes before the rest of the ring (a quarter, by default) is used up.
//!   Counted in [`HubStats::lagged_ends`] and [`HubStats::lagged_ends_lossless`].
//! - **After losing events.** A subscription that was not polled while it crossed the limit
//!   (its connection stalled and the server stopped asking it for events) finds, when polled
//!   again, that events it had not read were evicted. It delivers the events it had already
//!   copied out of its rings, in order, then ends before the first lost one; the reconnect
//!   gets a `reset` marker (`"stale"`). Counted in [`HubStats::lagged_ends`] only.
//!
//! Under [`OverflowPolicy::SkipToLive`] both points skip to live events after a `lagged`
//! marker instead. The limit applies to a subscription only once a poll has found it within
//! the limit (a resume that starts with a long replay is not ended for it) and, under `End`,
//! only if its client has an id to resume from (it delivers one event first otherwise; see
//! [`HubBuilder::initial_id`]). A topic with a single unread event is never behind: that
//! event is the next one delivered. Lag is counted in events and bytes, never in id
//! positions, which are not dense over Redis. Browsers wait their retry interval before
//! reconnecting ([`SseBody::retry`](crate::SseBody::retry) sets it): size the rings so that
//! the part above the limit holds what is published meanwhile.
//!
//! ```
//! use futures_util::StreamExt;
//! use tower_sse::Event;
//! use tower_sse::hub::Hub;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A subscription more than 75 events behind is ended while the ring still holds them.
//! let hub = Hub::builder().capacity(100).build();
//! let mut slow = hub.subscribe(["feed"], None)?;
//! let seen = hub.publish("feed", Event::new().data("0")).await?;
//! assert!(slow.next().await.is_some());
//!
//! // The client stops reading while 80 more events are published.
//! for i in 1..=80 {
//!     hub.publish("feed", Event::new().data(i.to_string())).await?;
//! }
//! assert!(slow.next().await.is_none());
//! assert_eq!(hub.stats().lagged_ends_lossless, 1);
//!
//! // It reconnects with the last id it got and misses nothing.
//! let mut resumed = hub.subscribe(["feed"], Some(&seen))?;
//! let first = resumed.next().await.unwrap();
//! assert!(first.as_bytes().starts_with(b"data: 1\n"));
//! # Ok(())
//! # }
//! ```
//!
//! # Shutdown
//!
//! [`Hub::close`], a cancelled [`HubBuilder::shutdown`] token, or dropping the last [`Hub`]
//! clone ends every subscription at its next poll, between two events, and makes publishing
//! fail with [`HubError::Closed`].

mod config;
mod error;
mod handle;
mod id;
mod marker;
mod state;
mod stats;
mod subscription;
mod topic;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

pub use config::{HubBuilder, OverflowPolicy};
pub use error::{BackendError, BackendErrorKind, HubError};
pub use handle::Hub;
pub use marker::{LAGGED_EVENT, RESET_EVENT};
pub use stats::HubStats;
pub use subscription::Subscription;
