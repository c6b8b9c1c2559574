//! [`SseService`]: the middleware service.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{ResponseFuture, SseLayer};
use crate::last_event_id::{LastEventId, ParsedLastEventId};

/// The service made by [`SseLayer`]; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct SseService<S> {
    inner: S,
    layer: SseLayer,
}

impl<S> SseService<S> {
    /// Wraps `inner` with `layer`'s settings.
    pub fn new(inner: S, layer: SseLayer) -> Self {
        SseService { inner, layer }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SseService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<super::SseLayerBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let version = req.version();
        match self.layer.last_event_id.from_request(&req) {
            Ok(id) => {
                if let Some(id) = &id {
                    req.extensions_mut().insert::<LastEventId>(id.clone());
                }
                req.extensions_mut().insert(ParsedLastEventId::new(Ok(id)));
            }
            Err(error) => return ResponseFuture::rejected(&error),
        }
        ResponseFuture::new(self.inner.call(req), version, self.layer.lifecycle.clone())
    }
}
