//! SSE from an axum handler, with the `Last-Event-ID` extractor and `SseLayer`.
//!
//! ```text
//! cargo run --example axum            # http://127.0.0.1:3001
//! cargo run --example axum -- --addr 127.0.0.1:8080
//! ```
//!
//! `GET /ticks?count=N&interval_ms=M&retry_ms=R` sends `tick` events numbered from one past the
//! client's `Last-Event-ID` (or 1), one every `interval_ms` (default 1000), and ends the
//! stream after `count` of them if given, so the browser reconnects and resumes. Each event's
//! data says which id the request resumed from. `GET /` is a page that shows the ticks.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tower_sse::layer::SseLayer;
use tower_sse::{CancellationToken, Event, LastEventId, Sse};

/// The query of `GET /ticks`.
#[derive(Debug, Deserialize)]
pub struct TickParams {
    count: Option<u64>,
    interval_ms: Option<u64>,
    retry_ms: Option<u64>,
}

/// The router, with a shutdown token that is never cancelled.
pub fn app() -> Router {
    app_with(CancellationToken::new())
}

/// The router; cancelling `shutdown` ends every open stream at an event boundary.
pub fn app_with(shutdown: CancellationToken) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/ticks", get(ticks))
        .layer(SseLayer::new().shutdown(shutdown))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn ticks(
    last_event_id: Option<LastEventId>,
    Query(params): Query<TickParams>,
) -> impl IntoResponse {
    let resumed_from = last_event_id.map(|id| id.as_str().to_owned());
    // A non-numeric id (say, from another server) starts again from 1.
    let last: u64 = resumed_from
        .as_deref()
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let interval = Duration::from_millis(params.interval_ms.unwrap_or(1000).max(1));
    let mut sse = Sse::new(tick_stream(last, params.count, interval, resumed_from));
    if let Some(retry) = params.retry_ms {
        sse = sse.retry(Duration::from_millis(retry));
    }
    sse
}

fn tick_stream(
    last: u64,
    count: Option<u64>,
    interval: Duration,
    resumed_from: Option<String>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let numbers = (last.saturating_add(1)..).take(count.unwrap_or(u64::MAX) as usize);
    futures::stream::iter(numbers).then(move |n| {
        let data = serde_json::json!({ "n": n, "last_event_id": resumed_from });
        async move {
            tokio::time::sleep(interval).await;
            // "tick" has no line break, so the type is always accepted.
            let event = Event::new().event("tick").unwrap_or_default();
            Ok(event.id_u64(n).data(data.to_string()))
        }
    })
}

const PAGE: &str = r#"<!doctype html>
<meta charset="utf-8">
<title>tower-sse ticks</title>
<h1>Ticks</h1>
<ol id="log"></ol>
<script>
  const source = new EventSource('/ticks');
  source.addEventListener('tick', (e) => {
    const li = document.createElement('li');
    li.textContent = `id ${e.lastEventId}: ${e.data}`;
    document.getElementById('log').append(li);
  });
</script>
"#;

#[allow(dead_code)]
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .skip_while(|arg| arg != "--addr")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);

    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    axum::serve(listener, app_with(shutdown))
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            // Ends every open stream at an event boundary, so the shutdown completes.
            signal.cancel();
        })
        .await
}
