//! Errors returned by the hub.

use std::fmt;

/// Why a hub operation was refused.
///
/// Every refusal is reported with this type; no input makes the hub panic.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubError {
    /// The hub was closed ([`Hub::close`](super::Hub::close), its shutdown token, or the last
    /// [`Hub`](super::Hub) handle dropped).
    Closed,
    /// The hub already serves its maximum number of subscriptions
    /// ([`HubBuilder::max_subscribers`](super::HubBuilder::max_subscribers)).
    TooManySubscribers {
        /// The configured maximum.
        limit: usize,
    },
    /// One subscription asked for more topics than allowed (see
    /// [`max_topics_per_subscription`][super::HubBuilder::max_topics_per_subscription]).
    TooManyTopics {
        /// The configured maximum.
        limit: usize,
    },
    /// A subscription was asked for with an empty list of topics.
    NoTopics,
    /// A topic name was empty. Empty names are refused because they nearly always come from a
    /// missing value (an empty path segment, an unset user id) rather than a deliberate choice.
    EmptyTopic,
    /// A topic name was longer than allowed
    /// ([`HubBuilder::max_topic_len`](super::HubBuilder::max_topic_len)).
    TopicTooLong {
        /// The name's length in bytes.
        len: usize,
        /// The configured maximum, in bytes.
        limit: usize,
    },
    /// An encoded event (including the id line the hub adds) was larger than a topic or the
    /// whole hub may hold ([`HubBuilder::max_topic_bytes`](super::HubBuilder::max_topic_bytes),
    /// [`HubBuilder::max_bytes`](super::HubBuilder::max_bytes)), so it could be neither
    /// replayed nor delivered.
    EventTooLarge {
        /// The encoded length in bytes.
        len: usize,
        /// The smaller of the two byte limits.
        limit: usize,
    },
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubError::Closed => f.write_str("the hub is closed"),
            HubError::TooManySubscribers { limit } => {
                write!(
                    f,
                    "the hub already has its maximum of {limit} subscriptions"
                )
            }
            HubError::TooManyTopics { limit } => {
                write!(f, "a subscription may follow at most {limit} topics")
            }
            HubError::NoTopics => f.write_str("a subscription needs at least one topic"),
            HubError::EmptyTopic => f.write_str("a topic name must not be empty"),
            HubError::TopicTooLong { len, limit } => {
                write!(
                    f,
                    "topic name of {len} bytes exceeds the limit of {limit} bytes"
                )
            }
            HubError::EventTooLarge { len, limit } => {
                write!(
                    f,
                    "encoded event of {len} bytes exceeds the limit of {limit} bytes"
                )
            }
        }
    }
}

impl std::error::Error for HubError {}
