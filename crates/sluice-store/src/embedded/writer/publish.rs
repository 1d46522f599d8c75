//! Publication: a durable batch becomes visible. The index learns its events and
//! settles, the segment's checkpoint records them, the waiters are answered, and the
//! commit feed announces the events: in that order, so that whoever is told of an event
//! can already read it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::batch::Batch;
use super::Writer;
use crate::event_id::EventId;
use crate::feed::FEED_INLINE_BYTES_MAX;
use crate::types::Committed;

impl Writer {
    pub(super) fn publish(&mut self, mut batch: Batch) {
        {
            let mut index = self.links.index.lock();
            for e in &batch.new_events {
                index.add_event(e.seq, e.tenant, &e.event_type, e.offset, e.received_at);
            }
            if let Some(seg) = index.segments.last_mut() {
                seg.bytes = seg.bytes.max(batch.end_pos);
            }
            for r in &batch.settle_records {
                if r.how == crate::types::Settle::Dead {
                    self.links
                        .counters
                        .dead_lettered
                        .fetch_add(r.seqs.len() as u64, Ordering::Relaxed);
                }
                for &seq in &r.seqs {
                    index.apply_settle(r.inbox, seq, r.how, r.at);
                }
            }
        }
        for e in &batch.new_events {
            self.checkpoint.event(
                e.offset,
                e.tenant,
                e.received_at,
                &e.event_type,
                e.idempotency,
            );
        }
        for s in batch.settle_records.drain(..) {
            self.checkpoint.settle(s);
        }
        for (kind, fields) in batch.control_records.drain(..) {
            self.checkpoint.control(kind, fields);
        }
        self.links
            .counters
            .events_appended
            .fetch_add(batch.new_events.len() as u64, Ordering::Relaxed);
        for staged in batch.staged.drain(..) {
            staged.finish(None);
        }
        self.links
            .signals
            .notify(batch.new_events.iter().map(|e| e.tenant));
        self.announce(&mut batch);
        self.recycle(batch);
    }

    /// Sends the batch's events to the commit feed, with their payloads unless the
    /// batch is large (the feed's memory bound; readers then read the log).
    fn announce(&self, batch: &mut Batch) {
        if batch.new_events.is_empty() || !self.links.feed.has_readers() {
            return;
        }
        // Staged before the first reader subscribed, the events were kept without
        // their fields: announced without a payload, they are read from the log.
        let fields = batch.announced.len() == batch.new_events.len();
        let inline = fields && batch.payload_bytes <= FEED_INLINE_BYTES_MAX;
        let salt = self.salt;
        // Frozen into one buffer the feed's entries share; the batch gets a new one.
        let bytes = bytes::Bytes::from(std::mem::take(&mut batch.feed_bytes));
        let mut announced = batch.announced.drain(..);
        let committed: Arc<[Committed]> = batch
            .new_events
            .iter()
            .map(|e| {
                let a = if fields { announced.next() } else { None };
                let (source, occurred_at, payload) = match a {
                    Some(a) => (
                        a.source.map(|r| r.of(&bytes)),
                        a.occurred_at.map(|r| r.of(&bytes)),
                        a.payload.filter(|_| inline).map(|r| r.of(&bytes)),
                    ),
                    None => (None, None, None),
                };
                Committed {
                    id: EventId::new(e.received_at, e.seq, salt),
                    tenant: e.tenant,
                    event_type: e.event_type.clone(),
                    source,
                    occurred_at,
                    received_at: e.received_at,
                    payload,
                }
            })
            .collect();
        drop(announced);
        self.links.feed.send(committed);
    }

    pub(super) fn recycle(&mut self, mut batch: Batch) {
        batch.clear();
        self.recycled = batch;
    }
}
