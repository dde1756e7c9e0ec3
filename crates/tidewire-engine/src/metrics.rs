//! Counters the engine keeps so that nothing is dropped or closed unseen.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn incr(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn decr(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub sessions_opened: Counter,
    pub sessions_closed: Counter,
    pub volatile_dropped: Counter,
    pub slow_consumer_closes: Counter,
    pub websocket_connections: Counter,
}

/// A snapshot of the engine's counters.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tidewire_engine::{Engine, EngineConfig};
/// # struct H; impl tidewire_engine::EngineHandler for H { type Data = ();
/// # fn on_open(&self, _: &tidewire_engine::Session<()>) {}
/// # fn on_message(&self, _: &tidewire_engine::Session<()>, _: tidewire_engine::Message) {}
/// # fn on_close(&self, _: &tidewire_engine::Session<()>, _: tidewire_engine::CloseReason) {} }
/// let engine = Engine::new(EngineConfig::default(), H);
/// assert_eq!(engine.metrics().sessions_open, 0);
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Sessions open now.
    pub sessions_open: u64,
    /// Sessions opened since start.
    pub sessions_opened: u64,
    /// Volatile packets dropped because a client was not ready.
    pub volatile_dropped: u64,
    /// Sessions closed because their client did not read fast enough.
    pub slow_consumer_closes: u64,
    /// WebSocket connections being served now.
    pub websocket_connections: u64,
}

impl Metrics {
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let opened = self.sessions_opened.get();
        MetricsSnapshot {
            sessions_open: opened.saturating_sub(self.sessions_closed.get()),
            sessions_opened: opened,
            volatile_dropped: self.volatile_dropped.get(),
            slow_consumer_closes: self.slow_consumer_closes.get(),
            websocket_connections: self.websocket_connections.get(),
        }
    }
}
