//! The command line and environment of the chat server.

use std::net::SocketAddr;
use std::time::Duration;

use super::config::parse_origin;

/// The help text.
pub const USAGE: &str = "\
usage: chat [--addr HOST:PORT] [--max-stream-secs N]
            [--redis URL] [--key-prefix PREFIX] [--peer ORIGIN]...

  --addr HOST:PORT       address to listen on (default 127.0.0.1:3000)
  --max-stream-secs N    end every stream after N seconds; browsers resume it
  --redis URL            share the chat with every instance on this Redis, such as
                         redis://127.0.0.1:6379 (needs the `redis` feature)
  --key-prefix PREFIX    prefix of the Redis keys (default tower-sse-chat); instances
                         with the same Redis and prefix form one chat
  --peer ORIGIN          origin of an instance the page may fail over to, such as
                         http://127.0.0.1:3001; repeat for each (this one may be listed)
  -h, --help             show this help

Environment: REDIS_URL (as --redis), CHAT_PEERS (origins separated by commas, as
--peer), CHAT_SECRET (64 hex digits: the key that signs session cookies; without
it, instances on one Redis agree on a random key kept there, and a single
instance draws one at start). Log levels: RUST_LOG (default info).";

/// The default prefix of the chat's Redis keys.
pub const DEFAULT_KEY_PREFIX: &str = "tower-sse-chat";

/// What the command line and the environment ask for.
#[derive(Debug, PartialEq)]
pub struct Args {
    /// The address to listen on.
    pub addr: SocketAddr,
    /// End every stream after this long.
    pub max_stream_lifetime: Option<Duration>,
    /// The Redis to share the chat through, if any.
    pub redis_url: Option<String>,
    /// The prefix of the Redis keys.
    pub key_prefix: String,
    /// The origins of the chat's instances, checked and normalized.
    pub peers: Vec<String>,
    /// The key that signs session cookies, from `CHAT_SECRET`.
    pub secret: Option<[u8; 32]>,
}

/// The outcome of reading the command line.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Run the server.
    Run(Args),
    /// Print the help.
    Help,
}

/// Reads `args` (without the program name) and the environment through `env`; flags win
/// over the environment. The error is a message for people.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, String> {
    let env = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let mut parsed = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
        max_stream_lifetime: None,
        redis_url: env("REDIS_URL").map(|url| url.trim().to_owned()),
        key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
        peers: Vec::new(),
        secret: env("CHAT_SECRET")
            .map(|hex| parse_secret(&hex).map_err(|why| format!("CHAT_SECRET: {why}")))
            .transpose()?,
    };
    if let Some(list) = env("CHAT_PEERS") {
        for origin in list.split(',').filter(|o| !o.trim().is_empty()) {
            add_peer(&mut parsed.peers, origin).map_err(|why| format!("CHAT_PEERS: {why}"))?;
        }
    }
    let mut peers_from_flags = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--addr" => {
                let text = value("--addr")?;
                parsed.addr = text.parse().map_err(|_| {
                    format!("--addr: {text:?} is not HOST:PORT (such as 127.0.0.1:3000)")
                })?;
            }
            "--max-stream-secs" => {
                let text = value("--max-stream-secs")?;
                let secs: u64 = text
                    .parse()
                    .map_err(|_| format!("--max-stream-secs: {text:?} is not a whole number"))?;
                parsed.max_stream_lifetime = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "--redis" => parsed.redis_url = Some(value("--redis")?),
            "--key-prefix" => {
                let prefix = value("--key-prefix")?;
                if prefix.is_empty() || prefix.len() > 100 || prefix.chars().any(char::is_control) {
                    return Err(format!(
                        "--key-prefix: {prefix:?} must be 1 to 100 characters, no control characters"
                    ));
                }
                parsed.key_prefix = prefix;
            }
            "--peer" => {
                let origin = value("--peer")?;
                add_peer(&mut peers_from_flags, &origin).map_err(|why| format!("--peer: {why}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !peers_from_flags.is_empty() {
        parsed.peers = peers_from_flags;
    }
    Ok(Command::Run(parsed))
}

fn add_peer(peers: &mut Vec<String>, text: &str) -> Result<(), String> {
    let origin = parse_origin(text)?;
    if !peers.contains(&origin) {
        peers.push(origin);
    }
    Ok(())
}

/// Reads a 32-byte key written as 64 hex digits.
pub fn parse_secret(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected hex digits only".to_owned());
    }
    if text.len() != 64 {
        return Err(format!(
            "expected 64 hex digits (32 bytes), got {} characters",
            text.len()
        ));
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let digits = std::str::from_utf8(pair).map_err(|_| "expected hex digits only")?;
        *byte = u8::from_str_radix(digits, 16).map_err(|_| "expected hex digits only")?;
    }
    Ok(key)
}
