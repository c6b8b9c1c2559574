//! Reading an event stream back as `(type, data, last event id)` triples, with this crate's
//! decoder and with an independent parser (`eventsource-stream`), in any chunking.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{StreamExt, executor::block_on, stream};
use tower_sse::decode::{DecodedEvent, Decoder};

/// An event as a client sees it: (type, data, last event id).
pub type Ev = (String, String, String);

/// An [`Ev`] from string literals.
pub fn ev(event_type: &str, data: &str, id: &str) -> Ev {
    (event_type.into(), data.into(), id.into())
}

/// The [`Ev`] of a decoded event.
pub fn ev_of(event: DecodedEvent) -> Ev {
    (event.event_type, event.data, event.last_event_id)
}

/// The [`Ev`]s of decoded events.
pub fn evs_of(events: &[DecodedEvent]) -> Vec<Ev> {
    events.iter().cloned().map(ev_of).collect()
}

/// What a client knows once a stream has ended.
#[derive(Debug, PartialEq)]
pub struct Decoded {
    /// The events dispatched.
    pub events: Vec<Ev>,
    /// The last event id.
    pub last_event_id: String,
    /// The reconnection time the stream set, if any.
    pub retry: Option<Duration>,
}

/// This crate's decoder over `chunks`, fed one at a time.
pub fn with_decoder(chunks: &[&[u8]]) -> Decoded {
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.push(chunk).expect("within the default limits");
        events.extend(std::iter::from_fn(|| decoder.next_event()).map(ev_of));
    }
    decoder.finish();
    Decoded {
        events,
        last_event_id: decoder.last_event_id().to_owned(),
        retry: decoder.retry(),
    }
}

/// The events `eventsource-stream` reads from `chunks` (see `tests/decode.rs` for where it
/// deviates from the standard).
pub fn with_eventsource_stream(chunks: &[&[u8]]) -> Vec<Ev> {
    let items = chunks
        .iter()
        .map(|c| Ok::<_, Infallible>(Bytes::copy_from_slice(c)));
    block_on(stream::iter(items).eventsource().collect::<Vec<_>>())
        .into_iter()
        .map(|e| {
            let e = e.expect("eventsource-stream error");
            (e.event, e.data, e.id)
        })
        .collect()
}

/// Splits `bytes` at the given points (taken modulo its length + 1), for feeding a decoder in
/// arbitrary chunks.
pub fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points {
        chunks.push(&bytes[start..p]);
        start = p;
    }
    chunks.push(&bytes[start..]);
    chunks
}
