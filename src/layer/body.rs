//! [`SseLayerBody`]: the response body of [`SseService`](super::SseService).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::boundary::Boundary;
use crate::decode::BOM;
use crate::lifecycle::{EndReason, Lifecycle};

pin_project! {
    /// The response body of [`SseService`](super::SseService).
    ///
    /// For a response that is not `text/event-stream` it is the inner body, polled directly:
    /// nothing is boxed, copied or inspected. For an SSE response it watches the inner body's
    /// bytes for line and event boundaries and:
    /// - inserts the keep-alive after an idle interval, only where a line has just ended (a
    ///   whole-event keep-alive only between events), so the inner body's events are never
    ///   split; skipped when the body was built by [`Sse`](crate::Sse), which pings by itself;
    /// - on shutdown or at the maximum lifetime, ends at the next event boundary, sending the
    ///   final event if one is set. If the inner body is stopped mid-event with nothing more
    ///   ready, it ends there without the final event: the client drops the unfinished event
    ///   and, its id never committed, gets it again on resuming.
    ///
    /// When the layer answers a request itself (an invalid `Last-Event-ID` in strict mode)
    /// the body is its short text.
    #[must_use]
    pub struct SseLayerBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Passthrough { #[pin] inner: B },
        Sse { #[pin] inner: B, state: Box<SseState> },
        Local { bytes: Option<Bytes> },
    }
}

struct SseState {
    lifecycle: Pin<Box<Lifecycle>>,
    boundary: Boundary,
    ending: Option<EndReason>,
    /// The layer sent bytes before the inner body's first byte: a BOM there would no longer
    /// be at the start of the stream, so it is removed. `Some(k)` while looking for it, with
    /// its first `k` bytes held back (a BOM can be split over chunks).
    bom_held: Option<usize>,
    sent_inner: bool,
    done: bool,
}

impl<B> SseLayerBody<B> {
    pub(crate) fn passthrough(inner: B) -> Self {
        SseLayerBody {
            kind: Kind::Passthrough { inner },
        }
    }

    pub(crate) fn sse(inner: B, lifecycle: Lifecycle) -> Self {
        SseLayerBody {
            kind: Kind::Sse {
                inner,
                state: Box::new(SseState {
                    lifecycle: Box::pin(lifecycle),
                    boundary: Boundary::new(),
                    ending: None,
                    bom_held: None,
                    sent_inner: false,
                    done: false,
                }),
            },
        }
    }

    pub(crate) fn local(bytes: Bytes) -> Self {
        SseLayerBody {
            kind: Kind::Local { bytes: Some(bytes) },
        }
    }
}

impl<B> Body for SseLayerBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { inner } => inner.poll_frame(cx),
            KindProj::Local { bytes } => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            KindProj::Sse { inner, state } => state.poll(inner, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough { inner } => inner.is_end_stream(),
            Kind::Local { bytes } => bytes.is_none(),
            Kind::Sse { inner, state } => state.done || inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { inner } => inner.size_hint(),
            Kind::Local { bytes } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Kind::Sse { .. } => SizeHint::default(),
        }
    }
}

impl SseState {
    fn poll<B>(
        &mut self,
        mut inner: Pin<&mut B>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>>
    where
        B: Body<Data = Bytes>,
    {
        if self.done {
            return Poll::Ready(None);
        }
        self.lifecycle.as_mut().start();
        if self.ending.is_none() {
            self.ending = self.lifecycle.as_mut().poll_end(cx);
        }
        if self.ending.is_some() && self.boundary.at_event_start() {
            return Poll::Ready(self.finish(true));
        }

        loop {
            return match inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let data = self.take_in(data);
                        if data.is_empty() {
                            // Nothing to send (an empty frame, or held BOM bytes): an empty
                            // chunk could read as the end of the body to some encoders.
                            continue;
                        }
                        Poll::Ready(Some(Ok(Frame::data(data))))
                    }
                    Err(other) => Poll::Ready(Some(Ok(other))),
                },
                Poll::Ready(Some(Err(err))) => {
                    self.done = true;
                    Poll::Ready(Some(Err(err)))
                }
                Poll::Ready(None) => {
                    self.done = true;
                    Poll::Ready(None)
                }
                Poll::Pending if self.ending.is_some() => {
                    // Stopped mid-event with nothing more ready: end here, without a final
                    // event that would merge into the unfinished one.
                    Poll::Ready(self.finish(false))
                }
                Poll::Pending => self.poll_keep_alive(cx),
            };
        }
    }

    /// Records bytes from the inner body on their way out.
    fn take_in(&mut self, data: Bytes) -> Bytes {
        if data.is_empty() {
            return data;
        }
        self.sent_inner = true;
        let data = self.strip_bom(data);
        if !data.is_empty() {
            self.boundary.advance(&data);
            self.lifecycle.as_mut().touch();
        }
        data
    }

    /// Removes a BOM at the start of the inner body's bytes, when the layer sent bytes before
    /// them; holds back a partial BOM until the next chunk tells whether it completes.
    fn strip_bom(&mut self, data: Bytes) -> Bytes {
        let Some(held) = self.bom_held else {
            return data;
        };
        let wanted = &BOM[held..];
        let n = wanted.len().min(data.len());
        if data[..n] == wanted[..n] {
            if n == wanted.len() {
                self.bom_held = None;
                return data.slice(n..);
            }
            self.bom_held = Some(held + n);
            return Bytes::new();
        }
        // Not a BOM: give the held bytes back in front of this chunk.
        self.bom_held = None;
        if held == 0 {
            return data;
        }
        let mut joined = bytes::BytesMut::with_capacity(held + data.len());
        joined.extend_from_slice(&BOM[..held]);
        joined.extend_from_slice(&data);
        joined.freeze()
    }

    fn poll_keep_alive<E>(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
        let Some(keep_alive) = self.lifecycle.keep_alive() else {
            return Poll::Pending;
        };
        let allowed = if keep_alive.ends_event() {
            self.boundary.can_insert_event()
        } else {
            self.boundary.at_line_start()
        };
        if !allowed {
            // A line or event is open: wait for the inner body, whose next bytes wake us.
            return Poll::Pending;
        }
        match self.lifecycle.as_mut().poll_ping(cx) {
            Poll::Ready(ping) => {
                if !self.sent_inner {
                    self.bom_held = Some(0);
                }
                self.boundary.advance(&ping);
                Poll::Ready(Some(Ok(Frame::data(ping))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn finish<E>(&mut self, at_boundary: bool) -> Option<Result<Frame<Bytes>, E>> {
        self.done = true;
        let final_event = self.lifecycle.as_mut().take_final_event()?;
        (at_boundary && self.boundary.can_insert_event()).then(|| Ok(Frame::data(final_event)))
    }
}

impl<B> std::fmt::Debug for SseLayerBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Passthrough { .. } => "passthrough",
            Kind::Sse { .. } => "sse",
            Kind::Local { .. } => "local",
        };
        f.debug_struct("SseLayerBody").field("kind", &kind).finish()
    }
}
