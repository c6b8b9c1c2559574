use super::*;

fn ev(event_type: &str, data: &str, last_event_id: &str) -> DecodedEvent {
    DecodedEvent {
        event_type: event_type.into(),
        data: data.into(),
        last_event_id: last_event_id.into(),
    }
}

fn msg(data: &str) -> DecodedEvent {
    ev("message", data, "")
}

/// Decodes `chunks` with `push` and `finish`; returns the events and the decoder.
fn push_all(decoder: &mut Decoder, chunks: &[&[u8]]) -> Vec<DecodedEvent> {
    for chunk in chunks {
        decoder.push(chunk).unwrap();
    }
    decoder.finish();
    std::iter::from_fn(|| decoder.next_event()).collect()
}

/// Decodes `input` whole, split at every single point, and byte by byte, asserting that all
/// give the same events, last event id and retry; returns the events.
fn decode(input: &[u8]) -> Vec<DecodedEvent> {
    let mut whole = Decoder::new();
    let events = push_all(&mut whole, &[input]);
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        let mut decoder = Decoder::new();
        assert_eq!(push_all(&mut decoder, &[a, b]), events, "split at {split}");
        assert_eq!(decoder.last_event_id(), whole.last_event_id());
        assert_eq!(decoder.retry(), whole.retry());
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let mut decoder = Decoder::new();
    assert_eq!(push_all(&mut decoder, &bytes), events, "byte by byte");
    assert_eq!(decoder.last_event_id(), whole.last_event_id());
    // The pull style gives the same events.
    let mut decoder = Decoder::new();
    let mut rest = input;
    let mut pulled = Vec::new();
    while let Some(event) = decoder.decode_next(&mut rest).unwrap() {
        pulled.push(event);
    }
    assert_eq!(pulled, events);
    events
}

fn last_id_after(input: &[u8]) -> String {
    let mut decoder = Decoder::new();
    push_all(&mut decoder, &[input]);
    decoder.last_event_id().to_owned()
}

fn retry_after(input: &[u8]) -> Option<Duration> {
    let mut decoder = Decoder::new();
    push_all(&mut decoder, &[input]);
    decoder.retry()
}

#[test]
fn lines_end_at_crlf_lf_or_cr() {
    let want = vec![msg("a\nb\nc")];
    assert_eq!(decode(b"data: a\ndata: b\ndata: c\n\n"), want);
    assert_eq!(decode(b"data: a\r\ndata: b\r\ndata: c\r\n\r\n"), want);
    assert_eq!(decode(b"data: a\rdata: b\rdata: c\r\r"), want);
    assert_eq!(decode(b"data: a\rdata: b\r\ndata: c\n\r\n"), want);
    // LF CR is two line breaks: a blank line in between.
    assert_eq!(decode(b"data: a\n\rdata: b\n\n"), vec![msg("a"), msg("b")]);
    // CR CR LF: a line break, then a blank line.
    assert_eq!(
        decode(b"data: a\r\r\ndata: b\n\n"),
        vec![msg("a"), msg("b")]
    );
}

#[test]
fn a_crlf_split_across_chunks_is_one_line_break() {
    let mut decoder = Decoder::new();
    let events = push_all(
        &mut decoder,
        &[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"],
    );
    assert_eq!(events, vec![msg("a\nb")]);
    // A CR at the end of a chunk ends its line at once: the event fires before the next
    // chunk arrives.
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\r\r").unwrap();
    assert_eq!(decoder.next_event(), Some(msg("a")));
    decoder.push(b"\ndata: b\n\n").unwrap();
    assert_eq!(decoder.next_event(), Some(msg("b")));
}

#[test]
fn other_line_separators_are_ordinary_characters() {
    let input = "data: a\u{2028}b\u{2029}c\u{85}d\u{b}e\u{c}f\n\n";
    assert_eq!(
        decode(input.as_bytes()),
        vec![msg("a\u{2028}b\u{2029}c\u{85}d\u{b}e\u{c}f")]
    );
}

#[test]
fn one_leading_bom_is_stripped() {
    assert_eq!(decode(b"\xEF\xBB\xBFdata: a\n\n"), vec![msg("a")]);
    // A second BOM is part of the first line, whose field name is then not `data`.
    assert_eq!(
        decode(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n"),
        vec![msg("b")]
    );
    // A BOM later in the stream is an ordinary character.
    assert_eq!(
        decode("data: \u{feff}a\n\n".as_bytes()),
        vec![msg("\u{feff}a")]
    );
    // Bytes that start like a BOM but are not one start the first line.
    assert_eq!(decode(b"\xEF\xBBdata: a\n\ndata: b\n\n"), vec![msg("b")]);
    assert_eq!(decode(b"\xEF\ndata: b\n\n"), vec![msg("b")]);
    assert_eq!(decode(b"\xEF\xBB\n\xEF\xBB\xBFdata: b\n\n"), vec![]);
    // Only a BOM: nothing.
    assert_eq!(decode(b"\xEF\xBB\xBF"), vec![]);
}

#[test]
fn utf8_is_decoded_across_chunks_and_invalid_bytes_become_replacement_characters() {
    assert_eq!(decode("data: é€😀\n\n".as_bytes()), vec![msg("é€😀")]);
    assert_eq!(decode(b"data: a\xFFb\n\n"), vec![msg("a\u{FFFD}b")]);
    // A truncated sequence is one U+FFFD (maximal subpart), and the line break after it
    // still ends the line.
    assert_eq!(
        decode(b"data: \xF0\x9F\x98\ndata: x\n\n"),
        vec![msg("\u{FFFD}\nx")]
    );
    assert_eq!(
        decode(b"data: \xE2\x82\xE2\x82\xAC\n\n"),
        vec![msg("\u{FFFD}€")]
    );
    // A lone continuation byte, an overlong encoding and a surrogate.
    assert_eq!(decode(b"data: \x80\n\n"), vec![msg("\u{FFFD}")]);
    assert_eq!(decode(b"data: \xC0\xAF\n\n"), vec![msg("\u{FFFD}\u{FFFD}")]);
    assert_eq!(
        decode(b"data: \xED\xA0\x80\n\n"),
        vec![msg("\u{FFFD}\u{FFFD}\u{FFFD}")]
    );
    // Invalid bytes in a field name make it unknown.
    assert_eq!(decode(b"dat\xFF: a\n\n"), vec![]);
    // In an id and a type.
    assert_eq!(
        decode(b"event: \xFF\nid: \xFE\ndata\n\n"),
        vec![ev("\u{FFFD}", "", "\u{FFFD}")]
    );
}

#[test]
fn comments_are_ignored() {
    assert_eq!(decode(b": hello\n\n"), vec![]);
    assert_eq!(decode(b":\n:data: x\n\n"), vec![]);
    assert_eq!(
        decode(b"data: a\n: data: b\ndata: c\n\n"),
        vec![msg("a\nc")]
    );
}

#[test]
fn field_and_value_split_at_the_first_colon_minus_one_space() {
    assert_eq!(decode(b"data:a\n\n"), vec![msg("a")]);
    assert_eq!(decode(b"data: a\n\n"), vec![msg("a")]);
    assert_eq!(decode(b"data:  a\n\n"), vec![msg(" a")]);
    assert_eq!(decode(b"data: a: b:c\n\n"), vec![msg("a: b:c")]);
    assert_eq!(decode(b"data:\ta\n\n"), vec![msg("\ta")]);
    assert_eq!(decode(b"data: \n\n"), vec![msg("")]);
    // A space before the colon is part of the name.
    assert_eq!(decode(b"data : a\n\n"), vec![]);
}

#[test]
fn a_line_without_colon_is_a_field_with_empty_value() {
    assert_eq!(decode(b"data\n\n"), vec![msg("")]);
    assert_eq!(decode(b"data\ndata\n\n"), vec![msg("\n")]);
    assert_eq!(decode(b"event: x\nevent\ndata: a\n\n"), vec![msg("a")]);
    assert_eq!(decode(b"id: 1\n\nid\ndata: a\n\n"), vec![msg("a")]);
}

#[test]
fn field_names_are_case_sensitive_and_unknown_ones_ignored() {
    assert_eq!(decode(b"Data: a\nDATA: b\nevent: x\n\n"), vec![]);
    assert_eq!(
        decode(b"foo: bar\ndata: a\nEvent: x\nID: 3\n\n"),
        vec![msg("a")]
    );
}

#[test]
fn event_sets_the_type_and_the_last_one_wins() {
    assert_eq!(
        decode(b"event: a\nevent: b c:d\ndata: x\n\n"),
        vec![ev("b c:d", "x", "")]
    );
    // The type does not carry over to the next event.
    assert_eq!(
        decode(b"event: a\ndata: x\n\ndata: y\n\n"),
        vec![ev("a", "x", ""), msg("y")]
    );
    // An empty type means "message".
    assert_eq!(decode(b"event:\ndata: x\n\n"), vec![msg("x")]);
    // NUL is fine in a type.
    assert_eq!(decode(b"event: a\0\ndata: x\n\n"), vec![ev("a\0", "x", "")]);
}

#[test]
fn an_event_without_data_fires_nothing_but_resets_the_type() {
    assert_eq!(decode(b"event: a\n\ndata: x\n\n"), vec![msg("x")]);
    assert_eq!(decode(b"event: a\nretry: 5\n: c\n\n"), vec![]);
}

#[test]
fn empty_data_fires_and_one_trailing_newline_is_removed() {
    assert_eq!(decode(b"data:\n\n"), vec![msg("")]);
    assert_eq!(decode(b"data: a\ndata:\n\n"), vec![msg("a\n")]);
    assert_eq!(decode(b"data:\ndata:\ndata:\n\n"), vec![msg("\n\n")]);
    assert_eq!(decode(b"data: \0\n\n"), vec![msg("\0")]);
}

#[test]
fn the_id_is_committed_at_every_blank_line() {
    assert_eq!(
        decode(b"id: 1\ndata: a\n\ndata: b\n\n"),
        vec![ev("message", "a", "1"), ev("message", "b", "1")]
    );
    // An id-only block fires nothing but moves the id.
    assert_eq!(
        decode(b"id: 7\n\ndata: a\n\n"),
        vec![ev("message", "a", "7")]
    );
    assert_eq!(last_id_after(b"id: 7\n\n"), "7");
    // An empty id resets it.
    assert_eq!(decode(b"id: 1\n\nid:\ndata: a\n\n"), vec![msg("a")]);
    assert_eq!(decode(b"id: 1\n\nid\ndata: a\n\n"), vec![msg("a")]);
    // The last id line wins, whatever its position in the event.
    assert_eq!(
        decode(b"id: 1\ndata: a\nid: 2\n\n"),
        vec![ev("message", "a", "2")]
    );
    // One leading space is removed, the rest is kept.
    assert_eq!(
        decode(b"id:  x y \ndata: a\n\n"),
        vec![ev("message", "a", " x y ")]
    );
}

#[test]
fn an_id_with_nul_is_ignored() {
    assert_eq!(
        decode(b"id: 1\n\nid: 2\0\ndata: a\n\n"),
        vec![ev("message", "a", "1")]
    );
    assert_eq!(
        decode(b"id: 1\nid: \0\ndata: a\n\n"),
        vec![ev("message", "a", "1")]
    );
}

#[test]
fn the_id_of_an_unfinished_event_is_not_committed() {
    assert_eq!(last_id_after(b"id: 1\n\nid: 2\ndata: a\n"), "1");
    assert_eq!(last_id_after(b"id: 1\n\nid: 2\ndata: a"), "1");
    assert_eq!(last_id_after(b"id: 1\n\nid: 2"), "1");
    assert_eq!(decode(b"id: 1\n\nid: 2\ndata: a\n"), vec![]);
    // But it is visible after the blank line, even when it arrives in its own chunk.
    let mut decoder = Decoder::new();
    decoder.push(b"id: 1\n\nid: 2\n").unwrap();
    assert_eq!(decoder.last_event_id(), "1");
    decoder.push(b"\n").unwrap();
    assert_eq!(decoder.last_event_id(), "2");
}

#[test]
fn retry_applies_only_to_ascii_digits() {
    assert_eq!(
        retry_after(b"retry: 1500\n"),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(retry_after(b"retry:0\n"), Some(Duration::ZERO));
    assert_eq!(retry_after(b"retry: 007\n"), Some(Duration::from_millis(7)));
    for bad in [
        &b"retry:\n"[..],
        b"retry: \n",
        b"retry: 1.5\n",
        b"retry: -1\n",
        b"retry: +1\n",
        b"retry: 1 \n",
        b"retry:  1\n",
        b"retry: 1e3\n",
        b"retry: \xD9\xA1\n",
        b"retry: 99999999999999999999999\n",
        b"retry: 18446744073709551616\n", // u64::MAX + 1
        b"Retry: 1\n",
    ] {
        assert_eq!(retry_after(bad), None, "{}", String::from_utf8_lossy(bad));
        // An ignored value keeps the previous one.
        let mut input = b"retry: 9\n".to_vec();
        input.extend_from_slice(bad);
        assert_eq!(retry_after(&input), Some(Duration::from_millis(9)));
    }
    assert_eq!(
        retry_after(b"retry: 18446744073709551615\n"),
        Some(Duration::from_millis(u64::MAX))
    );
    // It applies at once, without a blank line, and does not fire an event.
    assert_eq!(decode(b"retry: 10\n\n"), vec![]);
    let mut decoder = Decoder::new();
    decoder.push(b"retry: 10\n").unwrap();
    assert_eq!(decoder.retry(), Some(Duration::from_millis(10)));
    // But not before its line has ended.
    let mut decoder = Decoder::new();
    decoder.push(b"retry: 10").unwrap();
    assert_eq!(decoder.retry(), None);
}

#[test]
fn an_unterminated_event_is_dropped_at_the_end() {
    assert_eq!(decode(b"data: a\n\ndata: b\n"), vec![msg("a")]);
    assert_eq!(decode(b"data: a\n\ndata: b"), vec![msg("a")]);
    assert_eq!(decode(b"data: a"), vec![]);
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\n").unwrap();
    assert!(decoder.finish());
    assert_eq!(decoder.next_event(), None);
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\n\n").unwrap();
    assert!(!decoder.finish());
    assert_eq!(decoder.next_event(), Some(msg("a")));
}

#[test]
fn finish_prepares_for_the_next_stream_keeping_id_and_retry() {
    let mut decoder = Decoder::new();
    decoder
        .push(b"retry: 5\nid: 1\n\nid: 2\nevent: x\ndata: half")
        .unwrap();
    assert!(decoder.finish());
    decoder.push(b"\xEF\xBB\xBFdata: b\n\n").unwrap();
    assert_eq!(decoder.next_event(), Some(ev("message", "b", "1")));
    assert_eq!(decoder.retry(), Some(Duration::from_millis(5)));
    // A CR that ended the last stream does not swallow a LF starting the next one.
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\r\r").unwrap();
    decoder.finish();
    decoder.push(b"\ndata: b\n\n").unwrap();
    assert_eq!(decoder.next_event(), Some(msg("a")));
    assert_eq!(decoder.next_event(), Some(msg("b")));
}

#[test]
fn a_known_last_event_id_is_carried_by_events_without_id() {
    let mut decoder = Decoder::new().last_event_id_from("41");
    decoder.push(b"data: a\n\nid: 42\ndata: b\n\n").unwrap();
    assert_eq!(decoder.next_event(), Some(ev("message", "a", "41")));
    assert_eq!(decoder.next_event(), Some(ev("message", "b", "42")));
    decoder.reset();
    assert_eq!(decoder.last_event_id(), "");
}

#[test]
fn the_spec_examples() {
    assert_eq!(
        decode(b"data: YHOO\ndata: +2\ndata: 10\n\n"),
        vec![msg("YHOO\n+2\n10")]
    );
    assert_eq!(
        decode(
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n\
              data:  third event\n"
        ),
        vec![ev("message", "first event", "1"), msg("second event")]
    );
    assert_eq!(
        decode(b"data\n\ndata\ndata\n\ndata:"),
        vec![msg(""), msg("\n")]
    );
    assert_eq!(
        decode(b"data:test\n\ndata: test\n\n"),
        vec![msg("test"), msg("test")]
    );
}

#[test]
fn a_line_over_the_limit_is_an_error_not_a_buffer() {
    // Exactly the limit is fine, in one chunk or many.
    let mut decoder = Decoder::with_max_line_len(7);
    decoder.push(b"data: a\n\ndata:").unwrap();
    decoder.push(b" b\n\n").unwrap();
    assert_eq!(decoder.next_event(), Some(msg("a")));
    assert_eq!(decoder.next_event(), Some(msg("b")));
    // One more byte is not, whether the line is complete or still open.
    let err = DecodeError::LineTooLong { limit: 7 };
    let mut decoder = Decoder::with_max_line_len(7);
    assert_eq!(decoder.push(b"data: a\n\ndata: bc\n\n"), Err(err));
    assert_eq!(decoder.next_event(), Some(msg("a")));
    assert_eq!(decoder.next_event(), None);
    let mut decoder = Decoder::with_max_line_len(7);
    decoder.push(b"data:").unwrap();
    assert_eq!(decoder.push(b" bc"), Err(err));
    let mut decoder = Decoder::with_max_line_len(7);
    assert_eq!(decoder.push(b"data: bc"), Err(err));
    // A line break counts for nothing; a BOM counts for nothing.
    let mut decoder = Decoder::with_max_line_len(7);
    decoder.push(b"\xEF\xBB\xBFdata: a\r\n\r\n").unwrap();
    assert_eq!(decoder.next_event(), Some(msg("a")));
    // The error sticks, for push and decode_next, until finish.
    let mut decoder = Decoder::with_max_line_len(7);
    assert_eq!(decoder.push(b"0123456789"), Err(err));
    assert_eq!(decoder.push(b"\n\ndata: a\n\n"), Err(err));
    assert_eq!(decoder.push(b""), Err(err));
    assert_eq!(decoder.decode_next(&mut &b""[..]), Err(err));
    let mut input = &b"data: a\n\n"[..];
    assert_eq!(decoder.decode_next(&mut input), Err(err));
    assert!(input.is_empty());
    assert_eq!(decoder.next_event(), None);
    decoder.finish();
    decoder.push(b"data: a\n\n").unwrap();
    assert_eq!(decoder.next_event(), Some(msg("a")));
    // Zero allows only blank lines.
    let mut decoder = Decoder::with_max_line_len(0);
    decoder.push(b"\n\r\n\r").unwrap();
    assert_eq!(
        decoder.push(b"d"),
        Err(DecodeError::LineTooLong { limit: 0 })
    );
}

#[test]
fn the_buffer_of_an_open_line_stays_within_the_limit() {
    let mut decoder = Decoder::with_max_line_len(1000);
    for _ in 0..100 {
        decoder.push(&[b'x'; 10]).unwrap();
    }
    assert!(decoder.line.len() <= 1000);
    assert!(decoder.push(b"x").is_err());
    assert!(decoder.line.len() <= 1000);
}

#[test]
fn event_data_over_the_limit_is_an_error() {
    let mut decoder = Decoder::new().max_event_len(5);
    // "ab\ncd" is five bytes: fine.
    decoder.push(b"data: ab\ndata: cd\n\n").unwrap();
    assert_eq!(decoder.next_event(), Some(msg("ab\ncd")));
    let err = DecodeError::EventTooLarge { limit: 5 };
    assert_eq!(decoder.push(b"data: ab\ndata: cde\n\n"), Err(err));
    assert_eq!(decoder.next_event(), None);
    assert!(decoder.data.is_empty());
    // Replacement characters count as decoded: one invalid byte is three bytes of data.
    let mut decoder = Decoder::new().max_event_len(5);
    assert_eq!(decoder.push(b"data: \xFF\xFF\n\n"), Err(err));
    assert_eq!(
        err.to_string(),
        "SSE event data larger than the limit of 5 bytes"
    );
}

#[test]
fn long_lines_over_many_chunks_and_a_large_event() {
    let mut decoder = Decoder::new();
    let line = "y".repeat(300_000);
    let input = format!("data: {line}\ndata: {line}\n\n");
    for chunk in input.as_bytes().chunks(1000) {
        decoder.push(chunk).unwrap();
    }
    let event = decoder.next_event().unwrap();
    assert_eq!(event.data.len(), 600_001);
    // The line buffer is released after a long line.
    assert!(decoder.line.capacity() <= KEEP_LINE_CAPACITY);
}

#[test]
fn push_and_decode_next_mixed_keep_the_order() {
    let mut decoder = Decoder::new();
    decoder.push(b"data: 1\n\ndata: 2\n\n").unwrap();
    let mut input = &b"data: 3\n\n"[..];
    assert_eq!(decoder.decode_next(&mut input).unwrap(), Some(msg("1")));
    assert_eq!(decoder.decode_next(&mut input).unwrap(), Some(msg("2")));
    assert_eq!(decoder.decode_next(&mut input).unwrap(), Some(msg("3")));
    assert_eq!(decoder.decode_next(&mut input).unwrap(), None);
}

#[test]
fn decode_next_stops_right_after_the_event() {
    let mut decoder = Decoder::new();
    let mut input = &b"data: 1\r\n\r\ndata: 2\r\n\r\n"[..];
    assert_eq!(decoder.decode_next(&mut input).unwrap(), Some(msg("1")));
    assert_eq!(input, b"data: 2\r\n\r\n");
    assert_eq!(decoder.decode_next(&mut input).unwrap(), Some(msg("2")));
    assert!(input.is_empty());
    // A CR closing the event at the end of the input: the LF may follow in the next input.
    let mut input = &b"data: 3\r\r"[..];
    assert_eq!(decoder.decode_next(&mut input).unwrap(), Some(msg("3")));
    assert!(input.is_empty());
    let mut input = &b"\ndata: 4\n\n"[..];
    assert_eq!(decoder.decode_next(&mut input).unwrap(), Some(msg("4")));
}

#[test]
fn arbitrary_bytes_never_panic_and_any_split_agrees() {
    // A small deterministic generator over the bytes that matter to the grammar.
    let alphabet: &[&[u8]] = &[
        b"\r",
        b"\n",
        b":",
        b" ",
        b"data",
        b"event",
        b"id",
        b"retry",
        b"1",
        b"x",
        b"\0",
        b"\xEF",
        b"\xBB",
        b"\xBF",
        b"\xFF",
        "é".as_bytes(),
        &"😀".as_bytes()[..2],
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..300 {
        let mut input = Vec::new();
        for _ in 0..24 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            input.extend_from_slice(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        decode(&input);
    }
}
