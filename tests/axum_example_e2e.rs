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
mod e2e;
mod support;

use tower_sse::CancellationToken;

use support::app_server::{AppServer, loopback_listener};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium and the node packages in tests/e2e: run bash .ci/run"]
async fn chromium_resumes_ticks_with_last_event_id() {
    e2e::require_node_packages(&["playwright-core"]);
    e2e::require_chromium();
    let server = AppServer::axum(
        loopback_listener().await,
        CancellationToken::new(),
        axum_example::app(),
    );

    e2e::run_script("axum_ticks.mjs", &server.base_url()).await;

    // The browser is gone, so no stream is left open: the shutdown completes.
    server.stop().await;
}
