//! The web page: plain HTML, CSS and JavaScript compiled into the binary.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};
use axum::response::{IntoResponse, Response};

use super::chat::Chat;

const INDEX_HTML: &str = include_str!("static/index.html");
const APP_JS: &str = include_str!("static/app.js");
const STYLE_CSS: &str = include_str!("static/style.css");

/// The page's Content-Security-Policy: scripts and styles only from this origin, no inline
/// script or style; connections (`fetch`, `EventSource`) to this origin and to `peers`, the
/// other instances of the chat (origins checked by `config::parse_origin`).
pub fn content_security_policy(peers: &[String]) -> String {
    let mut connect = String::from("'self'");
    for peer in peers {
        connect.push(' ');
        connect.push_str(peer);
    }
    format!(
        "default-src 'self'; connect-src {connect}; img-src 'self' data:; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
}

fn asset(chat: &Chat, content_type: &'static str, body: &'static str) -> Response {
    let csp = content_security_policy(&chat.config().peers);
    // Peers are checked origins, so the value is a valid header; refuse to serve otherwise.
    let Ok(csp) = HeaderValue::from_str(&csp) else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let headers: [(HeaderName, HeaderValue); 5] = [
        (CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static("content-security-policy"), csp),
        (
            HeaderName::from_static("x-content-type-options"),
            HeaderValue::from_static("nosniff"),
        ),
        (
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    (headers, body).into_response()
}

/// `GET /`: the page.
pub async fn index(State(chat): State<Chat>) -> Response {
    asset(&chat, "text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /app.js`.
pub async fn app_js(State(chat): State<Chat>) -> Response {
    asset(&chat, "text/javascript; charset=utf-8", APP_JS)
}

/// `GET /style.css`.
pub async fn style_css(State(chat): State<Chat>) -> Response {
    asset(&chat, "text/css; charset=utf-8", STYLE_CSS)
}
