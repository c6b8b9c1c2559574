//! Extraction settings and the extraction itself.

use http::header::{HeaderMap, HeaderName};
use http::{Request, Uri, request::Parts};

use super::query::{decode_bounded, matching_values};
use super::{LastEventId, LastEventIdError, LastEventIdErrorKind, LastEventIdSource};

/// The header a browser sends when it reconnects.
pub(super) static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// How [`LastEventId`] is read from a request: the length limit, strictness and the
/// query parameters used when the `Last-Event-ID` header is absent.
///
/// The default is lenient, with a 1 KiB limit and the query parameters `lastEventId` and
/// `last_event_id`; see the [module documentation](super) for the rules.
///
/// ```
/// use tower_sse::last_event_id::LastEventIdConfig;
///
/// let config = LastEventIdConfig::new()
///     .max_len(128)
///     .strict(true)
///     .query_params(&["cursor"]);
/// let req = http::Request::get("/events?cursor=42").body(()).unwrap();
/// let id = config.from_request(&req).unwrap().unwrap();
/// assert_eq!(id, "42");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct LastEventIdConfig {
    max_len: usize,
    strict: bool,
    query_params: &'static [&'static str],
}

impl Default for LastEventIdConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl LastEventIdConfig {
    /// The default length limit: 1024 bytes.
    pub const DEFAULT_MAX_LEN: usize = 1024;

    /// The query parameters read by default: `lastEventId` (the common `EventSource`
    /// polyfill) and `last_event_id`. Whichever comes first in the query is used.
    pub const DEFAULT_QUERY_PARAMS: &'static [&'static str] = &["lastEventId", "last_event_id"];

    /// Lenient, 1 KiB limit, query parameters `lastEventId` and `last_event_id`.
    pub const fn new() -> Self {
        Self {
            max_len: Self::DEFAULT_MAX_LEN,
            strict: false,
            query_params: Self::DEFAULT_QUERY_PARAMS,
        }
    }

    /// Sets the length limit, in bytes of UTF-8 (after percent-decoding for a query
    /// parameter). A longer value is invalid. `0` refuses every value.
    pub const fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Strict mode: an invalid value (not UTF-8, too long, NUL/CR/LF, or several values from
    /// the same place) is an error the caller answers with `400 Bad Request`, instead of
    /// being treated as absent.
    pub const fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Sets the query parameter names read when the header is absent. Names are compared
    /// exactly (case-sensitive) with the percent-decoded parameter names. `&[]` disables
    /// the query fallback.
    pub const fn query_params(mut self, names: &'static [&'static str]) -> Self {
        self.query_params = names;
        self
    }

    /// Whether strict mode is on.
    pub const fn is_strict(&self) -> bool {
        self.strict
    }

    /// The length limit in bytes.
    pub const fn max_len_limit(&self) -> usize {
        self.max_len
    }

    /// Reads the last event id from the `Last-Event-ID` header, or when that is absent (or
    /// empty) from the configured query parameters of `uri`.
    ///
    /// This only parses: it does not look at request extensions (see
    /// [`ParsedLastEventId`](super::ParsedLastEventId) for that).
    ///
    /// # Errors
    ///
    /// Only in strict mode: a [`LastEventIdError`] for a value that is present but invalid.
    /// In lenient mode an invalid value gives `Ok(None)` and a `tracing` debug event.
    pub fn extract(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Option<LastEventId>, LastEventIdError> {
        match self.parse(headers, uri) {
            Ok(id) => Ok(id),
            Err(error) if self.strict => Err(error),
            Err(error) => {
                tracing::debug!(
                    origin = ?error.origin(),
                    %error,
                    "ignoring an invalid Last-Event-ID; the request is treated as having none"
                );
                Ok(None)
            }
        }
    }

    /// [`extract`](Self::extract) from request parts.
    ///
    /// # Errors
    ///
    /// As [`extract`](Self::extract): only in strict mode, for an invalid value.
    pub fn from_parts(&self, parts: &Parts) -> Result<Option<LastEventId>, LastEventIdError> {
        self.extract(&parts.headers, &parts.uri)
    }

    /// [`extract`](Self::extract) from a request.
    ///
    /// # Errors
    ///
    /// As [`extract`](Self::extract): only in strict mode, for an invalid value.
    pub fn from_request<B>(
        &self,
        req: &Request<B>,
    ) -> Result<Option<LastEventId>, LastEventIdError> {
        self.extract(req.headers(), req.uri())
    }

    /// The extraction; every invalid value is an error here, the caller decides.
    fn parse(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Option<LastEventId>, LastEventIdError> {
        let mut values = headers
            .get_all(&LAST_EVENT_ID)
            .iter()
            .filter(|v| !v.is_empty());
        if let Some(first) = values.next() {
            let origin = LastEventIdSource::Header;
            self.check_duplicate(values.next().is_some(), origin)?;
            let bytes = first.as_bytes();
            if bytes.len() > self.max_len {
                return Err(self.too_long(bytes.len(), origin));
            }
            let value = std::str::from_utf8(bytes).map_err(|_| not_utf8(origin))?;
            check_chars(value, origin)?;
            return Ok(Some(LastEventId::new_unchecked(value.to_owned(), origin)));
        }
        let Some(query) = uri.query() else {
            return Ok(None);
        };
        let origin = LastEventIdSource::Query;
        let mut values = matching_values(query, self.query_params);
        let Some(raw) = values.next() else {
            return Ok(None);
        };
        self.check_duplicate(values.next().is_some(), origin)?;
        // Decoding stops at the limit: a huge parameter never becomes a huge allocation.
        let bytes = decode_bounded(raw, self.max_len).map_err(|len| self.too_long(len, origin))?;
        let value = String::from_utf8(bytes).map_err(|_| not_utf8(origin))?;
        check_chars(&value, origin)?;
        Ok(Some(LastEventId::new_unchecked(value, origin)))
    }

    fn check_duplicate(
        &self,
        duplicate: bool,
        origin: LastEventIdSource,
    ) -> Result<(), LastEventIdError> {
        if !duplicate {
            return Ok(());
        }
        if self.strict {
            return Err(LastEventIdError::new(
                origin,
                LastEventIdErrorKind::Duplicate,
            ));
        }
        tracing::debug!(?origin, "several Last-Event-ID values; using the first");
        Ok(())
    }

    fn too_long(&self, len: usize, origin: LastEventIdSource) -> LastEventIdError {
        let kind = LastEventIdErrorKind::TooLong {
            len,
            max: self.max_len,
        };
        LastEventIdError::new(origin, kind)
    }
}

fn not_utf8(origin: LastEventIdSource) -> LastEventIdError {
    LastEventIdError::new(origin, LastEventIdErrorKind::NotUtf8)
}

/// Refuses NUL, CR and LF: a client ignores an `id` field holding NUL, and CR/LF end a line,
/// so no id a server sent can contain them.
pub(super) fn check_chars(value: &str, origin: LastEventIdSource) -> Result<(), LastEventIdError> {
    match memchr::memchr3(b'\0', b'\r', b'\n', value.as_bytes()) {
        None => Ok(()),
        Some(i) => {
            let c = char::from(value.as_bytes()[i]);
            Err(LastEventIdError::new(
                origin,
                LastEventIdErrorKind::InvalidChar(c),
            ))
        }
    }
}
