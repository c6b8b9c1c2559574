//! The decoder on arbitrary bytes, split into arbitrary chunks, with small limits: it never
//! panics, its memory stays within the limits, every way of feeding it gives the same events
//! and errors, and the result is what a literal reading of the standard gives.
#![no_main]

use arbitrary::Arbitrary;
use futures::{StreamExt, executor::block_on, stream};
use libfuzzer_sys::fuzz_target;
use tower_sse::decode::{DecodeError, DecodeStream, DecodeStreamError, DecodedEvent, Decoder};
use tower_sse_fuzz::{chunks, reference};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Line length limit, taken modulo 4097 (0 to 4 KiB).
    max_line_len: u16,
    /// Event data limit, taken modulo 16385 (0 to 16 KiB).
    max_event_len: u16,
    /// Chunk lengths.
    splits: Vec<u16>,
    /// The stream: the rest of the fuzzer's input, as it is.
    bytes: &'a [u8],
}

/// What one way of feeding the decoder produced.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    events: Vec<DecodedEvent>,
    error: Option<DecodeError>,
    last_event_id: String,
    retry: Option<std::time::Duration>,
}

fn check_bounds(events: &[DecodedEvent], max_line_len: usize, max_event_len: usize) {
    // A decoded line may grow up to three times (each invalid byte becomes U+FFFD).
    let max_field = max_line_len.saturating_mul(3);
    for event in events {
        assert!(event.data.len() <= max_event_len, "{event:?}");
        assert!(event.event_type.len() <= max_field.max("message".len()));
        assert!(event.last_event_id.len() <= max_field);
    }
}

fuzz_target!(|input: Input<'_>| {
    let max_line_len = usize::from(input.max_line_len) % 4097;
    let max_event_len = usize::from(input.max_event_len) % 16385;
    let new_decoder = || Decoder::with_max_line_len(max_line_len).max_event_len(max_event_len);
    let bytes = input.bytes;
    let pieces = chunks(bytes, &input.splits);

    // 1. One chunk, `push`.
    let mut decoder = new_decoder();
    let error = decoder.push(bytes).err();
    let whole = Run {
        events: std::iter::from_fn(|| decoder.next_event()).collect(),
        error,
        last_event_id: decoder.last_event_id().to_owned(),
        retry: decoder.retry(),
    };
    check_bounds(&whole.events, max_line_len, max_event_len);

    // The literal reading of the standard agrees, limits included.
    let literal = reference::parse(bytes, max_line_len, max_event_len);
    assert_eq!(whole.events, literal.events);
    assert_eq!(whole.error, literal.error);
    assert_eq!(whole.last_event_id, literal.last_event_id);
    assert_eq!(whole.retry, literal.retry);

    // 2. Arbitrary chunks, `push`. After an error every push repeats it and adds nothing.
    let mut decoder = new_decoder();
    let mut events = Vec::new();
    let mut error = None;
    for piece in &pieces {
        let result = decoder.push(piece);
        events.extend(std::iter::from_fn(|| decoder.next_event()));
        match (error, result) {
            (None, Err(err)) => error = Some(err),
            (Some(first), result) => assert_eq!(result, Err(first)),
            (None, Ok(())) => {}
        }
    }
    let pushed = Run {
        events,
        error,
        last_event_id: decoder.last_event_id().to_owned(),
        retry: decoder.retry(),
    };
    assert_eq!(pushed, whole);

    // After `finish` the decoder reads a new stream, errors forgotten.
    decoder.finish();
    if max_line_len >= "data: z".len() && max_event_len >= 1 {
        decoder.push(b"data: z\n\n").expect("within the limits");
        let event = decoder.next_event().expect("one event");
        assert_eq!(event.data, "z");
        assert_eq!(event.last_event_id, whole.last_event_id);
        assert_eq!(decoder.next_event(), None);
    }

    // 3. Arbitrary chunks, `decode_next`.
    let mut decoder = new_decoder();
    let mut events = Vec::new();
    let mut error = None;
    'pieces: for piece in &pieces {
        let mut rest: &[u8] = piece;
        loop {
            match decoder.decode_next(&mut rest) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(err) => {
                    assert!(rest.is_empty());
                    error = Some(err);
                    break 'pieces;
                }
            }
        }
    }
    let next = Run {
        events,
        error,
        last_event_id: decoder.last_event_id().to_owned(),
        retry: decoder.retry(),
    };
    assert_eq!(next, whole);

    // 4. Arbitrary chunks through `DecodeStream`; a decode error ends the stream.
    let body = stream::iter(pieces.iter().map(|p| Ok::<_, std::convert::Infallible>(*p)));
    let mut decoded = DecodeStream::new(body, new_decoder());
    let items: Vec<_> = block_on((&mut decoded).collect());
    let mut events = Vec::new();
    let mut error = None;
    for (i, item) in items.iter().enumerate() {
        match item {
            Ok(event) => events.push(event.clone()),
            Err(DecodeStreamError::Decode(err)) => {
                assert_eq!(i, items.len() - 1, "a decode error ends the stream");
                error = Some(*err);
            }
            Err(other) => panic!("no transport error was sent: {other:?}"),
        }
    }
    let streamed = Run {
        events,
        error,
        last_event_id: decoded.decoder().last_event_id().to_owned(),
        retry: decoded.decoder().retry(),
    };
    assert_eq!(streamed, whole);
});
