//! Server-Sent Events for hyper, tower and axum: exact framing, keep-alive, `Last-Event-ID`
//! resume, graceful shutdown, and a broadcast hub with replay.
//!
//! An SSE response is one long `GET` answered with `text/event-stream`; the browser's
//! `EventSource` reads it, reconnects by itself, and sends `Last-Event-ID` so the server can
//! resume. This crate gives:
//!
//! - [`Event`]: a builder that encodes an event **once**, exactly (any string in data and
//!   comments; typed errors for what SSE cannot carry in a type or id);
//! - [`SseBody`]: any `Stream` of events as an [`http_body::Body`], coalescing ready events,
//!   with keep-alive, a retry hint, shutdown and maximum lifetime;
//! - [`Sse`]: the response with the right headers (an axum `IntoResponse` with `axum`);
//! - [`layer::SseLayer`]: a tower layer for existing services: `Last-Event-ID` extraction,
//!   header policy, keep-alive for foreign bodies, shutdown at event boundaries;
//! - [`LastEventId`]: header or query, limits, an axum extractor;
//! - [`hub`]: topics, fan-out and a replay ring, so a reconnecting client gets exactly what
//!   it missed;
//! - [`decode`]: a spec-exact parser for Rust clients and tests.
//!
//! # Quick start (axum)
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use futures::stream;
//! use tower_sse::{CancellationToken, Event, LastEventId, Sse, layer::SseLayer};
//!
//! async fn events(last: Option<LastEventId>) -> Sse<impl futures::Stream<Item = Event>> {
//!     let start: u64 = last.and_then(|id| id.as_str().parse().ok()).unwrap_or(0);
//!     let events = stream::iter(start + 1..=start + 3)
//!         .map(|n| Event::new().id_u64(n).data(format!("event number {n}")));
//!     Sse::new(events).retry(Duration::from_secs(2))
//! }
//! # use futures::StreamExt;
//!
//! let shutdown = CancellationToken::new(); // cancel it when the server shuts down
//! let app: Router = Router::new()
//!     .route("/events", get(events))
//!     .layer(SseLayer::new().shutdown(shutdown));
//! ```
//!
//! # Quick start (hyper, no axum)
//!
//! ```
//! use futures::stream;
//! use http_body_util::BodyExt;
//! use tower_sse::{Event, Sse};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_sse::EventError> {
//! let events = stream::iter([Event::new().event("greeting")?.data("hello\nworld")]);
//! // A `http::Response<SseBody<_>>`: return it from any hyper service.
//! let response = Sse::new(events).into_response();
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//!
//! let bytes = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(bytes, "event: greeting\ndata: hello\ndata: world\n\n");
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` | `IntoResponse` for [`Sse`], extractors for [`LastEventId`] |
//! | `json` | `Event::json_data`, serializing straight into the event buffer |
//! | `redis` | the hub over Redis Streams, for many server instances |
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod decimal;
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
pub use hub::{Hub, HubError, Subscription};
pub use keep_alive::KeepAlive;
pub use last_event_id::LastEventId;
pub use response::Sse;
pub use tokio_util::sync::CancellationToken;
