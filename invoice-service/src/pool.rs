//! Per-service pools of ready invoices, so that a challenge does not wait on the node: each
//! invoice is handed out once, dropped before it has less than `min_remaining` left, and
//! refilled in the background. An empty pool falls back to a direct backend call.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backend::{Guarded, Invoice, InvoiceRequest};
use crate::clock::Clock;
use crate::config::PoolConfig;
use crate::metrics::Metrics;

struct Queue {
    request: InvoiceRequest,
    ready: Mutex<VecDeque<Invoice>>,
    wake: Notify,
}

/// The pools of all services.
pub struct Pool {
    cfg: PoolConfig,
    queues: HashMap<String, Queue>,
    backend: Arc<Guarded>,
    metrics: Metrics,
    clock: Clock,
}

impl Pool {
    /// A pool for each `(service, invoice request)`; empty until refilled.
    pub fn new(
        cfg: PoolConfig,
        services: impl IntoIterator<Item = (String, InvoiceRequest)>,
        backend: Arc<Guarded>,
        metrics: Metrics,
        clock: Clock,
    ) -> Self {
        let queues = services
            .into_iter()
            .map(|(name, request)| {
                // Every series exists from the start, so dashboards see zeros, not gaps.
                metrics.pool_depth.with_label_values(&[&name]).set(0);
                for c in [
                    &metrics.pool_hits,
                    &metrics.pool_misses,
                    &metrics.pool_dropped,
                ] {
                    c.with_label_values(&[&name]).reset();
                }
                let q = Queue {
                    request,
                    ready: Mutex::new(VecDeque::with_capacity(cfg.depth)),
                    wake: Notify::new(),
                };
                (name, q)
            })
            .collect();
        Pool {
            cfg,
            queues,
            backend,
            metrics,
            clock,
        }
    }

    fn fresh(&self, inv: &Invoice) -> bool {
        inv.expires_at.saturating_sub((self.clock)()) > self.cfg.min_remaining.as_secs()
    }

    /// Hands out a ready invoice for `service`, once; `None` when the pool is empty.
    pub fn take(&self, service: &str) -> Option<Invoice> {
        let q = self.queues.get(service)?;
        let (got, dropped, left) = {
            let mut ready = q
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut dropped = 0u64;
            let mut got = None;
            while let Some(inv) = ready.pop_front() {
                if self.fresh(&inv) {
                    got = Some(inv);
                    break;
                }
                dropped += 1;
            }
            (got, dropped, ready.len())
        };
        self.metrics
            .pool_dropped
            .with_label_values(&[service])
            .inc_by(dropped);
        self.metrics
            .pool_depth
            .with_label_values(&[service])
            .set(left as i64);
        if got.is_some() {
            self.metrics.pool_hits.with_label_values(&[service]).inc();
        } else {
            self.metrics.pool_misses.with_label_values(&[service]).inc();
        }
        q.wake.notify_one();
        got
    }

    /// Ready invoices for `service`.
    pub fn depth(&self, service: &str) -> usize {
        self.queues.get(service).map_or(0, |q| {
            q.ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len()
        })
    }

    /// Drops stale invoices and tops `service` up to the target depth. Returns how many
    /// were added; stops at the first backend error (the caller backs off).
    pub async fn refill(&self, service: &str) -> Result<usize, crate::backend::BackendError> {
        let Some(q) = self.queues.get(service) else {
            return Ok(0);
        };
        let dropped = {
            let mut ready = q
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let before = ready.len();
            ready.retain(|inv| self.fresh(inv));
            (before - ready.len()) as u64
        };
        self.metrics
            .pool_dropped
            .with_label_values(&[service])
            .inc_by(dropped);
        let mut added = 0;
        while self.depth(service) < self.cfg.depth {
            let inv = self.backend.create_invoice(&q.request).await?;
            let mut ready = q
                .ready
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            ready.push_back(inv);
            self.metrics
                .pool_depth
                .with_label_values(&[service])
                .set(ready.len() as i64);
            added += 1;
        }
        Ok(added)
    }

    /// Starts one refiller per service; they stop when `cancel` fires.
    pub fn spawn_refillers(self: &Arc<Self>, cancel: CancellationToken) {
        for service in self.queues.keys() {
            let pool = Arc::clone(self);
            let service = service.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move { pool.refill_loop(&service, cancel).await });
        }
    }

    async fn refill_loop(&self, service: &str, cancel: CancellationToken) {
        let Some(q) = self.queues.get(service) else {
            return;
        };
        // Re-check staleness at least this often even when nobody takes.
        let recheck =
            (self.cfg.min_remaining / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let mut backoff = Duration::from_millis(250);
        while !cancel.is_cancelled() {
            let wait = match self.refill(service).await {
                Ok(_) => {
                    backoff = Duration::from_millis(250);
                    recheck
                }
                Err(e) => {
                    tracing::warn!(service, error = %e, "invoice pool refill failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    backoff
                }
            };
            tokio::select! {
                _ = q.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => {}
            }
        }
    }
}
