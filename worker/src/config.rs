//! The Worker's configuration: `wrangler.toml` `[vars]` and secrets, parsed once per isolate.
//! This file reads the variables' text; `l402_core::EdgeOptions` validates them (the same
//! rules as the Envoy filter's). Errors name the variable; secrets never appear in them.

use l402_core::{Edge, EdgeOptions, Setting};

/// The validated configuration.
pub struct WorkerConfig {
    /// The edge procedure with its validated settings.
    pub edge: Edge,
    /// Where verified (and unsold) requests go.
    pub origin: String,
    /// `<invoice-service>/v1/challenges`.
    pub challenges_url: String,
    /// `<invoice-service>/v1/redeem`.
    pub redeem_url: String,
    /// Where Payment charges are spent (`SPENT_SET`).
    pub spent_set: StoreHost,
    /// `<invoice-service>/v1/allowance`.
    pub allowance_url: String,
    /// The invoice-service's base URL, for the edge's own calls (the catalog, invoice states).
    pub service_url: String,
    /// Where metered tokens are counted (`ALLOWANCE_STORE`).
    pub allowance: StoreHost,
    /// A Cloudflare Access service token for the invoice-service (`CF-Access-Client-Id`,
    /// `CF-Access-Client-Secret`), when it sits behind Access.
    pub access: Option<(String, String)>,
}

/// Where the Worker keeps state that must hold across edges: Payment charges spent
/// (`SPENT_SET`), metered tokens' counts (`ALLOWANCE_STORE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreHost {
    /// A Durable Object namespace (`L402_SPENT_SET`, `L402_ALLOWANCE`), one object per payment
    /// hash or token id: strongly consistent, no round trip to the invoice-service. The
    /// default where it is bound.
    DurableObject,
    /// The invoice-service's store: for routes also sold through Envoy, so one store serves
    /// both edges.
    Service,
}

/// Which of the Worker's optional bindings exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bindings {
    /// `L402_DENYLIST` (KV): every authorized token is looked up in it.
    pub deny_list: bool,
    /// `L402_SPENT_SET` (Durable Objects).
    pub spent_set: bool,
    /// `L402_ALLOWANCE` (Durable Objects).
    pub allowance: bool,
}

/// Reads `var` (`durable_object` or `service`); the Durable Object where `bound` and unset.
fn store_host(
    get: Get<'_>,
    var: &'static str,
    binding: &str,
    bound: bool,
) -> Result<StoreHost, ConfigError> {
    match get(var).as_deref() {
        None if bound => Ok(StoreHost::DurableObject),
        None | Some("service") => Ok(StoreHost::Service),
        Some("durable_object") if bound => Ok(StoreHost::DurableObject),
        Some("durable_object") => Err(err(
            var,
            format!("durable_object needs the {binding} Durable Object binding"),
        )),
        Some(_) => Err(err(var, "expected durable_object or service")),
    }
}

/// A refused configuration. Goes to the Worker's log only; clients get a 503.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable or secret.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "l402 worker config: {}: {}", self.field, self.message)
    }
}

fn err(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}

type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

fn number(get: Get<'_>, s: Setting) -> Result<Option<u64>, ConfigError> {
    get(s.var_name())
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| err(s.var_name(), "not a number"))
        })
        .transpose()
}

fn url(get: Get<'_>, name: &'static str) -> Result<String, ConfigError> {
    let v = get(name).ok_or_else(|| err(name, "required"))?;
    if !(v.starts_with("http://") || v.starts_with("https://")) {
        return Err(err(name, "expected an http:// or https:// URL"));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

fn boolean(get: Get<'_>, s: Setting) -> Result<Option<bool>, ConfigError> {
    match get(s.var_name()).as_deref().map(str::trim) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(err(s.var_name(), "expected true or false")),
    }
}

impl WorkerConfig {
    /// Reads every variable through `get` (vars and secrets alike), given which optional
    /// bindings exist.
    pub fn parse(get: Get<'_>, bound: Bindings) -> Result<Self, ConfigError> {
        let strip_credential = boolean(get, Setting::StripCredential)?;
        let deny_list = get(Setting::DenyList.var_name())
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let options = EdgeOptions {
            keyring: get(Setting::Keyring.var_name()),
            routes: Some(
                get(Setting::Routes.var_name()).ok_or_else(|| err("L402_ROUTES", "required"))?,
            ),
            routes_required: true,
            deny_list,
            on_invalid: get(Setting::OnInvalid.var_name()),
            strip_credential,
            token_id_header: get(Setting::TokenIdHeader.var_name()),
            service_header: get(Setting::ServiceHeader.var_name()),
            context_header: get(Setting::ContextHeader.var_name()),
            context_key: get(Setting::ContextKey.var_name()),
            retry_after_secs: number(get, Setting::RetryAfter)?,
            cache_size: number(get, Setting::CacheSize)?,
            timeout_ms: number(get, Setting::Timeout)?,
            edge_token: get(Setting::EdgeToken.var_name()),
            non_canonical_path: get(Setting::NonCanonicalPath.var_name()),
            challenges_per_second: number(get, Setting::ChallengesPerSecond)?,
            challenge_burst: number(get, Setting::ChallengeBurst)?,
            challenge_form: get(Setting::ChallengeForm.var_name()),
            schemes: get(Setting::Schemes.var_name()),
            // An isolate is one of many and lives briefly: units leased to it would wait
            // there while other isolates refuse the token. One unit per call by default.
            allowance_lease: Some(number(get, Setting::AllowanceLease)?.unwrap_or(1)),
            allowance_lease_ms: number(get, Setting::AllowanceLeaseMs)?,
            discovery: boolean(get, Setting::Discovery)?,
            paywall: boolean(get, Setting::Paywall)?,
            openapi_path: get(Setting::OpenApiPath.var_name()),
            publish: get(Setting::Publish.var_name()),
        };
        let spent_set = store_host(get, "SPENT_SET", "L402_SPENT_SET", bound.spent_set)?;
        let allowance = store_host(get, "ALLOWANCE_STORE", "L402_ALLOWANCE", bound.allowance)?;
        let settings = options
            .validate()
            .map_err(|e| err(e.setting.var_name(), e.problem.to_string()))?;
        let access = match (get("CF_ACCESS_CLIENT_ID"), get("CF_ACCESS_CLIENT_SECRET")) {
            (None, None) => None,
            (Some(id), Some(secret)) => {
                let printable = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
                if !printable(&id) || !printable(&secret) {
                    return Err(err(
                        "CF_ACCESS_CLIENT_ID",
                        "the service token's id and secret must be printable, without spaces",
                    ));
                }
                Some((id, secret))
            }
            // Name the variable that is set: that is the one the operator just wrote.
            (Some(_), None) => {
                return Err(err(
                    "CF_ACCESS_CLIENT_ID",
                    "set CF_ACCESS_CLIENT_SECRET too (a service token is both)",
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    "CF_ACCESS_CLIENT_SECRET",
                    "set CF_ACCESS_CLIENT_ID too (a service token is both)",
                ));
            }
        };
        let service = url(get, "INVOICE_SERVICE_URL")?;
        Ok(WorkerConfig {
            edge: Edge::new(settings, bound.deny_list),
            origin: url(get, "ORIGIN_URL")?,
            challenges_url: format!("{service}{}", l402_core::CHALLENGES_PATH),
            redeem_url: format!("{service}{}", l402_core::REDEEM_PATH),
            spent_set,
            allowance_url: format!("{service}{}", l402_core::ALLOWANCE_PATH),
            service_url: service,
            allowance,
            access,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars() -> HashMap<&'static str, String> {
        HashMap::from([
            (
                "L402_KEYS",
                "1:0101010101010101010101010101010101010101010101010101010101010101".to_owned(),
            ),
            (
                "L402_ROUTES",
                r#"[{"path":"/weather","service":"weather","capabilities":"read"}]"#.to_owned(),
            ),
            ("ORIGIN_URL", "http://127.0.0.1:3000/".to_owned()),
            ("INVOICE_SERVICE_URL", "http://127.0.0.1:8402".to_owned()),
            ("INVOICE_SERVICE_TOKEN", "edge-token-0123456789".to_owned()),
        ])
    }

    fn parse(v: &HashMap<&'static str, String>) -> Result<WorkerConfig, ConfigError> {
        WorkerConfig::parse(&|k| v.get(k).cloned(), Bindings::default())
    }

    #[test]
    fn minimal_and_routes() {
        let c = parse(&vars()).unwrap();
        assert_eq!(c.origin, "http://127.0.0.1:3000");
        assert_eq!(c.challenges_url, "http://127.0.0.1:8402/v1/challenges");
        let s = c.edge.settings();
        assert_eq!(
            s.routes.route_for("/weather/today").unwrap().service,
            "weather"
        );
        assert!(s.routes.route_for("/free").is_none());
        assert_eq!(s.on_invalid, l402_core::InvalidPolicy::Challenge);
        assert_eq!(c.redeem_url, "http://127.0.0.1:8402/v1/redeem");
        assert_eq!(c.spent_set, StoreHost::Service);
        assert_eq!(c.allowance, StoreHost::Service);
        assert_eq!(c.allowance_url, "http://127.0.0.1:8402/v1/allowance");
        assert_eq!(c.edge.settings().allowance_lease, 1);
        let all = Bindings {
            deny_list: false,
            spent_set: true,
            allowance: true,
        };
        let bound = |var: &'static str, extra: Option<&str>| {
            let mut v = vars();
            if let Some(x) = extra {
                v.insert(var, x.to_owned());
            }
            WorkerConfig::parse(&|k| v.get(k).cloned(), all).map(|c| (c.spent_set, c.allowance))
        };
        use StoreHost::{DurableObject as Do, Service};
        assert_eq!(bound("SPENT_SET", None), Ok((Do, Do)));
        assert_eq!(bound("SPENT_SET", Some("service")), Ok((Service, Do)));
        assert_eq!(bound("ALLOWANCE_STORE", Some("service")), Ok((Do, Service)));
        assert_eq!(
            bound("ALLOWANCE_STORE", Some("durable_object")),
            Ok((Do, Do))
        );
    }

    #[test]
    fn every_bad_variable_is_named_without_secrets() {
        let cases: Vec<(&'static str, Option<&str>)> = vec![
            ("L402_KEYS", None),
            ("L402_KEYS", Some("1:zz")),
            ("L402_ROUTES", Some("[]")),
            (
                "L402_ROUTES",
                Some(r#"[{"path":"weather","service":"weather"}]"#),
            ),
            (
                "L402_ROUTES",
                Some(r#"[{"path":"/w","service":"Bad_Name"}]"#),
            ),
            ("L402_ROUTES", None),
            ("L402_ROUTES", Some("not json")),
            ("ORIGIN_URL", None),
            ("ORIGIN_URL", Some("ftp://x")),
            ("INVOICE_SERVICE_URL", Some("not a url")),
            ("INVOICE_SERVICE_TOKEN", None),
            ("STRIP_CREDENTIAL", Some("yes please")),
            ("RETRY_AFTER_SECS", Some("0")),
            ("INVOICE_SERVICE_URL", None),
            ("INVOICE_SERVICE_TOKEN", Some("short")),
            ("ON_INVALID", Some("maybe")),
            ("INVOICE_SERVICE_TIMEOUT_MS", Some("0")),
            ("CACHE_SIZE", Some("lots")),
            ("L402_CONTEXT_KEY", Some("abcd")),
            ("NON_CANONICAL_PATH", Some("sometimes")),
            ("CHALLENGES_PER_SECOND", Some("-1")),
            ("L402_DENY_LIST", Some("00")),
            ("CF_ACCESS_CLIENT_SECRET", Some("secret-only")),
            ("CF_ACCESS_CLIENT_ID", Some("id-only")),
            ("SPENT_SET", Some("durable_object")),
            ("SPENT_SET", Some("kv")),
            ("ALLOWANCE_STORE", Some("durable_object")),
            ("ALLOWANCE_STORE", Some("redis")),
            ("ALLOWANCE_LEASE", Some("0")),
            ("SCHEMES", Some("x402")),
        ];
        for (field, value) in cases {
            let mut v = vars();
            match value {
                Some(x) => v.insert(field, x.to_owned()),
                None => v.remove(field),
            };
            let e = match parse(&v) {
                Err(e) => e,
                Ok(_) => panic!("accepted {field}={value:?}"),
            };
            assert_eq!(e.field, field, "{e}");
            assert!(!e.to_string().contains("0101010101") && !e.to_string().contains("edge-token"));
        }
    }
}
