//! The timers and signals that every SSE body shares: keep-alive, shutdown, maximum lifetime.
//!
//! [`SseBody`](crate::SseBody) and the layer's body wrapper both hold one [`Lifecycle`]; they
//! differ only in what counts as a boundary where a ping may go or the stream may end.
//!
//! A body's own state is kept small, because an idle server holds one per open connection:
//! the settings are shared behind an `Arc` (one for every body of a layer, a process-wide one
//! for bodies on the defaults), the keep-alive timer lives inline, and the shutdown and
//! lifetime watches are allocated only when set.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::keep_alive::KeepAlive;

/// Settings for a [`Lifecycle`]; shared behind an `Arc` by every body built from them.
#[derive(Clone, Debug, Default)]
pub(crate) struct LifecycleConfig {
    pub(crate) keep_alive: Option<KeepAlive>,
    pub(crate) shutdown: Option<CancellationToken>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) lifetime_jitter: Option<Duration>,
    pub(crate) final_event: Option<Bytes>,
}

impl LifecycleConfig {
    /// The default settings: the default keep-alive and nothing else.
    pub(crate) fn with_default_keep_alive() -> Self {
        LifecycleConfig {
            keep_alive: Some(KeepAlive::new()),
            ..Default::default()
        }
    }

    /// The default settings, shared by every body that keeps them.
    pub(crate) fn shared_default() -> Arc<LifecycleConfig> {
        static DEFAULT: LazyLock<Arc<LifecycleConfig>> =
            LazyLock::new(|| Arc::new(LifecycleConfig::with_default_keep_alive()));
        Arc::clone(&DEFAULT)
    }

    /// The idle interval of the keep-alive, if it is on.
    fn interval(&self) -> Option<Duration> {
        self.keep_alive
            .as_ref()
            .and_then(KeepAlive::current_interval)
    }

    /// The lifetime for one connection: `max_lifetime` minus a random part of the jitter
    /// (10 % of the lifetime unless set), so connections opened together do not all end
    /// together.
    fn pick_lifetime(&self) -> Option<Duration> {
        let lifetime = self.max_lifetime?;
        let jitter = self.lifetime_jitter.unwrap_or(lifetime / 10).min(lifetime);
        let nanos = jitter.as_nanos().min(u64::MAX as u128) as u64;
        let offset = if nanos == 0 {
            0
        } else {
            random_u64() % nanos.saturating_add(1)
        };
        Some(lifetime - Duration::from_nanos(offset))
    }
}

/// A random number from the standard library's per-process hash keys and a counter; enough to
/// spread connection lifetimes, not for anything secret.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

/// Why a body is ending early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndReason {
    Shutdown,
    Lifetime,
}

/// `from + duration`, or a point decades away when that is past what an `Instant` holds (an
/// interval or lifetime of `Duration::MAX` means "never", not a panic).
fn after(from: Instant, duration: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    from.checked_add(duration)
        .or_else(|| from.checked_add(FAR))
        .unwrap_or(from)
}

/// `Lifecycle::last_frame` when nothing was sent since the idle timer was armed.
const NO_FRAME: u32 = u32::MAX;

/// `duration` in whole milliseconds, rounded up so that a ping never goes early, and saturated
/// below [`NO_FRAME`] (49 days). A whole second is a whole number of milliseconds, so only the
/// fraction of a second is rounded (and no 128-bit division is needed).
fn millis_up(duration: Duration) -> u32 {
    let millis = duration
        .as_secs()
        .saturating_mul(1000)
        .saturating_add(u64::from(duration.subsec_nanos().div_ceil(1_000_000)));
    u32::try_from(millis)
        .unwrap_or(NO_FRAME - 1)
        .min(NO_FRAME - 1)
}

pin_project! {
    /// The running timers of one body. Nothing is armed until [`Lifecycle::start`], called at
    /// the body's first poll, so a response that sat unpolled does not burst pings and needs no
    /// runtime to be built.
    ///
    /// The idle timer is not moved on every frame: a frame only records when it went out (in
    /// milliseconds after the timer was armed), and when the timer fires it is re-armed from
    /// the last frame if there was one. A busy stream so pays one clock read per frame and one
    /// timer wake per interval; the ping still goes out after exactly the interval of silence
    /// (to the millisecond, never early).
    pub(crate) struct Lifecycle {
        config: Arc<LifecycleConfig>,
        #[pin]
        idle: Option<Sleep>,
        watches: Option<Pin<Box<Watches>>>,
        // Milliseconds from the idle timer's arming to the last frame, or `NO_FRAME`.
        last_frame: u32,
        started: bool,
        final_taken: bool,
        keep_alive_off: bool,
    }
}

pin_project! {
    /// The shutdown and lifetime watches, allocated only for bodies that have one.
    struct Watches {
        #[pin]
        shutdown: Option<WaitForCancellationFutureOwned>,
        #[pin]
        lifetime: Option<Sleep>,
    }
}

impl Lifecycle {
    /// A lifecycle on shared settings.
    pub(crate) fn new(config: Arc<LifecycleConfig>) -> Self {
        Lifecycle {
            config,
            idle: None,
            watches: None,
            last_frame: NO_FRAME,
            started: false,
            final_taken: false,
            keep_alive_off: false,
        }
    }

    /// The same lifecycle without its keep-alive: for a body that pings by itself, so that
    /// no idle timer is armed or fed.
    pub(crate) fn without_keep_alive(mut self) -> Self {
        self.keep_alive_off = true;
        self
    }

    /// The settings, copied first if they are shared (call before the first poll).
    pub(crate) fn config_mut(&mut self) -> &mut LifecycleConfig {
        Arc::make_mut(&mut self.config)
    }

    /// The keep-alive this lifecycle sends, if any.
    pub(crate) fn keep_alive(&self) -> Option<&KeepAlive> {
        self.config
            .keep_alive
            .as_ref()
            .filter(|_| !self.keep_alive_off)
    }

    /// Takes the final event, to be sent once when the body ends early.
    pub(crate) fn take_final_event(self: Pin<&mut Self>) -> Option<Bytes> {
        let this = self.project();
        if std::mem::replace(this.final_taken, true) {
            return None;
        }
        this.config.final_event.clone()
    }

    /// Arms the timers; idempotent.
    #[inline]
    pub(crate) fn start(self: Pin<&mut Self>) {
        if !self.started {
            self.arm();
        }
    }

    /// Arms the timers, at the first poll.
    #[cold]
    fn arm(self: Pin<&mut Self>) {
        let mut this = self.project();
        *this.started = true;
        let now = Instant::now();
        if let Some(interval) = this.config.interval().filter(|_| !*this.keep_alive_off) {
            this.idle
                .set(Some(tokio::time::sleep_until(after(now, interval))));
        }
        let config = &**this.config;
        let lifetime = config.pick_lifetime();
        if config.shutdown.is_some() || lifetime.is_some() {
            *this.watches = Some(Box::pin(Watches {
                shutdown: config
                    .shutdown
                    .as_ref()
                    .map(|token| token.clone().cancelled_owned()),
                lifetime: lifetime.map(|lifetime| tokio::time::sleep_until(after(now, lifetime))),
            }));
        }
    }

    /// Whether the body should end now; registers for wake-up otherwise.
    pub(crate) fn poll_end(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Option<EndReason> {
        let watches = self.project().watches.as_mut()?.as_mut().project();
        if let Some(shutdown) = watches.shutdown.as_pin_mut() {
            if shutdown.poll(cx).is_ready() {
                return Some(EndReason::Shutdown);
            }
        }
        if let Some(lifetime) = watches.lifetime.as_pin_mut() {
            if lifetime.poll(cx).is_ready() {
                return Some(EndReason::Lifetime);
            }
        }
        None
    }

    /// Whether a keep-alive is due; registers for wake-up otherwise. When it is due the timer is
    /// re-armed for the next interval.
    pub(crate) fn poll_ping(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Bytes> {
        let this = self.project();
        let (Some(mut idle), Some(keep_alive)) =
            (this.idle.as_pin_mut(), this.config.keep_alive.as_ref())
        else {
            return Poll::Pending;
        };
        let Some(interval) = keep_alive.current_interval() else {
            return Poll::Pending;
        };
        loop {
            ready!(idle.as_mut().poll(cx));
            let last_frame = std::mem::replace(this.last_frame, NO_FRAME);
            if last_frame == NO_FRAME {
                break;
            }
            // Something was sent since the timer was armed: the silence started then.
            let armed = idle.deadline().checked_sub(interval);
            let due = armed.map(|armed| after(armed, Duration::from_millis(u64::from(last_frame))));
            idle.as_mut()
                .reset(due.map_or_else(Instant::now, |due| after(due, interval)));
        }
        idle.as_mut().reset(after(Instant::now(), interval));
        Poll::Ready(keep_alive.ping_bytes().clone())
    }

    /// Records that something was just sent, so the next ping waits a whole interval from now.
    pub(crate) fn touch(self: Pin<&mut Self>) {
        let this = self.project();
        let (Some(idle), Some(interval)) = (this.idle.as_pin_mut(), this.config.interval()) else {
            return;
        };
        let Some(armed) = idle.deadline().checked_sub(interval) else {
            return;
        };
        let since = Instant::now().saturating_duration_since(armed);
        *this.last_frame = millis_up(since);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_times_round_up_to_the_millisecond() {
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_nanos(1), 1),
            (Duration::from_millis(7), 7),
            (Duration::from_nanos(7_000_001), 8),
            (Duration::new(12, 300_000), 12_001),
            (Duration::new(29, 999_999_000), 30_000),
            (Duration::from_secs(u64::from(u32::MAX)), NO_FRAME - 1),
            (Duration::MAX, NO_FRAME - 1),
        ];
        for (duration, millis) in cases {
            assert_eq!(millis_up(duration), millis, "{duration:?}");
            let exact = duration.as_nanos().div_ceil(1_000_000);
            assert_eq!(u128::from(millis), exact.min(u128::from(NO_FRAME - 1)));
        }
    }

    #[test]
    fn lifetime_jitter_stays_in_range() {
        let config = LifecycleConfig {
            max_lifetime: Some(Duration::from_secs(100)),
            ..Default::default()
        };
        for _ in 0..1000 {
            let picked = config.pick_lifetime().unwrap();
            assert!(picked >= Duration::from_secs(90) && picked <= Duration::from_secs(100));
        }
        let exact = LifecycleConfig {
            max_lifetime: Some(Duration::from_secs(5)),
            lifetime_jitter: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(exact.pick_lifetime(), Some(Duration::from_secs(5)));
    }
}
