//! The plugin `configuration` JSON, parsed once per VM in `on_configure`. Errors name the
//! field; secrets (keyring, bearer token) may come from the VM's environment instead of the
//! config (`vm_config.environment_variables.host_env_keys`).

use std::collections::HashSet;
use std::time::Duration;

use l402_core::{InvalidPolicy, Keyring, Route, Routes, TokenId, Verifier};
use serde::Deserialize;

/// Default size of the per-VM verified-credential cache.
pub const DEFAULT_CACHE_SIZE: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    keyring: Option<String>,
    keyring_env: Option<String>,
    invoice_service: RawInvoiceService,
    #[serde(default)]
    on_invalid: Option<String>,
    #[serde(default = "yes")]
    strip_credential: bool,
    #[serde(default = "default_token_id_header")]
    token_id_header: String,
    #[serde(default = "default_service_header")]
    service_header: String,
    #[serde(default)]
    deny_list: Vec<String>,
    #[serde(default = "default_retry_after")]
    retry_after_secs: u32,
    #[serde(default = "default_cache_size")]
    cache_size: usize,
    #[serde(default)]
    routes: Vec<Route>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInvoiceService {
    cluster: String,
    #[serde(default = "default_authority")]
    authority: String,
    #[serde(default = "default_path")]
    path: String,
    token: Option<String>,
    token_env: Option<String>,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_token_id_header() -> String {
    l402_core::HEADER_TOKEN_ID.into()
}
fn default_service_header() -> String {
    l402_core::HEADER_SERVICE.into()
}
fn default_retry_after() -> u32 {
    l402_core::DEFAULT_RETRY_AFTER_SECS
}
fn default_cache_size() -> usize {
    DEFAULT_CACHE_SIZE
}
fn default_authority() -> String {
    "invoice-service".into()
}
fn default_path() -> String {
    l402_core::CHALLENGES_PATH.into()
}
fn default_timeout_ms() -> u64 {
    2000
}

/// Where challenges come from.
pub struct InvoiceService {
    /// The Envoy cluster.
    pub cluster: String,
    /// `:authority` of the call.
    pub authority: String,
    /// `:path` of the call.
    pub path: String,
    /// `Authorization: Bearer <token>` value, pre-built.
    pub authorization: String,
    /// How long to wait before answering 503.
    pub timeout: Duration,
}

/// The validated filter configuration: what every request of this VM shares.
pub struct FilterConfig {
    /// The verifier over the keyring.
    pub verifier: Verifier,
    /// The invoice-service.
    pub invoice_service: InvoiceService,
    /// 402 with a fresh challenge, or 401.
    pub on_invalid: InvalidPolicy,
    /// Remove the credential before forwarding.
    pub strip_credential: bool,
    /// Header for the authorized token id (lower case).
    pub token_id_header: String,
    /// Header for the authorized service (lower case).
    pub service_header: String,
    /// Revoked token ids.
    pub deny_list: HashSet<TokenId>,
    /// `Retry-After` on 503.
    pub retry_after_secs: u32,
    /// Verified-credential cache entries per VM; 0 = off.
    pub cache_size: usize,
    /// Path-prefix routes for requests whose route carries no `l402` metadata (Istio, Envoy
    /// Gateway); empty: only metadata decides.
    pub routes: Routes,
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

/// Exactly one of an inline value and an environment variable holding it.
fn secret(
    inline: Option<String>,
    env_name: Option<String>,
    field: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    match (inline, env_name) {
        (Some(v), None) => Ok(v),
        (None, Some(name)) => env(&name).filter(|v| !v.is_empty()).ok_or_else(|| {
            err(
                &format!("{field}_env"),
                format!("environment variable {name} is not set in the Wasm VM (vm_config.environment_variables)"),
            )
        }),
        (Some(_), Some(_)) => Err(err(field, format!("set {field} or {field}_env, not both"))),
        (None, None) => Err(err(field, format!("required (or {field}_env)"))),
    }
}

fn header_name(field: &str, v: &str) -> Result<String, ConfigError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(err(field, "not a valid header name"));
    }
    Ok(v.to_ascii_lowercase())
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
        let keyring_text = secret(raw.keyring, raw.keyring_env, "keyring", env)?;
        let keyring: Keyring = keyring_text
            .parse()
            .map_err(|e: l402_core::KeyringError| err("keyring", e.to_string()))?;
        let is = raw.invoice_service;
        if is.cluster.is_empty() {
            return Err(err("invoice_service.cluster", "required"));
        }
        if !is.path.starts_with('/') {
            return Err(err("invoice_service.path", "must start with '/'"));
        }
        if is.timeout_ms == 0 || is.timeout_ms > 60_000 {
            return Err(err("invoice_service.timeout_ms", "must be 1 to 60000"));
        }
        let token = secret(is.token, is.token_env, "invoice_service.token", env)?;
        if token.len() < 16 || token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(err(
                "invoice_service.token",
                "must be at least 16 printable characters without spaces",
            ));
        }
        let mut deny_list = HashSet::with_capacity(raw.deny_list.len());
        for (i, id) in raw.deny_list.iter().enumerate() {
            let id = TokenId::from_hex(id.trim())
                .ok_or_else(|| err(&format!("deny_list[{i}]"), "not a 64-hex-digit token id"))?;
            deny_list.insert(id);
        }
        if raw.retry_after_secs == 0 {
            return Err(err("retry_after_secs", "must be at least 1"));
        }
        if raw.cache_size > 1_000_000 {
            return Err(err("cache_size", "at most 1000000"));
        }
        let token_id_header = header_name("token_id_header", &raw.token_id_header)?;
        let routes = Routes::new(raw.routes).map_err(|e| err("routes", e.to_string()))?;
        let on_invalid = match &raw.on_invalid {
            None => InvalidPolicy::Challenge,
            Some(v) => v
                .parse()
                .map_err(|e: l402_core::UnknownPolicy| err("on_invalid", e.to_string()))?,
        };
        let service_header = header_name("service_header", &raw.service_header)?;
        if token_id_header == service_header {
            return Err(err("service_header", "must differ from token_id_header"));
        }
        Ok(FilterConfig {
            verifier: Verifier::new(keyring),
            invoice_service: InvoiceService {
                cluster: is.cluster,
                authority: is.authority,
                path: is.path,
                authorization: format!("Bearer {token}"),
                timeout: Duration::from_millis(is.timeout_ms),
            },
            on_invalid,
            strip_credential: raw.strip_credential,
            token_id_header,
            service_header,
            deny_list,
            routes,
            retry_after_secs: raw.retry_after_secs,
            cache_size: raw.cache_size,
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
        assert_eq!(c.on_invalid, InvalidPolicy::Challenge);
        assert!(c.strip_credential);
        assert_eq!(c.token_id_header, "x-l402-token-id");
        assert_eq!(c.invoice_service.path, "/v1/challenges");
        assert_eq!(c.invoice_service.timeout, Duration::from_secs(2));
        assert_eq!(c.cache_size, DEFAULT_CACHE_SIZE);
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
                "deny_list[0]",
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
