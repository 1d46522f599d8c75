//! The conformance suite every [`Store`] backend must pass.
//!
//! A backend provides a [`Harness`] (how to make a fresh store, reopen it, and move its
//! clock) and invokes [`conformance_tests!`](crate::conformance_tests), which expands to one
//! `#[test]` per case, so each failure is reported by name. The cases are the contract of
//! DESIGN.md's "Semantics users rely on", stated as code.
//!
//! The harness is async, so that a backend that needs a network connection (a
//! `nats-server` the test started) can make one; every case runs on a multi-threaded
//! tokio runtime.

use std::collections::HashSet;
use std::future::Future;

use bytes::Bytes;

use crate::catalog::{ApiKeyRecord, Scope, TenantLimits};
use crate::catalog::{CatalogChange, Changed, NewSubscription, Ordering, SubKey, Subscription};
use crate::delivery::{Attempt, AttemptOutcome, AttemptQuery, Next, Replay, Settled};
use crate::feed::{FeedItem, LogFollower, TypeFilter, FEED_CAPACITY};
use crate::types::UnixMs;
use crate::{
    AppendOutcome, CatalogOps, ConsumerStart, EventId, EventState, IdempotencyKey, InboxKey,
    InboxQuery, LeaseAction, LeaseOutcome, LogQuery, NewConsumer, NewEvent, Settle, SettleOutcome,
    Store, TenantId,
};

/// How the suite drives one backend.
pub trait Harness: Sized + Send {
    /// The backend under test.
    type S: Store;
    /// A new, empty store.
    fn fresh() -> impl Future<Output = Self> + Send;
    /// The store.
    fn store(&self) -> &Self::S;
    /// Closes the store (after a sync) and opens it again on the same data.
    fn reopen(&mut self) -> impl Future<Output = ()> + Send;
    /// Moves the clock the store's own deadlines (leases, retention, the dedup window)
    /// are measured on.
    fn advance_ms(&mut self, ms: i64);
    /// That clock's time now.
    fn now_ms(&self) -> UnixMs;
}

/// Awaits `f`, failing the case after 30 s: a case that waits on the store must not
/// hang the suite when the store never answers.
async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(std::time::Duration::from_secs(30), f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: no answer within 30 s"),
    }
}

/// Pending events of one tenant, from [`Store::pending_counts`].
async fn pending_of<S: Store>(store: &S, tenant: TenantId) -> u64 {
    store
        .pending_counts()
        .await
        .expect("pending counts")
        .into_iter()
        .find(|(t, _)| *t == tenant)
        .map_or(0, |(_, n)| n)
}

const A: TenantId = TenantId(1);
const B: TenantId = TenantId(2);

/// An event of tenant `tenant` with a payload that names `n`.
pub fn event(tenant: TenantId, event_type: &str, n: u64) -> NewEvent {
    NewEvent {
        tenant,
        event_type: Bytes::copy_from_slice(event_type.as_bytes()),
        source: Some(Bytes::from_static(b"conformance")),
        occurred_at: Some(Bytes::from_static(b"2026-01-02T03:04:05Z")),
        idempotency: None,
        payload: Bytes::from(format!(r#"{{"n":{n},"text":"caf\u00e9 \"quoted\"" }}"#)),
    }
}

fn keyed(tenant: TenantId, key: &str, fingerprint: u8, n: u64) -> NewEvent {
    NewEvent {
        idempotency: Some(IdempotencyKey {
            key: Bytes::copy_from_slice(key.as_bytes()),
            fingerprint: [fingerprint; 16],
        }),
        ..event(tenant, "keyed", n)
    }
}

fn created(outcome: &AppendOutcome) -> EventId {
    match outcome {
        AppendOutcome::Created { id, .. } => *id,
        other => panic!("expected Created, got {other:?}"),
    }
}

async fn append_n<S: Store>(store: &S, tenant: TenantId, event_type: &str, n: u64) -> Vec<EventId> {
    let events = (0..n).map(|i| event(tenant, event_type, i)).collect();
    let outcomes = store.append(events).await.expect("append");
    outcomes.iter().map(created).collect()
}

fn query(tenant: TenantId, limit: usize) -> InboxQuery {
    InboxQuery {
        tenant,
        consumer: crate::types::ConsumerId::DEFAULT,
        limit,
        after: None,
        event_type: None,
        lease_ms: None,
        max_deliveries: None,
    }
}

/// Appended events read back byte for byte, with every field.
pub async fn append_then_get_is_verbatim<H: Harness>(h: H) {
    let store = h.store();
    let original = event(A, "order.created", 7);
    let outcomes = store.append(vec![original.clone()]).await.expect("append");
    let id = created(&outcomes[0]);
    let got = store.get(A, id).await.expect("get").expect("event exists");
    assert_eq!(got.id, id);
    assert_eq!(got.payload, original.payload);
    assert_eq!(got.event_type, original.event_type);
    assert_eq!(got.source, original.source);
    assert_eq!(got.occurred_at, original.occurred_at);
    assert_eq!(got.state, EventState::Pending);
    assert_eq!(got.delivery_count, 0);
}

/// The inbox lists in ingest order, and cursors page through it without gaps or repeats.
pub async fn inbox_pages_in_order<H: Harness>(h: H) {
    let store = h.store();
    let ids = append_n(store, A, "t", 25).await;
    let mut seen = Vec::new();
    let mut q = query(A, 10);
    loop {
        let page = store.list(q.clone()).await.expect("list");
        seen.extend(page.events.iter().map(|e| e.id));
        if !page.has_more {
            break;
        }
        q.after = page.next_cursor;
    }
    assert_eq!(seen, ids);
}

/// The event_type filter returns only that type, still in order.
pub async fn inbox_filters_by_type<H: Harness>(h: H) {
    let store = h.store();
    let mut expected = Vec::new();
    for i in 0..10 {
        let ty = if i % 3 == 0 { "wanted" } else { "other" };
        let id = append_n(store, A, ty, 1).await[0];
        if ty == "wanted" {
            expected.push(id);
        }
    }
    let mut q = query(A, 100);
    q.event_type = Some("wanted".into());
    let page = store.list(q.clone()).await.expect("list");
    assert_eq!(
        page.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        expected
    );
    q.event_type = Some("never.seen".into());
    assert!(store.list(q).await.expect("list").events.is_empty());
}

/// A lease hides events from other lease pollers until it expires; then they come back
/// with a higher delivery count.
pub async fn leases_hide_then_expire<H: Harness>(mut h: H) {
    let ids = append_n(h.store(), A, "t", 4).await;
    let mut q = query(A, 3);
    q.lease_ms = Some(30_000);
    let first = h.store().list(q.clone()).await.expect("lease");
    assert_eq!(
        first.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[..3]
    );
    assert!(first.events.iter().all(|e| e.delivery_count == 1));
    let second = h.store().list(q.clone()).await.expect("lease");
    assert_eq!(
        second.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[3..]
    );
    assert!(h
        .store()
        .list(q.clone())
        .await
        .expect("lease")
        .events
        .is_empty());
    // A plain listing still shows everything, marked as leased.
    let plain = h.store().list(query(A, 10)).await.expect("list");
    assert_eq!(plain.events.len(), 4);
    assert!(matches!(plain.events[0].state, EventState::Leased { .. }));

    h.advance_ms(30_001);
    let again = h.store().list(q).await.expect("lease");
    assert_eq!(
        again.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[..3]
    );
    assert!(again.events.iter().all(|e| e.delivery_count == 2));
}

/// Acks remove events from the inbox, are harmless to repeat, and keep the event
/// readable as acked.
pub async fn ack_is_idempotent<H: Harness>(h: H) {
    let store = h.store();
    let ids = append_n(store, A, "t", 3).await;
    let out = store
        .settle(A, vec![ids[0], ids[0]], Settle::Ack)
        .await
        .expect("ack");
    assert_eq!(out, vec![SettleOutcome::Done, SettleOutcome::AlreadyDone]);
    let again = store
        .settle(A, vec![ids[0]], Settle::Ack)
        .await
        .expect("ack");
    assert_eq!(again, vec![SettleOutcome::AlreadyDone]);
    let page = store.list(query(A, 10)).await.expect("list");
    assert_eq!(
        page.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[1..]
    );
    let got = store
        .get(A, ids[0])
        .await
        .expect("get")
        .expect("acked stays readable");
    assert_eq!(got.state, EventState::Acked);
    assert_eq!(pending_of(store, A).await, 2);
}

/// Deleted events are gone for every reader; deleting twice finds nothing.
pub async fn delete_removes<H: Harness>(h: H) {
    let store = h.store();
    let ids = append_n(store, A, "t", 2).await;
    store
        .settle(A, vec![ids[1]], Settle::Ack)
        .await
        .expect("ack");
    let out = store
        .settle(A, vec![ids[0], ids[1]], Settle::Delete)
        .await
        .expect("delete");
    assert_eq!(out, vec![SettleOutcome::Done, SettleOutcome::Done]);
    assert!(store.get(A, ids[0]).await.expect("get").is_none());
    assert!(store.get(A, ids[1]).await.expect("get").is_none());
    let again = store
        .settle(A, vec![ids[0]], Settle::Delete)
        .await
        .expect("delete");
    assert_eq!(again, vec![SettleOutcome::NotFound]);
    let ack = store
        .settle(A, vec![ids[0]], Settle::Ack)
        .await
        .expect("ack");
    assert_eq!(ack, vec![SettleOutcome::NotFound]);
    assert!(store
        .list(query(A, 10))
        .await
        .expect("list")
        .events
        .is_empty());
}

/// Another tenant's id behaves exactly like an unknown id, for every operation.
pub async fn tenants_are_isolated<H: Harness>(h: H) {
    let store = h.store();
    let theirs = append_n(store, B, "t", 2).await;
    store
        .settle(B, vec![theirs[1]], Settle::Ack)
        .await
        .expect("ack");
    for id in &theirs {
        assert!(store.get(A, *id).await.expect("get").is_none());
        let out = store.settle(A, vec![*id], Settle::Ack).await.expect("ack");
        assert_eq!(out, vec![SettleOutcome::NotFound]);
        let out = store
            .settle(A, vec![*id], Settle::Delete)
            .await
            .expect("delete");
        assert_eq!(out, vec![SettleOutcome::NotFound]);
    }
    assert!(store
        .list(query(A, 10))
        .await
        .expect("list")
        .events
        .is_empty());
    // Untouched for their owner.
    assert_eq!(
        store.list(query(B, 10)).await.expect("list").events.len(),
        1
    );
    assert!(store.get(B, theirs[1]).await.expect("get").is_some());
}

/// Ids that were never issued find nothing, for reads and settles alike: an id must
/// match an event's whole id (time part, sequence and salt), never its sequence alone.
pub async fn unknown_ids_find_nothing<H: Harness>(h: H) {
    let store = h.store();
    let real = append_n(store, A, "t", 1).await[0];
    let shifted_time = EventId::new(real.millis() + 1, real.sequence(), real.salt());
    let other_salt = EventId::new(real.millis(), real.sequence(), real.salt().wrapping_add(1));
    let future = EventId::new(
        real.millis(),
        crate::Sequence(real.sequence().0 + 1000),
        real.salt(),
    );
    for id in [shifted_time, other_salt, future] {
        assert!(
            store.get(A, id).await.expect("get").is_none(),
            "{id} was found"
        );
    }
    for id in [shifted_time, other_salt, future] {
        for how in [Settle::Ack, Settle::Delete] {
            let out = store.settle(A, vec![id], how).await.expect("settle");
            assert_eq!(out, vec![SettleOutcome::NotFound], "{id} was settled");
        }
    }
    let got = store.get(A, real).await.expect("get").expect("still there");
    assert_eq!(got.state, EventState::Pending);
}

/// Random alterations of real ids (single characters, and each part of the id moved on
/// its own) name no event on any id operation, and leave every real event's state and
/// delivery count as they were; so do another tenant's ids. A property over a seeded
/// random sample: [`mutate::variants`] says what is altered.
pub async fn altered_ids_find_nothing<H: Harness>(h: H) {
    let store = h.store();
    // Events of both tenants over several commits (distinct receive times) and one
    // batch (a shared receive time, so ids that differ only in their sequence).
    let mut ours = append_n(store, A, "t", 6).await;
    for _ in 0..3 {
        ours.extend(append_n(store, A, "u", 1).await);
    }
    let theirs = append_n(store, B, "t", 4).await;
    // Varied states: some leased (delivery count 1), one acked, one deleted.
    let mut q = query(A, 3);
    q.lease_ms = Some(60_000);
    assert_eq!(store.list(q).await.expect("lease").events.len(), 3);
    let out = store.settle(A, vec![ours[4]], Settle::Ack).await;
    assert_eq!(out.expect("ack"), vec![SettleOutcome::Done]);
    let out = store.settle(A, vec![ours[5]], Settle::Delete).await;
    assert_eq!(out.expect("delete"), vec![SettleOutcome::Done]);
    let mut bq = query(B, 1);
    bq.lease_ms = Some(60_000);
    assert_eq!(store.list(bq).await.expect("lease").events.len(), 1);

    let all: Vec<(TenantId, EventId)> = ours
        .iter()
        .map(|i| (A, *i))
        .chain(theirs.iter().map(|i| (B, *i)))
        .collect();
    let before = states_of(store, &all).await;
    let real: HashSet<EventId> = ours.iter().copied().collect();
    let mut tried = 0;
    for (n, id) in ours.iter().chain(&theirs).enumerate() {
        for text in mutate::variants(*id, 0x5EED_0000 + n as u64, 64) {
            let Some(altered) = EventId::parse(&text) else {
                continue; // not an id at all: the HTTP layer's 404, tested there
            };
            if real.contains(&altered) {
                continue; // by chance (or by moving the sequence) another real id of ours
            }
            tried += 1;
            assert!(
                store.get(A, altered).await.expect("get").is_none(),
                "{text} (altered from {id}) was found"
            );
            for how in [Settle::Ack, Settle::Delete] {
                let out = store.settle(A, vec![altered], how).await.expect("settle");
                assert_eq!(
                    out,
                    vec![SettleOutcome::NotFound],
                    "{text} from {id}: {how:?}"
                );
            }
        }
    }
    // Another tenant's real ids, for every operation.
    for id in &theirs {
        assert!(store.get(A, *id).await.expect("get").is_none());
        for how in [Settle::Ack, Settle::Delete] {
            let out = store.settle(A, vec![*id], how).await.expect("settle");
            assert_eq!(out, vec![SettleOutcome::NotFound]);
        }
    }
    assert!(tried > 300, "only {tried} altered ids parsed");
    assert_eq!(states_of(store, &all).await, before, "a real event changed");
    // An altered id in the same request as the real one: the real one's change, staged
    // first, must not make the altered one look settled.
    let real = ours[6];
    let twin = EventId::new(real.millis() + 1, real.sequence(), real.salt());
    for how in [Settle::Ack, Settle::Delete] {
        let out = store
            .settle(A, vec![real, twin], how)
            .await
            .expect("settle");
        assert_eq!(out[1], SettleOutcome::NotFound, "{how:?}");
    }
}

/// Each event's state and delivery count as its owner reads it (`None`: not readable).
async fn states_of<S: Store>(
    store: &S,
    ids: &[(TenantId, EventId)],
) -> Vec<Option<(EventState, u32)>> {
    let mut out = Vec::with_capacity(ids.len());
    for &(tenant, id) in ids {
        let e = store.get(tenant, id).await.expect("get");
        out.push(e.map(|e| (e.state, e.delivery_count)));
    }
    out
}

/// Alterations of a client-supplied id or token, for the property tests of every layer
/// that resolves one (the store here, the HTTP API in the binary's tests).
pub mod mutate {
    use crate::{EventId, Sequence};

    /// Characters a substitution draws from: the id alphabet, the characters it leaves
    /// out on purpose (`I`, `L`, `O`, `U`), lower case, and separators.
    const SUBSTITUTES: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZILOUaz_-.~ ";

    /// A small xorshift: seeded, so a failure names its case.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// `count` random alterations of `id`'s text form, every one different from it:
    /// half single-character substitutions anywhere (the prefix included), half
    /// structural (the time part, the sequence or the salt moved alone by a small or a
    /// large step, the case changed, a character dropped, added or swapped).
    pub fn variants(id: EventId, seed: u64, count: usize) -> Vec<String> {
        let mut rng = Rng(seed | 1);
        let text = id.to_string();
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let altered = if rng.below(2) == 0 {
                let mut bytes = text.clone().into_bytes();
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] = SUBSTITUTES[rng.below(SUBSTITUTES.len() as u64) as usize];
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                structural(id, &text, &mut rng)
            };
            if altered != text {
                out.push(altered);
            }
        }
        out
    }

    fn structural(id: EventId, text: &str, rng: &mut Rng) -> String {
        let step = |rng: &mut Rng| -> i64 {
            let small = 1 + rng.below(3) as i64;
            let big = 1 + rng.below(1 << 20) as i64;
            let magnitude = if rng.below(2) == 0 { small } else { big };
            if rng.below(2) == 0 {
                magnitude
            } else {
                -magnitude
            }
        };
        let (ms, seq, salt) = (id.millis(), id.sequence().0, id.salt());
        match rng.below(8) {
            0 => EventId::new((ms + step(rng)).max(0), id.sequence(), salt).to_string(),
            1 => EventId::new(ms, Sequence(seq.wrapping_add_signed(step(rng))), salt).to_string(),
            2 => EventId::new(
                ms,
                id.sequence(),
                salt ^ (1 + rng.below(u16::MAX as u64) as u16),
            )
            .to_string(),
            3 => text.to_ascii_lowercase(),
            4 => text[..text.len() - 1].to_owned(),
            5 => format!("{text}{}", SUBSTITUTES[rng.below(32) as usize] as char),
            6 => {
                let mut bytes = text.as_bytes().to_vec();
                let at = 4 + rng.below(bytes.len() as u64 - 5) as usize;
                bytes.swap(at, at + 1);
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => text.replacen(
                "evt_",
                ["EVT_", "evt-", "ev_", "evt__"][rng.below(4) as usize],
                1,
            ),
        }
    }
}

/// A repeated key with the same fingerprint replays; with another, it is refused; and
/// keys are per tenant.
pub async fn idempotency_replays_and_refuses<H: Harness>(h: H) {
    let store = h.store();
    let first = store
        .append(vec![keyed(A, "k1", 1, 1)])
        .await
        .expect("append");
    let id = created(&first[0]);
    let replay = store
        .append(vec![keyed(A, "k1", 1, 1)])
        .await
        .expect("append");
    assert!(matches!(replay[0], AppendOutcome::Replayed { id: r, .. } if r == id));
    let reused = store
        .append(vec![keyed(A, "k1", 2, 1)])
        .await
        .expect("append");
    assert_eq!(reused[0], AppendOutcome::KeyReused { id });
    let other_tenant = store
        .append(vec![keyed(B, "k1", 1, 1)])
        .await
        .expect("append");
    assert_ne!(created(&other_tenant[0]), id);
    // Within one batch too.
    let batch = store
        .append(vec![keyed(A, "k2", 1, 2), keyed(A, "k2", 1, 2)])
        .await
        .expect("append");
    let k2 = created(&batch[0]);
    assert!(matches!(batch[1], AppendOutcome::Replayed { id: r, .. } if r == k2));
    assert_eq!(pending_of(store, A).await, 2);
}

/// Concurrent appends with one key create exactly one event.
pub async fn concurrent_keys_create_one_event<H: Harness>(h: H) {
    let store = h.store();
    let attempts = (0..32).map(|_| store.append(vec![keyed(A, "race", 9, 0)]));
    let results = futures_join_all(attempts).await;
    let ids: HashSet<EventId> = results
        .into_iter()
        .map(|r| match r.expect("append")[0] {
            AppendOutcome::Created { id, .. } | AppendOutcome::Replayed { id, .. } => id,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(pending_of(store, A).await, 1);
}

/// The rule every backend keeps for a lease across a restart of the node that granted
/// it. The embedded engine drops its leases (they are not durable: a restart makes the
/// event visible at once, which at-least-once allows); a clustered backend keeps them,
/// since other nodes and their pollers live on. Either way the event is open (never
/// lost, never acked or dead by the restart), and it is hidden no longer than the lease
/// that was granted.
fn assert_open_after_reopen(after: EventState, granted: EventState, what: &str) {
    match (after, granted) {
        (EventState::Pending, _) => {}
        (EventState::Leased { until }, EventState::Leased { until: was }) => {
            assert!(
                until <= was,
                "{what}: leased until {until} after a reopen, granted until {was}"
            )
        }
        other => panic!("{what}: {other:?} after a reopen"),
    }
}

/// Events, acks, deletes and keys survive a reopen; leases are kept or dropped (see
/// `assert_open_after_reopen`), never turned into anything else; and new ids keep
/// increasing.
pub async fn reopen_keeps_state<H: Harness>(mut h: H) {
    let ids = append_n(h.store(), A, "t", 5).await;
    let key = h
        .store()
        .append(vec![keyed(A, "durable", 3, 9)])
        .await
        .expect("append");
    let key_id = created(&key[0]);
    h.store()
        .settle(A, vec![ids[0]], Settle::Ack)
        .await
        .expect("ack");
    h.store()
        .settle(A, vec![ids[1]], Settle::Delete)
        .await
        .expect("delete");
    let mut lease = query(A, 1);
    lease.lease_ms = Some(60_000);
    let leased = h.store().list(lease.clone()).await.expect("lease");
    assert_eq!(leased.events[0].id, ids[2]);

    h.reopen().await;
    let store = h.store();
    let page = store.list(query(A, 10)).await.expect("list");
    let mut expected = ids[2..].to_vec();
    expected.push(key_id);
    assert_eq!(
        page.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        expected
    );
    assert_open_after_reopen(
        page.events[0].state,
        leased.events[0].state,
        "a leased event",
    );
    assert_eq!(
        store.get(A, ids[0]).await.expect("get").map(|e| e.state),
        Some(EventState::Acked)
    );
    assert!(store.get(A, ids[1]).await.expect("get").is_none());
    let replay = store
        .append(vec![keyed(A, "durable", 3, 9)])
        .await
        .expect("append");
    assert!(matches!(replay[0], AppendOutcome::Replayed { id, .. } if id == key_id));
    let newer = append_n(store, A, "t", 1).await[0];
    assert!(newer.sequence() > key_id.sequence());
    assert!(newer > key_id);
}

/// Feed subscribers see every committed event, in order, with its fields.
pub async fn subscribers_see_commits<H: Harness>(h: H) {
    let store = h.store();
    let mut feed = store.feed().await.expect("feed");
    let ids = append_n(store, A, "seen", 3).await;
    let mut got = Vec::new();
    while got.len() < ids.len() {
        match within("the feed", feed.next()).await {
            FeedItem::Commit(commit) => {
                for c in commit.iter() {
                    assert_eq!(c.tenant, A);
                    assert_eq!(&c.event_type[..], b"seen");
                    assert_eq!(
                        c.payload.as_ref(),
                        Some(&event(A, "seen", got.len() as u64).payload)
                    );
                    got.push(c.id);
                }
            }
            other => panic!("expected a commit, got {other:?}"),
        }
    }
    assert_eq!(got, ids);
}

/// A follower that falls more than the feed's buffer behind still reads every event of
/// its tenant after its position, in order, exactly once (from the log, then the feed),
/// and none of another tenant's.
pub async fn lagging_follower_reads_everything<H: Harness>(h: H) {
    let store = h.store();
    let before = append_n(store, A, "t", 3).await;
    let mut follower = LogFollower::new(store, A, TypeFilter::All, Some(before[0].sequence()))
        .await
        .expect("follower");
    let mut expected: Vec<EventId> = before[1..].to_vec();
    // One commit per append: more commits than the feed holds, with another tenant's
    // events and another type in between. Nothing reads meanwhile.
    for i in 0..(FEED_CAPACITY as u64 + 200) {
        let events = vec![
            event(A, if i % 7 == 0 { "u" } else { "t" }, i),
            event(B, "t", i),
        ];
        let outcomes = store.append(events).await.expect("append");
        expected.push(created(&outcomes[0]));
    }
    let mut got = Vec::with_capacity(expected.len());
    while got.len() < expected.len() {
        let e = within("the follower", follower.next()).await.expect("next");
        assert_eq!(e.tenant, A, "another tenant's event");
        got.push(e.id);
    }
    assert_eq!(got, expected);
    // Caught up: what is committed next arrives live, in order, nothing repeats, and
    // a follower from now with a type filter sees only its type.
    let mut typed = LogFollower::new(store, A, TypeFilter::Exact("u".into()), None)
        .await
        .expect("follower");
    let mut live = append_n(store, A, "t", 2).await;
    let wanted = append_n(store, A, "u", 1).await[0];
    live.push(wanted);
    assert_eq!(
        within("the typed follower", typed.next())
            .await
            .expect("next")
            .id,
        wanted
    );
    for id in live {
        assert_eq!(
            within("the follower", follower.next())
                .await
                .expect("next")
                .id,
            id
        );
    }
}

/// Reading the log pages through a tenant's events in order, skipping other tenants'
/// and deleted ones, and a position past the end reads nothing.
pub async fn log_reads_page_in_order<H: Harness>(h: H) {
    let store = h.store();
    let mut ours = Vec::new();
    for i in 0..30 {
        ours.extend(append_n(store, A, "t", 1 + i % 3).await);
        append_n(store, B, "t", 1).await;
    }
    let deleted = ours.remove(4);
    let out = store
        .settle(A, vec![deleted], Settle::Delete)
        .await
        .expect("delete");
    assert_eq!(out, vec![SettleOutcome::Done]);
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .read_log(LogQuery {
                tenant: A,
                after,
                limit: 7,
                event_type: None,
            })
            .await
            .expect("read");
        assert!(page.events.len() <= 7);
        assert!(page.events.iter().all(|e| e.tenant == A));
        seen.extend(page.events.iter().map(|e| e.id));
        after = page.position;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seen, ours);
    let page = store
        .read_log(LogQuery {
            tenant: A,
            after,
            limit: 7,
            event_type: None,
        })
        .await
        .expect("read");
    assert!(page.events.is_empty() && !page.has_more);
}

/// The tenants A and B, in the catalog (subscriptions need their owner to exist).
async fn ensure_tenants<S: Store>(store: &S) {
    for name in ["a", "b"] {
        if store.catalog().borrow().tenant_by_name(name).is_none() {
            store
                .create_tenant(name, TenantLimits::default())
                .await
                .expect("tenant");
        }
    }
    assert_eq!(
        store.catalog().borrow().tenant_by_name("a").map(|t| t.id),
        Some(A)
    );
}

/// A subscription of tenant A.
async fn subscribe<S: Store>(
    store: &S,
    event_types: &[&str],
    ordering: Ordering,
    max_in_flight: u32,
) -> Subscription {
    ensure_tenants(store).await;
    let n = store.catalog().borrow().subscriptions.len();
    let change = CatalogChange::CreateSubscription(NewSubscription {
        id: format!("sub_conformance_{n}"),
        tenant: A,
        target_url: "https://example.com/hook".into(),
        event_types: event_types.iter().map(|t| t.to_string()).collect(),
        description: None,
        ordering,
        max_in_flight,
        headers: Default::default(),
        secret: "whsec_test".into(),
    });
    match store.change_catalog(change).await.expect("subscribe") {
        Changed::Subscription(sub) => *sub,
        other => panic!("expected a subscription, got {other:?}"),
    }
}

/// How an attempt on `event` at `at` ended.
fn settled(event: EventId, attempt: u32, next: Next, at: UnixMs) -> Settled {
    Settled {
        seq: Some(event.sequence()),
        replay: false,
        next,
        attempt: Attempt {
            serial: 0,
            event_id: event,
            attempt,
            started_at: at,
            latency_ms: 3,
            status: Some(if next == Next::Delivered { 200 } else { 503 }),
            error: (next != Next::Delivered).then(|| "service unavailable".to_owned()),
            outcome: match next {
                Next::Delivered => AttemptOutcome::Delivered,
                Next::RetryAt(_) => AttemptOutcome::Failed,
                Next::Dead => AttemptOutcome::Dead,
            },
        },
    }
}

async fn fetch_ids<S: Store>(store: &S, sub: SubKey, max: usize) -> Vec<(EventId, u32)> {
    store
        .fetch_deliveries(sub, max)
        .await
        .expect("fetch")
        .deliveries
        .into_iter()
        .map(|d| (d.event.id, d.attempt))
        .collect()
}

/// A subscription delivers the matching events committed after it was created, in
/// order, with their payloads; nothing before it, nothing of another tenant or type.
pub async fn subscriptions_start_after_creation_and_match<H: Harness>(h: H) {
    let store = h.store();
    append_n(store, A, "order.created", 3).await;
    let sub = subscribe(store, &["order.*", "user"], Ordering::None, 100).await;
    let mut wanted = Vec::new();
    for i in 0..4 {
        wanted.extend(append_n(store, A, "order.created", 1).await);
        append_n(store, A, "orders.x", 1).await;
        append_n(store, B, "order.created", 1).await;
        if i == 2 {
            wanted.extend(append_n(store, A, "user", 1).await);
        }
    }
    let fetched = store.fetch_deliveries(sub.key, 100).await.expect("fetch");
    let ids: Vec<EventId> = fetched.deliveries.iter().map(|d| d.event.id).collect();
    assert_eq!(ids, wanted);
    assert!(fetched
        .deliveries
        .iter()
        .all(|d| d.attempt == 1 && !d.replay));
    assert_eq!(
        fetched.deliveries[0].event.payload,
        event(A, "order.created", 0).payload
    );
    let state = store.delivery_state(sub.key).await.expect("state");
    assert_eq!((state.in_flight, state.backlog), (5, 5));
    // Handed out once: a second fetch gives nothing new.
    assert!(fetch_ids(store, sub.key, 100).await.is_empty());
    let now = h.now_ms();
    let all = ids
        .iter()
        .map(|id| settled(*id, 1, Next::Delivered, now))
        .collect();
    store.settle_deliveries(sub.key, all).await.expect("settle");
    let state = store.delivery_state(sub.key).await.expect("state");
    assert_eq!(
        (state.in_flight, state.backlog, state.dead_letters),
        (0, 0, 0)
    );
    assert_eq!(state.last_success_at, Some(now));
    assert!(state.position >= ids[4].sequence());
}

/// FIFO: one delivery at a time, in order, and a retry holds the ones behind it.
pub async fn fifo_holds_order_through_retries<H: Harness>(mut h: H) {
    let sub = subscribe(h.store(), &[], Ordering::Fifo, 1).await;
    let ids = append_n(h.store(), A, "t", 3).await;
    assert_eq!(fetch_ids(h.store(), sub.key, 10).await, vec![(ids[0], 1)]);
    assert!(
        fetch_ids(h.store(), sub.key, 10).await.is_empty(),
        "one in flight"
    );
    let now = h.now_ms();
    let retry = settled(ids[0], 1, Next::RetryAt(now + 1000), now);
    h.store()
        .settle_deliveries(sub.key, vec![retry])
        .await
        .expect("settle");
    let waiting = h
        .store()
        .fetch_deliveries(sub.key, 10)
        .await
        .expect("fetch");
    assert!(
        waiting.deliveries.is_empty(),
        "nothing passes a retrying event"
    );
    assert_eq!(waiting.next_due_at, Some(now + 1000));
    h.advance_ms(1000);
    assert_eq!(fetch_ids(h.store(), sub.key, 10).await, vec![(ids[0], 2)]);
    let now = h.now_ms();
    let ok = settled(ids[0], 2, Next::Delivered, now);
    h.store()
        .settle_deliveries(sub.key, vec![ok])
        .await
        .expect("settle");
    assert_eq!(fetch_ids(h.store(), sub.key, 10).await, vec![(ids[1], 1)]);
}

/// Without ordering, up to max_in_flight at once, each retried on its own.
pub async fn unordered_deliveries_run_in_parallel_up_to_the_cap<H: Harness>(h: H) {
    let store = h.store();
    let sub = subscribe(store, &[], Ordering::None, 4).await;
    let ids = append_n(store, A, "t", 10).await;
    let first = fetch_ids(store, sub.key, 100).await;
    assert_eq!(
        first.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        ids[..4]
    );
    let now = h.now_ms();
    let results = vec![
        settled(ids[0], 1, Next::RetryAt(now + 60_000), now),
        settled(ids[1], 1, Next::Delivered, now),
    ];
    store
        .settle_deliveries(sub.key, results)
        .await
        .expect("settle");
    // One slot freed (ids[1]); ids[0] keeps its slot while it waits.
    assert_eq!(fetch_ids(store, sub.key, 100).await, vec![(ids[4], 1)]);
    let state = store.delivery_state(sub.key).await.expect("state");
    assert_eq!((state.in_flight, state.retrying), (3, 1));
    assert!(
        state.position < ids[0].sequence(),
        "the retrying event holds the position"
    );
}

/// The last attempt makes a dead letter; the queue moves on; a replay takes it back.
pub async fn dead_letters_and_replays<H: Harness>(h: H) {
    let store = h.store();
    let sub = subscribe(store, &[], Ordering::Fifo, 1).await;
    let ids = append_n(store, A, "t", 2).await;
    assert_eq!(fetch_ids(store, sub.key, 1).await, vec![(ids[0], 1)]);
    let now = h.now_ms();
    let dead = settled(ids[0], 1, Next::Dead, now);
    store
        .settle_deliveries(sub.key, vec![dead])
        .await
        .expect("settle");
    let page = store
        .dead_letters(sub.key, None, 10)
        .await
        .expect("dead letters");
    assert_eq!(
        page.dead.iter().map(|d| d.event.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
    assert_eq!(page.dead[0].attempts, 1);
    assert_eq!(
        fetch_ids(store, sub.key, 1).await,
        vec![(ids[1], 1)],
        "FIFO moved on"
    );
    let ok = settled(ids[1], 1, Next::Delivered, now);
    store
        .settle_deliveries(sub.key, vec![ok])
        .await
        .expect("settle");
    // Another tenant's id and an unknown one queue nothing.
    let theirs = append_n(store, B, "t", 1).await[0];
    let unknown = EventId::new(ids[0].millis() + 1, ids[0].sequence(), ids[0].salt());
    let queued = store
        .replay(sub.key, Replay::Ids(vec![ids[0], theirs, unknown]))
        .await
        .expect("replay");
    assert_eq!(queued, 1);
    assert!(store
        .dead_letters(sub.key, None, 10)
        .await
        .expect("dead")
        .dead
        .is_empty());
    let again = store.fetch_deliveries(sub.key, 1).await.expect("fetch");
    assert_eq!(again.deliveries.len(), 1);
    assert_eq!(again.deliveries[0].event.id, ids[0]);
    assert!(again.deliveries[0].replay);
    assert_eq!(
        again.deliveries[0].attempt, 1,
        "a replay counts its attempts anew"
    );
    // A time range replays the matching events received in it.
    let since = h.now_ms();
    let later = append_n(store, A, "t", 3).await;
    let queued = store
        .replay(sub.key, Replay::Range { since, until: None })
        .await
        .expect("replay");
    assert!(queued >= 3, "{queued}");
    let _ = later;
}

/// The attempts log: newest first, pages, filters by outcome; bounded.
pub async fn attempts_log_pages_newest_first<H: Harness>(h: H) {
    let store = h.store();
    let sub = subscribe(store, &[], Ordering::None, 10).await;
    let ids = append_n(store, A, "t", 5).await;
    fetch_ids(store, sub.key, 10).await;
    let now = h.now_ms();
    let results: Vec<Settled> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let next = if i % 2 == 0 {
                Next::Delivered
            } else {
                Next::RetryAt(now + 10)
            };
            settled(*id, 1, next, now + i as i64)
        })
        .collect();
    store
        .settle_deliveries(sub.key, results)
        .await
        .expect("settle");
    let all = store
        .attempts(
            sub.key,
            AttemptQuery {
                before: None,
                limit: 2,
                outcome: None,
            },
        )
        .await
        .expect("attempts");
    assert_eq!(all.attempts.len(), 2);
    assert!(all.has_more);
    assert_eq!(all.attempts[0].event_id, ids[4], "newest first");
    assert!(all.attempts[0].serial > all.attempts[1].serial);
    let next = store
        .attempts(
            sub.key,
            AttemptQuery {
                before: Some(all.attempts[1].serial),
                limit: 10,
                outcome: None,
            },
        )
        .await
        .expect("attempts");
    assert_eq!(next.attempts.len(), 3);
    assert!(!next.has_more);
    let failed = store
        .attempts(
            sub.key,
            AttemptQuery {
                before: None,
                limit: 10,
                outcome: Some(AttemptOutcome::Failed),
            },
        )
        .await
        .expect("attempts");
    assert_eq!(
        failed
            .attempts
            .iter()
            .map(|a| a.event_id)
            .collect::<Vec<_>>(),
        vec![ids[3], ids[1]]
    );
    assert!(failed
        .attempts
        .iter()
        .all(|a| a.status == Some(503) && a.error.is_some()));
}

/// A settle for a delivery not handed out, or settled already, changes nothing.
pub async fn stale_settles_change_nothing<H: Harness>(h: H) {
    let store = h.store();
    let sub = subscribe(store, &[], Ordering::None, 10).await;
    let ids = append_n(store, A, "t", 3).await;
    assert_eq!(fetch_ids(store, sub.key, 1).await.len(), 1);
    let now = h.now_ms();
    // ids[1] was never handed out; ids[0] is settled twice.
    let results = vec![
        settled(ids[1], 1, Next::Dead, now),
        settled(ids[0], 1, Next::Delivered, now),
        settled(ids[0], 1, Next::Dead, now),
    ];
    store
        .settle_deliveries(sub.key, results)
        .await
        .expect("settle");
    let state = store.delivery_state(sub.key).await.expect("state");
    assert_eq!(state.dead_letters, 0);
    let log = store
        .attempts(
            sub.key,
            AttemptQuery {
                before: None,
                limit: 10,
                outcome: None,
            },
        )
        .await
        .expect("attempts");
    assert_eq!(log.attempts.len(), 1, "only the real settle is logged");
    assert_eq!(
        fetch_ids(store, sub.key, 10)
            .await
            .iter()
            .map(|(id, _)| *id)
            .collect::<Vec<_>>(),
        ids[1..]
    );
}

/// Delivery state is durable: after a reopen, what was settled stays settled, retries
/// keep their attempt counts and times, dead letters and attempts stay, and only what
/// was in flight is handed out again.
pub async fn delivery_state_survives_reopen<H: Harness>(mut h: H) {
    let sub = subscribe(h.store(), &[], Ordering::None, 20).await;
    let ids = append_n(h.store(), A, "t", 8).await;
    assert_eq!(fetch_ids(h.store(), sub.key, 20).await.len(), 8);
    let now = h.now_ms();
    let results = vec![
        settled(ids[0], 1, Next::Delivered, now),
        settled(ids[1], 1, Next::Delivered, now),
        settled(ids[3], 1, Next::Delivered, now),
        settled(ids[2], 3, Next::RetryAt(now + 5_000), now),
        settled(ids[4], 1, Next::Dead, now),
    ];
    h.store()
        .settle_deliveries(sub.key, results)
        .await
        .expect("settle");
    h.store().sync().await.expect("sync");
    h.reopen().await;
    // In flight at the "crash": 5, 6, 7. Settled: 0, 1, 3 (delivered), 4 (dead).
    let again = fetch_ids(h.store(), sub.key, 20).await;
    assert_eq!(again, vec![(ids[5], 1), (ids[6], 1), (ids[7], 1)]);
    h.advance_ms(5_000);
    assert_eq!(
        fetch_ids(h.store(), sub.key, 20).await,
        vec![(ids[2], 4)],
        "the retry kept its count"
    );
    let dead = h
        .store()
        .dead_letters(sub.key, None, 10)
        .await
        .expect("dead");
    assert_eq!(
        dead.dead.iter().map(|d| d.event.id).collect::<Vec<_>>(),
        vec![ids[4]]
    );
    let log = h
        .store()
        .attempts(
            sub.key,
            AttemptQuery {
                before: None,
                limit: 100,
                outcome: None,
            },
        )
        .await
        .expect("attempts");
    assert_eq!(log.attempts.len(), 5);
    let state = h.store().delivery_state(sub.key).await.expect("state");
    assert_eq!(state.last_success_at, Some(now));
}

/// The catalog: unique tenant names, keys, revocation, persistence.
pub async fn catalog_round_trips<H: Harness>(mut h: H) {
    let t = h
        .store()
        .create_tenant("acme", TenantLimits::default())
        .await
        .expect("create");
    assert!(h
        .store()
        .create_tenant("acme", TenantLimits::default())
        .await
        .is_err());
    let limits = TenantLimits {
        max_payload_bytes: Some(1024),
        ..TenantLimits::default()
    };
    h.store()
        .set_tenant_limits("acme", limits)
        .await
        .expect("limits");
    let key = ApiKeyRecord {
        id: "key_test".into(),
        tenant: t.id,
        sha256_hex: "00".repeat(32),
        prefix: "sk_test".into(),
        scopes: vec![Scope::Ingest],
        created_at: 0,
        revoked_at: None,
    };
    h.store().add_key(key.clone()).await.expect("add key");
    assert!(h.store().add_key(key).await.is_err(), "duplicate key id");
    h.store().revoke_key("key_test").await.expect("revoke");
    assert!(h.store().revoke_key("key_missing").await.is_err());
    h.reopen().await;
    let catalog = h.store().catalog().borrow().clone();
    let acme = catalog.tenant_by_name("acme").expect("tenant persisted");
    assert_eq!(acme.limits, limits);
    assert!(catalog.keys[0].revoked_at.is_some());
}

fn leasing(tenant: TenantId, limit: usize, ms: u64) -> InboxQuery {
    InboxQuery {
        lease_ms: Some(ms),
        ..query(tenant, limit)
    }
}

/// A lease is named by its generation: once the event is leased again, the old lease
/// acks, nacks and extends nothing; the current one acks, and the count stays.
pub async fn stale_leases_change_nothing<H: Harness>(mut h: H) {
    let id = append_n(h.store(), A, "t", 1).await[0];
    let first = h.store().list(leasing(A, 1, 1_000)).await.expect("lease");
    assert_eq!(first.events[0].delivery_count, 1);
    h.advance_ms(1_001);
    let second = h.store().list(leasing(A, 1, 30_000)).await.expect("lease");
    assert_eq!(second.events[0].id, id);
    assert_eq!(second.events[0].delivery_count, 2);
    let store = h.store();
    assert_eq!(
        store.ack_leased(A, vec![(id, 1)]).await.expect("ack")[0],
        SettleOutcome::LeaseExpired
    );
    for stale in [
        LeaseAction::Nack {
            lease: Some(1),
            delay_ms: 0,
        },
        LeaseAction::Extend {
            lease: 1,
            lease_ms: 60_000,
        },
    ] {
        assert_eq!(
            store.lease_action(A, id, stale).await.expect("act"),
            LeaseOutcome::Stale
        );
    }
    // Nothing changed: still leased under the second lease, until its own expiry.
    let got = store.get(A, id).await.expect("get").expect("there");
    assert_eq!(
        got.state,
        EventState::Leased {
            until: h.now_ms() + 30_000
        }
    );
    // Another tenant's lease of it, or an id that is not exactly its own: not found.
    assert_eq!(
        store.ack_leased(B, vec![(id, 2)]).await.expect("ack")[0],
        SettleOutcome::NotFound
    );
    assert_eq!(
        store
            .lease_action(
                B,
                id,
                LeaseAction::Extend {
                    lease: 2,
                    lease_ms: 1
                }
            )
            .await
            .expect("act"),
        LeaseOutcome::NotFound
    );
    // Several at once, each against its own lease: the stale one is left as it is.
    let other = append_n(store, A, "t2", 1).await[0];
    let mut q = leasing(A, 1, 30_000);
    q.event_type = Some("t2".into());
    store.list(q).await.expect("lease");
    assert_eq!(
        store
            .ack_leased(A, vec![(other, 7), (id, 2), (other, 1)])
            .await
            .expect("ack"),
        vec![
            SettleOutcome::LeaseExpired,
            SettleOutcome::Done,
            SettleOutcome::Done
        ]
    );
    assert_eq!(
        store.ack_leased(A, vec![(id, 2)]).await.expect("ack")[0],
        SettleOutcome::AlreadyDone
    );
    let acked = store.get(A, id).await.expect("get").expect("there");
    assert_eq!((acked.state, acked.delivery_count), (EventState::Acked, 2));
    assert_eq!(
        store
            .lease_action(
                A,
                id,
                LeaseAction::Nack {
                    lease: None,
                    delay_ms: 0
                }
            )
            .await
            .expect("act"),
        LeaseOutcome::NotFound,
        "an acked event has no lease to give back"
    );
}

/// A nack makes the event visible again at once or after its delay; an extension keeps
/// it hidden past the lease it extends; a poll that passes hidden events says when the
/// first comes back.
pub async fn nacks_and_extensions<H: Harness>(mut h: H) {
    let ids = append_n(h.store(), A, "t", 3).await;
    let leased = h.store().list(leasing(A, 3, 30_000)).await.expect("lease");
    assert_eq!(leased.events.len(), 3);
    let t0 = h.now_ms();
    let store = h.store();
    assert_eq!(
        store
            .lease_action(
                A,
                ids[0],
                LeaseAction::Nack {
                    lease: Some(1),
                    delay_ms: 0
                }
            )
            .await
            .expect("nack"),
        LeaseOutcome::Done { visible_at: t0 }
    );
    assert_eq!(
        store
            .lease_action(
                A,
                ids[1],
                LeaseAction::Nack {
                    lease: Some(1),
                    delay_ms: 10_000
                }
            )
            .await
            .expect("nack"),
        LeaseOutcome::Done {
            visible_at: t0 + 10_000
        }
    );
    assert_eq!(
        store
            .lease_action(
                A,
                ids[2],
                LeaseAction::Extend {
                    lease: 1,
                    lease_ms: 60_000
                }
            )
            .await
            .expect("extend"),
        LeaseOutcome::Done {
            visible_at: t0 + 60_000
        }
    );
    // Only the event nacked without a delay is there, under a new lease.
    let now = store.list(leasing(A, 10, 30_000)).await.expect("lease");
    assert_eq!(
        now.events
            .iter()
            .map(|e| (e.id, e.delivery_count))
            .collect::<Vec<_>>(),
        vec![(ids[0], 2)]
    );
    assert_eq!(
        store.ack_leased(A, vec![(ids[0], 2)]).await.expect("ack")[0],
        SettleOutcome::Done
    );
    // The poll passed over the other two and says when the first of them is back.
    let empty = store.list(leasing(A, 10, 30_000)).await.expect("lease");
    assert!(empty.events.is_empty());
    assert_eq!(empty.next_visible, Some(t0 + 10_000));
    h.advance_ms(10_000);
    let back = h.store().list(leasing(A, 10, 30_000)).await.expect("lease");
    assert_eq!(
        back.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[1]]
    );
    // Past the original lease's end (30 s), the extended one (60 s) still holds.
    h.advance_ms(25_000);
    let held = h.store().list(leasing(A, 10, 30_000)).await.expect("lease");
    assert!(held.events.is_empty(), "{:?}", held.events);
    h.advance_ms(25_001);
    let extended = h.store().list(leasing(A, 10, 30_000)).await.expect("lease");
    assert!(extended
        .events
        .iter()
        .any(|e| e.id == ids[2] && e.delivery_count == 2));
    // Without a lease, a nack delays any pending event.
    let id = append_n(h.store(), A, "late", 1).await[0];
    assert!(matches!(
        h.store()
            .lease_action(
                A,
                id,
                LeaseAction::Nack {
                    lease: None,
                    delay_ms: 5_000
                }
            )
            .await
            .expect("nack"),
        LeaseOutcome::Done { .. }
    ));
    let mut q = leasing(A, 10, 1_000);
    q.event_type = Some("late".into());
    assert!(h.store().list(q).await.expect("lease").events.is_empty());
}

/// Each id's state and count, as a history listing shows them; and the inbox signal
/// wakes a waiter on a commit of its tenant.
pub async fn inbox_states_and_signals<H: Harness>(h: H) {
    let store = h.store();
    let ids = append_n(store, A, "t", 3).await;
    let other = append_n(store, B, "t", 1).await[0];
    store.list(leasing(A, 1, 30_000)).await.expect("lease");
    store
        .settle(A, vec![ids[2]], Settle::Ack)
        .await
        .expect("ack");
    let states = store
        .inbox_states(A, vec![ids[0], ids[1], ids[2], other])
        .await
        .expect("states");
    assert_eq!(
        states,
        vec![
            Some((
                EventState::Leased {
                    until: h.now_ms() + 30_000
                },
                1
            )),
            Some((EventState::Pending, 0)),
            Some((EventState::Acked, 0)),
            None,
        ]
    );
    for interchangeable in [true, false] {
        let signal = store.inbox_signal(A, interchangeable);
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        append_n(store, A, "t", 1).await;
        within("the inbox signal after a commit", notified).await;
    }
}

/// An event leased `max_deliveries` times without an ack moves to the dead letters on
/// its next poll; the move is durable; a requeue puts it back with a count of 0.
pub async fn dead_letters_after_max_deliveries<H: Harness>(mut h: H) {
    let ids = append_n(h.store(), A, "t", 3).await;
    let mut q = leasing(A, 10, 1_000);
    q.max_deliveries = Some(2);
    for round in 1..=2 {
        let page = h.store().list(q.clone()).await.expect("lease");
        assert_eq!(page.events.len(), 3, "round {round}");
        assert!(page.events.iter().all(|e| e.delivery_count == round));
        // ids[2] is acked on its second delivery: it never dies.
        if round == 2 {
            h.store()
                .settle(A, vec![ids[2]], Settle::Ack)
                .await
                .expect("ack");
        }
        h.advance_ms(1_001);
    }
    // The third poll leases nothing: both events went to the dead letters.
    let third = h.store().list(q.clone()).await.expect("lease");
    assert!(third.events.is_empty(), "{:?}", third.events);
    let dead = h
        .store()
        .inbox_dead_letters(A, None, 10)
        .await
        .expect("dead");
    assert_eq!(
        dead.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[..2]
    );
    assert!(dead
        .events
        .iter()
        .all(|e| e.state == EventState::Dead && e.delivery_count == 2));
    // Not in the plain listing, not leasable, no lease to act on; another tenant sees none.
    assert!(h
        .store()
        .list(query(A, 10))
        .await
        .expect("list")
        .events
        .is_empty());
    assert_eq!(
        h.store()
            .lease_action(
                A,
                ids[0],
                LeaseAction::Nack {
                    lease: None,
                    delay_ms: 0
                }
            )
            .await
            .expect("nack"),
        LeaseOutcome::NotFound
    );
    assert!(h
        .store()
        .inbox_dead_letters(B, None, 10)
        .await
        .expect("dead")
        .events
        .is_empty());
    let got = h.store().get(A, ids[0]).await.expect("get").expect("there");
    assert_eq!(got.state, EventState::Dead);

    // Durable: still dead after a reopen (counts, like leases, are not kept).
    h.reopen().await;
    let dead = h
        .store()
        .inbox_dead_letters(A, None, 10)
        .await
        .expect("dead");
    assert_eq!(
        dead.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[..2]
    );

    // Requeue: only dead letters; they come back with a count of 0.
    let out = h
        .store()
        .settle(A, vec![ids[0], ids[2], ids[0]], Settle::Requeue)
        .await
        .expect("requeue");
    assert_eq!(
        out,
        vec![
            SettleOutcome::Done,
            SettleOutcome::NotFound,
            SettleOutcome::NotFound
        ]
    );
    let back = h.store().list(q.clone()).await.expect("lease");
    assert_eq!(
        back.events
            .iter()
            .map(|e| (e.id, e.delivery_count))
            .collect::<Vec<_>>(),
        vec![(ids[0], 1)]
    );
    // A dead letter can be acked (or deleted) like any event.
    assert_eq!(
        h.store()
            .settle(A, vec![ids[1]], Settle::Ack)
            .await
            .expect("ack"),
        vec![SettleOutcome::Done]
    );
    assert!(h
        .store()
        .inbox_dead_letters(A, None, 10)
        .await
        .expect("dead")
        .events
        .is_empty());
    h.reopen().await;
    assert!(h
        .store()
        .inbox_dead_letters(A, None, 10)
        .await
        .expect("dead")
        .events
        .is_empty());
    let requeued = h.store().get(A, ids[0]).await.expect("get").expect("there");
    assert_open_after_reopen(requeued.state, back.events[0].state, "a requeue");
}

/// Polls futures concurrently on the current task, without a dependency on `futures`.
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (f, slot) in futs.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
/// Creates a named consumer of tenant A.
async fn consume<S: Store>(
    store: &S,
    name: &str,
    event_types: &[&str],
    start: ConsumerStart,
) -> InboxKey {
    ensure_tenants(store).await;
    let change = CatalogChange::CreateConsumer(NewConsumer {
        tenant: A,
        name: name.into(),
        event_types: event_types.iter().map(|t| t.to_string()).collect(),
        max_deliveries: None,
        start,
    });
    match store.change_catalog(change).await.expect("create consumer") {
        Changed::Consumer(c) => InboxKey {
            tenant: A,
            consumer: c.id,
        },
        other => panic!("expected a consumer, got {other:?}"),
    }
}

/// The ids an inbox lists now, in order.
async fn listed<S: Store>(store: &S, inbox: InboxKey) -> Vec<EventId> {
    let mut q = query(inbox.tenant, 100);
    q.consumer = inbox.consumer;
    let page = store.list(q).await.expect("list");
    page.events.iter().map(|e| e.id).collect()
}

/// A pending-count summary of one inbox.
async fn pending_in<S: Store>(store: &S, inbox: InboxKey) -> Option<u64> {
    store
        .inbox_summaries()
        .await
        .expect("summaries")
        .into_iter()
        .find(|s| s.tenant == inbox.tenant && s.consumer == inbox.consumer)
        .map(|s| s.pending)
}

/// Named consumers are independent inboxes over one log: each takes the events after
/// its start that match its types, and acks, leases and dead letters in one change
/// nothing in another. A delete is the log's and leaves all of them. All of it
/// survives a reopen, and a deleted consumer's records never reach a new one of the
/// same name.
pub async fn named_consumers_are_independent_inboxes<H: Harness>(mut h: H) {
    ensure_tenants(h.store()).await;
    let before: Vec<EventId> = {
        let events = ["order.created", "user.joined", "order.paid"]
            .iter()
            .enumerate()
            .map(|(i, t)| event(A, t, i as u64))
            .collect();
        h.store()
            .append(events)
            .await
            .expect("append")
            .iter()
            .map(created)
            .collect()
    };
    let orders = consume(h.store(), "orders", &["order.*"], ConsumerStart::All).await;
    let fresh = consume(h.store(), "fresh", &[], ConsumerStart::New).await;
    let after: Vec<EventId> = {
        let events = vec![event(A, "order.shipped", 3), event(A, "user.left", 4)];
        h.store()
            .append(events)
            .await
            .expect("append")
            .iter()
            .map(created)
            .collect()
    };
    let default = InboxKey::from(A);
    assert_eq!(
        listed(h.store(), default).await,
        [&before[..], &after[..]].concat(),
        "the default inbox takes everything"
    );
    assert_eq!(
        listed(h.store(), orders).await,
        vec![before[0], before[2], after[0]],
        "start all, order.* only"
    );
    assert_eq!(
        listed(h.store(), fresh).await,
        after,
        "start new: nothing before it"
    );
    // An event a consumer does not take is not found through it.
    assert!(h
        .store()
        .get(orders, before[1])
        .await
        .expect("get")
        .is_none());
    assert!(h
        .store()
        .get(fresh, before[0])
        .await
        .expect("get")
        .is_none());
    let out = h
        .store()
        .settle(orders, vec![before[1]], Settle::Ack)
        .await
        .expect("ack");
    assert_eq!(out, vec![SettleOutcome::NotFound]);

    // An ack in one consumer leaves the others as they were.
    let out = h
        .store()
        .settle(orders, vec![before[0]], Settle::Ack)
        .await
        .expect("ack");
    assert_eq!(out, vec![SettleOutcome::Done]);
    let in_orders = h
        .store()
        .get(orders, before[0])
        .await
        .expect("get")
        .expect("there");
    assert_eq!(in_orders.state, EventState::Acked);
    let in_default = h
        .store()
        .get(A, before[0])
        .await
        .expect("get")
        .expect("there");
    assert_eq!(in_default.state, EventState::Pending);
    let again = h
        .store()
        .settle(orders, vec![before[0]], Settle::Ack)
        .await
        .expect("ack");
    assert_eq!(again, vec![SettleOutcome::AlreadyDone]);

    // Leases are per consumer: a lease in `fresh` is not one in the default inbox.
    let mut lease = leasing(A, 10, 1_000);
    lease.consumer = fresh.consumer;
    let leased = h.store().list(lease.clone()).await.expect("lease");
    assert_eq!(leased.events.len(), 2);
    assert!(leased.events.iter().all(|e| e.delivery_count == 1));
    let stale = h
        .store()
        .ack_leased(A, vec![(after[0], 1)])
        .await
        .expect("ack");
    assert_eq!(
        stale,
        vec![SettleOutcome::LeaseExpired],
        "the default inbox never leased it"
    );
    let plain = h
        .store()
        .list(leasing(A, 10, 1_000))
        .await
        .expect("lease default");
    assert_eq!(
        plain.events.len(),
        5,
        "fresh's leases hide nothing in the default inbox"
    );
    let acked = h
        .store()
        .ack_leased(fresh, vec![(after[0], 1)])
        .await
        .expect("ack");
    assert_eq!(acked, vec![SettleOutcome::Done]);
    let count = h
        .store()
        .get(fresh, after[0])
        .await
        .expect("get")
        .expect("there");
    assert_eq!((count.state, count.delivery_count), (EventState::Acked, 1));

    // Dead letters are per consumer too.
    h.advance_ms(1_001);
    let mut dying = leasing(A, 10, 1_000);
    dying.consumer = orders.consumer;
    dying.max_deliveries = Some(1);
    let first = h.store().list(dying.clone()).await.expect("lease");
    assert_eq!(first.events.len(), 2);
    h.advance_ms(1_001);
    assert!(h
        .store()
        .list(dying.clone())
        .await
        .expect("lease")
        .events
        .is_empty());
    let dead = h
        .store()
        .inbox_dead_letters(orders, None, 10)
        .await
        .expect("dead");
    assert_eq!(
        dead.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![before[2], after[0]]
    );
    assert!(h
        .store()
        .inbox_dead_letters(A, None, 10)
        .await
        .expect("dead")
        .events
        .is_empty());

    // A delete is the log's: gone from every consumer.
    let out = h
        .store()
        .settle(fresh, vec![after[1]], Settle::Delete)
        .await
        .expect("delete");
    assert_eq!(out, vec![SettleOutcome::Done]);
    for inbox in [default, fresh] {
        assert!(h.store().get(inbox, after[1]).await.expect("get").is_none());
        assert!(!listed(h.store(), inbox).await.contains(&after[1]));
    }
    assert_eq!(pending_in(h.store(), default).await, Some(4));
    assert_eq!(
        pending_in(h.store(), orders).await,
        Some(2),
        "two dead letters"
    );
    assert_eq!(pending_in(h.store(), fresh).await, Some(0));

    // All of it survives a reopen.
    h.reopen().await;
    let in_orders = h
        .store()
        .get(orders, before[0])
        .await
        .expect("get")
        .expect("there");
    assert_eq!(in_orders.state, EventState::Acked);
    let dead = h
        .store()
        .inbox_dead_letters(orders, None, 10)
        .await
        .expect("dead");
    assert_eq!(dead.events.len(), 2, "dead letters are durable");
    assert_eq!(listed(h.store(), fresh).await, Vec::<EventId>::new());
    assert_eq!(listed(h.store(), default).await.len(), 4);
    assert_eq!(pending_in(h.store(), orders).await, Some(2));

    // A deleted consumer's state goes with it; a new one of the same name starts over.
    let change = CatalogChange::DeleteConsumer {
        tenant: A,
        name: "orders".into(),
    };
    h.store()
        .change_catalog(change)
        .await
        .expect("delete consumer");
    assert_eq!(pending_in(h.store(), orders).await, None);
    let orders2 = consume(h.store(), "orders", &["order.*"], ConsumerStart::All).await;
    assert_ne!(
        orders2.consumer, orders.consumer,
        "consumer ids are never reused"
    );
    assert_eq!(
        listed(h.store(), orders2).await,
        vec![before[0], before[2], after[0]]
    );
    h.reopen().await;
    assert_eq!(
        listed(h.store(), orders2).await,
        vec![before[0], before[2], after[0]],
        "the deleted consumer's acks and dead letters did not reach the new one"
    );
    assert_eq!(pending_in(h.store(), orders).await, None);
}

/// Expands to one `#[test]` per conformance case for the given [`Harness`] type.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:ty) => {
        $crate::conformance_tests!(@cases $harness;
            append_then_get_is_verbatim, inbox_pages_in_order, inbox_filters_by_type,
            leases_hide_then_expire, ack_is_idempotent, delete_removes, tenants_are_isolated,
            unknown_ids_find_nothing, altered_ids_find_nothing, idempotency_replays_and_refuses,
            concurrent_keys_create_one_event, reopen_keeps_state, subscribers_see_commits,
            lagging_follower_reads_everything, log_reads_page_in_order, catalog_round_trips,
            subscriptions_start_after_creation_and_match, fifo_holds_order_through_retries,
            unordered_deliveries_run_in_parallel_up_to_the_cap, dead_letters_and_replays,
            attempts_log_pages_newest_first, stale_settles_change_nothing,
            delivery_state_survives_reopen, stale_leases_change_nothing, nacks_and_extensions,
            inbox_states_and_signals, dead_letters_after_max_deliveries,
            named_consumers_are_independent_inboxes);
    };
    (@cases $harness:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async {
                    let h = <$harness as $crate::conformance::Harness>::fresh().await;
                    $crate::conformance::$case(h).await
                });
            }
        )*
    };
}
