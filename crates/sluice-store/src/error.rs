//! The errors every backend reports: neutral kinds the HTTP layer maps to statuses, with
//! the backend's own detail (a file and offset, a server's answer) in the message.
//!
//! A backend keeps its precise internal errors to itself (the embedded engine's are in
//! [`crate::embedded::EngineError`]) and converts them at the trait boundary, so nothing
//! above the store matches on paths, errno values or protocol codes.

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store is shedding load (its commit queue is full). Nothing was written;
    /// retry after a short pause.
    #[error("the store is at capacity; retry shortly")]
    Overloaded,
    /// No space left (a full disk, a full stream). Nothing in this request was
    /// acknowledged; writes resume once space is freed.
    #[error("storage full: {0}")]
    Full(String),
    /// The store cannot serve now: stopped after a failed sync, closed, or its cluster
    /// unreachable. Nothing in this request was acknowledged.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A write reached storage, but its outcome could not be confirmed: it may be
    /// stored (a JetStream node had the stream's acknowledgement but did not read the
    /// write back in time; an fsync failed after the write, so whether it survives is
    /// the disk's to say). Retrying it with the same idempotency key stores it at most
    /// once, and answers its id if it was stored.
    #[error("write unconfirmed: {0}")]
    Unconfirmed(String),
    /// Stored data failed a check (checksum, framing, an index that disagrees with
    /// its log). The operation was refused rather than return wrong data.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The named tenant, key, consumer or subscription does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A catalog rule was broken (for example a duplicate name).
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    /// Whether retrying the same request later can succeed without an operator.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Overloaded | StoreError::Unavailable(_) | StoreError::Unconfirmed(_)
        )
    }
}
