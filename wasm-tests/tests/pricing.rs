//! Prices per request end to end: both edges pass the method and the canonical path with every
//! challenge request, the invoice-service asks a real HTTP pricer, and the invoice carries its
//! price; the pricer gone, the catalog price applies.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use reqwest::blocking::Response;
use testkit::invoice_service::InvoiceService;
use testkit::pricer::Pricer;
use wasm_tests::{KEYS, Stack, WorkerStack, client, filter_config, parse_challenge};

fn catalog(pricer: &str) -> String {
    format!(
        r#"
[[services]]
name = "quote"
price_sat = 4
lifetime = "1h"
[services.pricing]
url = "{pricer}"
timeout = "500ms"
max_price_sat = 100
on_error = "catalog"
"#
    )
}

fn service(log: &std::path::Path, pricer: &str) -> InvoiceService {
    InvoiceService::start_with_catalog(
        log,
        KEYS,
        "[backend]\nkind = \"dev\"",
        "[pool]\ndepth = 2",
        &catalog(pricer),
        &[],
        None,
    )
    .unwrap()
}

/// The invoice's amount as its human-readable part writes it (`lnbcrt130n1…` is 13 sat).
fn amount(resp: &Response) -> String {
    let offer = parse_challenge(resp).unwrap();
    let rest = offer.invoice.strip_prefix("lnbcrt").unwrap().to_owned();
    rest[..rest.rfind('1').unwrap()].to_owned()
}

/// Sends `method path` through an edge at `base` and checks the price and what the pricer saw.
fn priced(base: &str, pricer: &Pricer, service: &InvoiceService) {
    for (method, path, hrp) in [
        ("GET", "/quote/13", "130n"),
        ("POST", "/quote/bulk/27", "270n"),
        ("GET", "/quote/13?page=2", "130n"),
    ] {
        let resp = client()
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 402, "{method} {path}");
        assert_eq!(amount(&resp), hrp, "{method} {path}");
        let q = pricer.seen().last().cloned().unwrap();
        assert_eq!(q["service"], "quote");
        assert_eq!(q["method"], method);
        // the canonical path, without the query
        assert_eq!(q["path"], path.split('?').next().unwrap());
        // paid at that price, the request passes
        let offer = parse_challenge(&resp).unwrap();
        let preimage = service.dev_pay(&offer.invoice).unwrap();
        let resp = client()
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .header(
                "authorization",
                format!("L402 {}:{preimage}", offer.macaroon),
            )
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{method} {path}");
    }
}

#[test]
fn both_edges_sell_at_the_pricers_price() {
    let logs = tempfile::tempdir().unwrap();
    let pricer = Pricer::start().unwrap();
    let envoy = Stack::with_service(
        logs.path(),
        service(logs.path(), &pricer.url()),
        &filter_config(2000, &[]),
        1,
    )
    .unwrap();
    priced(&envoy.envoy.url(""), &pricer, &envoy.service);
    let worker =
        WorkerStack::with_service(logs.path(), service(logs.path(), &pricer.url()), &[]).unwrap();
    priced(&worker.worker.url(""), &pricer, &worker.service);
    // fixed-price services never ask the pricer
    let before = pricer.seen().len();
    let resp = client().get(envoy.envoy.url("/maps/x")).send().unwrap();
    assert_eq!((resp.status().as_u16(), amount(&resp)), (402, "50n".into()));
    assert_eq!(pricer.seen().len(), before);
    // the pricer gone: the catalog price (on_error = "catalog")
    drop(pricer);
    let resp = client().get(envoy.envoy.url("/quote/13")).send().unwrap();
    assert_eq!((resp.status().as_u16(), amount(&resp)), (402, "40n".into()));
}
