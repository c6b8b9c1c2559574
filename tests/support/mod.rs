//! Helpers shared by the layer and server integration tests.
#![allow(dead_code)]

use std::error::Error;
use std::net::SocketAddr;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
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
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
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

/// How long a real-socket test waits for one step before failing instead of hanging. Only a
/// guard: no test asserts a duration.
pub const GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// `future`'s output, or a test failure naming `what` if nothing came within [`GUARD`].
pub async fn guarded<F: std::future::Future>(what: &str, future: F) -> F::Output {
    guarded_for(GUARD, what, future).await
}

/// [`guarded`] with another limit.
pub async fn guarded_for<F: std::future::Future>(
    limit: std::time::Duration,
    what: &str,
    future: F,
) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: nothing after {limit:?}"),
    }
}

/// Splits `bytes` at the given points (taken modulo its length + 1), for feeding a decoder in
/// arbitrary chunks.
pub fn split_at_points<'a>(bytes: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = points.iter().map(|p| p % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points {
        chunks.push(&bytes[start..p]);
        start = p;
    }
    chunks.push(&bytes[start..]);
    chunks
}
