//! One cluster read at a time, shared by everyone who is waiting for it.
//!
//! A node asks the cluster how far something goes (the catalog bucket's revision, a
//! partition stream's last sequence) when a request names what the node has not heard
//! of. Such requests come in floods (an unknown key retried by a client, a forged
//! id), so they must not each cost a round trip. A caller takes the answer of a read
//! that *started after it arrived*, the same answer it would have got from a read of
//! its own; otherwise it makes that read, and the callers queued behind it take its
//! answer. However many callers, a node makes at most one read per round trip.
//!
//! A failed read is shared like a successful one: a caller must not mistake "no one
//! could ask" for "the cluster has nothing newer".

use std::future::Future;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::StoreError;

/// A read of the cluster that concurrent callers share (see the module docs).
pub(crate) struct SharedRead<T> {
    /// When the last read started, and what it answered. Held across the read: the
    /// lock is the queue of callers waiting for the next answer.
    last: Mutex<Option<(Instant, Result<T, StoreError>)>>,
}

impl<T: Clone> SharedRead<T> {
    pub(crate) fn new() -> Self {
        SharedRead {
            last: Mutex::new(None),
        }
    }

    /// The answer of a `read` that started no earlier than this call: another
    /// caller's, when one started after this call arrived, else this call's own.
    pub(crate) async fn read<F, Fut>(&self, read: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let arrived = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((started, answer)) = &*last {
            if *started >= arrived {
                return answer.clone();
            }
        }
        let started = Instant::now();
        let answer = read().await;
        *last = Some((started, answer.clone()));
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Callers that queue behind a read in flight take the next read's answer (one
    /// read for all of them), and a failure reaches them as a failure.
    #[tokio::test]
    async fn callers_behind_a_read_share_the_next_one_failures_included() {
        let shared = Arc::new(SharedRead::<u32>::new());
        let reads = Arc::new(AtomicU32::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let read = |answer: Result<u32, StoreError>| {
            let (reads, mut gate) = (reads.clone(), gate.clone());
            move || async move {
                reads.fetch_add(1, Ordering::SeqCst);
                let _ = gate.wait_for(|open| *open).await;
                answer
            }
        };
        // The first caller's read is in flight (held at the gate) ...
        let first = tokio::spawn({
            let (shared, read) = (shared.clone(), read(Ok(1)));
            async move { shared.read(read).await }
        });
        tokio::task::yield_now().await;
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // ... so these arrived after it started: one more read serves them all.
        let behind: Vec<_> = (0..3)
            .map(|_| {
                let (shared, read) = (
                    shared.clone(),
                    read(Err(StoreError::Unavailable("down".into()))),
                );
                tokio::spawn(async move { shared.read(read).await })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send_replace(true);
        assert_eq!(first.await.expect("first"), Ok(1));
        for b in behind {
            assert_eq!(
                b.await.expect("behind"),
                Err(StoreError::Unavailable("down".into()))
            );
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
