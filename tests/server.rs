//! `SseLayer` and `Sse` on real sockets (127.0.0.1 only): hyper 1 over HTTP/1.1 and h2c,
//! graceful shutdown with many open streams, and client disconnects.
//!
//! Time is real here; every assertion is about events and bytes. Timeouts only turn a hang
//! into a failure.

mod support;

use support::client::{http1, http2};
use support::decoded::{ev, evs_of};
use support::wait::guarded;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, oneshot};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, service_fn};
use tower_sse::decode::{DecodedEvent, Decoder};
use tower_sse::layer::SseLayer;
use tower_sse::{CancellationToken, Event, LastEventId, Sse, SseBody};

use support::{TestServer, serve};

type Events = BoxStream<'static, Event>;

fn event(id: u64, data: impl Into<String>) -> Event {
    Event::new()
        .id(id.to_string())
        .expect("a number is a valid id")
        .data(data.into())
}

fn bye() -> Event {
    Event::new().event("bye").expect("a valid type").data("")
}

/// Reads a response body as a browser would: event by event.
struct EventReader {
    body: Incoming,
    decoder: Decoder,
}

impl EventReader {
    fn new(response: Response<Incoming>) -> Self {
        EventReader {
            body: response.into_body(),
            decoder: Decoder::new(),
        }
    }

    /// The next event; `Ok(None)` when the body ended cleanly.
    async fn next(&mut self) -> Result<Option<DecodedEvent>, hyper::Error> {
        loop {
            if let Some(event) = self.decoder.next_event() {
                return Ok(Some(event));
            }
            match self.body.frame().await {
                None => return Ok(None),
                Some(frame) => {
                    if let Ok(data) = frame?.into_data() {
                        self.decoder.push(&data).expect("within the decoder limits");
                    }
                }
            }
        }
    }

    /// All events up to the end of the body, and whether the body ended after a complete
    /// event (no unfinished bytes).
    async fn rest(&mut self) -> Result<(Vec<DecodedEvent>, bool), hyper::Error> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await? {
            events.push(event);
        }
        let clean = !self.decoder.finish();
        Ok((events, clean))
    }
}

fn get(addr: SocketAddr, path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .header(header::ACCEPT, "text/event-stream")
        .body(Empty::new())
        .expect("valid request")
}

fn assert_sse_headers(response: &Response<Incoming>) {
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(!headers.contains_key(header::CONTENT_LENGTH));
}

// ---------------------------------------------------------------------------------------
// HTTP/1.1: headers, events, resume
// ---------------------------------------------------------------------------------------

/// Events 1..=5 after the client's `Last-Event-ID`, then the end.
async fn numbered(req: Request<Incoming>) -> Result<Response<SseBody<Events>>, Infallible> {
    let after: u64 = req
        .extensions()
        .get::<LastEventId>()
        .and_then(|id| id.as_str().parse().ok())
        .unwrap_or(0);
    let events = stream::iter(after + 1..=5)
        .map(|n| event(n, format!("event {n}\nline two")))
        .boxed();
    Ok(Sse::new(events).into_response())
}

#[tokio::test]
async fn http1_serves_events_and_resumes_with_last_event_id() {
    let service = ServiceBuilder::new()
        .layer(SseLayer::new())
        .service_fn(numbered);
    let server = serve(service).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    let response = guarded("response", client.request(get(server.addr, "/events")))
        .await
        .expect("a response");
    assert_eq!(response.version(), Version::HTTP_11);
    assert_sse_headers(&response);
    let (events, clean) = guarded("body", EventReader::new(response).rest())
        .await
        .expect("the body ends without error");
    assert!(clean);
    let want: Vec<_> = (1..=5)
        .map(|n| {
            let data = format!("event {n}\nline two");
            ("message".to_owned(), data, n.to_string())
        })
        .collect();
    assert_eq!(evs_of(&events), want);

    let mut resume = get(server.addr, "/events");
    resume
        .headers_mut()
        .insert("last-event-id", HeaderValue::from_static("3"));
    let response = guarded("response", client.request(resume))
        .await
        .expect("a response");
    assert_sse_headers(&response);
    let (events, clean) = guarded("body", EventReader::new(response).rest())
        .await
        .expect("the body ends without error");
    assert!(clean);
    assert_eq!(evs_of(&events), want[3..]);
}

// ---------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------

/// One event, then nothing: a stream that never ends by itself.
fn endless() -> impl Stream<Item = Event> + Send + 'static {
    stream::iter([event(1, "hello")]).chain(stream::pending())
}

/// Without the shutdown token, `GracefulShutdown::shutdown()` would not complete here: each
/// HTTP/1.1 connection is in the middle of a response whose body never ends, and hyper's
/// graceful shutdown waits for in-flight responses. The server would hang until every client
/// left (or until an outer timeout dropped the connections, which clients see as network
/// errors, without the final event).
#[tokio::test]
async fn graceful_shutdown_completes_with_100_open_streams() {
    const CLIENTS: usize = 100;
    let token = CancellationToken::new();
    let service = ServiceBuilder::new()
        .layer(SseLayer::new().shutdown(token.clone()).final_event(bye()))
        .service_fn(|_req: Request<Incoming>| async {
            Ok::<_, Infallible>(Sse::new(endless()).into_response())
        });
    let TestServer { addr, stop, task } = serve(service).await;

    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(CLIENTS);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let ready = ready_tx.clone();
            tokio::spawn(async move {
                let (mut sender, _connection) = http1(addr).await;
                let response = sender.send_request(get(addr, "/events")).await?;
                assert_sse_headers(&response);
                let mut reader = EventReader::new(response);
                let first = reader.next().await?.expect("a first event");
                ready.send(()).await.expect("the test is waiting");
                let (rest, clean) = reader.rest().await?;
                Ok::<_, hyper::Error>((first, rest, clean))
            })
        })
        .collect();
    drop(ready_tx);
    for _ in 0..CLIENTS {
        guarded("first events", ready_rx.recv())
            .await
            .expect("every client got its first event");
    }

    token.cancel();
    stop.cancel();
    guarded("graceful shutdown", task)
        .await
        .expect("the server task does not panic");

    for client in clients {
        let (first, rest, clean) = guarded("client", client)
            .await
            .expect("the client task does not panic")
            .expect("the body ends without a transport error");
        assert_eq!(evs_of(&[first]), [ev("message", "hello", "1")]);
        assert_eq!(evs_of(&rest), [ev("bye", "", "1")]);
        assert!(clean, "the stream ended after a complete event");
    }
}

// ---------------------------------------------------------------------------------------
// HTTP/2
// ---------------------------------------------------------------------------------------

const H2_EVENTS: u64 = 5;

/// `H2_EVENTS` events for `?stream=N`, then the end; the response carries hop-by-hop headers
/// an HTTP/1 handler might set.
async fn per_stream(req: Request<Incoming>) -> Result<Response<SseBody<Events>>, Infallible> {
    assert_eq!(req.version(), Version::HTTP_2);
    let stream_no = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("stream="))
        .unwrap_or("?")
        .to_owned();
    let events = stream::iter(1..=H2_EVENTS)
        .map(move |n| event(n, format!("stream {stream_no} event {n}")))
        .boxed();
    let mut response = Sse::new(events).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(response)
}

const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Opens 100 streams on one HTTP/2 connection to `addr` and checks each receives all its
/// events and no hop-by-hop header.
async fn hundred_h2_streams(addr: SocketAddr) {
    let sender = http2(addr).await;
    let streams: Vec<_> = (0..100)
        .map(|i| {
            let mut sender = sender.clone();
            tokio::spawn(async move {
                sender.ready().await?;
                let response = sender
                    .send_request(get(addr, &format!("/events?stream={i}")))
                    .await?;
                assert_eq!(response.version(), Version::HTTP_2);
                assert_sse_headers(&response);
                for name in HOP_BY_HOP {
                    assert!(!response.headers().contains_key(name), "{name}");
                }
                let (events, clean) = EventReader::new(response).rest().await?;
                assert!(clean);
                let want: Vec<_> = (1..=H2_EVENTS)
                    .map(|n| {
                        let data = format!("stream {i} event {n}");
                        ("message".to_owned(), data, n.to_string())
                    })
                    .collect();
                assert_eq!(evs_of(&events), want);
                Ok::<_, hyper::Error>(())
            })
        })
        .collect();
    for stream in streams {
        guarded("h2 stream", stream)
            .await
            .expect("the stream task does not panic")
            .expect("no transport error");
    }
}

#[tokio::test]
async fn h2c_serves_100_streams_on_one_connection_without_hop_by_hop_headers() {
    let service = ServiceBuilder::new()
        .layer(SseLayer::new())
        .service_fn(per_stream);
    let server = serve(service).await;
    hundred_h2_streams(server.addr).await;
}

/// hyper itself also removes these headers from HTTP/2 responses (logging a warning for
/// each), and with them every field a `Connection` header names; the layer removes them
/// before hyper sees them. This pins down hyper's part.
#[tokio::test]
async fn h2c_without_the_layer_hyper_strips_hop_by_hop_headers_too() {
    let service = service_fn(|req: Request<Incoming>| async move {
        let mut response = per_stream(req).await?;
        let headers = response.headers_mut();
        headers.insert("connection", HeaderValue::from_static("x-hop"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        Ok::<_, Infallible>(response)
    });
    let server = serve(service).await;
    let mut sender = http2(server.addr).await;
    let response = guarded(
        "response",
        sender.send_request(get(server.addr, "/events?stream=0")),
    )
    .await
    .expect("a response");
    for name in HOP_BY_HOP.into_iter().chain(["x-hop"]) {
        assert!(!response.headers().contains_key(name), "{name}");
    }
    let (events, clean) = guarded("body", EventReader::new(response).rest())
        .await
        .expect("no transport error");
    assert!(clean);
    assert_eq!(events.len() as u64, H2_EVENTS);
}

// ---------------------------------------------------------------------------------------
// Client disconnects
// ---------------------------------------------------------------------------------------

type Handler = BoxCloneService<Request<Incoming>, Response<SseBody<Events>>, Infallible>;

/// A handler whose streams send one event and then wait; each stream holds a sender that
/// is dropped with it, and the receivers are handed to the test.
fn watched() -> (Handler, mpsc::UnboundedReceiver<oneshot::Receiver<()>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let tx = Arc::new(Mutex::new(tx));
    let service = service_fn(move |_req: Request<Incoming>| {
        let (guard, dropped) = oneshot::channel::<()>();
        let _ = tx.lock().unwrap().send(dropped);
        let events = endless()
            .map(move |event| {
                let _held = &guard;
                event
            })
            .boxed();
        async move { Ok::<_, Infallible>(Sse::new(events).into_response()) }
    });
    (BoxCloneService::new(service), rx)
}

#[tokio::test]
async fn http1_client_disconnect_drops_the_server_stream() {
    let (handler, mut streams) = watched();
    let server = serve(
        ServiceBuilder::new()
            .layer(SseLayer::new())
            .service(handler),
    )
    .await;

    let (mut sender, connection) = http1(server.addr).await;
    let response = guarded("response", sender.send_request(get(server.addr, "/events")))
        .await
        .expect("a response");
    let mut reader = EventReader::new(response);
    let first = guarded("first event", reader.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.data, "hello");
    let mut dropped = streams.recv().await.expect("the handler ran");
    assert_eq!(dropped.try_recv(), Err(oneshot::error::TryRecvError::Empty));

    // The client goes away: body, request handle and socket.
    drop(reader);
    drop(sender);
    connection.abort();
    let _ = connection.await;

    let outcome = guarded("stream dropped on the server", dropped).await;
    assert!(outcome.is_err(), "the sender was dropped, never used");
}

#[tokio::test]
async fn h2_stream_reset_drops_the_server_stream_and_keeps_the_others() {
    let (handler, mut streams) = watched();
    let server = serve(
        ServiceBuilder::new()
            .layer(SseLayer::new())
            .service(handler),
    )
    .await;
    let mut sender = http2(server.addr).await;

    let mut readers = Vec::new();
    let mut drops = Vec::new();
    for _ in 0..2 {
        let response = guarded("response", sender.send_request(get(server.addr, "/events")))
            .await
            .expect("a response");
        let mut reader = EventReader::new(response);
        let first = guarded("first event", reader.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.data, "hello");
        readers.push(reader);
        drops.push(streams.recv().await.expect("the handler ran"));
    }

    // Dropping one response body resets that stream only.
    drop(readers.remove(0));
    let mut kept = drops.pop().expect("two streams");
    let outcome = guarded(
        "stream dropped on the server",
        drops.pop().expect("two streams"),
    )
    .await;
    assert!(outcome.is_err(), "the sender was dropped, never used");
    assert_eq!(kept.try_recv(), Err(oneshot::error::TryRecvError::Empty));

    // The connection still serves new streams.
    let response = guarded("response", sender.send_request(get(server.addr, "/events")))
        .await
        .expect("a response");
    let first = guarded("first event", EventReader::new(response).next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.data, "hello");
}
