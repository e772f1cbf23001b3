//! Contract tests for the `lnd`, `cln`, `phoenixd` and `eclair` backends against RECORDED exchanges:
//! a local mock answers as each node's documented REST API does (request shape, response
//! shape, error shape). They are not live nodes. The BOLT11 strings in the answers are real
//! invoices signed by the dev signer, so the service's own checks (signature, payment hash,
//! amount) run on them.
//!
//! One conformance routine runs against every backend, LDK-Node style: create, amount,
//! expiry, refusal, a node that hangs, a node that is gone.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    clippy::panic
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use invoice_service::backend::BackendConfig;
use invoice_service::backend::cln::Cln;
use invoice_service::backend::dev::DevBackend;
use invoice_service::backend::dev::DevConfig;
use invoice_service::backend::eclair::Eclair;
use invoice_service::backend::eclair::EclairConfig;
use invoice_service::backend::lnbits::LnbitsConfig;
use invoice_service::backend::lnd::Lnd;
use invoice_service::backend::phoenixd::Phoenixd;
use invoice_service::backend::phoenixd::PhoenixdConfig;
use invoice_service::backend::{
    BackendError, Guarded, InvoiceRequest, LightningBackend, NodeInvoice,
};
use invoice_service::metrics::Metrics;
use serde_json::json;
use wiremock::matchers::{
    body_json, body_partial_json, body_string_contains, header, method, path,
};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MACAROON_HEX: &str = "0201036c6e640258030a10";
const RUNE: &str = "tU-RLjMiDpY2U0o3W1oFowar36RFGpWloPbW9-RuZdo9MyZpZD0wMjRiOWExZmE4";
const PASSWORD: &str = "phoenixd-http-password";
const ECLAIR_PASSWORD: &str = "eclair-api-password";

fn request() -> InvoiceRequest {
    InvoiceRequest {
        amount_msat: 21_000,
        memo: "weather, one token".into(),
        expiry_secs: 600,
    }
}

/// A real invoice for `amount_msat`, as a node would return.
async fn real_invoice(amount_msat: u64) -> NodeInvoice {
    let dev = DevBackend::new(Some([9; 32])).unwrap();
    dev.create_invoice(&InvoiceRequest {
        amount_msat,
        ..request()
    })
    .await
    .unwrap()
}

fn guarded(inner: Arc<dyn LightningBackend>, timeout: Duration, max_in_flight: usize) -> Guarded {
    let cfg = BackendConfig {
        node: Arc::new(DevConfig::default()),
        timeout,
        max_in_flight,
    };
    Guarded::new(inner, &cfg, Metrics::new().unwrap())
}

fn client() -> reqwest::Client {
    // The backend's own client timeout is longer than the guard's, as in production.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// One node's recorded API: `mount_ok` answers a create call with `inv` after `delay`
/// (a delay past the guard's timeout is a node that hangs); `mount_error` answers with the
/// node's documented error shape.
struct Node {
    name: &'static str,
    server: MockServer,
    backend: Arc<dyn LightningBackend>,
    mount_ok: fn(&NodeInvoice, Duration) -> Mock,
    mount_error: fn() -> Mock,
}

/// The behaviours every backend must show, judged through `Guarded`, as the service uses it.
async fn conformance(node: Node) {
    let name = node.name;
    let inv = real_invoice(21_000).await;
    let g = guarded(node.backend.clone(), Duration::from_secs(2), 4);
    {
        // Creates an invoice: the recorded request shape matches, the answer is checked.
        let _m = node
            .server
            .register_as_scoped((node.mount_ok)(&inv, Duration::ZERO))
            .await;
        let got = g
            .create_invoice(&request())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (got.bolt11.as_str(), got.payment_hash),
            (inv.bolt11.as_str(), inv.payment_hash),
            "{name}"
        );
        assert!(
            got.expires_at > 1_700_000_000,
            "{name}: expiry read from the invoice"
        );
    }
    {
        // An invoice for another amount is refused, never minted against.
        let wrong = real_invoice(1_000).await;
        let _m = node
            .server
            .register_as_scoped((node.mount_ok)(&wrong, Duration::ZERO))
            .await;
        let e = g.create_invoice(&request()).await.unwrap_err();
        assert!(
            matches!(e, BackendError::BadResponse(ref s) if s.contains("amount")),
            "{name}: {e}"
        );
    }
    {
        // The documented error shape becomes Refused, with no secret in the message.
        let _m = node.server.register_as_scoped((node.mount_error)()).await;
        let e = g.create_invoice(&request()).await.unwrap_err();
        assert!(matches!(e, BackendError::Refused { .. }), "{name}: {e}");
        let text = e.to_string();
        assert!(
            !text.contains(MACAROON_HEX) && !text.contains(RUNE) && !text.contains(PASSWORD),
            "{text}"
        );
    }
    {
        // A node that hangs: the guard's timeout answers, never a hang.
        let _m = node
            .server
            .register_as_scoped((node.mount_ok)(&inv, Duration::from_secs(20)))
            .await;
        let fast = guarded(node.backend.clone(), Duration::from_millis(300), 1);
        let start = Instant::now();
        let e = fast.create_invoice(&request()).await.unwrap_err();
        assert!(matches!(e, BackendError::Timeout(_)), "{name}: {e}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{name}: {:?}",
            start.elapsed()
        );
        // Bounded in flight: one permit, two calls against a hanging node: both time out.
        let start = Instant::now();
        let req = request();
        let (a, b) = tokio::join!(fast.create_invoice(&req), fast.create_invoice(&req));
        assert!(
            matches!(a, Err(BackendError::Timeout(_)))
                && matches!(b, Err(BackendError::Timeout(_))),
            "{name}"
        );
        assert!(start.elapsed() < Duration::from_secs(2), "{name}");
    }
}

fn respond(status: u16, delay: Duration) -> ResponseTemplate {
    ResponseTemplate::new(status).set_delay(delay)
}

#[tokio::test]
async fn lnd_recorded_exchanges() {
    let server = MockServer::start().await;
    let backend = Arc::new(Lnd::new(&server.uri(), MACAROON_HEX, client()));
    conformance(Node {
        name: "lnd",
        backend,
        server,
        mount_ok: |inv, delay| {
            Mock::given(method("POST"))
                .and(path("/v1/invoices"))
                .and(header("Grpc-Metadata-macaroon", MACAROON_HEX))
                // grpc-gateway: int64 fields as strings
                .and(body_json(
                    json!({"value_msat": "21000", "memo": "weather, one token", "expiry": "600"}),
                ))
                .respond_with(respond(200, delay).set_body_json(json!({
                    "r_hash": STANDARD.encode(inv.payment_hash.0),
                    "payment_request": inv.bolt11,
                    "add_index": "7",
                    "payment_addr": STANDARD.encode([1u8; 32]),
                })))
        },
        mount_error: || {
            Mock::given(method("POST"))
                .and(path("/v1/invoices"))
                .respond_with(respond(500, Duration::ZERO).set_body_json(json!({
                    "code": 2, "message": "invoice with payment hash already exists", "details": []
                })))
        },
    })
    .await;
}

#[tokio::test]
async fn lnd_recorded_readiness_uses_invoices_read_only() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/invoices"))
        .and(header("Grpc-Metadata-macaroon", MACAROON_HEX))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"invoices": [], "last_index_offset": "0", "first_index_offset": "0"}),
        ))
        .mount(&server)
        .await;
    let lnd = Lnd::new(&server.uri(), MACAROON_HEX, client());
    lnd.check().await.unwrap();
    let bad = Lnd::new(&server.uri(), "00", client());
    assert!(matches!(
        bad.check().await,
        Err(BackendError::Refused { status: 404, .. })
    ));
}

#[tokio::test]
async fn lnd_recorded_hash_that_differs_from_the_invoice_is_refused() {
    let server = MockServer::start().await;
    let inv = real_invoice(21_000).await;
    Mock::given(method("POST"))
        .and(path("/v1/invoices"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "r_hash": STANDARD.encode([0u8; 32]), "payment_request": inv.bolt11, "add_index": "1"
        })))
        .mount(&server)
        .await;
    let g = guarded(
        Arc::new(Lnd::new(&server.uri(), MACAROON_HEX, client())),
        Duration::from_secs(2),
        1,
    );
    let e = g.create_invoice(&request()).await.unwrap_err();
    assert!(e.to_string().contains("payment hash differs"), "{e}");
}

#[tokio::test]
async fn cln_recorded_exchanges() {
    let server = MockServer::start().await;
    let backend = Arc::new(Cln::new(&server.uri(), RUNE, client()));
    conformance(Node {
        name: "cln",
        backend,
        server,
        mount_ok: |inv, delay| {
            Mock::given(method("POST"))
                .and(path("/v1/invoice"))
                .and(header("Rune", RUNE))
                .and(body_partial_json(json!({"amount_msat": 21000, "description": "weather, one token", "expiry": 600})))
                .and(body_string_contains("\"label\":\"l402-"))
                .respond_with(respond(201, delay).set_body_json(json!({
                    "payment_hash": inv.payment_hash.to_hex(),
                    "expires_at": 1_900_000_000u64,
                    "bolt11": inv.bolt11,
                    "payment_secret": "00".repeat(32),
                    "created_index": 3,
                })))
        },
        mount_error: || {
            Mock::given(method("POST")).and(path("/v1/invoice")).respond_with(respond(500, Duration::ZERO).set_body_json(json!({
                "code": 900, "message": "Duplicate label 'l402-00'"
            })))
        },
    })
    .await;
}

#[tokio::test]
async fn cln_recorded_readiness_with_an_invoice_only_rune() {
    let server = MockServer::start().await;
    // An empty `invoice` call: clnrest answers "missing required parameter" once the rune passed.
    Mock::given(method("POST"))
        .and(path("/v1/invoice"))
        .and(header("Rune", RUNE))
        .and(body_json(json!({})))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"code": -32602, "message": "missing required parameter: amount_msat"}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/invoice"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            json!({"code": 1502, "message": "Not authorized: Not derived from master"}),
        ))
        .mount(&server)
        .await;
    Cln::new(&server.uri(), RUNE, client())
        .check()
        .await
        .unwrap();
    let e = Cln::new(&server.uri(), "bogus-rune", client())
        .check()
        .await
        .unwrap_err();
    assert!(
        matches!(e, BackendError::Refused { status: 401, ref message } if message.contains("Not authorized")),
        "{e}"
    );
}

#[tokio::test]
async fn phoenixd_recorded_exchanges() {
    let server = MockServer::start().await;
    let backend = Arc::new(Phoenixd::new(&server.uri(), PASSWORD, client()));
    conformance(Node {
        name: "phoenixd",
        backend,
        server,
        mount_ok: |inv, delay| {
            let basic = format!("Basic {}", STANDARD.encode(format!(":{PASSWORD}")));
            Mock::given(method("POST"))
                .and(path("/createinvoice"))
                .and(header("Authorization", basic.as_str()))
                .and(header("content-type", "application/x-www-form-urlencoded"))
                .and(body_string_contains("amountSat=21"))
                .and(body_string_contains("expirySeconds=600"))
                .and(body_string_contains("description=weather%2C+one+token"))
                .respond_with(respond(200, delay).set_body_json(json!({
                    "amountSat": 21, "paymentHash": inv.payment_hash.to_hex(), "serialized": inv.bolt11,
                })))
        },
        mount_error: || {
            Mock::given(method("POST")).and(path("/createinvoice")).respond_with(
                respond(401, Duration::ZERO).set_body_string("Invalid authentication (use basic auth with the http password set in phoenix.conf)"),
            )
        },
    })
    .await;
}

/// Eclair's API (acinq.github.io/eclair, "Create Invoice"): form fields `description`,
/// `amountMsat`, `expireIn`; basic auth with an empty user; the answer is the decoded invoice
/// with `serialized` and `paymentHash` among many fields; errors are `{"error": "..."}` with
/// 400, and a wrong password is 401 with a plain-text body.
#[tokio::test]
async fn eclair_recorded_exchanges() {
    let server = MockServer::start().await;
    let backend = Arc::new(Eclair::new(&server.uri(), ECLAIR_PASSWORD, client()));
    conformance(Node {
        name: "eclair",
        backend,
        server,
        mount_ok: |inv, delay| {
            let basic = format!("Basic {}", STANDARD.encode(format!(":{ECLAIR_PASSWORD}")));
            Mock::given(method("POST"))
                .and(path("/createinvoice"))
                .and(header("Authorization", basic.as_str()))
                .and(header("content-type", "application/x-www-form-urlencoded"))
                .and(body_string_contains("amountMsat=21000"))
                .and(body_string_contains("expireIn=600"))
                .and(body_string_contains("description=weather%2C+one+token"))
                .respond_with(respond(200, delay).set_body_json(json!({
                    "prefix": "lnbcrt",
                    "timestamp": 1_764_000_000,
                    "nodeId": "028e2403fbfddb3d787843361f91adbda64c6f622921b802fb48a0e0ee30d8e9cb",
                    "serialized": inv.bolt11,
                    "description": "weather, one token",
                    "paymentHash": inv.payment_hash.to_hex(),
                    "paymentMetadata": "2a",
                    "expiry": 600,
                    "minFinalCltvExpiry": 30,
                    "amount": 21000,
                    "features": {"activated": {}, "unknown": []},
                    "routingInfo": []
                })))
        },
        mount_error: || {
            Mock::given(method("POST"))
                .and(path("/createinvoice"))
                .respond_with(
                    respond(400, Duration::ZERO)
                        .set_body_json(json!({"error": "amountMsat must be positive"})),
                )
        },
    })
    .await;
}

#[tokio::test]
async fn eclair_recorded_readiness_and_wrong_password() {
    let server = MockServer::start().await;
    let basic = format!("Basic {}", STANDARD.encode(format!(":{ECLAIR_PASSWORD}")));
    Mock::given(method("POST"))
        .and(path("/getinfo"))
        .and(header("Authorization", basic.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "version": "0.11.0", "nodeId": "028e2403fbfddb3d787843361f91adbda64c6f622921b802fb48a0e0ee30d8e9cb",
            "alias": "eclair", "chainHash": "06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f",
            "network": "regtest", "blockHeight": 150, "publicAddresses": [], "instanceId": "x"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_string("The supplied authentication is invalid"),
        )
        .mount(&server)
        .await;
    let good = Eclair::new(&server.uri(), ECLAIR_PASSWORD, client());
    good.check().await.unwrap();
    let bad = Eclair::new(&server.uri(), "wrong", client());
    let e = bad.check().await.unwrap_err();
    assert!(
        matches!(e, BackendError::Refused { status: 401, ref message } if message.contains("authentication is invalid")),
        "{e}"
    );
    // the password never appears in an error
    let e = bad.create_invoice(&request()).await.unwrap_err();
    assert!(!e.to_string().contains("wrong"), "{e}");
}

#[tokio::test]
async fn a_node_that_is_gone_is_unreachable_not_a_hang() {
    let port = testkit::free_port();
    for backend in [
        Arc::new(Lnd::new(
            &format!("http://127.0.0.1:{port}"),
            MACAROON_HEX,
            client(),
        )) as Arc<dyn LightningBackend>,
        Arc::new(Cln::new(
            &format!("http://127.0.0.1:{port}"),
            RUNE,
            client(),
        )),
        Arc::new(Phoenixd::new(
            &format!("http://127.0.0.1:{port}"),
            PASSWORD,
            client(),
        )),
        Arc::new(Eclair::new(
            &format!("http://127.0.0.1:{port}"),
            ECLAIR_PASSWORD,
            client(),
        )),
    ] {
        let g = guarded(backend, Duration::from_secs(2), 1);
        let e = g.create_invoice(&request()).await.unwrap_err();
        assert!(
            matches!(e, BackendError::Unreachable(_)),
            "{}: {e}",
            g.name()
        );
        assert!(matches!(g.check().await, Err(BackendError::Unreachable(_))));
    }
}

/// A node API that redirects is a failure, and the node credential never reaches the host
/// the redirect names (the production client, from `backend::build`, follows none).
#[tokio::test]
async fn node_redirects_are_not_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&elsewhere)
        .await;
    let node = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(307)
                .insert_header("location", format!("{}/createinvoice", elsewhere.uri())),
        )
        .mount(&node)
        .await;
    for node_config in [
        Arc::new(PhoenixdConfig {
            url: node.uri(),
            password: PASSWORD.into(),
        }) as Arc<dyn invoice_service::backend::NodeConfig>,
        Arc::new(LnbitsConfig {
            url: node.uri(),
            invoice_key: "lnbits-invoice-key".into(),
        }),
        Arc::new(EclairConfig {
            url: node.uri(),
            password: ECLAIR_PASSWORD.into(),
        }),
    ] {
        let cfg = BackendConfig {
            node: node_config,
            timeout: Duration::from_secs(5),
            max_in_flight: 4,
        };
        let (backend, _) = invoice_service::backend::build(&cfg).unwrap();
        assert!(backend.create_invoice(&request()).await.is_err());
    }
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "a node credential followed a redirect"
    );
}

/// The paywall's lookup, per node: an open invoice, a settled one (the preimage released), one
/// the node does not know (404 or an empty list), and a node that lies about the preimage.
#[tokio::test]
async fn invoice_lookups_recorded_for_every_node() {
    use invoice_service::backend::InvoiceLookup;
    use invoice_service::backend::lnbits::Lnbits;
    use l402_core::Preimage;

    let preimage = Preimage::from_bytes([7; 32]);
    let hash = preimage.payment_hash();
    let hex = hash.to_hex();
    let pre_hex = preimage.expose_hex();
    let lie = "00".repeat(32);
    // (node, [open answer, settled answer, lying answer], how the unknown one answers)
    type Mount = Box<dyn Fn(&str) -> Mock>;
    struct Case {
        name: &'static str,
        backend: Arc<dyn LightningBackend>,
        server: MockServer,
        answer: Mount,
        unknown: Mock,
    }
    let mut cases = Vec::new();
    {
        let server = MockServer::start().await;
        let p = format!("/v1/invoice/{hex}");
        cases.push(Case {
            name: "lnd",
            backend: Arc::new(Lnd::new(&server.uri(), MACAROON_HEX, client())),
            server,
            answer: Box::new(move |body: &str| {
                Mock::given(method("GET"))
                    .and(path(p.clone()))
                    .and(header("Grpc-Metadata-macaroon", MACAROON_HEX))
                    .respond_with(
                        ResponseTemplate::new(200)
                            .set_body_raw(body.to_owned(), "application/json"),
                    )
            }),
            unknown: Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(404).set_body_json(
                    json!({"code": 5, "message": "there are no existing invoices"}),
                )),
        });
    }
    {
        let server = MockServer::start().await;
        let h = hex.clone();
        cases.push(Case {
            name: "cln",
            backend: Arc::new(Cln::new(&server.uri(), RUNE, client())),
            server,
            answer: Box::new(move |body: &str| {
                Mock::given(method("POST"))
                    .and(path("/v1/listinvoices"))
                    .and(header("Rune", RUNE))
                    .and(body_json(json!({"payment_hash": h})))
                    .respond_with(
                        ResponseTemplate::new(200)
                            .set_body_raw(body.to_owned(), "application/json"),
                    )
            }),
            unknown: Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({"invoices": []}))),
        });
    }
    {
        let server = MockServer::start().await;
        let p = format!("/api/v1/payments/{hex}");
        cases.push(Case {
            name: "lnbits",
            backend: Arc::new(Lnbits::new(&server.uri(), "invoice-key", client())),
            server,
            answer: Box::new(move |body: &str| {
                Mock::given(method("GET"))
                    .and(path(p.clone()))
                    .and(header("X-Api-Key", "invoice-key"))
                    .respond_with(
                        ResponseTemplate::new(200)
                            .set_body_raw(body.to_owned(), "application/json"),
                    )
            }),
            unknown: Mock::given(method("GET")).respond_with(
                ResponseTemplate::new(404)
                    .set_body_json(json!({"detail": "Payment does not exist."})),
            ),
        });
    }
    {
        let server = MockServer::start().await;
        let p = format!("/payments/incoming/{hex}");
        cases.push(Case {
            name: "phoenixd",
            backend: Arc::new(Phoenixd::new(&server.uri(), PASSWORD, client())),
            server,
            answer: Box::new(move |body: &str| {
                Mock::given(method("GET"))
                    .and(path(p.clone()))
                    .respond_with(
                        ResponseTemplate::new(200)
                            .set_body_raw(body.to_owned(), "application/json"),
                    )
            }),
            unknown: Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(404).set_body_string("not found")),
        });
    }
    {
        let server = MockServer::start().await;
        let h = hex.clone();
        cases.push(Case {
            name: "eclair",
            backend: Arc::new(Eclair::new(&server.uri(), ECLAIR_PASSWORD, client())),
            server,
            answer: Box::new(move |body: &str| {
                Mock::given(method("POST"))
                    .and(path("/getreceivedinfo"))
                    .and(body_string_contains(format!("paymentHash={h}")))
                    .respond_with(
                        ResponseTemplate::new(200)
                            .set_body_raw(body.to_owned(), "application/json"),
                    )
            }),
            unknown: Mock::given(method("POST")).respond_with(
                ResponseTemplate::new(404).set_body_json(json!({"error": "Not found"})),
            ),
        });
    }
    // Each node's documented answer for: open, settled (preimage), settled with a lie.
    let answers = |name: &str, pre: &str| -> [String; 2] {
        match name {
            "lnd" => [
                json!({"state": "OPEN", "settled": false, "r_preimage": STANDARD.encode([7u8; 32])}).to_string(),
                json!({"state": "SETTLED", "settled": true,
                       "r_preimage": STANDARD.encode(hex::decode(pre).unwrap())}).to_string(),
            ],
            "cln" => [
                json!({"invoices": [{"label": "l402-x", "status": "unpaid", "payment_hash": hex}]}).to_string(),
                json!({"invoices": [{"label": "l402-x", "status": "paid", "payment_hash": hex, "payment_preimage": pre}]}).to_string(),
            ],
            "lnbits" => [
                json!({"paid": false, "status": "pending", "preimage": null, "details": {}}).to_string(),
                json!({"paid": true, "status": "success", "preimage": pre, "details": {}}).to_string(),
            ],
            "phoenixd" => [
                json!({"paymentHash": hex, "isPaid": false, "receivedSat": 0}).to_string(),
                json!({"paymentHash": hex, "preimage": pre, "isPaid": true, "receivedSat": 21}).to_string(),
            ],
            _ => [
                json!({"paymentRequest": {}, "paymentPreimage": pre, "status": {"type": "pending"}}).to_string(),
                json!({"paymentRequest": {}, "paymentPreimage": pre, "status": {"type": "received", "amount": 21000}}).to_string(),
            ],
        }
    };
    for case in cases {
        let g = guarded(Arc::clone(&case.backend), Duration::from_secs(2), 1);
        let [open, settled] = answers(case.name, &pre_hex);
        let [_, lying] = answers(case.name, &lie);
        for (body, want) in [(&open, "open"), (&settled, "settled"), (&lying, "lie")] {
            case.server.reset().await;
            (case.answer)(body).mount(&case.server).await;
            let got = g.lookup_invoice(&hash).await;
            match (want, got) {
                ("open", Ok(InvoiceLookup::Open)) => {}
                ("settled", Ok(InvoiceLookup::Settled(p))) => {
                    assert_eq!(p.expose_hex(), pre_hex, "{}", case.name);
                }
                ("lie", Err(BackendError::BadResponse(m))) => {
                    assert!(m.contains("preimage"), "{m}")
                }
                (want, got) => panic!("{}: wanted {want}, got {got:?}", case.name),
            }
        }
        case.server.reset().await;
        case.unknown.mount(&case.server).await;
        assert!(
            matches!(g.lookup_invoice(&hash).await, Ok(InvoiceLookup::Gone)),
            "{}: an invoice the node does not know is gone",
            case.name
        );
    }
}
