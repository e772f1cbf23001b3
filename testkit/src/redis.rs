//! A Redis server of our own (Debian's `redis-server`, `scripts/install-redis.sh`) on a free
//! loopback port, stopped by its PID; never the system service.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::{Proc, free_port};

/// A running `redis-server`.
pub struct Redis {
    /// Its port.
    pub port: u16,
    /// The process.
    pub proc: Proc,
    dir: tempfile::TempDir,
    durable: bool,
}

/// `L402_REDIS_BIN`, else `scripts/install-redis.sh`.
fn bin() -> Result<PathBuf> {
    match std::env::var_os("L402_REDIS_BIN") {
        Some(p) => Ok(PathBuf::from(p)),
        None => crate::artifacts::script("install-redis.sh", None),
    }
}

impl Redis {
    /// Starts one; `durable`: append-only file, fsync on every write (a restart keeps every
    /// acknowledged write), else no persistence at all.
    pub fn start(log_dir: &Path, durable: bool) -> Result<Redis> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let proc = Self::spawn(log_dir, dir.path(), port, durable)?;
        Ok(Redis {
            port,
            proc,
            dir,
            durable,
        })
    }

    fn spawn(log_dir: &Path, dir: &Path, port: u16, durable: bool) -> Result<Proc> {
        let mut cmd = Command::new(bin()?);
        cmd.args(["--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--save", "", "--protected-mode", "yes", "--dir"])
            .arg(dir);
        if durable {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let mut proc = Proc::spawn(&format!("redis-{port}"), cmd, log_dir)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if !proc.is_running() {
                bail!("redis-server exited:\n{}", proc.logs());
            }
            if Instant::now() > deadline {
                bail!("redis-server not ready:\n{}", proc.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(proc)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL by PID): an outage.
    pub fn stop(&mut self) {
        self.proc.stop();
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self, log_dir: &Path) -> Result<()> {
        self.proc.stop();
        self.proc = Self::spawn(log_dir, self.dir.path(), self.port, self.durable)?;
        Ok(())
    }
}
