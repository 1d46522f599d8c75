//! The commit feed: what was just made durable, for readers that follow the log live
//! (the webhook dispatcher, the live tail), and [`LogFollower`], which follows one
//! tenant's log from a position without skipping or repeating anything.
//!
//! The feed itself is a bounded broadcast: the commit path never waits for a reader, so
//! a reader that falls more than [`FEED_CAPACITY`] commits behind loses its place in the
//! feed. That is not a loss of events. The reader is told it lagged, and reads the log
//! from the last position it handled until it has caught up ([`LogFollower`] does
//! exactly that), so the feed is only ever a shortcut past the log, never the record.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::store::Store;
use crate::types::{Committed, LogEvent, LogQuery, Sequence, TenantId};

/// Commits the feed buffers for its slowest reader before that reader lags. Each entry
/// is one commit (one group commit's events); with payloads carried only for commits up
/// to [`FEED_INLINE_BYTES_MAX`], the feed holds at most ~64 MiB of payloads.
pub const FEED_CAPACITY: usize = 1024;

/// Payload bytes of one commit the feed carries inline. A larger commit is announced
/// without payloads: its readers read those events from the log.
pub const FEED_INLINE_BYTES_MAX: usize = 64 << 10;

/// Events one catch-up read asks the log for.
const CATCH_UP_PAGE: usize = 256;

/// What a feed reader gets next.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// One commit's events, in sequence order.
    Commit(Arc<[Committed]>),
    /// The reader fell behind and commits were dropped for it: read the log from the
    /// last position handled.
    Lagged,
    /// The store closed; nothing more will come.
    Closed,
}

/// A subscription to the commit feed.
#[derive(Debug)]
pub struct CommitFeed {
    rx: broadcast::Receiver<Arc<[Committed]>>,
}

impl CommitFeed {
    /// The next commit, or why there is none.
    pub async fn next(&mut self) -> FeedItem {
        match self.rx.recv().await {
            Ok(commit) => FeedItem::Commit(commit),
            Err(broadcast::error::RecvError::Lagged(_)) => FeedItem::Lagged,
            Err(broadcast::error::RecvError::Closed) => FeedItem::Closed,
        }
    }
}

/// The sending side of the feed, owned by a backend.
#[derive(Debug, Clone)]
pub struct FeedSender {
    tx: broadcast::Sender<Arc<[Committed]>>,
}

impl Default for FeedSender {
    fn default() -> Self {
        FeedSender {
            tx: broadcast::channel(FEED_CAPACITY).0,
        }
    }
}

impl FeedSender {
    /// Whether anyone is subscribed (a commit with no reader skips building its
    /// announcement).
    pub fn has_readers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Announces one commit. A send with no reader is not an error.
    pub fn send(&self, commit: Arc<[Committed]>) {
        let _ = self.tx.send(commit);
    }

    /// A new subscription; it sees every commit announced from now on.
    pub fn subscribe(&self) -> CommitFeed {
        CommitFeed {
            rx: self.tx.subscribe(),
        }
    }
}

/// Which events of the tenant a follower returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TypeFilter {
    /// Every event type.
    #[default]
    All,
    /// Exactly this type.
    Exact(String),
    /// Types equal to one of these, or, for an entry ending in `.*`, starting with what
    /// comes before the `*` (`order.*` takes `order.created`, not `order`).
    Patterns(Arc<[String]>),
}

impl TypeFilter {
    /// The filter of a subscription's or a consumer's `event_types`: every type when
    /// there are none.
    pub fn of_patterns(event_types: &[String]) -> TypeFilter {
        if event_types.is_empty() {
            TypeFilter::All
        } else {
            TypeFilter::Patterns(event_types.to_vec().into())
        }
    }

    /// Whether an event of type `event_type` passes.
    pub fn matches(&self, event_type: &[u8]) -> bool {
        match self {
            TypeFilter::All => true,
            TypeFilter::Exact(t) => t.as_bytes() == event_type,
            TypeFilter::Patterns(patterns) => patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix.as_bytes()),
                None => p.as_bytes() == event_type,
            }),
        }
    }

    /// The exact type a log read can filter on, when there is one.
    fn exact(&self) -> Option<String> {
        match self {
            TypeFilter::Exact(t) => Some(t.clone()),
            _ => None,
        }
    }
}

/// Follows one tenant's log from a position: from the feed while it keeps up, from the
/// log when it starts behind or lags. Returns every matching event after the starting
/// position exactly once, in sequence order.
///
/// The feed is subscribed before anything is read, so no commit can fall between the
/// two: an event is either in the log read or on the feed after it, and the position
/// (the last sequence handled) drops the overlap.
pub struct LogFollower<'s, S: Store> {
    store: &'s S,
    feed: CommitFeed,
    tenant: TenantId,
    filter: TypeFilter,
    /// The last sequence of this tenant handled (returned or skipped).
    position: Option<Sequence>,
    /// Read from the log, not yet returned.
    ready: VecDeque<LogEvent>,
    /// Whether the next events must come from the log.
    catching_up: bool,
}

impl<'s, S: Store> LogFollower<'s, S> {
    /// Follows from just after `after`, or, with `None`, from the latest committed event
    /// on (only what is committed from now).
    pub async fn new(
        store: &'s S,
        tenant: TenantId,
        filter: TypeFilter,
        after: Option<Sequence>,
    ) -> Result<LogFollower<'s, S>, StoreError> {
        let feed = store.feed().await?;
        let (position, catching_up) = match after {
            Some(seq) => (Some(seq), true),
            None => (store.log_position(tenant).await?, false),
        };
        Ok(LogFollower {
            store,
            feed,
            tenant,
            filter,
            position,
            ready: VecDeque::new(),
            catching_up,
        })
    }

    /// The last position handled: a reader that reconnects passes it back as `after`.
    pub fn position(&self) -> Option<Sequence> {
        self.position
    }

    /// The next matching event if one is already here (read or announced), without
    /// waiting: lets a reader batch what one commit brought.
    pub fn next_ready(&mut self) -> Option<LogEvent> {
        self.ready.pop_front()
    }

    /// The next matching event. Waits for one to be committed when caught up.
    pub async fn next(&mut self) -> Result<LogEvent, StoreError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            if self.catching_up {
                self.read_log().await?;
                continue;
            }
            match self.feed.next().await {
                FeedItem::Commit(commit) => self.take(&commit),
                FeedItem::Lagged => self.catching_up = true,
                FeedItem::Closed => {
                    return Err(StoreError::Unavailable("the store closed its feed".into()))
                }
            }
        }
    }

    /// One page of the log after the position.
    async fn read_log(&mut self) -> Result<(), StoreError> {
        let page = self
            .store
            .read_log(LogQuery {
                tenant: self.tenant,
                after: self.position,
                limit: CATCH_UP_PAGE,
                event_type: self.filter.exact(),
            })
            .await?;
        for event in page.events {
            if self.filter.matches(&event.event_type) {
                self.ready.push_back(event);
            }
        }
        if page.position > self.position {
            self.position = page.position;
        }
        self.catching_up = page.has_more;
        Ok(())
    }

    /// This tenant's events of a commit that are past the position.
    fn take(&mut self, commit: &[Committed]) {
        for c in commit.iter().filter(|c| c.tenant == self.tenant) {
            if self.position.is_some_and(|p| c.seq() <= p) {
                continue;
            }
            if self.filter.matches(&c.event_type) {
                let Some(payload) = c.payload.clone() else {
                    // Announced without its payload (a large commit): read it, and what
                    // follows, from the log.
                    self.catching_up = true;
                    return;
                };
                self.ready.push_back(LogEvent {
                    id: c.id,
                    tenant: c.tenant,
                    event_type: c.event_type.clone(),
                    source: c.source.clone(),
                    occurred_at: c.occurred_at.clone(),
                    received_at: c.received_at,
                    payload,
                });
            }
            self.position = Some(c.seq());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_patterns_match_exact_names_and_dotted_prefixes() {
        let f = TypeFilter::Patterns(Arc::from(vec!["order.*".to_owned(), "user".to_owned()]));
        assert!(f.matches(b"order.created"));
        assert!(f.matches(b"order.a.b"));
        assert!(!f.matches(b"order"));
        assert!(!f.matches(b"orders.created"));
        assert!(f.matches(b"user"));
        assert!(!f.matches(b"user.created"));
        assert!(TypeFilter::All.matches(b"anything"));
        assert!(TypeFilter::Exact("a".into()).matches(b"a"));
        assert!(!TypeFilter::Exact("a".into()).matches(b"ab"));
    }
}
