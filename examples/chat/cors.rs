//! Cross-origin access for the pages of the other instances (`Config::peers`).
//!
//! A page served by one instance talks to another when it fails over: its `EventSource`
//! (`withCredentials: true`) and its `fetch` calls (`credentials: 'include'`) then go to
//! another origin with the session cookie. Instances on the same host differ only by port:
//! that is one site, and cookies ignore ports, so the one `SameSite=Strict` cookie serves
//! every instance. What the browser still needs is CORS: `Access-Control-Allow-Origin` set
//! to the exact origin of the page (only a configured peer, never `*`),
//! `Access-Control-Allow-Credentials: true`, and answers to the preflights of JSON posts.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for `peers` (checked origins), or `None` without peers.
pub fn layer(peers: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = peers
        .iter()
        .filter_map(|peer| match HeaderValue::from_str(peer) {
            Ok(value) => Some(value),
            Err(_) => {
                tracing::warn!(peer, "not a valid origin; ignored");
                None
            }
        })
        .collect();
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("last-event-id"),
        ])
        .max_age(Duration::from_secs(600));
    Some(layer)
}
