//! The header policy the layer applies to `text/event-stream` responses.

use http::{HeaderMap, HeaderValue, Version, header};

use crate::response::{CONTENT_TYPE, NO, NO_CACHE, X_ACCEL_BUFFERING};

/// Headers that are about one connection hop; HTTP/2 forbids them (RFC 9113 §8.2.2).
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Whether the response is an SSE stream: its media type is `text/event-stream` (any case,
/// any parameters).
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// Whether the content type may stay as it is: no parameter, or only `charset=utf-8`.
fn content_type_is_clean(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut parts = value.split(';');
    parts.next();
    parts.all(|param| {
        let param = param.trim();
        let Some((name, val)) = param.split_once('=') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("charset")
            && val.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    })
}

/// Enforces the SSE header policy on a `text/event-stream` response sent over `version`:
/// - `Content-Type` becomes exactly `text/event-stream` unless it is that with `charset=utf-8`;
/// - `Content-Length` is removed (a stream has no length);
/// - `Cache-Control: no-cache` and `X-Accel-Buffering: no` are added unless the service set
///   its own value;
/// - on HTTP/2 and later, hop-by-hop headers are removed, with those `Connection` names.
pub(crate) fn enforce(headers: &mut HeaderMap, version: Version) {
    // Hop-by-hop headers go first, so that a `Connection` naming a policy header cannot take
    // away the value set below.
    if version >= Version::HTTP_2 {
        // Headers that `Connection` names are hop-by-hop too.
        let named: Vec<header::HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|name| header::HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
    }
    if !headers
        .get(header::CONTENT_TYPE)
        .is_some_and(content_type_is_clean)
    {
        headers.insert(header::CONTENT_TYPE, CONTENT_TYPE);
    }
    headers.remove(header::CONTENT_LENGTH);
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, NO_CACHE);
    }
    if !headers.contains_key(&X_ACCEL_BUFFERING) {
        headers.insert(X_ACCEL_BUFFERING, NO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn detects_event_streams() {
        assert!(is_event_stream(&map(&[(
            "content-type",
            "text/event-stream"
        )])));
        assert!(is_event_stream(&map(&[(
            "content-type",
            "Text/Event-Stream; charset=UTF-8"
        )])));
        assert!(!is_event_stream(&map(&[("content-type", "text/plain")])));
        assert!(!is_event_stream(&map(&[(
            "content-type",
            "text/event-streams"
        )])));
        assert!(!is_event_stream(&map(&[])));
    }

    #[test]
    fn enforces_policy() {
        let mut h = map(&[
            ("content-type", "text/event-stream; charset=latin1"),
            ("content-length", "10"),
            ("connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
        ]);
        enforce(&mut h, Version::HTTP_2);
        assert_eq!(h["content-type"], "text/event-stream");
        assert_eq!(h["cache-control"], "no-cache");
        assert_eq!(h["x-accel-buffering"], "no");
        for name in ["content-length", "connection", "transfer-encoding"] {
            assert!(!h.contains_key(name), "{name}");
        }

        let mut h = map(&[
            ("content-type", "text/event-stream;charset=\"utf-8\""),
            ("cache-control", "no-store"),
            ("connection", "keep-alive"),
        ]);
        enforce(&mut h, Version::HTTP_11);
        assert_eq!(h["content-type"], "text/event-stream;charset=\"utf-8\"");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["connection"], "keep-alive");

        // On HTTP/2, a `Connection` that names policy headers cannot remove them.
        let mut h = map(&[
            ("content-type", "text/event-stream"),
            ("connection", "content-type, cache-control"),
        ]);
        enforce(&mut h, Version::HTTP_2);
        assert_eq!(h["content-type"], "text/event-stream");
        assert_eq!(h["cache-control"], "no-cache");
        assert!(!h.contains_key("connection"));
    }
}
