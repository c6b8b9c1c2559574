//! The [`Decoder`]: bytes in, [`DecodedEvent`]s out.

use std::collections::VecDeque;
use std::mem;
use std::time::Duration;

use super::{DecodeError, DecodedEvent};
use crate::decimal;

/// The UTF-8 byte order mark, which a stream may start with and which is not part of it.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A line buffer that grew past this is released after its line, so one long line does not
/// keep its memory for the life of the decoder.
const KEEP_LINE_CAPACITY: usize = 64 * 1024;

/// A streaming, spec-exact parser of an event stream.
///
/// Feed it the body's bytes in chunks of any size and take events out. Two styles are
/// offered; mixing them keeps the order of events:
///
/// - [`push`](Decoder::push) decodes a whole chunk and queues its events; take them with
///   [`next_event`](Decoder::next_event). The queue holds only the events of chunks pushed
///   and not yet drained.
/// - [`decode_next`](Decoder::decode_next) reads from a byte slice only up to the end of the
///   next event and returns it, advancing the slice; nothing is queued. This is what
///   [`DecodeStream`](super::DecodeStream) uses.
///
/// At the end of the stream call [`finish`](Decoder::finish): an event without its closing
/// blank line is dropped and an `id` it carried is not committed. The decoder is then ready
/// for the next connection's stream, keeping [`last_event_id`](Decoder::last_event_id) and
/// [`retry`](Decoder::retry) the way an `EventSource` keeps them across reconnections.
///
/// # Limits
///
/// Memory is bounded by two limits: the length of one line in bytes (not counting its line
/// break; [`DEFAULT_MAX_LINE_LEN`](Decoder::DEFAULT_MAX_LINE_LEN) unless set), and the size of
/// one event's data in bytes ([`DEFAULT_MAX_EVENT_LEN`](Decoder::DEFAULT_MAX_EVENT_LEN) unless
/// set). Exceeding either is a [`DecodeError`]. After an error the decoder refuses
/// further input with the same error until [`finish`](Decoder::finish) (or
/// [`reset`](Decoder::reset)); events completed before the offending line are still
/// returned.
///
/// ```
/// use tower_sse::decode::{DecodeError, Decoder};
///
/// let mut decoder = Decoder::with_max_line_len(8);
/// assert_eq!(
///     decoder.push(b"data: far too long\n\n"),
///     Err(DecodeError::LineTooLong { limit: 8 }),
/// );
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    max_line_len: usize,
    max_event_len: usize,
    /// How many bytes of a leading BOM have been seen; `None` once the start is decided.
    bom_matched: Option<usize>,
    /// The last byte read was a CR that ended a line: a LF right after it is part of it.
    skip_lf: bool,
    /// The start of a line whose end has not arrived yet.
    line: Vec<u8>,
    data: String,
    event_type: String,
    id_buffer: String,
    last_event_id: String,
    retry: Option<Duration>,
    queue: VecDeque<DecodedEvent>,
    error: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// The default limit on the length of one line: 1 MiB.
    pub const DEFAULT_MAX_LINE_LEN: usize = 1024 * 1024;

    /// The default limit on the size of one event's data: 16 MiB.
    pub const DEFAULT_MAX_EVENT_LEN: usize = 16 * 1024 * 1024;

    /// A decoder at the start of a stream, with the default limits and no last event id.
    pub fn new() -> Self {
        Self {
            max_line_len: Self::DEFAULT_MAX_LINE_LEN,
            max_event_len: Self::DEFAULT_MAX_EVENT_LEN,
            bom_matched: Some(0),
            skip_lf: false,
            line: Vec::new(),
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            retry: None,
            queue: VecDeque::new(),
            error: None,
        }
    }

    /// A decoder that refuses lines longer than `max_line_len` bytes (not counting the line
    /// break) with [`DecodeError::LineTooLong`]. Shorthand for
    /// `Decoder::new().max_line_len(max_line_len)`.
    pub fn with_max_line_len(max_line_len: usize) -> Self {
        Self::new().max_line_len(max_line_len)
    }

    /// Sets the limit on the length of one line in bytes, not counting its line break.
    #[must_use]
    pub fn max_line_len(mut self, max_line_len: usize) -> Self {
        self.max_line_len = max_line_len;
        self
    }

    /// Sets the limit on the size of one event's data in bytes (its data lines joined with
    /// `"\n"`, after UTF-8 decoding).
    #[must_use]
    pub fn max_event_len(mut self, max_event_len: usize) -> Self {
        self.max_event_len = max_event_len;
        self
    }

    /// Starts from a known last event id, for example the one sent as `Last-Event-ID` when
    /// reconnecting: events without an `id` field then carry it.
    #[must_use]
    pub fn last_event_id_from(mut self, id: impl Into<String>) -> Self {
        self.set_last_event_id(id);
        self
    }

    /// Sets the last event id, as [`last_event_id_from`](Decoder::last_event_id_from) does.
    /// An `id` field already read in the current, unfinished event is overridden.
    pub fn set_last_event_id(&mut self, id: impl Into<String>) {
        self.last_event_id = id.into();
        self.id_buffer.clone_from(&self.last_event_id);
    }

    /// The last event id committed by the stream: set by an `id` field and committed at the
    /// blank line that ends its event, whether or not that event fired. This is the value to
    /// send as `Last-Event-ID` when reconnecting (if it is not empty).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The latest reconnection time set by a `retry` field, if any. A `retry` value applies
    /// as soon as its line is read; values that are empty, not all ASCII digits, or too large
    /// for a `u64` of milliseconds are ignored.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Decodes `chunk` completely and queues the events it completes; take them with
    /// [`next_event`](Decoder::next_event). A line, an event, a CRLF, a BOM or a UTF-8
    /// sequence may be split across chunks at any byte.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if a limit is exceeded (or was exceeded earlier). The events completed
    /// before the offending line are queued all the same.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        let mut input = chunk;
        while !input.is_empty() {
            let event = self.read_event(&mut input)?;
            self.queue.extend(event);
        }
        self.check_error()
    }

    /// The next queued event, if any.
    pub fn next_event(&mut self) -> Option<DecodedEvent> {
        self.queue.pop_front()
    }

    /// Reads `input` up to the end of the next event and returns that event, advancing
    /// `input` past the bytes read. Returns `Ok(None)` once `input` is used up without
    /// completing an event; its bytes are kept and continued by the next call. Events queued
    /// by [`push`](Decoder::push) come first (without reading `input`).
    ///
    /// ```
    /// use tower_sse::decode::Decoder;
    ///
    /// # fn main() -> Result<(), tower_sse::decode::DecodeError> {
    /// let mut decoder = Decoder::new();
    /// let mut input: &[u8] = b"data: a\n\ndata: b\n\ndata: c";
    /// let mut data = Vec::new();
    /// while let Some(event) = decoder.decode_next(&mut input)? {
    ///     data.push(event.data);
    /// }
    /// assert_eq!(data, ["a", "b"]);
    /// assert!(input.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if a limit is exceeded (or was exceeded earlier); `input` is then left
    /// empty.
    pub fn decode_next(&mut self, input: &mut &[u8]) -> Result<Option<DecodedEvent>, DecodeError> {
        if let Some(event) = self.queue.pop_front() {
            return Ok(Some(event));
        }
        loop {
            if input.is_empty() {
                // A previous error is reported even for empty input.
                self.check_error()?;
                return Ok(None);
            }
            if let Some(event) = self.read_event(input)? {
                return Ok(Some(event));
            }
        }
    }

    /// Ends the current stream. An unfinished event (its data, type and `id`) and an
    /// unfinished line are discarded; returns `true` if there was any. Queued events stay
    /// available from [`next_event`](Decoder::next_event).
    ///
    /// The decoder is then at the start of a new stream (a leading BOM is stripped again)
    /// with the same limits, [`last_event_id`](Decoder::last_event_id) and
    /// [`retry`](Decoder::retry), and no error: ready for the body of a reconnection.
    pub fn finish(&mut self) -> bool {
        let discarded = self.bom_matched.is_some_and(|n| n > 0)
            || !self.line.is_empty()
            || !self.data.is_empty()
            || !self.event_type.is_empty()
            || self.id_buffer != self.last_event_id;
        self.bom_matched = Some(0);
        self.skip_lf = false;
        self.line = Vec::new();
        self.data = String::new();
        self.event_type.clear();
        self.id_buffer.clone_from(&self.last_event_id);
        self.error = None;
        discarded
    }

    /// Back to the state of [`Decoder::new`], keeping only the limits.
    pub fn reset(&mut self) {
        *self = Self::new()
            .max_line_len(self.max_line_len)
            .max_event_len(self.max_event_len);
    }

    fn check_error(&self) -> Result<(), DecodeError> {
        match self.error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Reads lines from `input` until an event fires or `input` ends (then `Ok(None)`).
    fn read_event(&mut self, input: &mut &[u8]) -> Result<Option<DecodedEvent>, DecodeError> {
        let result = self.read_event_inner(input);
        if let Err(err) = result {
            self.error = Some(err);
            *input = &[];
        }
        result
    }

    fn read_event_inner(&mut self, input: &mut &[u8]) -> Result<Option<DecodedEvent>, DecodeError> {
        self.check_error()?;
        if self.skip_lf {
            if let Some((&first, rest)) = input.split_first() {
                self.skip_lf = false;
                if first == b'\n' {
                    *input = rest;
                }
            }
        }
        if let Some(matched) = self.bom_matched {
            self.read_bom(matched, input)?;
        }
        while let Some(i) = memchr::memchr2(b'\r', b'\n', input) {
            let end = input[i];
            let line_end = if end == b'\r' {
                match input.get(i + 1) {
                    Some(&b'\n') => i + 2,
                    Some(_) => i + 1,
                    None => {
                        self.skip_lf = true;
                        i + 1
                    }
                }
            } else {
                i + 1
            };
            let event = if self.line.is_empty() {
                self.check_line_len(i)?;
                self.process_line(&input[..i])?
            } else {
                self.check_line_len(self.line.len() + i)?;
                let mut line = mem::take(&mut self.line);
                line.extend_from_slice(&input[..i]);
                let event = self.process_line(&line);
                if line.capacity() <= KEEP_LINE_CAPACITY {
                    line.clear();
                    self.line = line;
                }
                event?
            };
            *input = &input[line_end..];
            if event.is_some() {
                return Ok(event);
            }
        }
        self.check_line_len(self.line.len() + input.len())?;
        self.line.extend_from_slice(input);
        *input = &[];
        Ok(None)
    }

    /// Strips a leading BOM, which may arrive split over several chunks. Bytes that turn
    /// out not to be a BOM start the first line.
    fn read_bom(&mut self, mut matched: usize, input: &mut &[u8]) -> Result<(), DecodeError> {
        while let Some((&byte, rest)) = input.split_first() {
            if byte != BOM[matched] {
                self.bom_matched = None;
                self.check_line_len(matched)?;
                self.line.extend_from_slice(&BOM[..matched]);
                return Ok(());
            }
            *input = rest;
            matched += 1;
            if matched == BOM.len() {
                self.bom_matched = None;
                return Ok(());
            }
        }
        self.bom_matched = Some(matched);
        Ok(())
    }

    fn check_line_len(&self, len: usize) -> Result<(), DecodeError> {
        if len > self.max_line_len {
            Err(DecodeError::LineTooLong {
                limit: self.max_line_len,
            })
        } else {
            Ok(())
        }
    }

    /// Interprets one complete line (without its line break).
    fn process_line(&mut self, line: &[u8]) -> Result<Option<DecodedEvent>, DecodeError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line[0] == b':' {
            return Ok(None);
        }
        // Bytes are compared before UTF-8 decoding: ':', ' ', NUL and the ASCII field names
        // can never be part of a multi-byte sequence or of a replaced invalid one.
        let (name, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"event" => {
                self.event_type.clear();
                push_lossy(&mut self.event_type, value);
            }
            b"data" => {
                push_lossy(&mut self.data, value);
                // Measured as the data the event would carry if it ended here.
                if self.data.len() > self.max_event_len {
                    self.data = String::new();
                    return Err(DecodeError::EventTooLarge {
                        limit: self.max_event_len,
                    });
                }
                self.data.push('\n');
            }
            // An id containing NUL is ignored as a whole.
            b"id" if memchr::memchr(0, value).is_none() => {
                self.id_buffer.clear();
                push_lossy(&mut self.id_buffer, value);
            }
            b"retry" => {
                // Leading zeros are allowed: `007` is 7 ms.
                if let Some(millis) = decimal::parse_u64(value) {
                    self.retry = Some(Duration::from_millis(millis));
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// The blank line: commits the id and fires the event if it has data.
    fn dispatch(&mut self) -> Option<DecodedEvent> {
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        if self.data.is_empty() {
            self.event_type.clear();
            return None;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        let event_type = if self.event_type.is_empty() {
            String::from("message")
        } else {
            mem::take(&mut self.event_type)
        };
        Some(DecodedEvent {
            event_type,
            data: mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        })
    }
}

/// Appends `bytes` decoded as UTF-8, each invalid sequence replaced by U+FFFD exactly as the
/// WHATWG UTF-8 decoder does (maximal subparts), like `String::from_utf8_lossy`.
fn push_lossy(dst: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        dst.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            dst.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

#[cfg(test)]
mod tests;
