//! Reads of events that are not in the page cache: served correctly, on the blocking
//! pool (an async worker never waits on the disk), and counted.
//!
//! The segments' pages are dropped from the page cache with `posix_fadvise(DONTNEED)`
//! after the events are synced (clean pages go at once), so the first reads must miss.

mod common;

use std::os::fd::AsRawFd;

use bytes::Bytes;
use common::segments;
use sluice_store::embedded::{EmbeddedConfig, EmbeddedStore};
use sluice_store::exposition::Exposition;
use sluice_store::{AppendOutcome, InboxQuery, LogQuery, NewEvent, Store, TenantId};

const T: TenantId = TenantId(1);

fn event(n: usize) -> NewEvent {
    NewEvent {
        tenant: T,
        event_type: Bytes::from_static(b"cold"),
        source: None,
        occurred_at: None,
        idempotency: None,
        payload: Bytes::from(format!(r#"{{"n":{n},"pad":"{}"}}"#, "y".repeat(3000))),
    }
}

/// Evicts every segment from the page cache, and checks that it stuck: a read just
/// before may have started readahead that lands after one fadvise, so the drop is
/// repeated (a bounded number of times) until `mincore` shows no page resident.
fn drop_cache(dir: &std::path::Path) {
    const ATTEMPTS_MAX: usize = 1000;
    for seg in segments(dir) {
        let file = std::fs::File::open(&seg).expect("open segment");
        let len = file.metadata().expect("metadata").len() as usize;
        for attempt in 0.. {
            assert!(
                attempt < ATTEMPTS_MAX,
                "{} stays in the page cache",
                seg.display()
            );
            // SAFETY: fadvise on a descriptor owned by `file` for the call's duration.
            let rc =
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(rc, 0, "posix_fadvise");
            if !resident(&file, len) {
                break;
            }
            std::thread::yield_now();
        }
    }
}

/// Whether any page of the file's first `len` bytes is in the page cache.
fn resident(file: &std::fs::File, len: usize) -> bool {
    if len == 0 {
        return false;
    }
    // SAFETY: a read-only shared mapping of a file we hold open, unmapped before return;
    // mincore writes one byte per page into `pages`, sized for the mapping.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(map, libc::MAP_FAILED, "mmap");
        let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        let mut pages = vec![0u8; len.div_ceil(page)];
        let rc = libc::mincore(map, len, pages.as_mut_ptr());
        libc::munmap(map, len);
        assert_eq!(rc, 0, "mincore");
        pages.iter().any(|p| p & 1 == 1)
    }
}

async fn uncached(store: &EmbeddedStore) -> u64 {
    let mut out = Exposition::default();
    store.write_metrics(&mut out).await;
    let text = out.finish();
    let line = text
        .lines()
        .find(|l| l.starts_with("sluice_store_reads_uncached_total "))
        .expect("the counter is exposed");
    line.split(' ')
        .nth(1)
        .expect("value")
        .parse()
        .expect("number")
}

/// Tries of one read, each after a fresh drop, before the test gives up on it.
const MISS_TRIES: usize = 5;

/// Runs `read` after a fresh cache drop until the uncached-read counter rises, at most
/// [`MISS_TRIES`] times; whether it did. The drop is checked with mincore, but readahead
/// or writeback of this machine's other work can still bring a page back between the
/// check and the read, so one try is not enough to tell; a read that is never counted
/// in all of them fails the test. `read` checks what it read every time.
async fn missed_after_drop<F, Fut>(
    store: &EmbeddedStore,
    dir: &std::path::Path,
    mut read: F,
) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..MISS_TRIES {
        let before = uncached(store).await;
        drop_cache(dir);
        read().await;
        if uncached(store).await > before {
            return true;
        }
    }
    false
}

#[test]
fn reads_outside_the_page_cache_are_served_from_the_blocking_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).expect("open");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let events: Vec<NewEvent> = (0..200).map(event).collect();
        let outcomes = store.append(events.clone()).await.expect("append");
        let ids: Vec<_> = outcomes
            .iter()
            .map(|o| match o {
                AppendOutcome::Created { id, .. } => *id,
                other => panic!("{other:?}"),
            })
            .collect();
        store.sync().await.expect("sync");
        assert_eq!(uncached(&store).await, 0, "everything was just written");

        let (store, events, ids, dir) = (&store, &events, &ids, dir.path());
        let got = missed_after_drop(store, dir, || async move {
            let got = store.get(T, ids[150]).await.expect("get").expect("found");
            assert_eq!(got.payload, events[150].payload);
        })
        .await;
        assert!(got, "the get missed the cache and was counted");

        let listed = missed_after_drop(store, dir, || async move {
            let page = store
                .list(InboxQuery {
                    tenant: T,
                    consumer: sluice_store::ConsumerId::DEFAULT,
                    limit: 1000,
                    after: None,
                    event_type: None,
                    lease_ms: None,
                    max_deliveries: None,
                })
                .await
                .expect("list");
            assert_eq!(page.events.len(), 200);
            for (e, sent) in page.events.iter().zip(events) {
                assert_eq!(e.payload, sent.payload);
            }
        })
        .await;
        assert!(listed, "the list missed the cache");

        let logged = missed_after_drop(store, dir, || async move {
            let log = store
                .read_log(LogQuery {
                    tenant: T,
                    after: None,
                    limit: 1000,
                    event_type: None,
                })
                .await
                .expect("read log");
            assert_eq!(log.events.iter().map(|e| e.id).collect::<Vec<_>>(), *ids);
        })
        .await;
        assert!(logged, "the log read missed the cache");

        // Cached again now: the same reads stay on the worker.
        let before = uncached(store).await;
        store.get(T, ids[3]).await.expect("get").expect("found");
        assert_eq!(uncached(store).await, before);
    });
    store.close();
}
