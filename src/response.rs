//! [`Sse`]: the response builder, with the headers SSE needs.
//!
//! ```
//! use std::time::Duration;
//! use futures_util::stream;
//! use tower_sse::{Event, Sse};
//!
//! let events = stream::iter([Event::new().data("hello")]);
//! let response = Sse::new(events).retry(Duration::from_secs(3)).into_response();
//! assert_eq!(response.headers()["content-type"], "text/event-stream");
//! assert_eq!(response.headers()["cache-control"], "no-cache");
//! assert_eq!(response.headers()["x-accel-buffering"], "no");
//! assert!(response.headers().get("content-length").is_none());
//! ```
//!
//! With the `axum` feature, [`Sse`] is an `IntoResponse`, so a handler returns it as it is.

use std::time::Duration;

use futures_core::Stream;
use http::{HeaderValue, Response, StatusCode, header};
use tokio_util::sync::CancellationToken;

use crate::body::{SseBody, SseItem};
use crate::event::EncodedEvent;
use crate::keep_alive::KeepAlive;

/// `text/event-stream`, with no charset: a charset other than utf-8 breaks Chromium, and
/// utf-8 is the only one SSE allows.
pub(crate) const CONTENT_TYPE: HeaderValue = HeaderValue::from_static("text/event-stream");
pub(crate) const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
pub(crate) const X_ACCEL_BUFFERING: header::HeaderName =
    header::HeaderName::from_static("x-accel-buffering");
pub(crate) const NO: HeaderValue = HeaderValue::from_static("no");

/// A marker in the response extensions of responses built here: the body already sends its
/// own keep-alive, so [`SseLayer`](crate::layer::SseLayer) does not add another.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeepAliveBuiltIn;

/// An SSE response: an [`SseBody`] plus the headers SSE needs.
///
/// The response is `200 OK` with `Content-Type: text/event-stream`, `Cache-Control: no-cache`
/// and `X-Accel-Buffering: no` (nginx would otherwise buffer the stream); it never has a
/// `Content-Length` and never a hop-by-hop header, so it is valid on HTTP/1.1 and HTTP/2 alike.
/// The builder methods are those of [`SseBody`].
#[must_use]
pub struct Sse<S: Stream<Item: SseItem>> {
    body: SseBody<S>,
}

impl<S> Sse<S>
where
    S: Stream,
    S::Item: SseItem,
{
    /// A response that streams `stream`'s events, with the default keep-alive.
    pub fn new(stream: S) -> Self {
        Sse {
            body: SseBody::new(stream),
        }
    }

    /// See [`SseBody::keep_alive`].
    pub fn keep_alive(self, keep_alive: KeepAlive) -> Self {
        self.map(|b| b.keep_alive(keep_alive))
    }

    /// See [`SseBody::retry`].
    pub fn retry(self, delay: Duration) -> Self {
        self.map(|b| b.retry(delay))
    }

    /// See [`SseBody::open_comment`].
    pub fn open_comment(self, comment: impl AsRef<str>) -> Self {
        self.map(|b| b.open_comment(comment))
    }

    /// See [`SseBody::shutdown`].
    pub fn shutdown(self, token: CancellationToken) -> Self {
        self.map(|b| b.shutdown(token))
    }

    /// See [`SseBody::max_lifetime`].
    pub fn max_lifetime(self, lifetime: Duration) -> Self {
        self.map(|b| b.max_lifetime(lifetime))
    }

    /// See [`SseBody::lifetime_jitter`].
    pub fn lifetime_jitter(self, jitter: Duration) -> Self {
        self.map(|b| b.lifetime_jitter(jitter))
    }

    /// See [`SseBody::final_event`].
    pub fn final_event(self, event: impl Into<EncodedEvent>) -> Self {
        self.map(|b| b.final_event(event))
    }

    /// See [`SseBody::coalesce_budget`].
    pub fn coalesce_budget(self, bytes: usize) -> Self {
        self.map(|b| b.coalesce_budget(bytes))
    }

    /// The body alone, without headers.
    pub fn into_body(self) -> SseBody<S> {
        self.body
    }

    /// The complete response, as an `http::Response` for hyper or any tower service.
    ///
    /// With the `axum` feature this inherent method wins over
    /// `axum::response::IntoResponse::into_response` in method-call syntax. In an axum handler,
    /// return the `Sse` itself (it is an `IntoResponse`), or convert it with
    /// `IntoResponse::into_response(sse)` when the handler returns `axum::response::Response`.
    pub fn into_response(self) -> Response<SseBody<S>> {
        let mut response = Response::new(self.body);
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, CONTENT_TYPE);
        headers.insert(header::CACHE_CONTROL, NO_CACHE);
        headers.insert(X_ACCEL_BUFFERING, NO);
        response.extensions_mut().insert(KeepAliveBuiltIn);
        response
    }

    fn map(self, f: impl FnOnce(SseBody<S>) -> SseBody<S>) -> Self {
        Sse { body: f(self.body) }
    }
}

impl<S> std::fmt::Debug for Sse<S>
where
    S: Stream,
    S::Item: SseItem,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sse").field("body", &self.body).finish()
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S> axum_core::response::IntoResponse for Sse<S>
where
    S: Stream + Send + 'static,
    S::Item: SseItem,
    <S::Item as SseItem>::Error: Into<axum_core::BoxError> + Send,
{
    fn into_response(self) -> axum_core::response::Response {
        Sse::into_response(self).map(axum_core::body::Body::new)
    }
}
