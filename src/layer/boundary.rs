//! Where a foreign SSE body stands in the event grammar, read from the bytes it has sent.
//!
//! The layer may only insert a keep-alive comment where a line has just ended, and may only end
//! a body where an event has just ended; this tracker tells which, from the tail of each chunk
//! (the bytes before the last run of line-break bytes need no look).

/// The kind of the line being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// No byte of the current line yet.
    Start,
    /// A comment line (first byte `:`): it neither opens nor closes an event.
    Comment,
    /// A field line: the event it belongs to is open until the next blank line.
    Field,
}

/// Tracks line and event boundaries across chunks. CR, LF and CRLF all end a line; a CR at
/// the very end of a chunk might be the first half of a CRLF, so nothing is inserted after it.
/// Comment lines (keep-alive pings among them) leave the event state as it was.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Boundary {
    line: Line,
    event_open: bool,
    after_cr: bool,
}

impl Boundary {
    pub(crate) fn new() -> Self {
        Boundary {
            line: Line::Start,
            event_open: false,
            after_cr: false,
        }
    }

    /// Takes in the next bytes of the stream. Looks at the first byte of each line and skips
    /// to the next line break with `memchr`.
    pub(crate) fn advance(&mut self, chunk: &[u8]) {
        // The common frame is whole events: it ends with a non-empty line and a blank line,
        // which closes any event whatever came before, so nothing needs reading.
        if let [.., last_content, b'\n', b'\n'] = chunk {
            if *last_content != b'\r' && *last_content != b'\n' {
                *self = Boundary::new();
                return;
            }
        }
        let mut i = 0;
        while i < chunk.len() {
            let byte = chunk[i];
            if self.after_cr && byte == b'\n' {
                // The second half of a CRLF: the line already ended at the CR.
                self.after_cr = false;
                i += 1;
                continue;
            }
            self.after_cr = false;
            if byte == b'\r' || byte == b'\n' {
                if self.line == Line::Start {
                    // A blank line: the client dispatches (or discards) the event.
                    self.event_open = false;
                }
                self.line = Line::Start;
                self.after_cr = byte == b'\r';
                i += 1;
                continue;
            }
            if self.line == Line::Start {
                if byte == b':' {
                    self.line = Line::Comment;
                } else {
                    self.line = Line::Field;
                    self.event_open = true;
                }
            }
            i += memchr::memchr2(b'\r', b'\n', &chunk[i..]).unwrap_or(chunk.len() - i);
        }
    }

    /// Whether a comment line can be inserted here without joining or splitting a line.
    pub(crate) fn at_line_start(&self) -> bool {
        self.line == Line::Start && !self.after_cr
    }

    /// Whether the stream can end here without cutting an event: no line is open and the last
    /// event is complete (already dispatched by the client).
    pub(crate) fn at_event_start(&self) -> bool {
        self.line == Line::Start && !self.event_open
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

    #[test]
    fn a_frame_of_whole_events_skips_the_scan_and_agrees_with_it() {
        // Whatever came before, a chunk ending in a line and a blank line ends at an event.
        for before in ["", "data: x", "data: x\r", ":", "data: a\n"] {
            let b = after(&[before, "data: y\nid: 1\n\n"]);
            assert!(b.at_event_start() && b.can_insert_event(), "{before:?}");
        }
        // Chunks that do not qualify take the byte-by-byte path: here the first LF completes
        // a CRLF and the second is the blank line.
        assert!(after(&["data: x\r", "\n\n"]).at_event_start());
        let b = after(&["data: x\r", "\n"]);
        assert!(b.at_line_start() && !b.at_event_start());
        assert!(after(&["data: x\n", "\n\n"]).at_event_start());
        // A CR before the blank line also takes the slow path and ends the event.
        assert!(after(&["data: x\r\n\n"]).at_event_start());
    }

    #[test]
    fn comment_lines_leave_the_event_state_alone() {
        assert!(after(&["data: a\n\n", ":\n"]).at_event_start());
        assert!(after(&[":\n", ": ping\n"]).at_event_start());
        let b = after(&["data: a\n", ":\n"]);
        assert!(b.at_line_start() && !b.at_event_start());
        assert!(after(&["data: a\n", ":\n", "\n"]).at_event_start());
        // A colon later in a line does not make it a comment.
        assert!(!after(&["data: a:b\n"]).at_event_start());
        // A comment split over chunks.
        let b = after(&[":", " ping"]);
        assert!(!b.at_line_start());
        assert!(after(&[":", " ping", "\n"]).at_event_start());
    }
}
