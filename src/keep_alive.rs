//! Keep-alive settings: what is sent on an idle stream, and after how long.

use std::time::Duration;

use bytes::Bytes;

use crate::event::{EncodedEvent, Event};

/// The default idle interval before a keep-alive is sent: 15 seconds, under the idle cut-offs
/// of common proxies (nginx 60 s, Cloudflare about 100 s) and of Firefox (about 30 s seen).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// The default keep-alive bytes: one empty comment line and no blank line.
///
/// Without a blank line the comment dispatches nothing in any client, including those that
/// report an empty event for a comment block once an id has been seen. The next event's lines
/// simply follow it.
const DEFAULT_PING: &[u8] = b":\n";

/// What to send when a stream has been idle, and after how long.
///
/// The timer starts at the body's first poll (a response that sat unpolled does not burst
/// pings) and restarts on every event. Sending a ping costs no allocation: its bytes are
/// encoded once, here, and shared.
///
/// ```
/// use std::time::Duration;
/// use tower_sse::{Event, KeepAlive};
///
/// // Default: an empty comment line every 15 s.
/// let default = KeepAlive::new();
/// // A comment with text every 20 s.
/// let text = KeepAlive::new().interval(Duration::from_secs(20)).text("ping");
/// // A real event, for clients that reset their read timeout only on complete events.
/// let event = KeepAlive::new().event(Event::new().event("ping").unwrap().data(""));
/// # let _ = (default, text, event);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct KeepAlive {
    interval: Option<Duration>,
    ping: Bytes,
}

impl KeepAlive {
    /// An empty comment line (`:`) after 15 s of silence.
    pub fn new() -> Self {
        KeepAlive {
            interval: Some(DEFAULT_INTERVAL),
            ping: Bytes::from_static(DEFAULT_PING),
        }
    }

    /// No keep-alive at all.
    pub fn disabled() -> Self {
        KeepAlive {
            interval: None,
            ping: Bytes::from_static(DEFAULT_PING),
        }
    }

    /// Sets the idle interval. A zero interval is treated as one millisecond.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Sends a comment line with `text` (split on line breaks like any comment), with no blank
    /// line after it, so it never dispatches an event.
    pub fn text(mut self, text: impl AsRef<str>) -> Self {
        let encoded = Event::new().comment(text).encode().into_bytes();
        // Drop the closing blank line: a comment on its own dispatches nothing.
        self.ping = encoded.slice(..encoded.len() - 1);
        self
    }

    /// Sends a whole event. Use it for clients that reset their read timeout only on complete
    /// events; note that a browser dispatches it to the app if it has data.
    pub fn event(mut self, event: impl Into<EncodedEvent>) -> Self {
        self.ping = event.into().into_bytes();
        self
    }

    /// The idle interval, or `None` when disabled.
    pub fn current_interval(&self) -> Option<Duration> {
        self.interval
    }

    /// The bytes sent as a keep-alive.
    pub fn ping_bytes(&self) -> &Bytes {
        &self.ping
    }

    /// Whether the keep-alive ends at an event boundary (it is a whole event) rather than at a
    /// line boundary (a comment line).
    pub(crate) fn ends_event(&self) -> bool {
        self.ping.ends_with(b"\n\n")
    }
}

impl Default for KeepAlive {
    fn default() -> Self {
        KeepAlive::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_shapes() {
        assert_eq!(&KeepAlive::new().ping_bytes()[..], b":\n");
        assert_eq!(&KeepAlive::new().text("ping").ping_bytes()[..], b": ping\n");
        assert_eq!(
            &KeepAlive::new().text("a\r\nb").ping_bytes()[..],
            b": a\n: b\n"
        );
        let ev = KeepAlive::new().event(Event::new().event("ping").unwrap().data(""));
        assert_eq!(&ev.ping_bytes()[..], b"event: ping\ndata:\n\n");
        assert!(ev.ends_event());
        assert!(!KeepAlive::new().ends_event());
        assert_eq!(KeepAlive::disabled().current_interval(), None);
        assert_eq!(
            KeepAlive::new().interval(Duration::ZERO).current_interval(),
            Some(Duration::from_millis(1))
        );
    }
}
