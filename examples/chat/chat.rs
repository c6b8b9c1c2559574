//! The chat's state: rooms with their recent history, who is present where, and which
//! session holds which name. Everything that changes it goes through [`Chat`].
//!
//! One async mutex guards the whole state and is held while an event is published, so the
//! order of events on each topic is the order of the changes they report (a `user-left`
//! never overtakes the `user-joined` before it) and a room's history is in event order.
//!
//! With Redis (feature `redis`, [`Chat::with_redis`]) the state every instance must agree
//! on lives in Redis instead (see `redis_store.rs`, and `chat_redis.rs` for how presence is
//! shared); this state then only tracks the streams open on this instance.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tower_sse::hub::Hub;
use tower_sse::{CancellationToken, EncodedEvent, Event};

use super::config::Config;
use super::error::ApiError;
use super::session::{Session, Signer, validate_name, validate_room};

#[cfg(feature = "redis")]
#[path = "chat_redis.rs"]
mod shared;
#[cfg(feature = "redis")]
use shared::room_state_shared;

/// A chat message as `GET /rooms/{room}` lists it; `id` is the id of its SSE event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The SSE event id the hub gave the message.
    pub id: String,
    /// The room.
    pub room: String,
    /// The sender's name.
    pub from: String,
    /// The text.
    pub text: String,
    /// When the server received it, in milliseconds since the Unix epoch.
    pub at: u64,
}

/// A room's state: who is present and the recent messages, oldest first.
#[derive(Debug, Serialize)]
pub struct RoomState {
    /// The room.
    pub room: String,
    /// The names of the users present, sorted.
    pub online: Vec<String>,
    /// The recent messages, oldest first.
    pub messages: Vec<ChatMessage>,
}

/// A room in the room list.
#[derive(Debug, Serialize)]
pub struct RoomSummary {
    /// The room.
    pub room: String,
    /// How many users are present.
    pub online: usize,
}

/// The data of a `chat` event.
#[derive(Serialize)]
struct ChatData<'a> {
    room: &'a str,
    from: &'a str,
    text: &'a str,
    at: u64,
}

/// The data of a `private` event.
#[derive(Serialize)]
struct PrivateData<'a> {
    from: &'a str,
    to: &'a str,
    text: &'a str,
    at: u64,
}

/// The data of `user-joined` and `user-left` events.
#[derive(Serialize)]
struct PresenceData<'a> {
    room: &'a str,
    user: &'a str,
    online: usize,
}

/// The data of the `hello` event that opens every stream.
#[derive(Serialize)]
struct HelloData<'a> {
    user: &'a str,
    rooms: Vec<HelloRoom>,
    /// For a stream opened without a last event id: the hub's position just before it
    /// subscribed, for the page to resume from.
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<String>,
}

#[derive(Serialize)]
struct HelloRoom {
    room: String,
    online: Vec<String>,
}

/// The chat server's shared state. Cloning is cheap.
#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("hub", &self.inner.hub)
            .finish_non_exhaustive()
    }
}

struct Inner {
    hub: Hub,
    config: Config,
    signer: Signer,
    shutdown: CancellationToken,
    state: Mutex<State>,
    /// With Redis: the state the instances share.
    #[cfg(feature = "redis")]
    redis: Option<super::redis_store::RedisStore>,
    /// With Redis: the task that renews this instance's presence and sweeps what ran out.
    #[cfg(feature = "redis")]
    maintenance: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    rooms: BTreeMap<String, Room>,
    users: HashMap<String, User>,
    next_stream: u64,
}

#[derive(Default)]
struct Room {
    history: VecDeque<ChatMessage>,
    members: BTreeMap<String, Member>,
}

/// One user's presence in one room.
#[derive(Default)]
struct Member {
    /// Open streams of this user that carry the room.
    streams: usize,
    /// Whether the room was told the user joined (and not yet that they left).
    present: bool,
    /// Bumped whenever `streams` drops to 0, so a stale grace timer does nothing.
    epoch: u64,
}

/// A signed-in user: the session that holds the name, and its open streams.
struct User {
    sid: String,
    streams: HashMap<u64, CancellationToken>,
    last_seen: Instant,
}

impl User {
    fn new(sid: String) -> Self {
        User {
            sid,
            streams: HashMap::new(),
            last_seen: Instant::now(),
        }
    }
}

impl State {
    /// Stream `stream_id` of `user`, which carried `rooms`, ended: forgets it and counts it
    /// out of the user's membership of each room. Returns the rooms where it was the user's
    /// last stream on this instance; what that means for presence is the caller's to decide.
    fn end_stream<'a>(
        &mut self,
        stream_id: u64,
        user: &str,
        rooms: &'a [String],
    ) -> Vec<&'a String> {
        if let Some(entry) = self.users.get_mut(user) {
            if entry.streams.remove(&stream_id).is_some() {
                entry.last_seen = Instant::now();
            }
        }
        let mut last = Vec::new();
        for name in rooms {
            let member = self
                .rooms
                .get_mut(name)
                .and_then(|room| room.members.get_mut(user));
            let Some(member) = member else {
                continue;
            };
            member.streams = member.streams.saturating_sub(1);
            if member.streams == 0 {
                last.push(name);
            }
        }
        last
    }
}

impl Room {
    fn online(&self) -> Vec<String> {
        let present = self.members.iter().filter(|(_, m)| m.present);
        present.map(|(name, _)| name.clone()).collect()
    }

    fn online_count(&self) -> usize {
        self.members.values().filter(|m| m.present).count()
    }
}

/// What [`Chat::connect`] gives a new stream.
pub struct Connection {
    /// Ends the stream (a kick, or server shutdown: it is a child of the shutdown token).
    pub token: CancellationToken,
    /// The `hello` event that opens the stream.
    pub hello: EncodedEvent,
    /// Updates presence when the stream is dropped.
    pub guard: StreamGuard,
}

impl Connection {
    /// A registered stream with its `hello` event, which tells the page who it is, the
    /// rooms with their online counts, and the position it starts from.
    fn new(
        token: CancellationToken,
        guard: StreamGuard,
        session: &Session,
        rooms: Vec<HelloRoom>,
        position: Option<String>,
    ) -> Result<Connection, ApiError> {
        let hello = json_event(
            "hello",
            &HelloData {
                user: &session.name,
                rooms,
                position,
            },
        )?
        .encode();
        Ok(Connection {
            token,
            hello,
            guard,
        })
    }
}

impl Chat {
    /// A chat with `config`, publishing to `hub`; `shutdown` ends every stream.
    pub fn new(config: Config, hub: Hub, shutdown: CancellationToken) -> Result<Self, ApiError> {
        let signer = match &config.secret {
            Some(key) => Signer::new(key),
            None => Signer::random().map_err(ApiError::internal)?,
        };
        Ok(Chat {
            inner: Arc::new(Inner {
                hub,
                config,
                signer,
                shutdown,
                state: Mutex::new(State::default()),
                #[cfg(feature = "redis")]
                redis: None,
                #[cfg(feature = "redis")]
                maintenance: std::sync::Mutex::new(None),
            }),
        })
    }

    /// A chat whose shared state is in Redis, publishing to `hub` (a hub over the same
    /// Redis): one of several instances that form one chat. The cookie key is
    /// [`Config::secret`] if set, else the one the instances agree on in Redis. Starts the
    /// task that renews this instance's presence and sweeps presence that ran out; it ends
    /// with `shutdown` (await it with [`Chat::finish`]).
    #[cfg(feature = "redis")]
    pub async fn with_redis(
        config: Config,
        hub: Hub,
        shutdown: CancellationToken,
        store: super::redis_store::RedisStore,
    ) -> Result<Self, ApiError> {
        let key = match config.secret {
            Some(key) => key,
            None => store.shared_secret().await.map_err(store_error)?,
        };
        let chat = Chat {
            inner: Arc::new(Inner {
                hub,
                signer: Signer::new(&key),
                config,
                shutdown,
                state: Mutex::new(State::default()),
                redis: Some(store),
                maintenance: std::sync::Mutex::new(None),
            }),
        };
        let task = tokio::spawn({
            let chat = chat.clone();
            async move { chat.maintain().await }
        });
        *chat
            .inner
            .maintenance
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(chat)
    }

    /// With Redis, the shared state.
    #[cfg(feature = "redis")]
    fn redis(&self) -> Option<&super::redis_store::RedisStore> {
        self.inner.redis.as_ref()
    }

    /// Waits for the background task of a chat over Redis to end after shutdown (it hands
    /// this instance's presence over to the grace period first); at once otherwise.
    pub async fn finish(&self) {
        #[cfg(feature = "redis")]
        {
            let task = self
                .inner
                .maintenance
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(task) = task {
                let wait = tokio::time::timeout(std::time::Duration::from_secs(10), task);
                if wait.await.is_err() {
                    tracing::warn!("the presence task did not end within 10 s");
                }
            }
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The hub the chat publishes to.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The token that ends every stream.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// The signer of session cookies.
    pub fn signer(&self) -> &Signer {
        &self.inner.signer
    }

    /// Signs `name` in. A request that already holds a session for that name keeps it;
    /// a name held by another session that is still active is refused with `409`.
    pub async fn login(&self, name: &str, current: Option<Session>) -> Result<Session, ApiError> {
        validate_name(name).map_err(ApiError::bad_request)?;
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            return self.login_shared(store, name, current).await;
        }
        let mut state = self.inner.state.lock().await;
        let now = Instant::now();
        if let Some(session) = current.filter(|s| s.name == name) {
            match state.users.get_mut(name) {
                Some(user) if user.sid == session.sid => {
                    user.last_seen = now;
                    return Ok(session);
                }
                Some(user) if !self.is_stale(user, now) => {}
                _ => {
                    self.make_room_for_user(&mut state, name, now)?;
                    state
                        .users
                        .insert(name.to_owned(), User::new(session.sid.clone()));
                    return Ok(session);
                }
            }
        }
        if let Some(user) = state.users.get(name) {
            if !self.is_stale(user, now) {
                return Err(ApiError::conflict(format!(
                    "the name \"{name}\" is taken; pick another"
                )));
            }
        }
        self.make_room_for_user(&mut state, name, now)?;
        let session = self.inner.signer.issue(name).map_err(ApiError::internal)?;
        state
            .users
            .insert(name.to_owned(), User::new(session.sid.clone()));
        Ok(session)
    }

    /// Signs a session out: frees its name and ends its streams.
    pub async fn logout(&self, session: &Session) {
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            if let Err(error) = store.release_name(&session.name, &session.sid).await {
                tracing::warn!(%error, "cannot free the name in Redis; it expires by itself");
            }
        }
        let mut state = self.inner.state.lock().await;
        if state
            .users
            .get(&session.name)
            .is_some_and(|u| u.sid == session.sid)
        {
            if let Some(user) = state.users.remove(&session.name) {
                user.streams.values().for_each(CancellationToken::cancel);
            }
        }
    }

    /// The session of a request, from its signed cookie. `403` without a valid cookie, or
    /// when another active session holds the name. A valid cookie whose name is free (the
    /// server restarted with the same key) takes the name back.
    pub async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Session, ApiError> {
        let session = self
            .inner
            .signer
            .session_of(headers)
            .ok_or_else(|| ApiError::forbidden("not signed in"))?;
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            return self.authenticate_shared(store, session).await;
        }
        let mut state = self.inner.state.lock().await;
        let now = Instant::now();
        match state.users.get_mut(&session.name) {
            Some(user) if user.sid == session.sid => {
                user.last_seen = now;
                return Ok(session);
            }
            Some(user) if !self.is_stale(user, now) => {
                return Err(ApiError::forbidden(
                    "this name is now held by another session",
                ));
            }
            _ => {}
        }
        self.make_room_for_user(&mut state, &session.name, now)?;
        state
            .users
            .insert(session.name.clone(), User::new(session.sid.clone()));
        Ok(session)
    }

    fn is_stale(&self, user: &User, now: Instant) -> bool {
        user.streams.is_empty()
            && now.saturating_duration_since(user.last_seen) >= self.inner.config.name_hold
    }

    /// Makes sure one more user fits, dropping stale ones if needed.
    fn make_room_for_user(
        &self,
        state: &mut State,
        name: &str,
        now: Instant,
    ) -> Result<(), ApiError> {
        if state.users.contains_key(name) || state.users.len() < self.inner.config.max_users {
            return Ok(());
        }
        state.users.retain(|_, user| !self.is_stale(user, now));
        if state.users.len() < self.inner.config.max_users {
            Ok(())
        } else {
            Err(ApiError::unavailable("too many users; try again later"))
        }
    }

    /// Makes sure the rooms in `names` exist, creating them within the room limit.
    fn ensure_rooms<'a>(
        &self,
        state: &mut State,
        names: impl IntoIterator<Item = &'a String> + Clone,
    ) -> Result<(), ApiError> {
        let missing = names
            .clone()
            .into_iter()
            .filter(|n| !state.rooms.contains_key(*n))
            .count();
        let max = self.inner.config.max_rooms;
        if state.rooms.len() + missing > max {
            // Forget rooms that nobody is in and that never had a message.
            state
                .rooms
                .retain(|_, room| !room.members.is_empty() || !room.history.is_empty());
            if state.rooms.len() + missing > max {
                return Err(ApiError::unavailable("too many rooms; try again later"));
            }
        }
        for name in names {
            state.rooms.entry(name.clone()).or_default();
        }
        Ok(())
    }

    /// Registers a new stream of `session` carrying `rooms` (validated, no duplicates):
    /// the user becomes present in each room (`user-joined` where they were not).
    /// `position` goes into the `hello` event.
    pub async fn connect(
        &self,
        session: &Session,
        rooms: Vec<String>,
        position: Option<String>,
    ) -> Result<Connection, ApiError> {
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            return self.connect_shared(store, session, rooms, position).await;
        }
        let mut state = self.inner.state.lock().await;
        let (token, mut guard) = self.register_stream(&mut state, session)?;
        self.ensure_rooms(&mut state, &rooms)?;
        let mut hello_rooms = Vec::with_capacity(rooms.len());
        for name in rooms {
            let Some(room) = state.rooms.get_mut(&name) else {
                continue;
            };
            let member = room.members.entry(session.name.clone()).or_default();
            member.streams += 1;
            guard.rooms.push(name.clone());
            if !member.present {
                member.present = true;
                let online = room.online_count();
                self.publish_presence("user-joined", &name, &session.name, online)
                    .await;
            }
            let online = state.rooms.get(&name).map(Room::online).unwrap_or_default();
            hello_rooms.push(HelloRoom { room: name, online });
        }
        Connection::new(token, guard, session, hello_rooms, position)
    }

    /// Records a new stream of `session` in `state`: its cancellation token, and the guard
    /// that undoes the registration (and the presence it gains) when dropped.
    fn register_stream(
        &self,
        state: &mut State,
        session: &Session,
    ) -> Result<(CancellationToken, StreamGuard), ApiError> {
        let stream_id = state.next_stream;
        state.next_stream += 1;
        let token = self.inner.shutdown.child_token();
        match state.users.get_mut(&session.name) {
            Some(user) if user.sid == session.sid => {
                user.streams.insert(stream_id, token.clone());
            }
            _ => return Err(ApiError::forbidden("not signed in")),
        }
        let guard = StreamGuard {
            chat: Some(self.clone()),
            stream_id,
            user: session.name.clone(),
            rooms: Vec::new(),
        };
        Ok((token, guard))
    }

    /// A stream ended: presence drops, after the grace period, where it was the last one.
    async fn disconnect(&self, stream_id: u64, user: &str, rooms: &[String]) {
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            return self.disconnect_shared(store, stream_id, user, rooms).await;
        }
        let mut state = self.inner.state.lock().await;
        for name in state.end_stream(stream_id, user, rooms) {
            let Some(room) = state.rooms.get_mut(name) else {
                continue;
            };
            match room.members.get_mut(user) {
                Some(member) if member.present => {
                    member.epoch += 1;
                    self.start_grace(name.clone(), user.to_owned(), member.epoch);
                }
                _ => {
                    room.members.remove(user);
                }
            }
        }
    }

    fn start_grace(&self, room: String, user: String, epoch: u64) {
        let chat = self.clone();
        let grace = self.inner.config.presence_grace;
        let shutdown = self.inner.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(grace) => chat.grace_over(&room, &user, epoch).await,
                () = shutdown.cancelled() => {}
            }
        });
    }

    async fn grace_over(&self, room_name: &str, user: &str, epoch: u64) {
        let mut state = self.inner.state.lock().await;
        let Some(room) = state.rooms.get_mut(room_name) else {
            return;
        };
        let still_gone = room
            .members
            .get(user)
            .is_some_and(|m| m.streams == 0 && m.epoch == epoch);
        if still_gone {
            room.members.remove(user);
            let online = room.online_count();
            self.publish_presence("user-left", room_name, user, online)
                .await;
        }
    }

    /// `session` leaves `room` now: the room is told at once, not after the grace period.
    pub async fn leave(&self, session: &Session, room_name: &str) -> Result<(), ApiError> {
        validate_room(room_name).map_err(ApiError::bad_request)?;
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            return self.leave_shared(store, session, room_name).await;
        }
        let mut state = self.inner.state.lock().await;
        let Some(room) = state.rooms.get_mut(room_name) else {
            return Ok(());
        };
        let Some(member) = room.members.get_mut(&session.name) else {
            return Ok(());
        };
        if !member.present {
            return Ok(());
        }
        member.present = false;
        if member.streams == 0 {
            room.members.remove(&session.name);
        }
        let online = room.online_count();
        self.publish_presence("user-left", room_name, &session.name, online)
            .await;
        Ok(())
    }

    /// Creates `room` if needed (within the room limit) and returns its state.
    pub async fn join(&self, room_name: &str) -> Result<RoomState, ApiError> {
        validate_room(room_name).map_err(ApiError::bad_request)?;
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            self.ensure_rooms_shared(store, std::slice::from_ref(&room_name.to_owned()))
                .await?;
            return room_state_shared(store, room_name).await;
        }
        let mut state = self.inner.state.lock().await;
        let name = room_name.to_owned();
        self.ensure_rooms(&mut state, std::iter::once(&name))?;
        Ok(room_state(&state, room_name))
    }

    /// The state of `room`; an unknown room is empty (and is not created).
    pub async fn room(&self, room_name: &str) -> Result<RoomState, ApiError> {
        validate_room(room_name).map_err(ApiError::bad_request)?;
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            return room_state_shared(store, room_name).await;
        }
        let state = self.inner.state.lock().await;
        Ok(room_state(&state, room_name))
    }

    /// Every room, with how many users are present.
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>, ApiError> {
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            let rooms = store.rooms().await.map_err(store_error)?;
            let rooms = rooms
                .into_iter()
                .map(|(room, online)| RoomSummary { room, online });
            return Ok(rooms.collect());
        }
        let state = self.inner.state.lock().await;
        let rooms = state
            .rooms
            .iter()
            .map(|(name, room)| RoomSummary {
                room: name.clone(),
                online: room.online_count(),
            })
            .collect();
        Ok(rooms)
    }

    /// Checks a message text: not blank, at most `max_text` characters.
    fn check_text<'a>(&self, text: &'a str) -> Result<&'a str, ApiError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ApiError::bad_request("the message is empty"));
        }
        let max = self.inner.config.max_text;
        if text.chars().count() > max {
            return Err(ApiError::too_large(format!(
                "the message is longer than {max} characters"
            )));
        }
        Ok(text)
    }

    /// Posts `text` to `room` as `session`; returns the event id.
    pub async fn post(
        &self,
        session: &Session,
        room_name: &str,
        text: &str,
    ) -> Result<String, ApiError> {
        validate_room(room_name).map_err(ApiError::bad_request)?;
        let text = self.check_text(text)?;
        #[cfg(feature = "redis")]
        if let Some(store) = self.redis() {
            return self.post_shared(store, session, room_name, text).await;
        }
        let mut state = self.inner.state.lock().await;
        let name = room_name.to_owned();
        self.ensure_rooms(&mut state, std::iter::once(&name))?;
        let at = now_ms();
        let data = ChatData {
            room: room_name,
            from: &session.name,
            text,
            at,
        };
        let event = json_event("chat", &data)?;
        let id = self.publish(&room_topic(room_name), event).await?;
        let history_len = self.inner.config.history_len;
        if let Some(room) = state.rooms.get_mut(room_name) {
            if history_len > 0 {
                if room.history.len() >= history_len {
                    room.history.pop_front();
                }
                room.history.push_back(ChatMessage {
                    id: id.clone(),
                    room: name,
                    from: session.name.clone(),
                    text: text.to_owned(),
                    at,
                });
            }
        }
        Ok(id)
    }

    /// Sends `text` privately from `session` to `to`, and a copy to the sender's own topic
    /// (their other tabs see it too). `404` when no user of that name is signed in.
    pub async fn private(
        &self,
        session: &Session,
        to: &str,
        text: &str,
    ) -> Result<String, ApiError> {
        validate_name(to).map_err(ApiError::bad_request)?;
        let text = self.check_text(text)?;
        let state = self.inner.state.lock().await;
        #[cfg(feature = "redis")]
        let signed_in = match self.redis() {
            Some(store) => store.name_is_held(to).await.map_err(store_error)?,
            None => state.users.contains_key(to),
        };
        #[cfg(not(feature = "redis"))]
        let signed_in = state.users.contains_key(to);
        if !signed_in {
            return Err(ApiError::not_found(format!(
                "no user named \"{to}\" is signed in"
            )));
        }
        let data = PrivateData {
            from: &session.name,
            to,
            text,
            at: now_ms(),
        };
        let event = json_event("private", &data)?;
        let id = self.publish(&user_topic(to), event.clone()).await?;
        let id = if to == session.name {
            id
        } else {
            self.publish(&user_topic(&session.name), event).await?
        };
        drop(state);
        Ok(id)
    }

    /// Ends every open stream of `user` on this instance; returns how many there were.
    pub async fn kick(&self, user: &str) -> usize {
        let state = self.inner.state.lock().await;
        state.users.get(user).map_or(0, |u| {
            u.streams.values().for_each(CancellationToken::cancel);
            u.streams.len()
        })
    }

    async fn publish(&self, topic: &str, event: Event) -> Result<String, ApiError> {
        self.inner
            .hub
            .publish(topic, event)
            .await
            .map_err(|error| ApiError::unavailable(format!("cannot publish: {error}")))
    }

    /// Presence events are best effort: a hub that is closing drops them.
    async fn publish_presence(&self, kind: &str, room: &str, user: &str, online: usize) {
        let published = match json_event(kind, &PresenceData { room, user, online }) {
            Ok(event) => self.publish(&room_topic(room), event).await,
            Err(error) => Err(error),
        };
        if let Err(error) = published {
            tracing::debug!(error = %error.message, kind, room, user, "presence event dropped");
        }
    }
}

/// A failure of the shared state in Redis, as `503`.
#[cfg(feature = "redis")]
fn store_error(error: super::redis_store::StoreError) -> ApiError {
    tracing::warn!(%error, "the chat's shared state in Redis failed");
    ApiError::unavailable("the chat's shared state is unavailable; try again")
}

/// An event of type `kind` with `data` as JSON.
fn json_event<T: Serialize>(kind: &str, data: &T) -> Result<Event, ApiError> {
    Event::new()
        .event(kind)
        .map_err(ApiError::internal)?
        .json_data(data)
        .map_err(ApiError::internal)
}

fn room_state(state: &State, room_name: &str) -> RoomState {
    let room = state.rooms.get(room_name);
    RoomState {
        room: room_name.to_owned(),
        online: room.map(Room::online).unwrap_or_default(),
        messages: room
            .map(|r| r.history.iter().cloned().collect())
            .unwrap_or_default(),
    }
}

/// The hub topic of a room.
pub fn room_topic(room: &str) -> String {
    format!("room:{room}")
}

/// The hub topic of a user's private messages.
pub fn user_topic(user: &str) -> String {
    format!("user:{user}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Updates presence when its stream is dropped, however the stream ends.
pub struct StreamGuard {
    chat: Option<Chat>,
    stream_id: u64,
    user: String,
    rooms: Vec<String>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let Some(chat) = self.chat.take() else {
            return;
        };
        let (stream_id, user, rooms) = (
            self.stream_id,
            std::mem::take(&mut self.user),
            std::mem::take(&mut self.rooms),
        );
        // Dropped outside a runtime only when the whole process is ending.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { chat.disconnect(stream_id, &user, &rooms).await });
        }
    }
}

/// A stream that holds a [`StreamGuard`] for as long as it lives.
pub struct Guarded<S> {
    inner: S,
    _guard: StreamGuard,
}

impl<S> Guarded<S> {
    /// `inner`, guarded by `guard`.
    pub fn new(inner: S, guard: StreamGuard) -> Self {
        Guarded {
            inner,
            _guard: guard,
        }
    }
}

impl<S: Stream + Unpin> Stream for Guarded<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
