//! The axum example (examples/axum.rs) in headless Chromium: the browser reconnects with
//! `Last-Event-ID` each time the server ends a `/ticks` stream.
//!
//! ```text
//! bash .ci/run      # installs Chromium and the node packages, then runs everything
//! cargo test --all-features --test axum_example_e2e -- --include-ignored --nocapture
//! ```

#[path = "../examples/axum.rs"]
#[allow(dead_code)]
mod axum_example;
#[path = "e2e/support.rs"]
#[allow(dead_code)]
mod support;

use std::future::IntoFuture;
use std::time::Duration;

use tokio::net::TcpListener;
use tower_sse::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the node packages in tests/e2e: run bash .ci/run"]
async fn chromium_resumes_ticks_with_last_event_id() {
    support::require_node_packages(&["playwright-core"]);
    support::require_chromium();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("local addr"));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, axum_example::app())
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );

    support::run_script("axum_ticks.mjs", &base).await;

    // The browser is gone, so no stream is left open: the shutdown completes.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("graceful shutdown in time")
        .expect("server task")
        .expect("server");
}
