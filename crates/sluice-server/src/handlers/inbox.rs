//! The inbox: `GET /v1/inbox` (list, lease, long poll), acks one or many, and what a
//! consumer does with a lease before it ends: nack (`/nack`) or extend (`/lease`).
//!
//! A lease is named by a `lease_id` (see [`crate::cursor::CursorKey::encode_lease`]):
//! the event and the lease's generation, signed. An ack, nack or extension that sends
//! one is checked against the event's current lease, and a stale one (the lease
//! expired and the event was leased again) is `409 lease_expired` and changes nothing,
//! as an SQS receipt handle or a JetStream ack of a redelivered message would be.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use http::StatusCode;
use sluice_store::{
    EventId, EventState, InboxKey, InboxQuery, LeaseAction, LeaseOutcome, Settle, SettleOutcome,
    Store, StoredEvent,
};

use super::{
    event_id, inbox_of, limit_param, not_found_event, parse_json, read_json_body, store_problem,
    write_event_page, LEASE_SECONDS_MAX,
};
use crate::app::{App, Cx};
use crate::body;
use crate::cursor::Listing;
use crate::json::JsonWriter;
use crate::problem::{Code, FieldError, Problem};
use crate::reply::{self, Reply};
use crate::validate;

/// Ids one bulk ack may carry.
const ACK_IDS_MAX: usize = 1000;

/// The longest a long poll waits (`wait_seconds`), as SQS's `WaitTimeSeconds`.
const WAIT_SECONDS_MAX: u64 = 20;

/// The longest a nack may hide an event (`delay_seconds`), as a lease.
const DELAY_SECONDS_MAX: u64 = LEASE_SECONDS_MAX;

/// A lease body's size bound: it holds an id and a number.
const LEASE_BODY_MAX: usize = 4 << 10;

/// `GET /v1/inbox`
pub(crate) async fn list<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let inbox = inbox_of(app, cx).await?;
    let consumer = inbox.key.consumer;
    let tenant = inbox.key.tenant;
    let mut query = InboxQuery {
        tenant,
        consumer,
        limit: 100,
        after: None,
        event_type: None,
        lease_ms: None,
        max_deliveries: inbox.max_deliveries,
    };
    let mut wait = Duration::ZERO;
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(cx.head.uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => query.limit = limit_param(&v, &mut errors),
            "cursor" if v.is_empty() => {}
            "cursor" => {
                query.after = Some(app.cursors.decode(Listing::Inbox(consumer), tenant, &v)?)
            }
            "consumer" => {}
            "event_type" if v.is_empty() => {}
            "event_type" if validate::event_type(&v) => query.event_type = Some(v.into_owned()),
            "event_type" => errors.push(FieldError::new("event_type", validate::EVENT_TYPE_RULE)),
            "lease_seconds" => match v.parse::<u64>() {
                Ok(s) if (1..=LEASE_SECONDS_MAX).contains(&s) => query.lease_ms = Some(s * 1000),
                _ => errors.push(FieldError::new(
                    "lease_seconds",
                    "must be an integer from 1 to 43200",
                )),
            },
            "wait_seconds" => match v.parse::<u64>() {
                Ok(s) if s <= WAIT_SECONDS_MAX => wait = Duration::from_secs(s),
                _ => errors.push(FieldError::new(
                    "wait_seconds",
                    "must be an integer from 0 to 20",
                )),
            },
            other => errors.push(FieldError::new(
                other,
                "is not a known parameter (limit, cursor, event_type, lease_seconds, wait_seconds, consumer)",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let leasing = query.lease_ms.is_some();
    let page = poll(app, query, wait).await?;
    if leasing {
        let m = &app.metrics.inbox;
        m.leased.fetch_add(page.events.len() as u64, Relaxed);
        let again = page.events.iter().filter(|e| e.delivery_count > 1).count();
        m.redelivered.fetch_add(again as u64, Relaxed);
    }
    let cursor = page
        .next_cursor
        .map(|c| app.cursors.encode(Listing::Inbox(consumer), tenant, c));
    let lease_id = |e: &StoredEvent| match e.state {
        EventState::Leased { .. } if leasing => Some(app.cursors.encode_lease(
            inbox.key,
            e.id.sequence(),
            e.delivery_count,
        )),
        _ => None,
    };
    let body = write_event_page(&page.events, lease_id, cursor, page.has_more);
    Ok(reply::json(StatusCode::OK, body))
}

/// Lists once, or, with a wait, until something is there: woken by the tenant's
/// commits and nacks, and by the time the earliest hidden event it passed over becomes
/// visible again (an expired lease wakes nobody else). The signal is enabled before
/// each listing, so a commit between the listing and the wait is not missed.
async fn poll<S: Store>(
    app: &App<S>,
    query: InboxQuery,
    wait: Duration,
) -> Result<sluice_store::InboxPage, Problem> {
    if wait.is_zero() {
        return app.store.list(query).await.map_err(store_problem);
    }
    let deadline = tokio::time::Instant::now() + wait;
    let interchangeable = query.lease_ms.is_some() && query.event_type.is_none();
    let key = sluice_store::InboxKey {
        tenant: query.tenant,
        consumer: query.consumer,
    };
    let signal = app.store.inbox_signal(key, interchangeable);
    let _parked = Parked::new(&app.metrics.inbox.polls_waiting);
    loop {
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let page = app.store.list(query.clone()).await.map_err(store_problem)?;
        let now = tokio::time::Instant::now();
        if !page.events.is_empty() || now >= deadline {
            return Ok(page);
        }
        let until = match page.next_visible {
            Some(at) => {
                let ms = at.saturating_sub(sluice_store::now_ms()).max(0) as u64;
                deadline.min(now + Duration::from_millis(ms))
            }
            None => deadline,
        };
        tokio::select! {
            () = &mut notified => {}
            () = tokio::time::sleep_until(until) => {}
        }
    }
}

/// Counts a long poll as waiting for as long as it lives (whichever way it ends).
struct Parked<'a>(&'a AtomicU64);

impl<'a> Parked<'a> {
    fn new(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Relaxed);
        Parked(gauge)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The `lease_id` a request body names, checked against the event it came with.
fn lease_of<S: Store>(
    app: &App<S>,
    inbox: InboxKey,
    id: EventId,
    lease_id: Option<&str>,
) -> Result<Option<u32>, Problem> {
    lease_id
        .map(|l| app.cursors.decode_lease(inbox, id.sequence(), l))
        .transpose()
}

fn lease_expired<S: Store>(app: &App<S>, text: &str) -> Problem {
    app.metrics.inbox.lease_expired.fetch_add(1, Relaxed);
    Problem::new(
        Code::LeaseExpired,
        format!("the lease on {text} is no longer yours: it expired and the event was leased again; nothing changed (lease it again to work on it)"),
    )
}

/// The optional body of an ack: the lease it is made under.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AckBody {
    lease_id: Option<String>,
}

/// `POST /v1/events/{id}/nack {"lease_id"?, "delay_seconds"?}`
pub(crate) async fn nack<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct NackBody {
        lease_id: Option<String>,
        delay_seconds: Option<u64>,
    }
    let inbox = inbox_of(app, cx).await?.key;
    let body = read_json_body(app, cx, LEASE_BODY_MAX).await?;
    let text = cx.param("id");
    let id = event_id(text)?;
    let parsed: NackBody = if body.is_empty() {
        NackBody::default()
    } else {
        parse_json(&body)?
    };
    let delay = parsed.delay_seconds.unwrap_or(0);
    if delay > DELAY_SECONDS_MAX {
        return Err(Problem::validation(vec![FieldError::new(
            "delay_seconds",
            "must be an integer from 0 to 43200",
        )]));
    }
    let lease = lease_of(app, inbox, id, parsed.lease_id.as_deref())?;
    let action = LeaseAction::Nack {
        lease,
        delay_ms: delay * 1000,
    };
    lease_reply(app, inbox, id, text, action, parsed.lease_id.as_deref()).await
}

/// `POST /v1/events/{id}/lease {"lease_id", "lease_seconds"}`
pub(crate) async fn extend<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ExtendBody {
        lease_id: String,
        lease_seconds: u64,
    }
    let inbox = inbox_of(app, cx).await?.key;
    let body = read_json_body(app, cx, LEASE_BODY_MAX).await?;
    let text = cx.param("id");
    let id = event_id(text)?;
    let parsed: ExtendBody = parse_json(&body)?;
    if !(1..=LEASE_SECONDS_MAX).contains(&parsed.lease_seconds) {
        return Err(Problem::validation(vec![FieldError::new(
            "lease_seconds",
            "must be an integer from 1 to 43200",
        )]));
    }
    let lease = app
        .cursors
        .decode_lease(inbox, id.sequence(), &parsed.lease_id)?;
    let action = LeaseAction::Extend {
        lease,
        lease_ms: parsed.lease_seconds * 1000,
    };
    lease_reply(app, inbox, id, text, action, Some(&parsed.lease_id)).await
}

/// Applies a nack or an extension and answers with where the event stands.
async fn lease_reply<S: Store>(
    app: &App<S>,
    inbox: InboxKey,
    id: EventId,
    text: &str,
    action: LeaseAction,
    lease_id: Option<&str>,
) -> Result<Reply, Problem> {
    match app
        .store
        .lease_action(inbox, id, action)
        .await
        .map_err(store_problem)?
    {
        LeaseOutcome::Done { visible_at } => {
            let mut w = JsonWriter::with_capacity(160);
            w.begin_object();
            w.field_str("event_id", text);
            match action {
                LeaseAction::Extend { .. } => {
                    w.field_str("state", "leased");
                    if let Some(l) = lease_id {
                        w.field_str("lease_id", l);
                    }
                    w.field_timestamp("lease_expires_at", visible_at);
                }
                LeaseAction::Nack { .. } => {
                    app.metrics.inbox.nacked.fetch_add(1, Relaxed);
                    w.field_str("state", "pending");
                    w.field_timestamp("visible_at", visible_at);
                }
            }
            w.end_object();
            Ok(reply::json(StatusCode::OK, w.finish()))
        }
        LeaseOutcome::Stale => Err(lease_expired(app, text)),
        LeaseOutcome::NotFound => Err(not_found_event(text)),
    }
}

/// `GET /v1/inbox/dead-letters?limit=&cursor=`: events leased `max_deliveries` times
/// without an ack, oldest first.
pub(crate) async fn dead_letters<S: Store>(
    app: &App<S>,
    cx: &mut Cx<'_>,
) -> Result<Reply, Problem> {
    let inbox = inbox_of(app, cx).await?.key;
    let (tenant, consumer) = (inbox.tenant, inbox.consumer);
    let mut limit = 100;
    let mut after = None;
    let mut errors = Vec::new();
    for (k, v) in form_urlencoded::parse(cx.head.uri.query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => limit = limit_param(&v, &mut errors),
            "cursor" if v.is_empty() => {}
            "cursor" => {
                after = Some(
                    app.cursors
                        .decode(Listing::InboxDeadLetters(consumer), tenant, &v)?,
                )
            }
            "consumer" => {}
            other => errors.push(FieldError::new(
                other,
                "is not a known parameter (limit, cursor, consumer)",
            )),
        }
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let page = app
        .store
        .inbox_dead_letters(inbox, after, limit)
        .await
        .map_err(store_problem)?;
    let cursor = page.next_cursor.map(|c| {
        app.cursors
            .encode(Listing::InboxDeadLetters(consumer), tenant, c)
    });
    let body = write_event_page(&page.events, |_| None, cursor, page.has_more);
    Ok(reply::json(StatusCode::OK, body))
}

/// `POST /v1/inbox/dead-letters/requeue {"event_ids": [...]}`: back in the inbox, with
/// their delivery counts at 0.
pub(crate) async fn requeue<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let inbox = inbox_of(app, cx).await?.key;
    bulk(app, cx, inbox, Settle::Requeue).await
}

/// `POST /v1/inbox/ack {"event_ids": [...]}`
pub(crate) async fn ack_many<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let inbox = inbox_of(app, cx).await?.key;
    bulk(app, cx, inbox, Settle::Ack).await
}

/// A settle of up to [`ACK_IDS_MAX`] ids from `{"event_ids": [...]}`, answered per id:
/// the bulk ack and the dead letters' requeue.
async fn bulk<S: Store>(
    app: &App<S>,
    cx: &mut Cx<'_>,
    inbox: InboxKey,
    how: Settle,
) -> Result<Reply, Problem> {
    body::require_json(cx.known, false)?;
    let body = body::read(cx.known, cx.body, 1 << 20, app.config.body_read_timeout).await?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct BulkBody {
        event_ids: Vec<String>,
        /// For acks: each id's lease (`null` for none), in the same order.
        lease_ids: Option<Vec<Option<String>>>,
    }
    let parsed: BulkBody = serde_json::from_slice(&body).map_err(|e| {
        if e.is_data() {
            Problem::validation(vec![FieldError::new(
                "event_ids",
                "must be an array of event id strings (and lease_ids, if sent, an array of lease ids or nulls)",
            )])
        } else {
            Problem::new(Code::MalformedJson, format!("body is not valid JSON: {e}"))
        }
    })?;
    if parsed.event_ids.is_empty() || parsed.event_ids.len() > ACK_IDS_MAX {
        return Err(Problem::validation(vec![FieldError::new(
            "event_ids",
            "must hold 1 to 1000 ids",
        )]));
    }
    let leases = parsed.lease_ids.unwrap_or_default();
    if !leases.is_empty() && (how != Settle::Ack || leases.len() != parsed.event_ids.len()) {
        return Err(Problem::validation(vec![FieldError::new(
            "lease_ids",
            "must hold one lease id (or null) per event id, and only in an ack",
        )]));
    }
    /// What each item asks of the store.
    enum Item {
        /// Not an event id, or a lease id not issued for it.
        Refused(&'static str),
        Plain(EventId),
        Leased(EventId, u32),
    }
    let items: Vec<Item> = parsed
        .event_ids
        .iter()
        .enumerate()
        .map(|(i, text)| match EventId::parse(text) {
            None => Item::Refused("not_found"),
            Some(id) => match leases.get(i).and_then(Option::as_deref) {
                None => Item::Plain(id),
                Some(l) => match app.cursors.decode_lease(inbox, id.sequence(), l) {
                    Ok(generation) => Item::Leased(id, generation),
                    Err(_) => Item::Refused("invalid_lease"),
                },
            },
        })
        .collect();
    let plain: Vec<EventId> = items
        .iter()
        .filter_map(|i| match i {
            Item::Plain(id) => Some(*id),
            _ => None,
        })
        .collect();
    let leased: Vec<(EventId, u32)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Leased(id, g) => Some((*id, *g)),
            _ => None,
        })
        .collect();
    let asked = (plain.len(), leased.len());
    let plain_out = if plain.is_empty() {
        Vec::new()
    } else {
        app.store
            .settle(inbox, plain, how)
            .await
            .map_err(store_problem)?
    };
    let leased_out = if leased.is_empty() {
        Vec::new()
    } else {
        app.store
            .ack_leased(inbox, leased)
            .await
            .map_err(store_problem)?
    };
    if (plain_out.len(), leased_out.len()) != asked {
        return Err(Problem::new(
            Code::Internal,
            format!(
                "the store answered {} of {} settles",
                plain_out.len() + leased_out.len(),
                asked.0 + asked.1
            ),
        ));
    }
    let (mut plain_out, mut leased_out) = (plain_out.into_iter(), leased_out.into_iter());
    let mut acked = 0;
    let mut w = JsonWriter::with_capacity(64 * items.len() + 32);
    w.begin_object();
    w.key("results");
    w.begin_array();
    for (text, item) in parsed.event_ids.iter().zip(&items) {
        // Each store answer comes in order (their counts were checked above).
        let outcome = match item {
            Item::Refused(status) => Err(*status),
            Item::Plain(_) => Ok(plain_out.next().unwrap_or(SettleOutcome::NotFound)),
            Item::Leased(..) => Ok(leased_out.next().unwrap_or(SettleOutcome::NotFound)),
        };
        w.begin_object();
        w.field_str("event_id", text);
        w.field_str(
            "status",
            match (how, outcome) {
                (_, Err(status)) => status,
                (Settle::Requeue, Ok(SettleOutcome::Done)) => {
                    acked += 1;
                    app.metrics.inbox.requeued.fetch_add(1, Relaxed);
                    "requeued"
                }
                (_, Ok(SettleOutcome::Done)) => {
                    acked += 1;
                    app.metrics.inbox.acked.fetch_add(1, Relaxed);
                    "acked"
                }
                (_, Ok(SettleOutcome::AlreadyDone)) => "already_acked",
                (_, Ok(SettleOutcome::NotFound)) => "not_found",
                (_, Ok(SettleOutcome::LeaseExpired)) => {
                    app.metrics.inbox.lease_expired.fetch_add(1, Relaxed);
                    "lease_expired"
                }
            },
        );
        w.end_object();
    }
    w.end_array();
    w.field_u64(
        if how == Settle::Requeue {
            "requeued"
        } else {
            "acked"
        },
        acked,
    );
    w.end_object();
    Ok(reply::json(StatusCode::OK, w.finish()))
}

/// `POST /v1/events/{id}/ack`, with an optional body `{"lease_id"}`.
pub(crate) async fn ack_one<S: Store>(app: &App<S>, cx: &mut Cx<'_>) -> Result<Reply, Problem> {
    let inbox = inbox_of(app, cx).await?.key;
    let body = read_json_body(app, cx, LEASE_BODY_MAX).await?;
    let text = cx.param("id");
    let id = event_id(text)?;
    let parsed: AckBody = if body.is_empty() {
        AckBody::default()
    } else {
        parse_json(&body)?
    };
    let outcome = match lease_of(app, inbox, id, parsed.lease_id.as_deref())? {
        Some(lease) => app
            .store
            .ack_leased(inbox, vec![(id, lease)])
            .await
            .map_err(store_problem)?,
        None => app
            .store
            .settle(inbox, vec![id], Settle::Ack)
            .await
            .map_err(store_problem)?,
    };
    if outcome.first() == Some(&SettleOutcome::Done) {
        app.metrics.inbox.acked.fetch_add(1, Relaxed);
    }
    match outcome.first() {
        Some(SettleOutcome::Done | SettleOutcome::AlreadyDone) => {
            let mut w = JsonWriter::with_capacity(96);
            w.begin_object();
            w.field_str("event_id", text);
            w.field_str("status", "acked");
            w.end_object();
            Ok(reply::json(StatusCode::OK, w.finish()))
        }
        Some(SettleOutcome::LeaseExpired) => Err(lease_expired(app, text)),
        Some(SettleOutcome::NotFound) | None => Err(not_found_event(text)),
    }
}
