//! The two servers under test, both axum 0.8 routers with one route, `GET /events`:
//!
//! - **tower-sse**: a [`Hub`] topic; each connection is `Sse::new(hub.subscribe(..))`. An event
//!   is encoded once at publish and its bytes are shared by every connection.
//! - **axum**: `axum::response::sse` over a `tokio::sync::broadcast` channel, as axum's
//!   examples do it: each connection receives the message and builds its own `Event`.
//!
//! Both publish the same message at the same pace from a task inside the server process, so
//! the publishing work is part of the server's CPU time for both.
//!
//! With a [`RedisTarget`] (feature `redis`), the tower-sse server's hub is the hub over Redis
//! Streams: several server processes on the same key prefix are instances of one hub, and
//! the publishers of a run can share one schedule ([`Publish::slot`] and [`Publish::stride`]).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};
use tower_sse::Event;
use tower_sse::hub::Hub;

/// The topic every client follows.
const TOPIC: &str = "bench";
/// Bytes of padding in each message, for about 100 bytes of JSON.
const PAD: usize = 60;

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// tower-sse's hub and body.
    Tower,
    /// axum's SSE over a broadcast channel.
    Axum,
}

impl Kind {
    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tower => "tower-sse",
            Kind::Axum => "axum",
        }
    }

    /// Parses `tower` / `tower-sse` / `axum`.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "tower" | "tower-sse" => Some(Kind::Tower),
            "axum" => Some(Kind::Axum),
            _ => None,
        }
    }
}

/// How a run publishes.
///
/// Several publishers (in one server each) can share one schedule of `rate` messages per
/// second: with `stride` publishers, the one in `slot` publishes messages
/// `seq_base + slot + 1`, `seq_base + slot + 1 + stride`, ... (sequence numbers start after
/// `seq_base`), each at its time in the common schedule starting at `start_ns`. One publisher
/// alone has slot 0 and stride 1.
#[derive(Clone, Copy, Debug)]
pub struct Publish {
    /// Messages per second of the whole schedule; `0` publishes as fast as the server lets it
    /// (see `burst`).
    pub rate: u32,
    /// How long to publish.
    pub duration: Duration,
    /// With `rate == 0`: messages published between two yields to the scheduler, so the
    /// publisher gets one turn per round of the connection tasks.
    pub burst: u32,
    /// This publisher's share of the schedule, `0..stride`.
    pub slot: u32,
    /// How many publishers share the schedule (at least 1).
    pub stride: u32,
    /// When the schedule starts, in nanoseconds since the Unix epoch (the clock of
    /// [`now_ns`]); `0`: when the command arrives.
    pub start_ns: u64,
    /// The sequence number before this schedule's first: a server that publishes several
    /// times continues its sequence, so its clients see every message as new.
    pub seq_base: u64,
}

impl Publish {
    /// One publisher alone, starting at once.
    pub fn new(rate: u32, duration: Duration, burst: u32) -> Publish {
        Publish {
            rate,
            duration,
            burst,
            slot: 0,
            stride: 1,
            start_ns: 0,
            seq_base: 0,
        }
    }

    /// Messages in the whole schedule at a fixed rate (all publishers together).
    pub fn total(&self) -> u64 {
        (self.duration.as_secs_f64() * f64::from(self.rate)).round() as u64
    }
}

/// The Redis server and key prefix of a hub over Redis: every server with the same target is
/// an instance of one hub.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    /// `redis://host:port`.
    pub url: String,
    /// The key prefix (the stream is `<prefix>:events`).
    pub prefix: String,
}

/// What the publisher did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Published {
    /// Messages published.
    pub count: u64,
    /// Time from the first to the last publish.
    pub elapsed: Duration,
}

/// Server-side counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerStats {
    /// axum: messages skipped by lagging receivers (`RecvError::Lagged`); tower-sse:
    /// subscriptions ended because they fell behind the ring (the client resumes).
    pub lagged: u64,
    /// Open subscriptions (tower-sse) or receivers (axum).
    pub subscribers: u64,
}

/// A request to the running server.
pub enum Command {
    /// Publish, then reply.
    Publish(Publish, oneshot::Sender<Published>),
    /// Reply with the counters.
    Stats(oneshot::Sender<ServerStats>),
}

/// A listener on `127.0.0.1` with a backlog large enough for thousands of clients connecting
/// at once.
pub fn listen() -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    socket.listen(4096)
}

/// Builds the backend of `kind`: `capacity` is the ring size of both the hub topic and the
/// broadcast channel. With `redis`, the tower-sse hub is an instance of a hub over Redis
/// (feature `redis`; an error without it, and for axum).
pub async fn backend(
    kind: Kind,
    capacity: usize,
    redis: Option<&RedisTarget>,
) -> io::Result<Backend> {
    // The byte limits are raised so that `capacity` events always fit: the two rings then
    // hold the same number of messages.
    let hub = || {
        Hub::builder()
            .capacity(capacity)
            .max_topic_bytes(capacity.saturating_mul(512).max(1 << 20))
            .max_bytes(capacity.saturating_mul(512).max(64 << 20))
    };
    match (kind, redis) {
        (Kind::Tower, None) => Ok(Backend::Tower(hub().build())),
        (Kind::Axum, None) => Ok(Backend::Axum(AxumState {
            tx: broadcast::channel(capacity).0,
            lagged: Arc::new(AtomicU64::new(0)),
        })),
        #[cfg(feature = "redis")]
        (Kind::Tower, Some(target)) => {
            use tower_sse::hub::redis::RedisConfig;
            let config = RedisConfig::new(target.url.as_str()).key_prefix(target.prefix.as_str());
            match hub().redis(config).connect().await {
                Ok(hub) => Ok(Backend::Tower(hub)),
                Err(err) => Err(io::Error::other(format!(
                    "hub over Redis at {}: {err}",
                    target.url
                ))),
            }
        }
        #[cfg(not(feature = "redis"))]
        (Kind::Tower, Some(target)) => Err(io::Error::other(format!(
            "a hub over Redis ({}) needs the `redis` feature",
            target.url
        ))),
        (Kind::Axum, Some(_)) => Err(io::Error::other("the axum server has no Redis mode")),
    }
}

/// Serves `backend` on `listener` and answers `commands` until the command channel closes.
pub async fn run(backend: Backend, listener: TcpListener, mut commands: mpsc::Receiver<Command>) {
    let app = backend.router();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    while let Some(command) = commands.recv().await {
        match command {
            Command::Publish(publish, reply) => {
                let backend = backend.clone();
                // In its own task so the server's runtime schedules it like any other.
                let published = tokio::spawn(async move { backend.publish(publish).await })
                    .await
                    .unwrap_or_default();
                let _ = reply.send(published);
            }
            Command::Stats(reply) => {
                let _ = reply.send(backend.stats());
            }
        }
    }
    backend.close();
    server.abort();
}

/// A server's state: the hub, or axum's broadcast channel.
#[derive(Clone)]
pub enum Backend {
    /// tower-sse's hub (in memory or over Redis).
    Tower(Hub),
    /// axum's SSE over a broadcast channel.
    Axum(AxumState),
}

/// The axum server's state.
#[derive(Clone)]
pub struct AxumState {
    tx: broadcast::Sender<Arc<Message>>,
    lagged: Arc<AtomicU64>,
}

/// What goes through axum's broadcast channel: the id and the JSON text, ready to be put into
/// each connection's own `Event`.
struct Message {
    id: String,
    json: String,
}

impl Backend {
    fn router(&self) -> Router {
        match self {
            Backend::Tower(hub) => Router::new()
                .route("/events", get(tower_events))
                .with_state(hub.clone()),
            Backend::Axum(state) => Router::new()
                .route("/events", get(axum_events))
                .with_state(state.clone()),
        }
    }

    fn stats(&self) -> ServerStats {
        match self {
            Backend::Tower(hub) => {
                let stats = hub.stats();
                ServerStats {
                    lagged: stats.lagged_ends,
                    subscribers: stats.subscribers as u64,
                }
            }
            Backend::Axum(state) => ServerStats {
                lagged: state.lagged.load(Ordering::Relaxed),
                subscribers: state.tx.receiver_count() as u64,
            },
        }
    }

    fn close(&self) {
        if let Backend::Tower(hub) = self {
            hub.close();
        }
    }

    /// Publishes message `seq` (its JSON carries the sequence number and the publish time).
    async fn publish_one(&self, seq: u64) {
        let json = format!(
            r#"{{"seq":{seq},"ts":{},"pad":"{:.*}"}}"#,
            now_ns(),
            PAD,
            PADDING
        );
        match self {
            Backend::Tower(hub) => {
                let event = Event::new().event("update").map(|e| e.data(json));
                if let Ok(event) = event {
                    let _ = hub.publish(TOPIC, event).await;
                }
            }
            Backend::Axum(state) => {
                let id = seq.to_string();
                let _ = state.tx.send(Arc::new(Message { id, json }));
            }
        }
    }

    async fn publish(&self, publish: Publish) -> Published {
        let stride = publish.stride.max(1);
        let slot = publish.slot % stride;
        // The schedule's start on this process's monotonic clock.
        let now = Instant::now();
        let start = now + Duration::from_nanos(publish.start_ns.saturating_sub(now_ns()));
        // Positions in the schedule (1, 2, ...); a message's number is `seq_base` plus its
        // position.
        let mut position = u64::from(slot) + 1;
        let seq = |position: u64| publish.seq_base.saturating_add(position);
        let mut count = 0;
        if publish.rate > 0 {
            let period = Duration::from_secs(1) / publish.rate;
            let total = publish.total();
            let first = tokio::time::Instant::from_std(start) + period * slot;
            let mut ticks = tokio::time::interval_at(first, period * stride);
            while position <= total {
                ticks.tick().await;
                self.publish_one(seq(position)).await;
                position += u64::from(stride);
                count += 1;
            }
        } else {
            tokio::time::sleep_until(tokio::time::Instant::from_std(start)).await;
            let deadline = start + publish.duration;
            while Instant::now() < deadline {
                for _ in 0..publish.burst.max(1) {
                    self.publish_one(seq(position)).await;
                    position = position.saturating_add(u64::from(stride));
                    count += 1;
                }
                tokio::task::yield_now().await;
            }
        }
        Published {
            count,
            elapsed: start.elapsed(),
        }
    }
}

const PADDING: &str = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghij";

/// tower-sse: subscribe to the hub (resuming after `Last-Event-ID` if sent) and stream it.
async fn tower_events(State(hub): State<Hub>, headers: HeaderMap) -> Response {
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match hub.subscribe([TOPIC], last_id.as_deref()) {
        Ok(subscription) => IntoResponse::into_response(tower_sse::Sse::new(subscription)),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, err.to_string()).into_response(),
    }
}

/// axum: a broadcast receiver per connection; each message becomes this connection's own
/// `Event`. A receiver that lags skips the messages it missed (counted as lost).
async fn axum_events(State(state): State<AxumState>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let rx = state.tx.subscribe();
    let lagged = state.lagged;
    let stream = futures::stream::unfold(rx, move |mut rx| {
        let lagged = Arc::clone(&lagged);
        async move {
            loop {
                match rx.recv().await {
                    Ok(msg) => {
                        let event = Event::default().event("update").id(&msg.id).data(&msg.json);
                        return Some((Ok::<_, Infallible>(event), rx));
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        lagged.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Nanoseconds since the Unix epoch: the clock shared by the publishing server process and the
/// clients.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
