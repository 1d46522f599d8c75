//! The sync thread: runs one `fdatasync` at a time for the writer, so that the writer
//! can encode and write the next group commit while the previous one is being synced.
//!
//! Measured on this project's test VM under batch ingest: each ~2 MB group commit cost
//! the writer ~3.4 ms of CPU and then a ~4 ms sync, one after the other, and the core sat
//! a quarter idle. With the sync here the two overlap. The writer still owns every
//! decision: it hands over at most one sync, and publishes and completes a batch only
//! after its sync has landed (see `writer.rs`).

use std::fs::File;
use std::io;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A finished sync: its result, and how long it took (for the latency histogram).
pub(super) struct Synced {
    pub result: io::Result<()>,
    pub took: Duration,
}

/// The writer's handle on the sync thread. At most one sync is in flight.
pub(super) struct Syncer {
    jobs: Option<SyncSender<Arc<File>>>,
    done: Receiver<Synced>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread. `delay` is added to every sync (`commit_delay`, tests only).
    pub(super) fn start(delay: Duration) -> io::Result<Syncer> {
        let (jobs, job_rx) = sync_channel::<Arc<File>>(1);
        let (done_tx, done) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("sluice-syncer".into())
            .spawn(move || {
                while let Ok(file) = job_rx.recv() {
                    if !delay.is_zero() {
                        std::thread::sleep(delay);
                    }
                    let started = Instant::now();
                    let result = file.sync_data();
                    let synced = Synced {
                        result,
                        took: started.elapsed(),
                    };
                    if done_tx.send(synced).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Syncer {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Starts syncing `file`. The caller has waited for the previous sync, so the
    /// one-slot queue is free and this never blocks.
    pub(super) fn dispatch(&self, file: Arc<File>) -> Result<(), io::Error> {
        match &self.jobs {
            Some(jobs) => jobs.send(file).map_err(|_| gone()),
            None => Err(gone()),
        }
    }

    /// Waits for the sync in flight.
    pub(super) fn wait(&self) -> Synced {
        self.done.recv().unwrap_or_else(|_| stopped())
    }

    /// Waits for the sync in flight until `deadline`; `None` if it is still running.
    pub(super) fn wait_until(&self, deadline: Instant) -> Option<Synced> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(timeout) {
            Ok(synced) => Some(synced),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(stopped()),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sync thread is gone (it only exits when the writer drops its handle, so this
/// means it panicked): treated as a failed sync, which halts the store.
fn gone() -> io::Error {
    io::Error::other("the sync thread has stopped")
}

/// What waiting on a stopped sync thread yields: a failed sync.
fn stopped() -> Synced {
    Synced {
        result: Err(gone()),
        took: Duration::ZERO,
    }
}
