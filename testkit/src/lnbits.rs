//! A real LNbits (PyPI `lnbits==1.6.2`, FakeWallet funding source) on a free loopback port,
//! started headless with a fresh data folder, stopped by PID. Installed by
//! `scripts/install-lnbits.sh` into the cache; the harness runs that script if needed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{Proc, free_port, http};

/// A running LNbits with a super user token.
pub struct Lnbits {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    admin_token: String,
    proc: Proc,
    port: u16,
    log_dir: PathBuf,
}

fn command(venv: &std::path::Path, dir: &std::path::Path, port: u16) -> Command {
    let mut cmd = Command::new(venv.join("bin/uvicorn"));
    cmd.current_dir(dir)
        .args(["lnbits.__main__:app", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .env("LNBITS_BACKEND_WALLET_CLASS", "FakeWallet")
        .env("LNBITS_DATA_FOLDER", dir.join("data"))
        .env("LNBITS_EXTENSIONS_PATH", dir.join("extensions"))
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("AUTH_HTTPS_ONLY", "false")
        .env("LNBITS_RATE_LIMIT_NO", "1000000")
        .env("LNBITS_EXTENSIONS_MANIFESTS", "[]")
        .env("LNBITS_WASM_EXTENSIONS_MANIFESTS", "[]")
        .env("LNBITS_PRICE_AGGREGATOR_ENABLED", "false")
        .env("LNBITS_EXCHANGE_RATE_PROVIDERS", "[]");
    cmd
}

/// A wallet's keys.
#[derive(Clone, Debug)]
pub struct Wallet {
    /// Wallet id.
    pub id: String,
    /// Admin key (can pay).
    pub admin_key: String,
    /// Invoice key (can only make invoices and read).
    pub invoice_key: String,
}

/// The venv with LNbits, installing it on first use.
pub fn venv() -> Result<PathBuf> {
    crate::artifacts::script("install-lnbits.sh", None)
}

fn site_packages(venv: &std::path::Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for entry in std::fs::read_dir(&lib)? {
        let p = entry?.path().join("site-packages/lnbits");
        if p.is_dir() {
            return Ok(p);
        }
    }
    bail!("no lnbits package under {}", lib.display())
}

impl Lnbits {
    /// Starts LNbits and completes its first install; `log_dir` receives `lnbits.log`.
    pub fn start(log_dir: &std::path::Path) -> Result<Lnbits> {
        let venv = venv()?;
        let dir = tempfile::Builder::new().prefix("lnbits-").tempdir()?;
        // It serves ./lnbits/static relative to its working directory.
        std::os::unix::fs::symlink(site_packages(&venv)?, dir.path().join("lnbits"))?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        std::fs::create_dir_all(dir.path().join("extensions"))?;
        let port = free_port();
        let cmd = command(&venv, dir.path(), port);
        let mut proc = Proc::spawn("lnbits", cmd, log_dir)?.own_dir(dir);
        let url = format!("http://127.0.0.1:{port}");
        proc.wait_http(&format!("{url}/api/v1/health"), Duration::from_secs(60))?;
        // Health can answer before the install endpoint is ready to hand out a token (seen
        // on a loaded machine: a 2xx without one): ask again, briefly.
        let mut admin_token = None;
        for _ in 0..20 {
            let (status, body) = crate::post_json_method(
                "PUT",
                &format!("{url}/api/v1/auth/first_install"),
                &[],
                &json!({"username": "superuser", "password": "l402-edge-tests", "password_repeat": "l402-edge-tests"}),
            )?;
            if status >= 300 && status != 503 {
                bail!("LNbits first_install answered {status}: {body}");
            }
            if let Some(t) = body["access_token"].as_str() {
                admin_token = Some(t.to_owned());
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let admin_token = admin_token.context("first_install returned no access_token")?;
        Ok(Lnbits {
            url,
            admin_token,
            proc,
            port,
            log_dir: log_dir.to_path_buf(),
        })
    }

    /// Stops the process (its data folder stays).
    pub fn stop(&mut self) {
        self.proc.stop();
    }

    /// Starts it again on the same port and data; waits for its health check.
    pub fn restart(&mut self) -> Result<()> {
        self.proc.stop();
        let dir = self
            .proc
            .take_dir()
            .context("LNbits owns its data folder")?;
        let cmd = command(&venv()?, dir.path(), self.port);
        self.proc = Proc::spawn("lnbits-restarted", cmd, &self.log_dir)?.own_dir(dir);
        self.proc.wait_http(
            &format!("{}/api/v1/health", self.url),
            Duration::from_secs(60),
        )
    }

    /// Creates a wallet.
    pub fn wallet(&self, name: &str) -> Result<Wallet> {
        let (status, body) = crate::post_json(
            &format!("{}/api/v1/account", self.url),
            &[],
            &json!({"name": name}),
        )?;
        if status >= 300 {
            bail!("create wallet answered {status}: {body}");
        }
        let s = |k: &str| -> Result<String> {
            Ok(body[k]
                .as_str()
                .with_context(|| format!("wallet has no {k}: {body}"))?
                .to_owned())
        };
        Ok(Wallet {
            id: s("id")?,
            admin_key: s("adminkey")?,
            invoice_key: s("inkey")?,
        })
    }

    /// Credits `sat` to a wallet (super user).
    pub fn top_up(&self, wallet: &Wallet, sat: u64) -> Result<()> {
        let auth = format!("Bearer {}", self.admin_token);
        let (status, body) = crate::post_json_method(
            "PUT",
            &format!("{}/users/api/v1/balance", self.url),
            &[("Authorization", &auth)],
            &json!({"id": wallet.id, "amount": sat}),
        )?;
        if status >= 300 {
            bail!("top up answered {status}: {body}");
        }
        Ok(())
    }

    /// Pays `bolt11` from `payer`; returns the preimage (hex).
    pub fn pay(&self, payer: &Wallet, bolt11: &str) -> Result<String> {
        let (status, body) = crate::post_json(
            &format!("{}/api/v1/payments", self.url),
            &[("X-Api-Key", &payer.admin_key)],
            &json!({"out": true, "bolt11": bolt11}),
        )?;
        if status >= 300 {
            bail!("pay answered {status}: {body}");
        }
        Ok(body["preimage"]
            .as_str()
            .with_context(|| format!("payment has no preimage: {body}"))?
            .to_owned())
    }

    /// Whether the invoice with this payment hash is paid.
    pub fn is_paid(&self, payment_hash: &str) -> Result<bool> {
        let v: Value = http()
            .get(format!("{}/api/v1/payments/{payment_hash}", self.url))
            .send()?
            .json()?;
        Ok(v["paid"].as_bool().unwrap_or(false))
    }

    /// Its process (logs, PID).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}
