//! Rolling over: sealing the full active segment and starting the next one, taken from
//! the spare pool when one is ready (pre-allocated and zero-filled off this thread).

use std::sync::Arc;

use super::{Active, Writer};
use crate::embedded::codec::{self, SegmentHeader};
use crate::embedded::error::EngineError;
use crate::embedded::index::SegmentMeta;
use crate::embedded::segment;
use crate::embedded::spare::BuiltCheckpoint;
use crate::types::Sequence;

impl Writer {
    /// Seals the active segment and starts a new one at the next sequence.
    pub(super) fn roll_segment(&mut self) -> Result<(), EngineError> {
        // The sealed segment's last batch must be durable and in its checkpoint first.
        if !self.land() {
            return Err(EngineError::Halted);
        }
        let path = self.active.path.clone();
        let sealed = path.clone();
        // The sealed segment is synced and trimmed to its data in every durability mode,
        // so only the active segment can ever hold a torn tail.
        self.active
            .file
            .sync_data()
            .and_then(|()| self.active.file.set_len(self.active.write_pos))
            .and_then(|()| self.active.file.sync_all())
            .map_err(|e| EngineError::io(&path, e))?;
        self.dirty_since = None;
        // Trimmed: nothing more may go here, even if creating the next segment fails
        // (disk full) and a smaller command comes along.
        self.active.capacity = self.active.write_pos;
        let header = SegmentHeader {
            salt: self.salt,
            base_seq: Sequence(self.next_seq),
        };
        let dir = &self.config.dir;
        let written = self.active.write_pos - codec::SEGMENT_HEADER_LEN as u64;
        let commit_bytes_mean = written / self.segment_commits.max(1);
        self.segment_commits = 0;
        let (file, path, capacity) =
            match self.spares.as_mut().and_then(|p| p.take(commit_bytes_mean)) {
                Some(spare) => {
                    let capacity = spare.capacity;
                    let (file, path) = segment::promote(dir, spare, header)?;
                    (file, path, capacity)
                }
                None => {
                    let capacity = self.config.segment_bytes;
                    let (file, path) = segment::create(dir, header, capacity)?;
                    (file, path, capacity)
                }
            };
        // The next segment exists: only now is the sealed one's checkpoint final (a failed
        // roll-over is retried, and must not find an emptied builder).
        let built = self.checkpoint.finish().map(|sidecar| BuiltCheckpoint {
            sidecar,
            header: SegmentHeader {
                salt: self.salt,
                base_seq: Sequence(self.active.base_seq),
            },
            len: self.active.write_pos,
        });
        let file = Arc::new(file);
        let header_len = codec::SEGMENT_HEADER_LEN as u64;
        self.links.index.lock().segments.push(SegmentMeta::new(
            self.next_seq,
            path.clone(),
            file.clone(),
            0,
            header_len,
        ));
        self.active = Active {
            file,
            path,
            base_seq: self.next_seq,
            write_pos: header_len,
            capacity,
        };
        if let Some(pool) = self.spares.as_mut() {
            pool.checkpoint(sealed, built);
        }
        Ok(())
    }
}
