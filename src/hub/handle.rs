//! [`Hub`]: the handle applications publish and subscribe with.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::config::HubBuilder;
use super::id::Ids;
use super::state::Inner;
use super::{HubError, HubStats, Subscription};
use crate::Event;

/// A broadcast hub: named topics, each a ring of encoded events that feeds live subscribers
/// and replays to reconnecting ones.
///
/// In memory by default ([`Hub::new`], [`HubBuilder::build`]); with feature `redis`, shared
/// by many server instances through a Redis stream (`HubBuilder::redis`, see the module
/// `hub::redis`), with the same API.
///
/// Cloning is cheap and every clone is the same hub. When the last clone is dropped the hub
/// closes, like [`close`](Hub::close): subscriptions end since nothing can publish any more.
///
/// See the [module documentation](super) for ids, replay and the marker events.
#[derive(Clone)]
pub struct Hub {
    handle: Arc<Handle>,
}

/// Closes the hub when the last [`Hub`] clone goes.
struct Handle {
    inner: Arc<Inner>,
    /// The Redis backend, when the hub was built with one.
    #[cfg(feature = "redis")]
    backend: Option<Arc<super::redis::Backend>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.close();
    }
}

impl Hub {
    /// A hub with the default limits (see [`HubBuilder`]).
    pub fn new() -> Hub {
        HubBuilder::new().build()
    }

    /// A builder to set limits, the overflow policy and a shutdown token.
    pub fn builder() -> HubBuilder {
        HubBuilder::new()
    }

    pub(crate) fn from_builder(builder: HubBuilder) -> Hub {
        let inner = Arc::new(Inner::new(builder));
        Inner::watch_shutdown(&inner);
        Hub {
            handle: Arc::new(Handle {
                inner,
                #[cfg(feature = "redis")]
                backend: None,
            }),
        }
    }

    /// A hub whose events travel through `backend`.
    #[cfg(feature = "redis")]
    pub(crate) fn with_backend(inner: Arc<Inner>, backend: Arc<super::redis::Backend>) -> Hub {
        Hub {
            handle: Arc::new(Handle {
                inner,
                backend: Some(backend),
            }),
        }
    }

    fn inner(&self) -> &Arc<Inner> {
        &self.handle.inner
    }

    /// Publishes `event` to `topic` and returns the id the hub gave it.
    ///
    /// The hub appends an `id:` line with the new id and encodes the event once; every
    /// subscriber and every replay shares those bytes. The hub's id line comes after
    /// everything the event already holds, so it overrides any id set with
    /// [`Event::id`] (clients keep the last `id:` line of an event).
    ///
    /// The topic is created if needed. The event is held for replay even when nobody follows
    /// the topic, within the hub's limits; older events are evicted to make room. Publishing
    /// never waits for a subscriber: it takes the hub's mutex for a few map operations and
    /// wakes the waiting subscribers. In memory the returned future completes on its first
    /// poll; it is `async` so that a backend over the network can share this signature.
    ///
    /// With Redis, the event is appended to the stream (`XADD`) and the stream's entry id is
    /// returned once Redis has it; every instance, this one included, then receives it from
    /// the stream and delivers it to its subscribers, so all instances deliver one order.
    ///
    /// # Errors
    ///
    /// [`HubError::Closed`] after the hub closed; [`HubError::EmptyTopic`] /
    /// [`HubError::TopicTooLong`] for a topic name the hub refuses;
    /// [`HubError::EventTooLarge`] when the encoded event does not fit a topic or the hub;
    /// [`HubError::Backend`] when Redis cannot be reached or refuses the entry.
    pub async fn publish(&self, topic: impl AsRef<str>, event: Event) -> Result<String, HubError> {
        #[cfg(feature = "redis")]
        if let Some(backend) = &self.handle.backend {
            return backend.publish(self.inner(), topic.as_ref(), event).await;
        }
        self.inner().publish(topic.as_ref(), event)
    }

    /// [`publish`](Hub::publish) without the future: the in-memory hub completes at once.
    ///
    /// # Errors
    ///
    /// As for [`publish`](Hub::publish). A hub over Redis cannot publish without waiting and
    /// refuses with [`HubError::Backend`] of kind
    /// [`Unsupported`](super::BackendErrorKind::Unsupported).
    pub fn publish_now(&self, topic: impl AsRef<str>, event: Event) -> Result<String, HubError> {
        #[cfg(feature = "redis")]
        if self.handle.backend.is_some() {
            return Err(HubError::Backend(super::BackendError::new(
                super::BackendErrorKind::Unsupported,
                "publish_now needs the in-memory hub; use publish",
            )));
        }
        self.inner().publish(topic.as_ref(), event)
    }

    /// Subscribes to one or more topics, in one stream merged in id order.
    ///
    /// `last_event_id` is the client's `Last-Event-ID` (see
    /// [`LastEventId`](crate::LastEventId)); `None` or `Some("")` starts with live events.
    /// With an id from this hub, the subscription first replays exactly the events after it
    /// that are still held, in all `topics`, then continues live, with no gap and no
    /// duplicate at the hand-over. An id that cannot be resumed makes the subscription start
    /// with a [`reset`](super::RESET_EVENT) marker carrying the current position, then live
    /// events: events after the id were evicted from at least one of the topics
    /// (`"stale"`), the id is not in this hub's format (`"unknown"`), it is after the newest
    /// event (`"future"`), or it comes from another hub or an earlier run (`"epoch"`).
    ///
    /// With Redis, an id older than what this instance's rings hold (or not seen by this
    /// instance yet) is served from the stream instead (see "Resume" in the module
    /// `hub::redis`).
    ///
    /// Topics are created if needed; duplicates are followed once.
    ///
    /// # Errors
    ///
    /// [`HubError::Closed`]; [`HubError::NoTopics`] for an empty list;
    /// [`HubError::TooManyTopics`] for more than
    /// [`max_topics_per_subscription`](HubBuilder::max_topics_per_subscription) names
    /// (duplicates included); [`HubError::EmptyTopic`] / [`HubError::TopicTooLong`];
    /// [`HubError::TooManySubscribers`] when the hub is full.
    pub fn subscribe<I>(
        &self,
        topics: I,
        last_event_id: Option<&str>,
    ) -> Result<Subscription, HubError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let inner = self.inner();
        let limit = inner.limits.max_topics_per_subscription;
        let mut items = Vec::new();
        for topic in topics {
            if items.len() == limit {
                return Err(HubError::TooManyTopics { limit });
            }
            items.push(topic);
        }
        let mut names: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
        if names.is_empty() {
            return Err(HubError::NoTopics);
        }
        for name in &names {
            inner.validate_topic(name)?;
        }
        names.sort_unstable();
        names.dedup();
        let opened = inner.subscribe(&names, last_event_id)?;
        let resume_after = opened.resume_after;
        #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
        let mut subscription = Subscription::new(Arc::clone(inner), opened);
        #[cfg(feature = "redis")]
        if let (Some(after), Some(backend)) = (resume_after, &self.handle.backend) {
            let catch_up = super::redis::CatchUp::new(
                Arc::clone(backend),
                Arc::clone(inner),
                subscription.topics(),
                after,
            );
            subscription.set_catch_up(catch_up);
        }
        #[cfg(not(feature = "redis"))]
        debug_assert!(resume_after.is_none(), "only a backend defers a resume");
        Ok(subscription)
    }

    /// The id of the newest event published, or of the start position if none was. With
    /// Redis: of the newest entry this instance has read from the stream.
    ///
    /// Useful to render a page from the application's state together with the position it
    /// reflects: the page's `EventSource` then resumes from there (passed as the `lastEventId`
    /// query parameter) and misses nothing published after this call. Take the id *before*
    /// reading the state, so that an event may be seen twice but never missed.
    pub fn last_id(&self) -> String {
        let inner = self.inner();
        inner.id_of(inner.watermark())
    }

    /// Current counters; a few atomic loads.
    pub fn stats(&self) -> HubStats {
        self.inner().counters.snapshot()
    }

    /// Closes the hub: every subscription ends at its next poll, between two events; held
    /// events are released; publishing and subscribing fail with [`HubError::Closed`]. Calling
    /// it again does nothing.
    pub fn close(&self) {
        self.inner().close();
    }

    /// Whether the hub is closed. A cancelled shutdown token counts once the hub has noticed
    /// it (at the next publish, subscribe or subscription poll).
    pub fn is_closed(&self) -> bool {
        self.inner().is_closed()
    }

    /// Completes when the hub closes, by [`close`](Hub::close), its shutdown token, or the last
    /// handle dropped.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner().closed_future()
    }
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("Hub");
        match self.inner().ids {
            Ids::Epoch(epoch) => f.field("epoch", &format_args!("{epoch:016x}")),
            #[cfg(feature = "redis")]
            Ids::Stream => f.field("backend", &"redis"),
        };
        f.field("closed", &self.is_closed())
            .field("stats", &self.stats())
            .finish()
    }
}
