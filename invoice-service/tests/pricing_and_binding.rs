//! Per-request prices from a real HTTP pricer, and tokens bound to the client's address, on
//! the `dev` backend: what the edge passes reaches the pricer, answers are held to the
//! catalog, failures follow the service's `on_error`, the pool serves fixed prices only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    clippy::panic
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use invoice_service::app::{Running, start};
use invoice_service::config::{Config, env};
use l402_core::{
    ChallengeResponse, Credentials, Keyring, NoDenyList, Reason, Request, Verifier, inspect,
};
use serde_json::{Value, json};

const KEYS: &str = "6:6666666666666666666666666666666666666666666666666666666666666666";
const EDGE: &str = "edge-token-pricing-tests-01";

/// A pricer as an operator would write one: prices by path, and misbehaves on request.
#[derive(Clone, Default)]
struct Pricer {
    seen: Arc<Mutex<Vec<Value>>>,
}

async fn price(State(p): State<Pricer>, Json(q): Json<Value>) -> axum::response::Response {
    use axum::response::IntoResponse;
    p.seen.lock().unwrap().push(q.clone());
    let path = q["path"].as_str().unwrap_or_default().to_owned();
    match path.as_str() {
        "/maps/tile" => Json(json!({"price_sat": 7})).into_response(),
        "/maps/bulk" => {
            Json(json!({"price_sat": 50, "capabilities": ["read"], "lifetime_secs": 900}))
                .into_response()
        }
        "/maps/slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Json(json!({"price_sat": 7})).into_response()
        }
        "/maps/greedy" => Json(json!({"price_sat": 100_000})).into_response(),
        "/maps/admin" => Json(json!({"price_sat": 5, "capabilities": ["admin"]})).into_response(),
        "/maps/garbage" => "not json".into_response(),
        _ => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "no price").into_response(),
    }
}

async fn start_pricer() -> (String, Pricer) {
    let p = Pricer::default();
    let app = axum::Router::new()
        .route("/price", post(price))
        .with_state(p.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/price"), p)
}

fn config(pricer: &str) -> Config {
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
edge_tokens = ["{EDGE}"]
retry_after_secs = 9
[backend]
kind = "dev"
[pool]
enabled = true
depth = 2
[[services]]
name = "weather"
price_sat = 10
[[services]]
name = "maps"
price_sat = 3
capabilities = ["read", "write"]
lifetime = "1h"
[services.pricing]
url = "{pricer}"
timeout = "500ms"
max_in_flight = 4
max_price_sat = 1000
on_error = "catalog"
[[services]]
name = "maps-strict"
price_sat = 3
[services.pricing]
url = "{pricer}"
timeout = "500ms"
max_price_sat = 1000
on_error = "fail"
[[services]]
name = "geo"
price_sat = 2
capabilities = ["read"]
bind_client_ip = true
client_ip_prefix_v6 = 64
"#
    );
    Config::parse(&text, &HashMap::from([(env::KEYS, KEYS)])).unwrap()
}

async fn service() -> (Running, String, Pricer) {
    let (url, pricer) = start_pricer().await;
    let r = start(config(&url), invoice_service::clock::system())
        .await
        .unwrap();
    let base = format!("http://{}", r.addr);
    (r, base, pricer)
}

async fn challenge(base: &str, body: Value) -> (u16, Value, Option<String>) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/challenges"))
        .bearer_auth(EDGE)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, resp.json().await.unwrap(), retry)
}

/// The invoice's amount as its human-readable part writes it (`lnbcrt70n1…` is 7 sat).
fn hrp_amount(invoice: &str) -> &str {
    let rest = invoice.strip_prefix("lnbcrt").unwrap();
    &rest[..rest.rfind('1').unwrap()]
}

/// The service's `/metrics` page.
async fn metrics_page(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn ask(service: &str, path: &str) -> Value {
    json!({"service": service, "reason": "missing_credential", "method": "GET", "path": path, "client_ip": "203.0.113.7"})
}

#[tokio::test]
async fn the_pricer_sets_the_terms_within_the_catalog() {
    let (r, base, pricer) = service().await;
    // its price, the catalog's capabilities and lifetime
    let (s, b, _) = challenge(&base, ask("maps", "/maps/tile")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(hrp_amount(b["invoice"].as_str().unwrap()), "70n");
    let caveats = inspect(b["macaroon"].as_str().unwrap()).unwrap().caveats;
    assert_eq!(caveats[1], "maps_capabilities=read,write");
    // what the edge passed reached the pricer, with the catalog's capabilities
    assert_eq!(
        pricer.seen.lock().unwrap()[0],
        json!({"service": "maps", "method": "GET", "path": "/maps/tile", "capabilities": ["read", "write"], "client_ip": "203.0.113.7"})
    );
    // narrower capabilities and a shorter lifetime
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (_, b, _) = challenge(&base, ask("maps", "/maps/bulk")).await;
    assert_eq!(hrp_amount(b["invoice"].as_str().unwrap()), "500n");
    let caveats = inspect(b["macaroon"].as_str().unwrap()).unwrap().caveats;
    assert_eq!(caveats[1], "maps_capabilities=read");
    let until: u64 = caveats[2]
        .strip_prefix("maps_valid_until=")
        .unwrap()
        .parse()
        .unwrap();
    assert!((now + 899..=now + 901).contains(&until), "{until} vs {now}");
    // a failure, a hang, garbage, or an answer outside the catalog: the catalog's terms
    for path in [
        "/maps/none",
        "/maps/slow",
        "/maps/garbage",
        "/maps/greedy",
        "/maps/admin",
    ] {
        let started = std::time::Instant::now();
        let (s, b, _) = challenge(&base, ask("maps", path)).await;
        assert_eq!(s, 200, "{path}: {b}");
        assert_eq!(hrp_amount(b["invoice"].as_str().unwrap()), "30n", "{path}");
        let caveats = inspect(b["macaroon"].as_str().unwrap()).unwrap().caveats;
        assert_eq!(caveats[1], "maps_capabilities=read,write", "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path}: bounded by the timeout"
        );
    }
    // on_error = "fail": 503 with Retry-After, and no invoice made
    for path in ["/maps/none", "/maps/slow", "/maps/greedy"] {
        let (s, b, retry) = challenge(&base, ask("maps-strict", path)).await;
        assert_eq!(
            (s, b["error"].as_str()),
            (503, Some("pricing_unavailable")),
            "{path}"
        );
        assert_eq!(retry.as_deref(), Some("9"));
    }
    let metrics = metrics_page(&base).await;
    for line in [
        r#"l402_pricing_calls_total{outcome="ok",service="maps"} 2"#,
        r#"l402_pricing_calls_total{outcome="timeout",service="maps"} 1"#,
        r#"l402_pricing_calls_total{outcome="unavailable",service="maps"} 1"#,
        r#"l402_pricing_calls_total{outcome="malformed",service="maps"} 1"#,
        r#"l402_pricing_calls_total{outcome="out_of_bounds",service="maps"} 2"#,
        r#"l402_challenges_total{result="pricing_unavailable",service="maps-strict"} 3"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    // the pool keeps invoices for the fixed-price services only, and serves them
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while r.state.pool().unwrap().depth("weather") < 2 {
        assert!(std::time::Instant::now() < deadline, "pool never filled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(r.state.pool().unwrap().depth("maps"), 0);
    assert_eq!(r.state.pool().unwrap().depth("maps-strict"), 0);
    let (s, _, _) = challenge(&base, ask("weather", "/weather")).await;
    assert_eq!(s, 200);
    let metrics = metrics_page(&base).await;
    assert!(
        metrics.contains(r#"l402_pool_hits_total{service="weather"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"l402_pool_hits_total{service="maps"}"#));
    r.shutdown.cancel();
}

#[tokio::test]
async fn pricer_calls_in_flight_are_bounded() {
    let (url, pricer) = start_pricer().await;
    // One permit and a slow pricer: a second call finds the bound reached and is charged the
    // catalog price at once, without reaching the pricer.
    let cfg = Config::parse(
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
edge_tokens = ["{EDGE}"]
[backend]
kind = "dev"
[pool]
enabled = false
[[services]]
name = "maps"
price_sat = 3
[services.pricing]
url = "{url}"
timeout = "400ms"
max_in_flight = 1
max_price_sat = 100
on_error = "catalog"
"#
        ),
        &HashMap::from([(env::KEYS, KEYS)]),
    )
    .unwrap();
    let r = start(cfg, invoice_service::clock::system()).await.unwrap();
    let base = format!("http://{}", r.addr);
    let (a, b) = tokio::join!(challenge(&base, ask("maps", "/maps/slow")), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        challenge(&base, ask("maps", "/maps/tile")).await
    });
    assert_eq!(hrp_amount(a.1["invoice"].as_str().unwrap()), "30n");
    assert_eq!(hrp_amount(b.1["invoice"].as_str().unwrap()), "30n");
    assert_eq!(pricer.seen.lock().unwrap().len(), 1);
    // once the slow call is over, the pricer is asked again
    let (_, c, _) = challenge(&base, ask("maps", "/maps/tile")).await;
    assert_eq!(hrp_amount(c["invoice"].as_str().unwrap()), "70n");
    let metrics = metrics_page(&base).await;
    assert!(
        metrics.contains(r#"l402_pricing_calls_total{outcome="busy",service="maps"} 1"#),
        "{metrics}"
    );
    r.shutdown.cancel();
}

#[tokio::test]
async fn bound_tokens_name_the_clients_network() {
    let (r, base, _) = service().await;
    // a binding service needs the address from the edge
    for body in [
        json!({"service": "geo"}),
        json!({"service": "geo", "client_ip": "not-an-address"}),
    ] {
        let (s, b, _) = challenge(&base, body).await;
        assert_eq!((s, b["error"].as_str()), (400, Some("client_ip_required")));
    }
    let verifier = Verifier::new(KEYS.parse::<Keyring>().unwrap());
    for (client, network, same, other) in [
        (
            "203.0.113.7",
            "203.0.113.7/32",
            "203.0.113.7",
            "203.0.113.8",
        ),
        (
            "2001:db8:1:2::7",
            "2001:db8:1:2::/64",
            "2001:db8:1:2:ffff::1",
            "2001:db8:1:3::7",
        ),
    ] {
        let (s, b, _) = challenge(&base, json!({"service": "geo", "client_ip": client})).await;
        assert_eq!(s, 200, "{b}");
        let ch = ChallengeResponse::parse(b.to_string().as_bytes()).unwrap();
        let caveats = inspect(&ch.macaroon).unwrap().caveats;
        assert_eq!(caveats.last().unwrap(), &format!("geo_client_ip={network}"));
        let paid = reqwest::Client::new()
            .post(format!("{base}/v1/dev/pay"))
            .json(&json!({"invoice": ch.invoice}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let auth = format!(
            "L402 {}:{}",
            ch.macaroon,
            paid["preimage"].as_str().unwrap()
        );
        let creds = Credentials::from_headers([("authorization", auth.as_str())]);
        let judge = |ip: Option<&str>| {
            verifier
                .verify(
                    &creds,
                    &Request {
                        service: "geo",
                        capabilities: "read",
                        now: 1_900_000_000,
                        client_ip: ip.map(|i| i.parse().unwrap()),
                    },
                    &NoDenyList,
                )
                .map(|_| ())
                .map_err(|r| r.reason)
        };
        assert_eq!(judge(Some(same)), Ok(()), "{client}");
        assert_eq!(
            judge(Some(other)),
            Err(Reason::ClientIpMismatch),
            "{client}"
        );
        assert_eq!(judge(None), Err(Reason::ClientIpUnknown), "{client}");
    }
    // a service that does not bind ignores the address
    let (_, b, _) = challenge(
        &base,
        json!({"service": "weather", "client_ip": "203.0.113.7"}),
    )
    .await;
    let caveats = inspect(b["macaroon"].as_str().unwrap()).unwrap().caveats;
    assert!(
        caveats.iter().all(|c| !c.contains("client_ip")),
        "{caveats:?}"
    );
    r.shutdown.cancel();
}
