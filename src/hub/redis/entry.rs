//! Stream entries: entry ids and ring positions, the entry format, and reading Redis replies.
//!
//! An entry of the hub's stream has two fields: `topic`, the topic name (UTF-8), and `event`,
//! the event's encoded lines without any `id:` line added by the hub and without the closing
//! blank line (exactly [`Event::as_bytes`](crate::Event::as_bytes)). Each instance appends
//! `id: <entry id>` and the blank line when the entry arrives, so an event is encoded once
//! per instance. Anything else found in the stream is skipped.

use std::fmt;
use std::io::Write;

use ::redis::Value;
use bytes::Bytes;

use crate::EncodedEvent;
use crate::decimal::parse_canonical_u64;

/// The field holding the topic name.
pub(crate) const TOPIC_FIELD: &[u8] = b"topic";
/// The field holding the event's lines.
pub(crate) const EVENT_FIELD: &[u8] = b"event";

/// Bits of a position that hold the entry id's sequence part.
const SEQ_BITS: u32 = 20;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// Milliseconds from here on do not fit a position.
const MS_LIMIT: u64 = 1 << (64 - SEQ_BITS);
/// The longest suffix the hub appends to an entry's lines: `id: `, the longest id a position
/// can spell (14 digits, `-`, 7 digits), a line break and the blank line.
pub(crate) const MAX_ID_SUFFIX: usize = 4 + 14 + 1 + 7 + 2;
/// Longest canonical entry id: two `u64`s in decimal and a dash.
const MAX_ID_LEN: usize = 20 + 1 + 20;

/// A Redis stream entry id, `<ms>-<seq>`.
///
/// Within the hub an id is a ring position: `ms << 20 | seq`, which keeps the order of ids.
/// Ids whose sequence part reaches 2^20 (a million entries in one millisecond) or whose
/// millisecond part reaches 2^44 (the year 2527) have no position; the hub skips such entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StreamId {
    ms: u64,
    seq: u64,
}

impl StreamId {
    /// `0-0`, before every entry.
    pub(crate) const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    /// Parses the canonical form (decimal parts, no sign, no leading zeros); anything else is
    /// `None`.
    pub(crate) fn parse(s: &str) -> Option<StreamId> {
        Self::parse_bytes(s.as_bytes())
    }

    /// [`parse`](StreamId::parse) for an id in bytes, as Redis replies hold it.
    pub(crate) fn parse_bytes(bytes: &[u8]) -> Option<StreamId> {
        if bytes.len() > MAX_ID_LEN {
            return None;
        }
        let dash = bytes.iter().position(|&b| b == b'-')?;
        Some(StreamId {
            ms: parse_canonical_u64(&bytes[..dash])?,
            seq: parse_canonical_u64(&bytes[dash + 1..])?,
        })
    }

    /// The ring position of this id, if it has one.
    pub(crate) fn position(self) -> Option<u64> {
        (self.ms < MS_LIMIT && self.seq <= SEQ_MASK).then_some((self.ms << SEQ_BITS) | self.seq)
    }

    /// The largest position at or before this id.
    pub(crate) fn floor_position(self) -> u64 {
        if self.ms >= MS_LIMIT {
            u64::MAX
        } else {
            (self.ms << SEQ_BITS) | self.seq.min(SEQ_MASK)
        }
    }

    /// The id of a position.
    pub(crate) fn from_position(pos: u64) -> StreamId {
        StreamId {
            ms: pos >> SEQ_BITS,
            seq: pos & SEQ_MASK,
        }
    }

    /// The smallest id after this one.
    pub(crate) fn next(self) -> StreamId {
        match self.seq.checked_add(1) {
            Some(seq) => StreamId { ms: self.ms, seq },
            None => StreamId {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry as Redis returned it.
#[derive(Debug)]
pub(crate) struct RawEntry {
    pub(crate) id: StreamId,
    pub(crate) fields: Value,
}

/// The entries of an `XRANGE` reply (or of one stream in an `XREAD` reply).
pub(crate) fn parse_entries(reply: Value) -> Result<Vec<RawEntry>, &'static str> {
    let Value::Array(items) = reply else {
        return match reply {
            Value::Nil => Ok(Vec::new()),
            _ => Err("entries are not an array"),
        };
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(pair) = item else {
                return Err("an entry is not an array");
            };
            let mut pair = pair.into_iter();
            let (Some(id), Some(fields)) = (pair.next(), pair.next()) else {
                return Err("an entry lacks its id or fields");
            };
            let id = as_bytes(&id)
                .and_then(StreamId::parse_bytes)
                .ok_or("an entry id is not <ms>-<seq>")?;
            Ok(RawEntry { id, fields })
        })
        .collect()
}

/// The entries of an `XREAD` reply for one stream: `nil` on timeout, else (RESP2) an array of
/// `[key, entries]` pairs or (RESP3) a map from key to entries.
pub(crate) fn parse_xread(reply: Value) -> Result<Vec<RawEntry>, &'static str> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Array(streams) => match streams.into_iter().next() {
            None => Ok(Vec::new()),
            Some(Value::Array(pair)) => match pair.into_iter().nth(1) {
                Some(entries) => parse_entries(entries),
                None => Err("a stream in the reply lacks its entries"),
            },
            Some(_) => Err("a stream in the reply is not an array"),
        },
        Value::Map(streams) => match streams.into_iter().next() {
            None => Ok(Vec::new()),
            Some((_, entries)) => parse_entries(entries),
        },
        _ => Err("unexpected XREAD reply"),
    }
}

/// The topic and the lines of an entry of the hub's format; otherwise why it is not one.
pub(crate) fn decode(fields: Value) -> Result<(String, Vec<u8>), &'static str> {
    let pairs = field_pairs(fields)?;
    let mut topic = None;
    let mut lines = None;
    for (name, value) in pairs {
        let slot = match as_bytes(&name) {
            Some(TOPIC_FIELD) => &mut topic,
            Some(EVENT_FIELD) => &mut lines,
            // Fields added by a later version are ignored.
            _ => continue,
        };
        if slot.is_some() {
            return Err("a field appears twice");
        }
        *slot = Some(into_bytes(value).ok_or("a field value is not a string")?);
    }
    let topic = topic.ok_or("no `topic` field")?;
    let lines = lines.ok_or("no `event` field")?;
    let topic = String::from_utf8(topic).map_err(|_| "the topic is not UTF-8")?;
    check_lines(&lines)?;
    Ok((topic, lines))
}

/// Checks that `lines` are whole event lines that cannot end the event or start another one:
/// UTF-8, LF-terminated, no CR, no blank line.
pub(crate) fn check_lines(lines: &[u8]) -> Result<(), &'static str> {
    if lines.is_empty() {
        return Ok(());
    }
    if std::str::from_utf8(lines).is_err() {
        return Err("the event is not UTF-8");
    }
    if lines.last() != Some(&b'\n') {
        return Err("the event does not end with a line break");
    }
    if memchr::memchr(b'\r', lines).is_some() {
        return Err("the event holds a carriage return");
    }
    if lines[0] == b'\n' || memchr::memmem::find(lines, b"\n\n").is_some() {
        return Err("the event holds a blank line");
    }
    Ok(())
}

/// The complete event: the entry's lines, then `id: <id>` and the closing blank line. One
/// allocation at most: the lines' buffer is reused.
pub(crate) fn encode(mut lines: Vec<u8>, id: StreamId) -> EncodedEvent {
    lines.reserve_exact(MAX_ID_SUFFIX);
    // Writing to a Vec cannot fail.
    let _ = write!(lines, "id: {id}\n\n");
    EncodedEvent::from_bytes_unchecked(Bytes::from(lines))
}

/// What `XINFO STREAM` says about the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamInfo {
    pub(crate) length: u64,
    /// Entries ever added (Redis 7 and later).
    pub(crate) entries_added: Option<u64>,
    pub(crate) last_generated: StreamId,
    /// The largest id removed by `XDEL` (Redis 7 and later); `0-0` when none.
    pub(crate) max_deleted: Option<StreamId>,
    pub(crate) first: Option<StreamId>,
}

impl StreamInfo {
    /// A stream that does not exist.
    pub(crate) const MISSING: StreamInfo = StreamInfo {
        length: 0,
        entries_added: Some(0),
        last_generated: StreamId::ZERO,
        max_deleted: None,
        first: None,
    };

    /// Reads the reply: a flat array of names and values (RESP2) or a map (RESP3). `None`
    /// when it is neither (an odd number of names and values included) or does not say
    /// `last-generated-id`.
    pub(crate) fn parse(reply: Value) -> Option<StreamInfo> {
        let pairs = field_pairs(reply).ok()?;
        let mut info = StreamInfo {
            length: 0,
            entries_added: None,
            last_generated: StreamId::ZERO,
            max_deleted: None,
            first: None,
        };
        let mut has_last = false;
        for (name, value) in &pairs {
            match as_bytes(name)? {
                b"length" => info.length = as_u64(value)?,
                b"entries-added" => info.entries_added = Some(as_u64(value)?),
                b"last-generated-id" => {
                    info.last_generated = as_bytes(value).and_then(StreamId::parse_bytes)?;
                    has_last = true;
                }
                b"max-deleted-entry-id" => {
                    info.max_deleted = as_bytes(value).and_then(StreamId::parse_bytes);
                }
                b"first-entry" => {
                    info.first = match value {
                        Value::Array(entry) => entry
                            .first()
                            .and_then(as_bytes)
                            .and_then(StreamId::parse_bytes),
                        _ => None,
                    };
                }
                _ => {}
            }
        }
        has_last.then_some(info)
    }

    /// Whether an entry after `id` may have been removed from the stream (trimmed by `MAXLEN`
    /// or deleted), so that reading after `id` could silently miss it. Conservative: `true`
    /// unless the stream proves otherwise.
    pub(crate) fn may_have_lost_after(&self, id: StreamId) -> bool {
        let deleted = self.max_deleted.filter(|d| *d != StreamId::ZERO);
        let removed_any = match self.entries_added {
            Some(added) => added > self.length || deleted.is_some(),
            None => true,
        };
        if !removed_any {
            return false;
        }
        if deleted.is_some_and(|d| d > id) {
            return true;
        }
        // Trimming removes the oldest entries: every trimmed entry is before the first kept.
        match self.first {
            Some(first) => id.next() < first,
            None => id < self.last_generated,
        }
    }
}

/// The name/value pairs of a reply that holds them: a flat array of names and values
/// (RESP2) or a map (RESP3). Names are not checked, and a name may appear twice.
fn field_pairs(reply: Value) -> Result<Vec<(Value, Value)>, &'static str> {
    match reply {
        Value::Array(flat) => {
            if flat.len() % 2 != 0 {
                return Err("odd number of field values");
            }
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
                pairs.push((name, value));
            }
            Ok(pairs)
        }
        Value::Map(pairs) => Ok(pairs),
        _ => Err("fields are not an array"),
    }
}

/// The bytes of a string reply, whichever kind of string it is.
fn as_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

/// The bytes of a string reply, moved out of it.
fn into_bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.into_bytes()),
        Value::VerbatimString { text, .. } => Some(text.into_bytes()),
        _ => None,
    }
}

/// A count in a reply: an integer, or a string of canonical decimal digits.
fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => as_bytes(other).and_then(parse_canonical_u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn ids_map_to_positions_in_order() {
        let ids = [
            "0-0",
            "0-1",
            "1-0",
            "1-1048575",
            "1712345678901-0",
            "1712345678901-7",
        ];
        let mut last = None;
        for text in ids {
            let id = StreamId::parse(text).unwrap();
            assert_eq!(id.to_string(), text);
            let pos = id.position().unwrap();
            assert!(last < Some(pos), "{text}");
            last = Some(pos);
            assert_eq!(StreamId::from_position(pos), id);
            assert_eq!(id.floor_position(), pos);
        }
        let big = StreamId::parse("5-1048576").unwrap();
        assert_eq!(big.position(), None);
        assert_eq!(
            big.floor_position(),
            StreamId::parse("5-1048575").unwrap().position().unwrap()
        );
        let far = StreamId::parse("17592186044416-0").unwrap();
        assert_eq!(far.position(), None);
        assert_eq!(far.floor_position(), u64::MAX);
        let longest = StreamId::from_position(u64::MAX).to_string();
        assert_eq!(format!("id: {longest}\n\n").len(), MAX_ID_SUFFIX);
    }

    #[test]
    fn only_canonical_ids_parse() {
        for text in [
            "",
            "-",
            "1",
            "1-",
            "-1",
            "01-1",
            "1-01",
            "+1-1",
            "1-1-1",
            "1 -1",
            "a-1",
            "18446744073709551616-0",
            "1-18446744073709551616",
            "é-1",
            "1-\u{661}",
            "00-0",
        ] {
            assert_eq!(StreamId::parse(text), None, "{text:?}");
        }
        assert_eq!(
            StreamId::parse("18446744073709551615-18446744073709551615").map(|id| id.next()),
            Some(StreamId {
                ms: u64::MAX,
                seq: 0
            }),
        );
    }

    #[test]
    fn entries_decode_or_say_why_not() {
        let good = Value::Array(vec![
            bulk(b"topic"),
            bulk(b"room"),
            bulk(b"event"),
            bulk(b"event: msg\ndata: hi\n"),
            bulk(b"later"),
            bulk(b"ignored"),
        ]);
        let (topic, lines) = decode(good).unwrap();
        assert_eq!(topic, "room");
        let event = encode(lines, StreamId::parse("12-3").unwrap());
        assert_eq!(event.as_bytes(), b"event: msg\ndata: hi\nid: 12-3\n\n");
        let empty = Value::Array(vec![bulk(b"topic"), bulk(b"t"), bulk(b"event"), bulk(b"")]);
        let (_, lines) = decode(empty).unwrap();
        assert_eq!(encode(lines, StreamId::ZERO).as_bytes(), b"id: 0-0\n\n");

        let cases: [(&[&[u8]], &str); 10] = [
            (&[b"foo", b"bar"], "no `topic` field"),
            (&[b"topic", b"t"], "no `event` field"),
            (&[b"topic", b"t", b"event"], "odd number of field values"),
            (
                &[b"topic", b"t", b"topic", b"u", b"event", b""],
                "a field appears twice",
            ),
            (
                &[b"topic", b"\xff", b"event", b""],
                "the topic is not UTF-8",
            ),
            (
                &[b"topic", b"t", b"event", b"data: \xff\n"],
                "the event is not UTF-8",
            ),
            (
                &[b"topic", b"t", b"event", b"data: x"],
                "the event does not end with a line break",
            ),
            (
                &[b"topic", b"t", b"event", b"data: x\r\n"],
                "the event holds a carriage return",
            ),
            (
                &[b"topic", b"t", b"event", b"data: x\n\ndata: y\n"],
                "the event holds a blank line",
            ),
            (
                &[b"topic", b"t", b"event", b"\ndata: y\n"],
                "the event holds a blank line",
            ),
        ];
        for (fields, why) in cases {
            let value = Value::Array(fields.iter().map(|f| bulk(f)).collect());
            assert_eq!(decode(value).unwrap_err(), why);
        }
        assert!(decode(Value::Int(3)).is_err());
        let not_string = Value::Array(vec![
            bulk(b"topic"),
            Value::Int(1),
            bulk(b"event"),
            bulk(b""),
        ]);
        assert!(decode(not_string).is_err());
    }

    #[test]
    fn replies_parse_in_both_protocols() {
        let entry = |id: &[u8], topic: &[u8]| {
            Value::Array(vec![
                bulk(id),
                Value::Array(vec![bulk(b"topic"), bulk(topic), bulk(b"event"), bulk(b"")]),
            ])
        };
        let entries = Value::Array(vec![entry(b"1-1", b"a"), entry(b"2-0", b"b")]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk(b"key"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk(b"key"), entries)]);
        for reply in [resp2, resp3] {
            let got = parse_xread(reply).unwrap();
            assert_eq!(
                got.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
                ["1-1", "2-0"]
            );
        }
        assert!(parse_xread(Value::Nil).unwrap().is_empty());
        assert!(parse_entries(Value::Array(vec![Value::Int(1)])).is_err());
        assert!(parse_entries(Value::Array(vec![entry(b"x", b"a")])).is_err());
        assert!(parse_xread(Value::Okay).is_err());
    }

    #[test]
    fn stream_info_tells_when_entries_may_be_gone() {
        let reply = |added: i64, length: i64, first: &[u8], deleted: &[u8]| {
            Value::Array(vec![
                bulk(b"length"),
                Value::Int(length),
                bulk(b"last-generated-id"),
                bulk(b"9-0"),
                bulk(b"max-deleted-entry-id"),
                bulk(deleted),
                bulk(b"entries-added"),
                Value::Int(added),
                bulk(b"first-entry"),
                Value::Array(vec![bulk(first), Value::Array(vec![])]),
            ])
        };
        let id = |s: &str| StreamId::parse(s).unwrap();
        // Nothing ever removed: even an id before the first entry loses nothing.
        let whole = StreamInfo::parse(reply(5, 5, b"2-0", b"0-0")).unwrap();
        assert_eq!(whole.last_generated, id("9-0"));
        assert!(!whole.may_have_lost_after(id("0-0")));
        // Trimmed: an id before the first kept entry may have lost something.
        let trimmed = StreamInfo::parse(reply(9, 5, b"4-0", b"0-0")).unwrap();
        assert!(trimmed.may_have_lost_after(id("2-5")));
        assert!(!trimmed.may_have_lost_after(id("3-18446744073709551615")));
        assert!(!trimmed.may_have_lost_after(id("4-0")));
        assert!(!trimmed.may_have_lost_after(id("8-0")));
        // Deleted after the id.
        let deleted = StreamInfo::parse(reply(5, 4, b"2-0", b"7-0")).unwrap();
        assert!(deleted.may_have_lost_after(id("6-0")));
        assert!(!deleted.may_have_lost_after(id("7-0")));
        // Emptied entirely.
        let mut empty = trimmed;
        empty.first = None;
        assert!(empty.may_have_lost_after(id("8-0")));
        assert!(!empty.may_have_lost_after(id("9-0")));
        assert!(!StreamInfo::MISSING.may_have_lost_after(StreamId::ZERO));
        assert_eq!(StreamInfo::parse(Value::Array(vec![])), None);
        let odd = Value::Array(vec![
            bulk(b"last-generated-id"),
            bulk(b"3-1"),
            bulk(b"length"),
        ]);
        assert_eq!(StreamInfo::parse(odd), None);
        let resp3 = Value::Map(vec![
            (bulk(b"last-generated-id"), bulk(b"3-1")),
            (bulk(b"first-entry"), Value::Nil),
        ]);
        let info = StreamInfo::parse(resp3).unwrap();
        assert_eq!((info.last_generated, info.first), (id("3-1"), None));
    }
}
