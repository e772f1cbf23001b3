//! The catalog: `[[services]]` as written, and each entry validated into what a token says
//! and what an invoice costs (prices, capabilities, lifetimes, client binding, pricing).

use std::collections::HashSet;
use std::time::Duration;

use l402_core::{BindingWidth, ServiceEntry, ServiceName, parse_capabilities};
use serde::Deserialize;

use super::PoolConfig;
use super::common::{ConfigError, err, require_url};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceSection {
    name: String,
    price_sat: u64,
    #[serde(default)]
    tier: u32,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default, with = "humantime_serde")]
    lifetime: Option<Duration>,
    /// Sell a bundle: each token serves this many requests (`<name>_allowance=N`).
    allowance: Option<u64>,
    memo: Option<String>,
    #[serde(default = "default_expiry", with = "humantime_serde")]
    expiry: Duration,
    /// Mint each token bound to the client's address as the edge reports it.
    #[serde(default)]
    bind_client_ip: bool,
    #[serde(default = "default_v4_prefix")]
    client_ip_prefix_v4: u8,
    #[serde(default = "default_v6_prefix")]
    client_ip_prefix_v6: u8,
    pricing: Option<PricingSection>,
}

fn default_v4_prefix() -> u8 {
    BindingWidth::default().v4_prefix
}
fn default_v6_prefix() -> u8 {
    BindingWidth::default().v6_prefix
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PricingSection {
    url: String,
    #[serde(default = "default_pricing_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default = "default_pricing_in_flight")]
    max_in_flight: usize,
    max_price_sat: u64,
    on_error: OnPricingError,
}

fn default_pricing_in_flight() -> usize {
    16
}

fn default_pricing_timeout() -> Duration {
    Duration::from_millis(500)
}

fn default_expiry() -> Duration {
    Duration::from_secs(600)
}

/// One service of the catalog.
#[derive(Clone, Debug)]
pub struct Service {
    /// Name, tier, capabilities, lifetime: what the token says.
    pub entry: ServiceEntry,
    /// Price of one token.
    pub price_sat: u64,
    /// Invoice description.
    pub memo: String,
    /// Invoice expiry.
    pub expiry: Duration,
    /// When set, tokens are bound to the client's network of this width.
    pub binding: Option<BindingWidth>,
    /// When set, a pricer sets each challenge's terms within this entry's.
    pub pricing: Option<PricingConfig>,
}

/// What the service does when the pricer fails, times out or answers out of bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnPricingError {
    /// Charge the catalog's `price_sat` with the catalog's capabilities and lifetime.
    Catalog,
    /// Answer 503 `pricing_unavailable`; the edge answers 503 with `Retry-After`.
    Fail,
}

/// A validated `[services.pricing]` section.
#[derive(Clone, Debug)]
pub struct PricingConfig {
    /// `http://` or `https://` endpoint.
    pub url: String,
    /// Per call.
    pub timeout: Duration,
    /// Calls in flight at once for this service; one more is refused at once (`busy`).
    pub max_in_flight: usize,
    /// The most one challenge may cost, whatever the pricer says.
    pub max_price_sat: u64,
    /// What a failure does.
    pub on_error: OnPricingError,
}

/// Validates the catalog (in file order).
pub(super) fn services(
    sections: Vec<ServiceSection>,
    pool: &PoolConfig,
) -> Result<Vec<Service>, ConfigError> {
    if sections.is_empty() {
        return Err(err(
            "services",
            "the catalog is empty: add a [[services]] entry",
        ));
    }
    let mut seen = HashSet::new();
    let mut services = Vec::with_capacity(sections.len());
    for (i, s) in sections.into_iter().enumerate() {
        let at = |f: &str| format!("services[{i}].{f}");
        let name = ServiceName::new(&s.name).map_err(|e| err(at("name"), e.to_string()))?;
        if !seen.insert(name.clone()) {
            return Err(err(at("name"), format!("{name} appears twice")));
        }
        if s.price_sat == 0 {
            // Some clients refuse amountless invoices; a free service needs no L402.
            return Err(err(at("price_sat"), "must be at least 1"));
        }
        let msat = s
            .price_sat
            .checked_mul(1000)
            .ok_or_else(|| err(at("price_sat"), "too large"))?;
        if msat > 21_000_000 * 100_000_000 * 1000 {
            return Err(err(at("price_sat"), "more than all bitcoin"));
        }
        let capabilities = parse_capabilities(&s.capabilities.join(","))
            .map_err(|e| err(at("capabilities"), e.to_string()))?;
        if s.expiry < Duration::from_secs(60) {
            return Err(err(at("expiry"), "an invoice must live at least 60s"));
        }
        if pool.enabled && s.expiry <= pool.min_remaining {
            return Err(err(
                at("expiry"),
                "must be longer than pool.min_remaining, or pooled invoices are never handed out",
            ));
        }
        if s.allowance
            .is_some_and(|n| n == 0 || n > l402_core::MAX_ALLOWANCE)
        {
            return Err(err(
                at("allowance"),
                format!(
                    "service {name}: must be 1 to {} requests",
                    l402_core::MAX_ALLOWANCE
                ),
            ));
        }
        if s.lifetime.is_some_and(|l| l.as_secs() == 0) {
            return Err(err(
                at("lifetime"),
                "must be at least 1s (omit it for no expiry)",
            ));
        }
        // The token's clock starts at minting; a payer who pays the invoice near its expiry
        // must not buy a token that has already run out.
        if s.lifetime.is_some_and(|l| l <= s.expiry) {
            return Err(err(
                at("lifetime"),
                format!(
                    "service {name}: the token lifetime must exceed the invoice expiry ({}s), or a late payer buys an expired token",
                    s.expiry.as_secs()
                ),
            ));
        }
        let memo = s.memo.unwrap_or_else(|| format!("L402 access to {name}"));
        if memo.len() > 639 {
            return Err(err(at("memo"), "BOLT11 descriptions are at most 639 bytes"));
        }
        let binding = if s.bind_client_ip {
            Some(
                BindingWidth::new(s.client_ip_prefix_v4, s.client_ip_prefix_v6)
                    .map_err(|e| err(at("client_ip_prefix_v4/v6"), e.to_string()))?,
            )
        } else {
            None
        };
        let pricing = s
            .pricing
            .map(|p| {
                let url = require_url(&at("pricing.url"), &p.url)?;
                if p.timeout.is_zero() {
                    return Err(err(at("pricing.timeout"), "must be more than 0"));
                }
                if p.max_in_flight == 0 {
                    return Err(err(at("pricing.max_in_flight"), "must be at least 1"));
                }
                if p.max_price_sat == 0 || p.max_price_sat > 21_000_000 * 100_000_000 {
                    return Err(err(
                        at("pricing.max_price_sat"),
                        "must be between 1 and all bitcoin",
                    ));
                }
                if p.on_error == OnPricingError::Catalog && p.max_price_sat < s.price_sat {
                    return Err(err(
                        at("pricing.max_price_sat"),
                        "is below the catalog price_sat that applies on error",
                    ));
                }
                Ok(PricingConfig {
                    url,
                    timeout: p.timeout,
                    max_in_flight: p.max_in_flight,
                    max_price_sat: p.max_price_sat,
                    on_error: p.on_error,
                })
            })
            .transpose()?;
        services.push(Service {
            entry: ServiceEntry {
                name,
                tier: s.tier,
                capabilities,
                lifetime_secs: s.lifetime.map(|l| l.as_secs()),
                allowance: s.allowance,
            },
            price_sat: s.price_sat,
            memo,
            expiry: s.expiry,
            binding,
            pricing,
        });
    }

    Ok(services)
}
