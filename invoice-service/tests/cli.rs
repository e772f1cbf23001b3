//! The operator CLI as a process: outputs, exit codes (0 authorized, 1 rejected, 2 usage),
//! `serve` refusing a bad config by field, starting with a loud dev warning, shutting down
//! gracefully on SIGTERM, and never logging secrets.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    clippy::panic
)]

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_invoice-service");
const KEYS: &str = "4:4444444444444444444444444444444444444444444444444444444444444444";
const PREIMAGE: &str = "0707070707070707070707070707070707070707070707070707070707070707";

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("L402_KEYS")
        .output()
        .unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&o.stdout)))
}

fn payment_hash() -> String {
    l402_core::Preimage::from_hex(PREIMAGE)
        .unwrap()
        .payment_hash()
        .to_hex()
}

#[test]
fn keygen_prints_a_keyring_entry() {
    let o = run(&["keygen", "--id", "9"]);
    assert!(o.status.success());
    let line = String::from_utf8(o.stdout).unwrap();
    let ring: l402_core::Keyring = line.trim().parse().unwrap();
    assert_eq!(ring.current_key_id().0, 9);
    let again = String::from_utf8(run(&["keygen"]).stdout).unwrap();
    assert!(again.starts_with("1:") && again.trim() != line.trim());
}

#[test]
fn mint_inspect_verify_and_exit_codes() {
    let o = run(&[
        "token",
        "mint",
        "--keys",
        KEYS,
        "--service",
        "weather",
        "--payment-hash",
        &payment_hash(),
        "--capability",
        "read",
        "--lifetime",
        "1h",
        "--now",
        "1800000000",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let minted = json(&o);
    let mac = minted["macaroon"].as_str().unwrap();
    assert_eq!(minted["expires_at"], 1_800_003_600u64);

    let o = run(&["token", "inspect", mac]);
    assert!(o.status.success());
    let ins = json(&o);
    assert_eq!(ins["key_id"], 4);
    assert_eq!(ins["payment_hash"], payment_hash());
    assert_eq!(
        ins["caveats"],
        serde_json::json!([
            "services=weather:0",
            "weather_capabilities=read",
            "weather_valid_until=1800003600"
        ])
    );

    let auth = format!("L402 {mac}:{PREIMAGE}");
    let verify = |extra: &[&str], auth: &str| {
        let mut args = vec![
            "token",
            "verify",
            "--keys",
            KEYS,
            "--service",
            "weather",
            "--now",
            "1800000100",
            "--authorization",
            auth,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = verify(&["--capability", "read"], &auth);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json(&o)["decision"], "authorized");
    assert_eq!(json(&o)["capabilities"], serde_json::json!(["read"]));

    let o = verify(&["--capability", "write"], &auth);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["reason"], "capability_missing");
    let wrong = format!("L402 {mac}:{}", "00".repeat(32));
    let o = verify(&[], &wrong);
    assert_eq!(
        (o.status.code(), json(&o)["reason"].as_str()),
        (Some(1), Some("wrong_preimage"))
    );

    // Usage errors: 2.
    assert_eq!(
        run(&[
            "token",
            "verify",
            "--keys",
            "1:zz",
            "--service",
            "weather",
            "--authorization",
            &auth
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        run(&[
            "token",
            "verify",
            "--keys",
            KEYS,
            "--service",
            "Bad_Name",
            "--authorization",
            &auth
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(
        run(&["token", "verify", "--keys", KEYS]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["token", "inspect", "not-a-macaroon"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&[
            "token",
            "mint",
            "--keys",
            KEYS,
            "--service",
            "weather",
            "--payment-hash",
            "abc"
        ])
        .status
        .code(),
        Some(2)
    );
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    // The keyring may come from the environment instead of the command line.
    let o = Command::new(BIN)
        .args([
            "token",
            "verify",
            "--service",
            "weather",
            "--now",
            "1800000100",
            "--authorization",
            &auth,
        ])
        .env("L402_KEYS", KEYS)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn serve_refuses_a_bad_config_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[backend]\nkind = \"dev\"\n[[services]]\nname = \"weather\"\nprice_sat = 0\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("L402_KEYS", KEYS)
        .env("L402_EDGE_TOKENS", "edge-token-cli-tests-01")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("services[0].price_sat"), "{err}");
    assert!(!err.contains("4444444444"), "{err}");
}

#[test]
fn serve_warns_on_dev_and_stops_gracefully_on_sigterm_without_logging_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let port = testkit::free_port();
    let edge = "edge-token-cli-tests-02";
    let path = dir.path().join("c.toml");
    std::fs::write(&path, testkit::dev_service_config(port, edge)).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config", path.to_str().unwrap()])
        .env("L402_KEYS", KEYS)
        .env("RUST_LOG", "debug");
    let mut p = testkit::Proc::spawn("invoice-service", cmd, dir.path()).unwrap();
    p.wait_http(
        &format!("http://127.0.0.1:{port}/healthz"),
        Duration::from_secs(20),
    )
    .unwrap();
    let (status, body) = testkit::post_json(
        &format!("http://127.0.0.1:{port}/v1/challenges"),
        &[("Authorization", &format!("Bearer {edge}"))],
        &serde_json::json!({"service": "weather"}),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, paid) = testkit::post_json(
        &format!("http://127.0.0.1:{port}/v1/dev/pay"),
        &[],
        &serde_json::json!({"invoice": body["invoice"]}),
    )
    .unwrap();
    let preimage = paid["preimage"].as_str().unwrap().to_owned();
    let exit = p
        .terminate(Duration::from_secs(15))
        .expect("exits on SIGTERM");
    assert!(exit.success(), "{exit:?}");
    let logs = p.logs();
    assert!(logs.contains("backend = dev"), "{logs}");
    assert!(logs.contains("challenge issued"), "{logs}");
    assert!(logs.contains("shutting down"), "{logs}");
    for secret in [
        "4444444444444444",
        edge,
        &preimage,
        body["macaroon"].as_str().unwrap(),
    ] {
        assert!(
            !logs.contains(secret),
            "a secret reached the logs: {secret}"
        );
    }
}
