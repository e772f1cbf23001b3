//! The invoice pool with a controlled clock: hit, miss, drop before expiry, refill.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use invoice_service::backend::dev::{DevBackend, DevConfig};
use invoice_service::backend::{BackendConfig, Guarded, InvoiceRequest};
use invoice_service::clock::Clock;
use invoice_service::config::PoolConfig;
use invoice_service::metrics::Metrics;
use invoice_service::pool::Pool;
use tokio_util::sync::CancellationToken;

fn setup(depth: usize) -> (Arc<Pool>, Arc<AtomicU64>, Metrics) {
    let real_now = invoice_service::clock::system()();
    let now = Arc::new(AtomicU64::new(real_now));
    let clock: Clock = {
        let now = Arc::clone(&now);
        Arc::new(move || now.load(Ordering::SeqCst))
    };
    let metrics = Metrics::new().unwrap();
    let cfg = BackendConfig {
        node: Arc::new(DevConfig::default()),
        timeout: Duration::from_secs(2),
        max_in_flight: 4,
    };
    let backend = Arc::new(Guarded::new(
        Arc::new(DevBackend::new(None).unwrap()),
        &cfg,
        metrics.clone(),
    ));
    let pool_cfg = PoolConfig {
        enabled: true,
        depth,
        min_remaining: Duration::from_secs(120),
    };
    let req = InvoiceRequest {
        amount_msat: 5_000,
        memo: "m".into(),
        expiry_secs: 600,
    };
    let pool = Pool::new(
        pool_cfg,
        [("svc".to_owned(), req)],
        backend,
        metrics.clone(),
        clock,
    );
    (Arc::new(pool), now, metrics)
}

fn metric(m: &Metrics, name: &str) -> u64 {
    m.render()
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{service=\"svc\"}}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn hit_miss_expiry_drop_and_refill() {
    let (pool, now, m) = setup(3);
    assert_eq!(pool.take("svc"), None, "empty pool is a miss");
    assert_eq!(metric(&m, "l402_pool_misses_total"), 1);
    assert_eq!(pool.refill("svc").await.unwrap(), 3);
    assert_eq!(pool.depth("svc"), 3);
    assert_eq!(metric(&m, "l402_pool_depth"), 3);

    let a = pool.take("svc").unwrap();
    let b = pool.take("svc").unwrap();
    assert_ne!(a.payment_hash, b.payment_hash, "each invoice once");
    assert_eq!(metric(&m, "l402_pool_hits_total"), 2);
    assert_eq!(pool.depth("svc"), 1);
    assert_eq!(pool.refill("svc").await.unwrap(), 2);

    // 600 s invoices, 120 s minimum remaining: at +481 s they are dropped, not handed out.
    now.fetch_add(481, Ordering::SeqCst);
    assert_eq!(pool.take("svc"), None);
    assert_eq!(metric(&m, "l402_pool_dropped_total"), 3);
    assert_eq!(pool.depth("svc"), 0);
    // Refill makes fresh ones (the dev node's clock is real, ours is ahead: still fresh).
    now.fetch_sub(481, Ordering::SeqCst);
    assert_eq!(pool.refill("svc").await.unwrap(), 3);
    // Just before the cut-off they still go out.
    now.fetch_add(479, Ordering::SeqCst);
    assert!(pool.take("svc").is_some());
    assert_eq!(pool.take("unknown"), None);
}

#[tokio::test]
async fn background_refiller_tops_up_after_takes_and_stops_on_cancel() {
    let (pool, _now, _m) = setup(2);
    let cancel = CancellationToken::new();
    pool.spawn_refillers(cancel.clone());
    let wait_full = || async {
        for _ in 0..200 {
            if pool.depth("svc") == 2 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    };
    assert!(wait_full().await);
    pool.take("svc").unwrap();
    pool.take("svc").unwrap();
    assert!(wait_full().await, "refilled after takes");
    cancel.cancel();
}
