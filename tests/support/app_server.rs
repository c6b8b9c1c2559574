//! An application served on a loopback socket by a task of the test, as the examples' `main`
//! serves it, and stopped gracefully.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_sse::CancellationToken;

use super::wait::guarded;

/// A listener on 127.0.0.1 with a port the system picks.
pub async fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

/// A served application.
pub struct AppServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancelling it starts the graceful shutdown.
    pub shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl AppServer {
    /// Runs `serving`, which serves on `addr` until `shutdown` is cancelled and then ends
    /// once every connection has closed.
    pub fn spawn(
        addr: SocketAddr,
        shutdown: CancellationToken,
        serving: impl Future<Output = std::io::Result<()>> + Send + 'static,
    ) -> AppServer {
        AppServer {
            addr,
            shutdown,
            task: tokio::spawn(serving),
        }
    }

    /// Serves `app` with `axum::serve` on `listener` until `shutdown` is cancelled.
    pub fn axum(
        listener: TcpListener,
        shutdown: CancellationToken,
        app: axum::Router,
    ) -> AppServer {
        let addr = listener.local_addr().expect("local address");
        let serving = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future();
        AppServer::spawn(addr, shutdown, serving)
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down gracefully; fails the test unless every connection closes (a stream that
    /// does not end would hang it) and the server ends without an error. Returns where it
    /// listened.
    pub async fn stop(self) -> SocketAddr {
        self.shutdown.cancel();
        let served = guarded("graceful shutdown: every connection closes", self.task).await;
        served.expect("server task").expect("server");
        self.addr
    }
}
