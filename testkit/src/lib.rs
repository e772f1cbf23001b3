//! Test harness shared by the integration and end-to-end tests: real processes on free
//! loopback ports, each behind a handle that stops it by the PID it started, in `Drop`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub mod artifacts;
pub mod echo;
pub mod envoy;
pub mod fault_proxy;
pub mod invoice_service;
pub mod lnbits;
pub mod pricer;
pub mod procstat;
pub mod redis;
pub mod workerd;
pub mod wrk;

/// The project's cache folder (`L402_CACHE`, default `~/.cache/l402-edge`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("L402_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/l402-edge")
        })
}

/// The repository root, found at run time: `L402_REPO_ROOT` (the scripts set it), else the
/// nearest folder above the working directory holding `scripts/env.sh` (cargo runs tests from
/// the package folder). Not `env!("CARGO_MANIFEST_DIR")`: a binary cargo reuses from a shared
/// target dir may have been compiled in another clone, whose path is baked in and gone.
pub fn repo_root() -> PathBuf {
    if let Some(root) = std::env::var_os("L402_REPO_ROOT") {
        return PathBuf::from(root);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors()
        .find(|d| d.join("scripts/env.sh").is_file() && d.join("testkit").is_dir())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("testkit lives in the workspace")
                .to_path_buf()
        })
}

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `n` distinct free loopback ports: held together while they are picked, so that none is
/// handed out twice (one config with many sockets).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound listener's address").port())
        .collect()
}

/// A child process, stopped by its own PID when dropped; its output goes to files.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    /// Waited for: its PID (and group id) may belong to another process by now.
    reaped: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr into `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Result<Proc> {
        std::fs::create_dir_all(log_dir)?;
        let log = log_dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        // Its own process group, so that stopping it stops what it started too (wrangler
        // runs workerd as grandchildren).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log,
            reaped: false,
            _dir: None,
        })
    }

    /// Keeps `dir` alive as long as the process (removed after it stops).
    pub fn own_dir(mut self, dir: tempfile::TempDir) -> Self {
        self._dir = Some(dir);
        self
    }

    /// Hands over the folder [`Proc::own_dir`] kept (to restart on the same data).
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }

    /// The PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Path of its log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.try_wait() {
            Ok(None) => true,
            Ok(Some(_)) => {
                self.reaped = true;
                false
            }
            Err(_) => false,
        }
    }

    /// Stops it and everything it started (SIGKILL to the process group its PID leads), and
    /// waits.
    pub fn stop(&mut self) {
        if self.reaped {
            return;
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--"])
            .arg(format!("-{}", self.pid()))
            .stderr(Stdio::null())
            .status();
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        self.reaped = true;
    }

    /// Sends SIGTERM to its PID and waits up to `grace` for it to exit; kills it after.
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.reaped = true;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop();
        None
    }

    /// Waits for `url` to answer with any status below 500, or fails with the logs.
    pub fn wait_http(&mut self, url: &str, timeout: Duration) -> Result<()> {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                bail!("{} exited before it was ready:\n{}", self.name, self.logs());
            }
            if let Ok(r) = client.get(url).send()
                && r.status().as_u16() < 500
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready at {url} after {timeout:?}:\n{}",
                    self.name,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A blocking JSON client for tests.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// POSTs JSON and returns (status, body as JSON or `Value::String` of the text).
pub fn post_json(url: &str, headers: &[(&str, &str)], body: &Value) -> Result<(u16, Value)> {
    post_json_method("POST", url, headers, body)
}

/// Sends JSON with `method` and returns (status, body as JSON or `Value::String` of the text).
pub fn post_json_method(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Result<(u16, Value)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut req = http().request(method, url).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send()?;
    let status = resp.status().as_u16();
    let text = resp.text()?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A `dev`-backend invoice-service config with one `weather` service, for tests.
pub fn dev_service_config(listen_port: u16, edge_token: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{listen_port}"
edge_tokens = ["{edge_token}"]
[backend]
kind = "dev"
timeout = "2s"
[pool]
depth = 2
[[services]]
name = "weather"
price_sat = 10
capabilities = ["read"]
lifetime = "1h"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(64);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 64);
        assert!(ports.iter().all(|p| *p != 0));
    }
}
