//! tower-http and tower middleware around [`SseLayer`]:
//!
//! - `CompressionLayer`: its default predicate leaves `text/event-stream` alone, so every
//!   event goes out as its own frame the moment it is sent. A predicate that forces
//!   compression still streams with tower-http 0.6 (the compressor flushes whenever the body
//!   has nothing more ready), but each open stream then holds a compressor: keep the default.
//! - Request timeouts (`tower_http::timeout::TimeoutLayer`, `tower::timeout::TimeoutLayer`)
//!   bound the time to the response head, never the body: events keep flowing long after.
//! - `ResponseBodyTimeoutLayer` is an idle timeout on the body: the keep-alive resets it, so
//!   it must be longer than the keep-alive interval, or it cuts every quiet stream.
//!
//! Time is tokio's paused clock, except in the one real-socket test, where a timeout only
//! turns a hang into a failure.

mod support;

use support::decoded::evs_of;
use support::wait::guarded;

use std::convert::Infallible;
use std::future::Ready;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{FutureExt, Stream, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Empty};
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::decompression::Decompression;
use tower_http::timeout::{ResponseBodyTimeoutLayer, TimeoutError};
use tower_sse::decode::{DecodedEvent, Decoder};
use tower_sse::layer::SseLayer;
use tower_sse::{Event, KeepAlive, Sse, SseBody};

/// The keep-alive interval of every stream here (the crate's default).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

type Events = UnboundedReceiver<Event>;
type SseResponse = Response<SseBody<Events>>;

fn tick(n: u64) -> Event {
    Event::new()
        .event("tick")
        .and_then(|e| e.id(n.to_string()))
        .expect("a fixed type and a number are valid")
        .data(format!("tick {n}"))
}

fn wire(n: u64) -> Bytes {
    tick(n).encode().into_bytes()
}

/// What a client decodes from `tick(n)` for each `n`.
fn ticks(numbers: impl IntoIterator<Item = u64>) -> Vec<(String, String, String)> {
    numbers
        .into_iter()
        .map(|n| ("tick".to_owned(), format!("tick {n}"), n.to_string()))
        .collect()
}

/// A service that answers its first request with `Sse::new(events)`, and later ones with
/// a stream that has already ended.
fn channel_service<B>(
    events: Events,
) -> impl Service<
    Request<B>,
    Response = SseResponse,
    Error = Infallible,
    Future = Ready<Result<SseResponse, Infallible>>,
> + Clone {
    let events = Arc::new(Mutex::new(Some(events)));
    service_fn(move |_request: Request<B>| {
        let taken = events.lock().expect("not poisoned").take();
        let events = taken.unwrap_or_else(|| unbounded().1);
        let response = Sse::new(events)
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
            .into_response();
        std::future::ready(Ok::<_, Infallible>(response))
    })
}

fn get_events(accept_encoding: &str) -> Request<()> {
    Request::get("/events")
        .header(header::ACCEPT, "text/event-stream")
        .header(header::ACCEPT_ENCODING, accept_encoding)
        .body(())
        .expect("a valid request")
}

/// The next data frame if the body has one ready now, without waiting; `None` if it has
/// nothing ready. Panics if the body ends or fails.
fn frame_now<B>(body: &mut B) -> Option<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    match body.frame().now_or_never()? {
        Some(Ok(frame)) => Some(frame.into_data().expect("only data frames")),
        Some(Err(error)) => panic!("the body failed: {error:?}"),
        None => panic!("the body ended"),
    }
}

/// Every event the body has ready now, decoded; stops when the body has nothing ready.
fn events_now<B>(body: &mut B, decoder: &mut Decoder) -> Vec<DecodedEvent>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    while let Some(bytes) = frame_now(body) {
        decoder.push(&bytes).expect("within the decoder limits");
    }
    std::iter::from_fn(|| decoder.next_event()).collect()
}

// ---------------------------------------------------------------------------------------
// CompressionLayer
// ---------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn default_compression_skips_event_streams_and_sends_each_event_as_it_comes() {
    let (events, rx) = unbounded();
    let service = ServiceBuilder::new()
        .layer(CompressionLayer::new())
        .layer(SseLayer::new())
        .service(channel_service(rx));
    let response = service
        .oneshot(get_events("gzip, br"))
        .await
        .expect("infallible");

    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    assert!(
        !headers.contains_key(header::CONTENT_ENCODING),
        "tower-http's default predicate must skip text/event-stream: {headers:?}"
    );
    assert!(!headers.contains_key(header::CONTENT_LENGTH));

    let mut body = Box::pin(response.into_body());
    assert_eq!(frame_now(&mut body), None, "nothing before the first event");
    for n in 1..=5 {
        events.unbounded_send(tick(n)).expect("the body is alive");
        // Ready at once, whole and alone, before the next event exists.
        assert_eq!(frame_now(&mut body), Some(wire(n)), "event {n}");
        assert_eq!(frame_now(&mut body), None, "nothing more after event {n}");
    }
    drop(events);
    assert!(
        body.frame().await.is_none(),
        "the body ends with the stream"
    );
}

/// A predicate that compresses whatever its size, and forgets `NotForContentType::SSE`.
/// With tower-http 0.6 the stream still arrives event by event. Do not rely on it: every
/// open stream then holds a compressor, and a flush per event gives back most of the gain
/// (docs/nginx.md).
#[tokio::test(start_paused = true)]
async fn forced_compression_still_flushes_each_event() {
    for encoding in ["gzip", "br", "deflate", "zstd"] {
        let (events, rx) = unbounded();
        let service = ServiceBuilder::new()
            .layer(CompressionLayer::new().compress_when(SizeAbove::new(0)))
            .layer(SseLayer::new())
            .service(channel_service(rx));
        let response = service
            .oneshot(get_events(encoding))
            .await
            .expect("infallible");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        assert_eq!(
            response.headers()[header::CONTENT_ENCODING],
            encoding,
            "the predicate forces {encoding}"
        );

        // Decompress as a browser would, with tower-http's client-side decompression.
        let response = decompress(response).await;
        assert!(!response.headers().contains_key(header::CONTENT_ENCODING));
        let mut body = Box::pin(response.into_body());
        let mut decoder = Decoder::new();
        assert!(events_now(&mut body, &mut decoder).is_empty());
        for n in 1..=5 {
            events.unbounded_send(tick(n)).expect("the body is alive");
            // tower-http's compressor (async-compression) flushes when the body it reads
            // has nothing more ready, so event n can be decoded before event n + 1 exists.
            let decoded = events_now(&mut body, &mut decoder);
            assert_eq!(evs_of(&decoded), ticks([n]), "{encoding}: event {n}");
        }
        drop(events);
        while let Some(frame) = body.frame().await {
            let data = frame.expect("a valid compressed stream").into_data();
            decoder
                .push(&data.expect("only data frames"))
                .expect("within the decoder limits");
        }
        assert!(
            decoder.next_event().is_none(),
            "{encoding}: no event at the end"
        );
        assert!(!decoder.finish(), "{encoding}: nothing left unfinished");
    }
}

/// A custom predicate keeps event streams out with `NotForContentType::SSE`, as the
/// default one does.
#[tokio::test(start_paused = true)]
async fn custom_predicate_with_not_for_sse_skips_event_streams() {
    let predicate = SizeAbove::new(256).and(NotForContentType::SSE);
    let (events, rx) = unbounded();
    let service = ServiceBuilder::new()
        .layer(CompressionLayer::new().compress_when(predicate))
        .layer(SseLayer::new())
        .service(channel_service(rx));
    let response = service
        .oneshot(get_events("gzip"))
        .await
        .expect("infallible");
    assert!(!response.headers().contains_key(header::CONTENT_ENCODING));
    let mut body = Box::pin(response.into_body());
    events.unbounded_send(tick(1)).expect("the body is alive");
    assert_eq!(frame_now(&mut body), Some(wire(1)));
}

/// Runs a received response through tower-http's `Decompression`, as a client would.
async fn decompress<B>(
    response: Response<B>,
) -> Response<tower_http::decompression::DecompressionBody<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let slot = Mutex::new(Some(response));
    let client = Decompression::new(service_fn(move |_request: Request<()>| {
        let response = slot.lock().expect("not poisoned").take();
        std::future::ready(Ok::<_, Infallible>(response.expect("one request")))
    }));
    client.oneshot(Request::new(())).await.expect("infallible")
}

/// The same through hyper on a real socket: each event arrives before the next is sent.
#[tokio::test]
async fn compression_layer_over_a_socket_streams_event_by_event() {
    let (events, rx) = unbounded();
    let service = ServiceBuilder::new()
        .layer(CompressionLayer::new())
        .layer(SseLayer::new())
        .service(channel_service(rx));
    let server = support::serve(service).await;

    let (mut sender, _connection) = support::client::http1(server.addr).await;
    let request = Request::get(format!("http://{}/events", server.addr))
        .header(header::ACCEPT, "text/event-stream")
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    let response = guarded("response", sender.send_request(request))
        .await
        .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert!(!response.headers().contains_key(header::CONTENT_ENCODING));

    let mut body = response.into_body();
    let mut decoder = Decoder::new();
    for n in 1..=5 {
        events.unbounded_send(tick(n)).expect("the server is alive");
        let event = guarded(&format!("event {n}"), next_event(&mut body, &mut decoder))
            .await
            .expect("the body is open");
        assert_eq!(evs_of(&[event]), ticks([n]));
    }
    drop(events);
    assert!(
        guarded("end", next_event(&mut body, &mut decoder))
            .await
            .is_none(),
        "the body ends cleanly"
    );
    assert!(!decoder.finish());
    server.stop.cancel();
}

/// The next event from `body`; `None` when it ends.
async fn next_event<B>(body: &mut B, decoder: &mut Decoder) -> Option<DecodedEvent>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    loop {
        if let Some(event) = decoder.next_event() {
            return Some(event);
        }
        let frame = body.frame().await?.expect("the body does not fail");
        if let Ok(data) = frame.into_data() {
            decoder.push(&data).expect("within the decoder limits");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request timeouts: the head, not the body
// ---------------------------------------------------------------------------------------

const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
const TICK: Duration = Duration::from_millis(500);
const TICKS: u64 = 10;

/// `TICKS` events, one every `TICK`: the last one comes 5 s after the head, five times the
/// request timeout.
fn slow_ticks() -> impl Stream<Item = Event> + Send + 'static {
    futures::stream::iter(1..=TICKS).then(|n| async move {
        tokio::time::sleep(TICK).await;
        tick(n)
    })
}

/// Reads the whole body; returns the events and when each arrived, counted from `start`.
async fn timed_events<B>(body: B, start: Instant) -> Vec<(DecodedEvent, Duration)>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut body = Box::pin(body);
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    while let Some(event) = next_event(&mut body, &mut decoder).await {
        events.push((event, start.elapsed()));
    }
    assert!(!decoder.finish(), "the body ended after a complete event");
    events
}

/// All `TICKS` events arrived, on the stream's schedule, most of them after the timeout.
fn assert_outlived_timeout(events: &[(DecodedEvent, Duration)]) {
    let decoded: Vec<DecodedEvent> = events.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(evs_of(&decoded), ticks(1..=TICKS));
    for (n, (_, at)) in (1..=TICKS).zip(events) {
        let due = TICK * u32::try_from(n).expect("small");
        assert!(
            *at >= due,
            "event {n} at {at:?}, before it was produced ({due:?})"
        );
    }
    let late = events
        .iter()
        .filter(|(_, at)| *at > REQUEST_TIMEOUT)
        .count();
    assert_eq!(late, 8, "events 3..=10 come after the request timeout");
}

#[tokio::test(start_paused = true)]
async fn tower_http_request_timeout_bounds_the_head_not_the_body() {
    let timeout = tower_http::timeout::TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        REQUEST_TIMEOUT,
    );
    let app = Router::new()
        .route("/ticks", get(|| async { Sse::new(slow_ticks()) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
                Sse::new(slow_ticks())
            }),
        )
        .layer(SseLayer::new())
        .layer(timeout);

    let start = Instant::now();
    let response = app
        .clone()
        .oneshot(axum_get("/ticks"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let events = timed_events(response.into_body(), start).await;
    assert_outlived_timeout(&events);

    // The timeout is live: a handler that takes longer to answer gets 408.
    let start = Instant::now();
    let response = app.oneshot(axum_get("/slow")).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(start.elapsed(), REQUEST_TIMEOUT);
}

fn axum_get(path: &str) -> Request<axum::body::Body> {
    Request::get(path)
        .header(header::ACCEPT, "text/event-stream")
        .body(axum::body::Body::empty())
        .expect("a valid request")
}

#[tokio::test(start_paused = true)]
async fn tower_request_timeout_bounds_the_head_not_the_body() {
    let service = |head_delay: Duration| {
        ServiceBuilder::new()
            .layer(tower::timeout::TimeoutLayer::new(REQUEST_TIMEOUT))
            .layer(SseLayer::new())
            .service_fn(move |_request: Request<()>| async move {
                tokio::time::sleep(head_delay).await;
                Ok::<_, Infallible>(Sse::new(slow_ticks()).into_response())
            })
    };

    let start = Instant::now();
    let response = service(Duration::ZERO)
        .oneshot(Request::new(()))
        .await
        .expect("the head comes at once");
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let events = timed_events(response.into_body(), start).await;
    assert_outlived_timeout(&events);

    // The timeout is live: a head that takes longer fails with `Elapsed`.
    let error = service(REQUEST_TIMEOUT * 2)
        .oneshot(Request::new(()))
        .await
        .expect_err("the head is late");
    assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
}

// ---------------------------------------------------------------------------------------
// ResponseBodyTimeoutLayer: an idle timeout, reset by every frame, keep-alive included
// ---------------------------------------------------------------------------------------

/// An idle stream behind `ResponseBodyTimeoutLayer::new(body_timeout)`.
async fn idle_stream_behind_body_timeout(
    body_timeout: Duration,
) -> (
    UnboundedSender<Event>,
    impl Body<Data = Bytes, Error = BoxError> + Unpin,
) {
    let (events, rx) = unbounded();
    let service = ServiceBuilder::new()
        .layer(ResponseBodyTimeoutLayer::new(body_timeout))
        .layer(SseLayer::new())
        .service(channel_service(rx));
    let response = service
        .oneshot(get_events("identity"))
        .await
        .expect("infallible");
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    (events, Box::pin(response.into_body()))
}

#[tokio::test(start_paused = true)]
async fn body_timeout_longer_than_the_keep_alive_never_fires_on_an_idle_stream() {
    let body_timeout = KEEP_ALIVE * 2;
    let (events, mut body) = idle_stream_behind_body_timeout(body_timeout).await;
    let start = Instant::now();
    let idle = Duration::from_secs(600);
    let mut pings = 0;
    while start.elapsed() < idle {
        let frame = body
            .frame()
            .await
            .expect("the body stays open")
            .expect("the body timeout never fires");
        assert_eq!(frame.into_data().expect("data"), Bytes::from_static(b":\n"));
        pings += 1;
        assert_eq!(start.elapsed(), KEEP_ALIVE * pings, "ping {pings}");
    }
    assert_eq!(pings, 40, "ten idle minutes, a ping every 15 s");

    // Still streaming.
    events.unbounded_send(tick(1)).expect("the body is alive");
    let frame = body.frame().await.expect("open").expect("no timeout");
    assert_eq!(frame.into_data().expect("data"), wire(1));
}

#[tokio::test(start_paused = true)]
async fn body_timeout_shorter_than_the_keep_alive_cuts_an_idle_stream() {
    let body_timeout = Duration::from_secs(10);
    assert!(body_timeout < KEEP_ALIVE);
    let (events, mut body) = idle_stream_behind_body_timeout(body_timeout).await;

    // Events every 5 s keep it open...
    let start = Instant::now();
    for n in 1..=3 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        events.unbounded_send(tick(n)).expect("the body is alive");
        let frame = body.frame().await.expect("open").expect("no timeout yet");
        assert_eq!(frame.into_data().expect("data"), wire(n));
    }
    // ...but the first quiet spell ends it before the keep-alive is due: hyper then closes
    // the connection and the client reconnects, every quiet 10 s.
    let quiet_from = start.elapsed();
    let error = body
        .frame()
        .await
        .expect("an error, not a clean end")
        .expect_err("the body timeout fires");
    assert!(error.is::<TimeoutError>(), "{error}");
    assert_eq!(start.elapsed() - quiet_from, body_timeout);
    drop(events);
}
