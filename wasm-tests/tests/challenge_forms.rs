//! The bLIP-26 challenge form (`L402 version="0", token="…", invoice="…"`) beside Aperture's
//! (`macaroon="…"`) and both names at once: which clients read each, through each edge as it
//! sends the challenge (Envoy: two `WWW-Authenticate` fields; the Worker: one joined field), and
//! from the L402 value alone (a server that sends no LSAT line). The results must equal the
//! table in docs/PROTOCOL.md ("Challenge forms"), so the documented advice cannot drift.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use testkit::{artifacts, repo_root};
use wasm_tests::{Stack, WorkerStack, client, filter_config};

const FORMS: [&str; 3] = ["macaroon", "token", "both"];

/// `(macaroon, invoice)` from the edge's 402 for `/weather`, and the raw header values.
fn challenge(url: &str) -> (Vec<String>, String, String) {
    let resp = client().get(format!("{url}/weather")).send().unwrap();
    assert_eq!(resp.status(), 402);
    let values: Vec<String> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    // The LSAT value always carries Aperture's form: the truth to compare against.
    let all = values.join(", ");
    let lsat = &all[all.find("LSAT macaroon=\"").unwrap() + 15..];
    let macaroon = lsat[..lsat.find('"').unwrap()].to_owned();
    let inv = &lsat[lsat.find("invoice=\"").unwrap() + 9..];
    (values, macaroon, inv[..inv.find('"').unwrap()].to_owned())
}

/// The README walkthrough's own `sed` lines, on a header dump as curl writes it.
fn readme_sed(values: &[String]) -> Value {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let cmds: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("MACAROON=$(sed") || l.starts_with("INVOICE=$(sed"))
        .collect();
    assert_eq!(cmds.len(), 2, "the README's two sed lines");
    let dir = tempfile::tempdir().unwrap();
    let dump: String = values
        .iter()
        .map(|v| format!("www-authenticate: {v}\r\n"))
        .collect();
    std::fs::write(dir.path().join("headers.txt"), dump).unwrap();
    let script = format!(
        "{}\n{}\nprintf '%s\\n%s' \"$MACAROON\" \"$INVOICE\"",
        cmds[0], cmds[1]
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let (m, i) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    // sed prints a line per matching header: the walkthrough uses the first.
    if m.is_empty() || i.is_empty() {
        json!({"error": "no match"})
    } else {
        json!({"macaroon": m, "invoice": i})
    }
}

/// Every client's reading of `values`.
fn readings(values: &[String]) -> BTreeMap<String, Value> {
    let dir: PathBuf =
        artifacts::installed("L402_INTEROP_DIR", "install-interop-clients.sh").unwrap();
    let src = repo_root().join("wasm-tests/interop");
    let arg = serde_json::to_string(values).unwrap();
    let mut out = BTreeMap::new();
    let py = Command::new(dir.join("venv/bin/python"))
        .arg(src.join("parse_challenge.py"))
        .arg(&arg)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let (node, _) = testkit::workerd::wrangler().unwrap();
    let js = Command::new(node)
        .arg(src.join("parse_challenge.mjs"))
        .arg(&arg)
        .env("INTEROP_NODE_MODULES", dir.join("node_modules"))
        .output()
        .unwrap();
    assert!(
        js.status.success(),
        "{}",
        String::from_utf8_lossy(&js.stderr)
    );
    for o in [py.stdout, js.stdout] {
        let v: BTreeMap<String, Value> = serde_json::from_slice(&o).unwrap();
        out.extend(v);
    }
    out.insert("README walkthrough (sed)".into(), readme_sed(values));
    out
}

fn verdict(reading: &Value, macaroon: &str, invoice: &str) -> &'static str {
    if reading["macaroon"] == macaroon && reading["invoice"] == invoice {
        "reads it"
    } else if reading.get("error").is_some() {
        "no challenge"
    } else {
        "WRONG token"
    }
}

#[test]
fn which_clients_read_which_challenge_form() {
    let logs = tempfile::tempdir().unwrap();
    // client -> form -> [Envoy, Envoy L402 value alone, Worker]
    let mut table: BTreeMap<(String, &str), [&str; 3]> = BTreeMap::new();
    for form in FORMS {
        let envoy = Stack::start(
            logs.path(),
            &filter_config(2000, &[("challenge_form", json!(form))]),
            1,
        )
        .unwrap();
        let worker = WorkerStack::start(logs.path(), &[("CHALLENGE_FORM", form)]).unwrap();
        let (values, mac, inv) = challenge(&envoy.envoy.url(""));
        // L402, LSAT, then the same invoice as a Payment charge (both schemes: the default).
        assert_eq!(values.len(), 3, "Envoy sends three fields");
        assert!(values[2].starts_with("Payment id="), "{values:?}");
        assert!(
            values[0].starts_with(if form == "macaroon" {
                "L402 macaroon="
            } else {
                "L402 version=\"0\", token="
            }),
            "{values:?}"
        );
        let (wvalues, wmac, winv) = challenge(&worker.worker.url(""));
        assert_eq!(wvalues.len(), 1, "the Workers runtime joins them");
        let columns = [
            (readings(&values), &mac, &inv),
            (readings(&values[..1]), &mac, &inv),
            (readings(&wvalues), &wmac, &winv),
        ];
        for (col, (reads, m, i)) in columns.iter().enumerate() {
            for (client, reading) in reads {
                table.entry((client.clone(), form)).or_insert(["", "", ""])[col] =
                    verdict(reading, m, i);
            }
        }
        // Whatever the form, the credential is the same: paid, it passes.
        let preimage = envoy.service.dev_pay(&inv).unwrap();
        let resp = client()
            .get(envoy.envoy.url("/weather"))
            .header("authorization", format!("L402 {mac}:{preimage}"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{form}");
    }
    let mut rendered = String::from(
        "| client | `challenge_form` | Envoy (L402, LSAT, Payment fields) | L402 field alone | Worker (one joined field) |\n|---|---|---|---|---|\n",
    );
    for ((client, form), cells) in &table {
        rendered.push_str(&format!(
            "| {client} | `{form}` | {} | {} | {} |\n",
            cells[0], cells[1], cells[2]
        ));
    }
    println!("{rendered}");
    let doc = std::fs::read_to_string(repo_root().join("docs/PROTOCOL.md")).unwrap();
    assert!(
        doc.contains(&rendered),
        "docs/PROTOCOL.md's challenge-form table differs from what the clients do; measured:\n{rendered}"
    );
}
