//! The decoder against the parsing rules of the HTML standard: a table of streams from the
//! standard and its web-platform tests, a straightforward whole-input reference parser, an
//! independent parser (`eventsource-stream`), arbitrary chunking, and HTTP bodies.
//!
//! `eventsource-stream` 0.2.3 deviates from the standard on these inputs, so it is compared
//! only on streams without them (the decoder is checked on them against the reference):
//! - a leading BOM: `"\u{feff}data: a\n\n"` panics (it slices the string at byte 1);
//! - a CR as the very last byte of the stream is never taken as a line end: for
//!   `"data: a\r\r"` and `"data: a\n\r"` it fires nothing (the standard fires `a`);
//! - invalid UTF-8: `b"data: a\xFFb\n\n"` is an error instead of data `"a\u{FFFD}b"`;
//! - `retry: +5` sets the retry time (the standard ignores a value that is not all digits;
//!   its retry is per event and not compared here).

mod support;

use support::decoded::{
    Decoded, Ev, ev, ev_of, split_at_points, with_decoder, with_eventsource_stream,
};

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, executor::block_on, stream};
use http_body_util::{BodyExt, StreamBody};
use proptest::prelude::*;
use tower_sse::decode::{DecodeError, DecodeStreamError, Decoder, decode_stream};

/// Whether `eventsource-stream` is known to follow the standard on this stream (see the
/// module docs).
fn independent_is_reliable(stream: &[u8]) -> bool {
    std::str::from_utf8(stream).is_ok()
        && !stream.starts_with(&[0xEF, 0xBB, 0xBF])
        && stream.last() != Some(&b'\r')
}

/// A reference parser written line for line from the standard, on the whole input at
/// once: decode (lossy), strip one BOM, split lines, interpret.
fn reference(stream: &[u8]) -> Decoded {
    let text = String::from_utf8_lossy(stream);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut line));
            }
            '\n' => lines.push(std::mem::take(&mut line)),
            c => line.push(c),
        }
    }
    // `line` is unterminated: discarded.
    let (mut data, mut event_type, mut id_buffer) = (String::new(), String::new(), String::new());
    let mut last_id = String::new();
    let mut retry = None;
    let mut events = Vec::new();
    for line in lines {
        if line.is_empty() {
            last_id = id_buffer.clone();
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            let t = if event_type.is_empty() {
                "message".to_owned()
            } else {
                event_type.clone()
            };
            events.push((t, std::mem::take(&mut data), last_id.clone()));
            event_type.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        match name {
            "event" => event_type = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => id_buffer = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
    }
    Decoded {
        events,
        last_event_id: last_id,
        retry,
    }
}

/// Checks the decoder on `stream` against the expected events, whole and split at every
/// point, and against both other parsers.
fn check(stream: &[u8], want: &[Ev]) {
    let whole = with_decoder(&[stream]);
    assert_eq!(
        whole.events,
        want,
        "decoder on {:?}",
        String::from_utf8_lossy(stream)
    );
    assert_eq!(
        reference(stream),
        whole,
        "reference on {:?}",
        String::from_utf8_lossy(stream)
    );
    for split in 0..=stream.len() {
        let (a, b) = stream.split_at(split);
        assert_eq!(with_decoder(&[a, b]), whole, "split at {split}");
    }
    if independent_is_reliable(stream) {
        assert_eq!(
            with_eventsource_stream(&[stream]),
            want,
            "independent on {:?}",
            String::from_utf8_lossy(stream)
        );
        // eventsource-stream re-parses an open line on every chunk: split in two only.
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(
                with_eventsource_stream(&[a, b]),
                want,
                "independent split at {split}"
            );
        }
    }
}

#[test]
fn streams_from_the_standard_and_its_tests() {
    let m = |d: &str| ev("message", d, "");
    let table: Vec<(&[u8], Vec<Ev>)> = vec![
        (b"data: This is the first message.\n\ndata: second\ndata: two lines\n\n", vec![
            m("This is the first message."),
            m("second\ntwo lines"),
        ]),
        (b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\n", vec![
            ev("add", "73857293", ""),
            ev("remove", "2153", ""),
        ]),
        (b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n", vec![
            ev("message", "first event", "1"),
            m("second event"),
            m(" third event"),
        ]),
        (b"data\n\ndata\ndata\n\ndata:", vec![m(""), m("\n")]),
        (b"data:test\n\ndata: test\n\n", vec![m("test"), m("test")]),
        // format-bom, format-bom-2
        ("\u{feff}data:1\n\n\u{feff}data:2\n\ndata:3\n\n".as_bytes(), vec![m("1"), m("3")]),
        ("\u{feff}\u{feff}data:1\n\ndata:2\n\ndata:3\n\n".as_bytes(), vec![m("2"), m("3")]),
        // format-newlines
        (b"data:test\r\ndata\ndata:test\r\n\r", vec![m("test\n\ntest")]),
        // format-null-character
        (b"data:\0\n\n\n\n", vec![m("\0")]),
        // format-field-event-empty, format-field-event
        (b"event: \ndata:data\n\n", vec![m("data")]),
        (b"event:test\ndata:x\n\ndata:x\n\n", vec![ev("test", "x", ""), m("x")]),
        // format-field-id, -id-2, -id-null
        (b"id: 1\ndata: a\n\nid\ndata: b\n\n", vec![ev("message", "a", "1"), m("b")]),
        (b"id:1\n\ndata: a\n\nid: 2\n\ndata: b\n\n", vec![ev("message", "a", "1"), ev("message", "b", "2")]),
        (b"id: 1\n\nid: a\0b\ndata: x\n\n", vec![ev("message", "x", "1")]),
        // format-field-parsing, format-field-unknown
        (b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n", vec![
            m("\0\n 2\n1\n3\n\n4"),
        ]),
        (b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n", vec![m("test\n\ntest")]),
        // format-comments
        (b"data:1\r:\0\n:\r\ndata:2\n:\xF0\x9F\x98\x80\rdata:3\n:data:fail\r:\rdata:4\n\n", vec![m("1\n2\n3\n4")]),
        // format-leading-space, format-utf-8, format-data-before-final-empty-line
        (b"data:\x20test\n\n", vec![m("test")]),
        ("data:ok\u{2026}\n\n".as_bytes(), vec![m("ok\u{2026}")]),
        (b"retry:1000\ndata:test1\n\nid:test\ndata:test2", vec![m("test1")]),
        // Line breaks: CR at the end of the stream is a line end.
        (b"data: a\r\r", vec![m("a")]),
        (b"data: a\n\r", vec![m("a")]),
        (b"data: a\n\r\n", vec![m("a")]),
        // Invalid UTF-8.
        (b"data: a\xFFb\n\n", vec![m("a\u{FFFD}b")]),
        (b"event: \xC3\ndata: \xE2\x82\n\n", vec![ev("\u{FFFD}", "\u{FFFD}", "")]),
    ];
    for (stream, want) in table {
        check(stream, &want);
    }
}

#[test]
fn retry_and_last_event_id_after_the_stream() {
    let Decoded {
        last_event_id: id,
        retry,
        ..
    } = with_decoder(&[b"retry: 2500\nid: 5\n\nid: 6\ndata: x\n"]);
    assert_eq!(
        (id.as_str(), retry),
        ("5", Some(Duration::from_millis(2500)))
    );
    assert_eq!(with_decoder(&[b"retry: +5\n"]).retry, None);
}

#[test]
fn an_http_body_decoded_as_a_stream() {
    let frames = [
        &b"\xEF\xBB"[..],
        b"\xBFretry: 100\r",
        b"\nid: 1\nevent: a\ndata: x\xC3",
        b"\xA9\r",
        b"\n\r",
        b"\n: ping\n\nid: 2\ndata: y\n\nid: 3\ndata: lost",
    ]
    .map(|f| Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(f))));
    let body = StreamBody::new(stream::iter(frames));
    let mut events = decode_stream(body.into_data_stream());
    let got: Vec<Ev> = block_on((&mut events).map(|e| ev_of(e.unwrap())).collect());
    assert_eq!(got, vec![ev("a", "x\u{e9}", "1"), ev("message", "y", "2")]);
    assert_eq!(events.decoder().last_event_id(), "2");
    assert_eq!(events.decoder().retry(), Some(Duration::from_millis(100)));
}

#[test]
fn a_stream_over_the_line_limit_ends_with_an_error() {
    let chunks = [Ok::<_, Infallible>(Bytes::from(format!(
        "data: a\n\ndata: {}\n\n",
        "x".repeat(100)
    )))];
    let decoder = Decoder::with_max_line_len(64);
    let items: Vec<_> =
        block_on(tower_sse::decode::DecodeStream::new(stream::iter(chunks), decoder).collect());
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap().data, "a");
    assert!(matches!(
        items[1],
        Err(DecodeStreamError::Decode(DecodeError::LineTooLong {
            limit: 64
        }))
    ));
}

/// Pieces that exercise every rule of the grammar; concatenated at random.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b":".to_vec()),
        Just(b" ".to_vec()),
        Just(b"data".to_vec()),
        Just(b"event".to_vec()),
        Just(b"id".to_vec()),
        Just(b"retry".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"12".to_vec()),
        Just("\u{feff}".as_bytes().to_vec()),
        Just("\u{2028}".as_bytes().to_vec()),
        any::<char>().prop_map(|c| c.to_string().into_bytes()),
        "[a-z ]{1,4}".prop_map(String::into_bytes),
    ]
}

fn arbitrary_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(piece(), 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn arbitrary_streams_in_arbitrary_chunks_match_the_reference(
        stream in arbitrary_stream(),
        garbage in prop::collection::vec(any::<u8>(), 0..6),
        garbage_at in any::<usize>(),
        points in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        // Also with arbitrary bytes (invalid UTF-8, a partial BOM) inserted somewhere.
        let mut with_garbage = stream.clone();
        let at = garbage_at % (stream.len() + 1);
        with_garbage.splice(at..at, garbage);
        for stream in [stream, with_garbage] {
            let want = reference(&stream);
            prop_assert_eq!(&with_decoder(&split_at_points(&stream, &points)), &want);
            if independent_is_reliable(&stream) {
                prop_assert_eq!(with_eventsource_stream(&split_at_points(&stream, &points)), want.events);
            }
        }
    }
}
