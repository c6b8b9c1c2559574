//! The axum example serves HTTP/2 cleartext (prior knowledge) as well as HTTP/1.1: SSE
//! streams over h2c carry the events and no hop-by-hop header.

#[path = "../examples/axum.rs"]
#[allow(dead_code)]
mod axum_example;

use std::future::IntoFuture;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tower_sse::CancellationToken;
use tower_sse::decode::decode_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_example_streams_over_h2c() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, axum_example::app_with(shutdown.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );

    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);

    let mut streams = Vec::new();
    for last in [0u64, 10, 20] {
        let request = http::Request::get(format!("http://{addr}/ticks?count=3&interval_ms=1"))
            .header("last-event-id", last.to_string())
            .body(Empty::<Bytes>::new())
            .expect("request");
        streams.push((last, sender.send_request(request)));
    }
    for (last, response) in streams {
        let response = tokio::time::timeout(Duration::from_secs(30), response)
            .await
            .expect("response in time")
            .expect("response");
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        for name in ["connection", "keep-alive", "transfer-encoding", "upgrade"] {
            assert!(response.headers().get(name).is_none(), "{name}");
        }
        let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        let events = decode_all(&body).expect("decodable");
        let ids: Vec<String> = events.iter().map(|e| e.last_event_id.clone()).collect();
        let expected: Vec<String> = (last + 1..=last + 3).map(|n| n.to_string()).collect();
        assert_eq!(ids, expected);
        assert!(events.iter().all(|e| e.event_type == "tick"));
    }

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("graceful shutdown completes")
        .expect("server task")
        .expect("server");
}
