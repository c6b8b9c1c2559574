//! [`RedisConfig`]: where the stream lives and how it is read.

use std::fmt;
use std::time::Duration;

/// Settings of a hub over Redis Streams: the server, the stream, and the limits of reading,
/// replaying and reconnecting. Used with [`HubBuilder::redis`](crate::hub::HubBuilder::redis).
///
/// ```
/// use std::time::Duration;
/// use tower_sse::hub::redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379")
///     .key_prefix("myapp")          // the stream is `myapp:events`
///     .max_len(50_000)              // XADD MAXLEN ~ 50000
///     .max_replay(20_000)           // entries a resume may scan in the stream
///     .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(2));
/// assert_eq!(config.stream_key(), "myapp:events");
/// ```
///
/// Every instance sharing a key prefix must use the same `max_len` (and a `read_count` no
/// larger than it): an instance notices missed entries by relying on the stream keeping at
/// least `max_len` of them.
#[derive(Clone)]
#[must_use]
pub struct RedisConfig {
    pub(crate) url: String,
    pub(crate) key_prefix: String,
    pub(crate) max_len: usize,
    pub(crate) read_count: usize,
    pub(crate) block: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) replay_page: usize,
    pub(crate) max_replay: usize,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) reader_name: Option<String>,
}

impl RedisConfig {
    /// Settings for the Redis server at `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://` with a TLS feature of the `redis` crate, `redis+unix:///path`), with the
    /// defaults below. The URL is checked when the hub connects.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            key_prefix: "tower-sse".to_owned(),
            max_len: 100_000,
            read_count: 512,
            block: Duration::from_secs(5),
            command_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            replay_page: 256,
            max_replay: 10_000,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            reader_name: None,
        }
    }

    /// The prefix of the hub's Redis keys (default `"tower-sse"`): the stream is
    /// `<prefix>:events`. Instances with the same prefix on the same server share topics and
    /// ids; use one prefix per application (or per environment).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The approximate number of entries the stream keeps (default 100,000): each publish is
    /// `XADD <key> MAXLEN ~ <max_len> * ...`, so Redis trims the oldest entries in whole
    /// blocks and the stream holds at least this many. A client whose `Last-Event-ID` was
    /// trimmed away gets a `reset` marker. `0` is treated as `1`.
    pub fn max_len(mut self, entries: usize) -> Self {
        self.max_len = entries.max(1);
        self
    }

    /// The most entries one `XREAD` of the reader returns (default 512; at least 1, at most
    /// [`max_len`](Self::max_len)).
    pub fn read_count(mut self, entries: usize) -> Self {
        self.read_count = entries.max(1);
        self
    }

    /// How long one `XREAD` of the reader blocks waiting for entries (default 5 s, at least
    /// 1 ms, at most one hour: Redis refuses larger values). A read that does not answer
    /// within this plus the [`command_timeout`](Self::command_timeout) counts as a lost
    /// connection.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.clamp(Duration::from_millis(1), Duration::from_secs(3600));
        self
    }

    /// How long a command may take before it fails (default 5 s): a publish then returns
    /// [`HubError::Backend`](crate::hub::HubError::Backend).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// How long one connection attempt may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most entries one `XRANGE` of a resume reads (default 256, at least 1).
    pub fn replay_page(mut self, entries: usize) -> Self {
        self.replay_page = entries.max(1);
        self
    }

    /// The most stream entries one resume may scan, in all pages, whatever their topic
    /// (default 10,000). A client further behind gets a `reset` marker (reason `"stale"`)
    /// once the scan reaches the cap, then continues from where the instance's rings start.
    /// `0` makes every resume older than the rings a reset.
    pub fn max_replay(mut self, entries: usize) -> Self {
        self.max_replay = entries;
        self
    }

    /// The delay before the reader reconnects after losing its connection: `min` after the
    /// first failure, doubling after each further failure up to `max` (defaults 100 ms and
    /// 5 s), each delay randomly shortened by up to half so that instances do not reconnect
    /// in step.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// The connection name of the reader (`CLIENT SETNAME`; default
    /// `"<prefix>:reader"`), to find it in `CLIENT LIST`. Characters Redis does not allow
    /// in a name (spaces, controls, non-ASCII) become `_`.
    pub fn reader_name(mut self, name: impl Into<String>) -> Self {
        self.reader_name = Some(name.into());
        self
    }

    /// The key of the hub's stream: `<prefix>:events`.
    pub fn stream_key(&self) -> String {
        format!("{}:events", self.key_prefix)
    }

    /// The reader's connection name, made acceptable to `CLIENT SETNAME`.
    pub(crate) fn reader_client_name(&self) -> String {
        let name = match &self.reader_name {
            Some(name) => name.clone(),
            None => format!("{}:reader", self.key_prefix),
        };
        name.chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect()
    }

    /// Entries per `XREAD`, within the stream's length.
    pub(crate) fn read_batch(&self) -> usize {
        self.read_count.min(self.max_len).max(1)
    }
}

/// The URL without its password.
fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_owned(),
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redacted(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("max_len", &self.max_len)
            .field("read_count", &self.read_count)
            .field("block", &self.block)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("replay_page", &self.replay_page)
            .field("max_replay", &self.max_replay)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("reader_name", &self.reader_client_name())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = RedisConfig::new("redis://app:s3cret@db.internal:6380/2");
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(
            debug.contains("redis://app:***@db.internal:6380/2"),
            "{debug}"
        );
        assert_eq!(redacted("redis://127.0.0.1/0"), "redis://127.0.0.1/0");
        assert_eq!(redacted("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redacted("not a url"), "not a url");
    }

    #[test]
    fn names_and_bounds() {
        let config = RedisConfig::new("redis://h")
            .key_prefix("my app")
            .max_len(0)
            .read_count(100);
        assert_eq!(config.stream_key(), "my app:events");
        assert_eq!(config.reader_client_name(), "my_app:reader");
        assert_eq!(config.read_batch(), 1);
        let named = RedisConfig::new("redis://h").reader_name("web-1 réader");
        assert_eq!(named.reader_client_name(), "web-1_r_ader");
        let forever = RedisConfig::new("redis://h").block(Duration::MAX);
        assert_eq!(forever.block, Duration::from_secs(3600));
        assert_eq!(
            RedisConfig::new("redis://h").block(Duration::ZERO).block,
            Duration::from_millis(1)
        );
    }
}
