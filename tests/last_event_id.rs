//! Reading `Last-Event-ID` from the header and the query, and the axum extractor.

use std::io;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use http::header::{HeaderMap, HeaderValue};
use http::{Request, StatusCode, Uri};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::ServiceExt;
use tower_sse::last_event_id::{
    LastEventId, LastEventIdConfig, LastEventIdError, LastEventIdErrorKind, LastEventIdSource,
    ParsedLastEventId,
};

// ---------------------------------------------------------------------------------------
// Helpers

fn headers(values: &[&[u8]]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for v in values {
        map.append("last-event-id", HeaderValue::from_bytes(v).unwrap());
    }
    map
}

fn uri(s: &str) -> Uri {
    s.parse().unwrap()
}

fn lenient() -> LastEventIdConfig {
    LastEventIdConfig::new()
}

fn strict() -> LastEventIdConfig {
    LastEventIdConfig::new().strict(true)
}

/// Extracts with `config`; `Ok(Some((value, source)))` for a found id.
fn run(
    config: LastEventIdConfig,
    hdrs: &[&[u8]],
    u: &str,
) -> Result<Option<(String, LastEventIdSource)>, LastEventIdError> {
    config
        .extract(&headers(hdrs), &uri(u))
        .map(|o| o.map(|id| (id.as_str().to_owned(), id.source())))
}

fn found(
    value: &str,
    source: LastEventIdSource,
) -> Result<Option<(String, LastEventIdSource)>, LastEventIdError> {
    Ok(Some((value.to_owned(), source)))
}

/// Lenient gives `None`, strict gives an error with this origin and kind.
fn assert_invalid(hdrs: &[&[u8]], u: &str, origin: LastEventIdSource, kind: LastEventIdErrorKind) {
    assert_eq!(
        run(lenient(), hdrs, u),
        Ok(None),
        "lenient, headers {hdrs:?}, uri {u}"
    );
    let e = run(strict(), hdrs, u).expect_err("strict must refuse");
    assert_eq!(
        (e.origin(), e.kind()),
        (origin, kind),
        "strict, headers {hdrs:?}, uri {u}"
    );
}

use LastEventIdSource::{Header, Query};

// ---------------------------------------------------------------------------------------
// The header

#[test]
fn header_value_is_read() {
    assert_eq!(run(lenient(), &[b"42"], "/events"), found("42", Header));
    assert_eq!(
        run(strict(), &[b"epoch-3:17"], "/"),
        found("epoch-3:17", Header)
    );
    // Spaces, tabs and punctuation inside are kept.
    assert_eq!(
        run(lenient(), &[b"a b\tc,d"], "/"),
        found("a b\tc,d", Header)
    );
}

#[test]
fn header_utf8_is_decoded_from_raw_bytes() {
    // `HeaderValue::to_str` refuses these; the raw bytes are valid UTF-8.
    for s in ["café", "日本語-1", "😀", "\u{2028}"] {
        assert!(
            HeaderValue::from_bytes(s.as_bytes())
                .unwrap()
                .to_str()
                .is_err()
        );
        assert_eq!(run(strict(), &[s.as_bytes()], "/"), found(s, Header));
    }
}

#[test]
fn header_that_is_not_utf8_is_invalid() {
    let not_utf8 = LastEventIdErrorKind::NotUtf8;
    assert_invalid(&[b"caf\xe9"], "/", Header, not_utf8); // Latin-1
    assert_invalid(&[b"\xff\xfe"], "/", Header, not_utf8);
    assert_invalid(&[b"\xc3"], "/", Header, not_utf8); // truncated sequence
    assert_invalid(&[b"\xed\xa0\x80"], "/", Header, not_utf8); // surrogate
}

#[test]
fn empty_header_is_absent() {
    assert_eq!(run(lenient(), &[b""], "/"), Ok(None));
    assert_eq!(run(strict(), &[b""], "/"), Ok(None));
    // An empty header falls through to the query.
    assert_eq!(run(strict(), &[b""], "/?lastEventId=5"), found("5", Query));
}

#[test]
fn several_headers() {
    let hdrs: &[&[u8]] = &[b"1", b"2"];
    assert_eq!(run(lenient(), hdrs, "/"), found("1", Header));
    let e = run(strict(), hdrs, "/").unwrap_err();
    assert_eq!(
        (e.origin(), e.kind()),
        (Header, LastEventIdErrorKind::Duplicate)
    );
    // Empty values do not count.
    assert_eq!(run(strict(), &[b"", b"2", b""], "/"), found("2", Header));
}

// ---------------------------------------------------------------------------------------
// The query

#[test]
fn query_parameters_both_names() {
    assert_eq!(run(strict(), &[], "/e?lastEventId=7"), found("7", Query));
    assert_eq!(
        run(strict(), &[], "/e?a=1&last_event_id=8&b=2"),
        found("8", Query)
    );
    // Parameter names are percent-decoded too, and compared case-sensitively.
    assert_eq!(run(strict(), &[], "/e?last%45ventId=9"), found("9", Query));
    assert_eq!(
        run(strict(), &[], "/e?lasteventid=9&LAST_EVENT_ID=9"),
        Ok(None)
    );
}

#[test]
fn query_values_are_form_decoded() {
    let cases = [
        ("a+b", "a b"),
        ("a%20b", "a b"),
        ("a%2Bb", "a+b"),
        ("room%3A42%2F1", "room:42/1"),
        ("x=y", "x=y"), // everything after the first `=`
        ("%E2%82%AC", "€"),
        ("caf%C3%A9", "café"),
        ("%F0%9F%98%80", "😀"),
        ("100%", "100%"), // a `%` without two hex digits stays
        ("%zz", "%zz"),
        ("%4", "%4"),
    ];
    for (raw, decoded) in cases {
        let u = format!("/?lastEventId={raw}");
        assert_eq!(run(strict(), &[], &u), found(decoded, Query), "raw {raw}");
    }
}

#[test]
fn query_with_bytes_that_are_not_utf8_is_invalid() {
    let not_utf8 = LastEventIdErrorKind::NotUtf8;
    assert_invalid(&[], "/?lastEventId=%FF", Query, not_utf8);
    assert_invalid(&[], "/?lastEventId=caf%E9", Query, not_utf8);
    assert_invalid(&[], "/?last_event_id=%C3", Query, not_utf8);
}

#[test]
fn query_with_nul_cr_lf_is_invalid() {
    for (raw, c) in [
        ("a%00b", '\0'),
        ("a%0Db", '\r'),
        ("%0A", '\n'),
        ("a%0D%0Ab", '\r'),
    ] {
        let u = format!("/?lastEventId={raw}");
        assert_invalid(&[], &u, Query, LastEventIdErrorKind::InvalidChar(c));
    }
}

#[test]
fn empty_query_values_are_absent() {
    for u in [
        "/?lastEventId=",
        "/?lastEventId",
        "/?last_event_id=&x=1",
        "/?",
        "/",
    ] {
        assert_eq!(run(strict(), &[], u), Ok(None), "{u}");
    }
    // An empty parameter does not hide a later one.
    assert_eq!(
        run(strict(), &[], "/?lastEventId=&last_event_id=4"),
        found("4", Query)
    );
}

#[test]
fn several_query_parameters() {
    for u in [
        "/?lastEventId=1&lastEventId=2",
        "/?last_event_id=1&lastEventId=2",
    ] {
        assert_eq!(run(lenient(), &[], u), found("1", Query), "{u}");
        let e = run(strict(), &[], u).unwrap_err();
        assert_eq!(
            (e.origin(), e.kind()),
            (Query, LastEventIdErrorKind::Duplicate)
        );
    }
}

#[test]
fn configured_query_names() {
    let custom = lenient().query_params(&["cursor"]);
    assert_eq!(
        run(custom, &[], "/?lastEventId=1&cursor=2"),
        found("2", Query)
    );
    let header_only = lenient().query_params(&[]);
    assert_eq!(run(header_only, &[], "/?lastEventId=1"), Ok(None));
    assert_eq!(
        run(header_only, &[b"3"], "/?lastEventId=1"),
        found("3", Header)
    );
}

// ---------------------------------------------------------------------------------------
// Precedence

#[test]
fn header_wins_over_query() {
    assert_eq!(
        run(strict(), &[b"h"], "/?lastEventId=q&last_event_id=q2"),
        found("h", Header)
    );
}

#[test]
fn invalid_header_does_not_fall_back_to_the_query() {
    // The query value is older than what the browser reports on reconnect.
    assert_invalid(
        &[b"\xff"],
        "/?lastEventId=5",
        Header,
        LastEventIdErrorKind::NotUtf8,
    );
    let long = vec![b'x'; 1025];
    let kind = LastEventIdErrorKind::TooLong {
        len: 1025,
        max: 1024,
    };
    assert_invalid(&[&long], "/?lastEventId=5", Header, kind);
}

#[test]
fn query_is_not_read_when_the_header_is_valid() {
    // Even an invalid or duplicated query is irrelevant in strict mode then.
    assert_eq!(
        run(strict(), &[b"1"], "/?lastEventId=%FF&lastEventId=2"),
        found("1", Header)
    );
}

// ---------------------------------------------------------------------------------------
// Length limit

#[test]
fn header_length_limit() {
    let at = "x".repeat(1024);
    assert_eq!(run(strict(), &[at.as_bytes()], "/"), found(&at, Header));
    let over = "x".repeat(1025);
    let kind = LastEventIdErrorKind::TooLong {
        len: 1025,
        max: 1024,
    };
    assert_invalid(&[over.as_bytes()], "/", Header, kind);

    // Counted in bytes: 512 two-byte characters fit, 513 do not.
    let fits = "é".repeat(512);
    assert_eq!(run(strict(), &[fits.as_bytes()], "/"), found(&fits, Header));
    let over = "é".repeat(513);
    let kind = LastEventIdErrorKind::TooLong {
        len: 1026,
        max: 1024,
    };
    assert_invalid(&[over.as_bytes()], "/", Header, kind);
}

#[test]
fn query_length_limit_counts_decoded_bytes() {
    let config = lenient().max_len(4);
    // 12 bytes encoded, 4 decoded: fits.
    assert_eq!(
        run(config, &[], "/?lastEventId=%41%42%43%44"),
        found("ABCD", Query)
    );
    assert_eq!(run(config, &[], "/?lastEventId=%41%42%43%44%45"), Ok(None));
    let e = run(config.strict(true), &[], "/?lastEventId=%41%42%43%44%45").unwrap_err();
    assert_eq!(e.kind(), LastEventIdErrorKind::TooLong { len: 5, max: 4 });
    // "€" is 3 bytes.
    assert_eq!(
        run(config, &[], "/?lastEventId=%E2%82%AC1"),
        found("€1", Query)
    );
    let e = run(config.strict(true), &[], "/?lastEventId=%E2%82%AC%E2%82%AC").unwrap_err();
    assert_eq!(e.kind(), LastEventIdErrorKind::TooLong { len: 6, max: 4 });
}

#[test]
fn configured_length_limit() {
    let config = strict().max_len(3);
    assert_eq!(run(config, &[b"abc"], "/"), found("abc", Header));
    let e = run(config, &[b"abcd"], "/").unwrap_err();
    assert_eq!(e.kind(), LastEventIdErrorKind::TooLong { len: 4, max: 3 });
    // Zero refuses every value.
    let e = run(strict().max_len(0), &[b"a"], "/").unwrap_err();
    assert_eq!(e.kind(), LastEventIdErrorKind::TooLong { len: 1, max: 0 });
    let big = strict().max_len(64 * 1024);
    let long = "y".repeat(5000);
    assert_eq!(run(big, &[long.as_bytes()], "/"), found(&long, Header));
}

#[test]
fn huge_query_parameter() {
    // A ~60 KB URI (close to what `http::Uri` allows) with a huge matching parameter: the
    // length is reported in full, though decoding stores at most `max_len` bytes.
    let value = "%41".repeat(20_000);
    let pad = "pad=1&".repeat(100);
    let u = uri(&format!("/e?{pad}lastEventId={value}&last_event_id=1"));
    let hdrs = HeaderMap::new();
    let e = strict()
        .query_params(&["lastEventId"])
        .extract(&hdrs, &u)
        .unwrap_err();
    assert_eq!(
        e.kind(),
        LastEventIdErrorKind::TooLong {
            len: 20_000,
            max: 1024
        }
    );
    assert_eq!(lenient().extract(&hdrs, &u), Ok(None));
    // Valid, within a raised limit.
    let big = lenient().max_len(20_000);
    let id = big.extract(&hdrs, &u).unwrap().unwrap();
    assert_eq!(id.as_str(), "A".repeat(20_000));
}

// ---------------------------------------------------------------------------------------
// Other entry points and reporting

#[test]
fn from_parts_and_from_request_agree_with_extract() {
    let req = Request::get("/e?lastEventId=q")
        .header("last-event-id", "h")
        .body(())
        .unwrap();
    let by_req = lenient().from_request(&req).unwrap().unwrap();
    let (parts, ()) = req.into_parts();
    let by_parts = lenient().from_parts(&parts).unwrap().unwrap();
    let by_default = LastEventId::extract(&parts.headers, &parts.uri).unwrap();
    for id in [by_req, by_parts, by_default] {
        assert_eq!((id.as_str(), id.source()), ("h", Header));
    }
    // The default-config shortcut is lenient.
    assert_eq!(LastEventId::extract(&headers(&[b"\xff"]), &uri("/")), None);
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `f` under a subscriber that records events at `level` and above.
fn logs_of(level: tracing::Level, f: impl FnOnce()) -> String {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn lenient_mode_reports_invalid_values_at_debug_level() {
    let logs = logs_of(tracing::Level::DEBUG, || {
        assert_eq!(run(lenient(), &[b"\xff"], "/"), Ok(None));
    });
    assert!(logs.contains("DEBUG"), "{logs}");
    assert!(
        logs.contains("Last-Event-ID header is not valid UTF-8"),
        "{logs}"
    );

    // Not above debug.
    let logs = logs_of(tracing::Level::INFO, || {
        assert_eq!(run(lenient(), &[b"\xff"], "/"), Ok(None));
    });
    assert_eq!(logs, "");

    // A valid value logs nothing.
    let logs = logs_of(tracing::Level::TRACE, || {
        assert_eq!(run(lenient(), &[b"1"], "/"), found("1", Header));
    });
    assert_eq!(logs, "");
}

#[test]
fn error_is_a_std_error_with_a_short_message() {
    let e = run(strict(), &[], "/?lastEventId=a%00").unwrap_err();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
    assert_eq!(
        boxed.to_string(),
        "Last-Event-ID query parameter contains a NUL character"
    );
}

// ---------------------------------------------------------------------------------------
// axum

async fn optional(id: Option<LastEventId>) -> String {
    match id {
        Some(id) => format!("{:?}:{}", id.source(), id.as_str()),
        None => "none".to_owned(),
    }
}

async fn required(id: LastEventId) -> String {
    id.into_string()
}

fn app() -> Router {
    Router::new()
        .route("/opt", get(optional))
        .route("/req", get(required))
}

async fn call(router: Router, req: Request<Body>) -> (StatusCode, String) {
    let res = router.oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get_req(u: &str, header: Option<&[u8]>) -> Request<Body> {
    let mut b = Request::get(u);
    if let Some(h) = header {
        b = b.header("last-event-id", HeaderValue::from_bytes(h).unwrap());
    }
    b.body(Body::empty()).unwrap()
}

fn ok(s: &str) -> (StatusCode, String) {
    (StatusCode::OK, s.to_owned())
}

#[tokio::test]
async fn axum_optional_extractor() {
    assert_eq!(
        call(app(), get_req("/opt", Some("é".as_bytes()))).await,
        ok("Header:é")
    );
    assert_eq!(
        call(app(), get_req("/opt?lastEventId=a+b", None)).await,
        ok("Query:a b")
    );
    assert_eq!(call(app(), get_req("/opt", None)).await, ok("none"));
    // Lenient by default: an invalid value is absent, not an error.
    assert_eq!(
        call(app(), get_req("/opt", Some(b"\xff"))).await,
        ok("none")
    );
    assert_eq!(
        call(app(), get_req("/opt?lastEventId=%00", None)).await,
        ok("none")
    );
}

#[tokio::test]
async fn axum_strict_mode_answers_400() {
    let strict_app = || app().layer(Extension(strict()));
    let (status, body) = call(strict_app(), get_req("/opt", Some(b"\xff"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "Last-Event-ID header is not valid UTF-8");

    let (status, body) = call(
        strict_app(),
        get_req("/opt?lastEventId=1&lastEventId=2", None),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "several Last-Event-ID query parameters");

    // Valid and absent values still pass in strict mode.
    assert_eq!(
        call(strict_app(), get_req("/opt", Some(b"5"))).await,
        ok("Header:5")
    );
    assert_eq!(call(strict_app(), get_req("/opt", None)).await, ok("none"));

    // The configuration from the extensions applies: here a smaller limit.
    let small = || app().layer(Extension(strict().max_len(2)));
    let (status, body) = call(small(), get_req("/opt", Some(b"abc"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        "Last-Event-ID header is 3 bytes long, over the limit of 2"
    );
}

#[tokio::test]
async fn axum_required_extractor_rejects_when_missing() {
    assert_eq!(call(app(), get_req("/req", Some(b"11"))).await, ok("11"));
    let (status, body) = call(app(), get_req("/req", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, "missing Last-Event-ID");
    // Lenient: an invalid value is "missing" too.
    let (status, body) = call(app(), get_req("/req", Some(b"\xff"))).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, "missing Last-Event-ID")
    );
}

#[tokio::test]
async fn axum_extractor_prefers_a_parsed_result_in_extensions() {
    let elsewhere = Request::get("/")
        .header("last-event-id", "from-layer")
        .body(())
        .unwrap();
    let parsed = ParsedLastEventId::new(lenient().from_request(&elsewhere));

    let mut req = get_req("/opt?lastEventId=q", Some(b"from-request"));
    req.extensions_mut().insert(parsed.clone());
    assert_eq!(call(app(), req).await, ok("Header:from-layer"));

    // A stored "absent" wins over what the request carries.
    let mut req = get_req("/opt", Some(b"from-request"));
    req.extensions_mut()
        .insert(ParsedLastEventId::new(Ok(None)));
    assert_eq!(call(app(), req).await, ok("none"));

    // A stored error is a 400 (it was read in strict mode), even under a lenient config.
    let bad = Request::get("/")
        .header("last-event-id", "abc")
        .body(())
        .unwrap();
    let err = strict().max_len(1).from_request(&bad);
    let mut req = get_req("/opt", Some(b"ok"));
    req.extensions_mut().insert(ParsedLastEventId::new(err));
    let (status, body) = call(app().layer(Extension(lenient())), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        "Last-Event-ID header is 3 bytes long, over the limit of 1"
    );
}

// ---------------------------------------------------------------------------------------
// Properties

/// Bytes `HeaderValue::from_bytes` accepts: tab, visible ASCII, and 0x80..=0xFF.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff,];
    // Raw bytes, or a whole character so that valid UTF-8 comes up often.
    let chunk = prop_oneof![
        prop::collection::vec(byte, 0..4),
        any::<char>()
            .prop_filter("header-safe", |c| *c == '\t'
                || (*c >= ' ' && *c != '\u{7f}'))
            .prop_map(|c| c.to_string().into_bytes()),
    ];
    prop::collection::vec(chunk, 0..40).prop_map(|v| v.concat())
}

/// Query strings that `http::Uri` accepts, built from pairs whose names are often the
/// configured ones and whose values mix escapes, malformed escapes and plain characters.
fn query_string() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("lastEventId".to_owned()),
        Just("last_event_id".to_owned()),
        Just("last%45ventId".to_owned()),
        "[a-z_]{0,6}",
    ];
    let piece = prop_oneof![
        "%[0-9A-Fa-f]{2}",
        Just("%".to_owned()),
        "%[0-9a-z]",
        "[A-Za-z0-9+=._~!$'()*,;:@/?-]{1,4}",
        Just("%C3%A9".to_owned()),
        Just("%00".to_owned()),
        Just("%0D%0A".to_owned()),
    ];
    let value = prop::collection::vec(piece, 0..12).prop_map(|v| v.concat());
    let pair = (name, prop::option::of(value)).prop_map(|(n, v)| match v {
        Some(v) => format!("{n}={v}"),
        None => n,
    });
    prop::collection::vec(pair, 0..6).prop_map(|v| v.join("&"))
}

fn check_invariants(id: &LastEventId, max: usize) -> Result<(), TestCaseError> {
    prop_assert!(!id.is_empty());
    prop_assert!(id.len() <= max);
    prop_assert!(!id.contains(['\0', '\r', '\n']));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn header_bytes_are_accepted_exactly_when_valid(
        bytes in header_bytes(),
        max in prop_oneof![0usize..64, Just(1024usize)],
        is_strict in any::<bool>(),
    ) {
        let config = LastEventIdConfig::new().max_len(max).strict(is_strict);
        let h = headers(&[&bytes]);
        let result = config.extract(&h, &uri("/?lastEventId=fallback"));
        let valid = std::str::from_utf8(&bytes).ok().filter(|s| s.len() <= max);
        match (bytes.is_empty(), valid, result) {
            // Empty header: the query fallback is used.
            (true, _, Ok(Some(id))) if max >= 8 => {
                prop_assert_eq!(id.as_str(), "fallback");
                prop_assert_eq!(id.source(), Query);
            }
            (true, _, Ok(None)) if max < 8 && !is_strict => {}
            (true, _, Err(e)) if max < 8 && is_strict => {
                prop_assert_eq!(e.origin(), Query);
            }
            (false, Some(s), Ok(Some(id))) => {
                prop_assert_eq!(id.as_str(), s);
                prop_assert_eq!(id.source(), Header);
                check_invariants(&id, max)?;
            }
            (false, None, Ok(None)) if !is_strict => {}
            (false, None, Err(e)) if is_strict => {
                prop_assert_eq!(e.origin(), Header);
            }
            (empty, valid, result) => {
                prop_assert!(false, "empty {} valid {:?} result {:?}", empty, valid, result);
            }
        }
    }

    #[test]
    fn query_values_match_a_form_decoder_when_accepted(
        query in query_string(),
        max in prop_oneof![0usize..16, Just(1024usize)],
        is_strict in any::<bool>(),
    ) {
        let u: Uri = format!("/e?{query}").parse().unwrap();
        let config = LastEventIdConfig::new().max_len(max).strict(is_strict);
        let result = config.extract(&HeaderMap::new(), &u);

        // Reference: the first non-empty matching pair, decoded (lossily) by form_urlencoded.
        let names = ["lastEventId", "last_event_id"];
        let matching: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .filter(|(n, v)| names.contains(&n.as_ref()) && !v.is_empty())
            .map(|(_, v)| v.into_owned())
            .collect();
        let expected = matching.first();
        match result {
            Ok(Some(id)) => {
                check_invariants(&id, max)?;
                prop_assert_eq!(id.source(), Query);
                prop_assert_eq!(Some(&id.into_string()), expected);
                if is_strict {
                    prop_assert_eq!(matching.len(), 1);
                }
            }
            Ok(None) => {
                if let Some(v) = expected {
                    // Refused (lenient): the reference value must be invalid.
                    prop_assert!(!is_strict);
                    prop_assert!(
                        v.len() > max || v.contains(['\0', '\r', '\n', '\u{fffd}']),
                        "valid value {:?} was dropped", v
                    );
                }
            }
            Err(e) => {
                prop_assert!(is_strict);
                prop_assert_eq!(e.origin(), Query);
                prop_assert!(expected.is_some());
            }
        }
    }

    #[test]
    fn any_uri_and_header_never_panics(
        query in "\\PC{0,200}",
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        is_strict in any::<bool>(),
    ) {
        let config = LastEventIdConfig::new().max_len(32).strict(is_strict);
        let h = HeaderValue::from_bytes(&bytes)
            .map(|v| {
                let mut m = HeaderMap::new();
                m.insert("last-event-id", v);
                m
            })
            .unwrap_or_default();
        if let Ok(u) = format!("/?{query}").parse::<Uri>() {
            if let Ok(Some(id)) = config.extract(&h, &u) {
                check_invariants(&id, 32)?;
            }
        }
    }
}
