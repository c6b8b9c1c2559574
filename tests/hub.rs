//! The in-memory broadcast hub: ids, replay, live hand-over, markers, overflow, reclaim,
//! limits, shutdown and stats.

mod support;

use support::wait::within;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use proptest::prelude::*;
use tower_sse::hub::{Hub, HubError, OverflowPolicy, Subscription};
use tower_sse::{CancellationToken, EncodedEvent, Event};

fn text(event: &EncodedEvent) -> &str {
    std::str::from_utf8(event.as_bytes()).expect("hub events are UTF-8")
}

/// The value of the event's last `id:` line.
fn id_of(event: &EncodedEvent) -> Option<&str> {
    text(event)
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .next_back()
}

/// The position part of a hub id.
fn seq(id: &str) -> u64 {
    let (epoch, seq) = id.split_once('-').expect("epoch-seq");
    assert_eq!(epoch.len(), 16, "{id}");
    seq.parse().expect("decimal seq")
}

fn data(payload: &str) -> Event {
    Event::new().data(payload)
}

/// Everything the subscription yields without waiting; `ended` tells whether it returned `None`.
fn drain(sub: &mut Subscription) -> (Vec<EncodedEvent>, bool) {
    let mut out = Vec::new();
    loop {
        match sub.next().now_or_never() {
            Some(Some(event)) => out.push(event),
            Some(None) => return (out, true),
            None => return (out, false),
        }
    }
}

fn reset_bytes(reason: &str, id: &str) -> String {
    format!("event: reset\ndata: {{\"reason\":\"{reason}\"}}\nid: {id}\n\n")
}

#[test]
fn subscription_is_a_send_unpin_static_stream() {
    fn check<T: futures::Stream<Item = EncodedEvent> + Send + Unpin + 'static>() {}
    fn check_hub<T: Clone + Send + Sync + 'static>() {}
    check::<Subscription>();
    check_hub::<Hub>();
}

/// An idle connection costs its subscription and little else: a one-topic subscription keeps
/// its member inline, and rarely used state behind one optional box.
#[test]
fn a_subscription_is_small() {
    let size = std::mem::size_of::<Subscription>();
    assert!(size <= 80, "{size} bytes");
    // The whole response body of a hub connection, keep-alive timer included, in one block:
    // axum's own SSE body over a broadcast receiver takes 272 bytes.
    let body = std::mem::size_of::<tower_sse::SseBody<Subscription>>();
    assert!(body <= 232, "{body} bytes");
}

#[tokio::test]
async fn ids_increase_across_topics_and_the_hub_id_line_comes_last() {
    let hub = Hub::new();
    let start = hub.last_id();
    assert_eq!(seq(&start), 0);
    let a = hub.publish("a", data("1")).await.unwrap();
    let b = hub.publish("b", data("2")).await.unwrap();
    let c = hub.publish_now("a", data("3")).unwrap();
    assert_eq!([seq(&a), seq(&b), seq(&c)], [1, 2, 3]);
    let epoch = start.split_once('-').unwrap().0;
    for id in [&a, &b, &c] {
        assert_eq!(id.split_once('-').unwrap().0, epoch);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'));
    }
    assert_eq!(hub.last_id(), c);

    // A caller's own id is kept on the wire but the hub's comes after it, so it wins.
    let mut sub = hub.subscribe(["t"], None).unwrap();
    let id = hub
        .publish(
            "t",
            Event::new()
                .event("msg")
                .unwrap()
                .id("mine")
                .unwrap()
                .data("x"),
        )
        .await
        .unwrap();
    let event = sub.next().await.unwrap();
    assert_eq!(
        text(&event),
        format!("event: msg\nid: mine\ndata: x\nid: {id}\n\n")
    );
    assert_eq!(id_of(&event), Some(id.as_str()));
}

#[tokio::test]
async fn two_hubs_have_different_epochs_unless_configured() {
    let one = Hub::new().last_id();
    let two = Hub::new().last_id();
    assert_ne!(one, two);
    let fixed = Hub::builder().epoch(0xab).build();
    assert_eq!(fixed.last_id(), "00000000000000ab-0");
}

#[tokio::test]
async fn live_events_of_several_topics_merge_in_id_order() {
    let hub = Hub::new();
    let mut sub = hub.subscribe(["b", "a", "b"], None).unwrap();
    assert_eq!(sub.topic_count(), 2);
    let mut ids = Vec::new();
    for (topic, payload) in [
        ("a", "1"),
        ("b", "2"),
        ("c", "skip"),
        ("b", "3"),
        ("a", "4"),
    ] {
        let id = hub.publish(topic, data(payload)).await.unwrap();
        if topic != "c" {
            ids.push(id);
        }
    }
    let (got, ended) = drain(&mut sub);
    assert!(!ended);
    let got: Vec<_> = got.iter().map(|e| id_of(e).unwrap().to_owned()).collect();
    assert_eq!(got, ids);
}

#[tokio::test]
async fn a_pending_subscriber_is_woken_by_a_publish_to_any_of_its_topics() {
    let hub = Hub::new();
    for topic in ["a", "b"] {
        let mut sub = hub.subscribe(["a", "b"], None).unwrap();
        let reader = tokio::spawn(async move { sub.next().await });
        tokio::task::yield_now().await;
        let id = hub.publish(topic, data("x")).await.unwrap();
        let event = within(reader).await.unwrap().unwrap();
        assert_eq!(id_of(&event), Some(id.as_str()));
    }
}

#[tokio::test]
async fn resume_replays_what_came_after_the_id_then_continues_live() {
    let hub = Hub::new();
    let ids: Vec<String> =
        futures::future::join_all(["a", "b", "a", "c", "b"].map(|t| hub.publish(t, data(t))))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let mut sub = hub.subscribe(["a", "b"], Some(&ids[1])).unwrap();
    assert_eq!(sub.size_hint().1, None);
    let (got, _) = drain(&mut sub);
    let got: Vec<_> = got.iter().map(|e| id_of(e).unwrap().to_owned()).collect();
    assert_eq!(got, [ids[2].clone(), ids[4].clone()]);
    let live = hub.publish("b", data("live")).await.unwrap();
    let event = sub.next().await.unwrap();
    assert_eq!(id_of(&event), Some(live.as_str()));

    // The start position `<epoch>-0` replays everything held.
    let zero = format!("{}-0", ids[0].split_once('-').unwrap().0);
    let mut all = hub.subscribe(["c"], Some(&zero)).unwrap();
    let (got, _) = drain(&mut all);
    assert_eq!(got.len(), 1);
    assert_eq!(id_of(&got[0]), Some(ids[3].as_str()));

    // An empty Last-Event-ID is a fresh start, not an error.
    let mut fresh = hub.subscribe(["a"], Some("")).unwrap();
    assert!(drain(&mut fresh).0.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// With nothing evicted, resuming after any id yields exactly the later events of the
    /// followed topics, in order, then live ones.
    #[test]
    fn replay_after_any_id_returns_exactly_the_later_events(
        topics in prop::collection::vec(0usize..4, 0..40),
        follow in 1u8..16,
        cut in any::<prop::sample::Index>(),
    ) {
        let hub = Hub::new();
        let names = ["t0", "t1", "t2", "t3"];
        let mut ids = vec![hub.last_id()];
        for (i, &t) in topics.iter().enumerate() {
            ids.push(hub.publish_now(names[t], data(&i.to_string())).unwrap());
        }
        let k = cut.index(ids.len());
        let followed: Vec<usize> = (0..4).filter(|t| follow & (1 << t) != 0).collect();
        let mut sub = hub
            .subscribe(followed.iter().map(|&t| names[t]), Some(&ids[k]))
            .unwrap();
        let (got, ended) = drain(&mut sub);
        prop_assert!(!ended);
        let expected: Vec<String> = topics
            .iter()
            .enumerate()
            .filter(|&(i, t)| i + 1 > k && followed.contains(t))
            .map(|(i, _)| format!("data: {i}\nid: {}\n\n", ids[i + 1]))
            .collect();
        let got: Vec<String> = got.iter().map(|e| text(e).to_owned()).collect();
        prop_assert_eq!(got, expected);

        let live = hub.publish_now(names[followed[0]], data("live")).unwrap();
        let (got, _) = drain(&mut sub);
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(id_of(&got[0]), Some(live.as_str()));
    }

    /// With small rings, a resume either replays exactly the later events or, if any followed
    /// topic lost an event after the id, starts with a `stale` reset and nothing else. A topic
    /// that lost only events up to the id does not count.
    #[test]
    fn stale_is_decided_per_topic(
        topics in prop::collection::vec(0usize..3, 0..30),
        follow in 1u8..8,
        cut in any::<prop::sample::Index>(),
        capacity in 1usize..5,
    ) {
        let hub = Hub::builder().capacity(capacity).build();
        let names = ["t0", "t1", "t2"];
        let mut ids = vec![hub.last_id()];
        for (i, &t) in topics.iter().enumerate() {
            ids.push(hub.publish_now(names[t], data(&i.to_string())).unwrap());
        }
        let k = cut.index(ids.len());
        let followed: Vec<usize> = (0..3).filter(|t| follow & (1 << t) != 0).collect();
        // Model: each topic holds its last `capacity` events.
        let mut stale = false;
        let mut held = BTreeSet::new();
        for &t in &followed {
            let mine: Vec<usize> = (0..topics.len()).filter(|&i| topics[i] == t).collect();
            let evicted = mine.len().saturating_sub(capacity);
            stale |= mine[..evicted].iter().any(|&i| i + 1 > k);
            held.extend(mine[evicted..].iter().copied());
        }
        let mut sub = hub
            .subscribe(followed.iter().map(|&t| names[t]), Some(&ids[k]))
            .unwrap();
        let (got, _) = drain(&mut sub);
        let got: Vec<String> = got.iter().map(|e| text(e).to_owned()).collect();
        let expected: Vec<String> = if stale {
            vec![reset_bytes("stale", ids.last().unwrap())]
        } else {
            held.iter()
                .filter(|&&i| i + 1 > k)
                .map(|&i| format!("data: {i}\nid: {}\n\n", ids[i + 1]))
                .collect()
        };
        prop_assert_eq!(got, expected);
    }
}

/// Publishers on several tasks of a multi-thread runtime while subscribers come and go:
/// every subscriber gets its topics' events in strictly increasing id order, with no
/// duplicate, and nothing missing after its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publish_while_subscribing_loses_and_duplicates_nothing() {
    const PUBLISHERS: usize = 4;
    const PER_PUBLISHER: usize = 400;
    const TOPICS: [&str; 4] = ["t0", "t1", "t2", "t3"];
    let hub = Hub::builder().capacity(100_000).build();

    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let hub = hub.clone();
            tokio::spawn(async move {
                let mut log = Vec::new();
                for i in 0..PER_PUBLISHER {
                    let topic = (p + i * 7 + i / 3) % TOPICS.len();
                    let id = hub
                        .publish(TOPICS[topic], data(&format!("{p}/{i}")))
                        .await
                        .unwrap();
                    log.push((seq(&id), topic));
                    if i % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                log
            })
        })
        .collect();

    // Subscribers open while publishing goes on, half resuming from an id, half fresh.
    let mut readers = Vec::new();
    for n in 0..8usize {
        let threshold = (n as u64 + 1) * (PUBLISHERS * PER_PUBLISHER) as u64 / 10;
        while hub.stats().events_published < threshold {
            tokio::task::yield_now().await;
        }
        let followed: Vec<usize> = (0..TOPICS.len()).filter(|t| (n + t) % 3 != 0).collect();
        let resume_from = (n % 2 == 0).then(|| hub.last_id());
        let sub = hub
            .subscribe(followed.iter().map(|&t| TOPICS[t]), resume_from.as_deref())
            .unwrap();
        let wanted = followed.len();
        readers.push((
            followed,
            resume_from.as_deref().map(seq),
            tokio::spawn(async move {
                let mut sub = sub;
                let mut got = Vec::new();
                let mut ends = 0;
                while ends < wanted {
                    let event = sub.next().await.expect("ended early");
                    if text(&event).starts_with("event: end\n") {
                        ends += 1;
                    } else {
                        got.push(seq(id_of(&event).unwrap()));
                    }
                }
                got
            }),
        ));
    }

    let mut log = Vec::new();
    for publisher in publishers {
        log.extend(within(publisher).await.unwrap());
    }
    for topic in TOPICS {
        hub.publish(topic, Event::new().event("end").unwrap().data(topic))
            .await
            .unwrap();
    }
    log.sort_unstable();
    assert_eq!(log.len(), PUBLISHERS * PER_PUBLISHER);

    for (followed, resumed_from, reader) in readers {
        let got = within(reader).await.unwrap();
        assert!(got.windows(2).all(|w| w[0] < w[1]), "order or duplicate");
        // Fresh subscribers start somewhere; from there on nothing may be missing.
        let from = resumed_from.unwrap_or_else(|| got.first().map_or(u64::MAX, |s| s - 1));
        let expected: Vec<u64> = log
            .iter()
            .filter(|(s, t)| *s > from && followed.contains(t))
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(got, expected);
    }
    assert_eq!(hub.stats().subscribers, 0);
}

#[tokio::test]
async fn a_subscriber_that_never_reads_holds_nothing_and_is_ended() {
    let hub = Hub::builder().capacity(8).build();
    let mut idle = hub.subscribe(["t"], None).unwrap();
    let mut lens = Vec::new();
    for i in 0..1000 {
        hub.publish("t", data(&format!("event {i}"))).await.unwrap();
        let held: usize = lens.iter().rev().take(7).sum();
        let stats = hub.stats();
        assert!(stats.events_held <= 8);
        assert!(stats.bytes_held <= held + 64);
        lens.push(format!("data: event {i}\nid: {}\n\n", hub.last_id()).len());
    }
    let stats = hub.stats();
    assert_eq!(stats.events_held, 8);
    assert_eq!(stats.bytes_held, lens.iter().rev().take(8).sum::<usize>());
    assert_eq!(stats.subscribers, 1);

    assert!(idle.next().await.is_none(), "the End policy ends it");
    assert!(idle.is_ended());
    assert!(futures::stream::FusedStream::is_terminated(&idle));
    assert_eq!(idle.size_hint(), (0, Some(0)));
    assert!(idle.next().await.is_none());
    let stats = hub.stats();
    assert_eq!(stats.lagged_ends, 1);
    assert_eq!(stats.subscribers, 0, "an ended subscription is released");
}

#[tokio::test]
async fn an_ended_laggard_that_reconnects_gets_a_stale_reset() {
    let hub = Hub::builder().capacity(4).build();
    let mut sub = hub.subscribe(["t"], None).unwrap();
    hub.publish("t", data("0")).await.unwrap();
    let first = sub.next().await.unwrap();
    let last_seen = id_of(&first).unwrap().to_owned();
    for i in 1..=10 {
        hub.publish("t", data(&i.to_string())).await.unwrap();
    }
    assert!(sub.next().await.is_none());
    let mut again = hub.subscribe(["t"], Some(&last_seen)).unwrap();
    let (got, _) = drain(&mut again);
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0]), reset_bytes("stale", &hub.last_id()));
    assert_eq!(hub.stats().resets, 1);
}

#[tokio::test]
async fn a_reader_that_falls_behind_gets_what_it_buffered_then_ends() {
    let hub = Hub::builder().capacity(40).build();
    let mut sub = hub.subscribe(["t"], None).unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(hub.publish("t", data(&i.to_string())).await.unwrap());
    }
    // One read copies a batch out of the ring; then the ring moves far past the cursor.
    let first = sub.next().await.unwrap();
    assert_eq!(id_of(&first), Some(ids[0].as_str()));
    for i in 40..200 {
        hub.publish("t", data(&i.to_string())).await.unwrap();
    }
    let (got, ended) = drain(&mut sub);
    assert!(ended);
    // Whatever it still delivers continues in order from where it was.
    for (event, id) in got.iter().zip(&ids[1..]) {
        assert_eq!(id_of(event), Some(id.as_str()));
    }
    assert!(got.len() < 40);
}

#[tokio::test]
async fn skip_to_live_yields_a_lagged_marker_then_live_events() {
    let hub = Hub::builder()
        .capacity(4)
        .overflow(OverflowPolicy::SkipToLive)
        .build();
    let mut sub = hub.subscribe(["a", "b"], None).unwrap();
    for i in 0..10 {
        hub.publish("a", data(&i.to_string())).await.unwrap();
        if i % 5 == 0 {
            hub.publish("b", data("b")).await.unwrap();
        }
    }
    let position = hub.last_id();
    let marker = sub.next().await.unwrap();
    assert_eq!(
        text(&marker),
        format!("event: lagged\ndata: {{\"skipped\":12}}\nid: {position}\n\n")
    );
    assert!(
        drain(&mut sub).0.is_empty(),
        "everything up to the marker was skipped"
    );
    let live = hub.publish("b", data("live")).await.unwrap();
    let event = sub.next().await.unwrap();
    assert_eq!(id_of(&event), Some(live.as_str()));
    let stats = hub.stats();
    assert_eq!(
        (stats.lagged_skips, stats.lagged_ends, stats.subscribers),
        (1, 0, 1)
    );
}

/// Publishes `n` events to `topic` with payloads `<prefix><i>` and returns their ids.
async fn publish_n(hub: &Hub, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            hub.publish(topic, data(&format!("{prefix}{i}")))
                .await
                .unwrap(),
        );
    }
    ids
}

fn ids(events: &[EncodedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| id_of(e).unwrap().to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_stops_is_ended_at_the_lag_limit_and_resumes_without_loss() {
    // 75 % of 100 events: a subscription more than 75 events behind is ended.
    let hub = Hub::builder().capacity(100).build();
    let mut sub = hub.subscribe(["t"], None).unwrap();
    let read = publish_n(&hub, "t", "read ", 5).await;
    let (got, ended) = drain(&mut sub);
    assert_eq!((ids(&got), ended), (read.clone(), false));

    // Exactly at the limit it is still served.
    let missed = publish_n(&hub, "t", "missed ", 75).await;
    let event = sub
        .next()
        .now_or_never()
        .flatten()
        .expect("within the limit");
    assert_eq!(id_of(&event), Some(missed[0].as_str()));
    let last_seen = missed[0].clone();

    // Two more: 76 behind, beyond the limit, and nothing evicted yet (81 of 100 held).
    let mut missed = missed[1..].to_vec();
    missed.extend(publish_n(&hub, "t", "more ", 2).await);
    assert_eq!(sub.next().now_or_never(), Some(None), "ended at once");
    assert!(sub.is_ended());
    let stats = hub.stats();
    assert_eq!((stats.lagged_ends, stats.lagged_ends_lossless), (1, 1));
    assert_eq!((stats.subscribers, stats.events_held), (0, 82));

    // The reconnect replays exactly what it missed, with no marker, then goes live.
    let mut resumed = hub.subscribe(["t"], Some(&last_seen)).unwrap();
    let (got, ended) = drain(&mut resumed);
    assert!(!ended, "a resume is not ended for the backlog it came for");
    assert_eq!(ids(&got), missed);
    assert!(got.iter().all(|e| !text(e).starts_with("event:")));
    let live = hub.publish("t", data("live")).await.unwrap();
    assert_eq!(id_of(&resumed.next().await.unwrap()), Some(live.as_str()));
    let stats = hub.stats();
    assert_eq!((stats.resets, stats.lagged_ends), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_multi_topic_reader_ends_at_the_limit_of_one_topic_and_resumes_in_id_order() {
    let hub = Hub::builder().capacity(20).build(); // limit: 15 events per topic
    let mut sub = hub.subscribe(["a", "b", "c"], None).unwrap();
    let mut log = Vec::new();
    for topic in ["a", "b", "a"] {
        log.push(hub.publish(topic, data(topic)).await.unwrap());
    }
    assert_eq!(ids(&drain(&mut sub).0), log);
    // `b2` is read; `a3`, published after it, is copied out of its ring but not delivered.
    let b2 = hub.publish("b", data("b2")).await.unwrap();
    let a3 = hub.publish("a", data("a3")).await.unwrap();
    assert_eq!(id_of(&sub.next().await.unwrap()), Some(b2.as_str()));

    // The client stops reading. Events go on in every topic, and in one it does not follow
    // (the hub's sequence moves on between its events).
    let mut missed = vec![a3];
    for i in 0..15 {
        for topic in ["a", "elsewhere"] {
            let id = hub
                .publish(topic, data(&format!("{topic}{i}")))
                .await
                .unwrap();
            if topic == "a" {
                missed.push(id);
            }
        }
        if i % 5 == 0 {
            missed.push(hub.publish("b", data("b")).await.unwrap());
        }
        if i == 7 {
            missed.push(hub.publish("c", data("c")).await.unwrap());
        }
    }
    // `a` is 16 behind (a3 and 15 more), the others 3 and 1: the subscription ends.
    assert_eq!(sub.next().now_or_never(), Some(None));
    assert_eq!(hub.stats().lagged_ends_lossless, 1);

    let mut resumed = hub.subscribe(["c", "b", "a"], Some(&b2)).unwrap();
    let (got, ended) = drain(&mut resumed);
    assert!(!ended);
    assert_eq!(
        ids(&got),
        missed,
        "every missed event of the three topics, in id order"
    );
    assert_eq!(hub.stats().resets, 0);
}

#[tokio::test(start_paused = true)]
async fn the_topic_byte_limit_counts_toward_the_lag_limit() {
    // 1000 events fit, but only about 20 of these in the topic's bytes.
    let hub = Hub::builder()
        .epoch(0xab)
        .capacity(1000)
        .max_topic_bytes(1000)
        .build();
    let payload = "x".repeat(20); // 48 to 50 bytes encoded
    let mut sub = hub.subscribe(["t"], None).unwrap();
    let first = hub.publish("t", data(&payload)).await.unwrap();
    assert_eq!(id_of(&sub.next().await.unwrap()), Some(first.as_str()));
    // 14 events (at most 700 bytes) are within 750 bytes: still served.
    let mut missed = Vec::new();
    for _ in 0..14 {
        missed.push(hub.publish("t", data(&payload)).await.unwrap());
    }
    let event = sub
        .next()
        .now_or_never()
        .flatten()
        .expect("within the limit");
    assert_eq!(id_of(&event), Some(missed[0].as_str()));
    let last_seen = missed.remove(0);
    // 16 unread events (at least 768 bytes), far from 750 events: beyond the byte limit.
    for _ in 0..3 {
        missed.push(hub.publish("t", data(&payload)).await.unwrap());
    }
    assert_eq!(sub.next().now_or_never(), Some(None));
    assert_eq!(hub.stats().lagged_ends_lossless, 1);
    let mut resumed = hub.subscribe(["t"], Some(&last_seen)).unwrap();
    assert_eq!(ids(&drain(&mut resumed).0), missed);

    // One event larger than the limit is no lag: it is simply the next one to deliver.
    let large = hub.publish("t", data(&"x".repeat(800))).await.unwrap();
    assert_eq!(ids(&drain(&mut resumed).0), [large]);
    assert!(!resumed.is_ended());
}

/// Publishes an event to `topic` of a hub with epoch `0xab`, padded to `size` encoded bytes.
async fn publish_sized(hub: &Hub, topic: &str, size: usize) -> String {
    let next = seq(&hub.last_id()) + 1;
    let overhead = format!("data: \nid: 00000000000000ab-{next}\n\n").len();
    let id = hub
        .publish(topic, data(&"x".repeat(size - overhead)))
        .await
        .unwrap();
    assert_eq!(seq(&id), next);
    id
}

#[tokio::test(start_paused = true)]
async fn the_hub_byte_limit_counts_toward_the_lag_limit_only_when_it_is_near() {
    const ONE: usize = 50;
    // The limit is 75 % of 20 events' bytes: 750 bytes.
    let builder = || Hub::builder().epoch(0xab).max_bytes(20 * ONE);

    // Other topics' rings stay small: the hub is far from its byte limit, so however much it
    // received after the subscription's oldest unread event, that event is not at risk.
    let hub = builder().capacity(4).build();
    for _ in 0..10 {
        publish_sized(&hub, "q", ONE).await;
    }
    let mut sub = hub.subscribe(["q"], None).unwrap();
    let seen = publish_sized(&hub, "q", ONE).await;
    assert_eq!(ids(&drain(&mut sub).0), [seen]);
    let mut unread = Vec::new();
    for _ in 0..2 {
        unread.push(publish_sized(&hub, "q", ONE).await);
    }
    for _ in 0..100 {
        publish_sized(&hub, "noise", ONE).await;
    }
    assert_eq!(hub.stats().bytes_held, 8 * ONE);
    let (got, ended) = drain(&mut sub);
    assert_eq!((ids(&got), ended), (unread, false), "not ended");

    // Here other topics fill the hub to its byte limit, which evicts the oldest events of
    // the hub first, whatever their topic: the subscription's are among them.
    let hub = builder().build();
    let mut sub = hub.subscribe(["q"], None).unwrap();
    for _ in 0..10 {
        publish_sized(&hub, "spacer", ONE).await;
    }
    let seen = publish_sized(&hub, "q", ONE).await;
    assert_eq!(id_of(&sub.next().await.unwrap()), Some(seen.as_str()));
    for _ in 0..9 {
        publish_sized(&hub, "spacer", ONE).await;
    }
    let mut unread = Vec::new();
    for _ in 0..3 {
        unread.push(publish_sized(&hub, "q", ONE).await);
    }
    assert_eq!(
        hub.stats().bytes_held,
        20 * ONE,
        "full: each event evicts the oldest"
    );
    // 12 more: 15 events (750 bytes) since the oldest unread one, which is 6 from eviction.
    for _ in 0..12 {
        publish_sized(&hub, "noise", ONE).await;
    }
    let mut peek = hub.subscribe(["q"], Some(&seen)).unwrap();
    assert_eq!(ids(&drain(&mut peek).0), unread, "nothing of `q` lost yet");
    drop(peek);
    let event = sub
        .next()
        .now_or_never()
        .flatten()
        .expect("within the limit");
    assert_eq!(id_of(&event), Some(unread[0].as_str()));
    // The oldest unread is now `unread[1]`: 14 events since it (700 bytes); two more make
    // 800, beyond the limit, while the hub still holds it.
    for _ in 0..2 {
        publish_sized(&hub, "noise", ONE).await;
    }
    assert_eq!(
        sub.next().now_or_never(),
        Some(None),
        "ended at the hub's limit"
    );
    let stats = hub.stats();
    assert_eq!((stats.lagged_ends, stats.lagged_ends_lossless), (1, 1));
    let mut resumed = hub.subscribe(["q"], Some(&unread[0])).unwrap();
    assert_eq!(ids(&drain(&mut resumed).0), unread[1..]);
    assert_eq!(hub.stats().resets, 0);
}

#[tokio::test(start_paused = true)]
async fn a_reader_not_polled_until_events_were_evicted_ends_and_gets_a_stale_reset() {
    let hub = Hub::builder().capacity(100).build();
    let mut sub = hub.subscribe(["t"], None).unwrap();
    let read = publish_n(&hub, "t", "", 5).await;
    assert_eq!(ids(&drain(&mut sub).0), read);
    // Never polled while it was between the limit and the end of the ring.
    publish_n(&hub, "t", "", 101).await;
    assert_eq!(sub.next().now_or_never(), Some(None));
    let stats = hub.stats();
    assert_eq!((stats.lagged_ends, stats.lagged_ends_lossless), (1, 0));
    let mut resumed = hub.subscribe(["t"], Some(&read[4])).unwrap();
    let (got, _) = drain(&mut resumed);
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0]), reset_bytes("stale", &hub.last_id()));

    // One read copies a batch out of the ring; the ring then evicts those events. The
    // subscription still delivers them, in order, then ends before the first event it lost.
    let mut sub = hub.subscribe(["t"], None).unwrap();
    let batch = publish_n(&hub, "t", "", 5).await;
    assert_eq!(id_of(&sub.next().await.unwrap()), Some(batch[0].as_str()));
    publish_n(&hub, "t", "", 150).await;
    let (got, ended) = drain(&mut sub);
    assert_eq!((ids(&got), ended), (batch[1..].to_vec(), true));
    let stats = hub.stats();
    assert_eq!((stats.lagged_ends, stats.lagged_ends_lossless), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_client_without_an_id_gets_one_event_before_the_lag_limit_ends_it() {
    let hub = Hub::builder().capacity(100).build();
    let mut sub = hub.subscribe(["t"], None).unwrap();
    assert!(drain(&mut sub).0.is_empty());
    let missed = publish_n(&hub, "t", "", 90).await;
    // Ending now would make the browser start over without a `Last-Event-ID`.
    let (got, ended) = drain(&mut sub);
    assert_eq!((ids(&got), ended), (vec![missed[0].clone()], true));
    assert_eq!(hub.stats().lagged_ends_lossless, 1);
    let mut resumed = hub.subscribe(["t"], Some(&missed[0])).unwrap();
    assert_eq!(ids(&drain(&mut resumed).0), missed[1..]);

    // With `initial_id` the client has one from the start.
    let hub = Hub::builder().capacity(100).initial_id(true).build();
    let mut sub = hub.subscribe(["t"], None).unwrap();
    let (got, _) = drain(&mut sub);
    let start = id_of(&got[0]).unwrap().to_owned();
    let missed = publish_n(&hub, "t", "", 90).await;
    assert_eq!(drain(&mut sub), (Vec::new(), true));
    let mut resumed = hub.subscribe(["t"], Some(&start)).unwrap();
    assert_eq!(ids(&drain(&mut resumed).0), missed);
}

#[tokio::test(start_paused = true)]
async fn a_resume_that_starts_beyond_the_limit_is_armed_once_it_catches_up() {
    let hub = Hub::builder().epoch(0xab).capacity(100).build();
    let backlog = publish_n(&hub, "t", "", 90).await;
    let mut sub = hub.subscribe(["t"], Some("00000000000000ab-0")).unwrap();
    // 90 behind from the start: the replay is delivered, not ended.
    let first = sub.next().await.unwrap();
    let more = publish_n(&hub, "t", "", 5).await;
    let (got, ended) = drain(&mut sub);
    assert!(!ended);
    let mut all = vec![first];
    all.extend(got);
    assert_eq!(ids(&all), [backlog, more].concat());
    // Caught up, it is held to the limit again.
    let last = hub.last_id();
    publish_n(&hub, "t", "", 76).await;
    assert_eq!(sub.next().now_or_never(), Some(None));
    let mut resumed = hub.subscribe(["t"], Some(&last)).unwrap();
    assert_eq!(drain(&mut resumed).0.len(), 76);
}

#[tokio::test(start_paused = true)]
async fn the_lag_limit_at_its_extremes() {
    // 100 %: off. A reader with the whole ring unread is still served...
    let hub = Hub::builder().capacity(10).lag_limit_percent(100).build();
    let mut sub = hub.subscribe(["t"], None).unwrap();
    drain(&mut sub);
    let all = publish_n(&hub, "t", "", 10).await;
    let (got, ended) = drain(&mut sub);
    assert_eq!((ids(&got), ended), (all, false));
    // ... and ended only after losing one, as without the limit.
    let seen = hub.last_id();
    publish_n(&hub, "t", "", 11).await;
    assert_eq!(sub.next().now_or_never(), Some(None));
    let stats = hub.stats();
    assert_eq!((stats.lagged_ends, stats.lagged_ends_lossless), (1, 0));
    let mut resumed = hub.subscribe(["t"], Some(&seen)).unwrap();
    assert!(text(&drain(&mut resumed).0[0]).starts_with("event: reset\n"));

    // 1 % (and 0, clamped to 1): one unread event is served, two end the subscription.
    for percent in [1, 0] {
        let hub = Hub::builder()
            .capacity(100)
            .lag_limit_percent(percent)
            .build();
        let mut sub = hub.subscribe(["t"], None).unwrap();
        drain(&mut sub);
        for _ in 0..3 {
            let id = hub.publish("t", data("x")).await.unwrap();
            assert_eq!(id_of(&sub.next().await.unwrap()), Some(id.as_str()));
        }
        let seen = hub.last_id();
        let missed = publish_n(&hub, "t", "", 2).await;
        assert_eq!(sub.next().now_or_never(), Some(None), "{percent}");
        assert_eq!(hub.stats().lagged_ends_lossless, 1);
        let mut resumed = hub.subscribe(["t"], Some(&seen)).unwrap();
        assert_eq!(ids(&drain(&mut resumed).0), missed);
    }
}

#[tokio::test(start_paused = true)]
async fn skip_to_live_skips_at_the_lag_limit() {
    let hub = Hub::builder()
        .capacity(100)
        .overflow(OverflowPolicy::SkipToLive)
        .build();
    let mut sub = hub.subscribe(["a", "b"], None).unwrap();
    let read = publish_n(&hub, "a", "", 2).await;
    assert_eq!(ids(&drain(&mut sub).0), read);
    publish_n(&hub, "a", "", 76).await;
    publish_n(&hub, "b", "", 3).await;
    let position = hub.last_id();
    let marker = sub.next().await.unwrap();
    assert_eq!(
        text(&marker),
        format!("event: lagged\ndata: {{\"skipped\":79}}\nid: {position}\n\n")
    );
    assert!(drain(&mut sub).0.is_empty());
    let live = hub.publish("b", data("live")).await.unwrap();
    assert_eq!(id_of(&sub.next().await.unwrap()), Some(live.as_str()));
    let stats = hub.stats();
    assert_eq!((stats.lagged_skips, stats.lagged_ends), (1, 0));
}

#[tokio::test]
async fn reset_markers_for_unknown_future_and_foreign_ids() {
    let hub = Hub::new();
    let other = Hub::new();
    hub.publish("t", data("1")).await.unwrap();
    let current = hub.publish("t", data("2")).await.unwrap();
    let foreign = other.publish("t", data("x")).await.unwrap();
    let future = format!("{}-1000000", current.split_once('-').unwrap().0);
    let long = "9".repeat(10_000);
    let cases = [
        ("garbage", "unknown"),
        ("42", "unknown"),
        ("\0\u{fffd}é", "unknown"),
        (long.as_str(), "unknown"),
        (foreign.as_str(), "epoch"),
        (future.as_str(), "future"),
    ];
    for (last_event_id, reason) in cases {
        let current = hub.last_id();
        let mut sub = hub.subscribe(["t", "u"], Some(last_event_id)).unwrap();
        let (got, ended) = drain(&mut sub);
        assert!(!ended);
        assert_eq!(got.len(), 1, "{last_event_id:?}");
        assert_eq!(
            text(&got[0]),
            reset_bytes(reason, &current),
            "{last_event_id:?}"
        );
        // Then live.
        let next = hub.publish("u", data("live")).await.unwrap();
        assert_eq!(id_of(&sub.next().await.unwrap()), Some(next.as_str()));
    }
    assert_eq!(hub.stats().resets, cases.len() as u64);
}

#[tokio::test]
async fn reset_marker_for_a_stale_id_in_any_followed_topic() {
    let hub = Hub::builder().capacity(2).build();
    let a1 = hub.publish("a", data("a1")).await.unwrap();
    let b1 = hub.publish("b", data("b1")).await.unwrap();
    let a2 = hub.publish("a", data("a2")).await.unwrap();
    let a3 = hub.publish("a", data("a3")).await.unwrap(); // evicts a1
    let b2 = hub.publish("b", data("b2")).await.unwrap();
    let b3 = hub.publish("b", data("b3")).await.unwrap(); // evicts b1

    // `a` lost a1 only, which is not after a1: resuming after it is exact.
    let mut sub = hub.subscribe(["a"], Some(&a1)).unwrap();
    let got: Vec<_> = drain(&mut sub)
        .0
        .iter()
        .map(|e| id_of(e).unwrap().to_owned())
        .collect();
    assert_eq!(got, [a2.clone(), a3.clone()]);

    // After b1 nothing is lost in either topic (b1 itself was seen).
    let mut sub = hub.subscribe(["a", "b"], Some(&b1)).unwrap();
    let got: Vec<_> = drain(&mut sub)
        .0
        .iter()
        .map(|e| id_of(e).unwrap().to_owned())
        .collect();
    assert_eq!(got, [a2.clone(), a3.clone(), b2.clone(), b3.clone()]);

    // After a1, `b` lost b1: one stale topic is enough for a reset.
    let mut sub = hub.subscribe(["a", "b"], Some(&a1)).unwrap();
    let got = drain(&mut sub).0;
    assert_eq!(got.len(), 1);
    assert_eq!(text(&got[0]), reset_bytes("stale", &b3));

    // A topic that never had events is never stale.
    let mut sub = hub.subscribe(["a", "quiet"], Some(&a2)).unwrap();
    let got: Vec<_> = drain(&mut sub)
        .0
        .iter()
        .map(|e| id_of(e).unwrap().to_owned())
        .collect();
    assert_eq!(got, [a3]);
}

/// Many small events, one per topic, fill the hub's memory limit long before its byte limit:
/// the lag limit counts memory too, so a subscription about to lose its unread events to that
/// limit ends while they are all held.
#[tokio::test(start_paused = true)]
async fn the_hub_memory_limit_counts_toward_the_lag_limit() {
    let hub = || {
        Hub::builder()
            .epoch(0xab)
            .max_bytes(usize::MAX)
            .max_memory(64 * 1024)
            .build()
    };
    // Subscribes to `q`, leaves three events of it unread and returns them.
    async fn behind(hub: &Hub) -> (Subscription, String, Vec<String>) {
        let mut sub = hub.subscribe(["q"], None).unwrap();
        let seen = hub.publish("q", data("seen")).await.unwrap();
        assert_eq!(id_of(&sub.next().await.unwrap()), Some(seen.as_str()));
        let mut unread = Vec::new();
        for i in 0..3 {
            unread.push(hub.publish("q", data(&i.to_string())).await.unwrap());
        }
        (sub, seen, unread)
    }
    // Whether every unread event of `q` after `seen` is still held.
    let all_held = |hub: &Hub, seen: &str, unread: &[String]| {
        let mut peek = hub.subscribe(["q"], Some(seen)).unwrap();
        ids(&drain(&mut peek).0) == unread
    };
    let noise = |hub: &Hub, i: usize| hub.publish_now(format!("user:{i}"), data("x")).unwrap();

    // How many events to other topics evict the first unread one, on a twin hub.
    let twin = hub();
    let (_sub, seen, unread) = behind(&twin).await;
    let mut evicting = 0;
    while all_held(&twin, &seen, &unread) {
        noise(&twin, evicting);
        evicting += 1;
    }
    assert!(
        twin.stats().bytes_held < 64 * 1024,
        "memory binds, not bytes"
    );

    // One fewer: everything is held, and the subscription is past the lag limit.
    let hub = hub();
    let (mut sub, seen, unread) = behind(&hub).await;
    for i in 0..evicting - 1 {
        noise(&hub, i);
    }
    assert!(all_held(&hub, &seen, &unread));
    assert_eq!(sub.next().now_or_never(), Some(None), "ended at the limit");
    let stats = hub.stats();
    assert_eq!((stats.lagged_ends, stats.lagged_ends_lossless), (1, 1));
    let mut resumed = hub.subscribe(["q"], Some(&seen)).unwrap();
    assert_eq!(ids(&drain(&mut resumed).0), unread);
    assert_eq!(hub.stats().resets, 0);
}

#[tokio::test]
async fn hub_wide_byte_limit_evicts_the_oldest_events_first() {
    let one = format!("data: x\nid: {}\n\n", "0".repeat(16) + "-1").len();
    let hub = Hub::builder().max_bytes(3 * one).build();
    let ids: Vec<String> =
        futures::future::join_all(["a", "b", "c", "d"].map(|t| hub.publish(t, data("x"))))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let stats = hub.stats();
    assert_eq!((stats.events_held, stats.bytes_held), (3, 3 * one));
    // `a` lost its only event, the others hold theirs.
    let mut sub = hub
        .subscribe(["a"], Some(&hub.last_id().replace("-4", "-0")))
        .unwrap();
    assert_eq!(text(&drain(&mut sub).0[0]), reset_bytes("stale", &ids[3]));
    let mut sub = hub.subscribe(["b", "c", "d"], Some(&ids[0])).unwrap();
    assert_eq!(drain(&mut sub).0.len(), 3);
}

#[tokio::test]
async fn events_too_large_for_a_topic_or_the_hub_are_refused() {
    let hub = Hub::builder().max_topic_bytes(64).max_bytes(1000).build();
    let err = hub.publish("t", data(&"x".repeat(100))).await.unwrap_err();
    assert!(
        matches!(err, HubError::EventTooLarge { limit: 64, .. }),
        "{err:?}"
    );
    let hub = Hub::builder().max_bytes(50).build();
    let err = hub.publish("t", data(&"x".repeat(100))).await.unwrap_err();
    assert!(matches!(err, HubError::EventTooLarge { limit: 50, .. }));
    assert_eq!(hub.stats().events_published, 0);
    assert_eq!(
        hub.last_id().split_once('-').unwrap().1,
        "0",
        "no id was used up"
    );
}

#[tokio::test(start_paused = true)]
async fn events_expire_with_max_age_and_the_topic_is_reclaimed() {
    let hub = Hub::builder().max_age(Duration::from_secs(10)).build();
    let before = hub.last_id();
    let old = hub.publish("t", data("old")).await.unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    let newer = hub.publish("t", data("newer")).await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    // Expiry runs on the next use of the hub.
    let mut sub = hub.subscribe(["t"], Some(&before)).unwrap();
    assert_eq!(text(&drain(&mut sub).0[0]), reset_bytes("stale", &newer));
    drop(sub);
    let mut sub = hub.subscribe(["t"], Some(&old)).unwrap();
    let got = drain(&mut sub).0;
    assert_eq!(id_of(&got[0]), Some(newer.as_str()));
    drop(sub);
    assert_eq!(hub.stats().events_held, 1);

    tokio::time::advance(Duration::from_secs(6)).await;
    hub.publish("other", data("x")).await.unwrap();
    let stats = hub.stats();
    assert_eq!(stats.events_held, 1, "only `other` holds an event");
    // `t` holds nothing and has no subscribers: only its small idle record remains.
    assert_eq!((stats.topics, stats.idle_topics), (2, 1));
    // A client that saw everything resumes without a reset.
    let mut sub = hub.subscribe(["t"], Some(&newer)).unwrap();
    assert!(drain(&mut sub).0.is_empty());
    assert_eq!(
        hub.stats().idle_topics,
        0,
        "following it again makes it active"
    );
    drop(sub);

    tokio::time::advance(Duration::from_secs(11)).await;
    hub.publish("other", data("y")).await.unwrap();
    let stats = hub.stats();
    assert_eq!(
        (stats.topics, stats.idle_topics, stats.events_held),
        (1, 0, 1)
    );
}

#[tokio::test]
async fn idle_records_keep_resumes_precise_and_forgetting_is_conservative() {
    // `quiet` delivers its only event to a client that then drops; hub-wide byte pressure
    // evicts that event and, later, newer events of other topics.
    let one = format!("data: b\nid: {}-1\n\n", "0".repeat(16)).len();
    for (max_idle, expect_reset) in [(100, false), (0, true)] {
        let hub = Hub::builder()
            .max_idle_topics(max_idle)
            .max_bytes(2 * one + 2)
            .build();
        let mut sub = hub.subscribe(["quiet"], None).unwrap();
        hub.publish("quiet", data("b")).await.unwrap();
        let seen = id_of(&sub.next().await.unwrap()).unwrap().to_owned();
        drop(sub);
        for i in 0..5 {
            hub.publish(format!("busy{i}"), data("b")).await.unwrap();
        }
        let stats = hub.stats();
        assert_eq!(stats.events_held, 2);
        assert_eq!(stats.idle_topics, if max_idle == 0 { 0 } else { 4 });
        let mut sub = hub.subscribe(["quiet"], Some(&seen)).unwrap();
        let got = drain(&mut sub).0;
        if expect_reset {
            // Forgotten: the hub cannot tell what `quiet` lost, so it resets rather than
            // risk a silent gap.
            assert_eq!(got.len(), 1);
            assert_eq!(text(&got[0]), reset_bytes("stale", &hub.last_id()));
        } else {
            // Remembered: the client saw everything `quiet` ever had.
            assert!(got.is_empty(), "{got:?}");
        }
    }
}

#[tokio::test]
async fn subscribe_and_drop_cycles_leave_nothing_behind() {
    let hub = Hub::new();
    let _keep = hub.subscribe(["lobby"], None).unwrap();
    hub.publish("lobby", data("x")).await.unwrap();
    let baseline = hub.stats();
    assert_eq!((baseline.topics, baseline.subscribers), (1, 1));
    for i in 0..100_000u32 {
        let topics = [format!("user:{}", i % 1000), "lobby".to_owned()];
        let sub = hub.subscribe(&topics, None).unwrap();
        drop(sub);
    }
    let stats = hub.stats();
    assert_eq!(
        (stats.topics, stats.subscribers, stats.idle_topics),
        (1, 1, 0)
    );
    assert_eq!(stats.events_held, 1);
}

#[tokio::test]
async fn close_ends_subscriptions_and_refuses_further_use() {
    let hub = Hub::new();
    let mut reading = hub.subscribe(["a"], None).unwrap();
    let mut pending = hub.subscribe(["a", "b"], None).unwrap();
    let waiter = tokio::spawn(async move { pending.next().await });
    tokio::task::yield_now().await;
    hub.publish("a", data("1")).await.unwrap();
    hub.publish("a", data("2")).await.unwrap();
    assert!(reading.next().await.is_some());
    let closed = hub.closed();

    hub.close();
    assert!(hub.is_closed());
    within(closed).await;
    // Ends at the next poll, even with events left unread.
    assert!(reading.next().await.is_none());
    let first = within(waiter).await.unwrap();
    assert!(first.is_none() || first.is_some_and(|e| text(&e).starts_with("data: 1\n")));
    assert_eq!(hub.publish("a", data("3")).await, Err(HubError::Closed));
    assert_eq!(hub.publish_now("a", data("3")), Err(HubError::Closed));
    assert_eq!(hub.subscribe(["a"], None).unwrap_err(), HubError::Closed);
    hub.close();
    let stats = hub.stats();
    assert_eq!(
        (
            stats.subscribers,
            stats.topics,
            stats.events_held,
            stats.bytes_held
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(stats.events_published, 2);
}

#[tokio::test]
async fn a_pending_subscription_ends_when_the_hub_closes() {
    let hub = Hub::new();
    let mut sub = hub.subscribe(["a"], None).unwrap();
    let reader = tokio::spawn(async move { sub.next().await });
    tokio::task::yield_now().await;
    hub.close();
    assert!(within(reader).await.unwrap().is_none());
}

#[tokio::test]
async fn the_shutdown_token_closes_the_hub() {
    let token = CancellationToken::new();
    let hub = Hub::builder().shutdown(token.clone()).build();
    let mut sub = hub.subscribe(["a"], None).unwrap();
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while sub.next().await.is_some() {
            got += 1;
        }
        got
    });
    hub.publish("a", data("1")).await.unwrap();
    tokio::task::yield_now().await;
    let closed = hub.closed();
    token.cancel();
    assert_eq!(within(reader).await.unwrap(), 1);
    within(closed).await;
    assert!(hub.is_closed());
    assert_eq!(hub.publish("a", data("2")).await, Err(HubError::Closed));
}

/// Built outside any runtime, the hub cannot start its watch task: each subscription watches
/// the token itself, and a waiting one still ends when it is cancelled.
#[test]
fn the_shutdown_token_closes_a_hub_built_outside_a_runtime() {
    let token = CancellationToken::new();
    let hub = Hub::builder().shutdown(token.clone()).build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut sub = hub.subscribe(["a"], None).unwrap();
        let reader = tokio::spawn(async move { sub.next().await.is_none() });
        tokio::task::yield_now().await;
        token.cancel();
        assert!(
            within(reader).await.unwrap(),
            "the waiting subscription ended"
        );
        assert!(hub.is_closed());
    });
}

#[tokio::test]
async fn publishing_after_the_token_is_cancelled_fails_even_with_no_subscriber() {
    let token = CancellationToken::new();
    let hub = Hub::builder().shutdown(token.clone()).build();
    hub.publish("a", data("1")).await.unwrap();
    token.cancel();
    assert_eq!(hub.publish("a", data("2")).await, Err(HubError::Closed));
    assert!(hub.is_closed());
}

#[tokio::test]
async fn dropping_the_last_hub_handle_ends_subscriptions() {
    let hub = Hub::new();
    let clone = hub.clone();
    let mut sub = hub.subscribe(["a"], None).unwrap();
    drop(hub);
    clone.publish("a", data("still open")).await.unwrap();
    assert!(sub.next().await.is_some());
    drop(clone);
    assert!(sub.next().await.is_none());
}

#[tokio::test]
async fn limits_are_typed_errors() {
    let hub = Hub::builder()
        .max_subscribers(2)
        .max_topics_per_subscription(3)
        .max_topic_len(8)
        .build();
    assert_eq!(
        hub.subscribe(Vec::<String>::new(), None).unwrap_err(),
        HubError::NoTopics
    );
    assert_eq!(
        hub.subscribe(["a", "b", "c", "a"], None).unwrap_err(),
        HubError::TooManyTopics { limit: 3 }
    );
    assert_eq!(
        hub.subscribe(["a", ""], None).unwrap_err(),
        HubError::EmptyTopic
    );
    assert_eq!(hub.publish("", data("x")).await, Err(HubError::EmptyTopic));
    assert_eq!(
        hub.subscribe(["123456789"], None).unwrap_err(),
        HubError::TopicTooLong { len: 9, limit: 8 }
    );
    assert_eq!(
        hub.publish("123456789", data("x")).await,
        Err(HubError::TopicTooLong { len: 9, limit: 8 })
    );
    // Any other name is fine, including non-ASCII and control characters.
    let first = hub.subscribe(["é", "a\nb", "a b:c"], None).unwrap();
    assert_eq!(first.topic_count(), 3);
    let second = hub.subscribe(["a"], None).unwrap();
    assert_eq!(
        hub.subscribe(["a"], None).unwrap_err(),
        HubError::TooManySubscribers { limit: 2 }
    );
    drop(second);
    let _third = hub.subscribe(["a"], None).unwrap();
    assert_eq!(hub.stats().subscribers, 2);
    // Errors say what is wrong.
    assert_eq!(
        HubError::TopicTooLong { len: 9, limit: 8 }.to_string(),
        "topic name of 9 bytes exceeds the limit of 8 bytes"
    );
    let _: &dyn std::error::Error = &HubError::Closed;
}

#[tokio::test]
async fn stats_follow_publishes_subscriptions_and_eviction() {
    let hub = Hub::builder().capacity(2).build();
    assert_eq!(hub.stats(), Default::default());
    let sub = hub.subscribe(["a", "b"], None).unwrap();
    let mut bytes = Vec::new();
    for topic in ["a", "a", "a", "c"] {
        let id = hub.publish(topic, data("xy")).await.unwrap();
        bytes.push(format!("data: xy\nid: {id}\n\n").len());
    }
    let stats = hub.stats();
    assert_eq!(stats.events_published, 4);
    assert_eq!(stats.events_held, 3, "a holds 2 of its 3, c holds 1");
    assert_eq!(stats.bytes_held, bytes[1] + bytes[2] + bytes[3]);
    assert_eq!(stats.subscribers, 1);
    assert_eq!(stats.topics, 3);
    drop(sub);
    let stats = hub.stats();
    // `b` never had an event and is reclaimed; `a` and `c` hold events.
    assert_eq!(
        (stats.subscribers, stats.topics, stats.idle_topics),
        (0, 2, 0)
    );
    assert!(format!("{hub:?}").contains("events_published: 4"));
}

#[tokio::test]
async fn initial_id_gives_a_fresh_client_a_resume_point() {
    let hub = Hub::builder().initial_id(true).build();
    hub.publish("a", data("before")).await.unwrap();
    let position = hub.last_id();
    let mut sub = hub.subscribe(["a"], None).unwrap();
    let first = sub.next().await.unwrap();
    assert_eq!(text(&first), format!("id: {position}\n\n"));
    let next = hub.publish("a", data("after")).await.unwrap();
    assert_eq!(id_of(&sub.next().await.unwrap()), Some(next.as_str()));
    // A resuming client already has an id: no extra event.
    let mut resumed = hub.subscribe(["a"], Some(&position)).unwrap();
    let got = drain(&mut resumed).0;
    assert_eq!(got.len(), 1);
    assert_eq!(id_of(&got[0]), Some(next.as_str()));
}

#[tokio::test]
async fn a_subscription_plugs_into_sse_body_without_copying_events() {
    use http_body_util::BodyExt;
    use tower_sse::{KeepAlive, SseBody};

    let hub = Hub::new();
    let sub = hub.subscribe(["a"], None).unwrap();
    let mut witness = hub.subscribe(["a"], None).unwrap();
    let body = SseBody::new(sub)
        .keep_alive(KeepAlive::disabled())
        .coalesce_budget(0);
    let mut body = std::pin::pin!(body);
    hub.publish("a", Event::new().event("msg").unwrap().data("hello"))
        .await
        .unwrap();
    let shared = witness.next().await.unwrap();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&frame[..], shared.as_bytes());
    assert_eq!(
        frame.as_ptr(),
        shared.as_bytes().as_ptr(),
        "same bytes, not a copy"
    );
    hub.close();
    assert!(body.frame().await.is_none());
}

/// Readers following many topics on their own threads while another thread publishes
/// alternately to the first and the last of them, with more threads than cores so that
/// readers are descheduled mid-scan. A reader scans its topics one by one, so without the
/// hub's visibility watermark it would sometimes see a newer event in the last topic before
/// an older one in the first, which it had just scanned.
#[test]
fn merged_order_holds_against_a_racing_publisher() {
    const TOPICS: usize = 64;
    const READERS: usize = 4;
    const EVENTS: usize = 20_000;
    // The ring holds every event and the lag limit is off: this is about order only, however
    // far behind a descheduled reader falls.
    let hub = Hub::builder()
        .capacity(EVENTS)
        .lag_limit_percent(100)
        .build();
    let names: Vec<String> = (0..TOPICS).map(|t| format!("t{t:02}")).collect();
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let mut sub = hub.subscribe(&names, None).unwrap();
            std::thread::spawn(move || {
                futures::executor::block_on(async {
                    let mut last = 0;
                    for _ in 0..EVENTS {
                        let event = sub.next().await.expect("open");
                        let seq = seq(id_of(&event).unwrap());
                        assert!(seq > last, "{seq} after {last}");
                        last = seq;
                    }
                    last
                })
            })
        })
        .collect();
    for i in 0..EVENTS {
        let topic = if i % 2 == 0 { 0 } else { TOPICS - 1 };
        hub.publish_now(&names[topic], data("x")).unwrap();
    }
    for reader in readers {
        assert_eq!(reader.join().unwrap(), EVENTS as u64);
    }
}

/// Publishes to `a` then `z` when dropped.
struct PublishOnDrop(Option<Hub>);

impl std::task::Wake for PublishOnDrop {
    fn wake(self: std::sync::Arc<Self>) {}
}

impl Drop for PublishOnDrop {
    fn drop(&mut self) {
        if let Some(hub) = self.0.take() {
            hub.publish_now("a", data("older")).unwrap();
            hub.publish_now("z", data("newer")).unwrap();
        }
    }
}

/// The same race made deterministic: a subscription following `a` and `z` replaces its
/// waker in `a` and drops the old one between scanning `a` and `z`; that drop publishes to
/// `a` and then `z`. The event in `z` is visible at once, but the older one in `a` must still
/// come first.
#[test]
fn an_event_published_mid_scan_does_not_overtake_an_older_one() {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    let hub = Hub::new();
    let mut sub = hub.subscribe(["a", "z"], None).unwrap();
    let z0 = hub.publish_now("z", data("z0")).unwrap();
    let publishing = Waker::from(Arc::new(PublishOnDrop(Some(hub.clone()))));
    // First poll: `a` has nothing and keeps a clone of the waker; `z` yields z0.
    match Pin::new(&mut sub).poll_next(&mut Context::from_waker(&publishing)) {
        Poll::Ready(Some(event)) => assert_eq!(id_of(&event), Some(z0.as_str())),
        other => panic!("{other:?}"),
    }
    drop(publishing); // `a` now holds the last clone.
    let mut cx = Context::from_waker(Waker::noop());
    let mut next = || match Pin::new(&mut sub).poll_next(&mut cx) {
        Poll::Ready(Some(event)) => text(&event).to_owned(),
        other => panic!("{other:?}"),
    };
    assert!(next().starts_with("data: older\n"));
    assert!(next().starts_with("data: newer\n"));
}

struct Counted;

impl std::task::Wake for Counted {
    fn wake(self: std::sync::Arc<Self>) {}
}

#[test]
fn wakers_are_released_on_publish_and_on_drop() {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Waker};

    let hub = Hub::new();
    let counted = Arc::new(Counted);
    let waker = Waker::from(Arc::clone(&counted));
    let mut sub = hub.subscribe(["a", "b"], None).unwrap();
    let poll = |sub: &mut Subscription| {
        Pin::new(sub)
            .poll_next(&mut Context::from_waker(&waker))
            .is_pending()
    };
    assert!(poll(&mut sub));
    assert!(poll(&mut sub), "polling again does not register twice");
    // Ours, the waker, and one registration per topic.
    assert_eq!(Arc::strong_count(&counted), 4);
    hub.publish_now("a", data("x")).unwrap();
    assert_eq!(Arc::strong_count(&counted), 3, "woken and released by `a`");
    assert!(!poll(&mut sub), "the event is ready");
    assert!(poll(&mut sub));
    assert_eq!(Arc::strong_count(&counted), 4);
    drop(sub);
    assert_eq!(Arc::strong_count(&counted), 2, "released by both topics");
}
