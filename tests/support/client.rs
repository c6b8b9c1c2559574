//! HTTP client connections to a test's server on a loopback socket.

use std::net::SocketAddr;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::BoxError;
use super::wait::guarded;

/// An HTTP/1.1 connection; the task drives it and owns the socket (abort it to disconnect).
pub async fn http1<B>(addr: SocketAddr) -> (http1::SendRequest<B>, JoinHandle<()>)
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = http1::handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/1.1 handshake");
    let task = tokio::spawn(async move {
        // A connection the test drops or the server closes mid-stream is not a failure.
        let _ = connection.await;
    });
    (sender, task)
}

/// An HTTP/2 connection with prior knowledge (h2c).
pub async fn http2<B>(addr: SocketAddr) -> http2::SendRequest<B>
where
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
}

/// `request`'s response, over a fresh HTTP/1.1 connection of its own.
pub async fn send<B>(addr: SocketAddr, request: Request<B>) -> Response<Incoming>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let (mut sender, _connection) = http1(addr).await;
    guarded("a response", sender.send_request(request))
        .await
        .expect("a response")
}
