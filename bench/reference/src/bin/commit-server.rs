//! Issue 17's per-core commit prototype: the parse-only reference plus a durable group
//! commit, in two shapes, to learn whether committing on the runtime's own thread
//! (io_uring) costs less CPU per request than handing each group to a writer thread.
//!
//!     commit-server ADDR thread|uring|thread+headers|thread+work DIR
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
//! - `thread+headers` and `thread+work`: the writer thread, plus the response headers
//!   every answer must carry, plus (`+work`) the least per-request work DESIGN.md asks
//!   for (see `floor`). They measure the floor a durable Sluice stands on with this
//!   stack (hyper, a writer thread), which issue 17's instruction target is judged
//!   against.
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
        // `thread+headers`: the writer thread, and every answer carries the headers
        // DESIGN.md requires on every response (static values, the cheapest they can be).
        // `thread+work`: that, plus the least work DESIGN.md asks of each request (see
        // `floor`), done the cheapest way: the floor any Sluice on this stack stands on.
        let headers = mode.starts_with("thread+");
        let work = (mode == "thread+work").then(|| Arc::new(floor::Floor::new()));
        if work.is_some() {
            // For the bench scripts, which take the key from the server's output.
            eprintln!("accepting the API key {}", floor::KEY_TEXT);
        }
        let commit: Arc<dyn Commit> = match mode.as_str() {
            "thread" | "thread+headers" | "thread+work" => {
                Arc::new(ThreadCommit::start(file, work.is_some()))
            }
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
            let work = work.clone();
            async move {
                started.call_once(|| commit.clone().spawn());
                let request_id = match work.as_ref().map(|w| w.admit(req.headers())) {
                    None => hyper::header::HeaderValue::from_static("req_3f2a9c0000000001a4"),
                    Some(Ok(id)) => id,
                    Some(Err(status)) => {
                        return sluice_bench_reference::json(status, br#"{"error":"refused"}"#)
                    }
                };
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
                    Ok(()) => {
                        let mut r = sluice_bench_reference::json(
                            201,
                            br#"{"event_id":"evt_01M82ERJTM0000000000003JC7","status":"received","received_at":"2026-11-22T20:22:04.372Z"}"#,
                        );
                        if headers {
                            required_headers(r.headers_mut(), request_id);
                        }
                        if let Some(w) = &work {
                            *r.body_mut() = http_body_util::Full::new(w.receipt());
                        }
                        r
                    }
                    Err(_) => sluice_bench_reference::json(500, br#"{"error":"commit"}"#),
                }
            }
        });
    }

    /// The response headers DESIGN.md asks of every answer, with fixed values: what
    /// carrying them costs in hyper, apart from computing them.
    fn required_headers(h: &mut hyper::HeaderMap, request_id: hyper::header::HeaderValue) {
        use hyper::header::{HeaderName, HeaderValue};
        static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
        static NAMES: [HeaderName; 3] = [
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ];
        const VALUES: [&str; 3] = ["1000", "999", "1"];
        h.insert(X_REQUEST_ID.clone(), request_id);
        for (name, value) in NAMES.iter().zip(VALUES) {
            h.insert(name.clone(), HeaderValue::from_static(value));
        }
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
        fn start(file: File, crc: bool) -> Self {
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
                        if crc {
                            floor::frame(&group, &mut buf);
                        } else {
                            gather(&group, &mut buf);
                        }
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

    /// The least per-request work DESIGN.md asks for, done as cheaply as this author
    /// knows how, without Sluice's code: a key checked by a keyed 128-bit tag, a GCRA
    /// step on one atomic, a request id, an event id and time formatted into the
    /// receipt, and a length + CRC-32C frame per record. What it leaves out (routing,
    /// the index, idempotency, metrics) only adds to the floor.
    mod floor {
        use std::hash::Hasher as _;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::time::{Instant, SystemTime, UNIX_EPOCH};

        use bytes::Bytes;
        use hyper::header::{HeaderValue, AUTHORIZATION};
        use hyper::HeaderMap;
        use siphasher::sip128::{Hasher128 as _, SipHasher24};

        /// The key `bench/instructions.sh` presents to prototypes: a Sluice key's length.
        pub(super) const KEY_TEXT: &str = "sk_0123456789abcdefghijklmnopqrstuv";
        const KEY: &[u8] = b"Bearer sk_0123456789abcdefghijklmnopqrstuv";
        const TAG_KEY: (u64, u64) = (0x736c_7569_6365_2121, 0x666c_6f6f_7221_2121);
        const EMISSION_NS: u64 = 10_000; // 100,000 requests/s
        const BURST_NS: u64 = 2_000 * EMISSION_NS;

        pub(super) struct Floor {
            tag: u128,
            /// GCRA's theoretical arrival time, in ns since `epoch`.
            tat: AtomicU64,
            epoch: Instant,
            seq: AtomicU64,
        }

        fn tag(bytes: &[u8]) -> u128 {
            let mut h = SipHasher24::new_with_keys(TAG_KEY.0, TAG_KEY.1);
            h.write(bytes);
            h.finish128().as_u128()
        }

        impl Floor {
            pub(super) fn new() -> Self {
                Floor {
                    tag: tag(KEY),
                    tat: AtomicU64::new(0),
                    epoch: Instant::now(),
                    seq: AtomicU64::new(0),
                }
            }

            /// Checks the key and the rate: the request id when both pass, else the
            /// refusal's status.
            pub(super) fn admit(&self, headers: &HeaderMap) -> Result<HeaderValue, u16> {
                let key = headers.get(AUTHORIZATION).ok_or(401u16)?.as_bytes();
                // Constant time: every byte of both tags is looked at.
                let diff = (tag(key) ^ self.tag).to_le_bytes();
                if diff.iter().fold(0u8, |a, b| a | b) != 0 {
                    return Err(401);
                }
                let now = self.epoch.elapsed().as_nanos() as u64 + BURST_NS;
                let mut tat = self.tat.load(Ordering::Relaxed);
                loop {
                    let next = tat.max(now) + EMISSION_NS;
                    if next > now + BURST_NS {
                        return Err(429);
                    }
                    match self.tat.compare_exchange_weak(
                        tat,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(seen) => tat = seen,
                    }
                }
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = self.seq.fetch_add(1, Ordering::Relaxed);
                let mut id = *b"req_3f2a9c0000000000";
                for i in 0..10 {
                    id[10 + i] = HEX[((n >> (4 * (9 - i))) & 15) as usize];
                }
                // `req_`, hex digits: visible ASCII, a valid header value.
                HeaderValue::from_bytes(&id).map_err(|_| 500)
            }

            /// `{"event_id":"evt_…","status":"received","received_at":"…Z"}`.
            pub(super) fn receipt(&self) -> Bytes {
                const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let id = (u128::from(ms) << 80) | u128::from(self.seq.load(Ordering::Relaxed));
                let mut out = Vec::with_capacity(112);
                out.extend_from_slice(br#"{"event_id":"evt_"#);
                let mut digits = [0u8; 26];
                let mut v = id;
                for d in digits.iter_mut().rev() {
                    *d = ALPHABET[(v & 31) as usize];
                    v >>= 5;
                }
                out.extend_from_slice(&digits);
                out.extend_from_slice(br#"","status":"received","received_at":""#);
                civil(&mut out, ms);
                out.extend_from_slice(br#""}"#);
                Bytes::from(out)
            }
        }

        /// RFC 3339 UTC with milliseconds, from days since the epoch (Hinnant's civil
        /// algorithm).
        fn civil(out: &mut Vec<u8>, ms: u64) {
            let (secs, milli) = (ms / 1000, ms % 1000);
            let (days, sod) = ((secs / 86_400) as i64, secs % 86_400);
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = doy - (153 * mp + 2) / 5 + 1;
            let m = if mp < 10 { mp + 3 } else { mp - 9 };
            let y = yoe + era * 400 + i64::from(m <= 2);
            let two = |out: &mut Vec<u8>, n: u64| {
                out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8])
            };
            two(out, (y / 100) as u64);
            two(out, (y % 100) as u64);
            out.push(b'-');
            two(out, m as u64);
            out.push(b'-');
            two(out, d as u64);
            out.push(b'T');
            two(out, sod / 3600);
            out.push(b':');
            two(out, sod / 60 % 60);
            out.push(b':');
            two(out, sod % 60);
            out.push(b'.');
            out.extend_from_slice(&[
                b'0' + (milli / 100) as u8,
                b'0' + (milli / 10 % 10) as u8,
                b'0' + (milli % 10) as u8,
            ]);
            out.push(b'Z');
        }

        /// The group as records: length, CRC-32C, bytes.
        pub(super) fn frame(group: &[super::Waiter], buf: &mut Vec<u8>) {
            buf.clear();
            for (body, _) in group {
                buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
                buf.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
                buf.extend_from_slice(body);
            }
        }
    }
}
