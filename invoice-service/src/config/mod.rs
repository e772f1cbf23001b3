//! Configuration: a TOML file, then environment overrides for secrets, validated into a
//! [`Config`] once at start-up. A bad config refuses to start with a message naming the field.

mod catalog;
pub mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use l402_core::Keyring;
use serde::Deserialize;

use self::catalog::ServiceSection;
pub use self::catalog::{OnPricingError, PricingConfig, Service};
use self::common::err;
pub use self::common::{ConfigError, Env, ProcessEnv};
use crate::backend::{BackendConfig, KINDS};
pub use crate::spent::SpentSetConfig;

/// Environment variables read at start-up (secrets do not belong in the file).
pub mod env {
    /// The keyring, `"<id>:<64 hex>,..."`.
    pub const KEYS: &str = "L402_KEYS";
    /// Bearer tokens the edges present, comma-separated.
    pub const EDGE_TOKENS: &str = "L402_EDGE_TOKENS";
    /// The spent-set's Redis URL (it may carry a password).
    pub const REDIS_URL: &str = "L402_REDIS_URL";
}

// ---- the file, as written ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    keys: KeysSection,
    backend: Option<BackendSection>,
    #[serde(default)]
    pool: PoolSection,
    #[serde(default)]
    services: Vec<ServiceSection>,
    spent_set: Option<SpentSetSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpentSetSection {
    store: String,
    path: Option<PathBuf>,
    url: Option<String>,
    key_prefix: Option<String>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default)]
    edge_tokens: Vec<String>,
    #[serde(default)]
    log_format: LogFormat,
    #[serde(default = "default_retry_after")]
    retry_after_secs: u32,
    #[serde(default = "default_body_limit")]
    max_body_bytes: usize,
    #[serde(default = "default_realm")]
    realm: String,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            edge_tokens: Vec::new(),
            log_format: LogFormat::default(),
            retry_after_secs: default_retry_after(),
            max_body_bytes: default_body_limit(),
            realm: default_realm(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8402".into()
}
fn default_retry_after() -> u32 {
    l402_core::DEFAULT_RETRY_AFTER_SECS
}
fn default_body_limit() -> usize {
    16 * 1024
}
fn default_realm() -> String {
    "l402-edge".into()
}

/// Log output.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    #[default]
    Human,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysSection {
    /// Prefer the `L402_KEYS` environment variable; a file path is the other option.
    keyring_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct BackendSection {
    kind: String,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default = "default_in_flight")]
    max_in_flight: usize,
    /// `[backend.<kind>]` sections, read by each backend's module.
    #[serde(flatten)]
    sections: BTreeMap<String, toml::Value>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_in_flight() -> usize {
    16
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolSection {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "default_depth")]
    depth: usize,
    #[serde(default = "default_min_remaining", with = "humantime_serde")]
    min_remaining: Duration,
}

impl Default for PoolSection {
    fn default() -> Self {
        PoolSection {
            enabled: true,
            depth: default_depth(),
            min_remaining: default_min_remaining(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_depth() -> usize {
    4
}
fn default_min_remaining() -> Duration {
    Duration::from_secs(120)
}

// ---- validated ----

/// Pool settings.
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    /// Whether to keep invoices ready.
    pub enabled: bool,
    /// Ready invoices per service.
    pub depth: usize,
    /// An invoice with less time left than this is dropped, not handed out.
    pub min_remaining: Duration,
}

/// The validated configuration.
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Accepted edge bearer tokens (at least one).
    pub edge_tokens: Vec<String>,
    /// Log output.
    pub log_format: LogFormat,
    /// `Retry-After` on 503.
    pub retry_after_secs: u32,
    /// Request body cap.
    pub max_body_bytes: usize,
    /// The keyring.
    pub keyring: Keyring,
    /// The backend.
    pub backend: BackendConfig,
    /// The pool.
    pub pool: PoolConfig,
    /// The catalog, in file order.
    pub services: Vec<Service>,
    /// The Payment scheme's protection space (`realm`).
    pub realm: String,
    /// Where spent Payment charges are remembered.
    pub spent_set: SpentSetConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field(
                "edge_tokens",
                &format_args!("<{} redacted>", self.edge_tokens.len()),
            )
            .field("keyring", &self.keyring)
            .field("backend", &self.backend)
            .field("pool", &self.pool)
            .field("realm", &self.realm)
            .field(
                "spent_set",
                &match &self.spent_set {
                    SpentSetConfig::Redis { .. } => "redis",
                    SpentSetConfig::Embedded { .. } => "embedded",
                    SpentSetConfig::Memory => "memory",
                },
            )
            .field(
                "services",
                &self
                    .services
                    .iter()
                    .map(|s| s.entry.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Config {
    /// Reads and validates `path` with overrides from `env`.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path.display().to_string(), format!("cannot read: {e}")))?;
        Config::parse(&text, env)
    }

    /// Validates TOML text with overrides from `env`.
    pub fn parse(text: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let span = e
                .span()
                .map(|s| format!(" (at byte {})", s.start))
                .unwrap_or_default();
            err("file", format!("{}{span}", e.message()))
        })?;
        let server = file.server;
        let listen: SocketAddr = server
            .listen
            .parse()
            .map_err(|_| err("server.listen", "expected an address like 127.0.0.1:8402"))?;
        let mut edge_tokens = server.edge_tokens;
        if let Some(tokens) = env.get(env::EDGE_TOKENS) {
            edge_tokens = tokens.split(',').map(|t| t.trim().to_owned()).collect();
        }
        edge_tokens.retain(|t| !t.is_empty());
        if edge_tokens.is_empty() {
            return Err(err(
                "server.edge_tokens",
                format!(
                    "set at least one edge bearer token (or {})",
                    env::EDGE_TOKENS
                ),
            ));
        }
        // The edges' rule for the same tokens (l402_core::check_edge_token), so a token one
        // side accepts the other does too.
        for (i, t) in edge_tokens.iter().enumerate() {
            l402_core::check_edge_token(t)
                .map_err(|p| err(format!("server.edge_tokens[{i}]"), p.to_string()))?;
        }
        if server.retry_after_secs == 0 {
            return Err(err("server.retry_after_secs", "must be at least 1"));
        }

        let keyring = match (env.get(env::KEYS), &file.keys.keyring_file) {
            (Some(ring), _) => ring
                .parse::<Keyring>()
                .map_err(|e| err(env::KEYS, e.to_string()))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| err("keys.keyring_file", format!("cannot read: {e}")))?
                .trim()
                .parse::<Keyring>()
                .map_err(|e| err("keys.keyring_file", e.to_string()))?,
            (None, None) => {
                return Err(err(
                    env::KEYS,
                    "no keyring: set L402_KEYS (see `invoice-service keygen`) or keys.keyring_file",
                ));
            }
        };

        let backend = backend(file.backend, env)?;

        if file.pool.depth == 0 && file.pool.enabled {
            return Err(err(
                "pool.depth",
                "must be at least 1 when the pool is enabled",
            ));
        }
        let pool = PoolConfig {
            enabled: file.pool.enabled,
            depth: file.pool.depth,
            min_remaining: file.pool.min_remaining,
        };

        let services = catalog::services(file.services, &pool)?;
        if server.realm.is_empty() || server.realm.chars().any(char::is_control) {
            return Err(err(
                "server.realm",
                "must be non-empty, without control characters",
            ));
        }
        let spent_set = spent_set(file.spent_set, backend.node.is_dev(), env)?;

        Ok(Config {
            listen,
            edge_tokens,
            log_format: server.log_format,
            retry_after_secs: server.retry_after_secs,
            max_body_bytes: server.max_body_bytes,
            keyring,
            backend,
            pool,
            services,
            realm: server.realm,
            spent_set,
        })
    }

    /// The catalog entry for `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.entry.name.as_str() == name)
    }
}

/// Default file of the embedded spent-set, relative to the working directory.
pub const DEFAULT_SPENT_SET_PATH: &str = "l402-spent.redb";

fn spent_set(
    section: Option<SpentSetSection>,
    dev: bool,
    env: &dyn Env,
) -> Result<SpentSetConfig, ConfigError> {
    let Some(s) = section else {
        // A dev node moves no money; a real one must not forget spends at a restart.
        return Ok(if dev {
            SpentSetConfig::Memory
        } else {
            SpentSetConfig::Embedded {
                path: DEFAULT_SPENT_SET_PATH.into(),
            }
        });
    };
    let only = |allowed: &[&str]| -> Result<(), ConfigError> {
        for (name, set) in [
            ("path", s.path.is_some()),
            ("url", s.url.is_some()),
            ("key_prefix", s.key_prefix.is_some()),
            ("timeout", s.timeout.is_some()),
        ] {
            if set && !allowed.contains(&name) {
                return Err(err(
                    format!("spent_set.{name}"),
                    format!("not a setting of store = \"{}\"", s.store),
                ));
            }
        }
        Ok(())
    };
    match s.store.as_str() {
        "memory" => {
            only(&[])?;
            if !dev {
                return Err(err(
                    "spent_set.store",
                    "memory forgets spent payments at a restart, which would serve replays: use \"embedded\" or \"redis\" with a real node",
                ));
            }
            Ok(SpentSetConfig::Memory)
        }
        "embedded" => {
            only(&["path"])?;
            Ok(SpentSetConfig::Embedded {
                path: s.path.unwrap_or_else(|| DEFAULT_SPENT_SET_PATH.into()),
            })
        }
        "redis" => {
            only(&["url", "key_prefix", "timeout"])?;
            let url = env.get(env::REDIS_URL).or(s.url).ok_or_else(|| {
                err(
                    "spent_set.url",
                    format!("required for store = \"redis\" (or {})", env::REDIS_URL),
                )
            })?;
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(err("spent_set.url", "expected redis:// or rediss://"));
            }
            let timeout = s.timeout.unwrap_or(Duration::from_secs(1));
            if timeout.is_zero() {
                return Err(err("spent_set.timeout", "must be more than 0"));
            }
            Ok(SpentSetConfig::Redis {
                url,
                key_prefix: s.key_prefix.unwrap_or_else(|| "l402:spent:".into()),
                timeout,
            })
        }
        _ => Err(err(
            "spent_set.store",
            "expected \"memory\", \"embedded\" or \"redis\"",
        )),
    }
}

fn backend(section: Option<BackendSection>, env: &dyn Env) -> Result<BackendConfig, ConfigError> {
    let names = || {
        KINDS
            .iter()
            .map(|k| format!("\"{}\"", k.name))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let mut s = section.ok_or_else(|| {
        err(
            "backend",
            format!("missing [backend] section (kind = {})", names()),
        )
    })?;
    if s.timeout.is_zero() {
        return Err(err("backend.timeout", "must be more than 0"));
    }
    if s.max_in_flight == 0 {
        return Err(err("backend.max_in_flight", "must be at least 1"));
    }
    if let Some(unknown) = s
        .sections
        .keys()
        .find(|k| !KINDS.iter().any(|kind| kind.name == *k))
    {
        return Err(err(
            format!("backend.{unknown}"),
            format!(
                "unknown field: expected kind, timeout, max_in_flight or a section {}",
                names()
            ),
        ));
    }
    let kind = KINDS.iter().find(|k| k.name == s.kind).ok_or_else(|| {
        err(
            "backend.kind",
            format!("unknown kind {:?}: expected {}", s.kind, names()),
        )
    })?;
    Ok(BackendConfig {
        node: (kind.parse)(s.sections.remove(kind.name), env)?,
        timeout: s.timeout,
        max_in_flight: s.max_in_flight,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::backend::cln::ClnConfig;
    use crate::backend::dev::DevConfig;

    const KEYS: &str = "1:1111111111111111111111111111111111111111111111111111111111111111";
    const TOKEN: &str = "edge-token-0123456789";

    fn base() -> String {
        format!(
            r#"
[server]
edge_tokens = ["{TOKEN}"]
[backend]
kind = "dev"
[[services]]
name = "weather"
price_sat = 10
capabilities = ["read"]
lifetime = "1h"
"#
        )
    }

    fn env() -> HashMap<&'static str, &'static str> {
        HashMap::from([(env::KEYS, KEYS)])
    }

    #[test]
    fn minimal_config_gets_sensible_defaults() {
        let c = Config::parse(&base(), &env()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8402");
        assert!(c.pool.enabled && c.pool.depth == 4);
        let s = c.service("weather").unwrap();
        assert_eq!(
            (s.price_sat, s.entry.lifetime_secs, s.expiry.as_secs()),
            (10, Some(3600), 600)
        );
        assert_eq!(s.entry.capabilities, vec!["read"]);
        let dev = c.backend.node.as_any().downcast_ref::<DevConfig>().unwrap();
        assert_eq!(dev.node_key, None);
        // Debug never prints the tokens.
        assert!(!format!("{c:?}").contains(TOKEN));
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases: Vec<(String, HashMap<&str, &str>, &str)> = vec![
            (
                base().replace("price_sat = 10", "price_sat = 0"),
                env(),
                "services[0].price_sat",
            ),
            (
                base().replace("\"weather\"", "\"Weather_1\""),
                env(),
                "services[0].name",
            ),
            (
                base().replace("kind = \"dev\"", "kind = \"electrum\""),
                env(),
                "backend.kind",
            ),
            (
                base().replace("kind = \"dev\"", "kind = \"eclair\""),
                env(),
                "backend.eclair",
            ),
            (
                base().replace(
                    "kind = \"dev\"",
                    "kind = \"eclair\"\n[backend.eclair]\nurl = \"http://127.0.0.1:8080\"",
                ),
                env(),
                crate::backend::eclair::PASSWORD_ENV,
            ),
            (
                base() + "bind_client_ip = true\nclient_ip_prefix_v6 = 0\n",
                env(),
                "services[0].client_ip_prefix_v4/v6",
            ),
            (
                base()
                    + "[services.pricing]\nurl = \"ftp://x\"\nmax_price_sat = 5\non_error = \"fail\"\n",
                env(),
                "services[0].pricing.url",
            ),
            (
                base()
                    + "[services.pricing]\nurl = \"http://x\"\nmax_price_sat = 0\non_error = \"fail\"\n",
                env(),
                "services[0].pricing.max_price_sat",
            ),
            (
                base().replace("kind = \"dev\"", "kind = \"lnd\""),
                env(),
                "backend.lnd",
            ),
            (
                base().replace(
                    "kind = \"dev\"",
                    "kind = \"lnbits\"\n[backend.lnbits]\nurl = \"http://x\"",
                ),
                env(),
                crate::backend::lnbits::INVOICE_KEY_ENV,
            ),
            (
                base().replace(
                    "kind = \"dev\"",
                    "kind = \"lnbits\"\n[backend.lnbits]\nurl = \"ftp://x\"",
                ),
                HashMap::from([
                    (env::KEYS, KEYS),
                    (crate::backend::lnbits::INVOICE_KEY_ENV, "k"),
                ]),
                "backend.lnbits.url",
            ),
            (base(), HashMap::new(), env::KEYS),
            (base(), HashMap::from([(env::KEYS, "1:zz")]), env::KEYS),
            (
                base().replace(&format!("\"{TOKEN}\""), "\"short\""),
                env(),
                "server.edge_tokens[0]",
            ),
            (
                base().replace(&format!("edge_tokens = [\"{TOKEN}\"]"), ""),
                env(),
                "server.edge_tokens",
            ),
            (
                base().replace("lifetime = \"1h\"", "lifetime = \"soon\""),
                env(),
                "file",
            ),
            (
                base().replace("[server]", "[server]\nlisten = \"nowhere\""),
                env(),
                "server.listen",
            ),
            (
                base().replace("[server]", "[server]\ncolour = \"blue\""),
                env(),
                "file",
            ),
            (
                base().replace("lifetime = \"1h\"", "lifetime = \"5m\""),
                env(),
                "services[0].lifetime",
            ),
            (
                base().replace("lifetime = \"1h\"", "expiry = \"30s\""),
                env(),
                "services[0].expiry",
            ),
            (
                base() + "[[services]]\nname = \"weather\"\nprice_sat = 1\n",
                env(),
                "services[1].name",
            ),
            (
                base().replace("capabilities = [\"read\"]", "capabilities = [\"re ad\"]"),
                env(),
                "services[0].capabilities",
            ),
            (
                base().replace("[backend]\nkind = \"dev\"", ""),
                env(),
                "backend",
            ),
        ];
        for (text, env, field) in cases {
            let e = Config::parse(&text, &env).expect_err(field);
            assert_eq!(e.field, field, "{e}");
            assert!(!e.to_string().contains("1111111111"), "{e}");
        }
        // Unknown field errors name it in the message.
        let e = Config::parse(
            &base().replace("[server]", "[server]\ncolour = \"blue\""),
            &env(),
        )
        .unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
    }

    #[test]
    fn env_overrides_the_file() {
        let text = base().replace(
            "kind = \"dev\"",
            "kind = \"cln\"\n[backend.cln]\nurl = \"https://127.0.0.1:3010/\"",
        );
        let env = HashMap::from([
            (env::KEYS, KEYS),
            (crate::backend::cln::RUNE_ENV, "rune-abc"),
            (
                env::EDGE_TOKENS,
                "aaaaaaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbbbbbb",
            ),
        ]);
        let c = Config::parse(&text, &env).unwrap();
        assert_eq!(c.edge_tokens.len(), 2);
        let cln = c.backend.node.as_any().downcast_ref::<ClnConfig>().unwrap();
        assert_eq!(
            (cln.url.as_str(), cln.rune.as_str()),
            ("https://127.0.0.1:3010", "rune-abc")
        );
        assert!(!format!("{:?}", c.backend).contains("rune-abc"));
    }
}
