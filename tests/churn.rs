//! Churn soak: many connect / subscribe / disconnect cycles through a real server on
//! 127.0.0.1, while events are published. Afterwards no subscription is left and the
//! process's memory is back near its warm level.
//!
//! The default is 20,000 cycles (a second or two in release mode). The long mode is
//! 100,000, or any number above the 1,000 warm-up cycles:
//!
//! ```text
//! TOWER_SSE_CHURN_CYCLES=100000 cargo test --release --test churn -- --nocapture
//! ```
//!
//! Half the cycles close normally, so the client side leaves a socket in `TIME_WAIT` for each
//! (60 s on Linux), all from 127.0.0.1 to one port: beyond about 28,000 of them
//! (`net.ipv4.ip_local_port_range`) new connections need `net.ipv4.tcp_tw_reuse` at 1 or 2
//! (2, reuse on loopback, is the default since Linux 5.7). The other half reset the
//! connection (`SO_LINGER` 0), which leaves nothing behind.
//!
//! Memory is the resident set of this process (server and clients live here), `VmRSS` of
//! `/proc/self/status`, read once after a warm-up round and once at the end, both times when
//! no connection is open. It may end at most 10 % plus 2 MiB above the warm level. The
//! allocator keeps freed memory for reuse and in per-thread pools, and which thread serves a
//! connection varies, so two readings of a healthy process differ by some hundreds of KiB;
//! the slack absorbs that, while a leak of even a few dozen bytes per cycle stands out over
//! 100,000 cycles. Each cycle and each wait is bounded by a timeout that only guards against
//! a hang; nothing is asserted about time.

mod support;

use support::rss::mib;
use support::wait::{GUARD, guarded, wait_until};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::service_fn;
use tower_sse::hub::{Hub, HubError};
use tower_sse::{Event, Sse, SseBody, Subscription};

use support::serve;

/// The number of cycles unless `TOWER_SSE_CHURN_CYCLES` says otherwise.
const DEFAULT_CYCLES: usize = 20_000;
const CYCLES_ENV: &str = "TOWER_SSE_CHURN_CYCLES";
/// Cycles of the warm-up round, before the reference reading.
const WARM_UP_CYCLES: usize = 1_000;
/// Cycles in flight at once.
const CONCURRENCY: usize = 32;
/// Topics the clients spread over; each is kept full.
const TOPICS: usize = 64;
const RING: usize = 64;
/// Every this many cycles, one event is published to the cycle's topic.
const PUBLISH_EVERY: usize = 4;

/// The resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    support::rss::rss_bytes().expect("VmRSS in /proc/self/status")
}

fn cycles() -> usize {
    match std::env::var(CYCLES_ENV) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{CYCLES_ENV}={text:?} is not a number")),
        Err(_) => DEFAULT_CYCLES,
    }
}

fn event(cycle: usize) -> Event {
    Event::new()
        .event("churn")
        .expect("a valid type")
        .data(format!("cycle {cycle} {}", "x".repeat(200)))
}

/// `GET /events/<topic>`: a subscription to `churn:<topic>`, announced by an opening comment
/// so that the client knows it is live.
async fn handle(
    hub: Hub,
    req: Request<Incoming>,
) -> Result<Response<SseBody<Subscription>>, HubError> {
    let topic = req
        .uri()
        .path()
        .strip_prefix("/events/")
        .unwrap_or("0")
        .to_owned();
    let subscription = hub.subscribe([format!("churn:{topic}")], None)?;
    Ok(Sse::new(subscription).open_comment("live").into_response())
}

/// One cycle: connect, subscribe, wait for the stream to be live, go away. Even cycles
/// close normally, odd ones reset the connection (`SO_LINGER` 0).
async fn cycle(addr: SocketAddr, index: usize) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET /events/{} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n",
        index % TOPICS
    );
    stream.write_all(request.as_bytes()).await?;
    let mut seen = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !seen.windows(7).any(|w| w == b": live\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&buf[..n]);
        if seen.len() > 64 * 1024 {
            return Err(std::io::Error::other("no opening comment"));
        }
    }
    if !seen.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::Error::other("not 200"));
    }
    if index % 2 == 1 {
        stream.set_zero_linger()?;
    }
    drop(stream);
    Ok(())
}

/// Runs cycles `range` with `CONCURRENCY` in flight, publishing as it goes; returns the
/// number of cycles that failed.
async fn run(addr: SocketAddr, hub: &Hub, range: std::ops::Range<usize>) -> usize {
    let next = Arc::new(AtomicUsize::new(range.start));
    let failed = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let next = Arc::clone(&next);
            let failed = Arc::clone(&failed);
            let hub = hub.clone();
            let end = range.end;
            tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        break;
                    }
                    match tokio::time::timeout(GUARD, cycle(addr, index)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => {
                            if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("cycle {index}: {err}");
                            }
                        }
                        Err(_) => panic!("cycle {index}: nothing after {GUARD:?}"),
                    }
                    if index % PUBLISH_EVERY == 0 {
                        hub.publish_now(format!("churn:{}", index % TOPICS), event(index))
                            .expect("publish");
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("the worker does not panic");
    }
    failed.load(Ordering::Relaxed)
}

/// Waits until the hub has no subscriber left.
async fn drained(hub: &Hub) {
    wait_until("every subscription released", || {
        hub.stats().subscribers == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_leaves_no_subscriber_and_memory_returns_to_its_warm_level() {
    let cycles = cycles();
    assert!(
        cycles > WARM_UP_CYCLES,
        "{CYCLES_ENV} must be above the {WARM_UP_CYCLES} warm-up cycles"
    );
    let hub = Hub::builder().capacity(RING).build();
    let handler = hub.clone();
    let server = serve(service_fn(move |req| handle(handler.clone(), req))).await;
    // Fill every ring first, so that the rings weigh the same at both readings.
    for topic in 0..TOPICS {
        for n in 0..RING {
            hub.publish_now(format!("churn:{topic}"), event(n))
                .expect("publish");
        }
    }
    let full = hub.stats();

    let started = Instant::now();
    let failed = run(server.addr, &hub, 0..WARM_UP_CYCLES).await;
    assert_eq!(failed, 0, "warm-up cycles failed");
    drained(&hub).await;
    let warm = rss_bytes();
    let warm_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let failed = run(server.addr, &hub, WARM_UP_CYCLES..cycles).await;
    assert_eq!(failed, 0, "cycles failed");
    drained(&hub).await;
    let end = rss_bytes();
    let soak_secs = started.elapsed().as_secs_f64();

    let stats = hub.stats();
    println!(
        "{cycles} cycles ({WARM_UP_CYCLES} warm-up in {warm_secs:.1} s, then {} in \
         {soak_secs:.1} s, {:.0} per s), {CONCURRENCY} at once",
        cycles - WARM_UP_CYCLES,
        (cycles - WARM_UP_CYCLES) as f64 / soak_secs.max(1e-9)
    );
    println!(
        "RSS warm {:.2} MiB, end {:.2} MiB ({:+.2} MiB); hub {stats:?}",
        mib(warm),
        mib(end),
        mib(end) - mib(warm)
    );

    assert_eq!(stats.subscribers, 0);
    // The rings were full throughout: eviction kept each at its capacity.
    assert_eq!(stats.events_held, full.events_held);
    assert_eq!(stats.topics, TOPICS);
    let limit = warm + warm / 10 + 2 * 1024 * 1024;
    assert!(
        end <= limit,
        "RSS grew from {:.2} MiB (warm) to {:.2} MiB, above {:.2} MiB",
        mib(warm),
        mib(end),
        mib(limit)
    );

    server.stop.cancel();
    guarded("server shutdown", server.task)
        .await
        .expect("the server task does not panic");
}
