//! The node credentials docs/INVOICE-SERVICE.md tells operators to make, checked against each
//! node's documented permission model (recorded below with its source, since no node runs
//! here) and against the calls our backends really make (observed on a recording server):
//! the documented credential must allow those calls and nothing that moves money.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::time::Duration;

use invoice_service::backend::{InvoiceRequest, build};
use std::sync::Arc;

use invoice_service::backend::cln::ClnConfig;
use invoice_service::backend::eclair::EclairConfig;
use invoice_service::backend::lnd::LndConfig;
use invoice_service::backend::phoenixd::PhoenixdConfig;
use invoice_service::backend::{BackendConfig, NodeConfig};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// phoenixd's API documentation (phoenix.acinq.co/server/api, "Password Management"): the
/// secondary password `http-password-limited-access` cannot call these endpoints.
const PHOENIXD_LIMITED_REFUSES: [&str; 8] = [
    "/payinvoice",
    "/payoffer",
    "/paylnaddress",
    "/lnurlpay",
    "/lnurlauth",
    "/sendtoaddress",
    "/closechannel",
    "/export",
];

/// LND's permission map (lnd `rpcserver.go`, `MainRPCServerPermissions`): the REST calls our
/// backend may make and the one permission each needs.
const LND_PERMISSIONS: [(&str, &str, &str); 2] = [
    ("POST", "/v1/invoices", "invoices:write"), // lnrpc.Lightning/AddInvoice
    ("GET", "/v1/invoices", "invoices:read"),   // lnrpc.Lightning/ListInvoices (readiness)
];

/// Core Lightning's clnrest maps `POST /v1/<method>` to the JSON-RPC method; a rune with
/// `[["method=invoice"]]` (lightning-createrune(7)) allows exactly `invoice`.
const CLN_RUNE_ALLOWS: &str = "invoice";

fn doc() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/INVOICE-SERVICE.md"
    ))
    .unwrap()
}

/// The paths a backend calls for one invoice (on a server that answers nothing useful).
async fn paths_called(kind: impl FnOnce(String) -> Arc<dyn NodeConfig>) -> Vec<(String, String)> {
    let node = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(500))
        .mount(&node)
        .await;
    let cfg = BackendConfig {
        node: kind(node.uri()),
        timeout: Duration::from_secs(5),
        max_in_flight: 2,
    };
    let (backend, _) = build(&cfg).unwrap();
    let _ = backend
        .create_invoice(&InvoiceRequest {
            amount_msat: 10_000,
            memo: "m".into(),
            expiry_secs: 600,
        })
        .await;
    let _ = backend.check().await;
    node.received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| (r.method.to_string(), r.url.path().to_owned()))
        .collect()
}

#[tokio::test]
async fn phoenixd_gets_the_limited_password_and_needs_no_more() {
    let doc = doc();
    assert!(doc.contains("`http-password-limited-access`"));
    let section = doc
        .split("**phoenixd**")
        .nth(1)
        .unwrap()
        .split("```toml")
        .next()
        .unwrap();
    assert!(
        section.contains("must not be\ngiven") || section.contains("must not be given"),
        "the phoenixd section warns off the full-access password"
    );
    let calls = paths_called(|url| {
        Arc::new(PhoenixdConfig {
            url,
            password: "limited".into(),
        })
    })
    .await;
    assert!(!calls.is_empty());
    for (_, path) in &calls {
        assert!(
            !PHOENIXD_LIMITED_REFUSES.contains(&path.as_str()),
            "the backend calls {path}, which the limited password cannot"
        );
    }
    assert!(calls.iter().any(|(_, p)| p == "/createinvoice"));
}

#[tokio::test]
async fn lnd_macaroon_grants_what_the_backend_calls() {
    let doc = doc();
    let line = doc
        .lines()
        .find(|l| l.starts_with("lncli bakemacaroon"))
        .expect("the LND bakemacaroon command");
    let granted: Vec<&str> = line
        .split_whitespace()
        .filter(|w| w.contains(':') && !w.starts_with("--"))
        .collect();
    for g in &granted {
        assert!(
            g.starts_with("invoices:"),
            "the macaroon grants {g}: more than invoices"
        );
    }
    let calls = paths_called(|url| {
        Arc::new(LndConfig {
            url,
            macaroon_hex: "0201036c6e64".into(),
            tls_cert_pem: None,
        })
    })
    .await;
    assert!(!calls.is_empty());
    for (m, p) in &calls {
        let need = LND_PERMISSIONS
            .iter()
            .find(|(pm, pp, _)| pm == m && pp == p)
            .map(|(_, _, need)| *need)
            .unwrap_or_else(|| panic!("the backend calls {m} {p}: record its permission"));
        assert!(
            granted.contains(&need),
            "{m} {p} needs {need}, the documented macaroon grants {granted:?}"
        );
    }
}

#[tokio::test]
async fn cln_rune_allows_only_invoice_and_the_url_matches_the_certificate() {
    let doc = doc();
    let line = doc
        .lines()
        .find(|l| l.starts_with("lightning-cli createrune"))
        .expect("the CLN createrune command");
    assert!(
        line.contains(&format!(r#"restrictions='[["method={CLN_RUNE_ALLOWS}"]]'"#)),
        "{line}"
    );
    // CLN's generated certificate names `localhost` and `cln`, not an IP address.
    let section = doc.split("**Core Lightning**").nth(1).unwrap();
    let url = section.lines().find(|l| l.starts_with("url = ")).unwrap();
    assert!(url.contains("https://localhost:"), "{url}");
    let calls = paths_called(|url| {
        Arc::new(ClnConfig {
            url,
            rune: "rune".into(),
            tls_cert_pem: None,
        })
    })
    .await;
    assert!(!calls.is_empty());
    for (m, p) in &calls {
        assert_eq!(
            (m.as_str(), p.as_str()),
            ("POST", format!("/v1/{CLN_RUNE_ALLOWS}").as_str()),
            "the rune allows only {CLN_RUNE_ALLOWS}"
        );
    }
}

/// Eclair's API (acinq.github.io/eclair) has one password for every call, payments included:
/// what keeps payments out of reach is that the backend calls only these, and the doc tells the
/// operator to expose only these.
const ECLAIR_CALLS: [&str; 2] = ["/createinvoice", "/getinfo"];

#[tokio::test]
async fn eclair_calls_only_createinvoice_and_getinfo_as_documented() {
    let doc = doc();
    let section = doc
        .split("**eclair**")
        .nth(1)
        .unwrap()
        .split("```toml")
        .next()
        .unwrap();
    for path in ECLAIR_CALLS {
        assert!(
            section.contains(&format!("`POST {path}`")),
            "the doc names {path}"
        );
    }
    assert!(
        section.contains("can pay"),
        "the doc says what the password can do"
    );
    let calls = paths_called(|url| {
        Arc::new(EclairConfig {
            url,
            password: "p".into(),
        })
    })
    .await;
    assert_eq!(
        calls,
        ECLAIR_CALLS
            .iter()
            .map(|p| ("POST".to_owned(), (*p).to_owned()))
            .collect::<Vec<_>>()
    );
}
