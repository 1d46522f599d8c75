//! Effective settings: defaults, then the TOML file, then `SLUICE_*` environment
//! variables, then flags (figment does the layering).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use sluice_server::{Limits, ServerConfig};
use sluice_store::embedded::{Durability, EmbeddedConfig};
use sluice_store::jetstream::JetStreamConfig;

use crate::cli::ServeFlags;

/// Retention settings (`[retention]` in TOML, `SLUICE_RETENTION__ACKED` in the
/// environment).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retention {
    pub acked: String,
    pub pending: String,
}

/// Everything `sluice serve` can be told. An unknown key in the file, or an unknown
/// `SLUICE_*` variable, is refused at start-up with the closest known name (a typo must
/// not be a silently ignored setting); the variables of Sluice's own tools
/// ([`TOOL_VARIABLES`]) are let through.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub store: String,
    pub nats_url: String,
    pub nats_replicas: usize,
    pub nats_partitions: u32,
    pub nats_namespace: String,
    pub nats_monitor: String,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub durability: String,
    pub fsync_interval: String,
    pub sync_interval_min: String,
    pub admin_token: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub backlog: u32,
    pub max_connections: usize,
    pub header_read_timeout: String,
    pub body_read_timeout: String,
    pub max_payload_bytes: usize,
    pub max_batch_bytes: usize,
    pub rate_per_second: u32,
    pub rate_burst: u32,
    pub commit_queue_depth: usize,
    pub segment_bytes: u64,
    pub dedup_window: String,
    pub retention: Retention,
    pub access_log_sample: u64,
    pub allow_private_targets: bool,
    pub webhook_retry_schedule: String,
    pub webhook_timeout: String,
    pub webhook_disable_after: String,
    pub webhook_breaker_open: String,
    pub repair: bool,
    pub commit_delay: String,
    pub cors_origins: String,
}

impl Default for Settings {
    fn default() -> Self {
        let limits = Limits::default();
        Settings {
            store: "embedded".into(),
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_replicas: 1,
            nats_partitions: sluice_store::jetstream::PARTITIONS_DEFAULT,
            nats_namespace: "sluice".into(),
            nats_monitor: String::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./sluice-data"),
            durability: "fsync".into(),
            fsync_interval: "10ms".into(),
            sync_interval_min: "1ms".into(),
            admin_token: None,
            tls_cert: None,
            tls_key: None,
            backlog: 4096,
            max_connections: 20_000,
            header_read_timeout: "30s".into(),
            body_read_timeout: "30s".into(),
            max_payload_bytes: limits.max_payload_bytes,
            max_batch_bytes: limits.max_batch_bytes,
            rate_per_second: limits.rate_per_second,
            rate_burst: limits.rate_burst,
            commit_queue_depth: 8192,
            segment_bytes: 64 << 20,
            dedup_window: "24h".into(),
            retention: Retention {
                acked: "7d".into(),
                pending: "30d".into(),
            },
            access_log_sample: 0,
            allow_private_targets: false,
            webhook_retry_schedule: sluice_push::schedule::DEFAULT_SCHEDULE.into(),
            webhook_timeout: "15s".into(),
            webhook_disable_after: "5d".into(),
            webhook_breaker_open: "30s".into(),
            repair: false,
            commit_delay: "0ms".into(),
            cors_origins: String::new(),
        }
    }
}

/// `SLUICE_*` variables that are not `serve` settings but Sluice's own: `sluice bench`'s
/// key, and the test and benchmark harnesses' knobs (by prefix).
const TOOL_VARIABLES: &[&str] = &[
    "config",
    "api_key",
    "bin",
    "random_seed",
    "test_seed",
    "nats_server",
];
const TOOL_PREFIXES: &[&str] = &["crash_", "bench_"];

/// Every setting's name as the file spells it (`retention.acked` for the table).
fn known_keys() -> Vec<String> {
    let mut keys = Vec::new();
    if let Ok(serde_json::Value::Object(top)) = serde_json::to_value(Settings::default()) {
        for (k, v) in top {
            match v {
                serde_json::Value::Object(inner) => {
                    keys.extend(inner.keys().map(|i| format!("{k}.{i}")));
                }
                _ => keys.push(k),
            }
        }
    }
    keys
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn closest<'k>(key: &str, known: &'k [String]) -> &'k str {
    known
        .iter()
        .min_by_key(|k| distance(key, k))
        .map_or("", String::as_str)
}

/// Refuses keys of the file (`file_keys`, dotted) and `SLUICE_*` variable names
/// (`env_names`, as set) that name no setting.
fn check_keys(file_keys: &[String], env_names: &[String]) -> anyhow::Result<()> {
    let known = known_keys();
    for key in file_keys {
        if !known.contains(key) {
            bail!(
                "unknown key {key:?} in the configuration file; did you mean {:?}? (`sluice serve --help` lists every setting)",
                closest(key, &known)
            );
        }
    }
    for name in env_names {
        let Some(rest) = name.strip_prefix("SLUICE_") else {
            continue;
        };
        let key = rest.to_ascii_lowercase().replace("__", ".");
        if known.contains(&key)
            || TOOL_VARIABLES.contains(&key.as_str())
            || TOOL_PREFIXES.iter().any(|p| key.starts_with(p))
        {
            continue;
        }
        let suggestion = closest(&key, &known)
            .replace('.', "__")
            .to_ascii_uppercase();
        bail!(
            "unknown environment variable {name}; did you mean SLUICE_{suggestion}? (tables use a double underscore: SLUICE_RETENTION__ACKED)"
        );
    }
    Ok(())
}

/// The dotted keys of a TOML file's top level and its tables.
fn file_keys(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let value: serde_json::Value = Figment::from(Toml::file(path))
        .extract()
        .with_context(|| format!("configuration file {} is not valid TOML", path.display()))?;
    let mut keys = Vec::new();
    if let serde_json::Value::Object(top) = value {
        for (k, v) in top {
            match v {
                serde_json::Value::Object(inner) => {
                    keys.extend(inner.keys().map(|i| format!("{k}.{i}")));
                }
                _ => keys.push(k),
            }
        }
    }
    Ok(keys)
}

impl Settings {
    /// Layers the sources; see the module docs.
    pub fn load(flags: &ServeFlags) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        let mut from_file = Vec::new();
        if let Some(path) = &flags.config {
            if !path.exists() {
                bail!("configuration file {} does not exist", path.display());
            }
            from_file = file_keys(path)?;
            figment = figment.merge(Toml::file(path));
        }
        let env_names: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("SLUICE_"))
            .collect();
        check_keys(&from_file, &env_names)?;
        figment = figment
            .merge(
                Env::prefixed("SLUICE_")
                    .split("__")
                    .ignore(&["config", "api_key"]),
            )
            .merge(Serialized::defaults(flags));
        let mut settings: Settings = figment.extract().context("invalid configuration")?;
        if let Some(acked) = &flags.retention_acked {
            settings.retention.acked = acked.clone();
        }
        if let Some(pending) = &flags.retention_pending {
            settings.retention.pending = pending.clone();
        }
        Ok(settings)
    }

    /// The storage engine's configuration.
    pub fn store_config(&self) -> anyhow::Result<EmbeddedConfig> {
        let mut c = EmbeddedConfig::new(&self.data_dir);
        c.durability = match self.durability.as_str() {
            "fsync" => Durability::Fsync,
            "interval" => Durability::Interval(duration("fsync_interval", &self.fsync_interval)?),
            "none" => Durability::None,
            other => bail!("durability must be fsync, interval or none (got {other:?})"),
        };
        if self.segment_bytes < 64 << 10 || self.segment_bytes > 1 << 30 {
            bail!(
                "segment_bytes must be between 64 KiB and 1 GiB (got {})",
                self.segment_bytes
            );
        }
        c.segment_bytes = self.segment_bytes;
        c.commit_queue_depth = self.commit_queue_depth.max(1);
        c.dedup_window = duration("dedup_window", &self.dedup_window)?;
        c.retention_acked = duration("retention.acked", &self.retention.acked)?;
        c.retention_pending = duration("retention.pending", &self.retention.pending)?;
        c.repair = self.repair;
        c.commit_delay = duration("commit_delay", &self.commit_delay)?;
        c.sync_interval_min = duration("sync_interval_min", &self.sync_interval_min)?;
        Ok(c)
    }

    /// The JetStream backend's configuration (`--store nats`).
    pub fn nats_config(&self) -> anyhow::Result<JetStreamConfig> {
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let urls = list(&self.nats_url);
        if urls.is_empty() {
            bail!("nats_url must name at least one server, e.g. nats://127.0.0.1:4222");
        }
        if !(1..=5).contains(&self.nats_replicas) {
            bail!(
                "nats_replicas must be 1 to 5, JetStream's range (got {})",
                self.nats_replicas
            );
        }
        let mut c = JetStreamConfig::new(urls);
        c.replicas = self.nats_replicas;
        c.partitions = self.nats_partitions;
        c.namespace = self.nats_namespace.clone();
        c.monitor_addrs = list(&self.nats_monitor);
        c.require_sync_always = match self.durability.as_str() {
            "fsync" => true,
            "interval" | "none" => false,
            other => bail!("durability must be fsync, interval or none (got {other:?})"),
        };
        c.dedup_window = duration("dedup_window", &self.dedup_window)?;
        c.retention_acked = duration("retention.acked", &self.retention.acked)?;
        c.retention_pending = duration("retention.pending", &self.retention.pending)?;
        // Three attempts' worth: a live node renews it with every fetch and settle, and
        // an attempt never outlasts webhook_timeout, so a subscription moves only when
        // its node has been silent for that long (15 s default: 45 s).
        c.dispatch_lease = duration("webhook_timeout", &self.webhook_timeout)? * 3;
        Ok(c)
    }

    /// The TLS acceptor, when a certificate and key are configured.
    pub fn tls(&self) -> anyhow::Result<Option<tokio_rustls::TlsAcceptor>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(sluice_server::tls::acceptor(cert, key)?)),
            (None, None) => Ok(None),
            _ => bail!("set both tls_cert and tls_key, or neither"),
        }
    }

    /// The HTTP layer's configuration.
    pub fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let mut c = ServerConfig::new(self.listen);
        c.backlog = self.backlog;
        c.max_connections = self.max_connections.max(1);
        c.header_read_timeout = duration("header_read_timeout", &self.header_read_timeout)?;
        c.body_read_timeout = duration("body_read_timeout", &self.body_read_timeout)?;
        c.limits = Limits {
            max_payload_bytes: self.max_payload_bytes,
            max_batch_bytes: self.max_batch_bytes,
            rate_per_second: self.rate_per_second.max(1),
            rate_burst: self.rate_burst.max(1),
        };
        c.admin_token = self.admin_token.clone().filter(|t| !t.is_empty());
        c.access_log_sample = self.access_log_sample;
        c.cors = sluice_server::cors::CorsOrigins::parse(&self.cors_origins)
            .map_err(anyhow::Error::msg)?;
        c.push = self.push_config()?;
        Ok(c)
    }

    /// Push delivery's configuration.
    pub fn push_config(&self) -> anyhow::Result<sluice_push::PushConfig> {
        let timeout = duration("webhook_timeout", &self.webhook_timeout)?;
        if timeout.is_zero() {
            bail!("webhook_timeout must be more than 0");
        }
        Ok(sluice_push::PushConfig {
            allow_private_targets: self.allow_private_targets,
            retry_schedule: sluice_push::schedule::Schedule::parse(&self.webhook_retry_schedule)?,
            timeout,
            disable_after: duration("webhook_disable_after", &self.webhook_disable_after)?,
            breaker: sluice_push::breaker::BreakerConfig {
                open_for: duration("webhook_breaker_open", &self.webhook_breaker_open)?,
                ..sluice_push::breaker::BreakerConfig::default()
            },
        })
    }
}

fn duration(name: &str, text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text).with_context(|| {
        format!("{name} must be a duration such as 10ms, 30s, 24h or 7d (got {text:?})")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_the_closest_known_one() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_keys(
            &s(&["listen", "retention.acked"]),
            &s(&[
                "SLUICE_LISTEN",
                "SLUICE_RETENTION__PENDING",
                "SLUICE_API_KEY",
                "SLUICE_CRASH_ROUNDS",
                "PATH"
            ])
        )
        .is_ok());
        let e = check_keys(&s(&["listne"]), &[]).unwrap_err().to_string();
        assert!(e.contains("\"listne\"") && e.contains("\"listen\""), "{e}");
        let e = check_keys(&s(&["retention.aked"]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("retention.acked"), "{e}");
        let e = check_keys(&[], &s(&["SLUICE_RETENTION_ACKED"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SLUICE_RETENTION_ACKED") && e.contains("SLUICE_RETENTION__ACKED"),
            "{e}"
        );
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    /// The one test in this binary that touches the process environment, so nothing
    /// else can race it.
    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("sluice.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\nbacklog = 111\nmax_connections = 7\n[retention]\nacked = \"1d\"\n",
        )
        .expect("write config");
        std::env::set_var("SLUICE_BACKLOG", "222");
        std::env::set_var("SLUICE_MAX_CONNECTIONS", "8");
        std::env::set_var("SLUICE_API_KEY", "ignored by serve");
        let flags = ServeFlags {
            config: Some(file),
            data_dir: Some("/from/flag".into()),
            max_connections: Some(9),
            ..ServeFlags::default()
        };
        let settings = Settings::load(&flags).expect("load");
        std::env::remove_var("SLUICE_BACKLOG");
        std::env::remove_var("SLUICE_MAX_CONNECTIONS");
        std::env::remove_var("SLUICE_API_KEY");
        assert_eq!(
            settings.data_dir,
            PathBuf::from("/from/flag"),
            "flag beats file"
        );
        assert_eq!(settings.backlog, 222, "environment beats file");
        assert_eq!(settings.max_connections, 9, "flag beats environment");
        assert_eq!(settings.retention.acked, "1d", "file beats default");
        assert_eq!(settings.retention.pending, "30d", "default");
        let store = settings.store_config().expect("store config");
        assert_eq!(store.retention_acked, Duration::from_secs(86_400));
        let bad = Settings {
            durability: "fast".into(),
            ..settings
        };
        assert!(bad
            .store_config()
            .unwrap_err()
            .to_string()
            .contains("durability must be"));
    }
}
