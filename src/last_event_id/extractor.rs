//! The axum extractor: `Option<LastEventId>` and `LastEventId`.

use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use super::{LastEventId, LastEventIdConfig, LastEventIdError, ParsedLastEventId};

/// The rejection of the [`LastEventId`] extractor; both cases answer `400 Bad Request`
/// with a short `text/plain` body that does not echo the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LastEventIdRejection {
    /// The request carries no last event id. Only `LastEventId` (not `Option<LastEventId>`)
    /// rejects for this. Body: `missing Last-Event-ID`.
    Missing,
    /// Strict mode only: a value is present but invalid. Body: the error's `Display`.
    Invalid(LastEventIdError),
}

impl fmt::Display for LastEventIdRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("missing Last-Event-ID"),
            Self::Invalid(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for LastEventIdRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Missing => None,
            Self::Invalid(error) => Some(error),
        }
    }
}

impl From<LastEventIdError> for LastEventIdRejection {
    fn from(error: LastEventIdError) -> Self {
        Self::Invalid(error)
    }
}

impl IntoResponse for LastEventIdRejection {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, self.to_string()).into_response()
    }
}

/// The extraction behind both extractors: a result already in the extensions first, then
/// a configuration in the extensions, then the default configuration.
fn resolve(parts: &Parts) -> Result<Option<LastEventId>, LastEventIdError> {
    if let Some(parsed) = parts.extensions.get::<ParsedLastEventId>() {
        return parsed
            .result()
            .map(Option::<&LastEventId>::cloned)
            .map_err(|e| *e);
    }
    let config = parts
        .extensions
        .get::<LastEventIdConfig>()
        .copied()
        .unwrap_or_default();
    config.from_parts(parts)
}

/// `Option<LastEventId>` as a handler argument: `None` when the request carries no (valid)
/// last event id. Rejects only in strict mode, for an invalid value.
///
/// Where the value comes from, in order: a [`ParsedLastEventId`] in the request extensions
/// (inserted by `SseLayer`, so the request is parsed once and the layer's configuration
/// applies); else a [`LastEventIdConfig`] in the extensions (e.g. added with
/// `axum::Extension(config)`); else [`LastEventIdConfig::default`].
impl<S: Send + Sync> OptionalFromRequestParts<S> for LastEventId {
    type Rejection = LastEventIdRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        resolve(parts).map_err(LastEventIdRejection::Invalid)
    }
}

/// `LastEventId` as a handler argument: like `Option<LastEventId>`, but a request without
/// one is rejected with [`LastEventIdRejection::Missing`] (`400 Bad Request`).
impl<S: Send + Sync> FromRequestParts<S> for LastEventId {
    type Rejection = LastEventIdRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        resolve(parts)?.ok_or(LastEventIdRejection::Missing)
    }
}
