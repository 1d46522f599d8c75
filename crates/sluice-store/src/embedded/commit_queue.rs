//! The commit queue: the bounded hand-off from request tasks to the writer thread.
//!
//! It has two bounds, both named in [`super::EmbeddedConfig`]: commands
//! (`commit_queue_depth`) and queued bytes (`commit_queue_bytes_max`, the memory bound
//! of the write path whatever the request sizes). Past either, a send is refused with
//! [`EngineError::Overloaded`] at once (the HTTP layer's 503): a request never waits
//! for room, and memory never grows with the load.
//!
//! The queue owns its accounting. A command is charged when it is sent and discharged
//! when the writer takes it out ([`QueueReceiver`] does both ends), so the depth and
//! byte gauges cannot drift whatever the writer then does with the command.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use super::error::EngineError;
use super::writer::Command;

/// The queue's gauges and counter, shared by both ends and the metrics.
#[derive(Debug, Default)]
pub(crate) struct QueueGauges {
    depth: AtomicUsize,
    bytes: AtomicUsize,
    overloaded_total: AtomicU64,
}

impl QueueGauges {
    /// Commands waiting now.
    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Sends refused since start.
    pub(crate) fn overloaded_total(&self) -> u64 {
        self.overloaded_total.load(Ordering::Relaxed)
    }
}

/// A command and the bytes it was charged.
struct Queued {
    command: Command,
    charged: usize,
}

/// The request side.
pub(crate) struct QueueSender {
    tx: SyncSender<Queued>,
    gauges: Arc<QueueGauges>,
    bytes_max: usize,
}

/// The writer's side.
pub(crate) struct QueueReceiver {
    rx: Receiver<Queued>,
    gauges: Arc<QueueGauges>,
}

/// Why the writer got no command.
pub(crate) enum Empty {
    /// Nothing is waiting (yet).
    Now,
    /// Every sender is gone: the store is closing.
    Closed,
}

/// A queue of `depth_max` commands and `bytes_max` charged bytes.
pub(crate) fn bounded(
    depth_max: usize,
    bytes_max: usize,
) -> (QueueSender, QueueReceiver, Arc<QueueGauges>) {
    let (tx, rx) = sync_channel(depth_max.max(1));
    let gauges = Arc::new(QueueGauges::default());
    (
        QueueSender {
            tx,
            gauges: gauges.clone(),
            bytes_max,
        },
        QueueReceiver {
            rx,
            gauges: gauges.clone(),
        },
        gauges,
    )
}

impl QueueSender {
    /// Queues a command, or refuses it when either bound would be passed.
    pub(crate) fn send(&self, command: Command) -> Result<(), EngineError> {
        let charged = command.charged_bytes();
        let g = &self.gauges;
        let queued = g.bytes.fetch_add(charged, Ordering::Relaxed) + charged;
        if queued > self.bytes_max {
            g.bytes.fetch_sub(charged, Ordering::Relaxed);
            g.overloaded_total.fetch_add(1, Ordering::Relaxed);
            return Err(EngineError::Overloaded);
        }
        g.depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Queued { command, charged }) {
            Ok(()) => Ok(()),
            Err(e) => {
                g.bytes.fetch_sub(charged, Ordering::Relaxed);
                g.depth.fetch_sub(1, Ordering::Relaxed);
                match e {
                    std::sync::mpsc::TrySendError::Full(_) => {
                        g.overloaded_total.fetch_add(1, Ordering::Relaxed);
                        Err(EngineError::Overloaded)
                    }
                    std::sync::mpsc::TrySendError::Disconnected(_) => Err(EngineError::Closed),
                }
            }
        }
    }
}

impl QueueReceiver {
    fn discharge(&self, q: Queued) -> Command {
        self.gauges.bytes.fetch_sub(q.charged, Ordering::Relaxed);
        self.gauges.depth.fetch_sub(1, Ordering::Relaxed);
        q.command
    }

    /// The next command if one is waiting.
    pub(crate) fn try_recv(&self) -> Result<Command, Empty> {
        match self.rx.try_recv() {
            Ok(q) => Ok(self.discharge(q)),
            Err(TryRecvError::Empty) => Err(Empty::Now),
            Err(TryRecvError::Disconnected) => Err(Empty::Closed),
        }
    }

    /// The next command, waiting up to `wait` for one.
    pub(crate) fn recv_timeout(&self, wait: Duration) -> Result<Command, Empty> {
        match self.rx.recv_timeout(wait) {
            Ok(q) => Ok(self.discharge(q)),
            Err(RecvTimeoutError::Timeout) => Err(Empty::Now),
            Err(RecvTimeoutError::Disconnected) => Err(Empty::Closed),
        }
    }
}
