//! Server-Sent Events for hyper, tower and axum.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod event;

pub mod decode;
pub mod hub;
pub mod last_event_id;

pub use event::{EncodedEvent, Event, EventError, EventErrorKind, EventField};
pub use last_event_id::LastEventId;
