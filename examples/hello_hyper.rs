//! SSE on plain hyper 1 (no axum): a ticking stream through `SseLayer`, served over HTTP/1.1
//! and HTTP/2 cleartext (h2c) with graceful shutdown.
//!
//! ```text
//! cargo run --example hello_hyper     # http://127.0.0.1:3002/events
//! curl -N http://127.0.0.1:3002/events
//! curl -N --http2-prior-knowledge http://127.0.0.1:3002/events
//! ```

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_sse::layer::SseLayer;
use tower_sse::{CancellationToken, Event, LastEventId, Sse, SseBody};

type Ticks = std::pin::Pin<Box<dyn Stream<Item = Event> + Send>>;

/// One event a second, numbered from one past the client's `Last-Event-ID`.
fn ticks(after: u64) -> Ticks {
    let stream = futures::stream::iter(after.saturating_add(1)..).then(|n| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Event::new().id_u64(n).data(format!("tick {n}"))
    });
    Box::pin(stream)
}

async fn handle(
    req: Request<Incoming>,
) -> Result<Response<Either<SseBody<Ticks>, Full<Bytes>>>, Infallible> {
    if req.uri().path() != "/events" {
        let mut response = Response::new(Either::Right(Full::from("try /events\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    // SseLayer has put the parsed Last-Event-ID in the extensions.
    let after = req
        .extensions()
        .get::<LastEventId>()
        .and_then(|id| id.as_str().parse().ok())
        .unwrap_or(0);
    let response = Sse::new(ticks(after))
        .retry(Duration::from_secs(2))
        .into_response();
    Ok(response.map(Either::Left))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .skip_while(|arg| arg != "--addr")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3002".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}/events", listener.local_addr()?);

    let shutdown = CancellationToken::new();
    let service = ServiceBuilder::new()
        .layer(SseLayer::new().shutdown(shutdown.clone()))
        .service_fn(handle);
    let graceful = GracefulShutdown::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let service = TowerToHyperService::new(service.clone());
                let builder = auto::Builder::new(TokioExecutor::new());
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        eprintln!("connection error: {err}");
                    }
                });
            }
            _ = &mut ctrl_c => break,
        }
    }
    // End every stream at an event boundary, then wait for the connections to close.
    shutdown.cancel();
    graceful.shutdown().await;
    println!("all connections closed");
    Ok(())
}
