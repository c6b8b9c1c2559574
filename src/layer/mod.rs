//! [`SseLayer`]: SSE for existing hyper, tower and axum services.
//!
//! The layer wraps any service whose response body has `Data = Bytes`, generic over that
//! body, and does this:
//!
//! | where | what |
//! |---|---|
//! | every request | reads `Last-Event-ID` (header, then the `lastEventId` / `last_event_id` query parameters) and puts the result in the request extensions as [`LastEventId`](crate::LastEventId) (when present) and [`ParsedLastEventId`](crate::last_event_id::ParsedLastEventId); in strict mode an invalid value is answered with `400` without calling the service |
//! | responses that are not `text/event-stream` | passed through untouched: same headers, the inner body polled directly, nothing boxed |
//! | `text/event-stream` responses | header policy: exactly `text/event-stream` (or with `charset=utf-8`), `Cache-Control: no-cache` and `X-Accel-Buffering: no` unless set, no `Content-Length`, no hop-by-hop header on HTTP/2 |
//! | their bodies | keep-alive added where the body has none, inserted only at a line boundary; shutdown and maximum lifetime end the body at an event boundary (see [`SseLayerBody`]) |
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_sse::{CancellationToken, LastEventId, layer::SseLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let shutdown = CancellationToken::new();
//! let service = ServiceBuilder::new()
//!     .layer(SseLayer::new().shutdown(shutdown.clone()))
//!     .service_fn(|req: Request<()>| async move {
//!         let resumed = req.extensions().get::<LastEventId>().map(|id| id.as_str().to_owned());
//!         let body = format!("data: resumed after {resumed:?}\n\n");
//!         let response = Response::builder()
//!             .header("content-type", "text/event-stream")
//!             .header("content-length", body.len())
//!             .body(Full::new(Bytes::from(body)))
//!             .unwrap();
//!         Ok::<_, Infallible>(response)
//!     });
//!
//! let request = Request::get("/events").header("last-event-id", "41").body(()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.headers()["cache-control"], "no-cache");
//! assert!(response.headers().get("content-length").is_none());
//! # }
//! ```

mod body;
mod boundary;
mod future;
mod headers;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use body::SseLayerBody;
pub use future::ResponseFuture;
pub use layer::SseLayer;
pub use service::SseService;
