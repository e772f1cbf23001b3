//! Discovery (PROTOCOL.md §13): what the edge sells, before anyone pays. Built from the
//! invoice-service's catalog (the one source of prices) and the edge's routes, in two
//! profiles: the L402 discovery manifest (`/.well-known/l402.json`, lightninglabs/L402
//! `discovery-spec.md` §5) and an OpenAPI 3.1 document carrying the Payment-scheme discovery
//! draft's `x-payment-info` and the L402 draft's `x-l402-*` extensions on each paid operation.
//!
//! Both are pure functions of `(catalog, routes, schemes)`: the edge renders them from its
//! cached catalog and never on the paid path.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::payment::{PAYMENT_CURRENCY, PAYMENT_INTENT, PAYMENT_METHOD, Schemes};
use crate::routes::Route;

/// Path of the invoice-service's catalog endpoint (edge-only, like the others).
pub const CATALOG_PATH: &str = "/v1/catalog";
/// Where the edge serves the manifest (RFC 8615).
pub const MANIFEST_PATH: &str = "/.well-known/l402.json";
/// The `Link` value on every 402, so a client that met the 402 first finds the manifest.
pub const MANIFEST_LINK: &str = "</.well-known/l402.json>; rel=\"l402-manifest\"";
/// Manifest schema version (discovery-spec §5.2).
pub const MANIFEST_VERSION: &str = "1.0";
/// Longest catalog accepted from the invoice-service.
const MAX_CATALOG_BYTES: usize = 256 * 1024;

/// `GET /v1/catalog` answer: the services as the invoice-service sells them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// The operator's name for the provider (the Payment scheme's realm).
    pub provider: String,
    /// Services, in catalog order.
    pub services: Vec<CatalogService>,
}

/// One service as sold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogService {
    /// Name (as in `services=`).
    pub name: String,
    /// Tier.
    #[serde(default)]
    pub tier: u32,
    /// The invoice description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The price of one token, sat; `None`: priced per request by the operator's pricer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_sat: Option<u64>,
    /// The most a priced service charges, sat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_sat: Option<u64>,
    /// Capabilities a token carries.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Seconds a token lives; `None`: no expiry caveat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_secs: Option<u64>,
    /// Requests a token serves; `None`: unmetered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance: Option<u64>,
    /// Tokens are bound to the buyer's network address.
    #[serde(default)]
    pub bind_client_ip: bool,
}

/// Why a catalog answer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Over [`MAX_CATALOG_BYTES`].
    #[error("catalog too large")]
    TooLarge,
    /// Not the documented JSON.
    #[error("catalog does not parse")]
    Malformed,
}

impl Catalog {
    /// Reads the invoice-service's answer.
    pub fn parse(body: &[u8]) -> Result<Catalog, CatalogError> {
        if body.len() > MAX_CATALOG_BYTES {
            return Err(CatalogError::TooLarge);
        }
        serde_json::from_slice(body).map_err(|_| CatalogError::Malformed)
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&CatalogService> {
        self.services.iter().find(|s| s.name == name)
    }
}

impl CatalogService {
    /// The discovery-spec pricing object: `fixed` at the catalog price, or `dynamic` where a
    /// pricer sets each price (with the ceiling as a hint).
    fn pricing(&self) -> Value {
        match self.price_sat {
            Some(sat) => json!({"model": "fixed", "price_msat": sat.saturating_mul(1000)}),
            None => {
                let mut p = Map::new();
                p.insert("model".into(), "dynamic".into());
                if let Some(max) = self.max_price_sat {
                    p.insert("max_price_msat".into(), max.saturating_mul(1000).into());
                }
                Value::Object(p)
            }
        }
    }

    /// The terms beyond the price, for both profiles.
    fn terms(&self) -> Map<String, Value> {
        let mut t = Map::new();
        if let Some(l) = self.lifetime_secs {
            t.insert("lifetime_seconds".into(), l.into());
        }
        if let Some(a) = self.allowance {
            t.insert("requests_per_token".into(), a.into());
        }
        if self.bind_client_ip {
            t.insert("client_ip_bound".into(), true.into());
        }
        t
    }
}

/// A path the edge sells, with what it sells there.
#[derive(Clone, Copy, Debug)]
pub struct Published<'a> {
    /// The route.
    pub route: &'a Route,
    /// The schemes sold on it (the route's, or the edge's default).
    pub schemes: Schemes,
}

fn scheme_names(s: Schemes) -> Vec<&'static str> {
    let mut v = Vec::with_capacity(2);
    if s.l402 {
        v.push("L402");
    }
    if s.payment {
        v.push("Payment");
    }
    v
}

fn capability_list(route: &Route) -> Vec<&str> {
    route
        .capabilities
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The caveat vocabulary this edge enforces for `svc` (discovery-spec §5.5).
fn caveats(catalog: &Catalog) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert(
        "services".into(),
        json!({"type": "service_list", "attenuation": "subset"}),
    );
    for s in &catalog.services {
        let n = &s.name;
        c.insert(
            format!("{n}_capabilities"),
            json!({"type": "string", "attenuation": "subset"}),
        );
        c.insert(
            format!("{n}_valid_until"),
            json!({"type": "timestamp", "attenuation": "earlier"}),
        );
        if s.allowance.is_some() {
            c.insert(
                format!("{n}_allowance"),
                json!({"type": "integer", "attenuation": "decreasing",
                       "description": "requests the token serves"}),
            );
        }
        if s.bind_client_ip {
            c.insert(
                format!("{n}_client_ip"),
                json!({"type": "string", "attenuation": "subset",
                       "description": "network the token is bound to"}),
            );
        }
    }
    c
}

/// The L402 discovery manifest: every catalog service, with the edge's paths that sell it.
/// `openapi`: where the OpenAPI profile is served, if it is.
pub fn manifest(catalog: &Catalog, published: &[Published<'_>], openapi: Option<&str>) -> String {
    let services: Vec<Value> = catalog
        .services
        .iter()
        .map(|s| {
            let resources: Vec<Value> = published
                .iter()
                .filter(|p| p.route.service == s.name)
                .map(|p| {
                    let mut r = Map::new();
                    r.insert("path".into(), p.route.path.as_str().into());
                    let caps = capability_list(p.route);
                    if let [one] = caps.as_slice() {
                        r.insert("capability".into(), (*one).into());
                    } else if !caps.is_empty() {
                        r.insert("capabilities".into(), caps.into());
                    }
                    r.insert("pricing".into(), s.pricing());
                    r.insert("schemes".into(), scheme_names(p.schemes).into());
                    Value::Object(r)
                })
                .collect();
            let mut o = Map::new();
            o.insert("name".into(), s.name.as_str().into());
            if !s.description.is_empty() {
                o.insert("description".into(), s.description.as_str().into());
            }
            if s.tier != 0 {
                o.insert("tiers".into(), json!([{"tier": s.tier}]));
            }
            if !s.capabilities.is_empty() {
                o.insert("capabilities".into(), s.capabilities.clone().into());
            }
            o.insert("resources".into(), resources.into());
            o.extend(s.terms());
            Value::Object(o)
        })
        .collect();
    let mut m = Map::new();
    m.insert("version".into(), MANIFEST_VERSION.into());
    m.insert("provider".into(), json!({"name": catalog.provider}));
    m.insert("currencies".into(), json!(["msat"]));
    m.insert("macaroon_versions".into(), json!([0]));
    m.insert("payment_methods".into(), json!(["bolt11"]));
    if let Some(path) = openapi {
        m.insert("openapi".into(), path.into());
    }
    m.insert("services".into(), services.into());
    m.insert("caveats".into(), Value::Object(caveats(catalog)));
    Value::Object(m).to_string()
}

/// The OpenAPI 3.1 profile: one operation per sold path (`GET`; a route sells every method),
/// each with its price as `x-payment-info` (where Payment is sold) and `x-l402-pricing`, and
/// its `402`.
pub fn openapi(catalog: &Catalog, published: &[Published<'_>]) -> String {
    let mut paths = Map::new();
    let mut ids = std::collections::HashSet::new();
    for p in published {
        let Some(s) = catalog.service(&p.route.service) else {
            continue;
        };
        let mut op = Map::new();
        // OpenAPI requires unique ids; `/a-b` and `/a_b` read alike: number the later one.
        let base = format!("get{}", operation_suffix(&p.route.path));
        let mut id = base.clone();
        let mut n = 2;
        while !ids.insert(id.clone()) {
            id = format!("{base}{n}");
            n += 1;
        }
        op.insert("operationId".into(), id.into());
        let summary = if s.description.is_empty() {
            format!("{} (paid)", s.name)
        } else {
            s.description.clone()
        };
        op.insert("summary".into(), summary.into());
        let mut security = Vec::new();
        if p.schemes.l402 {
            security.push(json!({"L402": []}));
        }
        if p.schemes.payment {
            security.push(json!({"Payment": []}));
            op.insert(
                "x-payment-info".into(),
                json!({"offers": [{
                    "intent": PAYMENT_INTENT,
                    "method": PAYMENT_METHOD,
                    "amount": s.price_sat.map(|v| v.to_string()),
                    "currency": PAYMENT_CURRENCY,
                    "description": if s.price_sat.is_some() { "per token" } else { "priced per request" },
                }]}),
            );
        }
        op.insert("security".into(), security.into());
        op.insert("x-l402-service".into(), s.name.as_str().into());
        if let [one] = capability_list(p.route).as_slice() {
            op.insert("x-l402-capability".into(), (*one).into());
        }
        op.insert("x-l402-pricing".into(), s.pricing());
        op.extend(
            s.terms()
                .into_iter()
                .map(|(k, v)| (format!("x-l402-{k}"), v)),
        );
        op.insert(
            "responses".into(),
            json!({
                "200": {"description": "The paid resource"},
                "402": {
                    "description": "Payment Required: a Lightning invoice and its challenge",
                    "headers": {"WWW-Authenticate": {
                        "description": "L402 macaroon=\"…\", invoice=\"…\" and/or Payment id=\"…\", method=\"lightning\", intent=\"charge\", …",
                        "schema": {"type": "string"}
                    }}
                }
            }),
        );
        let mut item = Map::new();
        item.insert("get".into(), Value::Object(op));
        paths.insert(p.route.path.clone(), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": catalog.provider,
            "version": "1.0",
            "x-l402-version": MANIFEST_VERSION,
            "x-l402-provider": {"name": catalog.provider, "currencies": ["msat"]},
        },
        "x-service-info": {"docs": {}},
        "x-l402-caveats": Value::Object(caveats(catalog)),
        "components": {"securitySchemes": {
            "L402": {"type": "apiKey", "in": "header", "name": "Authorization", "x-l402-scheme": "L402"},
            "Payment": {"type": "http", "scheme": "Payment"},
        }},
        "paths": Value::Object(paths),
    })
    .to_string()
}

/// `/weather/today` → `WeatherToday`: an operation id from a canonical path.
fn operation_suffix(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        let mut upper = true;
        for c in seg.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(if upper { c.to_ascii_uppercase() } else { c });
                upper = false;
            } else {
                upper = true;
            }
        }
    }
    if out.is_empty() {
        out.push_str("Root");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            provider: "Acme <API>".into(),
            services: vec![
                CatalogService {
                    name: "weather".into(),
                    tier: 0,
                    description: "Forecasts".into(),
                    price_sat: Some(21),
                    max_price_sat: None,
                    capabilities: vec!["read".into()],
                    lifetime_secs: Some(3600),
                    allowance: None,
                    bind_client_ip: false,
                },
                CatalogService {
                    name: "five".into(),
                    tier: 0,
                    description: String::new(),
                    price_sat: None,
                    max_price_sat: Some(50),
                    capabilities: vec![],
                    lifetime_secs: None,
                    allowance: Some(5),
                    bind_client_ip: true,
                },
            ],
        }
    }

    fn route(path: &str, service: &str, caps: &str) -> Route {
        Route {
            path: path.into(),
            service: service.into(),
            capabilities: caps.into(),
            schemes: String::new(),
            rate_limit: String::new(),
        }
    }

    /// `w` sold over both schemes, `f` over L402 only.
    fn published<'a>(w: &'a Route, f: &'a Route) -> [Published<'a>; 2] {
        [
            Published {
                route: w,
                schemes: Schemes::BOTH,
            },
            Published {
                route: f,
                schemes: Schemes {
                    l402: true,
                    payment: false,
                },
            },
        ]
    }

    #[test]
    fn manifest_carries_the_catalog_prices_and_the_routes() {
        let (w, f) = (
            route("/weather", "weather", "read"),
            route("/five", "five", ""),
        );
        let published = published(&w, &f);
        let m: Value = serde_json::from_str(&manifest(&catalog(), &published, None)).unwrap();
        assert_eq!(m["version"], "1.0");
        assert_eq!(m["provider"]["name"], "Acme <API>");
        let weather = &m["services"][0];
        assert_eq!(weather["resources"][0]["path"], "/weather");
        assert_eq!(weather["resources"][0]["pricing"]["price_msat"], 21_000);
        assert_eq!(weather["resources"][0]["capability"], "read");
        assert_eq!(
            weather["resources"][0]["schemes"],
            json!(["L402", "Payment"])
        );
        assert_eq!(weather["lifetime_seconds"], 3600);
        let five = &m["services"][1];
        assert_eq!(five["resources"][0]["pricing"]["model"], "dynamic");
        assert_eq!(five["resources"][0]["pricing"]["max_price_msat"], 50_000);
        assert_eq!(five["requests_per_token"], 5);
        assert_eq!(five["resources"][0]["schemes"], json!(["L402"]));
        assert!(m["caveats"]["five_allowance"].is_object());
        assert!(m.get("openapi").is_none());
    }

    #[test]
    fn openapi_offers_payment_only_where_sold() {
        let (w, f) = (
            route("/weather", "weather", "read"),
            route("/five", "five", ""),
        );
        let published = published(&w, &f);
        let o: Value = serde_json::from_str(&openapi(&catalog(), &published)).unwrap();
        assert_eq!(o["openapi"], "3.1.0");
        let op = &o["paths"]["/weather"]["get"];
        assert_eq!(op["x-payment-info"]["offers"][0]["amount"], "21");
        assert_eq!(op["x-payment-info"]["offers"][0]["method"], "lightning");
        assert_eq!(op["operationId"], "getWeather");
        assert!(op["responses"]["402"].is_object());
        let five = &o["paths"]["/five"]["get"];
        assert!(five.get("x-payment-info").is_none());
        assert_eq!(five["x-l402-requests_per_token"], 5);
    }

    #[test]
    fn catalog_answers_are_bounded() {
        assert_eq!(Catalog::parse(b"nope"), Err(CatalogError::Malformed));
        let big = vec![b' '; MAX_CATALOG_BYTES + 1];
        assert_eq!(Catalog::parse(&big), Err(CatalogError::TooLarge));
        let c = catalog();
        assert_eq!(
            Catalog::parse(serde_json::to_string(&c).unwrap().as_bytes()),
            Ok(c)
        );
        assert_eq!(operation_suffix("/a-b/c_d"), "ABCD");
        let (a, b) = (route("/a-b", "weather", ""), route("/a_b", "weather", ""));
        let o: Value = serde_json::from_str(&openapi(&catalog(), &published(&a, &b))).unwrap();
        assert_eq!(o["paths"]["/a-b"]["get"]["operationId"], "getAB");
        assert_eq!(o["paths"]["/a_b"]["get"]["operationId"], "getAB2");
        assert_eq!(operation_suffix("/"), "Root");
    }
}
