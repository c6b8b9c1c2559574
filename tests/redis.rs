//! The hub over Redis Streams, against a real Redis on 127.0.0.1:6379 (and, for outages,
//! servers this file starts itself): two instances sharing one order, resume across
//! instances through real HTTP servers, the reader losing its connection, Redis going away
//! and coming back, entries trimmed before a reader saw them, instance shutdown, foreign
//! entries, and the reader's lifetime.
//!
//! Every test uses its own random key prefix and deletes its keys at the end. Timeouts only
//! guard against hangs.
#![cfg(feature = "redis")]

mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use support::client::send;
use support::wait::{wait_until, within};
use support::{TestServer, serve};
use tower_sse::decode::{DecodedEvent, Decoder};
use tower_sse::hub::redis::RedisConfig;
use tower_sse::hub::{BackendErrorKind, Hub, HubBuilder, HubError, Subscription};
use tower_sse::{EncodedEvent, Event, KeepAlive, LastEventId, Sse};

const REDIS: &str = "redis://127.0.0.1:6379";

/// A random key prefix whose keys are deleted when it is dropped, even after a failure.
struct Prefix {
    url: String,
    name: String,
}

impl Prefix {
    fn new() -> Prefix {
        Prefix::on(REDIS)
    }

    fn on(url: &str) -> Prefix {
        Prefix {
            url: url.to_owned(),
            name: support::unique_name("tower-sse-test"),
        }
    }

    fn config(&self) -> RedisConfig {
        RedisConfig::new(self.url.as_str()).key_prefix(self.name.as_str())
    }

    fn key(&self) -> String {
        format!("{}:events", self.name)
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let deleted = redis::Client::open(self.url.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut connection| {
                redis::cmd("DEL")
                    .arg(self.key())
                    .query::<i64>(&mut connection)
            });
        if let Err(error) = deleted {
            // A server a test stopped on purpose takes its keys with it.
            eprintln!("could not delete {}: {error}", self.key());
        }
    }
}

/// A synchronous connection for setting up and inspecting Redis by hand.
fn sync_connection(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .expect("url")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connect to Redis")
}

async fn connect(builder: HubBuilder, config: RedisConfig) -> Hub {
    within(builder.redis(config).connect())
        .await
        .expect("connect to Redis")
}

fn text(event: &EncodedEvent) -> &str {
    std::str::from_utf8(event.as_bytes()).expect("hub events are UTF-8")
}

/// The value of the event's last `id:` line.
fn id_of(event: &EncodedEvent) -> String {
    text(event)
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .next_back()
        .expect("an id line")
        .to_owned()
}

/// The data of an event with one data line.
fn data_of(event: &EncodedEvent) -> String {
    text(event)
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap_or_default()
        .to_owned()
}

/// `(ms, seq)` of an entry id.
fn parts(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("<ms>-<seq>");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

async fn next(sub: &mut Subscription) -> EncodedEvent {
    within(sub.next()).await.expect("subscription ended")
}

fn data(payload: impl AsRef<str>) -> Event {
    Event::new().data(payload)
}

/// Waits until `hub` has read the stream up to `id`.
async fn caught_up(hub: &Hub, id: &str) {
    wait_until(&format!("the hub to read up to {id}"), || {
        parts(&hub.last_id()) >= parts(id)
    })
    .await;
}

/// The Redis client id of the connection named `name`, if one is open.
fn client_id(url: &str, name: &str) -> Option<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut sync_connection(url))
        .expect("CLIENT LIST");
    list.lines()
        .find(|line| line.split(' ').any(|field| field == format!("name={name}")))
        .and_then(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
}

/// Waits until a connection named `name` is open.
async fn wait_for_client(url: &str, name: &str) {
    wait_until(&format!("a connection named {name}"), || {
        client_id(url, name).is_some()
    })
    .await;
}

/// Waits until no connection named `name` is open.
async fn wait_for_no_client(url: &str, name: &str) {
    wait_until(&format!("no connection named {name}"), || {
        client_id(url, name).is_none()
    })
    .await;
}

fn kill_client(url: &str, name: &str) {
    let id = client_id(url, name).expect("the reader's connection is open");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query(&mut sync_connection(url))
        .expect("CLIENT KILL");
    assert_eq!(killed, 1);
}

// ---------------------------------------------------------------------------------------
// HTTP: one server per instance, and an SSE client that decodes like a browser.

async fn events(
    State(hub): State<Hub>,
    RawQuery(query): RawQuery,
    last_event_id: Option<LastEventId>,
) -> Response {
    let query = query.unwrap_or_default();
    let topics = query.strip_prefix("topics=").unwrap_or("room").split(',');
    match hub.subscribe(topics, last_event_id.as_deref()) {
        Ok(subscription) => {
            IntoResponse::into_response(Sse::new(subscription).keep_alive(KeepAlive::disabled()))
        }
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
    }
}

async fn instance(hub: &Hub) -> TestServer {
    serve(
        Router::new()
            .route("/events", get(events))
            .with_state(hub.clone()),
    )
    .await
}

/// An `EventSource`-like reader of one response.
struct Client {
    body: Incoming,
    decoder: Decoder,
    ready: VecDeque<DecodedEvent>,
}

impl Client {
    async fn open(addr: SocketAddr, topics: &str, last_event_id: Option<&str>) -> Client {
        let mut request = http::Request::get(format!("/events?topics={topics}"))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = send(addr, request.body(Empty::<Bytes>::new()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Client {
            body: response.into_body(),
            decoder: Decoder::new(),
            ready: VecDeque::new(),
        }
    }

    /// The next event, or `None` when the response ends.
    async fn next(&mut self) -> Option<DecodedEvent> {
        within(async {
            loop {
                if let Some(event) = self.ready.pop_front() {
                    return Some(event);
                }
                match self.body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(chunk) = frame.into_data() {
                            self.decoder.push(&chunk).expect("decodes");
                            while let Some(event) = self.decoder.next_event() {
                                self.ready.push_back(event);
                            }
                        }
                    }
                    Some(Err(_)) | None => return None,
                }
            }
        })
        .await
    }

    async fn take(&mut self, n: usize) -> Vec<DecodedEvent> {
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            got.push(self.next().await.expect("stream ended early"));
        }
        got
    }
}

fn datas(events: &[DecodedEvent]) -> Vec<String> {
    events.iter().map(|e| e.data.clone()).collect()
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_an_unreachable_redis_is_a_clear_error() {
    let port = free_port();
    let config = RedisConfig::new(format!("redis://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_secs(1))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(10));
    let error = within(Hub::builder().redis(config).connect())
        .await
        .expect_err("nothing listens there");
    let HubError::Backend(backend) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(backend.kind(), BackendErrorKind::Connect);
    assert!(
        error
            .to_string()
            .starts_with("cannot connect to the hub's backend: "),
        "{error}"
    );

    let error = within(Hub::builder().redis(RedisConfig::new("nope://x")).connect())
        .await
        .expect_err("not a Redis URL");
    assert!(
        matches!(&error, HubError::Backend(e) if e.kind() == BackendErrorKind::Connect),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_on_one_instance_arrives_on_every_instance() {
    let prefix = Prefix::new();
    let a = connect(Hub::builder(), prefix.config()).await;
    let b = connect(Hub::builder(), prefix.config()).await;
    assert_eq!(a.last_id(), "0-0", "a new stream starts at 0-0");
    let mut on_a = a.subscribe(["room"], None).unwrap();
    let mut on_b = b.subscribe(["room", "other"], None).unwrap();

    let event = Event::new().event("msg").unwrap().data("hello\nworld");
    let id = a.publish("room", event).await.unwrap();
    let (ms, _) = parts(&id);
    assert!(ms > 1_600_000_000_000, "a Redis entry id: {id}");
    let expected = format!("event: msg\ndata: hello\ndata: world\nid: {id}\n\n");
    assert_eq!(text(&next(&mut on_a).await), expected);
    assert_eq!(text(&next(&mut on_b).await), expected);

    // Other direction, another topic; ids increase across instances.
    let second = b.publish("other", data("from b")).await.unwrap();
    assert!(parts(&second) > parts(&id));
    let got = next(&mut on_b).await;
    assert_eq!(text(&got), format!("data: from b\nid: {second}\n\n"));
    caught_up(&a, &second).await;
    assert_eq!(a.last_id(), second);
    assert_eq!(a.stats().events_published, 2);

    // Publishing needs the round trip; the limits still apply before it.
    let refused = a.publish_now("room", data("x")).unwrap_err();
    assert!(
        matches!(&refused, HubError::Backend(e) if e.kind() == BackendErrorKind::Unsupported),
        "{refused:?}"
    );
    assert_eq!(a.publish("", data("x")).await, Err(HubError::EmptyTopic));
    let small = connect(Hub::builder().max_topic_bytes(64), prefix.config()).await;
    assert!(matches!(
        small.publish("room", data("x".repeat(100))).await,
        Err(HubError::EventTooLarge { limit: 64, .. })
    ));
    assert!(format!("{a:?}").contains("redis"));

    a.close();
    assert_eq!(a.publish("room", data("x")).await, Err(HubError::Closed));
    assert!(within(on_a.next()).await.is_none());
}

/// Two instances, publishers on both, 10,000 events: every subscriber on either instance
/// gets every event exactly once, in the same order, with the id its publisher was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_from_both_instances_arrive_once_in_one_order() {
    const PER_PUBLISHER: usize = 2_500;
    let prefix = Prefix::new();
    let builder = || Hub::builder().capacity(20_000);
    let config = || prefix.config().max_len(50_000);
    let a = connect(builder(), config()).await;
    let b = connect(builder(), config()).await;
    let total = 4 * PER_PUBLISHER;

    let readers: Vec<_> = [&a, &b, &a, &b]
        .into_iter()
        .enumerate()
        .map(|(n, hub)| {
            let mut sub = hub.subscribe(["t0", "t1"], None).unwrap();
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(total);
                while got.len() < total {
                    let event = within(sub.next())
                        .await
                        .unwrap_or_else(|| panic!("reader {n} ended"));
                    got.push((id_of(&event), data_of(&event)));
                }
                got
            })
        })
        .collect();

    let publishers: Vec<_> = [&a, &b, &a, &b]
        .into_iter()
        .enumerate()
        .map(|(p, hub)| {
            let hub = hub.clone();
            tokio::spawn(async move {
                let mut log = Vec::with_capacity(PER_PUBLISHER);
                for i in 0..PER_PUBLISHER {
                    let payload = format!("{p}/{i}");
                    let id = hub
                        .publish(["t0", "t1"][i % 2], data(&payload))
                        .await
                        .expect("publish");
                    log.push((id, payload));
                }
                log
            })
        })
        .collect();

    let mut published = Vec::new();
    for publisher in publishers {
        published.extend(within(publisher).await.unwrap());
    }
    published.sort_by_key(|(id, _)| parts(id));
    assert_eq!(published.len(), total);

    let mut orders = Vec::new();
    for reader in readers {
        orders.push(within(reader).await.unwrap());
    }
    for got in &orders {
        assert!(
            got.windows(2).all(|w| parts(&w[0].0) < parts(&w[1].0)),
            "ids increase"
        );
        assert_eq!(
            got, &published,
            "every event once, with its id, in id order"
        );
    }
    // Nothing more arrives: no duplicate after the last.
    let mut sub = a
        .subscribe(["t0", "t1"], Some(&published[total - 1].0))
        .unwrap();
    let none = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
    assert!(none.is_err(), "{none:?}");
    assert_eq!(a.stats().events_published, total as u64);
    assert_eq!(b.stats().entries_skipped, 0);
}

/// A client reads from A, disconnects, reconnects to B with its last id (an `EventSource`
/// would) and gets exactly what it missed: from B's ring, from the stream when B's ring is
/// too small or B started after the events, or a reset marker when the stream was trimmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_instance_through_http() {
    let prefix = Prefix::new();
    let a = connect(Hub::builder(), prefix.config()).await;
    // B's rings hold 4 events per topic: most of a resume comes from the stream.
    let b = connect(Hub::builder().capacity(4), prefix.config().replay_page(7)).await;
    let (server_a, server_b) = (instance(&a).await, instance(&b).await);

    let mut client = Client::open(server_a.addr, "room", None).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(a.publish("room", data(format!("m{i}"))).await.unwrap());
    }
    let seen = client.take(5).await;
    assert_eq!(datas(&seen), ["m0", "m1", "m2", "m3", "m4"]);
    let last_seen = seen[4].last_event_id.clone();
    assert_eq!(last_seen, ids[4]);
    drop(client);

    // Missed while disconnected: 30 room events, interleaved with another topic's.
    let mut missed = Vec::new();
    let mut newest = String::new();
    for i in 5..35 {
        ids.push(b.publish("room", data(format!("m{i}"))).await.unwrap());
        newest = b.publish("other", data("not followed")).await.unwrap();
        missed.push(format!("m{i}"));
    }
    caught_up(&b, &newest).await;

    let mut client = Client::open(server_b.addr, "room", Some(&last_seen)).await;
    let got = client.take(30).await;
    assert_eq!(datas(&got), missed);
    assert_eq!(
        got.iter()
            .map(|e| e.last_event_id.clone())
            .collect::<Vec<_>>(),
        ids[5..35]
    );
    // Then live, with nothing repeated at the hand-over.
    let live = a.publish("room", data("live")).await.unwrap();
    let event = client.next().await.unwrap();
    assert_eq!(
        (event.data.as_str(), event.last_event_id.as_str()),
        ("live", live.as_str())
    );

    // An instance started after the events: everything comes from the stream.
    let c = connect(Hub::builder(), prefix.config()).await;
    let server_c = instance(&c).await;
    let mut client = Client::open(server_c.addr, "room", Some(&ids[20])).await;
    let got = client.take(15).await;
    assert_eq!(
        datas(&got),
        missed[16..30]
            .iter()
            .cloned()
            .chain(["live".to_owned()])
            .collect::<Vec<_>>()
    );
    let later = c.publish("room", data("later")).await.unwrap();
    let event = client.next().await.unwrap();
    assert_eq!(event.last_event_id, later);

    // Ids that cannot be resumed.
    let far = "17000000000000-0"; // after the stream's newest entry
    for (id, reason) in [
        ("not-an-id", "unknown"),
        ("1-2-3", "unknown"),
        (far, "future"),
    ] {
        let current = c.last_id();
        let mut client = Client::open(server_c.addr, "room", Some(id)).await;
        let marker = client.next().await.unwrap();
        assert_eq!(marker.event_type, "reset", "{id}");
        assert_eq!(marker.data, format!("{{\"reason\":\"{reason}\"}}"), "{id}");
        assert_eq!(marker.last_event_id, current, "{id}");
        let live = c.publish("room", data("after reset")).await.unwrap();
        let event = client.next().await.unwrap();
        assert_eq!(event.last_event_id, live);
    }
    assert_eq!(b.stats().resets, 0);
    for server in [server_a, server_b, server_c] {
        server.stop.cancel();
    }
}

/// An id whose entry was trimmed from the stream (`MAXLEN ~`) gets a reset marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_trimmed_from_the_stream_gets_a_stale_reset_over_http() {
    let prefix = Prefix::new();
    let config = || prefix.config().max_len(10);
    let a = connect(Hub::builder().capacity(4), config()).await;
    let server = instance(&a).await;
    let old = a.publish("room", data("old")).await.unwrap();
    let mut last = old.clone();
    // Redis trims whole blocks of entries: publish well beyond one.
    for i in 0..400 {
        last = a.publish("room", data(i.to_string())).await.unwrap();
    }
    let len: u64 = redis::cmd("XLEN")
        .arg(prefix.key())
        .query(&mut sync_connection(REDIS))
        .unwrap();
    assert!(len < 401, "the stream was trimmed: {len}");
    caught_up(&a, &last).await;

    let mut client = Client::open(server.addr, "room", Some(&old)).await;
    let marker = client.next().await.unwrap();
    assert_eq!(
        (marker.event_type.as_str(), marker.data.as_str()),
        ("reset", "{\"reason\":\"stale\"}")
    );
    // It continues from where the ring starts: the 4 events it holds, then live.
    let rest = client.take(4).await;
    assert_eq!(datas(&rest), ["396", "397", "398", "399"]);
    assert_eq!(rest[3].last_event_id, last);
    assert_eq!(a.stats().resets, 1);
    server.stop.cancel();
}

/// The replay scan is capped: a client too far behind gets what the cap allows, then a
/// reset marker, then what the rings hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_beyond_the_scan_cap_ends_in_a_reset_marker() {
    let prefix = Prefix::new();
    let hub = connect(
        Hub::builder().capacity(5),
        prefix.config().max_replay(20).replay_page(8),
    )
    .await;
    let first = hub.publish("t", data("first")).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(hub.publish("t", data(i.to_string())).await.unwrap());
    }
    caught_up(&hub, &ids[59]).await;
    let mut sub = hub.subscribe(["t"], Some(&first)).unwrap();
    let mut got = Vec::new();
    for _ in 0..20 {
        got.push(data_of(&next(&mut sub).await));
    }
    assert_eq!(got, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
    // The ring holds 55..59; everything up to 54 was its lost part.
    let marker = next(&mut sub).await;
    assert_eq!(
        text(&marker),
        format!(
            "event: reset\ndata: {{\"reason\":\"stale\"}}\nid: {}\n\n",
            ids[54]
        )
    );
    for id in &ids[55..60] {
        assert_eq!(&id_of(&next(&mut sub).await), id);
    }
    let live = hub.publish("t", data("live")).await.unwrap();
    assert_eq!(id_of(&next(&mut sub).await), live);
}

/// The id a client brings may be newer than what this instance has read (another instance
/// delivered it first): the subscription waits for this instance's reader, then goes live
/// without repeating anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_this_instance_has_not_read_yet_is_waited_for() {
    let prefix = Prefix::new();
    let a = connect(Hub::builder(), prefix.config()).await;
    let name = format!("{}:slow-reader", prefix.name);
    let b = connect(
        Hub::builder(),
        prefix
            .config()
            .reader_name(name.as_str())
            .reconnect_backoff(Duration::from_millis(500), Duration::from_millis(500)),
    )
    .await;
    kill_client(REDIS, &name);
    let mut newest = String::new();
    for i in 0..3 {
        newest = a.publish("t", data(i.to_string())).await.unwrap();
    }
    let mut sub = b.subscribe(["t"], Some(&newest)).unwrap();
    let live = a.publish("t", data("live")).await.unwrap();
    let event = next(&mut sub).await;
    assert_eq!(text(&event), format!("data: live\nid: {live}\n\n"));
    assert_eq!(b.stats().resets, 0);
}

/// The reader's connection is killed mid-stream (`CLIENT KILL`): it reconnects and reads on
/// from the last entry it saw; subscribers miss nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_reconnects_after_its_connection_is_killed_and_misses_nothing() {
    let prefix = Prefix::new();
    let name = format!("{}:reader-b", prefix.name);
    let a = connect(Hub::builder(), prefix.config()).await;
    let b = connect(
        Hub::builder(),
        prefix
            .config()
            .reader_name(name.as_str())
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200)),
    )
    .await;
    let mut sub = b.subscribe(["t"], None).unwrap();
    let mut published = Vec::new();
    for round in 0..3 {
        for i in 0..50 {
            published.push(a.publish("t", data(format!("{round}/{i}"))).await.unwrap());
        }
        if round < 2 {
            wait_for_client(REDIS, &name).await;
            kill_client(REDIS, &name);
        }
    }
    let mut got = Vec::new();
    while got.len() < published.len() {
        got.push(id_of(&next(&mut sub).await));
    }
    assert_eq!(got, published);
    assert!(b.stats().reader_reconnects >= 2, "{:?}", b.stats());
    assert!(
        client_id(REDIS, &name).is_some(),
        "the new connection has the name too"
    );
}

/// The hub's lifetime bounds its reader's: closing or dropping it closes the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_stops_when_the_hub_is_dropped_or_closed() {
    let prefix = Prefix::new();
    for close in [false, true] {
        let name = format!("{}:reader-{close}", prefix.name);
        let hub = connect(Hub::builder(), prefix.config().reader_name(name.as_str())).await;
        assert!(client_id(REDIS, &name).is_some());
        let clone = hub.clone();
        if close {
            clone.close();
        } else {
            drop(clone);
            drop(hub);
        }
        wait_for_no_client(REDIS, &name).await;
    }
}

/// Entries written into the stream by something else are skipped and counted, live and in a
/// replay; the events around them arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_foreign_entries_are_skipped() {
    let prefix = Prefix::new();
    let hub = connect(Hub::builder(), prefix.config()).await;
    let mut sub = hub.subscribe(["t"], None).unwrap();
    let before = hub.publish("t", data("before")).await.unwrap();

    let mut redis = sync_connection(REDIS);
    let garbage: [&[&[u8]]; 7] = [
        &[b"foo", b"bar"],
        &[b"topic", b"t"],
        &[b"topic", b"t", b"event", b"data: x\n\ndata: injected\n"],
        &[b"topic", b"t", b"event", b"data: no line break"],
        &[b"topic", b"t", b"event", b"data: x\r\n"],
        &[b"topic", b"\xff\xfe", b"event", b"data: x\n"],
        &[b"topic", b"", b"event", b"data: x\n"],
    ];
    for fields in garbage {
        let mut command = redis::cmd("XADD");
        command.arg(prefix.key()).arg("*");
        for field in fields {
            command.arg(*field);
        }
        let _: String = command.query(&mut redis).expect("XADD by hand");
    }
    let after = hub.publish("t", data("after")).await.unwrap();

    assert_eq!(
        text(&next(&mut sub).await),
        format!("data: before\nid: {before}\n\n")
    );
    assert_eq!(
        text(&next(&mut sub).await),
        format!("data: after\nid: {after}\n\n")
    );
    assert_eq!(hub.stats().entries_skipped, garbage.len() as u64);

    // A replay from the stream skips them too.
    let late = connect(Hub::builder(), prefix.config()).await;
    let mut resumed = late.subscribe(["t"], Some(&before)).unwrap();
    assert_eq!(
        text(&next(&mut resumed).await),
        format!("data: after\nid: {after}\n\n")
    );
    // The new instance's reader started after them: the catch-up met and counted them.
    assert_eq!(late.stats().entries_skipped, garbage.len() as u64);
}

/// Instance A goes away while clients are connected: their streams end, they reconnect to B
/// with their last ids and get exactly what they missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_an_instance_that_goes_away_resume_on_another() {
    let prefix = Prefix::new();
    let name_a = format!("{}:reader-a", prefix.name);
    let a = connect(Hub::builder(), prefix.config().reader_name(name_a.as_str())).await;
    let b = connect(Hub::builder(), prefix.config()).await;
    let (server_a, server_b) = (instance(&a).await, instance(&b).await);
    let mut clients = Vec::new();
    for topics in ["room", "room,news"] {
        clients.push(Client::open(server_a.addr, topics, None).await);
    }
    for i in 0..10 {
        b.publish(
            if i % 3 == 0 { "news" } else { "room" },
            data(format!("e{i}")),
        )
        .await
        .unwrap();
    }
    let first = clients[0].take(6).await; // room only
    let second = clients[1].take(10).await;
    assert_eq!(datas(&first), ["e1", "e2", "e4", "e5", "e7", "e8"]);

    // A goes away.
    a.close();
    for client in &mut clients {
        assert!(client.next().await.is_none(), "the stream ends");
    }
    server_a.stop.cancel();
    wait_for_no_client(REDIS, &name_a).await;

    for i in 10..20 {
        b.publish(
            if i % 3 == 0 { "news" } else { "room" },
            data(format!("e{i}")),
        )
        .await
        .unwrap();
    }
    let mut first_again = Client::open(server_b.addr, "room", Some(&first[5].last_event_id)).await;
    let mut second_again =
        Client::open(server_b.addr, "room,news", Some(&second[9].last_event_id)).await;
    assert_eq!(
        datas(&first_again.take(7).await),
        ["e10", "e11", "e13", "e14", "e16", "e17", "e19"]
    );
    assert_eq!(
        datas(&second_again.take(10).await),
        (10..20).map(|i| format!("e{i}")).collect::<Vec<_>>()
    );
    let live = b.publish("room", data("live")).await.unwrap();
    assert_eq!(first_again.next().await.unwrap().last_event_id, live);
    assert_eq!(second_again.next().await.unwrap().last_event_id, live);
    server_b.stop.cancel();
}

// ---------------------------------------------------------------------------------------
// A Redis server of our own, to stop and start.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    async fn start() -> OwnRedis {
        let mut server = OwnRedis {
            port: free_port(),
            child: None,
        };
        server.restart().await;
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers.
    async fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--stream-node-max-entries", "4"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let url = self.url();
        wait_until("the Redis server to answer PING", || {
            redis::Client::open(url.as_str())
                .and_then(|client| {
                    let mut connection =
                        client.get_connection_with_timeout(Duration::from_secs(1))?;
                    redis::cmd("PING").query::<String>(&mut connection)
                })
                .is_ok()
        })
        .await;
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Redis goes away: publishing fails (never silently); when it is back, publishing works
/// again and subscribers get everything published before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_fails_while_redis_is_down_and_subscribers_get_everything_around_it() {
    let mut server = OwnRedis::start().await;
    let prefix = Prefix::on(&server.url());
    let hub = connect(
        Hub::builder(),
        prefix
            .config()
            .connect_timeout(Duration::from_millis(500))
            .command_timeout(Duration::from_secs(2))
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200)),
    )
    .await;
    let mut sub = hub.subscribe(["t"], None).unwrap();
    let mut published = Vec::new();
    for i in 0..5 {
        hub.publish("t", data(format!("before {i}"))).await.unwrap();
        published.push(format!("before {i}"));
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(data_of(&next(&mut sub).await));
    }

    server.stop();
    for _ in 0..3 {
        let error = within(hub.publish("t", data("lost"))).await.unwrap_err();
        assert!(
            matches!(&error, HubError::Backend(e) if e.kind() == BackendErrorKind::Command),
            "{error:?}"
        );
    }

    server.restart().await;
    // The first publishes may still fail while the connection is re-established.
    let mut attempts = 0;
    within(async {
        loop {
            attempts += 1;
            if hub.publish("t", data("after 0")).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    published.push("after 0".to_owned());
    for i in 1..5 {
        hub.publish("t", data(format!("after {i}"))).await.unwrap();
        published.push(format!("after {i}"));
    }
    while got.len() < published.len() {
        got.push(data_of(&next(&mut sub).await));
    }
    assert_eq!(got, published, "after {attempts} attempts");
    assert!(hub.stats().reader_reconnects >= 1);
}

/// Entries are trimmed from the stream before a disconnected reader could read them (its
/// credentials are disabled meanwhile): its subscribers are not left with a silent gap; they
/// fall behind (and end, by default), and a resume gets a reset marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_trimmed_before_the_reader_read_them_are_never_a_silent_gap() {
    let server = OwnRedis::start().await;
    let mut admin = sync_connection(&server.url());
    let password = support::unique_name("password");
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("hub")
        .arg("on")
        .arg(format!(">{password}"))
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .query(&mut admin)
        .unwrap();
    let prefix = Prefix::on(&server.url());
    let writer = connect(Hub::builder(), prefix.config().max_len(8)).await;
    let name = format!("{}:disabled-reader", prefix.name);
    let reader = connect(
        Hub::builder(),
        RedisConfig::new(format!("redis://hub:{password}@127.0.0.1:{}", server.port))
            .key_prefix(prefix.name.as_str())
            .max_len(8)
            .read_count(4)
            .reader_name(name.as_str())
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100)),
    )
    .await;
    let mut sub = reader.subscribe(["t"], None).unwrap();
    let mut last_seen = String::new();
    for i in 0..3 {
        writer.publish("t", data(i.to_string())).await.unwrap();
        last_seen = id_of(&next(&mut sub).await);
    }

    // The reader's connection goes and it cannot come back; the stream moves on and trims.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("hub")
        .arg("off")
        .query(&mut admin)
        .unwrap();
    kill_client(&server.url(), &name);
    for i in 3..100 {
        writer.publish("t", data(i.to_string())).await.unwrap();
    }
    let first: Vec<(String, redis::Value)> = redis::cmd("XRANGE")
        .arg(prefix.key())
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query(&mut admin)
        .unwrap();
    assert!(
        parts(&first[0].0) > parts(&last_seen),
        "trimmed past the reader"
    );
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("hub")
        .arg("on")
        .query(&mut admin)
        .unwrap();

    // Whatever it still delivers follows on without a gap; then it ends.
    let mut expected = 3;
    while let Some(event) = within(sub.next()).await {
        assert_eq!(data_of(&event), expected.to_string(), "no gap");
        expected += 1;
    }
    assert!(expected < 100, "entries were lost, so the stream ended");
    assert_eq!(reader.stats().lagged_ends, 1);

    // The client comes back with the last id it got: reset, then live.
    let mut resumed = reader.subscribe(["t"], Some(&last_seen)).unwrap();
    let marker = next(&mut resumed).await;
    assert!(
        text(&marker).starts_with("event: reset\ndata: {\"reason\":\"stale\"}\n"),
        "{}",
        text(&marker)
    );
    let live = writer.publish("t", data("live")).await.unwrap();
    let mut event = next(&mut resumed).await;
    while id_of(&event) != live {
        // Events after the marker's position that the ring still holds come first.
        assert!(parts(&id_of(&event)) < parts(&live));
        event = next(&mut resumed).await;
    }
    drop(admin);
    drop(prefix);
    drop(server);
}

#[test]
fn the_hub_and_its_subscriptions_stay_send_and_sync() {
    fn check<T: Send + Sync + Unpin + 'static>() {}
    check::<Hub>();
    check::<Subscription>();
    check::<RedisConfig>();
    check::<HubError>();
}
