//! The invoice-service binary as a process, configured for tests.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{Proc, artifacts, free_port, post_json};

/// A running invoice-service.
pub struct InvoiceService {
    /// Its port.
    pub port: u16,
    /// The bearer token the edges must present.
    pub edge_token: String,
    /// The process.
    pub proc: Proc,
}

/// The catalog the end-to-end tests sell: `weather` (read, write; 1 h), `maps`, `admin`,
/// `geo`, whose tokens are bound to the client's address (/32, /128), and two bundles:
/// `five` and `fifty` requests per token (priced as `maps` and `weather`, so they share their
/// invoice pools).
pub const CATALOG: &str = r#"
[[services]]
name = "weather"
price_sat = 10
capabilities = ["read"]
lifetime = "1h"
[[services]]
name = "maps"
price_sat = 5
lifetime = "1h"
[[services]]
name = "admin"
price_sat = 50
lifetime = "1h"
[[services]]
name = "geo"
price_sat = 2
lifetime = "1h"
bind_client_ip = true
client_ip_prefix_v6 = 128
[[services]]
name = "five"
price_sat = 5
lifetime = "1h"
allowance = 5
[[services]]
name = "fifty"
price_sat = 10
lifetime = "1h"
allowance = 50
"#;

impl InvoiceService {
    /// Starts it with `backend` (a `[backend]` TOML section) and `env` (secrets); a pool of 2.
    pub fn start(
        log_dir: &Path,
        keys: &str,
        backend: &str,
        env: &[(&str, &str)],
        port: Option<u16>,
    ) -> Result<Self> {
        Self::start_with_pool(log_dir, keys, backend, "[pool]\ndepth = 2", env, port)
    }

    /// Starts it with `backend` and `pool` (TOML sections) and `env` (secrets).
    pub fn start_with_pool(
        log_dir: &Path,
        keys: &str,
        backend: &str,
        pool: &str,
        env: &[(&str, &str)],
        port: Option<u16>,
    ) -> Result<Self> {
        Self::start_with_catalog(log_dir, keys, backend, pool, "", env, port)
    }

    /// [`InvoiceService::start_with_pool`] selling `more` (`[[services]]` entries) beside
    /// [`CATALOG`].
    pub fn start_with_catalog(
        log_dir: &Path,
        keys: &str,
        backend: &str,
        pool: &str,
        more: &str,
        env: &[(&str, &str)],
        port: Option<u16>,
    ) -> Result<Self> {
        Self::start_selling(
            log_dir,
            keys,
            backend,
            pool,
            &format!("{CATALOG}\n{more}"),
            env,
            port,
        )
    }

    /// [`InvoiceService::start_with_pool`] selling `catalog` (`[[services]]` entries) alone:
    /// for benchmarks whose pools must fill for one service only.
    pub fn start_selling(
        log_dir: &Path,
        keys: &str,
        backend: &str,
        pool: &str,
        catalog: &str,
        env: &[(&str, &str)],
        port: Option<u16>,
    ) -> Result<Self> {
        let port = port.unwrap_or_else(free_port);
        let edge_token = "e2e-edge-token-0123456789".to_owned();
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nedge_tokens = [\"{edge_token}\"]\n{backend}\n{pool}\n{catalog}"
        );
        std::fs::create_dir_all(log_dir)?;
        let path = log_dir.join(format!("invoice-service-{port}.toml"));
        std::fs::write(&path, config)?;
        let mut cmd = Command::new(artifacts::invoice_service_bin()?);
        // Its own working folder (per port, so a restart on the port finds it again): the
        // embedded spent-set's default file lands there, one per service.
        let work = log_dir.join(format!("invoice-service-{port}"));
        std::fs::create_dir_all(&work)?;
        cmd.current_dir(&work)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .env("L402_KEYS", keys)
            .env("RUST_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Proc::spawn(&format!("invoice-service-{port}"), cmd, log_dir)?;
        proc.wait_http(
            &format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(30),
        )?;
        Ok(InvoiceService {
            port,
            edge_token,
            proc,
        })
    }

    /// With the built-in `dev` backend.
    pub fn start_dev(log_dir: &Path, keys: &str) -> Result<Self> {
        Self::start(log_dir, keys, "[backend]\nkind = \"dev\"", &[], None)
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A sample from its `/metrics` (`name{labels}` as Prometheus prints it); 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        crate::http()
            .get(format!("{}/metrics", self.url()))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0.0)
    }

    /// Pays an invoice through the dev backend; returns the preimage.
    pub fn dev_pay(&self, invoice: &str) -> Result<String> {
        let (status, body): (u16, Value) = post_json(
            &format!("{}/v1/dev/pay", self.url()),
            &[],
            &json!({"invoice": invoice}),
        )?;
        if status != 200 {
            bail!("dev pay answered {status}: {body}");
        }
        Ok(body["preimage"].as_str().context("no preimage")?.to_owned())
    }
}
