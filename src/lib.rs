//! Server-Sent Events for hyper, tower and axum.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod event;
mod keep_alive;
mod lifecycle;
mod response;

pub mod decode;
pub mod hub;
pub mod last_event_id;
pub mod layer;

pub use body::{DEFAULT_COALESCE_BUDGET, SseBody, SseItem};
pub use event::{EncodedEvent, Event, EventError, EventErrorKind, EventField};
pub use keep_alive::KeepAlive;
pub use last_event_id::LastEventId;
pub use response::Sse;
pub use tokio_util::sync::CancellationToken;
