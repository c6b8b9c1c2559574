//! The axum example serves HTTP/2 cleartext (prior knowledge) as well as HTTP/1.1: SSE
//! streams over h2c carry the events and no hop-by-hop header.

#[path = "../examples/axum.rs"]
#[allow(dead_code)]
mod axum_example;

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use tower_sse::CancellationToken;
use tower_sse::decode::decode_all;

use support::app_server::{AppServer, loopback_listener};
use support::client::http2;
use support::wait::guarded;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_example_streams_over_h2c() {
    let shutdown = CancellationToken::new();
    let app = axum_example::app_with(shutdown.clone());
    let server = AppServer::axum(loopback_listener().await, shutdown, app);
    let addr = server.addr;
    let mut sender = http2(addr).await;

    let mut streams = Vec::new();
    for last in [0u64, 10, 20] {
        let request = http::Request::get(format!("http://{addr}/ticks?count=3&interval_ms=1"))
            .header("last-event-id", last.to_string())
            .body(Empty::<Bytes>::new())
            .expect("request");
        streams.push((last, sender.send_request(request)));
    }
    for (last, response) in streams {
        let response = guarded("response", response).await.expect("response");
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        for name in ["connection", "keep-alive", "transfer-encoding", "upgrade"] {
            assert!(response.headers().get(name).is_none(), "{name}");
        }
        let body = guarded("body", response.into_body().collect())
            .await
            .expect("body")
            .to_bytes();
        let events = decode_all(&body).expect("decodable");
        let ids: Vec<String> = events.iter().map(|e| e.last_event_id.clone()).collect();
        let expected: Vec<String> = (last + 1..=last + 3).map(|n| n.to_string()).collect();
        assert_eq!(ids, expected);
        assert!(events.iter().all(|e| e.event_type == "tick"));
    }

    server.stop().await;
}
