//! The HTTP API in-process on the `dev` backend: every error code, health, readiness, metrics,
//! the dev pay endpoint, and a challenge that verifies in core once paid.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    clippy::panic
)]

use std::collections::HashMap;

use invoice_service::app::{Running, start};
use invoice_service::config::{Config, env};
use l402_core::{ChallengeResponse, Credentials, Keyring, NoDenyList, Request, Verifier, inspect};
use serde_json::{Value, json};

const KEYS: &str = "5:5555555555555555555555555555555555555555555555555555555555555555";
const EDGE: &str = "edge-token-api-tests-0001";

fn config(extra_backend: &str, pool: bool) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
edge_tokens = ["{EDGE}"]
retry_after_secs = 7
max_body_bytes = 1024
{extra_backend}
[pool]
enabled = {pool}
depth = 2
[[services]]
name = "weather"
price_sat = 10
tier = 2
capabilities = ["read", "write"]
lifetime = "1h"
[[services]]
name = "maps"
price_sat = 3
"#
    );
    Config::parse(
        &text,
        &HashMap::from([
            (env::KEYS, KEYS),
            (invoice_service::backend::lnbits::INVOICE_KEY_ENV, "k"),
        ]),
    )
    .unwrap()
}

const DEV: &str = "[backend]\nkind = \"dev\"\ntimeout = \"2s\"";

async fn dev_service() -> (Running, String) {
    let r = start(config(DEV, false), invoice_service::clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", r.addr);
    (r, base)
}

async fn post(
    url: &str,
    bearer: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn challenge_then_pay_then_verify() {
    let (r, base) = dev_service().await;
    let (status, headers, body) = post(
        &format!("{base}/v1/challenges"),
        Some(EDGE),
        r#"{"service":"weather","reason":"missing_credential"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    let ch = ChallengeResponse::parse(body.clone().to_string().as_bytes()).unwrap();
    // The edges' own parser accepts it, and the invoice carries an amount (10 sat = 100n).
    let challenge = ChallengeResponse::parse_challenge(body.to_string().as_bytes()).unwrap();
    assert!(
        challenge.l402.invoice().starts_with("lnbcrt100n1"),
        "{}",
        challenge.l402.invoice()
    );
    let ins = inspect(&ch.macaroon).unwrap();
    assert_eq!(ins.identifier.payment_hash.to_hex(), ch.payment_hash);
    assert_eq!(ins.caveats[0], "services=weather:2");
    assert_eq!(ins.caveats[1], "weather_capabilities=read,write");
    assert!(ins.caveats[2].starts_with("weather_valid_until="));
    assert_eq!(ins.identifier.token_id.key_id().0, 5);

    let (status, _, paid) = post(
        &format!("{base}/v1/dev/pay"),
        None,
        json!({"invoice": ch.invoice}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{paid}");
    let preimage = paid["preimage"].as_str().unwrap();
    let creds =
        Credentials::from_headers([("authorization", format!("L402 {}:{preimage}", ch.macaroon))]);
    let now = invoice_service::clock::system()();
    let v = Verifier::new(KEYS.parse::<Keyring>().unwrap());
    let a = v
        .verify(
            &creds,
            &Request {
                service: "weather",
                capabilities: "write",
                now,
                client_ip: None,
            },
            &NoDenyList,
        )
        .unwrap();
    assert_eq!((a.tier(), a.service()), (2, "weather"));

    // The same invoice as a Payment charge: it verifies in core with the same preimage, and
    // the spent-set spends it once.
    let charge = challenge.payment.expect("a Payment form");
    assert_eq!(charge.realm, "l402-edge");
    let wire = json!({"challenge": serde_json::from_str::<serde_json::Value>(&charge.to_json()).unwrap(), "payload": {"preimage": preimage}});
    let header = format!(
        "Payment {}",
        l402_core::b64url_encode(wire.to_string().as_bytes())
    );
    let creds = Credentials::from_headers([("authorization", header)]);
    let verified = v
        .verify_payment(
            creds.payment().unwrap().unwrap(),
            &Request {
                service: "weather",
                capabilities: "write",
                now,
                client_ip: None,
            },
        )
        .unwrap();
    assert_eq!(verified.payment_hash.to_hex(), ch.payment_hash);
    assert_eq!(verified.amount_sat, 10);
    let redeem =
        json!({"payment_hash": ch.payment_hash, "expires_at": verified.expires_at}).to_string();
    let (status, _, b) = post(&format!("{base}/v1/redeem"), Some(EDGE), redeem.clone()).await;
    assert_eq!((status, b["redeemed"].as_str()), (200, Some("first_use")));
    let (status, _, b) = post(&format!("{base}/v1/redeem"), Some(EDGE), redeem.clone()).await;
    assert_eq!((status, b["error"].as_str()), (409, Some("payment_spent")));
    let (status, _, b) = post(&format!("{base}/v1/redeem"), None, redeem).await;
    assert_eq!((status, b["error"].as_str()), (401, Some("unauthorized")));
    let (status, _, b) = post(
        &format!("{base}/v1/redeem"),
        Some(EDGE),
        r#"{"payment_hash":"zz","expires_at":1}"#,
    )
    .await;
    assert_eq!(
        (status, b["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Paying twice, paying garbage, paying a stranger's invoice.
    let (status, _, b) = post(
        &format!("{base}/v1/dev/pay"),
        None,
        json!({"invoice": ch.invoice}).to_string(),
    )
    .await;
    assert_eq!((status, b["error"].as_str()), (409, Some("already_paid")));
    let (status, _, b) = post(
        &format!("{base}/v1/dev/pay"),
        None,
        r#"{"invoice":"lnbc1xyz"}"#,
    )
    .await;
    assert_eq!(
        (status, b["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _, b) = post(&format!("{base}/v1/dev/pay"), None, "not json").await;
    assert_eq!(
        (status, b["error"].as_str()),
        (400, Some("invalid_request"))
    );
    r.shutdown.cancel();
}

#[tokio::test]
async fn every_error_code() {
    let (r, base) = dev_service().await;
    let url = format!("{base}/v1/challenges");
    let ok = r#"{"service":"weather"}"#;
    for bearer in [None, Some("wrong-token-wrong-token"), Some("")] {
        let (status, _, b) = post(&url, bearer, ok).await;
        assert_eq!(
            (status, b["error"].as_str()),
            (401, Some("unauthorized")),
            "{bearer:?}"
        );
    }
    let (status, _, b) = post(&url, Some(EDGE), "{").await;
    assert_eq!(
        (status, b["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, _, b) = post(&url, Some(EDGE), r#"{"service":"weather","price":1}"#).await;
    assert_eq!(
        (status, b["error"].as_str()),
        (400, Some("invalid_request")),
        "unknown fields are refused"
    );
    let (status, _, b) = post(&url, Some(EDGE), r#"{"service":"nope"}"#).await;
    assert_eq!(
        (status, b["error"].as_str()),
        (404, Some("unknown_service"))
    );
    let (status, _, _) = post(
        &url,
        Some(EDGE),
        format!(r#"{{"service":"{}"}}"#, "x".repeat(2000)),
    )
    .await;
    assert_eq!(status, 413, "body over server.max_body_bytes");
    r.shutdown.cancel();
}

#[tokio::test]
async fn backend_down_is_503_with_retry_after_and_not_ready() {
    let port = testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let backend = format!(
        "[backend]\nkind = \"lnbits\"\ntimeout = \"1s\"\n[backend.lnbits]\nurl = \"http://127.0.0.1:{port}\"\n[spent_set]\nstore = \"embedded\"\npath = \"{}\"",
        dir.path().join("spent.redb").display()
    );
    let r = start(config(&backend, false), invoice_service::clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", r.addr);
    let started = std::time::Instant::now();
    let (status, headers, b) = post(
        &format!("{base}/v1/challenges"),
        Some(EDGE),
        r#"{"service":"maps"}"#,
    )
    .await;
    assert_eq!(
        (status, b["error"].as_str()),
        (503, Some("backend_unavailable"))
    );
    assert_eq!(headers["retry-after"], "7");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let resp = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    // No pay endpoint unless the backend is dev.
    let (status, _, _) = post(&format!("{base}/v1/dev/pay"), None, "{}").await;
    assert_eq!(status, 404);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"l402_challenges_total{result="backend_unavailable",service="maps"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"l402_backend_errors_total{backend="lnbits",kind="unreachable"}"#),
        "{metrics}"
    );
    r.shutdown.cancel();
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let (r, base) = dev_service().await;
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let ready: Value = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready, json!({"status": "ready", "backend": "dev"}));
    post(
        &format!("{base}/v1/challenges"),
        Some(EDGE),
        r#"{"service":"maps"}"#,
    )
    .await;
    post(
        &format!("{base}/v1/challenges"),
        Some(EDGE),
        r#"{"service":"nope"}"#,
    )
    .await;
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let m = resp.text().await.unwrap();
    for line in [
        r#"l402_challenges_total{result="ok",service="maps"} 1"#,
        r#"l402_challenges_total{result="unknown_service",service=""} 1"#,
        r#"l402_backend_request_duration_seconds_count{backend="dev",op="create_invoice",outcome="ok"} 1"#,
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    assert!(!m.contains(EDGE) && !m.contains("5555555555"));
    r.shutdown.cancel();
    r.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn pooled_challenges_are_each_handed_out_once() {
    let r = start(config(DEV, true), invoice_service::clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", r.addr);
    let pool = r.state.pool().unwrap().clone();
    for _ in 0..200 {
        if pool.depth("weather") == 2 && pool.depth("maps") == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut hashes = std::collections::HashSet::new();
    for _ in 0..6 {
        let (status, _, b) = post(
            &format!("{base}/v1/challenges"),
            Some(EDGE),
            r#"{"service":"weather"}"#,
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            hashes.insert(b["payment_hash"].as_str().unwrap().to_owned()),
            "an invoice handed out twice"
        );
    }
    let m = r.state.metrics().render();
    let hits = m
        .lines()
        .find(|l| l.starts_with(r#"l402_pool_hits_total{service="weather"}"#))
        .unwrap();
    let misses = m
        .lines()
        .find(|l| l.starts_with(r#"l402_pool_misses_total{service="weather"}"#))
        .unwrap();
    let n = |l: &str| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
    assert_eq!(n(hits) + n(misses), 6);
    assert!(n(hits) >= 2, "{hits}");
    r.shutdown.cancel();
}

/// `dev/pay` pays any invoice: the dev backend refuses to listen anywhere but loopback.
#[tokio::test]
async fn dev_backend_refuses_a_public_listener() {
    let mut cfg = config(DEV, false);
    cfg.listen = "0.0.0.0:0".parse().unwrap();
    let e = match start(cfg, invoice_service::clock::system()).await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("the dev backend listened on 0.0.0.0"),
    };
    assert!(e.contains("loopback"), "{e}");
    let mut cfg = config(DEV, false);
    cfg.listen = "[::1]:0".parse().unwrap();
    // IPv6 loopback is fine (where the machine has it).
    if let Ok(r) = start(cfg, invoice_service::clock::system()).await {
        r.shutdown.cancel();
    }
}

#[tokio::test]
async fn catalog_and_invoice_status_for_the_edges_own_endpoints() {
    let (_r, base) = dev_service().await;
    // The catalog: the prices charged, edge-only.
    let (status, _, _) = post(&format!("{base}/v1/catalog"), None, "{}").await;
    assert_eq!(status, 401);
    let (status, _, cat) = post(&format!("{base}/v1/catalog"), Some(EDGE), "{}").await;
    assert_eq!(status, 200, "{cat}");
    let cat = l402_core::Catalog::parse(cat.to_string().as_bytes()).unwrap();
    assert_eq!(cat.services[0].name, "weather");
    assert_eq!(cat.services[0].price_sat, Some(10));
    assert_eq!(cat.services[0].lifetime_secs, Some(3600));
    assert_eq!(cat.services[1].price_sat, Some(3));
    // A challenge says what it buys; its invoice is open until paid, then settled with the
    // preimage that pays it.
    let (_, _, body) = post(
        &format!("{base}/v1/challenges"),
        Some(EDGE),
        r#"{"service":"weather"}"#,
    )
    .await;
    let ch = ChallengeResponse::parse(body.to_string().as_bytes()).unwrap();
    assert_eq!(ch.lifetime_secs, Some(3600));
    assert!(l402_core::bolt11_amount_msat(&ch.invoice) == Some(10_000));
    let ask = |hash: String| {
        let base = base.clone();
        async move {
            post(
                &format!("{base}/v1/invoice-status"),
                Some(EDGE),
                json!({ "payment_hash": hash }).to_string(),
            )
            .await
        }
    };
    let (status, _, s) = ask(ch.payment_hash.clone()).await;
    assert_eq!((status, s["state"].as_str()), (200, Some("open")), "{s}");
    assert!(s.get("preimage").is_none());
    let (_, _, paid) = post(
        &format!("{base}/v1/dev/pay"),
        None,
        json!({"invoice": ch.invoice}).to_string(),
    )
    .await;
    let (status, _, s) = ask(ch.payment_hash.clone()).await;
    assert_eq!((status, s["state"].as_str()), (200, Some("settled")));
    assert_eq!(s["preimage"], paid["preimage"]);
    // An invoice the node never made will never be paid; a bad hash is refused; no bearer, 401.
    let (_, _, s) = ask("ab".repeat(32)).await;
    assert_eq!(s["state"], "expired");
    let (status, _, _) = ask("xyz".into()).await;
    assert_eq!(status, 400);
    let (status, _, _) = post(
        &format!("{base}/v1/invoice-status"),
        None,
        json!({ "payment_hash": ch.payment_hash }).to_string(),
    )
    .await;
    assert_eq!(status, 401);
}
