//! Where a foreign SSE body stands in the event grammar, read from the bytes it has sent.
//!
//! The layer may only insert a keep-alive comment where a line has just ended, and may only end
//! a body where an event has just ended; this tracker tells which, from the tail of each chunk
//! (the bytes before the last run of line-break bytes need no look).

/// What the bytes sent so far end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Position {
    /// At the start of the stream or right after a blank line: between events.
    EventStart,
    /// Right after the line break of a non-empty line: inside an event, between lines.
    LineStart,
    /// Inside a line.
    MidLine,
}

/// Tracks line and event boundaries across chunks. CR, LF and CRLF all end a line; a CR at
/// the very end of a chunk might be the first half of a CRLF, so nothing is inserted after it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Boundary {
    position: Position,
    after_cr: bool,
}

impl Boundary {
    pub(crate) fn new() -> Self {
        Boundary {
            position: Position::EventStart,
            after_cr: false,
        }
    }

    /// Takes in the next bytes of the stream.
    pub(crate) fn advance(&mut self, chunk: &[u8]) {
        let tail = match chunk.iter().rposition(|&b| b != b'\r' && b != b'\n') {
            Some(last) => {
                self.position = Position::MidLine;
                self.after_cr = false;
                &chunk[last + 1..]
            }
            None => chunk,
        };
        for &byte in tail {
            if byte == b'\n' && self.after_cr {
                // The second half of a CRLF: the line already ended at the CR.
                self.after_cr = false;
                continue;
            }
            self.position = match self.position {
                Position::MidLine => Position::LineStart,
                Position::LineStart | Position::EventStart => Position::EventStart,
            };
            self.after_cr = byte == b'\r';
        }
    }

    /// Whether a comment line can be inserted here without joining or splitting a line.
    pub(crate) fn at_line_start(&self) -> bool {
        self.position != Position::MidLine && !self.after_cr
    }

    /// Whether the stream can end here, or a whole event be inserted, without touching an
    /// event: the last event is complete (already dispatched by the client).
    pub(crate) fn at_event_start(&self) -> bool {
        self.position == Position::EventStart
    }

    /// Whether a whole event can be inserted here: between events and not after a lone CR
    /// (whose LF, still to come, would otherwise end the inserted event's first line early).
    pub(crate) fn can_insert_event(&self) -> bool {
        self.at_event_start() && !self.after_cr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(chunks: &[&str]) -> Boundary {
        let mut b = Boundary::new();
        for chunk in chunks {
            b.advance(chunk.as_bytes());
        }
        b
    }

    #[test]
    fn lines_and_events_in_any_chunking() {
        assert!(after(&[]).at_event_start());
        let b = after(&["data: x"]);
        assert!(!b.at_line_start() && !b.at_event_start());
        let b = after(&["data: x\n"]);
        assert!(b.at_line_start() && !b.at_event_start());
        assert!(after(&["data: x\n\n"]).at_event_start());
        assert!(after(&["data: x\n", "\n"]).at_event_start());
        assert!(after(&["data: x\r\n\r\n"]).at_event_start());
        assert!(after(&["data: x\r", "\n", "\r", "\n"]).at_event_start());
        assert!(after(&["data: x\r\r"]).at_event_start());
        // CRLF split over chunks is one line break, not two.
        let b = after(&["data: x\r", "\n"]);
        assert!(b.at_line_start() && !b.at_event_start());
        // Directly after a CR nothing may be inserted: its LF may follow.
        let b = after(&["data: x\r"]);
        assert!(!b.at_line_start() && !b.at_event_start());
        let b = after(&["data: x\n\r"]);
        assert!(b.at_event_start() && !b.can_insert_event());
        assert!(!after(&["a\n\nb"]).at_line_start());
        assert!(after(&["\n\n\n"]).at_event_start());
    }
}
