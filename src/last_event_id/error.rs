//! Why a `Last-Event-ID` value was refused.

use std::fmt;

use super::LastEventIdSource;

/// Why a `Last-Event-ID` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LastEventIdErrorKind {
    /// The value is not valid UTF-8 (after percent-decoding, for a query parameter).
    NotUtf8,
    /// The value is longer than the configured limit, counted in bytes of UTF-8.
    TooLong {
        /// Length of the value in bytes (after percent-decoding, for a query parameter).
        len: usize,
        /// The configured limit ([`LastEventIdConfig::max_len`](super::LastEventIdConfig::max_len)).
        max: usize,
    },
    /// The value contains a character no event id can hold: NUL (a client ignores an `id`
    /// field holding it), carriage return or line feed (they end an `id` line). The
    /// character is `'\0'`, `'\r'` or `'\n'`.
    InvalidChar(char),
    /// The request carries more than one non-empty value from the same place: several
    /// `Last-Event-ID` headers, or several query parameters with a configured name. Reported
    /// only in strict mode; otherwise the first one is used.
    Duplicate,
}

/// A `Last-Event-ID` that was present but refused; names where it came from and why.
///
/// In lenient mode (the default) such a value is treated as absent and reported through
/// `tracing` at debug level; [`LastEventIdConfig::strict`](super::LastEventIdConfig::strict)
/// turns it into this error, which the caller is expected to answer with
/// `400 Bad Request`. The `Display` text is short, does not echo the value, and is fit for
/// a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LastEventIdError {
    origin: LastEventIdSource,
    kind: LastEventIdErrorKind,
}

impl LastEventIdError {
    pub(super) fn new(origin: LastEventIdSource, kind: LastEventIdErrorKind) -> Self {
        Self { origin, kind }
    }

    /// Where the refused value came from. (Named `origin` so that it does not hide
    /// [`std::error::Error::source`].)
    pub fn origin(&self) -> LastEventIdSource {
        self.origin
    }

    /// Why the value was refused.
    pub fn kind(&self) -> LastEventIdErrorKind {
        self.kind
    }
}

impl fmt::Display for LastEventIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.origin {
            LastEventIdSource::Header => "Last-Event-ID header",
            LastEventIdSource::Query => "Last-Event-ID query parameter",
        };
        match self.kind {
            LastEventIdErrorKind::NotUtf8 => write!(f, "{what} is not valid UTF-8"),
            LastEventIdErrorKind::TooLong { len, max } => {
                write!(f, "{what} is {len} bytes long, over the limit of {max}")
            }
            LastEventIdErrorKind::InvalidChar(c) => {
                let name = match c {
                    '\0' => "a NUL character",
                    '\r' => "a carriage return",
                    '\n' => "a line feed",
                    _ => "an invalid character",
                };
                write!(f, "{what} contains {name}")
            }
            LastEventIdErrorKind::Duplicate => match self.origin {
                LastEventIdSource::Header => f.write_str("several Last-Event-ID headers"),
                LastEventIdSource::Query => f.write_str("several Last-Event-ID query parameters"),
            },
        }
    }
}

impl std::error::Error for LastEventIdError {}
