//! Encoding and draining an SSE body: tower-sse against `axum::response::sse`, in the same run.
//!
//! Two workloads, each built the way an application would build its events:
//!
//! - **small**: a burst of 100,000 events of about 100 bytes of JSON, each with a type and an id
//!   (numeric ids: tower-sse's `id_u64`, axum's `id(i.to_string())`, each library's way);
//! - **large**: 1,000 events of 64 KiB of data each, next to a plain `memcpy` of the same bytes.
//!
//! Every body is drained frame by frame until its end, counting bytes, on a current-thread
//! tokio runtime (keep-alive is on for both libraries, as in their examples, and its timer needs
//! the runtime). Criterion reports events/s and bytes/s; a short interleaved timing loop at the
//! end prints the ratios (`cargo bench --bench encode`).

use std::convert::Infallible;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use bytes::Bytes;
use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use futures::stream::{self, Stream, StreamExt};
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::runtime::Runtime;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Events in the small burst.
const SMALL_EVENTS: u64 = 100_000;
/// Events in the large run.
const LARGE_EVENTS: u64 = 1_000;
/// Data bytes per large event.
const LARGE_SIZE: usize = 64 * 1024;

/// The small event's JSON: about 100 bytes with a type and an id.
#[derive(Serialize)]
struct Update<'a> {
    r#type: &'a str,
    id: u64,
    room: &'a str,
    user: &'a str,
    text: &'a str,
    ts: u64,
}

fn update(id: u64) -> Update<'static> {
    Update {
        r#type: "update",
        id,
        room: "lobby",
        user: "alice",
        text: "the quick brown fox jumps",
        ts: 1_700_000_000_000 + id,
    }
}

/// The same JSON, serialized once, for the `.data(json_string)` variants.
fn small_payload() -> String {
    serde_json::to_string(&update(12_345)).expect("a plain struct serializes")
}

fn large_payload() -> String {
    "x".repeat(LARGE_SIZE)
}

// ---------------------------------------------------------------------------------------------
// The event streams, one per library and variant.

fn tower_json(n: u64) -> impl Stream<Item = Result<tower_sse::Event, BoxError>> {
    stream::iter(0..n).map(|i| {
        Ok(tower_sse::Event::new()
            .event("update")?
            .id_u64(i)
            .json_data(&update(i))?)
    })
}

fn axum_json(n: u64) -> impl Stream<Item = Result<axum::response::sse::Event, axum::Error>> {
    stream::iter(0..n).map(|i| {
        axum::response::sse::Event::default()
            .event("update")
            .id(i.to_string())
            .json_data(update(i))
    })
}

// ---------------------------------------------------------------------------------------------
// Bodies and draining.

/// Polls every frame of `body` to its end; returns the data bytes seen.
async fn drain<B>(body: B) -> u64
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut body = pin!(body);
    let mut bytes = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("the event streams never fail");
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    bytes
}

/// tower-sse's own body, as a hyper service would send it.
async fn drain_tower<S>(events: S) -> u64
where
    S: Stream + Send + 'static,
    S::Item: tower_sse::SseItem,
    <S::Item as tower_sse::SseItem>::Error: std::fmt::Debug,
{
    drain(tower_sse::Sse::new(events).into_response().into_body()).await
}

/// tower-sse returned from an axum handler: the body boxed into `axum::body::Body`.
async fn drain_tower_axum_body<S>(events: S) -> u64
where
    S: Stream + Send + 'static,
    S::Item: tower_sse::SseItem,
    <S::Item as tower_sse::SseItem>::Error: Into<BoxError> + Send,
{
    let response = IntoResponse::into_response(tower_sse::Sse::new(events));
    drain(response.into_body()).await
}

/// axum's SSE with its keep-alive, as axum's examples write it.
async fn drain_axum<S, E>(events: S) -> u64
where
    S: Stream<Item = Result<axum::response::sse::Event, E>> + Send + 'static,
    E: Into<BoxError>,
{
    let sse =
        axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default());
    drain(sse.into_response().into_body()).await
}

/// Copies 1,000 x 64 KiB into one 64 MB buffer (preallocated and touched beforehand).
fn memcpy_into_buffer(payload: &[u8], dst: &mut Vec<u8>) -> u64 {
    dst.clear();
    for _ in 0..LARGE_EVENTS {
        dst.extend_from_slice(payload);
    }
    black_box(dst.as_slice());
    dst.len() as u64
}

/// Copies 1,000 x 64 KiB into one reused 64 KiB buffer (stays in cache).
fn memcpy_into_hot_buffer(payload: &[u8], dst: &mut [u8]) -> u64 {
    let mut total = 0;
    for _ in 0..LARGE_EVENTS {
        dst.copy_from_slice(payload);
        black_box(&mut *dst);
        total += dst.len() as u64;
    }
    total
}

// ---------------------------------------------------------------------------------------------
// One variant = a name and a closure that builds and drains a body on the runtime.

type Run<'a> = Box<dyn Fn(&Runtime) -> u64 + 'a>;

struct Variant<'a> {
    name: &'static str,
    events: u64,
    run: Run<'a>,
}

fn small_variants(payload: &str) -> Vec<Variant<'_>> {
    let n = SMALL_EVENTS;
    let encoded = pre_encoded(n, payload);
    vec![
        Variant {
            name: "tower-sse/json_data",
            events: n,
            run: Box::new(move |rt| rt.block_on(drain_tower(tower_json(n)))),
        },
        Variant {
            name: "axum/json_data",
            events: n,
            run: Box::new(move |rt| rt.block_on(drain_axum(axum_json(n)))),
        },
        Variant {
            name: "tower-sse/data",
            events: n,
            run: Box::new(move |rt| {
                let payload = payload.to_owned();
                rt.block_on(async move { drain_tower(tower_data_owned(n, payload)).await })
            }),
        },
        Variant {
            name: "tower-sse/data (axum Body)",
            events: n,
            run: Box::new(move |rt| {
                let payload = payload.to_owned();
                rt.block_on(
                    async move { drain_tower_axum_body(tower_data_owned(n, payload)).await },
                )
            }),
        },
        Variant {
            name: "axum/data",
            events: n,
            run: Box::new(move |rt| {
                let payload = payload.to_owned();
                rt.block_on(async move { drain_axum(axum_data_owned(n, payload)).await })
            }),
        },
        Variant {
            name: "tower-sse/pre-encoded (hub path)",
            events: n,
            run: Box::new(move |rt| {
                let events = Arc::clone(&encoded);
                rt.block_on(async move { drain_tower(shared_events(events)).await })
            }),
        },
    ]
}

/// The same events encoded once, as the hub holds them: a body only clones (reference counts)
/// and sends them. Built once, outside any timing.
fn pre_encoded(n: u64, payload: &str) -> Arc<Vec<tower_sse::EncodedEvent>> {
    let events = (0..n)
        .map(|i| {
            tower_sse::Event::new()
                .event("update")
                .expect("a constant type")
                .id(i.to_string())
                .expect("a decimal id")
                .data(payload)
                .encode()
        })
        .collect();
    Arc::new(events)
}

fn shared_events(
    events: Arc<Vec<tower_sse::EncodedEvent>>,
) -> impl Stream<Item = tower_sse::EncodedEvent> + Send + 'static {
    stream::iter((0..events.len()).map(move |i| events[i].clone()))
}

fn large_variants<'a>(
    payload: &'a str,
    big: &'a mut Vec<u8>,
    hot: &'a mut [u8],
) -> Vec<Variant<'a>> {
    let n = LARGE_EVENTS;
    let big = std::cell::RefCell::new(big);
    let hot = std::cell::RefCell::new(hot);
    vec![
        Variant {
            name: "tower-sse/data",
            events: n,
            run: Box::new(move |rt| {
                let payload = payload.to_owned();
                rt.block_on(async move { drain_tower(tower_data_owned(n, payload)).await })
            }),
        },
        Variant {
            name: "tower-sse/data (axum Body)",
            events: n,
            run: Box::new(move |rt| {
                let payload = payload.to_owned();
                rt.block_on(
                    async move { drain_tower_axum_body(tower_data_owned(n, payload)).await },
                )
            }),
        },
        Variant {
            name: "axum/data",
            events: n,
            run: Box::new(move |rt| {
                let payload = payload.to_owned();
                rt.block_on(async move { drain_axum(axum_data_owned(n, payload)).await })
            }),
        },
        Variant {
            name: "memcpy (64 MB buffer)",
            events: n,
            run: Box::new(move |_| memcpy_into_buffer(payload.as_bytes(), &mut big.borrow_mut())),
        },
        Variant {
            name: "memcpy (hot 64 KiB buffer)",
            events: n,
            run: Box::new(move |_| {
                memcpy_into_hot_buffer(payload.as_bytes(), &mut hot.borrow_mut())
            }),
        },
    ]
}

/// The `'static` streams that the body types need (they are moved into `Send + 'static` bodies).
fn tower_data_owned(
    n: u64,
    payload: String,
) -> impl Stream<Item = Result<tower_sse::Event, BoxError>> + Send + 'static {
    stream::iter(0..n).map(move |i| {
        Ok(tower_sse::Event::new()
            .event("update")?
            .id_u64(i)
            .data(&payload))
    })
}

fn axum_data_owned(
    n: u64,
    payload: String,
) -> impl Stream<Item = Result<axum::response::sse::Event, Infallible>> + Send + 'static {
    stream::iter(0..n).map(move |i| {
        Ok(axum::response::sse::Event::default()
            .event("update")
            .id(i.to_string())
            .data(&payload))
    })
}

// ---------------------------------------------------------------------------------------------
// Criterion groups.

fn bench_group(group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, variants: &[Variant<'_>]) {
    for variant in variants {
        // Each variant's own byte count, so bytes/s is exact for it.
        let bytes = (variant.run)(rt);
        group.throughput(Throughput::ElementsAndBytes {
            elements: variant.events,
            bytes,
        });
        group.bench_function(variant.name, |b| b.iter(|| black_box((variant.run)(rt))));
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds")
}

// ---------------------------------------------------------------------------------------------
// The final summary: an interleaved timing loop, median of several runs per variant.

/// Runs every variant `rounds` times, interleaved (so drift on a shared machine hits all of them
/// alike), and returns each one's median seconds per run.
fn interleaved_medians(rt: &Runtime, variants: &[Variant<'_>], rounds: usize) -> Vec<f64> {
    let mut times = vec![Vec::with_capacity(rounds); variants.len()];
    for v in variants {
        black_box((v.run)(rt)); // warm up
    }
    for _ in 0..rounds {
        for (i, v) in variants.iter().enumerate() {
            let start = Instant::now();
            black_box((v.run)(rt));
            times[i].push(start.elapsed().as_secs_f64());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect()
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio >= target { "met" } else { "MISSED" }
}

fn summary(
    rt: &Runtime,
    small: &[Variant<'_>],
    large: &[Variant<'_>],
    small_bytes: &[u64],
    large_bytes: &[u64],
) {
    const ROUNDS: usize = 11;
    println!();
    println!("== summary: interleaved timing loop, median of {ROUNDS} runs per variant ==");
    println!("   (separate from criterion's figures above; same machine, same run)");

    let med = interleaved_medians(rt, small, ROUNDS);
    println!();
    println!("small burst: {SMALL_EVENTS} events of about 100 bytes of JSON");
    println!("| variant | events/s | MB/s |");
    println!("|---|---:|---:|");
    for ((v, t), bytes) in small.iter().zip(&med).zip(small_bytes) {
        println!(
            "| {} | {:.0} | {:.1} |",
            v.name,
            v.events as f64 / t,
            *bytes as f64 / t / 1e6
        );
    }
    let eps = |name: &str| {
        small
            .iter()
            .zip(&med)
            .find(|(v, _)| v.name == name)
            .map(|(v, t)| v.events as f64 / t)
            .unwrap_or(f64::NAN)
    };
    for (tower, axum) in [
        ("tower-sse/json_data", "axum/json_data"),
        ("tower-sse/data", "axum/data"),
        ("tower-sse/data (axum Body)", "axum/data"),
    ] {
        let ratio = eps(tower) / eps(axum);
        println!(
            "ratio events/s {tower} / {axum}: {ratio:.2}x (target >= 3x: {})",
            verdict(ratio, 3.0)
        );
    }
    let ratio = eps("tower-sse/pre-encoded (hub path)") / eps("axum/data");
    println!(
        "ratio events/s tower-sse/pre-encoded (hub path) / axum/data: {ratio:.2}x \
         (informative: the events are encoded once, outside the timing, as in a hub fan-out)"
    );

    let med = interleaved_medians(rt, large, ROUNDS);
    println!();
    println!("large: {LARGE_EVENTS} events of 64 KiB");
    println!("| variant | events/s | GB/s |");
    println!("|---|---:|---:|");
    for ((v, t), bytes) in large.iter().zip(&med).zip(large_bytes) {
        println!(
            "| {} | {:.0} | {:.2} |",
            v.name,
            v.events as f64 / t,
            *bytes as f64 / t / 1e9
        );
    }
    let bw = |name: &str| {
        large
            .iter()
            .zip(&med)
            .zip(large_bytes)
            .find(|((v, _), _)| v.name == name)
            .map(|((_, t), b)| *b as f64 / t)
            .unwrap_or(f64::NAN)
    };
    for memcpy in ["memcpy (64 MB buffer)", "memcpy (hot 64 KiB buffer)"] {
        let ratio = bw("tower-sse/data") / bw(memcpy);
        println!(
            "ratio bytes/s tower-sse/data / {memcpy}: {ratio:.2} (target >= 0.7: {})",
            verdict(ratio, 0.7)
        );
    }
    let ratio = bw("tower-sse/data") / bw("axum/data");
    println!("ratio bytes/s tower-sse/data / axum/data: {ratio:.2}x");
}

fn profile(rt: &Runtime, target: &str, small: &[Variant<'_>], large: &[Variant<'_>]) {
    let found = small
        .iter()
        .map(|v| ("small_100k", v))
        .chain(large.iter().map(|v| ("large_64KiB_x1000", v)))
        .find(|(group, v)| format!("{group}/{}", v.name) == target);
    let Some((_, variant)) = found else {
        eprintln!("no variant named {target:?}");
        return;
    };
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < Duration::from_secs(5) {
        black_box((variant.run)(rt));
        runs += 1;
    }
    let per_run = start.elapsed().as_secs_f64() / runs as f64;
    println!(
        "{target}: {runs} runs, {:.0} events/s",
        variant.events as f64 / per_run
    );
}

fn main() {
    let rt = runtime();
    let small_payload = small_payload();
    let large_payload = large_payload();
    let mut big = vec![1u8; LARGE_SIZE * LARGE_EVENTS as usize];
    let mut hot = vec![1u8; LARGE_SIZE];

    let small = small_variants(&small_payload);
    let large = large_variants(&large_payload, &mut big, &mut hot);

    // `ENCODE_PROFILE="small_100k/tower-sse/data"` runs only that variant for 5 s, for a
    // profiler (`perf record`), and exits.
    if let Ok(target) = std::env::var("ENCODE_PROFILE") {
        profile(&rt, &target, &small, &large);
        return;
    }

    // The byte counts of each variant (both libraries write the same bytes for the same events;
    // printed so that it can be seen).
    let small_bytes: Vec<u64> = small.iter().map(|v| (v.run)(&rt)).collect();
    let large_bytes: Vec<u64> = large.iter().map(|v| (v.run)(&rt)).collect();
    for (variants, bytes) in [(&small, &small_bytes), (&large, &large_bytes)] {
        for (v, b) in variants.iter().zip(bytes.iter()) {
            println!("{}: {b} bytes per run", v.name);
        }
    }

    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("small_100k");
        bench_group(&mut group, &rt, &small);
        group.finish();
    }
    {
        let mut group = criterion.benchmark_group("large_64KiB_x1000");
        bench_group(&mut group, &rt, &large);
        group.finish();
    }
    criterion.final_summary();

    // Only under `cargo bench` (not when `cargo test --benches` runs each benchmark once).
    if std::env::args().any(|a| a == "--bench") {
        summary(&rt, &small, &large, &small_bytes, &large_bytes);
    }
}
