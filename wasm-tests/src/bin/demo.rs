//! The demo: a paid API behind Envoy, bought over L402 on the built-in `dev` Lightning backend.
//! Starts an upstream, the invoice-service and Envoy with the filter on free loopback ports,
//! walks a client through 402 → pay → 200 printing each step, and stops everything it started.
//!
//! `./scripts/demo` (builds and installs what it needs first).
#![allow(clippy::indexing_slicing)]

use std::time::Duration;

use anyhow::{Context, Result};
use l402_core::inspect;
use reqwest::blocking::Client;
use wasm_tests::{Stack, filter_config, parse_challenge};

fn step(n: u32, title: &str) {
    println!("\n\x1b[1m{n}. {title}\x1b[0m");
}

fn shorten(s: &str, keep: usize) -> String {
    if s.len() <= keep * 2 + 3 {
        return s.to_owned();
    }
    format!("{}…{}", &s[..keep], &s[s.len() - keep..])
}

fn main() -> Result<()> {
    let logs = tempfile::Builder::new().prefix("l402-demo-").tempdir()?;
    println!("l402-edge demo: Envoy + the L402 Wasm filter + invoice-service (dev backend)");
    println!(
        "starting upstream, invoice-service and Envoy on loopback (logs in {}) …",
        logs.path().display()
    );
    let stack = Stack::start(logs.path(), &filter_config(2000, &[]), 2)?;
    let url = stack.envoy.url("/weather/today");
    let http = Client::builder().timeout(Duration::from_secs(10)).build()?;
    println!("ready: GET {url} is sold as service \"weather\" (capability \"read\")");

    step(1, "The client asks for the paid API, without paying");
    let resp = http.get(&url).send()?;
    println!("   → HTTP {}", resp.status());
    for v in resp.headers().get_all("www-authenticate") {
        println!("   WWW-Authenticate: {}", shorten(v.to_str()?, 38));
    }
    let offer = parse_challenge(&resp)?;
    println!("   body: {}", resp.text()?);
    let token = inspect(&offer.macaroon).context("decode the macaroon")?;
    println!("   the macaroon, decoded (no secret needed):");
    println!("     payment hash  {}", token.identifier.payment_hash);
    println!(
        "     token id      {} (key {})",
        token.identifier.token_id,
        token.identifier.token_id.key_id()
    );
    for c in &token.caveats {
        println!("     caveat        {c}");
    }

    step(2, "The client pays the Lightning invoice");
    println!("   invoice: {}", shorten(&offer.invoice, 30));
    let preimage = stack.service.dev_pay(&offer.invoice)?;
    println!(
        "   paid through the dev backend; the preimage is the proof: {}",
        shorten(&preimage, 8)
    );

    step(
        3,
        "The client retries with Authorization: L402 <macaroon>:<preimage>",
    );
    let auth = format!("L402 {}:{preimage}", offer.macaroon);
    let resp = http.get(&url).header("authorization", &auth).send()?;
    println!(
        "   → HTTP {} (verified in Wasm, no lookup, no call to the node)",
        resp.status()
    );
    println!("   body from the upstream: {}", resp.text()?);

    step(4, "What the upstream saw");
    let seen = stack.upstream.last().context("the upstream saw nothing")?;
    for name in ["x-l402-token-id", "x-l402-service", "authorization"] {
        println!(
            "   {name}: {}",
            seen.header(name)
                .unwrap_or("(absent: the credential is stripped)")
        );
    }

    step(
        5,
        "The token is reused: no further payment, no further challenge",
    );
    for i in 1..=3 {
        let status = http
            .get(stack.envoy.url("/weather/tomorrow"))
            .header("authorization", &auth)
            .send()?
            .status();
        println!("   request {i}: HTTP {status}");
    }
    println!(
        "\nEnvoy stats: authorized={} challenges={}",
        stack.envoy.stat("wasmcustom.l402.authorized"),
        stack.envoy.stat("wasmcustom.l402.challenges")
    );
    println!("\nstopping everything the demo started.");
    drop(stack);
    Ok(())
}
