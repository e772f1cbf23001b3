//! Hot-path costs: parse + verify (cache miss and hit), mint, and the `macaroon` crate
//! (libsodium) verifying the same token in the same run; then how verify grows with caveats,
//! macaroons per credential, keyring size and unrelated request header bytes.
//!
//! `cargo bench -p l402-core --bench verify`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use base64::Engine as _;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use l402_core::*;

const NOW: u64 = 1_800_000_000;

fn ring(n: usize) -> Keyring {
    (0..n)
        .map(|i| format!("{}:{}", i + 1, hex::encode([i as u8 + 1; 32])))
        .collect::<Vec<_>>()
        .join(",")
        .parse()
        .unwrap()
}

fn entry() -> ServiceEntry {
    ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 0,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(3600),
        allowance: None,
    }
}

fn token(ring: &Keyring, preimage: &Preimage, extra_caveats: usize) -> String {
    let mut b64 = mint(ring, preimage.payment_hash(), [7; 28], &entry(), NOW)
        .unwrap()
        .macaroon_b64;
    for i in 0..extra_caveats {
        b64 = attenuate(
            &b64,
            &format!("weather_valid_until={}", NOW + 3600 + i as u64),
        )
        .unwrap();
    }
    b64
}

fn header(b64: &str, preimage: &Preimage) -> String {
    format!("L402 {b64}:{}", preimage.expose_hex())
}

fn bench_verify(c: &mut Criterion) {
    let preimage = Preimage::from_bytes([3; 32]);
    let ring1 = ring(1);
    let b64 = token(&ring1, &preimage, 0);
    let auth = header(&b64, &preimage);
    let verifier = Verifier::new(ring1);
    let req = Request {
        service: "weather",
        capabilities: "read",
        now: NOW,
        client_ip: None,
    };

    let mut g = c.benchmark_group("verify_3_caveats");
    g.bench_function("l402_core_parse_and_verify_miss", |b| {
        b.iter(|| {
            let creds = Credentials::from_headers([("authorization", black_box(auth.as_str()))]);
            verifier.verify(&creds, &req, &NoDenyList).unwrap()
        })
    });
    let mut cache = VerifiedCache::new(1024);
    g.bench_function("l402_core_parse_and_verify_cache_hit", |b| {
        b.iter(|| {
            let creds = Credentials::from_headers([("authorization", black_box(auth.as_str()))]);
            verifier
                .verify_cached(&creds, &req, &NoDenyList, &mut cache)
                .unwrap()
        })
    });

    // The same token through the `macaroon` crate: deserialize + signature chain, with
    // caveats accepted by a general satisfier (it cannot judge L402 caveats itself).
    macaroon::initialize().unwrap();
    let token_id = inspect(&b64).unwrap().identifier.token_id;
    let root = ring(1).root_key(&token_id).unwrap();
    let url = base64::engine::general_purpose::URL_SAFE.encode(
        base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .unwrap(),
    );
    g.bench_function("macaroon_crate_deserialize_and_verify", |b| {
        b.iter(|| {
            let m = macaroon::Macaroon::deserialize(black_box(&url)).unwrap();
            let mut v = macaroon::Verifier::default();
            v.satisfy_general(|_| true);
            let key = macaroon::MacaroonKey::generate(root.expose_bytes());
            v.verify(&m, &key, vec![]).unwrap()
        })
    });
    g.finish();

    let ring1 = ring(1);
    c.bench_function("mint_3_caveats", |b| {
        b.iter(|| {
            mint(
                &ring1,
                preimage.payment_hash(),
                [7; 28],
                &entry(),
                black_box(NOW),
            )
            .unwrap()
        })
    });
}

fn bench_growth(c: &mut Criterion) {
    let preimage = Preimage::from_bytes([3; 32]);
    let req = Request {
        service: "weather",
        capabilities: "read",
        now: NOW,
        client_ip: None,
    };

    let mut g = c.benchmark_group("verify_by_caveats");
    for total in [1usize, 3, 10, 50] {
        let r = ring(1);
        let b64 = if total == 1 {
            mint_with_caveats(
                &r,
                preimage.payment_hash(),
                [7; 28],
                &["services=weather:0"],
            )
            .unwrap()
            .macaroon_b64
        } else {
            token(&r, &preimage, total - 3)
        };
        let auth = header(&b64, &preimage);
        let v = Verifier::new(r);
        g.bench_with_input(BenchmarkId::from_parameter(total), &auth, |b, auth| {
            b.iter(|| {
                let creds = Credentials::from_headers([("authorization", auth.as_str())]);
                v.verify(&creds, &req, &NoDenyList).unwrap()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("verify_by_keyring_size");
    for n in [1usize, 10, 100] {
        let r = ring(n);
        let auth = header(&token(&r, &preimage, 0), &preimage);
        let v = Verifier::new(r);
        g.bench_with_input(BenchmarkId::from_parameter(n), &auth, |b, auth| {
            b.iter(|| {
                let creds = Credentials::from_headers([("authorization", auth.as_str())]);
                v.verify(&creds, &req, &NoDenyList).unwrap()
            })
        });
    }
    g.finish();

    // Four macaroons, the valid one last: the worst case a client list can cost.
    let mut g = c.benchmark_group("verify_by_macaroons_per_credential");
    let r = ring(1);
    let good = token(&r, &preimage, 0);
    // Key 1 of another ring: a bad signature after the full chain.
    let other_ring: Keyring = format!("1:{}", hex::encode([9u8; 32])).parse().unwrap();
    let bad = token(&other_ring, &preimage, 0);
    let v = Verifier::new(r);
    for n in [1usize, 4] {
        let mut list = vec![bad.as_str(); n - 1];
        list.push(&good);
        let auth = format!("L402 {}:{}", list.join(","), preimage.expose_hex());
        g.bench_with_input(BenchmarkId::from_parameter(n), &auth, |b, auth| {
            b.iter(|| {
                let creds = Credentials::from_headers([("authorization", auth.as_str())]);
                v.verify(&creds, &req, &NoDenyList).unwrap()
            })
        });
    }
    g.finish();
}

/// Unrelated request headers beside the credential (what an adapter hands core: every
/// header): parsing skips them, so the cost should stay flat.
fn bench_headers(c: &mut Criterion) {
    let preimage = Preimage::from_bytes([3; 32]);
    let r = ring(1);
    let auth = header(&token(&r, &preimage, 0), &preimage);
    let v = Verifier::new(r);
    let req = Request {
        service: "weather",
        capabilities: "read",
        now: NOW,
        client_ip: None,
    };
    let mut g = c.benchmark_group("verify_by_request_header_bytes");
    for kib in [0usize, 2, 8] {
        let pad: Vec<(String, String)> = (0..kib * 1024 / 128)
            .map(|i| (format!("x-pad-{i:03}"), "p".repeat(128 - 12)))
            .collect();
        g.bench_with_input(BenchmarkId::from_parameter(kib * 1024), &pad, |b, pad| {
            b.iter(|| {
                let all = pad
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .chain([("authorization", auth.as_str())]);
                let creds = Credentials::from_headers(all);
                v.verify(&creds, &req, &NoDenyList).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_verify, bench_growth, bench_headers);
criterion_main!(benches);
