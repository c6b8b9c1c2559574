//! The hub's memory bound, measured with a counting allocator (dhat's): whatever is published, the heap
//! the hub holds stays within `max_memory` plus what the limits that it does not charge allow
//! (idle topic records, the maps' spare room).
//!
//! Measured in a `main` of its own (`harness = false` in `Cargo.toml`): dhat counts the whole
//! process, and libtest's main thread allocates its bookkeeping while a test runs.

use tower_sse::Event;
use tower_sse::hub::Hub;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Bytes currently allocated.
fn live() -> usize {
    dhat::HeapStats::get().curr_bytes
}

const MIB: usize = 1 << 20;
/// The memory limit of every case.
const MAX_MEMORY: usize = 4 * MIB;
/// Idle topic records kept, which the limit does not charge.
const IDLE_TOPICS: usize = 256;
/// Room for what the limit does not charge: the idle records (under a KiB each), and the
/// topic map's and eviction index's spare room after their peak.
const UNCHARGED: usize = IDLE_TOPICS * 1024 + MIB;

fn hub(capacity: usize) -> Hub {
    Hub::builder()
        .capacity(capacity)
        .max_topic_bytes(usize::MAX)
        .max_bytes(usize::MAX)
        .max_memory(MAX_MEMORY)
        .max_idle_topics(IDLE_TOPICS)
        .build()
}

/// Publishes `count` events of one line of data to the topics `topic` names, and returns the heap
/// the hub holds afterwards, in bytes, after checking what its stats say.
fn held_after(capacity: usize, count: usize, topic: impl Fn(usize) -> String) -> usize {
    held_after_events(capacity, count, topic, || Event::new().data("x"))
}

/// As [`held_after`], with events made by `event`.
fn held_after_events(
    capacity: usize,
    count: usize,
    topic: impl Fn(usize) -> String,
    event: impl Fn() -> Event,
) -> usize {
    let before = live();
    let hub = hub(capacity);
    let mut names = String::new();
    for i in 0..count {
        names.clear();
        names.push_str(&topic(i));
        hub.publish_now(&names, event()).unwrap();
    }
    drop(names);
    let held = live().saturating_sub(before);
    let stats = hub.stats();
    assert!(stats.memory_held <= MAX_MEMORY, "{stats:?}");
    assert!(
        stats.events_held < count,
        "the limit evicted nothing: {stats:?}"
    );
    assert!(stats.idle_topics <= IDLE_TOPICS, "{stats:?}");
    assert!(
        stats.memory_held > stats.bytes_held,
        "bookkeeping is charged: {stats:?}"
    );
    eprintln!(
        "held {held} bytes, charged {}: {stats:?}",
        stats.memory_held
    );
    drop(hub);
    held
}

fn main() {
    // `cargo test` passes its arguments (such as `--include-ignored`); there is one check.
    held_memory_stays_within_max_memory();
    println!("hub_memory: held memory stays within max_memory: ok");
}

fn held_memory_stays_within_max_memory() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // A topic per event: every event also costs a topic.
    let per_topic = held_after(1024, 40_000, |i| format!("user:{i}"));
    assert!(per_topic <= MAX_MEMORY + UNCHARGED, "{per_topic} bytes");

    // One topic with room for every event: only the events cost.
    let one_topic = held_after(1_000_000, 40_000, |_| "room".to_owned());
    assert!(one_topic <= MAX_MEMORY + UNCHARGED, "{one_topic} bytes");

    // Many topics with a few events each.
    let few_each = held_after(1024, 40_000, |i| format!("feed:{}", i % 5_000));
    assert!(few_each <= MAX_MEMORY + UNCHARGED, "{few_each} bytes");

    // Events whose buffers grew to about twice what they hold.
    let grown = held_after_events(
        1_000_000,
        10_000,
        |_| "room".to_owned(),
        || Event::new().data("a".repeat(1000)).data("x"),
    );
    assert!(grown <= MAX_MEMORY + UNCHARGED, "{grown} bytes");

    // Dropping the hub gives everything back.
    let before = live();
    let again = held_after(1024, 10_000, |i| format!("user:{i}"));
    assert!(again > 0);
    assert!(
        live() <= before + 64 * 1024,
        "memory kept after the hub was dropped"
    );
}
