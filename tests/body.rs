//! `SseBody` behaviour on tokio's paused clock: keep-alive, coalescing, prelude, shutdown,
//! lifetime, errors and cleanup.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream_shim::ReceiverStream;
use tower_sse::{CancellationToken, EncodedEvent, Event, KeepAlive, SseBody};

/// A minimal mpsc-receiver stream, so the tests need no extra crate.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

/// The next data frame, or `None` at the end; panics (fails the test) on an error frame.
async fn next_data<B>(body: &mut B) -> Option<Bytes>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let frame = body.frame().await?.expect("no error frame");
    Some(frame.into_data().expect("a data frame"))
}

/// What the body yields within `wait` of paused time: `Some(bytes)`, or `None` if nothing.
async fn within<B>(body: &mut B, wait: Duration) -> Option<Option<Bytes>>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    tokio::time::timeout(wait, next_data(body)).await.ok()
}

fn channel_body(keep_alive: KeepAlive) -> (mpsc::Sender<Event>, SseBody<ReceiverStream<Event>>) {
    let (tx, rx) = mpsc::channel(16);
    (tx, SseBody::new(ReceiverStream(rx)).keep_alive(keep_alive))
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[tokio::test(start_paused = true)]
async fn keep_alive_after_each_idle_interval() {
    let (_tx, body) = channel_body(KeepAlive::new());
    let mut body = Box::pin(body);
    let start = Instant::now();
    assert_eq!(next_data(&mut body).await.unwrap(), ":\n");
    assert_eq!(start.elapsed(), Duration::from_secs(15));
    assert_eq!(next_data(&mut body).await.unwrap(), ":\n");
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn keep_alive_timer_restarts_on_every_event() {
    let (tx, body) = channel_body(KeepAlive::new().interval(Duration::from_secs(10)));
    let mut body = Box::pin(body);
    let start = Instant::now();
    assert_eq!(within(&mut body, Duration::from_secs(7)).await, None);
    tx.send(Event::new().data("x")).await.unwrap();
    assert_eq!(next_data(&mut body).await.unwrap(), "data: x\n\n");
    assert_eq!(start.elapsed(), Duration::from_secs(7));
    assert_eq!(next_data(&mut body).await.unwrap(), ":\n");
    assert_eq!(start.elapsed(), Duration::from_secs(17));
}

#[tokio::test(start_paused = true)]
async fn keep_alive_waits_a_whole_interval_after_the_last_of_many_events() {
    let (tx, body) = channel_body(KeepAlive::new().interval(Duration::from_secs(10)));
    let mut body = Box::pin(body);
    let start = Instant::now();
    // Events across several intervals, some off the millisecond grid: no ping in between.
    let times = [7_000_000, 12_000_300, 21_500_000, 29_999_999].map(Duration::from_micros);
    for at in times {
        let wait = at - start.elapsed();
        assert_eq!(within(&mut body, wait).await, None, "a ping before {at:?}");
        tx.send(Event::new().data("x")).await.unwrap();
        assert_eq!(next_data(&mut body).await.unwrap(), "data: x\n\n");
    }
    assert_eq!(next_data(&mut body).await.unwrap(), ":\n");
    let silence = start.elapsed() - times[3];
    assert!(
        silence >= Duration::from_secs(10) && silence <= Duration::from_millis(10_001),
        "ping after {silence:?} of silence"
    );
    // Idle from here: one ping per interval.
    let before = start.elapsed();
    assert_eq!(next_data(&mut body).await.unwrap(), ":\n");
    assert_eq!(start.elapsed() - before, Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn an_event_sent_as_the_keep_alive_falls_due_replaces_the_ping() {
    let (tx, body) = channel_body(KeepAlive::new().interval(Duration::from_secs(10)));
    let mut body = Box::pin(body);
    let start = Instant::now();
    assert_eq!(within(&mut body, Duration::from_secs(5)).await, None);
    // The timer falls due while nobody polls; then an event is ready at the same moment.
    tokio::time::sleep_until(start + Duration::from_secs(10)).await;
    tx.send(Event::new().data("x")).await.unwrap();
    assert_eq!(next_data(&mut body).await.unwrap(), "data: x\n\n");
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    // No ping right behind the event: the next one follows a whole interval of silence.
    assert_eq!(next_data(&mut body).await.unwrap(), ":\n");
    assert_eq!(start.elapsed(), Duration::from_secs(20));
}

/// Settings past what a clock can hold mean "never", not a panic.
#[tokio::test(start_paused = true)]
async fn the_longest_interval_and_lifetime_do_not_panic() {
    let (tx, body) = channel_body(KeepAlive::new().interval(Duration::MAX));
    let mut body = Box::pin(body.max_lifetime(Duration::MAX));
    assert_eq!(within(&mut body, Duration::from_secs(3600)).await, None);
    tx.send(Event::new().data("x")).await.unwrap();
    assert_eq!(next_data(&mut body).await.unwrap(), "data: x\n\n");
    assert_eq!(within(&mut body, Duration::from_secs(3600)).await, None);
}

#[tokio::test(start_paused = true)]
async fn keep_alive_starts_at_first_poll_without_a_burst() {
    let (_tx, body) = channel_body(KeepAlive::new());
    let mut body = Box::pin(body);
    // The response sat unpolled for a minute: still no ping until 15 s after the first poll.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let start = Instant::now();
    assert_eq!(within(&mut body, Duration::from_secs(14)).await, None);
    assert_eq!(next_data(&mut body).await.unwrap(), ":\n");
    assert_eq!(start.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn keep_alive_text_event_and_disabled() {
    let (_tx, body) = channel_body(KeepAlive::new().text("ping"));
    let mut body = Box::pin(body);
    assert_eq!(next_data(&mut body).await.unwrap(), ": ping\n");

    let ping = Event::new().event("ping").unwrap().data("");
    let (_tx, body) = channel_body(KeepAlive::new().event(ping));
    let mut body = Box::pin(body);
    assert_eq!(
        next_data(&mut body).await.unwrap(),
        "event: ping\ndata:\n\n"
    );

    let (_tx, body) = channel_body(KeepAlive::disabled());
    let mut body = Box::pin(body);
    assert_eq!(within(&mut body, Duration::from_secs(3600)).await, None);
}

#[tokio::test(start_paused = true)]
async fn a_ping_shares_its_bytes() {
    let keep_alive = KeepAlive::new().text("ping");
    let expected = keep_alive.ping_bytes().as_ptr();
    let (_tx, body) = channel_body(keep_alive);
    let mut body = Box::pin(body);
    let first = next_data(&mut body).await.unwrap();
    let second = next_data(&mut body).await.unwrap();
    assert_eq!(first.as_ptr(), expected);
    assert_eq!(second.as_ptr(), expected);
}

#[tokio::test(start_paused = true)]
async fn ready_events_are_coalesced_within_the_budget() {
    let events: Vec<EncodedEvent> = (0..1000)
        .map(|n| {
            Event::new()
                .id(n.to_string())
                .unwrap()
                .data("0123456789")
                .encode()
        })
        .collect();
    let expected: Vec<u8> = events.iter().flat_map(|e| e.as_bytes().to_vec()).collect();
    let mut body = Box::pin(SseBody::new(stream::iter(events)).coalesce_budget(8 * 1024));
    let mut frames = Vec::new();
    while let Some(frame) = next_data(&mut body).await {
        frames.push(frame);
    }
    let joined: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
    assert_eq!(joined, expected);
    // About 27 KB in 8 KiB frames: 4 frames, not 1,000, and none over the budget.
    assert!(frames.len() <= 5, "{} frames", frames.len());
    assert!(frames.iter().all(|f| f.len() <= 8 * 1024));
    // Every frame ends at an event boundary.
    assert!(frames.iter().all(|f| f.ends_with(b"\n\n")));
}

#[tokio::test(start_paused = true)]
async fn a_large_event_is_sent_alone_without_a_copy() {
    let big = Event::new().data("x".repeat(100_000)).encode();
    let small = Event::new().data("s").encode();
    let ptr = big.as_bytes().as_ptr();
    let mut body = Box::pin(SseBody::new(stream::iter([
        small.clone(),
        big.clone(),
        small,
    ])));
    assert_eq!(next_data(&mut body).await.unwrap(), "data: s\n\n");
    let frame = next_data(&mut body).await.unwrap();
    assert_eq!(
        frame.as_ptr(),
        ptr,
        "the encoded bytes are sent as they are"
    );
    assert_eq!(frame.len(), big.len());
    assert_eq!(next_data(&mut body).await.unwrap(), "data: s\n\n");
    assert_eq!(next_data(&mut body).await, None);
    assert!(body.is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn retry_and_open_comment_come_first_without_a_blank_line() {
    let mut body = Box::pin(
        SseBody::new(stream::iter([Event::new().data("x")]))
            .retry(Duration::from_millis(2500))
            .open_comment("hello"),
    );
    let mut all = Vec::new();
    while let Some(frame) = next_data(&mut body).await {
        all.extend_from_slice(&frame);
    }
    assert_eq!(text(&all), "retry: 2500\n: hello\ndata: x\n\n");

    // Alone, the prelude is sent at once, before any event exists.
    let (_tx, body) = channel_body(KeepAlive::new());
    let mut body = Box::pin(body.retry(Duration::from_secs(1)));
    let start = Instant::now();
    assert_eq!(next_data(&mut body).await.unwrap(), "retry: 1000\n");
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn stream_end_ends_the_body() {
    let mut body = Box::pin(SseBody::new(stream::iter([
        Event::new().data("a"),
        Event::new().data("b"),
    ])));
    assert_eq!(
        next_data(&mut body).await.unwrap(),
        "data: a\n\ndata: b\n\n"
    );
    assert_eq!(next_data(&mut body).await, None);
    assert_eq!(next_data(&mut body).await, None);
}

#[tokio::test(start_paused = true)]
async fn stream_error_sends_what_came_before_then_the_error() {
    let items: Vec<Result<Event, &'static str>> = vec![
        Ok(Event::new().data("a")),
        Err("broken"),
        Ok(Event::new().data("never")),
    ];
    let mut body = Box::pin(SseBody::new(stream::iter(items)));
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "data: a\n\n");
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(err, "broken");
    assert!(body.frame().await.is_none());
    assert!(body.is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_at_an_event_boundary_with_the_final_event() {
    let token = CancellationToken::new();
    let (tx, body) = channel_body(KeepAlive::new());
    let mut body = Box::pin(
        body.shutdown(token.clone())
            .final_event(Event::new().event("bye").unwrap().data("")),
    );
    tx.send(Event::new().data("a")).await.unwrap();
    assert_eq!(next_data(&mut body).await.unwrap(), "data: a\n\n");
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        cancel.cancel();
    });
    let start = Instant::now();
    assert_eq!(next_data(&mut body).await.unwrap(), "event: bye\ndata:\n\n");
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(next_data(&mut body).await, None);
    // The stream was still open: the body ended on the signal, not on the stream.
    assert!(body.is_end_stream());
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn an_already_cancelled_token_ends_the_body_at_once() {
    let token = CancellationToken::new();
    token.cancel();
    let mut body = Box::pin(SseBody::new(stream::pending::<Event>()).shutdown(token));
    assert_eq!(next_data(&mut body).await, None);
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_ends_the_body() {
    let (_tx, body) = channel_body(KeepAlive::disabled());
    let mut body = Box::pin(
        body.max_lifetime(Duration::from_secs(300))
            .lifetime_jitter(Duration::ZERO),
    );
    let start = Instant::now();
    assert_eq!(next_data(&mut body).await, None);
    assert_eq!(start.elapsed(), Duration::from_secs(300));

    // With the default jitter the end falls within the last 10 % of the lifetime.
    let (_tx, body) = channel_body(KeepAlive::disabled());
    let mut body = Box::pin(body.max_lifetime(Duration::from_secs(100)));
    let start = Instant::now();
    assert_eq!(next_data(&mut body).await, None);
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(90) && elapsed <= Duration::from_secs(100));
}

/// A stream that reports when it is dropped.
struct DropFlag<S> {
    inner: S,
    dropped: Arc<AtomicBool>,
}

impl<S: Stream + Unpin> Stream for DropFlag<S> {
    type Item = S::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl<S> Drop for DropFlag<S> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_body_drops_the_stream() {
    let dropped = Arc::new(AtomicBool::new(false));
    let stream = DropFlag {
        inner: stream::pending::<Result<Event, Infallible>>(),
        dropped: dropped.clone(),
    };
    let mut body = Box::pin(SseBody::new(stream));
    assert_eq!(within(&mut body, Duration::from_secs(1)).await, None);
    assert!(!dropped.load(Ordering::SeqCst));
    drop(body);
    assert!(dropped.load(Ordering::SeqCst));
}
