//! Envoy side by side: plain Envoy (the floor), a no-op proxy-wasm filter (the Wasm crossing),
//! Envoy's native `jwt_authn` with an HS256 token from a local JWKS (the native stateless-token
//! peer), the L402 filter on authorized requests (with and without its cache), and the
//! challenge path (no credential) with the invoice-service's `dev` backend, pool on and off,
//! and the Payment scheme's charges (a fresh credential per request, spent at the
//! invoice-service: its in-process store, and Redis).
//! Then how the filter's cost grows: caveats, macaroons per credential, keyring size and
//! request header bytes (cache off, so every request pays the full verification).
//!
//! Every variant is its own Envoy (`--concurrency 1`) pinned to core 0; `wrk` (one thread,
//! 32 connections) runs on core 1, as does the invoice-service. Rounds alternate between the
//! variants; Envoy CPU per request comes from `/proc`; medians and [min..max] are printed as
//! Markdown. A round that answers any status but the expected one fails the run.
//!
//! `./scripts/bench-envoy [--seconds 5] [--rounds 3] [--quick]`
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use l402_core::{Keyring, Preimage, ServiceEntry, attenuate, mint, mint_with_caveats};
use sha2::Sha256;
use testkit::invoice_service::InvoiceService;
use testkit::wrk::{self, Load, median};
use testkit::{Proc, artifacts, free_port, http, repo_root};
use wasm_tests::KEYS;
use wasm_tests::bench::{JWT_SECRET, jwt_filter, wasm_filter};

const EDGE_TOKEN: &str = "e2e-edge-token-0123456789";
/// The key of the variant that signs `x-l402-context` (benchmark-only).
const CONTEXT_KEY: &str = "4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b";

/// Probe filters (`wasm-tests/noop-filter` with a list of host calls): (instance, label, calls).
/// Ten of one call price it; the last makes every request-path call the L402 filter makes on an
/// authorized request with a cache hit (its counters go to Envoy on a timer), and nothing else.
const PROBES: [(&str, &str, &str); 7] = [
    ("probe-headers", "copy request headers x10", "headers*10"),
    ("probe-metadata", "read route metadata x10", "metadata*10"),
    ("probe-time", "read the clock x10", "time*10"),
    ("probe-metric", "increment a counter x10", "metric*10"),
    ("probe-remove", "remove a header x10", "remove*10"),
    ("probe-set", "set a header x10", "set*10"),
    (
        "probe-l402",
        "the L402 filter's calls, no verification",
        "headers,metadata,time,remove,set*2",
    ),
];

/// One Envoy process and what it runs.
struct Instance {
    port: u16,
    proc: Proc,
}

/// An HS256 JWT (one HMAC over `header.claims`; `jsonwebtoken`'s crypto backends would pull
/// RSA and EC crates into the test build for this one line).
fn jwt(now: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT","kid":"bench"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        serde_json::json!({"iss": "l402-bench", "sub": "weather", "scope": "read",
            "iat": now, "exp": now + 86_400})
        .to_string(),
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(JWT_SECRET).expect("any key length");
    mac.update(format!("{header}.{claims}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{claims}.{sig}")
}

fn start_envoy(
    dir: &Path,
    name: &str,
    filters: &str,
    keys: &str,
    invoice_port: u16,
) -> Result<Instance> {
    let port = free_port();
    let admin = free_port();
    let yaml = std::fs::read_to_string(repo_root().join("envoy-config/envoy.bench.yaml.tmpl"))?
        .replace("{{LISTEN_PORT}}", &port.to_string())
        .replace("{{ADMIN_PORT}}", &admin.to_string())
        .replace("{{INVOICE_PORT}}", &invoice_port.to_string())
        .replace("{{HTTP_FILTERS}}", filters);
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
        ])
        .env("L402_KEYS", keys)
        .env("L402_EDGE_TOKEN", EDGE_TOKEN)
        .env("L402_CONTEXT_KEY", CONTEXT_KEY);
    let mut proc = Proc::spawn(name, cmd, dir)?;
    proc.wait_http(
        &format!("http://127.0.0.1:{admin}/ready"),
        Duration::from_secs(30),
    )?;
    Ok(Instance { port, proc })
}

/// A keyring of `n` keys that holds [`KEYS`]'s key 1 (the one the tokens are minted with).
fn ring(n: usize) -> String {
    let mut keys = vec![KEYS.to_owned()];
    keys.extend((2..=n).map(|i| format!("{i}:{}", hex::encode([i as u8; 32]))));
    keys.join(",")
}

fn entry() -> ServiceEntry {
    ServiceEntry {
        name: "weather".parse().expect("valid"),
        tier: 0,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(86_400),
        allowance: None,
    }
}

/// `Authorization: L402 <macaroons>:<preimage>` with `caveats` caveats on the valid macaroon
/// and `macaroons - 1` macaroons of another keyring before it (the worst case of a list).
fn credential(caveats: usize, macaroons: usize) -> Result<String> {
    let now = wasm_tests::now();
    let p = Preimage::from_bytes([0x77; 32]);
    let r: Keyring = KEYS.parse()?;
    let mut random = [9u8; 28];
    random[..8].copy_from_slice(&now.to_be_bytes());
    let mut good = if caveats == 1 {
        mint_with_caveats(&r, p.payment_hash(), random, &["services=weather:0"])?.macaroon_b64
    } else {
        mint(&r, p.payment_hash(), random, &entry(), now)?.macaroon_b64
    };
    for i in 3..caveats {
        good = attenuate(
            &good,
            &format!("weather_valid_until={}", now + 86_400 + i as u64),
        )?;
    }
    let other: Keyring = format!("1:{}", hex::encode([0xee; 32])).parse()?;
    let bad = mint(&other, p.payment_hash(), random, &entry(), now)?.macaroon_b64;
    let mut list = vec![bad; macaroons.saturating_sub(1)];
    list.push(good);
    Ok(format!(
        "Authorization: L402 {}:{}",
        list.join(","),
        p.expose_hex()
    ))
}

/// `Authorization: L402` for a metered token (4 caveats: Aperture's 3 and an allowance no
/// run can spend), counted at the invoice-service's store.
fn metered_credential() -> Result<String> {
    let now = wasm_tests::now();
    let p = Preimage::from_bytes([0x78; 32]);
    let r: Keyring = KEYS.parse()?;
    let mut random = [8u8; 28];
    random[..8].copy_from_slice(&now.to_be_bytes());
    let metered = ServiceEntry {
        allowance: Some(1_000_000_000_000),
        ..entry()
    };
    let mac = mint(&r, p.payment_hash(), random, &metered, now)?.macaroon_b64;
    Ok(format!("Authorization: L402 {mac}:{}", p.expose_hex()))
}

/// `n` filler headers of 128 bytes each, unrelated to L402.
fn padding(bytes: usize) -> Vec<String> {
    (0..bytes / 128)
        .map(|i| format!("x-pad-{i:03}: {}", "p".repeat(128 - 12)))
        .collect()
}

struct Variant {
    table: &'static str,
    name: String,
    instance: usize,
    headers: Vec<String>,
    expect: u16,
    /// The invoice-service whose pool must be full before a round.
    pool: Option<usize>,
    /// Each request sends a fresh Payment credential (a new file per run).
    payment: bool,
    connections: u32,
    rounds: Vec<Round>,
}

struct Round {
    run: wrk::Run,
    cpu_us: f64,
}

fn wait_pool(service: &InvoiceService, depth: f64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while service.metric("l402_pool_depth{service=\"weather\"}") < depth {
        if Instant::now() > deadline {
            bail!("the invoice pool did not refill to {depth}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn main() -> Result<()> {
    let wasm_tests::bench::BenchArgs {
        quick,
        secs,
        rounds,
        ..
    } = wasm_tests::bench::BenchArgs::from_env();
    let dir = tempfile::Builder::new()
        .prefix("l402-bench-envoy-")
        .tempdir()?;
    let l402_wasm = artifacts::filter_wasm()?;
    let noop_wasm = std::env::var_os("L402_NOOP_WASM")
        .map(PathBuf::from)
        .context("L402_NOOP_WASM (scripts/bench-envoy sets it)")?;

    // Two invoice-services (dev backend) on core 1 beside wrk: one with a pool deep enough
    // to serve a whole round, one without.
    let pool_depth: usize = if quick { 20_000 } else { 60_000 };
    let backend = "[backend]\nkind = \"dev\"";
    // The pooled one sells `weather` alone: its pool is the only one to fill.
    let weather = "[[services]]\nname = \"weather\"\nprice_sat = 10\ncapabilities = [\"read\"]\nlifetime = \"1h\"";
    let services = [
        InvoiceService::start_selling(
            dir.path(),
            KEYS,
            backend,
            &format!("[pool]\nenabled = true\ndepth = {pool_depth}"),
            weather,
            &[],
            None,
        )?,
        InvoiceService::start_with_pool(
            dir.path(),
            KEYS,
            backend,
            "[pool]\nenabled = false",
            &[],
            None,
        )?,
    ];
    // Payment charges are spent at an invoice-service: its in-process store, or Redis (on
    // core 1 too).
    let redis = testkit::redis::Redis::start(dir.path(), false)?;
    let redis_service = InvoiceService::start_with_pool(
        dir.path(),
        KEYS,
        backend,
        &format!(
            "[pool]\nenabled = false\n[spent_set]\nstore = \"redis\"\nurl = \"{}\"",
            redis.url()
        ),
        &[],
        None,
    )?;
    for pid in services
        .iter()
        .chain([&redis_service])
        .map(|s| s.proc.pid())
        .chain([redis.proc.pid()])
    {
        wrk::pin(pid, 1)?;
    }

    let l402 = |extra: &[(&str, serde_json::Value)]| {
        wasm_filter(&l402_wasm, &wasm_tests::filter_config(2000, extra))
    };
    let no_cache = [("cache_size", serde_json::json!(0))];
    // (name, filters, keyring, invoice-service)
    let mut instances_spec: Vec<(&str, String, String, u16)> = vec![
        ("plain", String::new(), ring(1), 9),
        ("noop", wasm_filter(&noop_wasm, ""), ring(1), 9),
        ("jwt", jwt_filter(), ring(1), 9),
        ("l402-cache", l402(&[]), ring(1), 9),
        (
            "l402-context",
            l402(&[("context_key_env", serde_json::json!("L402_CONTEXT_KEY"))]),
            ring(1),
            9,
        ),
        ("l402-nocache", l402(&no_cache), ring(1), 9),
        ("l402-ring10", l402(&no_cache), ring(10), 9),
        ("l402-ring100", l402(&no_cache), ring(100), 9),
        ("challenge-pool", l402(&[]), ring(1), services[0].port),
        ("challenge-nopool", l402(&[]), ring(1), services[1].port),
        ("payment-memory", l402(&[]), ring(1), services[1].port),
        ("payment-redis", l402(&[]), ring(1), redis_service.port),
        ("metered-lease", l402(&[]), ring(1), redis_service.port),
        (
            "metered-one",
            l402(&[("allowance_lease", serde_json::json!(1))]),
            ring(1),
            redis_service.port,
        ),
    ];
    for (name, _, ops) in PROBES {
        instances_spec.push((name, wasm_filter(&noop_wasm, ops), ring(1), 9));
    }
    let mut instances = Vec::new();
    for (name, filters, keys, invoice_port) in &instances_spec {
        instances.push(start_envoy(dir.path(), name, filters, keys, *invoice_port)?);
    }
    let idx = |name: &str| instances_spec.iter().position(|s| s.0 == name).unwrap();

    let auth3 = credential(3, 1)?;
    let jwt = format!("Authorization: Bearer {}", jwt(wasm_tests::now()));
    let mut variants = Vec::new();
    let mut add = |table, name: &str, inst: &str, headers: Vec<String>, expect, pool| {
        variants.push(Variant {
            table,
            name: name.to_owned(),
            instance: idx(inst),
            headers,
            expect,
            pool,
            payment: false,
            connections: 32,
            rounds: Vec::new(),
        });
    };
    add(
        "main",
        "plain Envoy (router only)",
        "plain",
        vec![],
        200,
        None,
    );
    add("main", "no-op Wasm filter", "noop", vec![], 200, None);
    add(
        "main",
        "jwt_authn HS256",
        "jwt",
        vec![jwt.clone()],
        200,
        None,
    );
    add(
        "main",
        "L402 authorized (cache)",
        "l402-cache",
        vec![auth3.clone()],
        200,
        None,
    );
    add(
        "main",
        "L402 authorized (cache), signed x-l402-context",
        "l402-context",
        vec![auth3.clone()],
        200,
        None,
    );
    add(
        "main",
        "L402 authorized (no cache)",
        "l402-nocache",
        vec![auth3.clone()],
        200,
        None,
    );
    add(
        "main",
        "L402 challenge, pool on",
        "challenge-pool",
        vec![],
        402,
        Some(0),
    );
    add(
        "main",
        "L402 challenge, pool off",
        "challenge-nopool",
        vec![],
        402,
        None,
    );
    // The latency goal is for a loaded, not saturated, service: fewer connections.
    add(
        "main",
        "L402 challenge, pool on, 4 connections",
        "challenge-pool",
        vec![],
        402,
        Some(0),
    );
    for c in [1usize, 10, 50] {
        add(
            "caveats",
            &format!("{c} caveats"),
            "l402-nocache",
            vec![credential(c, 1)?],
            200,
            None,
        );
    }
    add(
        "macaroons",
        "4 macaroons (valid last)",
        "l402-nocache",
        vec![credential(3, 4)?],
        200,
        None,
    );
    for (n, inst) in [(10, "l402-ring10"), (100, "l402-ring100")] {
        add(
            "keyring",
            &format!("{n} keys"),
            inst,
            vec![auth3.clone()],
            200,
            None,
        );
    }
    for kb in [2usize, 8] {
        let mut h = padding(kb * 1024);
        add(
            "headers",
            &format!("no-op, +{kb} KiB headers"),
            "noop",
            h.clone(),
            200,
            None,
        );
        h.push(auth3.clone());
        add(
            "headers",
            &format!("L402 (no cache), +{kb} KiB headers"),
            "l402-nocache",
            h,
            200,
            None,
        );
    }

    add(
        "main",
        "Payment charge, spent at the invoice-service (in-process store)",
        "payment-memory",
        vec![],
        200,
        None,
    );
    add(
        "main",
        "Payment charge, spent at the invoice-service (Redis)",
        "payment-redis",
        vec![],
        200,
        None,
    );
    let metered = metered_credential()?;
    add(
        "main",
        "L402 metered (cache; leases of 16 from Redis)",
        "metered-lease",
        vec![metered.clone()],
        200,
        None,
    );
    add(
        "main",
        "L402 metered (cache; one Redis count per request)",
        "metered-one",
        vec![metered],
        200,
        None,
    );
    for (name, label, _) in PROBES {
        add("probes", label, name, vec![auth3.clone()], 200, None);
    }
    for v in variants
        .iter_mut()
        .filter(|v| v.name.starts_with("Payment"))
    {
        v.payment = true;
    }
    // Fresh credentials for each run of a Payment variant: more than a run can spend.
    let mut runs = 0u32;
    let mut payment_script = |seconds: u64| -> Result<String> {
        runs += 1;
        let path = dir.path().join(format!("payment-{runs}.txt"));
        wasm_tests::bench::payment_credentials(&path, seconds as usize * 12_000 + 2_000, runs)?;
        Ok(wasm_tests::bench::rotating_credentials_script(&path))
    };

    if let Some(v) = variants
        .iter_mut()
        .find(|v| v.name.ends_with("4 connections"))
    {
        v.connections = 4;
    }

    // Warm-up: V8 tier-up, connections, pools.
    for v in &variants {
        let url = format!("http://127.0.0.1:{}/weather", instances[v.instance].port);
        let _ = http().get(&url).send();
        if let Some(s) = v.pool {
            wait_pool(&services[s], pool_depth as f64)?;
        }
        let script = if v.payment {
            Some(payment_script(1)?)
        } else {
            None
        };
        wrk::run(&Load {
            url: &url,
            headers: &v.headers,
            seconds: 1,
            connections: 32,
            core: Some(1),
            script: script.as_deref(),
        })?;
    }
    for _ in 0..rounds {
        for v in variants.iter_mut() {
            let inst = &instances[v.instance];
            if let Some(s) = v.pool {
                wait_pool(&services[s], pool_depth as f64)?;
            }
            let script = if v.payment {
                Some(payment_script(secs)?)
            } else {
                None
            };
            let cpu0 = testkit::procstat::cpu_seconds(inst.proc.pid())?;
            let run = wrk::run(&Load {
                url: &format!("http://127.0.0.1:{}/weather", inst.port),
                headers: &v.headers,
                seconds: secs,
                connections: v.connections,
                core: Some(1),
                script: script.as_deref(),
            })?;
            let cpu1 = testkit::procstat::cpu_seconds(inst.proc.pid())?;
            let others: u64 = run
                .statuses
                .iter()
                .filter(|(c, _)| **c != v.expect)
                .map(|(_, n)| n)
                .sum();
            if others > 0 || run.socket_errors > 0 {
                bail!(
                    "{}: expected only {} but saw {:?} and {} socket errors",
                    v.name,
                    v.expect,
                    run.statuses,
                    run.socket_errors
                );
            }
            v.rounds.push(Round {
                cpu_us: (cpu1 - cpu0) * 1e6 / run.requests,
                run,
            });
        }
    }

    let hits = services[0].metric("l402_pool_hits_total{service=\"weather\"}");
    let misses = services[0].metric("l402_pool_misses_total{service=\"weather\"}");
    println!(
        "Envoy 1.40.0 `--concurrency 1` on core 0; `wrk -t1 -c32` and the invoice-service on core 1; \
         {rounds} round(s) x {secs} s, variants alternated; median [min..max] over rounds.\n"
    );
    let cpu_of = |name: &str| {
        variants
            .iter()
            .find(|v| v.name == name)
            .map(|v| median(v.rounds.iter().map(|r| r.cpu_us).collect()).0)
            .unwrap_or(f64::NAN)
    };
    let noop = cpu_of("no-op Wasm filter");
    for (table, title) in [
        ("main", "Side by side"),
        (
            "caveats",
            "Growth: caveats per macaroon (L402, no cache; 3 caveats is the row above)",
        ),
        ("macaroons", "Growth: macaroons per credential (no cache)"),
        (
            "keyring",
            "Growth: keyring size (no cache; 1 key is the row above)",
        ),
        ("headers", "Growth: unrelated request header bytes"),
        (
            "probes",
            "Where the time goes: the L402 filter's host calls, made by the probe filter (no-op build + config; the L402 credential sent)",
        ),
    ] {
        println!("#### {title}\n");
        println!("| variant | req/s | Envoy CPU µs/req | vs no-op | p50 ms | p99 ms | requests |");
        println!("|---|---|---|---|---|---|---|");
        for v in variants.iter().filter(|v| v.table == table) {
            let (rps, rlo, rhi) = median(v.rounds.iter().map(|r| r.run.rps).collect());
            let (cpu, clo, chi) = median(v.rounds.iter().map(|r| r.cpu_us).collect());
            let (p50, _, _) = median(v.rounds.iter().map(|r| r.run.p50_ms).collect());
            let (p99, plo, phi) = median(v.rounds.iter().map(|r| r.run.p99_ms).collect());
            let n: f64 = v.rounds.iter().map(|r| r.run.requests).sum();
            println!(
                "| {} | {rps:.0} [{rlo:.0}..{rhi:.0}] | {cpu:.2} [{clo:.2}..{chi:.2}] | {:.2}x | {p50:.3} | {p99:.3} [{plo:.3}..{phi:.3}] | {n} (all {}) |",
                v.name,
                cpu / noop,
                v.expect
            );
        }
        println!();
    }
    println!("Host calls, Envoy CPU µs above the no-op filter (probe - no-op, per call for x10):");
    for (_, label, ops) in PROBES {
        let calls: usize = ops
            .split(',')
            .map(|o| o.split_once('*').map_or(1, |(_, n)| n.parse().unwrap_or(1)))
            .sum();
        let above = cpu_of(label) - noop;
        if label.ends_with("x10") {
            println!("- {label}: {:.2} per call", above / calls as f64);
        } else {
            println!(
                "- {label} ({calls} calls): {above:.2} in all; the L402 filter with a cache hit: \
                 {:.2}; `jwt_authn`: {:.2}",
                cpu_of("L402 authorized (cache)") - noop,
                cpu_of("jwt_authn HS256") - noop
            );
        }
    }
    println!();
    let l402_cache = cpu_of("L402 authorized (cache)");
    let l402_miss = cpu_of("L402 authorized (no cache)");
    let jwt_cpu = cpu_of("jwt_authn HS256");
    println!(
        "Payment: a charge spent at the invoice-service costs Envoy {:.2} µs (in-process store) and \
         {:.2} µs (Redis) of CPU per request, against {:.2} µs for an L402 token with the cache \
         and {:.2} µs without.",
        cpu_of("Payment charge, spent at the invoice-service (in-process store)"),
        cpu_of("Payment charge, spent at the invoice-service (Redis)"),
        l402_cache,
        l402_miss
    );
    let metered_lease = cpu_of("L402 metered (cache; leases of 16 from Redis)");
    println!(
        "Metered tokens: {metered_lease:.2} µs of Envoy CPU per request with leases of 16 \
         ({:.2}x the unmetered {l402_cache:.2} µs; goal <= 1.5x), {:.2} µs with one store count \
         per request.",
        metered_lease / l402_cache,
        cpu_of("L402 metered (cache; one Redis count per request)"),
    );
    println!(
        "Goals: L402 authorized / no-op = {:.2}x with the cache, {:.2}x without (goal <= 1.05x); \
         L402 / jwt_authn = {:.2}x with the cache, {:.2}x without (goal <= 1.3x). \
         Pool-on invoice-service: {hits} pool hits, {misses} misses in the run.",
        l402_cache / noop,
        l402_miss / noop,
        l402_cache / jwt_cpu,
        l402_miss / jwt_cpu
    );
    Ok(())
}
