//! The HTTP handlers: JSON in, JSON out, and the one SSE stream per tab.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tower_sse::{KeepAlive, LastEventId, Sse};

use super::chat::{Chat, Guarded, room_topic, user_topic};
use super::error::{ApiError, JsonBody};
use super::session::{self, validate_room};

/// The body of `POST /session`.
#[derive(Deserialize)]
pub struct LoginRequest {
    name: String,
}

/// The body of the message endpoints.
#[derive(Deserialize)]
pub struct MessageRequest {
    text: String,
}

/// The body of `POST /admin/kick`.
#[derive(Deserialize)]
pub struct KickRequest {
    user: String,
}

type PathParam = Result<Path<String>, PathRejection>;

fn path_param(param: PathParam) -> Result<String, ApiError> {
    param
        .map(|Path(value)| value)
        .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
}

/// `GET /session`: who the cookie says this is.
pub async fn whoami(State(chat): State<Chat>, headers: HeaderMap) -> Result<Response, ApiError> {
    let session = chat.authenticate(&headers).await?;
    Ok(Json(serde_json::json!({ "name": session.name })).into_response())
}

/// `POST /session` `{"name": "..."}`: signs in and sets the session cookie.
pub async fn login(
    State(chat): State<Chat>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Response, ApiError> {
    let current = chat.signer().session_of(&headers);
    let session = chat.login(&request.name, current).await?;
    let cookie = session::set_cookie(&chat.signer().sign(&session));
    let body = Json(serde_json::json!({ "name": session.name }));
    Ok(([(header::SET_COOKIE, cookie)], body).into_response())
}

/// `DELETE /session`: signs out, ends the session's streams and clears the cookie.
pub async fn logout(State(chat): State<Chat>, headers: HeaderMap) -> Response {
    if let Some(session) = chat.signer().session_of(&headers) {
        chat.logout(&session).await;
    }
    let cookie = session::clear_cookie();
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// The query of `GET /events`.
#[derive(Debug, Default, PartialEq)]
pub struct StreamParams {
    /// The rooms to carry (validated, without duplicates, in the order given).
    pub rooms: Vec<String>,
    /// The private topic asked for, if any; it must be the signed-in user's own.
    pub user: Option<String>,
}

impl StreamParams {
    /// Reads `rooms=a,b` and `user=name`; other parameters (such as `lastEventId`) are
    /// left to their readers.
    pub fn parse(query: Option<&str>, max_rooms: usize) -> Result<Self, ApiError> {
        let mut params = StreamParams::default();
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
        for (key, value) in pairs {
            match &*key {
                "rooms" => {
                    for room in value.split(',').filter(|r| !r.is_empty()) {
                        validate_room(room).map_err(ApiError::bad_request)?;
                        if params.rooms.iter().any(|r| r == room) {
                            continue;
                        }
                        if params.rooms.len() == max_rooms {
                            return Err(ApiError::bad_request(format!(
                                "a stream carries at most {max_rooms} rooms"
                            )));
                        }
                        params.rooms.push(room.to_owned());
                    }
                }
                "user" => params.user = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(params)
    }
}

/// `GET /events?rooms=a,b[&lastEventId=...]`: the tab's one SSE stream, carrying its rooms
/// and the user's private topic, resumed after `Last-Event-ID` (header, else query).
pub async fn events(
    State(chat): State<Chat>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    last_event_id: Option<LastEventId>,
) -> Result<Response, ApiError> {
    let session = chat.authenticate(&headers).await?;
    let config = chat.config();
    let params = StreamParams::parse(query.as_deref(), config.max_rooms_per_stream)?;
    if params
        .user
        .as_ref()
        .is_some_and(|user| *user != session.name)
    {
        return Err(ApiError::forbidden(
            "a stream may only carry your own private messages",
        ));
    }
    let mut topics: Vec<String> = params.rooms.iter().map(|r| room_topic(r)).collect();
    topics.push(user_topic(&session.name));
    // Without a last event id, tell the page where the stream starts (taken before
    // subscribing: resuming from it may repeat an event, never miss one).
    let position = last_event_id.is_none().then(|| chat.hub().last_id());
    // Subscribe before registering presence and taking the snapshot in `hello`: every
    // change after the snapshot is then in the stream.
    let subscription = chat
        .hub()
        .subscribe(topics.iter().map(String::as_str), last_event_id.as_deref())
        .map_err(|error| ApiError::unavailable(format!("cannot subscribe: {error}")))?;
    let connection = chat.connect(&session, params.rooms, position).await?;
    let events = futures::stream::iter([connection.hello])
        .chain(Guarded::new(subscription, connection.guard));
    let mut sse = Sse::new(events)
        .retry(config.retry)
        .keep_alive(KeepAlive::new().interval(config.keep_alive))
        .shutdown(connection.token);
    if let Some(lifetime) = config.max_stream_lifetime {
        sse = sse.max_lifetime(lifetime);
    }
    Ok(IntoResponse::into_response(sse))
}

/// `GET /config`: what the page needs before it signs in: `{"origins": [...]}`, the
/// origins of the chat's instances it may fail over to ([`Config::peers`]).
///
/// [`Config::peers`]: super::config::Config::peers
pub async fn client_config(State(chat): State<Chat>) -> Response {
    Json(serde_json::json!({ "origins": chat.config().peers })).into_response()
}

/// `GET /rooms`: every room with how many users are present.
pub async fn rooms(State(chat): State<Chat>, headers: HeaderMap) -> Result<Response, ApiError> {
    chat.authenticate(&headers).await?;
    Ok(Json(chat.rooms().await?).into_response())
}

/// `GET /rooms/{room}`: who is present and the recent messages.
pub async fn room(
    State(chat): State<Chat>,
    headers: HeaderMap,
    room: PathParam,
) -> Result<Response, ApiError> {
    chat.authenticate(&headers).await?;
    let room = path_param(room)?;
    Ok(Json(chat.room(&room).await?).into_response())
}

/// `POST /rooms/{room}/join`: creates the room if needed and returns its state. The page
/// then reopens its stream with the room added (see the crate docs of the example).
pub async fn join(
    State(chat): State<Chat>,
    headers: HeaderMap,
    room: PathParam,
) -> Result<Response, ApiError> {
    chat.authenticate(&headers).await?;
    let room = path_param(room)?;
    Ok(Json(chat.join(&room).await?).into_response())
}

/// `POST /rooms/{room}/leave`: the room hears `user-left` now.
pub async fn leave(
    State(chat): State<Chat>,
    headers: HeaderMap,
    room: PathParam,
) -> Result<Response, ApiError> {
    let session = chat.authenticate(&headers).await?;
    let room = path_param(room)?;
    chat.leave(&session, &room).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /rooms/{room}/messages` `{"text": "..."}`: `201 {"id": "..."}`.
pub async fn post_message(
    State(chat): State<Chat>,
    headers: HeaderMap,
    room: PathParam,
    JsonBody(request): JsonBody<MessageRequest>,
) -> Result<Response, ApiError> {
    let session = chat.authenticate(&headers).await?;
    let room = path_param(room)?;
    let id = chat.post(&session, &room, &request.text).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response())
}

/// `POST /users/{name}/messages` `{"text": "..."}`: a private message, `201 {"id": "..."}`.
pub async fn private_message(
    State(chat): State<Chat>,
    headers: HeaderMap,
    to: PathParam,
    JsonBody(request): JsonBody<MessageRequest>,
) -> Result<Response, ApiError> {
    let session = chat.authenticate(&headers).await?;
    let to = path_param(to)?;
    let id = chat.private(&session, &to, &request.text).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))).into_response())
}

/// `POST /admin/kick` `{"user": "..."}` (only with `Config::admin_routes`): ends the user's
/// streams, as a network drop or a proxy would; their browsers reconnect and resume.
pub async fn kick(State(chat): State<Chat>, JsonBody(request): JsonBody<KickRequest>) -> Response {
    let streams = chat.kick(&request.user).await;
    Json(serde_json::json!({ "streams": streams })).into_response()
}
