//! workerd CPU per authorized request: the L402 Worker in `wrangler dev --local` proxying to a
//! local origin, driven by `wrk` on core 1 while workerd runs on core 0. CPU is that of every
//! process in the group wrangler leads (workerd included), from `/proc`.
//!
//! `./scripts/bench-worker [--seconds 10]`
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use anyhow::{Context, Result, bail};
use l402_core::{Keyring, Preimage, ServiceEntry, mint};
use testkit::echo::Echo;
use testkit::invoice_service::InvoiceService;
use testkit::workerd::Workerd;
use wasm_tests::KEYS;

/// utime + stime, seconds, of every process whose process group is `pgid`.
fn group_cpu(pgid: u32) -> Result<f64> {
    let hz: f64 = String::from_utf8(Command::new("getconf").arg("CLK_TCK").output()?.stdout)?
        .trim()
        .parse()?;
    let mut ticks = 0f64;
    for entry in std::fs::read_dir("/proc")? {
        let path = entry?.path().join("stat");
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            ticks += f[11].parse::<f64>()? + f[12].parse::<f64>()?;
        }
    }
    Ok(ticks / hz)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::Builder::new()
        .prefix("l402-bench-worker-")
        .tempdir()?;
    let service = InvoiceService::start_dev(dir.path(), KEYS)?;
    let origin = Echo::start()?;
    let vars: Vec<(&str, String)> = vec![
        ("L402_KEYS", KEYS.to_owned()),
        ("INVOICE_SERVICE_TOKEN", service.edge_token.clone()),
        ("ORIGIN_URL", format!("http://127.0.0.1:{}", origin.port)),
        ("INVOICE_SERVICE_URL", service.url()),
        (
            "L402_ROUTES",
            r#"[{"path":"/weather","service":"weather","capabilities":"read"}]"#.into(),
        ),
    ];
    let worker = Workerd::start(dir.path(), &vars, false)?;
    // Pin workerd (and wrangler) to core 0.
    Command::new("taskset")
        .args(["-a", "-p", "-c", "0"])
        .arg(worker.proc.pid().to_string())
        .output()?;
    let pgid = worker.proc.pid();
    for entry in std::fs::read_dir("/proc")? {
        let p = entry?.path();
        let Ok(stat) = std::fs::read_to_string(p.join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        if rest
            .split_whitespace()
            .nth(2)
            .and_then(|g| g.parse::<u32>().ok())
            == Some(pgid)
        {
            let pid = head.split_whitespace().next().unwrap_or_default();
            Command::new("taskset")
                .args(["-a", "-p", "-c", "0", pid])
                .output()?;
        }
    }
    let ring: Keyring = KEYS.parse()?;
    let p = Preimage::from_bytes([0x55; 32]);
    let entry = ServiceEntry {
        name: "weather".parse()?,
        tier: 0,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(86_400),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let auth = format!(
        "Authorization: L402 {}:{}",
        mint(&ring, p.payment_hash(), [5; 28], &entry, now)?.macaroon_b64,
        p.expose_hex()
    );
    let run = |path: &str, secs: u64, auth: Option<&str>| -> Result<(f64, f64, String)> {
        let cpu0 = group_cpu(pgid)?;
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "1", "wrk", "-t1", "-c16", "--latency", "-d"])
            .arg(format!("{secs}s"));
        if let Some(a) = auth {
            cmd.args(["-H", a]);
        }
        let out = cmd
            .arg(worker.url(path))
            .output()
            .context("wrk (apt-get install wrk)")?;
        let cpu1 = group_cpu(pgid)?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("Non-2xx") {
            bail!("errors under load:\n{text}");
        }
        let requests: f64 = text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .context("wrk output")?;
        let p99 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("99%"))
            .unwrap_or("?")
            .trim()
            .to_owned();
        Ok((requests / secs as f64, (cpu1 - cpu0) * 1e3 / requests, p99))
    };
    run("/weather", 2, Some(&auth))?; // warm up
    let (rps_free, cpu_free, p99_free) = run("/free", secs, None)?;
    let (rps, cpu, p99) = run("/weather", secs, Some(&auth))?;
    println!(
        "workerd (wrangler 4.164.0 dev --local, core 0), wrk -t1 -c16 (core 1), {secs}s each, origin on loopback"
    );
    println!(
        "{:<34} {:>9} {:>22} {:>9}",
        "path", "req/s", "workerd CPU ms/req", "p99"
    );
    println!(
        "{:<34} {:>9.0} {:>22.3} {:>9}",
        "unsold path (proxy only)", rps_free, cpu_free, p99_free
    );
    println!(
        "{:<34} {:>9.0} {:>22.3} {:>9}",
        "authorized (verify + proxy)", rps, cpu, p99
    );
    println!(
        "L402 cost per authorized request: {:.3} ms of workerd CPU",
        cpu - cpu_free
    );
    Ok(())
}
