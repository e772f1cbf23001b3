//! Load: mixed traffic (valid, invalid, no credential) through Envoy at full rate for
//! `L402_LOAD_SECONDS` (default 60), every decision counted, memory read at start and end.
//! Alone in its test binary, so that nothing timing-sensitive runs beside it.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::Path;

use l402_core::Preimage;
use testkit::wrk::{self, Load};
use wasm_tests::{Stack, filter_config, get, now};

/// The secret half of `wasm_tests::KEYS`.
const KEY_SECRET: &str = "1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a";

/// No `*.log` under `dir` contains any of `secrets`.
fn assert_logs_clean(dir: &Path, secrets: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for s in secrets {
                assert!(!text.contains(s), "{} holds a secret", path.display());
            }
        }
    }
}

/// A valid `weather` credential minted with `wasm_tests::KEYS`.
fn paid(salt: u8) -> String {
    let p = Preimage::from_bytes([salt; 32]);
    let t = wasm_tests::token("weather", &["read"], Some(86_400), now(), &p, salt).unwrap();
    format!("L402 {t}:{}", p.expose_hex())
}

/// How much of the machine the load test takes: `L402_LOAD_SECONDS` (default 60).
fn load_seconds() -> u64 {
    std::env::var("L402_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn load_mixed_traffic_makes_no_wrong_decision() {
    let logs = tempfile::tempdir().unwrap();
    let stack = Stack::start(logs.path(), &filter_config(2000, &[]), 2).unwrap();
    let secs = load_seconds();
    let valid = paid(0x31);
    let invalid: Vec<String> = {
        let p = Preimage::from_bytes([0x32; 32]);
        let expired =
            wasm_tests::token("weather", &["read"], Some(60), now() - 3600, &p, 1).unwrap();
        let maps = wasm_tests::token("maps", &[], Some(86_400), now(), &p, 2).unwrap();
        let good = wasm_tests::token("weather", &["read"], Some(86_400), now(), &p, 3).unwrap();
        vec![
            format!("L402 {expired}:{}", p.expose_hex()),
            format!("L402 {maps}:{}", p.expose_hex()),
            format!("L402 {good}:{}", "00".repeat(32)),
            format!("L402 {}:{}", &good[..good.len() - 4], p.expose_hex()),
            "L402 garbage:zz".to_owned(),
        ]
    };
    // wrk rotates through the invalid credentials with a Lua `request` hook.
    let rotate = format!(
        "local creds = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(nil, nil, {{[\"Authorization\"] = creds[(i % #creds) + 1]}})\nend\n",
        invalid
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let url = stack.envoy.url("/weather");
    let envoy_pid = stack.envoy.proc.pid();
    let service_pid = stack.service.proc.pid();
    // Warm up, then measure from a steady state.
    assert_eq!(get(&url, Some(&valid)).unwrap().status(), 200);
    let rss0 = (rss_kib(envoy_pid), rss_kib(service_pid));
    let origin0 = stack.upstream.count();

    let valid_h = [format!("Authorization: {valid}")];
    let runs = std::thread::scope(|s| {
        let a = s.spawn(|| {
            wrk::run(&Load {
                url: &url,
                headers: &valid_h,
                seconds: secs,
                connections: 8,
                core: None,
                script: None,
            })
        });
        let b = s.spawn(|| {
            wrk::run(&Load {
                url: &url,
                headers: &[],
                seconds: secs,
                connections: 8,
                core: None,
                script: Some(&rotate),
            })
        });
        let c = s.spawn(|| {
            wrk::run(&Load {
                url: &url,
                headers: &[],
                seconds: secs,
                connections: 4,
                core: None,
                script: None,
            })
        });
        [a, b, c].map(|h| h.join().unwrap().unwrap())
    });
    let rss1 = (rss_kib(envoy_pid), rss_kib(service_pid));
    let [v, i, n] = &runs;
    let count = |r: &wrk::Run, code: u16| r.statuses.get(&code).copied().unwrap_or(0);
    let total = |r: &wrk::Run| r.statuses.values().sum::<u64>();
    let wrong =
        (total(v) - count(v, 200)) + (total(i) - count(i, 402)) + (total(n) - count(n, 402));
    let origin = (stack.upstream.count() - origin0) as u64;
    println!(
        "{secs} s through Envoy (--concurrency 2): valid {} ({} x 200), invalid {} ({} x 402), \
         none {} ({} x 402); wrong decisions {wrong}; origin saw {origin}; \
         RSS Envoy {} -> {} KiB, invoice-service {} -> {} KiB",
        total(v),
        count(v, 200),
        total(i),
        count(i, 402),
        total(n),
        count(n, 402),
        rss0.0,
        rss1.0,
        rss0.1,
        rss1.1
    );
    assert!(
        total(v) > 1000 && total(i) > 1000 && total(n) > 100,
        "{runs:?}"
    );
    assert_eq!(wrong, 0, "{runs:?}");
    // Only paid requests reached the origin: those wrk counted, plus at most one in flight per
    // connection when wrk stopped (the origin answered them; wrk had stopped counting).
    assert!(
        origin >= count(v, 200) && origin <= count(v, 200) + 8,
        "origin saw {origin}, paid 200s {}",
        count(v, 200)
    );
    for r in &runs {
        assert_eq!(r.socket_errors, 0, "{r:?}");
    }
    // Memory flat: bounded growth after the warm-up (V8 heaps and pools settle early).
    assert!(
        rss1.0 < rss0.0 + 64 * 1024,
        "Envoy RSS {rss0:?} -> {rss1:?}"
    );
    assert!(
        rss1.1 < rss0.1 + 64 * 1024,
        "invoice-service RSS {rss0:?} -> {rss1:?}"
    );
    assert_logs_clean(
        logs.path(),
        &[KEY_SECRET, &stack.service.edge_token, &"31".repeat(32)],
    );
}
