//! The live tail (`GET /v1/stream`) against the real binary: streaming, the type filter,
//! tenant isolation, resume with `Last-Event-ID`, and the lagged disconnect.

mod common;

use std::time::{Duration, Instant};

use common::{event, runtime, tenant_key, Http, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw SSE client over HTTP/1.1: the socket's bytes (`raw`), de-chunked into the
/// body's text (`text`), cut into messages at blank lines.
struct Tail {
    conn: TcpStream,
    raw: Vec<u8>,
    text: Vec<u8>,
    ended: bool,
}

/// One SSE message's fields.
#[derive(Debug)]
struct Message {
    event: Option<String>,
    id: Option<String>,
    data: String,
}

impl Tail {
    async fn open(s: &Server, key: &str, query: &str, last_event_id: Option<&str>) -> (u16, Tail) {
        let addr = s
            .url("")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let mut conn = TcpStream::connect(&addr).await.expect("connect");
        let mut req = format!("GET /v1/stream{query} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        conn.write_all(req.as_bytes()).await.expect("send");
        let mut tail = Tail {
            conn,
            raw: Vec::new(),
            text: Vec::new(),
            ended: false,
        };
        let head = loop {
            if let Some(i) = find(&tail.raw, b"\r\n\r\n") {
                let rest = tail.raw.split_off(i + 4);
                break String::from_utf8_lossy(&std::mem::replace(&mut tail.raw, rest))
                    .into_owned();
            }
            assert!(tail.read().await, "no response head");
        };
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        if status == 200 {
            let lower = head.to_ascii_lowercase();
            assert!(lower.contains("content-type: text/event-stream"), "{head}");
            assert!(lower.contains("transfer-encoding: chunked"), "{head}");
        }
        (status, tail)
    }

    /// Reads more from the socket; false at EOF.
    async fn read(&mut self) -> bool {
        let mut chunk = vec![0u8; 64 << 10];
        let n = tokio::time::timeout(Duration::from_secs(20), self.conn.read(&mut chunk))
            .await
            .expect("the stream went silent for 20 s")
            .expect("read");
        self.raw.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Moves every complete chunk from `raw` to `text`; false when none was complete.
    fn dechunk(&mut self) -> bool {
        let mut moved = false;
        while let Some(eol) = find(&self.raw, b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&self.raw[..eol]).trim(), 16)
                .expect("chunk size");
            if size == 0 {
                self.ended = true;
                return moved;
            }
            if self.raw.len() < eol + 2 + size + 2 {
                break;
            }
            self.text
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..eol + 2 + size + 2);
            moved = true;
        }
        moved
    }

    /// The next SSE message, or `None` when the stream ended.
    async fn message(&mut self) -> Option<Message> {
        loop {
            if let Some(i) = find(&self.text, b"\n\n") {
                let rest = self.text.split_off(i + 2);
                let msg = std::mem::replace(&mut self.text, rest);
                return Some(parse(&String::from_utf8_lossy(&msg)));
            }
            if self.dechunk() {
                continue;
            }
            if self.ended || !self.read().await {
                return None;
            }
        }
    }

    /// The next message that is an event (skipping `retry:` and comments).
    async fn event(&mut self) -> Option<Message> {
        loop {
            let m = self.message().await?;
            if m.event.is_some() {
                return Some(m);
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse(msg: &str) -> Message {
    let mut m = Message {
        event: None,
        id: None,
        data: String::new(),
    };
    for line in msg.lines() {
        if let Some(v) = line.strip_prefix("event: ") {
            m.event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("id: ") {
            m.id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            m.data.push_str(v);
        }
    }
    m
}

/// Opens a tail and waits for its first message (`retry:`), sent once it follows the
/// feed: what is committed after this is on the stream.
async fn ready(s: &Server, key: &str, query: &str, last: Option<&str>) -> Tail {
    let (status, mut t) = Tail::open(s, key, query, last).await;
    assert_eq!(status, 200);
    let first = t.message().await.expect("the stream's first message");
    assert!(first.event.is_none() && first.data.is_empty(), "{first:?}");
    t
}

async fn ingest(http: &Http, s: &Server, key: &str, ty: &str, n: usize) -> String {
    let r = http.call(s, key, "POST", "/v1/events", &event(ty, n)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["event_id"].as_str().expect("id").to_owned()
}

#[test]
fn a_tail_streams_its_tenants_events_filtered_and_isolated() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let other = tenant_key(&http, &s, "other", &["ingest", "consume"], None).await;
        let mut all = ready(&s, &key, "", None).await;
        let mut only_x = ready(&s, &key, "?event_type=order.x", None).await;
        let mut theirs = ready(&s, &other, "", None).await;
        ingest(&http, &s, &other, "order.x", 0).await;
        let x = ingest(&http, &s, &key, "order.x", 1).await;
        let y = ingest(&http, &s, &key, "order.y", 2).await;
        let x2 = ingest(&http, &s, &key, "order.x", 3).await;
        for expected in [&x, &y, &x2] {
            let m = all.event().await.expect("an event");
            assert_eq!(m.id.as_deref(), Some(expected.as_str()));
            let data: serde_json::Value = serde_json::from_str(&m.data).expect("JSON data");
            assert_eq!(data["event_id"], expected.as_str());
            assert_eq!(m.event.as_deref(), data["event_type"].as_str());
            assert!(data["payload"]["n"].is_u64() && data["received_at"].is_string());
        }
        for expected in [&x, &x2] {
            assert_eq!(
                only_x.event().await.expect("an event").id.as_deref(),
                Some(expected.as_str())
            );
        }
        // The other tenant's tail saw its own event only, never this tenant's.
        let m = theirs.event().await.expect("an event");
        let data: serde_json::Value = serde_json::from_str(&m.data).expect("JSON");
        assert_eq!(data["payload"]["n"], 0);
        let mine = ingest(&http, &s, &other, "order.x", 9).await;
        assert_eq!(
            theirs.event().await.expect("an event").id.as_deref(),
            Some(mine.as_str())
        );
        // Counted while open; refusals.
        let m = http.send("GET", &s.url("/metrics"), &[], "").await;
        assert!(String::from_utf8_lossy(&m.body).contains("sluice_tail_streams_open 3"));
        let (status, _) = Tail::open(&s, &key, "?event_type=bad%20type", None).await;
        assert_eq!(status, 422);
        let (status, _) = Tail::open(&s, &key, "", Some("evt_not-an-id")).await;
        assert_eq!(status, 400);
        let (status, _) = Tail::open(&s, "sk_wrong", "", None).await;
        assert_eq!(status, 401);
        drop((all, only_x, theirs));
        // Closed streams stop counting (their tasks end on the closed connection).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = http.send("GET", &s.url("/metrics"), &[], "").await;
            if String::from_utf8_lossy(&m.body).contains("sluice_tail_streams_open 0") {
                break;
            }
            assert!(Instant::now() < deadline, "streams still counted as open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn last_event_id_resumes_from_the_log_and_misses_nothing() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(ingest(&http, &s, &key, "job", n).await);
        }
        // Reconnect as after a drop that saw ids[1]: ids[2..] come from the log, then live.
        let mut t = ready(&s, &key, "", Some(&ids[1])).await;
        for expected in &ids[2..] {
            assert_eq!(
                t.event().await.expect("event").id.as_deref(),
                Some(expected.as_str())
            );
        }
        let live = ingest(&http, &s, &key, "job", 5).await;
        assert_eq!(
            t.event().await.expect("event").id.as_deref(),
            Some(live.as_str())
        );
    });
}

#[test]
fn a_client_that_stops_reading_gets_lagged_and_ingest_goes_on() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    runtime().block_on(async {
        let http = Http::h1();
        let mut stalled = ready(&s, &key, "", None).await;
        // ~40 MB of events, more than the socket buffers and the stream's 256 messages
        // hold: the stalled client reads nothing meanwhile, and every ingest succeeds.
        let pad = "x".repeat(100_000);
        let started = Instant::now();
        for i in 0..400 {
            let body = format!(r#"{{"event_type":"big","payload":{{"i":{i},"pad":"{pad}"}}}}"#);
            let r = http.call(&s, &key, "POST", "/v1/events", &body).await;
            assert_eq!(r.status, 201);
        }
        assert!(started.elapsed() < Duration::from_secs(60));
        // Now read: some events, then `lagged`, then the end of the stream.
        let mut events = 0;
        let mut lagged = false;
        while let Some(m) = stalled.message().await {
            match m.event.as_deref() {
                Some("lagged") => lagged = true,
                Some(_) => {
                    assert!(!lagged, "nothing follows lagged");
                    events += 1;
                }
                None => {}
            }
        }
        assert!(lagged, "the stalled client was told it lagged");
        assert!(
            events < 400,
            "it was cut off, not sent everything ({events})"
        );
    });
}
