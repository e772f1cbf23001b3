//! Challenge latency (p50/p99) and throughput of the invoice-service, for the `dev` and
//! `lnbits` backends, pool on and off. Starts everything itself on loopback; bounded in
//! count and time.
//!
//! ```sh
//! cargo run --release -p invoice-service --example challenge_bench            # dev and lnbits
//! cargo run --release -p invoice-service --example challenge_bench -- --quick # a short run
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use invoice_service::config::{Config, env};
use tokio::sync::Semaphore;

const KEYS: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";
const EDGE: &str = "edge-token-benchmark-0001";

struct Figures {
    n: usize,
    errors: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    hits: u64,
}

fn config(backend: &str, pool: bool, depth: usize, lnbits_key: Option<&str>) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nedge_tokens = [\"{EDGE}\"]\n{backend}\n\
         [pool]\nenabled = {pool}\ndepth = {depth}\n\
         [[services]]\nname = \"weather\"\nprice_sat = 10\ncapabilities = [\"read\"]\nlifetime = \"1h\"\n"
    );
    let mut vars = HashMap::from([(env::KEYS, KEYS)]);
    if let Some(k) = lnbits_key {
        vars.insert(invoice_service::backend::lnbits::INVOICE_KEY_ENV, k);
    }
    Config::parse(&text, &vars).unwrap()
}

async fn run(cfg: Config, requests: usize, concurrency: usize, warm_depth: usize) -> Figures {
    let running = invoice_service::app::start(cfg, invoice_service::clock::system())
        .await
        .unwrap();
    let url = format!("http://{}/v1/challenges", running.addr);
    if let Some(pool) = running.state.pool() {
        let deadline = Instant::now() + Duration::from_secs(120);
        while pool.depth("weather") < warm_depth && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let sem = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for _ in 0..requests {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = client
                .post(&url)
                .bearer_auth(EDGE)
                .body(r#"{"service":"weather"}"#)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            drop(permit);
            (t.elapsed(), ok)
        }));
    }
    let mut lat = Vec::with_capacity(requests);
    let mut errors = 0;
    for t in tasks {
        let (d, ok) = t.await.unwrap();
        lat.push(d);
        errors += usize::from(!ok);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    let pct =
        |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    let hits = running
        .state
        .metrics()
        .render()
        .lines()
        .find(|l| l.starts_with("l402_pool_hits_total{service=\"weather\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0);
    running.shutdown.cancel();
    Figures {
        n: requests,
        errors,
        secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        hits,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let only_dev = std::env::args().any(|a| a == "--dev-only");
    let (dev_n, lnbits_n) = if quick { (500, 100) } else { (20_000, 1_000) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!(
        "invoice-service challenge benchmark ({} cores, concurrency 32)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<8} {:<5} {:>7} {:>7} {:>10} {:>9} {:>9} {:>9}",
        "backend", "pool", "n", "errors", "req/s", "p50 ms", "p99 ms", "hits"
    );
    let print = |b: &str, pool: &str, f: &Figures| {
        println!(
            "{:<8} {:<5} {:>7} {:>7} {:>10.0} {:>9.2} {:>9.2} {:>9}",
            b,
            pool,
            f.n,
            f.errors,
            f.n as f64 / f.secs,
            f.p50_ms,
            f.p99_ms,
            f.hits
        );
    };
    let dev = "[backend]\nkind = \"dev\"\ntimeout = \"5s\"";
    // Warm pool: deep enough that the whole run is served from it.
    let f = rt.block_on(run(config(dev, true, dev_n + 64, None), dev_n, 32, dev_n));
    print("dev", "on", &f);
    let f = rt.block_on(run(config(dev, false, 1, None), dev_n, 32, 0));
    print("dev", "off", &f);

    if only_dev {
        return;
    }
    let logs = tempfile::tempdir().unwrap();
    let lnbits = testkit::lnbits::Lnbits::start(logs.path()).expect("LNbits starts");
    let wallet = lnbits.wallet("bench").unwrap();
    let key = Some(wallet.invoice_key.as_str());
    let backend = format!(
        "[backend]\nkind = \"lnbits\"\ntimeout = \"10s\"\nmax_in_flight = 8\n[backend.lnbits]\nurl = \"{}\"",
        lnbits.url
    );
    let f = rt.block_on(run(
        config(&backend, true, lnbits_n + 16, key),
        lnbits_n,
        32,
        lnbits_n,
    ));
    print("lnbits", "on", &f);
    let f = rt.block_on(run(config(&backend, false, 1, key), lnbits_n, 32, 0));
    print("lnbits", "off", &f);
}
