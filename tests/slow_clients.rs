//! Slow, stalled and vanished clients over real sockets on 127.0.0.1: a hub topic served by
//! hyper, read by many clients, one of which stops reading; clients that disappear with a
//! TCP reset; a stalled peer on an idle stream.
//!
//! What bounds memory when a client stops reading: its socket buffers fill, hyper queues a
//! bounded number of frames and then stops polling the response body, so the subscription
//! is not polled either. The publisher never waits for it: the topic's ring moves on within
//! its caps and the stalled cursor falls behind. A subscription only notices that when it is
//! polled again: when the client reads again (it gets the events it could still be given, in
//! order, then the end of the stream, by the overflow policy) or never, if the connection
//! fails first (the subscription is then dropped with the body).
//!
//! Time is real here; assertions are about events, counts and bytes, never about how long
//! something took. Timeouts only turn a hang into a failure. Latencies and memory are
//! printed as figures (`cargo test --release --test slow_clients -- --nocapture`).

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tower_sse::decode::{DecodedEvent, Decoder};
use tower_sse::hub::{Hub, HubStats, OverflowPolicy};
use tower_sse::{Event, KeepAlive, Sse};

use support::BoxError;
use support::rss::{mib, rss_bytes};
use support::wait::{guarded_for, wait_until_for};

/// Only guards against hanging; nothing here should come close.
const GUARD: Duration = Duration::from_secs(180);

async fn guarded<F: Future>(what: &str, future: F) -> F::Output {
    guarded_for(GUARD, what, future).await
}

/// The resident memory of this process (server and clients), for printing.
fn rss_mib() -> f64 {
    rss_bytes().map_or(f64::NAN, mib)
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// How each response stream is configured.
#[derive(Clone)]
struct StreamConfig {
    topic: &'static str,
    keep_alive: KeepAlive,
    max_lifetime: Option<Duration>,
    coalesce_budget: usize,
}

/// A hyper HTTP/1.1 server on 127.0.0.1 whose every response is a subscription to one topic.
struct Server {
    addr: SocketAddr,
    /// Connections whose task is still running.
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts a connection while its task runs.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `hub` on 127.0.0.1. `send_buffer` sets `SO_SNDBUF` on the listener, which accepted
/// sockets inherit: a fixed size keeps the kernel from growing the buffer of a stalled
/// connection, so it fills after a known amount.
async fn serve(hub: &Hub, config: StreamConfig, send_buffer: Option<u32>) -> Server {
    let socket = TcpSocket::new_v4().expect("a socket");
    if let Some(size) = send_buffer {
        socket.set_send_buffer_size(size).expect("SO_SNDBUF");
    }
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind 127.0.0.1:0");
    let listener = socket.listen(2048).expect("listen");
    let addr = listener.local_addr().expect("local address");
    let connections = Arc::new(AtomicUsize::new(0));
    let hub = hub.clone();
    let counted = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let open = Open(Arc::clone(&counted));
            let hub = hub.clone();
            let config = config.clone();
            tokio::spawn(async move {
                let _open = open;
                let service = service_fn(move |_req: Request<Incoming>| {
                    let subscription = hub
                        .subscribe([config.topic], None)
                        .expect("the hub accepts the subscription");
                    let mut sse = Sse::new(subscription)
                        .keep_alive(config.keep_alive.clone())
                        .coalesce_budget(config.coalesce_budget);
                    if let Some(lifetime) = config.max_lifetime {
                        sse = sse.max_lifetime(lifetime).lifetime_jitter(Duration::ZERO);
                    }
                    async move { Ok::<_, Infallible>(sse.into_response()) }
                });
                // A client that goes away is an error here; not a test failure.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server {
        addr,
        connections,
        task,
    }
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

/// A raw HTTP/1.1 request for the stream; with `Connection: close` the server closes the
/// connection once the response body ends.
fn raw_request(addr: SocketAddr) -> String {
    format!(
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Connection: close\r\n\r\n"
    )
}

/// Reads a raw response up to the end of its head; returns the head and the body bytes that
/// came with it.
async fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.expect("read the response head");
        assert!(n > 0, "the server closed before the response head");
        bytes.extend_from_slice(&buf[..n]);
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..at]).to_ascii_lowercase();
            return (head, bytes[at + 4..].to_vec());
        }
    }
}

/// Splits a complete response into its head and its de-chunked body; `true` when the body
/// ended with the last chunk (a clean end, not a cut connection).
fn parse_chunked_response(bytes: &[u8]) -> (String, Vec<u8>, bool) {
    let at = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&bytes[..at]).to_ascii_lowercase();
    let mut rest = &bytes[at + 4..];
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (head, body, false);
        };
        let size_text = std::str::from_utf8(&rest[..line_end]).expect("an ASCII chunk size");
        let size_text = size_text.split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text.trim(), 16).expect("a hex chunk size");
        rest = &rest[line_end + 2..];
        if size == 0 {
            return (head, body, true);
        }
        if rest.len() < size + 2 {
            body.extend_from_slice(&rest[..size.min(rest.len())]);
            return (head, body, false);
        }
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "chunk data ends with CRLF");
        rest = &rest[size + 2..];
    }
}

/// Events and whether the stream ended at an event boundary.
fn decode(body: &[u8]) -> (Vec<DecodedEvent>, bool) {
    let mut decoder = Decoder::new();
    decoder.push(body).expect("within the decoder limits");
    let mut events = Vec::new();
    while let Some(event) = decoder.next_event() {
        events.push(event);
    }
    let clean = !decoder.finish();
    (events, clean)
}

fn get(addr: SocketAddr) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}/events"))
        .header(header::ACCEPT, "text/event-stream")
        .body(Empty::new())
        .expect("a valid request")
}

// ---------------------------------------------------------------------------------------
// A stalled client among 1,000 readers of a busy topic
// ---------------------------------------------------------------------------------------

const READERS: usize = 1_000;
/// Events published before the stalled clients connect, and again after.
const PHASE_EVENTS: u64 = 1_500;
/// Ring caps of the busy topic.
const CAPACITY: usize = 128;
const TOPIC_BYTES: usize = 128 * 1024;
/// Data bytes of each event (plus its sequence number and send time).
const PAYLOAD: usize = 512;
/// The publisher stays at most this many events ahead of the slowest reader, well inside the
/// ring, so that no reader can fall behind however slow the machine is.
const WINDOW: u64 = 32;
/// The stalled clients' receive buffer, and the server's send buffer (fixed sizes: the
/// kernel does not grow them).
const STALLED_RECV_BUFFER: u32 = 4 * 1024;
const SERVER_SEND_BUFFER: u32 = 64 * 1024;
/// Frames are at most this big; hyper queues at most 16 of them before it stops polling.
const COALESCE_BUDGET: usize = 16 * 1024;

/// What a reader saw: the latency of each event of each phase, in microseconds.
struct Seen {
    before: Vec<u64>,
    during: Vec<u64>,
}

/// Reads the stream as a browser would and checks every event arrives, in order, once.
async fn reader(
    addr: SocketAddr,
    index: usize,
    acked: Arc<Vec<AtomicU64>>,
    origin: Instant,
    failed: Arc<AtomicBool>,
) -> Result<Seen, BoxError> {
    let outcome = async {
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let response = sender.send_request(get(addr)).await?;
        if response.status() != StatusCode::OK {
            return Err(format!("status {}", response.status()).into());
        }
        let mut body = response.into_body();
        let mut decoder = Decoder::new();
        let mut seen = Seen {
            before: Vec::with_capacity(PHASE_EVENTS as usize),
            during: Vec::with_capacity(PHASE_EVENTS as usize),
        };
        let mut next = 1u64;
        while next <= 2 * PHASE_EVENTS {
            let Some(frame) = body.frame().await else {
                return Err(format!("the stream ended before event {next}").into());
            };
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            decoder.push(&data)?;
            while let Some(event) = decoder.next_event() {
                let now = origin.elapsed().as_micros() as u64;
                let mut fields = event.data.split(' ');
                let seq: u64 = fields.next().unwrap_or_default().parse()?;
                let sent: u64 = fields.next().unwrap_or_default().parse()?;
                if event.event_type != "tick" || seq != next {
                    return Err(
                        format!("expected tick {next}, got {} {seq}", event.event_type).into(),
                    );
                }
                let latency = now.saturating_sub(sent);
                if seq <= PHASE_EVENTS {
                    seen.before.push(latency);
                } else {
                    seen.during.push(latency);
                }
                acked[index].store(seq, Ordering::Release);
                next += 1;
            }
        }
        Ok::<_, BoxError>(seen)
    }
    .await;
    if outcome.is_err() {
        failed.store(true, Ordering::Release);
    }
    outcome
}

/// A client that sends its request and then never reads, with a small receive buffer.
async fn stalled_client(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .set_recv_buffer_size(STALLED_RECV_BUFFER)
        .expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(raw_request(addr).as_bytes())
        .await
        .expect("send the request");
    stream
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn latency_line(label: &str, mut all: Vec<u64>) -> String {
    all.sort_unstable();
    format!(
        "{label}: {} deliveries, latency p50 {} us, p99 {} us, max {} us",
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(0),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_ended_by_the_overflow_policy_and_the_others_lose_nothing() {
    // Two descriptors per reader (client and server side) in this one process: raise the
    // soft limit as far as the hard limit allows, in case it is the common 1024.
    let _ = rlimit::increase_nofile_limit(4 * READERS as u64 + 256);
    let hub = Hub::builder()
        .capacity(CAPACITY)
        .max_topic_bytes(TOPIC_BYTES)
        .overflow(OverflowPolicy::End)
        .build();
    let config = StreamConfig {
        topic: "busy",
        keep_alive: KeepAlive::new(),
        max_lifetime: None,
        coalesce_budget: COALESCE_BUDGET,
    };
    let server = serve(&hub, config, Some(SERVER_SEND_BUFFER)).await;
    let origin = Instant::now();
    let rss_start = rss_mib();

    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..READERS).map(|_| AtomicU64::new(0)).collect());
    let failed = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|index| {
            tokio::spawn(reader(
                server.addr,
                index,
                Arc::clone(&acked),
                origin,
                Arc::clone(&failed),
            ))
        })
        .collect();
    wait_until_for(GUARD, "every reader subscribed", || {
        hub.stats().subscribers == READERS || failed.load(Ordering::Acquire)
    })
    .await;
    assert!(
        !failed.load(Ordering::Acquire),
        "a reader failed to connect"
    );

    let padding = "x".repeat(PAYLOAD);
    let mut peak = HubStats::default();
    let mut stalled = Vec::new();
    let mut rss_before_stall = f64::NAN;
    let publishing = async {
        for seq in 1..=2 * PHASE_EVENTS {
            if seq == PHASE_EVENTS + 1 {
                rss_before_stall = rss_mib();
                // Two clients that never read: one will read again, one will vanish.
                stalled.push(stalled_client(server.addr).await);
                stalled.push(stalled_client(server.addr).await);
                wait_until_for(GUARD, "the stalled clients subscribed", || {
                    hub.stats().subscribers == READERS + 2
                })
                .await;
            }
            // Flow control: stay within WINDOW of the slowest reader.
            loop {
                assert!(!failed.load(Ordering::Acquire), "a reader failed");
                let slowest = acked
                    .iter()
                    .map(|a| a.load(Ordering::Acquire))
                    .min()
                    .unwrap_or(0);
                if slowest + WINDOW >= seq {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let sent = origin.elapsed().as_micros();
            let event = Event::new()
                .event("tick")
                .expect("a valid type")
                .data(format!("{seq} {sent} {padding}"));
            hub.publish_now("busy", event).expect("publish");
            let stats = hub.stats();
            peak.bytes_held = peak.bytes_held.max(stats.bytes_held);
            peak.events_held = peak.events_held.max(stats.events_held);
        }
    };
    guarded("publishing", publishing).await;

    let mut before = Vec::new();
    let mut during = Vec::new();
    for reader in readers {
        let seen = guarded("reader", reader)
            .await
            .expect("the reader task does not panic")
            .expect("every reader receives every event, in order");
        assert_eq!(seen.before.len() as u64, PHASE_EVENTS);
        assert_eq!(seen.during.len() as u64, PHASE_EVENTS);
        before.extend(seen.before);
        during.extend(seen.during);
    }
    let rss_after = rss_mib();

    // Memory: the ring stayed within its caps however far behind the stalled clients were.
    assert!(peak.bytes_held <= TOPIC_BYTES, "{peak:?}");
    assert!(peak.events_held <= CAPACITY, "{peak:?}");

    // The readers have left. Nothing has polled the stalled subscriptions since their
    // sockets filled: they are still open, and no lag has been noticed yet.
    wait_until_for(GUARD, "the readers' subscriptions released", || {
        hub.stats().subscribers == 2
    })
    .await;
    assert_eq!(hub.stats().lagged_ends, 0, "{:?}", hub.stats());

    // One stalled client goes away without reading (unread data: the close is a reset). The
    // connection fails on hyper's side and the body is dropped, with the subscription,
    // without ever being polled: not an overflow end.
    let vanished = stalled.pop().expect("two stalled clients");
    vanished.set_zero_linger().expect("SO_LINGER 0");
    drop(vanished);
    wait_until_for(GUARD, "the vanished stalled client released", || {
        hub.stats().subscribers == 1
    })
    .await;
    assert_eq!(hub.stats().lagged_ends, 0);

    // The other reads again: hyper sends what it had queued, polls the body, the subscription
    // sees that its next events are gone and ends, by the overflow policy, at an event
    // boundary. The client got an unbroken run of events, then a clean end.
    let mut resumed = stalled.pop().expect("two stalled clients");
    let mut bytes = Vec::new();
    guarded(
        "the stalled client's response",
        resumed.read_to_end(&mut bytes),
    )
    .await
    .expect("read to the end");
    let (head, body, last_chunk) = parse_chunked_response(&bytes);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(last_chunk, "the body ended with the last chunk, not a cut");
    let (events, clean) = decode(&body);
    assert!(clean, "the stream ended at an event boundary");
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| {
            e.data
                .split(' ')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("a sequence number")
        })
        .collect();
    let first = PHASE_EVENTS + 1;
    let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "an unbroken run from its first event");
    assert!(
        (seqs.len() as u64) < PHASE_EVENTS,
        "the stalled client fell behind the ring; if it got all {PHASE_EVENTS} events the \
         buffers are larger than this test assumes"
    );
    let stats = hub.stats();
    assert_eq!(stats.lagged_ends, 1, "{stats:?}");
    assert_eq!(stats.subscribers, 0, "{stats:?}");

    println!(
        "{READERS} readers x {PHASE_EVENTS} events of {PAYLOAD} B per phase, ring {CAPACITY} \
         events / {TOPIC_BYTES} B"
    );
    println!("{}", latency_line("without a stalled client", before));
    println!("{}", latency_line("with two stalled clients", during));
    println!(
        "stalled client got {} events before the overflow end; hub peak {} events / {} B held",
        seqs.len(),
        peak.events_held,
        peak.bytes_held
    );
    println!(
        "process RSS (server and clients): start {rss_start:.1} MiB, before the stall \
         {rss_before_stall:.1} MiB, end {rss_after:.1} MiB"
    );
    hub.close();
    drop(server);
}

// ---------------------------------------------------------------------------------------
// Clients that vanish, and a stalled peer on an idle stream
// ---------------------------------------------------------------------------------------

const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// Opens a raw stream and waits until the server has subscribed it.
async fn open_raw(server: &Server, hub: &Hub) -> TcpStream {
    let before = hub.stats().subscribers;
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    stream
        .write_all(raw_request(server.addr).as_bytes())
        .await
        .expect("send the request");
    let (head, _) = guarded("response head", read_head(&mut stream)).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    wait_until_for(GUARD, "subscribed", || {
        hub.stats().subscribers == before + 1
    })
    .await;
    stream
}

/// Reads until a keep-alive comment arrives: the connection is alive and served.
async fn expect_ping(stream: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(n > 0, "the server closed a healthy stream");
        seen.extend_from_slice(&buf[..n]);
        // A ping is the chunk `:\n`: its size line, the comment, the chunk's CRLF.
        if seen.windows(7).any(|w| w == b"2\r\n:\n\r\n") {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_with_a_reset_is_released_within_the_keep_alive_interval() {
    let hub = Hub::new();
    let config = StreamConfig {
        topic: "quiet",
        keep_alive: KeepAlive::new().interval(KEEP_ALIVE),
        max_lifetime: None,
        coalesce_budget: tower_sse::DEFAULT_COALESCE_BUDGET,
    };
    let server = serve(&hub, config, None).await;

    // A healthy client that stays through it all.
    let mut healthy = open_raw(&server, &hub).await;
    let subscribers = hub.stats().subscribers;
    let connections = server.connections.load(Ordering::SeqCst);
    assert_eq!((subscribers, connections), (1, 1));

    for round in 0..3 {
        let vanishing = open_raw(&server, &hub).await;
        assert_eq!(hub.stats().subscribers, subscribers + 1);
        // SO_LINGER 0: the close sends RST and no FIN, as when a process is killed with
        // unread data or a middlebox resets the connection.
        vanishing.set_zero_linger().expect("SO_LINGER 0");
        let gone = Instant::now();
        drop(vanishing);
        // The server notices the reset at the latest when it next writes to the socket: the
        // keep-alive ping fails, hyper drops the connection and the body with its
        // subscription. In practice it is sooner: hyper keeps reading an HTTP/1.1
        // connection while it streams a response, and the reset wakes that read at once (the
        // printed figure). Several keep-alive intervals only guard against a hang.
        wait_until_for(KEEP_ALIVE * 10, "the vanished client released", || {
            hub.stats().subscribers == subscribers
                && server.connections.load(Ordering::SeqCst) == connections
        })
        .await;
        println!(
            "round {round}: released {:?} after the reset (keep-alive every {KEEP_ALIVE:?})",
            gone.elapsed()
        );
    }

    // The healthy client is still served.
    guarded("a ping on the healthy stream", expect_ping(&mut healthy)).await;
    assert_eq!(hub.stats().subscribers, subscribers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_peer_on_an_idle_stream_is_released_at_its_maximum_lifetime() {
    // A peer that stays connected but never reads: on an idle topic only keep-alive comments
    // flow, a few bytes that the socket buffers absorb for a very long time, so every write
    // succeeds and neither the overflow policy nor the keep-alive ever ends it. The
    // stream's maximum lifetime does: the body ends at an event boundary and is dropped
    // with its subscription.
    let lifetime = Duration::from_secs(2);
    let hub = Hub::new();
    let config = StreamConfig {
        topic: "idle",
        keep_alive: KeepAlive::new().interval(Duration::from_millis(200)),
        max_lifetime: Some(lifetime),
        coalesce_budget: tower_sse::DEFAULT_COALESCE_BUDGET,
    };
    let server = serve(&hub, config, None).await;
    let stalled = open_raw(&server, &hub).await;
    assert_eq!(hub.stats().subscribers, 1);
    wait_until_for(lifetime * 10, "the stalled peer released", || {
        hub.stats().subscribers == 0
    })
    .await;
    // The connection itself was asked to close (`Connection: close`) and hyper closed it.
    wait_until_for(lifetime * 10, "the connection closed", || {
        server.connections.load(Ordering::SeqCst) == 0
    })
    .await;
    drop(stalled);
}
