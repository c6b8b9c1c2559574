//! [`ResponseFuture`]: the future of [`SseService`](super::SseService).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, Version, header};
use http_body::Body;
use pin_project_lite::pin_project;

use super::SseLayerBody;
use super::headers;
use crate::last_event_id::LastEventIdError;
use crate::lifecycle::{Lifecycle, LifecycleConfig};
use crate::response::KeepAliveBuiltIn;

pin_project! {
    /// The response future of [`SseService`](super::SseService).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F, version: Version, lifecycle: Option<Arc<LifecycleConfig>> },
        Rejected { message: Option<Bytes> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, version: Version, lifecycle: Arc<LifecycleConfig>) -> Self {
        ResponseFuture {
            kind: Kind::Inner {
                future,
                version,
                lifecycle: Some(lifecycle),
            },
        }
    }

    pub(crate) fn rejected(error: &LastEventIdError) -> Self {
        ResponseFuture {
            kind: Kind::Rejected {
                message: Some(Bytes::from(format!("{error}\n"))),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<SseLayerBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Rejected { message } => {
                let message = message.take().unwrap_or_default();
                let mut response = Response::new(SseLayerBody::local(message));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                Poll::Ready(Ok(response))
            }
            KindProj::Inner {
                future,
                version,
                lifecycle,
            } => {
                let response = ready!(future.poll(cx))?;
                if !headers::is_event_stream(response.headers()) {
                    return Poll::Ready(Ok(response.map(SseLayerBody::passthrough)));
                }
                let (mut parts, body) = response.into_parts();
                headers::enforce(&mut parts.headers, *version);
                let inject_keep_alive = parts.extensions.get::<KeepAliveBuiltIn>().is_none();
                let mut lifecycle = Lifecycle::new(lifecycle.take().unwrap_or_default());
                if !inject_keep_alive {
                    lifecycle = lifecycle.without_keep_alive();
                }
                let body = SseLayerBody::sse(body, lifecycle);
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
