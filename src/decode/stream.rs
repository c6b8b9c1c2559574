//! [`DecodeStream`]: a stream of byte chunks decoded into a stream of events.

use std::error::Error;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_core::stream::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::{DecodeError, DecodedEvent, Decoder};

/// Decodes a stream of byte chunks (such as an HTTP body's data frames) into events.
///
/// Shorthand for [`DecodeStream::new`] with a default [`Decoder`].
///
/// ```
/// use futures::{StreamExt, executor::block_on, stream};
/// use tower_sse::decode::decode_stream;
///
/// let chunks = stream::iter([
///     Ok::<_, std::io::Error>(&b"id: 1\ndata: hel"[..]),
///     Ok(&b"lo\n\n"[..]),
/// ]);
/// let events: Vec<_> = block_on(decode_stream(chunks).collect());
/// let event = events[0].as_ref().unwrap();
/// assert_eq!((event.data.as_str(), event.last_event_id.as_str()), ("hello", "1"));
/// assert_eq!(events.len(), 1);
/// ```
pub fn decode_stream<S, B, E>(stream: S) -> DecodeStream<S, B>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    DecodeStream::new(stream, Decoder::new())
}

pin_project! {
    /// A [`Stream`] of [`DecodedEvent`]s read from a stream of byte chunks; see
    /// [`decode_stream`].
    ///
    /// Each chunk is decoded only as far as the next event, so nothing is queued. When the
    /// inner stream ends, [`Decoder::finish`] drops an unfinished event and this stream ends.
    /// An error of the inner stream is passed on as [`DecodeStreamError::Transport`] and
    /// decoding goes on if the inner stream does. A [`DecodeError`] is passed on as
    /// [`DecodeStreamError::Decode`] and ends this stream.
    ///
    /// After the end, [`decoder`](DecodeStream::decoder) tells the last event id and retry
    /// time to reconnect with; [`into_decoder`](DecodeStream::into_decoder) gives the
    /// decoder back to read the reconnection's body with [`DecodeStream::new`].
    #[must_use = "streams do nothing unless polled"]
    pub struct DecodeStream<S, B> {
        #[pin]
        inner: S,
        decoder: Decoder,
        chunk: Option<B>,
        offset: usize,
        done: bool,
    }
}

impl<S, B> DecodeStream<S, B> {
    /// Decodes `stream` with `decoder`, which may carry limits or a last event id.
    pub fn new(stream: S, decoder: Decoder) -> Self {
        Self {
            inner: stream,
            decoder,
            chunk: None,
            offset: 0,
            done: false,
        }
    }

    /// The decoder: its [`last_event_id`](Decoder::last_event_id) and
    /// [`retry`](Decoder::retry) so far.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The decoder, to go on with another stream; an unread remainder of the current chunk
    /// is lost.
    pub fn into_decoder(self) -> Decoder {
        self.decoder
    }
}

impl<S, B, E> Stream for DecodeStream<S, B>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    type Item = Result<DecodedEvent, DecodeStreamError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if *this.done {
                return Poll::Ready(None);
            }
            if let Some(chunk) = this.chunk.as_ref() {
                let bytes = chunk.as_ref().get(*this.offset..).unwrap_or_default();
                let mut input = bytes;
                let result = this.decoder.decode_next(&mut input);
                *this.offset += bytes.len() - input.len();
                if input.is_empty() {
                    *this.chunk = None;
                    *this.offset = 0;
                }
                match result {
                    Ok(Some(event)) => return Poll::Ready(Some(Ok(event))),
                    Ok(None) => {}
                    Err(err) => {
                        *this.done = true;
                        return Poll::Ready(Some(Err(DecodeStreamError::Decode(err))));
                    }
                }
            }
            match ready!(this.inner.as_mut().poll_next(cx)) {
                Some(Ok(chunk)) => {
                    *this.chunk = Some(chunk);
                    *this.offset = 0;
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(DecodeStreamError::Transport(err)))),
                None => {
                    this.decoder.finish();
                    *this.done = true;
                }
            }
        }
    }
}

impl<S, B, E> FusedStream for DecodeStream<S, B>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// An error of a [`DecodeStream`]: of the inner stream, or of decoding.
#[derive(Debug)]
pub enum DecodeStreamError<E> {
    /// The inner stream failed (for example, the connection broke).
    Transport(E),
    /// The bytes exceeded a [`Decoder`] limit; the stream ends.
    Decode(DecodeError),
}

impl<E: fmt::Display> fmt::Display for DecodeStreamError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(err) => write!(f, "event stream transport error: {err}"),
            Self::Decode(err) => err.fmt(f),
        }
    }
}

impl<E: Error + 'static> Error for DecodeStreamError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Transport(err) => Some(err),
            Self::Decode(err) => Some(err),
        }
    }
}

impl<E> From<DecodeError> for DecodeStreamError<E> {
    fn from(err: DecodeError) -> Self {
        Self::Decode(err)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::StreamExt;
    use futures_util::stream;

    use super::*;

    fn collect<S: Stream + Unpin>(mut stream: S) -> Vec<S::Item> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut out = Vec::new();
        loop {
            match stream.poll_next_unpin(&mut cx) {
                Poll::Ready(Some(item)) => out.push(item),
                Poll::Ready(None) => return out,
                Poll::Pending => panic!("test streams are always ready"),
            }
        }
    }

    fn data(items: Vec<Result<DecodedEvent, DecodeStreamError<&'static str>>>) -> Vec<String> {
        items
            .into_iter()
            .map(|item| match item {
                Ok(event) => event.data,
                Err(err) => format!("error: {err}"),
            })
            .collect()
    }

    #[test]
    fn several_events_in_one_chunk_and_one_event_over_many() {
        let chunks = [
            "data: a\n\ndata: b\n\nda",
            "ta: c",
            "\r",
            "\n",
            "\r\n",
            "data: lost",
        ];
        let items = collect(decode_stream(stream::iter(
            chunks.map(|c| Ok::<_, &'static str>(c.as_bytes())),
        )));
        assert_eq!(data(items), ["a", "b", "c"]);
    }

    #[test]
    fn transport_error_is_passed_on_and_decoding_continues() {
        let chunks = vec![Ok(&b"data: a\n"[..]), Err("reset"), Ok(&b"\n"[..])];
        let items = collect(decode_stream(stream::iter(chunks)));
        assert_eq!(
            data(items),
            ["error: event stream transport error: reset", "a"]
        );
    }

    #[test]
    fn decode_error_ends_the_stream() {
        let chunks = [Ok(&b"data: a\n\ndata: too long\n\ndata: b\n\n"[..])];
        let decoder = Decoder::with_max_line_len(7);
        let mut decoded = DecodeStream::new(stream::iter(chunks), decoder);
        let items = collect(&mut decoded);
        assert_eq!(
            data(items),
            ["a", "error: SSE line longer than the limit of 7 bytes"]
        );
        assert!(decoded.is_terminated());
    }

    #[test]
    fn end_of_stream_drops_the_unfinished_event_and_keeps_the_committed_id() {
        let chunks = [Ok::<_, Infallible>(
            &b"id: 1\ndata: a\n\nid: 2\ndata: b\n"[..],
        )];
        let mut decoded = decode_stream(stream::iter(chunks));
        let items = collect(&mut decoded);
        assert_eq!(items.len(), 1);
        assert_eq!(decoded.decoder().last_event_id(), "1");
        assert!(decoded.is_terminated());
        // The decoder goes on with a reconnection's body: the BOM is stripped again.
        let decoder = decoded.into_decoder();
        let again = DecodeStream::new(
            stream::iter([Ok::<_, Infallible>(&b"\xEF\xBB\xBFdata: c\n\n"[..])]),
            decoder,
        );
        let event = collect(again).remove(0).unwrap();
        assert_eq!(
            (event.data.as_str(), event.last_event_id.as_str()),
            ("c", "1")
        );
    }

    #[test]
    fn empty_chunks_are_fine() {
        let chunks = ["", "data: x", "", "\n", "", "\n", ""];
        let items = collect(decode_stream(stream::iter(
            chunks.map(|c| Ok::<_, &'static str>(c.as_bytes())),
        )));
        assert_eq!(data(items), ["x"]);
    }
}
