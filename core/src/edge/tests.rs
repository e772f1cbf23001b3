//! The decision table, natively: every branch of [`Edge::decide`] and its continuations.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use super::*;
use crate::context::{ContextKey, verify_context};
use crate::ids::Preimage;
use crate::mint::mint;
#[allow(unused_imports)]
use crate::prelude::*;
use crate::service::ServiceEntry;

const KEYS: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";
const CTX_KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";
const NOW_MS: u64 = 1_800_000_000_000;
const ROUTES: &str = r#"[{"path":"/weather","service":"weather","capabilities":"read"},{"path":"/admin","service":"admin"}]"#;

fn options() -> EdgeOptions {
    EdgeOptions {
        keyring: Some(KEYS.into()),
        edge_token: Some("edge-token-0123456789".into()),
        routes: Some(ROUTES.into()),
        context_key: Some(CTX_KEY.into()),
        ..EdgeOptions::default()
    }
}

fn edge_with(edit: impl FnOnce(&mut EdgeOptions), external: bool) -> Edge {
    let mut o = options();
    edit(&mut o);
    Edge::new(o.validate().unwrap(), external)
}

fn edge() -> Edge {
    edge_with(|_| {}, false)
}

fn credential(service: &str, caps: &[&str], salt: u8) -> String {
    let keyring: crate::Keyring = KEYS.parse().unwrap();
    let p = Preimage::from_bytes([salt; 32]);
    let e = ServiceEntry {
        name: service.parse().unwrap(),
        tier: 0,
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        lifetime_secs: Some(3600),
        allowance: None,
    };
    let t = mint(
        &keyring,
        p.payment_hash(),
        [salt; 28],
        &e,
        NOW_MS / 1000 - 10,
    )
    .unwrap();
    format!("L402 {}:{}", t.macaroon_b64, p.expose_hex())
}

fn request<'a>(
    method: &'a str,
    target: &'a str,
    headers: &'a [(&'a str, &'a [u8])],
) -> EdgeRequest<'a> {
    EdgeRequest {
        method,
        target: target.as_bytes(),
        headers,
        body_follows: false,
        sale: HostSale::NotAttached,
        now_ms: Some(NOW_MS),
        client_address: ClientAddress::Known(None),
        secure: false,
    }
}

fn reply(step: Step) -> (u16, String, Outcome) {
    match step {
        Step::Reply(r) => (r.response.status, r.response.body, r.outcome),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn forward(step: Step) -> Forward {
    match step {
        Step::Forward(f) => f,
        other => panic!("expected a forward, got {other:?}"),
    }
}

#[test]
fn unsold_routes_pass_without_the_edges_headers() {
    let e = edge();
    let mut st = e.new_state();
    let h: &[(&str, &[u8])] = &[
        ("x-l402-token-id", b"spoofed"),
        ("X_L402_Service", b"weather"),
        ("x-l402-anything", b"1"),
        ("accept", b"*/*"),
    ];
    let f = forward(e.decide(&mut st, &request("GET", "/free/x", h)));
    assert_eq!(f.outcome, Outcome::Unsold);
    assert_eq!(
        f.remove,
        vec!["x-l402-token-id", "X_L402_Service", "x-l402-anything"]
    );
    assert!(f.set.is_empty());
    // `/weatherman` is not under `/weather`.
    let f = forward(e.decide(&mut st, &request("GET", "/weatherman", &[])));
    assert_eq!(f.outcome, Outcome::Unsold);
}

#[test]
fn hostile_paths_are_refused_or_judged_as_the_origin_reads_them() {
    let e = edge();
    let mut st = e.new_state();
    for (target, want) in [
        ("//weather", "path_not_canonical"),
        ("/./weather", "path_not_canonical"),
        ("/x/../weather", "path_not_canonical"),
        ("/%77eather", "path_not_canonical"),
        ("/%2e%2e/weather", "path_above_root"),
        ("/free%2F..%2Fweather", "path_encoded_separator"),
        ("/free/..%2fweather", "path_encoded_separator"),
        ("/%2Fweather", "path_encoded_separator"),
        ("/weather;x=1", "path_parameter"),
        ("/a\\weather", "path_backslash"),
    ] {
        let (status, body, outcome) = reply(e.decide(&mut st, &request("GET", target, &[])));
        assert_eq!(status, 400, "{target}");
        assert_eq!(body, format!("{{\"error\":\"{want}\"}}"), "{target}");
        assert!(matches!(outcome, Outcome::BadRequest(_)));
    }
    // Allowed non-canonical paths are judged by their canonical form.
    let lenient = edge_with(|o| o.non_canonical_path = Some("allow".into()), false);
    let mut st = lenient.new_state();
    for target in [
        "//weather",
        "/x/../weather",
        "/%77eather",
        "/weather/./today",
    ] {
        match lenient.decide(&mut st, &request("GET", target, &[])) {
            Step::Challenge(c) => {
                assert_eq!(c.pending.reason(), Reason::MissingCredential, "{target}")
            }
            other => panic!("{target}: {other:?}"),
        }
    }
    let (status, _, _) = reply(lenient.decide(&mut st, &request("GET", "/%2Fweather", &[])));
    assert_eq!(status, 400, "ambiguity is refused in either mode");
}

#[test]
fn paid_requests_forward_with_identity_and_a_signed_context() {
    let e = edge();
    let mut st = e.new_state();
    let auth = credential("weather", &["read"], 3);
    let h: &[(&str, &[u8])] = &[
        ("authorization", auth.as_bytes()),
        ("x_l402_token_id", b"spoofed"),
        ("X-L402-Context", b"forged"),
    ];
    let f = forward(e.decide(&mut st, &request("GET", "/weather/today?x=1", h)));
    assert_eq!(f.outcome, Outcome::Authorized { cache_hit: false });
    assert_eq!(
        f.remove,
        vec!["x_l402_token_id", "X-L402-Context", "authorization"]
    );
    let set: std::collections::HashMap<_, _> = f.set.iter().cloned().collect();
    assert_eq!(set["x-l402-service"], "weather");
    assert_eq!(
        set["x-l402-token-id"],
        hex::encode([3u8; 32]).replacen("03030303", "00000001", 1)
    );
    let key: ContextKey = CTX_KEY.parse().unwrap();
    let ctx = verify_context(
        &key,
        &set["x-l402-context"],
        "GET",
        "/weather/today",
        NOW_MS / 1000,
        0,
    )
    .unwrap();
    assert_eq!(ctx.service, "weather");
    assert_eq!(ctx.capabilities, Some(vec!["read".to_owned()]));
    // The second time, the cache answers.
    let f = forward(e.decide(&mut st, &request("GET", "/weather", h)));
    assert_eq!(f.outcome, Outcome::Authorized { cache_hit: true });
    // A weather token buys nothing at /admin, whatever the path says.
    let h: &[(&str, &[u8])] = &[("authorization", auth.as_bytes())];
    match e.decide(&mut st, &request("GET", "/admin", h)) {
        Step::Challenge(c) => assert_eq!(c.pending.reason(), Reason::ServiceNotAllowed),
        other => panic!("{other:?}"),
    }
    // Without a context key, no context header; the credential kept when asked.
    let plain = edge_with(
        |o| {
            o.context_key = None;
            o.strip_credential = Some(false);
        },
        false,
    );
    let mut st = plain.new_state();
    let f = forward(plain.decide(&mut st, &request("GET", "/weather", h)));
    assert!(f.set.iter().all(|(n, _)| n != "x-l402-context"));
    assert!(f.remove.is_empty());
}

#[test]
fn preflight_passes_only_when_it_is_one() {
    let e = edge();
    let mut st = e.new_state();
    let real: &[(&str, &[u8])] = &[
        ("origin", b"https://a.example"),
        ("access-control-request-method", b"GET"),
    ];
    let f = forward(e.decide(&mut st, &request("OPTIONS", "/weather", real)));
    assert_eq!(f.outcome, Outcome::Preflight);
    let no_origin: &[(&str, &[u8])] = &[("access-control-request-method", b"GET")];
    let with_body: &[(&str, &[u8])] = &[
        ("origin", b"https://a.example"),
        ("access-control-request-method", b"GET"),
        ("content-length", b"5"),
    ];
    let chunked: &[(&str, &[u8])] = &[
        ("origin", b"https://a.example"),
        ("access-control-request-method", b"GET"),
        ("transfer-encoding", b"chunked"),
    ];
    for h in [no_origin, with_body, chunked] {
        assert!(matches!(
            e.decide(&mut st, &request("OPTIONS", "/weather", h)),
            Step::Challenge(_)
        ));
    }
    let mut follows = request("OPTIONS", "/weather", real);
    follows.body_follows = true;
    assert!(matches!(e.decide(&mut st, &follows), Step::Challenge(_)));
    assert!(matches!(
        e.decide(&mut st, &request("GET", "/weather", real)),
        Step::Challenge(_)
    ));
    let zero: &[(&str, &[u8])] = &[
        ("origin", b"https://a.example"),
        ("access-control-request-method", b"GET"),
        ("content-length", b"0"),
    ];
    assert!(matches!(
        e.decide(&mut st, &request("OPTIONS", "/weather", zero)),
        Step::Forward(_)
    ));
}

#[test]
fn host_failures_fail_closed() {
    let e = edge();
    let mut st = e.new_state();
    let mut r = request("GET", "/weather", &[]);
    r.now_ms = None;
    let (status, body, _) = reply(e.decide(&mut st, &r));
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"error":"clock_unavailable"}"#)
    );
    for sale in [
        HostSale::Malformed,
        HostSale::Attached {
            service: "Bad_Name",
            capabilities: "",
            schemes: "",
        },
        HostSale::Attached {
            service: "weather",
            capabilities: "a b",
            schemes: "",
        },
        HostSale::Attached {
            service: "weather",
            capabilities: "",
            schemes: "x402",
        },
    ] {
        let mut r = request("GET", "/free", &[]);
        r.sale = sale;
        let (status, body, _) = reply(e.decide(&mut st, &r));
        assert_eq!(
            (status, body.as_str()),
            (503, r#"{"error":"route_metadata_malformed"}"#),
            "{sale:?}"
        );
    }
    // Attached metadata sells a path the route table does not.
    let mut r = request("GET", "/free", &[]);
    r.sale = HostSale::Attached {
        service: "maps",
        capabilities: "",
        schemes: "",
    };
    assert!(matches!(e.decide(&mut st, &r), Step::Challenge(_)));
    let m = misconfigured_reply();
    assert_eq!(
        (m.response.status, m.response.body.as_str()),
        (503, r#"{"error":"edge_misconfigured"}"#)
    );
}

#[test]
fn revocation_lookups_decide_and_fail_closed() {
    let e = edge_with(|_| {}, true);
    let mut st = e.new_state();
    let auth = credential("weather", &["read"], 4);
    let h: &[(&str, &[u8])] = &[("authorization", auth.as_bytes())];
    let check = |st: &mut EdgeState| match e.decide(st, &request("GET", "/weather", h)) {
        Step::CheckRevoked(c) => c,
        other => panic!("{other:?}"),
    };
    let c = check(&mut st);
    let f = forward(e.resume(&mut st, c, Ok(false)));
    assert!(matches!(f.outcome, Outcome::Authorized { .. }));
    assert_eq!(f.remove, vec!["authorization"]);
    let c = check(&mut st);
    match e.resume(&mut st, c, Ok(true)) {
        Step::Challenge(c) => assert_eq!(c.pending.reason(), Reason::Revoked),
        other => panic!("{other:?}"),
    }
    let c = check(&mut st);
    let (status, body, _) = reply(e.resume(&mut st, c, Err(HostFailure::Revocation)));
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"error":"revocation_unavailable"}"#)
    );
    // Two credentials: the first revoked, the second is looked up next.
    let other = credential("weather", &["read"], 5);
    let both = format!("{auth}, {other}");
    let h2: &[(&str, &[u8])] = &[("authorization", both.as_bytes())];
    let first = match e.decide(&mut st, &request("GET", "/weather", h2)) {
        Step::CheckRevoked(c) => c,
        o => panic!("{o:?}"),
    };
    let first_id = first.token_id;
    let second = match e.resume(&mut st, first, Ok(true)) {
        Step::CheckRevoked(c) => c,
        o => panic!("{o:?}"),
    };
    assert_ne!(second.token_id, first_id);
    assert!(matches!(
        e.resume(&mut st, second, Ok(false)),
        Step::Forward(_)
    ));
}

#[test]
fn challenges_are_bounded_and_answered() {
    let e = edge_with(
        |o| {
            o.challenges_per_second = Some(1);
            o.challenge_burst = Some(2);
        },
        false,
    );
    let mut st = e.new_state();
    let mut calls = 0;
    let mut limited = 0;
    for _ in 0..5 {
        match e.decide(&mut st, &request("GET", "/weather", &[])) {
            Step::Challenge(c) => {
                calls += 1;
                let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
                assert_eq!(body["service"], "weather");
                let ok = br#"{"macaroon":"AgEE","invoice":"lnbcrt10u1pqqq","payment_hash":"00","expires_at":1}"#;
                let r = e.challenge_answered(c.pending.clone(), Some(200), Some(ok));
                assert_eq!((r.response.status, r.outcome), (402, Outcome::Challenged));
                let r = e.challenge_answered(c.pending.clone(), Some(500), Some(ok));
                assert_eq!(
                    (r.response.status, r.outcome),
                    (503, Outcome::InvoiceServiceFailed)
                );
                let r = e.challenge_answered(c.pending.clone(), None, None);
                assert_eq!(r.response.status, 503);
                let r = e.challenge_answered(c.pending.clone(), Some(200), Some(b"<html>"));
                assert_eq!(r.response.status, 503);
                let r = e.challenge_refused(c.pending);
                assert_eq!((r.response.status, r.outcome), (503, Outcome::RateLimited));
            }
            Step::Reply(r) => {
                limited += 1;
                assert_eq!(r.response.status, 503);
                assert_eq!(r.response.body, r#"{"error":"challenge_rate_limited"}"#);
                assert!(r.response.headers.iter().any(|(n, _)| *n == "retry-after"));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((calls, limited), (2, 3));
    // Paid requests are never limited.
    let auth = credential("weather", &["read"], 6);
    let h: &[(&str, &[u8])] = &[("authorization", auth.as_bytes())];
    assert!(matches!(
        e.decide(&mut st, &request("GET", "/weather", h)),
        Step::Forward(_)
    ));
    // 401 policy answers without a challenge call.
    let strict = edge_with(|o| o.on_invalid = Some("unauthorized".into()), false);
    let mut st = strict.new_state();
    let bad: &[(&str, &[u8])] = &[("authorization", b"L402 AgEE:00")];
    let (status, _, outcome) = reply(strict.decide(&mut st, &request("GET", "/weather", bad)));
    assert_eq!(status, 401);
    assert!(matches!(outcome, Outcome::Unauthorized(_)));
}

#[test]
fn grpc_requests_get_grpc_shaped_answers() {
    let e = edge();
    let mut st = e.new_state();
    let h: &[(&str, &[u8])] = &[("content-type", b"application/grpc")];
    let r = match e.decide(&mut st, &request("POST", "/weather%2F", h)) {
        Step::Reply(r) => r.response,
        o => panic!("{o:?}"),
    };
    assert_eq!(r.status, 200);
    assert!(
        r.headers
            .iter()
            .any(|(n, v)| *n == "grpc-status" && v == "3")
    );
}

#[test]
fn a_token_bound_to_a_client_address_passes_from_it_only() {
    let e = edge();
    let mut st = e.new_state();
    let keyring: crate::Keyring = KEYS.parse().unwrap();
    let p = Preimage::from_bytes([9; 32]);
    let entry = ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 0,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(3600),
        allowance: None,
    };
    let t = crate::mint::mint_bound(
        &keyring,
        p.payment_hash(),
        [9; 28],
        &entry,
        NOW_MS / 1000 - 10,
        Some((
            "2001:db8:1:2::7".parse().unwrap(),
            crate::client_ip::BindingWidth::default(),
        )),
    )
    .unwrap();
    let cred = format!("L402 {}:{}", t.macaroon_b64, p.expose_hex());
    let h: &[(&str, &[u8])] = &[("authorization", cred.as_bytes())];
    for (addr, want) in [
        (Some(&b"[2001:db8:1:2::99]:5555"[..]), None),
        (
            Some(&b"2001:db8:1:3::7"[..]),
            Some(Reason::ClientIpMismatch),
        ),
        (Some(&b"192.0.2.1:80"[..]), Some(Reason::ClientIpMismatch)),
        (Some(&b"garbage"[..]), Some(Reason::ClientIpUnknown)),
        (None, Some(Reason::ClientIpUnknown)),
    ] {
        let mut req = request("GET", "/weather", h);
        req.client_address = ClientAddress::Known(addr);
        // twice: the cached token is judged against each request's address too
        for _ in 0..2 {
            match (e.decide(&mut st, &req), want) {
                (Step::Forward(f), None) => {
                    assert!(matches!(f.outcome, Outcome::Authorized { .. }), "{addr:?}");
                }
                (Step::Challenge(c), Some(reason)) => {
                    assert_eq!(c.pending.reason(), reason, "{addr:?}");
                    let body = ChallengeRequest::parse(&c.body).unwrap();
                    assert_eq!(body.method.as_deref(), Some("GET"));
                    assert_eq!(body.path.as_deref(), Some("/weather"));
                    let want_ip = addr.and_then(parse_client_address).map(|ip| ip.to_string());
                    assert_eq!(body.client_ip, want_ip);
                }
                (other, _) => panic!("{addr:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn an_on_demand_client_address_is_asked_only_when_a_decision_needs_it() {
    let e = edge();
    let mut st = e.new_state();
    let asked = std::cell::Cell::new(0);
    let host = || {
        asked.set(asked.get() + 1);
        Some(b"198.51.100.9:4242".to_vec())
    };
    // an unbound token: authorized without asking
    let plain = credential("weather", &["read"], 41);
    let h: &[(&str, &[u8])] = &[("authorization", plain.as_bytes())];
    let mut req = request("GET", "/weather", h);
    req.client_address = ClientAddress::OnDemand(&host);
    for _ in 0..3 {
        assert!(matches!(e.decide(&mut st, &req), Step::Forward(_)));
    }
    assert_eq!(asked.get(), 0);
    // a bound token: asked once per request, judged against the answer
    let keyring: crate::Keyring = KEYS.parse().unwrap();
    let p = Preimage::from_bytes([42; 32]);
    let entry = ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 0,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(3600),
        allowance: None,
    };
    let bound = |ip: &str| {
        let t = crate::mint::mint_bound(
            &keyring,
            p.payment_hash(),
            [42; 28],
            &entry,
            NOW_MS / 1000 - 10,
            Some((
                ip.parse().unwrap(),
                crate::client_ip::BindingWidth::default(),
            )),
        )
        .unwrap();
        format!("L402 {}:{}", t.macaroon_b64, p.expose_hex())
    };
    let here = bound("198.51.100.9");
    let h: &[(&str, &[u8])] = &[("authorization", here.as_bytes())];
    let mut req = request("GET", "/weather", h);
    req.client_address = ClientAddress::OnDemand(&host);
    assert!(matches!(e.decide(&mut st, &req), Step::Forward(_)));
    assert_eq!(asked.get(), 1);
    let elsewhere = bound("198.51.100.10");
    let h: &[(&str, &[u8])] = &[("authorization", elsewhere.as_bytes())];
    let mut req = request("GET", "/weather", h);
    req.client_address = ClientAddress::OnDemand(&host);
    match e.decide(&mut st, &req) {
        Step::Challenge(c) => {
            assert_eq!(c.pending.reason(), Reason::ClientIpMismatch);
            let body = ChallengeRequest::parse(&c.body).unwrap();
            assert_eq!(body.client_ip.as_deref(), Some("198.51.100.9"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        asked.get(),
        2,
        "asked once for that request, reused for the challenge"
    );
    // no credential: asked for the challenge
    let mut req = request("GET", "/weather", &[]);
    req.client_address = ClientAddress::OnDemand(&host);
    assert!(matches!(e.decide(&mut st, &req), Step::Challenge(_)));
    assert_eq!(asked.get(), 3);
    // a host that cannot tell: a bound token fails closed
    let none = || None;
    let h: &[(&str, &[u8])] = &[("authorization", here.as_bytes())];
    let mut req = request("GET", "/weather", h);
    req.client_address = ClientAddress::OnDemand(&none);
    match e.decide(&mut st, &req) {
        Step::Challenge(c) => assert_eq!(c.pending.reason(), Reason::ClientIpUnknown),
        other => panic!("{other:?}"),
    }
}

/// A charge for `service` issued under the test keyring, and its credential header.
fn payment_credential(
    service: &str,
    caps: &str,
    salt: u8,
    expires_at: u64,
) -> (PaymentChallenge, String) {
    let keyring: crate::Keyring = KEYS.parse().unwrap();
    let p = Preimage::from_bytes([salt; 32]);
    let c = crate::issue_charge(
        &keyring,
        &crate::ChargeTerms {
            realm: "api.example.com",
            service,
            capabilities: caps,
            amount_sat: 10,
            invoice: "lnbcrt100n1pqqq",
            payment_hash: &p.payment_hash(),
            expires_at,
            description: None,
        },
    )
    .unwrap();
    let json = serde_json::json!({"challenge": serde_json::from_str::<serde_json::Value>(&c.to_json()).unwrap(), "payload": {"preimage": p.expose_hex()}});
    let header = format!(
        "Payment {}",
        crate::b64url_encode(json.to_string().as_bytes())
    );
    (c, header)
}

use crate::payment::PaymentChallenge;

fn offer_body(payment: Option<&PaymentChallenge>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "macaroon": "AgEE",
        "invoice": "lnbcrt10u1pqqq",
        "payment_hash": "00",
        "expires_at": 1,
        "payment": payment.map(|p| serde_json::from_str::<serde_json::Value>(&p.to_json()).unwrap()),
    }))
    .unwrap()
}

fn www_authenticate(r: &Reply) -> Vec<String> {
    r.response
        .headers
        .iter()
        .filter(|(n, _)| *n == "www-authenticate")
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn payment_credentials_are_checked_then_spent_once() {
    let e = edge();
    let mut st = e.new_state();
    let (_, auth) = payment_credential("weather", "read", 5, NOW_MS / 1000 + 600);
    let h: &[(&str, &[u8])] = &[
        ("authorization", auth.as_bytes()),
        ("x-l402-payment-hash", b"spoofed"),
    ];
    let redeem = |st: &mut EdgeState| match e.decide(st, &request("GET", "/weather/today", h)) {
        Step::Redeem(call) => call,
        other => panic!("expected a redeem, got {other:?}"),
    };
    let call = redeem(&mut st);
    let body: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    let hash = Preimage::from_bytes([5; 32]).payment_hash().to_hex();
    assert_eq!(body["payment_hash"], hash.as_str());
    assert_eq!(body["expires_at"], NOW_MS / 1000 + 600);
    // First use: forwarded with the payment hash, the signed context and a receipt.
    let f = forward(e.redeemed(&mut st, call, Ok(Redeemed::FirstUse)));
    assert_eq!(f.outcome, Outcome::Redeemed);
    assert!(f.remove.iter().any(|n| n == "authorization"));
    assert!(f.remove.iter().any(|n| n == "x-l402-payment-hash"));
    assert!(
        f.set
            .contains(&(HEADER_PAYMENT_HASH.to_owned(), hash.clone()))
    );
    assert!(
        f.set
            .contains(&("x-l402-service".to_owned(), "weather".to_owned()))
    );
    let key: ContextKey = CTX_KEY.parse().unwrap();
    let jws = &f.set.iter().find(|(n, _)| n == "x-l402-context").unwrap().1;
    let ctx = verify_context(&key, jws, "GET", "/weather/today", NOW_MS / 1000, 0).unwrap();
    assert_eq!(
        (ctx.token_id.as_str(), ctx.path.as_str()),
        (hash.as_str(), "/weather/today")
    );
    let (name, receipt) = &f.respond[0];
    assert_eq!(*name, "payment-receipt");
    let receipt: serde_json::Value =
        serde_json::from_slice(&crate::b64url_decode(receipt).unwrap()).unwrap();
    assert_eq!(
        (receipt["reference"].as_str(), receipt["status"].as_str()),
        (Some(hash.as_str()), Some("success"))
    );
    // Already spent: a fresh challenge naming why.
    let call = redeem(&mut st);
    match e.redeemed(&mut st, call, Ok(Redeemed::AlreadySpent)) {
        Step::Challenge(c) => {
            assert_eq!(c.outcome(), Outcome::Rejected(Reason::PaymentSpent));
            let body: serde_json::Value = serde_json::from_slice(&c.body).unwrap();
            assert_eq!(body["reason"], "payment_spent");
        }
        other => panic!("expected a challenge, got {other:?}"),
    }
    // The store failed: 503, never a pass.
    let call = redeem(&mut st);
    let (status, body, outcome) = reply(e.redeemed(&mut st, call, Err(HostFailure::SpentSet)));
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"error":"spent_set_unavailable"}"#)
    );
    assert_eq!(outcome, Outcome::HostFailure(HostFailure::SpentSet));
}

#[test]
fn payment_refusals_are_challenged_before_any_store_call() {
    let e = edge();
    let mut st = e.new_state();
    let now = NOW_MS / 1000;
    let cases: Vec<(String, Reason)> = vec![
        (
            payment_credential("admin", "", 1, now + 60).1,
            Reason::ServiceNotAllowed,
        ),
        (
            payment_credential("weather", "", 1, now + 60).1,
            Reason::CapabilityMissing,
        ),
        (
            payment_credential("weather", "read", 1, now).1,
            Reason::ChallengeExpired,
        ),
        ("Payment e30".to_owned(), Reason::MalformedCredential),
    ];
    for (auth, reason) in cases {
        let h: &[(&str, &[u8])] = &[("authorization", auth.as_bytes())];
        match e.decide(&mut st, &request("GET", "/weather", h)) {
            Step::Challenge(c) => assert_eq!(c.outcome(), Outcome::Rejected(reason)),
            other => panic!("{reason:?}: expected a challenge, got {other:?}"),
        }
    }
}

#[test]
fn schemes_decide_what_is_read_and_offered() {
    let (payment, pay_auth) = payment_credential("weather", "read", 6, NOW_MS / 1000 + 600);
    let l402_auth = credential("weather", &["read"], 6);
    let offer = offer_body(Some(&payment));
    let challenge = |e: &Edge, h: &[(&str, &[u8])]| -> (Reason, Reply) {
        let mut st = e.new_state();
        match e.decide(&mut st, &request("GET", "/weather", h)) {
            Step::Challenge(c) => {
                let reason = c.pending.reason();
                (
                    reason,
                    e.challenge_answered(c.pending, Some(200), Some(&offer)),
                )
            }
            other => panic!("expected a challenge, got {other:?}"),
        }
    };
    // Both (the default): three challenges, the draft's problem body.
    let both = edge();
    let (reason, r) = challenge(&both, &[]);
    assert_eq!(reason, Reason::MissingCredential);
    let w = www_authenticate(&r);
    assert_eq!(w.len(), 3);
    assert!(
        w[0].starts_with("L402 ") && w[1].starts_with("LSAT ") && w[2].starts_with("Payment id=")
    );
    assert!(
        r.response
            .headers
            .contains(&("content-type", "application/problem+json".to_owned()))
    );
    let body: serde_json::Value = serde_json::from_str(&r.response.body).unwrap();
    assert_eq!(
        body["type"],
        "https://paymentauth.org/problems/payment-required"
    );
    assert_eq!(
        (body["status"].as_u64(), body["error"].as_str()),
        (Some(402), Some("missing_credential"))
    );
    // A client that refuses lightning/charge gets L402 alone, and today's body.
    let (_, r) = challenge(&both, &[("accept-payment", b"lightning/charge;q=0")]);
    assert_eq!(www_authenticate(&r).len(), 2);
    assert_eq!(r.response.body, r#"{"error":"missing_credential"}"#);
    // L402 only: a Payment credential is not read, and only L402 is offered.
    let l402 = edge_with(|o| o.schemes = Some("l402".into()), false);
    let (reason, r) = challenge(&l402, &[("authorization", pay_auth.as_bytes())]);
    assert_eq!(reason, Reason::MissingCredential);
    assert_eq!(www_authenticate(&r).len(), 2);
    // Payment only: an L402 token is not read, only Payment is offered, and an invoice-service
    // without the Payment form cannot sell the route.
    let pay = edge_with(|o| o.schemes = Some("payment".into()), false);
    let (reason, r) = challenge(&pay, &[("authorization", l402_auth.as_bytes())]);
    assert_eq!(reason, Reason::MissingCredential);
    let w = www_authenticate(&r);
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("Payment "));
    let mut st = pay.new_state();
    match pay.decide(&mut st, &request("GET", "/weather", &[])) {
        Step::Challenge(c) => {
            let r = pay.challenge_answered(c.pending, Some(200), Some(&offer_body(None)));
            assert_eq!(
                (r.response.status, r.outcome),
                (503, Outcome::InvoiceServiceFailed)
            );
        }
        other => panic!("expected a challenge, got {other:?}"),
    }
    // A route's own schemes beat the edge's default.
    let routes =
        r#"[{"path":"/weather","service":"weather","capabilities":"read","schemes":"l402"}]"#;
    let per_route = edge_with(|o| o.routes = Some(routes.into()), false);
    let (_, r) = challenge(&per_route, &[]);
    assert_eq!(www_authenticate(&r).len(), 2);
    // Both credentials on a route selling both: L402 decides.
    let mut st = both.new_state();
    let h: &[(&str, &[u8])] = &[
        ("authorization", pay_auth.as_bytes()),
        ("authorization", l402_auth.as_bytes()),
    ];
    assert!(matches!(
        both.decide(&mut st, &request("GET", "/weather", h)),
        Step::Forward(_)
    ));
}

/// A metered credential: `allowance` requests of `weather`, attenuated to `lower` if given.
fn metered_credential(allowance: u64, lower: Option<u64>, salt: u8) -> String {
    let keyring: crate::Keyring = KEYS.parse().unwrap();
    let p = Preimage::from_bytes([salt; 32]);
    let e = ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 0,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(3600),
        allowance: Some(allowance),
    };
    let t = mint(
        &keyring,
        p.payment_hash(),
        [salt; 28],
        &e,
        NOW_MS / 1000 - 10,
    )
    .unwrap();
    let mac = match lower {
        Some(n) => {
            crate::mint::attenuate(&t.macaroon_b64, &format!("weather_allowance={n}")).unwrap()
        }
        None => t.macaroon_b64,
    };
    format!("L402 {mac}:{}", p.expose_hex())
}

/// Runs one metered request against a store holding `used`; returns the step after it.
fn meter_once(e: &Edge, st: &mut EdgeState, cred: &str, now_ms: u64, used: &mut u64) -> Step {
    let h: &[(&str, &[u8])] = &[("authorization", cred.as_bytes())];
    let mut req = request("GET", "/weather/today", h);
    req.now_ms = Some(now_ms);
    match e.decide(st, &req) {
        Step::Meter(call) => {
            let (u, answer) = crate::Counter::apply(*used, &call.request);
            *used = u;
            e.metered(st, call, Ok(answer))
        }
        other => other,
    }
}

#[test]
fn a_metered_token_serves_its_allowance_then_is_challenged() {
    // One unit per store call: every request is counted at the store.
    let e = edge_with(|o| o.allowance_lease = Some(1), false);
    let mut st = e.new_state();
    let cred = metered_credential(5, None, 7);
    let mut used = 0;
    for left in (0..5).rev() {
        let f = forward(meter_once(&e, &mut st, &cred, NOW_MS, &mut used));
        assert!(matches!(f.outcome, Outcome::Metered { .. }));
        let n = left.to_string();
        assert!(
            f.set
                .contains(&("x-l402-allowance-remaining".into(), n.clone()))
        );
        assert_eq!(f.respond, vec![("l402-allowance-remaining", n)]);
        let ctx = f.set.iter().find(|(k, _)| k == "x-l402-context").unwrap();
        let key: ContextKey = CTX_KEY.parse().unwrap();
        let c = verify_context(&key, &ctx.1, "GET", "/weather/today", NOW_MS / 1000, 0).unwrap();
        assert_eq!(c.allowance_remaining, Some(left));
    }
    match meter_once(&e, &mut st, &cred, NOW_MS, &mut used) {
        Step::Challenge(c) => assert_eq!(c.pending.reason(), Reason::AllowanceSpent),
        other => panic!("{other:?}"),
    }
    assert_eq!(used, 5);
    // An unmetered token on the same route never reaches the store.
    let plain = credential("weather", &["read"], 8);
    let h: &[(&str, &[u8])] = &[("authorization", plain.as_bytes())];
    let f = forward(e.decide(&mut st, &request("GET", "/weather/x", h)));
    assert!(matches!(f.outcome, Outcome::Authorized { .. }));
    assert!(f.respond.is_empty());
}

#[test]
fn an_attenuated_copy_is_held_to_its_lower_allowance_on_the_shared_count() {
    let e = edge_with(|o| o.allowance_lease = Some(1), false);
    let mut st = e.new_state();
    let full = metered_credential(5, None, 9);
    let copy = metered_credential(5, Some(2), 9);
    let mut used = 0;
    forward(meter_once(&e, &mut st, &copy, NOW_MS, &mut used));
    forward(meter_once(&e, &mut st, &full, NOW_MS, &mut used));
    // Two used: the copy's limit is reached, the original has three left.
    assert!(matches!(
        meter_once(&e, &mut st, &copy, NOW_MS, &mut used),
        Step::Challenge(_)
    ));
    let f = forward(meter_once(&e, &mut st, &full, NOW_MS, &mut used));
    assert!(
        f.set
            .contains(&("x-l402-allowance-remaining".into(), "2".into()))
    );
    // A copy cannot raise it: the lowest allowance caveat holds.
    let raised = metered_credential(2, None, 10);
    let raised = {
        let (scheme_mac, pre) = raised.rsplit_once(':').unwrap();
        let mac = scheme_mac.trim_start_matches("L402 ");
        let up = crate::mint::attenuate(mac, "weather_allowance=100").unwrap();
        format!("L402 {up}:{pre}")
    };
    let mut used = 2;
    assert!(matches!(
        meter_once(&e, &mut st, &raised, NOW_MS, &mut used),
        Step::Challenge(_)
    ));
    // Zero is spent before any store call.
    let zero = metered_credential(5, Some(0), 11);
    let h: &[(&str, &[u8])] = &[("authorization", zero.as_bytes())];
    match e.decide(&mut st, &request("GET", "/weather/x", h)) {
        Step::Challenge(c) => assert_eq!(c.pending.reason(), Reason::AllowanceSpent),
        other => panic!("{other:?}"),
    }
}

#[test]
fn leases_spend_locally_and_never_pass_the_limit() {
    // Two edge instances share one count, each leasing up to 8.
    let e = edge();
    let mut a = e.new_state();
    let mut b = e.new_state();
    let cred = metered_credential(50, None, 12);
    let mut used = 0;
    let mut served = 0;
    let mut store_calls = 0;
    for i in 0..200u64 {
        let st = if i % 3 == 0 { &mut b } else { &mut a };
        let h: &[(&str, &[u8])] = &[("authorization", cred.as_bytes())];
        let step = match e.decide(st, &request("GET", "/weather/x", h)) {
            Step::Meter(call) => {
                store_calls += 1;
                let (u, answer) = crate::Counter::apply(used, &call.request);
                used = u;
                e.metered(st, call, Ok(answer))
            }
            other => other,
        };
        if matches!(step, Step::Forward(_)) {
            served += 1;
        }
    }
    assert_eq!(served, 50, "every unit is served while both keep asking");
    assert_eq!(used, 50);
    assert!(store_calls < 200, "{store_calls}");
    assert!(a.expired_leases(NOW_MS, true).is_empty());
}

#[test]
fn run_out_leases_go_back_to_the_store() {
    let e = edge_with(
        |o| {
            o.allowance_lease_ms = Some(1000);
            o.allowance_lease = Some(8);
        },
        false,
    );
    let mut st = e.new_state();
    let cred = metered_credential(100, None, 13);
    let mut used = 0;
    // Slow start: 1, 2, 4, 8 units per take as each lease is spent.
    for _ in 0..15 {
        forward(meter_once(&e, &mut st, &cred, NOW_MS, &mut used));
    }
    assert_eq!(used, 15);
    forward(meter_once(&e, &mut st, &cred, NOW_MS + 10, &mut used));
    assert_eq!(used, 23, "a lease of 8, one spent");
    // After the lease time, the seven left go back with the next take.
    let h: &[(&str, &[u8])] = &[("authorization", cred.as_bytes())];
    let mut req = request("GET", "/weather/x", h);
    req.now_ms = Some(NOW_MS + 1010);
    match e.decide(&mut st, &req) {
        Step::Meter(call) => assert_eq!((call.request.release, call.request.take), (7, 1)),
        other => panic!("{other:?}"),
    }
    // Or by the host's timer.
    let mut st = e.new_state();
    for _ in 0..4 {
        forward(meter_once(&e, &mut st, &cred, NOW_MS, &mut used));
    }
    let back = st.expired_leases(NOW_MS + 1000, false);
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].take, back[0].release), (0, 3));
}

#[test]
fn a_burst_in_flight_before_any_answer_strands_no_unit() {
    // Two instances, 200 requests of one 50-request token all asking before any answer
    // (a thundering herd): exactly 50 pass, whatever order the answers come back in.
    let e = edge();
    let mut states = [e.new_state(), e.new_state()];
    let cred = metered_credential(50, None, 16);
    let h: &[(&str, &[u8])] = &[("authorization", cred.as_bytes())];
    let mut calls = Vec::new();
    for i in 0..200usize {
        match e.decide(&mut states[i % 2], &request("GET", "/weather/x", h)) {
            Step::Meter(c) => calls.push((i % 2, c)),
            other => panic!("{other:?}"),
        }
    }
    let mut used = 0;
    let mut served = 0;
    // Answered in reverse: the store's order differs from the instances' own.
    for (i, call) in calls.into_iter().rev() {
        let (u, answer) = crate::Counter::apply(used, &call.request);
        used = u;
        if let Step::Forward(_) = e.metered(&mut states[i], call, Ok(answer)) {
            served += 1;
        }
    }
    assert_eq!((served, used), (50, 50));
}

#[test]
fn an_allowance_store_failure_fails_closed_for_metered_tokens_only() {
    let e = edge();
    let mut st = e.new_state();
    let cred = metered_credential(5, None, 14);
    let h: &[(&str, &[u8])] = &[("authorization", cred.as_bytes())];
    let call = match e.decide(&mut st, &request("GET", "/weather/x", h)) {
        Step::Meter(c) => c,
        other => panic!("{other:?}"),
    };
    let (status, body, _) = reply(e.metered(&mut st, call, Err(HostFailure::AllowanceStore)));
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"error":"allowance_store_unavailable"}"#)
    );
    // A store that grants more than asked is not believed.
    let call = match e.decide(&mut st, &request("GET", "/weather/x", h)) {
        Step::Meter(c) => c,
        other => panic!("{other:?}"),
    };
    let lie = AllowanceAnswer {
        granted: 1000,
        left: 0,
    };
    assert!(matches!(
        e.metered(&mut st, call, Ok(lie)),
        Step::Challenge(_)
    ));
    let plain = credential("weather", &["read"], 15);
    let h: &[(&str, &[u8])] = &[("authorization", plain.as_bytes())];
    forward(e.decide(&mut st, &request("GET", "/weather/x", h)));
}

#[test]
fn a_routes_rate_limit_is_asked_before_the_count() {
    let routes = r#"[{"path":"/weather","service":"weather","capabilities":"read","rate_limit":"L402_PER_TOKEN"}]"#;
    let e = edge_with(|o| o.routes = Some(routes.into()), false);
    let mut st = e.new_state();
    let cred = metered_credential(5, None, 17);
    let h: &[(&str, &[u8])] = &[("authorization", cred.as_bytes())];
    let ask = |st: &mut EdgeState| match e.decide(st, &request("GET", "/weather/x", h)) {
        Step::RateLimit(c) => c,
        other => panic!("{other:?}"),
    };
    let call = ask(&mut st);
    assert_eq!(call.limiter, "L402_PER_TOKEN");
    assert_eq!(call.key.len(), 64);
    // Over the limit: 429, and nothing counted.
    let (status, body, outcome) = reply(e.rate_limited(&mut st, call, Ok(false)));
    assert_eq!((status, outcome), (429, Outcome::TokenRateLimited));
    assert_eq!(body, r#"{"error":"token_rate_limited"}"#);
    let call = ask(&mut st);
    let (status, _, _) = reply(e.rate_limited(&mut st, call, Err(HostFailure::RateLimiter)));
    assert_eq!(status, 503);
    // Within it: counted, then forwarded.
    let call = ask(&mut st);
    match e.rate_limited(&mut st, call, Ok(true)) {
        Step::Meter(m) => assert_eq!(m.request.take, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_unit_the_host_did_not_serve_goes_back() {
    let e = edge_with(|o| o.allowance_lease = Some(1), false);
    let mut st = e.new_state();
    let cred = metered_credential(1, None, 18);
    let mut used = 0;
    let f = forward(meter_once(&e, &mut st, &cred, NOW_MS, &mut used));
    let unit = f.metered.unwrap();
    // Envoy's local_ratelimit answered 429 after the filter: the unit is at hand again.
    e.unserved(&mut st, &unit, NOW_MS);
    forward(meter_once(&e, &mut st, &cred, NOW_MS + 1, &mut used));
    assert_eq!(used, 1, "served from the refund, not the store");
    assert!(matches!(
        meter_once(&e, &mut st, &cred, NOW_MS + 2, &mut used),
        Step::Challenge(_)
    ));
}

#[test]
fn far_from_the_end_concurrent_takes_lease_too() {
    let e = edge_with(|o| o.allowance_lease = Some(8), false);
    let mut st = e.new_state();
    let cred = metered_credential(1_000_000, None, 19);
    let h: &[(&str, &[u8])] = &[("authorization", cred.as_bytes())];
    let mut used = 0;
    // Ramp up one at a time: 1, 2, 4, 8.
    for _ in 0..15 {
        forward(meter_once(&e, &mut st, &cred, NOW_MS, &mut used));
    }
    // Lease spent; now several requests at once, all before any answer.
    let calls: Vec<MeterCall> = (0..4)
        .map(
            |_| match e.decide(&mut st, &request("GET", "/weather/x", h)) {
                Step::Meter(c) => c,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    assert!(
        calls.iter().all(|c| c.request.take == 8),
        "plenty left: each leases"
    );
}

const BROWSER: &[u8] = b"text/html,application/xhtml+xml,*/*;q=0.8";

/// The macaroon and preimage inside a [`credential`] header.
fn parts(header: &str) -> (String, String) {
    let (m, p) = header.trim_start_matches("L402 ").split_once(':').unwrap();
    (m.to_owned(), p.to_owned())
}

fn header<'a>(r: &'a HttpResponse, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn a_cookie_credential_is_held_to_every_rule_and_never_forwarded() {
    let e = edge();
    let mut st = e.new_state();
    let (m, p) = parts(&credential("weather", &["read"], 7));
    let cookie = format!("theme=dark; L402={m}:{p}; session=abc");
    let h: &[(&str, &[u8])] = &[("Cookie", cookie.as_bytes())];
    let f = forward(e.decide(&mut st, &request("GET", "/weather/x", h)));
    assert!(matches!(f.outcome, Outcome::Authorized { .. }));
    assert_eq!(f.remove, vec!["Cookie"]);
    assert!(
        f.set
            .contains(&("cookie".to_owned(), "theme=dark; session=abc".to_owned()))
    );
    // The same cookie for another service, or a capability it lacks: refused like a header.
    let h: &[(&str, &[u8])] = &[("cookie", cookie.as_bytes())];
    match e.decide(&mut st, &request("GET", "/admin", h)) {
        Step::Challenge(c) => assert_eq!(c.pending.reason(), Reason::ServiceNotAllowed),
        other => panic!("{other:?}"),
    }
    // A wrong preimage in a cookie is a wrong preimage.
    let bad = format!("L402={m}:{}", "00".repeat(32));
    let h: &[(&str, &[u8])] = &[("cookie", bad.as_bytes())];
    match e.decide(&mut st, &request("GET", "/weather", h)) {
        Step::Challenge(c) => assert_eq!(c.pending.reason(), Reason::WrongPreimage),
        other => panic!("{other:?}"),
    }
    // Revoked through the deny-list: refused.
    let token_id = match e.decide(
        &mut st,
        &request("GET", "/weather", &[("cookie", cookie.as_bytes())]),
    ) {
        Step::Forward(f) => f
            .set
            .iter()
            .find(|(n, _)| n == "x-l402-token-id")
            .unwrap()
            .1
            .clone(),
        other => panic!("{other:?}"),
    };
    let revoked = edge_with(|o| o.deny_list = vec![token_id], false);
    let mut st2 = revoked.new_state();
    match revoked.decide(
        &mut st2,
        &request("GET", "/weather", &[("cookie", cookie.as_bytes())]),
    ) {
        Step::Challenge(c) => assert_eq!(c.pending.reason(), Reason::Revoked),
        other => panic!("{other:?}"),
    }
    // Unsold paths lose the edge's cookies too; a request with only those loses `Cookie`.
    let only = format!("L402={m}:{p}; L402-pending-0011223344556677=x");
    let f = forward(e.decide(
        &mut st,
        &request("GET", "/free", &[("cookie", only.as_bytes())]),
    ));
    assert_eq!((f.remove, f.set.len()), (vec!["cookie".to_owned()], 0));
    // Cookies that are not the edge's pass untouched (nothing removed, nothing set).
    let f = forward(e.decide(
        &mut st,
        &request("GET", "/free", &[("cookie", b"a=b; L402x=1")]),
    ));
    assert!(f.remove.is_empty() && f.set.is_empty());
}

fn catalog_body() -> Vec<u8> {
    br#"{"provider":"Test","services":[{"name":"weather","price_sat":21,"capabilities":["read"],"lifetime_secs":3600},{"name":"admin","price_sat":5}]}"#.to_vec()
}

#[test]
fn discovery_is_served_from_the_cached_catalog_and_never_forwarded() {
    let e = edge_with(|o| o.openapi_path = Some("/openapi.json".into()), false);
    let mut st = e.new_state();
    let call = match e.decide(&mut st, &request("GET", "/.well-known/l402.json", &[])) {
        Step::Ask(c) => c,
        other => panic!("{other:?}"),
    };
    assert_eq!(call.path, CATALOG_PATH);
    let r = e.service_answered(&mut st, call, Some(200), Some(&catalog_body()));
    assert_eq!((r.response.status, r.outcome), (200, Outcome::Discovery));
    let m: serde_json::Value = serde_json::from_str(&r.response.body).unwrap();
    assert_eq!(m["services"][0]["resources"][0]["path"], "/weather");
    assert_eq!(
        m["services"][0]["resources"][0]["pricing"]["price_msat"],
        21_000
    );
    assert_eq!(m["openapi"], "/openapi.json");
    assert_eq!(
        header(&r.response, "access-control-allow-origin"),
        vec!["*"]
    );
    // Fresh: answered from the cache; the OpenAPI document too.
    let (status, body, _) = reply(e.decide(&mut st, &request("GET", "/openapi.json", &[])));
    assert_eq!(status, 200);
    assert!(body.contains("x-payment-info"));
    // Stale and the service away: the last catalog stands in; with none, 503.
    let later = request("GET", "/.well-known/l402.json", &[]);
    let later = EdgeRequest {
        now_ms: Some(NOW_MS + CATALOG_FRESH_MS + 1),
        ..later
    };
    let Step::Ask(call) = e.decide(&mut st, &later) else {
        panic!("a stale catalog is fetched again")
    };
    let r = e.service_answered(&mut st, call, None, None);
    assert_eq!(r.response.status, 200);
    let mut fresh = e.new_state();
    let Step::Ask(call) = e.decide(&mut fresh, &request("GET", "/.well-known/l402.json", &[]))
    else {
        panic!()
    };
    let r = e.service_answered(&mut fresh, call, Some(200), Some(b"{\"nope\":1}"));
    assert_eq!(r.response.status, 503);
    // Switched off: the paths are the origin's.
    let off = edge_with(|o| o.discovery = Some(false), false);
    let f = forward(off.decide(
        &mut off.new_state(),
        &request("GET", "/.well-known/l402.json", &[]),
    ));
    assert_eq!(f.outcome, Outcome::Unsold);
}

/// Asks for a page 402 on `/weather/today?x=1` and answers it with a challenge for `salt`.
fn page_402(e: &Edge, st: &mut EdgeState, salt: u8) -> (HttpResponse, String, String) {
    let (m, p) = parts(&credential("weather", &["read"], salt));
    let hash = Preimage::from_hex(&p).unwrap().payment_hash().to_hex();
    let h: &[(&str, &[u8])] = &[("accept", BROWSER)];
    let call = match e.decide(st, &request("GET", "/weather/today?x=1", h)) {
        Step::Challenge(c) => c,
        other => panic!("{other:?}"),
    };
    let answer = serde_json::json!({
        "macaroon": m, "invoice": "lnbcrt10u1pjqqqqqpp5qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqsdqqcqzzsxqyz5vq",
        "payment_hash": hash, "expires_at": NOW_MS / 1000 + 600, "description": "Forecasts", "lifetime_secs": 3600
    });
    let r = e.challenge_answered(call.pending, Some(200), Some(answer.to_string().as_bytes()));
    (r.response, m, p)
}

#[test]
fn browsers_get_the_paywall_page_and_machines_todays_402() {
    let e = edge();
    let mut st = e.new_state();
    let (r, m, p) = page_402(&e, &mut st, 9);
    assert_eq!(r.status, 402);
    assert_eq!(header(&r, "content-type"), vec!["text/html; charset=utf-8"]);
    assert_eq!(
        header(&r, "www-authenticate").len(),
        2,
        "the challenge stays in the headers"
    );
    assert_eq!(header(&r, "link"), vec![MANIFEST_LINK]);
    let hash = Preimage::from_hex(&p).unwrap().payment_hash().to_hex();
    let pending = header(&r, "set-cookie")[0];
    assert!(pending.starts_with(&format!(
        "L402-pending-{}={m}; Path=/.well-known/l402/status; HttpOnly",
        &hash[..16]
    )));
    assert!(
        r.body.contains("Forecasts") && r.body.contains("1 hour") && r.body.contains("1000 sat")
    );
    // A machine client: JSON, exactly as before, plus the Link.
    let call = match e.decide(&mut st, &request("GET", "/weather", &[("accept", b"*/*")])) {
        Step::Challenge(c) => c,
        other => panic!("{other:?}"),
    };
    let ok =
        br#"{"macaroon":"AgEE","invoice":"lnbcrt10u1pqqq","payment_hash":"00","expires_at":1}"#;
    let r = e.challenge_answered(call.pending, Some(200), Some(ok));
    assert_eq!(r.response.body, r#"{"error":"missing_credential"}"#);
    assert!(header(&r.response, "set-cookie").is_empty());
    // gRPC never gets a page, whatever it accepts.
    let h: &[(&str, &[u8])] = &[("accept", BROWSER), ("content-type", b"application/grpc")];
    match e.decide(&mut st, &request("GET", "/weather", h)) {
        Step::Challenge(c) => assert!(c.pending.page.is_none()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_status_endpoint_sets_the_credential_only_for_a_paid_invoice() {
    let e = edge();
    let mut st = e.new_state();
    let (_, m, p) = page_402(&e, &mut st, 11);
    let hash = Preimage::from_hex(&p).unwrap().payment_hash().to_hex();
    let target = format!(
        "/.well-known/l402/status?p={}&return=%2Fweather%2Ftoday%3Fx%3D1",
        &hash[..16]
    );
    let cookie = format!("L402-pending-{}={m}", &hash[..16]);
    let ask = |e: &Edge, st: &mut EdgeState, accept: &'static [u8]| {
        let h: &[(&str, &[u8])] = &[("cookie", cookie.as_bytes()), ("accept", accept)];
        match e.decide(st, &request("GET", &target, h)) {
            Step::Ask(c) => c,
            other => panic!("{other:?}"),
        }
    };
    let call = ask(&e, &mut st, b"application/json");
    assert_eq!(call.path, INVOICE_STATUS_PATH);
    assert_eq!(
        call.body,
        format!("{{\"payment_hash\":\"{hash}\"}}").into_bytes()
    );
    let r = e.service_answered(&mut st, call, Some(200), Some(br#"{"state":"open"}"#));
    assert_eq!(
        (r.response.status, r.response.body.as_str()),
        (200, r#"{"state":"open"}"#)
    );
    assert!(header(&r.response, "set-cookie").is_empty());
    // A preimage that does not pay the hash: nothing set, 503.
    let call = ask(&e, &mut st, b"application/json");
    let lie = format!(r#"{{"state":"settled","preimage":"{}"}}"#, "00".repeat(32));
    let r = e.service_answered(&mut st, call, Some(200), Some(lie.as_bytes()));
    assert_eq!(r.response.status, 503);
    assert!(header(&r.response, "set-cookie").is_empty());
    // Settled: the credential cookie for the route, for the token's life; a browser without
    // JavaScript is sent back to the page.
    let paid = format!(r#"{{"state":"settled","preimage":"{p}"}}"#);
    let call = ask(&e, &mut st, BROWSER);
    let r = e.service_answered(&mut st, call, Some(200), Some(paid.as_bytes()));
    assert_eq!(r.response.status, 303);
    assert_eq!(header(&r.response, "location"), vec!["/weather/today?x=1"]);
    let cookies = header(&r.response, "set-cookie");
    assert!(
        cookies[0].starts_with(&format!(
            "L402={m}:{p}; Path=/weather; HttpOnly; SameSite=Lax; Max-Age="
        )),
        "{}",
        cookies[0]
    );
    assert!(cookies[1].contains("Max-Age=0"));
    // The cookie it set is a credential.
    let set = format!("L402={m}:{p}");
    let f = forward(e.decide(
        &mut st,
        &request("GET", "/weather/today", &[("cookie", set.as_bytes())]),
    ));
    assert!(matches!(f.outcome, Outcome::Authorized { .. }));
    // No pending cookie, another page's cookie, or a forged macaroon: refused before any call.
    let h: &[(&str, &[u8])] = &[];
    assert_eq!(reply(e.decide(&mut st, &request("GET", &target, h))).0, 400);
    let forged = format!("L402-pending-{}=AgEEbHNhdA", &hash[..16]);
    let h: &[(&str, &[u8])] = &[("cookie", forged.as_bytes())];
    assert_eq!(reply(e.decide(&mut st, &request("GET", &target, h))).0, 400);
    let open_redirect = format!(
        "/.well-known/l402/status?p={}&return=//evil.example",
        &hash[..16]
    );
    let h: &[(&str, &[u8])] = &[("cookie", cookie.as_bytes())];
    assert_eq!(
        reply(e.decide(&mut st, &request("GET", &open_redirect, h))).0,
        400
    );
}
