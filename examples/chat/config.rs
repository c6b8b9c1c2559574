//! Settings of the chat server.

use std::time::Duration;

/// Settings of the chat server; [`Config::default`] is what `cargo run --example chat` uses.
#[derive(Clone, Debug)]
pub struct Config {
    /// The key that signs session cookies; `None` draws a random one at start (sessions then
    /// end with the process, and pages sign in again with the name they kept).
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
        }
    }
}
