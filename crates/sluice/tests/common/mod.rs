//! Drives the real `sluice` binary over real HTTP on 127.0.0.1.
//!
//! The server is started on port 0; the harness learns the port and the first API key
//! from what the binary prints (the start-up log line and the key line), so there is no
//! sleeping and no guessing.

#![allow(dead_code)]

pub mod receiver;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A running server and what it printed.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub key: Option<String>,
    pub dir: PathBuf,
    pub log: Arc<(Mutex<Vec<String>>, Condvar)>,
    _tempdir: Option<tempfile::TempDir>,
}

/// What a request came back with.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json with the given status and code, and returns it.
    pub fn problem(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        let p = self.json();
        assert_eq!(p["code"], code, "{p}");
        assert_eq!(p["status"], status);
        assert!(
            p["title"].is_string() && p["detail"].is_string() && p["type"].is_string(),
            "{p}"
        );
        assert_eq!(p["request_id"].as_str(), self.header("x-request-id"), "{p}");
        p
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

/// Spawns the command `build` makes so that it dies with the test process, even when
/// the test binary never drops its handle (a fixture in a `static`) or is killed.
///
/// `PR_SET_PDEATHSIG` fires when the thread that forked exits, not the process, and
/// every test runs on its own thread; so children are forked by one thread that lives
/// as long as the process, and get `SIGKILL` when it ends.
pub fn spawn_tied(build: impl FnOnce() -> Command + Send + 'static) -> std::io::Result<Child> {
    type Build = Box<dyn FnOnce() -> Command + Send>;
    type Request = (Build, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Request>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Request>();
        std::thread::spawn(move || {
            // The sender lives in the static, so this loop ends only with the process.
            for (build, reply) in rx {
                use std::os::unix::process::CommandExt;
                let mut cmd = build();
                // SAFETY: prctl(2) is async-signal-safe, as pre_exec requires, and the
                // closure allocates nothing between fork and exec.
                unsafe {
                    cmd.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let gone = || std::io::Error::other("the spawner thread is gone");
    let (tx, rx) = std::sync::mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((Box::new(build), tx))
        .map_err(|_| gone())?;
    rx.recv().map_err(|_| gone())?
}

/// Runs a command that must exit by itself; kills it and fails the test if it does not
/// within `timeout` (a hung child must never hang the suite).
pub fn run_to_exit(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            panic!("{cmd:?} did not exit within {timeout:?}");
        }
    }
}

/// The flags that put a node on the JetStream backend of `servers` (their client URLs
/// and monitoring addresses), as a user writes them.
pub fn nats_flags(servers: &[&sluice_store::jetstream::testing::NatsServer]) -> Vec<String> {
    let join = |f: &dyn Fn(&sluice_store::jetstream::testing::NatsServer) -> String| {
        servers.iter().map(|s| f(s)).collect::<Vec<_>>().join(",")
    };
    vec![
        "--store".into(),
        "nats".into(),
        "--nats-url".into(),
        join(&|s| s.url()),
        "--nats-monitor".into(),
        join(&|s| format!("127.0.0.1:{}", s.monitor_port)),
    ]
}

impl Server {
    /// Starts `sluice serve` with `flags` (and, as always, a fresh data directory and
    /// the admin token).
    pub fn start_with(flags: &[String]) -> Server {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        Server::start(&flags)
    }

    /// Starts `sluice serve` on a fresh data directory with the admin token set.
    pub fn start(extra: &[&str]) -> Server {
        let tempdir = tempfile::tempdir().expect("tempdir");
        let dir = tempdir.path().join("data");
        let mut s = Server::start_in(&dir, extra);
        s._tempdir = Some(tempdir);
        s
    }

    /// Starts `sluice serve` on a given data directory.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        let (dir_arg, extra_args): (PathBuf, Vec<String>) = (
            dir.to_owned(),
            extra.iter().map(|a| a.to_string()).collect(),
        );
        let mut child = spawn_tied(move || {
            let mut cmd = Command::new(binary());
            cmd.args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-token",
                ADMIN_TOKEN,
                "--data-dir",
            ])
            .arg(dir_arg)
            .args(extra_args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
            cmd
        })
        .expect("spawn sluice");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let log: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (key_tx, key_rx) = std::sync::mpsc::channel();
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let rest = line.split("sluice listening on ").nth(1);
                let rest = rest.map(|r| {
                    r.trim_start_matches("https://")
                        .trim_start_matches("http://")
                });
                let addr = rest.map(|r| r.split_whitespace().next().unwrap_or_default().to_owned());
                // Logged before the address is announced: whoever has the address can
                // read every line up to the listening line.
                log_writer.0.lock().expect("log").push(line);
                log_writer.1.notify_all();
                if let Some(addr) = addr {
                    let _ = addr_tx.send(addr);
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(key) = line.strip_prefix("API key for tenant \"default\": ") {
                    let _ = key_tx.send(key.to_owned());
                }
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {:?}", log.0.lock().expect("log"));
            }
        };
        // A first start logs so (on stderr, before the listening line, so it is in the
        // log now) and prints the key on stdout, read by another thread: wait for it then.
        let first_start = log
            .0
            .lock()
            .expect("log")
            .iter()
            .any(|l| l.contains("first start: created tenant"));
        let key = if first_start {
            Some(
                key_rx
                    .recv_timeout(Duration::from_secs(60))
                    .expect("a first start prints the default tenant's key"),
            )
        } else {
            None
        };
        Server {
            child,
            addr,
            key,
            dir: dir.to_path_buf(),
            log,
            _tempdir: None,
        }
    }

    pub fn key(&self) -> &str {
        self.key.as_deref().expect("first start printed a key")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait")
    }

    pub fn log_text(&self) -> String {
        self.log.0.lock().expect("log").join("\n")
    }

    /// Waits (on a condition variable, not a sleep) until a log line contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lines, arrived) = &*self.log;
        let mut lines = lines.lock().expect("log");
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line with {needle:?} within {timeout:?}:\n{}",
                lines.join("\n")
            );
            lines = arrived.wait_timeout(lines, left).expect("log").0;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connector with Nagle's algorithm off, as the server has it: the client writes a
/// request's head and body separately, and with Nagle on, the body waited for the
/// server's delayed ACK (tens of milliseconds a request).
fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector
}

/// An HTTP client: HTTP/1.1 keep-alive, or h2c with prior knowledge.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    pub fn h1() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build(connector()),
        }
    }

    pub fn h2c() -> Http {
        Http {
            client: Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(connector()),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        self.try_send(method, url, headers, body)
            .await
            .unwrap_or_else(|e| panic!("request failed at the connection level: {e}"))
    }

    /// Like [`Http::send`], but a failure below HTTP (a reset, a closed connection) is
    /// returned for the caller to report.
    pub async fn try_send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, String> {
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body.into()))
            .map_err(|e| e.to_string())?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// A request with the API key and, when there is a body, JSON content type.
    pub async fn call(&self, s: &Server, key: &str, method: &str, path: &str, body: &str) -> Reply {
        let auth = format!("Bearer {key}");
        let mut headers = vec![("authorization", auth.as_str())];
        if !body.is_empty() {
            headers.push(("content-type", "application/json"));
        }
        self.send(method, &s.url(path), &headers, body.to_owned())
            .await
    }

    pub async fn admin(&self, s: &Server, method: &str, path: &str, body: &str) -> Reply {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        self.send(
            method,
            &s.url(path),
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body.to_owned(),
        )
        .await
    }
}

/// Creates a tenant and a key with the given scopes through the admin API.
pub async fn tenant_key(
    http: &Http,
    s: &Server,
    name: &str,
    scopes: &[&str],
    limits: Option<&str>,
) -> String {
    let body = match limits {
        Some(l) => format!(r#"{{"name":"{name}","limits":{l}}}"#),
        None => format!(r#"{{"name":"{name}"}}"#),
    };
    let r = http.admin(s, "POST", "/v1/admin/tenants", &body).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let scopes = serde_json::to_string(scopes).expect("scopes");
    let r = http
        .admin(
            s,
            "POST",
            &format!("/v1/admin/tenants/{name}/keys"),
            &format!(r#"{{"scopes":{scopes}}}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    r.json()["key"].as_str().expect("key").to_owned()
}

/// Sends until the answer is not a 503, as a client that honours `Retry-After` does
/// (a JetStream node answers 503 while a stream elects a leader or while it catches
/// up), for at most 30 s; then the last answer, whatever it is.
pub async fn past_503<F, Fut>(mut send: F) -> Reply
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = send().await;
        if r.status != 503 || Instant::now() > deadline {
            return r;
        }
        // A client's pause between retries (shorter than `Retry-After`, to keep the
        // tests short), not a wait for anything.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One series' value from a server's `/metrics`, by its name and labels exactly as
/// exposed (`sluice_webhook_deliveries_total{outcome="delivered"}`).
pub async fn metric(http: &Http, s: &Server, series: &str) -> u64 {
    let metrics = http.send("GET", &s.url("/metrics"), &[], "").await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in {text}"))
}

pub fn event(event_type: &str, n: usize) -> String {
    format!(r#"{{"event_type":"{event_type}","payload":{{"n":{n}}}}}"#)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
