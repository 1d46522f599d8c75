//! `GET /openapi.json`: the OpenAPI 3.1 document of the API, generated from the code
//! with utoipa.
//!
//! Each route's operation is a `#[utoipa::path]` here, named in the route table
//! ([`crate::routes`]); the document's paths are built from that table, so a route cannot
//! be served without being documented. The hot routes write their JSON by hand (see
//! [`crate::json`]), so the response shapes are described here by documentation types. They are kept honest by the integration
//! test `openapi_describes_what_the_server_sends`, which compares the documented
//! properties with the keys of real responses.

#![allow(dead_code)] // documentation types: described, never constructed

use bytes::Bytes;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// An event to ingest.
#[derive(ToSchema)]
pub struct EventIn {
    /// 1–256 characters of `[A-Za-z0-9._:-]`.
    #[schema(example = "order.created")]
    event_type: String,
    /// Any JSON object; stored and returned byte for byte.
    #[schema(value_type = Object)]
    payload: (),
    /// Free-form origin, at most 1024 bytes.
    source: Option<String>,
    /// RFC 3339 timestamp from the producer, kept verbatim.
    occurred_at: Option<String>,
    /// Alternative to the `Idempotency-Key` header.
    idempotency_key: Option<String>,
}

/// The answer to an accepted event.
#[derive(ToSchema)]
pub struct Receipt {
    /// `evt_` + 26 base32 characters; time-ordered.
    event_id: String,
    /// Always `received`.
    status: String,
    /// RFC 3339 UTC, milliseconds.
    received_at: String,
}

/// One batch item's result, in input order.
#[derive(ToSchema)]
pub struct BatchItem {
    /// Position in the batch.
    index: u64,
    /// The status the item would have had alone (201, 200 for a replay, 4xx).
    status: u16,
    /// Set when stored or replayed.
    event_id: Option<String>,
    /// Set when stored or replayed.
    received_at: Option<String>,
    /// Set on replays.
    replayed: Option<bool>,
    /// Set on failures: the problem's stable code.
    code: Option<String>,
    /// Set on failures.
    detail: Option<String>,
    /// Set on validation failures.
    errors: Option<Vec<FieldError>>,
}

/// A batch's results.
#[derive(ToSchema)]
pub struct BatchResults {
    /// Per item, in input order.
    results: Vec<BatchItem>,
    /// Items stored.
    created: u64,
    /// Items answered from an idempotency key.
    replayed: u64,
    /// Items refused.
    failed: u64,
}

/// An event as read back.
#[derive(ToSchema)]
pub struct Event {
    event_id: String,
    event_type: String,
    source: Option<String>,
    /// Byte for byte as ingested.
    #[schema(value_type = Object)]
    payload: (),
    received_at: String,
    occurred_at: Option<String>,
    /// Times a lease handed it out; kept after the ack (reset by a restart: leases are
    /// not persisted).
    delivery_count: u32,
    /// `pending`, `leased`, `acked` or `dead`.
    state: String,
    lease_expires_at: Option<String>,
    /// Set only on the items a leasing poll just took (else `null`): send it with the
    /// ack, nack or extension.
    lease_id: Option<String>,
}

/// A page of the inbox, oldest first.
#[derive(ToSchema)]
pub struct InboxPage {
    events: Vec<Event>,
    /// Pass as `cursor` for the next page.
    next_cursor: Option<String>,
    has_more: bool,
}

/// The lease an ack is made under.
#[derive(ToSchema)]
pub struct LeaseRef {
    /// As the leasing poll returned it.
    lease_id: Option<String>,
}

/// A nack.
#[derive(ToSchema)]
pub struct NackRequest {
    /// The lease being given back; without one, any pending event can be delayed.
    lease_id: Option<String>,
    /// Hidden this long first (0..=43200, default 0).
    delay_seconds: Option<u32>,
}

/// A lease extension.
#[derive(ToSchema)]
pub struct ExtendRequest {
    lease_id: String,
    /// The new length, from now (1..=43200).
    lease_seconds: u32,
}

/// Where an event stands after a nack or an extension.
#[derive(ToSchema)]
pub struct LeaseState {
    event_id: String,
    /// `leased` or `pending`.
    state: String,
    /// After an extension.
    lease_id: Option<String>,
    /// After an extension.
    lease_expires_at: Option<String>,
    /// After a nack: when it is visible to pollers again.
    visible_at: Option<String>,
}

/// Results of a requeue.
#[derive(ToSchema)]
pub struct RequeueResults {
    /// Per id: `requeued` or `not_found` (not a dead letter of this tenant).
    results: Vec<AckResult>,
    requeued: u64,
}

/// A consumer and where it stands.
#[derive(ToSchema)]
pub struct Consumer {
    /// `default` (the tenant's own inbox, every event) or a named consumer.
    name: String,
    /// The types it takes (exact, or prefixes ending in `.*`); empty: every type.
    event_types: Vec<String>,
    /// Where it started in the log; `null` for `default`, which has every event.
    start_after_sequence: Option<u64>,
    /// Events not yet acked or deleted (dead letters included).
    pending: u64,
    /// Age of the oldest of them: the consumer's lag.
    oldest_pending_age_seconds: Option<f64>,
    /// Leases before an event moves to the dead letters; `null`: unlimited.
    max_deliveries: Option<u32>,
}

/// The tenant's consumers.
#[derive(ToSchema)]
pub struct ConsumerList {
    consumers: Vec<Consumer>,
}

/// A new named consumer.
#[derive(ToSchema)]
pub struct ConsumerCreate {
    /// 1 to 64 characters of a-z, 0-9, '_' or '-'; not `default`.
    name: String,
    /// Exact types, or prefixes ending in `.*`; missing or empty: every type.
    event_types: Option<Vec<String>>,
    /// 1..=1000; missing: unlimited.
    max_deliveries: Option<u32>,
    /// `new` (default): only events committed from now on, costing nothing for those
    /// before; `all`: every event still retained.
    start: Option<String>,
}

/// A change to a consumer's settings.
#[derive(ToSchema)]
pub struct ConsumerPatch {
    /// 1..=1000, or `null` for unlimited; left out, it stays.
    max_deliveries: Option<u32>,
}

/// Ids to acknowledge.
#[derive(ToSchema)]
pub struct AckRequest {
    /// 1 to 1000 event ids.
    event_ids: Vec<String>,
    /// Acks only: each id's `lease_id` (or `null`), in the same order; a stale one is
    /// that item's `lease_expired`.
    lease_ids: Option<Vec<Option<String>>>,
}

/// One id's ack result.
#[derive(ToSchema)]
pub struct AckResult {
    event_id: String,
    /// `acked`, `already_acked`, `not_found`, `lease_expired`, `invalid_lease` (or, for a
    /// requeue, `requeued`).
    status: String,
}

/// Results of a bulk ack.
#[derive(ToSchema)]
pub struct AckResults {
    results: Vec<AckResult>,
    acked: u64,
}

/// The answer to a single ack.
#[derive(ToSchema)]
pub struct Acked {
    event_id: String,
    /// Always `acked`.
    status: String,
}

/// One invalid field.
#[derive(ToSchema)]
pub struct FieldError {
    /// JSON path, e.g. `event_type` or `[3].payload`.
    field: String,
    message: String,
}

/// RFC 9457 problem details: every refusal.
#[derive(ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    type_: String,
    title: String,
    status: u16,
    detail: String,
    /// Stable: malformed_json, validation_failed, target_not_allowed, invalid_cursor,
    /// invalid_lease, lease_expired, unauthorized, forbidden, not_found,
    /// method_not_allowed, payload_too_large, unsupported_media_type, request_timeout,
    /// idempotency_key_reused, rate_limited, overloaded, too_many_connections,
    /// storage_unavailable, storage_unconfirmed, storage_full, conflict, internal_error.
    code: String,
    request_id: String,
    /// Byte offset of a JSON syntax error.
    offset: Option<u64>,
    errors: Option<Vec<FieldError>>,
}

/// A webhook subscription to create.
#[derive(ToSchema)]
pub struct SubscriptionIn {
    /// http:// or https:// URL; private and local addresses are refused (target_not_allowed).
    #[schema(example = "https://hooks.example.com/sluice")]
    target_url: String,
    /// Exact event types, or prefixes ending in `.*`; absent or empty: every type.
    event_types: Option<Vec<String>>,
    description: Option<String>,
    /// `fifo` (default: one delivery in flight, in order) or `none`.
    ordering: Option<String>,
    /// 1..=1000, default 16 (with `ordering: none`).
    max_in_flight: Option<u32>,
    /// Extra headers sent with every delivery.
    #[schema(value_type = Object)]
    headers: Option<()>,
}

/// A subscription, with its delivery state when read one at a time.
#[derive(ToSchema)]
pub struct Subscription {
    /// `sub_` + 24 hex characters.
    id: String,
    target_url: String,
    event_types: Vec<String>,
    description: Option<String>,
    ordering: String,
    max_in_flight: u32,
    #[schema(value_type = Object)]
    headers: (),
    /// `active`, `paused` or `disabled`.
    status: String,
    /// `gone` (the endpoint answered 410) or `failing` (nothing but failures for webhook_disable_after).
    disabled_reason: Option<String>,
    created_at: String,
    /// Only in the answer to a creation: `whsec_…`, shown once.
    secret: Option<String>,
    /// Events not yet delivered (GET one, PATCH).
    backlog: Option<u64>,
    in_flight: Option<u32>,
    retrying: Option<u32>,
    dead_letters: Option<u64>,
    last_success_at: Option<String>,
    last_failure_at: Option<String>,
}

/// A tenant's subscriptions (without secrets).
#[derive(ToSchema)]
pub struct Subscriptions {
    subscriptions: Vec<Subscription>,
}

/// A change to a subscription; absent fields stay as they are.
#[derive(ToSchema)]
pub struct SubscriptionPatch {
    target_url: Option<String>,
    event_types: Option<Vec<String>>,
    /// `null` clears it.
    description: Option<String>,
    /// `active` (re-enables a disabled subscription) or `paused`.
    status: Option<String>,
}

/// A new signing secret; the previous one keeps signing beside it for 24 h.
#[derive(ToSchema)]
pub struct SecretOut {
    secret: String,
}

/// One delivery attempt.
#[derive(ToSchema)]
pub struct AttemptOut {
    /// `att_` + 16 hex characters.
    attempt_id: String,
    event_id: String,
    /// From 1.
    attempt: u32,
    started_at: String,
    latency_ms: u32,
    response_status: Option<u16>,
    error: Option<String>,
    /// `delivered`, `failed` (a retry is scheduled) or `dead`.
    outcome: String,
}

/// A page of attempts, newest first.
#[derive(ToSchema)]
pub struct Attempts {
    attempts: Vec<AttemptOut>,
    next_cursor: Option<String>,
    has_more: bool,
}

/// A dead letter: an event whose last attempt failed.
#[derive(ToSchema)]
pub struct DeadLetter {
    event: Event,
    dead_at: String,
    attempts: u32,
}

/// A page of dead letters, oldest first.
#[derive(ToSchema)]
pub struct DeadLetters {
    dead_letters: Vec<DeadLetter>,
    next_cursor: Option<String>,
    has_more: bool,
}

/// What to deliver again: a time range, or ids.
#[derive(ToSchema)]
pub struct ReplayIn {
    /// RFC 3339: replay the matching events received from here on.
    since: Option<String>,
    /// RFC 3339: and before this.
    until: Option<String>,
    /// Or these events (1 to 1000).
    event_ids: Option<Vec<String>>,
}

/// How many events a replay queued.
#[derive(ToSchema)]
pub struct Queued {
    queued: u64,
    /// Whether the range held more than the 10,000 a replay queues.
    truncated: bool,
}

/// Liveness or readiness.
#[derive(ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    status: String,
}

/// Per-tenant limits; null means the server default.
#[derive(ToSchema)]
pub struct Limits {
    max_payload_bytes: Option<u32>,
    rate_per_second: Option<u32>,
    rate_burst: Option<u32>,
}

/// A tenant to create.
#[derive(ToSchema)]
pub struct TenantIn {
    /// 1–64 characters of `[a-z0-9_-]`.
    name: String,
    limits: Option<Limits>,
}

/// A tenant.
#[derive(ToSchema)]
pub struct Tenant {
    name: String,
    created_at: String,
    limits: Limits,
}

/// A limits change.
#[derive(ToSchema)]
pub struct TenantPatch {
    limits: Limits,
}

/// All tenants.
#[derive(ToSchema)]
pub struct Tenants {
    tenants: Vec<Tenant>,
}

/// A key to create.
#[derive(ToSchema)]
pub struct KeyIn {
    /// Any of `ingest`, `consume`, `manage`; all three when omitted.
    scopes: Option<Vec<String>>,
}

/// A new key: the secret is shown only here.
#[derive(ToSchema)]
pub struct KeyCreated {
    key: String,
    key_id: String,
    tenant: String,
    scopes: Vec<String>,
    created_at: String,
}

/// A key, without its secret.
#[derive(ToSchema)]
pub struct KeyInfo {
    key_id: String,
    prefix: String,
    scopes: Vec<String>,
    created_at: String,
    revoked_at: Option<String>,
}

/// A tenant's keys.
#[derive(ToSchema)]
pub struct Keys {
    keys: Vec<KeyInfo>,
}

/// The operations, one per route (the route table names each).
pub(crate) mod paths {
    use super::*;

    /// Ingest one event; answered once it is durable.
    #[utoipa::path(post, path = "/v1/events", tag = "ingest", request_body = EventIn,
        params(("Idempotency-Key" = Option<String>, Header, description = "Replays within 24 h return the original event")),
        responses(
            (status = 201, description = "Stored (durable)", body = Receipt),
            (status = 200, description = "Replay of an idempotency key (header Idempotent-Replayed: true)", body = Receipt),
            (status = 400, description = "Malformed JSON", body = Problem),
            (status = 408, description = "The body stalled past body_read_timeout; the connection is closed", body = Problem),
            (status = 413, description = "Payload too large", body = Problem),
            (status = 415, description = "Not JSON", body = Problem),
            (status = 422, description = "Invalid, or idempotency key reused with another body", body = Problem),
            (status = 429, description = "Rate limited (Retry-After)", body = Problem),
            (status = 503, description = "overloaded or storage_unavailable: not stored; storage_unconfirmed: may be stored, retry with the same Idempotency-Key (Retry-After)", body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn ingest() {}

    /// Ingest up to 1000 events (JSON array or application/x-ndjson).
    #[utoipa::path(post, path = "/v1/events/batch", tag = "ingest", request_body = Vec<EventIn>,
        responses(
            (status = 201, description = "All stored", body = BatchResults),
            (status = 207, description = "Some items refused; the valid ones are stored", body = BatchResults),
            (status = 408, description = "The body stalled past body_read_timeout; the connection is closed", body = Problem),
            (status = 422, description = "No item valid", body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn ingest_batch() {}

    /// List, and optionally lease, pending events, oldest first.
    #[utoipa::path(get, path = "/v1/inbox", tag = "inbox",
        params(
            ("limit" = Option<u32>, Query, description = "1..=1000, default 100"),
            ("cursor" = Option<String>, Query, description = "next_cursor of the previous page, exactly as returned (opaque; an altered one is 400 invalid_cursor)"),
            ("event_type" = Option<String>, Query, description = "Only this type"),
            ("lease_seconds" = Option<u32>, Query, description = "Lease the returned events (1..=43200); each leased item carries a lease_id"),
            ("wait_seconds" = Option<u32>, Query, description = "Long poll: when nothing is there, wait up to this long (0..=20) for an event, answering as soon as one is"),
            ("consumer" = Option<String>, Query, description = "Which consumer's inbox: a named consumer, or `default` (the default)")),
        responses((status = 200, body = InboxPage), (status = 400, description = "invalid_cursor: not a cursor issued for this listing", body = Problem), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn inbox() {}

    /// Acknowledge up to 1000 events.
    #[utoipa::path(post, path = "/v1/inbox/ack", tag = "inbox", request_body = AckRequest, params(("consumer" = Option<String>, Query, description = "Which consumer's inbox: a named consumer, or `default` (the default)")),
        responses((status = 200, body = AckResults), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn inbox_ack() {}

    /// The inbox's dead letters: events leased `max_deliveries` times without an ack.
    #[utoipa::path(get, path = "/v1/inbox/dead-letters", tag = "inbox",
        params(
            ("limit" = Option<u32>, Query, description = "1..=1000, default 100"),
            ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
            ("consumer" = Option<String>, Query, description = "Which consumer's inbox: a named consumer, or `default` (the default)")),
        responses((status = 200, body = InboxPage), (status = 400, body = Problem), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn inbox_dead_letters() {}

    /// Put dead letters back in the inbox, their delivery counts at 0.
    #[utoipa::path(post, path = "/v1/inbox/dead-letters/requeue", tag = "inbox", request_body = AckRequest, params(("consumer" = Option<String>, Query, description = "Which consumer's inbox: a named consumer, or `default` (the default)")),
        responses((status = 200, body = RequeueResults), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn inbox_requeue() {}

    /// The tenant's consumers (its inbox, `default`, then its named ones) with their lag.
    #[utoipa::path(get, path = "/v1/consumers", tag = "inbox",
        responses((status = 200, body = ConsumerList)),
        security(("bearer" = []), ("api_key" = [])))]
    fn list_consumers() {}

    /// One consumer.
    #[utoipa::path(get, path = "/v1/consumers/{name}", tag = "inbox", params(("name" = String, Path)),
        responses((status = 200, body = Consumer), (status = 404, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn get_consumer() {}

    /// Change a consumer's settings (JSON merge patch).
    #[utoipa::path(patch, path = "/v1/consumers/{name}", tag = "inbox", params(("name" = String, Path)),
        request_body = ConsumerPatch,
        responses((status = 200, body = Consumer), (status = 404, body = Problem), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn patch_consumer() {}

    /// Create a named consumer: an independent inbox over the tenant's log. The inbox
    /// routes act on it with `?consumer=<name>`.
    #[utoipa::path(post, path = "/v1/consumers", tag = "inbox", request_body = ConsumerCreate,
        responses((status = 201, body = Consumer), (status = 409, description = "The name is taken, or the tenant has 32 named consumers", body = Problem), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn create_consumer() {}

    /// Delete a named consumer, with its pending set and dead letters (the events stay
    /// in the log). `default` cannot be deleted (409).
    #[utoipa::path(delete, path = "/v1/consumers/{name}", tag = "inbox", params(("name" = String, Path)),
        responses((status = 204, description = "Deleted"), (status = 404, body = Problem), (status = 409, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn delete_consumer() {}

    /// Read one event with its delivery state.
    #[utoipa::path(get, path = "/v1/events/{id}", tag = "inbox", params(("id" = String, Path), ("consumer" = Option<String>, Query, description = "Which consumer's inbox: a named consumer, or `default` (the default)")),
        responses((status = 200, body = Event), (status = 404, description = "Unknown, deleted, or another tenant's", body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn get_event() {}

    /// Acknowledge one event (repeating is harmless). With a `lease_id`, only while that
    /// lease is current.
    #[utoipa::path(post, path = "/v1/events/{id}/ack", tag = "inbox", params(("id" = String, Path), ("consumer" = Option<String>, Query, description = "Which consumer's inbox: a named consumer, or `default` (the default)")),
        request_body(content = Option<LeaseRef>, description = "Optional: the lease this ack is made under"),
        responses((status = 200, body = Acked), (status = 400, description = "invalid_lease: not a lease_id issued for this event", body = Problem),
            (status = 404, body = Problem), (status = 409, description = "lease_expired: the event was leased again since; nothing changed", body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn ack_event() {}

    /// End a lease early: the event is visible again at once, or after `delay_seconds`.
    #[utoipa::path(post, path = "/v1/events/{id}/nack", tag = "inbox", params(("id" = String, Path), ("consumer" = Option<String>, Query, description = "Which consumer's inbox: a named consumer, or `default` (the default)")),
        request_body(content = Option<NackRequest>, description = "Optional"),
        responses((status = 200, body = LeaseState), (status = 400, body = Problem), (status = 404, body = Problem),
            (status = 409, description = "lease_expired", body = Problem), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn nack_event() {}

    /// Extend a lease the consumer is still working under.
    #[utoipa::path(post, path = "/v1/events/{id}/lease", tag = "inbox", params(("id" = String, Path), ("consumer" = Option<String>, Query, description = "Which consumer's inbox: a named consumer, or `default` (the default)")),
        request_body = ExtendRequest,
        responses((status = 200, body = LeaseState), (status = 400, body = Problem), (status = 404, body = Problem),
            (status = 409, description = "lease_expired", body = Problem), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn extend_lease() {}

    /// The live tail: Server-Sent Events of newly committed events (`event:` the type,
    /// `id:` the event id, `data:` the event as JSON). `Last-Event-ID` resumes right
    /// after that event, from the log. `: ping` every 15 s; a client that reads too
    /// slowly gets `event: lagged` and the stream ends.
    #[utoipa::path(get, path = "/v1/stream", tag = "inbox",
        params(
            ("event_type" = Option<String>, Query, description = "Only this type"),
            ("Last-Event-ID" = Option<String>, Header, description = "Resume right after this event")),
        responses((status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
            (status = 400, description = "invalid_cursor: Last-Event-ID is not an event id", body = Problem), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn stream() {}

    /// The tenant's events in ingest order, acked ones included, while retained.
    #[utoipa::path(get, path = "/v1/events", tag = "inbox",
        params(
            ("since" = Option<String>, Query, description = "Received at or after (RFC 3339 UTC)"),
            ("until" = Option<String>, Query, description = "Received at or before (RFC 3339 UTC)"),
            ("event_type" = Option<String>, Query, description = "Only this type"),
            ("state" = Option<String>, Query, description = "pending, leased or acked"),
            ("limit" = Option<u32>, Query, description = "1..=1000, default 100"),
            ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
            ("consumer" = Option<String>, Query, description = "Which consumer's inbox: a named consumer, or `default` (the default)")),
        responses((status = 200, body = InboxPage), (status = 400, body = Problem), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn history() {}

    /// Delete one event.
    #[utoipa::path(delete, path = "/v1/events/{id}", tag = "inbox", params(("id" = String, Path)),
        responses((status = 204, description = "Deleted"), (status = 404, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn delete_event() {}

    /// Create a webhook subscription; it starts at the next event committed.
    #[utoipa::path(post, path = "/v1/subscriptions", tag = "subscriptions", request_body = SubscriptionIn,
        responses((status = 201, description = "Created; the secret is shown only here", body = Subscription),
            (status = 422, description = "validation_failed, or target_not_allowed", body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn create_subscription() {}

    /// List the tenant's subscriptions.
    #[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions",
        responses((status = 200, body = Subscriptions)), security(("bearer" = []), ("api_key" = [])))]
    fn list_subscriptions() {}

    /// A subscription and its delivery state.
    #[utoipa::path(get, path = "/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)),
        responses((status = 200, body = Subscription), (status = 404, description = "Unknown, or another tenant's", body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn get_subscription() {}

    /// Change a subscription (status active re-enables a disabled one).
    #[utoipa::path(patch, path = "/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)),
        request_body = SubscriptionPatch,
        responses((status = 200, body = Subscription), (status = 404, body = Problem), (status = 422, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn patch_subscription() {}

    /// Delete a subscription.
    #[utoipa::path(delete, path = "/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)),
        responses((status = 204, description = "Deleted"), (status = 404, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn delete_subscription() {}

    /// A new signing secret; the old one signs beside it for 24 h.
    #[utoipa::path(post, path = "/v1/subscriptions/{id}/rotate-secret", tag = "subscriptions", params(("id" = String, Path)),
        responses((status = 200, body = SecretOut), (status = 404, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn rotate_secret() {}

    /// The attempts log, newest first.
    #[utoipa::path(get, path = "/v1/subscriptions/{id}/attempts", tag = "subscriptions",
        params(("id" = String, Path), ("limit" = Option<u32>, Query, description = "1..=1000, default 100"),
            ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
            ("outcome" = Option<String>, Query, description = "delivered, failed or dead")),
        responses((status = 200, body = Attempts), (status = 400, description = "invalid_cursor", body = Problem), (status = 404, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn list_attempts() {}

    /// Dead letters, oldest first.
    #[utoipa::path(get, path = "/v1/subscriptions/{id}/dead-letters", tag = "subscriptions",
        params(("id" = String, Path), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
        responses((status = 200, body = DeadLetters), (status = 400, description = "invalid_cursor", body = Problem), (status = 404, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn list_dead_letters() {}

    /// Deliver events again: a time range or ids (dead letters leave the dead letters).
    #[utoipa::path(post, path = "/v1/subscriptions/{id}/replay", tag = "subscriptions", params(("id" = String, Path)),
        request_body = ReplayIn,
        responses((status = 202, body = Queued), (status = 404, body = Problem), (status = 422, body = Problem),
            (status = 503, description = "The replay queue is full (Retry-After)", body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn replay() {}

    /// Send one sluice.test event to the endpoint now, and answer the attempt.
    #[utoipa::path(post, path = "/v1/subscriptions/{id}/test", tag = "subscriptions", params(("id" = String, Path)),
        responses((status = 200, body = AttemptOut), (status = 404, body = Problem)),
        security(("bearer" = []), ("api_key" = [])))]
    fn test_subscription() {}

    /// Liveness.
    #[utoipa::path(get, path = "/v1/health", tag = "operations", responses((status = 200, body = Status)))]
    fn health() {}

    /// Readiness: storage open, writable and verified.
    #[utoipa::path(get, path = "/v1/ready", tag = "operations",
        responses((status = 200, body = Status), (status = 503, body = Problem)))]
    fn ready() {}

    /// Prometheus metrics (text format).
    #[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
    fn metrics() {}

    /// List tenants.
    #[utoipa::path(get, path = "/v1/admin/tenants", tag = "admin",
        responses((status = 200, body = Tenants), (status = 401, body = Problem)), security(("admin" = [])))]
    fn list_tenants() {}

    /// Create a tenant.
    #[utoipa::path(post, path = "/v1/admin/tenants", tag = "admin", request_body = TenantIn,
        responses((status = 201, body = Tenant), (status = 409, body = Problem), (status = 422, body = Problem)),
        security(("admin" = [])))]
    fn create_tenant() {}

    /// Replace a tenant's limits.
    #[utoipa::path(patch, path = "/v1/admin/tenants/{name}", tag = "admin", params(("name" = String, Path)),
        request_body = TenantPatch, responses((status = 200, body = Tenant), (status = 404, body = Problem)),
        security(("admin" = [])))]
    fn patch_tenant() {}

    /// List a tenant's keys (never the secrets).
    #[utoipa::path(get, path = "/v1/admin/tenants/{name}/keys", tag = "admin", params(("name" = String, Path)),
        responses((status = 200, body = Keys), (status = 404, body = Problem)), security(("admin" = [])))]
    fn list_keys() {}

    /// Create a key; the secret is shown once.
    #[utoipa::path(post, path = "/v1/admin/tenants/{name}/keys", tag = "admin", params(("name" = String, Path)),
        request_body = KeyIn, responses((status = 201, body = KeyCreated), (status = 404, body = Problem)),
        security(("admin" = [])))]
    fn create_key() {}

    /// Revoke a key.
    #[utoipa::path(delete, path = "/v1/admin/keys/{key_id}", tag = "admin", params(("key_id" = String, Path)),
        responses((status = 204, description = "Revoked"), (status = 404, body = Problem)), security(("admin" = [])))]
    fn revoke_key() {}

    /// This document.
    #[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3.1")))]
    fn openapi() {}

    /// The console's address without its slash: a redirect to `/ui/`.
    #[utoipa::path(get, path = "/ui", tag = "console", responses((status = 308, description = "To /ui/")))]
    fn console_root() {}

    /// The operator console (HTML), embedded in the binary.
    #[utoipa::path(get, path = "/ui/", tag = "console", responses((status = 200, content_type = "text/html", body = String)))]
    fn console() {}

    /// The console's script and style sheet.
    #[utoipa::path(get, path = "/ui/{file}", tag = "console", params(("file" = String, Path)),
        responses((status = 200, description = "console.js or console.css"), (status = 404, body = Problem)))]
    fn console_asset() {}
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        components.add_security_scheme("bearer", bearer());
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme("admin", bearer());
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Sluice", description = "Durable event ingestion: producers POST events, made durable before the answer; consumers pull from a per-tenant inbox with leases and acks."),
    components(schemas(EventIn, Receipt, BatchItem, BatchResults, Event, InboxPage, LeaseRef, NackRequest, ExtendRequest, LeaseState, RequeueResults, Consumer, ConsumerList, ConsumerPatch, ConsumerCreate, AckRequest, AckResult, AckResults,
                       Acked, FieldError, Problem, Status, Limits, TenantIn, Tenant, TenantPatch, Tenants, KeyIn,
                       KeyCreated, KeyInfo, Keys, SubscriptionIn, Subscription, Subscriptions,
                       SubscriptionPatch, SecretOut, AttemptOut, Attempts, DeadLetter, DeadLetters,
                       ReplayIn, Queued)),
    modifiers(&Security),
    tags((name = "ingest"), (name = "inbox"), (name = "subscriptions", description = "Webhooks: scope manage"), (name = "operations"), (name = "admin", description = "Guarded by the admin token"))
)]
struct ApiDoc;

/// The document, rendered once: the components above, and one operation per route of
/// the route table.
pub fn document() -> Bytes {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for route in crate::routes::ROUTES {
        let (methods, path, operation) = (route.openapi)();
        doc.paths.add_path_operation(path, methods, operation);
    }
    match doc.to_pretty_json() {
        Ok(text) => Bytes::from(text),
        // Serialising a document built from plain data cannot fail; if it ever did, the
        // route still answers, with the reason.
        Err(e) => Bytes::from(format!(r#"{{"error":"{e}"}}"#)),
    }
}
