//! Reliability and security through both edges, against the real hosts: the attack matrix
//! (`wasm_tests::attacks`), faults in the invoice-service and the Lightning backend (a fault
//! proxy in front of each, and LNbits stopped for real), restarts, a key rotation drill, and a
//! bounded load run (`tests/load.rs`, alone in its binary so that it shares the machine with no
//! timing assertion). Every test ends by checking that no log it produced holds a secret.
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
use testkit::echo::Echo;
use testkit::envoy::{Envoy, EnvoyOptions};
use testkit::fault_proxy::{FaultProxy, Mode};
use testkit::invoice_service::InvoiceService;
use testkit::lnbits::Lnbits;
use testkit::workerd::Workerd;
use wasm_tests::attacks::{self, send_raw};
use wasm_tests::{
    KEYS, Lightning, Stack, WorkerStack, body_error, filter_config, get, now, parse_challenge,
    worker_vars,
};

/// The secret half of [`KEYS`].
const KEY_SECRET: &str = "1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a";

/// No `*.log` under `dir` contains any of `secrets`.
fn assert_logs_clean(dir: &Path, secrets: &[&str]) {
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for s in secrets.iter().filter(|s| !s.is_empty()) {
                assert!(
                    !text.contains(s),
                    "{} holds a secret ({}…)",
                    path.display(),
                    &s[..8.min(s.len())]
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no logs under {}", dir.display());
}

fn run_matrix(name: &str, port: u16, upstream: &Echo) {
    let matrix = attacks::matrix(now()).unwrap();
    assert!(matrix.len() >= 40, "{} attacks", matrix.len());
    let mut failures = Vec::new();
    let mut seen = upstream.count();
    for attack in &matrix {
        let r = send_raw(port, attack.method, attack.path, &attack.headers).unwrap();
        if let Err(e) = attacks::check(attack, &r) {
            failures.push(e);
        }
        if upstream.count() != seen {
            failures.push(format!("{}: reached the origin", attack.name));
            seen = upstream.count();
        }
    }
    // The control: a valid credential passes, and the origin sees our identity headers, not
    // the spoofed ones the client sent.
    let r = send_raw(
        port,
        "GET",
        "/weather",
        &[
            ("Authorization".into(), attacks::control(now()).unwrap()),
            ("X-L402-Token-Id".into(), b"spoofed".to_vec()),
            ("X-L402-Service".into(), b"maps".to_vec()),
        ],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{name}: the control request");
    let last = upstream.last().unwrap();
    assert_eq!(last.header("x-l402-service"), Some("weather"));
    assert_ne!(last.header("x-l402-token-id"), Some("spoofed"));
    assert_eq!(last.header("authorization"), None);
    assert!(
        failures.is_empty(),
        "{name}: {} of {} attacks answered wrongly:\n{}",
        failures.len(),
        matrix.len(),
        failures.join("\n")
    );
    println!("{name}: {} attacks, all answered as expected", matrix.len());
}

#[test]
fn attack_matrix_through_envoy() {
    let logs = tempfile::tempdir().unwrap();
    let deny = attacks::revoked_id(now()).unwrap();
    let stack = Stack::start(
        logs.path(),
        &filter_config(2000, &[("deny_list", serde_json::json!([deny]))]),
        2,
    )
    .unwrap();
    run_matrix("Envoy", stack.envoy.port, &stack.upstream);
    assert!(stack.envoy.proc.logs().len() < 1_000_000);
    assert_logs_clean(logs.path(), &[KEY_SECRET, &stack.service.edge_token]);
}

#[test]
fn attack_matrix_through_the_worker() {
    let logs = tempfile::tempdir().unwrap();
    let s = WorkerStack::start(logs.path(), &[]).unwrap();
    s.worker
        .kv_put(&attacks::revoked_id(now()).unwrap())
        .unwrap();
    run_matrix("Worker", s.worker.port, &s.upstream);
    assert_logs_clean(logs.path(), &[KEY_SECRET, &s.service.edge_token]);
}

/// A valid `weather` credential minted with [`KEYS`] (what a paid client holds).
fn paid(salt: u8) -> String {
    let p = Preimage::from_bytes([salt; 32]);
    let t = wasm_tests::token("weather", &["read"], Some(86_400), now(), &p, salt).unwrap();
    format!("L402 {t}:{}", p.expose_hex())
}

/// Unpaid → `want` within `max`, with `Retry-After` on 503; paid → 200; at every edge.
fn phase(label: &str, edges: &[(&str, String)], want: u16, max: Duration, auth: &str) {
    for (edge, url) in edges {
        let t = Instant::now();
        let r = get(url, None).unwrap();
        let took = t.elapsed();
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").is_some();
        assert_eq!(status, want, "{label} at {edge}: unpaid got {status}");
        assert!(took <= max, "{label} at {edge}: answered after {took:?}");
        if want == 503 {
            assert!(retry, "{label} at {edge}: 503 without Retry-After");
        }
        let r = get(url, Some(auth)).unwrap();
        assert_eq!(r.status(), 200, "{label} at {edge}: paid request");
        println!("{label:<44} {edge:<6} unpaid {status} in {took:>6.0?}, paid 200");
    }
}

#[test]
fn faults_in_the_service_and_the_lightning_backend() {
    let logs = tempfile::tempdir().unwrap();
    let mut lnbits = Lnbits::start(logs.path()).unwrap();
    let merchant = lnbits.wallet("merchant").unwrap();
    let lnbits_port: u16 = lnbits.url.rsplit(':').next().unwrap().parse().unwrap();
    let lnbits_proxy = FaultProxy::start(lnbits_port).unwrap();
    // No pool: every challenge reaches the node. The service gives the node 1 s.
    let backend = format!(
        "[backend]\nkind = \"lnbits\"\ntimeout = \"1s\"\n[backend.lnbits]\nurl = \"http://127.0.0.1:{}\"",
        lnbits_proxy.port
    );
    let service = InvoiceService::start_with_pool(
        logs.path(),
        KEYS,
        &backend,
        "[pool]\nenabled = false",
        &[("L402_LNBITS_INVOICE_KEY", &merchant.invoice_key)],
        None,
    )
    .unwrap();
    let service_proxy = FaultProxy::start(service.port).unwrap();
    let upstream = Echo::start().unwrap();
    // The edges give the service 1.5 s.
    let envoy = Envoy::start(
        logs.path(),
        &EnvoyOptions {
            upstream_port: upstream.port,
            invoice_port: service_proxy.port,
            filter_config: &filter_config(1500, &[]),
            env: vec![
                ("L402_KEYS", KEYS),
                ("L402_EDGE_TOKEN", &service.edge_token),
            ],
            concurrency: 2,
            normalize: true,
        },
    )
    .unwrap();
    let proxy_url = format!("http://127.0.0.1:{}", service_proxy.port);
    let worker = Workerd::start(
        logs.path(),
        &worker_vars(
            &upstream,
            &service,
            &[
                ("INVOICE_SERVICE_URL", &proxy_url),
                ("INVOICE_SERVICE_TIMEOUT_MS", "1500"),
            ],
        ),
        false,
    )
    .unwrap();
    let edges = [
        ("Envoy", envoy.url("/weather")),
        ("Worker", worker.url("/weather")),
    ];
    let auth = paid(0x21);
    // Timeout plus a margin for a loaded 2-core machine.
    let deadline = Duration::from_millis(1500 + 1000);
    let quick = Duration::from_secs(10);

    phase("all well", &edges, 402, quick, &auth);
    service_proxy.set(Mode::Delay(Duration::from_secs(3)));
    phase(
        "invoice-service slow (3 s > 1.5 s)",
        &edges,
        503,
        deadline,
        &auth,
    );
    service_proxy.set(Mode::Delay(Duration::from_millis(200)));
    phase("invoice-service slow (0.2 s)", &edges, 402, quick, &auth);
    service_proxy.set(Mode::Refuse);
    phase("invoice-service gone", &edges, 503, deadline, &auth);
    service_proxy.set(Mode::Pass);
    phase("invoice-service back", &edges, 402, quick, &auth);
    lnbits_proxy.set(Mode::Refuse);
    phase(
        "Lightning backend unreachable",
        &edges,
        503,
        deadline,
        &auth,
    );
    lnbits_proxy.set(Mode::Delay(Duration::from_secs(3)));
    phase(
        "Lightning backend slow (3 s > 1 s)",
        &edges,
        503,
        deadline,
        &auth,
    );
    lnbits_proxy.set(Mode::Pass);
    phase("Lightning backend back", &edges, 402, quick, &auth);
    lnbits.stop();
    phase("LNbits stopped", &edges, 503, deadline, &auth);
    lnbits.restart().unwrap();
    phase("LNbits restarted", &edges, 402, quick, &auth);

    assert_logs_clean(
        logs.path(),
        &[KEY_SECRET, &service.edge_token, &merchant.invoice_key],
    );
}

#[test]
fn restarts_lose_nothing() {
    let logs = tempfile::tempdir().unwrap();
    let ln = Lightning::start(logs.path(), 10_000).unwrap();
    let service = ln.service(logs.path(), None).unwrap();
    let port = service.port;
    let config = filter_config(5000, &[]);
    let mut stack = Stack::with_service(logs.path(), service, &config, 2).unwrap();
    let origin = Echo::start().unwrap();
    let vars = worker_vars(
        &origin,
        &stack.service,
        &[("INVOICE_SERVICE_TIMEOUT_MS", "5000")],
    );
    let mut worker = Workerd::start(logs.path(), &vars, false).unwrap();

    // Challenges open at both edges, then the invoice-service restarts.
    let open_envoy = parse_challenge(&get(&stack.envoy.url("/weather"), None).unwrap()).unwrap();
    let open_worker = parse_challenge(&get(&worker.url("/weather"), None).unwrap()).unwrap();
    stack.service.proc.stop();
    assert_eq!(
        get(&stack.envoy.url("/weather"), None).unwrap().status(),
        503
    );
    stack.service = ln.service(logs.path(), Some(port)).unwrap();

    // Paid after the restart, used after it, at both edges (tokens cross edges too).
    let mut creds = Vec::new();
    for offer in [&open_envoy, &open_worker] {
        let pre = ln.pay(&offer.invoice).unwrap();
        creds.push(format!("L402 {}:{pre}", offer.macaroon));
    }
    for c in &creds {
        assert_eq!(
            get(&stack.envoy.url("/weather"), Some(c)).unwrap().status(),
            200
        );
        assert_eq!(get(&worker.url("/weather"), Some(c)).unwrap().status(), 200);
    }
    assert_eq!(
        get(&stack.envoy.url("/weather"), None).unwrap().status(),
        402
    );

    // The edges restart with nothing to lose.
    let edge_token = stack.service.edge_token.clone();
    stack.envoy.proc.stop();
    stack.envoy = Envoy::start(
        logs.path(),
        &EnvoyOptions {
            upstream_port: stack.upstream.port,
            invoice_port: port,
            filter_config: &config,
            env: vec![("L402_KEYS", KEYS), ("L402_EDGE_TOKEN", &edge_token)],
            concurrency: 2,
            normalize: true,
        },
    )
    .unwrap();
    worker.proc.stop();
    worker = Workerd::start(logs.path(), &vars, false).unwrap();
    for c in &creds {
        assert_eq!(
            get(&stack.envoy.url("/weather"), Some(c)).unwrap().status(),
            200
        );
        assert_eq!(get(&worker.url("/weather"), Some(c)).unwrap().status(), 200);
    }
    let mut secrets = vec![
        KEY_SECRET,
        edge_token.as_str(),
        ln.merchant.invoice_key.as_str(),
    ];
    let pres: Vec<String> = creds
        .iter()
        .map(|c| c.rsplit(':').next().unwrap().to_owned())
        .collect();
    secrets.extend(pres.iter().map(String::as_str));
    assert_logs_clean(logs.path(), &secrets);
}

/// The invoice-service, Envoy and the Worker, all on `keys`.
struct Edges {
    service: InvoiceService,
    _origin: Echo,
    envoy: Envoy,
    worker: Workerd,
}

fn edges_with(logs: &Path, keys: &str) -> Edges {
    let service = InvoiceService::start_dev(logs, keys).unwrap();
    let origin = Echo::start().unwrap();
    let envoy = Envoy::start(
        logs,
        &EnvoyOptions {
            upstream_port: origin.port,
            invoice_port: service.port,
            filter_config: &filter_config(2000, &[]),
            env: vec![
                ("L402_KEYS", keys),
                ("L402_EDGE_TOKEN", &service.edge_token),
            ],
            concurrency: 1,
            normalize: true,
        },
    )
    .unwrap();
    let worker = Workerd::start(
        logs,
        &worker_vars(&origin, &service, &[("L402_KEYS", keys)]),
        false,
    )
    .unwrap();
    Edges {
        service,
        _origin: origin,
        envoy,
        worker,
    }
}

impl Edges {
    /// Buys a token through Envoy (dev backend).
    fn buy(&self) -> String {
        let offer = parse_challenge(&get(&self.envoy.url("/weather"), None).unwrap()).unwrap();
        let pre = self.service.dev_pay(&offer.invoice).unwrap();
        format!("L402 {}:{pre}", offer.macaroon)
    }

    /// `(status, reason)` at Envoy and at the Worker.
    fn check(&self, auth: &str) -> [(u16, String); 2] {
        [self.envoy.url("/weather"), self.worker.url("/weather")].map(|u| {
            let r = get(&u, Some(auth)).unwrap();
            (r.status().as_u16(), body_error(r))
        })
    }
}

fn key_id(auth: &str) -> u32 {
    let mac = auth
        .strip_prefix("L402 ")
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0;
    inspect(mac).unwrap().identifier.token_id.key_id().0
}

#[test]
fn key_rotation_drill_on_both_edges() {
    let logs = tempfile::tempdir().unwrap();
    let k1 = format!("1:{}", "a1".repeat(32));
    let k2 = format!("2:{}", "b2".repeat(32));
    let ok = [(200, String::new()), (200, String::new())];

    // Key 1 alone; a token bought under it.
    let e = edges_with(logs.path(), &k1);
    let t1 = e.buy();
    assert_eq!(key_id(&t1), 1);
    assert_eq!(e.check(&t1), ok);
    drop(e);

    // Key 2 added (key 1 still current): old tokens pass, new ones still use key 1.
    let e = edges_with(logs.path(), &format!("{k1},{k2}"));
    assert_eq!(e.check(&t1), ok);
    assert_eq!(key_id(&e.buy()), 1);
    drop(e);

    // Key 2 made current: new tokens use it; both pass.
    let e = edges_with(logs.path(), &format!("{k2},{k1}"));
    let t2 = e.buy();
    assert_eq!(key_id(&t2), 2);
    assert_eq!(e.check(&t1), ok);
    assert_eq!(e.check(&t2), ok);
    drop(e);

    // Key 1 removed: its tokens fail as unknown_key, key 2's pass.
    let e = edges_with(logs.path(), &k2);
    let gone = (402, "unknown_key".to_owned());
    assert_eq!(e.check(&t1), [gone.clone(), gone]);
    assert_eq!(e.check(&t2), ok);
    let token = e.service.edge_token.clone();
    drop(e);
    assert_logs_clean(logs.path(), &[&"a1".repeat(16), &"b2".repeat(16), &token]);
}
