//! IP-bound tokens end to end: the invoice-service binds `geo` tokens to the address the edge's
//! host reports, clients narrow any token to a CIDR themselves, and both edges hold a token to
//! the address of the request that presents it. Envoy listens on 127.0.0.1 and [::1] and
//! clients connect from 127.0.0.1, 127.0.0.2 and ::1; the Worker reads `CF-Connecting-IP`, the
//! header Cloudflare sets from the connection.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::IpAddr;

use l402_core::{Preimage, attenuate, inspect};
use reqwest::blocking::{Client, Response};
use wasm_tests::{Stack, WorkerStack, body_error, filter_config, now, parse_challenge};

/// A client whose connections come from `from`.
fn client_from(from: &str) -> Client {
    Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Envoy's URL for a client on `from`'s address family.
fn envoy_url(stack: &Stack, from: &str, path: &str) -> String {
    if from.contains(':') {
        format!("http://[::1]:{}{path}", stack.envoy.port)
    } else {
        stack.envoy.url(path)
    }
}

fn envoy_get(stack: &Stack, from: &str, path: &str, auth: Option<&str>) -> Response {
    let mut r = client_from(from).get(envoy_url(stack, from, path));
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    r.send().unwrap()
}

/// 402 for `path` from `from`, paid: the credential.
fn buy(resp: Response, pay: impl Fn(&str) -> String) -> (String, Vec<String>) {
    assert_eq!(resp.status(), 402);
    let offer = parse_challenge(&resp).unwrap();
    let caveats = inspect(&offer.macaroon).unwrap().caveats;
    let preimage = pay(&offer.invoice);
    (format!("L402 {}:{preimage}", offer.macaroon), caveats)
}

fn reason(resp: Response) -> (u16, String) {
    (resp.status().as_u16(), body_error(resp))
}

#[test]
fn envoy_binds_tokens_to_the_downstream_address_v4_and_v6() {
    let logs = tempfile::tempdir().unwrap();
    let stack = Stack::start(logs.path(), &filter_config(2000, &[]), 2).unwrap();
    let pay = |inv: &str| stack.service.dev_pay(inv).unwrap();
    for (from, network, other) in [
        ("127.0.0.1", "127.0.0.1/32", "127.0.0.2"),
        ("127.0.0.2", "127.0.0.2/32", "127.0.0.1"),
        ("::1", "::1/128", "127.0.0.1"),
    ] {
        let (auth, caveats) = buy(envoy_get(&stack, from, "/geo/here", None), pay);
        assert_eq!(
            caveats.last().unwrap(),
            &format!("geo_client_ip={network}"),
            "the service bound the token to the address Envoy saw"
        );
        let before = stack.upstream.count();
        assert_eq!(
            envoy_get(&stack, from, "/geo/here", Some(&auth)).status(),
            200
        );
        assert_eq!(stack.upstream.count(), before + 1);
        // the same token from another address: a fresh challenge, the reason named
        let resp = envoy_get(&stack, other, "/geo/here", Some(&auth));
        assert_eq!(
            reason(resp),
            (402, "client_ip_mismatch".into()),
            "{from} → {other}"
        );
        // an X-Forwarded-For the client wrote changes nothing
        let resp = client_from(other)
            .get(envoy_url(&stack, other, "/geo/here"))
            .header("authorization", &auth)
            .header("x-forwarded-for", from)
            .header("x-real-ip", from)
            .header("cf-connecting-ip", from)
            .send()
            .unwrap();
        assert_eq!(
            reason(resp),
            (402, "client_ip_mismatch".into()),
            "spoofed {from}"
        );
        assert_eq!(
            stack.upstream.count(),
            before + 1,
            "nothing else reached the origin"
        );
    }
    // a client narrows an unbound token to a CIDR itself: 127.0.0.2/31 holds .2 and .3 only
    let p = Preimage::from_bytes([0x42; 32]);
    let t = wasm_tests::token("weather", &["read"], Some(3600), now(), &p, 7).unwrap();
    let narrowed = attenuate(&t, "weather_client_ip=127.0.0.2/31").unwrap();
    let auth = format!("L402 {narrowed}:{}", p.expose_hex());
    for (from, want) in [
        ("127.0.0.2", 200),
        ("127.0.0.3", 200),
        ("127.0.0.1", 402),
        ("127.0.0.4", 402),
        ("::1", 402),
    ] {
        let resp = envoy_get(&stack, from, "/weather/today", Some(&auth));
        assert_eq!(resp.status(), want, "{from}");
        if want == 402 {
            assert_eq!(body_error(resp), "client_ip_mismatch", "{from}");
        }
    }
    // ... and an IPv6 network
    let v6 = attenuate(&t, "weather_client_ip=::/127").unwrap();
    let auth = format!("L402 {v6}:{}", p.expose_hex());
    assert_eq!(
        envoy_get(&stack, "::1", "/weather/x", Some(&auth)).status(),
        200
    );
    assert_eq!(
        envoy_get(&stack, "127.0.0.1", "/weather/x", Some(&auth)).status(),
        402
    );
    // the unbound token itself still passes from anywhere
    let plain = format!("L402 {t}:{}", p.expose_hex());
    for from in ["127.0.0.1", "127.0.0.2", "::1"] {
        assert_eq!(
            envoy_get(&stack, from, "/weather/x", Some(&plain)).status(),
            200
        );
    }
}

#[test]
fn the_worker_binds_tokens_to_cf_connecting_ip() {
    let logs = tempfile::tempdir().unwrap();
    let stack = WorkerStack::start(logs.path(), &[]).unwrap();
    let pay = |inv: &str| stack.service.dev_pay(inv).unwrap();
    let get = |ip: Option<&str>, path: &str, auth: Option<&str>| {
        let mut r = wasm_tests::client().get(stack.worker.url(path));
        if let Some(ip) = ip {
            r = r.header("cf-connecting-ip", ip);
        }
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send().unwrap()
    };
    for (ip, network, other) in [
        ("203.0.113.7", "203.0.113.7/32", "203.0.113.8"),
        ("2001:db8::7", "2001:db8::7/128", "2001:db8::8"),
    ] {
        let (auth, caveats) = buy(get(Some(ip), "/geo/here", None), pay);
        assert_eq!(caveats.last().unwrap(), &format!("geo_client_ip={network}"));
        let before = stack.upstream.count();
        assert_eq!(get(Some(ip), "/geo/here", Some(&auth)).status(), 200);
        assert_eq!(stack.upstream.count(), before + 1);
        assert_eq!(
            reason(get(Some(other), "/geo/here", Some(&auth))),
            (402, "client_ip_mismatch".into())
        );
        assert_eq!(stack.upstream.count(), before + 1);
    }
    // Locally, wrangler's runtime sets CF-Connecting-IP from the connection when the client
    // sent none (Cloudflare always sets it, replacing the client's): the token is bound to it.
    let (auth, caveats) = buy(get(None, "/geo/here", None), pay);
    assert_eq!(caveats.last().unwrap(), "geo_client_ip=127.0.0.1/32");
    assert_eq!(get(None, "/geo/here", Some(&auth)).status(), 200);
    assert_eq!(
        reason(get(Some("127.0.0.2"), "/geo/here", Some(&auth))),
        (402, "client_ip_mismatch".into())
    );
    // a client-narrowed token, CIDR edges
    let p = Preimage::from_bytes([0x43; 32]);
    let t = wasm_tests::token("weather", &["read"], Some(3600), now(), &p, 9).unwrap();
    let narrowed = attenuate(&t, "weather_client_ip=198.51.100.0/30,2001:db8:1::/48").unwrap();
    let auth = format!("L402 {narrowed}:{}", p.expose_hex());
    for (ip, want) in [
        ("198.51.100.0", 200),
        ("198.51.100.3", 200),
        ("198.51.100.4", 402),
        ("198.51.99.255", 402),
        ("2001:db8:1:ffff::1", 200),
        ("2001:db8:2::1", 402),
        ("::ffff:198.51.100.1", 200),
    ] {
        assert_eq!(
            get(Some(ip), "/weather/x", Some(&auth)).status(),
            want,
            "{ip}"
        );
    }
}
