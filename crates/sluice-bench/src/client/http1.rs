//! A lean HTTP/1.1 keep-alive client: one request in flight, pre-encoded bytes out,
//! `httparse` for the answer. Handles `Content-Length`, `chunked` and
//! read-until-close bodies, and skips `1xx` interim answers.

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Answer, Outgoing, Stream, Target};

/// Headers an answer may have before it is refused as malformed.
const MAX_HEADERS: usize = 64;

/// One open connection, with buffers reused across requests.
pub(crate) struct Connection {
    stream: Stream,
    out: Vec<u8>,
    input: BytesMut,
}

/// How the body of a parsed head is delimited.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Connection {
    pub async fn open(target: &Target) -> io::Result<Connection> {
        let stream = Stream::connect(&target.authority, target.tls.as_deref()).await?;
        Ok(Connection {
            stream,
            out: Vec::with_capacity(1024),
            input: BytesMut::with_capacity(16 * 1024),
        })
    }

    /// Sends `request` and reads its answer. The flag says whether the connection can
    /// carry another request (false after `Connection: close` or a body read to EOF).
    pub async fn exchange(
        &mut self,
        target: &Target,
        request: &Outgoing<'_>,
        keep_body: bool,
    ) -> io::Result<(Answer, bool)> {
        encode(&mut self.out, target, request);
        self.stream.write_all(&self.out).await?;
        loop {
            if let Some(head) = parse_head(&self.input)? {
                if (100..200).contains(&head.status) {
                    self.input.advance(head.len);
                    continue;
                }
                let no_body = request.method == "HEAD" || matches!(head.status, 204 | 304);
                let framing = if no_body {
                    Framing::Length(0)
                } else {
                    head.framing
                };
                let reusable = !head.close && !matches!(framing, Framing::UntilClose);
                let body = self.read_body(head.len, framing, keep_body).await?;
                return Ok((
                    Answer {
                        status: head.status,
                        body,
                    },
                    reusable,
                ));
            }
            self.fill().await?;
        }
    }

    /// Reads more bytes; EOF here means the answer was cut off.
    async fn fill(&mut self) -> io::Result<()> {
        if self.read_more().await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Reads what has arrived into the input buffer; 0 at EOF.
    async fn read_more(&mut self) -> io::Result<usize> {
        if self.input.capacity() - self.input.len() < 4096 {
            self.input.reserve(16 * 1024);
        }
        self.stream.read_buf(&mut self.input).await
    }

    /// Consumes the head (`head_len` bytes) and the body from the input buffer.
    async fn read_body(
        &mut self,
        head_len: usize,
        framing: Framing,
        keep_body: bool,
    ) -> io::Result<Bytes> {
        match framing {
            Framing::Length(n) => {
                while self.input.len() < head_len + n {
                    self.fill().await?;
                }
                self.input.advance(head_len);
                let body = self.input.split_to(n);
                Ok(if keep_body {
                    body.freeze()
                } else {
                    Bytes::new()
                })
            }
            Framing::Chunked => loop {
                match dechunk(&self.input[head_len..], keep_body)? {
                    Some((consumed, body)) => {
                        self.input.advance(head_len + consumed);
                        return Ok(body);
                    }
                    None => self.fill().await?,
                }
            },
            Framing::UntilClose => {
                while self.read_more().await? > 0 {}
                self.input.advance(head_len);
                Ok(self.input.split().freeze())
            }
        }
    }
}

/// Writes the request line, headers and body into `out` (cleared first).
fn encode(out: &mut Vec<u8>, target: &Target, request: &Outgoing<'_>) {
    out.clear();
    for part in [
        request.method,
        " ",
        request.path,
        " HTTP/1.1\r\nhost: ",
        &target.authority,
        "\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    if let Some(auth) = &target.authorization {
        header(out, "authorization", auth);
    }
    if let Some(key) = request.idempotency_key {
        header(out, "idempotency-key", key);
    }
    if !request.body.is_empty() {
        header(out, "content-type", "application/json");
        let mut digits = itoa::Buffer::new();
        header(out, "content-length", digits.format(request.body.len()));
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(request.body);
}

fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The parts of an answer's head that matter here.
struct Head {
    status: u16,
    len: usize,
    framing: Framing,
    close: bool,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Parses a complete head at the start of `input`, or says more bytes are needed.
fn parse_head(input: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(invalid("malformed HTTP/1.1 answer")),
    };
    let status = response.code.unwrap_or(0);
    let mut framing = Framing::UntilClose;
    let mut close = response.version == Some(0);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| invalid("bad content-length"))?;
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.eq_ignore_ascii_case(b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok(Some(Head {
        status,
        len,
        framing,
        close,
    }))
}

/// Decodes a chunked body at the start of `input`: the bytes it spans and its content
/// (empty unless `keep`), or `None` if it is not all there yet.
fn dechunk(input: &[u8], keep: bool) -> io::Result<Option<(usize, Bytes)>> {
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&input[pos..]) {
            Ok(httparse::Status::Complete(c)) => c,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(invalid("bad chunk size")),
        };
        pos += size_len;
        let size = usize::try_from(size).map_err(|_| invalid("chunk too large"))?;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            let rest = &input[pos..];
            if rest.starts_with(b"\r\n") {
                return Ok(Some((pos + 2, Bytes::from(body))));
            }
            return match rest.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(end) => Ok(Some((pos + end + 4, Bytes::from(body)))),
                None => Ok(None),
            };
        }
        if input.len() < pos + size + 2 {
            return Ok(None);
        }
        if keep {
            body.extend_from_slice(&input[pos..pos + size]);
        }
        pos += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_framings() {
        let Some(head) =
            parse_head(b"HTTP/1.1 201 Created\r\ncontent-length: 12\r\n\r\n{}").expect("valid")
        else {
            panic!("complete head")
        };
        assert_eq!(head.status, 201);
        assert!(matches!(head.framing, Framing::Length(12)));
        assert!(!head.close);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le")
            .expect("valid")
            .is_none());
        let Some(head) =
            parse_head(b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n")
                .expect("valid")
        else {
            panic!("complete head")
        };
        assert!(head.close);
        assert!(matches!(head.framing, Framing::UntilClose));
        assert!(parse_head(b"NOT HTTP\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies() {
        let wire = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT";
        let (len, body) = dechunk(wire, true).expect("valid").expect("complete");
        assert_eq!(&body[..], b"hello world");
        assert_eq!(&wire[len..], b"NEXT");
        assert!(dechunk(&wire[..12], true).expect("valid").is_none());
        let with_trailer = b"0\r\nx-trailer: 1\r\n\r\n";
        let (len, _) = dechunk(with_trailer, false)
            .expect("valid")
            .expect("complete");
        assert_eq!(len, with_trailer.len());
    }

    #[test]
    fn requests_are_encoded_with_their_headers() {
        let target = Target {
            authority: "127.0.0.1:9".into(),
            authorization: Some("Bearer sk_x".into()),
            timeout: std::time::Duration::from_secs(1),
            tls: None,
            scheme: "http",
        };
        let mut out = Vec::new();
        let request = Outgoing {
            method: "POST",
            path: "/v1/events",
            idempotency_key: Some("k1"),
            body: b"{}",
        };
        encode(&mut out, &target, &request);
        assert_eq!(
            std::str::from_utf8(&out).expect("ascii"),
            "POST /v1/events HTTP/1.1\r\nhost: 127.0.0.1:9\r\nauthorization: Bearer sk_x\r\n\
             idempotency-key: k1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
    }
}
