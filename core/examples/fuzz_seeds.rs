//! Writes the fuzzers' seed corpora: the shared vectors' credentials, the fuzz keyring's
//! genuine token in every accepted form, and the attack matrix's shapes.
//!
//! `cargo run -p l402-core --example fuzz_seeds -- fuzz/corpus`
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use l402_core::*;

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let ring: Keyring = "7:0707070707070707070707070707070707070707070707070707070707070707"
        .parse()
        .unwrap();
    let entry = ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 0,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(3600),
        allowance: None,
    };
    let p = Preimage::from_bytes([0x42; 32]);
    let genuine = mint(&ring, p.payment_hash(), [1; 28], &entry, 1_800_000_000)
        .unwrap()
        .macaroon_b64;
    let pre = p.expose_hex();
    let raw = STANDARD.decode(&genuine).unwrap();
    let with_pre = attenuate(&genuine, &format!("preimage={pre}")).unwrap();

    // (selector, header values): selector 0 = Authorization, 1 = Macaroon (see the targets).
    let mut seeds: Vec<(u8, Vec<String>)> = vec![
        (0, vec![format!("L402 {genuine}:{pre}")]),
        (
            0,
            vec![format!(
                "lsat   {}:{}",
                URL_SAFE_NO_PAD.encode(&raw),
                pre.to_uppercase()
            )],
        ),
        (
            0,
            vec![format!(
                "Bearer x, L402 AgEE,{genuine}:{pre}, LSAT {genuine}:{pre}"
            )],
        ),
        (0, vec!["Basic abc".into(), format!("L402 {genuine}:{pre}")]),
        (
            0,
            vec![format!(
                "L402 {}:{pre}",
                attenuate(&genuine, "services=weather:0,maps:1").unwrap()
            )],
        ),
        (
            0,
            vec![format!(
                "L402 {}:{pre}",
                attenuate(&genuine, "weather_capabilities=").unwrap()
            )],
        ),
        (0, vec![format!("L402 {with_pre}:{pre}")]),
        (1, vec![hex::encode(STANDARD.decode(&with_pre).unwrap())]),
        (0, vec![format!("L402 {genuine}:{}", "00".repeat(32))]),
        (
            0,
            vec![format!("L402 {}:{pre}", &genuine[..genuine.len() / 2])],
        ),
        (0, vec!["L402".into(), "".into(), "L402 :".into()]),
    ];
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/tokens.json")).unwrap();
    for v in vectors["tokens"].as_array().unwrap() {
        seeds.push((0, vec![v["authorization"].as_str().unwrap().to_owned()]));
    }
    for target in ["credentials", "verify"] {
        let dir = Path::new(&out).join(target);
        let joined = seeds.iter().map(|(selector, values)| {
            // A raw 0xff byte separates header values in the targets.
            let mut joined = vec![*selector];
            for (j, v) in values.iter().enumerate() {
                if j > 0 {
                    joined.push(0xff);
                }
                joined.extend_from_slice(v.as_bytes());
            }
            joined
        });
        write_seeds(&dir, joined);
    }
    // Request targets for the path target: the boundary matrix's hostile shapes.
    let paths: [&[u8]; 14] = [
        b"/weather",
        b"//weather",
        b"/./weather",
        b"/x/../weather",
        b"/%77eather",
        b"/%2e%2e/weather",
        b"/free%2F..%2Fweather",
        b"/free;/../weather",
        b"/a\\b",
        b"/weather%ff",
        b"/w%c3%a9/today?q=%2F&x=1",
        b"/weather\xff",
        b"/a|b{c}",
        b"*",
    ];
    write_seeds(&Path::new(&out).join("path"), paths);
    // JSON bodies for the json target: the shapes the edge reads, and the grammar's corners.
    let json: [&[u8]; 16] = [
        br#"{"service":"weather","tier":"basic","path":"/weather","method":"GET"}"#,
        br#"{"macaroon":"AgEEbHNhdA","invoice":"lnbc1","payment_hash":"00","expires_at":1}"#,
        br#"{"state":"settled","preimage":"00"}"#,
        br#"{"error":{"code":"rate_limited","message":"slow down"}}"#,
        br#"[{"prefix":"/weather","service":"weather","capabilities":["read"]}]"#,
        br#"{"services":[{"name":"weather","price_msat":1000,"tiers":[]}],"version":1}"#,
        br#"{"id":"x","realm":"r","method":"lightning","intent":"charge","request":"e30","expires":"2026-12-07T00:00:00Z"}"#,
        br#""\ud83d\ude00 \u00e9 \" \\ \/ \b\f\n\r\t""#,
        br#""\ud800""#,
        br#"18446744073709551615"#,
        br#"18446744073709551616"#,
        br#"[1e400, -0, 0.5e-3, -1.5E+2]"#,
        br#"{"a":1,"a":2}"#,
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        b"{\"k\":\"\xff\"}",
        b" { } ",
    ];
    let dir = Path::new(&out).join("json");
    write_seeds(&dir, json);
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    for name in ["tokens.json", "aperture-mpp-vectors.json"] {
        std::fs::write(dir.join(name), std::fs::read(testdata.join(name)).unwrap()).unwrap();
    }
    println!("wrote {} seeds per target under {out}", seeds.len());
}

/// Writes `seeds` as `dir/seed-NN`, creating `dir`.
fn write_seeds<S: AsRef<[u8]>>(dir: &Path, seeds: impl IntoIterator<Item = S>) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, seed) in seeds.into_iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), seed).unwrap();
    }
}
