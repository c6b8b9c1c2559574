//! Requests to the chat example's HTTP API (`examples/chat`) and its event stream, for the
//! chat tests, whether they call the router in process or a server over a socket.

use std::fmt::Debug;
use std::pin::Pin;

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyDataStream, BodyExt};
use serde_json::Value;
use tower_sse::decode::{DecodedEvent, decode_stream};

use super::wait::within;

/// `GET path`, with the session cookie if given.
pub fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).expect("request")
}

/// `POST path` with a JSON body (a `serde_json::Value`, or any text, valid or not), with
/// the session cookie if given.
pub fn post_json(path: &str, cookie: Option<&str>, body: impl ToString) -> Request<Body> {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body.to_string())).expect("request")
}

/// `POST /session` for `name`.
pub fn sign_in(name: &str) -> Request<Body> {
    post_json("/session", None, serde_json::json!({ "name": name }))
}

/// The `Cookie` header value of the session that `response`, to a successful sign-in as
/// `name`, sets.
pub fn session_cookie<B>(response: &Response<B>, name: &str) -> String {
    assert_eq!(response.status(), StatusCode::OK, "sign in as {name}");
    let set_cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    set_cookie.split(';').next().expect("cookie").to_owned()
}

/// The JSON body of `response`.
pub async fn json_of<B>(response: Response<B>) -> Value
where
    B: http_body::Body,
    B::Error: Debug,
{
    let bytes = within(response.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {bytes:?}"))
}

/// `GET /events?<query>`, with `Last-Event-ID` if given.
pub fn stream_request(query: &str, cookie: &str, last_event_id: Option<&str>) -> Request<Body> {
    let mut request = get(&format!("/events?{query}"), Some(cookie));
    if let Some(id) = last_event_id {
        request
            .headers_mut()
            .insert("last-event-id", id.parse().expect("header"));
    }
    request
}

/// The events of a stream, as a client decodes them.
pub type Events = Pin<Box<dyn Stream<Item = DecodedEvent> + Send>>;

/// The events of `response`, which must be an event stream.
pub fn events_of_response<B>(response: Response<B>) -> Events
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Debug,
{
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let events = decode_stream(BodyDataStream::new(response.into_body()))
        .map(|event| event.expect("well-formed stream, no transport error"));
    Box::pin(events)
}

/// The next event (comments and id-only blocks dispatch nothing and are skipped).
pub async fn next(events: &mut Events) -> DecodedEvent {
    within(events.next()).await.expect("the stream is open")
}

/// The next event, which must be of type `kind`: its data as JSON and its id.
pub async fn expect(events: &mut Events, kind: &str) -> (Value, String) {
    let event = next(events).await;
    assert_eq!(event.event_type, kind, "{event:?}");
    let data = serde_json::from_str(&event.data).expect("JSON data");
    (data, event.last_event_id)
}

/// The next event must be the chat message `text`; returns its id.
pub async fn expect_chat(events: &mut Events, text: &str) -> String {
    let (data, id) = expect(events, "chat").await;
    assert_eq!(data["text"], text, "{data}");
    id
}
