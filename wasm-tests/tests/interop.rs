//! Interoperability: L402 clients nobody on this project wrote (npm lsat-js and macaroon,
//! PyPI l402-requests and pymacaroons, curl as README.md documents it), pinned and installed
//! from the registries by `scripts/install-interop-clients.sh`, against the real Envoy filter
//! and the real Worker (workerd), with the invoice-service minting on a real LNbits and an
//! LNbits wallet paying. The credential variants those clients send (scheme case, base64
//! alphabet and padding, the `preimage=` caveat in `Macaroon` headers, repeated headers) are
//! sent by hand as well. The run writes `docs/INTEROP.md`, the client × edge table.
#![cfg(feature = "e2e")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use testkit::lnbits::{Lnbits, Wallet};
use testkit::workerd::Workerd;
use testkit::{artifacts, repo_root};
use wasm_tests::{KEYS, Lightning, Stack, filter_config, parse_challenge};

#[derive(Debug)]
struct Case {
    client: String,
    edge: String,
    case: String,
    ok: bool,
    detail: String,
}

fn interop_dir() -> PathBuf {
    artifacts::installed("L402_INTEROP_DIR", "install-interop-clients.sh").unwrap()
}

/// Runs a client driver; collects its `RESULT {json}` lines.
fn run_driver(mut cmd: Command, what: &str) -> Vec<Case> {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cases: Vec<Case> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .map(|j| {
            let v: Value = serde_json::from_str(j).unwrap();
            Case {
                client: v["client"].as_str().unwrap().to_owned(),
                edge: v["edge"].as_str().unwrap().to_owned(),
                case: v["case"].as_str().unwrap().to_owned(),
                ok: v["ok"].as_bool().unwrap(),
                detail: v["detail"].as_str().unwrap().to_owned(),
            }
        })
        .collect();
    assert!(
        out.status.success() && !cases.is_empty(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    cases
}

/// The README block marked `<!-- test: curl-walkthrough -->`, run by bash with `EDGE` set and
/// `pay` standing for the reader's wallet (here: the LNbits payer).
fn curl_walkthrough(edge: &str, edge_url: &str, lnbits: &Lnbits, payer: &Wallet) -> Case {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- test: curl-walkthrough")
        .expect("README has the curl walkthrough");
    let block = &readme[start..];
    let body_start = block.find("```sh\n").unwrap() + "```sh\n".len();
    let body_end = block[body_start..].find("```").unwrap() + body_start;
    let script = format!(
        "set -euo pipefail\n{}\n\
         pay() {{ curl -s -H \"X-Api-Key: $PAYER_KEY\" -H 'Content-Type: application/json' \
           -d \"{{\\\"out\\\": true, \\\"bolt11\\\": \\\"$1\\\"}}\" \"$LNBITS_URL/api/v1/payments\" \
           | sed -n 's/.*\"preimage\": *\"\\([0-9a-f]*\\)\".*/\\1/p'; }}\n{}",
        if std::env::var_os("L402_DEBUG_CURL").is_some() {
            "set -x"
        } else {
            ""
        },
        &block[body_start..body_end]
    );
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("EDGE", edge_url)
        .env("LNBITS_URL", &lnbits.url)
        .env("PAYER_KEY", &payer.admin_key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // The last command prints the paid response: the upstream's echo of the request.
    let ok = out.status.success() && stdout.contains("\"path\":\"/weather\"");
    Case {
        client: format!("curl {}", curl_version()),
        edge: edge.into(),
        case: "README walkthrough: 402 -> pay -> `L402 mac:preimage` -> 200".into(),
        ok,
        detail: if ok {
            "the README's commands, verbatim".into()
        } else {
            format!(
                "{stdout}\n{}\nheaders.txt:\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(work.path().join("headers.txt")).unwrap_or_default()
            )
        },
    }
}

/// lnget-style discovery (lightninglabs/lnget#25): fetch the manifest, pick a service and
/// its resource, check the 402's invoice charges the manifest's price, pay, retry with the
/// credential. No L402 library: what an agent does from the documents alone.
fn discovery_walk(edge: &str, edge_url: &str, lnbits: &Lnbits, payer: &Wallet) -> Case {
    let run = || -> Result<String, String> {
        let manifest: Value = wasm_tests::get(&format!("{edge_url}/.well-known/l402.json"), None)
            .map_err(|e| e.to_string())?
            .json()
            .map_err(|e| e.to_string())?;
        let service = manifest["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "weather"))
            .ok_or("no weather service in the manifest")?;
        let resource = &service["resources"][0];
        let path = resource["path"].as_str().ok_or("no resource path")?;
        let price = resource["pricing"]["price_msat"]
            .as_u64()
            .ok_or("no fixed price")?;
        let resp =
            wasm_tests::get(&format!("{edge_url}{path}"), None).map_err(|e| e.to_string())?;
        let link = resp
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("");
        if !link.contains("rel=\"l402-manifest\"") {
            return Err(format!("the 402 does not link the manifest: {link:?}"));
        }
        let offer = parse_challenge(&resp).map_err(|e| e.to_string())?;
        let charged = l402_core::bolt11_amount_msat(&offer.invoice);
        if charged != Some(price) {
            return Err(format!(
                "manifest says {price} msat, the invoice {charged:?}"
            ));
        }
        let pre = lnbits
            .pay(payer, &offer.invoice)
            .map_err(|e| e.to_string())?;
        let paid = wasm_tests::get(
            &format!("{edge_url}{path}"),
            Some(&format!("L402 {}:{pre}", offer.macaroon)),
        )
        .map_err(|e| e.to_string())?;
        match paid.status().as_u16() {
            200 => Ok(format!("{path}, {price} msat")),
            s => Err(format!("paid request answered {s}")),
        }
    };
    let result = run();
    Case {
        client: "hand-built (reqwest)".into(),
        edge: edge.into(),
        case: "lnget-style discovery: manifest -> pick service -> 402 at the manifest's price -> pay -> 200".into(),
        ok: result.is_ok(),
        detail: result.unwrap_or_else(|e| e),
    }
}

fn curl_version() -> String {
    let out = Command::new("curl").arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_owned()
}

/// Credential shapes the clients above (and lnd-style clients) send, built by hand from one
/// paid token: each must pass.
fn variants(edge: &str, url: &str, lnbits: &Lnbits, payer: &Wallet) -> Vec<Case> {
    let resp = wasm_tests::get(url, None).unwrap();
    assert_eq!(resp.status(), 402);
    let offer = parse_challenge(&resp).unwrap();
    let pre = lnbits.pay(payer, &offer.invoice).unwrap();
    let raw = STANDARD.decode(&offer.macaroon).unwrap();
    let url_safe = URL_SAFE_NO_PAD.encode(&raw);
    let no_pad = STANDARD_NO_PAD.encode(&raw);
    // lnd-style: the preimage as a caveat, the macaroon alone in a header, hex.
    let with_preimage = hex::encode(
        STANDARD
            .decode(l402_core::attenuate(&offer.macaroon, &format!("preimage={pre}")).unwrap())
            .unwrap(),
    );
    let shapes: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "scheme in lower case: `l402 mac:preimage`",
            vec![("authorization", format!("l402 {}:{pre}", offer.macaroon))],
        ),
        (
            "`LSAT` scheme, URL-safe base64 without padding",
            vec![("authorization", format!("LSAT {url_safe}:{pre}"))],
        ),
        (
            "standard base64 without padding",
            vec![("authorization", format!("L402 {no_pad}:{pre}"))],
        ),
        (
            "`Macaroon:` header (hex) with a `preimage=` caveat",
            vec![("macaroon", with_preimage.clone())],
        ),
        (
            "`Grpc-Metadata-Macaroon:` header (hex) with a `preimage=` caveat",
            vec![("grpc-metadata-macaroon", with_preimage)],
        ),
        (
            "repeated `Authorization` (Basic first, then L402)",
            vec![
                ("authorization", "Basic dXNlcjpwYXNz".into()),
                ("authorization", format!("L402 {}:{pre}", offer.macaroon)),
            ],
        ),
    ];
    shapes
        .into_iter()
        .map(|(name, headers)| {
            let mut req = wasm_tests::client().get(url);
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            let status = req.send().map(|r| r.status().as_u16()).unwrap_or(0);
            Case {
                client: "hand-built (reqwest)".into(),
                edge: edge.into(),
                case: name.into(),
                ok: status == 200,
                detail: format!("{status}"),
            }
        })
        .collect()
}

/// docs/INTEROP.md as these results write it.
fn render_table(cases: &[Case]) -> String {
    let mut by_client: BTreeMap<(&str, &str), BTreeMap<&str, bool>> = BTreeMap::new();
    for c in cases {
        by_client
            .entry((c.client.as_str(), c.case.as_str()))
            .or_default()
            .insert(c.edge.as_str(), c.ok);
    }
    let mark = |v: Option<&bool>| match v {
        Some(true) => "✅ pass",
        Some(false) => "❌ FAIL",
        None => "—",
    };
    let mut md = String::from(
        "# Interoperability with existing L402 and Payment clients\n\n\
         Generated by `./scripts/gen-interop-doc` from `cargo test -p wasm-tests --features e2e \
         --test interop` (part of `./scripts/test`, which fails when this page is stale): each \
         client is installed pinned from its registry (`wasm-tests/interop/`), runs unchanged \
         against the real Envoy filter and the real Worker (workerd), with the invoice-service \
         minting on a real LNbits and an LNbits wallet paying every invoice. The L402 clients \
         meet edges selling both schemes (the default); the Payment cases (`fetch402`, and \
         l402-requests' Payment path) meet edges selling the Payment scheme only. Do not edit by hand.\n\n\
         | client | case | Envoy | Worker |\n|---|---|---|---|\n",
    );
    for ((client, case), edges) in &by_client {
        md.push_str(&format!(
            "| {client} | {case} | {} | {} |\n",
            mark(edges.get("Envoy")),
            mark(edges.get("Worker"))
        ));
    }
    md.push_str(
        "\nWorkarounds, all on our side of the wire or at install time, none in a client:\n\n\
         - lsat-js 2.0.6 depends on `macaroon` from a GitHub branch (`tierion/js-macaroon#ts`) \
         that only git can fetch; `package.json` `overrides` resolve it to the registry's \
         `macaroon@3.0.4`, the library that branch forks. lsat-js's code is untouched.\n\
         - lsat-js sends the `LSAT` scheme and pymacaroons serializes URL-safe base64 without \
         padding: the edges' credential parser accepts both schemes in any case and both \
         alphabets with or without padding (PROTOCOL.md §5).\n\
         - The Workers runtime joins the `WWW-Authenticate` challenges into one field \
         (`L402 …, LSAT …, Payment …`); lsat-js, l402-requests and the README's `sed` all read \
         the first challenge from it.\n\
         - `@getalby/lightning-tools` 9.0.1 echoes only `id`, `realm`, `method`, `intent`, \
         `request` and `expires` of a Payment challenge (the draft has clients echo `opaque` \
         too), so the edges keep what they must get back inside the bound `request` object \
         (PROTOCOL.md §11.1). Its parser also takes `\\\"` in a quoted value as the end of \
         the value; the edges put `description`, the one free-text parameter, last.\n\n\
         Found in the clients and left alone (not ours to patch):\n\n\
         - With the registry's `macaroon@3.0.4`, lsat-js cannot attenuate: \
         `ByteBuffer._grow` never records its capacity, so exporting a macaroon of a few fields \
         doubles the buffer at every byte (6.7 GB for a 4-caveat token) — presumably why \
         lsat-js pins the fork. Client-side attenuation is covered with pymacaroons instead.\n\
         - l402-requests' `L402Client` takes `credential_cache or CredentialCache()`: an empty \
         cache passed in is falsy and silently replaced. The test reads the client's own cache.\n\
         - lsat-js's `isExpired()` reads only its own `expiration` caveat, not Aperture's \
         `<service>_valid_until`; the edge's 402 `token_expired` is what tells the client.\n\
         - `fetch402` reads `WWW-Authenticate` as one string and dispatches on its first \
         scheme: from an edge selling both schemes it always takes L402. It pays with \
         `wallet.payInvoice({invoice})` (NWC's shape), not WebLN's `sendPayment`.\n",
    );
    md
}

#[test]
fn existing_l402_clients_pass_against_both_edges() {
    let logs = tempfile::tempdir().unwrap();
    let dir = interop_dir();
    let ln = Lightning::start(logs.path(), 100_000).unwrap();
    let (lnbits, payer) = (&ln.lnbits, &ln.payer);
    let service = ln.service(logs.path(), None).unwrap();
    let service_url = service.url();
    let edge_token = service.edge_token.clone();
    // Envoy sells by route metadata; `publish` lists the path in its manifest.
    let publish = json!([{"path": "/weather", "service": "weather", "capabilities": "read"}]);
    let stack = Stack::with_service(
        logs.path(),
        service,
        &filter_config(10_000, &[("publish", publish)]),
        2,
    )
    .unwrap();
    let origin = testkit::echo::Echo::start().unwrap();
    let worker = Workerd::start(
        logs.path(),
        &[
            ("L402_KEYS", KEYS.to_owned()),
            ("INVOICE_SERVICE_TOKEN", edge_token),
            ("ORIGIN_URL", format!("http://127.0.0.1:{}", origin.port)),
            ("INVOICE_SERVICE_URL", service_url),
            ("INVOICE_SERVICE_TIMEOUT_MS", "10000".into()),
            (
                "L402_ROUTES",
                r#"[{"path":"/weather","service":"weather","capabilities":"read"}]"#.into(),
            ),
        ],
        false,
    )
    .unwrap();
    let edges = [("Envoy", stack.envoy.url("")), ("Worker", worker.url(""))];
    let edges_json = json!(
        edges
            .iter()
            .map(|(n, u)| json!({"name": n, "url": u}))
            .collect::<Vec<_>>()
    )
    .to_string();
    let helper_bin = PathBuf::from(env!("CARGO_BIN_EXE_interop_helper"));
    let (node, _) = testkit::workerd::wrangler().unwrap();
    let interop_src = repo_root().join("wasm-tests/interop");

    let mut cases = Vec::new();
    let mut js = Command::new(&node);
    js.arg(interop_src.join("js_clients.mjs"))
        .env("INTEROP_NODE_MODULES", dir.join("node_modules"))
        .env("EDGES", &edges_json)
        .env("LNBITS_URL", &lnbits.url)
        .env("LNBITS_ADMIN_KEY", &payer.admin_key)
        .env("HELPER_BIN", &helper_bin);
    cases.extend(run_driver(js, "js_clients.mjs"));
    let mut py = Command::new(dir.join("venv/bin/python"));
    py.arg(interop_src.join("py_clients.py"))
        .env("EDGES", &edges_json)
        .env("LNBITS_URL", &lnbits.url)
        .env("LNBITS_ADMIN_KEY", &payer.admin_key)
        .env("HELPER_BIN", &helper_bin);
    cases.extend(run_driver(py, "py_clients.py"));
    // The same routes sold over the Payment scheme only, to a Payment client: both edges on
    // the same service (the Worker spends in its Durable Object).
    let pay_stack = Stack::with_service(
        logs.path(),
        ln.service(logs.path(), None).unwrap(),
        &filter_config(10_000, &[("schemes", "payment".into())]),
        1,
    )
    .unwrap();
    let pay_worker = Workerd::start(
        logs.path(),
        &[
            ("L402_KEYS", KEYS.to_owned()),
            (
                "INVOICE_SERVICE_TOKEN",
                pay_stack.service.edge_token.clone(),
            ),
            ("ORIGIN_URL", format!("http://127.0.0.1:{}", origin.port)),
            ("INVOICE_SERVICE_URL", pay_stack.service.url()),
            ("INVOICE_SERVICE_TIMEOUT_MS", "10000".into()),
            ("SCHEMES", "payment".into()),
            (
                "L402_ROUTES",
                r#"[{"path":"/weather","service":"weather","capabilities":"read"}]"#.into(),
            ),
        ],
        false,
    )
    .unwrap();
    let pay_edges = json!([
        {"name": "Envoy", "url": pay_stack.envoy.url("")},
        {"name": "Worker", "url": pay_worker.url("")},
    ])
    .to_string();
    let mut pay = Command::new(&node);
    pay.arg(interop_src.join("payment_clients.mjs"))
        .env("INTEROP_NODE_MODULES", dir.join("node_modules"))
        .env("EDGES", &pay_edges)
        .env("LNBITS_URL", &lnbits.url)
        .env("LNBITS_ADMIN_KEY", &payer.admin_key);
    cases.extend(run_driver(pay, "payment_clients.mjs"));
    let mut py_pay = Command::new(dir.join("venv/bin/python"));
    py_pay
        .arg(interop_src.join("py_clients.py"))
        .env("EDGES", "[]")
        .env("PAY_EDGES", &pay_edges)
        .env("LNBITS_URL", &lnbits.url)
        .env("LNBITS_ADMIN_KEY", &payer.admin_key)
        .env("HELPER_BIN", &helper_bin);
    cases.extend(run_driver(py_pay, "py_clients.py (Payment)"));
    for (name, url) in &edges {
        cases.push(curl_walkthrough(name, url, lnbits, payer));
        cases.push(discovery_walk(name, url, lnbits, payer));
        cases.extend(variants(name, &format!("{url}/weather"), lnbits, payer));
    }

    for c in &cases {
        println!(
            "{} | {} | {} | {} | {}",
            c.client,
            c.edge,
            c.case,
            if c.ok { "pass" } else { "FAIL" },
            c.detail
        );
    }
    let md = render_table(&cases);
    // The test renders; scripts/gen-interop-doc writes the page from this file.
    if let Some(out) = std::env::var_os("L402_GENERATED_INTEROP") {
        std::fs::write(out, &md).unwrap();
    }
    let failed: Vec<&Case> = cases.iter().filter(|c| !c.ok).collect();
    assert!(failed.is_empty(), "failing interop cases: {failed:#?}");
    let page = std::fs::read_to_string(repo_root().join("docs/INTEROP.md")).unwrap();
    assert!(
        page == md,
        "docs/INTEROP.md is stale: run ./scripts/gen-interop-doc\n{md}"
    );
    // Every client ran every case on both edges.
    for edge in ["Envoy", "Worker"] {
        for client in [
            "lsat-js 2.0.6",
            "macaroon 3.0.4 (js)",
            "l402-requests 0.9.0",
            "pymacaroons 0.13.0",
            "hand-built (reqwest)",
            "@getalby/lightning-tools 9.0.1",
        ] {
            assert!(
                cases.iter().any(|c| c.edge == edge && c.client == client),
                "{client} did not run against {edge}"
            );
        }
    }
    // Paid requests reached the origins; secrets never reached a log.
    assert!(stack.upstream.count() >= 8 && origin.count() >= 8);
    for log in [stack.envoy.proc.logs(), worker.proc.logs()] {
        assert!(!log.contains("1a1a1a1a1a1a"), "a keyring secret in a log");
    }
}
