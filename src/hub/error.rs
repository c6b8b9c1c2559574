//! Errors returned by the hub.

use std::fmt;
use std::sync::Arc;

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
    /// An encoded event was larger than a topic or the whole hub may hold
    /// ([`HubBuilder::max_topic_bytes`](super::HubBuilder::max_topic_bytes),
    /// [`HubBuilder::max_bytes`](super::HubBuilder::max_bytes), or
    /// [`HubBuilder::max_memory`](super::HubBuilder::max_memory) less the bookkeeping of the
    /// event and its topic), so it could be neither replayed nor delivered.
    EventTooLarge {
        /// The encoded length in bytes, counting the id line the hub adds at the longest id
        /// it can give, so that admission does not depend on the id an event happens to get.
        len: usize,
        /// The smallest of the limits above, in bytes.
        limit: usize,
    },
    /// The backend holding the events (Redis, with feature `redis`) failed or refused the
    /// operation. A publish that fails this way may or may not have been stored (the request
    /// may have reached the server before the connection failed); it is never dropped
    /// silently after a success.
    Backend(BackendError),
}

/// A failure of the hub's backend, in [`HubError::Backend`].
///
/// Errors compare equal when their kind and message are equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    kind: BackendErrorKind,
    message: Arc<str>,
}

/// What kind of operation of the backend failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// Connecting to the backend failed (unreachable, refused, bad address or credentials).
    Connect,
    /// A command failed: the connection was lost, timed out, or the server answered with an
    /// error.
    Command,
    /// The operation is not available with this backend (for example
    /// [`Hub::publish_now`](super::Hub::publish_now), which cannot wait for a network round
    /// trip).
    Unsupported,
}

impl BackendError {
    /// A backend error of `kind` described by `message`.
    pub fn new(kind: BackendErrorKind, message: impl Into<Arc<str>>) -> BackendError {
        BackendError {
            kind,
            message: message.into(),
        }
    }

    /// What kind of operation failed.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// The backend's description of the failure.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            BackendErrorKind::Connect => "cannot connect to the hub's backend",
            BackendErrorKind::Command => "the hub's backend failed",
            BackendErrorKind::Unsupported => "not supported by the hub's backend",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for BackendError {}

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
            HubError::Backend(error) => fmt::Display::fmt(error, f),
        }
    }
}

impl std::error::Error for HubError {}

impl From<BackendError> for HubError {
    fn from(error: BackendError) -> HubError {
        HubError::Backend(error)
    }
}
