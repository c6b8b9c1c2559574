//! Events and their wire encoding.
//!
//! This module is the only place in the crate that writes SSE syntax. An [`Event`] is a
//! builder that writes each field into one buffer as it is set; [`Event::encode`] (or any
//! `Into<EncodedEvent>` conversion) closes the event with the blank line and freezes the buffer
//! into an [`EncodedEvent`], whose clones share the same bytes.
//!
//! # Which values are refused
//!
//! `data` and comments accept **any** string: CRLF, CR and LF each end one line, and every line
//! is written behind its own `data:` (or `:`) prefix, so nothing a caller puts there can create
//! another field or another event. The event type and the id cannot be split over lines, so
//! their setters are *fallible*: a value with CR or LF (or, for the id, NUL) is refused with an
//! [`EventError`] that names the field. Fallible setters were chosen over a validating
//! `build()` step because the error then points at the call that caused it, and because the
//! infallible setters (`data`, `comment`, `retry`) keep chaining without `?`.
//!
//! ```
//! use tower_sse::{Event, EventError, EventField};
//!
//! # fn main() -> Result<(), EventError> {
//! let event = Event::new().event("chat")?.id("42")?.data("hello\nworld");
//! assert_eq!(
//!     event.encode().as_bytes(),
//!     &b"event: chat\nid: 42\ndata: hello\ndata: world\n\n"[..],
//! );
//!
//! let err = Event::new().event("x\nevent: admin").unwrap_err();
//! assert_eq!(err.field(), EventField::Event);
//! # Ok(())
//! # }
//! ```
//!
//! # The encoding
//!
//! LF line endings, no BOM, exactly one space after the colon (so a value's own leading space
//! survives the client's removal of one), `data:` with nothing after it for an empty line, and
//! `retry:` in whole milliseconds. A CR in data or a comment is a line break on the wire and
//! arrives as `"\n"`: SSE has no way to carry a bare CR.

use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

/// The most spare bytes an event's buffer may keep, beyond its bytes and its id line, when the
/// hub holds it ([`Event::into_lines_with_room`]); the hub's memory charge per event covers it.
pub(crate) const KEPT_SLACK: usize = 32;

/// The smallest buffer an event starts with once something is written: enough for a type, an
/// id and a short line of data.
const MIN_CAPACITY: usize = 256;

/// An event under construction.
///
/// Fields are written to the wire buffer in the order they are set. Calling [`Event::data`]
/// more than once adds lines (the client joins them with `"\n"`); setting the type or id twice
/// writes both lines and the client keeps the last one.
///
/// An event with no data line is valid: a browser dispatches nothing for it, but an `id` in it
/// still moves the client's last event id, and a `retry` still sets the reconnection delay.
#[derive(Clone, Default)]
#[must_use]
pub struct Event {
    buf: BytesMut,
}

/// A complete, encoded event: the exact bytes of one SSE event, ending with its blank line.
///
/// Cloning is a reference-count increment; the bytes are shared, never copied. This is what
/// [`SseBody`](crate::SseBody) writes and what the hub keeps in its replay ring.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EncodedEvent(Bytes);

/// The field an [`EventError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventField {
    /// The event type (`event:`).
    Event,
    /// The event id (`id:`).
    Id,
}

/// Why a field value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventErrorKind {
    /// The value contains a carriage return or line feed, which would end the field early.
    LineBreak,
    /// The id contains a NUL character; clients ignore such an id field.
    Nul,
}

/// A field value that SSE cannot carry; names the field and the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventError {
    field: EventField,
    kind: EventErrorKind,
}

impl EventError {
    /// The field whose value was refused.
    pub fn field(&self) -> EventField {
        self.field
    }

    /// Why it was refused.
    pub fn kind(&self) -> EventErrorKind {
        self.kind
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = match self.field {
            EventField::Event => "event type",
            EventField::Id => "event id",
        };
        match self.kind {
            EventErrorKind::LineBreak => write!(f, "SSE {field} must not contain CR or LF"),
            EventErrorKind::Nul => write!(f, "SSE {field} must not contain NUL"),
        }
    }
}

impl std::error::Error for EventError {}

impl Event {
    /// An empty event.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty event whose buffer can hold `capacity` bytes without growing.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(capacity),
        }
    }

    /// Adds `data` lines. Any string is accepted: CRLF, CR and LF each end one line, and the
    /// client receives the lines joined with `"\n"`. `""` sends one empty data line, so the
    /// client dispatches an event with empty data.
    pub fn data(mut self, data: impl AsRef<str>) -> Self {
        self.write_lines(b"data", data.as_ref().as_bytes());
        self
    }

    /// Adds a data line holding `value` serialized as compact JSON, written by serde_json
    /// straight into the event buffer. Compact JSON never contains a raw line break, so the
    /// value is always one line.
    ///
    /// # Errors
    ///
    /// Whatever the value's `Serialize` implementation returns; the event is unchanged then.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn json_data<T: serde::Serialize + ?Sized>(
        mut self,
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        let start = self.buf.len();
        self.grow(64);
        self.buf.extend_from_slice(b"data: ");
        let mut writer = (&mut self.buf).writer();
        if let Err(err) = serde_json::to_writer(&mut writer, value) {
            self.buf.truncate(start);
            return Err(err);
        }
        self.buf.put_u8(b'\n');
        Ok(self)
    }

    /// Adds comment lines (`: text`). Clients ignore comments; they are useful to keep a
    /// connection busy or to annotate a stream. Any string is accepted, split like data.
    pub fn comment(mut self, comment: impl AsRef<str>) -> Self {
        self.write_lines(b"", comment.as_ref().as_bytes());
        self
    }

    /// Sets the event type (`event:`); browsers dispatch it to listeners of that name instead
    /// of `message`. Note that `error` and `open` also fire a browser's `onerror` / `onopen`.
    ///
    /// # Errors
    ///
    /// [`EventError`] naming [`EventField::Event`] if the type contains CR or LF.
    pub fn event(mut self, event_type: impl AsRef<str>) -> Result<Self, EventError> {
        let value = event_type.as_ref().as_bytes();
        check(EventField::Event, value)?;
        self.write_field(b"event", value);
        Ok(self)
    }

    /// Sets the event id (`id:`), which the client sends back as `Last-Event-ID` when it
    /// reconnects. An empty id resets the client's last event id.
    ///
    /// # Errors
    ///
    /// [`EventError`] naming [`EventField::Id`] if the id contains CR, LF or NUL.
    pub fn id(mut self, id: impl AsRef<str>) -> Result<Self, EventError> {
        let value = id.as_ref().as_bytes();
        check(EventField::Id, value)?;
        self.write_field(b"id", value);
        Ok(self)
    }

    /// Sets a numeric event id (`id: 42`), the common case, written without a temporary
    /// string. Always valid, so it cannot fail.
    pub fn id_u64(mut self, id: u64) -> Self {
        self.grow(25);
        self.buf.extend_from_slice(b"id: ");
        write_u128(&mut self.buf, u128::from(id));
        self.buf.put_u8(b'\n');
        self
    }

    /// Sets the client's reconnection delay (`retry:`), in whole milliseconds (sub-millisecond
    /// parts are dropped).
    pub fn retry(mut self, delay: Duration) -> Self {
        self.grow(47);
        self.buf.extend_from_slice(b"retry: ");
        write_u128(&mut self.buf, delay.as_millis());
        self.buf.put_u8(b'\n');
        self
    }

    /// Appends an `id:` line without checking it. For the hub, whose ids are generated and
    /// known to be single-line ASCII; a later `id:` line overrides an earlier one at the client.
    pub(crate) fn push_id_unchecked(&mut self, id: &str) {
        self.write_field(b"id", id.as_bytes());
    }

    /// The bytes written so far, without the closing blank line.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Closes the event with its blank line and freezes it. This is the one encoding step; the
    /// result is shared by reference count from here on.
    pub fn encode(mut self) -> EncodedEvent {
        self.buf.put_u8(b'\n');
        EncodedEvent(self.buf.freeze())
    }

    /// Makes room for `additional` bytes plus the closing blank line. The first write takes
    /// at least [`MIN_CAPACITY`] bytes, so a small event (type, id, a line of data) is built
    /// and closed in one allocation instead of one per field.
    fn grow(&mut self, additional: usize) {
        let needed = additional + 1;
        if self.buf.capacity() - self.buf.len() < needed {
            self.buf.reserve(needed.max(MIN_CAPACITY));
        }
    }

    /// The event's lines, in a buffer with room for `room` more bytes, for the hub: it admits
    /// the event and makes this buffer before it takes its lock, then only appends the id line
    /// and the closing blank line under it ([`EncodedEvent::close_with_id`]), which never
    /// reallocates. The event's own buffer is kept only if it has that room and at most
    /// [`KEPT_SLACK`] bytes more; otherwise the lines move to a new buffer of exactly the size
    /// needed, so that what a ring holds in memory is what the hub charges for it.
    pub(crate) fn into_lines_with_room(self, room: usize) -> BytesMut {
        let needed = self.buf.len().saturating_add(room);
        let capacity = self.buf.capacity();
        if capacity >= needed && capacity - needed <= KEPT_SLACK {
            return self.buf;
        }
        let mut exact = BytesMut::with_capacity(needed);
        exact.extend_from_slice(&self.buf);
        exact
    }

    fn write_field(&mut self, name: &[u8], value: &[u8]) {
        self.grow(name.len() + value.len() + 3);
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.put_u8(b'\n');
    }

    /// Writes `value` as one `name:` line per line of `value` (split on CRLF, CR, LF).
    fn write_lines(&mut self, name: &[u8], value: &[u8]) {
        // Room for the common case of a value without line breaks.
        self.grow(name.len() + value.len() + 3);
        let mut rest = value;
        loop {
            match memchr::memchr2(b'\r', b'\n', rest) {
                Some(i) => {
                    self.write_line(name, &rest[..i]);
                    let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                        2
                    } else {
                        1
                    };
                    rest = &rest[i + skip..];
                }
                None => {
                    self.write_line(name, rest);
                    return;
                }
            }
        }
    }

    fn write_line(&mut self, name: &[u8], line: &[u8]) {
        self.buf.extend_from_slice(name);
        if line.is_empty() {
            self.buf.put_u8(b':');
        } else {
            self.buf.extend_from_slice(b": ");
            self.buf.extend_from_slice(line);
        }
        self.buf.put_u8(b'\n');
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Event")
            .field(&String::from_utf8_lossy(&self.buf))
            .finish()
    }
}

fn check(field: EventField, value: &[u8]) -> Result<(), EventError> {
    if memchr::memchr2(b'\r', b'\n', value).is_some() {
        return Err(EventError {
            field,
            kind: EventErrorKind::LineBreak,
        });
    }
    if field == EventField::Id && memchr::memchr(0, value).is_some() {
        return Err(EventError {
            field,
            kind: EventErrorKind::Nul,
        });
    }
    Ok(())
}

fn write_u128(buf: &mut BytesMut, mut n: u128) {
    let mut digits = [0u8; 39];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

impl EncodedEvent {
    /// Closes the lines in `buf` (from [`Event::into_lines_with_room`]) with an `id:` line and
    /// the blank line. `id` is not checked: the hub's ids are generated, single-line ASCII.
    pub(crate) fn close_with_id(mut buf: BytesMut, id: &str) -> Self {
        buf.extend_from_slice(b"id: ");
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(b"\n\n");
        EncodedEvent(buf.freeze())
    }

    /// Wraps bytes that are already one or more complete SSE events (each ending with a blank
    /// line). The bytes are not checked: use this for frames that came out of this crate, for
    /// example ones stored elsewhere, or for hand-written constants.
    pub fn from_bytes_unchecked(bytes: Bytes) -> Self {
        EncodedEvent(bytes)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The encoded bytes, shared (no copy).
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The length of the encoding in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the encoding is empty (only possible through `from_bytes_unchecked`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the encoded bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl fmt::Debug for EncodedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EncodedEvent")
            .field(&String::from_utf8_lossy(&self.0))
            .finish()
    }
}

impl From<Event> for EncodedEvent {
    fn from(event: Event) -> Self {
        event.encode()
    }
}

impl From<EncodedEvent> for Bytes {
    fn from(event: EncodedEvent) -> Self {
        event.0
    }
}

impl AsRef<[u8]> for EncodedEvent {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(event: Event) -> String {
        String::from_utf8(event.encode().into_bytes().to_vec()).unwrap()
    }

    #[test]
    fn data_line_breaks_each_end_one_line() {
        for input in ["a\r\nb", "a\rb", "a\nb"] {
            assert_eq!(
                wire(Event::new().data(input)),
                "data: a\ndata: b\n\n",
                "{input:?}"
            );
        }
        assert_eq!(
            wire(Event::new().data("a\r\r\nb")),
            "data: a\ndata:\ndata: b\n\n"
        );
        assert_eq!(
            wire(Event::new().data("a\n\rb")),
            "data: a\ndata:\ndata: b\n\n"
        );
    }

    #[test]
    fn empty_trailing_and_leading_space() {
        assert_eq!(wire(Event::new().data("")), "data:\n\n");
        assert_eq!(wire(Event::new().data("a\n")), "data: a\ndata:\n\n");
        assert_eq!(wire(Event::new().data(" lead")), "data:  lead\n\n");
        assert_eq!(wire(Event::new().comment("")), ":\n\n");
        assert_eq!(wire(Event::new().comment("x\ny")), ": x\n: y\n\n");
    }

    #[test]
    fn refuses_line_breaks_and_nul_naming_the_field() {
        let e = Event::new().event("a\rb").unwrap_err();
        assert_eq!(
            (e.field(), e.kind()),
            (EventField::Event, EventErrorKind::LineBreak)
        );
        let e = Event::new().id("1\n").unwrap_err();
        assert_eq!(
            (e.field(), e.kind()),
            (EventField::Id, EventErrorKind::LineBreak)
        );
        let e = Event::new().id("1\0").unwrap_err();
        assert_eq!((e.field(), e.kind()), (EventField::Id, EventErrorKind::Nul));
        assert!(e.to_string().contains("event id"));
        // NUL is fine in an event type and in data.
        assert_eq!(wire(Event::new().event("a\0").unwrap()), "event: a\0\n\n");
    }

    #[test]
    fn numeric_ids() {
        assert_eq!(wire(Event::new().id_u64(0)), "id: 0\n\n");
        assert_eq!(
            wire(Event::new().id_u64(u64::MAX).data("x")),
            "id: 18446744073709551615\ndata: x\n\n"
        );
        assert_eq!(
            Event::new().id_u64(42).encode(),
            Event::new().id("42").unwrap().encode()
        );
    }

    #[test]
    fn retry_in_whole_milliseconds() {
        assert_eq!(
            wire(Event::new().retry(Duration::from_micros(1_500_900))),
            "retry: 1500\n\n"
        );
        assert_eq!(wire(Event::new().retry(Duration::ZERO)), "retry: 0\n\n");
    }

    #[test]
    fn small_events_take_one_allocation_and_kept_ones_hold_their_length() {
        let event = Event::new()
            .event("update")
            .unwrap()
            .id("42")
            .unwrap()
            .data("{\"a\":1}");
        let capacity = event.buf.capacity();
        assert_eq!(capacity, MIN_CAPACITY);
        // Too much room: moved to an exact buffer with room for the id line.
        let lines = event.clone().into_lines_with_room(10);
        assert_eq!(lines.capacity(), event.as_bytes().len() + 10);
        assert_eq!(
            EncodedEvent::close_with_id(lines, "7").as_bytes(),
            b"event: update\nid: 42\ndata: {\"a\":1}\nid: 7\n\n"
        );
        // An event built to size is not copied again.
        let data = "x".repeat(10_000);
        let lines_len = "data: ".len() + data.len() + 1;
        let sized = Event::with_capacity(lines_len + 64).data(&data);
        let ptr = sized.buf.as_ptr();
        let lines = sized.into_lines_with_room(64 - KEPT_SLACK);
        assert_eq!(lines.as_ptr(), ptr);
        let encoded = EncodedEvent::close_with_id(lines, "1-2");
        assert_eq!(encoded.as_bytes().as_ptr(), ptr);
        assert!(encoded.as_bytes().ends_with(b"x\nid: 1-2\n\n"));
        // One with more spare room than that is, to an exact buffer.
        let grown = Event::with_capacity(lines_len + 64 + 1).data(&data);
        let lines = grown.into_lines_with_room(64 - KEPT_SLACK);
        assert_eq!(lines.capacity(), lines_len + 64 - KEPT_SLACK);
        // Without room enough, it is copied once to a buffer that has it.
        let small_room = Event::new().data("x".repeat(300));
        let len = small_room.as_bytes().len();
        let lines = small_room.into_lines_with_room(1000);
        assert_eq!((lines.len(), lines.capacity()), (len, len + 1000));
    }

    #[test]
    fn encoded_clone_shares_bytes() {
        let a = Event::new().data("x").encode();
        let b = a.clone();
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());
    }
}
