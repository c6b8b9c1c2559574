//! Helpers shared by the integration tests, a module per concern. Each file of `tests/` is
//! a crate of its own and uses only some of them, so unused ones are no warning here.
#![allow(dead_code)]

pub mod app_server;
pub mod chat;
pub mod client;
pub mod decoded;
pub mod rss;
pub mod wait;

use std::error::Error;
use std::net::SocketAddr;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::task::JoinHandle;
use tower::Service;
use tower_sse::CancellationToken;
use tower_sse::decode::{DecodedEvent, decode_all};

/// A boxed error, for test functions that use `?`.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The `(type, data)` pairs of the events a client decodes from `bytes`.
pub fn events_of(bytes: &[u8]) -> Vec<(String, String)> {
    decode_all(bytes)
        .expect("the stream decodes within the default limits")
        .into_iter()
        .map(
            |DecodedEvent {
                 event_type, data, ..
             }| (event_type, data),
        )
        .collect()
}

/// `(type, data)` pairs from string literals, to compare with [`events_of`].
pub fn expected(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(t, d)| ((*t).to_owned(), (*d).to_owned()))
        .collect()
}

/// `<prefix>-<16 random hex digits>`: a name no other test run uses (Redis key prefixes).
pub fn unique_name(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("random bytes");
    format!("{prefix}-{:016x}", u64::from_le_bytes(bytes))
}

/// A server on 127.0.0.1 with an OS-chosen port.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancelling it stops accepting and starts a graceful shutdown of every connection.
    pub stop: CancellationToken,
    /// Ends once the graceful shutdown has completed (every connection closed).
    pub task: JoinHandle<()>,
}

/// Serves `service` over HTTP/1.1 and HTTP/2 (h2c with prior knowledge), as in
/// `examples/hello_hyper.rs`, until `stop` is cancelled; then waits for
/// `GracefulShutdown::shutdown`.
pub async fn serve<S, B>(service: S) -> TestServer
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let listener = app_server::loopback_listener().await;
    let addr = listener.local_addr().expect("local address");
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let service = TowerToHyperService::new(service.clone());
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        // A client that goes away mid-stream is an error here; not a test failure.
                        let _ = connection.await;
                    });
                }
                () = stopped.cancelled() => break,
            }
        }
        drop(listener);
        graceful.shutdown().await;
    });
    TestServer { addr, stop, task }
}
