//! workerd CPU per authorized request: the L402 Worker in `wrangler dev --local` proxying to a
//! local origin, driven by `wrk` on core 1 while workerd runs on core 0. CPU is that of every
//! process in the group wrangler leads (workerd included), from `/proc`.
//!
//! `./scripts/bench-worker [--seconds 10]`
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use anyhow::{Context, Result, bail};
use l402_core::Preimage;
use testkit::echo::Echo;
use testkit::invoice_service::InvoiceService;
use testkit::workerd::Workerd;
use wasm_tests::KEYS;

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
    // Pin wrangler and its workerd to core 0.
    let pgid = worker.proc.pid();
    for pid in testkit::procstat::group_members(pgid)? {
        Command::new("taskset")
            .args(["-a", "-p", "-c", "0"])
            .arg(pid.to_string())
            .output()?;
    }
    let p = Preimage::from_bytes([0x55; 32]);
    let token = wasm_tests::token("weather", &["read"], Some(86_400), wasm_tests::now(), &p, 5)?;
    let auth = format!("Authorization: L402 {token}:{}", p.expose_hex());
    let run = |path: &str, secs: u64, auth: Option<&str>| -> Result<(f64, f64, String)> {
        let cpu0 = testkit::procstat::group_cpu_seconds(pgid)?;
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
        let cpu1 = testkit::procstat::group_cpu_seconds(pgid)?;
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
