//! Discovery (PROTOCOL.md §13): what the edge sells, before anyone pays. Built from the
//! invoice-service's catalog (the one source of prices) and the edge's routes, in two
//! profiles: the L402 discovery manifest (`/.well-known/l402.json`, lightninglabs/L402
//! `discovery-spec.md` §5) and an OpenAPI 3.1 document carrying the Payment-scheme discovery
//! draft's `x-payment-info` and the L402 draft's `x-l402-*` extensions on each paid operation.
//!
//! Both are pure functions of `(catalog, routes, schemes)`: the edge renders them from its
//! cached catalog and never on the paid path.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::string::String;
use alloc::vec::Vec;

use crate::json::{Field, JsonResult, Reader, Unknown, Writer, read_object, required};
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    /// The operator's name for the provider (the Payment scheme's realm).
    pub provider: String,
    /// Services, in catalog order.
    pub services: Vec<CatalogService>,
}

/// One service as sold.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CatalogService {
    /// Name (as in `services=`).
    pub name: String,
    /// Tier.
    pub tier: u32,
    /// The invoice description.
    pub description: String,
    /// The price of one token, sat; `None`: priced per request by the operator's pricer.
    pub price_sat: Option<u64>,
    /// The most a priced service charges, sat.
    pub max_price_sat: Option<u64>,
    /// Capabilities a token carries.
    pub capabilities: Vec<String>,
    /// Seconds a token lives; `None`: no expiry caveat.
    pub lifetime_secs: Option<u64>,
    /// Requests a token serves; `None`: unmetered.
    pub allowance: Option<u64>,
    /// Tokens are bound to the buyer's network address.
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
    /// Reads the invoice-service's answer (unknown members are ignored: a newer service may
    /// add some).
    pub fn parse(body: &[u8]) -> Result<Catalog, CatalogError> {
        if body.len() > MAX_CATALOG_BYTES {
            return Err(CatalogError::TooLarge);
        }
        Reader::document(body, |r| {
            let (mut provider, mut services) = (None, None);
            let mut read_services = |r: &mut Reader<'_>| {
                let mut list = Vec::new();
                let mut items = r.array()?;
                while items.next(r)? {
                    let i = items.index();
                    list.push(CatalogService::read(r).map_err(|e| e.item(i))?);
                }
                services = Some(list);
                Ok(())
            };
            read_object(
                r,
                &mut [
                    ("provider", Field::Str(&mut provider)),
                    ("services", Field::With(&mut read_services)),
                ],
                Unknown::Skip,
            )?;
            Ok(Catalog {
                provider: required(provider, "provider", r)?,
                services: required(services, "services", r)?,
            })
        })
        .map_err(|_| CatalogError::Malformed)
    }

    /// The JSON body (the invoice-service's answer).
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_object()
            .str_member("provider", &self.provider)
            .key("services")
            .open_array();
        for s in &self.services {
            w.open_object()
                .str_member("name", &s.name)
                .u64_member("tier", u64::from(s.tier));
            if !s.description.is_empty() {
                w.str_member("description", &s.description);
            }
            w.opt_u64_member("price_sat", s.price_sat)
                .opt_u64_member("max_price_sat", s.max_price_sat)
                .strings_member("capabilities", s.capabilities.iter().map(String::as_str))
                .opt_u64_member("lifetime_secs", s.lifetime_secs)
                .opt_u64_member("allowance", s.allowance)
                .key("bind_client_ip")
                .bool(s.bind_client_ip)
                .close_object();
        }
        w.close_array().close_object();
        w.into_bytes()
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&CatalogService> {
        self.services.iter().find(|s| s.name == name)
    }
}

impl CatalogService {
    fn read(r: &mut Reader<'_>) -> JsonResult<CatalogService> {
        let (mut name, mut tier, mut description) = (None, None, None);
        let (mut price_sat, mut max_price_sat, mut capabilities) = (None, None, None);
        let (mut lifetime_secs, mut allowance, mut bind) = (None, None, None);
        read_object(
            r,
            &mut [
                ("name", Field::Str(&mut name)),
                ("tier", Field::U64(&mut tier)),
                ("description", Field::Str(&mut description)),
                ("price_sat", Field::U64(&mut price_sat)),
                ("max_price_sat", Field::U64(&mut max_price_sat)),
                ("capabilities", Field::Strings(&mut capabilities)),
                ("lifetime_secs", Field::U64(&mut lifetime_secs)),
                ("allowance", Field::U64(&mut allowance)),
                ("bind_client_ip", Field::Bool(&mut bind)),
            ],
            Unknown::Skip,
        )?;
        Ok(CatalogService {
            name: required(name, "name", r)?,
            tier: u32::try_from(tier.unwrap_or_default()).map_err(|_| {
                r.error(crate::json::JsonErrorKind::OutOfRange)
                    .within("tier")
            })?,
            description: description.unwrap_or_default(),
            price_sat,
            max_price_sat,
            capabilities: capabilities.unwrap_or_default(),
            lifetime_secs,
            allowance,
            bind_client_ip: bind.unwrap_or_default(),
        })
    }

    /// The discovery-spec pricing object, as the value of `key`: `fixed` at the catalog price,
    /// or `dynamic` where a pricer sets each price (with the ceiling as a hint).
    fn pricing(&self, w: &mut Writer, key: &str) {
        w.key(key).open_object();
        match self.price_sat {
            Some(sat) => w
                .str_member("model", "fixed")
                .u64_member("price_msat", sat.saturating_mul(1000)),
            None => w.str_member("model", "dynamic").opt_u64_member(
                "max_price_msat",
                self.max_price_sat.map(|m| m.saturating_mul(1000)),
            ),
        };
        w.close_object();
    }

    /// The terms beyond the price, for both profiles, each member's name after `prefix`.
    fn terms(&self, w: &mut Writer, prefix: &str) {
        let name = |n: &str| [prefix, n].concat();
        if let Some(l) = self.lifetime_secs {
            w.u64_member(&name("lifetime_seconds"), l);
        }
        if let Some(a) = self.allowance {
            w.u64_member(&name("requests_per_token"), a);
        }
        if self.bind_client_ip {
            w.key(&name("client_ip_bound")).bool(true);
        }
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

fn scheme_names(s: Schemes) -> impl Iterator<Item = &'static str> {
    [(s.l402, "L402"), (s.payment, "Payment")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
}

fn capability_list(route: &Route) -> Vec<&str> {
    route
        .capabilities
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// The caveat vocabulary this edge enforces (discovery-spec §5.5), as the value of `key`.
fn caveats(catalog: &Catalog, w: &mut Writer, key: &str) {
    let kind =
        |w: &mut Writer, name: &str, ty: &str, attenuation: &str, description: Option<&str>| {
            w.key(name)
                .open_object()
                .str_member("type", ty)
                .str_member("attenuation", attenuation)
                .opt_str_member("description", description)
                .close_object();
        };
    w.key(key).open_object();
    kind(w, "services", "service_list", "subset", None);
    for (i, s) in catalog.services.iter().enumerate() {
        // A name twice would write its members twice: the first entry stands.
        if catalog.services.iter().take(i).any(|t| t.name == s.name) {
            continue;
        }
        let n = |suffix: &str| [s.name.as_str(), suffix].concat();
        kind(w, &n("_capabilities"), "string", "subset", None);
        kind(w, &n("_valid_until"), "timestamp", "earlier", None);
        if s.allowance.is_some() {
            let d = Some("requests the token serves");
            kind(w, &n("_allowance"), "integer", "decreasing", d);
        }
        if s.bind_client_ip {
            let d = Some("network the token is bound to");
            kind(w, &n("_client_ip"), "string", "subset", d);
        }
    }
    w.close_object();
}

/// The L402 discovery manifest: every catalog service, with the edge's paths that sell it.
/// `openapi`: where the OpenAPI profile is served, if it is.
pub fn manifest(catalog: &Catalog, published: &[Published<'_>], openapi: Option<&str>) -> String {
    let mut w = Writer::new();
    w.open_object()
        .str_member("version", MANIFEST_VERSION)
        .key("provider")
        .open_object()
        .str_member("name", &catalog.provider)
        .close_object()
        .strings_member("currencies", ["msat"])
        .key("macaroon_versions")
        .open_array()
        .u64(0)
        .close_array()
        .strings_member("payment_methods", ["bolt11"])
        .opt_str_member("openapi", openapi)
        .key("services")
        .open_array();
    for s in &catalog.services {
        w.open_object().str_member("name", &s.name);
        if !s.description.is_empty() {
            w.str_member("description", &s.description);
        }
        if s.tier != 0 {
            w.key("tiers")
                .open_array()
                .open_object()
                .u64_member("tier", u64::from(s.tier))
                .close_object()
                .close_array();
        }
        if !s.capabilities.is_empty() {
            w.strings_member("capabilities", s.capabilities.iter().map(String::as_str));
        }
        w.key("resources").open_array();
        for p in published.iter().filter(|p| p.route.service == s.name) {
            w.open_object().str_member("path", &p.route.path);
            match capability_list(p.route).as_slice() {
                [] => {}
                [one] => {
                    w.str_member("capability", one);
                }
                caps => {
                    w.strings_member("capabilities", caps.iter().copied());
                }
            }
            s.pricing(&mut w, "pricing");
            w.strings_member("schemes", scheme_names(p.schemes))
                .close_object();
        }
        w.close_array();
        s.terms(&mut w, "");
        w.close_object();
    }
    w.close_array();
    caveats(catalog, &mut w, "caveats");
    w.close_object();
    w.finish()
}

/// The parts of the OpenAPI profile that do not depend on the catalog.
const OPENAPI_COMPONENTS: &str = r#"{"securitySchemes":{"L402":{"type":"apiKey","in":"header","name":"Authorization","x-l402-scheme":"L402"},"Payment":{"type":"http","scheme":"Payment"}}}"#;
const OPENAPI_RESPONSES: &str = r#"{"200":{"description":"The paid resource"},"402":{"description":"Payment Required: a Lightning invoice and its challenge","headers":{"WWW-Authenticate":{"description":"L402 macaroon=\"…\", invoice=\"…\" and/or Payment id=\"…\", method=\"lightning\", intent=\"charge\", …","schema":{"type":"string"}}}}}"#;

/// The OpenAPI 3.1 profile: one operation per sold path (`GET`; a route sells every method),
/// each with its price as `x-payment-info` (where Payment is sold) and `x-l402-pricing`, and
/// its `402`.
pub fn openapi(catalog: &Catalog, published: &[Published<'_>]) -> String {
    let mut w = Writer::new();
    w.open_object()
        .str_member("openapi", "3.1.0")
        .key("info")
        .open_object()
        .str_member("title", &catalog.provider)
        .str_member("version", "1.0")
        .str_member("x-l402-version", MANIFEST_VERSION)
        .key("x-l402-provider")
        .open_object()
        .str_member("name", &catalog.provider)
        .strings_member("currencies", ["msat"])
        .close_object()
        .close_object()
        .key("x-service-info")
        .raw(r#"{"docs":{}}"#);
    caveats(catalog, &mut w, "x-l402-caveats");
    w.key("components").raw(OPENAPI_COMPONENTS);
    w.key("paths").open_object();
    let mut ids: Vec<String> = Vec::new();
    let mut paths: Vec<&str> = Vec::new();
    for p in published {
        let Some(s) = catalog.service(&p.route.service) else {
            continue;
        };
        // One operation per path: a path listed twice is sold by its first route.
        if paths.contains(&p.route.path.as_str()) {
            continue;
        }
        paths.push(&p.route.path);
        // OpenAPI requires unique ids; `/a-b` and `/a_b` read alike: number the later one.
        let base = ["get", &operation_suffix(&p.route.path)].concat();
        let mut id = base.clone();
        let mut n = 2;
        while ids.contains(&id) {
            id = base.clone();
            crate::json::push_u64(&mut id, n);
            n += 1;
        }
        w.key(&p.route.path)
            .open_object()
            .key("get")
            .open_object()
            .str_member("operationId", &id);
        ids.push(id);
        if s.description.is_empty() {
            w.str_member("summary", &[s.name.as_str(), " (paid)"].concat());
        } else {
            w.str_member("summary", &s.description);
        }
        w.key("security").open_array();
        for name in scheme_names(p.schemes) {
            w.open_object()
                .key(name)
                .open_array()
                .close_array()
                .close_object();
        }
        w.close_array();
        if p.schemes.payment {
            let amount = s.price_sat.map(crate::payment::decimal);
            w.key("x-payment-info")
                .open_object()
                .key("offers")
                .open_array()
                .open_object()
                .str_member("intent", PAYMENT_INTENT)
                .str_member("method", PAYMENT_METHOD)
                .key("amount");
            match &amount {
                Some(a) => w.string(a),
                None => w.null(),
            };
            w.str_member("currency", PAYMENT_CURRENCY)
                .str_member(
                    "description",
                    if s.price_sat.is_some() {
                        "per token"
                    } else {
                        "priced per request"
                    },
                )
                .close_object()
                .close_array()
                .close_object();
        }
        w.str_member("x-l402-service", &s.name);
        if let [one] = capability_list(p.route).as_slice() {
            w.str_member("x-l402-capability", one);
        }
        s.pricing(&mut w, "x-l402-pricing");
        s.terms(&mut w, "x-l402-");
        w.key("responses")
            .raw(OPENAPI_RESPONSES)
            .close_object()
            .close_object();
    }
    w.close_object().close_object();
    w.finish()
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
    use serde_json::{Value, json};

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
        assert_eq!(Catalog::parse(&c.to_body()), Ok(c));
        assert_eq!(operation_suffix("/a-b/c_d"), "ABCD");
        let (a, b) = (route("/a-b", "weather", ""), route("/a_b", "weather", ""));
        let o: Value = serde_json::from_str(&openapi(&catalog(), &published(&a, &b))).unwrap();
        assert_eq!(o["paths"]["/a-b"]["get"]["operationId"], "getAB");
        assert_eq!(o["paths"]["/a_b"]["get"]["operationId"], "getAB2");
        assert_eq!(operation_suffix("/"), "Root");
    }
}
