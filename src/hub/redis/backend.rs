//! The Redis side of a hub: connecting, publishing with `XADD`, and the commands a resume
//! needs.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Value};
use futures_util::future::{self, Either};
use tokio::sync::Notify;

use super::RedisConfig;
use super::entry::{self, EVENT_FIELD, RawEntry, StreamId, StreamInfo, TOPIC_FIELD};
use super::reader;
use crate::Event;
use crate::hub::state::Inner;
use crate::hub::{BackendError, BackendErrorKind, Hub, HubBuilder, HubError};

/// A hub's connection to Redis, shared by its handles, its reader and its resumes.
pub(crate) struct Backend {
    pub(crate) config: RedisConfig,
    pub(crate) key: String,
    pub(crate) client: Client,
    /// The multiplexed connection for publishing and resumes; it reconnects by itself.
    manager: ConnectionManager,
    /// Notified each time the reader has added what it read to the rings.
    pub(crate) advanced: Notify,
}

/// Why a command to Redis failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Redis(RedisError),
    /// Redis answered something the hub does not understand.
    Reply(&'static str),
    /// No answer in time.
    Timeout,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Redis(error) => fmt::Display::fmt(error, f),
            Failure::Reply(what) => write!(f, "unexpected reply from Redis: {what}"),
            Failure::Timeout => f.write_str("Redis did not answer in time"),
        }
    }
}

impl From<RedisError> for Failure {
    fn from(error: RedisError) -> Failure {
        Failure::Redis(error)
    }
}

impl Failure {
    fn into_hub_error(self, kind: BackendErrorKind) -> HubError {
        HubError::Backend(BackendError::new(kind, self.to_string()))
    }
}

/// Connects a hub: the publishing connection, then the reader's, which starts reading after
/// the stream's newest entry.
pub(crate) async fn connect(builder: HubBuilder, config: RedisConfig) -> Result<Hub, HubError> {
    let connect_error = |error: Failure| error.into_hub_error(BackendErrorKind::Connect);
    let client = Client::open(config.url.as_str()).map_err(|e| connect_error(e.into()))?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
        .set_number_of_retries(1)
        .set_min_delay(config.reconnect_min)
        .set_max_delay(config.reconnect_max);
    let manager = ConnectionManager::new_with_config(client.clone(), manager_config)
        .await
        .map_err(|e| connect_error(e.into()))?;
    let key = config.stream_key();
    let mut connection = reader::open(&client, &config)
        .await
        .map_err(connect_error)?;
    let info = with_timeout(&config, stream_info(&mut connection, &key))
        .await
        .map_err(connect_error)?;
    // Everything up to here is in Redis only; the rings start after it.
    let start = info.last_generated;
    let inner = Arc::new(Inner::new_stream(builder, start.floor_position()));
    Inner::watch_shutdown(&inner);
    let backend = Arc::new(Backend {
        config,
        key,
        client,
        manager,
        advanced: Notify::new(),
    });
    tokio::spawn(reader::run(
        Arc::clone(&backend),
        Arc::clone(&inner),
        connection,
        start,
    ));
    Ok(Hub::with_backend(inner, backend))
}

impl Backend {
    /// `XADD`s the event and returns its entry id; the reader delivers it.
    pub(crate) async fn publish(
        &self,
        inner: &Inner,
        topic: &str,
        event: Event,
    ) -> Result<String, HubError> {
        inner.validate_topic(topic)?;
        inner.check_shutdown();
        if inner.is_closed() {
            return Err(HubError::Closed);
        }
        let lines = event.as_bytes();
        inner.admit(topic, lines.len())?;
        let mut command = ::redis::cmd("XADD");
        command
            .arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.config.max_len)
            .arg("*")
            .arg(TOPIC_FIELD)
            .arg(topic)
            .arg(EVENT_FIELD)
            .arg(lines);
        let mut connection = self.manager.clone();
        let error = |failure: Failure| failure.into_hub_error(BackendErrorKind::Command);
        let reply: Value = command
            .query_async(&mut connection)
            .await
            .map_err(|e| error(e.into()))?;
        let id = match &reply {
            Value::BulkString(bytes) => StreamId::parse_bytes(bytes),
            Value::SimpleString(text) => StreamId::parse(text),
            _ => None,
        }
        .ok_or_else(|| error(Failure::Reply("XADD did not return an entry id")))?;
        if id.position().is_none() {
            // Stored, but no instance can deliver it: say so rather than return an id.
            return Err(error(Failure::Reply(
                "the stream's ids are beyond what the hub can order (a foreign entry set them)",
            )));
        }
        Ok(id.to_string())
    }

    /// `XINFO STREAM` on the shared connection.
    pub(crate) async fn info(&self) -> Result<StreamInfo, Failure> {
        let mut connection = self.manager.clone();
        stream_info(&mut connection, &self.key).await
    }

    /// Up to `count` entries after `after`, up to and including `upto`.
    pub(crate) async fn range(
        &self,
        after: StreamId,
        upto: StreamId,
        count: usize,
    ) -> Result<Vec<RawEntry>, Failure> {
        let start = if after == StreamId::ZERO {
            "-".to_owned()
        } else {
            format!("({after}")
        };
        let mut connection = self.manager.clone();
        let reply: Value = ::redis::cmd("XRANGE")
            .arg(&self.key)
            .arg(start)
            .arg(upto.to_string())
            .arg("COUNT")
            .arg(count)
            .query_async(&mut connection)
            .await?;
        entry::parse_entries(reply).map_err(Failure::Reply)
    }
}

/// `XINFO STREAM`; a missing stream is reported as empty.
pub(crate) async fn stream_info<C: ConnectionLike + Send>(
    connection: &mut C,
    key: &str,
) -> Result<StreamInfo, Failure> {
    let reply = ::redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query_async::<Value>(connection)
        .await;
    match reply {
        Ok(reply) => StreamInfo::parse(reply).ok_or(Failure::Reply("XINFO STREAM")),
        Err(error) if is_no_such_key(&error) => Ok(StreamInfo::MISSING),
        Err(error) => Err(error.into()),
    }
}

fn is_no_such_key(error: &RedisError) -> bool {
    error
        .detail()
        .is_some_and(|detail| detail.contains("no such key"))
}

/// Runs `future` within the command timeout.
pub(crate) async fn with_timeout<T, F>(config: &RedisConfig, future: F) -> Result<T, Failure>
where
    F: Future<Output = Result<T, Failure>>,
{
    match tokio::time::timeout(config.command_timeout, future).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Timeout),
    }
}

/// Runs `future` unless the hub closes first (`None` then).
pub(crate) async fn until_closed<F: Future>(inner: &Inner, future: F) -> Option<F::Output> {
    let closed = pin!(inner.closed_future());
    let future = pin!(future);
    match future::select(closed, future).await {
        Either::Left(_) => None,
        Either::Right((output, _)) => Some(output),
    }
}
