//! [`SseBody`]: any stream of events as an [`http_body::Body`].
//!
//! ```
//! use std::time::Duration;
//! use futures_util::stream;
//! use tower_sse::{Event, KeepAlive, SseBody};
//!
//! let events = stream::iter((1..=3).map(|n| Event::new().data(n.to_string())));
//! let body = SseBody::new(events)
//!     .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
//!     .retry(Duration::from_secs(2));
//! # let _ = body;
//! ```
//!
//! # What happens on every edge
//!
//! | edge | behaviour |
//! |---|---|
//! | first poll | the retry hint and open comment (if set) are sent at once; the keep-alive, lifetime and shutdown watches start now, not at construction |
//! | several events ready at one poll | sent as one frame, up to the coalescing budget (64 KiB by default); a larger event is sent alone, without a copy |
//! | idle for the keep-alive interval | the ping is sent; the timer restarts on every frame |
//! | the stream ends | the body ends after the last complete event |
//! | the stream yields `Err(e)` | events already taken are sent first, then `poll_frame` returns the error and the body is over: hyper then closes the connection without a clean end, which the client treats as a network error and reconnects |
//! | shutdown signal or maximum lifetime | the final event (if set) is sent and the body ends, always at an event boundary; the client reconnects (to another instance, after a restart) and resumes with `Last-Event-ID` |
//! | the body is dropped (client gone) | the stream is dropped with it, so a hub subscription or channel receiver is released at once |

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio_util::sync::CancellationToken;

use crate::event::{EncodedEvent, Event};
use crate::keep_alive::KeepAlive;
use crate::lifecycle::{Lifecycle, LifecycleConfig};

/// The default coalescing budget: events ready at the same poll are joined into frames of at
/// most this many bytes.
pub const DEFAULT_COALESCE_BUDGET: usize = 64 * 1024;

/// Something a stream can yield into an [`SseBody`]: an [`Event`], an [`EncodedEvent`], or a
/// `Result` of either.
pub trait SseItem {
    /// The error the item can carry; [`Infallible`] for plain events.
    type Error;

    /// The complete wire bytes of the event, or the stream's error.
    fn into_frame(self) -> Result<Bytes, Self::Error>;
}

impl SseItem for Event {
    type Error = Infallible;
    fn into_frame(self) -> Result<Bytes, Infallible> {
        Ok(self.encode().into_bytes())
    }
}

impl SseItem for EncodedEvent {
    type Error = Infallible;
    fn into_frame(self) -> Result<Bytes, Infallible> {
        Ok(self.into_bytes())
    }
}

impl<T, E> SseItem for Result<T, E>
where
    T: SseItem<Error = Infallible>,
{
    type Error = E;
    fn into_frame(self) -> Result<Bytes, E> {
        match self {
            Ok(item) => match item.into_frame() {
                Ok(bytes) => Ok(bytes),
                Err(never) => match never {},
            },
            Err(err) => Err(err),
        }
    }
}

pin_project! {
    /// A stream of events as an [`http_body::Body`] with `Data = Bytes`.
    ///
    /// The stream may yield [`Event`], [`EncodedEvent`] or `Result<_, E>` of either. See the
    /// [module docs](self) for what happens on every edge. Keep-alive is on by default
    /// ([`KeepAlive::new`]); turn it off with `.keep_alive(KeepAlive::disabled())`.
    ///
    /// The body is kept small because a server holds one per open connection: its settings
    /// are shared, its keep-alive timer is held inline (so the body is `!Unpin`: hyper and
    /// axum pin it for you; to poll it by hand, pin it with `std::pin::pin!` or `Box::pin`),
    /// and shutdown and lifetime watches are allocated only when set.
    #[must_use]
    pub struct SseBody<S: Stream<Item: SseItem>> {
        #[pin]
        stream: S,
        #[pin]
        lifecycle: Lifecycle,
        // Bytes to send before the stream's next event: the retry hint and open comment
        // before the first poll, later an event that did not fit in the coalescing budget.
        // Boxed: both are rare, and an idle server holds one body per connection.
        carry: Option<Box<Bytes>>,
        error: Option<<S::Item as SseItem>::Error>,
        budget: u32,
        stream_done: bool,
        done: bool,
    }
}

impl<S> SseBody<S>
where
    S: Stream,
    S::Item: SseItem,
{
    /// A body that sends the stream's events, with the default keep-alive.
    pub fn new(stream: S) -> Self {
        SseBody {
            stream,
            lifecycle: Lifecycle::new(LifecycleConfig::shared_default()),
            carry: None,
            error: None,
            budget: DEFAULT_COALESCE_BUDGET as u32,
            stream_done: false,
            done: false,
        }
    }

    /// Sets the keep-alive; [`KeepAlive::disabled`] turns it off.
    pub fn keep_alive(mut self, keep_alive: KeepAlive) -> Self {
        self.lifecycle.config_mut().keep_alive = Some(keep_alive);
        self
    }

    /// Sends `retry: <ms>` first, setting the client's reconnection delay. It is sent as a
    /// line without a blank line after it: clients apply it at once, and none reports an empty
    /// event for it.
    pub fn retry(mut self, delay: Duration) -> Self {
        self.push_prelude(Event::new().retry(delay).as_bytes());
        self
    }

    /// Sends a comment first, so the first bytes reach the client at once (useful behind
    /// proxies that hold back the headers until body bytes arrive).
    pub fn open_comment(mut self, comment: impl AsRef<str>) -> Self {
        self.push_prelude(Event::new().comment(comment).as_bytes());
        self
    }

    /// Ends the body at the next event boundary when `token` is cancelled; hand the same token
    /// to your server's graceful shutdown so it does not wait forever on open streams.
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.lifecycle.config_mut().shutdown = Some(token);
        self
    }

    /// Ends the body at an event boundary after `lifetime` minus a random jitter (10 % of the
    /// lifetime unless set with [`SseBody::lifetime_jitter`]), so clients reconnect and load
    /// spreads over instances. Off by default.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifecycle.config_mut().max_lifetime = Some(lifetime);
        self
    }

    /// Sets the largest random amount taken off [`SseBody::max_lifetime`].
    pub fn lifetime_jitter(mut self, jitter: Duration) -> Self {
        self.lifecycle.config_mut().lifetime_jitter = Some(jitter);
        self
    }

    /// An event sent once when the body ends on shutdown or at its maximum lifetime (not when
    /// the stream ends by itself).
    pub fn final_event(mut self, event: impl Into<EncodedEvent>) -> Self {
        self.lifecycle.config_mut().final_event = Some(event.into().into_bytes());
        self
    }

    /// Sets the coalescing budget in bytes (at least 1, at most `u32::MAX`). Events ready at
    /// the same poll are joined into one frame up to this size.
    pub fn coalesce_budget(mut self, bytes: usize) -> Self {
        self.budget = u32::try_from(bytes).unwrap_or(u32::MAX).max(1);
        self
    }

    /// Appends a line to what is sent at the first poll.
    fn push_prelude(&mut self, line: &[u8]) {
        let mut joined = BytesMut::new();
        if let Some(carry) = self.carry.take() {
            joined.extend_from_slice(&carry);
        }
        joined.extend_from_slice(line);
        self.carry = Some(Box::new(joined.freeze()));
    }
}

/// Frame contents under construction: the first piece is kept as it is (no copy); a second
/// piece starts a copy into one buffer.
struct Batch {
    first: Option<Bytes>,
    joined: Option<BytesMut>,
    len: usize,
}

impl Batch {
    #[inline]
    fn new() -> Self {
        Batch {
            first: None,
            joined: None,
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, bytes: Bytes, budget: usize) {
        if self.len == 0 {
            self.len = bytes.len();
            self.first = Some(bytes);
        } else {
            self.join(bytes, budget);
        }
    }

    /// Appends a piece after the first: copies into one buffer.
    #[inline(never)]
    fn join(&mut self, bytes: Bytes, budget: usize) {
        self.len += bytes.len();
        if let Some(joined) = &mut self.joined {
            joined.extend_from_slice(&bytes);
        } else if let Some(first) = self.first.take() {
            let mut joined = BytesMut::with_capacity(budget.min(16 * 1024).max(self.len));
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&bytes);
            self.joined = Some(joined);
        } else {
            self.first = Some(bytes);
        }
    }

    #[inline]
    fn take(self) -> Option<Bytes> {
        match self.joined {
            Some(joined) => Some(joined.freeze()),
            None => self.first,
        }
    }
}

impl<S> Body for SseBody<S>
where
    S: Stream,
    S::Item: SseItem,
{
    type Data = Bytes;
    type Error = <S::Item as SseItem>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        if let Some(err) = this.error.take() {
            *this.done = true;
            return Poll::Ready(Some(Err(err)));
        }
        this.lifecycle.as_mut().start();
        let budget = *this.budget as usize;

        let mut batch = Batch::new();
        if let Some(carry) = this.carry.take() {
            batch.push(*carry, budget);
        }

        if this.lifecycle.as_mut().poll_end(cx).is_some() {
            *this.done = true;
            if let Some(final_event) = this.lifecycle.as_mut().take_final_event() {
                batch.push(final_event, budget);
            }
            return Poll::Ready(batch.take().map(|bytes| Ok(Frame::data(bytes))));
        }

        while !*this.stream_done && batch.len < budget {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => match item.into_frame() {
                    Ok(bytes) => {
                        if batch.len > 0 && batch.len + bytes.len() > budget {
                            *this.carry = Some(Box::new(bytes));
                            break;
                        }
                        batch.push(bytes, budget);
                    }
                    Err(err) => {
                        *this.stream_done = true;
                        if batch.len == 0 {
                            *this.done = true;
                            return Poll::Ready(Some(Err(err)));
                        }
                        *this.error = Some(err);
                    }
                },
                Poll::Ready(None) => *this.stream_done = true,
                Poll::Pending => break,
            }
        }

        if let Some(bytes) = batch.take() {
            this.lifecycle.as_mut().touch();
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        if *this.stream_done {
            *this.done = true;
            return Poll::Ready(None);
        }
        let ping = ready!(this.lifecycle.as_mut().poll_ping(cx));
        Poll::Ready(Some(Ok(Frame::data(ping))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl<S: Stream<Item: SseItem>> std::fmt::Debug for SseBody<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseBody")
            .field("budget", &self.budget)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
