//! The timers and signals that every SSE body shares: keep-alive, shutdown, maximum lifetime.
//!
//! [`SseBody`](crate::SseBody) and the layer's body wrapper both hold one [`Lifecycle`]; they
//! differ only in what counts as a boundary where a ping may go or the stream may end.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::keep_alive::KeepAlive;

/// Settings for a [`Lifecycle`]; cheap to clone (the layer keeps one and clones it per
/// response).
#[derive(Clone, Debug, Default)]
pub(crate) struct LifecycleConfig {
    pub(crate) keep_alive: Option<KeepAlive>,
    pub(crate) shutdown: Option<CancellationToken>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) lifetime_jitter: Option<Duration>,
    pub(crate) final_event: Option<Bytes>,
}

impl LifecycleConfig {
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
            random_u64() % (nanos + 1)
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

/// The running timers of one body. Nothing is armed until [`Lifecycle::start`], called at the
/// body's first poll, so a response that sat unpolled does not burst pings and needs no
/// runtime to be built.
pub(crate) struct Lifecycle {
    config: LifecycleConfig,
    started: bool,
    idle: Option<Pin<Box<Sleep>>>,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    lifetime: Option<Pin<Box<Sleep>>>,
}

impl Lifecycle {
    pub(crate) fn new(config: LifecycleConfig) -> Self {
        Lifecycle {
            config,
            started: false,
            idle: None,
            shutdown: None,
            lifetime: None,
        }
    }

    pub(crate) fn config_mut(&mut self) -> &mut LifecycleConfig {
        &mut self.config
    }

    pub(crate) fn keep_alive(&self) -> Option<&KeepAlive> {
        self.config.keep_alive.as_ref()
    }

    /// Takes the final event, to be sent once when the body ends early.
    pub(crate) fn take_final_event(&mut self) -> Option<Bytes> {
        self.config.final_event.take()
    }

    /// Arms the timers; idempotent.
    pub(crate) fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let now = Instant::now();
        if let Some(interval) = self.keep_alive().and_then(KeepAlive::current_interval) {
            self.idle = Some(Box::pin(tokio::time::sleep_until(now + interval)));
        }
        if let Some(token) = &self.config.shutdown {
            self.shutdown = Some(Box::pin(token.clone().cancelled_owned()));
        }
        if let Some(lifetime) = self.config.pick_lifetime() {
            self.lifetime = Some(Box::pin(tokio::time::sleep_until(now + lifetime)));
        }
    }

    /// Whether the body should end now; registers for wake-up otherwise.
    pub(crate) fn poll_end(&mut self, cx: &mut Context<'_>) -> Option<EndReason> {
        if let Some(shutdown) = &mut self.shutdown {
            if shutdown.as_mut().poll(cx).is_ready() {
                return Some(EndReason::Shutdown);
            }
        }
        if let Some(lifetime) = &mut self.lifetime {
            if lifetime.as_mut().poll(cx).is_ready() {
                return Some(EndReason::Lifetime);
            }
        }
        None
    }

    /// Whether a keep-alive is due; registers for wake-up otherwise. When it is due the timer is
    /// re-armed for the next interval.
    pub(crate) fn poll_ping(&mut self, cx: &mut Context<'_>) -> Poll<Bytes> {
        let (Some(idle), Some(keep_alive)) = (&mut self.idle, &self.config.keep_alive) else {
            return Poll::Pending;
        };
        if idle.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(interval) = keep_alive.current_interval() {
            idle.as_mut().reset(Instant::now() + interval);
        }
        Poll::Ready(keep_alive.ping_bytes().clone())
    }

    /// Restarts the idle timer: something was just sent.
    pub(crate) fn touch(&mut self) {
        if let (Some(idle), Some(interval)) = (
            &mut self.idle,
            self.config
                .keep_alive
                .as_ref()
                .and_then(KeepAlive::current_interval),
        ) {
            idle.as_mut().reset(Instant::now() + interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
