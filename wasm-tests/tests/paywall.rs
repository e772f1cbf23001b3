//! Buyers who are not L402 libraries (PROTOCOL.md §13), through real Envoy and workerd: a
//! person in headless Chromium opens a paid URL, sees the paywall page, the page's invoice is
//! paid (dev signer, LNbits), the page reloads by itself and shows the origin's answer; the
//! page passes axe-core with no serious or critical violation; with JavaScript off, the page's
//! button does what the script would. The cookie the page leaves is a credential held to every
//! rule and never reaches the origin. The discovery documents validate (JSON Schema, an
//! OpenAPI 3.1 validator) and agree with the catalog and with the invoices the edges issue.
//!
//! Screenshots of the page before and after payment are written to
//! `$CARGO_TARGET_TMPDIR/paywall/` (docs/paywall-*.png are two of them).
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::echo::Echo;
use testkit::invoice_service::InvoiceService;
use wasm_tests::browser::Browser;
use wasm_tests::{Lightning, Stack, WorkerStack, filter_config, get, parse_challenge};

/// What the filter publishes in its manifest (its routes are Envoy's, by metadata).
fn publish() -> Value {
    json!([
        {"path": "/weather", "service": "weather", "capabilities": "read"},
        {"path": "/maps", "service": "maps"},
        {"path": "/five", "service": "five"},
    ])
}

fn envoy(log_dir: &Path, service: InvoiceService) -> Stack {
    let config = filter_config(
        5000,
        &[
            ("publish", publish()),
            ("openapi_path", json!("/openapi.json")),
        ],
    );
    Stack::with_service(log_dir, service, &config, 1).unwrap()
}

fn worker(log_dir: &Path, service: InvoiceService) -> WorkerStack {
    WorkerStack::with_service(
        log_dir,
        service,
        &[
            ("OPENAPI_PATH", "/openapi.json"),
            ("INVOICE_SERVICE_TIMEOUT_MS", "5000"),
        ],
    )
    .unwrap()
}

fn screens() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("paywall")
}

fn axe_source() -> String {
    let dir =
        testkit::artifacts::installed("L402_INTEROP_DIR", "install-interop-clients.sh").unwrap();
    std::fs::read_to_string(dir.join("node_modules/axe-core/axe.min.js")).unwrap()
}

/// Opens `base`'s `/weather/today?x=1` as a person would, checks the page, has `pay` pay its
/// invoice, and waits for the page to reload by itself into the origin's answer. `name` names
/// the screenshots.
fn buy_in_browser(
    name: &str,
    base: &str,
    upstream: &Echo,
    logs: &Path,
    pay: &dyn Fn(&str) -> String,
) {
    let browser = Browser::start(logs, true).unwrap();
    // A wallet extension, as far as the page can tell: it records what it was asked to pay.
    browser
        .before_each_page(
            "window.webln = {enable: () => Promise.resolve(), \
             sendPayment: (inv) => { window.__paid = inv; return Promise.resolve({preimage: ''}); }};",
        )
        .unwrap();
    let url = format!("{base}/weather/today?x=1");
    browser.open(&url).unwrap();
    assert_eq!(
        browser.title().unwrap(),
        "Payment required: weather",
        "{name}"
    );
    let text = browser.text().unwrap();
    assert!(text.contains("10 sat"), "{name}: the price: {text}");
    assert!(text.contains("1 hour"), "{name}: what it buys: {text}");
    let invoice = browser.property("#invoice", "value").unwrap();
    assert!(invoice.starts_with("lnbc"), "{name}: {invoice}");
    // The QR code is an inline SVG of the invoice, drawn in Wasm.
    let svg = browser
        .run(
            "return document.querySelector('figure svg').outerHTML;",
            json!([]),
        )
        .unwrap();
    assert!(svg.as_str().unwrap().contains("<path"), "{name}");
    let violations = browser.axe(&axe_source()).unwrap();
    assert!(violations.is_empty(), "{name}: axe-core: {violations:?}");
    browser
        .screenshot(&screens().join(format!("{name}-before.png")))
        .unwrap();
    // WebLN: the button shows where a wallet is, and hands it this invoice.
    browser.click("#webln").unwrap();
    let asked = browser
        .run("return window.__paid || '';", json!([]))
        .unwrap();
    assert_eq!(
        asked.as_str(),
        Some(invoice.as_str()),
        "{name}: WebLN got the invoice"
    );
    let seen_before = upstream.count();
    pay(&invoice);
    let text = browser
        .wait_for_text("\"upstream\"", Duration::from_secs(30))
        .unwrap();
    assert!(text.contains("/weather/today"), "{name}: {text}");
    browser
        .screenshot(&screens().join(format!("{name}-after.png")))
        .unwrap();
    assert!(
        upstream.count() > seen_before,
        "{name}: the origin answered"
    );
    // The cookie: HttpOnly, Lax, scoped to the route; the origin never saw it.
    let cookies = browser.cookies().unwrap();
    let credential = cookies.iter().find(|c| c["name"] == "L402").unwrap();
    assert_eq!(credential["httpOnly"], true, "{name}");
    assert_eq!(credential["sameSite"], "Lax", "{name}");
    assert_eq!(credential["path"], "/weather", "{name}");
    for seen in upstream.seen() {
        assert!(
            !seen.header("cookie").unwrap_or_default().contains("L402"),
            "{name}: an edge cookie reached the origin"
        );
    }
    // Back another day: the cookie is the credential, no new invoice.
    browser.open(&format!("{base}/weather/tomorrow")).unwrap();
    let text = browser.text().unwrap();
    assert!(text.contains("/weather/tomorrow"), "{name}: {text}");
}

#[test]
fn paywall_in_a_browser_on_both_edges_with_the_dev_signer() {
    let logs = tempfile::tempdir().unwrap();
    let stack = envoy(
        logs.path(),
        InvoiceService::start_dev(logs.path(), wasm_tests::KEYS).unwrap(),
    );
    let pay = |inv: &str| stack.service.dev_pay(inv).unwrap();
    buy_in_browser(
        "envoy-dev",
        &stack.envoy.url(""),
        &stack.upstream,
        logs.path(),
        &pay,
    );
    let ws = worker(
        logs.path(),
        InvoiceService::start_dev(logs.path(), wasm_tests::KEYS).unwrap(),
    );
    let pay = |inv: &str| ws.service.dev_pay(inv).unwrap();
    buy_in_browser(
        "worker-dev",
        &ws.worker.url(""),
        &ws.upstream,
        logs.path(),
        &pay,
    );
}

#[test]
fn paywall_in_a_browser_on_both_edges_with_lnbits() {
    let logs = tempfile::tempdir().unwrap();
    let ln = Lightning::start(logs.path(), 1_000).unwrap();
    let pay = |inv: &str| ln.pay(inv).unwrap();
    let stack = envoy(logs.path(), ln.service(logs.path(), None).unwrap());
    buy_in_browser(
        "envoy-lnbits",
        &stack.envoy.url(""),
        &stack.upstream,
        logs.path(),
        &pay,
    );
    let ws = worker(logs.path(), ln.service(logs.path(), None).unwrap());
    buy_in_browser(
        "worker-lnbits",
        &ws.worker.url(""),
        &ws.upstream,
        logs.path(),
        &pay,
    );
}

#[test]
fn paywall_without_javascript_works_by_its_button() {
    let logs = tempfile::tempdir().unwrap();
    let stack = envoy(
        logs.path(),
        InvoiceService::start_dev(logs.path(), wasm_tests::KEYS).unwrap(),
    );
    let browser = Browser::start(logs.path(), false).unwrap();
    browser.open(&stack.envoy.url("/weather/x")).unwrap();
    assert_eq!(browser.title().unwrap(), "Payment required: weather");
    let invoice = browser.property("#invoice", "value").unwrap();
    // Not paid yet: the status page says so and offers to check again.
    browser.click("form button[type=submit]").unwrap();
    assert_eq!(
        browser
            .wait_for_title("Not paid yet", Duration::from_secs(15))
            .unwrap(),
        "Not paid yet"
    );
    stack.service.dev_pay(&invoice).unwrap();
    browser.click("form button[type=submit]").unwrap();
    let text = browser
        .wait_for_text("\"upstream\"", Duration::from_secs(15))
        .unwrap();
    assert!(text.contains("/weather/x"), "{text}");
}

/// The discovery documents an edge at `base` serves, validated; their prices, the catalog's.
fn check_discovery(name: &str, base: &str, service: &InvoiceService, dir: &Path) {
    let resp = get(&format!("{base}/.well-known/l402.json"), None).unwrap();
    assert_eq!(resp.status(), 200, "{name}");
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "*",
        "{name}: browsers' agents may read it"
    );
    let manifest: Value = resp.json().unwrap();
    let openapi: Value = get(&format!("{base}/openapi.json"), None)
        .unwrap()
        .json()
        .unwrap();
    let (m, o) = (
        dir.join(format!("{name}-manifest.json")),
        dir.join(format!("{name}-openapi.json")),
    );
    std::fs::write(&m, manifest.to_string()).unwrap();
    std::fs::write(&o, openapi.to_string()).unwrap();
    let interop =
        testkit::artifacts::installed("L402_INTEROP_DIR", "install-interop-clients.sh").unwrap();
    let root = testkit::repo_root();
    let out = Command::new(interop.join("venv/bin/python"))
        .arg(root.join("wasm-tests/interop/validate_discovery.py"))
        .arg(root.join("docs/schemas/l402-manifest.schema.json"))
        .args([&m, &o])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Prices shown are prices charged: the catalog's, and each path's 402 invoice.
    let catalog = l402_core::Catalog::parse(
        testkit::post_json(
            &format!("{}{}", service.url(), l402_core::CATALOG_PATH),
            &[("authorization", &format!("Bearer {}", service.edge_token))],
            &json!({}),
        )
        .unwrap()
        .1
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let mut checked = 0;
    for s in manifest["services"].as_array().unwrap() {
        let sold = catalog.service(s["name"].as_str().unwrap()).unwrap();
        for r in s["resources"].as_array().unwrap() {
            let price = r["pricing"]["price_msat"].as_u64().unwrap();
            assert_eq!(Some(price), sold.price_sat.map(|p| p * 1000), "{name}");
            let path = r["path"].as_str().unwrap();
            let resp = get(&format!("{base}{path}"), None).unwrap();
            assert_eq!(resp.status(), 402, "{name} {path}");
            assert_eq!(
                resp.headers()["link"],
                l402_core::MANIFEST_LINK,
                "{name}: every 402 links the manifest"
            );
            let offer = parse_challenge(&resp).unwrap();
            assert_eq!(
                l402_core::bolt11_amount_msat(&offer.invoice),
                Some(price),
                "{name} {path}: the invoice charges what the manifest says"
            );
            let op = &openapi["paths"][path]["get"];
            assert_eq!(
                op["x-payment-info"]["offers"][0]["amount"],
                json!((price / 1000).to_string()),
                "{name} {path}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "{name}: {manifest}");
}

#[test]
fn discovery_documents_validate_and_agree_with_the_catalog() {
    let logs = tempfile::tempdir().unwrap();
    let stack = envoy(
        logs.path(),
        InvoiceService::start_dev(logs.path(), wasm_tests::KEYS).unwrap(),
    );
    check_discovery("envoy", &stack.envoy.url(""), &stack.service, logs.path());
    let ws = worker(
        logs.path(),
        InvoiceService::start_dev(logs.path(), wasm_tests::KEYS).unwrap(),
    );
    check_discovery("worker", &ws.worker.url(""), &ws.service, logs.path());
    // A machine client's 402 is today's: JSON, no page, no cookie.
    let resp = get(&ws.worker.url("/weather"), None).unwrap();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert!(resp.headers().get("set-cookie").is_none());
}
