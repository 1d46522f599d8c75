//! Issue 17's per-core commit prototype: the parse-only reference plus a durable group
//! commit, in two shapes, to learn whether committing on the runtime's own thread
//! (io_uring) costs less CPU per request than handing each group to a writer thread.
//!
//!     commit-server ADDR thread|uring DIR
//!
//! - `thread`: Sluice's shape. Requests queue their bodies on a bounded channel to a
//!   writer thread, which takes all that waits, writes it with one `pwrite`, runs
//!   `fdatasync`, and answers each request through its oneshot (a wake from outside
//!   the runtime per request).
//! - `uring`: a committer task on the runtime takes all that waits, submits a linked
//!   write + `fdatasync` to an io_uring without waiting, and learns of the completion
//!   through an eventfd the runtime's epoll watches; it answers each request from the
//!   runtime's thread. No other thread, no blocking call.
//!
//! Both write into a pre-written 256 MiB file (wrapping around), as Sluice writes into
//! pre-written segments, so a sync flushes data only. One group is in flight at a
//! time in both. Driven by `PROTO=thread|uring bench/wakeups.sh` and
//! `bench/instructions.sh`; nothing here is used by Sluice.

#[cfg(target_os = "linux")]
fn main() {
    proto::main();
}

/// io_uring is Linux's: elsewhere there is nothing to compare.
#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("commit-server needs Linux (io_uring)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod proto {
    use std::fs::File;
    use std::io::Write as _;
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::fs::FileExt;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use io_uring::{opcode, squeue, types, IoUring};
    use tokio::io::unix::AsyncFd;
    use tokio::sync::{oneshot, Notify};

    const FILE_BYTES: u64 = 256 << 20;
    /// Bounds the requests waiting for a group (the writer thread's channel, or the
    /// committer's list): past it a request is refused with 503, as Sluice does.
    const WAITING_MAX: usize = 16_384;

    type Waiter = (Bytes, oneshot::Sender<()>);

    pub fn main() {
        // After the program's name, ADDR, which `run` reads itself.
        let mut args = std::env::args().skip(2);
        let mode = args.next().unwrap_or_else(|| "thread".into());
        let dir = args.next().unwrap_or_else(|| ".".into());
        let path = std::path::Path::new(&dir).join("commit-proto.bin");
        let file = prepare(&path);
        let commit: Arc<dyn Commit> = match mode.as_str() {
            "thread" => Arc::new(ThreadCommit::start(file)),
            "uring" => Arc::new(UringCommit::new(file)),
            other => {
                eprintln!("unknown mode {other:?}: thread or uring");
                std::process::exit(2);
            }
        };
        let started = Arc::new(std::sync::Once::new());
        sluice_bench_reference::run(move |req| {
            let commit = commit.clone();
            let started = started.clone();
            async move {
                started.call_once(|| commit.clone().spawn());
                let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
                    return sluice_bench_reference::json(400, br#"{"error":"body"}"#);
                };
                if !sluice_bench_reference::parses(&body) {
                    return sluice_bench_reference::json(400, br#"{"error":"json"}"#);
                }
                let (tx, rx) = oneshot::channel();
                if !commit.submit((body, tx)) {
                    return sluice_bench_reference::json(503, br#"{"error":"full"}"#);
                }
                match rx.await {
                    Ok(()) => sluice_bench_reference::json(
                        201,
                        br#"{"event_id":"evt_01M82ERJTM0000000000003JC7","status":"received","received_at":"2026-11-22T20:22:04.372Z"}"#,
                    ),
                    Err(_) => sluice_bench_reference::json(500, br#"{"error":"commit"}"#),
                }
            }
        });
    }

    /// Writes the whole file once, so later writes land in allocated, written blocks.
    fn prepare(path: &std::path::Path) -> File {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .expect("open the data file");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..(FILE_BYTES >> 20) {
            f.write_all(&zeros).expect("pre-write");
        }
        f.sync_all().expect("sync");
        eprintln!("pre-wrote {} MiB at {}", FILE_BYTES >> 20, path.display());
        f
    }

    trait Commit: Send + Sync + 'static {
        /// Queues a body; false when the queue is full.
        fn submit(&self, w: Waiter) -> bool;
        /// Starts the committer task, for the shapes that have one (inside the runtime).
        fn spawn(self: Arc<Self>) {}
    }

    /// The group's bytes, laid end to end.
    fn gather(group: &[Waiter], buf: &mut Vec<u8>) {
        buf.clear();
        for (body, _) in group {
            buf.extend_from_slice(body);
        }
    }

    struct ThreadCommit {
        tx: std::sync::mpsc::SyncSender<Waiter>,
    }

    impl ThreadCommit {
        fn start(file: File) -> Self {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Waiter>(WAITING_MAX);
            std::thread::Builder::new()
                .name("proto-writer".into())
                .spawn(move || {
                    let (mut pos, mut buf, mut group) = (0u64, Vec::new(), Vec::new());
                    while let Ok(first) = rx.recv() {
                        group.push(first);
                        while let Ok(more) = rx.try_recv() {
                            group.push(more);
                        }
                        gather(&group, &mut buf);
                        if pos + buf.len() as u64 > FILE_BYTES {
                            pos = 0;
                        }
                        file.write_all_at(&buf, pos).expect("pwrite");
                        file.sync_data().expect("fdatasync");
                        pos += buf.len() as u64;
                        for (_, done) in group.drain(..) {
                            let _ = done.send(());
                        }
                    }
                })
                .expect("writer thread");
            ThreadCommit { tx }
        }
    }

    impl Commit for ThreadCommit {
        fn submit(&self, w: Waiter) -> bool {
            self.tx.try_send(w).is_ok()
        }
    }

    struct UringCommit {
        waiting: Mutex<Vec<Waiter>>,
        wake: Notify,
        file: Mutex<Option<File>>,
    }

    impl UringCommit {
        fn new(file: File) -> Self {
            UringCommit {
                waiting: Mutex::new(Vec::new()),
                wake: Notify::new(),
                file: Mutex::new(Some(file)),
            }
        }
    }

    impl Commit for UringCommit {
        fn submit(&self, w: Waiter) -> bool {
            let mut waiting = self.waiting.lock().expect("lock");
            if waiting.len() >= WAITING_MAX {
                return false;
            }
            waiting.push(w);
            drop(waiting);
            self.wake.notify_one();
            true
        }

        fn spawn(self: Arc<Self>) {
            let file = self
                .file
                .lock()
                .expect("lock")
                .take()
                .expect("spawned once");
            tokio::spawn(async move { self.commit_loop(file).await });
        }
    }

    impl UringCommit {
        async fn commit_loop(&self, file: File) {
            let mut ring = IoUring::new(8).expect("io_uring");
            // SAFETY: eventfd(2) with valid flags; the descriptor is owned below.
            let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            assert!(efd >= 0, "eventfd");
            ring.submitter()
                .register_eventfd(efd)
                .expect("register eventfd");
            // SAFETY: `efd` is a fresh descriptor nothing else owns; the OwnedFd keeps it
            // open for as long as the AsyncFd holding it is registered.
            let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(efd) };
            // SAFETY: as above: the descriptor stays open while registered.
            let events =
                unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
                    .expect("watch the eventfd");
            let fd = types::Fd(file.as_raw_fd());
            let (mut pos, mut buf, mut group) = (0u64, Vec::new(), Vec::new());
            loop {
                std::mem::swap(&mut group, &mut *self.waiting.lock().expect("lock"));
                if group.is_empty() {
                    self.wake.notified().await;
                    continue;
                }
                gather(&group, &mut buf);
                if pos + buf.len() as u64 > FILE_BYTES {
                    pos = 0;
                }
                let write = opcode::Write::new(fd, buf.as_ptr(), buf.len() as u32)
                    .offset(pos)
                    .build()
                    .flags(squeue::Flags::IO_LINK)
                    .user_data(1);
                let sync = opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(2);
                // SAFETY: `buf` and the file outlive the operations: this task waits for
                // both completions below before it touches either again, and nothing
                // cancels it (it runs for the process's life; a failure below aborts the
                // process rather than unwinding past the kernel's use of `buf`).
                unsafe {
                    let mut sq = ring.submission();
                    sq.push(&write).expect("sq room");
                    sq.push(&sync).expect("sq room");
                }
                ring.submit().expect("submit");
                let mut done = 0;
                while done < 2 {
                    let Ok(mut ready) = events.readable().await else {
                        eprintln!("the eventfd failed");
                        std::process::abort();
                    };
                    let mut count = [0u8; 8];
                    // SAFETY: reading 8 bytes into an 8-byte buffer from our eventfd.
                    unsafe { libc::read(efd, count.as_mut_ptr().cast(), 8) };
                    ready.clear_ready();
                    for cqe in ring.completion() {
                        // A short write would cancel the linked sync: both are failures.
                        let ok = match cqe.user_data() {
                            1 => cqe.result() == buf.len() as i32,
                            _ => cqe.result() >= 0,
                        };
                        if !ok {
                            eprintln!("io_uring op {} failed: {}", cqe.user_data(), cqe.result());
                            std::process::abort();
                        }
                        done += 1;
                    }
                }
                pos += buf.len() as u64;
                for (_, tx) in group.drain(..) {
                    let _ = tx.send(());
                }
            }
        }
    }
}
