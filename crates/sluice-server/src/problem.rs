//! RFC 9457 problem details: every refusal Sluice sends.
//!
//! Each problem has a stable `code` that clients can match on; `title` is fixed per
//! code and `detail` tells the person reading it what to do.

use bytes::Bytes;
use http::StatusCode;

use crate::json::JsonWriter;

/// The stable error codes of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The body is not well-formed JSON (or NDJSON).
    MalformedJson,
    /// Well-formed JSON that breaks a rule; see `errors`.
    ValidationFailed,
    /// A webhook target that is not allowed (a private, loopback or local address).
    TargetNotAllowed,
    /// A page cursor that Sluice did not issue for this listing (altered, truncated, or
    /// another tenant's).
    InvalidCursor,
    /// A `lease_id` that Sluice did not issue for this event (altered, or another
    /// event's or tenant's).
    InvalidLease,
    /// A `lease_id` that is no longer current: the lease expired and the event was
    /// leased again. Nothing changed.
    LeaseExpired,
    /// No key, or an unknown or revoked key.
    Unauthorized,
    /// The key lacks the scope this route needs.
    Forbidden,
    /// No such resource (or not this tenant's).
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The body is larger than the tenant's limit.
    PayloadTooLarge,
    /// The body is not JSON (or NDJSON, for batches).
    UnsupportedMediaType,
    /// The request body stopped arriving for longer than the body-read timeout.
    RequestTimeout,
    /// The idempotency key was used before with a different body.
    IdempotencyKeyReused,
    /// The tenant is over its request rate.
    RateLimited,
    /// The server is shedding load; retry after `Retry-After`.
    Overloaded,
    /// The server is at its connection limit.
    TooManyConnections,
    /// The disk is full; nothing was stored.
    StorageFull,
    /// Storage failed before the request was acknowledged.
    StorageUnavailable,
    /// A write reached storage but could not be confirmed in time: it may be stored.
    /// Retried with the same idempotency key, it is stored at most once.
    StorageUnconfirmed,
    /// A resource with this name exists already.
    Conflict,
    /// A bug or an unexpected failure.
    Internal,
}

impl Code {
    /// Every code, for the metrics (each code's status is counted) and the docs.
    pub const ALL: [Code; 22] = [
        Code::MalformedJson,
        Code::ValidationFailed,
        Code::TargetNotAllowed,
        Code::InvalidCursor,
        Code::InvalidLease,
        Code::LeaseExpired,
        Code::Unauthorized,
        Code::Forbidden,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::PayloadTooLarge,
        Code::UnsupportedMediaType,
        Code::RequestTimeout,
        Code::IdempotencyKeyReused,
        Code::RateLimited,
        Code::Overloaded,
        Code::TooManyConnections,
        Code::StorageFull,
        Code::StorageUnavailable,
        Code::StorageUnconfirmed,
        Code::Conflict,
        Code::Internal,
    ];

    /// The wire value of `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MalformedJson => "malformed_json",
            Code::ValidationFailed => "validation_failed",
            Code::InvalidCursor => "invalid_cursor",
            Code::InvalidLease => "invalid_lease",
            Code::LeaseExpired => "lease_expired",
            Code::TargetNotAllowed => "target_not_allowed",
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::RequestTimeout => "request_timeout",
            Code::IdempotencyKeyReused => "idempotency_key_reused",
            Code::RateLimited => "rate_limited",
            Code::Overloaded => "overloaded",
            Code::TooManyConnections => "too_many_connections",
            Code::StorageFull => "storage_full",
            Code::StorageUnavailable => "storage_unavailable",
            Code::StorageUnconfirmed => "storage_unconfirmed",
            Code::Conflict => "conflict",
            Code::Internal => "internal_error",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::MalformedJson => StatusCode::BAD_REQUEST,
            Code::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidCursor | Code::InvalidLease => StatusCode::BAD_REQUEST,
            Code::LeaseExpired => StatusCode::CONFLICT,
            Code::TargetNotAllowed => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Overloaded
            | Code::TooManyConnections
            | Code::StorageUnavailable
            | Code::StorageUnconfirmed => StatusCode::SERVICE_UNAVAILABLE,
            Code::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            Code::Conflict => StatusCode::CONFLICT,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Code::MalformedJson => "Malformed JSON",
            Code::ValidationFailed => "Validation failed",
            Code::InvalidCursor => "Invalid cursor",
            Code::InvalidLease => "Invalid lease",
            Code::LeaseExpired => "Lease expired",
            Code::TargetNotAllowed => "Target not allowed",
            Code::Unauthorized => "Unauthorized",
            Code::Forbidden => "Forbidden",
            Code::NotFound => "Not found",
            Code::MethodNotAllowed => "Method not allowed",
            Code::PayloadTooLarge => "Payload too large",
            Code::UnsupportedMediaType => "Unsupported media type",
            Code::RequestTimeout => "Request timeout",
            Code::IdempotencyKeyReused => "Idempotency key reused",
            Code::RateLimited => "Rate limited",
            Code::Overloaded => "Overloaded",
            Code::TooManyConnections => "Too many connections",
            Code::StorageFull => "Storage full",
            Code::StorageUnavailable => "Storage unavailable",
            Code::StorageUnconfirmed => "Write unconfirmed",
            Code::Conflict => "Conflict",
            Code::Internal => "Internal error",
        }
    }
}

/// One field-level validation error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `event_type` or `[3].payload`.
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl FieldError {
    /// Builds a field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A problem to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The stable code.
    pub code: Code,
    /// Human-readable detail for this occurrence.
    pub detail: String,
    /// Field errors, for `validation_failed`.
    pub errors: Vec<FieldError>,
    /// Byte offset of a JSON syntax error.
    pub offset: Option<usize>,
    /// Seconds to wait before retrying, sent as `Retry-After`.
    pub retry_after_s: Option<u64>,
    /// Methods the route accepts, sent as `Allow` with a 405.
    pub allow: Option<&'static str>,
    /// Whether to send the bearer challenge (`WWW-Authenticate: Bearer`) with a 401.
    pub challenge: bool,
}

impl Problem {
    /// A problem with a detail message.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Problem {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            offset: None,
            retry_after_s: None,
            allow: None,
            challenge: false,
        }
    }

    /// A `401 unauthorized` with the bearer challenge (`WWW-Authenticate`, RFC 9110
    /// 11.6.1), as every refusal of missing or wrong credentials must carry.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem {
            challenge: true,
            ..Problem::new(Code::Unauthorized, detail)
        }
    }

    /// A `validation_failed` problem listing the field errors.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            // A rule about the whole body names no field: no leading ": ".
            [one] if one.field.is_empty() => one.message.clone(),
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid; see errors", many.len()),
        };
        Problem {
            errors,
            ..Problem::new(Code::ValidationFailed, detail)
        }
    }

    /// Adds a `Retry-After`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// Writes the problem's members into an open JSON object; `request_id` is left out
    /// for problems nested in a batch result (the response carries the request's id).
    pub fn write_members(&self, w: &mut JsonWriter, request_id: Option<&str>) {
        w.field_str(
            "type",
            &format!("urn:sluice:problem:{}", self.code.as_str()),
        );
        w.field_str("title", self.code.title());
        w.field_u64("status", self.code.status().as_u16() as u64);
        w.field_str("detail", &self.detail);
        w.field_str("code", self.code.as_str());
        if let Some(id) = request_id {
            w.field_str("request_id", id);
        }
        if let Some(offset) = self.offset {
            w.field_u64("offset", offset as u64);
        }
        if !self.errors.is_empty() {
            w.key("errors");
            w.begin_array();
            for e in &self.errors {
                w.begin_object();
                w.field_str("field", &e.field);
                w.field_str("message", &e.message);
                w.end_object();
            }
            w.end_array();
        }
    }

    /// The JSON body.
    pub fn body(&self, request_id: &str) -> Bytes {
        let mut w = JsonWriter::with_capacity(256);
        w.begin_object();
        self.write_members(&mut w, Some(request_id));
        w.end_object();
        w.finish()
    }
}
