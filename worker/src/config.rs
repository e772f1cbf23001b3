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
    /// Where Payment charges are spent.
    pub spent_set: SpentSetHost,
    /// A Cloudflare Access service token for the invoice-service (`CF-Access-Client-Id`,
    /// `CF-Access-Client-Secret`), when it sits behind Access.
    pub access: Option<(String, String)>,
}

/// Where the Worker spends Payment charges (`SPENT_SET`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpentSetHost {
    /// The `L402_SPENT_SET` Durable Object namespace, one object per payment hash: strongly
    /// consistent, no round trip to the invoice-service. The default where it is bound.
    DurableObject,
    /// The invoice-service's spent-set: for routes also sold through Envoy, so one set serves
    /// both edges.
    Service,
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

impl WorkerConfig {
    /// Reads every variable through `get` (vars and secrets alike); `kv_bound`: the
    /// `L402_DENYLIST` KV namespace is bound, and every authorized token is looked up in it;
    /// `do_bound`: the `L402_SPENT_SET` Durable Object namespace is bound.
    pub fn parse(get: Get<'_>, kv_bound: bool, do_bound: bool) -> Result<Self, ConfigError> {
        let strip_credential = match get(Setting::StripCredential.var_name()).as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(err("STRIP_CREDENTIAL", "expected true or false")),
        };
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
        };
        let spent_set = match get("SPENT_SET").as_deref() {
            None if do_bound => SpentSetHost::DurableObject,
            None | Some("service") => SpentSetHost::Service,
            Some("durable_object") if do_bound => SpentSetHost::DurableObject,
            Some("durable_object") => {
                return Err(err(
                    "SPENT_SET",
                    "durable_object needs the L402_SPENT_SET Durable Object binding",
                ));
            }
            Some(_) => return Err(err("SPENT_SET", "expected durable_object or service")),
        };
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
            edge: Edge::new(settings, kv_bound),
            origin: url(get, "ORIGIN_URL")?,
            challenges_url: format!("{service}{}", l402_core::CHALLENGES_PATH),
            redeem_url: format!("{service}{}", l402_core::REDEEM_PATH),
            spent_set,
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
        WorkerConfig::parse(&|k| v.get(k).cloned(), false, false)
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
        assert_eq!(c.spent_set, SpentSetHost::Service);
        let bound = |extra: Option<&str>| {
            let mut v = vars();
            if let Some(x) = extra {
                v.insert("SPENT_SET", x.to_owned());
            }
            WorkerConfig::parse(&|k| v.get(k).cloned(), false, true).map(|c| c.spent_set)
        };
        assert_eq!(bound(None), Ok(SpentSetHost::DurableObject));
        assert_eq!(bound(Some("service")), Ok(SpentSetHost::Service));
        assert_eq!(
            bound(Some("durable_object")),
            Ok(SpentSetHost::DurableObject)
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
