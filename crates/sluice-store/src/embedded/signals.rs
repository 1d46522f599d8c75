//! Wake-ups for long polls: two `Notify`s per consumer (a tenant's inbox, or one of its
//! named consumers) that has ever had a poller waiting.
//!
//! - **take**: leasing polls without a type filter are interchangeable (any of them
//!   takes any new event), so a commit of n events wakes at most n of them, one each:
//!   ten idle consumers do not all wake, list and park again for every event. A woken
//!   poll that is dropped before it runs passes its wake-up on (tokio's `notify_one`).
//! - **watch**: every other long poll (plain listings, type filters) wakes on every
//!   commit of its tenant, since only it can tell whether the commit is for it.
//!
//! A commit wakes every consumer of its tenant, each as above: each consumer's takers
//! take from its own queue, so one consumer's wake-up never goes to another's poller.
//!
//! The writer calls [`InboxSignals::notify`] after each publication with the tenants of
//! the batch's events. Until the first long poll asks for a signal, that is one relaxed
//! load per batch; after, one lock and one map lookup per tenant run of the batch (a
//! batch mostly holds one tenant's events, so a run is usually the whole batch). The
//! map holds one entry per consumer that was ever long-polled: bounded by the tenants
//! and their consumers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::index::TenantMap;
use crate::types::{ConsumerId, InboxKey, TenantId};

/// Interchangeable pollers one run of a tenant's events wakes at most: a bound on the
/// writer's work per commit, far above the consumers one tenant runs.
const TAKERS_WOKEN_MAX: usize = 1024;

/// One consumer's two signals (see the module docs).
#[derive(Debug, Default)]
struct TenantSignals {
    take: Arc<Notify>,
    watch: Arc<Notify>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct InboxSignals {
    /// Whether any signal was ever handed out (the writer's fast path).
    any: AtomicBool,
    /// Per tenant, its consumers' signals (a handful: a linear scan beats a map).
    by_tenant: Mutex<TenantMap<Vec<(ConsumerId, TenantSignals)>>>,
}

impl InboxSignals {
    /// The consumer's signal for a poll that is interchangeable with its peers (`take`),
    /// or for any other (`watch`); created on first use.
    pub(crate) fn get(&self, inbox: InboxKey, interchangeable: bool) -> Arc<Notify> {
        let mut map = self.by_tenant.lock();
        self.any.store(true, Ordering::Relaxed);
        let consumers = map.entry(inbox.tenant).or_default();
        let at = match consumers.iter().position(|(c, _)| *c == inbox.consumer) {
            Some(at) => at,
            None => {
                consumers.push((inbox.consumer, TenantSignals::default()));
                consumers.len() - 1
            }
        };
        let s = &consumers[at].1;
        if interchangeable {
            s.take.clone()
        } else {
            s.watch.clone()
        }
    }

    /// Wakes the pollers of these events' tenants: one interchangeable poller per event,
    /// every other poller once per run of a tenant's events.
    pub(crate) fn notify(&self, tenants: impl Iterator<Item = TenantId>) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let map = self.by_tenant.lock();
        let mut run: Option<(TenantId, usize)> = None;
        let wake = |(t, n): (TenantId, usize)| {
            for (_, s) in map.get(&t).into_iter().flatten() {
                for _ in 0..n.min(TAKERS_WOKEN_MAX) {
                    s.take.notify_one();
                }
                s.watch.notify_waiters();
            }
        };
        for t in tenants {
            match &mut run {
                Some((last, n)) if *last == t => *n += 1,
                _ => {
                    if let Some(r) = run.replace((t, 1)) {
                        wake(r);
                    }
                }
            }
        }
        if let Some(r) = run {
            wake(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_commit_wakes_its_tenant_only() {
        let signals = InboxSignals::default();
        let (a, b) = (
            signals.get(TenantId(1).into(), false),
            signals.get(TenantId(2).into(), false),
        );
        let wait_a = a.notified();
        let wait_b = b.notified();
        tokio::pin!(wait_a, wait_b);
        wait_a.as_mut().enable();
        wait_b.as_mut().enable();
        signals.notify([TenantId(1), TenantId(1)].into_iter());
        // Tenant 1's waiter is woken; tenant 2's is not.
        assert!(futures_poll_now(wait_a.as_mut()));
        assert!(!futures_poll_now(wait_b.as_mut()));
    }

    #[tokio::test]
    async fn n_events_wake_n_takers_and_every_watcher() {
        let signals = InboxSignals::default();
        let take = signals.get(TenantId(1).into(), true);
        let watch = signals.get(TenantId(1).into(), false);
        let takers: Vec<_> = (0..3).map(|_| Box::pin(take.notified())).collect();
        let watchers: Vec<_> = (0..2).map(|_| Box::pin(watch.notified())).collect();
        let mut takers = takers;
        let mut watchers = watchers;
        for t in &mut takers {
            t.as_mut().enable();
        }
        for w in &mut watchers {
            w.as_mut().enable();
        }
        // Two events of tenant 1 (a run split by another tenant's event counts both).
        signals.notify([TenantId(1), TenantId(2), TenantId(1)].into_iter());
        let mut woken = 0;
        for t in &mut takers {
            if futures_poll_now(t.as_mut()) {
                woken += 1;
            }
        }
        assert_eq!(woken, 2, "one taker per event");
        assert!(watchers.iter_mut().all(|w| futures_poll_now(w.as_mut())));
    }

    fn futures_poll_now<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.poll(&mut cx).is_ready()
    }
}
