//! Prices per request: a service may name a pricing endpoint that sets each challenge's amount
//! (and may narrow its capabilities and lifetime) from what the edge saw. The catalog stays the
//! bound: an answer outside it is an error, never a token that grants more.
//!
//! ```text
//! POST <url>  {"service","method","path","capabilities","client_ip"}
//!   200       {"price_sat": 42, "capabilities": ["read"]?, "lifetime_secs": 600?}
//! ```

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::backend::transport;
use crate::config::Service;
pub use crate::config::{OnPricingError, PricingConfig};

/// What the pricer is asked.
#[derive(Debug, Serialize)]
pub struct PriceQuery<'a> {
    /// The service sold.
    pub service: &'a str,
    /// The request's method, as the edge passed it.
    pub method: Option<&'a str>,
    /// The request's canonical path, as the edge passed it.
    pub path: Option<&'a str>,
    /// The catalog's capabilities for the service.
    pub capabilities: &'a [String],
    /// The client's address, as the edge passed it.
    pub client_ip: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceAnswer {
    price_sat: u64,
    #[serde(default)]
    capabilities: Option<Vec<String>>,
    #[serde(default)]
    lifetime_secs: Option<u64>,
}

/// The terms of one challenge: the catalog's, or the pricer's within the catalog's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Amount to invoice.
    pub price_sat: u64,
    /// Capabilities to write.
    pub capabilities: Vec<String>,
    /// Token lifetime.
    pub lifetime_secs: Option<u64>,
}

/// Why the pricer gave no usable price.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// No answer within the timeout.
    #[error("pricer timed out")]
    Timeout,
    /// `max_in_flight` calls were already waiting for the pricer.
    #[error("pricer busy: max_in_flight calls in flight")]
    Busy,
    /// Could not connect, or a non-2xx answer.
    #[error("pricer unavailable: {0}")]
    Unavailable(String),
    /// An answer that is not the documented JSON.
    #[error("pricer answer is malformed: {0}")]
    Malformed(String),
    /// An answer outside the catalog's bounds.
    #[error("pricer answer out of bounds: {0}")]
    OutOfBounds(&'static str),
}

impl PricingError {
    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PricingError::Timeout => "timeout",
            PricingError::Busy => "busy",
            PricingError::Unavailable(_) => "unavailable",
            PricingError::Malformed(_) => "malformed",
            PricingError::OutOfBounds(_) => "out_of_bounds",
        }
    }
}

/// One service's pricer: its client, its bound on calls in flight.
pub struct Pricer {
    cfg: PricingConfig,
    permits: Semaphore,
    http: reqwest::Client,
}

/// Largest pricer answer read.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

impl Pricer {
    /// A pricer for `cfg`; the client follows no redirect.
    pub fn new(cfg: PricingConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Pricer {
            permits: Semaphore::new(cfg.max_in_flight),
            cfg,
            http,
        })
    }

    /// What a failure does.
    pub fn on_error(&self) -> OnPricingError {
        self.cfg.on_error
    }

    /// Asks the pricer and checks the answer against `service`'s catalog entry.
    pub async fn quote(
        &self,
        service: &Service,
        query: &PriceQuery<'_>,
    ) -> Result<Quote, PricingError> {
        // A pricer that is already at its bound sheds at once: a challenge waits for no queue.
        let _permit = self.permits.try_acquire().map_err(|_| PricingError::Busy)?;
        let answer = tokio::time::timeout(self.cfg.timeout, async {
            let resp = self
                .http
                .post(&self.cfg.url)
                .json(query)
                .send()
                .await
                .map_err(|e| match transport(e) {
                    crate::backend::BackendError::Timeout(_) => PricingError::Timeout,
                    other => PricingError::Unavailable(other.to_string()),
                })?;
            if !resp.status().is_success() {
                return Err(PricingError::Unavailable(format!(
                    "status {}",
                    resp.status().as_u16()
                )));
            }
            let body = resp
                .bytes()
                .await
                .map_err(|e| PricingError::Unavailable(e.without_url().to_string()))?;
            if body.len() > MAX_ANSWER_BYTES {
                return Err(PricingError::Malformed("answer too large".into()));
            }
            serde_json::from_slice::<PriceAnswer>(&body)
                .map_err(|e| PricingError::Malformed(e.to_string()))
        })
        .await
        .unwrap_or(Err(PricingError::Timeout))?;
        within_catalog(service, self.cfg.max_price_sat, answer)
    }
}

/// The catalog's own terms.
pub fn catalog_quote(service: &Service) -> Quote {
    Quote {
        price_sat: service.price_sat,
        capabilities: service.entry.capabilities.clone(),
        lifetime_secs: service.entry.lifetime_secs,
    }
}

fn within_catalog(
    service: &Service,
    max_price_sat: u64,
    a: PriceAnswer,
) -> Result<Quote, PricingError> {
    if a.price_sat == 0 || a.price_sat > max_price_sat {
        return Err(PricingError::OutOfBounds(
            "price_sat must be between 1 and max_price_sat",
        ));
    }
    let capabilities = match a.capabilities {
        None => service.entry.capabilities.clone(),
        Some(caps) => {
            if !caps.iter().all(|c| service.entry.capabilities.contains(c)) {
                return Err(PricingError::OutOfBounds(
                    "capabilities must be among the catalog's",
                ));
            }
            let mut out: Vec<String> = Vec::with_capacity(caps.len());
            for c in caps {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            out
        }
    };
    let lifetime_secs = match (a.lifetime_secs, service.entry.lifetime_secs) {
        (None, catalog) => catalog,
        (Some(l), catalog) => {
            if catalog.is_some_and(|c| l > c) {
                return Err(PricingError::OutOfBounds(
                    "lifetime_secs must not exceed the catalog's lifetime",
                ));
            }
            // A late payer must not buy an expired token (the catalog's own rule).
            if l <= service.expiry.as_secs() {
                return Err(PricingError::OutOfBounds(
                    "lifetime_secs must exceed the invoice expiry",
                ));
            }
            Some(l)
        }
    };
    Ok(Quote {
        price_sat: a.price_sat,
        capabilities,
        lifetime_secs,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use l402_core::ServiceEntry;

    use super::*;

    fn service(lifetime: Option<u64>) -> Service {
        Service {
            entry: ServiceEntry {
                name: "maps".parse().unwrap(),
                tier: 0,
                capabilities: vec!["read".into(), "write".into()],
                lifetime_secs: lifetime,
                allowance: None,
            },
            price_sat: 10,
            memo: "maps".into(),
            expiry: Duration::from_secs(600),
            binding: None,
            pricing: None,
        }
    }

    fn answer(json: &str) -> PriceAnswer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn answers_are_held_to_the_catalog() {
        let s = service(Some(3600));
        let q = within_catalog(&s, 100, answer(r#"{"price_sat": 42}"#)).unwrap();
        assert_eq!(
            q,
            Quote {
                price_sat: 42,
                ..catalog_quote(&s)
            }
        );
        let q = within_catalog(
            &s,
            100,
            answer(r#"{"price_sat": 1, "capabilities": ["read", "read"], "lifetime_secs": 900}"#),
        )
        .unwrap();
        assert_eq!(
            (q.capabilities, q.lifetime_secs),
            (vec!["read".to_owned()], Some(900))
        );
        for (json, why) in [
            (r#"{"price_sat": 0}"#, "price"),
            (r#"{"price_sat": 101}"#, "price"),
            (
                r#"{"price_sat": 5, "capabilities": ["admin"]}"#,
                "capabilities",
            ),
            (r#"{"price_sat": 5, "lifetime_secs": 3601}"#, "lifetime"),
            (
                r#"{"price_sat": 5, "lifetime_secs": 600}"#,
                "invoice expiry",
            ),
        ] {
            let e = within_catalog(&s, 100, answer(json)).unwrap_err();
            assert!(matches!(e, PricingError::OutOfBounds(_)), "{why}: {e}");
        }
        // no catalog lifetime: the pricer may set one, above the invoice expiry
        let q = within_catalog(
            &service(None),
            100,
            answer(r#"{"price_sat": 5, "lifetime_secs": 86400}"#),
        );
        assert_eq!(q.unwrap().lifetime_secs, Some(86400));
        // unknown fields are a malformed answer, not ignored
        assert!(serde_json::from_str::<PriceAnswer>(r#"{"price_sat": 5, "tier": 9}"#).is_err());
    }
}
