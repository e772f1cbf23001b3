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
//!
//! The same store keeps metered tokens' counts (PROTOCOL.md §12): [`SpentSet::count`] applies
//! core's [`Counter`] rule atomically (a redb write transaction; one Lua script in Redis).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use l402_core::{AllowanceAnswer, AllowanceRequest, Counter, PaymentHash, Redeemed};
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
    /// Applies a metered token's release and take to its count, atomically across everyone
    /// sharing the store; the count is kept until the token expires (for good if it never
    /// does).
    async fn count(
        &self,
        req: &AllowanceRequest,
        now: u64,
    ) -> Result<AllowanceAnswer, SpentSetError>;
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
            script: redis::Script::new(COUNT_SCRIPT),
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
    counts: Mutex<HashMap<String, (u64, u64)>>,
    purge: PurgeClock,
}

/// A count's expiry as stored: 0 for a token that never expires.
fn count_expiry(req: &AllowanceRequest) -> u64 {
    req.expires_at.unwrap_or(0)
}

/// Whether a stored count still holds at `now` (an expired one counts as none: no edge
/// accepts the token then).
fn count_live(expires: u64, now: u64) -> bool {
    expires == 0 || expires > now
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

    async fn count(
        &self,
        req: &AllowanceRequest,
        now: u64,
    ) -> Result<AllowanceAnswer, SpentSetError> {
        let purge = self.purge.tick();
        let mut counts = self
            .counts
            .lock()
            .map_err(|_| SpentSetError::Store("poisoned".into()))?;
        let used = counts
            .get(&req.key())
            .filter(|(_, e)| count_live(*e, now))
            .map_or(0, |(u, _)| *u);
        let (used, answer) = Counter::apply(used, req);
        counts.insert(req.key(), (used, count_expiry(req)));
        if purge {
            counts.retain(|_, (_, e)| count_live(*e, now));
        }
        Ok(answer)
    }

    async fn check(&self) -> Result<(), SpentSetError> {
        Ok(())
    }
}

/// Metered counts: key `<token id>/<service>` → `(used, expires_at or 0)`.
const COUNTS: redb::TableDefinition<'_, &str, (u64, u64)> = redb::TableDefinition::new("counts");

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
        txn.open_table(COUNTS)?;
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

    /// One durable write transaction per count change (redb serializes them).
    fn count_blocking(
        db: &redb::Database,
        req: &AllowanceRequest,
        now: u64,
        purge: bool,
    ) -> Result<AllowanceAnswer, SpentSetError> {
        let txn = db.begin_write().map_err(store_err)?;
        let answer = {
            let mut table = txn.open_table(COUNTS).map_err(store_err)?;
            let key = req.key();
            let used = table
                .get(key.as_str())
                .map_err(store_err)?
                .map(|v| v.value())
                .filter(|(_, e)| count_live(*e, now))
                .map_or(0, |(u, _)| u);
            let (used, answer) = Counter::apply(used, req);
            table
                .insert(key.as_str(), (used, count_expiry(req)))
                .map_err(store_err)?;
            if purge {
                table
                    .retain(|_, (_, e)| count_live(e, now))
                    .map_err(store_err)?;
            }
            answer
        };
        txn.commit().map_err(store_err)?;
        Ok(answer)
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

    async fn count(
        &self,
        req: &AllowanceRequest,
        now: u64,
    ) -> Result<AllowanceAnswer, SpentSetError> {
        let purge = self.purge.tick();
        let db = Arc::clone(&self.db);
        let req = req.clone();
        tokio::task::spawn_blocking(move || Self::count_blocking(&db, &req, now, purge))
            .await
            .map_err(store_err)?
    }

    async fn check(&self) -> Result<(), SpentSetError> {
        Ok(())
    }
}

/// [`Counter::apply`] as one Redis script (atomic: Redis runs a script alone). Mirrors
/// core's arithmetic; `redis_counts_as_core_does` in the e2e tests holds the two together.
const COUNT_SCRIPT: &str = include_str!("allowance.lua");

/// The error's kind only: a message could name the server.
fn redis_err(e: &redis::RedisError) -> SpentSetError {
    SpentSetError::Store(format!("{:?}", e.kind()))
}

struct RedisSet {
    script: redis::Script,
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

    async fn count(
        &self,
        req: &AllowanceRequest,
        now: u64,
    ) -> Result<AllowanceAnswer, SpentSetError> {
        let key = format!("{}count:{}", self.key_prefix, req.key());
        // EXAT in the past would drop the key at once: keep it at least a second.
        let expiry = req.expires_at.map_or(0, |e| e.max(now + 1));
        self.timed(async {
            let mut conn = self.conn().await?;
            let (granted, left): (u64, u64) = self
                .script
                .key(&key)
                .arg(req.limit)
                .arg(req.take)
                .arg(req.release)
                .arg(expiry)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| redis_err(&e))?;
            Ok(AllowanceAnswer { granted, left })
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

    fn take(limit: u64, take: u64, release: u64, expires_at: Option<u64>) -> AllowanceRequest {
        AllowanceRequest {
            token_id: "ab".repeat(32),
            service: "maps".into(),
            limit,
            expires_at,
            take,
            release,
        }
    }

    /// Counts as core's rule says, and forgets a count only once its token expired.
    async fn counts_exactly(set: &dyn SpentSet) {
        let mut served = 0;
        for _ in 0..20 {
            served += set
                .count(&take(5, 1, 0, Some(200)), 100)
                .await
                .unwrap()
                .granted;
        }
        assert_eq!(served, 5);
        let a = set.count(&take(5, 1, 2, Some(200)), 100).await.unwrap();
        assert_eq!((a.granted, a.left), (1, 1));
        // Past the token's expiry, the count is gone (the token no longer verifies anyway).
        let a = set.count(&take(5, 1, 0, Some(300)), 250).await.unwrap();
        assert_eq!((a.granted, a.left), (1, 4));
        // A token that never expires keeps its count.
        let mut never = take(3, 8, 0, None);
        never.service = "never".into();
        assert_eq!(set.count(&never, 100).await.unwrap().granted, 1);
        assert_eq!(set.count(&never, 10_000_000).await.unwrap().left, 1);
    }

    #[tokio::test]
    async fn memory_counts_exactly() {
        counts_exactly(&Memory::default()).await;
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
        counts_exactly(&*set).await;
        // Concurrent takes of one count never pass its limit.
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let s = Arc::clone(&set);
            tasks.push(tokio::spawn(async move {
                let mut r = take(50, 1, 0, Some(500));
                r.service = "busy".into();
                s.count(&r, 100).await.unwrap().granted
            }));
        }
        let mut served = 0;
        for t in tasks {
            served += t.await.unwrap();
        }
        assert_eq!(served, 50);
        drop(set);
        let set = Embedded::open(&path).unwrap();
        let mut r = take(50, 1, 0, Some(500));
        r.service = "busy".into();
        assert_eq!(set.count(&r, 100).await.unwrap().granted, 0, "kept on disk");
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
        assert!(set.count(&take(5, 1, 0, None), 100).await.is_err());
        assert!(set.check().await.is_err());
    }
}
