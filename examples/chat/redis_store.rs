//! What the instances of one chat share through Redis (feature `redis`): the cookie key,
//! who holds which name, the rooms, who is present where, and each room's recent messages.
//! The events themselves travel through the hub's Redis stream; this is the state beside it.
//!
//! Keys, all under `<key prefix>:chat:` (the hub's stream is `<key prefix>:events`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `secret` | string | the cookie key, 64 hex digits: the first instance sets it (`SET NX`) |
//! | `name:<name>` | string, expires | the session id holding the name; renewed while in use |
//! | `rooms` | set | the rooms |
//! | `online:<room>` | sorted set | a member `<user>\|<instance>` per instance where the user is present, scored by when that presence runs out (ms, Redis clock) |
//! | `history:<room>` | list | the room's recent messages as JSON, newest last |
//! | `lock:<room>\|<user>` | string, expires | held while one instance decides and announces a change of that user's presence in that room |
//!
//! Each operation is one command or one Lua script, so it is atomic in Redis. Scripts
//! read keys they compute from their arguments: this needs a single Redis server, not a
//! cluster.

use std::collections::BTreeSet;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError};

use super::chat::ChatMessage;
use super::session::KEY_LEN;

/// Lua: the current time of the Redis server, in milliseconds, as `now`.
macro_rules! lua_now {
    () => {
        "local t = redis.call('TIME')\n\
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

/// Lua: `online(key)`, the distinct users of a presence set.
macro_rules! lua_online {
    () => {
        "local function online(key)\n\
           local seen, names = {}, {}\n\
           for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do\n\
             local user = string.match(m, '^(.-)|')\n\
             if user and not seen[user] then seen[user] = true; names[#names + 1] = user end\n\
           end\n\
           return names\n\
         end\n"
    };
}

/// Takes or renews a name for a session unless another session holds it.
/// KEYS: name key. ARGV: sid, hold (ms). Returns 1 when the session holds the name.
const CLAIM_NAME: &str = "\
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0";

/// Frees a name if the session holds it. KEYS: name key. ARGV: sid.
const RELEASE_NAME: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Renews names still held by their sessions. KEYS: name keys. ARGV: hold (ms), sids.
const RENEW_NAMES: &str = "\
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then redis.call('PEXPIRE', key, ARGV[1]) end
end
return 0";

/// Adds rooms within a limit, first forgetting rooms with nobody present and no message
/// when full. KEYS: rooms set. ARGV: max, online key prefix, history key prefix, rooms.
/// Returns 1 when every room exists, 0 when the limit is reached.
const ENSURE_ROOMS: &str = "\
local missing = {}
for i = 4, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then missing[#missing + 1] = ARGV[i] end
end
if #missing == 0 then return 1 end
local max = tonumber(ARGV[1])
if redis.call('SCARD', KEYS[1]) + #missing > max then
  for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if redis.call('EXISTS', ARGV[2] .. room) == 0 and redis.call('EXISTS', ARGV[3] .. room) == 0 then
      redis.call('SREM', KEYS[1], room)
    end
  end
  if redis.call('SCARD', KEYS[1]) + #missing > max then return 0 end
end
for _, room in ipairs(missing) do redis.call('SADD', KEYS[1], room) end
return 1";

/// Every room with its number of present users. KEYS: rooms set. ARGV: online key prefix.
/// Returns `[room, count, room, count, ...]`.
const ROOMS: &str = concat!(
    lua_online!(),
    "local out = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[#out + 1] = room
  out[#out + 1] = #online(ARGV[1] .. room)
end
return out"
);

/// This instance's presence for a user in a room, for `lease` ms. KEYS: online key.
/// ARGV: user, instance, lease (ms). Returns the number of users present when the user
/// was not present before (on any instance), else -1.
const JOIN: &str = concat!(
    lua_now!(),
    lua_online!(),
    "local prefix = ARGV[1] .. '|'
local present = false
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then present = true; break end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), prefix .. ARGV[2])
if present then return -1 end
return #online(KEYS[1])"
);

/// Renews presences that are still there. KEYS: online keys. ARGV: lease (ms), then one
/// member per key. Returns 1 or 0 per key: whether the presence was still there.
const RENEW: &str = concat!(
    lua_now!(),
    "local held = {}
for i, key in ipairs(KEYS) do
  local member = ARGV[i + 1]
  if redis.call('ZSCORE', key, member) then
    redis.call('ZADD', key, now + tonumber(ARGV[1]), member)
    held[i] = 1
  else
    held[i] = 0
  end
end
return held"
);

/// Makes a presence run out after `grace` ms, if it is still there. KEYS: online key.
/// ARGV: member, grace (ms).
const LINGER: &str = concat!(
    lua_now!(),
    "if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return 0"
);

/// Ends a user's presence in a room on every instance. KEYS: online key. ARGV: user.
/// Returns the number of users left present when the user was present, else -1.
const LEAVE: &str = concat!(
    lua_online!(),
    "local prefix = ARGV[1] .. '|'
local removed = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, #prefix) == prefix then removed = removed + redis.call('ZREM', KEYS[1], m) end
end
if removed == 0 then return -1 end
return #online(KEYS[1])"
);

/// The presences that ran out, in every room. KEYS: rooms set. ARGV: online key prefix.
/// Returns `[room, user, room, user, ...]`.
const EXPIRED: &str = concat!(
    lua_now!(),
    "local out = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', ARGV[1] .. room, '-inf', now)) do
    local user = string.match(m, '^(.-)|')
    if user then out[#out + 1] = room; out[#out + 1] = user end
  end
end
return out"
);

/// Removes a user's presences in a room that ran out. KEYS: online key. ARGV: user.
/// Returns the number of users left present when the user is now gone from the room
/// (something was removed and nothing of the user remains), else -1.
const EXPIRE: &str = concat!(
    lua_now!(),
    lua_online!(),
    "local prefix = ARGV[1] .. '|'
local removed, remaining = 0, 0
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #entries, 2 do
  local m = entries[i]
  if string.sub(m, 1, #prefix) == prefix then
    if tonumber(entries[i + 1]) <= now then
      removed = removed + redis.call('ZREM', KEYS[1], m)
    else
      remaining = remaining + 1
    end
  end
end
if removed == 0 or remaining > 0 then return -1 end
return #online(KEYS[1])"
);

/// Releases a lock if this holder still has it. KEYS: lock key. ARGV: token.
const UNLOCK: &str = "\
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// How long a presence lock is held at most (it is released as soon as the change is
/// announced; this only frees it after a crash).
const LOCK_TTL: Duration = Duration::from_secs(10);
/// How long an instance waits for a presence lock before going on without it.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Why the chat's state in Redis could not be read or changed.
#[derive(Debug)]
pub struct StoreError(String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<RedisError> for StoreError {
    fn from(error: RedisError) -> StoreError {
        StoreError(error.to_string())
    }
}

/// The chat's state in Redis, for one instance. Cloning shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    /// `<key prefix>:chat:`.
    keys: String,
    /// This instance's random id, in presence members.
    instance: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("keys", &self.keys)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

/// A held presence lock; give it back with [`RedisStore::unlock`].
#[derive(Debug)]
#[must_use]
pub struct PresenceLock {
    key: String,
    token: String,
}

impl RedisStore {
    /// Connects to the Redis at `url` (one retry, 2 s per attempt); the keys start with
    /// `<key_prefix>:chat:`. The connection reconnects by itself later.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisStore, StoreError> {
        let client = Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisStore {
            connection,
            keys: format!("{key_prefix}:chat:"),
            instance: hex(&random::<8>()?),
        })
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.keys)
    }

    fn online_key(&self, room: &str) -> String {
        self.key(&format!("online:{room}"))
    }

    fn history_key(&self, room: &str) -> String {
        self.key(&format!("history:{room}"))
    }

    fn name_key(&self, name: &str) -> String {
        self.key(&format!("name:{name}"))
    }

    fn member(&self, user: &str) -> String {
        format!("{user}|{}", self.instance)
    }

    async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<T, StoreError> {
        let mut command = redis::cmd("EVAL");
        command.arg(script).arg(keys.len()).arg(keys).arg(args);
        Ok(command.query_async(&mut self.connection.clone()).await?)
    }

    /// The cookie key every instance uses: the one in Redis, or a random one this instance
    /// puts there first (`SET NX`, then `GET`, so concurrent first starts agree).
    pub async fn shared_secret(&self) -> Result<[u8; KEY_LEN], StoreError> {
        let key = self.key("secret");
        let mut connection = self.connection.clone();
        let proposal = hex(&random::<KEY_LEN>()?);
        redis::cmd("SET")
            .arg(&key)
            .arg(&proposal)
            .arg("NX")
            .query_async::<Option<String>>(&mut connection)
            .await?;
        let stored: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await?;
        stored
            .as_deref()
            .and_then(unhex_key)
            .ok_or_else(|| StoreError(format!("{key} in Redis is not 64 hex digits")))
    }

    /// Takes `name` for session `sid`, or renews it, unless another session holds it;
    /// `true` when `sid` holds it now. The name is held for `hold` unless renewed.
    pub async fn claim_name(
        &self,
        name: &str,
        sid: &str,
        hold: Duration,
    ) -> Result<bool, StoreError> {
        let held: i64 = self
            .eval(
                CLAIM_NAME,
                &[self.name_key(name)],
                &[sid.to_owned(), millis(hold)],
            )
            .await?;
        Ok(held == 1)
    }

    /// Frees `name` if session `sid` holds it.
    pub async fn release_name(&self, name: &str, sid: &str) -> Result<(), StoreError> {
        self.eval::<i64>(RELEASE_NAME, &[self.name_key(name)], &[sid.to_owned()])
            .await
            .map(drop)
    }

    /// Renews the names of `(name, sid)` pairs still held by those sessions.
    pub async fn renew_names(
        &self,
        names: &[(String, String)],
        hold: Duration,
    ) -> Result<(), StoreError> {
        if names.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = names.iter().map(|(name, _)| self.name_key(name)).collect();
        let mut args = vec![millis(hold)];
        args.extend(names.iter().map(|(_, sid)| sid.clone()));
        self.eval::<i64>(RENEW_NAMES, &keys, &args).await.map(drop)
    }

    /// Whether any session holds `name`.
    pub async fn name_is_held(&self, name: &str) -> Result<bool, StoreError> {
        let count: i64 = redis::cmd("EXISTS")
            .arg(self.name_key(name))
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(count > 0)
    }

    /// Makes sure `rooms` exist, within `max` rooms in all; `false` when the limit is
    /// reached.
    pub async fn ensure_rooms(&self, rooms: &[String], max: usize) -> Result<bool, StoreError> {
        if rooms.is_empty() {
            return Ok(true);
        }
        let mut args = vec![max.to_string(), self.key("online:"), self.key("history:")];
        args.extend(rooms.iter().cloned());
        let done: i64 = self.eval(ENSURE_ROOMS, &[self.key("rooms")], &args).await?;
        Ok(done == 1)
    }

    /// Every room with its number of present users, sorted by name.
    pub async fn rooms(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let flat: Vec<String> = self
            .eval(ROOMS, &[self.key("rooms")], &[self.key("online:")])
            .await?;
        let mut rooms: Vec<(String, usize)> = flat
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].parse().unwrap_or(0)))
            .collect();
        rooms.sort();
        Ok(rooms)
    }

    /// The users present in `room`, sorted.
    pub async fn online(&self, room: &str) -> Result<Vec<String>, StoreError> {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.online_key(room))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.connection.clone())
            .await?;
        let names: BTreeSet<String> = members
            .iter()
            .filter_map(|member| member.split_once('|').map(|(user, _)| user.to_owned()))
            .collect();
        Ok(names.into_iter().collect())
    }

    /// The recent messages of `room`, oldest first (in event id order).
    pub async fn history(&self, room: &str) -> Result<Vec<ChatMessage>, StoreError> {
        let items: Vec<String> = redis::cmd("LRANGE")
            .arg(self.history_key(room))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.connection.clone())
            .await?;
        let mut messages: Vec<ChatMessage> = items
            .iter()
            .filter_map(|item| serde_json::from_str(item).ok())
            .collect();
        // Instances append concurrently: the list is nearly in order, the ids are exact.
        messages.sort_by_key(|message| id_order(&message.id));
        Ok(messages)
    }

    /// Appends `message` to its room's history, keeping the newest `len`.
    pub async fn push_history(&self, message: &ChatMessage, len: usize) -> Result<(), StoreError> {
        if len == 0 {
            return Ok(());
        }
        let key = self.history_key(&message.room);
        let json = serde_json::to_string(message)
            .map_err(|error| StoreError(format!("cannot encode a message: {error}")))?;
        let newest = -i64::try_from(len).unwrap_or(i64::MAX);
        redis::pipe()
            .cmd("RPUSH")
            .arg(&key)
            .arg(json)
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(newest)
            .arg(-1)
            .ignore()
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    /// Waits (up to 5 s, then goes on without it) for the lock on the presence of `user` in
    /// `room`. Whoever holds it decides a change and publishes its event before releasing
    /// it, so presence events of one user in one room are in the order of the changes.
    pub async fn lock(&self, room: &str, user: &str) -> Result<Option<PresenceLock>, StoreError> {
        let lock = PresenceLock {
            key: self.key(&format!("lock:{room}|{user}")),
            token: hex(&random::<16>()?),
        };
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let mut connection = self.connection.clone();
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&lock.key)
                .arg(&lock.token)
                .arg("NX")
                .arg("PX")
                .arg(millis(LOCK_TTL))
                .query_async(&mut connection)
                .await?;
            if taken.is_some() {
                return Ok(Some(lock));
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    room,
                    user,
                    "presence lock still taken after 5 s; going on without it"
                );
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Releases a presence lock (errors are logged: the lock expires by itself).
    pub async fn unlock(&self, lock: Option<PresenceLock>) {
        let Some(lock) = lock else { return };
        if let Err(error) = self.eval::<i64>(UNLOCK, &[lock.key], &[lock.token]).await {
            tracing::warn!(%error, "cannot release a presence lock; it expires by itself");
        }
    }

    /// Marks `user` present in `room` through this instance for `lease`. `Some(online)`
    /// when the user was not present anywhere before: the caller announces `user-joined`.
    pub async fn join(
        &self,
        room: &str,
        user: &str,
        lease: Duration,
    ) -> Result<Option<usize>, StoreError> {
        let online: i64 = self
            .eval(
                JOIN,
                &[self.online_key(room)],
                &[user.to_owned(), self.instance.clone(), millis(lease)],
            )
            .await?;
        Ok(usize::try_from(online).ok())
    }

    /// Renews this instance's presence of each `(room, user)` for `lease`; returns, for each,
    /// whether it was still there (it is gone after an explicit leave, or after it ran out
    /// and was swept).
    pub async fn renew(
        &self,
        present: &[(String, String)],
        lease: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        if present.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = present
            .iter()
            .map(|(room, _)| self.online_key(room))
            .collect();
        let mut args = vec![millis(lease)];
        args.extend(present.iter().map(|(_, user)| self.member(user)));
        let held: Vec<i64> = self.eval(RENEW, &keys, &args).await?;
        Ok(held.into_iter().map(|h| h == 1).collect())
    }

    /// This instance's presence of `user` in `room` runs out after `grace`, unless renewed
    /// or joined again first.
    pub async fn linger(&self, room: &str, user: &str, grace: Duration) -> Result<(), StoreError> {
        self.eval::<i64>(
            LINGER,
            &[self.online_key(room)],
            &[self.member(user), millis(grace)],
        )
        .await
        .map(drop)
    }

    /// Ends the presence of `user` in `room` on every instance. `Some(online)` when the user
    /// was present: the caller announces `user-left`.
    pub async fn leave(&self, room: &str, user: &str) -> Result<Option<usize>, StoreError> {
        let online: i64 = self
            .eval(LEAVE, &[self.online_key(room)], &[user.to_owned()])
            .await?;
        Ok(usize::try_from(online).ok())
    }

    /// The `(room, user)` pairs with a presence that ran out, on any instance.
    pub async fn expired(&self) -> Result<Vec<(String, String)>, StoreError> {
        let flat: Vec<String> = self
            .eval(EXPIRED, &[self.key("rooms")], &[self.key("online:")])
            .await?;
        let pairs: BTreeSet<(String, String)> = flat
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        Ok(pairs.into_iter().collect())
    }

    /// Removes the presences of `user` in `room` that ran out. `Some(online)` when that
    /// made the user leave the room: the caller announces `user-left`. Of several instances
    /// sweeping at once, exactly one gets `Some`.
    pub async fn expire(&self, room: &str, user: &str) -> Result<Option<usize>, StoreError> {
        let online: i64 = self
            .eval(EXPIRE, &[self.online_key(room)], &[user.to_owned()])
            .await?;
        Ok(usize::try_from(online).ok())
    }
}

/// Orders hub ids: `<ms>-<seq>` (or `<epoch>-<seq>`) by their numbers.
fn id_order(id: &str) -> (u64, u64) {
    let (a, b) = id.split_once('-').unwrap_or((id, "0"));
    (a.parse().unwrap_or(u64::MAX), b.parse().unwrap_or(u64::MAX))
}

fn millis(duration: Duration) -> String {
    duration.as_millis().max(1).to_string()
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|error| StoreError(format!("no random source: {error}")))?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex_key(text: &str) -> Option<[u8; KEY_LEN]> {
    if text.len() != KEY_LEN * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(key)
}
