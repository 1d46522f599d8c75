//! The embedded engine's own errors: precise (the file, the byte offset, the OS error),
//! for the engine's code, its tests and `sluice check`. At the [`crate::Store`]
//! boundary each becomes a neutral [`StoreError`] that carries this message.

use std::path::PathBuf;

use crate::error::StoreError;

/// Why an embedded-engine operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The commit queue is full. Nothing was written; retry after a short pause.
    #[error("the commit queue is full; retry shortly")]
    Overloaded,
    /// The disk is full (or a size limit was reached). Nothing in this request was
    /// acknowledged; writes resume once space is freed.
    #[error("disk full while writing {path}: free space or raise the limit, then retry")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
    },
    /// A sync failed. The kernel may have dropped dirty pages, so the store refuses all
    /// writes until it is reopened and recovery has re-read the log from disk.
    #[error("fsync failed on {path}: {source}; restart the server to recover")]
    SyncFailed {
        /// The file being synced.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A checksum or framing check failed.
    #[error("corrupt data in {path} at byte offset {offset}: {reason}; run `sluice check`, and `sluice serve --repair` to truncate at the damage")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte offset of the damaged record or batch.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// An earlier sync failure stopped the store; see [`EngineError::SyncFailed`].
    #[error(
        "the store stopped accepting writes after an fsync failure; restart the server to recover"
    )]
    Halted,
    /// The store is shutting down or has stopped.
    #[error("the store is closed")]
    Closed,
    /// Another process holds the data directory's lock.
    #[error("{0}")]
    Locked(String),
    /// A read that may not wait ([`super::segment::ReadMode::Cached`]) found its data
    /// outside the page cache. Internal: the engine then reads on the blocking pool,
    /// and this never reaches a caller.
    #[error("the data is not in the page cache")]
    NotCached,
    /// The data directory (or another thing named) does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// Another I/O error, with the file it happened on.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl EngineError {
    /// A copy of this error for another waiter of the same failed commit (`io::Error` is
    /// not `Clone`, so the OS error is rebuilt from its code or message).
    pub fn replicate(&self) -> EngineError {
        let copy_io = |e: &std::io::Error| match e.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(e.kind(), e.to_string()),
        };
        match self {
            EngineError::Overloaded => EngineError::Overloaded,
            EngineError::DiskFull { path } => EngineError::DiskFull { path: path.clone() },
            EngineError::SyncFailed { path, source } => EngineError::SyncFailed {
                path: path.clone(),
                source: copy_io(source),
            },
            EngineError::Corrupt {
                path,
                offset,
                reason,
            } => EngineError::Corrupt {
                path: path.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            EngineError::Halted => EngineError::Halted,
            EngineError::Closed => EngineError::Closed,
            EngineError::Locked(m) => EngineError::Locked(m.clone()),
            EngineError::NotCached => EngineError::NotCached,
            EngineError::NotFound(m) => EngineError::NotFound(m.clone()),
            EngineError::Io { path, source } => EngineError::Io {
                path: path.clone(),
                source: copy_io(source),
            },
        }
    }

    /// Wraps an I/O error with its path, mapping "no space" and "file too large" (a size
    /// limit such as RLIMIT_FSIZE) to [`EngineError::DiskFull`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EFBIG) | Some(libc::EDQUOT) => {
                EngineError::DiskFull { path }
            }
            _ => EngineError::Io { path, source },
        }
    }
}

impl From<EngineError> for StoreError {
    fn from(e: EngineError) -> StoreError {
        let detail = e.to_string();
        match e {
            EngineError::Overloaded => StoreError::Overloaded,
            EngineError::DiskFull { .. } => StoreError::Full(detail),
            EngineError::Corrupt { .. } => StoreError::Corrupt(detail),
            // The batch was written before its sync failed: recovery, reading the log
            // back from disk, decides whether it survived.
            EngineError::SyncFailed { .. } => StoreError::Unconfirmed(detail),
            EngineError::Halted
            | EngineError::Closed
            | EngineError::NotCached
            | EngineError::Io { .. } => StoreError::Unavailable(detail),
            EngineError::Locked(_) => StoreError::Conflict(detail),
            EngineError::NotFound(m) => StoreError::NotFound(m),
        }
    }
}
