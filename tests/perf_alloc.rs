//! The per-connection cost of a delivery, counted with dhat's allocator: once a hub event is
//! published, sending it to each connection through `SseBody<Subscription>` allocates nothing
//! for a connection following one topic and one block for a connection following several;
//! a burst costs its copy-out buffer and the joined frame, whatever its length.
//!
//! Counted in a `main` of its own (`harness = false` in `Cargo.toml`): dhat counts the whole
//! process, and libtest's main thread allocates its bookkeeping while a test has started,
//! which once added four blocks to a count. Here nothing else runs.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::Body;
use tower_sse::hub::{Hub, Subscription};
use tower_sse::{Event, SseBody};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Heap blocks allocated so far.
fn blocks() -> u64 {
    dhat::HeapStats::get().total_blocks
}

type Connection = Pin<Box<SseBody<Subscription>>>;

/// Polls `body` once: its data frame, or `None` when pending.
fn poll(body: &mut Connection) -> Option<Bytes> {
    let mut cx = Context::from_waker(Waker::noop());
    match body.as_mut().poll_frame(&mut cx) {
        Poll::Ready(Some(Ok(frame))) => Some(frame.into_data().expect("a data frame")),
        Poll::Ready(other) => panic!("unexpected {:?}", other.map(|r| r.map(|_| ()))),
        Poll::Pending => None,
    }
}

fn main() {
    // `cargo test` passes its arguments (such as `--include-ignored`); there is one check.
    delivering_a_published_event_allocates_nothing_per_connection();
    println!("perf_alloc: delivering a published event allocates nothing per connection: ok");
}

fn delivering_a_published_event_allocates_nothing_per_connection() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let hub = Hub::new();
    let mut connections: Vec<Connection> = (0..16)
        .map(|_| Box::pin(SseBody::new(hub.subscribe(["t"], None).unwrap())))
        .collect();
    // The first poll arms the keep-alive timer, held inline.
    for body in &mut connections {
        assert_eq!(poll(body), None);
    }

    for round in 0..3 {
        let id = hub
            .publish_now("t", Event::new().data(format!("one {round}")))
            .unwrap();
        let expected = format!("data: one {round}\nid: {id}\n\n");
        let before = blocks();
        for body in &mut connections {
            let frame = poll(body).expect("the event");
            assert_eq!(frame, expected.as_bytes());
            assert_eq!(poll(body), None, "nothing more");
        }
        assert_eq!(blocks() - before, 0, "one event per wake-up, round {round}");
    }

    // A connection following two topics merges them in id order, so it buffers what it
    // reads: one block for a single event, not more.
    let mut merged: Vec<Connection> = (0..16)
        .map(|_| Box::pin(SseBody::new(hub.subscribe(["t", "u"], None).unwrap())))
        .collect();
    for body in &mut merged {
        assert_eq!(poll(body), None);
    }
    for topic in ["t", "u", "u"] {
        hub.publish_now(topic, Event::new().data(topic)).unwrap();
        let expected = format!("data: {topic}\n");
        let before = blocks();
        for body in &mut merged {
            let frame = poll(body).expect("the event");
            assert!(frame.starts_with(expected.as_bytes()));
            assert_eq!(poll(body), None, "nothing more");
        }
        assert_eq!(
            blocks() - before,
            merged.len() as u64,
            "one block per connection, topic {topic}"
        );
        for body in &mut connections {
            if topic == "t" {
                assert!(poll(body).is_some());
            }
            assert_eq!(poll(body), None);
        }
    }
    drop(merged);

    // A burst is copied out of the ring under one lock and sent as one frame: a few blocks
    // per connection (the copy-out buffer, the joined frame), not one per event.
    let mut per_burst = Vec::new();
    for len in [4, 16] {
        for n in 0..len {
            hub.publish_now("t", Event::new().data(format!("burst {n}")))
                .unwrap();
        }
        let before = blocks();
        for body in &mut connections {
            let frame = poll(body).expect("the burst");
            assert_eq!(frame.windows(7).filter(|w| w == b"data: b").count(), len);
            assert_eq!(poll(body), None);
        }
        per_burst.push((blocks() - before) / connections.len() as u64);
    }
    assert_eq!(
        per_burst[0], per_burst[1],
        "blocks per connection and burst"
    );
    assert!(per_burst[0] <= 4, "{per_burst:?}");
}
