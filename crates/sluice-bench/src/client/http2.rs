//! HTTP/2 with prior knowledge (h2c), on hyper: several workers share one connection,
//! each with its own stream in flight.

use std::cell::{Cell, RefCell};
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

use tokio::time::Sleep;

use super::{within, Answer, Failure, Outgoing, Target};

type Sender = SendRequest<Full<Bytes>>;

/// One HTTP/2 connection slot, shared by the workers of one connection (they all run
/// on one thread). Reconnects when the connection is found closed.
#[derive(Default)]
pub(crate) struct Shared {
    /// The open connection, tagged with a generation so that a worker only drops the
    /// connection it saw fail, not a newer one.
    current: RefCell<Option<(u64, Sender)>>,
    generations: Cell<u64>,
    /// Held while connecting, so that waiting workers share one new connection.
    connecting: tokio::sync::Mutex<()>,
}

impl Shared {
    pub async fn exchange(
        &self,
        target: &Target,
        request: &Outgoing<'_>,
        keep_body: bool,
        mut timer: Pin<&mut Sleep>,
    ) -> Result<Answer, Failure> {
        let (generation, mut sender) = self.sender(target, timer.as_mut()).await?;
        let request = build(target, request).map_err(|_| Failure::Io)?;
        match within(timer, send(&mut sender, request, keep_body)).await {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(_)) => {
                // A stream error leaves the connection usable; a closed one is dropped.
                if sender.is_closed() {
                    self.forget(generation);
                }
                Err(Failure::Io)
            }
            // Dropping the timed-out stream resets only that stream.
            None => Err(Failure::Timeout),
        }
    }

    fn open(&self) -> Option<(u64, Sender)> {
        match &*self.current.borrow() {
            Some((g, s)) if !s.is_closed() => Some((*g, s.clone())),
            _ => None,
        }
    }

    async fn sender(
        &self,
        target: &Target,
        timer: Pin<&mut Sleep>,
    ) -> Result<(u64, Sender), Failure> {
        if let Some(open) = self.open() {
            return Ok(open);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(open) = self.open() {
            return Ok(open);
        }
        match within(timer, connect(target)).await {
            Some(Ok(sender)) => {
                let generation = self.generations.get() + 1;
                self.generations.set(generation);
                *self.current.borrow_mut() = Some((generation, sender.clone()));
                Ok((generation, sender))
            }
            Some(Err(_)) | None => Err(Failure::Connect),
        }
    }

    fn forget(&self, generation: u64) {
        let mut current = self.current.borrow_mut();
        if matches!(&*current, Some((g, _)) if *g == generation) {
            *current = None;
        }
    }
}

async fn connect(target: &Target) -> std::io::Result<Sender> {
    let stream = super::Stream::connect(&target.authority, target.tls.as_deref()).await?;
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

fn build(target: &Target, request: &Outgoing<'_>) -> http::Result<http::Request<Full<Bytes>>> {
    let mut builder = http::Request::builder().method(request.method).uri(format!(
        "{}://{}{}",
        target.scheme, target.authority, request.path
    ));
    if let Some(auth) = &target.authorization {
        builder = builder.header("authorization", auth);
    }
    if let Some(key) = request.idempotency_key {
        builder = builder.header("idempotency-key", key);
    }
    if !request.body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    builder.body(Full::new(Bytes::copy_from_slice(request.body)))
}

async fn send(
    sender: &mut Sender,
    request: http::Request<Full<Bytes>>,
    keep_body: bool,
) -> Result<Answer, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    // Read the whole answer: latency ends when the body is in.
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        body: if keep_body { body } else { Bytes::new() },
    })
}
