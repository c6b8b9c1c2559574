//! The chat over Redis: what each instance does so that several of them form one chat.
//!
//! Events travel through the hub's Redis stream, so a message posted on one instance
//! reaches every stream on every instance, with one id everywhere, and a page can resume on
//! any instance with the last id it saw. What the instances must also agree on is kept in
//! Redis (`redis_store.rs` lists the keys):
//!
//! * **The cookie key**: `Config::secret` (from `CHAT_SECRET`) if set, else a random key
//!   the first instance stores with `SET NX` and every other one reads. A cookie issued by
//!   one instance is then valid on all.
//! * **Names**: a name belongs to the session that holds its key in Redis. The key expires
//!   after `Config::name_hold`; each request of the session renews it, and so does each
//!   instance, every third of `Config::presence_lease`, for the users with a stream open
//!   on it. Taking a name is one atomic script, so two instances never give one name to
//!   two sessions.
//! * **Rooms and history**: the room set (within `Config::max_rooms`) and, per room, a list
//!   of the newest `Config::history_len` messages, sorted by event id when read.
//! * **Presence**: per room, one entry per instance where the user has a stream carrying
//!   the room, with the time it runs out. An instance renews its entries while the streams
//!   are open; when the last one closes, the entry is set to run out after
//!   `Config::presence_grace`; at shutdown every entry of the instance is. A user is present
//!   while any entry exists. Every instance sweeps entries that ran out, every
//!   `Config::sweep_interval`, and the one whose sweep removes a user's last entry tells
//!   the room `user-left`; the instance whose entry makes a user present tells it
//!   `user-joined`. So a page that moves to another instance within the grace period (its
//!   instance stopped) causes no `user-left`, and an instance that dies takes its users'
//!   presence with it after at most the lease plus the grace period.
//! * **Order**: each presence change of one user in one room is decided and published
//!   under a short lock in Redis, so `user-joined` and `user-left` of a user in a room reach
//!   the stream in the order of the changes, whichever instances made them.
//!
//! What stays per instance: the streams open on it, `POST /admin/kick` (ends only this
//! instance's streams), and signing out (frees the name everywhere, but ends only this
//! instance's streams of the session; streams of it on other instances end when they next
//! reconnect and are refused). If an instance cannot renew its presence for longer than the
//! lease (Redis unreachable, the process paused), other instances sweep it and announce
//! `user-left`; the user shows as present again when their page next opens a stream.

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;
use tower_sse::CancellationToken;

use super::super::redis_store::RedisStore;
use super::{
    ApiError, Chat, ChatData, ChatMessage, Connection, HelloRoom, RoomState, Session, User,
    json_event, now_ms, room_topic, store_error,
};

/// The shortest period of the background task, whatever the settings.
const MIN_PERIOD: Duration = Duration::from_millis(10);

impl Chat {
    /// [`Chat::login`] over Redis: the name is taken in Redis, atomically.
    pub(super) async fn login_shared(
        &self,
        store: &RedisStore,
        name: &str,
        current: Option<Session>,
    ) -> Result<Session, ApiError> {
        let hold = self.inner.config.name_hold;
        if let Some(session) = current.filter(|s| s.name == name) {
            if store
                .claim_name(name, &session.sid, hold)
                .await
                .map_err(store_error)?
            {
                self.track_user(&session).await?;
                return Ok(session);
            }
        }
        let session = self.inner.signer.issue(name).map_err(ApiError::internal)?;
        if !store
            .claim_name(name, &session.sid, hold)
            .await
            .map_err(store_error)?
        {
            return Err(ApiError::conflict(format!(
                "the name \"{name}\" is taken; pick another"
            )));
        }
        self.track_user(&session).await?;
        Ok(session)
    }

    /// [`Chat::authenticate`] over Redis, for a session whose cookie is valid: it keeps (or
    /// takes back) its name unless another session holds it.
    pub(super) async fn authenticate_shared(
        &self,
        store: &RedisStore,
        session: Session,
    ) -> Result<Session, ApiError> {
        let hold = self.inner.config.name_hold;
        if !store
            .claim_name(&session.name, &session.sid, hold)
            .await
            .map_err(store_error)?
        {
            return Err(ApiError::forbidden(
                "this name is now held by another session",
            ));
        }
        self.track_user(&session).await?;
        Ok(session)
    }

    /// This instance's record of a user whose session holds the name in Redis.
    async fn track_user(&self, session: &Session) -> Result<(), ApiError> {
        let mut state = self.inner.state.lock().await;
        match state.users.get_mut(&session.name) {
            Some(user) if user.sid == session.sid => {
                user.last_seen = Instant::now();
                return Ok(());
            }
            // The name went to another session: the old one's streams here end.
            Some(user) => user.streams.values().for_each(CancellationToken::cancel),
            None => {
                let max = self.inner.config.max_users;
                if state.users.len() >= max {
                    // Redis holds the names; a record without streams can go.
                    state.users.retain(|_, user| !user.streams.is_empty());
                    if state.users.len() >= max {
                        return Err(ApiError::unavailable("too many users; try again later"));
                    }
                }
            }
        }
        state
            .users
            .insert(session.name.clone(), User::new(session.sid.clone()));
        Ok(())
    }

    /// Makes sure the rooms exist in Redis, within the room limit.
    pub(super) async fn ensure_rooms_shared(
        &self,
        store: &RedisStore,
        rooms: &[String],
    ) -> Result<(), ApiError> {
        let max = self.inner.config.max_rooms;
        if store.ensure_rooms(rooms, max).await.map_err(store_error)? {
            Ok(())
        } else {
            Err(ApiError::unavailable("too many rooms; try again later"))
        }
    }

    /// [`Chat::connect`] over Redis.
    pub(super) async fn connect_shared(
        &self,
        store: &RedisStore,
        session: &Session,
        rooms: Vec<String>,
        position: Option<String>,
    ) -> Result<Connection, ApiError> {
        self.ensure_rooms_shared(store, &rooms).await?;
        let mut state = self.inner.state.lock().await;
        let (token, mut guard) = self.register_stream(&mut state, session)?;
        let mut hello_rooms = Vec::with_capacity(rooms.len());
        for name in rooms {
            let member = state
                .rooms
                .entry(name.clone())
                .or_default()
                .members
                .entry(session.name.clone())
                .or_default();
            member.streams += 1;
            guard.rooms.push(name.clone());
            if !member.present {
                member.present = true;
                self.announce_join(store, &name, &session.name).await?;
            }
            let online = store.online(&name).await.map_err(store_error)?;
            hello_rooms.push(HelloRoom { room: name, online });
        }
        Connection::new(token, guard, session, hello_rooms, position)
    }

    /// Makes this instance's presence of `user` in `room` count, and tells the room
    /// `user-joined` if the user was not present on any instance.
    async fn announce_join(
        &self,
        store: &RedisStore,
        room: &str,
        user: &str,
    ) -> Result<(), ApiError> {
        let lock = store.lock(room, user).await.map_err(store_error)?;
        let joined = store
            .join(room, user, self.inner.config.presence_lease)
            .await;
        if let Ok(Some(online)) = joined {
            self.publish_presence("user-joined", room, user, online)
                .await;
        }
        store.unlock(lock).await;
        joined.map(drop).map_err(store_error)
    }

    /// A stream ended: where it was this instance's last one for a room, the user's presence
    /// there runs out after the grace period unless a stream (on any instance) renews it.
    pub(super) async fn disconnect_shared(
        &self,
        store: &RedisStore,
        stream_id: u64,
        user: &str,
        rooms: &[String],
    ) {
        let mut state = self.inner.state.lock().await;
        let grace = self.inner.config.presence_grace;
        for name in state.end_stream(stream_id, user, rooms) {
            let Some(room) = state.rooms.get_mut(name) else {
                continue;
            };
            let present = room
                .members
                .remove(user)
                .is_some_and(|member| member.present);
            if room.members.is_empty() {
                state.rooms.remove(name);
            }
            if present {
                if let Err(error) = store.linger(name, user, grace).await {
                    tracing::warn!(%error, room = %name, user, "presence not handed to the grace period; it runs out with its lease");
                }
            }
        }
    }

    /// [`Chat::leave`] over Redis: the user's presence in the room ends on every instance.
    pub(super) async fn leave_shared(
        &self,
        store: &RedisStore,
        session: &Session,
        room: &str,
    ) -> Result<(), ApiError> {
        let mut state = self.inner.state.lock().await;
        let member = state
            .rooms
            .get_mut(room)
            .and_then(|r| r.members.get_mut(&session.name));
        if let Some(member) = member {
            member.present = false;
        }
        let lock = store.lock(room, &session.name).await.map_err(store_error)?;
        let left = store.leave(room, &session.name).await;
        if let Ok(Some(online)) = left {
            self.publish_presence("user-left", room, &session.name, online)
                .await;
        }
        store.unlock(lock).await;
        drop(state);
        left.map(drop).map_err(store_error)
    }

    /// [`Chat::post`] over Redis: published through the hub, kept in the room's list.
    pub(super) async fn post_shared(
        &self,
        store: &RedisStore,
        session: &Session,
        room: &str,
        text: &str,
    ) -> Result<String, ApiError> {
        self.ensure_rooms_shared(store, std::slice::from_ref(&room.to_owned()))
            .await?;
        let at = now_ms();
        let data = ChatData {
            room,
            from: &session.name,
            text,
            at,
        };
        let id = self
            .publish(&room_topic(room), json_event("chat", &data)?)
            .await?;
        let message = ChatMessage {
            id: id.clone(),
            room: room.to_owned(),
            from: session.name.clone(),
            text: text.to_owned(),
            at,
        };
        let len = self.inner.config.history_len;
        if let Err(error) = store.push_history(&message, len).await {
            tracing::warn!(%error, id, "a message was delivered but not kept in the room's history");
        }
        Ok(id)
    }

    /// The background task of an instance over Redis, until shutdown: renews this
    /// instance's presence and names, sweeps presence that ran out; at shutdown, hands this
    /// instance's presence over to the grace period.
    pub(super) async fn maintain(&self) {
        let Some(store) = self.redis().cloned() else {
            return;
        };
        let config = &self.inner.config;
        let shutdown = self.inner.shutdown.clone();
        let mut renew = tokio::time::interval((config.presence_lease / 3).max(MIN_PERIOD));
        let mut sweep = tokio::time::interval(config.sweep_interval.max(MIN_PERIOD));
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = renew.tick() => self.renew(&store).await,
                _ = sweep.tick() => self.sweep(&store).await,
            }
        }
        self.hand_over(&store).await;
    }

    /// Renews the presence of this instance's open streams and the names of their users.
    /// A presence that is gone (an explicit leave elsewhere, or swept after this instance
    /// failed to renew it in time) stays gone until the user opens a new stream.
    async fn renew(&self, store: &RedisStore) {
        let mut state = self.inner.state.lock().await;
        let present: Vec<(String, String)> = state
            .rooms
            .iter()
            .flat_map(|(room, r)| {
                r.members
                    .iter()
                    .filter(|(_, m)| m.present && m.streams > 0)
                    .map(move |(user, _)| (room.clone(), user.clone()))
            })
            .collect();
        match store
            .renew(&present, self.inner.config.presence_lease)
            .await
        {
            Ok(held) => {
                for ((room, user), held) in present.iter().zip(held) {
                    let member = state
                        .rooms
                        .get_mut(room)
                        .and_then(|r| r.members.get_mut(user));
                    if let (false, Some(member)) = (held, member) {
                        member.present = false;
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot renew this instance's presence"),
        }
        let names: Vec<(String, String)> = state
            .users
            .iter()
            .filter(|(_, user)| !user.streams.is_empty())
            .map(|(name, user)| (name.clone(), user.sid.clone()))
            .collect();
        drop(state);
        let hold = self.inner.config.name_hold;
        if let Err(error) = store.renew_names(&names, hold).await {
            tracing::warn!(%error, "cannot renew the names of this instance's users");
        }
    }

    /// Tells each room `user-left` for the users whose presence ran out everywhere.
    async fn sweep(&self, store: &RedisStore) {
        let expired = match store.expired().await {
            Ok(expired) => expired,
            Err(error) => {
                tracing::warn!(%error, "cannot sweep presence");
                return;
            }
        };
        for (room, user) in expired {
            let lock = match store.lock(&room, &user).await {
                Ok(lock) => lock,
                Err(error) => {
                    tracing::warn!(%error, "cannot sweep presence");
                    return;
                }
            };
            match store.expire(&room, &user).await {
                Ok(Some(online)) => {
                    self.publish_presence("user-left", &room, &user, online)
                        .await;
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, room, user, "cannot sweep presence"),
            }
            store.unlock(lock).await;
        }
    }

    /// At shutdown: this instance's presence runs out after the grace period, so a page
    /// that moves to another instance in time causes no `user-left`.
    async fn hand_over(&self, store: &RedisStore) {
        let state = self.inner.state.lock().await;
        let grace = self.inner.config.presence_grace;
        for (room, r) in &state.rooms {
            for (user, member) in &r.members {
                if member.present {
                    if let Err(error) = store.linger(room, user, grace).await {
                        tracing::warn!(%error, room, user, "presence not handed over");
                    }
                }
            }
        }
    }
}

/// A room's state from Redis: who is present (on any instance) and the recent messages.
pub(super) async fn room_state_shared(
    store: &RedisStore,
    room: &str,
) -> Result<RoomState, ApiError> {
    let online = store.online(room).await.map_err(store_error)?;
    let messages = store.history(room).await.map_err(store_error)?;
    Ok(RoomState {
        room: room.to_owned(),
        online,
        messages,
    })
}
