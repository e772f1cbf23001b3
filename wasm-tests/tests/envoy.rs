//! The filter in a real Envoy (`--concurrency 2`), with a real invoice-service (`dev` backend,
//! and LNbits) and an upstream that records what reaches it.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use l402_core::{Preimage, attenuate, inspect};
use reqwest::blocking::{Client, Response};
use serde_json::json;
use testkit::invoice_service::InvoiceService;
use wasm_tests::{KEYS, Lightning, Stack, body_error, client, filter_config, now, parse_challenge};

fn get(url: &str, auth: Option<&str>) -> Response {
    wasm_tests::get(url, auth).unwrap()
}

/// Each call a distinct token id.
fn token(
    service: &str,
    caps: &[&str],
    lifetime: Option<u64>,
    minted_at: u64,
    preimage: &Preimage,
) -> String {
    static SALT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
    let salt = SALT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    wasm_tests::token(service, caps, lifetime, minted_at, preimage, salt).unwrap()
}

/// 402 → pay (dev) → 200, asserting everything the flow promises. Returns the credential.
fn pay_and_use(stack: &Stack, path: &str) -> String {
    let resp = get(&stack.envoy.url(path), None);
    assert_eq!(resp.status(), 402);
    let all: Vec<String> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    // L402 and LSAT (same macaroon and invoice), then the same invoice as a Payment charge.
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].starts_with("L402 macaroon=\"") && all[1].starts_with("LSAT macaroon=\""));
    assert!(all[2].starts_with("Payment id=\""), "{all:?}");
    assert_eq!(
        all[0]["L402 ".len()..],
        all[1]["LSAT ".len()..],
        "same macaroon and invoice in both"
    );
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let offer = parse_challenge(&resp).unwrap();
    assert_eq!(body_error(resp), "missing_credential");
    let ins = inspect(&offer.macaroon).unwrap();
    assert_eq!(ins.caveats[0], "services=weather:0");
    let preimage = stack.service.dev_pay(&offer.invoice).unwrap();
    let auth = format!("L402 {}:{preimage}", offer.macaroon);
    let before = stack.upstream.count();
    let resp = client()
        .get(stack.envoy.url(path))
        .header("authorization", &auth)
        .header("x-l402-token-id", "spoofed")
        .header("x-l402-service", "spoofed")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(stack.upstream.count(), before + 1);
    let seen = stack.upstream.last().unwrap();
    assert_eq!(
        seen.header("x-l402-token-id"),
        Some(ins.identifier.token_id.to_hex().as_str())
    );
    assert_eq!(seen.header("x-l402-service"), Some("weather"));
    assert_eq!(seen.header("authorization"), None, "credential stripped");
    assert_eq!(
        seen.headers
            .iter()
            .filter(|(n, _)| n == "x-l402-token-id")
            .count(),
        1
    );
    auth
}

#[test]
fn paid_flow_through_the_dev_backend() {
    let logs = tempfile::tempdir().unwrap();
    let stack = Stack::start(logs.path(), &filter_config(2000, &[]), 2).unwrap();

    let auth = pay_and_use(&stack, "/weather/today");
    // The same token keeps working, on both worker threads (several connections).
    for _ in 0..20 {
        let c = Client::builder().pool_max_idle_per_host(0).build().unwrap();
        assert_eq!(
            c.get(stack.envoy.url("/weather/tomorrow"))
                .header("authorization", &auth)
                .send()
                .unwrap()
                .status(),
            200
        );
    }
    // LSAT scheme, lower case, URL-safe base64: the lenient parser's job.
    let (mac, pre) = auth["L402 ".len()..].rsplit_once(':').unwrap();
    let url_safe = mac
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_owned();
    assert_eq!(
        get(
            &stack.envoy.url("/weather"),
            Some(&format!("lsat {url_safe}:{pre}"))
        )
        .status(),
        200
    );

    // Not a paid route: untouched, and spoofed headers still never reach the upstream.
    let resp = client()
        .get(stack.envoy.url("/free"))
        .header("x-l402-token-id", "spoofed")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        stack.upstream.last().unwrap().header("x-l402-token-id"),
        None
    );

    assert!(stack.envoy.stat("wasmcustom.l402.authorized") >= 22);
    assert!(stack.envoy.stat("wasmcustom.l402.challenges") >= 1);
    assert!(
        stack
            .envoy
            .stat("wasmcustom.l402.rejected.missing_credential")
            >= 1
    );
    assert!(stack.envoy.stat("wasmcustom.l402.cache_hits") >= 1);
    // No secret in any log.
    for log in [stack.envoy.proc.logs(), stack.service.proc.logs()] {
        assert!(
            !log.contains("1a1a1a1a1a")
                && !log.contains(pre)
                && !log.contains(&stack.service.edge_token)
        );
    }
}

#[test]
fn paid_flow_through_a_real_lnbits_wallet() {
    let logs = tempfile::tempdir().unwrap();
    let ln = Lightning::start(logs.path(), 1_000).unwrap();
    let service = ln.service(logs.path(), None).unwrap();
    let stack = Stack::with_service(logs.path(), service, &filter_config(5000, &[]), 2).unwrap();

    let resp = get(&stack.envoy.url("/weather"), None);
    assert_eq!(resp.status(), 402);
    let offer = parse_challenge(&resp).unwrap();
    let preimage = ln.pay(&offer.invoice).unwrap();
    let resp = get(
        &stack.envoy.url("/weather"),
        Some(&format!("L402 {}:{preimage}", offer.macaroon)),
    );
    assert_eq!(resp.status(), 200);
    let seen = stack.upstream.last().unwrap();
    assert!(seen.header("x-l402-token-id").is_some());
    assert_eq!(seen.header("authorization"), None);
    assert!(
        ln.lnbits
            .is_paid(
                &inspect(&offer.macaroon)
                    .unwrap()
                    .identifier
                    .payment_hash
                    .to_hex()
            )
            .unwrap()
    );
}

#[test]
fn invalid_tokens_never_reach_the_upstream() {
    let logs = tempfile::tempdir().unwrap();
    let p = Preimage::from_bytes([0x51; 32]);
    let revoked_mac = token("weather", &["read"], Some(3600), now(), &p);
    let revoked_id = inspect(&revoked_mac).unwrap().identifier.token_id.to_hex();
    let cfg = filter_config(2000, &[("deny_list", json!([revoked_id]))]);
    let stack = Stack::start(logs.path(), &cfg, 2).unwrap();
    let auth = |m: &str, p: &Preimage| format!("L402 {m}:{}", p.expose_hex());

    let good = token("weather", &["read"], Some(3600), now(), &p);
    assert_eq!(
        get(&stack.envoy.url("/weather"), Some(&auth(&good, &p))).status(),
        200
    );
    let before = stack.upstream.count();

    let expired = token("weather", &["read"], Some(60), now() - 3600, &p);
    let mut raw = base64_decode(&good);
    let n = raw.len();
    raw[n - 1] ^= 1;
    let tampered = base64_encode(&raw);
    let widened = attenuate(
        &token("maps", &[], Some(3600), now(), &p),
        "services=maps:0,weather:0",
    )
    .unwrap();
    let cases = [
        ("expired", auth(&expired, &p), "/weather", "token_expired"),
        ("tampered", auth(&tampered, &p), "/weather", "bad_signature"),
        (
            "wrong preimage",
            auth(&good, &Preimage::from_bytes([0x52; 32])),
            "/weather",
            "wrong_preimage",
        ),
        (
            "other service",
            auth(&token("maps", &[], Some(3600), now(), &p), &p),
            "/weather",
            "service_not_allowed",
        ),
        (
            "widened by client",
            auth(&widened, &p),
            "/weather",
            "service_not_allowed",
        ),
        ("revoked", auth(&revoked_mac, &p), "/weather", "revoked"),
        (
            "capability",
            auth(&good, &p),
            "/admin-api",
            "capability_missing",
        ),
        (
            "garbage",
            "L402 !!!:00".to_owned(),
            "/weather",
            "malformed_credential",
        ),
    ];
    for (what, a, path, reason) in &cases {
        let resp = client()
            .get(stack.envoy.url(path))
            .header("authorization", a)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 402, "{what}");
        assert!(parse_challenge(&resp).is_ok(), "{what}: a fresh challenge");
        assert_eq!(body_error(resp), *reason, "{what}");
    }
    assert_eq!(
        stack.upstream.count(),
        before,
        "nothing invalid reached the upstream"
    );
    assert_eq!(
        stack.envoy.stat("wasmcustom.l402.rejected.token_expired"),
        1
    );
    assert_eq!(stack.envoy.stat("wasmcustom.l402.rejected.revoked"), 1);

    // The same, answered 401 without a challenge when so configured.
    let cfg401 = filter_config(2000, &[("on_invalid", json!("unauthorized"))]);
    let strict = Stack::start(logs.path(), &cfg401, 1).unwrap();
    let resp = get(&strict.envoy.url("/weather"), Some(&auth(&expired, &p)));
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_eq!(body_error(resp), "token_expired");
    // A missing credential still gets the 402 challenge.
    assert_eq!(get(&strict.envoy.url("/weather"), None).status(), 402);
    assert_eq!(strict.upstream.count(), 0);
}

#[test]
fn invoice_service_down_or_hung_is_503_while_paid_requests_pass() {
    let logs = tempfile::tempdir().unwrap();
    let mut stack = Stack::start(logs.path(), &filter_config(1000, &[]), 2).unwrap();
    let p = Preimage::from_bytes([0x61; 32]);
    let paid = format!(
        "L402 {}:{}",
        token("weather", &["read"], Some(3600), now(), &p),
        p.expose_hex()
    );

    stack.service.proc.stop();
    let t = Instant::now();
    let resp = get(&stack.envoy.url("/weather"), None);
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(body_error(resp), "challenge_unavailable");
    assert_eq!(get(&stack.envoy.url("/weather"), Some(&paid)).status(), 200);

    // A service that accepts connections and never answers: 503 within the timeout.
    let hung = std::net::TcpListener::bind(("127.0.0.1", stack.service.port)).unwrap();
    let t = Instant::now();
    let resp = get(&stack.envoy.url("/weather"), None);
    let took = t.elapsed();
    assert_eq!(resp.status(), 503);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
        "{took:?}"
    );
    assert_eq!(get(&stack.envoy.url("/weather"), Some(&paid)).status(), 200);
    drop(hung);
    assert!(stack.envoy.stat("wasmcustom.l402.invoice_service_errors") >= 2);
    assert_eq!(stack.upstream.count(), 2, "only the paid requests");

    // It comes back: challenges resume by themselves.
    let port = stack.service.port;
    let back = InvoiceService::start(
        logs.path(),
        KEYS,
        "[backend]\nkind = \"dev\"",
        &[],
        Some(port),
    )
    .unwrap();
    assert_eq!(get(&stack.envoy.url("/weather"), None).status(), 402);
    drop(back);
}

#[test]
fn grpc_and_cors() {
    let logs = tempfile::tempdir().unwrap();
    let stack = Stack::start(logs.path(), &filter_config(2000, &[]), 2).unwrap();
    let resp = client()
        .post(stack.envoy.url("/grpc.Weather/Today"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "13");
    assert_eq!(resp.headers()["grpc-message"], "payment required");
    // gRPC clients get the challenges as metadata: L402, LSAT, Payment.
    assert_eq!(resp.headers().get_all("www-authenticate").iter().count(), 3);
    assert!(parse_challenge(&resp).is_ok());

    // Preflight passes unchallenged to the origin.
    let resp = client()
        .request(reqwest::Method::OPTIONS, stack.envoy.url("/weather"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(stack.upstream.last().unwrap().method, "OPTIONS");
    // A browser can read the challenge.
    let resp = get(&stack.envoy.url("/weather"), None);
    assert!(
        resp.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("WWW-Authenticate")
    );
}

#[test]
fn a_bad_filter_config_is_refused_naming_the_field() {
    let logs = tempfile::tempdir().unwrap();
    let upstream = testkit::echo::Echo::start().unwrap();
    let bad =
        r#"{"invoice_service": {"cluster": "invoice_service", "token_env": "L402_EDGE_TOKEN"}}"#;
    let mut envoy = testkit::envoy::Envoy::spawn(
        logs.path(),
        &testkit::envoy::EnvoyOptions {
            upstream_port: upstream.port,
            invoice_port: testkit::free_port(),
            filter_config: bad,
            env: vec![("L402_EDGE_TOKEN", "e2e-edge-token-0123456789")],
            concurrency: 1,
            normalize: true,
        },
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while envoy.proc.is_running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!envoy.proc.is_running(), "Envoy must refuse the listener");
    let logs = envoy.proc.logs();
    assert!(
        logs.contains("l402 filter config: keyring: required"),
        "{logs}"
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    STANDARD.encode(b)
}

/// Under Istio or Envoy Gateway the control plane cannot set route metadata: the filter's
/// `routes` (path prefixes) sell those paths; metadata, where present, still decides first.
#[test]
fn path_prefix_routes_sell_paths_without_route_metadata() {
    let logs = tempfile::tempdir().unwrap();
    let routes = json!([
        {"path": "/reports", "service": "weather", "capabilities": "read"},
        {"path": "/weather", "service": "maps"}
    ]);
    let stack = Stack::start(logs.path(), &filter_config(2000, &[("routes", routes)]), 1).unwrap();
    // /reports has no metadata (the catch-all route): the prefix sells it.
    let resp = get(&stack.envoy.url("/reports/today"), None);
    assert_eq!(resp.status(), 402);
    let p = Preimage::from_bytes([0x44; 32]);
    let auth = format!(
        "L402 {}:{}",
        token("weather", &["read"], Some(3600), now(), &p),
        p.expose_hex()
    );
    let resp = get(&stack.envoy.url("/reports/today"), Some(&auth));
    assert_eq!(resp.status(), 200);
    assert_eq!(
        stack.upstream.last().unwrap().header("x-l402-service"),
        Some("weather")
    );
    // /weather carries metadata (service weather): it wins over the configured prefix.
    assert_eq!(get(&stack.envoy.url("/weather"), Some(&auth)).status(), 200);
    // Unsold paths pass untouched.
    assert_eq!(get(&stack.envoy.url("/free"), None).status(), 200);
}
