//! The connector under the webhook client: it resolves the endpoint's name and dials
//! only addresses that are allowed (see [`crate::target`]). The check is on the address
//! actually dialled, after resolution, so a name that resolves to a private address
//! (DNS rebinding, or a hosts entry) is refused at connect time, whatever it resolved
//! to when the subscription was created.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::target::{forbidden, literal_address};

/// Why a connection was not made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Every address the host resolved to is forbidden.
    #[error("refused to connect to {host}: it resolves to {reason} ({addr})")]
    Refused {
        /// The host.
        host: String,
        /// The first forbidden address.
        addr: std::net::IpAddr,
        /// What kind of address it is.
        reason: &'static str,
    },
    /// The URL has no host.
    #[error("the target URL has no host")]
    NoHost,
    /// The name did not resolve.
    #[error("could not resolve {host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// No address answered.
    #[error("could not connect to {host}: {source}")]
    Connect {
        /// The host.
        host: String,
        /// The last connect error.
        source: std::io::Error,
    },
    /// Connecting took longer than the connect timeout.
    #[error("connecting to {host} timed out")]
    Timeout {
        /// The host.
        host: String,
    },
}

/// Addresses tried per connection, at most (a name with more gets the first ones).
const ADDRESSES_TRIED_MAX: usize = 8;

/// The SSRF-guarded TCP connector; see the module docs.
#[derive(Debug, Clone)]
pub struct GuardedConnector {
    allow_private: bool,
    connect_timeout: Duration,
}

impl GuardedConnector {
    /// A connector that refuses forbidden addresses unless `allow_private`.
    pub fn new(allow_private: bool, connect_timeout: Duration) -> GuardedConnector {
        GuardedConnector {
            allow_private,
            connect_timeout,
        }
    }

    async fn connect(self, uri: http::Uri) -> Result<TokioIo<TcpStream>, ConnectError> {
        let raw = uri.host().ok_or(ConnectError::NoHost)?;
        let host = raw
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(raw)
            .to_owned();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addrs: Vec<SocketAddr> = match literal_address(&host) {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|source| ConnectError::Resolve {
                    host: host.clone(),
                    source,
                })?
                .collect(),
        };
        let mut refused = None;
        let mut allowed = Vec::new();
        for a in addrs {
            match forbidden(a.ip()) {
                Some(reason) if !self.allow_private => {
                    refused.get_or_insert((a.ip(), reason));
                }
                _ => allowed.push(a),
            }
        }
        if allowed.is_empty() {
            if let Some((addr, reason)) = refused {
                return Err(ConnectError::Refused { host, addr, reason });
            }
            return Err(ConnectError::Resolve {
                host,
                source: std::io::Error::other("no addresses"),
            });
        }
        let mut last = None;
        for addr in allowed.into_iter().take(ADDRESSES_TRIED_MAX) {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Webhook requests are small: sent at once, not held for more data.
                    let _ = stream.set_nodelay(true);
                    return Ok(TokioIo::new(stream));
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => return Err(ConnectError::Timeout { host }),
            }
        }
        Err(ConnectError::Connect {
            host,
            source: last.unwrap_or_else(|| std::io::Error::other("no address answered")),
        })
    }
}

impl tower_service::Service<http::Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        // One boxed future per new connection, not per request: connections are pooled.
        Box::pin(self.clone().connect(uri))
    }
}
