//! A spec-exact parser of event streams: the client side of SSE.
//!
//! [`Decoder`] reads the bytes of a `text/event-stream` body exactly as the WHATWG HTML
//! standard ("Server-sent events", *parsing an event stream*) tells a browser to:
//!
//! - bytes are UTF-8; each invalid sequence becomes U+FFFD; one leading BOM is stripped;
//! - lines end at CRLF, LF or CR and nothing else (U+2028, U+2029 and U+0085 are ordinary
//!   characters);
//! - a blank line dispatches; a line starting with `:` is a comment; otherwise the field
//!   name is the text before the first `:` and the value the text after it, minus one leading
//!   space (a line without `:` is a field with an empty value);
//! - `data` appends the value and `"\n"`; `event` sets the type; `id` sets the id unless the
//!   value contains NUL; `retry` sets the reconnection time if the value is all ASCII digits;
//!   other fields are ignored;
//! - at the blank line the id is committed whether or not an event fires; an event fires
//!   only if its data is not empty, with one trailing `"\n"` removed and the type
//!   `"message"` unless set;
//! - at the end of the stream an unfinished event is dropped and its id is not committed.
//!
//! Chunks may be split anywhere: inside a line, a CRLF, a BOM or a UTF-8 sequence. Work is
//! linear in the input, and memory is bounded by a line length and an event size limit
//! (typed [`DecodeError`]s, never a panic).
//!
//! ```
//! use std::time::Duration;
//! use tower_sse::decode::{DecodedEvent, Decoder};
//!
//! # fn main() -> Result<(), tower_sse::decode::DecodeError> {
//! let mut decoder = Decoder::new();
//! decoder.push(b"retry: 2500\nevent: greet\nid: 7\ndata: hel")?;
//! assert_eq!(decoder.next_event(), None);
//! decoder.push(b"lo\r\ndata:  world\r\n\r\n: a comment\n\ndata: next\n\n")?;
//! assert_eq!(
//!     decoder.next_event(),
//!     Some(DecodedEvent {
//!         event_type: "greet".into(),
//!         data: "hello\n world".into(),
//!         last_event_id: "7".into(),
//!     }),
//! );
//! let next = decoder.next_event().unwrap();
//! assert_eq!((next.event_type.as_str(), next.data.as_str()), ("message", "next"));
//! assert_eq!(next.last_event_id, "7");
//! assert_eq!(decoder.next_event(), None);
//! assert_eq!(decoder.retry(), Some(Duration::from_millis(2500)));
//! # Ok(())
//! # }
//! ```
//!
//! To read an HTTP body, turn it into a stream of data chunks (for example with
//! `http_body_util::BodyExt::into_data_stream`) and wrap it with [`decode_stream`].

use std::error::Error;
use std::fmt;

mod decoder;
mod stream;

pub(crate) use decoder::BOM;
pub use decoder::Decoder;
pub use stream::{DecodeStream, DecodeStreamError, decode_stream};

/// An event as a browser's `EventSource` would fire it (a `MessageEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecodedEvent {
    /// The event type: the last `event` field's value, or `"message"` if there was none or
    /// it was empty.
    pub event_type: String,
    /// The `data` lines joined with `"\n"`.
    pub data: String,
    /// The last event id committed when this event fired (it may come from an earlier
    /// event).
    pub last_event_id: String,
}

/// A stream the [`Decoder`] refuses to buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeError {
    /// A line is longer than the limit, in bytes, not counting its line break.
    LineTooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// An event's data is larger than the limit, in bytes.
    EventTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong { limit } => {
                write!(f, "SSE line longer than the limit of {limit} bytes")
            }
            Self::EventTooLarge { limit } => {
                write!(f, "SSE event data larger than the limit of {limit} bytes")
            }
        }
    }
}

impl Error for DecodeError {}

/// Decodes one complete stream with a default [`Decoder`]: the events it fires, in order.
/// An unfinished event at the end is dropped, as at the end of any stream.
///
/// ```
/// let events = tower_sse::decode::decode_all(b"data: a\n\nevent: b\ndata\n\ndata: c")?;
/// assert_eq!(events.len(), 2);
/// assert_eq!((events[1].event_type.as_str(), events[1].data.as_str()), ("b", ""));
/// # Ok::<_, tower_sse::decode::DecodeError>(())
/// ```
///
/// # Errors
///
/// [`DecodeError`] if a default limit is exceeded.
pub fn decode_all(bytes: impl AsRef<[u8]>) -> Result<Vec<DecodedEvent>, DecodeError> {
    let mut decoder = Decoder::new();
    let mut input = bytes.as_ref();
    let mut events = Vec::new();
    while let Some(event) = decoder.decode_next(&mut input)? {
        events.push(event);
    }
    Ok(events)
}
