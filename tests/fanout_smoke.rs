//! The fan-out benchmark's core on a tiny scale: both servers in this process, 20 clients over
//! real sockets on 127.0.0.1, one second of publishing. Asserts that every client received
//! every message from both servers; no timing is asserted. With the `redis` feature (and
//! Redis on 127.0.0.1:6379), the Redis scenario too: two instances of a hub over Redis.

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
#[path = "../examples/fanout_bench/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../examples/fanout_bench/paired.rs"]
mod paired;
#[allow(dead_code)]
#[path = "../examples/fanout_bench/procfs.rs"]
mod procfs;
#[cfg(feature = "redis")]
#[allow(dead_code)]
#[path = "../examples/fanout_bench/redis_mode.rs"]
mod redis_mode;
#[allow(dead_code)]
#[path = "../examples/fanout_bench/report.rs"]
mod report;
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
    let mut server = ServerHandle::in_process(kind, 1024, None).await.unwrap();
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
    let publish = Publish::new(50, Duration::from_secs(1), 1);
    for kind in [Kind::Tower, Kind::Axum] {
        let outcome = tokio::time::timeout(Duration::from_secs(60), run(kind, publish))
            .await
            .expect("the run finishes");
        assert_eq!(outcome.connected, CLIENTS as u64, "{kind:?}");
        assert_eq!(outcome.published.count, 50, "{kind:?}");
        assert_eq!(outcome.expected, 50 * CLIENTS as u64, "{kind:?}");
        assert_eq!(outcome.delivered, outcome.expected, "{kind:?}");
        assert_eq!(outcome.lost, 0, "{kind:?}");
        assert_eq!(outcome.duplicates, 0, "{kind:?}");
        assert_eq!(outcome.resets, 0, "{kind:?}");
        // Latency was measured (the publish time is read from each delivered message).
        assert!(
            outcome.p50_us.is_some() && outcome.p99_us.is_some(),
            "{kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_servers_deliver_a_faster_stream_without_loss() {
    // 200 messages at 1,000 msg/s, well inside both rings (1024 events): every client must get
    // each of them exactly once.
    let publish = Publish::new(1_000, Duration::from_millis(200), 1);
    for kind in [Kind::Tower, Kind::Axum] {
        let outcome = tokio::time::timeout(Duration::from_secs(60), run(kind, publish))
            .await
            .expect("the run finishes");
        assert_eq!(outcome.published.count, 200, "{kind:?}");
        assert_eq!(outcome.delivered, 200 * CLIENTS as u64, "{kind:?}");
        assert_eq!(outcome.lost, 0, "{kind:?}");
    }
}

/// The paired scenario: both servers up at once, 10 clients each, publishing in turn in two
/// pairs of windows. Each server's sequence continues from window to window, so every message
/// of every window is new to its clients: nothing lost, nothing counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paired_windows_alternate_and_deliver_every_message() {
    let mut tower = ServerHandle::in_process(Kind::Tower, 1024, None)
        .await
        .unwrap();
    let mut axum = ServerHandle::in_process(Kind::Axum, 1024, None)
        .await
        .unwrap();
    let plan = ClientPlan {
        clients: 10,
        sources: Vec::new(),
        opening: 8,
        connect_timeout: Duration::from_secs(30),
    };
    let window = Duration::from_millis(300);
    let run = tokio::time::timeout(
        Duration::from_secs(120),
        paired::run(&mut tower, &mut axum, &plan, 100, window, 2),
    )
    .await
    .expect("the run finishes")
    .unwrap();
    tower.stop().await;
    axum.stop().await;

    assert_eq!(run.connected, 20);
    let kinds: Vec<Kind> = run.windows.iter().map(|w| w.kind).collect();
    assert_eq!(kinds, [Kind::Tower, Kind::Axum, Kind::Axum, Kind::Tower]);
    for w in &run.windows {
        // 100 msg/s for 0.3 s to each of the 10 clients of the publishing server.
        assert_eq!(w.expected, 30 * 10, "{w:?}");
        assert_eq!(w.delivered, w.expected, "{w:?}");
        // In this process the servers' CPU cannot be told from the clients'.
        assert_eq!(w.cpu, None);
    }
    assert_eq!(run.duplicates, 0);
    assert_eq!(run.reconnects, 0);
    assert_eq!(run.ratio(), None);
    assert!(paired::report(&run).contains("| messages lost | 0 | 0 | |"));
}

/// Two instances of a hub over Redis (in this process) with 5 clients each, 200 msg/s for
/// 0.5 s published through both in turn, and one in-memory hub with the same 10 clients:
/// every client gets every message exactly once, and the run's keys are gone afterwards.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_instances_deliver_every_message_once() {
    const REDIS: &str = "redis://127.0.0.1:6379";
    let plan = redis_mode::RedisPlan {
        url: REDIS.to_owned(),
        instances: 2,
        clients: ClientPlan {
            clients: 5,
            sources: Vec::new(),
            opening: 8,
            connect_timeout: Duration::from_secs(30),
        },
        rate: 200,
        duration: Duration::from_millis(500),
        publish_via_all: true,
        capacity: 1024,
        in_process: true,
    };
    let run = tokio::time::timeout(Duration::from_secs(120), redis_mode::run(&plan))
        .await
        .expect("the run finishes")
        .expect("the run starts (is Redis up on 127.0.0.1:6379?)");

    let redis = &run.redis;
    assert_eq!(redis.instances, 2);
    assert_eq!(redis.connected, 10);
    assert_eq!(redis.published.count, 100);
    // Both instances published: message 1 through the first, 2 through the second, ...
    assert_eq!(redis.published_by, vec![50, 50]);
    assert_eq!(redis.expected, 100 * 10);
    assert_eq!(redis.delivered, redis.expected, "{redis:?}");
    assert_eq!(redis.lost, 0);
    assert_eq!(redis.duplicates, 0);
    assert_eq!(redis.resets, 0);
    assert!(redis.p50_us.is_some() && redis.p99_us >= redis.p50_us);

    let memory = &run.memory;
    assert_eq!(memory.instances, 1);
    assert_eq!(memory.connected, 10);
    assert_eq!(memory.published_by, vec![100]);
    assert_eq!(memory.delivered, 100 * 10, "{memory:?}");
    assert_eq!(memory.lost, 0);
    assert_eq!(memory.duplicates, 0);

    // The stream existed (one key) and was deleted; nothing of the prefix is left.
    assert_eq!(run.keys_deleted, Ok(1));
    let mut keys = redis_mode::Keys::new(REDIS, &run.prefix);
    assert_eq!(keys.delete(), Ok(0));
}
