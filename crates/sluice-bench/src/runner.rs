//! Running the load: threads, connections, schedules.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::config::{BenchConfig, Workload};
use crate::stats::{Report, Stats};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The URL is not `http://host:port/...`.
    #[error("the URL must look like http://host:port/path (got {0})")]
    BadUrl(String),
    /// Nonsense settings.
    #[error("{0}")]
    BadConfig(String),
    /// A thread or runtime could not be created.
    #[error("cannot start the load threads: {0}")]
    Start(std::io::Error),
}

/// Runs the load described by `config` and summarises it. `progress` is incremented on
/// every answer, for a live progress line.
pub fn run_with_progress(
    config: &BenchConfig,
    progress: Arc<AtomicU64>,
) -> Result<Report, BenchError> {
    if config.url.scheme_str() != Some("http") {
        return Err(BenchError::BadUrl(config.url.to_string()));
    }
    let authority = config
        .url
        .authority()
        .ok_or_else(|| BenchError::BadUrl(config.url.to_string()))?
        .to_string();
    if config.connections == 0 || config.threads == 0 {
        return Err(BenchError::BadConfig(
            "connections and threads must be at least 1".into(),
        ));
    }
    if config.rate == Some(0) {
        return Err(BenchError::BadConfig(
            "--rate must be at least 1 request per second".into(),
        ));
    }
    let threads = config.threads.min(config.connections);
    let body = config.body();
    let start = Instant::now() + Duration::from_millis(50);
    let deadline = start + config.duration;
    let mut handles = Vec::with_capacity(threads);
    for t in 0..threads {
        // Connections are dealt round-robin: thread t gets t, t + threads, ...
        let ids: Vec<usize> = (t..config.connections).step_by(threads).collect();
        let (config, body, authority, progress) = (
            config.clone(),
            body.clone(),
            authority.clone(),
            progress.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || -> std::io::Result<Stats> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                Ok(rt.block_on(thread_main(
                    config, body, authority, ids, start, deadline, progress,
                )))
            })
            .map_err(BenchError::Start)?;
        handles.push(handle);
    }
    let mut stats = Stats::default();
    for h in handles {
        match h.join() {
            Ok(Ok(s)) => stats.merge(&s),
            Ok(Err(e)) => return Err(BenchError::Start(e)),
            Err(_) => {
                return Err(BenchError::Start(std::io::Error::other(
                    "a load thread panicked",
                )))
            }
        }
    }
    let elapsed = Instant::now()
        .saturating_duration_since(start)
        .min(config.duration + config.timeout);
    Ok(Report::new(
        &stats,
        elapsed,
        config.workload.as_str(),
        config.connections,
        config.rate,
        config.events_per_request(),
    ))
}

/// [`run_with_progress`] without a progress counter.
pub fn run(config: &BenchConfig) -> Result<Report, BenchError> {
    run_with_progress(config, Arc::default())
}

async fn thread_main(
    config: BenchConfig,
    body: Bytes,
    authority: String,
    ids: Vec<usize>,
    start: Instant,
    deadline: Instant,
    progress: Arc<AtomicU64>,
) -> Stats {
    let config = Arc::new(config);
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let (config, body, authority, progress) = (
                config.clone(),
                body.clone(),
                authority.clone(),
                progress.clone(),
            );
            tokio::spawn(connection(
                config, body, authority, id, start, deadline, progress,
            ))
        })
        .collect();
    let mut stats = Stats::default();
    for t in tasks {
        if let Ok(s) = t.await {
            stats.merge(&s);
        }
    }
    stats
}

/// One keep-alive connection's loop. Closed loop: send when the last answer arrived.
/// Open loop: request k of this connection is due at `start + offset + k * interval`;
/// its latency counts from that moment, however late it actually went out.
async fn connection(
    config: Arc<BenchConfig>,
    body: Bytes,
    authority: String,
    id: usize,
    start: Instant,
    deadline: Instant,
    progress: Arc<AtomicU64>,
) -> Stats {
    let mut stats = Stats::default();
    let interval = config
        .rate
        .map(|rate| Duration::from_secs_f64(config.connections as f64 / rate as f64));
    // Spread the connections' schedules evenly over one interval.
    let offset = interval.map_or(Duration::ZERO, |i| {
        i.mul_f64(id as f64 / config.connections as f64)
    });
    let mut sender = None;
    let mut k: u32 = 0;
    loop {
        let intended = match interval {
            Some(i) => start + offset + i * k,
            None => Instant::now().max(start),
        };
        if intended >= deadline {
            break;
        }
        tokio::time::sleep_until(intended.into()).await;
        k += 1;
        if sender.is_none() {
            match connect(&authority).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    stats.connect_errors += 1;
                    // Back off for the rest of this slot rather than spin on refusals.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        let request = build_request(&config, &authority, body.clone());
        match tokio::time::timeout(config.timeout, send(s, request)).await {
            Ok(Ok(status)) => {
                stats.answered(status, intended.elapsed());
                progress.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) => {
                stats.io_errors += 1;
                sender = None;
            }
            Err(_) => {
                stats.timeouts += 1;
                sender = None;
            }
        }
    }
    stats
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(authority: &str) -> std::io::Result<Sender> {
    let tcp = tokio::net::TcpStream::connect(authority).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(
    sender: &mut Sender,
    request: http::Request<Full<Bytes>>,
) -> Result<u16, hyper::Error> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    // Read the whole answer: latency ends when the body is in.
    response.into_body().collect().await?;
    Ok(status)
}

fn build_request(config: &BenchConfig, authority: &str, body: Bytes) -> http::Request<Full<Bytes>> {
    let method = if config.workload == Workload::Get {
        "GET"
    } else {
        "POST"
    };
    let path = config.url.path_and_query().map_or("/", |p| p.as_str());
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority);
    if let Some(key) = &config.api_key {
        b = b.header("authorization", format!("Bearer {key}"));
    }
    if !body.is_empty() {
        b = b.header("content-type", "application/json");
    }
    // Method, path and header values come from validated config, so this cannot fail;
    // an empty GET is the harmless fallback.
    b.body(Full::new(body))
        .unwrap_or_else(|_| http::Request::new(Full::new(Bytes::new())))
}
