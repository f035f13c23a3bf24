//! Observing triggers from async code: generation counters in `tokio::sync::watch`
//! channels. Firing bumps a counter, and a waiter wakes on any bump since it last looked,
//! so fires are never lost while a waiter is busy, and many fires coalesce into one
//! wake-up in constant memory. The node shell fires these as its core reports triggers;
//! tests and embedding nodes wait on them.

use super::{count_trigger, TriggerKind};
use crate::config::Bounds;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

struct Condition {
    tx: watch::Sender<u64>,
    enabled: AtomicBool,
}

impl Condition {
    fn new() -> Condition {
        Condition {
            tx: watch::Sender::new(0),
            enabled: AtomicBool::new(true),
        }
    }
}

/// A subscription to one trigger: [`Waiter::wait`] returns at the next fire after the
/// previous `wait` returned (or after the subscription was made). Fires in between are
/// remembered, coalesced into one.
#[derive(Debug)]
pub struct Waiter {
    rx: watch::Receiver<u64>,
}

impl Waiter {
    /// Waits for the next fire. Cancel-safe: dropping the future loses nothing.
    pub async fn wait(&mut self) {
        if self.rx.changed().await.is_err() {
            // The triggers were dropped: nothing will ever fire again.
            std::future::pending::<()>().await;
        }
    }

    /// Whether a fire happened that `wait` has not returned for yet.
    pub fn has_fired(&self) -> bool {
        self.rx.has_changed().unwrap_or(false)
    }

    /// Forgets fires seen so far.
    pub fn clear(&mut self) {
        self.rx.mark_unchanged();
    }
}

/// The set of triggers of one node. Cheap to share behind an `Arc`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use peerkeeper::trigger::{Triggers, TriggerKind};
/// let triggers = Triggers::new();
/// let mut w = triggers.subscribe(TriggerKind::NewPoint);
/// triggers.fire(TriggerKind::NewPoint);
/// w.wait().await; // returns at once: the fire was remembered
/// triggers.set_enabled(TriggerKind::NewPoint, false);
/// triggers.fire(TriggerKind::NewPoint);
/// assert!(!w.has_fired());
/// # }
/// ```
pub struct Triggers {
    conditions: [Condition; 5],
    idle_timer: watch::Sender<bool>,
}

impl std::fmt::Debug for Triggers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Triggers").finish_non_exhaustive()
    }
}

impl Default for Triggers {
    fn default() -> Self {
        Self::new()
    }
}

impl Triggers {
    /// All triggers enabled, idle timer enabled.
    pub fn new() -> Triggers {
        Triggers {
            conditions: std::array::from_fn(|_| Condition::new()),
            idle_timer: watch::Sender::new(true),
        }
    }

    fn condition(&self, kind: TriggerKind) -> &Condition {
        &self.conditions[kind as usize]
    }

    /// Fires `kind`, unless it is switched off.
    pub fn fire(&self, kind: TriggerKind) {
        let c = self.condition(kind);
        if c.enabled.load(Ordering::SeqCst) {
            c.tx.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// A subscription that sees fires from now on.
    pub fn subscribe(&self, kind: TriggerKind) -> Waiter {
        Waiter {
            rx: self.condition(kind).tx.subscribe(),
        }
    }

    /// Waits for the next fire of `kind` after this call. Cancel-safe (dropping it loses
    /// nothing: a later call waits for a later fire; use a [`Waiter`] to miss none).
    pub async fn wait(&self, kind: TriggerKind) {
        self.subscribe(kind).wait().await
    }

    /// Waits until the active count falls below `min_threshold`.
    /// Cancel-safe, as [`wait`](Self::wait).
    pub async fn wait_too_few_connections(&self) {
        self.wait(TriggerKind::TooFewConnections).await
    }

    /// Waits until the active count rises above `max_threshold`.
    /// Cancel-safe, as [`wait`](Self::wait).
    pub async fn wait_too_many_connections(&self) {
        self.wait(TriggerKind::TooManyConnections).await
    }

    /// Waits for a new point.
    /// Cancel-safe, as [`wait`](Self::wait).
    pub async fn wait_new_point(&self) {
        self.wait(TriggerKind::NewPoint).await
    }

    /// Waits for a new peer id.
    /// Cancel-safe, as [`wait`](Self::wait).
    pub async fn wait_new_peer(&self) {
        self.wait(TriggerKind::NewPeer).await
    }

    /// Waits for a new connection.
    /// Cancel-safe, as [`wait`](Self::wait).
    pub async fn wait_new_connection(&self) {
        self.wait(TriggerKind::NewConnection).await
    }

    /// Testing API: switches a trigger off (it no longer fires) or on again.
    pub fn set_enabled(&self, kind: TriggerKind, enabled: bool) {
        self.condition(kind)
            .enabled
            .store(enabled, Ordering::SeqCst);
    }

    /// Whether a trigger is switched on.
    pub fn is_enabled(&self, kind: TriggerKind) -> bool {
        self.condition(kind).enabled.load(Ordering::SeqCst)
    }

    /// Testing API: switches the maintenance idle timer off or on again (on top of
    /// `maintenance_idle_time`; the worker notices at once).
    pub fn set_idle_timer(&self, enabled: bool) {
        self.idle_timer.send_replace(enabled);
    }

    /// Whether the idle timer is switched on.
    pub fn idle_timer_enabled(&self) -> bool {
        *self.idle_timer.borrow()
    }

    /// A receiver that sees the idle timer switch.
    pub fn idle_timer_watch(&self) -> watch::Receiver<bool> {
        self.idle_timer.subscribe()
    }

    /// Fires too-few or too-many if the count moved from `before` to `after` and now stands
    /// below `min_threshold` or above `max_threshold`. Returns what it fired.
    pub fn connections_changed(
        &self,
        before: usize,
        after: usize,
        bounds: &Bounds,
    ) -> Option<TriggerKind> {
        let kind = count_trigger(before, after, bounds)?;
        self.fire(kind);
        Some(kind)
    }
}
