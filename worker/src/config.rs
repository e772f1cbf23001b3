//! The Worker's configuration: `wrangler.toml` `[vars]` and secrets, parsed and validated once
//! per isolate. Errors name the variable; secrets never appear in them.

use l402_core::{InvalidPolicy, Keyring, Route, Routes, Verifier};

/// The validated configuration.
pub struct WorkerConfig {
    /// Verifier over the keyring secret.
    pub verifier: Verifier,
    /// Sold routes, first match wins.
    pub routes: Routes,
    /// Where verified (and unsold) requests go.
    pub origin: String,
    /// `<invoice-service>/v1/challenges`.
    pub challenges_url: String,
    /// `Bearer <token>`.
    pub authorization: String,
    /// Challenge call timeout, ms.
    pub timeout_ms: u32,
    /// 402 + challenge or 401.
    pub on_invalid: InvalidPolicy,
    /// Remove the credential before forwarding.
    pub strip_credential: bool,
    /// `Retry-After` on 503.
    pub retry_after_secs: u32,
    /// Verified-credential cache size per isolate.
    pub cache_size: usize,
}

/// A refused configuration.
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

fn number<T: std::str::FromStr>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| err(name, "not a number")),
    }
}

fn url(get: &dyn Fn(&str) -> Option<String>, name: &'static str) -> Result<String, ConfigError> {
    let v = get(name).ok_or_else(|| err(name, "required"))?;
    if !(v.starts_with("http://") || v.starts_with("https://")) {
        return Err(err(name, "expected an http:// or https:// URL"));
    }
    Ok(v.trim_end_matches('/').to_owned())
}

impl WorkerConfig {
    /// Reads every variable through `get` (vars and secrets alike).
    pub fn parse(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let keys = get("L402_KEYS").ok_or_else(|| {
            err(
                "L402_KEYS",
                "required secret (wrangler secret put L402_KEYS)",
            )
        })?;
        let keyring: Keyring = keys
            .parse()
            .map_err(|e: l402_core::KeyringError| err("L402_KEYS", e.to_string()))?;
        let routes_json = get("L402_ROUTES").ok_or_else(|| err("L402_ROUTES", "required"))?;
        let routes =
            Routes::from_json(&routes_json).map_err(|e| err("L402_ROUTES", e.to_string()))?;
        if routes.is_empty() {
            return Err(err("L402_ROUTES", "sells nothing: add a route"));
        }
        let token = get("INVOICE_SERVICE_TOKEN")
            .ok_or_else(|| err("INVOICE_SERVICE_TOKEN", "required secret"))?;
        if token.len() < 16 || token.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(err(
                "INVOICE_SERVICE_TOKEN",
                "at least 16 printable characters without spaces",
            ));
        }
        let on_invalid = match get("ON_INVALID") {
            None => InvalidPolicy::Challenge,
            Some(v) => v
                .parse()
                .map_err(|e: l402_core::UnknownPolicy| err("ON_INVALID", e.to_string()))?,
        };
        let strip_credential = match get("STRIP_CREDENTIAL").as_deref() {
            None | Some("true") => true,
            Some("false") => false,
            Some(_) => return Err(err("STRIP_CREDENTIAL", "expected true or false")),
        };
        let timeout_ms: u32 = number(get, "INVOICE_SERVICE_TIMEOUT_MS", 2000)?;
        if timeout_ms == 0 || timeout_ms > 60_000 {
            return Err(err("INVOICE_SERVICE_TIMEOUT_MS", "must be 1 to 60000"));
        }
        let retry_after_secs: u32 =
            number(get, "RETRY_AFTER_SECS", l402_core::DEFAULT_RETRY_AFTER_SECS)?;
        if retry_after_secs == 0 {
            return Err(err("RETRY_AFTER_SECS", "must be at least 1"));
        }
        Ok(WorkerConfig {
            verifier: Verifier::new(keyring),
            routes,
            origin: url(get, "ORIGIN_URL")?,
            challenges_url: format!(
                "{}{}",
                url(get, "INVOICE_SERVICE_URL")?,
                l402_core::CHALLENGES_PATH
            ),
            authorization: format!("Bearer {token}"),
            timeout_ms,
            on_invalid,
            strip_credential,
            retry_after_secs,
            cache_size: number(get, "CACHE_SIZE", 1024)?,
        })
    }

    /// The route a path buys, if any (first prefix match).
    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes.route_for(path)
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
        WorkerConfig::parse(&|k| v.get(k).cloned())
    }

    #[test]
    fn minimal_and_routes() {
        let c = parse(&vars()).unwrap();
        assert_eq!(c.origin, "http://127.0.0.1:3000");
        assert_eq!(c.challenges_url, "http://127.0.0.1:8402/v1/challenges");
        assert_eq!(c.route_for("/weather/today").unwrap().service, "weather");
        assert!(c.route_for("/free").is_none());
        assert_eq!(c.on_invalid, InvalidPolicy::Challenge);
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
