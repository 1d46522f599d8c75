//! The conformance suite on the embedded engine, with real files and real fsync.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sluice_store::conformance::Harness;
use sluice_store::embedded::{Clock, EmbeddedConfig, EmbeddedStore};

struct Embedded {
    dir: tempfile::TempDir,
    clock: Arc<AtomicI64>,
    store: Option<EmbeddedStore>,
}

impl Embedded {
    fn open(&self) -> EmbeddedStore {
        let mut config = EmbeddedConfig::new(self.dir.path());
        config.clock = Clock::Manual(self.clock.clone());
        // Small segments, so the suite also crosses segment boundaries.
        config.segment_bytes = 4096;
        // Every commit through the overlapped sync, so acks staged while an earlier
        // commit syncs are part of the contract under test.
        config.sync_overlap_min_bytes = 0;
        EmbeddedStore::open(config).expect("open store")
    }
}

impl Harness for Embedded {
    type S = EmbeddedStore;

    async fn fresh() -> Self {
        let (_, clock) = Clock::manual(1_700_000_000_000);
        let mut h = Embedded {
            dir: tempfile::tempdir().expect("tempdir"),
            clock,
            store: None,
        };
        h.store = Some(h.open());
        h
    }

    fn store(&self) -> &EmbeddedStore {
        self.store.as_ref().expect("store is open")
    }

    async fn reopen(&mut self) {
        if let Some(store) = self.store.take() {
            store.close();
        }
        self.store = Some(self.open());
    }

    fn advance_ms(&mut self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::Relaxed);
    }

    fn now_ms(&self) -> i64 {
        self.clock.load(Ordering::Relaxed)
    }
}

sluice_store::conformance_tests!(Embedded);
