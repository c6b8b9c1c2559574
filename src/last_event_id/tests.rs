use std::collections::HashSet;

use super::*;

fn err(origin: LastEventIdSource, kind: LastEventIdErrorKind) -> LastEventIdError {
    LastEventIdError::new(origin, kind)
}

#[test]
fn forbidden_characters_are_named() {
    for (c, origin) in [
        ('\0', LastEventIdSource::Header),
        ('\r', LastEventIdSource::Query),
        ('\n', LastEventIdSource::Header),
    ] {
        let value = format!("a{c}b");
        let e = config::check_chars(&value, origin).unwrap_err();
        assert_eq!(e.kind(), LastEventIdErrorKind::InvalidChar(c));
        assert_eq!(e.origin(), origin);
    }
    // Other control characters are legal in an SSE id.
    assert!(config::check_chars("a\tb\u{1}\u{7f}\u{2028}", LastEventIdSource::Header).is_ok());
}

#[test]
fn error_messages_name_the_source_and_reason() {
    use LastEventIdErrorKind::*;
    use LastEventIdSource::*;
    let cases = [
        (
            err(Header, NotUtf8),
            "Last-Event-ID header is not valid UTF-8",
        ),
        (
            err(Query, NotUtf8),
            "Last-Event-ID query parameter is not valid UTF-8",
        ),
        (
            err(
                Header,
                TooLong {
                    len: 2000,
                    max: 1024,
                },
            ),
            "Last-Event-ID header is 2000 bytes long, over the limit of 1024",
        ),
        (
            err(Query, InvalidChar('\0')),
            "Last-Event-ID query parameter contains a NUL character",
        ),
        (
            err(Header, InvalidChar('\r')),
            "Last-Event-ID header contains a carriage return",
        ),
        (
            err(Query, InvalidChar('\n')),
            "Last-Event-ID query parameter contains a line feed",
        ),
        (err(Header, Duplicate), "several Last-Event-ID headers"),
        (
            err(Query, Duplicate),
            "several Last-Event-ID query parameters",
        ),
    ];
    for (e, text) in cases {
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn equality_and_hash_ignore_the_source() {
    let a = LastEventId::new_unchecked("7".into(), LastEventIdSource::Header);
    let b = LastEventId::new_unchecked("7".into(), LastEventIdSource::Query);
    let c = LastEventId::new_unchecked("8".into(), LastEventIdSource::Header);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a, "7");
    assert_eq!(a, *"7");
    assert_eq!(a, String::from("7"));
    let set: HashSet<LastEventId> = [a.clone(), b, c].into_iter().collect();
    assert_eq!(set.len(), 2);
    assert!(set.contains("7"));
    assert_eq!(a.to_string(), "7");
    assert_eq!(&*a, "7");
    assert_eq!(String::from(a.clone()), "7");
    assert_eq!(a.into_string(), "7");
}

#[test]
fn config_builder() {
    let c = LastEventIdConfig::default();
    assert_eq!(c, LastEventIdConfig::new());
    assert_eq!(c.max_len_limit(), 1024);
    assert!(!c.is_strict());
    let c = c.max_len(5).strict(true).query_params(&[]);
    assert_eq!(c.max_len_limit(), 5);
    assert!(c.is_strict());
    let uri: Uri = "/?lastEventId=1".parse().unwrap();
    assert_eq!(c.extract(&HeaderMap::new(), &uri), Ok(None));
}

#[test]
fn parsed_accessors() {
    let id = LastEventId::new_unchecked("x".into(), LastEventIdSource::Query);
    let ok = ParsedLastEventId::new(Ok(Some(id.clone())));
    assert_eq!(ok.last_event_id(), Some(&id));
    assert_eq!(ok.result(), Ok(Some(&id)));
    assert_eq!(ok.clone().into_result(), Ok(Some(id)));

    let none = ParsedLastEventId::from(Ok(None));
    assert_eq!(none.last_event_id(), None);
    assert_eq!(none.result(), Ok(None));

    let e = err(LastEventIdSource::Header, LastEventIdErrorKind::NotUtf8);
    let bad = ParsedLastEventId::new(Err(e));
    assert_eq!(bad.last_event_id(), None);
    assert_eq!(bad.result(), Err(&e));
    assert_eq!(bad.into_result(), Err(e));
}
