//! The network edge over raw TCP, where an HTTP client library would hide what matters:
//! a slow sender is cut off, an idle keep-alive connection is closed, a connection over
//! the limit is answered 503 and closed cleanly rather than reset, a body refused before
//! it was read does not spoil the connection, a body in pieces is read whole, and a
//! body that stalls gets a 408.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;

/// Upper bound on any wait below. A close that does not come within it fails the test;
/// nothing here sleeps to synchronise.
const PATIENCE: Duration = Duration::from_secs(20);

fn connect(s: &Server) -> TcpStream {
    let stream = TcpStream::connect(s.addr).expect("connect");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
    stream
}

/// Reads until the server closes the connection, and returns what it sent. Panics if the
/// server neither closes nor resets within `PATIENCE`.
fn read_until_closed(stream: &mut TcpStream) -> Result<Vec<u8>, std::io::Error> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server kept the connection open for {PATIENCE:?}")
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads one response with a Content-Length body; returns its head (lowercased) and body.
fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).expect("read an answer");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("a content-length");
    while got.len() < head_end + length {
        let n = stream.read(&mut buf).expect("read the body");
        assert!(n > 0, "closed inside the body");
        got.extend_from_slice(&buf[..n]);
    }
    (head, got[head_end..head_end + length].to_vec())
}

/// One complete keep-alive request for `/v1/health`; returns the answer's head
/// (lowercased), after checking its body.
fn health(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /v1/health HTTP/1.1\r\nhost: sluice\r\n\r\n")
        .expect("write");
    let (head, body) = read_response(stream);
    assert_eq!(body, b"{\"status\":\"ok\"}", "{head}");
    head
}

#[test]
fn a_request_head_sent_too_slowly_is_cut_off() {
    let timeout = Duration::from_millis(400);
    let s = Server::start(&["--header-read-timeout", "400ms"]);
    let mut stream = connect(&s);
    let started = Instant::now();
    stream
        .write_all(b"POST /v1/events HTTP/1.1\r\nhost: sluice\r\n")
        .expect("write half a head");
    // The connection ends (closed, or reset by a server that drops unread bytes); either
    // way not before the timeout and well within the patience.
    let _ = read_until_closed(&mut stream);
    let waited = started.elapsed();
    assert!(
        waited >= timeout,
        "cut off after {waited:?}, before the timeout"
    );
    // And the server is still serving.
    assert!(health(&mut connect(&s)).starts_with("http/1.1 200"));
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let timeout = Duration::from_millis(400);
    let s = Server::start(&["--header-read-timeout", "400ms"]);
    let mut stream = connect(&s);
    assert!(health(&mut stream).starts_with("http/1.1 200"));
    let idle_since = Instant::now();
    let rest = read_until_closed(&mut stream).expect("an idle connection is closed, not reset");
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    let idle = idle_since.elapsed();
    assert!(
        idle >= timeout,
        "closed after {idle:?} idle, before the timeout"
    );
}

#[test]
fn a_connection_over_the_limit_gets_503_and_a_clean_close() {
    let s = Server::start(&["--max-connections", "2"]);
    // Two connections, each proven accepted and served by a complete exchange.
    let mut held = [connect(&s), connect(&s)];
    for stream in &mut held {
        assert!(health(stream).starts_with("http/1.1 200"));
    }
    let mut third = connect(&s);
    third
        .write_all(b"GET /v1/health HTTP/1.1\r\nhost: sluice\r\n\r\n")
        .expect("write");
    let answer = read_until_closed(&mut third).expect("closed cleanly, not reset");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1"), "{answer}");
    assert!(
        lower.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(
        answer.contains("\"code\":\"too_many_connections\""),
        "{answer}"
    );
    // The held connections are still served, and once one closes a new one is accepted.
    assert!(health(&mut held[0]).starts_with("http/1.1 200"));
    drop(held);
    let deadline = Instant::now() + PATIENCE;
    loop {
        // The permit comes back when the server notices the close: retry until it has.
        let mut fresh = connect(&s);
        fresh
            .write_all(b"GET /v1/health HTTP/1.1\r\nhost: sluice\r\n\r\n")
            .expect("write");
        let mut buf = [0u8; 12];
        fresh.read_exact(&mut buf).expect("an answer");
        if &buf == b"HTTP/1.1 200" {
            break;
        }
        assert_eq!(&buf, b"HTTP/1.1 503", "neither served nor refused");
        assert!(Instant::now() < deadline, "a freed slot was never reused");
    }
}

#[test]
fn a_body_refused_before_it_is_read_does_not_spoil_the_connection() {
    let s = Server::start(&[]);
    let mut stream = connect(&s);
    stream
        .set_write_timeout(Some(PATIENCE))
        .expect("write timeout");
    // Refused on its key, before its 2 MiB body is read. Unread, that body used to make
    // hyper close the connection after the answer, unannounced, so the client's next
    // request on it failed.
    let body = vec![b' '; 2 << 20];
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: sluice\r\nauthorization: Bearer sk_wrong\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write the head");
    stream.write_all(&body).expect("the server reads the body");
    let (head, answer) = read_response(&mut stream);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert!(String::from_utf8_lossy(&answer).contains("\"unauthorized\""));
    // The same connection carries the next request.
    assert!(health(&mut stream).starts_with("http/1.1 200"));

    // A body declared past the drain bound is not read: the answer says so and the
    // connection closes cleanly.
    let mut stream = connect(&s);
    stream
        .write_all(
            b"POST /v1/events HTTP/1.1\r\nhost: sluice\r\nauthorization: Bearer sk_wrong\r\n\
              content-type: application/json\r\ncontent-length: 17000000\r\n\r\n",
        )
        .expect("write the head");
    let (head, _) = read_response(&mut stream);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        read_until_closed(&mut stream).is_ok(),
        "closed with a reset"
    );
}

#[test]
fn a_body_in_pieces_is_read_whole_and_the_connection_carries_the_next_request() {
    let s = Server::start(&[]);
    let key = s.key().to_owned();
    let body =
        br#"{"event_type":"pieces.arrived","payload":{"n":1,"text":"one body, three writes"}}"#;
    let (a, rest) = body.split_at(20);
    let (b, c) = rest.split_at(30);
    let mut stream = connect(&s);
    stream.set_nodelay(true).expect("nodelay");
    for chunked in [false, true] {
        let framing = if chunked {
            "transfer-encoding: chunked".to_owned()
        } else {
            format!("content-length: {}", body.len())
        };
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nhost: sluice\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\n{framing}\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).expect("write the head");
        for piece in [a, b, c] {
            // The pauses are the stimulus (separate reads on the server), not a wait for
            // it: coalesced pieces would pass too, testing less.
            std::thread::sleep(Duration::from_millis(30));
            if chunked {
                let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                framed.extend_from_slice(piece);
                framed.extend_from_slice(b"\r\n");
                stream.write_all(&framed).expect("write a chunk");
            } else {
                stream.write_all(piece).expect("write a piece");
            }
        }
        if chunked {
            stream.write_all(b"0\r\n\r\n").expect("end the chunks");
        }
        let (answer, receipt) = read_response(&mut stream);
        assert!(
            answer.starts_with("http/1.1 201"),
            "chunked {chunked}: {answer}"
        );
        assert!(!answer.contains("connection: close"), "{answer}");
        let receipt = String::from_utf8_lossy(&receipt);
        let id = receipt
            .split('"')
            .nth(3)
            .filter(|id| id.starts_with("evt_"))
            .unwrap_or_else(|| panic!("no event id in {receipt}"));
        // The event is the whole body, read back on the same connection.
        stream
            .write_all(
                format!(
                    "GET /v1/events/{id} HTTP/1.1\r\nhost: sluice\r\nauthorization: Bearer {key}\r\n\r\n"
                )
                .as_bytes(),
            )
            .expect("write");
        let (answer, event) = read_response(&mut stream);
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        let event = String::from_utf8_lossy(&event);
        assert!(event.contains("\"one body, three writes\""), "{event}");
    }
}

#[test]
fn a_request_body_that_stalls_gets_408_and_a_close() {
    let timeout = Duration::from_millis(400);
    let s = Server::start(&["--body-read-timeout", "400ms"]);
    let key = s.key().to_owned();
    for (what, auth) in [
        // The handler is reading the body: 408.
        ("read by the handler", format!("Bearer {key}")),
        // Refused first (401), then drained: the drain gives up the same way.
        ("drained after a refusal", "Bearer sk_wrong".to_owned()),
    ] {
        let mut stream = connect(&s);
        let started = Instant::now();
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nhost: sluice\r\nauthorization: {auth}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"event_type\":"
        );
        stream
            .write_all(head.as_bytes())
            .expect("write part of a body");
        let (answer, body) = read_response(&mut stream);
        let waited = started.elapsed();
        assert!(waited >= timeout, "{what}: answered after {waited:?}");
        assert!(answer.contains("connection: close"), "{what}: {answer}");
        let body = String::from_utf8_lossy(&body);
        if what == "read by the handler" {
            assert!(answer.starts_with("http/1.1 408"), "{what}: {answer}");
            assert!(body.contains("\"request_timeout\""), "{what}: {body}");
        } else {
            assert!(answer.starts_with("http/1.1 401"), "{what}: {answer}");
        }
        // Then the connection ends (a reset is allowed: the client still owes bytes).
        let _ = read_until_closed(&mut stream);
    }
    assert!(health(&mut connect(&s)).starts_with("http/1.1 200"));
}
