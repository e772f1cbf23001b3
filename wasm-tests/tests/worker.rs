//! The Worker in real workerd (`wrangler dev --local`), with a real invoice-service (`dev`
//! backend, and LNbits) and an upstream that records what reaches it; tokens cross between the
//! Worker and the Envoy filter.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::Path;
use std::time::{Duration, Instant};

use l402_core::{Preimage, inspect};
use reqwest::blocking::Response;
use testkit::echo::Echo;
use testkit::workerd::Workerd;
use wasm_tests::{
    Lightning, Stack, WorkerStack, body_error, client, filter_config, now, parse_challenge,
    worker_vars,
};

fn get(url: &str, auth: Option<&str>) -> Response {
    wasm_tests::get(url, auth).unwrap()
}

fn token(
    service: &str,
    lifetime: Option<u64>,
    minted_at: u64,
    preimage: &Preimage,
    salt: u8,
) -> String {
    wasm_tests::token(service, &["read"], lifetime, minted_at, preimage, salt).unwrap()
}

fn start(logs: &Path, extra: &[(&str, &str)]) -> WorkerStack {
    WorkerStack::start(logs, extra).unwrap()
}

#[test]
fn worker_paid_flow_rejections_and_revocation() {
    let logs = tempfile::tempdir().unwrap();
    let s = start(logs.path(), &[]);

    // 402 with both challenges, pay through the dev backend, 200 from the origin.
    let resp = get(&s.worker.url("/weather/today"), None);
    assert_eq!(resp.status(), 402);
    // The Workers runtime joins repeated headers (only Set-Cookie stays apart), so the two
    // challenges travel as one field, "L402 ..., LSAT ...": RFC 9110's list form, L402 first.
    let all: Vec<String> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 1, "{all:?}");
    let (l402, rest) = all[0].split_once(", LSAT ").unwrap();
    // Then the same invoice as a Payment charge (both schemes: the default).
    let (lsat, payment) = rest.split_once(", Payment ").unwrap();
    assert!(payment.starts_with("id=\""), "{payment}");
    assert!(l402.starts_with("L402 macaroon=\""));
    assert_eq!(
        &l402["L402 ".len()..],
        lsat,
        "same macaroon and invoice in both"
    );
    let offer = parse_challenge(&resp).unwrap();
    assert_eq!(body_error(resp), "missing_credential");
    let preimage = s.service.dev_pay(&offer.invoice).unwrap();
    let auth = format!("L402 {}:{preimage}", offer.macaroon);
    let resp = client()
        .get(s.worker.url("/weather/today?x=1"))
        .header("authorization", &auth)
        .header("x-l402-token-id", "spoofed")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen = s.upstream.last().unwrap();
    assert_eq!(seen.path, "/weather/today?x=1");
    assert_eq!(
        seen.header("x-l402-token-id"),
        Some(
            inspect(&offer.macaroon)
                .unwrap()
                .identifier
                .token_id
                .to_hex()
                .as_str()
        )
    );
    assert_eq!(seen.header("x-l402-service"), Some("weather"));
    assert_eq!(seen.header("authorization"), None);

    // Unmatched paths pass through; spoofed headers never reach the origin.
    let resp = client()
        .get(s.worker.url("/free"))
        .header("x-l402-service", "spoofed")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(s.upstream.last().unwrap().header("x-l402-service"), None);

    // Negative cases: never upstream.
    let p = Preimage::from_bytes([0x31; 32]);
    let good = token("weather", Some(3600), now(), &p, 1);
    let before = s.upstream.count();
    let a = |m: &str, p: &Preimage| format!("L402 {m}:{}", p.expose_hex());
    // A flipped signature byte (the last base64 characters carry it).
    let tampered = {
        use base64::Engine as _;
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&good)
            .unwrap();
        let n = raw.len();
        raw[n - 1] ^= 1;
        base64::engine::general_purpose::STANDARD.encode(raw)
    };
    for (what, auth, path, reason) in [
        (
            "expired",
            a(&token("weather", Some(60), now() - 3600, &p, 2), &p),
            "/weather",
            "token_expired",
        ),
        (
            "wrong preimage",
            a(&good, &Preimage::from_bytes([0x32; 32])),
            "/weather",
            "wrong_preimage",
        ),
        ("tampered", a(&tampered, &p), "/weather", "bad_signature"),
        (
            "other service",
            a(&token("maps", Some(3600), now(), &p, 3), &p),
            "/weather",
            "service_not_allowed",
        ),
        (
            "capability",
            a(&good, &p),
            "/admin-api",
            "capability_missing",
        ),
        (
            "garbage",
            "L402 !!!:00".to_owned(),
            "/weather",
            "malformed_credential",
        ),
    ] {
        let resp = get(&s.worker.url(path), Some(&auth));
        assert_eq!(resp.status(), 402, "{what}");
        assert!(parse_challenge(&resp).is_ok(), "{what}");
        assert_eq!(body_error(resp), reason, "{what}");
    }
    assert_eq!(s.upstream.count(), before);

    // KV deny-list: the token id as a key revokes it.
    assert_eq!(
        get(&s.worker.url("/weather"), Some(&a(&good, &p))).status(),
        200
    );
    let id = inspect(&good).unwrap().identifier.token_id.to_hex();
    s.worker.kv_put(&id).unwrap();
    let resp = get(&s.worker.url("/weather"), Some(&a(&good, &p)));
    assert_eq!(resp.status(), 402);
    assert_eq!(body_error(resp), "revoked");

    // gRPC and CORS.
    let resp = client()
        .post(s.worker.url("/grpc.Weather/Today"))
        .header("content-type", "application/grpc")
        .body(vec![0u8; 5])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["grpc-status"], "13");
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains(", LSAT macaroon=")
    );
    let resp = client()
        .request(reqwest::Method::OPTIONS, s.worker.url("/weather"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(s.upstream.last().unwrap().method, "OPTIONS");

    // The invoice-service stopped: 503 + Retry-After within the timeout; paid requests pass.
    let mut s = s;
    s.service.proc.stop();
    let t = Instant::now();
    let resp = get(&s.worker.url("/weather"), None);
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "5");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(get(&s.worker.url("/weather"), Some(&auth)).status(), 200);
    let log = s.worker.proc.logs();
    assert!(
        !log.contains("1a1a1a1a1a") && !log.contains(&preimage),
        "a secret in the Worker log"
    );
}

#[test]
fn worker_401_policy_and_bad_config() {
    let logs = tempfile::tempdir().unwrap();
    let s = start(logs.path(), &[("ON_INVALID", "unauthorized")]);
    let baseline = s.upstream.count(); // the readiness probe is an unsold path: it passes
    let p = Preimage::from_bytes([0x41; 32]);
    let expired = format!(
        "L402 {}:{}",
        token("weather", Some(60), now() - 3600, &p, 9),
        p.expose_hex()
    );
    let resp = get(&s.worker.url("/weather"), Some(&expired));
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("www-authenticate").is_none());
    assert_eq!(body_error(resp), "token_expired");
    assert_eq!(get(&s.worker.url("/weather"), None).status(), 402);

    let bad = Workerd::start(
        logs.path(),
        &worker_vars(
            &s.upstream,
            &s.service,
            &[("INVOICE_SERVICE_TIMEOUT_MS", "zero")],
        ),
        false,
    )
    .unwrap();
    // Clients get a bare 503; only the Worker's log names the variable (issue 14).
    let resp = get(&bad.url("/weather"), None);
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    let text = resp.text().unwrap();
    assert!(text.contains("edge_misconfigured") && !text.contains("INVOICE_SERVICE_TIMEOUT_MS"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(bad.proc.logs().contains("INVOICE_SERVICE_TIMEOUT_MS"));
    assert_eq!(s.upstream.count(), baseline, "nothing reached the origin");
}

#[test]
fn tokens_cross_between_envoy_and_the_worker_and_lnbits_pays() {
    let logs = tempfile::tempdir().unwrap();
    let ln = Lightning::start(logs.path(), 1_000).unwrap();
    let service = ln.service(logs.path(), None).unwrap();
    let worker_service = ln.service(logs.path(), None).unwrap();
    let envoy = Stack::with_service(logs.path(), service, &filter_config(5000, &[]), 1).unwrap();
    let upstream = Echo::start().unwrap();
    let worker = Workerd::start(
        logs.path(),
        &worker_vars(
            &upstream,
            &worker_service,
            &[("INVOICE_SERVICE_TIMEOUT_MS", "5000")],
        ),
        false,
    )
    .unwrap();
    let baseline = upstream.count();

    // Bought at the Envoy edge (LNbits pays), used at the Worker.
    let offer = parse_challenge(&get(&envoy.envoy.url("/weather"), None)).unwrap();
    let pre = ln.pay(&offer.invoice).unwrap();
    let auth = format!("L402 {}:{pre}", offer.macaroon);
    assert_eq!(get(&worker.url("/weather"), Some(&auth)).status(), 200);
    assert_eq!(get(&envoy.envoy.url("/weather"), Some(&auth)).status(), 200);
    // Bought at the Worker, used at Envoy.
    let offer = parse_challenge(&get(&worker.url("/weather"), None)).unwrap();
    let pre = ln.pay(&offer.invoice).unwrap();
    let auth = format!("L402 {}:{pre}", offer.macaroon);
    assert_eq!(get(&envoy.envoy.url("/weather"), Some(&auth)).status(), 200);
    assert_eq!(get(&worker.url("/weather"), Some(&auth)).status(), 200);
    assert_eq!(upstream.count(), baseline + 2);
}

/// The KV commands docs/CLOUDFLARE.md gives operators, run as written but with `--local` for
/// `--remote` (so a line without `--remote`, which wrangler 4 would apply to its local
/// simulation only, fails here), against a running Worker: put revokes, get reads, delete
/// restores.
#[test]
fn documented_kv_commands_revoke_on_a_running_worker() {
    let doc = std::fs::read_to_string(testkit::repo_root().join("docs/CLOUDFLARE.md")).unwrap();
    let block = doc
        .split("<!-- kv-commands -->")
        .nth(1)
        .and_then(|rest| rest.split("```sh\n").nth(1))
        .and_then(|b| b.split("```").next())
        .expect("docs/CLOUDFLARE.md has a kv-commands block");
    let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{block}");
    let logs = tempfile::tempdir().unwrap();
    let s = start(logs.path(), &[]);
    // A token whose id is the one the documentation revokes.
    let id = lines[0].split_whitespace().rev().nth(1).unwrap();
    let token_id = l402_core::TokenId::from_hex(id).unwrap();
    let random: [u8; 28] = token_id.0[4..].try_into().unwrap();
    let keyring: l402_core::Keyring = wasm_tests::KEYS.parse().unwrap();
    let p = Preimage::from_bytes([0x33; 32]);
    let entry = l402_core::ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 0,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(3600),
        allowance: None,
    };
    let t = l402_core::mint(&keyring, p.payment_hash(), random, &entry, now()).unwrap();
    let auth = format!("L402 {}:{}", t.macaroon_b64, p.expose_hex());
    let status = || {
        get(&s.worker.url("/weather"), Some(&auth))
            .status()
            .as_u16()
    };
    assert_eq!(status(), 200);
    let mut outputs = Vec::new();
    for line in &lines {
        assert!(line.starts_with("wrangler kv key "), "{line}");
        assert!(
            line.contains(" --remote "),
            "the documented command lacks --remote: {line}"
        );
        let local = line.replace(" --remote ", " --local ");
        let args: Vec<&str> = local.split_whitespace().skip(1).collect();
        outputs.push(s.worker.wrangler(&args).unwrap());
        if line.contains(" put ") {
            // KV is eventually consistent (on Cloudflare for up to a minute; locally a
            // moment under load): the revocation must land, not land at once.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while status() != 402 && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            assert_eq!(status(), 402, "after: {line}");
        }
    }
    assert_eq!(
        outputs[1].trim(),
        "1",
        "kv key get printed {:?}",
        outputs[1]
    );
    assert_eq!(status(), 200, "after the delete");
}

/// An invoice-service behind Cloudflare Access: with `CF_ACCESS_CLIENT_ID` and
/// `CF_ACCESS_CLIENT_SECRET` set, the Worker's challenge calls carry the service token (seen
/// here by a recording server standing in for Access).
#[test]
fn challenge_calls_carry_the_access_service_token() {
    let logs = tempfile::tempdir().unwrap();
    let s = start(logs.path(), &[]);
    let access = Echo::start().unwrap();
    let url = format!("http://127.0.0.1:{}", access.port);
    let w = Workerd::start(
        logs.path(),
        &worker_vars(
            &s.upstream,
            &s.service,
            &[
                ("INVOICE_SERVICE_URL", &url),
                ("CF_ACCESS_CLIENT_ID", "0123abcd.access"),
                ("CF_ACCESS_CLIENT_SECRET", "access-secret-0123456789"),
            ],
        ),
        false,
    )
    .unwrap();
    // The stand-in answers no challenge, so the client gets 503; the call is what matters.
    assert_eq!(get(&w.url("/weather"), None).status(), 503);
    let call = access
        .last()
        .expect("the Worker called the invoice-service");
    assert_eq!(call.path, "/v1/challenges");
    assert_eq!(call.header("cf-access-client-id"), Some("0123abcd.access"));
    assert_eq!(
        call.header("cf-access-client-secret"),
        Some("access-secret-0123456789")
    );
    assert!(
        call.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer "))
    );
}
