//! The Worker in real workerd, through `wrangler dev --local` (Node 22 and wrangler from npm,
//! cached by `scripts/install-wrangler.sh`), with a generated wrangler config that points at
//! the built module (`scripts/build-worker.sh`) and sets vars, secrets and a local KV.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::{Proc, free_port, repo_root};

/// A running `wrangler dev` (workerd).
pub struct Workerd {
    /// The Worker's port.
    pub port: u16,
    /// The process.
    pub proc: Proc,
    /// Where the generated config lives (KV state persists there).
    pub dir: PathBuf,
}

fn script_output(name: &str) -> Result<String> {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts").join(name))
        .output()?;
    if !out.status.success() {
        bail!(
            "scripts/{name} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// The built entry module (`L402_WORKER_MODULE`, or `scripts/build-worker.sh`).
pub fn worker_module() -> Result<PathBuf> {
    static CELL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    CELL.get_or_init(|| match std::env::var_os("L402_WORKER_MODULE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => script_output("build-worker.sh")
            .map(PathBuf::from)
            .map_err(|e| format!("{e:#}")),
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// `(node, wrangler.js)`.
pub fn wrangler() -> Result<(PathBuf, PathBuf)> {
    let line = script_output("install-wrangler.sh")?;
    let (node, wrangler) = line.split_once(' ').context("install-wrangler.sh output")?;
    Ok((node.into(), wrangler.into()))
}

/// The `workerd` binary wrangler installs (`@cloudflare/workerd-linux-64`), for `workerd serve`.
pub fn workerd_bin() -> Result<PathBuf> {
    let (_, wrangler_js) = wrangler()?;
    // <prefix>/node_modules/wrangler/bin/wrangler.js -> <prefix>/node_modules
    let modules = wrangler_js
        .ancestors()
        .nth(3)
        .context("wrangler.js path")?
        .to_path_buf();
    let bin = modules.join("@cloudflare/workerd-linux-64/bin/workerd");
    if !bin.is_file() {
        bail!("no workerd at {}", bin.display());
    }
    Ok(bin)
}

/// Copies the built Worker (`module_dir`, from [`worker_module`]'s folder) under `dir/l402`
/// and returns its capnp `modules` list (capnp `embed` takes paths relative to the config).
pub fn embed_worker(dir: &Path, module_dir: &Path) -> Result<String> {
    let snippet = std::fs::read_dir(module_dir.join("snippets"))?
        .next()
        .context("the Worker build has a snippets folder")??
        .file_name()
        .into_string()
        .map_err(|_| anyhow::anyhow!("snippet folder name"))?;
    let l402 = dir.join("l402");
    std::fs::create_dir_all(l402.join("snippets").join(&snippet))?;
    for f in [
        "index.mjs".to_owned(),
        "l402_worker.js".into(),
        "l402_worker_bg.wasm".into(),
        format!("snippets/{snippet}/inline0.js"),
    ] {
        std::fs::copy(module_dir.join(&f), l402.join(&f))?;
    }
    Ok(format!(
        r#"[
    (name = "index.mjs", esModule = embed "l402/index.mjs"),
    (name = "l402_worker.js", esModule = embed "l402/l402_worker.js"),
    (name = "snippets/{snippet}/inline0.js", esModule = embed "l402/snippets/{snippet}/inline0.js"),
    (name = "l402_worker_bg.wasm", wasm = embed "l402/l402_worker_bg.wasm"),
  ]"#
    ))
}

/// Vars as capnp text bindings: `(name = "K", text = "V"), ...`.
pub fn text_bindings(vars: &[(&str, String)]) -> String {
    let text = |s: &str| serde_json::to_string(s).unwrap_or_default();
    vars.iter()
        .map(|(k, v)| format!("(name = {}, text = {})", text(k), text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The L402 Worker in `workerd serve` (no wrangler), with its `L402_DENYLIST` KV namespace
/// served by a KV backend that is down (a closed loopback port): every lookup fails, as when
/// Cloudflare's KV does. Vars are text bindings; the Worker reaches loopback origins.
pub struct WorkerdKvDown {
    /// The Worker's port.
    pub port: u16,
    /// The process.
    pub proc: Proc,
}

impl WorkerdKvDown {
    /// Starts it.
    pub fn start(log_dir: &Path, vars: &[(&str, String)]) -> Result<WorkerdKvDown> {
        let module = worker_module()?;
        let module_dir = module.parent().context("worker module folder")?;
        let port = free_port();
        let dir = log_dir.join(format!("workerd-serve-{port}"));
        std::fs::create_dir_all(&dir)?;
        let modules = embed_worker(&dir, module_dir)?;
        let bindings = format!(
            r#"{}, (name = "L402_DENYLIST", kvNamespace = "kv-down")"#,
            text_bindings(vars)
        );
        // Nothing listens on port 1 of loopback: the KV backend refuses every connection.
        let config = format!(
            r#"using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "l402", worker = (modules = {modules}, compatibilityDate = "2025-09-01", globalOutbound = "loopback", bindings = [{bindings}])),
    (name = "loopback", network = (allow = ["public", "private", "local"])),
    (name = "kv-down", external = (address = "127.0.0.1:1", http = ())),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:{port}", http = (), service = "l402") ],
);
"#
        );
        std::fs::write(dir.join("kv-down.capnp"), config)?;
        let mut cmd = Command::new(workerd_bin()?);
        cmd.args(["serve", "kv-down.capnp"]).current_dir(&dir);
        let mut proc = Proc::spawn(&format!("workerd-serve-{port}"), cmd, log_dir)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while crate::http()
            .get(format!("http://127.0.0.1:{port}/__l402_ready"))
            .send()
            .is_err()
        {
            if !proc.is_running() {
                bail!("workerd serve exited:\n{}", proc.logs());
            }
            if std::time::Instant::now() > deadline {
                bail!("workerd serve not ready:\n{}", proc.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(WorkerdKvDown { port, proc })
    }
}

/// The `[durable_objects]` and `[[migrations]]` tables of the repository's `wrangler.toml`.
fn shipped_durable_objects() -> Result<String> {
    let shipped = std::fs::read_to_string(repo_root().join("wrangler.toml"))?;
    let mut out = String::new();
    let mut keep = false;
    for line in shipped.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            keep = t.starts_with("[durable_objects]") || t.starts_with("[[migrations]]");
        }
        if keep && !t.starts_with('#') {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !out.contains("L402_SPENT_SET") || !out.contains("L402_ALLOWANCE") {
        bail!("wrangler.toml does not bind the Durable Objects");
    }
    Ok(out)
}

impl Workerd {
    /// Starts the Worker with `vars` (vars and secrets alike); `kv` binds an empty local
    /// `L402_DENYLIST` namespace.
    pub fn start(log_dir: &Path, vars: &[(&str, String)], kv: bool) -> Result<Workerd> {
        Self::start_with(log_dir, vars, kv, "")
    }

    /// [`Workerd::start`] with more `wrangler.toml` (bindings such as `[[ratelimits]]`).
    pub fn start_with(
        log_dir: &Path,
        vars: &[(&str, String)],
        kv: bool,
        extra_toml: &str,
    ) -> Result<Workerd> {
        let module = worker_module()?;
        let port = free_port();
        let dir = log_dir.join(format!("workerd-{port}"));
        std::fs::create_dir_all(&dir)?;
        let mut toml = format!(
            "name = \"l402-edge-test\"\nmain = \"{}\"\ncompatibility_date = \"2025-09-01\"\n",
            module.display()
        );
        if kv {
            toml.push_str(
                "[[kv_namespaces]]\nbinding = \"L402_DENYLIST\"\nid = \"l402-denylist-test\"\n",
            );
        }
        // The Durable Objects exactly as the shipped wrangler.toml binds and migrates them.
        toml.push_str(&shipped_durable_objects()?);
        toml.push_str(extra_toml);
        let mut dev_vars = String::new();
        for (k, v) in vars {
            // dotenv: single quotes keep the value literal (JSON routes included).
            if v.contains('\'') || v.contains('\n') {
                bail!("{k}: a .dev.vars value may not contain a single quote or a newline");
            }
            dev_vars.push_str(&format!("{k}='{v}'\n"));
        }
        std::fs::write(dir.join("wrangler.toml"), toml)?;
        // Secrets for `wrangler dev` come from .dev.vars beside the config.
        std::fs::write(dir.join(".dev.vars"), dev_vars)?;
        let proc = Self::spawn(log_dir, &dir, port)?;
        Ok(Workerd { port, proc, dir })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `wrangler dev` on the config in `dir`, persisting there, until it answers.
    fn spawn(log_dir: &Path, dir: &Path, port: u16) -> Result<Proc> {
        let (node, wrangler) = wrangler()?;
        let mut cmd = Command::new(&node);
        cmd.arg(&wrangler)
            .args(["dev", "--local", "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args([
                "--inspector-port",
                &free_port().to_string(),
                "--log-level",
                "info",
                "--persist-to",
            ])
            .arg(dir.join("state"))
            .arg("--config")
            .arg(dir.join("wrangler.toml"))
            .current_dir(dir)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("CI", "true")
            .env("NO_COLOR", "1");
        let mut proc = Proc::spawn(&format!("workerd-{port}"), cmd, log_dir)?;
        let url = format!("http://127.0.0.1:{port}/__l402_ready");
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            if !proc.is_running() {
                bail!("wrangler dev exited:\n{}", proc.logs());
            }
            if crate::http().get(&url).send().is_ok() {
                break;
            }
            if std::time::Instant::now() > deadline {
                bail!("workerd not ready:\n{}", proc.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(proc)
    }

    /// Stops the Worker and starts it again on the same port and persisted state (KV,
    /// Durable Objects): a deploy or an isolate eviction.
    pub fn restart(&mut self, log_dir: &Path) -> Result<()> {
        self.proc.stop();
        self.proc = Self::spawn(log_dir, &self.dir, self.port)?;
        Ok(())
    }

    /// Puts `key` into the local `L402_DENYLIST` namespace (as `wrangler kv key put --local`).
    pub fn kv_put(&self, key: &str) -> Result<()> {
        self.wrangler(&[
            "kv",
            "key",
            "put",
            "--local",
            "--binding",
            "L402_DENYLIST",
            key,
            "1",
        ])
        .map(drop)
    }

    /// Runs `wrangler <args>` against this Worker's config and local state; its stdout.
    pub fn wrangler(&self, args: &[&str]) -> Result<String> {
        let (node, wrangler) = wrangler()?;
        let out = Command::new(node)
            .arg(wrangler)
            .args(args)
            .arg("--persist-to")
            .arg(self.dir.join("state"))
            .arg("--config")
            .arg(self.dir.join("wrangler.toml"))
            .current_dir(&self.dir)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CI", "true")
            .output()?;
        if !out.status.success() {
            bail!(
                "wrangler {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
