//! The hub's own events: `reset`, `lagged`, and the id-only position event.

use crate::{EncodedEvent, Event};

/// The event type of the marker that starts a subscription whose `Last-Event-ID` could not be
/// resumed: `event: reset`, data `{"reason":"stale"|"unknown"|"future"|"epoch"}`, and an `id:`
/// of the position the subscription continues from.
pub const RESET_EVENT: &str = "reset";

/// The event type of the marker a subscription yields when it fell behind and skipped to live
/// events under [`OverflowPolicy::SkipToLive`](super::OverflowPolicy::SkipToLive):
/// `event: lagged`, data `{"skipped":<n>}`, and an `id:` of the position it continues from.
pub const LAGGED_EVENT: &str = "lagged";

/// Why a `Last-Event-ID` could not be resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResetReason {
    /// Events after the id were evicted from at least one followed topic.
    Stale,
    /// The id is not one this hub's format can produce.
    Unknown,
    /// The id is after the newest event of this hub.
    Future,
    /// The id comes from another hub or an earlier run.
    Epoch,
}

impl ResetReason {
    fn as_str(self) -> &'static str {
        match self {
            ResetReason::Stale => "stale",
            ResetReason::Unknown => "unknown",
            ResetReason::Future => "future",
            ResetReason::Epoch => "epoch",
        }
    }
}

/// An event of type `kind`; the constant types above are always valid.
fn typed(kind: &str) -> Event {
    Event::new().event(kind).unwrap_or_default()
}

pub(crate) fn reset(reason: ResetReason, id: &str) -> EncodedEvent {
    let mut event = typed(RESET_EVENT).data(format!("{{\"reason\":\"{}\"}}", reason.as_str()));
    event.push_id_unchecked(id);
    event.encode()
}

pub(crate) fn lagged(skipped: u64, id: &str) -> EncodedEvent {
    let mut event = typed(LAGGED_EVENT).data(format!("{{\"skipped\":{skipped}}}"));
    event.push_id_unchecked(id);
    event.encode()
}

pub(crate) fn position(id: &str) -> EncodedEvent {
    let mut event = Event::new();
    event.push_id_unchecked(id);
    event.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let id = "00000000000000ab-7";
        let cases = [
            (ResetReason::Stale, "stale"),
            (ResetReason::Unknown, "unknown"),
            (ResetReason::Future, "future"),
            (ResetReason::Epoch, "epoch"),
        ];
        for (reason, text) in cases {
            assert_eq!(
                reset(reason, id).as_bytes(),
                format!("event: reset\ndata: {{\"reason\":\"{text}\"}}\nid: {id}\n\n").as_bytes()
            );
        }
        assert_eq!(
            lagged(12, id).as_bytes(),
            b"event: lagged\ndata: {\"skipped\":12}\nid: 00000000000000ab-7\n\n"
        );
        assert_eq!(position(id).as_bytes(), b"id: 00000000000000ab-7\n\n");
    }
}
