//! `Last-Event-ID` parsing of arbitrary header bytes and query strings, lenient and strict:
//! never a panic, every accepted value is non-empty, within the limit, UTF-8 and free of
//! NUL, CR and LF, and the outcome matches a plain reading of the documented rules.
#![no_main]

use arbitrary::Arbitrary;
use http::Uri;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_sse::last_event_id::{
    LastEventId, LastEventIdConfig, LastEventIdError, LastEventIdErrorKind, LastEventIdSource,
};
use tower_sse_fuzz::form;

#[derive(Arbitrary, Debug)]
struct Header<'a> {
    /// 0: `last-event-id`, 1: `Last-Event-ID`, else another header.
    name: u8,
    value: &'a [u8],
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    headers: Vec<Header<'a>>,
    /// `None`: the default limit; else the limit modulo 64.
    max_len: Option<u8>,
    /// Which query parameter names to configure.
    names: u8,
    /// Whether `query` is a whole request target rather than what follows `/events?`.
    whole_uri: bool,
    /// The rest of the fuzzer's input, as it is.
    query: &'a [u8],
}

const NAME_SETS: [&[&str]; 4] = [
    LastEventIdConfig::DEFAULT_QUERY_PARAMS,
    &["cursor"],
    &[""],
    &[],
];

/// A value as the documented rules see it: where it came from, its bytes, and whether
/// another non-empty value came from the same place.
struct Candidate {
    origin: LastEventIdSource,
    bytes: Vec<u8>,
    duplicate: bool,
}

/// The reasons the documented rules give to refuse `candidate` (empty if it is valid).
fn reasons(candidate: &Candidate, max_len: usize, strict: bool) -> Vec<LastEventIdErrorKind> {
    let bytes = &candidate.bytes;
    let mut reasons = Vec::new();
    if strict && candidate.duplicate {
        reasons.push(LastEventIdErrorKind::Duplicate);
    }
    if bytes.len() > max_len {
        reasons.push(LastEventIdErrorKind::TooLong {
            len: bytes.len(),
            max: max_len,
        });
    }
    if std::str::from_utf8(bytes).is_err() {
        reasons.push(LastEventIdErrorKind::NotUtf8);
    }
    for c in ['\0', '\r', '\n'] {
        if bytes.contains(&(c as u8)) {
            reasons.push(LastEventIdErrorKind::InvalidChar(c));
        }
    }
    reasons
}

/// The value the rules pick: the first non-empty `Last-Event-ID` header, else the first
/// non-empty query parameter with a configured name.
fn candidate(headers: &HeaderMap, uri: &Uri, names: &[&str]) -> Option<Candidate> {
    let values: Vec<&HeaderValue> = headers
        .get_all("last-event-id")
        .iter()
        .filter(|v| !v.is_empty())
        .collect();
    if let Some(first) = values.first() {
        return Some(Candidate {
            origin: LastEventIdSource::Header,
            bytes: first.as_bytes().to_vec(),
            duplicate: values.len() > 1,
        });
    }
    let query = uri.query()?;
    let values: Vec<Vec<u8>> = form::pairs(query.as_bytes())
        .into_iter()
        .filter(|(name, value)| !value.is_empty() && names.iter().any(|n| n.as_bytes() == name))
        .map(|(_, value)| value)
        .collect();
    // The same pick as the `form_urlencoded` crate makes, up to its U+FFFD replacement.
    let lossy = form_urlencoded::parse(query.as_bytes())
        .find(|(name, value)| !value.is_empty() && names.contains(&&**name));
    if let (Some(ours), Some((_, theirs))) = (values.first(), &lossy)
        && let Ok(ours) = std::str::from_utf8(ours)
        && !theirs.contains('\u{FFFD}')
    {
        assert_eq!(ours, theirs);
    }
    let first = values.first()?.clone();
    Some(Candidate {
        origin: LastEventIdSource::Query,
        bytes: first,
        duplicate: values.len() > 1,
    })
}

fn check(
    result: &Result<Option<LastEventId>, LastEventIdError>,
    expected: Option<&Candidate>,
    max_len: usize,
    strict: bool,
) {
    if let Ok(Some(id)) = result {
        let value = id.as_str();
        assert!(!value.is_empty());
        assert!(value.len() <= max_len, "{} > {max_len}", value.len());
        assert!(std::str::from_utf8(value.as_bytes()).is_ok());
        assert!(!value.contains(['\0', '\r', '\n']), "{value:?}");
    }
    match (result, expected) {
        (Ok(None), None) => {}
        (Ok(None), Some(candidate)) => {
            assert!(!strict, "strict mode gave None for an invalid value");
            assert!(
                !reasons(candidate, max_len, false).is_empty(),
                "valid value dropped"
            );
        }
        (Ok(Some(id)), Some(candidate)) => {
            assert_eq!(id.as_bytes(), &candidate.bytes[..]);
            assert_eq!(id.source(), candidate.origin);
            assert!(reasons(candidate, max_len, strict).is_empty());
        }
        (Err(err), Some(candidate)) => {
            assert!(strict, "lenient mode returned {err}");
            assert_eq!(err.origin(), candidate.origin);
            let reasons = reasons(candidate, max_len, true);
            assert!(reasons.contains(&err.kind()), "{err:?} not in {reasons:?}");
            assert!(!err.to_string().is_empty());
        }
        (result, None) => panic!("no value, yet {result:?}"),
    }
}

fuzz_target!(|input: Input<'_>| {
    let mut headers = HeaderMap::new();
    for header in &input.headers {
        let name = match header.name {
            0 => HeaderName::from_static("last-event-id"),
            1 => match HeaderName::from_bytes(b"Last-Event-ID") {
                Ok(name) => name,
                Err(_) => unreachable!("a valid header name"),
            },
            _ => HeaderName::from_static("x-last-event-id"),
        };
        if let Ok(value) = HeaderValue::from_bytes(header.value) {
            headers.append(name, value);
        }
    }
    let target = if input.whole_uri {
        input.query.to_vec()
    } else {
        [&b"/events?"[..], input.query].concat()
    };
    let uri = Uri::try_from(target).unwrap_or_default();

    let names = NAME_SETS[usize::from(input.names) % NAME_SETS.len()];
    let mut config = LastEventIdConfig::new().query_params(names);
    if let Some(max_len) = input.max_len {
        config = config.max_len(usize::from(max_len) % 64);
    }
    let max_len = config.max_len_limit();
    let expected = candidate(&headers, &uri, names);

    let lenient = config.strict(false).extract(&headers, &uri);
    check(&lenient, expected.as_ref(), max_len, false);
    let strict = config.strict(true).extract(&headers, &uri);
    check(&strict, expected.as_ref(), max_len, true);

    // Strict accepts only what lenient accepts.
    if let Ok(Some(id)) = &strict {
        assert_eq!(lenient.as_ref().ok().and_then(Option::as_ref), Some(id));
    }

    // The default configuration, through the shorthand and through a request.
    if input.max_len.is_none() && input.names == 0 {
        assert_eq!(
            LastEventId::extract(&headers, &uri),
            lenient.clone().ok().flatten()
        );
        let mut request = http::Request::new(());
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        assert_eq!(LastEventIdConfig::new().from_request(&request), lenient);
    }
});
