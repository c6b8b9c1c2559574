//! Settings of the chat server.

use std::time::Duration;

/// Settings of the chat server; [`Config::default`] is what `cargo run --example chat` uses.
#[derive(Clone, Debug)]
pub struct Config {
    /// The key that signs session cookies (`CHAT_SECRET`). `None` draws a random one at
    /// start (sessions then end with the process, and pages sign in again with the name they
    /// kept); with Redis, `None` uses the key the instances agree on there.
    pub secret: Option<[u8; super::session::KEY_LEN]>,
    /// The reconnection delay sent to browsers (`retry:`).
    pub retry: Duration,
    /// How long a stream may stay idle before a keep-alive comment is sent.
    pub keep_alive: Duration,
    /// How long a user whose last stream for a room closed still counts as present there
    /// (a page that reopens its stream, or a short network drop, does not flicker).
    pub presence_grace: Duration,
    /// Messages kept per room for `GET /rooms/{room}`.
    pub history_len: usize,
    /// The most rooms the server holds; creating another answers `503`.
    pub max_rooms: usize,
    /// The most rooms one stream may carry.
    pub max_rooms_per_stream: usize,
    /// The most signed-in users the server holds; signing in another answers `503`.
    pub max_users: usize,
    /// How long the name of a user with no open stream stays reserved for their session.
    pub name_hold: Duration,
    /// The largest request body, in bytes; larger bodies answer `413`.
    pub max_body: usize,
    /// The longest message, in characters; longer messages answer `413`.
    pub max_text: usize,
    /// End every stream after this long (the browser reconnects and resumes); `None` keeps
    /// streams open until the client leaves or the server shuts down.
    pub max_stream_lifetime: Option<Duration>,
    /// Adds `POST /admin/kick`, which ends the streams of one user. For tests only: it has
    /// no authentication.
    pub admin_routes: bool,
    /// The origins (`http://host:port`) of every instance of this chat, this one included or
    /// not: `GET /config` lists them for the page to fail over to, and they are the only
    /// origins allowed cross-origin (CORS with credentials) and in the page's
    /// `connect-src`. Empty for a single instance. Check each with [`parse_origin`].
    pub peers: Vec<String>,
    /// With Redis: how long a user's presence in a room lasts without being renewed. Each
    /// instance renews the presence of its open streams every third of this, so an instance
    /// that dies takes its users' presence with it after at most this long (plus
    /// [`Config::presence_grace`]).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub presence_lease: Duration,
    /// With Redis: how often each instance looks for presence that ran out (a closed stream's
    /// grace period, or a dead instance's lease) and tells the room `user-left`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub sweep_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            secret: None,
            retry: Duration::from_secs(2),
            keep_alive: Duration::from_secs(15),
            presence_grace: Duration::from_secs(5),
            history_len: 100,
            max_rooms: 200,
            max_rooms_per_stream: 16,
            max_users: 10_000,
            name_hold: Duration::from_secs(300),
            max_body: 4096,
            max_text: 1000,
            max_stream_lifetime: None,
            admin_routes: false,
            peers: Vec::new(),
            presence_lease: Duration::from_secs(15),
            sweep_interval: Duration::from_secs(1),
        }
    }
}

/// Checks an origin as a browser sends it in `Origin`: `http` or `https`, a host (a name,
/// an IPv4 address or a bracketed IPv6 address) and an optional port, nothing after. A
/// trailing `/` is dropped and letters are made lowercase, so the result compares equal to
/// the browser's `Origin` header.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let bad =
        |why: &str| format!("{text:?} is not an origin such as http://127.0.0.1:3001 ({why})");
    let origin = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Err(bad("no scheme"));
    };
    if scheme != "http" && scheme != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    let port = if let Some(v6) = rest.strip_prefix('[') {
        let (address, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(bad("not an IPv6 address"));
        }
        match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
        }
    } else {
        let (host, port) = match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        let host_ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
        if host.is_empty() || host.len() > 253 || !host.bytes().all(host_ok) {
            return Err(bad("not a host name or address"));
        }
        port
    };
    if let Some(port) = port {
        let valid = !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !valid || port.parse::<u16>().is_err() {
            return Err(bad("the port must be a number up to 65535"));
        }
    }
    Ok(origin)
}
