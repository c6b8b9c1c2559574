//! A multi-room chat on axum and the tower-sse [`Hub`]: the server half of the example
//! (`main.rs` only reads the command line and calls [`serve`]).
//!
//! # Routes
//!
//! | route | what |
//! |---|---|
//! | `GET /`, `/app.js`, `/style.css` | the page (embedded; no build step, no CDN) |
//! | `GET /config` | `{"origins": [...]}`: the chat's instances ([`Config::peers`]) |
//! | `GET /session` | `{"name"}` of the signed-in user, else `403` |
//! | `POST /session` `{"name"}` | signs in, sets the session cookie; `409` if the name is taken |
//! | `DELETE /session` | signs out, ends the session's streams |
//! | `GET /events?rooms=a,b[&lastEventId=ID][&user=NAME]` | the tab's SSE stream |
//! | `GET /rooms` | `[{"room", "online"}]` |
//! | `GET /rooms/{room}` | `{"room", "online": [names], "messages": [{"id", "room", "from", "text", "at"}]}` |
//! | `POST /rooms/{room}/join` | creates the room if needed; answers like `GET /rooms/{room}` |
//! | `POST /rooms/{room}/leave` | tells the room `user-left` now; `204` |
//! | `POST /rooms/{room}/messages` `{"text"}` | `201 {"id"}` |
//! | `POST /users/{name}/messages` `{"text"}` | a private message; `201 {"id"}`, `404` if nobody has that name |
//! | `POST /admin/kick` `{"user"}` | only with [`Config::admin_routes`] (tests): ends the user's streams |
//!
//! Every route but the page, `/config` and `/session` needs the session cookie (`403`
//! without).
//! Errors are JSON, `{"error": "..."}`: `400` for a bad name, room or JSON body, `413` for
//! a body over [`Config::max_body`] bytes or a message over [`Config::max_text`]
//! characters, `415` without `Content-Type: application/json`.
//!
//! # The stream
//!
//! One `EventSource` per tab: `GET /events` subscribes to the hub topics `room:<room>` for
//! each room in the query and `user:<name>` for the signed-in user, so a user can only
//! ever receive their own private messages (a `user=` parameter naming someone else is
//! `403`). Events:
//!
//! | event | data | id |
//! |---|---|---|
//! | `hello` | `{"user", "rooms": [{"room", "online": [names]}], "position"?}`: presence when the stream opened; `position`, for a stream opened without a last event id, is an id to resume from | none |
//! | `chat` | `{"room", "from", "text", "at"}` | hub id |
//! | `private` | `{"from", "to", "text", "at"}` (the sender's tabs get a copy) | hub id |
//! | `user-joined`, `user-left` | `{"room", "user", "online"}` | hub id |
//! | `reset` | `{"reason"}`: the hub could not resume after the id given | hub id |
//!
//! `hello` has no id, so it never moves the browser's last event id. The response carries
//! a `retry:` hint ([`Config::retry`]) and a keep-alive comment every
//! [`Config::keep_alive`]; on shutdown every stream ends at an event boundary.
//!
//! # Joining a room while connected
//!
//! A subscription's topics are fixed, so the page joins a room in three steps: `POST
//! /rooms/{room}/join` (creates the room, returns its state to show at once), then it
//! closes its `EventSource` and opens a new one with the room added to `rooms=` and its
//! last seen id as `lastEventId=`. The hub replays what the old stream had not delivered,
//! on every topic of the new one, so nothing is lost between the two streams; the page
//! drops events whose id it has already shown. Leaving works the same way, with `POST
//! /rooms/{room}/leave` first so the room hears `user-left` at once.
//!
//! # Resuming
//!
//! * A dropped connection (network, sleep, the server ending the stream): the browser
//!   reconnects after the retry delay and sends `Last-Event-ID`; the hub replays what was
//!   missed.
//! * A reload: the page keeps its rooms and last id in `sessionStorage` and opens the
//!   stream with `lastEventId=`; it loads each room's recent history with
//!   `GET /rooms/{room}` after `hello`, and drops duplicates by id.
//! * A restarted server (new hub, new epoch): the id is unknown, so the stream starts with
//!   the hub's `reset` event; the page clears its rooms and loads them again. If the server
//!   also has a new cookie key, the stream is refused (`403`), the browser stops, and the
//!   page signs in again with the name it kept, then reopens the stream.
//!
//! # Presence
//!
//! A user is present in a room while one of their streams carries it. The first such
//! stream publishes `user-joined`; when the last one closes, `user-left` follows after
//! [`Config::presence_grace`] unless a stream comes back first, so a reconnect or a page
//! switching streams does not flicker. `POST /rooms/{room}/leave` skips the wait.
//!
//! # Several instances
//!
//! With Redis ([`start`] with [`Backend::Redis`]; `--redis URL` on the command line),
//! instances with the same Redis and key prefix form one chat: events travel through the
//! hub's Redis stream and the state they must agree on (cookie key, names, rooms, presence,
//! history) is kept in Redis; `chat_redis.rs` tells how and what is approximate.
//!
//! The page can fail over between instances. It reads the instances' origins from `GET
//! /config` ([`Config::peers`], `--peer` on the command line), starts with its own, and
//! when its stream fails and does not come back (a reconnection attempt fails too, or the
//! browser gives up), opens it on the next origin with `lastEventId=` set to the last id it
//! saw; the hub resumes it there exactly. Its requests follow it to that origin. Every
//! route answers the configured peers with CORS (exact origin, credentials, preflights;
//! `cors.rs`) and the page's `connect-src` allows them.
//!
//! # Sessions
//!
//! `POST /session` issues a cookie `<name>.<session id>.<HMAC-SHA256 tag>` (see
//! `session.rs`) under [`Config::secret`], else a random key (with Redis: one the
//! instances agree on through Redis). A name belongs to the session that took it while that session has a
//! stream open or was seen in the last [`Config::name_hold`]. Memory is bounded by
//! [`Config::max_users`], [`Config::max_rooms`], [`Config::history_len`] and the hub's
//! replay buffers.
//!
//! [`Hub`]: tower_sse::hub::Hub

#[path = "assets.rs"]
pub mod assets;
#[path = "chat.rs"]
pub mod chat;
#[path = "cli.rs"]
pub mod cli;
#[path = "config.rs"]
pub mod config;
#[path = "cors.rs"]
pub mod cors;
#[path = "error.rs"]
pub mod error;
#[cfg(feature = "redis")]
#[path = "redis_store.rs"]
pub mod redis_store;
#[path = "routes.rs"]
pub mod routes;
#[path = "session.rs"]
pub mod session;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower_sse::hub::Hub;
use tower_sse::layer::SseLayer;
use tower_sse::{CancellationToken, KeepAlive};

pub use self::chat::Chat;
pub use self::config::Config;

/// The chat's routes (see the module docs), with `SseLayer` and the body limit.
pub fn router(chat: Chat) -> Router {
    let config = chat.config().clone();
    let mut routes = Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::app_js))
        .route("/style.css", get(assets::style_css))
        .route("/config", get(routes::client_config))
        .route(
            "/session",
            get(routes::whoami)
                .post(routes::login)
                .delete(routes::logout),
        )
        .route("/events", get(routes::events))
        .route("/rooms", get(routes::rooms))
        .route("/rooms/{room}", get(routes::room))
        .route("/rooms/{room}/join", post(routes::join))
        .route("/rooms/{room}/leave", post(routes::leave))
        .route("/rooms/{room}/messages", post(routes::post_message))
        .route("/users/{name}/messages", post(routes::private_message));
    if config.admin_routes {
        routes = routes.route("/admin/kick", post(routes::kick));
    }
    let sse = SseLayer::new()
        .keep_alive(KeepAlive::new().interval(config.keep_alive))
        .shutdown(chat.shutdown_token().clone());
    routes = routes
        .layer(DefaultBodyLimit::max(config.max_body))
        .layer(sse);
    // Outermost: preflights are answered before anything else runs.
    if let Some(cors) = cors::layer(&config.peers) {
        routes = routes.layer(cors);
    }
    routes.with_state(chat)
}

/// Where the chat keeps its state.
#[derive(Clone, Debug)]
pub enum Backend {
    /// In this process: one instance is the whole chat.
    Memory,
    /// In Redis, shared by every instance with the same Redis and key prefix.
    #[cfg(feature = "redis")]
    Redis {
        /// The Redis, such as `redis://127.0.0.1:6379`.
        url: String,
        /// The prefix of every key: the hub's stream is `<prefix>:events`, the chat's state
        /// under `<prefix>:chat:`.
        key_prefix: String,
    },
}

/// Why the chat could not start.
#[derive(Debug)]
pub struct StartError {
    /// What went wrong, for people.
    pub message: String,
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartError {}

/// Builds the chat's hub and state on `backend`; `shutdown` closes the hub and ends every
/// stream.
///
/// # Errors
///
/// With Redis: Redis cannot be reached, refuses the connection, or holds something else
/// under the chat's keys. The message names the server (without its password).
pub async fn start(
    config: Config,
    backend: Backend,
    shutdown: CancellationToken,
) -> Result<Chat, StartError> {
    // `initial_id`: a stream opened without a last event id starts with an id-only event,
    // so a browser that reconnects before the first real event resumes from there.
    let builder = Hub::builder().initial_id(true).shutdown(shutdown.clone());
    match backend {
        Backend::Memory => {
            Chat::new(config, builder.build(), shutdown).map_err(|error| StartError {
                message: error.message,
            })
        }
        #[cfg(feature = "redis")]
        Backend::Redis { url, key_prefix } => {
            use tower_sse::hub::redis::RedisConfig;
            let shown = without_password(&url);
            let failed = |what: &str, error: &dyn std::fmt::Display| StartError {
                message: format!("cannot use Redis at {shown}: {what}: {error}"),
            };
            let redis = RedisConfig::new(url.as_str()).key_prefix(key_prefix.as_str());
            let hub = builder
                .redis(redis)
                .connect()
                .await
                .map_err(|error| failed("the hub", &error))?;
            let store = redis_store::RedisStore::connect(&url, &key_prefix)
                .await
                .map_err(|error| failed("the chat's state", &error))?;
            Chat::with_redis(config, hub, shutdown, store)
                .await
                .map_err(|error| failed("the chat's state", &error.message))
        }
    }
}

/// A Redis URL fit to print: the password, if any, replaced by `***`.
pub fn without_password(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let authority_end = url[start..].find('/').map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &url[start..start + at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..start], &url[start + at..])
        }
        None => url.to_owned(),
    }
}

/// Serves a single in-memory instance on `listener` until `shutdown` is cancelled: [`start`]
/// with [`Backend::Memory`], then [`serve_chat`].
#[allow(dead_code)] // `main.rs` starts the chat itself; embedders call this.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let chat = start(config, Backend::Memory, shutdown)
        .await
        .map_err(std::io::Error::other)?;
    serve_chat(listener, chat).await
}

/// Serves `chat` on `listener` until its shutdown token is cancelled, then ends every
/// stream at an event boundary, closes the hub and returns once every connection is closed
/// (and, over Redis, once this instance handed its presence over).
pub async fn serve_chat(listener: TcpListener, chat: Chat) -> std::io::Result<()> {
    let shutdown = chat.shutdown_token().clone();
    let hub = chat.hub().clone();
    let served = axum::serve(listener, router(chat.clone()))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    hub.close();
    chat.finish().await;
    served
}
