//! The boundary (issue 14): *only what was paid for reaches the origin*, through both edges as
//! a new user deploys them, in front of an origin that normalizes paths and header names the
//! way nginx, Go, Express, Spring and CGI frameworks do.
//!
//! Every case is sent byte for byte through Envoy with the documented settings
//! (`envoy.example.yaml`: `normalize_path`, `merge_slashes`, escaped slashes and underscore
//! headers refused), through Envoy *without* them (an operator who forgot: the filter alone must
//! fail closed), and through the Worker. For every request that reaches the origin, the origin
//! reads it as a normalizing server would and checks it: a request for a sold path must carry
//! an `x-l402-context` the origin can verify (signed for that method, path and service), and no
//! `x-l402-*` header may reach it under any spelling unless the edge set it.
//!
//! The table it prints is docs/OPERATIONS.md's boundary matrix.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::path::Path;
use std::process::Command;

use l402_core::{ContextKey, Preimage, verify_context};
use testkit::echo::{Echo, REDIRECT_PATH, Seen};
use testkit::envoy::{Envoy, EnvoyOptions};
use testkit::invoice_service::InvoiceService;
use testkit::workerd::{Workerd, WorkerdKvDown};
use wasm_tests::attacks::{RawResponse, send_raw_bytes};
use wasm_tests::{KEYS, WORKER_ROUTES, filter_config, now, worker_vars};

/// The key the edges sign the context with and the origin checks it with (test-only).
const CONTEXT_KEY: &str = "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c";

/// One edge in front of its own normalizing origin.
struct Edge {
    name: &'static str,
    port: u16,
    origin: Echo,
    _service: InvoiceService,
    _envoy: Option<Envoy>,
    _worker: Option<Workerd>,
}

fn envoy(
    logs: &Path,
    name: &'static str,
    normalize: bool,
    extra: &[(&str, serde_json::Value)],
) -> Edge {
    let service = InvoiceService::start_dev(logs, KEYS).unwrap();
    let origin = Echo::start().unwrap();
    let mut fields = vec![("context_key_env", serde_json::json!("L402_CONTEXT_KEY"))];
    fields.extend(extra.iter().cloned());
    let envoy = Envoy::start(
        logs,
        &EnvoyOptions {
            upstream_port: origin.port,
            invoice_port: service.port,
            filter_config: &filter_config(2000, &fields),
            env: vec![
                ("L402_KEYS", KEYS),
                ("L402_EDGE_TOKEN", &service.edge_token),
                ("L402_CONTEXT_KEY", CONTEXT_KEY),
            ],
            concurrency: 1,
            normalize,
        },
    )
    .unwrap();
    Edge {
        name,
        port: envoy.port,
        origin,
        _service: service,
        _envoy: Some(envoy),
        _worker: None,
    }
}

fn worker(logs: &Path, extra: &[(&str, &str)]) -> Edge {
    let service = InvoiceService::start_dev(logs, KEYS).unwrap();
    let origin = Echo::start().unwrap();
    let mut vars = vec![("L402_CONTEXT_KEY", CONTEXT_KEY)];
    vars.extend_from_slice(extra);
    let w = Workerd::start(logs, &worker_vars(&origin, &service, &vars), true).unwrap();
    Edge {
        name: "Worker",
        port: w.port,
        origin,
        _service: service,
        _envoy: None,
        _worker: Some(w),
    }
}

/// How a normalizing origin reads a path: every escape decoded (nginx decodes `%2F` too),
/// `\` as `/` (Windows, WHATWG), `;` parameters dropped (Tomcat, Spring), slashes merged, dot
/// segments resolved (clamped at the root). Invalid escapes stay as they are.
fn origin_reads(path_and_query: &str) -> String {
    let path = path_and_query
        .split('?')
        .next()
        .unwrap_or_default()
        .as_bytes();
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if path[i] == b'%'
            && let (Some(h), Some(l)) = (
                path.get(i + 1).copied().and_then(hex),
                path.get(i + 2).copied().and_then(hex),
            )
        {
            decoded.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        decoded.push(path[i]);
        i += 1;
    }
    let text = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        let seg = seg.split(';').next().unwrap_or_default();
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

/// The sold route (service, capabilities) an origin path falls under, per the test routes.
fn sold(reading: &str) -> Option<(String, String)> {
    let routes: Vec<serde_json::Value> = serde_json::from_str(WORKER_ROUTES).unwrap();
    routes.iter().find_map(|r| {
        let prefix = r["path"].as_str().unwrap();
        l402_core::under_prefix(reading, prefix).then(|| {
            (
                r["service"].as_str().unwrap().to_owned(),
                r["capabilities"].as_str().unwrap_or_default().to_owned(),
            )
        })
    })
}

/// A header name as CGI, Rack, Django and PHP read it.
fn framework_name(n: &str) -> String {
    n.to_ascii_lowercase().replace('_', "-")
}

/// What the origin says of one request it received: `Ok(description)` or `Err(leak)`.
fn judge(seen: &Seen) -> Result<String, String> {
    let key: ContextKey = CONTEXT_KEY.parse().unwrap();
    let reading = origin_reads(&seen.path);
    let ctx = seen
        .header("x-l402-context")
        .map(|v| verify_context(&key, v, &seen.method, &reading, now(), 5));
    let ours: Vec<&(String, String)> = seen
        .headers
        .iter()
        .filter(|(n, _)| framework_name(n).starts_with("x-l402-"))
        .collect();
    let paid = matches!(ctx, Some(Ok(_)));
    for (n, v) in &ours {
        let exact = matches!(
            n.as_str(),
            "x-l402-token-id" | "x-l402-service" | "x-l402-context"
        );
        let once = ours.iter().filter(|(m, _)| m == n).count() == 1;
        if !paid || !exact || !once {
            return Err(format!(
                "{} {}: the origin got {n}: {v}",
                seen.method, seen.path
            ));
        }
    }
    let what = format!("{} {}", seen.method, seen.path);
    match sold(&reading) {
        None => Ok(format!("{what} (unsold)")),
        Some(_)
            if seen.method == "OPTIONS"
                && seen.header("origin").is_some()
                && seen.header("access-control-request-method").is_some() =>
        {
            Ok(format!("{what} (preflight)"))
        }
        Some((service, caps)) => match ctx {
            Some(Ok(c)) => {
                let granted = c.capabilities.clone();
                let caps_ok = caps
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .all(|need| granted.as_ref().is_none_or(|g| g.iter().any(|x| x == need)));
                if c.service == service
                    && caps_ok
                    && seen.header("x-l402-service") == Some(&c.service)
                {
                    Ok(format!("{what} (paid: {service})"))
                } else {
                    Err(format!(
                        "{what}: sold as {service}, context for {}",
                        c.service
                    ))
                }
            }
            Some(Err(e)) => Err(format!("{what}: sold as {service}, context refused: {e}")),
            None => Err(format!(
                "{what}: sold as {service}, reached the origin unpaid"
            )),
        },
    }
}

struct Case {
    name: String,
    method: &'static str,
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

fn case(name: &str, method: &'static str, target: &[u8], headers: &[(&str, &[u8])]) -> Case {
    Case {
        name: name.to_owned(),
        method,
        target: target.to_vec(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
            .collect(),
        body: None,
    }
}

fn weather_token(salt: u8) -> Vec<u8> {
    let p = Preimage::from_bytes([salt; 32]);
    let t = wasm_tests::token("weather", &["read"], Some(86_400), now(), &p, salt).unwrap();
    format!("L402 {t}:{}", p.expose_hex()).into_bytes()
}

fn cases() -> Vec<Case> {
    let paid = weather_token(41);
    let auth: &[(&str, &[u8])] = &[("Authorization", &paid)];
    let pre: &[(&str, &[u8])] = &[
        ("Origin", b"https://app.example"),
        ("Access-Control-Request-Method", b"GET"),
    ];
    let mut v = vec![
        case("control: /weather, unpaid", "GET", b"/weather", &[]),
        case("control: /weather, paid", "GET", b"/weather", auth),
        case("//weather", "GET", b"//weather", &[]),
        case("/./weather", "GET", b"/./weather", &[]),
        case("/x/../weather", "GET", b"/x/../weather", &[]),
        case("/%77eather", "GET", b"/%77eather", &[]),
        case("/%2e%2e/weather", "GET", b"/%2e%2e/weather", &[]),
        case("/free%2F..%2Fweather", "GET", b"/free%2F..%2Fweather", &[]),
        case("/free/..%2fweather", "GET", b"/free/..%2fweather", &[]),
        case("/%2Fweather", "GET", b"/%2Fweather", &[]),
        case("/free;/../weather", "GET", b"/free;/../weather", &[]),
        case("/weather;v=1", "GET", b"/weather;v=1", &[]),
        case("/free\\..\\weather", "GET", b"/free\\..\\weather", &[]),
        case(
            "/weatherman (not under /weather)",
            "GET",
            b"/weatherman",
            &[],
        ),
        case(
            "/weather/../admin, weather token",
            "GET",
            b"/weather/../admin",
            auth,
        ),
        case(
            "/weather\\xff (non-UTF-8 path)",
            "GET",
            b"/weather\xff",
            &[],
        ),
        case(
            "/weather%ff (escaped non-UTF-8)",
            "GET",
            b"/weather%ff",
            &[],
        ),
        case(
            "/free?q=\\xff (non-UTF-8 query)",
            "GET",
            b"/free?q=\xff",
            &[],
        ),
        case(
            "preflight: OPTIONS + Origin + ACRM",
            "OPTIONS",
            b"/weather",
            pre,
        ),
        case(
            "preflight without Origin",
            "OPTIONS",
            b"/weather",
            &[("Access-Control-Request-Method", b"GET")],
        ),
        case(
            "x_l402_token_id on a paid request",
            "GET",
            b"/weather",
            &[("Authorization", &paid), ("x_l402_token_id", b"spoofed")],
        ),
        case(
            "X-L402-Service: maps on a paid request",
            "GET",
            b"/weather",
            &[("Authorization", &paid), ("X-L402-Service", b"maps")],
        ),
        case(
            "X-L402-Context: forged on a paid request",
            "GET",
            b"/weather",
            &[("Authorization", &paid), ("X-L402-Context", b"a.b.c")],
        ),
        case(
            "x_l402_service on an unsold path",
            "GET",
            b"/free",
            &[("x_l402_service", b"weather"), ("X-L402-TOKEN-ID", b"1")],
        ),
        case(
            "X-L402-Service on an unsold path",
            "GET",
            b"/free",
            &[("X-L402-Service", b"weather")],
        ),
        case(
            "unsold path redirecting to a sold one",
            "GET",
            REDIRECT_PATH.as_bytes(),
            &[],
        ),
        case(
            "route metadata naming no service",
            "GET",
            b"/broken-sale",
            &[],
        ),
    ];
    let mut with_body = case("preflight with a body", "OPTIONS", b"/weather", pre);
    with_body.body = Some(b"hello".to_vec());
    v.push(with_body);
    v
}

/// `"<status> <reason>"`, the host's own body when it is not ours.
fn answer(r: &RawResponse) -> String {
    match r.reason() {
        Some(reason) => format!("{} {reason}", r.status),
        None if r.status == 0 => "closed".into(),
        None => format!("{} (host)", r.status),
    }
}

/// The answers each edge must give, by case: `(documented Envoy, Envoy without normalization,
/// Worker)`. `200 (host)` is the origin's own answer; `302 (host)` the origin's redirect.
fn expected(name: &str) -> [&'static str; 3] {
    let nc = "400 path_not_canonical";
    match name {
        "control: /weather, unpaid" => ["402 missing_credential"; 3],
        "control: /weather, paid" => ["200 (host)"; 3],
        "//weather" => ["402 missing_credential", nc, nc],
        "/./weather" | "/x/../weather" => ["402 missing_credential", nc, "402 missing_credential"],
        "/%77eather" => ["402 missing_credential", nc, nc],
        "/%2e%2e/weather" => [
            "402 missing_credential",
            "400 path_above_root",
            "402 missing_credential",
        ],
        "/free%2F..%2Fweather" | "/free/..%2fweather" | "/%2Fweather" => [
            "400 (host)",
            "400 path_encoded_separator",
            "400 path_encoded_separator",
        ],
        // Envoy and the WHATWG parser both resolve `free;/..` as a segment: /weather.
        "/free;/../weather" => [
            "402 missing_credential",
            "400 path_parameter",
            "402 missing_credential",
        ],
        "/weather;v=1" => ["400 path_parameter"; 3],
        // Envoy's normalize_path and the WHATWG parser read `\` as `/`; the filter alone refuses it.
        "/free\\..\\weather" => [
            "402 missing_credential",
            "400 path_backslash",
            "402 missing_credential",
        ],
        "/weatherman (not under /weather)" => ["200 (host)"; 3],
        "/weather/../admin, weather token" => {
            ["402 service_not_allowed", nc, "402 service_not_allowed"]
        }
        "/weather\\xff (non-UTF-8 path)" => ["400 (host)"; 3],
        "/weather%ff (escaped non-UTF-8)" => ["400 path_not_utf8"; 3],
        "/free?q=\\xff (non-UTF-8 query)" => ["400 (host)"; 3],
        "preflight: OPTIONS + Origin + ACRM" => ["200 (host)"; 3],
        "preflight without Origin" | "preflight with a body" => ["402 missing_credential"; 3],
        "x_l402_token_id on a paid request" => ["400 (host)", "200 (host)", "200 (host)"],
        "X-L402-Service: maps on a paid request" | "X-L402-Context: forged on a paid request" => {
            ["200 (host)"; 3]
        }
        "x_l402_service on an unsold path" => ["400 (host)", "200 (host)", "200 (host)"],
        "X-L402-Service on an unsold path" => ["200 (host)"; 3],
        "unsold path redirecting to a sold one" => ["302 (host)"; 3],
        "route metadata naming no service" => [
            "503 route_metadata_malformed",
            "503 route_metadata_malformed",
            "200 (host)",
        ],
        other => panic!("no expectation for {other}"),
    }
}

#[test]
fn nothing_unpaid_reaches_a_normalizing_origin() {
    let logs = tempfile::tempdir().unwrap();
    let edges = [
        envoy(logs.path(), "Envoy (documented config)", true, &[]),
        envoy(logs.path(), "Envoy, no normalization", false, &[]),
        worker(logs.path(), &[]),
    ];
    let mut table = String::from(
        "| case | Envoy (documented config) | Envoy, normalization forgotten | Worker |\n|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for c in cases() {
        let want = expected(&c.name);
        let mut row = format!("| `{}` |", c.name.replace('|', "\\|"));
        for (i, edge) in edges.iter().enumerate() {
            let before = edge.origin.count();
            let r = send_raw_bytes(
                edge.port,
                c.method,
                &c.target,
                &c.headers,
                c.body.as_deref(),
            )
            .unwrap();
            let got = answer(&r);
            let seen = edge.origin.seen();
            let new = &seen[seen.len() - (edge.origin.count() - before).min(seen.len())..];
            let mut saw = Vec::new();
            for s in new {
                match judge(s) {
                    Ok(d) => saw.push(d),
                    Err(leak) => failures.push(format!("{} / {}: LEAK {leak}", edge.name, c.name)),
                }
            }
            if got != want[i] {
                failures.push(format!(
                    "{} / {}: answered {got}, expected {}",
                    edge.name, c.name, want[i]
                ));
            }
            let saw = if saw.is_empty() {
                "nothing".to_owned()
            } else {
                saw.join("; ")
            };
            row.push_str(&format!(" {got}; origin: {saw} |"));
        }
        table.push_str(&row);
        table.push('\n');
    }
    println!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The Worker's KV deny-list unreachable: paid requests get 503, never a pass; unpaid ones
/// still get their challenge (KV is consulted only for tokens that verify).
#[test]
fn a_kv_outage_fails_closed() {
    let logs = tempfile::tempdir().unwrap();
    let service = InvoiceService::start_dev(logs.path(), KEYS).unwrap();
    let origin = Echo::start().unwrap();
    let w = WorkerdKvDown::start(logs.path(), &worker_vars(&origin, &service, &[])).unwrap();
    let before = origin.count(); // the readiness probe is an unsold request
    let paid = weather_token(42);
    let r = send_raw_bytes(
        w.port,
        "GET",
        b"/weather",
        &[("Authorization".into(), paid)],
        None,
    )
    .unwrap();
    assert_eq!(answer(&r), "503 revocation_unavailable");
    assert!(r.header("retry-after").is_some());
    let r = send_raw_bytes(w.port, "GET", b"/weather", &[], None).unwrap();
    assert_eq!(answer(&r), "402 missing_credential");
    assert_eq!(origin.count(), before, "nothing reached the origin");
    let r = send_raw_bytes(w.port, "GET", b"/free", &[], None).unwrap();
    assert_eq!(r.status, 200);
}

/// A bad Worker variable: clients get a bare 503; only the log names the variable.
#[test]
fn a_bad_worker_variable_is_named_in_the_log_only() {
    let logs = tempfile::tempdir().unwrap();
    let e = worker(logs.path(), &[("RETRY_AFTER_SECS", "0")]);
    let r = send_raw_bytes(e.port, "GET", b"/weather", &[], None).unwrap();
    assert_eq!(answer(&r), "503 edge_misconfigured");
    assert!(!r.body.contains("RETRY_AFTER_SECS"), "{}", r.body);
    let w = e._worker.as_ref().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        w.proc.logs().contains("RETRY_AFTER_SECS"),
        "{}",
        w.proc.logs()
    );
    assert_eq!(e.origin.count(), 0);
}

/// Unpaid requests are bounded per instance: past the burst, 503 with `Retry-After` and no
/// call to the invoice-service.
#[test]
fn challenge_floods_are_bounded_on_both_edges() {
    let logs = tempfile::tempdir().unwrap();
    let bound = [
        ("challenges_per_second", serde_json::json!(1)),
        ("challenge_burst", serde_json::json!(3)),
    ];
    let edges = [
        envoy(logs.path(), "Envoy", true, &bound),
        worker(
            logs.path(),
            &[("CHALLENGES_PER_SECOND", "1"), ("CHALLENGE_BURST", "3")],
        ),
    ];
    for e in &edges {
        let start = std::time::Instant::now();
        let answers: Vec<String> = (0..20)
            .map(|_| answer(&send_raw_bytes(e.port, "GET", b"/weather", &[], None).unwrap()))
            .collect();
        let refilled = start.elapsed().as_secs() as usize + 1;
        let challenged = answers
            .iter()
            .filter(|a| *a == "402 missing_credential")
            .count();
        let limited = answers
            .iter()
            .filter(|a| *a == "503 challenge_rate_limited")
            .count();
        // The burst of 3, plus at most one a second while the 20 requests ran.
        assert!(
            challenged >= 3 && challenged <= 3 + refilled && challenged + limited == 20,
            "{}: {answers:?} in {:?}",
            e.name,
            start.elapsed()
        );
        let paid = weather_token(43);
        let r = send_raw_bytes(
            e.port,
            "GET",
            b"/weather",
            &[("Authorization".into(), paid)],
            None,
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}: paid requests are never bounded", e.name);
    }
}

/// Cloudflare's rate limiting binding, when bound, limits challenges per client address.
#[test]
fn the_workers_per_client_limiter_is_cloudflares_binding() {
    let logs = tempfile::tempdir().unwrap();
    let service = InvoiceService::start_dev(logs.path(), KEYS).unwrap();
    let origin = Echo::start().unwrap();
    let limiter = "[[ratelimits]]\nname = \"L402_CHALLENGE_LIMITER\"\nnamespace_id = \"1001\"\nsimple = { limit = 2, period = 60 }\n";
    let w = Workerd::start_with(
        logs.path(),
        &worker_vars(&origin, &service, &[]),
        false,
        limiter,
    )
    .unwrap();
    let answers: Vec<String> = (0..5)
        .map(|_| answer(&send_raw_bytes(w.port, "GET", b"/weather", &[], None).unwrap()))
        .collect();
    assert_eq!(
        &answers[..2],
        ["402 missing_credential", "402 missing_credential"],
        "{answers:?}"
    );
    assert!(
        answers[2..]
            .iter()
            .all(|a| a == "503 challenge_rate_limited"),
        "{answers:?}"
    );
    let r = send_raw_bytes(
        w.port,
        "GET",
        b"/weather",
        &[("Authorization".into(), weather_token(45))],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "paid requests never consult the limiter");
}

/// The documented origin-side check (docs/examples/verify_context.py, PyJWT) accepts the
/// context an edge signed for a request and refuses it for another path.
#[test]
fn origins_verify_the_context_with_a_stock_jwt_library() {
    let logs = tempfile::tempdir().unwrap();
    let e = envoy(logs.path(), "Envoy", true, &[]);
    let paid = weather_token(44);
    let r = send_raw_bytes(
        e.port,
        "GET",
        b"/weather/today?x=1",
        &[("Authorization".into(), paid)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let ctx = e
        .origin
        .last()
        .unwrap()
        .header("x-l402-context")
        .unwrap()
        .to_owned();
    let dir =
        testkit::artifacts::installed("L402_INTEROP_DIR", "install-interop-clients.sh").unwrap();
    let script = testkit::repo_root().join("docs/examples/verify_context.py");
    let run = |path: &str| {
        Command::new(dir.join("venv/bin/python"))
            .arg(&script)
            .args([CONTEXT_KEY, "GET", path, &ctx])
            .output()
            .unwrap()
    };
    let ok = run("/weather/today");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let claims: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(claims["svc"], "weather");
    assert_eq!(claims["caps"], serde_json::json!(["read"]));
    let other = run("/admin");
    assert!(!other.status.success());
}
