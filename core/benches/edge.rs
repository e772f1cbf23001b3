//! The edge's whole per-request procedure natively (`Edge::decide`): what an adapter's Wasm
//! can at best approach. An authorized request with browser-like headers, the verified cache
//! hit and missed, and an unsold path.
//!
//! `cargo bench -p l402-core --bench edge`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use l402_core::*;

const NOW_S: u64 = 1_800_000_000;
const KEYS: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";

fn edge(cache: u64) -> Edge {
    let o = EdgeOptions {
        keyring: Some(KEYS.into()),
        edge_token: Some("edge-token-0123456789".into()),
        routes: Some(r#"[{"path":"/weather","service":"weather","capabilities":"read"}]"#.into()),
        cache_size: Some(cache),
        ..EdgeOptions::default()
    };
    Edge::new(o.validate().unwrap(), false)
}

fn authorization() -> String {
    let keyring: Keyring = KEYS.parse().unwrap();
    let p = Preimage::from_bytes([3; 32]);
    let e = ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 0,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(3600),
        allowance: None,
    };
    let t = mint(&keyring, p.payment_hash(), [7; 28], &e, NOW_S - 10).unwrap();
    format!("L402 {}:{}", t.macaroon_b64, p.expose_hex())
}

fn bench_decide(c: &mut Criterion) {
    let auth = authorization();
    let headers: Vec<(&str, &[u8])> = vec![
        ("host", b"api.example.com"),
        (
            "user-agent",
            b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        ),
        ("accept", b"application/json"),
        ("accept-encoding", b"gzip, deflate, br"),
        ("authorization", auth.as_bytes()),
        ("x-request-id", b"3f1c2a9e-1b7d-4c55-9a61-2f0e5b9d7c11"),
    ];
    let request = |target: &'static str| EdgeRequest {
        method: "GET",
        target: target.as_bytes(),
        headers: &headers,
        body_follows: false,
        sale: HostSale::NotAttached,
        now_ms: Some(NOW_S * 1000),
        client_address: ClientAddress::Known(None),
        secure: false,
    };
    let mut g = c.benchmark_group("edge_decide");
    for (name, cache, target) in [
        ("authorized_cache_hit", 1024, "/weather/today?city=Lisbon"),
        ("authorized_no_cache", 0, "/weather/today?city=Lisbon"),
        ("unsold", 1024, "/free/page"),
    ] {
        let e = edge(cache);
        let mut st = e.new_state();
        let r = request(target);
        match e.decide(&mut st, &r) {
            Step::Forward(_) => {}
            other => panic!("{name}: expected a forward, got {other:?}"),
        }
        g.bench_function(name, |b| {
            b.iter(|| black_box(e.decide(&mut st, black_box(&r))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
