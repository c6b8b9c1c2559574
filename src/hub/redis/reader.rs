//! The reader: one task per hub that follows the stream with `XREAD BLOCK` on its own
//! connection and adds every entry to the local rings, reconnecting with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, Value};

use super::RedisConfig;
use super::backend::{Backend, Failure, stream_info, until_closed, with_timeout};
use super::entry::{self, RawEntry, StreamId};
use crate::hub::id::random_epoch;
use crate::hub::state::{Inner, Remote};

/// Opens the reader's own connection (never shared: its `XREAD BLOCK` would hold up every
/// other command) and names it.
pub(crate) async fn open(
    client: &Client,
    config: &RedisConfig,
) -> Result<MultiplexedConnection, Failure> {
    // Reads block for `config.block`; each is bounded by its own timeout instead.
    let connection_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(None);
    let opening = async {
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&connection_config)
            .await?;
        ::redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(config.reader_client_name())
            .query_async::<()>(&mut connection)
            .await?;
        Ok(connection)
    };
    match tokio::time::timeout(
        config
            .connect_timeout
            .saturating_add(config.command_timeout),
        opening,
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(Failure::Timeout),
    }
}

/// Follows the stream after `last` until the hub closes.
pub(crate) async fn run(
    backend: Arc<Backend>,
    inner: Arc<Inner>,
    connection: MultiplexedConnection,
    last: StreamId,
) {
    let mut reader = Reader {
        backoff: Backoff::new(backend.config.reconnect_min, backend.config.reconnect_max),
        backend,
        inner,
        last,
    };
    let mut connection = Some(connection);
    loop {
        let mut current = match connection.take() {
            Some(current) => current,
            None => match reader.reconnect().await {
                Some(Some(current)) => current,
                Some(None) => continue,
                None => return,
            },
        };
        let inner = Arc::clone(&reader.inner);
        match until_closed(&inner, reader.follow(&mut current)).await {
            None => return,
            Some(failure) => {
                tracing::warn!(
                    stream = %reader.backend.key,
                    error = %failure,
                    after = %reader.last,
                    reader = %reader.backend.config.reader_client_name(),
                    "hub reader lost its Redis connection; reconnecting",
                );
            }
        }
    }
}

struct Reader {
    backend: Arc<Backend>,
    inner: Arc<Inner>,
    /// The newest entry read, where the next read starts.
    last: StreamId,
    backoff: Backoff,
}

impl Reader {
    /// Waits for the backoff delay and connects again: `None` once the hub closed,
    /// `Some(None)` when connecting failed.
    async fn reconnect(&mut self) -> Option<Option<MultiplexedConnection>> {
        let delay = self.backoff.next_delay();
        until_closed(&self.inner, tokio::time::sleep(delay)).await?;
        let opened = until_closed(
            &self.inner,
            open(&self.backend.client, &self.backend.config),
        )
        .await?;
        match opened {
            Ok(connection) => {
                self.inner
                    .counters
                    .reader_reconnects
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(stream = %self.backend.key, after = %self.last, reader = %self.backend.config.reader_client_name(), "hub reader reconnected");
                Some(Some(connection))
            }
            Err(failure) => {
                tracing::warn!(
                    stream = %self.backend.key,
                    error = %failure,
                    retry_in = ?self.backoff.peek(),
                    "hub reader cannot reconnect to Redis",
                );
                Some(None)
            }
        }
    }

    /// Reads until the connection fails; returns why.
    async fn follow(&mut self, connection: &mut MultiplexedConnection) -> Failure {
        let backend = Arc::clone(&self.backend);
        let config = &backend.config;
        let count = config.read_batch();
        let block_ms = u64::try_from(config.block.as_millis()).unwrap_or(u64::MAX);
        loop {
            let mut command = ::redis::cmd("XREAD");
            command
                .arg("COUNT")
                .arg(count)
                .arg("BLOCK")
                .arg(block_ms)
                .arg("STREAMS")
                .arg(&backend.key)
                .arg(self.last.to_string());
            let reading = async {
                let reply: Value = command.query_async(connection).await?;
                entry::parse_xread(reply).map_err(Failure::Reply)
            };
            let entries = match tokio::time::timeout(
                config.block.saturating_add(config.command_timeout),
                reading,
            )
            .await
            {
                Ok(Ok(entries)) => entries,
                Ok(Err(failure)) => return failure,
                Err(_) => return Failure::Timeout,
            };
            self.backoff.reset();
            let Some(first) = entries.first().map(|e| e.id) else {
                continue;
            };
            if entries.len() >= count {
                // A full batch: the reader is behind, and entries it never read may have been
                // trimmed. (A batch that is not full proves the stream still held everything
                // after `last`: it keeps at least `max_len` >= `count` entries.)
                let info = match with_timeout(config, stream_info(connection, &backend.key)).await {
                    Ok(info) => info,
                    Err(failure) => return failure,
                };
                if info.may_have_lost_after(self.last) && self.last.next() < first {
                    let upto = first.floor_position().saturating_sub(1);
                    tracing::warn!(
                        stream = %backend.key,
                        after = %self.last,
                        before = %first,
                        "entries were trimmed from the stream before this instance read them; \
                         its subscriptions fall behind and resume from what Redis still holds",
                    );
                    self.inner.lose_everything_upto(upto);
                }
            }
            self.deliver(entries);
        }
    }

    /// Adds the entries of the hub's format to the rings, skipping (and logging) the others.
    fn deliver(&mut self, entries: Vec<RawEntry>) {
        let mut events = Vec::with_capacity(entries.len());
        for raw in entries {
            self.last = self.last.max(raw.id);
            // Skips are counted here, before the events become visible, so that a subscriber
            // that sees an event also sees the skips before it.
            events.extend(hub_event(&self.inner, &self.backend.key, raw, |_| true));
        }
        let too_large = self.inner.insert_remote(events, self.last.floor_position());
        let counter = &self.inner.counters.entries_skipped;
        counter.fetch_add(too_large, Ordering::Relaxed);
        self.backend.advanced.notify_waiters();
    }
}

/// The event a stream entry holds, ready for the rings, if its topic is `wanted`; used by the
/// reader and by a resume's catch-up alike.
///
/// An entry that is not an event of this hub (foreign or malformed, with a topic name this
/// hub refuses, or with an id it cannot order) is skipped: logged at warn level and counted
/// in [`HubStats::entries_skipped`](crate::hub::HubStats::entries_skipped), whether `wanted`
/// or not. The counter counts skips, not distinct entries: a catch-up that reads past an
/// entry the reader skipped before skips and counts it again. `stream` is the stream's key,
/// for the log.
pub(super) fn hub_event(
    inner: &Inner,
    stream: &str,
    raw: RawEntry,
    wanted: impl FnOnce(&str) -> bool,
) -> Option<Remote> {
    let RawEntry { id, fields } = raw;
    let decoded = id
        .position()
        .ok_or("the hub cannot order its id")
        .and_then(|pos| {
            let (topic, lines) = entry::decode(fields)?;
            match inner.validate_topic(&topic) {
                Ok(()) => Ok((pos, topic, lines)),
                Err(_) => Err("the topic name is empty or too long for this hub"),
            }
        });
    match decoded {
        Ok((pos, topic, lines)) => wanted(&topic).then(|| Remote {
            pos,
            topic,
            event: entry::encode(lines, id),
        }),
        Err(reason) => {
            tracing::warn!(stream, %id, reason, "skipping an entry that is not a hub event");
            inner
                .counters
                .entries_skipped
                .fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Capped exponential backoff with jitter.
struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    rng: u64,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            current: min,
            rng: random_epoch() | 1,
        }
    }

    fn reset(&mut self) {
        self.current = self.min;
    }

    fn peek(&self) -> Duration {
        self.current
    }

    /// The next delay: the current step shortened by a random fraction of up to half, then
    /// the step doubles up to the maximum.
    fn next_delay(&mut self) -> Duration {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let fraction = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        let delay = self.current.mul_f64(1.0 - fraction / 2.0);
        self.current = self.current.saturating_mul(2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_and_resets() {
        let min = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let mut backoff = Backoff::new(min, max);
        let steps = [100u64, 200, 400, 800, 1000, 1000];
        for step in steps {
            let step = Duration::from_millis(step);
            let delay = backoff.next_delay();
            assert!(delay <= step && delay >= step / 2, "{delay:?} for {step:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= min);
    }
}
