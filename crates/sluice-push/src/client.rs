//! The webhook client: hyper-util's pooled client over TLS (rustls, with ALPN: HTTP/2
//! where the endpoint offers it, HTTP/1.1 keep-alive otherwise) over the guarded
//! connector. Redirects are never followed: a 3xx is an answer like any other, and a
//! failure.

use std::error::Error as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::connector::GuardedConnector;

/// Response bytes read (and discarded) at most, so a kept-alive connection can carry
/// the next request; a longer answer closes its connection instead.
const RESPONSE_BYTES_MAX: usize = 64 << 10;

/// Idle connections kept per endpoint: at least a subscription's largest
/// `max_in_flight`, or every burst of deliveries above the pool's size closes the
/// connections it opened and the next burst opens them again (measured: 109,000 sockets
/// in TIME_WAIT within seconds at a pool of 32 and 64 in flight).
const IDLE_PER_ENDPOINT_MAX: usize = 1024;

/// How an attempt's request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The endpoint's status, if it answered.
    pub status: Option<u16>,
    /// Its `Retry-After`, if any (the raw value).
    pub retry_after: Option<String>,
    /// What went wrong below HTTP (refused, timed out, reset), if something did.
    pub error: Option<String>,
    /// From sending to the answer (or the failure).
    pub latency: Duration,
}

impl Answer {
    /// A 2xx.
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The pooled client; cheap to clone.
#[derive(Clone)]
pub struct WebhookClient {
    client: Client<HttpsConnector<GuardedConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl WebhookClient {
    /// A client that refuses private targets unless `allow_private`, and gives each
    /// attempt `timeout` (connect, send and answer).
    pub fn new(allow_private: bool, timeout: Duration) -> WebhookClient {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            // A certificate the store cannot take is left out; the rest still verify.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            tracing::warn!("no CA certificates found on this system: https webhook targets will fail to verify");
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let tls = match tls {
            Ok(config) => config,
            // The ring provider supports the default versions; this cannot happen.
            Err(e) => unreachable!("rustls's defaults with ring: {e}"),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(GuardedConnector::new(allow_private, timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(IDLE_PER_ENDPOINT_MAX)
            .build(connector);
        WebhookClient { client, timeout }
    }

    /// Sends one request and reads its answer, within the timeout.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, async {
            let response = self.client.request(request).await?;
            let status = response.status().as_u16();
            let retry_after = retry_after(response.headers());
            // Read the answer (bounded) so the connection goes back to the pool.
            let _ = Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
                .collect()
                .await;
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after))
        })
        .await;
        let latency = started.elapsed();
        match outcome {
            Ok(Ok((status, retry_after))) => Answer {
                status: Some(status),
                retry_after,
                error: None,
                latency,
            },
            Ok(Err(e)) => Answer {
                status: None,
                retry_after: None,
                error: Some(describe(&e)),
                latency,
            },
            Err(_) => Answer {
                status: None,
                retry_after: None,
                error: Some(format!(
                    "no answer within the webhook timeout ({} ms)",
                    self.timeout.as_millis()
                )),
                latency,
            },
        }
    }
}

fn retry_after(headers: &HeaderMap) -> Option<String> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The error and its causes, one line: hyper-util's own message ("client error
/// (Connect)") says little without the chain.
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
