//! The commit: one `pwrite` of the staged batch, then its sync (on this thread for a
//! small batch, on the syncer for a large one), and the roll-back when either fails.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::batch::Batch;
use super::{InFlight, Writer};
use crate::embedded::config::Durability;
use crate::embedded::counters::SYNC_LATENCY_BOUNDS_US;
use crate::embedded::error::EngineError;
use crate::embedded::syncer::Synced;

impl Writer {
    /// Writes the staged batch, lands the one before it, then hands this one to the
    /// syncer (or, when it needs no sync, publishes it at once).
    pub(super) fn commit(&mut self) {
        self.last_commit_commands = self.batch.staged.len();
        let written = self.write_batch();
        // The previous batch is published before this one: answers keep commit order,
        // and nothing answered here can rest on a batch that is not yet durable.
        if !self.land() {
            return;
        }
        let must_sync = (self.batch.wants_sync || self.config.durability == Durability::Fsync)
            && self.dirty_since.is_some();
        if written.is_ok() && must_sync && self.batch.bytes >= self.config.sync_overlap_min_bytes {
            self.dispatch_sync();
            return;
        }
        let durable = written.and_then(|()| {
            if !must_sync {
                return Ok(());
            }
            // Too small to be worth the hand-off (`sync_overlap_min_bytes`): sync here.
            let delay = self.config.commit_delay;
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            self.sync()
        });
        let batch = self.take_batch();
        match durable {
            Ok(()) => self.publish(batch),
            Err(e) => self.roll_back(batch, &e),
        }
    }

    /// Takes the staged batch out, leaving the last finished batch's emptied buffers in
    /// its place for the next one.
    pub(super) fn take_batch(&mut self) -> Batch {
        std::mem::replace(&mut self.batch, std::mem::take(&mut self.recycled))
    }

    fn write_batch(&mut self) -> Result<(), EngineError> {
        if !self.encoder.is_empty() {
            let bytes = self.encoder.finish();
            let len = bytes.len() as u64;
            // Staging refuses or carries over whatever would not fit (`stage`): a batch
            // past the segment's capacity would overwrite the next file's space or be
            // cut off by the roll-over's truncation.
            assert!(
                self.active.write_pos + len <= self.active.capacity,
                "batch of {len} bytes at {} passes the segment's capacity {}",
                self.active.write_pos,
                self.active.capacity
            );
            if let Err(e) = self.active.file.write_all_at(bytes, self.active.write_pos) {
                // A partial write may have left part of the frame behind. Zero it (best
                // effort: recovery cuts a torn tail either way) so the next batch,
                // written at the same position, is followed by clean zero fill rather
                // than a fragment.
                let zeros = vec![0u8; bytes.len()];
                if let Err(zero) = self.active.file.write_all_at(&zeros, self.active.write_pos) {
                    tracing::warn!(error = %zero, "could not zero a failed write; recovery will cut it");
                }
                return Err(EngineError::io(&self.active.path, e));
            }
            self.active.write_pos += len;
            self.batch.bytes = len;
            self.segment_commits += 1;
            self.dirty_since.get_or_insert_with(Instant::now);
        }
        self.batch.end_pos = self.active.write_pos;
        Ok(())
    }

    /// Starts syncing the active segment, which covers everything written so far, and
    /// sets the staged batch aside until the sync lands.
    fn dispatch_sync(&mut self) {
        self.last_sync_started = Some(Instant::now());
        self.dirty_since = None;
        let batch = self.take_batch();
        let path = self.active.path.clone();
        if let Err(source) = self.syncer.dispatch(self.active.file.clone()) {
            self.fail_sync(batch, path, source);
            return;
        }
        self.in_flight = Some(InFlight { batch, path });
    }

    /// Waits for the batch in flight, if any, and publishes it. Returns false if its
    /// sync failed: it has then been failed, and so has the batch staged after it.
    pub(super) fn land(&mut self) -> bool {
        match self.in_flight.take() {
            Some(in_flight) => {
                let synced = self.syncer.wait();
                self.landed(in_flight, synced)
            }
            None => true,
        }
    }

    /// Publishes a batch whose sync finished, or fails it (see [`Writer::land`]).
    pub(super) fn landed(&mut self, in_flight: InFlight, synced: Synced) -> bool {
        match synced.result {
            Ok(()) => {
                self.count_sync(synced.took);
                self.publish(in_flight.batch);
                true
            }
            Err(source) => {
                self.fail_sync(in_flight.batch, in_flight.path, source);
                false
            }
        }
    }

    /// A failed sync: the store stops writing, and the batch and everything staged
    /// after it fail, newest first so that sequence numbers roll back in order.
    fn fail_sync(&mut self, batch: Batch, path: PathBuf, source: std::io::Error) {
        // After a failed fsync the kernel may have dropped the dirty pages while
        // marking them clean; retrying would "succeed" over lost data. Stop writing.
        self.links.halted.store(true, Ordering::Relaxed);
        let error = EngineError::SyncFailed { path, source };
        let after = self.take_batch();
        self.roll_back(after, &error);
        self.roll_back(batch, &error);
    }

    /// Syncs on this thread (small batches, and interval mode's timer); nothing may be
    /// in flight.
    pub(super) fn sync(&mut self) -> Result<(), EngineError> {
        if self.dirty_since.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        self.last_sync_started = Some(started);
        if let Err(source) = self.active.file.sync_data() {
            // See `fail_sync`: a failed fsync cannot be retried.
            self.links.halted.store(true, Ordering::Relaxed);
            return Err(EngineError::SyncFailed {
                path: self.active.path.clone(),
                source,
            });
        }
        self.dirty_since = None;
        self.count_sync(started.elapsed());
        Ok(())
    }

    fn count_sync(&self, took: Duration) {
        let c = &self.links.counters;
        let micros = took.as_micros() as u64;
        c.sync_micros_total.fetch_add(micros, Ordering::Relaxed);
        let bucket = SYNC_LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(SYNC_LATENCY_BOUNDS_US.len() - 1);
        c.sync_latency[bucket].fetch_add(1, Ordering::Relaxed);
        c.commits.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn roll_back(&mut self, mut batch: Batch, error: &EngineError) {
        // Nothing of this batch was published, so forgetting it is a complete undo:
        // sequences are reused and the batch's idempotency keys are forgotten.
        if let Some(first) = batch.new_events.first().map(|e| e.seq) {
            self.next_seq = first.0;
            for key in &batch.new_keys {
                self.idempotency.remove_since(key, first);
            }
        }
        for staged in batch.staged.drain(..) {
            staged.finish(Some(error));
        }
        self.recycle(batch);
    }
}
