//! One topic: a ring of encoded events that serves both live fan-out and replay.
//!
//! Entries are events in increasing position order. A position is any increasing `u64` (the
//! in-memory hub uses its hub-wide sequence, Redis its entry ids, which are not dense; nothing
//! here depends on how ids are spelled). Readers hold a cursor, the topic-local index of the
//! next entry they want, and clone entries out (a reference count each), so one ring feeds
//! any number of readers without a copy per reader. Entries are only ever evicted from the
//! front, oldest first, whatever the readers' cursors: a cursor that falls below `head` has
//! lost events.
//!
//! How far a reader is behind is measured in entries (indices) and bytes, never in positions:
//! each entry records how many bytes its topic and the hub had received before it, and the
//! ring publishes its indices and byte count in [`Progress`], which readers load without the
//! lock.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use crate::EncodedEvent;

/// A named topic.
pub(crate) struct Topic {
    name: Arc<str>,
    ring: Mutex<Ring>,
    progress: Arc<Progress>,
}

impl Topic {
    /// A topic with an empty ring that reports events up to `lost_upto` as already lost.
    pub(crate) fn new(name: Arc<str>, lost_upto: u64) -> Self {
        let ring = Ring::new(lost_upto);
        Topic {
            name,
            progress: Arc::clone(&ring.progress),
            ring: Mutex::new(ring),
        }
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The ring's indices and byte count, without its lock.
    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Locks the ring. A poisoned lock is used as is: every ring update leaves it consistent
    /// between statements that could panic.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One event in a ring.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) pos: u64,
    pub(crate) event: EncodedEvent,
    /// Bytes pushed to this topic before this entry.
    pub(crate) topic_offset: u64,
    /// Bytes added to the hub's rings (every topic) before this entry.
    pub(crate) hub_offset: u64,
}

/// A ring's counters, stored by the ring under its lock after every change and loaded by
/// readers without it. Each value is exact when stored; a reader may see one slightly older
/// than another, which only delays a lag decision to its next poll.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    head: AtomicU64,
    tail: AtomicU64,
    bytes_pushed: AtomicU64,
}

impl Progress {
    /// The index of the oldest entry held: entries below it were evicted.
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// The index one past the newest entry.
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(Ordering::Acquire)
    }

    /// Bytes pushed to the topic since it was created.
    pub(crate) fn bytes_pushed(&self) -> u64 {
        self.bytes_pushed.load(Ordering::Acquire)
    }
}

/// The result of [`Ring::read`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// The cursor points at evicted entries.
    Lagged,
    /// Entries were copied (possibly none). `newer` is set when copying stopped at an entry
    /// past the position limit.
    Copied { newer: bool },
}

/// The state of one topic, behind its mutex.
pub(crate) struct Ring {
    entries: VecDeque<Entry>,
    /// Topic-local index of `entries[0]`.
    head: u64,
    bytes: usize,
    /// Bytes pushed since the topic was created: the next entry's `topic_offset`.
    bytes_pushed: u64,
    /// `head`, the tail and `bytes_pushed`, for readers without the lock.
    progress: Arc<Progress>,
    /// The highest position this topic is known to have lost (evicted, or inherited when the
    /// topic was created); `0` when nothing.
    lost_upto: u64,
    /// Tasks waiting for the next entry, by subscription id.
    waiters: HashMap<u64, Waker>,
    /// Open subscriptions following this topic.
    pub(crate) subscribers: usize,
    /// Set while the topic is idle and recorded in the hub's idle list.
    pub(crate) idle_key: Option<u64>,
}

impl Ring {
    fn new(lost_upto: u64) -> Self {
        Ring {
            entries: VecDeque::new(),
            head: 0,
            bytes: 0,
            bytes_pushed: 0,
            progress: Arc::default(),
            lost_upto,
            waiters: HashMap::new(),
            subscribers: 0,
            idle_key: None,
        }
    }

    /// Appends an entry, recording that the hub's rings had received `hub_offset` bytes before
    /// it. Positions must increase: an entry not after the last one is refused and `false`
    /// returned.
    pub(crate) fn push(&mut self, pos: u64, event: EncodedEvent, hub_offset: u64) -> bool {
        if self.entries.back().is_some_and(|last| last.pos >= pos) || pos <= self.lost_upto {
            return false;
        }
        let len = event.len();
        self.entries.push_back(Entry {
            pos,
            event,
            topic_offset: self.bytes_pushed,
            hub_offset,
        });
        self.bytes += len;
        self.bytes_pushed = self.bytes_pushed.saturating_add(len as u64);
        self.publish_progress();
        true
    }

    /// Evicts the oldest entry, returning its position and length.
    pub(crate) fn pop_front(&mut self) -> Option<(u64, usize)> {
        let Entry { pos, event, .. } = self.entries.pop_front()?;
        self.head += 1;
        self.bytes = self.bytes.saturating_sub(event.len());
        self.lost_upto = self.lost_upto.max(pos);
        shrink_deque(&mut self.entries);
        self.publish_progress();
        Some((pos, event.len()))
    }

    /// Stores the indices and byte count for readers without the lock.
    fn publish_progress(&self) {
        let progress = &self.progress;
        progress.head.store(self.head, Ordering::Release);
        progress.tail.store(self.tail(), Ordering::Release);
        progress
            .bytes_pushed
            .store(self.bytes_pushed, Ordering::Release);
    }

    /// Evicts every entry (reporting each to `evicted`) and records every position up to
    /// `upto` as lost, including positions this ring never received: every cursor at or
    /// before the tail now reads as fallen behind, and a new cursor starts at the tail.
    #[cfg(feature = "redis")]
    pub(crate) fn lose_all(&mut self, upto: u64, mut evicted: impl FnMut(u64, usize)) {
        while let Some((pos, len)) = self.pop_front() {
            evicted(pos, len);
        }
        // One phantom entry, evicted: indices stay consistent and old cursors lag.
        self.head += 1;
        self.lost_upto = self.lost_upto.max(upto);
        self.publish_progress();
    }

    /// Drops every entry without counting them as lost (the hub is closing).
    pub(crate) fn clear(&mut self) {
        self.head += self.entries.len() as u64;
        self.entries = VecDeque::new();
        self.bytes = 0;
        self.publish_progress();
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn front_pos(&self) -> Option<u64> {
        self.entries.front().map(|entry| entry.pos)
    }

    pub(crate) fn lost_upto(&self) -> u64 {
        self.lost_upto
    }

    /// The topic-local index one past the newest entry: a cursor there waits for live events.
    pub(crate) fn tail(&self) -> u64 {
        self.head + self.entries.len() as u64
    }

    /// The cursor of the first entry after position `pos` (the tail if none).
    pub(crate) fn index_after(&self, pos: u64) -> u64 {
        self.head + self.entries.partition_point(|entry| entry.pos <= pos) as u64
    }

    /// Copies up to `max` entries from `*next` on, stopping before the first entry whose
    /// position is above `upto`, and advances `*next` past what was copied.
    pub(crate) fn read(
        &self,
        next: &mut u64,
        upto: u64,
        max: usize,
        out: &mut VecDeque<Entry>,
    ) -> Read {
        if *next < self.head {
            return Read::Lagged;
        }
        let start = usize::try_from(*next - self.head).unwrap_or(usize::MAX);
        let mut newer = false;
        for entry in self.entries.iter().skip(start).take(max) {
            if entry.pos > upto {
                newer = true;
                break;
            }
            out.push_back(entry.clone());
            *next += 1;
        }
        Read::Copied { newer }
    }

    /// Records `waker` as waiting for the next entry. Returns the waker it replaces, for the
    /// caller to drop after unlocking.
    pub(crate) fn register(&mut self, id: u64, waker: &Waker) -> Option<Waker> {
        match self.waiters.get(&id) {
            Some(old) if old.will_wake(waker) => None,
            _ => self.waiters.insert(id, waker.clone()),
        }
    }

    /// Forgets a waiting subscription; returns its waker for the caller to drop after unlocking.
    pub(crate) fn unregister(&mut self, id: u64) -> Option<Waker> {
        let waker = self.waiters.remove(&id);
        if self.waiters.capacity() > MIN_KEPT && self.waiters.len() < self.waiters.capacity() / 4 {
            self.waiters.shrink_to(self.waiters.len() * 2);
        }
        waker
    }

    /// Takes every waiting waker, to be woken after unlocking.
    pub(crate) fn take_waiters(&mut self, into: &mut Vec<Waker>) {
        into.extend(self.waiters.drain().map(|(_, waker)| waker));
    }
}

/// Below this capacity, collections are not shrunk.
const MIN_KEPT: usize = 16;

/// Gives back memory once a deque is mostly empty, so that a burst does not leave every
/// topic at its peak size; halving keeps the cost amortized.
fn shrink_deque<T>(deque: &mut VecDeque<T>) {
    if deque.capacity() > MIN_KEPT && deque.len() < deque.capacity() / 4 {
        deque.shrink_to(deque.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Event;

    fn ev(data: &str) -> EncodedEvent {
        Event::new().data(data).encode()
    }

    fn ring_with(positions: &[u64]) -> Ring {
        let mut ring = Ring::new(0);
        for &p in positions {
            assert!(ring.push(p, ev(&p.to_string()), 0));
        }
        ring
    }

    #[test]
    fn refuses_out_of_order_positions() {
        let mut ring = ring_with(&[3, 7]);
        assert!(!ring.push(7, ev("x"), 0));
        assert!(!ring.push(5, ev("x"), 0));
        assert!(ring.push(8, ev("x"), 0));
        ring.pop_front();
        ring.pop_front();
        ring.pop_front();
        // Nothing held, but 8 was lost: an older position cannot come back.
        assert!(!ring.push(8, ev("x"), 0));
        assert!(ring.push(9, ev("x"), 0));
    }

    #[test]
    fn eviction_tracks_bytes_head_and_lost_position() {
        let mut ring = ring_with(&[2, 5, 9]);
        let total = ring.bytes();
        assert_eq!((ring.len(), ring.tail(), ring.lost_upto()), (3, 3, 0));
        let (pos, len) = ring.pop_front().unwrap();
        assert_eq!(pos, 2);
        assert_eq!(ring.bytes(), total - len);
        assert_eq!((ring.len(), ring.tail(), ring.lost_upto()), (2, 3, 2));
        assert_eq!(ring.front_pos(), Some(5));
    }

    #[test]
    fn entries_record_byte_offsets_and_progress_follows_every_change() {
        let topic = Topic::new(Arc::from("t"), 0);
        let progress = || {
            let p = topic.progress();
            (p.head(), p.tail(), p.bytes_pushed())
        };
        let (a, b) = (ev("a"), ev("bb"));
        let (la, lb) = (a.len() as u64, b.len() as u64);
        {
            let mut ring = topic.lock();
            assert!(ring.push(10, a, 500));
            assert!(ring.push(20, b, 900));
            assert!(!ring.push(20, ev("refused"), 0));
        }
        assert_eq!(progress(), (0, 2, la + lb));
        {
            let ring = topic.lock();
            let offsets: Vec<_> = ring
                .entries
                .iter()
                .map(|e| (e.topic_offset, e.hub_offset))
                .collect();
            assert_eq!(offsets, [(0, 500), (la, 900)]);
        }
        topic.lock().pop_front();
        assert_eq!(
            progress(),
            (1, 2, la + lb),
            "eviction keeps the bytes pushed"
        );
        topic.lock().clear();
        assert_eq!(progress(), (2, 2, la + lb));
        #[cfg(feature = "redis")]
        {
            topic.lock().lose_all(30, |_, _| {});
            assert_eq!(progress(), (3, 3, la + lb), "the phantom entry counts");
        }
    }

    #[test]
    fn index_after_positions_between_entries() {
        let mut ring = ring_with(&[2, 5, 9]);
        assert_eq!(ring.index_after(0), 0);
        assert_eq!(ring.index_after(2), 1);
        assert_eq!(ring.index_after(4), 1);
        assert_eq!(ring.index_after(9), 3);
        assert_eq!(ring.index_after(100), 3);
        ring.pop_front();
        assert_eq!(ring.index_after(0), 1);
        assert_eq!(ring.index_after(5), 2);
    }

    #[test]
    fn read_stops_at_limit_position_and_count_and_detects_lag() {
        let mut ring = ring_with(&[2, 5, 9]);
        let mut out = VecDeque::new();
        let mut next = 0;
        assert_eq!(
            ring.read(&mut next, 5, 10, &mut out),
            Read::Copied { newer: true }
        );
        assert_eq!(out.iter().map(|e| e.pos).collect::<Vec<_>>(), [2, 5]);
        assert_eq!(next, 2);
        out.clear();
        assert_eq!(
            ring.read(&mut next, 100, 10, &mut out),
            Read::Copied { newer: false }
        );
        assert_eq!(next, 3);
        let mut next = 0;
        out.clear();
        assert_eq!(
            ring.read(&mut next, 100, 1, &mut out),
            Read::Copied { newer: false }
        );
        assert_eq!(next, 1);
        ring.pop_front();
        ring.pop_front();
        assert_eq!(ring.read(&mut next, 100, 1, &mut out), Read::Lagged);
    }

    #[test]
    fn memory_is_given_back_after_a_burst() {
        let mut ring = Ring::new(0);
        for pos in 1..=1000 {
            ring.push(pos, ev("x"), 0);
        }
        assert!(ring.entries.capacity() >= 1000);
        while ring.len() > 2 {
            ring.pop_front();
        }
        assert!(ring.entries.capacity() <= 64, "{}", ring.entries.capacity());
        let waker = std::task::Waker::noop();
        for id in 0..1000 {
            ring.register(id, waker);
        }
        for id in 0..1000 {
            ring.unregister(id);
        }
        assert!(ring.waiters.capacity() <= 64, "{}", ring.waiters.capacity());
    }

    #[cfg(feature = "redis")]
    #[test]
    fn losing_everything_makes_every_old_cursor_lag() {
        let mut ring = ring_with(&[2, 5]);
        let mut evicted = Vec::new();
        ring.lose_all(9, |pos, _| evicted.push(pos));
        assert_eq!(evicted, [2, 5]);
        assert_eq!((ring.len(), ring.bytes(), ring.lost_upto()), (0, 0, 9));
        let mut out = VecDeque::new();
        // A cursor that had read everything (at the old tail) has lost position 9.
        assert_eq!(ring.read(&mut 2, u64::MAX, 8, &mut out), Read::Lagged);
        let mut fresh = ring.tail();
        assert!(!ring.push(9, ev("x"), 0), "lost positions cannot come back");
        assert!(ring.push(10, ev("x"), 0));
        assert_eq!(
            ring.read(&mut fresh, u64::MAX, 8, &mut out),
            Read::Copied { newer: false }
        );
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn clones_share_the_encoded_bytes() {
        let ring = ring_with(&[1]);
        let mut out = VecDeque::new();
        ring.read(&mut 0, 1, 1, &mut out);
        let stored = &ring.entries[0].event;
        assert_eq!(out[0].event.as_bytes().as_ptr(), stored.as_bytes().as_ptr());
    }
}
