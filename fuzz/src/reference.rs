//! A deliberately simple event stream parser that follows the WHATWG steps literally on a
//! complete byte string: split into lines first, then interpret each line. It applies the
//! same two limits as `tower_sse::decode::Decoder` (line length in bytes, data size) so the
//! two can be compared on any input, including inputs that hit a limit.

use std::time::Duration;

use tower_sse::decode::{DecodeError, DecodedEvent};

/// Everything a client knows after reading a whole stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The events fired, in order.
    pub events: Vec<DecodedEvent>,
    /// The limit that stopped parsing, if one did.
    pub error: Option<DecodeError>,
    /// The last event id committed (at a blank line).
    pub last_event_id: String,
    /// The last valid `retry` value.
    pub retry: Option<Duration>,
}

/// Parses `bytes` as one complete stream, stopping at the first line that exceeds a limit.
pub fn parse(bytes: &[u8], max_line_len: usize, max_event_len: usize) -> Outcome {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let mut out = Outcome {
        events: Vec::new(),
        error: None,
        last_event_id: String::new(),
        retry: None,
    };
    if BOM.starts_with(bytes) {
        // Nothing, or the start of a BOM that never completed: no line has begun yet.
        return out;
    }
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut data = String::new();
    let mut event_type = String::new();
    let mut id_buffer = String::new();
    for (line, terminated) in split_lines(bytes) {
        if line.len() > max_line_len {
            out.error = Some(DecodeError::LineTooLong {
                limit: max_line_len,
            });
            return out;
        }
        if !terminated {
            // An unfinished line at the end of the stream is dropped.
            break;
        }
        if line.is_empty() {
            out.last_event_id = id_buffer.clone();
            if !data.is_empty() {
                data.pop();
                out.events.push(DecodedEvent {
                    event_type: if event_type.is_empty() {
                        "message".to_owned()
                    } else {
                        event_type.clone()
                    },
                    data: std::mem::take(&mut data),
                    last_event_id: out.last_event_id.clone(),
                });
            }
            data.clear();
            event_type.clear();
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let (name, value) = match text.find(':') {
            Some(i) => {
                let value = &text[i + 1..];
                (&text[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&*text, ""),
        };
        match name {
            "event" => event_type = value.to_owned(),
            "data" => {
                if data.len() + value.len() > max_event_len {
                    out.error = Some(DecodeError::EventTooLarge {
                        limit: max_event_len,
                    });
                    return out;
                }
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => id_buffer = value.to_owned(),
            "retry" => out.retry = parse_retry(value).or(out.retry),
            _ => {}
        }
    }
    out
}

/// A `retry` value: only ASCII digits, at least one, fitting a `u64` of milliseconds.
fn parse_retry(value: &str) -> Option<Duration> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().map(Duration::from_millis)
}

/// The lines of `bytes`, each with whether a line break (CRLF, CR or LF) ended it. The
/// last item is an unterminated rest, if any bytes follow the last line break.
fn split_lines(bytes: &[u8]) -> Vec<(&[u8], bool)> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push((&bytes[start..i], true));
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push((&bytes[start..i], true));
                i += if bytes.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push((&bytes[start..], false));
    }
    lines
}
