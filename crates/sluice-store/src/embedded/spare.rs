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

use super::codec::SegmentHeader;
use super::fsutil;
use super::sidecar::Sidecar;

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

/// Work for the background thread, in order.
#[derive(Debug)]
enum Job {
    /// Prepare the next spare segment; zero-filled when `zero_fill`.
    Spare { zero_fill: bool },
    /// Write the index checkpoint of a just-sealed segment: built by the writer, or
    /// (`None`) to be built by reading the segment back.
    Checkpoint {
        segment: PathBuf,
        built: Option<Box<BuiltCheckpoint>>,
    },
}

/// A sidecar the writer built in memory, with what identifies its segment.
#[derive(Debug)]
pub struct BuiltCheckpoint {
    /// The sidecar.
    pub sidecar: Sidecar,
    /// The sealed segment's header.
    pub header: SegmentHeader,
    /// The sealed segment's length in bytes.
    pub len: u64,
}

/// Jobs queued at most; a sidecar that does not fit is built at the next open instead.
const JOBS_MAX: usize = 16;

/// The writer's side of the background thread: at most one spare in flight at a time,
/// plus index checkpoints of sealed segments.
#[derive(Debug)]
pub struct SparePool {
    requests: Option<SyncSender<Job>>,
    ready: Receiver<std::io::Result<Spare>>,
    in_flight: bool,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Whether the next spare is zero-filled; see [`SparePool::take`].
    zero_fill: bool,
}

impl Drop for SparePool {
    /// Finishes queued jobs (checkpoints of sealed segments) before the store closes, so
    /// that nothing writes into the data directory after it is released.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Mean commit size above which spares are not zero-filled (see [`SparePool::take`]).
const ZERO_FILL_COMMIT_BYTES_MAX: u64 = 96 << 10;

/// Zeros are written, and written back to disk, in chunks of this size. Writing all
/// 64 MiB and then syncing made the kernel flush it in one burst, and commits'
/// `fdatasync` queued behind it: ~200 ms stalls every segment under steady ingest
/// (open-loop p99 185–240 ms at half the peak rate). In 256 KiB steps a commit waits
/// behind at most one step.
const ZERO_CHUNK: usize = 256 << 10;

impl SparePool {
    /// Starts the preparer thread for `dir` and asks it for a first spare.
    pub fn start(dir: &Path, capacity: u64) -> std::io::Result<SparePool> {
        let (requests, request_rx) = sync_channel::<Job>(JOBS_MAX);
        let (ready_tx, ready) = sync_channel(1);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("sluice-spare".into())
            .spawn(move || {
                fsutil::lower_thread_priority();
                let mut n = 0u64;
                while let Ok(job) = request_rx.recv() {
                    if let Job::Checkpoint { segment, built } = job {
                        let written = match built {
                            Some(b) => {
                                let bytes = super::sidecar::encode(&b.sidecar, b.header, b.len);
                                super::sidecar::write(&segment, &bytes)
                            }
                            None => super::sidecar::build_for(&segment),
                        };
                        if let Err(e) = written {
                            tracing::warn!(path = %segment.display(), error = %e, "could not write an index checkpoint; the next open walks the segment instead");
                        }
                        continue;
                    }
                    n += 1;
                    let path = dir.join(format!("spare-{n}.seg.tmp"));
                    let Job::Spare { zero_fill } = job else { continue };
                    let made = prepare(&path, capacity, zero_fill);
                    if made.is_err() {
                        let _ = std::fs::remove_file(&path);
                    }
                    // At most one spare is in flight, so the slot is free; if the
                    // writer is gone, the file is removed at the next open.
                    let _ = ready_tx.try_send(made);
                }
            })?;
        let mut pool = SparePool {
            requests: Some(requests),
            ready,
            in_flight: false,
            thread: Some(thread),
            zero_fill: true,
        };
        pool.request();
        Ok(pool)
    }

    fn request(&mut self) {
        let Some(requests) = &self.requests else {
            return;
        };
        let job = Job::Spare {
            zero_fill: self.zero_fill,
        };
        if !self.in_flight && requests.try_send(job).is_ok() {
            self.in_flight = true;
        }
    }

    /// Asks for the index checkpoint of a sealed segment, without waiting: written from
    /// `built`, or built by reading the segment back. If the queue is full it is
    /// skipped, and the next open walks that segment instead.
    pub fn checkpoint(&mut self, segment: PathBuf, built: Option<BuiltCheckpoint>) {
        if let Some(requests) = &self.requests {
            let _ = requests.try_send(Job::Checkpoint {
                segment,
                built: built.map(Box::new),
            });
        }
    }

    /// A ready spare, if the preparer has one; either way the next one is requested.
    ///
    /// `commit_bytes_mean` is the mean group-commit size of the segment just sealed; it
    /// decides whether the next spare is zero-filled. Zero-filling saves ~170 µs per sync
    /// (no extent change to journal) and costs ~150 ms per 64 MiB segment (CPU to copy
    /// the zeros, and writing them). With 64 MiB / commit size syncs per segment it pays
    /// off below ~72 KiB per commit: many small commits (interactive ingest) keep it, bulk
    /// writers with large commits skip it.
    pub fn take(&mut self, commit_bytes_mean: u64) -> Option<Spare> {
        self.zero_fill = commit_bytes_mean < ZERO_FILL_COMMIT_BYTES_MAX;
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

fn prepare(path: &Path, capacity: u64, zero_fill: bool) -> std::io::Result<Spare> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    // A zero-filled spare is not `fallocate`d first: its blocks would be "unwritten"
    // extents, and converting them as the zeros land fills the journal, whose commit
    // the active segment's syncs then wait on (measured: 40–125 ms commits during each
    // fill). Written directly, the blocks are allocated as written extents; a full disk
    // still fails here, at the write, and never in a commit.
    if !zero_fill {
        fsutil::preallocate(&file, capacity)?;
    }
    let zeros = vec![0u8; ZERO_CHUNK];
    let mut pos = if zero_fill { 0 } else { capacity };
    while pos < capacity {
        let n = ZERO_CHUNK.min((capacity - pos) as usize);
        file.write_all_at(&zeros[..n], pos)?;
        fsutil::write_back(&file, pos, n as u64)?;
        pos += n as u64;
    }
    file.sync_all()?;
    Ok(Spare {
        file,
        path: path.to_path_buf(),
        capacity,
    })
}
