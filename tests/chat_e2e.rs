//! The chat example (examples/chat), tested in-process and with real clients.
//!
//! The tests without `#[ignore]` drive the router directly (no socket, paused clock where
//! time matters) or over a loopback socket. The ignored ones drive headless Chromium and
//! the `eventsource` npm package through the Node scripts in `tests/e2e`:
//!
//! ```text
//! bash .ci/run      # installs Chromium and the node packages, then runs everything
//! cargo test --all-features --test chat_e2e -- --include-ignored --nocapture
//! ```

#[path = "../examples/chat/app.rs"]
#[allow(dead_code)]
mod chat_app;
#[path = "e2e/support.rs"]
#[allow(dead_code)]
mod e2e;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use futures::StreamExt;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_sse::CancellationToken;
use tower_sse::decode::{DecodedEvent, decode_stream};
use tower_sse::hub::Hub;

use chat_app::config::parse_origin;
use chat_app::session::{KEY_LEN, Signer, validate_name, validate_room};
use chat_app::{Chat, Config};
use support::app_server::AppServer;
use support::chat::{
    Events, events_of_response, expect, get, json_of, post_json, session_cookie, sign_in,
    stream_request,
};
use support::client::send;

const KEY: [u8; KEY_LEN] = [7; KEY_LEN];

fn test_config() -> Config {
    Config {
        secret: Some(KEY),
        admin_routes: true,
        ..Config::default()
    }
}

/// A chat router with its own in-memory hub, as `start` builds it.
fn app(config: Config) -> Router {
    let shutdown = CancellationToken::new();
    let hub = Hub::builder()
        .initial_id(true)
        .shutdown(shutdown.clone())
        .build();
    chat_app::router(Chat::new(config, hub, shutdown).expect("chat"))
}

async fn call(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.expect("infallible")
}

/// The error message of a JSON error response with `status`.
async fn error_of(response: Response<Body>, status: StatusCode) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body = json_of(response).await;
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_owned()
}

/// Signs `name` in; returns the `Cookie` header value.
async fn login(app: &Router, name: &str) -> String {
    session_cookie(&call(app, sign_in(name)).await, name)
}

/// Opens `GET /events` and decodes it.
async fn open_stream(app: &Router, query: &str, cookie: &str, last_id: Option<&str>) -> Events {
    events_of_response(call(app, stream_request(query, cookie, last_id)).await)
}

// ---------------------------------------------------------------------- in-process

#[test]
fn names_and_rooms_are_validated() {
    for good in ["a", "ada", "Bob_2", "x-y", &"n".repeat(24)] {
        assert!(validate_name(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "no space",
        "émile",
        "a.b",
        "a:b",
        &"n".repeat(25),
        "<script>",
    ] {
        assert!(validate_name(bad).is_err(), "{bad}");
    }
    for good in ["lobby", "rust-lang", "a_1", &"r".repeat(32)] {
        assert!(validate_room(good).is_ok(), "{good}");
    }
    for bad in ["", "Lobby", "a b", "a/b", "room:x", &"r".repeat(33)] {
        assert!(validate_room(bad).is_err(), "{bad}");
    }
}

#[test]
fn cookies_verify_only_untampered() {
    let signer = Signer::new(&KEY);
    let session = signer.issue("alice").expect("random");
    let cookie = signer.sign(&session);
    assert_eq!(signer.verify(&cookie), Some(session.clone()));
    // Another name with the same tag, a flipped tag digit, another key, junk.
    let renamed = cookie.replacen("alice", "bob", 1);
    assert_eq!(signer.verify(&renamed), None);
    let mut flipped = cookie.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        signer.verify(std::str::from_utf8(&flipped).expect("ascii")),
        None
    );
    assert_eq!(Signer::new(&[8; KEY_LEN]).verify(&cookie), None);
    for junk in [
        "",
        ".",
        "..",
        "alice..",
        "a.b.c.d",
        "alice.zz.zz",
        "\u{0}.\u{0}.\u{0}",
    ] {
        assert_eq!(signer.verify(junk), None, "{junk:?}");
    }
}

#[tokio::test]
async fn signing_in() {
    let app = app(test_config());
    for bad in [
        r#"{"name":""}"#,
        r#"{"name":"two words"}"#,
        r#"{"name":"0123456789012345678901234"}"#,
    ] {
        let message = error_of(
            call(&app, post_json("/session", None, bad)).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(message.contains("name"), "{message}");
    }
    let alice = login(&app, "alice").await;
    let me = json_of(call(&app, get("/session", Some(&alice))).await).await;
    assert_eq!(me["name"], "alice");
    // The name is held: another session cannot take it; the holder may sign in again.
    let taken = call(&app, post_json("/session", None, r#"{"name":"alice"}"#)).await;
    assert!(
        error_of(taken, StatusCode::CONFLICT)
            .await
            .contains("taken")
    );
    let again = call(
        &app,
        post_json("/session", Some(&alice), r#"{"name":"alice"}"#),
    )
    .await;
    assert_eq!(again.status(), StatusCode::OK);
    // Signing out frees it.
    let mut logout = get("/session", Some(&alice));
    *logout.method_mut() = axum::http::Method::DELETE;
    let response = call(&app, logout).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.headers()[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
    login(&app, "alice").await;
}

#[tokio::test]
async fn bad_bodies_get_json_errors() {
    let app = app(Config {
        max_body: 256,
        max_text: 20,
        ..test_config()
    });
    let alice = login(&app, "alice").await;
    let path = "/rooms/lobby/messages";
    let cases = [
        ("{", StatusCode::BAD_REQUEST),
        ("[1,2]", StatusCode::BAD_REQUEST),
        (r#"{"text": 5}"#, StatusCode::BAD_REQUEST),
        (r#"{"text": "   "}"#, StatusCode::BAD_REQUEST),
        (
            r#"{"text": "twenty-one characters"}"#,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (body, status) in cases {
        let message = error_of(
            call(&app, post_json(path, Some(&alice), body)).await,
            status,
        )
        .await;
        assert!(!message.is_empty(), "{body}");
    }
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(300));
    let message = error_of(
        call(&app, post_json(path, Some(&alice), big)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert!(message.contains("too large"), "{message}");
    let mut no_type = post_json(path, Some(&alice), r#"{"text":"hi"}"#);
    no_type.headers_mut().remove(header::CONTENT_TYPE);
    error_of(
        call(&app, no_type).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    for room in ["Lobby", "a%20b", "%FF", "room:x"] {
        let path = format!("/rooms/{room}/messages");
        let response = call(&app, post_json(&path, Some(&alice), r#"{"text":"hi"}"#)).await;
        error_of(response, StatusCode::BAD_REQUEST).await;
    }
    let ok = call(
        &app,
        post_json(path, Some(&alice), r#"{"text":"twenty characters ok"}"#),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn only_your_own_session_and_private_topic() {
    let app = app(test_config());
    let alice = login(&app, "alice").await;
    // No cookie, a forged one, one signed with another key: 403 before anything else.
    let other_key = Signer::new(&[9; KEY_LEN]);
    let foreign = format!(
        "chat_session={}",
        other_key.sign(&other_key.issue("alice").expect("random"))
    );
    let forged = alice.replacen("alice", "bob", 1);
    for cookie in [None, Some(forged.as_str()), Some(foreign.as_str())] {
        for path in ["/events?rooms=lobby", "/rooms/lobby", "/session"] {
            let response = call(&app, get(path, cookie)).await;
            error_of(response, StatusCode::FORBIDDEN).await;
        }
    }
    // Someone else's private topic.
    let response = call(&app, get("/events?rooms=lobby&user=bob", Some(&alice))).await;
    assert!(
        error_of(response, StatusCode::FORBIDDEN)
            .await
            .contains("private")
    );
    // Bad rooms in the stream query.
    for query in ["rooms=Lobby", "rooms=a,b%20c", "rooms=user:bob"] {
        let response = call(&app, get(&format!("/events?{query}"), Some(&alice))).await;
        error_of(response, StatusCode::BAD_REQUEST).await;
    }
    let many: Vec<String> = (0..17).map(|i| format!("r{i}")).collect();
    let response = call(
        &app,
        get(&format!("/events?rooms={}", many.join(",")), Some(&alice)),
    )
    .await;
    error_of(response, StatusCode::BAD_REQUEST).await;
    // Her own: fine.
    let mut events = open_stream(&app, "rooms=lobby&user=alice", &alice, None).await;
    let (hello, id) = expect(&mut events, "hello").await;
    assert_eq!(hello["user"], "alice");
    assert!(id.is_empty(), "hello carries no id");
    assert!(hello["position"].is_string());
}

#[tokio::test]
async fn messages_reach_the_room_and_its_history() {
    let app = app(test_config());
    let alice = login(&app, "alice").await;
    let bob = login(&app, "bob").await;
    let mut events = open_stream(&app, "rooms=lobby,rust", &alice, None).await;
    let (hello, _) = expect(&mut events, "hello").await;
    assert_eq!(hello["rooms"][0]["online"], serde_json::json!(["alice"]));
    for room in ["lobby", "rust"] {
        let (joined, _) = expect(&mut events, "user-joined").await;
        assert_eq!(
            joined,
            serde_json::json!({"room": room, "user": "alice", "online": 1})
        );
    }
    let text = "line one\nline two: <b>&</b>";
    let body = serde_json::json!({ "text": text }).to_string();
    let response = call(&app, post_json("/rooms/rust/messages", Some(&bob), body)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let posted = json_of(response).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (chat, id) = expect(&mut events, "chat").await;
    assert_eq!(
        (
            chat["room"].as_str(),
            chat["from"].as_str(),
            chat["text"].as_str()
        ),
        (Some("rust"), Some("bob"), Some(text))
    );
    assert_eq!(id, posted);
    let state = json_of(call(&app, get("/rooms/rust", Some(&bob))).await).await;
    assert_eq!(state["online"], serde_json::json!(["alice"]));
    assert_eq!(state["messages"][0]["id"], posted.as_str());
    assert_eq!(state["messages"][0]["text"], text);
    let rooms = json_of(call(&app, get("/rooms", Some(&bob))).await).await;
    assert_eq!(
        rooms,
        serde_json::json!([{"room": "lobby", "online": 1}, {"room": "rust", "online": 1}])
    );
}

#[tokio::test]
async fn private_messages_reach_only_their_user() {
    let app = app(test_config());
    let (alice, bob, carol) = (
        login(&app, "alice").await,
        login(&app, "bob").await,
        login(&app, "carol").await,
    );
    let mut streams = Vec::new();
    for cookie in [&alice, &bob, &carol] {
        let mut events = open_stream(&app, "rooms=", cookie, None).await;
        expect(&mut events, "hello").await;
        streams.push(events);
    }
    let response = call(
        &app,
        post_json("/users/bob/messages", Some(&alice), r#"{"text":"psst"}"#),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    for events in &mut streams[..2] {
        let (data, _) = expect(events, "private").await;
        assert_eq!(
            (
                data["from"].as_str(),
                data["to"].as_str(),
                data["text"].as_str()
            ),
            (Some("alice"), Some("bob"), Some("psst"))
        );
    }
    // Carol's next event is her own, not bob's.
    let response = call(
        &app,
        post_json(
            "/users/carol/messages",
            Some(&carol),
            r#"{"text":"note to self"}"#,
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let (data, _) = expect(&mut streams[2], "private").await;
    assert_eq!(data["text"], "note to self");
    let nobody = call(
        &app,
        post_json("/users/nobody/messages", Some(&alice), r#"{"text":"hi"}"#),
    )
    .await;
    error_of(nobody, StatusCode::NOT_FOUND).await;
}

#[tokio::test(start_paused = true)]
async fn presence_survives_a_quick_reconnect_and_ends_after_the_grace_period() {
    let grace = Duration::from_secs(5);
    let app = app(Config {
        presence_grace: grace,
        ..test_config()
    });
    let (alice, bob) = (login(&app, "alice").await, login(&app, "bob").await);
    let mut watcher = open_stream(&app, "rooms=lobby", &alice, None).await;
    expect(&mut watcher, "hello").await;
    expect(&mut watcher, "user-joined").await;

    let bob_stream = open_stream(&app, "rooms=lobby", &bob, None).await;
    let (joined, _) = expect(&mut watcher, "user-joined").await;
    assert_eq!(
        joined,
        serde_json::json!({"room": "lobby", "user": "bob", "online": 2})
    );

    // Bob's stream drops and comes back within the grace period: nobody is told.
    drop(bob_stream);
    tokio::time::sleep(grace / 2).await;
    let mut bob_stream = open_stream(&app, "rooms=lobby", &bob, None).await;
    let (hello, _) = expect(&mut bob_stream, "hello").await;
    assert_eq!(
        hello["rooms"][0]["online"],
        serde_json::json!(["alice", "bob"])
    );
    tokio::time::sleep(grace * 2).await;
    call(
        &app,
        post_json(
            "/rooms/lobby/messages",
            Some(&alice),
            r#"{"text":"marker"}"#,
        ),
    )
    .await;
    let (chat, _) = expect(&mut watcher, "chat").await;
    assert_eq!(
        chat["text"], "marker",
        "no presence event before the marker"
    );

    // Gone for longer than the grace period: user-left.
    drop(bob_stream);
    let (left, _) = expect(&mut watcher, "user-left").await;
    assert_eq!(
        left,
        serde_json::json!({"room": "lobby", "user": "bob", "online": 1})
    );

    // An explicit leave is told at once, while the stream is still open.
    let mut bob_stream = open_stream(&app, "rooms=lobby", &bob, None).await;
    expect(&mut bob_stream, "hello").await;
    expect(&mut watcher, "user-joined").await;
    let response = call(&app, post_json("/rooms/lobby/leave", Some(&bob), "")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (left, _) = expect(&mut watcher, "user-left").await;
    assert_eq!(left["user"], "bob");
    drop(bob_stream);
}

#[tokio::test]
async fn a_cut_stream_resumes_with_last_event_id() {
    let app = app(test_config());
    let (alice, bob) = (login(&app, "alice").await, login(&app, "bob").await);
    let mut events = open_stream(&app, "rooms=lobby", &alice, None).await;
    expect(&mut events, "hello").await;
    let (_, mut last) = expect(&mut events, "user-joined").await;
    for text in ["one", "two"] {
        let body = format!(r#"{{"text":"{text}"}}"#);
        call(&app, post_json("/rooms/lobby/messages", Some(&bob), body)).await;
        let (chat, id) = expect(&mut events, "chat").await;
        assert_eq!(chat["text"], text);
        last = id;
    }
    // The server ends the stream: the body ends cleanly.
    let kicked =
        json_of(call(&app, post_json("/admin/kick", None, r#"{"user":"alice"}"#)).await).await;
    assert_eq!(kicked["streams"], 1);
    let rest: Vec<DecodedEvent> = tokio::time::timeout(Duration::from_secs(60), events.collect())
        .await
        .expect("the stream ends");
    assert!(rest.is_empty(), "{rest:?}");
    // Meanwhile.
    for text in ["three", "four"] {
        let body = format!(r#"{{"text":"{text}"}}"#);
        call(&app, post_json("/rooms/lobby/messages", Some(&bob), body)).await;
    }
    let mut events = open_stream(&app, "rooms=lobby", &alice, Some(&last)).await;
    let (hello, _) = expect(&mut events, "hello").await;
    assert!(
        hello.get("position").is_none(),
        "resuming streams need no position"
    );
    for text in ["three", "four"] {
        let (chat, _) = expect(&mut events, "chat").await;
        assert_eq!(chat["text"], text);
    }
    // And live again.
    call(
        &app,
        post_json("/rooms/lobby/messages", Some(&bob), r#"{"text":"five"}"#),
    )
    .await;
    let (chat, _) = expect(&mut events, "chat").await;
    assert_eq!(chat["text"], "five");
}

#[tokio::test]
async fn a_restarted_server_answers_an_old_id_with_reset() {
    let first = app(test_config());
    let alice = login(&first, "alice").await;
    let mut events = open_stream(&first, "rooms=lobby", &alice, None).await;
    expect(&mut events, "hello").await;
    let (_, last) = expect(&mut events, "user-joined").await;
    drop(events);

    // Same key, new hub: the cookie still works, the id is from another epoch.
    let second = app(test_config());
    let mut events = open_stream(&second, "rooms=lobby", &alice, Some(&last)).await;
    expect(&mut events, "hello").await;
    let (reset, id) = expect(&mut events, "reset").await;
    assert_eq!(reset["reason"], "epoch");
    assert!(!id.is_empty() && id != last);
    // A new key: the old cookie is refused and the page must sign in again.
    let third = app(Config {
        secret: Some([1; KEY_LEN]),
        ..test_config()
    });
    let response = call(&third, get("/events?rooms=lobby", Some(&alice))).await;
    error_of(response, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn peers_get_cors_with_credentials_and_nobody_else_does() {
    let peer = "http://127.0.0.1:3001";
    let shared = app(Config {
        peers: vec![peer.to_owned()],
        ..test_config()
    });
    let config = json_of(call(&shared, get("/config", None)).await).await;
    assert_eq!(config, serde_json::json!({ "origins": [peer] }));
    let page = call(&shared, get("/", None)).await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains(&format!("connect-src 'self' {peer};")),
        "{csp}"
    );

    // The preflight of a JSON post from a peer's page.
    let preflight = |origin: &str| {
        Request::options("/rooms/lobby/messages")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .body(Body::empty())
            .expect("request")
    };
    let response = call(&shared, preflight(peer)).await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], peer);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("POST"), "{methods}");
    let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .expect("ascii");
    assert!(allowed.contains("content-type"), "{allowed}");
    // Any other origin gets no `Access-Control-Allow-Origin`: the browser refuses its
    // pages both the preflight and the response.
    for stranger in ["http://127.0.0.1:3002", "http://evil.example", "null"] {
        let response = call(&shared, preflight(stranger)).await;
        let headers = response.headers();
        assert!(
            !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "{stranger}: {headers:?}"
        );
    }

    // The stream and a post, cross-origin with the cookie: the exact origin, never `*`.
    let alice = login(&shared, "alice").await;
    let mut request = get("/events?rooms=lobby", Some(&alice));
    request
        .headers_mut()
        .insert(header::ORIGIN, peer.parse().expect("header"));
    let response = call(&shared, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        peer
    );
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
        "true"
    );
    let vary: Vec<&str> = response
        .headers()
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(vary.iter().any(|v| v.contains("origin")), "{vary:?}");
    drop(response);
    let mut request = post_json("/rooms/lobby/messages", Some(&alice), r#"{"text":"hi"}"#);
    request
        .headers_mut()
        .insert(header::ORIGIN, peer.parse().expect("header"));
    let response = call(&shared, request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        peer
    );

    // A single instance lists no origins and answers no origin.
    let alone = app(test_config());
    let config = json_of(call(&alone, get("/config", None)).await).await;
    assert_eq!(config, serde_json::json!({ "origins": [] }));
    let response = call(&alone, preflight(peer)).await;
    assert!(
        !response
            .headers()
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[test]
fn origins_are_checked_and_normalized() {
    for (text, origin) in [
        ("http://127.0.0.1:3001", "http://127.0.0.1:3001"),
        ("http://127.0.0.1:3001/", "http://127.0.0.1:3001"),
        ("HTTPS://Chat.Example.com", "https://chat.example.com"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("http://localhost", "http://localhost"),
    ] {
        assert_eq!(parse_origin(text).as_deref(), Ok(origin), "{text}");
    }
    for bad in [
        "",
        "127.0.0.1:3001",
        "ftp://host",
        "http://",
        "http://host/path",
        "http://host:99999",
        "http://host:",
        "http://a:b:3000",
        "http://user@host",
        "http://host?x",
        "http://[::1",
        "http://[zz]:1",
        "http://ho st",
        "*",
    ] {
        assert!(parse_origin(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_command_line_and_the_environment() {
    use chat_app::cli::{Command, DEFAULT_KEY_PREFIX, parse};
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    };
    let args = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let run = |list: &[&str], vars| match parse(args(list), env(vars)) {
        Ok(Command::Run(args)) => args,
        other => panic!("{list:?}: {other:?}"),
    };

    let defaults = run(&[], &[]);
    assert_eq!(defaults.addr.to_string(), "127.0.0.1:3000");
    assert_eq!(defaults.redis_url, None);
    assert_eq!(defaults.key_prefix, DEFAULT_KEY_PREFIX);
    assert!(defaults.peers.is_empty() && defaults.secret.is_none());

    let flags = run(
        &[
            "--addr=127.0.0.1:3001",
            "--redis",
            "redis://127.0.0.1:6379",
            "--key-prefix",
            "team",
            "--peer",
            "http://127.0.0.1:3000/",
            "--peer=http://127.0.0.1:3001",
            "--peer",
            "http://127.0.0.1:3000",
            "--max-stream-secs",
            "30",
        ],
        &[],
    );
    assert_eq!(flags.addr.to_string(), "127.0.0.1:3001");
    assert_eq!(flags.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
    assert_eq!(flags.key_prefix, "team");
    assert_eq!(
        flags.peers,
        ["http://127.0.0.1:3000", "http://127.0.0.1:3001"]
    );
    assert_eq!(flags.max_stream_lifetime, Some(Duration::from_secs(30)));

    const ENV: &[(&str, &str)] = &[
        ("REDIS_URL", "redis://10.0.0.1"),
        ("CHAT_PEERS", "http://a:1, http://b:2"),
        (
            "CHAT_SECRET",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ),
    ];
    let from_env = run(&[], ENV);
    assert_eq!(from_env.redis_url.as_deref(), Some("redis://10.0.0.1"));
    assert_eq!(from_env.peers, ["http://a:1", "http://b:2"]);
    let secret = from_env.secret.expect("the key");
    assert_eq!((secret[0], secret[31]), (0, 31));
    // Flags win over the environment.
    let both = run(&["--redis", "redis://h", "--peer", "http://c:3"], ENV);
    assert_eq!(both.redis_url.as_deref(), Some("redis://h"));
    assert_eq!(both.peers, ["http://c:3"]);
    // An empty variable is unset.
    assert_eq!(run(&[], &[("REDIS_URL", " ")]).redis_url, None);

    assert!(matches!(parse(args(&["-h"]), env(&[])), Ok(Command::Help)));
    for (list, vars, needle) in [
        (&["--peer", "127.0.0.1:3001"][..], &[][..], "--peer"),
        (&["--peer"][..], &[][..], "needs a value"),
        (&["--key-prefix", ""][..], &[][..], "--key-prefix"),
        (&["--addr", "nowhere"][..], &[][..], "--addr"),
        (&["--wat"][..], &[][..], "unknown argument"),
        (&[][..], &[("CHAT_SECRET", "abc")][..], "CHAT_SECRET"),
        (
            &[][..],
            &[("CHAT_PEERS", "http://ok:1,bad")][..],
            "CHAT_PEERS",
        ),
    ] {
        let vars: &'static [(&'static str, &'static str)] = vars;
        match parse(args(list), env(vars)) {
            Err(message) => assert!(message.contains(needle), "{list:?}: {message}"),
            other => panic!("{list:?} {vars:?}: {other:?}"),
        }
    }
    let secret = "+f".repeat(32);
    assert!(
        chat_app::cli::parse_secret(&secret).is_err(),
        "signs are not digits"
    );

    assert_eq!(
        chat_app::without_password("redis://app:s3cret@db:6379/0"),
        "redis://app:***@db:6379/0"
    );
    assert_eq!(
        chat_app::without_password("redis://127.0.0.1:6379"),
        "redis://127.0.0.1:6379"
    );
}

// ---------------------------------------------------------------------- over a socket

/// The chat served on a loopback socket by `chat_app::serve_chat`, as `main.rs` does, on
/// `addr` (port 0 for any), retrying while a just-closed port is still busy.
async fn start_server(addr: SocketAddr, config: Config) -> AppServer {
    let mut tries = 0;
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => break listener,
            Err(error) if tries < 100 && error.kind() == std::io::ErrorKind::AddrInUse => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("cannot listen on {addr}: {error}"),
        }
    };
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let chat = chat_app::start(config, chat_app::Backend::Memory, shutdown.clone())
        .await
        .expect("chat");
    AppServer::spawn(addr, shutdown, chat_app::serve_chat(listener, chat))
}

/// Any port on 127.0.0.1.
fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

#[tokio::test]
async fn shutdown_ends_every_stream_cleanly() {
    let server = start_server(any_port(), test_config()).await;
    let cookie = session_cookie(&send(server.addr, sign_in("alice")).await, "alice");
    let mut streams = Vec::new();
    for _ in 0..3 {
        let response = send(server.addr, get("/events?rooms=lobby", Some(&cookie))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
        let mut events = Box::pin(decode_stream(http_body_util::BodyDataStream::new(
            response.into_body(),
        )));
        let hello = events.next().await.expect("hello").expect("well-formed");
        assert_eq!(hello.event_type, "hello");
        streams.push(events);
    }
    let stopping = tokio::spawn(server.stop());
    for mut events in streams {
        // Whatever is left arrives whole, then the body ends without an error.
        let rest: Vec<_> =
            tokio::time::timeout(Duration::from_secs(30), events.by_ref().collect::<Vec<_>>())
                .await
                .expect("the stream ends on shutdown");
        for event in rest {
            event.expect("every event complete, no transport error");
        }
    }
    stopping.await.expect("stopped");
}

// ---------------------------------------------------------------------- real clients

/// The chat as the real-client tests run it: a short retry; a presence grace period far
/// longer than any step of theirs, so a page whose reconnection a script holds while it
/// sends is still present when it comes back, however slow the machine; the kick route;
/// and a random key (so a restart also changes the key, as `cargo run` does).
fn browser_config() -> Config {
    Config {
        secret: None,
        retry: Duration::from_millis(1000),
        presence_grace: Duration::from_secs(60),
        admin_routes: true,
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the node packages in tests/e2e: run bash .ci/run"]
async fn chromium_two_pages() {
    e2e::require_node_packages(&["playwright-core"]);
    e2e::require_chromium();
    let first = start_server(any_port(), browser_config()).await;
    let base = first.base_url();
    let mut server = Some(first);
    let status = e2e::NodeScript::spawn("chat_browser.mjs", &base)
        .serve(async |request| match request {
            "restart" => {
                let addr = server.take().expect("a running server").stop().await;
                server = Some(start_server(addr, browser_config()).await);
                println!("[harness] restarted the server on {addr} with a new hub and key");
                "restarted".to_owned()
            }
            other => panic!("unknown request from chat_browser.mjs: {other:?}"),
        })
        .await;
    if let Some(server) = server {
        server.stop().await;
    }
    assert!(status.success(), "chat_browser.mjs failed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the node packages in tests/e2e: run bash .ci/run"]
async fn eventsource_package_client() {
    e2e::require_node_packages(&["eventsource"]);
    let server = start_server(any_port(), browser_config()).await;
    e2e::run_script("chat_eventsource.mjs", &server.base_url()).await;
    server.stop().await;
}
