//! [`SseLayer`]: configuration, and the `tower::Layer` that applies it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tower_layer::Layer;

use super::SseService;
use crate::event::EncodedEvent;
use crate::keep_alive::KeepAlive;
use crate::last_event_id::LastEventIdConfig;
use crate::lifecycle::LifecycleConfig;

/// A tower [`Layer`] that makes any hyper or axum service SSE-ready; see the
/// [module docs](super) for what it does to requests and responses.
///
/// Cloning is cheap; the same layer can wrap many services.
#[derive(Clone, Debug)]
#[must_use]
pub struct SseLayer {
    /// Shared by every response body the layer wraps.
    pub(crate) lifecycle: Arc<LifecycleConfig>,
    pub(crate) last_event_id: LastEventIdConfig,
}

impl SseLayer {
    /// Default settings: `Last-Event-ID` extraction (lenient, 1 KiB), keep-alive every 15 s,
    /// no shutdown signal, no maximum lifetime.
    pub fn new() -> Self {
        SseLayer {
            lifecycle: LifecycleConfig::shared_default(),
            last_event_id: LastEventIdConfig::new(),
        }
    }

    /// Sets the keep-alive added to SSE bodies that do not send their own;
    /// [`KeepAlive::disabled`] turns it off.
    pub fn keep_alive(mut self, keep_alive: KeepAlive) -> Self {
        Arc::make_mut(&mut self.lifecycle).keep_alive = Some(keep_alive);
        self
    }

    /// Ends every SSE body at its next event boundary once `token` is cancelled. Cancel the
    /// same token when your server starts its graceful shutdown, so the shutdown completes
    /// instead of waiting forever on open streams.
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        Arc::make_mut(&mut self.lifecycle).shutdown = Some(token);
        self
    }

    /// Ends each SSE body at an event boundary after `lifetime` minus a random jitter (10 % of
    /// the lifetime unless set), so clients reconnect and load rebalances. Off by default.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        Arc::make_mut(&mut self.lifecycle).max_lifetime = Some(lifetime);
        self
    }

    /// Sets the largest random amount taken off [`SseLayer::max_lifetime`].
    pub fn lifetime_jitter(mut self, jitter: Duration) -> Self {
        Arc::make_mut(&mut self.lifecycle).lifetime_jitter = Some(jitter);
        self
    }

    /// An event sent when a body ends on shutdown or at its maximum lifetime (when the body
    /// stands at an event boundary).
    pub fn final_event(mut self, event: impl Into<EncodedEvent>) -> Self {
        Arc::make_mut(&mut self.lifecycle).final_event = Some(event.into().into_bytes());
        self
    }

    /// Sets how `Last-Event-ID` is read; strict mode answers an invalid value with `400`.
    pub fn last_event_id(mut self, config: LastEventIdConfig) -> Self {
        self.last_event_id = config;
        self
    }
}

impl Default for SseLayer {
    fn default() -> Self {
        SseLayer::new()
    }
}

impl<S> Layer<S> for SseLayer {
    type Service = SseService<S>;

    fn layer(&self, inner: S) -> SseService<S> {
        SseService::new(inner, self.clone())
    }
}
