//! The chat example (examples/chat) as several instances over one Redis on 127.0.0.1:6379:
//! two instances in this process on two ports form one chat. Messages, private messages,
//! history, sign-ins and presence cross instances; a client of one instance resumes on the
//! other with its last id; a stopped instance hands its clients over without a `user-left`;
//! and a headless Chromium page fails over from a stopped instance to the other.
//!
//! Every test uses its own random key prefix and deletes its keys at the end. Timeouts only
//! guard against hangs; waiting for presence to run out is done by watching Redis.
//!
//! ```text
//! cargo test --all-features --test chat_redis_e2e -- --include-ignored --nocapture
//! ```
#![cfg(feature = "redis")]

#[path = "../examples/chat/app.rs"]
#[allow(dead_code)]
mod chat_app;
#[path = "e2e/support.rs"]
#[allow(dead_code)]
mod e2e;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use futures::StreamExt;
use serde_json::json;
use tokio::net::TcpListener;
use tower_sse::CancellationToken;
use tower_sse::decode::DecodedEvent;

use chat_app::session::{KEY_LEN, Signer};
use chat_app::{Backend, Config};
use support::app_server::{AppServer, loopback_listener};
use support::chat::{
    Events, events_of_response, expect, expect_chat, get, json_of, post_json, session_cookie,
    sign_in, stream_request,
};
use support::client::send;
use support::wait::{wait_until, within};

const REDIS: &str = "redis://127.0.0.1:6379";

fn sync_connection() -> redis::Connection {
    redis::Client::open(REDIS)
        .expect("url")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connect to Redis on 127.0.0.1:6379")
}

/// A random key prefix whose keys are all deleted when it is dropped, even after a failure.
struct Prefix {
    name: String,
}

impl Prefix {
    fn new() -> Prefix {
        Prefix {
            name: support::unique_name("tower-sse-chat-test"),
        }
    }

    fn backend(&self) -> Backend {
        Backend::Redis {
            url: REDIS.to_owned(),
            key_prefix: self.name.clone(),
        }
    }

    fn chat_key(&self, suffix: &str) -> String {
        format!("{}:chat:{suffix}", self.name)
    }

    /// How many instances hold a presence of `user` in `room` (ran out or not).
    fn presence_entries(&self, room: &str, user: &str) -> usize {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.chat_key(&format!("online:{room}")))
            .arg(0)
            .arg(-1)
            .query(&mut sync_connection())
            .expect("ZRANGE");
        members
            .iter()
            .filter(|m| m.split_once('|').is_some_and(|(u, _)| u == user))
            .count()
    }

    /// Waits until exactly `n` instances hold a presence of `user` in `room`.
    async fn wait_for_presence_entries(&self, room: &str, user: &str, n: usize) {
        let what = format!("{n} instances to hold a presence of {user} in #{room}");
        wait_until(&what, || self.presence_entries(room, user) == n).await;
    }

    fn keys(&self, connection: &mut redis::Connection) -> redis::RedisResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:*", self.name))
                .arg("COUNT")
                .arg(1000)
                .query(connection)?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let mut connection = sync_connection();
        let deleted = self.keys(&mut connection).and_then(|keys| {
            if keys.is_empty() {
                Ok(0)
            } else {
                redis::cmd("DEL").arg(&keys).query::<i64>(&mut connection)
            }
        });
        if let Err(error) = deleted {
            eprintln!("could not delete the keys of {}: {error}", self.name);
        }
    }
}

fn origin_of(listener: &TcpListener) -> String {
    format!("http://{}", listener.local_addr().expect("local addr"))
}

/// One instance of the chat on `prefix`, served on `listener` as `main.rs` does.
async fn start_instance(listener: TcpListener, prefix: &Prefix, config: Config) -> AppServer {
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let chat = within(chat_app::start(config, prefix.backend(), shutdown.clone()))
        .await
        .expect("the chat starts on Redis");
    AppServer::spawn(addr, shutdown, chat_app::serve_chat(listener, chat))
}

/// The settings of these tests: a quick sweep, and a grace period short enough that the
/// tests waiting for presence to run out take seconds, yet long enough that a client moving
/// between instances in process is back in time even on a stalled runner (the tests that
/// move a client rely on it); no fixed key (the instances agree on one through Redis).
fn config() -> Config {
    Config {
        secret: None,
        presence_grace: Duration::from_secs(10),
        presence_lease: Duration::from_secs(6),
        sweep_interval: Duration::from_millis(100),
        admin_routes: true,
        ..Config::default()
    }
}

/// Two instances on one prefix.
async fn two_instances(prefix: &Prefix, config: Config) -> (AppServer, AppServer) {
    let a = start_instance(loopback_listener().await, prefix, config.clone()).await;
    let b = start_instance(loopback_listener().await, prefix, config).await;
    (a, b)
}

// ---------------------------------------------------------------------- a client

/// Signs `name` in on `addr`; returns the `Cookie` header value.
async fn login(addr: SocketAddr, name: &str) -> String {
    session_cookie(&send(addr, sign_in(name)).await, name)
}

/// Posts `text` to `room` on `addr`; returns the event id.
async fn post(addr: SocketAddr, cookie: &str, room: &str, text: &str) -> String {
    let path = format!("/rooms/{room}/messages");
    let response = send(
        addr,
        post_json(&path, Some(cookie), json!({ "text": text })),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED, "post {text:?}");
    json_of(response).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Opens `GET /events?<query>` on `addr`, with `Last-Event-ID` if given, and decodes it.
async fn open_stream(
    addr: SocketAddr,
    query: &str,
    cookie: &str,
    last_event_id: Option<&str>,
) -> Events {
    events_of_response(send(addr, stream_request(query, cookie, last_event_id)).await)
}

// ---------------------------------------------------------------------- the tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_messages_and_history_cross_instances() {
    let prefix = Prefix::new();
    let (a, b) = two_instances(&prefix, config()).await;

    // One cookie key for both, agreed on through Redis.
    let alice = login(a.addr, "alice").await;
    let stored: String = redis::cmd("GET")
        .arg(prefix.chat_key("secret"))
        .query(&mut sync_connection())
        .expect("the key is in Redis");
    assert_eq!(stored.len(), 2 * KEY_LEN);
    let me = json_of(send(b.addr, get("/session", Some(&alice))).await).await;
    assert_eq!(me["name"], "alice", "a cookie from A is valid on B");

    // A name is held across instances.
    let taken = send(
        b.addr,
        post_json("/session", None, json!({"name": "alice"})),
    )
    .await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let bob = login(b.addr, "bob").await;

    // A message posted on A reaches a stream on B, with the same id.
    let mut events = open_stream(b.addr, "rooms=lobby", &alice, None).await;
    let (hello, _) = expect(&mut events, "hello").await;
    assert_eq!(hello["rooms"][0]["online"], json!(["alice"]));
    expect(&mut events, "user-joined").await;
    let first = post(a.addr, &bob, "lobby", "hello from A").await;
    assert_eq!(expect_chat(&mut events, "hello from A").await, first);
    let second = post(b.addr, &bob, "lobby", "and from B").await;
    assert_eq!(expect_chat(&mut events, "and from B").await, second);

    // Both instances list the room and its history, in event order.
    for addr in [a.addr, b.addr] {
        let room = json_of(send(addr, get("/rooms/lobby", Some(&bob))).await).await;
        let messages: Vec<(&str, &str)> = room["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| (m["id"].as_str().unwrap(), m["text"].as_str().unwrap()))
            .collect();
        assert_eq!(
            messages,
            [
                (first.as_str(), "hello from A"),
                (second.as_str(), "and from B")
            ]
        );
        assert_eq!(room["online"], json!(["alice"]));
        let rooms = json_of(send(addr, get("/rooms", Some(&bob))).await).await;
        assert_eq!(rooms, json!([{"room": "lobby", "online": 1}]));
    }

    // A private message from bob on A to alice, whose stream is on B.
    let response = send(
        a.addr,
        post_json("/users/alice/messages", Some(&bob), json!({"text": "psst"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let (private, _) = expect(&mut events, "private").await;
    assert_eq!(
        (&private["from"], &private["to"], &private["text"]),
        (&json!("bob"), &json!("alice"), &json!("psst"))
    );
    let nobody = send(
        a.addr,
        post_json("/users/nobody/messages", Some(&bob), json!({"text": "hi"})),
    )
    .await;
    assert_eq!(nobody.status(), StatusCode::NOT_FOUND);

    // Signing out on B frees the name for everyone.
    let mut logout = get("/session", Some(&bob));
    *logout.method_mut() = axum::http::Method::DELETE;
    assert_eq!(send(b.addr, logout).await.status(), StatusCode::NO_CONTENT);
    login(a.addr, "bob").await;

    drop(events);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_key_wins_over_the_shared_one() {
    let prefix = Prefix::new();
    let key = [42; KEY_LEN];
    let a = start_instance(
        loopback_listener().await,
        &prefix,
        Config {
            secret: Some(key),
            ..config()
        },
    )
    .await;
    let cookie = login(a.addr, "alice").await;
    let value = cookie.strip_prefix("chat_session=").expect("the cookie");
    let session = Signer::new(&key).verify(value);
    assert_eq!(session.map(|s| s.name), Some("alice".to_owned()));
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_instances() {
    let prefix = Prefix::new();
    let (a, b) = two_instances(&prefix, config()).await;
    let alice = login(a.addr, "alice").await;
    let bob = login(b.addr, "bob").await;

    let mut watcher = open_stream(a.addr, "rooms=lobby", &alice, None).await;
    expect(&mut watcher, "hello").await;
    let (joined, _) = expect(&mut watcher, "user-joined").await;
    assert_eq!(
        joined,
        json!({"room": "lobby", "user": "alice", "online": 1})
    );

    // Bob's stream on B: alice, on A, is told; bob's hello lists both.
    let bob_on_b = open_stream(b.addr, "rooms=lobby", &bob, None).await;
    let (joined, _) = expect(&mut watcher, "user-joined").await;
    assert_eq!(joined, json!({"room": "lobby", "user": "bob", "online": 2}));
    let state = json_of(send(a.addr, get("/rooms/lobby", Some(&alice))).await).await;
    assert_eq!(state["online"], json!(["alice", "bob"]));

    // Bob moves to A within the grace period: nobody is told anything, even once B's
    // presence of bob ran out and was swept.
    drop(bob_on_b);
    let mut bob_on_a = open_stream(a.addr, "rooms=lobby", &bob, None).await;
    let (hello, _) = expect(&mut bob_on_a, "hello").await;
    assert_eq!(hello["rooms"][0]["online"], json!(["alice", "bob"]));
    prefix.wait_for_presence_entries("lobby", "bob", 1).await;
    post(a.addr, &alice, "lobby", "marker").await;
    expect_chat(&mut watcher, "marker").await;

    // Gone from every instance for longer than the grace period: user-left.
    drop(bob_on_a);
    let (left, _) = expect(&mut watcher, "user-left").await;
    assert_eq!(left, json!({"room": "lobby", "user": "bob", "online": 1}));
    assert_eq!(prefix.presence_entries("lobby", "bob"), 0);

    // An explicit leave on A while bob's stream is on B: told at once, and only once.
    let mut bob_on_b = open_stream(b.addr, "rooms=lobby", &bob, None).await;
    expect(&mut bob_on_b, "hello").await;
    expect(&mut watcher, "user-joined").await;
    let response = send(
        a.addr,
        post_json("/rooms/lobby/leave", Some(&bob), json!(null)),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (left, _) = expect(&mut watcher, "user-left").await;
    assert_eq!(left, json!({"room": "lobby", "user": "bob", "online": 1}));
    drop(bob_on_b);
    post(b.addr, &bob, "lobby", "after the leave").await;
    expect_chat(&mut watcher, "after the leave").await;

    drop(watcher);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_one_instance_resumes_on_the_other() {
    let prefix = Prefix::new();
    let (a, b) = two_instances(&prefix, config()).await;
    let alice = login(a.addr, "alice").await;
    let bob = login(b.addr, "bob").await;

    let mut events = open_stream(a.addr, "rooms=lobby", &alice, None).await;
    expect(&mut events, "hello").await;
    expect(&mut events, "user-joined").await;
    post(b.addr, &bob, "lobby", "one").await;
    expect_chat(&mut events, "one").await;
    post(a.addr, &bob, "lobby", "two").await;
    let last = expect_chat(&mut events, "two").await;
    drop(events);

    // Meanwhile, on both instances.
    post(b.addr, &bob, "lobby", "three").await;
    let response = send(
        a.addr,
        post_json("/users/alice/messages", Some(&bob), json!({"text": "four"})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);

    // As the page does after a failover: the id in the query, on B.
    let query = format!("rooms=lobby&lastEventId={last}");
    let mut events = open_stream(b.addr, &query, &alice, None).await;
    let (hello, _) = expect(&mut events, "hello").await;
    assert!(hello.get("position").is_none());
    let three = expect_chat(&mut events, "three").await;
    let (private, four) = expect(&mut events, "private").await;
    assert_eq!(private["text"], "four");
    // Then live, with nothing repeated or in between.
    post(a.addr, &bob, "lobby", "five").await;
    expect_chat(&mut events, "five").await;
    drop(events);

    // And back to A with the header a browser sends: exactly what came after.
    let mut events = open_stream(a.addr, "rooms=lobby", &alice, Some(&three)).await;
    expect(&mut events, "hello").await;
    let (private, id) = expect(&mut events, "private").await;
    assert_eq!((private["text"].as_str(), id), (Some("four"), four));
    expect_chat(&mut events, "five").await;

    drop(events);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_instance_hands_its_clients_over() {
    let prefix = Prefix::new();
    let (a, b) = two_instances(&prefix, config()).await;
    let alice = login(a.addr, "alice").await;
    let bob = login(b.addr, "bob").await;

    let mut alice_on_a = open_stream(a.addr, "rooms=lobby", &alice, None).await;
    expect(&mut alice_on_a, "hello").await;
    expect(&mut alice_on_a, "user-joined").await;
    let mut bob_on_b = open_stream(b.addr, "rooms=lobby", &bob, None).await;
    expect(&mut bob_on_b, "hello").await;
    // A stream opened without an id starts where its instance has read the Redis stream,
    // which may be just before alice's `user-joined`: then it comes too.
    loop {
        let (joined, _) = expect(&mut bob_on_b, "user-joined").await;
        if joined["user"] == "bob" {
            break;
        }
        assert_eq!(joined["user"], "alice");
    }
    let (joined, _) = expect(&mut alice_on_a, "user-joined").await;
    assert_eq!(joined["user"], "bob");
    post(b.addr, &bob, "lobby", "before").await;
    let last = expect_chat(&mut alice_on_a, "before").await;
    expect_chat(&mut bob_on_b, "before").await;

    // A stops: alice's stream ends cleanly, at an event boundary.
    let stopping = tokio::spawn(a.stop());
    let rest: Vec<DecodedEvent> = within(alice_on_a.collect()).await;
    assert!(rest.is_empty(), "{rest:?}");
    within(stopping).await.expect("A stopped");

    let missed = ["while A is down 1", "while A is down 2"];
    for text in missed {
        post(b.addr, &bob, "lobby", text).await;
        expect_chat(&mut bob_on_b, text).await;
    }
    let mut alice_on_b = open_stream(b.addr, "rooms=lobby", &alice, Some(&last)).await;
    let (hello, _) = expect(&mut alice_on_b, "hello").await;
    assert_eq!(hello["rooms"][0]["online"], json!(["alice", "bob"]));
    for text in missed {
        expect_chat(&mut alice_on_b, text).await;
    }

    // A handed alice's presence to the grace period; she was back on B in time, so once
    // A's presence of her ran out and was swept, nobody was told she left.
    prefix.wait_for_presence_entries("lobby", "alice", 1).await;
    post(b.addr, &alice, "lobby", "still here").await;
    expect_chat(&mut bob_on_b, "still here").await;
    expect_chat(&mut alice_on_b, "still here").await;

    drop((alice_on_b, bob_on_b));
    b.stop().await;
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let config = Config {
        secret: None,
        ..Config::default()
    };
    let backend = Backend::Redis {
        url: "redis://user:hunter2@127.0.0.1:1".to_owned(),
        key_prefix: "tower-sse-chat-unreachable".to_owned(),
    };
    let error = within(chat_app::start(config, backend, CancellationToken::new()))
        .await
        .expect_err("no Redis listens on port 1");
    let message = error.to_string();
    assert!(
        message.contains("cannot use Redis at redis://user:***@127.0.0.1:1"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    let bad = Backend::Redis {
        url: "not a url".to_owned(),
        key_prefix: "p".to_owned(),
    };
    let error = within(chat_app::start(
        Config::default(),
        bad,
        CancellationToken::new(),
    ))
    .await
    .expect_err("not a Redis URL");
    assert!(error.to_string().contains("not a url"), "{error}");
}

// ---------------------------------------------------------------------- a real browser

/// Two instances for the browser: each lists both origins, so each page may fail over to
/// the other, with CORS for it; a 2 s retry hint; a presence grace period far longer than
/// the failover takes while the script holds the page's reconnection and sends (the test
/// waits for it to run out once, at its end).
fn browser_config(peers: Vec<String>) -> Config {
    Config {
        secret: None,
        retry: Duration::from_secs(2),
        presence_grace: Duration::from_secs(20),
        sweep_interval: Duration::from_millis(200),
        peers,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the node packages in tests/e2e: run bash .ci/run"]
async fn chromium_fails_over_to_the_other_instance() {
    e2e::require_node_packages(&["playwright-core"]);
    e2e::require_chromium();
    let prefix = Prefix::new();
    let (listener_a, listener_b) = (loopback_listener().await, loopback_listener().await);
    let peers = vec![origin_of(&listener_a), origin_of(&listener_b)];
    let a = start_instance(listener_a, &prefix, browser_config(peers.clone())).await;
    let b = start_instance(listener_b, &prefix, browser_config(peers)).await;
    let node =
        e2e::NodeScript::spawn_with("chat_redis_browser.mjs", &[&a.base_url(), &b.base_url()]);
    let mut a = Some(a);
    let status = node
        .serve(async |request| {
            let words: Vec<&str> = request.split(' ').collect();
            match words[..] {
                ["stop-a"] => {
                    a.take().expect("A is running").stop().await;
                    println!("[harness] stopped instance A");
                    "stopped".to_owned()
                }
                ["swept", room, user] => {
                    prefix.wait_for_presence_entries(room, user, 1).await;
                    println!("[harness] only one instance holds {user} in #{room}");
                    "swept".to_owned()
                }
                _ => panic!("unknown request from chat_redis_browser.mjs: {request:?}"),
            }
        })
        .await;
    if let Some(a) = a {
        a.stop().await;
    }
    b.stop().await;
    assert!(status.success(), "chat_redis_browser.mjs failed: {status}");
}
