//! Graceful shutdown of open connections: tell each to finish what it is serving and
//! close, then wait until all have.
//!
//! hyper-util's `GracefulShutdown` does this with a `watch` channel whose `changed()`
//! future every connection polls on every wake-up: about 450 instructions a request
//! (three polls of a tokio `Notified`, each taking the channel's waiter lock),
//! measured by callgrind on the ingest path (issue 17). Here a connection registers
//! its waker in an [`AtomicWaker`] (a compare-and-swap, nothing when the waker is the
//! same as last time) and reads one flag; shutdown sets the flag and wakes every
//! registered connection once. Waiting for them all to close is the connection limit's
//! semaphore getting all its permits back (see `server::serve`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;
use parking_lot::Mutex;
use slab::Slab;

/// The shutdown signal every open connection watches.
#[derive(Default)]
pub(crate) struct Drain {
    closing: AtomicBool,
    /// One waker slot per open connection (bounded by the connection limit).
    open: Mutex<Slab<Arc<AtomicWaker>>>,
}

impl Drain {
    /// Wraps a connection so that it shuts down gracefully once [`Drain::close`] runs.
    pub(crate) fn watch<C: GracefulConnection>(self: &Arc<Self>, conn: C) -> Watched<C> {
        let waker = Arc::new(AtomicWaker::new());
        let slot = self.open.lock().insert(waker.clone());
        Watched {
            conn,
            drain: self.clone(),
            waker,
            slot,
            told: false,
        }
    }

    /// Tells every open connection, and every one opened from now on, to finish.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        for (_, waker) in self.open.lock().iter() {
            waker.wake();
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection that finishes gracefully once its [`Drain`] closes.
    pub(crate) struct Watched<C> {
        #[pin]
        conn: C,
        drain: Arc<Drain>,
        waker: Arc<AtomicWaker>,
        slot: usize,
        told: bool,
    }

    impl<C> PinnedDrop for Watched<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.drain.open.lock().remove(*this.slot);
        }
    }
}

impl<C: GracefulConnection> Future for Watched<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.told {
            // Registered before the flag is read, and `close` sets the flag before it
            // wakes: a close between the two still finds this waker.
            this.waker.register(cx.waker());
            if this.drain.closing.load(Ordering::Acquire) {
                this.conn.as_mut().graceful_shutdown();
                *this.told = true;
            }
        }
        this.conn.poll(cx)
    }
}
