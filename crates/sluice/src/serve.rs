//! `sluice serve`: open the store, say what was configured, serve, shut down cleanly.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use sluice_server::{auth, listener, App};
use sluice_store::embedded::EmbeddedStore;
use sluice_store::jetstream::{JetStreamConfig, JetStreamStore};
use sluice_store::{CatalogOps, Scope, Store, StoreError, TenantLimits};

use crate::backend::Backend;
use crate::cli::ServeFlags;
use crate::settings::Settings;

pub fn run(flags: ServeFlags) -> anyhow::Result<ExitCode> {
    init_logging();
    let settings = Settings::load(&flags)?;
    let store_config = settings.store_config()?;
    let nats_config = match settings.store.as_str() {
        "nats" => Some(settings.nats_config()?),
        "embedded" => None,
        other => anyhow::bail!("store must be embedded or nats (got {other:?})"),
    };
    let server_config = settings.server_config()?;
    let tls = settings.tls()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sluice-worker")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let nofile = listener::raise_nofile_limit();
        let store = open_backend(&settings, store_config, nats_config).await?;
        let store = Arc::new(store);
        first_start(&*store).await?;

        // Built before the listening line: it loads the system's CA certificates for
        // the webhook client and calibrates the rate limiter's clock, start-up work
        // that must not land on the first requests (or in a profile that starts at
        // that line: bench/instructions.sh).
        let app = App::new(store.clone(), server_config.clone());
        let (socket, report) = listener::bind(server_config.listen, server_config.backlog)
            .with_context(|| format!("listening on {}", server_config.listen))?;
        let tenants = store.catalog().borrow().tenants.len();
        tracing::info!(
            address = %report.addr,
            store = %match settings.store.as_str() {
                "nats" => format!("nats {}", settings.nats_url),
                _ => std::path::absolute(&settings.data_dir).unwrap_or(settings.data_dir.clone()).display().to_string(),
            },
            version = env!("CARGO_PKG_VERSION"),
            durability = %describe_durability(&settings),
            backlog = report.backlog,
            nofile_limit = nofile.as_ref().map_or(0, |n| *n),
            max_connections = server_config.max_connections,
            max_payload_bytes = server_config.limits.max_payload_bytes,
            rate_per_second = server_config.limits.rate_per_second,
            tenants,
            admin_api = server_config.admin_token.is_some(),
            webhook_retry_schedule = %settings.webhook_retry_schedule,
            webhook_timeout = %settings.webhook_timeout,
            private_targets = settings.allow_private_targets,
            "sluice listening on {}://{} ({})",
            if tls.is_some() { "https" } else { "http" },
            report.addr,
            if tls.is_some() { "TLS with ALPN: h2, http/1.1" } else { "HTTP/1.1 and h2c" }
        );
        tracing::info!(
            "console: {}://{}/ui/ (sign in with an API key, or the admin token)",
            if tls.is_some() { "https" } else { "http" },
            report.addr
        );
        if settings.allow_private_targets {
            tracing::warn!("--allow-private-targets: webhooks may reach loopback, private and metadata addresses (SSRF protection is off)");
        }
        if let Err(e) = &nofile {
            tracing::warn!(error = %e, "could not raise the open-files limit");
        }
        if let Some(max) = report.somaxconn {
            if max < report.backlog {
                tracing::warn!(somaxconn = max, backlog = report.backlog, "net.core.somaxconn caps the listen backlog; raise it with sysctl for bursts of new connections");
            }
        }

        tokio::spawn(app.clone().follow_catalog());
        let dispatcher = app.push().clone();
        let dispatching = tokio::spawn(dispatcher.clone().run());
        sluice_server::serve(app, socket, &server_config, tls, shutdown_signal()).await;
        tracing::info!("stopped accepting; finishing webhook attempts in flight");
        dispatcher.stop().await;
        let _ = dispatching.await;
        tracing::info!("syncing storage");
        store.sync().await.context("final sync")?;
        tracing::info!("shutdown complete");
        Ok(ExitCode::SUCCESS)
    })
}

/// Opens the backend `--store` names.
async fn open_backend(
    settings: &Settings,
    store_config: sluice_store::embedded::EmbeddedConfig,
    nats_config: Option<JetStreamConfig>,
) -> anyhow::Result<Backend> {
    if let Some(config) = nats_config {
        return open_jetstream(config).await;
    }
    // Absolute, so that starting from another directory (a new, empty store and a new
    // key) is plain in the log.
    let dir = std::path::absolute(&settings.data_dir).unwrap_or(settings.data_dir.clone());
    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_dir = %dir.display(), "sluice {} opening the embedded store", env!("CARGO_PKG_VERSION"));
    let started = std::time::Instant::now();
    let store = EmbeddedStore::open(store_config)
        .with_context(|| format!("opening the data directory {}", dir.display()))?;
    for note in store.recovery_notes() {
        tracing::warn!("recovery: {note}");
    }
    let (segments, events, pending) = store.summary();
    let tenants = store.catalog().borrow().tenants.len();
    let took_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        segments,
        events,
        pending,
        tenants,
        took_ms,
        "recovered the store: {events} events ({pending} pending) in {segments} segments, {tenants} tenants, in {took_ms} ms"
    );
    Ok(Backend::Embedded(store))
}

/// Joins (or starts) a deployment on a NATS JetStream cluster.
async fn open_jetstream(config: JetStreamConfig) -> anyhow::Result<Backend> {
    let urls = config.urls.join(",");
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        nats_url = %urls,
        replicas = config.replicas,
        namespace = %config.namespace,
        "sluice {} joining NATS JetStream at {urls}",
        env!("CARGO_PKG_VERSION")
    );
    if !config.require_sync_always {
        tracing::warn!("durability is not fsync: the NATS servers are not checked for sync_interval: always, so a 2xx may precede the servers' fsync (JetStream's default syncs every 2 minutes)");
    }
    let started = std::time::Instant::now();
    let store = JetStreamStore::open(config)
        .await
        .context("opening the NATS JetStream store")?;
    for note in store.notes() {
        tracing::info!("nats: {note}");
    }
    let stats = store.stats().await;
    let tenants = store.catalog().borrow().tenants.len();
    let took_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        partitions = store.partitions(),
        events = stats.events_appended,
        tenants,
        took_ms,
        "read the cluster's logs back: {} events in {} partition streams, {tenants} tenants, in {took_ms} ms",
        stats.events_appended,
        store.partitions()
    );
    Ok(Backend::JetStream(store))
}

/// On an empty data directory: tenant "default" and one key with every scope, printed
/// so a new user can curl at once.
async fn first_start(store: &impl Store) -> anyhow::Result<()> {
    if !store.catalog().borrow().tenants.is_empty() {
        return Ok(());
    }
    let tenant = match store
        .create_tenant("default", TenantLimits::default())
        .await
    {
        Ok(t) => t,
        // On a cluster, another node starting at the same moment created it first;
        // that node prints the key, exactly once.
        Err(StoreError::Conflict(_))
            if store.catalog().borrow().tenant_by_name("default").is_some() =>
        {
            return Ok(())
        }
        Err(e) => return Err(e).context("creating the default tenant"),
    };
    let key = auth::generate_key(tenant.id, Scope::ALL.to_vec(), sluice_store::now_ms());
    store
        .add_key(key.record)
        .await
        .context("storing the first API key")?;
    println!("API key for tenant \"default\": {}", key.secret);
    tracing::info!(
        "first start: created tenant \"default\"; its API key is printed above and shown only once"
    );
    Ok(())
}

fn describe_durability(s: &Settings) -> String {
    if s.store == "nats" {
        return match s.durability.as_str() {
            "fsync" => "fsync (2xx only after the stream's quorum stored the write, each server fsyncing first: sync_interval: always, checked at start)".into(),
            other => format!("{other} (2xx after the stream's quorum stored the write, in the servers' page cache until their own sync_interval)"),
        };
    }
    match s.durability.as_str() {
        "interval" => format!(
            "interval (fdatasync every {}; a power loss can lose that window)",
            s.fsync_interval
        ),
        "none" => "none (no fsync: for tests only)".into(),
        other => format!(
            "{other} (2xx only after fdatasync; under concurrent load syncs start at least {} apart)",
            s.sync_interval_min
        ),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: log files and log collectors get plain text.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; use Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
}
