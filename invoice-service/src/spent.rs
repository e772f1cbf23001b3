//! The spent-set of Payment charges (PROTOCOL.md §11.3): a payment hash is spent at most
//! once, across every edge and replica that shares the store, and remembered until its
//! challenge expires (after which no edge accepts the credential anyway).
//!
//! - `memory`: this process only, forgotten at restart; the `dev` backend's default, refused
//!   with a real node (a restart would serve replays).
//! - `embedded`: a redb file on this machine, each spend committed durably before it is
//!   answered; the default with a real node, for one replica.
//! - `redis`: `SET <prefix><hash> 1 NX EXAT <expiry>`, one atomic command, for several
//!   replicas (and every edge behind them).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use l402_core::{PaymentHash, Redeemed};
use redb::ReadableTable as _;
use tokio::sync::OnceCell;

/// Why the store could not say: the edge answers 503, never a pass.
#[derive(Debug, thiserror::Error)]
pub enum SpentSetError {
    /// No answer within the timeout.
    #[error("spent-set store timed out")]
    Timeout,
    /// The store failed (message without secrets: the Redis URL is never in it).
    #[error("spent-set store failed: {0}")]
    Store(String),
}

/// A spent-set.
#[async_trait]
pub trait SpentSet: Send + Sync {
    /// The store's kind, for logs and readiness.
    fn kind(&self) -> &'static str;
    /// Spends `hash` if no one has: atomically, across everyone sharing the store.
    async fn redeem(
        &self,
        hash: &PaymentHash,
        expires_at: u64,
        now: u64,
    ) -> Result<Redeemed, SpentSetError>;
    /// Whether the store answers (readiness).
    async fn check(&self) -> Result<(), SpentSetError>;
}

/// Where the spent-set lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpentSetConfig {
    /// In this process.
    Memory,
    /// A redb file.
    Embedded {
        /// The file.
        path: PathBuf,
    },
    /// A Redis server (or a cluster's endpoint) shared by replicas.
    Redis {
        /// `redis://[user:password@]host:port[/db]` (a secret: never logged).
        url: String,
        /// Key prefix.
        key_prefix: String,
        /// Per-command timeout.
        timeout: Duration,
    },
}

/// Opens the store: a file that cannot be opened refuses start-up; Redis is connected on
/// first use (and answers 503 until it is up).
pub fn open(cfg: &SpentSetConfig) -> anyhow::Result<Arc<dyn SpentSet>> {
    Ok(match cfg {
        SpentSetConfig::Memory => Arc::new(Memory::default()),
        SpentSetConfig::Embedded { path } => Arc::new(Embedded::open(path)?),
        SpentSetConfig::Redis {
            url,
            key_prefix,
            timeout,
        } => Arc::new(RedisSet {
            client: redis::Client::open(url.as_str())
                .map_err(|_| anyhow::anyhow!("spent_set.url: not a redis:// URL"))?,
            conn: OnceCell::new(),
            key_prefix: key_prefix.clone(),
            timeout: *timeout,
        }),
    })
}

/// Entries purged once every this many spends.
const PURGE_EVERY: usize = 4096;

/// Says when a spend should also drop expired entries (both local stores share it).
#[derive(Default)]
struct PurgeClock(AtomicUsize);

impl PurgeClock {
    fn tick(&self) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1
    }
}

#[derive(Default)]
struct Memory {
    map: Mutex<HashMap<[u8; 32], u64>>,
    purge: PurgeClock,
}

#[async_trait]
impl SpentSet for Memory {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn redeem(
        &self,
        hash: &PaymentHash,
        expires_at: u64,
        now: u64,
    ) -> Result<Redeemed, SpentSetError> {
        let purge = self.purge.tick();
        let mut map = self
            .map
            .lock()
            .map_err(|_| SpentSetError::Store("poisoned".into()))?;
        if map.get(&hash.0).is_some_and(|e| *e > now) {
            return Ok(Redeemed::AlreadySpent);
        }
        map.insert(hash.0, expires_at);
        if purge {
            map.retain(|_, e| *e > now);
        }
        Ok(Redeemed::FirstUse)
    }

    async fn check(&self) -> Result<(), SpentSetError> {
        Ok(())
    }
}

const SPENT: redb::TableDefinition<'_, &[u8; 32], u64> = redb::TableDefinition::new("spent");

struct Embedded {
    db: Arc<redb::Database>,
    purge: PurgeClock,
}

fn store_err(e: impl std::fmt::Display) -> SpentSetError {
    SpentSetError::Store(e.to_string())
}

impl Embedded {
    fn open(path: &PathBuf) -> anyhow::Result<Self> {
        let db = redb::Database::create(path)
            .map_err(|e| anyhow::anyhow!("spent_set.path {}: cannot open: {e}", path.display()))?;
        // The table exists before the first spend, so a read never races its creation.
        let txn = db.begin_write()?;
        txn.open_table(SPENT)?;
        txn.commit()?;
        Ok(Embedded {
            db: Arc::new(db),
            purge: PurgeClock::default(),
        })
    }

    /// One write transaction: redb serializes them, so check-then-insert is atomic; the
    /// commit is durable (fsync) before the answer.
    fn redeem_blocking(
        db: &redb::Database,
        hash: [u8; 32],
        expires_at: u64,
        now: u64,
        purge: bool,
    ) -> Result<Redeemed, SpentSetError> {
        let txn = db.begin_write().map_err(store_err)?;
        let outcome = {
            let mut table = txn.open_table(SPENT).map_err(store_err)?;
            let live = table
                .get(&hash)
                .map_err(store_err)?
                .is_some_and(|e| e.value() > now);
            if live {
                Redeemed::AlreadySpent
            } else {
                table.insert(&hash, expires_at).map_err(store_err)?;
                if purge {
                    table.retain(|_, e| e > now).map_err(store_err)?;
                }
                Redeemed::FirstUse
            }
        };
        match outcome {
            Redeemed::FirstUse => txn.commit().map_err(store_err)?,
            Redeemed::AlreadySpent => txn.abort().map_err(store_err)?,
        }
        Ok(outcome)
    }
}

#[async_trait]
impl SpentSet for Embedded {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn redeem(
        &self,
        hash: &PaymentHash,
        expires_at: u64,
        now: u64,
    ) -> Result<Redeemed, SpentSetError> {
        let purge = self.purge.tick();
        let db = Arc::clone(&self.db);
        let hash = hash.0;
        tokio::task::spawn_blocking(move || {
            Self::redeem_blocking(&db, hash, expires_at, now, purge)
        })
        .await
        .map_err(store_err)?
    }

    async fn check(&self) -> Result<(), SpentSetError> {
        Ok(())
    }
}

/// The error's kind only: a message could name the server.
fn redis_err(e: &redis::RedisError) -> SpentSetError {
    SpentSetError::Store(format!("{:?}", e.kind()))
}

struct RedisSet {
    client: redis::Client,
    conn: OnceCell<redis::aio::ConnectionManager>,
    key_prefix: String,
    timeout: Duration,
}

impl RedisSet {
    /// The shared connection (reconnecting by itself once made).
    async fn conn(&self) -> Result<redis::aio::ConnectionManager, SpentSetError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        self.conn
            .get_or_try_init(|| {
                redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await
            .cloned()
            .map_err(|e| redis_err(&e))
    }

    async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, SpentSetError>>,
    ) -> Result<T, SpentSetError> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| SpentSetError::Timeout)?
    }
}

#[async_trait]
impl SpentSet for RedisSet {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn redeem(
        &self,
        hash: &PaymentHash,
        expires_at: u64,
        now: u64,
    ) -> Result<Redeemed, SpentSetError> {
        let key = format!("{}{}", self.key_prefix, hash.to_hex());
        self.timed(async {
            let mut conn = self.conn().await?;
            // EXAT in the past would drop the key at once: keep it at least a second.
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("EXAT")
                .arg(expires_at.max(now + 1))
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_err(&e))?;
            Ok(match set {
                Some(_) => Redeemed::FirstUse,
                None => Redeemed::AlreadySpent,
            })
        })
        .await
    }

    async fn check(&self) -> Result<(), SpentSetError> {
        self.timed(async {
            let mut conn = self.conn().await?;
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_err(&e))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    async fn spends_once(set: &dyn SpentSet) {
        let h = PaymentHash([7; 32]);
        assert_eq!(set.redeem(&h, 200, 100).await.unwrap(), Redeemed::FirstUse);
        assert_eq!(
            set.redeem(&h, 200, 150).await.unwrap(),
            Redeemed::AlreadySpent
        );
        // Past its expiry, the entry no longer counts (no edge accepts the credential then).
        assert_eq!(set.redeem(&h, 300, 200).await.unwrap(), Redeemed::FirstUse);
        assert_eq!(
            set.redeem(&PaymentHash([8; 32]), 200, 100).await.unwrap(),
            Redeemed::FirstUse
        );
    }

    #[tokio::test]
    async fn memory_spends_once() {
        spends_once(&Memory::default()).await;
    }

    #[tokio::test]
    async fn embedded_spends_once_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spent.redb");
        {
            let set = Embedded::open(&path).unwrap();
            spends_once(&set).await;
        }
        let set = Embedded::open(&path).unwrap();
        assert_eq!(
            set.redeem(&PaymentHash([8; 32]), 200, 150).await.unwrap(),
            Redeemed::AlreadySpent
        );
        // Concurrent spends of one hash: exactly one first use.
        let set = Arc::new(set);
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let s = Arc::clone(&set);
            tasks.push(tokio::spawn(async move {
                s.redeem(&PaymentHash([9; 32]), 500, 100).await.unwrap()
            }));
        }
        let mut first = 0;
        for t in tasks {
            first += usize::from(t.await.unwrap() == Redeemed::FirstUse);
        }
        assert_eq!(first, 1);
    }

    #[tokio::test]
    async fn redis_down_is_an_error_not_a_pass() {
        let set = open(&SpentSetConfig::Redis {
            url: "redis://127.0.0.1:1".into(),
            key_prefix: "t:".into(),
            timeout: Duration::from_millis(300),
        })
        .unwrap();
        assert!(set.redeem(&PaymentHash([1; 32]), 200, 100).await.is_err());
        assert!(set.check().await.is_err());
    }
}
