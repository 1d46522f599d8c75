//! Disk full on a real, tiny file system (a tmpfs mounted for the test; needs root, as
//! on the project's machines and CI).
//!
//! Commits must fail with `DiskFull` (never a panic, never a halt), nothing acknowledged
//! may be lost, and once space returns the same store writes again without a restart.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use sluice_store::embedded::{EmbeddedConfig, EmbeddedStore};
use sluice_store::{AppendOutcome, EventId, NewEvent, Store, StoreError, TenantId};

const T: TenantId = TenantId(1);

/// A tmpfs of a given size, unmounted on drop.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    fn mount(size: &str) -> TinyFs {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed: this test needs root (as CI has)"
        );
        TinyFs { dir }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "remount failed");
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn config(dir: &Path) -> EmbeddedConfig {
    let mut c = EmbeddedConfig::new(dir);
    c.segment_bytes = 64 << 10;
    // A failed write while an earlier commit is still syncing must fail only itself.
    c.sync_overlap_min_bytes = 0;
    c
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        tenant: T,
        event_type: Bytes::from_static(b"fill"),
        source: None,
        occurred_at: None,
        idempotency: None,
        payload: Bytes::from(format!(r#"{{"n":{n},"pad":"{}"}}"#, "f".repeat(1000))),
    }
}

#[test]
fn disk_full_fails_commits_loses_nothing_and_recovers() {
    let fs = TinyFs::mount("512k");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = EmbeddedStore::open(config(&fs.path())).expect("open");
    let mut acked: Vec<(EventId, Bytes)> = Vec::new();

    rt.block_on(async {
        let mut full = None;
        for n in 0..10_000 {
            let e = event(n);
            match store.append(vec![e.clone()]).await {
                Ok(outcomes) => match outcomes[0] {
                    AppendOutcome::Created { id, .. } => acked.push((id, e.payload)),
                    other => panic!("unexpected {other:?}"),
                },
                Err(err) => {
                    full = Some(err);
                    break;
                }
            }
        }
        let err = full.expect("a 512 KiB file system must fill up");
        assert!(
            matches!(err, StoreError::Full(_)),
            "expected Full, got {err:?}"
        );
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(acked.len() > 100, "only {} events fit", acked.len());

        // Still full: still a clean refusal, and the store is not halted.
        let again = store.append(vec![event(0)]).await.expect_err("still full");
        assert!(matches!(again, StoreError::Full(_)), "{again:?}");
        assert!(store.health().await.ready);
        for (id, payload) in &acked {
            let got = store
                .get(T, *id)
                .await
                .expect("get")
                .expect("acknowledged event readable");
            assert_eq!(&got.payload, payload);
        }

        // Space returns: the same store writes again.
        fs.resize("4m");
        let outcome = store
            .append(vec![event(99_999)])
            .await
            .expect("writes resume");
        match outcome[0] {
            AppendOutcome::Created { id, .. } => acked.push((id, event(99_999).payload)),
            other => panic!("unexpected {other:?}"),
        }
    });
    store.close();

    let store = EmbeddedStore::open(config(&fs.path())).expect("reopen");
    rt.block_on(async {
        for (id, payload) in &acked {
            let got = store
                .get(T, *id)
                .await
                .expect("get")
                .unwrap_or_else(|| panic!("{id} lost"));
            assert_eq!(&got.payload, payload);
        }
    });
    store.close();
}
