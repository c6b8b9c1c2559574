//! The id a client wants to resume after: the `Last-Event-ID` header, with a query
//! parameter fallback.
//!
//! A browser's `EventSource` sends `Last-Event-ID` when it reconnects, holding the last
//! `id:` it received. A fresh `EventSource` (after a page reload) cannot set headers, so
//! pages and polyfills pass the id as a query parameter instead (`lastEventId` in the common
//! polyfill, `last_event_id` elsewhere). [`LastEventIdConfig::extract`] reads both:
//!
//! 1. **The header.** Its raw bytes are decoded as UTF-8 (not `HeaderValue::to_str`,
//!    which refuses anything but visible ASCII), so an id like `"café-7"` arrives intact.
//!    Empty values are ignored. With several non-empty `Last-Event-ID` headers the first is
//!    used (strict mode refuses them). When the header holds a value, it decides alone:
//!    if that value is invalid the request has no last event id (or, in strict mode, an
//!    error), and the query is **not** consulted, because a query value comes from the page
//!    load and is older than what the browser reports on reconnect.
//! 2. **The query**, only when there is no non-empty header. Parameters are decoded as
//!    `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte, a `%` not followed
//!    by two hex digits is kept as it is); their names are compared exactly with the
//!    configured names ([`LastEventIdConfig::query_params`]). The first non-empty matching
//!    parameter in query order is used (strict mode refuses a second one). Bytes that do not
//!    form UTF-8 make the value invalid; they are never replaced with U+FFFD. Only the
//!    matching parameter is decoded, and never past the length limit.
//!
//! An empty value is the same as none: a browser never sends an empty `Last-Event-ID`. A
//! value is **invalid** when it is not UTF-8, longer than the limit (1 KiB by default,
//! [`LastEventIdConfig::max_len`]) or contains NUL, CR or LF (no id a server sent can hold
//! them). By default an invalid value is treated as absent and reported through `tracing`
//! at debug level; in strict mode ([`LastEventIdConfig::strict`]) it is a
//! [`LastEventIdError`], to be answered with `400 Bad Request`. Nothing here panics on any
//! input.
//!
//! ```
//! use tower_sse::last_event_id::{LastEventId, LastEventIdConfig, LastEventIdSource};
//!
//! // A reconnecting browser: the header wins over the query.
//! let req = http::Request::get("/events?lastEventId=3")
//!     .header("last-event-id", "caf\u{e9}-7")
//!     .body(())
//!     .unwrap();
//! let id = LastEventId::extract(req.headers(), req.uri()).unwrap();
//! assert_eq!(id.as_str(), "café-7");
//! assert_eq!(id.source(), LastEventIdSource::Header);
//!
//! // A page load passing the id in the query, percent-encoded.
//! let req = http::Request::get("/events?last_event_id=room%3A42+b").body(()).unwrap();
//! let id = LastEventIdConfig::new().from_request(&req)?.unwrap();
//! assert_eq!(id, "room:42 b");
//!
//! // Too long: absent by default, an error in strict mode.
//! let req = http::Request::get("/events").header("last-event-id", "x".repeat(40)).body(()).unwrap();
//! let config = LastEventIdConfig::new().max_len(32);
//! assert_eq!(config.from_request(&req)?, None);
//! let error = config.strict(true).from_request(&req).unwrap_err();
//! assert_eq!(error.to_string(), "Last-Event-ID header is 40 bytes long, over the limit of 32");
//! # Ok::<(), tower_sse::last_event_id::LastEventIdError>(())
//! ```
//!
//! # Request extensions
//!
//! A middleware that has already read the id (such as `SseLayer`) stores the outcome as a
//! [`ParsedLastEventId`] in the request extensions; the axum extractor uses it rather than
//! parsing again, so the middleware's configuration applies. `SseLayer` also inserts the
//! [`LastEventId`] itself when there is one, for services that read
//! `request.extensions().get::<LastEventId>()`.
//!
//! # axum
//!
//! With the `axum` feature, `Option<LastEventId>` is an extractor (it rejects only in strict
//! mode, with `400`), and so is `LastEventId` (it also rejects a request without one).
//! See `LastEventIdRejection` (feature `axum`) for the responses.
#![cfg_attr(
    feature = "axum",
    doc = r#"
```
use axum::{Extension, Router, routing::get};
use tower_sse::last_event_id::{LastEventId, LastEventIdConfig};

async fn events(last_event_id: Option<LastEventId>) -> String {
    match last_event_id {
        Some(id) => format!("resuming after {id}"),
        None => "starting fresh".to_owned(),
    }
}

let app: Router = Router::new()
    .route("/events", get(events))
    // Optional: strict mode answers an invalid id with 400 instead of ignoring it.
    .layer(Extension(LastEventIdConfig::new().strict(true)));
```
"#
)]

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use http::{HeaderMap, Uri};

mod config;
mod error;
#[cfg(feature = "axum")]
mod extractor;
mod query;

pub use self::config::LastEventIdConfig;
pub use self::error::{LastEventIdError, LastEventIdErrorKind};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use self::extractor::LastEventIdRejection;

/// A valid last event id sent by the client.
///
/// Always non-empty, valid UTF-8, free of NUL, CR and LF, and within the configured length
/// limit. Dereferences to `str`, so `Option<LastEventId>::as_deref()` gives the
/// `Option<&str>` that [`Hub::subscribe`](crate::hub) takes.
///
/// Equality and hashing look at the value only, not at its [`source`](Self::source).
#[derive(Clone, Debug)]
pub struct LastEventId {
    value: String,
    source: LastEventIdSource,
}

/// Where a last event id came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LastEventIdSource {
    /// The `Last-Event-ID` header (a reconnecting `EventSource`).
    Header,
    /// A query parameter (a fresh `EventSource` resuming after a page load).
    Query,
}

impl LastEventId {
    /// Only for values that passed validation.
    fn new_unchecked(value: String, source: LastEventIdSource) -> Self {
        debug_assert!(!value.is_empty());
        Self { value, source }
    }

    /// Reads the id with [`LastEventIdConfig::default`]: lenient, 1 KiB limit, query
    /// parameters `lastEventId` and `last_event_id`. `None` when absent or invalid.
    pub fn extract(headers: &HeaderMap, uri: &Uri) -> Option<Self> {
        LastEventIdConfig::new()
            .extract(headers, uri)
            .ok()
            .flatten()
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The id, as an owned string.
    pub fn into_string(self) -> String {
        self.value
    }

    /// Where the id came from.
    pub fn source(&self) -> LastEventIdSource {
        self.source
    }
}

impl Deref for LastEventId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.value
    }
}

impl AsRef<str> for LastEventId {
    fn as_ref(&self) -> &str {
        &self.value
    }
}

impl Borrow<str> for LastEventId {
    fn borrow(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for LastEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl From<LastEventId> for String {
    fn from(id: LastEventId) -> Self {
        id.value
    }
}

impl PartialEq for LastEventId {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for LastEventId {}

impl Hash for LastEventId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl PartialEq<str> for LastEventId {
    fn eq(&self, other: &str) -> bool {
        self.value == other
    }
}

impl PartialEq<&str> for LastEventId {
    fn eq(&self, other: &&str) -> bool {
        self.value == *other
    }
}

impl PartialEq<String> for LastEventId {
    fn eq(&self, other: &String) -> bool {
        &self.value == other
    }
}

/// The outcome of reading a request's last event id, kept in the request extensions by a
/// middleware (`SseLayer`) so that it is read once, with the middleware's configuration.
///
/// The axum extractor prefers it to parsing the request again. Without axum, read it with
/// `request.extensions().get::<ParsedLastEventId>()`.
///
/// ```
/// use tower_sse::last_event_id::{LastEventIdConfig, ParsedLastEventId};
///
/// let mut req = http::Request::get("/events").header("last-event-id", "9").body(()).unwrap();
/// let parsed = ParsedLastEventId::new(LastEventIdConfig::new().from_request(&req));
/// req.extensions_mut().insert(parsed);
///
/// let id = req.extensions().get::<ParsedLastEventId>().and_then(|p| p.last_event_id());
/// assert_eq!(id.map(|id| id.as_str()), Some("9"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedLastEventId(Result<Option<LastEventId>, LastEventIdError>);

impl ParsedLastEventId {
    /// Wraps the result of [`LastEventIdConfig::extract`] (or its siblings).
    pub fn new(result: Result<Option<LastEventId>, LastEventIdError>) -> Self {
        Self(result)
    }

    /// The id, if the request carries a valid one.
    pub fn last_event_id(&self) -> Option<&LastEventId> {
        self.0.as_ref().ok().and_then(Option::as_ref)
    }

    /// The full outcome: `Err` only when it was read in strict mode and found invalid.
    pub fn result(&self) -> Result<Option<&LastEventId>, &LastEventIdError> {
        self.0.as_ref().map(Option::as_ref)
    }

    /// The full outcome, owned.
    pub fn into_result(self) -> Result<Option<LastEventId>, LastEventIdError> {
        self.0
    }
}

impl From<Result<Option<LastEventId>, LastEventIdError>> for ParsedLastEventId {
    fn from(result: Result<Option<LastEventId>, LastEventIdError>) -> Self {
        Self(result)
    }
}

#[cfg(test)]
mod tests;
