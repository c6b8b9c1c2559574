//! Who is asking: name rules and signed session cookies.
//!
//! A session is a user name plus a random session id, sent to the browser as the cookie
//! `chat_session=<name>.<sid>.<tag>` where `tag` is HMAC-SHA256 (hex) over the name and the
//! session id under a key the server draws at start (or `Config::secret`; with Redis, the key
//! the instances share, so a cookie from one is valid on all). The cookie is `HttpOnly` and
//! `SameSite=Strict`, so page scripts cannot read it and other sites cannot post with it;
//! instances on one host with different ports are one site, so it goes to all of them
//! (cookies ignore ports). Nothing in it is secret; the tag only proves that this chat
//! issued it.

use hmac::{Hmac, Mac};
use http::header::{COOKIE, HeaderMap};
use sha2::Sha256;

/// The cookie's name.
pub const COOKIE_NAME: &str = "chat_session";
/// The longest user name, in bytes (names are ASCII).
pub const MAX_NAME_LEN: usize = 24;
/// The longest room name, in bytes (names are ASCII).
pub const MAX_ROOM_LEN: usize = 32;

/// The key length, in bytes.
pub const KEY_LEN: usize = 32;

/// Bytes that separate this use of the key from any other.
const DOMAIN: &[u8] = b"tower-sse chat session v1\0";

/// Checks a user name: 1 to 24 ASCII letters, digits, `_` or `-`.
pub fn validate_name(name: &str) -> Result<(), String> {
    validate(name, "name", MAX_NAME_LEN, |b| {
        b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
    })
    .map_err(|why| format!("{why} (1 to {MAX_NAME_LEN} letters, digits, _ or -)"))
}

/// Checks a room name: 1 to 32 lowercase ASCII letters, digits, `_` or `-`.
pub fn validate_room(room: &str) -> Result<(), String> {
    validate(room, "room name", MAX_ROOM_LEN, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
    })
    .map_err(|why| format!("{why} (1 to {MAX_ROOM_LEN} lowercase letters, digits, _ or -)"))
}

fn validate(value: &str, what: &str, max: usize, ok: impl Fn(u8) -> bool) -> Result<(), String> {
    if value.is_empty() {
        Err(format!("the {what} is empty"))
    } else if value.len() > max {
        Err(format!("the {what} is too long"))
    } else if !value.bytes().all(ok) {
        Err(format!("the {what} has a character that is not allowed"))
    } else {
        Ok(())
    }
}

/// A verified session: who the request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The user name.
    pub name: String,
    /// The random session id (32 hex digits).
    pub sid: String,
}

/// Issues and checks session cookies.
#[derive(Clone)]
pub struct Signer {
    /// HMAC-SHA256 keyed once; each use clones it.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
}

impl Signer {
    /// A signer with the given key.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        match <Hmac<Sha256> as Mac>::new_from_slice(key) {
            Ok(keyed) => Signer { keyed },
            // HMAC accepts keys of any length, so this arm is never taken.
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }

    /// A signer with a key drawn from the operating system's random source.
    pub fn random() -> Result<Self, getrandom::Error> {
        Ok(Signer::new(&random_bytes()?))
    }

    /// A new session for `name` (already validated), with a fresh random session id.
    pub fn issue(&self, name: &str) -> Result<Session, getrandom::Error> {
        let sid: [u8; 16] = random_bytes()?;
        Ok(Session {
            name: name.to_owned(),
            sid: hex(&sid),
        })
    }

    /// The cookie value for `session`.
    pub fn sign(&self, session: &Session) -> String {
        let tag = self.mac(session).finalize().into_bytes();
        format!("{}.{}.{}", session.name, session.sid, hex(&tag))
    }

    /// The session a cookie value names, if this signer issued it.
    pub fn verify(&self, value: &str) -> Option<Session> {
        let mut parts = value.split('.');
        let (name, sid, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || validate_name(name).is_err() || !is_hex(sid, 32) {
            return None;
        }
        let tag = unhex(tag)?;
        let session = Session {
            name: name.to_owned(),
            sid: sid.to_owned(),
        };
        // Constant-time comparison.
        self.mac(&session).verify_slice(&tag).ok()?;
        Some(session)
    }

    /// The session named by the request's cookie, if it carries a valid one.
    pub fn session_of(&self, headers: &HeaderMap) -> Option<Session> {
        cookie_value(headers).and_then(|value| self.verify(value))
    }

    fn mac(&self, session: &Session) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(DOMAIN);
        mac.update(session.name.as_bytes());
        mac.update(b".");
        mac.update(session.sid.as_bytes());
        mac
    }
}

/// The `Set-Cookie` value that stores `value` for the browser session.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes the cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The value of the first `chat_session` cookie in the request, if any.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

fn random_bytes<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !is_hex(s, 64) {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        _ => b - b'a' + 10,
    };
    Some(
        s.as_bytes()
            .chunks_exact(2)
            .map(|pair| (digit(pair[0]) << 4) | digit(pair[1]))
            .collect(),
    )
}
