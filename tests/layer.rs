//! `SseLayer` over `tower::service_fn`s: `Last-Event-ID` extraction, the header policy,
//! pass-through of other responses, and the body wrapper (keep-alive at line boundaries,
//! BOM, shutdown, maximum lifetime, drop). Time is tokio's paused clock.

mod support;

use std::convert::Infallible;
use std::error::Error;
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::channel::mpsc;
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::sync::oneshot::error::TryRecvError;
use tokio::time::{Instant, timeout};
use tower::{Layer, ServiceExt, service_fn};
use tower_sse::last_event_id::{LastEventIdConfig, LastEventIdSource, ParsedLastEventId};
use tower_sse::layer::{SseLayer, SseLayerBody};
use tower_sse::{CancellationToken, Event, KeepAlive, LastEventId, Sse};

use support::{events_of, expected};

type TestResult = Result<(), Box<dyn Error>>;
type Chunk = Result<Frame<Bytes>, Infallible>;
/// A foreign SSE body: whatever bytes the test feeds it, as they come.
type Foreign = StreamBody<mpsc::UnboundedReceiver<Chunk>>;

const SECOND: Duration = Duration::from_secs(1);
/// The default keep-alive interval.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Long enough on the paused clock for any timer in these tests to fire.
const FOREVER: Duration = Duration::from_secs(3600);

/// The feeding end of a [`Foreign`] body.
struct Feed(mpsc::UnboundedSender<Chunk>);

impl Feed {
    fn send(&self, bytes: impl AsRef<[u8]>) {
        let frame = Frame::data(Bytes::copy_from_slice(bytes.as_ref()));
        self.0
            .unbounded_send(Ok(frame))
            .expect("the body is still there");
    }
}

fn foreign() -> (Feed, Foreign) {
    let (tx, rx) = mpsc::unbounded();
    (Feed(tx), StreamBody::new(rx))
}

fn event_stream<B>(body: B) -> Response<B> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

fn get(uri: &str) -> Request<()> {
    Request::get(uri).body(()).expect("valid request")
}

/// Sends `request` through `layer` to a service that answers with `response`.
async fn through<B>(
    layer: SseLayer,
    request: Request<()>,
    response: Response<B>,
) -> Response<SseLayerBody<B>>
where
    B: Body<Data = Bytes>,
{
    let mut slot = Some(response);
    let service = layer.layer(service_fn(move |_: Request<()>| {
        let response = slot.take().expect("the service is called once");
        async move { Ok::<_, Infallible>(response) }
    }));
    match service.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The SSE body of a `text/event-stream` response to a plain GET through `layer`.
async fn sse_body<B>(layer: SseLayer, body: B) -> Pin<Box<SseLayerBody<B>>>
where
    B: Body<Data = Bytes>,
{
    Box::pin(
        through(layer, get("/events"), event_stream(body))
            .await
            .into_body(),
    )
}

/// The next data frame within `wait` of paused time: `Ok(None)` at the end of the body,
/// `Err(())` when nothing came.
async fn next_within<B>(body: &mut Pin<Box<B>>, wait: Duration) -> Result<Option<Bytes>, ()>
where
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    match timeout(wait, body.frame()).await {
        Ok(Some(frame)) => {
            let frame = frame.expect("the body does not fail");
            Ok(Some(frame.into_data().expect("a data frame")))
        }
        Ok(None) => Ok(None),
        Err(_) => Err(()),
    }
}

/// The next data frame; fails the test if the body ended or stayed silent for an hour.
async fn next<B>(body: &mut Pin<Box<B>>) -> Bytes
where
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    next_within(body, FOREVER)
        .await
        .expect("a frame comes")
        .expect("the body goes on")
}

/// Reads the body to its end (failing the test if it goes silent for an hour).
async fn rest<B>(body: &mut Pin<Box<B>>) -> Vec<u8>
where
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    let mut out = Vec::new();
    while let Some(bytes) = next_within(body, FOREVER).await.expect("the body ends") {
        out.extend_from_slice(&bytes);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Last-Event-ID extraction
// ---------------------------------------------------------------------------------------

/// What the service saw in the request extensions.
type Seen = (Option<LastEventId>, Option<ParsedLastEventId>);

/// Sends `request` through `layer` to a service that records the extensions; returns the
/// response status, how many times the service was called, and what it saw.
async fn extract(layer: SseLayer, request: Request<()>) -> (Response<Bytes>, usize, Option<Seen>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(None));
    let service = layer.layer(service_fn({
        let calls = calls.clone();
        let seen = seen.clone();
        move |req: Request<()>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let ext = req.extensions();
            *seen.lock().unwrap() = Some((
                ext.get::<LastEventId>().cloned(),
                ext.get::<ParsedLastEventId>().cloned(),
            ));
            async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok")))) }
        }
    }));
    let response = service.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let calls = calls.load(Ordering::SeqCst);
    let seen = seen.lock().unwrap().take();
    (Response::from_parts(parts, body), calls, seen)
}

fn with_header(value: &[u8]) -> Request<()> {
    let mut request = get("/events");
    request.headers_mut().insert(
        "last-event-id",
        HeaderValue::from_bytes(value).expect("a valid header value"),
    );
    request
}

#[tokio::test(start_paused = true)]
async fn header_id_lands_in_extensions() {
    let (response, calls, seen) = extract(SseLayer::new(), with_header(b"41")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls, 1);
    let (id, parsed) = seen.unwrap();
    let id = id.expect("LastEventId in the extensions");
    assert_eq!(id.as_str(), "41");
    assert_eq!(id.source(), LastEventIdSource::Header);
    let parsed = parsed.expect("ParsedLastEventId in the extensions");
    assert_eq!(parsed.last_event_id(), Some(&id));
    assert_eq!(parsed.result().unwrap().map(|id| id.as_str()), Some("41"));
}

#[tokio::test(start_paused = true)]
async fn query_ids_land_in_extensions() {
    for (uri, want) in [
        ("/events?lastEventId=7", "7"),
        ("/events?last_event_id=room%3A8+b", "room:8 b"),
        ("/events?topic=x&lastEventId=9&last_event_id=10", "9"),
    ] {
        let (_, calls, seen) = extract(SseLayer::new(), get(uri)).await;
        assert_eq!(calls, 1, "{uri}");
        let (id, parsed) = seen.unwrap();
        let id = id.unwrap_or_else(|| panic!("no LastEventId for {uri}"));
        assert_eq!(id.as_str(), want, "{uri}");
        assert_eq!(id.source(), LastEventIdSource::Query, "{uri}");
        assert_eq!(parsed.unwrap().last_event_id(), Some(&id), "{uri}");
    }
}

#[tokio::test(start_paused = true)]
async fn header_wins_over_query() {
    let mut request = get("/events?lastEventId=3");
    request
        .headers_mut()
        .insert("last-event-id", HeaderValue::from_static("12"));
    let (_, _, seen) = extract(SseLayer::new(), request).await;
    assert_eq!(seen.unwrap().0.unwrap().as_str(), "12");
}

#[tokio::test(start_paused = true)]
async fn no_id_gives_parsed_none() {
    let (_, calls, seen) = extract(SseLayer::new(), get("/events")).await;
    assert_eq!(calls, 1);
    let (id, parsed) = seen.unwrap();
    assert!(id.is_none());
    assert_eq!(parsed.expect("always inserted").result(), Ok(None));
}

#[tokio::test(start_paused = true)]
async fn non_ascii_utf8_header_is_accepted() {
    for value in ["é", "café-7", "日本-1"] {
        for strict in [false, true] {
            let layer = SseLayer::new().last_event_id(LastEventIdConfig::new().strict(strict));
            let (response, calls, seen) = extract(layer, with_header(value.as_bytes())).await;
            assert_eq!(response.status(), StatusCode::OK, "{value} strict={strict}");
            assert_eq!(calls, 1);
            assert_eq!(seen.unwrap().0.unwrap().as_str(), value);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn id_of_exactly_one_kib_is_accepted() {
    let value = "x".repeat(1024);
    let layer = SseLayer::new().last_event_id(LastEventIdConfig::new().strict(true));
    let (response, _, seen) = extract(layer, with_header(value.as_bytes())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.unwrap().0.unwrap().as_str(), value);
}

/// Requests whose last event id is present but invalid.
fn invalid_requests() -> Vec<(&'static str, Request<()>)> {
    let long = "x".repeat(1025);
    vec![
        ("header not UTF-8", with_header(b"\xff\xfe1")),
        ("header truncated UTF-8", with_header(b"caf\xc3")),
        ("header over 1 KiB", with_header(long.as_bytes())),
        ("query not UTF-8", get("/events?lastEventId=%FF1")),
        ("query with NUL", get("/events?lastEventId=a%00b")),
        ("query with LF", get("/events?last_event_id=a%0Ab")),
        ("query with CR", get("/events?last_event_id=a%0Db")),
        (
            "query over 1 KiB",
            get(&format!("/events?lastEventId={long}")),
        ),
    ]
}

#[tokio::test(start_paused = true)]
async fn invalid_ids_are_absent_in_lenient_mode() {
    for (case, request) in invalid_requests() {
        let (response, calls, seen) = extract(SseLayer::new(), request).await;
        assert_eq!(response.status(), StatusCode::OK, "{case}");
        assert_eq!(calls, 1, "{case}: the service is called");
        let (id, parsed) = seen.unwrap();
        assert!(id.is_none(), "{case}: {id:?}");
        assert_eq!(parsed.unwrap().result(), Ok(None), "{case}");
    }
}

#[tokio::test(start_paused = true)]
async fn invalid_ids_are_refused_with_400_in_strict_mode() {
    for (case, request) in invalid_requests() {
        let layer = SseLayer::new().last_event_id(LastEventIdConfig::new().strict(true));
        let (response, calls, seen) = extract(layer, request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(calls, 0, "{case}: the service is not called");
        assert!(seen.is_none(), "{case}");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8",
            "{case}"
        );
        assert!(!response.body().is_empty(), "{case}: the 400 says why");
    }
}

// ---------------------------------------------------------------------------------------
// Header policy
// ---------------------------------------------------------------------------------------

/// The headers of an SSE response through the default layer, answered with `headers` on a
/// request of `version`.
async fn sse_headers(
    version: Version,
    headers: &[(&'static str, &'static str)],
) -> http::HeaderMap {
    let mut response = Response::new(Full::new(Bytes::from_static(b"data: x\n\n")));
    for (name, value) in headers {
        response
            .headers_mut()
            .append(*name, HeaderValue::from_static(value));
    }
    let mut request = get("/events");
    *request.version_mut() = version;
    through(SseLayer::new(), request, response)
        .await
        .headers()
        .clone()
}

#[tokio::test(start_paused = true)]
async fn content_type_is_forced_unless_utf8() {
    for (given, want) in [
        ("text/event-stream", "text/event-stream"),
        ("text/event-stream; charset=latin1", "text/event-stream"),
        ("text/event-stream; charset=utf-16", "text/event-stream"),
        ("text/event-stream; foo=bar", "text/event-stream"),
        (
            "text/event-stream; charset=utf-8",
            "text/event-stream; charset=utf-8",
        ),
        (
            "Text/Event-Stream;charset=UTF-8",
            "Text/Event-Stream;charset=UTF-8",
        ),
    ] {
        let headers = sse_headers(Version::HTTP_11, &[("content-type", given)]).await;
        let values: Vec<_> = headers.get_all(header::CONTENT_TYPE).iter().collect();
        assert_eq!(values, [want], "{given}");
    }
}

#[tokio::test(start_paused = true)]
async fn content_length_is_removed() {
    let headers = sse_headers(
        Version::HTTP_11,
        &[
            ("content-type", "text/event-stream"),
            ("content-length", "9"),
        ],
    )
    .await;
    assert!(!headers.contains_key(header::CONTENT_LENGTH));
}

#[tokio::test(start_paused = true)]
async fn cache_headers_are_added_when_absent_and_kept_when_set() {
    let headers = sse_headers(Version::HTTP_11, &[("content-type", "text/event-stream")]).await;
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");

    let headers = sse_headers(
        Version::HTTP_11,
        &[
            ("content-type", "text/event-stream"),
            ("cache-control", "no-store, private"),
            ("x-accel-buffering", "yes"),
        ],
    )
    .await;
    let cache: Vec<_> = headers.get_all(header::CACHE_CONTROL).iter().collect();
    assert_eq!(cache, ["no-store, private"]);
    let accel: Vec<_> = headers.get_all("x-accel-buffering").iter().collect();
    assert_eq!(accel, ["yes"]);
}

const HOP_BY_HOP: [(&str, &str); 5] = [
    ("connection", "keep-alive"),
    ("keep-alive", "timeout=5"),
    ("proxy-connection", "keep-alive"),
    ("transfer-encoding", "chunked"),
    ("upgrade", "h2c"),
];

#[tokio::test(start_paused = true)]
async fn hop_by_hop_headers_are_removed_on_http2_only() {
    let mut given = vec![("content-type", "text/event-stream"), ("x-app", "1")];
    given.extend(HOP_BY_HOP);

    let headers = sse_headers(Version::HTTP_2, &given).await;
    for (name, _) in HOP_BY_HOP {
        assert!(!headers.contains_key(name), "{name} on HTTP/2");
    }
    assert_eq!(headers["x-app"], "1");

    let headers = sse_headers(Version::HTTP_11, &given).await;
    assert_eq!(headers[header::CONNECTION], "keep-alive");
    assert_eq!(headers["x-app"], "1");
}

/// RFC 9110 §7.6.1: the fields a `Connection` header names are connection-specific too, and
/// RFC 9113 §8.2.2 wants them gone on HTTP/2. hyper removes them itself when it sees the
/// `Connection` header; the layer removes `Connection` first, so hyper no longer can.
#[tokio::test(start_paused = true)]
async fn fields_named_by_connection_are_removed_on_http2() {
    let headers = sse_headers(
        Version::HTTP_2,
        &[
            ("content-type", "text/event-stream"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
        ],
    )
    .await;
    assert!(!headers.contains_key(header::CONNECTION));
    assert!(!headers.contains_key("x-hop"));
}

#[tokio::test(start_paused = true)]
async fn other_responses_are_untouched() {
    let body = Bytes::from_static(b"hello, not a stream");
    let build = || {
        Response::builder()
            .status(StatusCode::CREATED)
            .header("content-type", "text/plain; charset=latin1")
            .header("content-length", body.len())
            .header("connection", "keep-alive")
            .header("x-app", "1")
            .header("x-app", "2")
            .body(Full::new(body.clone()))
            .unwrap()
    };
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let mut request = get("/page");
        *request.version_mut() = version;
        let response = through(SseLayer::new(), request, build()).await;
        let reference = build();
        assert_eq!(response.status(), reference.status());
        assert_eq!(response.headers(), reference.headers(), "{version:?}");
        let hint = response.body().size_hint();
        assert_eq!(hint.exact(), Some(body.len() as u64));
        assert_eq!(hint.exact(), reference.body().size_hint().exact());
        let got = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(got, body);
    }

    // No content type at all: not a stream either.
    let response = through(
        SseLayer::new(),
        get("/"),
        Response::new(Full::new(body.clone())),
    )
    .await;
    assert!(response.headers().is_empty());
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        body
    );
}

// ---------------------------------------------------------------------------------------
// Keep-alive on foreign bodies
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn comment_keep_alive_waits_for_a_line_end() {
    let (feed, inner) = foreign();
    let mut body = sse_body(SseLayer::new(), inner).await;
    let mut out = Vec::new();

    feed.send("data: a");
    out.extend_from_slice(&next(&mut body).await);
    assert_eq!(
        next_within(&mut body, 60 * SECOND).await,
        Err(()),
        "no ping inside a line"
    );

    feed.send("\n\n");
    out.extend_from_slice(&next(&mut body).await);
    let last_bytes = Instant::now();
    let ping = next(&mut body).await;
    assert_eq!(&ping[..], b":\n");
    assert_eq!(Instant::now() - last_bytes, PING_INTERVAL);
    out.extend_from_slice(&ping);

    // A CR at the end could be the first half of a CRLF: nothing may follow it yet.
    feed.send("data: b\r");
    out.extend_from_slice(&next(&mut body).await);
    assert_eq!(
        next_within(&mut body, 60 * SECOND).await,
        Err(()),
        "no ping after a lone CR"
    );
    feed.send("\n\n");
    drop(feed);
    out.extend_from_slice(&rest(&mut body).await);

    assert_eq!(out, b"data: a\n\n:\ndata: b\r\n\n");
    assert_eq!(
        events_of(&out),
        expected(&[("message", "a"), ("message", "b")])
    );
}

#[tokio::test(start_paused = true)]
async fn comment_keep_alive_may_go_between_lines_of_an_event() {
    let (feed, inner) = foreign();
    let mut body = sse_body(SseLayer::new(), inner).await;
    let mut out = Vec::new();

    feed.send("event: t\ndata: x\r\n");
    out.extend_from_slice(&next(&mut body).await);
    let start = Instant::now();
    let ping = next(&mut body).await;
    assert_eq!(
        (&ping[..], Instant::now() - start),
        (&b":\n"[..], PING_INTERVAL)
    );
    out.extend_from_slice(&ping);
    feed.send("data: y\n\n");
    drop(feed);
    out.extend_from_slice(&rest(&mut body).await);

    assert_eq!(out, b"event: t\ndata: x\r\n:\ndata: y\n\n");
    assert_eq!(events_of(&out), expected(&[("t", "x\ny")]));
}

#[tokio::test(start_paused = true)]
async fn pings_repeat_while_idle_and_restart_after_bytes() {
    let (feed, inner) = foreign();
    let mut body = sse_body(
        SseLayer::new().keep_alive(KeepAlive::new().interval(10 * SECOND).text("ka")),
        inner,
    )
    .await;
    let start = Instant::now();
    let mut at = Vec::new();
    for _ in 0..3 {
        assert_eq!(&next(&mut body).await[..], b": ka\n");
        at.push(Instant::now() - start);
    }
    assert_eq!(at, [10 * SECOND, 20 * SECOND, 30 * SECOND]);

    tokio::time::advance(4 * SECOND).await;
    feed.send("data: z\n\n");
    assert_eq!(&next(&mut body).await[..], b"data: z\n\n");
    assert_eq!(&next(&mut body).await[..], b": ka\n");
    assert_eq!(Instant::now() - start, 44 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn event_keep_alive_only_between_events() -> TestResult {
    let ping = Event::new().event("ping")?.data("");
    let (feed, inner) = foreign();
    let mut body = sse_body(
        SseLayer::new().keep_alive(KeepAlive::new().event(ping)),
        inner,
    )
    .await;
    let mut out = Vec::new();

    // Between two lines of one event: a comment could go here, a whole event cannot.
    feed.send("data: a\n");
    out.extend_from_slice(&next(&mut body).await);
    assert_eq!(next_within(&mut body, 60 * SECOND).await, Err(()));

    feed.send("\n");
    out.extend_from_slice(&next(&mut body).await);
    let last_bytes = Instant::now();
    let ping = next(&mut body).await;
    assert_eq!(&ping[..], b"event: ping\ndata:\n\n");
    assert_eq!(Instant::now() - last_bytes, PING_INTERVAL);
    out.extend_from_slice(&ping);

    // After a line that ended with LF only, and after a lone CR: no event either.
    feed.send("data: b\r\n");
    out.extend_from_slice(&next(&mut body).await);
    assert_eq!(next_within(&mut body, 60 * SECOND).await, Err(()));
    feed.send("\r");
    out.extend_from_slice(&next(&mut body).await);
    assert_eq!(
        next_within(&mut body, 60 * SECOND).await,
        Err(()),
        "a lone CR may be followed by its LF"
    );
    feed.send("\ndata: c\n\n");
    drop(feed);
    out.extend_from_slice(&rest(&mut body).await);

    assert_eq!(
        events_of(&out),
        expected(&[
            ("message", "a"),
            ("ping", ""),
            ("message", "b"),
            ("message", "c")
        ])
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn keep_alive_can_be_disabled() {
    let (feed, inner) = foreign();
    let mut body = sse_body(SseLayer::new().keep_alive(KeepAlive::disabled()), inner).await;
    assert_eq!(next_within(&mut body, FOREVER).await, Err(()));
    feed.send("data: a\n\n");
    assert_eq!(&next(&mut body).await[..], b"data: a\n\n");
    assert_eq!(next_within(&mut body, FOREVER).await, Err(()));
}

/// Collects the frames of `body` until `until` has passed on the paused clock, each with the
/// time it came at.
async fn frames_until<B>(body: &mut Pin<Box<B>>, until: Duration) -> Vec<(Duration, Bytes)>
where
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    let start = Instant::now();
    let mut frames = Vec::new();
    loop {
        let left = until.saturating_sub(Instant::now() - start);
        match next_within(body, left).await {
            Ok(Some(bytes)) => frames.push((Instant::now() - start, bytes)),
            Ok(None) => panic!("the body ended"),
            Err(()) => return frames,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn sse_response_is_not_pinged_twice() {
    let response = Sse::new(futures::stream::pending::<Event>()).into_response();
    let mut body = Box::pin(
        through(SseLayer::new(), get("/events"), response)
            .await
            .into_body(),
    );
    let frames = frames_until(&mut body, 61 * SECOND).await;
    let want: Vec<_> = [15, 30, 45, 60]
        .map(|s| (s * SECOND, Bytes::from_static(b":\n")))
        .into();
    assert_eq!(frames, want);
}

/// The same with different intervals and texts, so a ping from the layer could not hide
/// behind one from the body.
#[tokio::test(start_paused = true)]
async fn sse_response_keeps_its_own_keep_alive_only() {
    let response = Sse::new(futures::stream::pending::<Event>())
        .keep_alive(KeepAlive::new().interval(20 * SECOND).text("body"))
        .into_response();
    let layer = SseLayer::new().keep_alive(KeepAlive::new().interval(5 * SECOND).text("layer"));
    let mut body = Box::pin(through(layer, get("/events"), response).await.into_body());
    let frames = frames_until(&mut body, 61 * SECOND).await;
    let want: Vec<_> = [20, 40, 60]
        .map(|s| (s * SECOND, Bytes::from_static(b": body\n")))
        .into();
    assert_eq!(frames, want);
}

// ---------------------------------------------------------------------------------------
// BOM
// ---------------------------------------------------------------------------------------

const BOM: &str = "\u{feff}";

#[tokio::test(start_paused = true)]
async fn bom_after_a_layer_ping_is_removed() {
    let (feed, inner) = foreign();
    let mut body = sse_body(SseLayer::new(), inner).await;
    assert_eq!(&next(&mut body).await[..], b":\n");
    feed.send(format!("{BOM}data: x\n\n"));
    assert_eq!(&next(&mut body).await[..], b"data: x\n\n");
    feed.send("data: y\n\n");
    drop(feed);
    let out = [&b":\n"[..], b"data: x\n\n", &rest(&mut body).await].concat();
    assert_eq!(
        events_of(&out),
        expected(&[("message", "x"), ("message", "y")])
    );
}

/// A BOM split over two chunks after a ping reaches the client mid-stream, where it is an
/// ordinary character: the line becomes `\u{feff}data: x`, an unknown field, and the event
/// is lost.
#[tokio::test(start_paused = true)]
async fn bom_split_across_chunks_after_a_layer_ping_is_removed() {
    let (feed, inner) = foreign();
    let mut body = sse_body(SseLayer::new(), inner).await;
    let mut out = next(&mut body).await.to_vec();
    assert_eq!(out, b":\n");
    feed.send(&BOM.as_bytes()[..1]);
    feed.send([&BOM.as_bytes()[1..], b"data: x\n\n"].concat());
    drop(feed);
    out.extend_from_slice(&rest(&mut body).await);
    assert_eq!(out, b":\ndata: x\n\n");
    assert_eq!(events_of(&out), expected(&[("message", "x")]));
}

#[tokio::test(start_paused = true)]
async fn leading_bom_without_a_ping_passes_through() {
    let (feed, inner) = foreign();
    let mut body = sse_body(SseLayer::new(), inner).await;
    feed.send(format!("{BOM}data: x\n\n"));
    drop(feed);
    let out = rest(&mut body).await;
    // At the very start a client strips the BOM itself; the bytes are left as they are.
    assert_eq!(out, format!("{BOM}data: x\n\n").as_bytes());
    assert_eq!(events_of(&out), expected(&[("message", "x")]));
}

// ---------------------------------------------------------------------------------------
// Shutdown and maximum lifetime
// ---------------------------------------------------------------------------------------

fn bye() -> Event {
    Event::new().event("bye").expect("a valid type").data("")
}

fn shutdown_layer(token: &CancellationToken) -> SseLayer {
    SseLayer::new().shutdown(token.clone()).final_event(bye())
}

#[tokio::test(start_paused = true)]
async fn shutdown_between_events_sends_the_final_event() {
    let token = CancellationToken::new();
    let (feed, inner) = foreign();
    let mut body = sse_body(shutdown_layer(&token), inner).await;
    feed.send("data: a\n\n");
    let mut out = next(&mut body).await.to_vec();

    token.cancel();
    out.extend_from_slice(&rest(&mut body).await);
    assert_eq!(out, b"data: a\n\nevent: bye\ndata:\n\n");
    assert_eq!(events_of(&out), expected(&[("message", "a"), ("bye", "")]));
    assert!(body.is_end_stream());
    // The inner body is still open; the layer ended the response on its own.
    feed.send("data: never\n\n");
    assert_eq!(next_within(&mut body, SECOND).await, Ok(None));
}

#[tokio::test(start_paused = true)]
async fn shutdown_before_any_byte_sends_only_the_final_event() {
    let token = CancellationToken::new();
    let (_feed, inner) = foreign();
    let mut body = sse_body(shutdown_layer(&token), inner).await;
    token.cancel();
    assert_eq!(rest(&mut body).await, b"event: bye\ndata:\n\n");
}

#[tokio::test(start_paused = true)]
async fn shutdown_mid_event_lets_the_event_finish_first() {
    let token = CancellationToken::new();
    let (feed, inner) = foreign();
    let mut body = sse_body(shutdown_layer(&token), inner).await;
    feed.send("data: a\n");
    let mut out = next(&mut body).await.to_vec();

    token.cancel();
    feed.send("data: b\n");
    feed.send("\n");
    feed.send("data: not sent\n\n");
    out.extend_from_slice(&rest(&mut body).await);
    assert_eq!(out, b"data: a\ndata: b\n\nevent: bye\ndata:\n\n");
    assert_eq!(
        events_of(&out),
        expected(&[("message", "a\nb"), ("bye", "")])
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_mid_event_with_nothing_ready_ends_without_the_final_event() {
    let token = CancellationToken::new();
    let (feed, inner) = foreign();
    let mut body = sse_body(shutdown_layer(&token), inner).await;
    feed.send("data: done\n\ndata: half");
    let mut out = next(&mut body).await.to_vec();

    token.cancel();
    out.extend_from_slice(&rest(&mut body).await);
    assert_eq!(out, b"data: done\n\ndata: half");
    // The client drops the unfinished event (and will get it again on resuming).
    assert_eq!(events_of(&out), expected(&[("message", "done")]));
    assert!(body.is_end_stream());
    assert_eq!(next_within(&mut body, SECOND).await, Ok(None));
}

/// Reads the event `a` already sent into `body` and the keep-alive comment that follows on
/// the idle stream, then cancels `token`: the rest of the body still carries the final event.
async fn shutdown_after_the_ping_sends_the_final_event<B>(
    token: &CancellationToken,
    mut body: Pin<Box<B>>,
) where
    B: Body<Data = Bytes>,
    B::Error: Debug,
{
    let mut out = next(&mut body).await.to_vec();
    let ping = next(&mut body).await;
    assert_eq!(&ping[..], b":\n");
    out.extend_from_slice(&ping);

    token.cancel();
    out.extend_from_slice(&rest(&mut body).await);
    assert_eq!(events_of(&out), expected(&[("message", "a"), ("bye", "")]));
}

/// An idle stream between events that got a keep-alive comment is still between events: a
/// comment line starts no event. Idle streams are exactly the ones a shutdown finds.
#[tokio::test(start_paused = true)]
async fn shutdown_after_a_layer_ping_still_sends_the_final_event() {
    let token = CancellationToken::new();
    let (feed, inner) = foreign();
    let body = sse_body(shutdown_layer(&token), inner).await;
    feed.send("data: a\n\n");
    shutdown_after_the_ping_sends_the_final_event(&token, body).await;
}

/// The same through an `Sse` response, whose own keep-alive comment passes through the layer:
/// a stream idle for 15 s still gets its final event on shutdown.
#[tokio::test(start_paused = true)]
async fn shutdown_after_an_sse_ping_still_sends_the_final_event() {
    let token = CancellationToken::new();
    let (tx, rx) = mpsc::unbounded::<Event>();
    let response = Sse::new(rx).into_response();
    let body = Box::pin(
        through(shutdown_layer(&token), get("/events"), response)
            .await
            .into_body(),
    );
    tx.unbounded_send(Event::new().data("a")).unwrap();
    shutdown_after_the_ping_sends_the_final_event(&token, body).await;
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_ends_at_exactly_the_lifetime() {
    let layer = SseLayer::new()
        .keep_alive(KeepAlive::disabled())
        .max_lifetime(90 * SECOND)
        .lifetime_jitter(Duration::ZERO)
        .final_event(bye());
    let (feed, inner) = foreign();
    let mut body = sse_body(layer, inner).await;
    let start = Instant::now();
    feed.send("data: a\n\n");
    let mut out = next(&mut body).await.to_vec();

    // Traffic does not extend the lifetime.
    tokio::time::advance(30 * SECOND).await;
    feed.send("data: b\n\n");
    out.extend_from_slice(&next(&mut body).await);

    let last = next(&mut body).await;
    assert_eq!(Instant::now() - start, 90 * SECOND);
    assert_eq!(&last[..], b"event: bye\ndata:\n\n");
    out.extend_from_slice(&last);
    assert_eq!(next_within(&mut body, SECOND).await, Ok(None));
    assert_eq!(
        events_of(&out),
        expected(&[("message", "a"), ("message", "b"), ("bye", "")])
    );
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_waits_for_the_event_boundary() {
    let layer = SseLayer::new()
        .keep_alive(KeepAlive::disabled())
        .max_lifetime(10 * SECOND)
        .lifetime_jitter(Duration::ZERO)
        .final_event(bye());
    let (feed, inner) = foreign();
    let mut body = sse_body(layer, inner).await;
    feed.send("data: a\n");
    let mut out = next(&mut body).await.to_vec();
    tokio::time::advance(10 * SECOND).await;
    feed.send("\n");
    out.extend_from_slice(&rest(&mut body).await);
    assert_eq!(out, b"data: a\n\nevent: bye\ndata:\n\n");
}

#[tokio::test(start_paused = true)]
async fn sse_response_ends_on_the_layer_shutdown() {
    let token = CancellationToken::new();
    let (tx, rx) = mpsc::unbounded::<Event>();
    let response = Sse::new(rx).into_response();
    let mut body = Box::pin(
        through(shutdown_layer(&token), get("/events"), response)
            .await
            .into_body(),
    );
    tx.unbounded_send(Event::new().data("a")).unwrap();
    let mut out = next(&mut body).await.to_vec();
    token.cancel();
    out.extend_from_slice(&rest(&mut body).await);
    assert_eq!(events_of(&out), expected(&[("message", "a"), ("bye", "")]));
}

// ---------------------------------------------------------------------------------------
// Errors and drop
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn inner_error_is_passed_on_and_ends_the_body() {
    let chunks = futures::stream::iter([
        Ok(Frame::data(Bytes::from_static(b"data: a\n\n"))),
        Err("broken"),
        Ok(Frame::data(Bytes::from_static(b"data: b\n\n"))),
    ]);
    let mut body = sse_body(SseLayer::new(), StreamBody::new(chunks)).await;
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "data: a\n\n");
    assert_eq!(body.frame().await.unwrap().unwrap_err(), "broken");
    assert!(body.frame().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_body_drops_the_inner_stream() {
    // A foreign body.
    let (guard, released) = tokio::sync::oneshot::channel::<()>();
    let chunks = futures::stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(
        b"data: a\n\n",
    )))])
    .chain(futures::stream::pending())
    .map(move |chunk| {
        let _owned = &guard;
        chunk
    });
    let mut body = sse_body(SseLayer::new(), StreamBody::new(chunks)).await;
    assert_eq!(&next(&mut body).await[..], b"data: a\n\n");
    let mut released = released;
    assert_eq!(released.try_recv(), Err(TryRecvError::Empty));
    drop(body);
    assert_eq!(released.try_recv(), Err(TryRecvError::Closed));

    // An `Sse` response's stream, dropped with the response before any poll.
    let held = Arc::new(());
    let events = futures::stream::pending::<Event>().map({
        let held = held.clone();
        move |event| {
            let _owned = &held;
            event
        }
    });
    let response = through(
        SseLayer::new(),
        get("/events"),
        Sse::new(events).into_response(),
    )
    .await;
    assert_eq!(Arc::strong_count(&held), 2);
    drop(response);
    assert_eq!(Arc::strong_count(&held), 1);
}
