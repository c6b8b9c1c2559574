//! Encoder round trip: events built from arbitrary fields are encoded, the stream is decoded
//! in arbitrary chunks, and the client must see exactly what was built. A type or id that
//! SSE cannot carry must be refused with an error naming its field.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tower_sse::decode::{DecodedEvent, Decoder, decode_all};
use tower_sse::{Event, EventErrorKind, EventField};
use tower_sse_fuzz::{chunks, normalize_newlines};

/// One builder call.
#[derive(Arbitrary, Debug)]
enum Field {
    Event(String),
    Id(String),
    Data(String),
    Comment(String),
    Retry(u64),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Each event is the sequence of builder calls that makes it.
    events: Vec<Vec<Field>>,
    /// Chunk lengths for the decoder.
    splits: Vec<u16>,
}

/// What a client must make of one built event.
struct Expected {
    event_type: Option<String>,
    id: Option<String>,
    data: Vec<String>,
}

fn has_line_break(value: &str) -> bool {
    value.contains(['\r', '\n'])
}

/// Applies the builder calls, checking every refusal, and returns the event with what the
/// client must see of it.
fn build(fields: &[Field], retry: &mut Option<Duration>) -> (Event, Expected) {
    let mut event = Event::new();
    let mut expected = Expected {
        event_type: None,
        id: None,
        data: Vec::new(),
    };
    for field in fields {
        match field {
            Field::Event(value) => match event.clone().event(value) {
                Ok(next) => {
                    assert!(!has_line_break(value), "event type {value:?} accepted");
                    event = next;
                    expected.event_type = Some(value.clone());
                }
                Err(err) => {
                    assert!(has_line_break(value), "event type {value:?} refused: {err}");
                    assert_eq!(err.field(), EventField::Event);
                    assert_eq!(err.kind(), EventErrorKind::LineBreak);
                    assert!(!err.to_string().is_empty());
                }
            },
            Field::Id(value) => match event.clone().id(value) {
                Ok(next) => {
                    assert!(
                        !has_line_break(value) && !value.contains('\0'),
                        "id {value:?} accepted"
                    );
                    event = next;
                    expected.id = Some(value.clone());
                }
                Err(err) => {
                    assert_eq!(err.field(), EventField::Id, "{err}");
                    if has_line_break(value) {
                        assert_eq!(err.kind(), EventErrorKind::LineBreak);
                    } else {
                        assert!(value.contains('\0'), "id {value:?} refused: {err}");
                        assert_eq!(err.kind(), EventErrorKind::Nul);
                    }
                    assert!(!err.to_string().is_empty());
                }
            },
            Field::Data(value) => {
                event = event.data(value);
                expected.data.push(normalize_newlines(value));
            }
            Field::Comment(value) => event = event.comment(value),
            Field::Retry(millis) => {
                let delay = Duration::from_millis(*millis);
                event = event.retry(delay);
                *retry = Some(delay);
            }
        }
    }
    (event, expected)
}

fuzz_target!(|input: Input| {
    let mut stream = Vec::new();
    let mut want = Vec::new();
    let mut last_event_id = String::new();
    let mut retry = None;
    for fields in &input.events {
        let (event, expected) = build(fields, &mut retry);
        let unclosed = event.as_bytes().to_vec();
        let encoded = event.encode();
        // Encoding only adds the closing blank line, and never writes a CR.
        assert_eq!(&encoded.as_bytes()[..unclosed.len()], &unclosed[..]);
        assert_eq!(&encoded.as_bytes()[unclosed.len()..], b"\n");
        assert!(!encoded.as_bytes().contains(&b'\r'));
        stream.extend_from_slice(encoded.as_bytes());

        if let Some(id) = expected.id {
            last_event_id = id;
        }
        // No data line: the id is committed, but nothing fires.
        if !expected.data.is_empty() {
            want.push(DecodedEvent {
                event_type: expected
                    .event_type
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "message".to_owned()),
                data: expected.data.join("\n"),
                last_event_id: last_event_id.clone(),
            });
        }
    }

    // In arbitrary chunks.
    let mut decoder = Decoder::new();
    let mut got = Vec::new();
    for chunk in chunks(&stream, &input.splits) {
        decoder.push(chunk).expect("within the default limits");
        got.extend(std::iter::from_fn(|| decoder.next_event()));
    }
    assert_eq!(got, want);
    assert_eq!(decoder.last_event_id(), last_event_id);
    assert_eq!(decoder.retry(), retry);
    assert!(!decoder.finish(), "the stream ends at an event boundary");

    // In one piece.
    assert_eq!(
        decode_all(&stream).expect("within the default limits"),
        want
    );
});
