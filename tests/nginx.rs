//! The examples behind a real nginx (Debian package `nginx`), configured as docs/nginx.md
//! says, and with nginx's defaults to show what `X-Accel-Buffering: no` is for.
//!
//! ```text
//! bash .ci/run                                              # installs nginx, runs everything
//! cargo test --all-features --test nginx -- --include-ignored
//! ```
//!
//! Each test starts the example in-process on 127.0.0.1, and nginx as a child process (no
//! daemon, no master process) with its configuration, pid file, logs and temporary files in
//! a directory of its own; nginx is killed when the test ends. `$NGINX` names the binary if
//! it is not `/usr/sbin/nginx` or on `PATH`.
//!
//! "Streaming" is checked by order, not by the clock: the test counts the `tick` events the
//! example has written, and the first one must reach the client through nginx before the
//! last one is written. Timeouts only turn a hang into a failure.

#[path = "../examples/axum.rs"]
#[allow(dead_code)]
mod axum_example;
#[path = "../examples/chat/app.rs"]
#[allow(dead_code)]
mod chat_app;

mod support;

use support::wait::{GUARD, guarded};

use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body as AxumBody;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tower::{BoxError, ServiceExt, service_fn};
use tower_http::decompression::Decompression;
use tower_http::map_response_body::MapResponseBodyLayer;
use tower_sse::CancellationToken;
use tower_sse::decode::{DecodedEvent, Decoder};

const HOW_TO_INSTALL: &str = "install the Debian package `nginx` \
     (`apt-get install -y nginx`; `bash .ci/run` does), or set $NGINX to an nginx binary";

// ---------------------------------------------------------------------------------------
// nginx as a child process
// ---------------------------------------------------------------------------------------

/// `@DIR@`, `@PORT@` and `@UPSTREAM@` are filled in by [`Nginx::start`].
const CONFIG: &str = r#"
daemon off;
master_process off;
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log notice;

events {
    worker_connections 256;
}

http {
    access_log off;
    client_body_temp_path @DIR@/client_body;
    proxy_temp_path @DIR@/proxy;
    fastcgi_temp_path @DIR@/fastcgi;
    uwsgi_temp_path @DIR@/uwsgi;
    scgi_temp_path @DIR@/scgi;

    upstream app {
        server @UPSTREAM@;
        keepalive 8;
    }

    server {
        listen 127.0.0.1:@PORT@;

        # The configuration docs/nginx.md recommends.
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
        }

        # nginx's defaults: an HTTP/1.0 upstream and buffering on. The response's
        # `X-Accel-Buffering: no` is what turns the buffering off.
        location /defaults/ {
            proxy_pass http://app/;
        }

        # The same, told to ignore `X-Accel-Buffering`.
        location /ignoring-x-accel/ {
            proxy_pass http://app/;
            proxy_ignore_headers X-Accel-Buffering;
        }

        # Compressing event streams, against the advice of docs/nginx.md: unbuffered...
        location /gzip/ {
            proxy_pass http://app/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            gzip on;
            gzip_types text/event-stream;
            gzip_min_length 0;
        }

        # ...and buffered (HTTP/1.1 upstream, `X-Accel-Buffering` ignored).
        location /gzip-buffered/ {
            proxy_pass http://app/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ignore_headers X-Accel-Buffering;
            gzip on;
            gzip_types text/event-stream;
            gzip_min_length 0;
        }
    }
}
"#;

/// A running nginx; killed, and its directory removed, on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx in front of `upstream` and waits until it accepts connections.
    fn start(upstream: SocketAddr) -> Nginx {
        let binary = nginx_binary();
        let mut last_error = String::new();
        // The port is picked by binding and releasing it; another process may take it in
        // between, so a failed bind is retried on a new port.
        for attempt in 0..5 {
            let dir = fresh_dir(attempt);
            let port = free_port();
            let config = CONFIG
                .replace("@DIR@", dir.to_str().expect("a UTF-8 temporary path"))
                .replace("@PORT@", &port.to_string())
                .replace("@UPSTREAM@", &upstream.to_string());
            let config_path = dir.join("nginx.conf");
            std::fs::write(&config_path, config).expect("write nginx.conf");
            let child = Command::new(&binary)
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match child {
                Ok(child) => child,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    panic!("cannot run {}: {e}; {HOW_TO_INSTALL}", binary.display());
                }
            };
            let mut nginx = Nginx {
                child,
                dir,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            match nginx.wait_until_ready() {
                Ok(()) => return nginx,
                Err(error) => last_error = error,
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = self.child.try_wait().expect("nginx status") {
                return Err(format!("nginx exited with {status}:\n{}", self.error_log()));
            }
            if StdStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no connection after {GUARD:?}:\n{}",
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `$NGINX`, else `/usr/sbin/nginx`, else `nginx` on `PATH`; panics with the way to install
/// it when there is none.
fn nginx_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NGINX") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    [Path::new("/usr/sbin"), Path::new("/usr/local/sbin")]
        .into_iter()
        .map(Path::to_path_buf)
        .chain(on_path)
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("nginx not found; {HOW_TO_INSTALL}"))
}

fn fresh_dir(attempt: u32) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("nginx-{}-{n}-{attempt}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the nginx directory");
    dir
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

// ---------------------------------------------------------------------------------------
// The axum example, with a count of the events it has written
// ---------------------------------------------------------------------------------------

/// A response body that counts the `tick` events passing through it.
struct Counting {
    inner: AxumBody,
    written: Arc<AtomicUsize>,
}

impl Body for Counting {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if let Some(data) = frame.data_ref() {
                let ticks = data
                    .windows(b"event: tick\n".len())
                    .filter(|w| *w == b"event: tick\n")
                    .count();
                self.written.fetch_add(ticks, Ordering::SeqCst);
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

/// Serves `router` on 127.0.0.1 with an OS-chosen port.
async fn serve(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    addr
}

/// The axum example; the counter says how many `tick` events it has written so far.
async fn serve_ticks() -> (SocketAddr, Arc<AtomicUsize>) {
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    let router = axum_example::app().layer(MapResponseBodyLayer::new(move |inner| {
        AxumBody::new(Counting {
            inner,
            written: counter.clone(),
        })
    }));
    (serve(router).await, written)
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Response<Incoming> {
    let what = format!("{} {}", request.method(), request.uri());
    guarded(&what, client.request(request))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn sse_request(url: &str, last_event_id: Option<&str>) -> Request<Full<Bytes>> {
    let mut request = Request::get(url).header(header::ACCEPT, "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.body(Full::default()).expect("a valid request")
}

/// Reads a response body event by event, as `EventSource` does.
struct EventReader {
    body: UnsyncBoxBody<Bytes, BoxError>,
    decoder: Decoder,
}

impl EventReader {
    fn new<B>(response: Response<B>) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        EventReader {
            body: response.into_body().map_err(Into::into).boxed_unsync(),
            decoder: Decoder::new(),
        }
    }

    /// The next event; `None` when the body ended cleanly.
    async fn next(&mut self) -> Option<DecodedEvent> {
        guarded("the next event", async {
            loop {
                if let Some(event) = self.decoder.next_event() {
                    return Some(event);
                }
                let frame = self.body.frame().await?.expect("the body does not fail");
                if let Ok(data) = frame.into_data() {
                    self.decoder.push(&data).expect("within the decoder limits");
                }
            }
        })
        .await
    }

    /// The next event of type `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> DecodedEvent {
        loop {
            let event = self.next().await.expect("the stream is open");
            if event.event_type == kind {
                return event;
            }
        }
    }
}

/// A received `tick`: its id, the `last_event_id` the request resumed from, and how many
/// ticks the example had written when it arrived.
#[derive(Debug)]
struct Tick {
    id: String,
    resumed_from: Option<String>,
    written_before_arrival: usize,
}

/// Reads every tick of a response; checks the body ends after a complete event.
async fn read_ticks(reader: &mut EventReader, written: &AtomicUsize) -> Vec<Tick> {
    let mut ticks = Vec::new();
    while let Some(event) = reader.next().await {
        let written_before_arrival = written.load(Ordering::SeqCst);
        assert_eq!(event.event_type, "tick", "{event:?}");
        let data: serde_json::Value = serde_json::from_str(&event.data).expect("JSON data");
        assert_eq!(data["n"].to_string(), event.last_event_id, "{event:?}");
        ticks.push(Tick {
            id: event.last_event_id,
            resumed_from: data["last_event_id"].as_str().map(str::to_owned),
            written_before_arrival,
        });
    }
    assert!(
        !reader.decoder.finish(),
        "the body ended after a complete event"
    );
    ticks
}

fn ids(ticks: &[Tick]) -> Vec<&str> {
    ticks.iter().map(|t| t.id.as_str()).collect()
}

fn assert_sse_headers(response: &Response<Incoming>) {
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    assert!(!headers.contains_key(header::CONTENT_LENGTH), "{headers:?}");
    // nginx acts on `X-Accel-*` headers and does not pass them on.
    assert!(!headers.contains_key("x-accel-buffering"), "{headers:?}");
}

const COUNT: usize = 6;

/// Ticks from `path` through nginx: all `COUNT` of them, in order, ids 1..=COUNT.
async fn ticks_through(
    nginx: &Nginx,
    path: &str,
    written: &AtomicUsize,
) -> (Vec<Tick>, Option<Duration>) {
    written.store(0, Ordering::SeqCst);
    let url = nginx.url(&format!(
        "{path}?count={COUNT}&interval_ms=300&retry_ms=1000"
    ));
    let response = send(&client(), sse_request(&url, None)).await;
    assert_sse_headers(&response);
    assert!(!response.headers().contains_key(header::CONTENT_ENCODING));
    let mut reader = EventReader::new(response);
    let ticks = read_all_ticks(&mut reader, written, path).await;
    (ticks, reader.decoder.retry())
}

/// All `COUNT` ticks of `reader`, in order, each arriving after it was written.
async fn read_all_ticks(reader: &mut EventReader, written: &AtomicUsize, path: &str) -> Vec<Tick> {
    let ticks = read_ticks(reader, written).await;
    let want: Vec<String> = (1..=COUNT).map(|n| n.to_string()).collect();
    assert_eq!(ids(&ticks), want, "through {path}");
    for (n, tick) in (1..).zip(&ticks) {
        assert!(
            tick.written_before_arrival >= n,
            "tick {n} arrived before it was written: {tick:?}"
        );
    }
    ticks
}

/// The first tick reached the client before the example wrote the last one.
fn assert_streamed(ticks: &[Tick], path: &str) {
    assert!(
        ticks[0].written_before_arrival < COUNT,
        "through {path} the first tick arrived only after all {COUNT} were written: \
         nginx buffered the stream ({ticks:?})"
    );
}

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
#[ignore = "needs nginx: run bash .ci/run"]
async fn ticks_stream_through_nginx_one_by_one() {
    let (upstream, written) = serve_ticks().await;
    let nginx = Nginx::start(upstream);

    let (ticks, retry) = ticks_through(&nginx, "/ticks", &written).await;
    assert_streamed(&ticks, "the recommended configuration");
    assert_eq!(
        retry,
        Some(Duration::from_millis(1000)),
        "the retry hint passes"
    );
    assert!(ticks.iter().all(|t| t.resumed_from.is_none()));
}

#[tokio::test]
#[ignore = "needs nginx: run bash .ci/run"]
async fn last_event_id_passes_through_nginx_and_resumes() {
    let (upstream, written) = serve_ticks().await;
    let nginx = Nginx::start(upstream);

    let url = nginx.url("/ticks?count=2&interval_ms=300");
    let response = send(&client(), sse_request(&url, Some("3"))).await;
    assert_sse_headers(&response);
    let ticks = read_ticks(&mut EventReader::new(response), &written).await;
    assert_eq!(ids(&ticks), ["4", "5"]);
    for tick in &ticks {
        assert_eq!(tick.resumed_from.as_deref(), Some("3"), "{tick:?}");
    }

    // The query fallback passes too (a page reload, a polyfill).
    let url = nginx.url("/ticks?count=1&interval_ms=300&lastEventId=9");
    let response = send(&client(), sse_request(&url, None)).await;
    let ticks = read_ticks(&mut EventReader::new(response), &written).await;
    assert_eq!(ids(&ticks), ["10"]);
    assert_eq!(ticks[0].resumed_from.as_deref(), Some("9"));
}

/// With nginx's defaults (HTTP/1.0 upstream, `proxy_buffering on`) the stream still
/// arrives event by event, because the response says `X-Accel-Buffering: no`; the same
/// location told to ignore that header holds every event until the response ends.
#[tokio::test]
#[ignore = "needs nginx: run bash .ci/run"]
async fn x_accel_buffering_turns_nginx_buffering_off() {
    let (upstream, written) = serve_ticks().await;
    let nginx = Nginx::start(upstream);

    let (ticks, _) = ticks_through(&nginx, "/defaults/ticks", &written).await;
    assert_streamed(&ticks, "nginx's defaults");

    let (ticks, _) = ticks_through(&nginx, "/ignoring-x-accel/ticks", &written).await;
    assert_eq!(
        ticks[0].written_before_arrival, COUNT,
        "without the header nginx buffers: the first tick comes with the last ({ticks:?})"
    );
}

/// nginx's gzip on an event stream: it flushes after every upstream read when unbuffered,
/// and holds every event until the response ends when buffering is on.
#[tokio::test]
#[ignore = "needs nginx: run bash .ci/run"]
async fn nginx_gzip_streams_only_while_unbuffered() {
    let (upstream, written) = serve_ticks().await;
    let nginx = Nginx::start(upstream);

    for (path, streams) in [("/gzip/ticks", true), ("/gzip-buffered/ticks", false)] {
        written.store(0, Ordering::SeqCst);
        let url = nginx.url(&format!("{path}?count={COUNT}&interval_ms=300"));
        let mut request = sse_request(&url, None);
        request.headers_mut().insert(
            header::ACCEPT_ENCODING,
            "gzip".parse().expect("a header value"),
        );
        let response = send(&client(), request).await;
        assert_sse_headers(&response);
        assert_eq!(
            response.headers()[header::CONTENT_ENCODING],
            "gzip",
            "{path}"
        );
        let mut reader = EventReader::new(decompress(response).await);
        let ticks = read_all_ticks(&mut reader, &written, path).await;
        if streams {
            assert_streamed(&ticks, path);
        } else {
            assert_eq!(ticks[0].written_before_arrival, COUNT, "{path}: {ticks:?}");
        }
    }
}

/// Runs a received response through tower-http's `Decompression`, as a browser would.
async fn decompress(
    response: Response<Incoming>,
) -> Response<tower_http::decompression::DecompressionBody<Incoming>> {
    let slot = std::sync::Mutex::new(Some(response));
    let client = Decompression::new(service_fn(move |_request: Request<()>| {
        let response = slot.lock().expect("not poisoned").take();
        std::future::ready(Ok::<_, std::convert::Infallible>(
            response.expect("one request"),
        ))
    }));
    let response = client.oneshot(Request::new(())).await.expect("infallible");
    assert!(!response.headers().contains_key(header::CONTENT_ENCODING));
    response
}

/// The chat example behind nginx: sign in, open a stream, post, receive; then resume with
/// `Last-Event-ID` and get what was posted in between, and nothing before.
#[tokio::test]
#[ignore = "needs nginx: run bash .ci/run"]
async fn chat_works_through_nginx() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream = listener.local_addr().expect("address");
    let shutdown = CancellationToken::new();
    tokio::spawn(chat_app::serve(
        listener,
        chat_app::Config::default(),
        shutdown.clone(),
    ));
    let nginx = Nginx::start(upstream);
    let client = client();

    let response = send(
        &client,
        json_request(&nginx, "/session", None, r#"{"name":"ada"}"#),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ASCII")
        .split(';')
        .next()
        .expect("a cookie")
        .to_owned();

    let stream = |last_event_id: Option<&str>| {
        let mut request = sse_request(&nginx.url("/events?rooms=lobby"), last_event_id);
        request
            .headers_mut()
            .insert(header::COOKIE, cookie.parse().expect("a header value"));
        request
    };

    let response = send(&client, stream(None)).await;
    assert_sse_headers(&response);
    let mut events = EventReader::new(response);
    events.next_of("hello").await;

    let first = post(&client, &nginx, &cookie, "through nginx").await;
    let chat = events.next_of("chat").await;
    assert_eq!(chat.last_event_id, first);
    let data: serde_json::Value = serde_json::from_str(&chat.data).expect("JSON");
    assert_eq!(data["text"], "through nginx");
    assert_eq!(data["from"], "ada");
    drop(events);

    let second = post(&client, &nginx, &cookie, "while away").await;
    let response = send(&client, stream(Some(&first))).await;
    assert_sse_headers(&response);
    let mut events = EventReader::new(response);
    let chat = events.next_of("chat").await;
    assert_eq!(chat.last_event_id, second);
    let data: serde_json::Value = serde_json::from_str(&chat.data).expect("JSON");
    assert_eq!(data["text"], "while away");

    drop(events);
    shutdown.cancel();
}

fn json_request(
    nginx: &Nginx,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(nginx.url(path))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .expect("a valid request")
}

/// Posts `text` to the lobby; returns the message's event id.
async fn post(client: &HttpClient, nginx: &Nginx, cookie: &str, text: &str) -> String {
    let body = serde_json::json!({ "text": text }).to_string();
    let request = json_request(nginx, "/rooms/lobby/messages", Some(cookie), &body);
    let response = send(client, request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let bytes = guarded("the answer", response.into_body().collect())
        .await
        .expect("a body")
        .to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    answer["id"].as_str().expect("an id").to_owned()
}
