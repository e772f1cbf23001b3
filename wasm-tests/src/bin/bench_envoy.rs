//! Envoy CPU per request: the L402 filter (authorized requests) against a no-op proxy-wasm
//! filter, in the same run. Envoy (`--concurrency 1`) is pinned to core 0 and `wrk` to core 1;
//! routes are answered by Envoy itself, so Envoy's CPU is the proxy's plus the filter's.
//! Rounds alternate between the variants; medians and ranges are printed.
//!
//! `./scripts/bench-envoy [--seconds 5] [--rounds 3]` (installs wrk, builds both filters).
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use l402_core::Preimage;
use testkit::{Proc, artifacts, free_port, http, repo_root};
use wasm_tests::KEYS;

struct Variant {
    name: &'static str,
    port: u16,
    proc: Proc,
    auth: Option<String>,
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start_envoy(dir: &Path, wasm: &Path, filter_config: &str, name: &str) -> Result<(u16, Proc)> {
    let port = free_port();
    let admin = free_port();
    let yaml = std::fs::read_to_string(repo_root().join("envoy-config/envoy.bench.yaml.tmpl"))?
        .replace("{{LISTEN_PORT}}", &port.to_string())
        .replace("{{ADMIN_PORT}}", &admin.to_string())
        .replace("{{WASM}}", &wasm.display().to_string())
        .replace("{{FILTER_CONFIG}}", filter_config);
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(&cfg, yaml)?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"])
        .arg(artifacts::envoy_bin()?)
        .arg("-c")
        .arg(&cfg)
        .args([
            "--disable-hot-restart",
            "--concurrency",
            "1",
            "--log-level",
            "error",
            "--base-id",
        ])
        .arg(port.to_string())
        .env("L402_KEYS", KEYS)
        .env("L402_EDGE_TOKEN", "bench-edge-token-0123456789");
    let mut proc = Proc::spawn(name, cmd, dir)?;
    proc.wait_http(
        &format!("http://127.0.0.1:{admin}/ready"),
        Duration::from_secs(30),
    )?;
    Ok((port, proc))
}

struct Round {
    rps: f64,
    requests: f64,
    cpu_us_per_req: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse_ms(s: &str) -> f64 {
    let (num, unit) = s.trim().split_at(
        s.trim()
            .find(|c: char| c.is_alphabetic())
            .unwrap_or(s.len()),
    );
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => f64::NAN,
    }
}

fn round(v: &Variant, secs: u64) -> Result<Round> {
    let cpu0 = testkit::procstat::cpu_seconds(v.proc.pid())?;
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1", "wrk", "-t1", "-c32", "--latency", "-d"])
        .arg(format!("{secs}s"));
    if let Some(a) = &v.auth {
        cmd.args(["-H", &format!("Authorization: {a}")]);
    }
    cmd.arg(format!("http://127.0.0.1:{}/weather", v.port));
    let out = cmd.output().context("running wrk (apt-get install wrk)")?;
    let cpu1 = testkit::procstat::cpu_seconds(v.proc.pid())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || text.contains("Non-2xx") {
        bail!("wrk against {} failed or saw errors:\n{text}", v.name);
    }
    let requests: f64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("wrk output")?;
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .context("wrk output")?;
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .map(parse_ms)
            .unwrap_or(f64::NAN)
    };
    Ok(Round {
        rps,
        requests,
        cpu_us_per_req: (cpu1 - cpu0) * 1e6 / requests,
        p50_ms: pct("50%"),
        p99_ms: pct("99%"),
    })
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() -> Result<()> {
    let secs = arg("--seconds", 5);
    let rounds = arg("--rounds", 3) as usize;
    let dir = tempfile::Builder::new()
        .prefix("l402-bench-envoy-")
        .tempdir()?;
    let l402_wasm = artifacts::filter_wasm()?;
    let noop_wasm = std::env::var_os("L402_NOOP_WASM")
        .map(PathBuf::from)
        .context("L402_NOOP_WASM (scripts/bench-envoy sets it)")?;

    let p = Preimage::from_bytes([0x77; 32]);
    let token = wasm_tests::token("weather", &["read"], Some(86_400), wasm_tests::now(), &p, 3)?;
    let auth = format!("L402 {token}:{}", p.expose_hex());

    let l402_config = wasm_tests::filter_config(2000, &[]);
    let no_cache = wasm_tests::filter_config(2000, &[("cache_size", serde_json::json!(0))]);
    let mut variants = Vec::new();
    for (name, wasm, cfg, auth) in [
        ("noop filter", &noop_wasm, "{}", None),
        (
            "l402 authorized (cache)",
            &l402_wasm,
            l402_config.as_str(),
            Some(auth.clone()),
        ),
        (
            "l402 authorized (no cache)",
            &l402_wasm,
            no_cache.as_str(),
            Some(auth.clone()),
        ),
    ] {
        let (port, proc) = start_envoy(
            dir.path(),
            wasm,
            cfg,
            &name.replace(' ', "-").replace(['(', ')'], ""),
        )?;
        // Warm up (V8 tier-up, connections).
        let _ = http()
            .get(format!("http://127.0.0.1:{port}/weather"))
            .send();
        variants.push(Variant {
            name,
            port,
            proc,
            auth,
        });
    }
    for v in &variants {
        round(v, 1)?;
    }
    let mut results: Vec<Vec<Round>> = variants.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, v) in variants.iter().enumerate() {
            results[i].push(round(v, secs)?);
        }
    }
    println!(
        "Envoy 1.40.0 --concurrency 1 (core 0), wrk -t1 -c32 (core 1), {rounds} rounds x {secs}s, alternating; median [min..max]"
    );
    println!(
        "{:<28} {:>22} {:>24} {:>10} {:>10}",
        "variant", "req/s", "Envoy CPU us/req", "p50 ms", "p99 ms"
    );
    let mut cpu_medians = Vec::new();
    for (v, rs) in variants.iter().zip(&results) {
        let (rps, rlo, rhi) = median(rs.iter().map(|r| r.rps).collect());
        let (cpu, clo, chi) = median(rs.iter().map(|r| r.cpu_us_per_req).collect());
        let (p50, _, _) = median(rs.iter().map(|r| r.p50_ms).collect());
        let (p99, _, _) = median(rs.iter().map(|r| r.p99_ms).collect());
        let n: f64 = rs.iter().map(|r| r.requests).sum();
        println!(
            "{:<28} {:>8.0} [{:>5.0}..{:>5.0}] {:>8.2} [{:>5.2}..{:>5.2}] {:>10.3} {:>10.3}   ({n} requests)",
            v.name, rps, rlo, rhi, cpu, clo, chi, p50, p99
        );
        cpu_medians.push(cpu);
    }
    println!(
        "CPU per authorized request vs no-op filter: {:.3}x with the cache, {:.3}x without",
        cpu_medians[1] / cpu_medians[0],
        cpu_medians[2] / cpu_medians[0]
    );
    Ok(())
}
