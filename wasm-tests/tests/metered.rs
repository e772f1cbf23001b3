//! Metered tokens end to end (PROTOCOL.md §12), through real Envoy and workerd: a token good
//! for N requests serves N and the next gets 402 `allowance_spent` with a fresh challenge; an
//! attenuated copy is held to its lower allowance; exactly 50 of 200 concurrent requests pass
//! for a 50-request token whichever edges share the count (two Envoys and two service replicas
//! on Redis; the Worker's Durable Objects; Envoy and the Worker on one service), with edges and
//! replicas restarted mid-run; and a store outage is a 503 for metered tokens only.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::Path;
use std::time::Duration;

use testkit::envoy::{Envoy, EnvoyOptions};
use testkit::invoice_service::InvoiceService;
use testkit::redis::Redis;
use testkit::workerd::Workerd;
use wasm_tests::{
    KEYS, Stack, WorkerStack, client, concurrent_oks, filter_config, get, parse_challenge,
};

/// Buys a token at `url` (a 402, paid through the dev backend): the L402 credential.
fn buy(url: &str, service: &InvoiceService) -> String {
    let resp = get(url, None).unwrap();
    assert_eq!(resp.status(), 402);
    let offer = parse_challenge(&resp).unwrap();
    let preimage = service.dev_pay(&offer.invoice).unwrap();
    format!("L402 {}:{preimage}", offer.macaroon)
}

/// The same credential with one more caveat (a client lending a narrower copy).
fn attenuated(cred: &str, caveat: &str) -> String {
    let (mac, preimage) = cred.trim_start_matches("L402 ").split_once(':').unwrap();
    format!(
        "L402 {}:{preimage}",
        l402_core::attenuate(mac, caveat).unwrap()
    )
}

fn remaining(resp: &reqwest::blocking::Response) -> Option<u64> {
    resp.headers()
        .get("l402-allowance-remaining")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn assert_spent(resp: reqwest::blocking::Response, what: &str) {
    assert_eq!(resp.status(), 402, "{what}");
    assert!(parse_challenge(&resp).is_ok(), "{what}: a fresh challenge");
    let body: serde_json::Value = resp.json().unwrap();
    assert_eq!(
        body["error"].as_str().or(body["code"].as_str()),
        Some("allowance_spent"),
        "{what}: {body}"
    );
}

/// `n` requests one after another, round robin over `urls`: the 200s.
fn sequential_oks(urls: &[String], cred: &str, n: usize) -> usize {
    (0..n)
        .filter(|i| get(&urls[i % urls.len()], Some(cred)).unwrap().status() == 200)
        .count()
}

/// Serves a 5-request token 5 times, counting down, then refuses it; an attenuated copy with
/// a lower allowance is held to it on the shared count; unmetered tokens are untouched.
fn five_then_spent(url: &str, service: &InvoiceService, last_seen: &dyn Fn() -> Option<String>) {
    let cred = buy(url, service);
    for left in (0..5).rev() {
        let resp = get(url, Some(&cred)).unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            remaining(&resp),
            Some(left),
            "the client is told what is left"
        );
        assert_eq!(last_seen(), Some(left.to_string()), "and so is the origin");
    }
    assert_spent(get(url, Some(&cred)).unwrap(), "the 6th request");

    let cred = buy(url, service);
    let copy = attenuated(&cred, "five_allowance=2");
    assert_eq!(get(url, Some(&copy)).unwrap().status(), 200);
    assert_eq!(get(url, Some(&cred)).unwrap().status(), 200);
    assert_spent(
        get(url, Some(&copy)).unwrap(),
        "the copy past its own allowance",
    );
    let resp = get(url, Some(&cred)).unwrap();
    assert_eq!(
        (resp.status().as_u16(), remaining(&resp)),
        (200, Some(2)),
        "the original keeps the rest"
    );
    let raised = attenuated(&copy, "five_allowance=100");
    assert_spent(get(url, Some(&raised)).unwrap(), "a copy cannot raise it");
}

#[test]
fn envoy_serves_a_bundle_then_asks_for_a_new_one() {
    let logs = tempfile::tempdir().unwrap();
    // One worker thread: what the edge reports left is exact where one instance holds the
    // token's lease (PROTOCOL.md §12.3).
    let stack = Stack::start(logs.path(), &filter_config(2000, &[]), 1).unwrap();
    five_then_spent(&stack.envoy.url("/five/x"), &stack.service, &|| {
        stack
            .upstream
            .last()?
            .header("x-l402-allowance-remaining")
            .map(str::to_owned)
    });
    // Unmetered tokens never reach the store.
    let plain = buy(&stack.envoy.url("/maps"), &stack.service);
    for _ in 0..3 {
        let resp = get(&stack.envoy.url("/maps"), Some(&plain)).unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(remaining(&resp), None);
    }
    assert_eq!(
        stack
            .service
            .metric("l402_allowance_calls_total{result=\"granted\"}"),
        8.0
    );
    assert!(stack.envoy.stat("wasmcustom.l402.rejected.allowance_spent") >= 3);

    // A per-token rate limit (Envoy's local_ratelimit on the token id header): 3 a minute.
    let rated = stack.envoy.url("/rated");
    let cred = buy(&rated, &stack.service);
    let other = buy(&rated, &stack.service);
    let statuses: Vec<u16> = (0..5)
        .map(|_| get(&rated, Some(&cred)).unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(
        get(&rated, Some(&other)).unwrap().status(),
        200,
        "each token has its own bucket"
    );
    // A refused request spends nothing: the token has 47 left, not 45.
    let resp = get(&stack.envoy.url("/fifty"), Some(&cred)).unwrap();
    assert_eq!((resp.status().as_u16(), remaining(&resp)), (200, Some(46)));
    // A forged token id header is stripped before the limiter reads it.
    let resp = client()
        .get(&rated)
        .header("x-l402-token-id", "ab".repeat(32))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 402);
}

fn replica(logs: &Path, redis: &Redis, port: Option<u16>) -> InvoiceService {
    let store = format!(
        "[pool]\ndepth = 2\n[spent_set]\nstore = \"redis\"\nurl = \"{}\"\ntimeout = \"500ms\"",
        redis.url()
    );
    InvoiceService::start_with_pool(logs, KEYS, "[backend]\nkind = \"dev\"", &store, &[], port)
        .unwrap()
}

fn envoy_for(logs: &Path, stack: &Stack, config: &str) -> Envoy {
    Envoy::start(
        logs,
        &EnvoyOptions {
            upstream_port: stack.upstream.port,
            invoice_port: stack.service.port,
            filter_config: config,
            env: vec![
                ("L402_KEYS", KEYS),
                ("L402_EDGE_TOKEN", &stack.service.edge_token),
            ],
            concurrency: 2,
            normalize: true,
        },
    )
    .unwrap()
}

#[test]
fn two_envoys_and_two_replicas_on_redis_serve_exactly_the_allowance() {
    let logs = tempfile::tempdir().unwrap();
    let mut redis = Redis::start(logs.path(), true).unwrap();
    // Leases run out quickly, so units a restarted edge did not hold go back fast.
    let config = filter_config(2000, &[("allowance_lease_ms", 500.into())]);
    let a =
        Stack::with_service(logs.path(), replica(logs.path(), &redis, None), &config, 2).unwrap();
    let mut b =
        Stack::with_service(logs.path(), replica(logs.path(), &redis, None), &config, 2).unwrap();
    let urls = |a: &Stack, b: &Stack| [a.envoy.url("/fifty"), b.envoy.url("/fifty")];
    five_then_spent(&a.envoy.url("/five"), &a.service, &|| {
        a.upstream
            .last()?
            .header("x-l402-allowance-remaining")
            .map(str::to_owned)
    });

    for round in 0..2 {
        let seller = if round == 0 { &a } else { &b };
        let cred = buy(&urls(&a, &b)[round], &seller.service);
        assert_eq!(
            concurrent_oks(&urls(&a, &b), &cred, 200),
            50,
            "round {round}: 200 at once over two Envoys and two replicas"
        );
        assert_spent(get(&urls(&a, &b)[1 - round], Some(&cred)).unwrap(), "after");
    }

    // Restarts mid-run: a replica (the count is in Redis), then Redis itself (append-only
    // file), then an Envoy (its leased units are lost to the client, never served twice).
    let cred = buy(&urls(&a, &b)[0], &a.service);
    let mut served = sequential_oks(&urls(&a, &b), &cred, 10);
    let port = b.service.port;
    b.service.proc.stop();
    b.service = replica(logs.path(), &redis, Some(port));
    served += sequential_oks(&urls(&a, &b), &cred, 10);
    redis.restart(logs.path()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    served += sequential_oks(&urls(&a, &b), &cred, 10);
    eprintln!("served {served} before the Envoy restart");
    b.envoy.proc.stop();
    b.envoy = envoy_for(logs.path(), &b, &config);
    served += concurrent_oks(&urls(&a, &b), &cred, 60);
    // Units still leased go back after 500 ms: the rest of the allowance, and no more.
    std::thread::sleep(Duration::from_millis(1500));
    served += sequential_oks(&urls(&a, &b), &cred, 40);
    assert!(served <= 50, "never more than the allowance: {served}");
    assert!(
        served >= 50 - 2 * 16,
        "at most one lease per VM of the stopped Envoy is lost: {served}"
    );
    eprintln!("served {served} of 50 across restarts");

    // The store down: metered tokens get 503 + Retry-After, unmetered ones keep passing.
    let metered = buy(&urls(&a, &b)[0], &a.service);
    let plain = buy(&a.envoy.url("/maps"), &a.service);
    redis.stop();
    for url in urls(&a, &b) {
        let resp = get(&url, Some(&metered)).unwrap();
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().get("retry-after").is_some());
        let body: serde_json::Value = resp.json().unwrap();
        assert_eq!(body["error"], "allowance_store_unavailable");
    }
    assert_eq!(
        get(&b.envoy.url("/maps"), Some(&plain)).unwrap().status(),
        200
    );
}

#[test]
fn the_worker_counts_in_durable_objects_and_can_share_the_services_store() {
    let logs = tempfile::tempdir().unwrap();
    // 200 requests at once queue at one Durable Object in `wrangler dev` on 2 loaded cores:
    // a store call may wait past the default second (and answer 503, as it should).
    const PATIENT: (&str, &str) = ("INVOICE_SERVICE_TIMEOUT_MS", "20000");
    let mut worker = WorkerStack::start(logs.path(), &[PATIENT]).unwrap();
    five_then_spent(&worker.worker.url("/five/x"), &worker.service, &|| {
        worker
            .upstream
            .last()?
            .header("x-l402-allowance-remaining")
            .map(str::to_owned)
    });
    assert_eq!(
        worker
            .service
            .metric("l402_allowance_calls_total{result=\"granted\"}"),
        0.0,
        "the Durable Objects count, not the service"
    );
    let url = worker.worker.url("/fifty");
    let cred = buy(&url, &worker.service);
    assert_eq!(concurrent_oks(std::slice::from_ref(&url), &cred, 200), 50);
    // A restart mid-run (a deploy): the Durable Object's count is durable.
    let cred = buy(&url, &worker.service);
    let mut served = sequential_oks(std::slice::from_ref(&url), &cred, 20);
    worker.worker.restart(logs.path()).unwrap();
    served += concurrent_oks(std::slice::from_ref(&url), &cred, 100);
    assert_eq!(served, 50);

    // A per-token rate limit with Cloudflare's rate limiting binding, named by the route.
    let routes = wasm_tests::WORKER_ROUTES.replace(
        r#"{"path":"/fifty","service":"fifty"}"#,
        r#"{"path":"/fifty","service":"fifty"},{"path":"/rated","service":"fifty","rate_limit":"L402_PER_TOKEN"}"#,
    );
    let vars = wasm_tests::worker_vars(
        &worker.upstream,
        &worker.service,
        &[("L402_ROUTES", &routes)],
    );
    let limiter = "[[ratelimits]]\nname = \"L402_PER_TOKEN\"\nnamespace_id = \"1002\"\nsimple = { limit = 3, period = 60 }\n";
    let limited = Workerd::start_with(logs.path(), &vars, true, limiter).unwrap();
    let rated = limited.url("/rated");
    let cred = buy(&rated, &worker.service);
    let other = buy(&rated, &worker.service);
    let statuses: Vec<u16> = (0..5)
        .map(|_| get(&rated, Some(&cred)).unwrap().status().as_u16())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(get(&rated, Some(&other)).unwrap().status(), 200);
    // Refused before the count: 47 left after three, 46 after this one.
    let resp = get(&limited.url("/fifty"), Some(&cred)).unwrap();
    assert_eq!((resp.status().as_u16(), remaining(&resp)), (200, Some(46)));
    // A route naming a limiter that is not bound fails closed.
    let routes = wasm_tests::WORKER_ROUTES.replace(
        r#"{"path":"/fifty","service":"fifty"}"#,
        r#"{"path":"/fifty","service":"fifty","rate_limit":"L402_NOT_BOUND"}"#,
    );
    let vars = wasm_tests::worker_vars(
        &worker.upstream,
        &worker.service,
        &[("L402_ROUTES", &routes)],
    );
    let unbound = Workerd::start(logs.path(), &vars, true).unwrap();
    let cred = buy(&unbound.url("/fifty"), &worker.service);
    assert_eq!(
        get(&unbound.url("/fifty"), Some(&cred)).unwrap().status(),
        503
    );

    // Envoy and the Worker selling the same bundles: both count at the service.
    let mut envoy = Stack::start(logs.path(), &filter_config(2000, &[]), 2).unwrap();
    let origin = testkit::echo::Echo::start().unwrap();
    let vars = wasm_tests::worker_vars(
        &origin,
        &envoy.service,
        &[("ALLOWANCE_STORE", "service"), PATIENT],
    );
    let shared = Workerd::start(logs.path(), &vars, true).unwrap();
    let urls = [envoy.envoy.url("/fifty"), shared.url("/fifty")];
    for round in 0..2 {
        let cred = buy(&urls[round], &envoy.service);
        assert_eq!(concurrent_oks(&urls, &cred, 200), 50, "round {round}");
    }
    // The shared store out of reach: metered tokens get 503, unmetered ones pass.
    let metered = buy(&urls[1], &envoy.service);
    let plain = buy(&shared.url("/maps"), &envoy.service);
    envoy.service.proc.stop();
    let resp = get(&urls[1], Some(&metered)).unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(
        get(&shared.url("/maps"), Some(&plain)).unwrap().status(),
        200
    );
}
