//! The IETF "Payment" scheme (lightning charge) end to end, through real Envoy and workerd:
//! paid with the dev backend and LNbits, 200 with a receipt, a replay refused, exactly one
//! 200 out of 50 concurrent replays whichever edges and replicas share the spent-set (Redis
//! behind two service replicas; the Worker's Durable Object; Envoy and the Worker on one
//! service), every refusal a 402 naming its problem type, and a store outage a 503.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use l402_core::{PaymentChallenge, Preimage, b64url_decode, b64url_encode};
use reqwest::blocking::Response;
use testkit::invoice_service::InvoiceService;
use testkit::redis::Redis;
use wasm_tests::{
    KEYS, Lightning, Stack, WorkerStack, concurrent_oks, filter_config, get, now,
    payment_challenge, payment_credential, payment_receipt, problem,
};

const PROBLEMS: &str = "https://paymentauth.org/problems/";

/// A fresh Payment challenge from `url` (a 402 offering it).
fn challenge(url: &str) -> PaymentChallenge {
    let resp = get(url, None).unwrap();
    assert_eq!(resp.status(), 402);
    assert_eq!(
        resp.headers()["content-type"],
        "application/problem+json",
        "a 402 offering Payment carries problem details"
    );
    payment_challenge(&resp).expect("a Payment challenge")
}

/// The invoice inside a challenge's request object.
fn invoice(c: &PaymentChallenge) -> String {
    let r: serde_json::Value = serde_json::from_slice(&b64url_decode(&c.request).unwrap()).unwrap();
    r["methodDetails"]["invoice"].as_str().unwrap().to_owned()
}

/// A challenge from `url`, paid through the dev backend: `(challenge, credential)`.
fn paid(url: &str, service: &InvoiceService) -> (PaymentChallenge, String) {
    let c = challenge(url);
    let preimage = service.dev_pay(&invoice(&c)).unwrap();
    let cred = payment_credential(&c, &preimage);
    (c, cred)
}

fn assert_refused(resp: Response, problem_type: &str, code: &str, what: &str) {
    assert_eq!(resp.status(), 402, "{what}");
    assert!(
        payment_challenge(&resp).is_some(),
        "{what}: a fresh challenge"
    );
    assert!(resp.headers().get("payment-receipt").is_none(), "{what}");
    let (t, e) = problem(resp);
    assert_eq!(
        (t.as_str(), e.as_str()),
        (format!("{PROBLEMS}{problem_type}").as_str(), code),
        "{what}"
    );
}

#[test]
fn envoy_sells_over_payment_once_and_refuses_every_forgery() {
    let logs = tempfile::tempdir().unwrap();
    let stack = Stack::start(logs.path(), &filter_config(2000, &[]), 2).unwrap();
    let url = stack.envoy.url("/weather/today");
    // Both schemes by default: L402 first (what L402 clients read), then Payment.
    let resp = get(&url, None).unwrap();
    let schemes: Vec<String> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(schemes, ["L402", "LSAT", "Payment"]);
    assert_eq!(
        problem(resp),
        (
            format!("{PROBLEMS}payment-required"),
            "missing_credential".into()
        )
    );

    let (c, cred) = paid(&url, &stack.service);
    assert_eq!(
        (c.method.as_str(), c.intent.as_str()),
        ("lightning", "charge")
    );
    let resp = get(&url, Some(&cred)).unwrap();
    assert_eq!(resp.status(), 200);
    let receipt = payment_receipt(&resp).expect("a Payment-Receipt");
    let request: serde_json::Value =
        serde_json::from_slice(&b64url_decode(&c.request).unwrap()).unwrap();
    let hash = request["methodDetails"]["paymentHash"].as_str().unwrap();
    assert_eq!(receipt["reference"], hash);
    assert_eq!(
        (receipt["status"].as_str(), receipt["challengeId"].as_str()),
        (Some("success"), Some(c.id.as_str()))
    );
    let seen = stack.upstream.last().unwrap();
    assert_eq!(seen.header("x-l402-payment-hash"), Some(hash));
    assert_eq!(seen.header("x-l402-service"), Some("weather"));
    assert!(
        seen.header("authorization").is_none(),
        "the credential never reaches the origin"
    );
    // A charge serves one request.
    assert_refused(
        get(&url, Some(&cred)).unwrap(),
        "invalid-challenge",
        "payment_spent",
        "replay",
    );

    refusals(&url, &stack.envoy.url("/maps"), &stack.service);
}

/// Forgeries and mismatches at `url` (and `other`, a route selling another service): each
/// refused before any spend with its problem type named; the genuine charge still buys its
/// request, once.
fn refusals(url: &str, other: &str, service: &InvoiceService) {
    let (c2, good) = paid(url, service);
    let c = c2.clone();
    let mut tampered = c2.clone();
    // Another first character (the last one carries unused bits, and 1 in 64 ids already
    // ends in any given letter): a different id, whatever this challenge's is.
    let first = if c2.id.starts_with('A') { "B" } else { "A" };
    tampered.id = format!("{first}{}", &c2.id[1..]);
    let mut amount: serde_json::Value =
        serde_json::from_slice(&b64url_decode(&c2.request).unwrap()).unwrap();
    amount["amount"] = "1".into();
    let mut cheap = c2.clone();
    cheap.request = b64url_encode(amount.to_string().as_bytes());
    let good_preimage = {
        let wire: serde_json::Value =
            serde_json::from_slice(&b64url_decode(good.strip_prefix("Payment ").unwrap()).unwrap())
                .unwrap();
        wire["payload"]["preimage"].as_str().unwrap().to_owned()
    };
    // An expired challenge signed with the right key (the test holds the keyring).
    let ring: l402_core::Keyring = KEYS.parse().unwrap();
    let p = Preimage::from_bytes([3; 32]);
    let expired = l402_core::issue_charge(
        &ring,
        &l402_core::ChargeTerms {
            realm: &c.realm,
            service: "weather",
            capabilities: "read",
            amount_sat: 10,
            invoice: &invoice(&c),
            payment_hash: &p.payment_hash(),
            expires_at: now() - 1,
            description: None,
        },
    )
    .unwrap();
    let cases: Vec<(String, &str, &str, &str)> = vec![
        (
            payment_credential(&tampered, &good_preimage),
            "invalid-challenge",
            "challenge_invalid",
            "tampered id",
        ),
        (
            payment_credential(&cheap, &good_preimage),
            "invalid-challenge",
            "challenge_invalid",
            "wrong amount",
        ),
        (
            payment_credential(&expired, &p.expose_hex()),
            "payment-expired",
            "challenge_expired",
            "expired challenge",
        ),
        (
            payment_credential(&c2, &"ab".repeat(32)),
            "verification-failed",
            "wrong_preimage",
            "wrong preimage",
        ),
        (
            format!("Payment {}", "A".repeat(17 * 1024)),
            "malformed-credential",
            "credential_too_large",
            "oversized",
        ),
        (
            "Payment !!not-base64!!".into(),
            "malformed-credential",
            "malformed_credential",
            "malformed",
        ),
        (
            format!("Payment {}", b64url_encode(b"{\"challenge\":{}}")),
            "malformed-credential",
            "malformed_credential",
            "not the draft's JSON",
        ),
    ];
    for (cred, problem_type, code, what) in &cases {
        assert_refused(get(url, Some(cred)).unwrap(), problem_type, code, what);
    }
    // Another route: a weather charge does not buy maps (and is not spent by trying).
    assert_refused(
        get(other, Some(&good)).unwrap(),
        "invalid-challenge",
        "service_not_allowed",
        "other route",
    );
    // None of those spent it: it still buys its own route, once.
    assert_eq!(get(url, Some(&good)).unwrap().status(), 200);
    assert_eq!(get(url, Some(&good)).unwrap().status(), 402);
}

#[test]
fn two_envoys_and_two_replicas_sharing_redis_serve_one_request_per_charge() {
    let logs = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(logs.path(), false).unwrap();
    let spent = format!(
        "[pool]\ndepth = 2\n[spent_set]\nstore = \"redis\"\nurl = \"{}\"\ntimeout = \"500ms\"",
        redis.url()
    );
    let replica = || {
        InvoiceService::start_with_pool(
            logs.path(),
            KEYS,
            "[backend]\nkind = \"dev\"",
            &spent,
            &[],
            None,
        )
        .unwrap()
    };
    let a = Stack::with_service(logs.path(), replica(), &filter_config(2000, &[]), 2).unwrap();
    let b = Stack::with_service(logs.path(), replica(), &filter_config(2000, &[]), 2).unwrap();
    let urls = [a.envoy.url("/weather"), b.envoy.url("/weather")];
    for round in 0..3 {
        // Issued by one replica, paid, then spent through both Envoys (and so both replicas).
        let (_, cred) = paid(
            &urls[round % 2],
            if round % 2 == 0 {
                &a.service
            } else {
                &b.service
            },
        );
        assert_eq!(concurrent_oks(&urls, &cred, 50), 1, "round {round}");
    }
    let spent_total = a.service.metric("l402_redeem_total{result=\"first_use\"}")
        + b.service.metric("l402_redeem_total{result=\"first_use\"}");
    assert_eq!(spent_total, 3.0);
    // The store down: a verified charge is not served (503, Retry-After), and not spent.
    let (_, cred) = paid(&urls[0], &a.service);
    redis.stop();
    for url in &urls {
        let resp = get(url, Some(&cred)).unwrap();
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().get("retry-after").is_some());
        assert_eq!(problem(resp).1, "spent_set_unavailable");
    }
    // L402 tokens need no store and keep passing.
    let offer = wasm_tests::parse_challenge(&get(&urls[0], None).unwrap()).unwrap();
    let preimage = a.service.dev_pay(&offer.invoice).unwrap();
    let l402 = format!("L402 {}:{preimage}", offer.macaroon);
    assert_eq!(get(&urls[1], Some(&l402)).unwrap().status(), 200);
    // Back up: the unspent charge buys its request, once.
    redis.restart(logs.path()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        let s = get(&urls[1], Some(&cred)).unwrap().status().as_u16();
        if s != 503 || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(status, 200);
    assert_eq!(get(&urls[0], Some(&cred)).unwrap().status(), 402);
}

#[test]
fn the_worker_spends_in_its_durable_object_and_can_share_the_services_set() {
    let logs = tempfile::tempdir().unwrap();
    let worker = WorkerStack::start(logs.path(), &[]).unwrap();
    let url = worker.worker.url("/weather/today");
    let (_, cred) = paid(&url, &worker.service);
    let resp = get(&url, Some(&cred)).unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(payment_receipt(&resp).unwrap()["status"], "success");
    assert!(
        worker
            .upstream
            .last()
            .unwrap()
            .header("x-l402-payment-hash")
            .is_some()
    );
    assert_refused(
        get(&url, Some(&cred)).unwrap(),
        "invalid-challenge",
        "payment_spent",
        "replay at the Worker",
    );
    refusals(&url, &worker.worker.url("/maps"), &worker.service);
    // The Durable Object, not the service, holds the spend.
    assert_eq!(
        worker
            .service
            .metric("l402_redeem_total{result=\"first_use\"}"),
        0.0
    );
    let (_, cred) = paid(&url, &worker.service);
    assert_eq!(concurrent_oks(std::slice::from_ref(&url), &cred, 50), 1);

    // One deployment selling through Envoy and the Worker: the Worker spends at the service.
    let mut envoy = Stack::start(logs.path(), &filter_config(2000, &[]), 2).unwrap();
    let origin = testkit::echo::Echo::start().unwrap();
    let vars = wasm_tests::worker_vars(&origin, &envoy.service, &[("SPENT_SET", "service")]);
    let shared = testkit::workerd::Workerd::start(logs.path(), &vars, true).unwrap();
    let urls = [envoy.envoy.url("/weather"), shared.url("/weather")];
    for round in 0..2 {
        let (_, cred) = paid(&urls[round], &envoy.service);
        assert_eq!(concurrent_oks(&urls, &cred, 50), 1, "round {round}");
    }
    assert_eq!(
        envoy
            .service
            .metric("l402_redeem_total{result=\"first_use\"}"),
        2.0
    );
    // The shared set out of reach: the Worker does not serve the charge either (503).
    let (_, cred) = paid(&urls[1], &envoy.service);
    envoy.service.proc.stop();
    let resp = get(&urls[1], Some(&cred)).unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(problem(resp).1, "spent_set_unavailable");
}

#[test]
fn payment_only_routes_and_lnbits() {
    let logs = tempfile::tempdir().unwrap();
    let ln = Lightning::start(logs.path(), 10_000).unwrap();
    let service = ln.service(logs.path(), None).unwrap();
    let mut stack = Stack::with_service(
        logs.path(),
        service,
        &filter_config(5000, &[("schemes", "payment".into())]),
        1,
    )
    .unwrap();
    let url = stack.envoy.url("/weather");
    let resp = get(&url, None).unwrap();
    let values: Vec<&str> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "{values:?}");
    assert!(values[0].starts_with("Payment "));
    let c = payment_challenge(&resp).unwrap();
    let preimage = ln.pay(&invoice(&c)).unwrap();
    let cred = payment_credential(&c, &preimage);
    let resp = get(&url, Some(&cred)).unwrap();
    assert_eq!(resp.status(), 200);
    assert!(payment_receipt(&resp).is_some());
    assert_eq!(get(&url, Some(&cred)).unwrap().status(), 402);
    // The embedded store (a file, the default with a real node) keeps it across a restart.
    let port = stack.service.port;
    stack
        .service
        .proc
        .terminate(std::time::Duration::from_secs(10));
    stack.service = ln.service(logs.path(), Some(port)).unwrap();
    assert!(
        logs.path()
            .join(format!("invoice-service-{port}/l402-spent.redb"))
            .is_file()
    );
    assert_refused(
        get(&url, Some(&cred)).unwrap(),
        "invalid-challenge",
        "payment_spent",
        "replay after a restart",
    );
}
