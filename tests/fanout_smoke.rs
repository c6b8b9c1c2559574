//! The fan-out benchmark's core on a tiny scale: both servers in this process, 20 clients over
//! real sockets on 127.0.0.1, one second of publishing. Asserts that every client received
//! every message from both servers; no timing is asserted.

#[allow(dead_code)]
#[path = "../examples/fanout_bench/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../examples/fanout_bench/control.rs"]
mod control;
#[allow(dead_code)]
#[path = "../examples/fanout_bench/histogram.rs"]
mod histogram;
#[allow(dead_code)]
#[path = "../examples/fanout_bench/procfs.rs"]
mod procfs;
#[allow(dead_code)]
#[path = "../examples/fanout_bench/scenario.rs"]
mod scenario;
#[allow(dead_code)]
#[path = "../examples/fanout_bench/server.rs"]
mod server;

use std::time::Duration;

use control::ServerHandle;
use scenario::ClientPlan;
use server::{Kind, Publish};

const CLIENTS: usize = 20;

async fn run(kind: Kind, publish: Publish) -> scenario::Outcome {
    let mut server = ServerHandle::in_process(kind, 1024).await.unwrap();
    let plan = ClientPlan {
        clients: CLIENTS,
        sources: Vec::new(),
        opening: 8,
        connect_timeout: Duration::from_secs(30),
    };
    let outcome = scenario::fanout(&mut server, kind, &plan, publish, true)
        .await
        .unwrap();
    server.stop().await;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_servers_deliver_every_message_at_a_fixed_rate() {
    let publish = Publish {
        rate: 50,
        duration: Duration::from_secs(1),
        burst: 1,
    };
    for kind in [Kind::Tower, Kind::Axum] {
        let outcome = tokio::time::timeout(Duration::from_secs(60), run(kind, publish))
            .await
            .expect("the run finishes");
        assert_eq!(outcome.connected, CLIENTS as u64, "{kind:?}");
        assert_eq!(outcome.published.count, 50, "{kind:?}");
        assert_eq!(outcome.expected, 50 * CLIENTS as u64, "{kind:?}");
        assert_eq!(outcome.delivered, outcome.expected, "{kind:?}");
        assert_eq!(outcome.lost, 0, "{kind:?}");
        assert_eq!(outcome.resets, 0, "{kind:?}");
        // One latency sample per delivery, so the percentiles are over every message.
        assert!(
            outcome.p50_us.is_some() && outcome.p99_us >= outcome.p50_us,
            "{kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_servers_deliver_a_faster_stream_without_loss() {
    // 200 messages at 1,000 msg/s, well inside both rings (1024 events): every client must get
    // each of them exactly once.
    let publish = Publish {
        rate: 1_000,
        duration: Duration::from_millis(200),
        burst: 1,
    };
    for kind in [Kind::Tower, Kind::Axum] {
        let outcome = tokio::time::timeout(Duration::from_secs(60), run(kind, publish))
            .await
            .expect("the run finishes");
        assert_eq!(outcome.published.count, 200, "{kind:?}");
        assert_eq!(outcome.delivered, 200 * CLIENTS as u64, "{kind:?}");
        assert_eq!(outcome.lost, 0, "{kind:?}");
    }
}
