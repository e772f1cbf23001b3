//! Against a real LNbits (FakeWallet): the service with the `lnbits` backend answers a
//! challenge, a second wallet pays the invoice, the preimage makes the macaroon verify in core,
//! and LNbits shows the invoice as paid. Pool off, then on.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    clippy::panic
)]

use std::collections::HashMap;
use std::time::Duration;

use invoice_service::config::{Config, env};
use l402_core::{ChallengeResponse, Credentials, Keyring, NoDenyList, Request, Verifier};
use testkit::lnbits::Lnbits;

const KEYS: &str = "3:3333333333333333333333333333333333333333333333333333333333333333";
const EDGE: &str = "edge-token-for-lnbits-tests";

fn config(lnbits_url: &str, invoice_key: &str, pool: bool) -> Config {
    // A real node's spent-set is a file; one per configuration, outside the repository.
    let spent = std::env::temp_dir()
        .join(format!(
            "l402-spent-lnbits-{}-{pool}.redb",
            std::process::id()
        ))
        .display()
        .to_string();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
edge_tokens = ["{EDGE}"]
[backend]
kind = "lnbits"
timeout = "10s"
[backend.lnbits]
url = "{lnbits_url}"
[spent_set]
store = "embedded"
path = "{spent}"
[pool]
enabled = {pool}
depth = 2
[[services]]
name = "weather"
price_sat = 21
capabilities = ["read"]
lifetime = "1h"
memo = "weather, one token"
"#
    );
    let env = HashMap::from([
        (env::KEYS, KEYS),
        (
            invoice_service::backend::lnbits::INVOICE_KEY_ENV,
            invoice_key,
        ),
    ]);
    Config::parse(&text, &env).unwrap()
}

#[test]
fn lnbits_challenge_paid_by_another_wallet_verifies_in_core() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let logs = tempfile::tempdir().unwrap();
    let mut lnbits = Lnbits::start(logs.path()).expect("LNbits starts");
    let merchant = lnbits.wallet("merchant").unwrap();
    let payer = lnbits.wallet("payer").unwrap();
    lnbits.top_up(&payer, 10_000).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let http = testkit::http();

    for pool in [false, true] {
        let running = rt
            .block_on(invoice_service::app::start(
                config(&lnbits.url, &merchant.invoice_key, pool),
                invoice_service::clock::system(),
            ))
            .unwrap();
        let base = format!("http://{}", running.addr);
        assert_eq!(
            http.get(format!("{base}/readyz")).send().unwrap().status(),
            200
        );
        if pool {
            // The pool fills from LNbits in the background.
            let p = running.state.pool().unwrap().clone();
            for _ in 0..400 {
                if p.depth("weather") == 2 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            assert_eq!(p.depth("weather"), 2, "pool filled from LNbits");
        }
        let resp = http
            .post(format!("{base}/v1/challenges"))
            .bearer_auth(EDGE)
            .json(&serde_json::json!({"service": "weather"}))
            .send()
            .unwrap();
        let status = resp.status();
        let body = resp.text().unwrap();
        assert_eq!(status, 200, "{body}");
        let ch = ChallengeResponse::parse(body.as_bytes()).unwrap();
        // FakeWallet hard-codes the mainnet prefix; 21 sat = 210 nano-BTC.
        assert!(ch.invoice.starts_with("lnbc210n1"), "{}", ch.invoice);
        assert!(!lnbits.is_paid(&ch.payment_hash).unwrap());

        let preimage = lnbits.pay(&payer, &ch.invoice).unwrap();

        let verifier = Verifier::new(KEYS.parse::<Keyring>().unwrap());
        let creds = Credentials::from_headers([(
            "authorization",
            format!("L402 {}:{preimage}", ch.macaroon),
        )]);
        let now = invoice_service::clock::system()();
        let a = verifier
            .verify(
                &creds,
                &Request {
                    service: "weather",
                    capabilities: "read",
                    now,
                    client_ip: None,
                },
                &NoDenyList,
            )
            .unwrap();
        assert_eq!(a.payment_hash().to_hex(), ch.payment_hash);
        assert!(
            lnbits.is_paid(&ch.payment_hash).unwrap(),
            "LNbits shows the invoice paid"
        );

        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        assert!(
            metrics.contains(r#"l402_challenges_total{result="ok",service="weather"} 1"#),
            "{metrics}"
        );
        if pool {
            assert!(
                metrics.contains(r#"l402_pool_hits_total{service="weather"} 1"#),
                "{metrics}"
            );
        }
        running.shutdown.cancel();
        rt.block_on(running.task).unwrap().unwrap();
    }
    // LNbits' own log never saw our keyring.
    assert!(!lnbits.proc().logs().contains("3333333333333333"));
}
