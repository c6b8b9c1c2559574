//! The encoder byte for byte: what tricky data, comments, types and ids become on the wire,
//! and proof that two independent parsers (this crate's `decode::Decoder` and the
//! `eventsource-stream` crate) read back exactly the intended events, in any chunking.
//!
//! `eventsource-stream` 0.2.3 deviates from the standard on a leading BOM (it panics), a CR
//! as the last byte of a stream, invalid UTF-8 and `retry: +5` (see `tests/decode.rs`). The
//! encoder never writes any of those, so here it is compared on every input.

mod support;

use support::decoded::{Decoded, Ev, ev, split_at_points, with_decoder, with_eventsource_stream};

use std::time::Duration;

use proptest::prelude::*;
use tower_sse::{Event, EventError, EventErrorKind, EventField};

fn wire(event: Event) -> Vec<u8> {
    event.encode().into_bytes().to_vec()
}

/// What SSE can carry of a data string: CRLF and CR become LF.
fn normalise(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Both parsers read `bytes` (whole and in `chunk`-byte pieces) as exactly `want`.
fn assert_decodes(bytes: &[u8], want: &[Ev]) {
    let shown = String::from_utf8_lossy(bytes);
    // eventsource-stream re-parses an open line on every chunk: big inputs in big chunks.
    let sizes = if bytes.len() > 4096 {
        vec![bytes.len(), 8192]
    } else {
        vec![bytes.len().max(1), 7, 1]
    };
    for chunk in sizes {
        let chunks: Vec<&[u8]> = bytes.chunks(chunk).collect();
        assert_eq!(
            with_decoder(&chunks).events,
            want,
            "decoder, {chunk}-byte chunks: {shown:?}"
        );
        assert_eq!(
            with_eventsource_stream(&chunks),
            want,
            "eventsource-stream, {chunk}-byte chunks: {shown:?}"
        );
    }
}

/// Tricky data strings and their exact encoding.
const DATA: &[(&str, &str)] = &[
    ("", "data:\n\n"),
    ("x", "data: x\n\n"),
    ("\r", "data:\ndata:\n\n"),
    ("\n", "data:\ndata:\n\n"),
    ("\r\n", "data:\ndata:\n\n"),
    ("a\rb", "data: a\ndata: b\n\n"),
    ("a\nb", "data: a\ndata: b\n\n"),
    ("a\r\nb", "data: a\ndata: b\n\n"),
    ("a\n\rb", "data: a\ndata:\ndata: b\n\n"),
    ("a\r\r\nb", "data: a\ndata:\ndata: b\n\n"),
    ("a\n", "data: a\ndata:\n\n"),
    ("a\r\n", "data: a\ndata:\n\n"),
    ("\n\n", "data:\ndata:\ndata:\n\n"),
    (" lead", "data:  lead\n\n"),
    ("  two", "data:   two\n\n"),
    ("trail ", "data: trail \n\n"),
    (" ", "data:  \n\n"),
    (": x", "data: : x\n\n"),
    (":", "data: :\n\n"),
    ("data: x", "data: data: x\n\n"),
    ("a\u{2028}b", "data: a\u{2028}b\n\n"),
    ("a\u{2029}b", "data: a\u{2029}b\n\n"),
    ("a\u{85}b", "data: a\u{85}b\n\n"),
    ("a\u{b}\u{c}b", "data: a\u{b}\u{c}b\n\n"),
    ("\u{feff}bom", "data: \u{feff}bom\n\n"),
    ("a\0b", "data: a\0b\n\n"),
    ("\0", "data: \0\n\n"),
    ("é€😀", "data: é€😀\n\n"),
    (
        "x\nevent: admin\ndata: y",
        "data: x\ndata: event: admin\ndata: data: y\n\n",
    ),
    ("x\revent: admin", "data: x\ndata: event: admin\n\n"),
    ("x\r\nid: 9", "data: x\ndata: id: 9\n\n"),
    (
        "\n\nid: 9\n\n",
        "data:\ndata:\ndata: id: 9\ndata:\ndata:\n\n",
    ),
    (
        "x\n\ndata: injected\n\n",
        "data: x\ndata:\ndata: data: injected\ndata:\ndata:\n\n",
    ),
    (
        "\r\rretry: 1\r\r",
        "data:\ndata:\ndata: retry: 1\ndata:\ndata:\n\n",
    ),
];

#[test]
fn data_is_encoded_exactly() {
    for (data, bytes) in DATA {
        assert_eq!(
            String::from_utf8(wire(Event::new().data(data))).unwrap(),
            *bytes,
            "data {data:?}"
        );
    }
}

#[test]
fn data_decodes_to_exactly_one_event_with_that_data() {
    for (data, _) in DATA {
        let bytes = wire(Event::new().data(data));
        assert_decodes(&bytes, &[ev("message", &normalise(data), "")]);
        // Under a type and an id, between two other events: nothing leaks into them.
        let mut stream = wire(Event::new().data("before"));
        stream.extend(wire(
            Event::new().event("t").unwrap().id("7").unwrap().data(data),
        ));
        stream.extend(wire(Event::new().data("after")));
        assert_decodes(
            &stream,
            &[
                ev("message", "before", ""),
                ev("t", &normalise(data), "7"),
                ev("message", "after", "7"),
            ],
        );
    }
}

#[test]
fn large_data_is_one_event() {
    let data = "x".repeat(100_000);
    let bytes = wire(Event::new().data(&data));
    assert_eq!(bytes.len(), 100_000 + "data: \n\n".len());
    assert!(bytes.starts_with(b"data: xxx") && bytes.ends_with(b"xxx\n\n"));
    assert_decodes(&bytes, &[ev("message", &data, "")]);

    let data = "0123456789abcdefghi\n".repeat(5_000);
    let bytes = wire(Event::new().data(&data));
    assert_eq!(
        bytes.len(),
        5_000 * "data: 0123456789abcdefghi\n".len() + "data:\n\n".len()
    );
    assert_decodes(&bytes, &[ev("message", &data, "")]);
}

/// Tricky comments and their exact encoding.
const COMMENTS: &[(&str, &str)] = &[
    ("", ":\n\n"),
    ("x", ": x\n\n"),
    (" x", ":  x\n\n"),
    (": x", ": : x\n\n"),
    ("a\rb", ": a\n: b\n\n"),
    ("a\r\nb", ": a\n: b\n\n"),
    ("a\n", ": a\n:\n\n"),
    ("x\ndata: y", ": x\n: data: y\n\n"),
    ("x\revent: admin", ": x\n: event: admin\n\n"),
    ("\n\nid: 9\n\n", ":\n:\n: id: 9\n:\n:\n\n"),
    ("\r\ndata: z\r\n\r\n", ":\n: data: z\n:\n:\n\n"),
    ("a\u{2028}b\u{85}", ": a\u{2028}b\u{85}\n\n"),
    ("\0", ": \0\n\n"),
];

#[test]
fn comments_are_encoded_exactly_and_fire_nothing() {
    for (comment, bytes) in COMMENTS {
        let encoded = wire(Event::new().comment(comment));
        assert_eq!(
            String::from_utf8(encoded.clone()).unwrap(),
            *bytes,
            "comment {comment:?}"
        );
        assert_decodes(&encoded, &[]);
        let decoded = with_decoder(&[&encoded]);
        assert_eq!((decoded.last_event_id.as_str(), decoded.retry), ("", None));
        // A comment inside an event and before the next one changes nothing.
        let mut stream = wire(Event::new().comment(comment).data("d").comment(comment));
        stream.extend(&encoded);
        stream.extend(wire(Event::new().data("after")));
        assert_decodes(
            &stream,
            &[ev("message", "d", ""), ev("message", "after", "")],
        );
    }
}

#[test]
fn types_and_ids_with_line_breaks_or_nul_are_refused_naming_the_field() {
    use EventErrorKind::{LineBreak, Nul};
    let event = |v: &str| Event::new().event(v);
    let id = |v: &str| Event::new().id(v);
    let refused: Vec<(Result<Event, EventError>, EventField, EventErrorKind)> = vec![
        (event("a\nb"), EventField::Event, LineBreak),
        (event("a\rb"), EventField::Event, LineBreak),
        (event("\r\n"), EventField::Event, LineBreak),
        (event("x\nevent: admin"), EventField::Event, LineBreak),
        (event("x\n\ndata: y"), EventField::Event, LineBreak),
        (event("x\n"), EventField::Event, LineBreak),
        (id("1\n"), EventField::Id, LineBreak),
        (id("1\r"), EventField::Id, LineBreak),
        (id("\r\nid: 2"), EventField::Id, LineBreak),
        (id("\0"), EventField::Id, Nul),
        (id("a\0b"), EventField::Id, Nul),
        (id("1\n\0"), EventField::Id, LineBreak),
    ];
    for (result, field, kind) in refused {
        let err = result.unwrap_err();
        assert_eq!((err.field(), err.kind()), (field, kind));
        let name = match field {
            EventField::Event => "event type",
            _ => "event id",
        };
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn accepted_types_and_ids_round_trip() {
    let types: &[(&str, &str, &str)] = &[
        // (type, wire line, decoded type)
        ("a b:c", "event: a b:c\n", "a b:c"),
        ("a\0", "event: a\0\n", "a\0"),
        ("", "event: \n", "message"),
        (" lead", "event:  lead\n", " lead"),
        ("\u{2028}", "event: \u{2028}\n", "\u{2028}"),
        ("é", "event: é\n", "é"),
        ("message", "event: message\n", "message"),
    ];
    for (t, line, decoded) in types {
        let bytes = wire(Event::new().event(t).unwrap().data("d"));
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!("{line}data: d\n\n")
        );
        assert_decodes(&bytes, &[ev(decoded, "d", "")]);
    }
    let ids: &[(&str, &str)] = &[
        ("42", "id: 42\n"),
        ("", "id: \n"),
        (" sp", "id:  sp\n"),
        ("a:b", "id: a:b\n"),
        ("\u{2028}", "id: \u{2028}\n"),
        ("é", "id: é\n"),
    ];
    for (id, line) in ids {
        let bytes = wire(Event::new().id(id).unwrap().data("d"));
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!("{line}data: d\n\n")
        );
        assert_decodes(&bytes, &[ev("message", "d", id)]);
    }
    // An empty id resets the last event id.
    let mut stream = wire(Event::new().id("1").unwrap().data("a"));
    stream.extend(wire(Event::new().id("").unwrap().data("b")));
    assert_decodes(&stream, &[ev("message", "a", "1"), ev("message", "b", "")]);
    // An id-only event fires nothing but moves the id.
    let mut stream = wire(Event::new().id("5").unwrap());
    assert_eq!(stream, b"id: 5\n\n");
    stream.extend(wire(Event::new().data("x")));
    assert_decodes(&stream, &[ev("message", "x", "5")]);
}

#[test]
fn retry_is_whole_milliseconds_and_read_back() {
    let bytes = wire(Event::new().retry(Duration::from_micros(2_500_999)));
    assert_eq!(bytes, b"retry: 2500\n\n");
    let decoded = with_decoder(&[&bytes]);
    assert_eq!(decoded.retry, Some(Duration::from_millis(2500)));
    assert!(decoded.events.is_empty());
    assert_decodes(&bytes, &[]);
}

// ---- properties ----

/// One builder call.
#[derive(Clone, Debug)]
enum Op {
    Data(String),
    Comment(String),
    Type(String),
    Id(String),
    Retry(u64),
}

/// Any string, with line breaks, field-like text and blank lines made likely.
fn free_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<char>().prop_map(String::from),
        Just("\r".to_owned()),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just(" ".to_owned()),
        Just(":".to_owned()),
        Just("\u{2028}".to_owned()),
        Just("\u{85}".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("\0".to_owned()),
        Just("data: x".to_owned()),
        Just("event: admin".to_owned()),
        Just("id: 9".to_owned()),
        Just("retry: 1".to_owned()),
        Just("\n\n".to_owned()),
        "[a-z]{1,5}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => free_text().prop_map(Op::Data),
        1 => free_text().prop_map(Op::Comment),
        1 => r"[^\r\n]{0,8}".prop_map(Op::Type),
        1 => r"[^\r\n\x00]{0,8}".prop_map(Op::Id),
        1 => (0u64..10_000_000).prop_map(Op::Retry),
    ]
}

/// Builds the event from its builder calls.
fn build(ops: &[Op]) -> Event {
    ops.iter().fold(Event::new(), |event, op| match op {
        Op::Data(s) => event.data(s),
        Op::Comment(s) => event.comment(s),
        Op::Type(s) => event.event(s).expect("type without CR/LF"),
        Op::Id(s) => event.id(s).expect("id without CR/LF/NUL"),
        Op::Retry(ms) => event.retry(Duration::from_millis(*ms)),
    })
}

/// What a client must see after `events`: the events fired, the last id, the retry.
fn expected(events: &[Vec<Op>]) -> Decoded {
    let mut last_event_id = String::new();
    let mut retry = None;
    let mut fired = Vec::new();
    for ops in events {
        let mut data: Option<String> = None;
        let mut event_type = String::new();
        for op in ops {
            match op {
                Op::Data(s) => {
                    let s = normalise(s);
                    data = Some(match data {
                        None => s,
                        Some(d) => d + "\n" + &s,
                    });
                }
                Op::Comment(_) => {}
                Op::Type(t) => event_type.clone_from(t),
                Op::Id(id) => last_event_id.clone_from(id),
                Op::Retry(ms) => retry = Some(Duration::from_millis(*ms)),
            }
        }
        if let Some(data) = data {
            let t = if event_type.is_empty() {
                "message".to_owned()
            } else {
                event_type
            };
            fired.push((t, data, last_event_id.clone()));
        }
    }
    Decoded {
        events: fired,
        last_event_id,
        retry,
    }
}

/// The number of wire lines an op writes (a line per CRLF/CR/LF-separated piece).
fn lines_of(op: &Op) -> usize {
    match op {
        Op::Data(s) | Op::Comment(s) => normalise(s).split('\n').count(),
        Op::Type(_) | Op::Id(_) | Op::Retry(_) => 1,
    }
}

proptest! {
    /// Arbitrary events, encoded, split anywhere, read back by both parsers.
    #[test]
    fn events_round_trip_through_both_parsers_in_any_chunking(
        events in prop::collection::vec(prop::collection::vec(op(), 0..6), 1..6),
        points in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let bytes: Vec<u8> = events.iter().flat_map(|ops| wire(build(ops))).collect();
        let want = expected(&events);
        let chunks = split_at_points(&bytes, &points);
        let ours = with_decoder(&chunks);
        prop_assert_eq!(&ours.events, &want.events);
        prop_assert_eq!(&ours.last_event_id, &want.last_event_id);
        prop_assert_eq!(ours.retry, want.retry);
        prop_assert_eq!(with_eventsource_stream(&chunks), want.events);
    }

    /// Whatever the data and comments hold, the wire has exactly the intended lines, each
    /// behind its own prefix, and a client reads exactly the one intended event.
    #[test]
    fn data_and_comments_never_make_another_field_or_event(
        parts in prop::collection::vec((any::<bool>(), free_text()), 1..6),
    ) {
        let mut ops = vec![Op::Type("t".into()), Op::Id("i".into())];
        ops.extend(parts.into_iter().map(|(is_data, s)| if is_data { Op::Data(s) } else { Op::Comment(s) }));
        let bytes = wire(build(&ops));

        // Line shape: LF only, one blank line at the very end, every line prefixed.
        prop_assert!(!bytes.contains(&b'\r'));
        prop_assert!(bytes.ends_with(b"\n\n"));
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text[..text.len() - 2].split('\n').collect();
        prop_assert_eq!(lines.len(), ops.iter().map(lines_of).sum::<usize>());
        let mut lines = lines.into_iter();
        for op in &ops {
            for _ in 0..lines_of(op) {
                let line = lines.next().unwrap();
                let ok = match op {
                    Op::Data(_) => line == "data:" || line.starts_with("data: "),
                    Op::Comment(_) => line == ":" || line.starts_with(": "),
                    Op::Type(_) => line == "event: t",
                    Op::Id(_) => line == "id: i",
                    Op::Retry(_) => false,
                };
                prop_assert!(ok, "{:?} wrote {:?}", op, line);
            }
        }

        let want = expected(std::slice::from_ref(&ops));
        let has_data = ops.iter().any(|op| matches!(op, Op::Data(_)));
        prop_assert_eq!(want.events.len(), usize::from(has_data));
        let ours = with_decoder(&[&bytes]);
        prop_assert_eq!(&ours.events, &want.events);
        prop_assert_eq!(ours.last_event_id.as_str(), "i");
        prop_assert_eq!(ours.retry, None);
        prop_assert_eq!(with_eventsource_stream(&[&bytes]), want.events);
    }
}
