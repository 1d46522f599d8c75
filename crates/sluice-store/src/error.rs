//! Errors every backend reports, shaped so the HTTP layer can map each to a status.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
    /// An earlier sync failure stopped the store; see [`StoreError::SyncFailed`].
    #[error(
        "the store stopped accepting writes after an fsync failure; restart the server to recover"
    )]
    Halted,
    /// A catalog rule was broken (for example a duplicate tenant name).
    #[error("{0}")]
    Conflict(String),
    /// The named tenant, key or event does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The store is shutting down or has stopped.
    #[error("the store is closed")]
    Closed,
    /// Another I/O error, with the file it happened on.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl StoreError {
    /// A copy of this error for another waiter of the same failed commit (`io::Error` is
    /// not `Clone`, so the OS error is rebuilt from its code or message).
    pub fn replicate(&self) -> StoreError {
        let copy_io = |e: &std::io::Error| match e.raw_os_error() {
            Some(code) => std::io::Error::from_raw_os_error(code),
            None => std::io::Error::new(e.kind(), e.to_string()),
        };
        match self {
            StoreError::Overloaded => StoreError::Overloaded,
            StoreError::DiskFull { path } => StoreError::DiskFull { path: path.clone() },
            StoreError::SyncFailed { path, source } => StoreError::SyncFailed {
                path: path.clone(),
                source: copy_io(source),
            },
            StoreError::Corrupt {
                path,
                offset,
                reason,
            } => StoreError::Corrupt {
                path: path.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            StoreError::Halted => StoreError::Halted,
            StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
            StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
            StoreError::Closed => StoreError::Closed,
            StoreError::Io { path, source } => StoreError::Io {
                path: path.clone(),
                source: copy_io(source),
            },
        }
    }

    /// Wraps an I/O error with its path, mapping "no space" and "file too large" (a size
    /// limit such as RLIMIT_FSIZE) to [`StoreError::DiskFull`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EFBIG) | Some(libc::EDQUOT) => {
                StoreError::DiskFull { path }
            }
            _ => StoreError::Io { path, source },
        }
    }
}
