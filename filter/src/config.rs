//! The plugin `configuration` JSON, parsed once per VM in `on_configure`. Errors name the
//! field; secrets (keyring, bearer token) may come from the VM's environment instead of the
//! config (`vm_config.environment_variables.host_env_keys`).

use core::time::Duration;

use l402_core::json::{Field, JsonError, JsonResult, Reader, Unknown, read_object, required};
use l402_core::{CHALLENGES_PATH, Edge, EdgeOptions, Routes};

use crate::prelude::*;

/// The configuration as written, before validation (core validates the settings).
#[derive(Default)]
struct Raw<'a> {
    invoice_service: Option<RawInvoiceService>,
    /// The optional string settings, in [`STRINGS`] order.
    strings: [Option<String>; STRINGS.len()],
    /// The optional integer settings, in [`NUMBERS`] order.
    numbers: [Option<u64>; NUMBERS.len()],
    strip_credential: Option<bool>,
    discovery: Option<bool>,
    paywall: Option<bool>,
    openapi_path: Option<String>,
    deny_list: Option<Vec<String>>,
    /// Route tables as written: core validates them.
    routes: Option<&'a str>,
    /// Paths the manifest lists (sold through route metadata, which the filter cannot list).
    publish: Option<&'a str>,
}

const STRINGS: [&str; 11] = [
    "keyring",
    "keyring_env",
    "on_invalid",
    "token_id_header",
    "service_header",
    "context_header",
    "context_key",
    "context_key_env",
    "non_canonical_path",
    "challenge_form",
    "schemes",
];
const NUMBERS: [&str; 6] = [
    "retry_after_secs",
    "cache_size",
    "challenges_per_second",
    "challenge_burst",
    "allowance_lease",
    "allowance_lease_ms",
];

struct RawInvoiceService {
    cluster: String,
    authority: String,
    path: String,
    redeem_path: String,
    allowance_path: String,
    token: Option<String>,
    token_env: Option<String>,
    timeout_ms: Option<u64>,
}

impl<'a> Raw<'a> {
    /// Reads the object; unknown members are refused (a misspelt setting must not silently
    /// fall back to its default).
    fn read(r: &mut Reader<'a>) -> JsonResult<Raw<'a>> {
        let mut c = Raw::default();
        let mut invoice_service = |r: &mut Reader<'a>| {
            c.invoice_service = Some(RawInvoiceService::read(r)?);
            Ok(())
        };
        let mut openapi_path = None;
        let [s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10] = &mut c.strings;
        let [n0, n1, n2, n3, n4, n5] = &mut c.numbers;
        read_object(
            r,
            &mut [
                (STRINGS[0], Field::Str(s0)),
                (STRINGS[1], Field::Str(s1)),
                (STRINGS[2], Field::Str(s2)),
                (STRINGS[3], Field::Str(s3)),
                (STRINGS[4], Field::Str(s4)),
                (STRINGS[5], Field::Str(s5)),
                (STRINGS[6], Field::Str(s6)),
                (STRINGS[7], Field::Str(s7)),
                (STRINGS[8], Field::Str(s8)),
                (STRINGS[9], Field::Str(s9)),
                (STRINGS[10], Field::Str(s10)),
                (NUMBERS[0], Field::U64(n0)),
                (NUMBERS[1], Field::U64(n1)),
                (NUMBERS[2], Field::U64(n2)),
                (NUMBERS[3], Field::U64(n3)),
                (NUMBERS[4], Field::U64(n4)),
                (NUMBERS[5], Field::U64(n5)),
                ("openapi_path", Field::Str(&mut openapi_path)),
                ("strip_credential", Field::Bool(&mut c.strip_credential)),
                ("discovery", Field::Bool(&mut c.discovery)),
                ("paywall", Field::Bool(&mut c.paywall)),
                ("deny_list", Field::Strings(&mut c.deny_list)),
                ("routes", Field::Raw(&mut c.routes)),
                ("publish", Field::Raw(&mut c.publish)),
                ("invoice_service", Field::With(&mut invoice_service)),
            ],
            Unknown::Refuse,
        )?;
        c.openapi_path = openapi_path;
        Ok(c)
    }

    fn string(&mut self, name: &str) -> Option<String> {
        let i = STRINGS.iter().position(|n| *n == name)?;
        self.strings.get_mut(i)?.take()
    }

    fn number(&self, name: &str) -> Option<u64> {
        let i = NUMBERS.iter().position(|n| *n == name)?;
        *self.numbers.get(i)?
    }
}

impl RawInvoiceService {
    fn read(r: &mut Reader<'_>) -> JsonResult<RawInvoiceService> {
        let mut s: [Option<String>; 7] = Default::default();
        let mut timeout_ms = None;
        let [
            cluster,
            authority,
            path,
            redeem_path,
            allowance_path,
            token,
            token_env,
        ] = &mut s;
        read_object(
            r,
            &mut [
                ("cluster", Field::Str(cluster)),
                ("authority", Field::Str(authority)),
                ("path", Field::Str(path)),
                ("redeem_path", Field::Str(redeem_path)),
                ("allowance_path", Field::Str(allowance_path)),
                ("token", Field::Str(token)),
                ("token_env", Field::Str(token_env)),
                ("timeout_ms", Field::U64(&mut timeout_ms)),
            ],
            Unknown::Refuse,
        )?;
        let [
            cluster,
            authority,
            path,
            redeem_path,
            allowance_path,
            token,
            token_env,
        ] = s;
        Ok(RawInvoiceService {
            cluster: required(cluster, "cluster", r)?,
            authority: authority.unwrap_or_else(|| "invoice-service".into()),
            path: path.unwrap_or_else(|| CHALLENGES_PATH.into()),
            redeem_path: redeem_path.unwrap_or_else(|| l402_core::REDEEM_PATH.into()),
            allowance_path: allowance_path.unwrap_or_else(|| l402_core::ALLOWANCE_PATH.into()),
            token,
            token_env,
            timeout_ms,
        })
    }
}

/// Where challenges come from: the Envoy side of the invoice-service call.
pub struct InvoiceService {
    /// The Envoy cluster.
    pub cluster: String,
    /// `:authority` of the call.
    pub authority: String,
    /// `:path` of the challenge call.
    pub path: String,
    /// `:path` of the redeem call (the spent-set of Payment charges).
    pub redeem_path: String,
    /// `:path` of the allowance call (metered tokens' counts).
    pub allowance_path: String,
    /// How long to wait before answering 503.
    pub timeout: Duration,
}

/// The validated filter configuration: what every request of this VM shares.
pub struct FilterConfig {
    /// The edge procedure with its validated settings.
    pub edge: Edge,
    /// The invoice-service cluster.
    pub invoice_service: InvoiceService,
}

/// A refused configuration: the field and why. Never contains a secret.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field.
    pub field: String,
    /// Why.
    pub message: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("l402 filter config: ")?;
        f.write_str(&self.field)?;
        f.write_str(": ")?;
        f.write_str(&self.message)
    }
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        message: message.into(),
    }
}

fn json_err(e: JsonError) -> ConfigError {
    let field = if e.path.is_empty() {
        "configuration"
    } else {
        e.path.as_str()
    };
    let mut message = String::from(e.kind.as_str());
    message.push_str(" at byte ");
    l402_core::json::push_u64(&mut message, e.at as u64);
    err(field, message)
}

/// At most one of an inline value and an environment variable holding it (a secret kept out
/// of the config); `None` when neither is given.
fn secret(
    inline: Option<String>,
    env_name: Option<String>,
    field: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    match (inline, env_name) {
        (Some(v), None) => Ok(Some(v)),
        (None, Some(name)) => env(&name)
            .filter(|v| !v.is_empty())
            .map(Some)
            .ok_or_else(|| {
                err(
                    &[field, "_env"].concat(),
                    [
                        "environment variable ",
                        &name,
                        " is not set in the Wasm VM (vm_config.environment_variables)",
                    ]
                    .concat(),
                )
            }),
        (Some(_), Some(_)) => Err(err(
            field,
            ["set ", field, " or ", field, "_env, not both"].concat(),
        )),
        (None, None) => Ok(None),
    }
}

/// A route table as written, for core to validate; `None` when absent or empty.
fn route_table(json: Option<&str>) -> Option<String> {
    let json = json?;
    match Routes::from_json(json) {
        Ok(r) if r.is_empty() => None,
        _ => Some(json.to_owned()),
    }
}

impl FilterConfig {
    /// Parses the plugin configuration; `env` reads the VM's environment.
    pub fn parse(json: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut raw = Reader::document(json, Raw::read).map_err(json_err)?;
        let Some(is) = raw.invoice_service.take() else {
            return Err(err("invoice_service", "required"));
        };
        if is.cluster.is_empty() {
            return Err(err("invoice_service.cluster", "required"));
        }
        for (field, path) in [
            ("invoice_service.redeem_path", &is.redeem_path),
            ("invoice_service.allowance_path", &is.allowance_path),
            ("invoice_service.path", &is.path),
        ] {
            if !path.starts_with('/') {
                return Err(err(field, "must start with '/'"));
            }
        }
        let routes = route_table(raw.routes);
        if let Some(table) = routes.as_deref().and_then(|t| Routes::from_json(t).ok())
            && table.iter().any(|r| !r.rate_limit.is_empty())
        {
            return Err(err(
                "routes",
                "rate_limit is the Worker's; in Envoy, put local_ratelimit on the route (docs/ENVOY.md)",
            ));
        }
        let keyring = raw.string("keyring");
        let keyring_env = raw.string("keyring_env");
        let context_key = raw.string("context_key");
        let context_key_env = raw.string("context_key_env");
        let options = EdgeOptions {
            keyring: secret(keyring, keyring_env, "keyring", env)?,
            routes,
            routes_required: false,
            deny_list: raw.deny_list.take().unwrap_or_default(),
            on_invalid: raw.string("on_invalid"),
            strip_credential: raw.strip_credential,
            token_id_header: raw.string("token_id_header"),
            service_header: raw.string("service_header"),
            context_header: raw.string("context_header"),
            context_key: secret(context_key, context_key_env, "context_key", env)?,
            retry_after_secs: raw.number("retry_after_secs"),
            cache_size: raw.number("cache_size"),
            timeout_ms: is.timeout_ms,
            edge_token: secret(is.token, is.token_env, "invoice_service.token", env)?,
            non_canonical_path: raw.string("non_canonical_path"),
            challenges_per_second: raw.number("challenges_per_second"),
            challenge_burst: raw.number("challenge_burst"),
            challenge_form: raw.string("challenge_form"),
            schemes: raw.string("schemes"),
            allowance_lease: raw.number("allowance_lease"),
            allowance_lease_ms: raw.number("allowance_lease_ms"),
            discovery: raw.discovery,
            paywall: raw.paywall,
            openapi_path: raw.openapi_path.take(),
            publish: route_table(raw.publish),
        };
        let settings = options
            .validate()
            .map_err(|e| err(e.setting.json_name(), e.problem.to_string()))?;
        let timeout = Duration::from_millis(u64::from(settings.timeout_ms));
        Ok(FilterConfig {
            edge: Edge::new(settings, false),
            invoice_service: InvoiceService {
                cluster: is.cluster,
                authority: is.authority,
                path: is.path,
                redeem_path: is.redeem_path,
                allowance_path: is.allowance_path,
                timeout,
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const KEYS: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "keyring": KEYS,
            "invoice_service": {"cluster": "invoice_service", "token": "edge-token-0123456789"}
        })
    }

    #[test]
    fn minimal_config_has_safe_defaults() {
        let c = FilterConfig::parse(base().to_string().as_bytes(), &no_env).unwrap();
        let s = c.edge.settings();
        assert_eq!(s.on_invalid, l402_core::InvalidPolicy::Challenge);
        assert!(s.strip_credential);
        assert_eq!(s.token_id_header, "x-l402-token-id");
        assert_eq!(c.invoice_service.path, "/v1/challenges");
        assert_eq!(c.invoice_service.timeout, Duration::from_secs(2));
        assert_eq!(s.cache_size, l402_core::DEFAULT_CACHE_SIZE);
        assert_eq!(s.non_canonical_path, l402_core::NonCanonicalPath::Refuse);
    }

    #[test]
    fn secrets_from_the_vm_environment() {
        let mut v = base();
        v["keyring"] = serde_json::Value::Null;
        v.as_object_mut().unwrap().remove("keyring");
        v["keyring_env"] = "L402_KEYS".into();
        let env = |k: &str| (k == "L402_KEYS").then(|| KEYS.to_owned());
        assert!(FilterConfig::parse(v.to_string().as_bytes(), &env).is_ok());
        let e = FilterConfig::parse(v.to_string().as_bytes(), &no_env)
            .err()
            .unwrap();
        assert_eq!(e.field, "keyring_env");
    }

    #[test]
    fn every_bad_field_is_named_without_secrets() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (
                serde_json::json!({"invoice_service": {"cluster": "c", "token": "edge-token-0123456789"}}),
                "keyring",
            ),
            (
                {
                    let mut v = base();
                    v["keyring"] = "1:abc".into();
                    v
                },
                "keyring",
            ),
            (
                {
                    let mut v = base();
                    v["keyring_env"] = "X".into();
                    v
                },
                "keyring",
            ),
            (
                {
                    let mut v = base();
                    v["invoice_service"]["token"] = serde_json::Value::Null;
                    v
                },
                "invoice_service.token",
            ),
            (
                {
                    let mut v = base();
                    v["cache_size"] = "lots".into();
                    v
                },
                "cache_size",
            ),
            (
                {
                    let mut v = base();
                    v["invoice_service"]["cluster"] = "".into();
                    v
                },
                "invoice_service.cluster",
            ),
            (
                {
                    let mut v = base();
                    v["invoice_service"]["path"] = "v1".into();
                    v
                },
                "invoice_service.path",
            ),
            (
                {
                    let mut v = base();
                    v["invoice_service"]["timeout_ms"] = 0.into();
                    v
                },
                "invoice_service.timeout_ms",
            ),
            (
                {
                    let mut v = base();
                    v["invoice_service"]["token"] = "short".into();
                    v
                },
                "invoice_service.token",
            ),
            (
                {
                    let mut v = base();
                    v["deny_list"] = serde_json::json!(["00"]);
                    v
                },
                "deny_list",
            ),
            (
                {
                    let mut v = base();
                    v["token_id_header"] = "bad header".into();
                    v
                },
                "token_id_header",
            ),
            (
                {
                    let mut v = base();
                    v["retry_after_secs"] = 0.into();
                    v
                },
                "retry_after_secs",
            ),
            (
                {
                    let mut v = base();
                    v["on_invalid"] = "maybe".into();
                    v
                },
                "on_invalid",
            ),
            (
                {
                    let mut v = base();
                    v["colour"] = "blue".into();
                    v
                },
                "colour",
            ),
        ];
        for (json, field) in cases {
            let e = match FilterConfig::parse(json.to_string().as_bytes(), &no_env) {
                Err(e) => e,
                Ok(_) => panic!("accepted: {json}"),
            };
            assert_eq!(e.field, field, "{e}");
            assert!(
                !e.to_string().contains("0101010101") && !e.to_string().contains("edge-token"),
                "{e}"
            );
        }
        assert_eq!(
            FilterConfig::parse(b"not json", &no_env)
                .err()
                .unwrap()
                .field,
            "configuration"
        );
    }
}
