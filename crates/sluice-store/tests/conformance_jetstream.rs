//! The conformance suite on the NATS JetStream backend, against a real `nats-server`
//! this test binary starts (one for all cases; each case gets streams of its own).

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use sluice_store::conformance::Harness;
use sluice_store::embedded::Clock;
use sluice_store::jetstream::testing::{NatsServer, ServerOptions};
use sluice_store::jetstream::{JetStreamConfig, JetStreamStore};

/// The server every case talks to, started once, from a thread that lives as long as
/// the process (the server dies with that thread: see `testing`).
fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dir = tempfile::tempdir().expect("tempdir");
            let server = NatsServer::start(ServerOptions::single(dir.path(), false));
            match server {
                Ok(server) => {
                    tx.send(Ok(server.url())).expect("send");
                    let _keep = (server, dir);
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => tx.send(Err(e.to_string())).expect("send"),
            }
        });
        rx.recv()
            .expect("server thread")
            .expect("nats-server started")
    })
}

struct JetStream {
    config: JetStreamConfig,
    clock: Arc<AtomicI64>,
    store: Option<JetStreamStore>,
}

impl JetStream {
    async fn open(&self) -> JetStreamStore {
        JetStreamStore::open(self.config.clone())
            .await
            .expect("open the JetStream store")
    }
}

impl Harness for JetStream {
    type S = JetStreamStore;

    async fn fresh() -> Self {
        static CASES: AtomicU32 = AtomicU32::new(0);
        let n = CASES.fetch_add(1, Ordering::Relaxed);
        let (clock, cell) = Clock::manual(1_700_000_000_000);
        let mut config = JetStreamConfig::new(vec![server_url().to_owned()]);
        config.clock = clock;
        // Streams, buckets and subjects of their own per case.
        config.namespace = format!("c{}x{n}", std::process::id());
        let mut h = JetStream {
            config,
            clock: cell,
            store: None,
        };
        h.store = Some(h.open().await);
        h
    }

    fn store(&self) -> &JetStreamStore {
        self.store.as_ref().expect("store is open")
    }

    async fn reopen(&mut self) {
        if let Some(store) = self.store.take() {
            store.close().await;
        }
        self.store = Some(self.open().await);
    }

    fn advance_ms(&mut self, ms: i64) {
        self.clock.fetch_add(ms, Ordering::Relaxed);
    }

    fn now_ms(&self) -> i64 {
        self.clock.load(Ordering::Relaxed)
    }
}

sluice_store::conformance_tests!(JetStream);
