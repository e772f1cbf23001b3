//! Prometheus metrics, served on `/metrics`. Names are constants: dashboards depend on them.

use std::time::Duration;

use l402_core::ApiErrorCode;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Challenges answered, by service and result (`ok`, or an [`ApiErrorCode`]'s name).
pub const CHALLENGES: &str = "l402_challenges_total";
/// Backend call latency, by backend, operation and outcome.
pub const BACKEND_LATENCY: &str = "l402_backend_request_duration_seconds";
/// Backend failures, by backend and kind (`timeout`, `unreachable`, `refused`, `bad_response`).
pub const BACKEND_ERRORS: &str = "l402_backend_errors_total";
/// Pricing-endpoint calls, by service and outcome (`ok`, `timeout`, `busy`,
/// `unavailable`, `malformed`, `out_of_bounds`).
pub const PRICING_CALLS: &str = "l402_pricing_calls_total";
/// Redeem calls (Payment charges spent), by result.
pub const REDEEMS: &str = "l402_redeem_total";
/// Allowance store calls (metered tokens), by result.
pub const ALLOWANCE_CALLS: &str = "l402_allowance_calls_total";
/// Ready invoices per service.
pub const POOL_DEPTH: &str = "l402_pool_depth";
/// Challenges served from the pool, per service.
pub const POOL_HITS: &str = "l402_pool_hits_total";
/// Challenges that found the pool empty and called the backend, per service.
pub const POOL_MISSES: &str = "l402_pool_misses_total";
/// Pooled invoices dropped for having too little time left, per service.
pub const POOL_DROPPED: &str = "l402_pool_dropped_total";

/// How a challenge request ended (the `result` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeResult {
    /// A challenge was minted.
    Ok,
    /// Refused with this code.
    Refused(ApiErrorCode),
}

/// All metrics of one service instance.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    challenges: IntCounterVec,
    backend_latency: HistogramVec,
    backend_errors: IntCounterVec,
    pricing_calls: IntCounterVec,
    redeems: IntCounterVec,
    allowance_calls: IntCounterVec,
    pub(crate) pool_depth: IntGaugeVec,
    pub(crate) pool_hits: IntCounterVec,
    pub(crate) pool_misses: IntCounterVec,
    pub(crate) pool_dropped: IntCounterVec,
}

impl Metrics {
    /// Registers every metric on a fresh registry.
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let challenges = IntCounterVec::new(
            Opts::new(CHALLENGES, "Challenges answered, by service and result"),
            &["service", "result"],
        )?;
        let backend_latency = HistogramVec::new(
            HistogramOpts::new(BACKEND_LATENCY, "Lightning backend call latency").buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["backend", "op", "outcome"],
        )?;
        let backend_errors = IntCounterVec::new(
            Opts::new(BACKEND_ERRORS, "Lightning backend failures, by kind"),
            &["backend", "kind"],
        )?;
        let pricing_calls = IntCounterVec::new(
            Opts::new(PRICING_CALLS, "Pricing-endpoint calls, by outcome"),
            &["service", "outcome"],
        )?;
        let redeems = IntCounterVec::new(
            Opts::new(
                REDEEMS,
                "Payment charges presented for spending, by result (first_use, already_spent, store_error)",
            ),
            &["result"],
        )?;
        for r in ["first_use", "already_spent", "store_error"] {
            redeems.with_label_values(&[r]);
        }
        let allowance_calls = IntCounterVec::new(
            Opts::new(
                ALLOWANCE_CALLS,
                "Metered-token count changes, by result (granted, spent, released, store_error)",
            ),
            &["result"],
        )?;
        for r in ["granted", "spent", "released", "store_error"] {
            allowance_calls.with_label_values(&[r]);
        }
        let pool_depth = IntGaugeVec::new(
            Opts::new(POOL_DEPTH, "Ready invoices per service"),
            &["service"],
        )?;
        let pool_hits = IntCounterVec::new(
            Opts::new(POOL_HITS, "Challenges served from the invoice pool"),
            &["service"],
        )?;
        let pool_misses = IntCounterVec::new(
            Opts::new(POOL_MISSES, "Challenges that found the pool empty"),
            &["service"],
        )?;
        let pool_dropped = IntCounterVec::new(
            Opts::new(POOL_DROPPED, "Pooled invoices dropped before expiry"),
            &["service"],
        )?;
        for c in [
            &challenges,
            &backend_errors,
            &pricing_calls,
            &redeems,
            &allowance_calls,
            &pool_hits,
            &pool_misses,
            &pool_dropped,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(backend_latency.clone()))?;
        registry.register(Box::new(pool_depth.clone()))?;
        Ok(Metrics {
            registry,
            challenges,
            backend_latency,
            backend_errors,
            pricing_calls,
            redeems,
            allowance_calls,
            pool_depth,
            pool_hits,
            pool_misses,
            pool_dropped,
        })
    }

    /// Counts one challenge answer.
    pub fn challenge(&self, service: &str, result: ChallengeResult) {
        let label = match result {
            ChallengeResult::Ok => "ok",
            ChallengeResult::Refused(code) => code.as_str(),
        };
        self.challenges.with_label_values(&[service, label]).inc();
    }

    /// Counts one pricing call.
    pub fn pricing(&self, service: &str, outcome: &str) {
        self.pricing_calls
            .with_label_values(&[service, outcome])
            .inc();
    }

    /// Counts one allowance call.
    pub fn allowance(&self, result: &str) {
        self.allowance_calls.with_label_values(&[result]).inc();
    }

    /// Counts one redeem call.
    pub fn redeem(&self, result: &str) {
        self.redeems.with_label_values(&[result]).inc();
    }

    /// Records one backend call: its latency, and the error kind if it failed.
    pub(crate) fn observe_backend(
        &self,
        backend: &str,
        op: &str,
        elapsed: Duration,
        error: Option<&str>,
    ) {
        let outcome = if error.is_none() { "ok" } else { "error" };
        self.backend_latency
            .with_label_values(&[backend, op, outcome])
            .observe(elapsed.as_secs_f64());
        if let Some(kind) = error {
            self.backend_errors
                .with_label_values(&[backend, kind])
                .inc();
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for text; an empty page is the fallback.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
