//! The plugin `configuration` JSON, parsed once per VM in `on_configure`. Errors name the
//! field; secrets (keyring, bearer token) may come from the VM's environment instead of the
//! config (`vm_config.environment_variables.host_env_keys`).

use std::time::Duration;

use l402_core::{Edge, EdgeOptions, Route};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    keyring: Option<String>,
    keyring_env: Option<String>,
    invoice_service: RawInvoiceService,
    on_invalid: Option<String>,
    strip_credential: Option<bool>,
    token_id_header: Option<String>,
    service_header: Option<String>,
    context_header: Option<String>,
    context_key: Option<String>,
    context_key_env: Option<String>,
    #[serde(default)]
    deny_list: Vec<String>,
    retry_after_secs: Option<u64>,
    cache_size: Option<u64>,
    non_canonical_path: Option<String>,
    challenges_per_second: Option<u64>,
    challenge_burst: Option<u64>,
    challenge_form: Option<String>,
    schemes: Option<String>,
    allowance_lease: Option<u64>,
    allowance_lease_ms: Option<u64>,
    discovery: Option<bool>,
    paywall: Option<bool>,
    openapi_path: Option<String>,
    #[serde(default)]
    routes: Vec<Route>,
    /// Paths the manifest lists (sold through route metadata, which the filter cannot list).
    #[serde(default)]
    publish: Vec<Route>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInvoiceService {
    cluster: String,
    #[serde(default = "default_authority")]
    authority: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default = "default_redeem_path")]
    redeem_path: String,
    #[serde(default = "default_allowance_path")]
    allowance_path: String,
    token: Option<String>,
    token_env: Option<String>,
    timeout_ms: Option<u64>,
}

fn default_authority() -> String {
    "invoice-service".into()
}
fn default_path() -> String {
    l402_core::CHALLENGES_PATH.into()
}
fn default_redeem_path() -> String {
    l402_core::REDEEM_PATH.into()
}
fn default_allowance_path() -> String {
    l402_core::ALLOWANCE_PATH.into()
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

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "l402 filter config: {}: {}", self.field, self.message)
    }
}

fn err(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        message: message.into(),
    }
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
        (None, Some(name)) => env(&name).filter(|v| !v.is_empty()).map(Some).ok_or_else(|| {
            err(
                &format!("{field}_env"),
                format!("environment variable {name} is not set in the Wasm VM (vm_config.environment_variables)"),
            )
        }),
        (Some(_), Some(_)) => Err(err(field, format!("set {field} or {field}_env, not both"))),
        (None, None) => Ok(None),
    }
}

/// A route list as core's route-table JSON (core validates it); `None` when empty.
fn route_table(routes: &[Route], field: &str) -> Result<Option<String>, ConfigError> {
    if routes.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(routes)
        .map(Some)
        .map_err(|e| err(field, e.to_string()))
}

impl FilterConfig {
    /// Parses the plugin configuration; `env` reads the VM's environment.
    pub fn parse(json: &[u8], env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        // serde_path_to_error names the field a type error is in ("cache_size"); serde_json
        // itself names only unknown and missing fields, in its message.
        let raw: Raw =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(json))
                .map_err(|e| {
                    let path = e.path().to_string();
                    let field = if path == "." {
                        "configuration".to_owned()
                    } else {
                        path
                    };
                    err(&field, e.into_inner().to_string())
                })?;
        let is = raw.invoice_service;
        if is.cluster.is_empty() {
            return Err(err("invoice_service.cluster", "required"));
        }
        if !is.redeem_path.starts_with('/') {
            return Err(err("invoice_service.redeem_path", "must start with '/'"));
        }
        if !is.allowance_path.starts_with('/') {
            return Err(err("invoice_service.allowance_path", "must start with '/'"));
        }
        if !is.path.starts_with('/') {
            return Err(err("invoice_service.path", "must start with '/'"));
        }
        if raw.routes.iter().any(|r| !r.rate_limit.is_empty()) {
            return Err(err(
                "routes",
                "rate_limit is the Worker's; in Envoy, put local_ratelimit on the route (docs/ENVOY.md)",
            ));
        }
        let routes = route_table(&raw.routes, "routes")?;
        let options = EdgeOptions {
            keyring: secret(raw.keyring, raw.keyring_env, "keyring", env)?,
            routes,
            routes_required: false,
            deny_list: raw.deny_list,
            on_invalid: raw.on_invalid,
            strip_credential: raw.strip_credential,
            token_id_header: raw.token_id_header,
            service_header: raw.service_header,
            context_header: raw.context_header,
            context_key: secret(raw.context_key, raw.context_key_env, "context_key", env)?,
            retry_after_secs: raw.retry_after_secs,
            cache_size: raw.cache_size,
            timeout_ms: is.timeout_ms,
            edge_token: secret(is.token, is.token_env, "invoice_service.token", env)?,
            non_canonical_path: raw.non_canonical_path,
            challenges_per_second: raw.challenges_per_second,
            challenge_burst: raw.challenge_burst,
            challenge_form: raw.challenge_form,
            schemes: raw.schemes,
            allowance_lease: raw.allowance_lease,
            allowance_lease_ms: raw.allowance_lease_ms,
            discovery: raw.discovery,
            paywall: raw.paywall,
            openapi_path: raw.openapi_path,
            publish: route_table(&raw.publish, "publish")?,
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
