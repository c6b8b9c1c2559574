//! Event ids: the in-memory format `<epoch>-<seq>`, and which format a hub uses.
//!
//! `epoch` is the hub's epoch as exactly 16 lowercase hexadecimal digits and `seq` the event's
//! position in the hub-wide sequence in decimal, without leading zeros (`0` means "before the
//! first event"). Parsing accepts only this canonical form, so one position has exactly one
//! spelling. The ring itself only knows the numeric position; formatting lives here so that
//! another backend can bring its own id syntax.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::marker::ResetReason;
use crate::decimal;

/// Digits in the epoch part.
const EPOCH_DIGITS: usize = 16;
/// Longest canonical id: 16 epoch digits, `-`, and the 20 digits of `u64::MAX`.
const MAX_LEN: usize = EPOCH_DIGITS + 1 + 20;

/// How a hub spells its ids: the in-memory `<epoch>-<seq>`, or, with Redis, the stream's own
/// entry ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ids {
    /// `<epoch>-<seq>`, with this epoch.
    Epoch(u64),
    /// Redis stream entry ids, `<ms>-<seq>`; see `redis::entry::StreamId`.
    #[cfg(feature = "redis")]
    Stream,
}

impl Ids {
    /// The id of position `seq`.
    pub(crate) fn format(self, seq: u64) -> String {
        match self {
            Ids::Epoch(epoch) => EventId { epoch, seq }.to_string(),
            #[cfg(feature = "redis")]
            Ids::Stream => super::redis::StreamId::from_position(seq).to_string(),
        }
    }

    /// The position an id names, or why it cannot be resumed.
    pub(crate) fn parse(self, s: &str) -> Result<u64, ResetReason> {
        match self {
            Ids::Epoch(epoch) => match EventId::parse(s) {
                None => Err(ResetReason::Unknown),
                Some(id) if id.epoch != epoch => Err(ResetReason::Epoch),
                Some(id) => Ok(id.seq),
            },
            #[cfg(feature = "redis")]
            Ids::Stream => super::redis::StreamId::parse(s)
                .and_then(super::redis::StreamId::position)
                .ok_or(ResetReason::Unknown),
        }
    }

    /// The longest `id:` line and closing blank line this format can append to an event:
    /// `"id: " + id + "\n\n"`. Admission counts it, so whether an event fits does not depend
    /// on how long the current id happens to be.
    pub(crate) fn max_suffix(self) -> usize {
        match self {
            Ids::Epoch(_) => 4 + MAX_LEN + 2,
            #[cfg(feature = "redis")]
            Ids::Stream => super::redis::MAX_ID_SUFFIX,
        }
    }

    /// Whether a position the rings no longer hold (or do not hold yet) may still be served
    /// from a backend, rather than answered with a `reset` marker at once.
    pub(crate) fn has_backend(self) -> bool {
        match self {
            Ids::Epoch(_) => false,
            #[cfg(feature = "redis")]
            Ids::Stream => true,
        }
    }
}

/// A position in one hub's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EventId {
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
}

impl EventId {
    /// Parses the canonical form; anything else is `None`.
    pub(crate) fn parse(s: &str) -> Option<EventId> {
        let bytes = s.as_bytes();
        if bytes.len() < EPOCH_DIGITS + 2 || bytes.len() > MAX_LEN {
            return None;
        }
        if bytes[EPOCH_DIGITS] != b'-' {
            return None;
        }
        let mut epoch = 0u64;
        for &b in &bytes[..EPOCH_DIGITS] {
            let digit = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            epoch = (epoch << 4) | u64::from(digit);
        }
        let seq = decimal::parse_canonical_u64(&bytes[EPOCH_DIGITS + 1..])?;
        Some(EventId { epoch, seq })
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}-{}", self.epoch, self.seq)
    }
}

/// An epoch that differs between hubs and between process runs: the process's random hash
/// keys mixed with the wall clock, the process id and a per-process counter.
pub(crate) fn random_epoch() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    RandomState::new().hash_one((
        now,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_fixed_width_hex_then_decimal() {
        let id = EventId {
            epoch: 0xab,
            seq: 42,
        };
        assert_eq!(id.to_string(), "00000000000000ab-42");
        let max = EventId {
            epoch: u64::MAX,
            seq: u64::MAX,
        };
        assert_eq!(max.to_string().len(), MAX_LEN);
        assert_eq!(EventId::parse(&max.to_string()), Some(max));
    }

    #[test]
    fn round_trips() {
        for (epoch, seq) in [(0, 0), (1, 1), (0x0123_4567_89ab_cdef, 9_876_543_210)] {
            let id = EventId { epoch, seq };
            assert_eq!(EventId::parse(&id.to_string()), Some(id));
        }
    }

    #[test]
    fn refuses_non_canonical_forms() {
        for s in [
            "",
            "-",
            "42",
            "00000000000000ab-",
            "00000000000000AB-1",  // uppercase hex
            "0000000000000ab-1",   // short epoch
            "000000000000000ab-1", // long epoch
            "00000000000000ab-01", // leading zero
            "00000000000000ab-00",
            "00000000000000ab-\u{661}", // a digit, but not an ASCII one
            "00000000000000ab-+1",
            "00000000000000ab-1 ",
            "00000000000000ab_1",
            "00000000000000ab-18446744073709551616", // u64::MAX + 1
            "00000000000000ab-1-2",
            "00000000000000éb-1",
        ] {
            assert_eq!(EventId::parse(s), None, "{s:?}");
        }
    }

    #[test]
    fn epochs_differ() {
        assert_ne!(random_epoch(), random_epoch());
    }
}
