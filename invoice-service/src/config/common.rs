//! What every configuration section shares: the error that names a field, where secrets come
//! from, and the checks of URLs, secrets and files. Backends' own sections use these too, so a
//! backend's whole configuration lives in its module.

use std::path::Path;

/// A field that is wrong, and why. Never carries a secret's value.
#[derive(Debug, thiserror::Error)]
#[error("config: {field}: {message}")]
pub struct ConfigError {
    /// Dotted path of the field (`services[1].price_sat`), or the environment variable.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A [`ConfigError`].
pub fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// Where values come from besides the file (the process environment, or a test's map).
pub trait Env {
    /// The variable's value, if set and not empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).map(|v| (*v).to_owned())
    }
}

/// An `http://` or `https://` URL, without a trailing `/`.
pub fn require_url(field: &str, url: &str) -> Result<String, ConfigError> {
    let ok = url.starts_with("http://") || url.starts_with("https://");
    if !ok {
        return Err(err(field, "expected an http:// or https:// URL"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A secret a backend needs from the environment.
pub fn secret(env: &dyn Env, var: &str, kind: &str) -> Result<String, ConfigError> {
    env.get(var).ok_or_else(|| {
        err(
            var,
            format!("the {kind} backend needs this secret in the environment"),
        )
    })
}

/// A file's bytes.
pub fn read_file(field: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| err(field, format!("cannot read {}: {e}", path.display())))
}

/// A backend's own `[backend.<kind>]` section, read into its type; `None` when it is absent.
pub fn section<T: serde::de::DeserializeOwned>(
    kind: &str,
    value: Option<toml::Value>,
) -> Result<Option<T>, ConfigError> {
    value
        .map(|v| {
            v.try_into().map_err(|e: toml::de::Error| {
                err(format!("backend.{kind}"), e.message().to_owned())
            })
        })
        .transpose()
}

/// A section the backend cannot do without.
pub fn required_section<T: serde::de::DeserializeOwned>(
    kind: &str,
    value: Option<toml::Value>,
) -> Result<T, ConfigError> {
    section(kind, value)?.ok_or_else(|| {
        err(
            format!("backend.{kind}"),
            format!("kind = \"{kind}\" needs a [backend.{kind}] section"),
        )
    })
}

/// `[backend.<kind>]` with only `url = "…"`: the section of the nodes whose one secret comes
/// from the environment (LNbits, phoenixd, Eclair).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlSection {
    url: String,
}

/// `(url, secret)` of such a node: the section is required, the URL checked, the secret read
/// from `var`.
pub fn url_and_secret(
    kind: &str,
    value: Option<toml::Value>,
    env: &dyn Env,
    var: &str,
) -> Result<(String, String), ConfigError> {
    let s: UrlSection = required_section(kind, value)?;
    Ok((
        require_url(&format!("backend.{kind}.url"), &s.url)?,
        secret(env, var, kind)?,
    ))
}
