//! The NATS JetStream backend: stateless Sluice nodes over replicated partition logs.
//!
//! Every durable fact is a message in JetStream (R3 in production):
//!
//! - a tenant's events, and every change of its consumers' state (leases, acks,
//!   deliveries, replays; see [`record`]), go to its **partition stream**, one of a
//!   fixed set (`tenant % partitions`): not one stream per tenant, since each R3 stream
//!   is its own Raft group and a cluster strains under many;
//! - the catalog (tenants, keys, subscriptions, consumers) is one key of a **KV
//!   bucket**, changed by compare-and-set and watched by every node, so a key created
//!   through one node works on every node at once.
//!
//! Each node follows every partition stream from its start and applies each message to
//! the same deterministic [`model`], so all nodes agree on everything at each sequence:
//! a decision that needs exclusivity (which poller a lease goes to, whether an
//! idempotency key is new, which deliveries a fetch hands out, which node dispatches a
//! subscription) is made once, by the record's place in the log, and the same way
//! everywhere. A node answers a write once the stream acknowledged its record (stored
//! by a quorum, fsynced where the servers run `sync_interval: always`) and its own
//! applier applied it, so it reads its own writes; other nodes see it milliseconds
//! later, and one asked for it by id before then waits for it (`read_through`), as one
//! that lacks a catalog entry reads the bucket before refusing ([`Store::catalog_sync`]).
//! `docs/jetstream.md` says why this shape, and what it costs.
//!
//! - [`names`]: where things live on the cluster;
//! - [`record`]: what the log holds;
//! - [`model`]: the state machine every node applies it to;
//! - [`preflight`]: the start-up checks of the servers;
//! - [`shared_read`]: one cluster read shared by the requests that wait for it;
//! - [`testing`]: a real `nats-server` for tests and benchmarks.

pub(crate) mod model;
pub(crate) mod names;
pub(crate) mod preflight;
pub(crate) mod record;
pub(crate) mod seqmap;
pub(crate) mod shared_read;
pub mod testing;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, context::PublishErrorKind, kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use self::model::{Effects, Model, Outcome, Page, Windows};
use self::names::Names;
use self::record::{Envelope, EventRecord, FetchRecord, Op, Origin, SettledRecord};
use self::shared_read::SharedRead;
use crate::catalog::{Catalog, CatalogChange, Changed, SubKey, Subscription};
use crate::delivery::{
    AttemptPage, AttemptQuery, DeadLetter, DeadLetterPage, Delivery, DeliveryState, Fetched,
    Replay, Settled, REPLAY_EVENTS_MAX,
};
use crate::embedded::signals::InboxSignals;
use crate::embedded::Clock;
use crate::error::StoreError;
use crate::event_id::EventId;
use crate::exposition::Exposition;
use crate::feed::{CommitFeed, FeedSender, TypeFilter, FEED_INLINE_BYTES_MAX};
use crate::store::{CatalogWatch, Store, StoreStats};
use crate::types::{
    AppendOutcome, EventState, Health, InboxKey, InboxPage, InboxQuery, InboxSummary, LeaseAction,
    LeaseOutcome, LogEvent, LogPage, LogQuery, NewEvent, Sequence, Settle, SettleOutcome,
    StoredEvent, TenantId, UnixMs,
};

/// Largest message the servers must accept: a 1 MiB payload plus the record's fields
/// and headers.
pub const MAX_PAYLOAD_NEEDED: usize = (1 << 20) + (64 << 10);

/// Partition streams a new cluster gets when not told otherwise: enough Raft groups
/// to spread the leaders over a 3-node cluster, few enough not to strain it.
pub const PARTITIONS_DEFAULT: u32 = 3;

/// Partition streams a cluster may have, at most.
pub const PARTITIONS_MAX: u32 = 64;

/// Publishes of one record, at most, through a leader election or a reconnect, before
/// the write answers "unavailable" (each retry is stored once: same `Nats-Msg-Id`).
const PUBLISH_ATTEMPTS_MAX: u32 = 40;

/// Catalog changes retried, at most, when another node changed the catalog first.
const CATALOG_RETRIES_MAX: u32 = 32;

/// Events waiting for their partition's publisher, at most; past it appends answer
/// "overloaded" (503) rather than queue without bound.
pub const PUBLISH_QUEUE_EVENTS_MAX: usize = 16 << 10;

/// Events one publish round takes from its queue, at most.
const ROUND_EVENTS_MAX: usize = 4096;

/// Bytes of event records one batch message carries, at most (one larger event goes
/// alone): under the `max_payload` a node requires of the servers.
const BATCH_BYTES_MAX: usize = 1 << 20;

/// Payload reads in flight at once for one page.
const READS_IN_FLIGHT_MAX: usize = 64;

/// How long `Nats-Msg-Id` dedups a retried publish: far beyond the write deadline.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Longest pull a log follower waits on: bounds how long a lost stream leader goes
/// unnoticed (see `run_applier`).
const FOLLOW_EXPIRES: Duration = Duration::from_secs(2);

/// How long a log follower may go without a message while this node has a write
/// acknowledged on its stream and not yet applied, before it is taken for stalled and
/// started again (see `run_applier`). Well inside the write deadline, so that the
/// write it holds up is still answered.
const FOLLOW_STALL: Duration = Duration::from_secs(6);

/// The catalog bucket's keys.
const CATALOG_KEY: &str = "catalog";
const GENESIS_KEY: &str = "genesis";

/// Settings for [`JetStreamStore`].
#[derive(Debug, Clone)]
pub struct JetStreamConfig {
    /// The servers to connect to (any of the cluster's).
    pub urls: Vec<String>,
    /// Replicas of the streams and the bucket when this node creates them (3 for a
    /// 3-node cluster).
    pub replicas: usize,
    /// Partition streams, when this node is the first of a new deployment; after
    /// that, the deployment's own count (in its genesis key) holds.
    pub partitions: u32,
    /// Prefix of every stream, subject and bucket name (`[a-z0-9_]`, default
    /// `sluice`).
    pub namespace: String,
    /// Refuse to start unless every server fsyncs before it acknowledges (`fsync`
    /// durability).
    pub require_sync_always: bool,
    /// The servers' monitoring addresses (`host:port`) for that check; empty: each URL's
    /// host, port 8222.
    pub monitor_addrs: Vec<String>,
    /// Where "now" comes from (tests move a manual clock).
    pub clock: Clock,
    /// How long an idempotency key is remembered.
    pub dedup_window: Duration,
    /// How long acked events stay readable.
    pub retention_acked: Duration,
    /// How long pending events are kept unconsumed.
    pub retention_pending: Duration,
    /// How long one write may take, retries through a leader election included, before
    /// it answers "unavailable".
    pub write_deadline: Duration,
    /// How long start-up may take to read the logs back.
    pub catch_up_deadline: Duration,
    /// How long a subscription stays with the node dispatching it after that node's
    /// last fetch or settle; a node that dies holds its subscriptions this long. Must
    /// exceed the longest webhook attempt, so a live node's deliveries are never handed
    /// to another while in flight.
    pub dispatch_lease: Duration,
}

impl JetStreamConfig {
    /// Defaults for a cluster at `urls`: namespace `sluice`, R1 unless told otherwise,
    /// the embedded engine's windows.
    pub fn new(urls: Vec<String>) -> JetStreamConfig {
        JetStreamConfig {
            urls,
            replicas: 1,
            partitions: PARTITIONS_DEFAULT,
            namespace: "sluice".into(),
            require_sync_always: false,
            monitor_addrs: Vec::new(),
            clock: Clock::System,
            dedup_window: Duration::from_secs(24 * 3600),
            retention_acked: Duration::from_secs(7 * 24 * 3600),
            retention_pending: Duration::from_secs(30 * 24 * 3600),
            write_deadline: Duration::from_secs(15),
            catch_up_deadline: Duration::from_secs(600),
            dispatch_lease: Duration::from_secs(45),
        }
    }

    /// How long the streams keep messages: the longest window any record matters for,
    /// plus a day. Past it, the servers drop a stream's oldest messages, so neither
    /// disk nor a new node's start-up grows without bound.
    fn max_age(&self) -> Duration {
        self.retention_pending
            .max(self.retention_acked)
            .max(self.dedup_window)
            + Duration::from_secs(24 * 3600)
    }
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    /// The settings cannot work.
    #[error("{0}")]
    Config(String),
    /// No server could be reached.
    #[error("connecting to NATS at {urls}: {detail}")]
    Connect {
        /// The servers tried.
        urls: String,
        /// The client's answer.
        detail: String,
    },
    /// The servers' `max_payload` is too small for Sluice's largest event.
    #[error("the NATS servers accept messages up to {max} bytes; Sluice needs {need} (set `max_payload: 2MB` in the server configuration)")]
    MaxPayload {
        /// What the server announced.
        max: usize,
        /// What Sluice needs.
        need: usize,
    },
    /// A server does not fsync before it acknowledges, in `fsync` durability.
    #[error("NATS server {server} does not fsync before acknowledging (its /varz says sync_always: false): set `sync_interval: always` in its jetstream block, or run Sluice with `--durability interval` to accept JetStream's default of syncing every 2 minutes")]
    NotSyncAlways {
        /// The server's name or monitoring address.
        server: String,
    },
    /// The servers' durability could not be read.
    #[error("reading {monitor}/varz to check the servers fsync before acknowledging: {detail} (pass the monitoring addresses with --nats-monitor, or run with `--durability interval`)")]
    Monitor {
        /// The monitoring address.
        monitor: String,
        /// What went wrong.
        detail: String,
    },
    /// JetStream refused to create or describe a stream or the bucket.
    #[error("JetStream {what}: {detail}")]
    Stream {
        /// The stream or bucket.
        what: String,
        /// The server's answer.
        detail: String,
    },
    /// The logs could not be read back in time.
    #[error("reading the log back: {0}")]
    CatchUp(String),
}

/// What the genesis key holds: what every node of a deployment must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Genesis {
    /// The deployment's id salt. Partition `p`'s events carry `salt ^ p`: sequences
    /// restart in each partition stream, so the salt is what keeps the ids of two
    /// partitions' events apart (an id is looked up only in its tenant's partition,
    /// where another partition's salt never matches).
    salt: u16,
    /// How many partition streams.
    partitions: u32,
}

/// The catalog with the bucket revision it was read at.
#[derive(Debug, Clone)]
struct Versioned {
    rev: u64,
    catalog: Arc<Catalog>,
}

/// Counters of this node (the model's are the cluster's).
#[derive(Debug, Default)]
struct NodeCounts {
    publishes: AtomicU64,
    publish_retries: AtomicU64,
    bad_records: AtomicU64,
    deletes_failed: AtomicU64,
    overloaded: AtomicU64,
    /// Log followers started again because they were silent while this node's
    /// acknowledged write was unapplied (see `run_applier`).
    follower_stalls: AtomicU64,
    /// Reads of the catalog bucket by [`Store::catalog_sync`].
    catalog_reads: AtomicU64,
    /// Stream requests by event reads that missed past what this node had applied.
    read_throughs: AtomicU64,
}

/// One partition stream, and this node's model of it.
struct Partition {
    stream: stream::Stream,
    /// Events waiting for this partition's publisher (see `run_publisher`).
    queue: mpsc::Sender<Pending>,
    model: Mutex<Model>,
    /// The stream sequence applied up to.
    applied: watch::Sender<u64>,
    /// The highest stream sequence this node's own writes were acknowledged at: a
    /// follower behind it, and silent, has stalled (see `run_applier`).
    acked: AtomicU64,
    /// The catalog revision the model has applied.
    catalog_applied: watch::Sender<u64>,
    /// The stream's last sequence, asked for by reads past `applied` (`read_through`).
    end: SharedRead<u64>,
    fault: Mutex<Option<String>>,
}

/// An event waiting to be published.
struct Pending {
    subject: String,
    record: Bytes,
    origin: Origin,
}

/// What the store's handles and its tasks share.
struct Shared {
    node: u64,
    nonces: AtomicU64,
    clock: Clock,
    client: async_nats::Client,
    js: jetstream::Context,
    kv: kv::Store,
    names: Names,
    parts: Vec<Partition>,
    waiters: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    /// The catalog as this node's watch of the bucket last saw it.
    versioned: watch::Sender<Versioned>,
    /// The same, for [`Store::catalog`]. Published right after `versioned`, so that a
    /// catalog a caller reads here is never newer than the revision its next record
    /// carries (the applier's barrier relies on it).
    catalog: watch::Sender<Arc<Catalog>>,
    /// The revision `catalog` holds now.
    public_rev: AtomicU64,
    /// The catalog's revision in the bucket, asked for by [`Store::catalog_sync`].
    catalog_revision: SharedRead<u64>,
    catalog_fault: Mutex<Option<String>>,
    feed: FeedSender,
    signals: InboxSignals,
    counts: NodeCounts,
    write_deadline: Duration,
    dispatch_lease: Duration,
}

/// The JetStream [`Store`]: see the module docs.
pub struct JetStreamStore {
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    notes: Vec<String>,
    partitions: u32,
}

impl Drop for JetStreamStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A waiter for one record's outcome; forgets the waiter when dropped.
struct Waiter<'a> {
    shared: &'a Shared,
    nonce: u64,
    rx: oneshot::Receiver<Outcome>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.shared.waiters.lock().remove(&self.nonce);
    }
}

fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("NATS JetStream: {what}"))
}

/// A write the stream acknowledged (or may have) that this node could not confirm.
fn unconfirmed(what: impl std::fmt::Display) -> StoreError {
    StoreError::Unconfirmed(format!("NATS JetStream: {what}"))
}

impl JetStreamStore {
    /// Connects, checks the servers, creates the streams and the bucket where missing
    /// (the first node of a deployment also writes its genesis and first catalog),
    /// and reads every partition's log back before answering.
    pub async fn open(config: JetStreamConfig) -> Result<JetStreamStore, JetStreamError> {
        if !Names::valid_namespace(&config.namespace) {
            return Err(JetStreamError::Config(format!(
                "NATS namespace {:?}: use 1-32 characters of [a-z0-9_]",
                config.namespace
            )));
        }
        if !(1..=PARTITIONS_MAX).contains(&config.partitions) {
            return Err(JetStreamError::Config(format!(
                "NATS partitions {}: use 1 to {PARTITIONS_MAX}",
                config.partitions
            )));
        }
        let names = Names::new(&config.namespace);
        let urls = config.urls.join(",");
        let addrs: Vec<async_nats::ServerAddr> = config
            .urls
            .iter()
            .map(|u| u.parse())
            .collect::<Result<_, _>>()
            .map_err(|e: std::io::Error| JetStreamError::Connect {
                urls: urls.clone(),
                detail: e.to_string(),
            })?;
        let client = async_nats::ConnectOptions::new()
            .name("sluice")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(addrs.as_slice())
            .await
            .map_err(|e| JetStreamError::Connect {
                urls: urls.clone(),
                detail: e.to_string(),
            })?;
        // With retry_on_initial_connect the first connect happens in the background:
        // wait for it (bounded), so a wrong URL is an error, not a hang.
        let connected = async {
            while client.connection_state() != async_nats::connection::State::Connected {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), connected)
            .await
            .map_err(|_| JetStreamError::Connect {
                urls: urls.clone(),
                detail: "no server answered within 10 s".into(),
            })?;
        let max = client.server_info().max_payload;
        if max < MAX_PAYLOAD_NEEDED {
            return Err(JetStreamError::MaxPayload {
                max,
                need: MAX_PAYLOAD_NEEDED,
            });
        }
        let mut notes = Vec::new();
        if config.require_sync_always {
            let monitors: Vec<String> = if config.monitor_addrs.is_empty() {
                config
                    .urls
                    .iter()
                    .map(|u| preflight::default_monitor(u))
                    .collect()
            } else {
                config.monitor_addrs.clone()
            };
            // Every server that answers must fsync before acknowledging. One that does
            // not answer (down, as after a crash) cannot be asked: it is noted, and
            // checked by the next node that starts while it is up; at least one must
            // answer.
            let mut checked = Vec::new();
            let mut unreachable = Vec::new();
            for monitor in &monitors {
                match preflight::varz(monitor).await {
                    Ok(varz) if varz.sync_always => checked.push(monitor.clone()),
                    Ok(varz) => {
                        return Err(JetStreamError::NotSyncAlways {
                            server: if varz.server_name.is_empty() {
                                monitor.clone()
                            } else {
                                varz.server_name
                            },
                        })
                    }
                    Err(detail) => unreachable.push((monitor.clone(), detail)),
                }
            }
            if checked.is_empty() {
                let (monitor, detail) = unreachable.swap_remove(0);
                return Err(JetStreamError::Monitor { monitor, detail });
            }
            notes.push(format!(
                "NATS servers at {} fsync before acknowledging (sync_interval: always)",
                checked.join(", ")
            ));
            for (monitor, detail) in unreachable {
                notes.push(format!(
                    "could not read {monitor}/varz ({detail}): that server was not checked for sync_interval: always"
                ));
            }
        }
        let js = jetstream::new(client.clone());
        let failed = |what: String| move |e: String| JetStreamError::Stream { what, detail: e };
        let bucket = names.bucket();
        // JetStream answers "temporarily unavailable" until its cluster has a meta
        // leader (seconds after the servers start): the set-up is retried until then.
        let ready_by = tokio::time::Instant::now() + config.catch_up_deadline;
        let kv_config = kv::Config {
            bucket: bucket.clone(),
            description: "Sluice's catalog: tenants, keys, subscriptions, consumers".into(),
            history: 1,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            ..Default::default()
        };
        let kv = until_ready(ready_by, || async {
            match js.get_key_value(&bucket).await {
                Ok(kv) => Ok(kv),
                Err(_) => js
                    .create_key_value(kv_config.clone())
                    .await
                    .map_err(|e| e.to_string()),
            }
        })
        .await
        .map_err(failed(format!("bucket {bucket}")))?;
        let proposed = Genesis {
            salt: rand::random(),
            partitions: config.partitions,
        };
        let genesis = until_ready(ready_by, || create_or_read(&kv, GENESIS_KEY, &proposed))
            .await
            .map_err(failed(format!("bucket {bucket}, key {GENESIS_KEY}")))?;
        if genesis.partitions != config.partitions {
            notes.push(format!(
                "this deployment has {} partition streams (set when it was created); --nats-partitions {} is ignored",
                genesis.partitions, config.partitions
            ));
        }
        let first_catalog = Catalog {
            token_secret: Catalog::new_token_secret(),
            ..Catalog::default()
        };
        until_ready(ready_by, || {
            create_or_read(&kv, CATALOG_KEY, &first_catalog)
        })
        .await
        .map_err(failed(format!("bucket {bucket}, key {CATALOG_KEY}")))?;
        let windows = Windows {
            dedup_ms: config.dedup_window.as_millis() as i64,
            retention_acked_ms: config.retention_acked.as_millis() as i64,
            retention_pending_ms: config.retention_pending.as_millis() as i64,
        };
        let mut parts = Vec::with_capacity(genesis.partitions as usize);
        let mut ends = Vec::with_capacity(genesis.partitions as usize);
        let mut queues = Vec::with_capacity(genesis.partitions as usize);
        for p in 0..genesis.partitions {
            let name = names.stream(p);
            let stream_config = stream::Config {
                name: name.clone(),
                description: Some(format!("Sluice partition {p}: events and consumer state")),
                subjects: names.stream_subjects(p),
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                duplicate_window: DUPLICATE_WINDOW,
                max_age: config.max_age(),
                max_message_size: -1,
                ..Default::default()
            };
            let (stream, info) = until_ready(ready_by, || async {
                let mut stream = js
                    .get_or_create_stream(stream_config.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                let info = stream.info().await.map_err(|e| e.to_string())?.clone();
                Ok((stream, info))
            })
            .await
            .map_err(failed(format!("stream {name}")))?;
            if info.config.num_replicas != config.replicas {
                notes.push(format!(
                    "stream {name} has {} replica(s), not the {} asked for: it was created so; change it with `nats stream edit`",
                    info.config.num_replicas, config.replicas
                ));
            }
            ends.push(info.state.last_sequence);
            let (queue, rx) = mpsc::channel(PUBLISH_QUEUE_EVENTS_MAX);
            queues.push(rx);
            parts.push(Partition {
                stream,
                queue,
                model: Mutex::new(Model::new(
                    windows,
                    genesis.salt ^ p as u16,
                    (p, genesis.partitions),
                )),
                applied: watch::channel(0).0,
                acked: AtomicU64::new(0),
                catalog_applied: watch::channel(0).0,
                end: SharedRead::new(),
                fault: Mutex::new(None),
            });
        }
        let shared = Arc::new(Shared {
            node: rand::random::<u64>() | 1,
            nonces: AtomicU64::new(1),
            clock: config.clock.clone(),
            client,
            js,
            kv,
            names,
            parts,
            waiters: Mutex::new(HashMap::new()),
            versioned: watch::channel(Versioned {
                rev: 0,
                catalog: Arc::new(Catalog::default()),
            })
            .0,
            catalog: watch::channel(Arc::new(Catalog::default())).0,
            public_rev: AtomicU64::new(0),
            catalog_revision: SharedRead::new(),
            catalog_fault: Mutex::new(None),
            feed: FeedSender::default(),
            signals: InboxSignals::default(),
            counts: NodeCounts::default(),
            write_deadline: config.write_deadline,
            dispatch_lease: config.dispatch_lease,
        });
        let mut tasks = vec![tokio::spawn(run_catalog_watch(shared.clone()))];
        let mut versions = shared.versioned.subscribe();
        tokio::time::timeout(config.catch_up_deadline, versions.wait_for(|v| v.rev > 0))
            .await
            .map_err(|_| {
                JetStreamError::CatchUp(format!(
                    "the catalog was not read within {:?}: {}",
                    config.catch_up_deadline,
                    shared.catalog_fault.lock().clone().unwrap_or_default()
                ))
            })?
            .map_err(|_| JetStreamError::CatchUp("the catalog watch stopped".into()))?;
        shared.public_catalog_at(1).await;
        for p in 0..shared.parts.len() {
            tasks.push(tokio::spawn(run_applier(shared.clone(), p)));
        }
        for (p, rx) in queues.into_iter().enumerate() {
            tasks.push(tokio::spawn(run_publisher(shared.clone(), p, rx)));
        }
        for (p, end) in ends.into_iter().enumerate() {
            let part = &shared.parts[p];
            let mut applied = part.applied.subscribe();
            tokio::time::timeout(config.catch_up_deadline, applied.wait_for(|&a| a >= end))
                .await
                .map_err(|_| {
                    JetStreamError::CatchUp(format!(
                        "partition {p} not at sequence {end} after {:?}: {}",
                        config.catch_up_deadline,
                        part.fault.lock().clone().unwrap_or_default()
                    ))
                })?
                .map_err(|_| JetStreamError::CatchUp("an applier stopped".into()))?;
        }
        Ok(JetStreamStore {
            shared,
            tasks,
            notes,
            partitions: genesis.partitions,
        })
    }

    /// What start-up noticed and the operator should know.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The deployment's partition streams.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The stream sequence this node has applied up to, per partition.
    pub fn applied(&self) -> Vec<u64> {
        self.shared
            .parts
            .iter()
            .map(|p| *p.applied.borrow())
            .collect()
    }

    /// Announces that this node stops, so another can take over its subscriptions at
    /// once (without it, they wait for the owner lease to run out, as after a crash).
    pub async fn close(self) {
        for p in 0..self.shared.parts.len() {
            let subject = self.shared.names.node_subject(p as u32);
            let _ = self.shared.propose_op(p, &subject, Op::Leave).await;
        }
    }

    fn part_of(&self, tenant: TenantId) -> usize {
        (tenant.0 % self.partitions) as usize
    }

    fn model(&self, tenant: TenantId) -> parking_lot::MutexGuard<'_, Model> {
        self.shared.parts[self.part_of(tenant)].model.lock()
    }

    /// Proposes a change of `tenant`'s state and answers its outcome.
    async fn op(&self, tenant: TenantId, op: Op) -> Result<Outcome, StoreError> {
        let p = self.part_of(tenant);
        let subject = self.shared.names.op_subject(p as u32, tenant);
        self.shared.propose_op(p, &subject, op).await
    }

    /// Reads events' records from `tenant`'s partition stream by position (from the
    /// leader, so an event this node applied is there): each message once, however
    /// many of the events it holds. A message gone from the stream is left out.
    async fn records(
        &self,
        tenant: TenantId,
        positions: Vec<u64>,
    ) -> Result<HashMap<u64, EventRecord>, StoreError> {
        let stream = &self.shared.parts[self.part_of(tenant)].stream;
        let mut messages: Vec<u64> = positions.iter().map(|&p| record::message_of(p).0).collect();
        messages.sort_unstable();
        messages.dedup();
        let reads = futures_util::stream::iter(messages)
            .map(|seq| async move { (seq, stream.get_raw_message(seq).await) })
            .buffer_unordered(READS_IN_FLIGHT_MAX);
        let mut bodies = HashMap::new();
        futures_util::pin_mut!(reads);
        while let Some((seq, got)) = reads.next().await {
            match got {
                Ok(m) => {
                    let events = record::decode_batch(seq, &m.payload)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    bodies.insert(seq, events);
                }
                Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => continue,
                Err(e) => return Err(unavailable(format!("reading event {seq}: {e}"))),
            }
        }
        let mut out = HashMap::with_capacity(positions.len());
        for position in positions {
            let (seq, index) = record::message_of(position);
            let Some(body) = bodies.get(&seq).and_then(|events| events.get(index)) else {
                continue;
            };
            let record =
                EventRecord::decode(seq, body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.insert(position, record);
        }
        Ok(out)
    }

    /// Log events for `seqs` of `tenant`, in order, with payloads.
    async fn log_events(
        &self,
        tenant: TenantId,
        seqs: &[u64],
    ) -> Result<Vec<LogEvent>, StoreError> {
        let mut records = self.records(tenant, seqs.to_vec()).await?;
        let model = self.model(tenant);
        Ok(seqs
            .iter()
            .filter_map(|&seq| {
                let (id, received_at) = model.live(tenant, seq)?;
                let r = records.remove(&seq)?;
                Some(LogEvent {
                    id,
                    tenant,
                    event_type: r.event_type,
                    source: r.source,
                    occurred_at: r.occurred_at,
                    received_at,
                    payload: r.payload,
                })
            })
            .collect())
    }

    /// An inbox page's events, with payloads and states.
    async fn stored(&self, tenant: TenantId, page: &Page) -> Result<Vec<StoredEvent>, StoreError> {
        let seqs: Vec<u64> = page.found.iter().map(|f| f.0).collect();
        let events = self.log_events(tenant, &seqs).await?;
        let states: HashMap<u64, (u32, EventState)> = page
            .found
            .iter()
            .map(|&(seq, count, state)| (seq, (count, state)))
            .collect();
        Ok(events
            .into_iter()
            .filter_map(|e| {
                let &(count, state) = states.get(&e.id.sequence().0)?;
                Some(StoredEvent {
                    id: e.id,
                    tenant,
                    event_type: e.event_type,
                    source: e.source,
                    occurred_at: e.occurred_at,
                    received_at: e.received_at,
                    payload: e.payload,
                    delivery_count: count,
                    state,
                })
            })
            .collect())
    }

    fn subscription(&self, key: SubKey) -> Result<Subscription, StoreError> {
        self.shared
            .catalog
            .borrow()
            .subscriptions
            .iter()
            .find(|s| s.key == key)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("subscription {}", key.0)))
    }

    /// For a read of `id` that missed: waits until this node has applied the message
    /// that holds it, if the stream holds that message, so an event written through
    /// another node a moment ago is found here too. `false` when there is nothing to
    /// wait for (an id of another deployment, one this node has applied past, or one
    /// past the stream's end: never written), and the miss stands.
    async fn read_through(&self, tenant: TenantId, id: EventId) -> Result<bool, StoreError> {
        let part = &self.shared.parts[self.part_of(tenant)];
        let (msg, _) = record::message_of(id.sequence().0);
        if *part.applied.borrow() >= msg || !self.model(tenant).issued_here(id) {
            return Ok(false);
        }
        let end =
            part.end
                .read(|| async {
                    self.shared
                        .counts
                        .read_throughs
                        .fetch_add(1, Ordering::Relaxed);
                    let info =
                        part.stream.get_info().await.map_err(|e| {
                            unavailable(format!("reading the stream's position: {e}"))
                        })?;
                    Ok(info.state.last_sequence)
                })
                .await?;
        if msg > end {
            return Ok(false);
        }
        let mut applied = part.applied.subscribe();
        tokio::time::timeout(self.shared.write_deadline, applied.wait_for(|&a| a >= msg))
            .await
            .map_err(|_| {
                unavailable(format!(
                    "the stream holds message {msg}, but this node did not apply it within {:?}",
                    self.shared.write_deadline
                ))
            })?
            .map_err(|_| unavailable("an applier stopped"))?;
        Ok(true)
    }

    /// Where a change that starts something (a subscription, a consumer) starts: the
    /// last sequence of its tenant's partition stream, as the stream's leader has it.
    async fn log_end_for(&self, change: &CatalogChange) -> Result<Sequence, StoreError> {
        let tenant = match change {
            CatalogChange::CreateSubscription(s) => s.tenant,
            CatalogChange::CreateConsumer(c) => c.tenant,
            _ => return Ok(Sequence(0)),
        };
        let info = self.shared.parts[self.part_of(tenant)]
            .stream
            .get_info()
            .await
            .map_err(|e| unavailable(format!("reading the stream's position: {e}")))?;
        Ok(Sequence(record::last_position(info.state.last_sequence)))
    }

    /// Waits until this node's watch and every partition's model have the catalog at
    /// `rev` (so a change answers only once this node reads it).
    async fn await_catalog(&self, rev: u64) -> Result<(), StoreError> {
        self.catalog_reached(rev)
            .await
            .map_err(|why| unconfirmed(format!("catalog revision {rev} stored, but {why}")))
    }

    /// Waits until this node's watch and every partition's model have the catalog at
    /// `rev`, for at most the write deadline; on failure, what fell behind.
    async fn catalog_reached(&self, rev: u64) -> Result<(), String> {
        let wait = async {
            let mut versions = self.shared.versioned.subscribe();
            versions
                .wait_for(|v| v.rev >= rev)
                .await
                .map_err(|_| "the catalog watch stopped".to_owned())?;
            self.shared.public_catalog_at(rev).await;
            for part in &self.shared.parts {
                part.catalog_applied
                    .subscribe()
                    .wait_for(|&r| r >= rev)
                    .await
                    .map_err(|_| "an applier stopped".to_owned())?;
            }
            Ok(())
        };
        tokio::time::timeout(self.shared.write_deadline, wait)
            .await
            .map_err(|_| {
                let applied: Vec<u64> = self
                    .shared
                    .parts
                    .iter()
                    .map(|p| *p.catalog_applied.borrow())
                    .collect();
                format!(
                    "not read back within {:?} (watched: {}, applied per partition: {applied:?}{})",
                    self.shared.write_deadline,
                    self.shared.versioned.borrow().rev,
                    self.shared
                        .catalog_fault
                        .lock()
                        .as_deref()
                        .map(|f| format!("; {f}"))
                        .unwrap_or_default(),
                )
            })?
    }
}

/// Runs a set-up step until it succeeds or `deadline` passes (then answers its last
/// error): JetStream refuses its API while the cluster elects a meta leader.
async fn until_ready<T, F, Fut>(deadline: tokio::time::Instant, mut step: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let mut pause = Duration::from_millis(50);
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() + pause > deadline => return Err(e),
            Err(e) => {
                tracing::info!("waiting for NATS JetStream: {e}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Writes `value` under `key` unless the key exists; answers what the key holds.
/// Exactly one of several nodes starting at once writes it.
async fn create_or_read<T>(kv: &kv::Store, key: &str, value: &T) -> Result<T, String>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    let body = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    match kv.create(key, body.into()).await {
        Ok(_) => {}
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.to_string()),
    }
    let stored = kv
        .get(key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("key {key} vanished after it was created"))?;
    serde_json::from_slice(&stored).map_err(|e| format!("key {key} is not Sluice's: {e}"))
}

impl Shared {
    fn origin(&self) -> Origin {
        Origin {
            node: self.node,
            nonce: self.nonces.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Publishes one record, retried with the same `Nats-Msg-Id` through elections and
    /// reconnects; answers its stream sequence.
    /// `maybe_stored`: an earlier attempt (the publisher's pipelined one) went out and its
    /// acknowledgement never came, so a final failure is unconfirmed, not unstored; an
    /// attempt here that times out the same way sets it too (retries carry the same
    /// `Nats-Msg-Id`, so the stream stores the record at most once).
    async fn publish(
        &self,
        subject: &str,
        body: Bytes,
        origin: Origin,
        mut maybe_stored: bool,
    ) -> Result<u64, StoreError> {
        let started = tokio::time::Instant::now();
        let mut backoff = Duration::from_millis(25);
        let msg_id = origin.msg_id();
        let mut last_error = String::new();
        for attempt in 0..PUBLISH_ATTEMPTS_MAX {
            if attempt > 0 {
                self.counts.publish_retries.fetch_add(1, Ordering::Relaxed);
                if started.elapsed() + backoff > self.write_deadline {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            let msg = jetstream::message::PublishMessage::build()
                .payload(body.clone())
                .message_id(&msg_id);
            self.counts.publishes.fetch_add(1, Ordering::Relaxed);
            let acked = match self.js.send_publish(subject.to_owned(), msg).await {
                Ok(ack) => ack.await.inspect_err(|e| {
                    maybe_stored |= e.kind() == PublishErrorKind::TimedOut;
                }),
                Err(e) => Err(e),
            };
            match acked {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) => match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => {
                        return Err(StoreError::Full(e.to_string()))
                    }
                    _ => last_error = e.to_string(),
                },
            }
        }
        if maybe_stored {
            return Err(unconfirmed(format!(
                "a write went out, but no acknowledgement came within {:?}: {last_error}",
                self.write_deadline
            )));
        }
        Err(StoreError::Unavailable(format!(
            "NATS JetStream did not store a write within {:?}: {last_error}",
            self.write_deadline
        )))
    }

    fn wait(&self, nonce: u64) -> Waiter<'_> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().insert(nonce, tx);
        Waiter {
            shared: self,
            nonce,
            rx,
        }
    }

    /// Publishes a change record to partition `p` and answers the outcome this node's
    /// applier computed for it.
    async fn propose_op(&self, p: usize, subject: &str, op: Op) -> Result<Outcome, StoreError> {
        let envelope = Envelope {
            origin: self.origin(),
            at: self.clock.now_ms(),
            rev: self.versioned.borrow().rev,
            op,
        };
        debug_assert!(p < self.parts.len());
        let waiter = self.wait(envelope.origin.nonce);
        let seq = self
            .publish(subject, envelope.encode(), envelope.origin, false)
            .await?;
        self.parts[p].acked.fetch_max(seq, Ordering::Relaxed);
        self.outcome(waiter).await
    }

    async fn outcome(&self, mut waiter: Waiter<'_>) -> Result<Outcome, StoreError> {
        match tokio::time::timeout(self.write_deadline, &mut waiter.rx).await {
            Ok(Ok(Outcome::Failed(e))) => Err(e),
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(unconfirmed("stored, but the log follower stopped")),
            // The publish may still be retrying, or acknowledged and not yet applied.
            Err(_) => Err(unconfirmed(format!(
                "not stored and read back within {:?}",
                self.write_deadline
            ))),
        }
    }

    /// Waits until [`Store::catalog`] shows revision `rev` or a later one. Only ever
    /// called once `versioned` has it: the watch task publishes both in one step, so
    /// this yields for the few instructions between them.
    async fn public_catalog_at(&self, rev: u64) {
        while self.public_rev.load(Ordering::Acquire) < rev {
            tokio::task::yield_now().await;
        }
    }

    /// Brings partition `p`'s model to the newest catalog this node has seen.
    fn catch_up_catalog(&self, p: usize) {
        let part = &self.parts[p];
        let latest = self.versioned.borrow().clone();
        let rev = {
            let mut model = part.model.lock();
            model.set_catalog(latest.rev, latest.catalog);
            model.catalog_rev
        };
        part.catalog_applied.send_replace(rev);
    }

    /// Applies the message at `seq` of partition `p`; runs on its applier only.
    async fn apply(
        &self,
        p: usize,
        seq: u64,
        body: &Bytes,
        versions: &mut watch::Receiver<Versioned>,
    ) {
        let part = &self.parts[p];
        enum Record {
            Events(Vec<EventRecord>),
            Change(Envelope),
        }
        let record = match body.first() {
            Some(&record::BATCH_TAG) => record::decode_batch(seq, body).and_then(|events| {
                events
                    .iter()
                    .map(|e| EventRecord::decode(seq, e))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Record::Events)
            }),
            _ => Envelope::decode(seq, body).map(Record::Change),
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                self.counts.bad_records.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("skipping a message of the log that is not Sluice's: {e}");
                part.applied.send_replace(seq);
                return;
            }
        };
        if let Record::Change(e) = &record {
            // A change proposed under a catalog this node has not seen yet waits for
            // it: applying it earlier could decide differently than other nodes do.
            let mut waited = false;
            loop {
                let wait = versions.wait_for(|v| v.rev >= e.rev);
                match tokio::time::timeout(Duration::from_secs(5), wait).await {
                    Ok(Ok(_)) => break,
                    Ok(Err(_)) => return,
                    Err(_) => {
                        waited = true;
                        *part.fault.lock() = Some(format!(
                            "record {seq} needs catalog revision {}; waiting for the catalog watch",
                            e.rev
                        ));
                    }
                }
            }
            if waited {
                *part.fault.lock() = None;
            }
        }
        self.catch_up_catalog(p);
        let mut fx = Effects::default();
        let mut outcomes: Vec<(Origin, Outcome)> = Vec::new();
        {
            let mut model = part.model.lock();
            match &record {
                Record::Events(events) => {
                    for (index, e) in events.iter().enumerate() {
                        let position = record::position(seq, index);
                        let outcome = Outcome::Appended(model.apply_event(position, e, &mut fx));
                        outcomes.push((e.origin, outcome));
                    }
                }
                Record::Change(e) => outcomes.push((
                    e.origin,
                    model.apply_op(seq, e.origin.node, e.at, &e.op, &mut fx),
                )),
            }
        }
        if !fx.committed.is_empty() && self.feed.has_readers() {
            let mut committed = fx.committed;
            let bytes: usize = committed
                .iter()
                .map(|c| c.payload.as_ref().map_or(0, Bytes::len))
                .sum();
            if bytes > FEED_INLINE_BYTES_MAX {
                for c in &mut committed {
                    c.payload = None;
                }
            }
            self.feed.send(committed.into());
        }
        if !fx.notify.is_empty() {
            self.signals.notify(fx.notify.into_iter());
        }
        part.applied.send_replace(seq);
        for (origin, outcome) in outcomes {
            if origin.node == self.node {
                self.answer(origin.nonce, outcome);
            }
        }
    }

    /// Hands a record's outcome to the request waiting for it, if it still is.
    fn answer(&self, nonce: u64, outcome: Outcome) {
        if let Some(tx) = self.waiters.lock().remove(&nonce) {
            let _ = tx.send(outcome);
        }
    }
}

/// Publishes partition `p`'s appended events: the group commit of this backend.
///
/// Each round takes everything queued (up to [`ROUND_EVENTS_MAX`]), cuts it into batch
/// messages at each change of subject (tenant and type) and at [`BATCH_BYTES_MAX`],
/// publishes them all pipelined, and waits for their acknowledgements before the next
/// round; what arrives meanwhile makes the next round's batches. Under load a batch
/// holds many events (one Raft entry, one fsync, one delivery to each node for all of
/// them); alone, an event goes at once. Queue order is kept: a request's events stay
/// in its order, and the log's order is the queue's.
async fn run_publisher(shared: Arc<Shared>, p: usize, mut rx: mpsc::Receiver<Pending>) {
    let mut round: Vec<Pending> = Vec::with_capacity(ROUND_EVENTS_MAX);
    while let Some(first) = rx.recv().await {
        round.push(first);
        while round.len() < ROUND_EVENTS_MAX {
            match rx.try_recv() {
                Ok(next) => round.push(next),
                Err(_) => break,
            }
        }
        let batches = cut_batches(&round);
        let mut sent = Vec::with_capacity(batches.len());
        for range in &batches {
            let items = &round[range.clone()];
            let body = record::encode_batch(items.iter().map(|i| &i.record));
            let msg = jetstream::message::PublishMessage::build()
                .payload(body.clone())
                .message_id(items[0].origin.msg_id());
            shared.counts.publishes.fetch_add(1, Ordering::Relaxed);
            let ack = shared.js.send_publish(items[0].subject.clone(), msg).await;
            sent.push((range.clone(), body, ack));
        }
        let acked = &shared.parts[p].acked;
        for (range, body, ack) in sent {
            let (stored, timed_out) = match ack {
                Ok(ack) => match ack.await {
                    Ok(a) => (Some(a.sequence), false),
                    Err(e) => (None, e.kind() == PublishErrorKind::TimedOut),
                },
                Err(_) => (None, false),
            };
            if let Some(seq) = stored {
                acked.fetch_max(seq, Ordering::Relaxed);
                continue;
            }
            // Again on its own, with the same id: stored once whichever try landed.
            let items = &round[range];
            match shared
                .publish(&items[0].subject, body, items[0].origin, timed_out)
                .await
            {
                Ok(seq) => {
                    acked.fetch_max(seq, Ordering::Relaxed);
                }
                Err(e) => {
                    for item in items {
                        shared.answer(item.origin.nonce, Outcome::Failed(e.clone()));
                    }
                }
            }
        }
        round.clear();
        debug_assert!(p < shared.parts.len());
    }
}

/// Where a round's batches begin and end: at each change of subject, and before a
/// batch would pass [`BATCH_BYTES_MAX`] or [`record::BATCH_EVENTS_MAX`] events.
fn cut_batches(round: &[Pending]) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, item) in round.iter().enumerate() {
        let full = bytes + item.record.len() > BATCH_BYTES_MAX
            || i - start == record::BATCH_EVENTS_MAX
            || round[start].subject != item.subject;
        if i > start && full {
            batches.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += item.record.len();
    }
    if start < round.len() {
        batches.push(start..round.len());
    }
    batches
}

/// Follows partition `p`'s stream from its first message, applying each in order, for
/// the store's lifetime, and brings its model to each new catalog as it comes; after
/// an error, starts again after the last message applied.
async fn run_applier(shared: Arc<Shared>, p: usize) {
    let part = &shared.parts[p];
    let mut versions = shared.versioned.subscribe();
    // Subscribing marks the current catalog as seen: take it now, or a change made
    // before this task first ran would wait for the next one.
    shared.catch_up_catalog(p);
    let mut backoff = Duration::from_millis(50);
    loop {
        let from = *part.applied.borrow() + 1;
        let consumer = part
            .stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: from,
                },
                // The follower notices a lost stream leader by missed idle heartbeats
                // (two in a row), and the client derives the heartbeat from this
                // expiry: the default (30 s) left a node deaf for ~30 s after a server
                // died, every write through it waiting.
                max_expires: FOLLOW_EXPIRES,
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match messages {
            Ok(mut messages) => {
                *part.fault.lock() = None;
                backoff = Duration::from_millis(50);
                loop {
                    tokio::select! {
                        m = messages.next() => match m {
                            Some(Ok(m)) => {
                                let seq = match m.info() {
                                    Ok(info) => info.stream_sequence,
                                    Err(e) => {
                                        *part.fault.lock() = Some(format!("a message without its sequence: {e}"));
                                        break;
                                    }
                                };
                                if seq > *part.applied.borrow() {
                                    shared.apply(p, seq, &m.payload, &mut versions).await;
                                }
                            }
                            Some(Err(e)) => {
                                *part.fault.lock() = Some(format!("following the log: {e}"));
                                break;
                            }
                            None => {
                                *part.fault.lock() = Some("the log follower ended".into());
                                break;
                            }
                        },
                        changed = versions.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            shared.catch_up_catalog(p);
                        }
                        // An ordered consumer can hang after its client reconnects to
                        // another server while the stream elects a leader, neither
                        // delivering nor failing: the 3-node test once saw writes
                        // through the survivor wait out two 15 s deadlines. Silence is
                        // normal on an idle stream; silence while this node's own
                        // acknowledged write is unapplied is a stall.
                        () = tokio::time::sleep(FOLLOW_STALL) => {
                            let (acked, applied) = (part.acked.load(Ordering::Relaxed), *part.applied.borrow());
                            if acked > applied {
                                shared.counts.follower_stalls.fetch_add(1, Ordering::Relaxed);
                                *part.fault.lock() = Some(format!(
                                    "the log follower stalled at {applied} with {acked} acknowledged; following again"
                                ));
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => *part.fault.lock() = Some(format!("following the log: {e}")),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Watches the catalog key for the store's lifetime, publishing each new value.
async fn run_catalog_watch(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match shared.kv.watch_with_history(CATALOG_KEY).await {
            Ok(mut entries) => {
                *shared.catalog_fault.lock() = None;
                backoff = Duration::from_millis(50);
                while let Some(entry) = entries.next().await {
                    let entry = match entry {
                        Ok(e) => e,
                        Err(e) => {
                            *shared.catalog_fault.lock() =
                                Some(format!("watching the catalog: {e}"));
                            break;
                        }
                    };
                    if entry.operation != kv::Operation::Put {
                        continue;
                    }
                    let catalog: Catalog = match serde_json::from_slice(&entry.value) {
                        Ok(c) => c,
                        Err(e) => {
                            *shared.catalog_fault.lock() = Some(format!(
                                "catalog revision {} is not Sluice's: {e}",
                                entry.revision
                            ));
                            continue;
                        }
                    };
                    if entry.revision <= shared.versioned.borrow().rev {
                        continue;
                    }
                    let catalog = Arc::new(catalog);
                    shared.versioned.send_replace(Versioned {
                        rev: entry.revision,
                        catalog: catalog.clone(),
                    });
                    shared.catalog.send_replace(catalog);
                    shared.public_rev.store(entry.revision, Ordering::Release);
                }
            }
            Err(e) => *shared.catalog_fault.lock() = Some(format!("watching the catalog: {e}")),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

impl Store for JetStreamStore {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        let shared = &*self.shared;
        let now = shared.clock.now_ms();
        // Room in every partition's queue first, for all of them or none: a request
        // refused as overloaded must have stored nothing.
        let mut per_part = vec![0usize; shared.parts.len()];
        for e in &events {
            per_part[self.part_of(e.tenant)] += 1;
        }
        let mut permits = Vec::with_capacity(shared.parts.len());
        for (p, &n) in per_part.iter().enumerate() {
            if n == 0 {
                continue;
            }
            match shared.parts[p].queue.try_reserve_many(n) {
                Ok(reserved) => permits.push((p, reserved)),
                Err(mpsc::error::TrySendError::Full(())) => {
                    shared.counts.overloaded.fetch_add(1, Ordering::Relaxed);
                    return Err(StoreError::Overloaded);
                }
                Err(mpsc::error::TrySendError::Closed(())) => {
                    return Err(unavailable("the publisher stopped"))
                }
            }
        }
        let mut waiters = Vec::with_capacity(events.len());
        let mut pending = Vec::with_capacity(events.len());
        for e in &events {
            let origin = shared.origin();
            let record = EventRecord::encode(origin, now, e).ok_or_else(|| {
                StoreError::Conflict("an event field longer than 65535 bytes".into())
            })?;
            let p = self.part_of(e.tenant);
            let subject = shared
                .names
                .event_subject(p as u32, e.tenant, &e.event_type);
            waiters.push(shared.wait(origin.nonce));
            pending.push((
                p,
                Pending {
                    subject,
                    record,
                    origin,
                },
            ));
        }
        for (p, item) in pending {
            // A permit was reserved above for each event of each partition.
            if let Some(permit) = permits
                .iter_mut()
                .find(|(q, _)| *q == p)
                .and_then(|(_, reserved)| reserved.next())
            {
                permit.send(item);
            }
        }
        drop(permits);
        let mut outcomes = Vec::with_capacity(waiters.len());
        for w in waiters {
            match shared.outcome(w).await? {
                Outcome::Appended(o) => outcomes.push(o),
                other => return Err(StoreError::Corrupt(format!("an append answered {other:?}"))),
            }
        }
        Ok(outcomes)
    }

    async fn read_log(&self, query: LogQuery) -> Result<LogPage, StoreError> {
        let limit = query.limit.clamp(1, 1000);
        let (seqs, position, has_more) = self.model(query.tenant).log_page(
            query.tenant,
            query.after.map(|s| s.0),
            limit,
            query.event_type.as_deref(),
        );
        let events = self.log_events(query.tenant, &seqs).await?;
        Ok(LogPage {
            events,
            position: position.map(Sequence),
            has_more,
        })
    }

    async fn log_position(&self, tenant: TenantId) -> Result<Option<Sequence>, StoreError> {
        Ok(self.model(tenant).log_end(tenant).map(Sequence))
    }

    async fn feed(&self) -> Result<CommitFeed, StoreError> {
        Ok(self.shared.feed.subscribe())
    }

    async fn list(&self, query: InboxQuery) -> Result<InboxPage, StoreError> {
        let limit = query.limit.clamp(1, 1000);
        let inbox = InboxKey {
            tenant: query.tenant,
            consumer: query.consumer,
        };
        let page = match query.lease_ms {
            Some(lease_ms) => match self
                .op(
                    query.tenant,
                    Op::Lease {
                        inbox: inbox.into(),
                        after: query.after.map(|s| s.0),
                        limit,
                        event_type: query.event_type.clone(),
                        lease_ms,
                        max_deliveries: query.max_deliveries,
                    },
                )
                .await?
            {
                Outcome::Page(p) => p,
                other => return Err(StoreError::Corrupt(format!("a lease answered {other:?}"))),
            },
            None => {
                let now = self.shared.clock.now_ms();
                self.model(query.tenant).page(
                    inbox,
                    query.after.map(|s| s.0),
                    limit,
                    query.event_type.as_deref(),
                    None,
                    now,
                )
            }
        };
        let events = self.stored(query.tenant, &page).await?;
        Ok(InboxPage {
            next_cursor: page.found.last().map(|f| Sequence(f.0)),
            events,
            has_more: page.has_more,
            next_visible: page.next_visible,
        })
    }

    async fn get(
        &self,
        inbox: impl Into<InboxKey> + Send,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let inbox = inbox.into();
        let mut found = {
            let now = self.shared.clock.now_ms();
            self.model(inbox.tenant).state_of(inbox, id, now)
        };
        if found.is_none() && self.read_through(inbox.tenant, id).await? {
            let now = self.shared.clock.now_ms();
            found = self.model(inbox.tenant).state_of(inbox, id, now);
        }
        let Some((state, count)) = found else {
            return Ok(None);
        };
        let page = Page {
            found: vec![(id.sequence().0, count, state)],
            ..Page::default()
        };
        Ok(self.stored(inbox.tenant, &page).await?.pop())
    }

    async fn settle(
        &self,
        inbox: impl Into<InboxKey> + Send,
        ids: Vec<EventId>,
        how: Settle,
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        let inbox = inbox.into();
        let outcomes = match self
            .op(
                inbox.tenant,
                Op::Settle {
                    inbox: inbox.into(),
                    ids: ids.iter().copied().map(Into::into).collect(),
                    how: how.into(),
                    leases: None,
                },
            )
            .await?
        {
            Outcome::Settled(s) => s,
            other => return Err(StoreError::Corrupt(format!("a settle answered {other:?}"))),
        };
        if how == Settle::Delete {
            // The log no longer holds them: take their bytes off the stream too, once
            // no event of their message is left (a message is a batch of events).
            let stream = &self.shared.parts[self.part_of(inbox.tenant)].stream;
            let mut emptied: Vec<u64> = {
                let model = self.model(inbox.tenant);
                ids.iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| **o == SettleOutcome::Done)
                    .map(|(id, _)| record::message_of(id.sequence().0).0)
                    .filter(|&msg| {
                        !model.any_live(
                            inbox.tenant,
                            record::position(msg, 0),
                            record::last_position(msg),
                        )
                    })
                    .collect()
            };
            emptied.dedup();
            for msg in emptied {
                if stream.delete_message(msg).await.is_err() {
                    self.shared
                        .counts
                        .deletes_failed
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(outcomes)
    }

    async fn ack_leased(
        &self,
        inbox: impl Into<InboxKey> + Send,
        acks: Vec<(EventId, u32)>,
    ) -> Result<Vec<SettleOutcome>, StoreError> {
        let inbox = inbox.into();
        let (ids, leases): (Vec<EventId>, Vec<u32>) = acks.into_iter().unzip();
        match self
            .op(
                inbox.tenant,
                Op::Settle {
                    inbox: inbox.into(),
                    ids: ids.into_iter().map(Into::into).collect(),
                    how: record::How::Ack,
                    leases: Some(leases),
                },
            )
            .await?
        {
            Outcome::Settled(s) => Ok(s),
            other => Err(StoreError::Corrupt(format!("an ack answered {other:?}"))),
        }
    }

    async fn lease_action(
        &self,
        inbox: impl Into<InboxKey> + Send,
        id: EventId,
        action: LeaseAction,
    ) -> Result<LeaseOutcome, StoreError> {
        let inbox = inbox.into();
        let (extend, lease, ms) = match action {
            LeaseAction::Nack { lease, delay_ms } => (false, lease, delay_ms),
            LeaseAction::Extend { lease, lease_ms } => (true, Some(lease), lease_ms),
        };
        match self
            .op(
                inbox.tenant,
                Op::LeaseAction {
                    inbox: inbox.into(),
                    id: id.into(),
                    extend,
                    lease,
                    ms,
                },
            )
            .await?
        {
            Outcome::Lease(o) => Ok(o),
            other => Err(StoreError::Corrupt(format!(
                "a lease action answered {other:?}"
            ))),
        }
    }

    async fn inbox_states(
        &self,
        inbox: impl Into<InboxKey> + Send,
        ids: Vec<EventId>,
    ) -> Result<Vec<Option<(EventState, u32)>>, StoreError> {
        let inbox = inbox.into();
        let now = self.shared.clock.now_ms();
        let model = self.model(inbox.tenant);
        Ok(ids
            .iter()
            .map(|&id| model.state_of(inbox, id, now))
            .collect())
    }

    async fn inbox_dead_letters(
        &self,
        inbox: impl Into<InboxKey> + Send,
        after: Option<Sequence>,
        limit: usize,
    ) -> Result<InboxPage, StoreError> {
        let inbox = inbox.into();
        let limit = limit.clamp(1, 1000);
        let (found, position, has_more) =
            self.model(inbox.tenant)
                .dead_page(inbox, after.map(|s| s.0), limit);
        let page = Page {
            found: found
                .into_iter()
                .map(|(s, c)| (s, c, EventState::Dead))
                .collect(),
            ..Page::default()
        };
        let events = self.stored(inbox.tenant, &page).await?;
        Ok(InboxPage {
            events,
            next_cursor: position.map(Sequence),
            has_more,
            next_visible: None,
        })
    }

    fn inbox_signal(
        &self,
        inbox: impl Into<InboxKey>,
        interchangeable: bool,
    ) -> Arc<tokio::sync::Notify> {
        self.shared.signals.get(inbox.into(), interchangeable)
    }

    async fn inbox_summaries(&self) -> Result<Vec<InboxSummary>, StoreError> {
        Ok(self
            .shared
            .parts
            .iter()
            .flat_map(|p| p.model.lock().summaries())
            .collect())
    }

    async fn stats(&self) -> StoreStats {
        let mut stats = StoreStats {
            commits: self.shared.counts.publishes.load(Ordering::Relaxed),
            queue_depth: self
                .shared
                .parts
                .iter()
                .map(|p| (PUBLISH_QUEUE_EVENTS_MAX - p.queue.capacity()) as u64)
                .sum(),
            overloaded_total: self.shared.counts.overloaded.load(Ordering::Relaxed),
            ..StoreStats::default()
        };
        for part in &self.shared.parts {
            let counts = part.model.lock().counts;
            stats.events_appended += counts.events;
            stats.pending_expired += counts.pending_expired;
            stats.dead_lettered += counts.dead_lettered;
        }
        stats
    }

    async fn write_metrics(&self, out: &mut Exposition) {
        let c = &self.shared.counts;
        out.counter(
            "sluice_jetstream_publishes_total",
            "Messages this node published to the streams (a batch of events is one; retries included).",
            c.publishes.load(Ordering::Relaxed),
        );
        out.counter(
            "sluice_jetstream_publish_retries_total",
            "Publishes retried through a leader election, a reconnect or a timeout.",
            c.publish_retries.load(Ordering::Relaxed),
        );
        out.counter(
            "sluice_jetstream_follower_stalls_total",
            "Log followers started again after falling silent while this node's acknowledged write was unapplied.",
            c.follower_stalls.load(Ordering::Relaxed),
        );
        out.counter(
            "sluice_jetstream_catalog_reads_total",
            "Reads of the catalog bucket's revision, by lists and to confirm that a key, consumer, subscription or tenant this node lacks was not just made through another node (concurrent callers share one).",
            c.catalog_reads.load(Ordering::Relaxed),
        );
        out.counter(
            "sluice_jetstream_read_throughs_total",
            "Stream requests by event reads that missed past what this node had applied (an event written through another node a moment ago is waited for; concurrent callers share one).",
            c.read_throughs.load(Ordering::Relaxed),
        );
        out.counter(
            "sluice_jetstream_bad_records_total",
            "Messages of the streams that were not Sluice's records, skipped.",
            c.bad_records.load(Ordering::Relaxed),
        );
        out.counter(
            "sluice_jetstream_delete_failures_total",
            "Deleted events whose message could not be removed from the stream (the event is gone from every inbox and read regardless).",
            c.deletes_failed.load(Ordering::Relaxed),
        );
        out.gauge(
            "sluice_jetstream_waiting_writes",
            "Writes of this node waiting for their record to be stored and applied.",
            self.shared.waiters.lock().len() as u64,
        );
        out.gauge(
            "sluice_jetstream_catalog_revision",
            "The catalog bucket revision this node has applied.",
            self.shared.versioned.borrow().rev,
        );
        out.family(
            "sluice_jetstream_publish_queue",
            "gauge",
            "Appended events waiting for their partition's publisher (bounded; past it, 503).",
        );
        for (p, part) in self.shared.parts.iter().enumerate() {
            out.sample(
                "sluice_jetstream_publish_queue",
                &format!("partition=\"{p}\""),
                (PUBLISH_QUEUE_EVENTS_MAX - part.queue.capacity()) as u64,
            );
        }
        out.family(
            "sluice_jetstream_applied_sequence",
            "gauge",
            "The stream sequence this node has applied up to, per partition stream.",
        );
        for (p, part) in self.shared.parts.iter().enumerate() {
            out.sample(
                "sluice_jetstream_applied_sequence",
                &format!("partition=\"{p}\""),
                *part.applied.borrow(),
            );
        }
    }

    async fn health(&self) -> Health {
        let fault = self.shared.catalog_fault.lock().clone().or_else(|| {
            self.shared
                .parts
                .iter()
                .find_map(|p| p.fault.lock().clone())
        });
        if let Some(fault) = fault {
            return Health {
                ready: false,
                detail: Some(format!("NATS JetStream: {fault}")),
            };
        }
        match self.shared.client.connection_state() {
            async_nats::connection::State::Connected => Health {
                ready: true,
                detail: None,
            },
            other => Health {
                ready: false,
                detail: Some(format!("NATS connection is {other}")),
            },
        }
    }

    async fn sync(&self) -> Result<(), StoreError> {
        // Every write answered only once the stream stored it.
        Ok(())
    }

    fn catalog(&self) -> CatalogWatch {
        self.shared.catalog.subscribe()
    }

    async fn catalog_sync(&self) -> Result<(), StoreError> {
        let shared = &*self.shared;
        // Shared by the callers waiting for it: a flood of unknown keys costs one read
        // per round trip, not one per request (see `shared_read`).
        let rev = shared
            .catalog_revision
            .read(|| async {
                shared.counts.catalog_reads.fetch_add(1, Ordering::Relaxed);
                let entry = shared
                    .kv
                    .entry(CATALOG_KEY)
                    .await
                    .map_err(|e| unavailable(format!("reading the catalog: {e}")))?;
                Ok(entry.map_or(0, |e| e.revision))
            })
            .await?;
        // Up to date when the watch and every partition's model have it: a consumer
        // found in the catalog is then known to the inbox that serves it.
        self.catalog_reached(rev).await.map_err(|why| {
            unavailable(format!(
                "the catalog bucket is at revision {rev}, but this node's copy is {why}"
            ))
        })
    }

    async fn fetch_deliveries(&self, sub: SubKey, max: usize) -> Result<Fetched, StoreError> {
        let subscription = self.subscription(sub)?;
        let tenant = subscription.tenant;
        let now = self.shared.clock.now_ms();
        let read_pos_hint = {
            let model = self.model(tenant);
            if let Some((owner, until)) = model.owner(sub, now) {
                if owner != self.shared.node {
                    // Another node dispatches it: look again when its lease could run out.
                    return Ok(Fetched {
                        deliveries: Vec::new(),
                        next_due_at: Some(until),
                    });
                }
            }
            if !model.has_due(sub, tenant, now) {
                return Ok(Fetched {
                    deliveries: Vec::new(),
                    next_due_at: model.next_due(sub, now),
                });
            }
            model.sub_state(sub).map_or(0, |s| s.read_pos)
        };
        let fetch = FetchRecord {
            sub: sub.0,
            tenant: tenant.0,
            max,
            event_types: subscription.event_types.clone(),
            fifo: subscription.ordering == crate::catalog::Ordering::Fifo,
            max_in_flight: subscription.max_in_flight as usize,
            read_pos_hint,
            owner_lease_ms: self.shared.dispatch_lease.as_millis() as i64,
        };
        let picks = match self.op(tenant, Op::Fetch(fetch)).await? {
            Outcome::Fetched(p) => p,
            other => return Err(StoreError::Corrupt(format!("a fetch answered {other:?}"))),
        };
        let seqs: Vec<u64> = picks.picks.iter().map(|p| p.0).collect();
        let events = self.log_events(tenant, &seqs).await?;
        let deliveries = picks
            .picks
            .iter()
            .filter_map(|&(seq, attempt, replay)| {
                let event = events.iter().find(|e| e.id.sequence().0 == seq)?.clone();
                Some(Delivery {
                    event,
                    attempt,
                    replay,
                })
            })
            .collect();
        Ok(Fetched {
            deliveries,
            next_due_at: picks.next_due_at,
        })
    }

    async fn settle_deliveries(
        &self,
        sub: SubKey,
        settled: Vec<Settled>,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let tenant = self.subscription(sub)?.tenant;
        let mut serials = Vec::with_capacity(settled.len());
        for chunk in settled.chunks(model::SETTLES_PER_RECORD_MAX) {
            let items: Vec<SettledRecord> = chunk.iter().map(SettledRecord::from).collect();
            match self
                .op(tenant, Op::SettleDeliveries { sub: sub.0, items })
                .await?
            {
                Outcome::Serials(s) => serials.extend(s),
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "a delivery settle answered {other:?}"
                    )))
                }
            }
        }
        Ok(serials)
    }

    async fn delivery_state(&self, sub: SubKey) -> Result<DeliveryState, StoreError> {
        let subscription = self.subscription(sub)?;
        let model = self.model(subscription.tenant);
        let filter = TypeFilter::of_patterns(&subscription.event_types);
        let unread = model.unread(sub, subscription.tenant, &filter);
        let Some(s) = model.sub_state(sub) else {
            return Ok(DeliveryState::default());
        };
        Ok(DeliveryState {
            backlog: unread + (s.window.len() + s.replaying.len() + s.replay_queue.len()) as u64,
            in_flight: s.in_flight(),
            retrying: s.retrying(),
            dead_letters: s.dead.len() as u64,
            last_success_at: s.last_success_at,
            last_failure_at: s.last_failure_at,
            failing_since: s.failing_since,
            position: Sequence(s.cursor),
        })
    }

    async fn attempts(&self, sub: SubKey, query: AttemptQuery) -> Result<AttemptPage, StoreError> {
        let subscription = self.subscription(sub)?;
        let model = self.model(subscription.tenant);
        Ok(model
            .sub_state(sub)
            .map_or_else(AttemptPage::default, |state| state.attempt_page(&query)))
    }

    async fn dead_letters(
        &self,
        sub: SubKey,
        after: Option<Sequence>,
        limit: usize,
    ) -> Result<DeadLetterPage, StoreError> {
        let subscription = self.subscription(sub)?;
        let limit = limit.clamp(1, 1000);
        let (found, has_more) = {
            let model = self.model(subscription.tenant);
            let Some(state) = model.sub_state(sub) else {
                return Ok(DeadLetterPage::default());
            };
            let from = after.map_or(0, |s| s.0 + 1);
            let mut range = state.dead.range(from..);
            let found: Vec<(u64, UnixMs, u32)> = range
                .by_ref()
                .take(limit)
                .map(|(s, d)| (*s, d.at, d.attempts))
                .collect();
            (found, range.next().is_some())
        };
        let seqs: Vec<u64> = found.iter().map(|f| f.0).collect();
        let events = self.log_events(subscription.tenant, &seqs).await?;
        let next = found.last().map(|f| Sequence(f.0));
        let dead = found
            .into_iter()
            .filter_map(|(seq, at, attempts)| {
                let event = events.iter().find(|e| e.id.sequence().0 == seq)?.clone();
                Some(DeadLetter {
                    event,
                    dead_at: at,
                    attempts,
                })
            })
            .collect();
        Ok(DeadLetterPage {
            dead,
            next,
            has_more,
        })
    }

    async fn replay(&self, sub: SubKey, what: Replay) -> Result<u64, StoreError> {
        let subscription = self.subscription(sub)?;
        let tenant = subscription.tenant;
        let filter = TypeFilter::of_patterns(&subscription.event_types);
        // Ids written through another node a moment ago are replayed too: wait for
        // the newest of them first (nothing to wait for when this node has it).
        if let Replay::Ids(ids) = &what {
            if let Some(&newest) = ids.iter().max_by_key(|id| id.sequence()) {
                self.read_through(tenant, newest).await?;
            }
        }
        let mut seqs = {
            let model = self.model(tenant);
            match what {
                Replay::Ids(ids) => ids
                    .into_iter()
                    .filter(|&id| {
                        model
                            .event_type(tenant, id)
                            .is_some_and(|t| filter.matches(t))
                    })
                    .map(|id| id.sequence().0)
                    .collect::<Vec<u64>>(),
                Replay::Range { since, until } => {
                    model.received_between(tenant, &filter, since, until, REPLAY_EVENTS_MAX)
                }
            }
        };
        seqs.sort_unstable();
        seqs.dedup();
        if seqs.is_empty() {
            return Ok(0);
        }
        match self.op(tenant, Op::Replay { sub: sub.0, seqs }).await? {
            Outcome::Replayed(Some(n)) => Ok(n),
            Outcome::Replayed(None) => Err(StoreError::Overloaded),
            other => Err(StoreError::Corrupt(format!("a replay answered {other:?}"))),
        }
    }

    async fn change_catalog(&self, change: CatalogChange) -> Result<Changed, StoreError> {
        let shared = &*self.shared;
        let mut versions = shared.versioned.subscribe();
        let mut synced = false;
        for _ in 0..CATALOG_RETRIES_MAX {
            let current = versions.borrow_and_update().clone();
            let log_end = self.log_end_for(&change).await?;
            let now = shared.clock.now_ms();
            let (next, changed) = match current.catalog.apply(change.clone(), now, log_end) {
                Ok(applied) => applied,
                // Refused on this node's copy, which may lag the bucket (a key revoked
                // here a moment after another node made it): judged once more on the
                // newest before the refusal is believed.
                Err(e) if !synced => {
                    synced = true;
                    self.catalog_sync().await?;
                    if versions.borrow().rev > current.rev {
                        continue;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let body = serde_json::to_vec(&next)
                .map_err(|e| StoreError::Corrupt(format!("serializing the catalog: {e}")))?;
            match shared
                .kv
                .update(CATALOG_KEY, body.into(), current.rev)
                .await
            {
                Ok(rev) => {
                    self.await_catalog(rev).await?;
                    return Ok(changed);
                }
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    // Another node changed it first: wait for that change here, then
                    // apply this one to it.
                    let _ = tokio::time::timeout(Duration::from_secs(2), versions.changed()).await;
                }
                // The update went out and its answer did not come: it may be stored.
                Err(e) if e.kind() == kv::UpdateErrorKind::TimedOut => {
                    return Err(unconfirmed(format!("changing the catalog: {e}")))
                }
                Err(e) => return Err(unavailable(format!("changing the catalog: {e}"))),
            }
        }
        Err(unavailable(format!(
            "the catalog changed {CATALOG_RETRIES_MAX} times under this change; retry"
        )))
    }
}
