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
//!
//! Each subscription following the topic holds a slot in the ring's waiter table, taken when
//! it subscribes and given back when it goes; a task waiting for the next entry leaves its
//! waker in its slot. The table grows to the topic's peak number of concurrent subscribers
//! (free slots are reused first) and is released whenever the topic has none left.

use std::collections::{VecDeque, vec_deque};
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
    /// Memory the hub charged (every topic) before this entry.
    pub(crate) memory_offset: u64,
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
#[derive(Debug)]
pub(crate) enum Read<'a> {
    /// The cursor points at evicted entries.
    Lagged,
    /// The entries read, oldest first (possibly none). `newer` is set when reading stopped at
    /// an entry past the position limit.
    Entries {
        entries: vec_deque::Iter<'a, Entry>,
        newer: bool,
    },
}

/// The most subscribers a topic can have at once: slots are `u32`.
pub(crate) const MAX_SUBSCRIBERS: usize = u32::MAX as usize;

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
    /// One slot per subscription following the topic, holding the waker of a task waiting
    /// for the next entry. As long as the topic has subscribers, its length is their
    /// peak number since it last had none.
    waiters: Vec<Option<Waker>>,
    /// The slots of `waiters` no subscription holds, the most recently freed last.
    free: Vec<u32>,
    /// The slots of `waiters` holding a waker.
    waiting: usize,
    /// Open subscriptions following this topic.
    subscribers: usize,
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
            waiters: Vec::new(),
            free: Vec::new(),
            waiting: 0,
            subscribers: 0,
            idle_key: None,
        }
    }

    /// Appends an entry, recording that the hub's rings had received `hub_offset` bytes and the
    /// hub had charged `memory_offset` bytes of memory before it. Positions must increase: an
    /// entry not after the last one is refused and `false` returned.
    pub(crate) fn push(
        &mut self,
        pos: u64,
        event: EncodedEvent,
        hub_offset: u64,
        memory_offset: u64,
    ) -> bool {
        if self.entries.back().is_some_and(|last| last.pos >= pos) || pos <= self.lost_upto {
            return false;
        }
        let len = event.len();
        self.entries.push_back(Entry {
            pos,
            event,
            topic_offset: self.bytes_pushed,
            hub_offset,
            memory_offset,
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

    /// Reads up to `max` entries from `*next` on, stopping before the first entry whose
    /// position is above `upto`, and advances `*next` past them.
    pub(crate) fn read(&self, next: &mut u64, upto: u64, max: usize) -> Read<'_> {
        if *next < self.head {
            return Read::Lagged;
        }
        let len = self.entries.len();
        let start = usize::try_from(*next - self.head).map_or(len, |start| start.min(len));
        let end = start.saturating_add(max).min(len);
        // Positions increase: the entries at or below `upto` are a prefix.
        let visible = if self.entries.back().is_some_and(|last| last.pos <= upto) {
            len
        } else {
            self.entries.partition_point(|entry| entry.pos <= upto)
        };
        let stop = end.min(visible.max(start));
        *next += (stop - start) as u64;
        Read::Entries {
            entries: self.entries.range(start..stop),
            newer: stop < end,
        }
    }

    /// Open subscriptions following this topic.
    pub(crate) fn subscribers(&self) -> usize {
        self.subscribers
    }

    /// Counts a new subscriber and gives it a waiter slot, which it holds until
    /// [`remove_subscriber`](Self::remove_subscriber). The hub admits at most
    /// [`MAX_SUBSCRIBERS`] subscriptions, so every slot fits.
    pub(crate) fn add_subscriber(&mut self) -> u32 {
        self.subscribers += 1;
        if let Some(slot) = self.free.pop() {
            return slot;
        }
        // The hub's subscriber cap keeps the table under `u32::MAX` slots.
        debug_assert!(self.waiters.len() < u32::MAX as usize);
        let slot = u32::try_from(self.waiters.len()).unwrap_or(u32::MAX);
        reserve_modestly(&mut self.waiters);
        self.waiters.push(None);
        slot
    }

    /// Forgets a subscriber and frees its slot; returns its waker, for the caller to drop
    /// after unlocking. The waiter table's memory is released once the topic has no
    /// subscribers left.
    pub(crate) fn remove_subscriber(&mut self, slot: u32) -> Option<Waker> {
        let waker = self.waiters.get_mut(slot as usize).and_then(Option::take);
        if waker.is_some() {
            self.waiting -= 1;
        }
        self.subscribers = self.subscribers.saturating_sub(1);
        if self.subscribers == 0 {
            self.waiters = Vec::new();
            self.free = Vec::new();
            self.waiting = 0;
        } else {
            reserve_modestly(&mut self.free);
            self.free.push(slot);
        }
        waker
    }

    /// Records `waker` in `slot` as waiting for the next entry. Returns the waker it replaces,
    /// for the caller to drop after unlocking.
    pub(crate) fn register(&mut self, slot: u32, waker: &Waker) -> Option<Waker> {
        let Some(entry) = self.waiters.get_mut(slot as usize) else {
            // Not a slot of this table (cannot happen: slots live as long as their
            // subscription); nothing to replace.
            return None;
        };
        match entry {
            Some(old) if old.will_wake(waker) => None,
            Some(old) => Some(std::mem::replace(old, waker.clone())),
            empty @ None => {
                *empty = Some(waker.clone());
                self.waiting += 1;
                None
            }
        }
    }

    /// Takes every waiting waker, to be woken after unlocking. The slots stay with their
    /// subscriptions.
    pub(crate) fn take_waiters(&mut self, into: &mut Vec<Waker>) {
        if self.waiting == 0 {
            return;
        }
        into.reserve(self.waiting);
        // Empty slots are only read: the table can be long, and most of it idle.
        let waiting = self.waiters.iter_mut().filter(|slot| slot.is_some());
        for waker in waiting.filter_map(Option::take) {
            into.push(waker);
            self.waiting -= 1;
            if self.waiting == 0 {
                break;
            }
        }
    }
}

/// Makes room for one more element, growing by a quarter rather than doubling: a waiter
/// table is as long as its topic's peak number of subscribers, and kept at that length. Small
/// tables grow one slot at a time, so that a topic per user (one subscriber each) costs one
/// slot, not a block.
fn reserve_modestly<T>(vec: &mut Vec<T>) {
    if vec.len() == vec.capacity() {
        vec.reserve_exact(vec.len() / 4 + 1);
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
            assert!(ring.push(p, ev(&p.to_string()), 0, 0));
        }
        ring
    }

    #[test]
    fn refuses_out_of_order_positions() {
        let mut ring = ring_with(&[3, 7]);
        assert!(!ring.push(7, ev("x"), 0, 0));
        assert!(!ring.push(5, ev("x"), 0, 0));
        assert!(ring.push(8, ev("x"), 0, 0));
        ring.pop_front();
        ring.pop_front();
        ring.pop_front();
        // Nothing held, but 8 was lost: an older position cannot come back.
        assert!(!ring.push(8, ev("x"), 0, 0));
        assert!(ring.push(9, ev("x"), 0, 0));
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
            assert!(ring.push(10, a, 500, 0));
            assert!(ring.push(20, b, 900, 0));
            assert!(!ring.push(20, ev("refused"), 0, 0));
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

    /// Reads like a subscription: the positions read, and `newer`; `None` when lagged.
    fn read(ring: &Ring, next: &mut u64, upto: u64, max: usize) -> Option<(Vec<u64>, bool)> {
        match ring.read(next, upto, max) {
            Read::Lagged => None,
            Read::Entries { entries, newer } => Some((entries.map(|e| e.pos).collect(), newer)),
        }
    }

    #[test]
    fn read_stops_at_limit_position_and_count_and_detects_lag() {
        let mut ring = ring_with(&[2, 5, 9]);
        let mut next = 0;
        assert_eq!(read(&ring, &mut next, 5, 10), Some((vec![2, 5], true)));
        assert_eq!(next, 2);
        assert_eq!(read(&ring, &mut next, 100, 10), Some((vec![9], false)));
        assert_eq!(next, 3);
        assert_eq!(read(&ring, &mut next, 100, 10), Some((vec![], false)));
        assert_eq!(next, 3);
        let mut next = 0;
        assert_eq!(read(&ring, &mut next, 100, 1), Some((vec![2], false)));
        assert_eq!(next, 1);
        // Stopped by the count, not by the newer entry beyond it.
        assert_eq!(read(&ring, &mut next, 5, 1), Some((vec![5], false)));
        assert_eq!(read(&ring, &mut next, 5, 1), Some((vec![], true)));
        assert_eq!(read(&ring, &mut next, 1, 10), Some((vec![], true)));
        assert_eq!(next, 2);
        let mut next = 1;
        ring.pop_front();
        ring.pop_front();
        assert_eq!(read(&ring, &mut next, 100, 1), None);
        assert_eq!(next, 1);
    }

    #[test]
    fn memory_is_given_back_after_a_burst() {
        let mut ring = Ring::new(0);
        for pos in 1..=1000 {
            ring.push(pos, ev("x"), 0, 0);
        }
        assert!(ring.entries.capacity() >= 1000);
        while ring.len() > 2 {
            ring.pop_front();
        }
        assert!(ring.entries.capacity() <= 64, "{}", ring.entries.capacity());
    }

    #[test]
    fn waiter_slots_are_reused_and_released_with_the_last_subscriber() {
        let mut ring = Ring::new(0);
        let waker = Waker::noop();
        let kept: Vec<u32> = (0..10).map(|_| ring.add_subscriber()).collect();
        assert_eq!(kept, (0..10).collect::<Vec<_>>());
        let (len, capacity) = (ring.waiters.len(), ring.waiters.capacity());
        for _ in 0..10_000 {
            let slot = ring.add_subscriber();
            assert_eq!(slot, 10, "the freed slot is taken again");
            assert!(ring.register(slot, waker).is_none());
            assert!(ring.remove_subscriber(slot).is_some());
        }
        assert_eq!(
            (ring.waiters.len(), ring.waiters.capacity()),
            (len + 1, capacity)
        );
        assert!(ring.free.capacity() <= 16, "{}", ring.free.capacity());
        assert_eq!((ring.subscribers(), ring.waiting), (10, 0));

        // A crowd grows the table by a quarter at a time, and it stays at its peak.
        let crowd: Vec<u32> = (0..1000).map(|_| ring.add_subscriber()).collect();
        assert_eq!(ring.waiters.len(), 1010);
        assert!(
            ring.waiters.capacity() < 1300,
            "{}",
            ring.waiters.capacity()
        );
        for &slot in &crowd {
            ring.remove_subscriber(slot);
        }
        assert_eq!(ring.waiters.len(), 1010);
        assert_eq!(
            ring.add_subscriber(),
            crowd[999],
            "the most recently freed first"
        );

        // With no subscriber left, nothing is kept.
        for slot in kept.into_iter().chain([crowd[999]]) {
            ring.remove_subscriber(slot);
        }
        assert_eq!(ring.subscribers(), 0);
        assert_eq!((ring.waiters.capacity(), ring.free.capacity()), (0, 0));
        assert_eq!(ring.add_subscriber(), 0);
        assert_eq!(
            ring.waiters.capacity(),
            1,
            "a topic per user costs one slot"
        );
    }

    #[test]
    fn waiters_are_taken_and_replaced_by_slot() {
        use std::sync::atomic::AtomicUsize;
        use std::task::Wake;

        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (a, b) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let (wa, wb) = (Waker::from(Arc::clone(&a)), Waker::from(Arc::clone(&b)));
        let mut ring = Ring::new(0);
        let slots: Vec<u32> = (0..4).map(|_| ring.add_subscriber()).collect();
        assert!(ring.register(slots[1], &wa).is_none());
        assert!(
            ring.register(slots[1], &wa).is_none(),
            "the same waker is kept"
        );
        assert_eq!(Arc::strong_count(&a), 3, "not cloned again");
        let replaced = ring
            .register(slots[1], &wb)
            .expect("the old waker is handed back");
        assert!(replaced.will_wake(&wa));
        drop(replaced);
        assert!(ring.register(slots[3], &wa).is_none());
        assert_eq!(ring.waiting, 2);

        let mut woken = Vec::new();
        ring.take_waiters(&mut woken);
        assert_eq!(woken.len(), 2);
        assert_eq!(ring.waiting, 0);
        woken.drain(..).for_each(Waker::wake);
        assert_eq!(
            (a.0.load(Ordering::Relaxed), b.0.load(Ordering::Relaxed)),
            (1, 1)
        );
        ring.take_waiters(&mut woken);
        assert!(woken.is_empty());

        // Slots stay with their subscriptions after a wake.
        assert!(ring.register(slots[1], &wb).is_none());
        assert!(
            ring.remove_subscriber(slots[1])
                .is_some_and(|w| w.will_wake(&wb))
        );
        assert!(ring.remove_subscriber(slots[3]).is_none());
        assert_eq!((ring.subscribers(), ring.waiting), (2, 0));
        assert_eq!(ring.add_subscriber(), slots[3]);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn losing_everything_makes_every_old_cursor_lag() {
        let mut ring = ring_with(&[2, 5]);
        let mut evicted = Vec::new();
        ring.lose_all(9, |pos, _| evicted.push(pos));
        assert_eq!(evicted, [2, 5]);
        assert_eq!((ring.len(), ring.bytes(), ring.lost_upto()), (0, 0, 9));
        // A cursor that had read everything (at the old tail) has lost position 9.
        assert_eq!(read(&ring, &mut 2, u64::MAX, 8), None);
        let mut fresh = ring.tail();
        assert!(
            !ring.push(9, ev("x"), 0, 0),
            "lost positions cannot come back"
        );
        assert!(ring.push(10, ev("x"), 0, 0));
        assert_eq!(
            read(&ring, &mut fresh, u64::MAX, 8),
            Some((vec![10], false))
        );
    }

    #[test]
    fn clones_share_the_encoded_bytes() {
        let ring = ring_with(&[1]);
        let Read::Entries { mut entries, .. } = ring.read(&mut 0, 1, 1) else {
            panic!("lagged");
        };
        let copy = entries.next().cloned().unwrap();
        let stored = &ring.entries[0].event;
        assert_eq!(copy.event.as_bytes().as_ptr(), stored.as_bytes().as_ptr());
    }
}
