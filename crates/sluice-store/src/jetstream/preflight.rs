//! What a node checks about the cluster before it serves: that the servers take
//! Sluice's largest message, and, in `fsync` durability, that they fsync before they
//! acknowledge.
//!
//! JetStream's default `sync_interval` is 2 minutes: an acknowledged write sits in the
//! page cache until then, and a coordinated power cut loses it on every replica. With
//! `sync_interval: always`, each replica fsyncs before it acknowledges, so a PubAck from
//! an R3 stream means at least 2 of 3 servers have the write on disk. That setting is
//! server-wide and not visible to clients, only in the monitoring endpoint's `/varz`
//! (`jetstream.config.sync_always`), so that is where this looks.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one `/varz` read may take.
const VARZ_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest `/varz` answer read (a few KiB in practice).
const VARZ_BYTES_MAX: u64 = 1 << 20;

/// What a server's `/varz` says about its durability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Varz {
    pub(crate) server_name: String,
    pub(crate) sync_always: bool,
}

/// Reads `http://<monitor>/varz` (`monitor` is `host:port`).
pub(crate) async fn varz(monitor: &str) -> Result<Varz, String> {
    let read = async {
        let mut s = tokio::net::TcpStream::connect(monitor)
            .await
            .map_err(|e| e.to_string())?;
        let host = monitor.rsplit_once(':').map_or(monitor, |(h, _)| h);
        s.write_all(format!("GET /varz HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.take(VARZ_BYTES_MAX)
            .read_to_end(&mut out)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(out)
    };
    let raw = tokio::time::timeout(VARZ_TIMEOUT, read)
        .await
        .map_err(|_| format!("no answer within {VARZ_TIMEOUT:?}"))??;
    let body_at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("not an HTTP answer")?
        + 4;
    let doc: serde_json::Value =
        serde_json::from_slice(&raw[body_at..]).map_err(|e| format!("not JSON: {e}"))?;
    // The server leaves `sync_always` out when it is false (Go's omitempty).
    let config = doc
        .pointer("/jetstream/config")
        .ok_or("no jetstream.config in /varz: is JetStream enabled on this server?")?;
    let sync_always = config
        .get("sync_always")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    Ok(Varz {
        server_name: doc["server_name"].as_str().unwrap_or_default().to_owned(),
        sync_always,
    })
}

/// The monitoring address of a client URL's server, by the NATS default: the same
/// host, port 8222.
pub(crate) fn default_monitor(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = match hostport.rsplit_once(':') {
        Some((h, _)) => h,
        None => hostport,
    };
    format!("{host}:8222")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitors_default_to_port_8222() {
        assert_eq!(default_monitor("nats://h1:4222"), "h1:8222");
        assert_eq!(default_monitor("nats://u:p@h2:4333"), "h2:8222");
        assert_eq!(default_monitor("h3"), "h3:8222");
        assert_eq!(default_monitor("tls://[::1]:4222"), "[::1]:8222");
    }
}
