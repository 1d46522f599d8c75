//! Spare segments, zero-filled ahead of time by a background thread.
//!
//! Measured on this machine class: `fdatasync` after writing into blocks that were
//! already written costs ~190 µs, but ~350–390 µs into `fallocate`d space or past the
//! end of the file, because the file system must also journal the extent change. So
//! the engine writes its segments' zeros *before* it needs them, off the commit path:
//! at roll-over the writer takes a ready spare, writes the header, and renames it. If no
//! spare is ready (the preparer is behind, or the disk is full) the writer creates a
//! segment with `fallocate` alone: correct, just slower to sync.
//!
//! Spares are named `*.seg.tmp`, so an interrupted preparation is removed at open.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};

use super::fsutil;

/// A zero-filled, synced file of the segment size, ready to become a segment.
#[derive(Debug)]
pub struct Spare {
    /// The open file.
    pub file: File,
    /// Its temporary path.
    pub path: PathBuf,
    /// Its size.
    pub capacity: u64,
}

/// The writer's side of the preparer: at most one spare in flight at a time.
#[derive(Debug)]
pub struct SparePool {
    requests: SyncSender<()>,
    ready: Receiver<std::io::Result<Spare>>,
    in_flight: bool,
}

/// Zeros are written in chunks of this size.
const ZERO_CHUNK: usize = 1 << 20;

impl SparePool {
    /// Starts the preparer thread for `dir` and asks it for a first spare.
    pub fn start(dir: &Path, capacity: u64) -> std::io::Result<SparePool> {
        let (requests, request_rx) = sync_channel::<()>(1);
        let (ready_tx, ready) = sync_channel(1);
        let dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("sluice-spare".into())
            .spawn(move || {
                let mut n = 0u64;
                while request_rx.recv().is_ok() {
                    n += 1;
                    let path = dir.join(format!("spare-{n}.seg.tmp"));
                    let made = prepare(&path, capacity);
                    if made.is_err() {
                        let _ = std::fs::remove_file(&path);
                    }
                    if ready_tx.send(made).is_err() {
                        break;
                    }
                }
            })?;
        let mut pool = SparePool {
            requests,
            ready,
            in_flight: false,
        };
        pool.request();
        Ok(pool)
    }

    fn request(&mut self) {
        if !self.in_flight && self.requests.try_send(()).is_ok() {
            self.in_flight = true;
        }
    }

    /// A ready spare, if the preparer has one; either way the next one is requested.
    pub fn take(&mut self) -> Option<Spare> {
        let spare = match self.ready.try_recv() {
            Ok(result) => {
                self.in_flight = false;
                match result {
                    Ok(spare) => Some(spare),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not prepare a spare segment");
                        None
                    }
                }
            }
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
        };
        self.request();
        spare
    }
}

fn prepare(path: &Path, capacity: u64) -> std::io::Result<Spare> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    // Reserve first, so a full disk fails fast instead of after writing most zeros.
    fsutil::preallocate(&file, capacity)?;
    let zeros = vec![0u8; ZERO_CHUNK];
    let mut pos = 0u64;
    while pos < capacity {
        let n = ZERO_CHUNK.min((capacity - pos) as usize);
        file.write_all_at(&zeros[..n], pos)?;
        pos += n as u64;
    }
    file.sync_all()?;
    Ok(Spare {
        file,
        path: path.to_path_buf(),
        capacity,
    })
}
