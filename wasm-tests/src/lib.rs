//! End-to-end helpers shared by the tests and the demo: one stack (upstream, invoice-service,
//! Envoy with the filter) on free loopback ports, and an L402 client that pays through the
//! `dev` backend or LNbits.
#![allow(clippy::indexing_slicing)]

use std::path::Path;

use anyhow::{Context, Result, bail};
use reqwest::blocking::Response;
use testkit::echo::Echo;
use testkit::envoy::{Envoy, EnvoyOptions};
use testkit::invoice_service::InvoiceService;
use testkit::lnbits::{Lnbits, Wallet};
use testkit::workerd::Workerd;

pub mod attacks;
pub mod bench;
pub mod browser;

/// The keyring every e2e stack shares (test-only secret).
pub const KEYS: &str = "1:1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a";

/// Upstream, invoice-service and Envoy, stopped (by PID) when dropped.
pub struct Stack {
    /// The origin.
    pub upstream: Echo,
    /// The invoice-service.
    pub service: InvoiceService,
    /// Envoy with the filter.
    pub envoy: Envoy,
}

/// The filter configuration the stack uses; `extra` adds or overrides top-level fields.
pub fn filter_config(invoice_timeout_ms: u64, extra: &[(&str, serde_json::Value)]) -> String {
    let mut v = serde_json::json!({
        "keyring_env": "L402_KEYS",
        "invoice_service": {
            "cluster": "invoice_service",
            "authority": "invoice-service",
            "token_env": "L402_EDGE_TOKEN",
            "timeout_ms": invoice_timeout_ms
        },
        // Tests and benchmarks send challenges in bursts; the bound has its own test.
        "challenges_per_second": 0
    });
    for (k, val) in extra {
        v[*k] = val.clone();
    }
    v.to_string()
}

impl Stack {
    /// Starts the stack with the `dev` backend.
    pub fn start(log_dir: &Path, filter_config: &str, concurrency: u32) -> Result<Stack> {
        let service = InvoiceService::start_dev(log_dir, KEYS)?;
        Self::with_service(log_dir, service, filter_config, concurrency)
    }

    /// Starts upstream and Envoy in front of a running invoice-service.
    pub fn with_service(
        log_dir: &Path,
        service: InvoiceService,
        filter_config: &str,
        concurrency: u32,
    ) -> Result<Stack> {
        let upstream = Echo::start()?;
        let envoy = Envoy::start(
            log_dir,
            &EnvoyOptions {
                upstream_port: upstream.port,
                invoice_port: service.port,
                filter_config,
                env: vec![
                    ("L402_KEYS", KEYS),
                    ("L402_EDGE_TOKEN", &service.edge_token),
                ],
                concurrency,
                normalize: true,
            },
        )?;
        Ok(Stack {
            upstream,
            service,
            envoy,
        })
    }
}

/// The routes the e2e Worker sells: the same as the Envoy test bootstrap's.
pub const WORKER_ROUTES: &str = r#"[{"path":"/weather","service":"weather","capabilities":"read"},{"path":"/admin-api","service":"weather","capabilities":"write"},{"path":"/admin","service":"admin"},{"path":"/maps","service":"maps"},{"path":"/grpc.Weather/","service":"weather"},{"path":"/geo","service":"geo"},{"path":"/quote","service":"quote"},{"path":"/five","service":"five"},{"path":"/fifty","service":"fifty"}]"#;

/// The Worker's vars and secrets for an e2e stack; `extra` adds or overrides.
pub fn worker_vars(
    upstream: &Echo,
    service: &InvoiceService,
    extra: &[(&str, &str)],
) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = vec![
        ("L402_KEYS", KEYS.to_owned()),
        ("INVOICE_SERVICE_TOKEN", service.edge_token.clone()),
        ("ORIGIN_URL", format!("http://127.0.0.1:{}", upstream.port)),
        ("INVOICE_SERVICE_URL", service.url()),
        ("INVOICE_SERVICE_TIMEOUT_MS", "1000".into()),
        ("L402_ROUTES", WORKER_ROUTES.into()),
        ("CHALLENGES_PER_SECOND", "0".into()),
    ];
    for (k, val) in extra {
        let k: &'static str = Box::leak(k.to_string().into_boxed_str());
        v.retain(|(n, _)| *n != k);
        v.push((k, (*val).to_owned()));
    }
    v
}

/// Upstream, invoice-service and the Worker (with a local KV deny-list), stopped when dropped.
pub struct WorkerStack {
    /// The origin.
    pub upstream: Echo,
    /// The invoice-service.
    pub service: InvoiceService,
    /// workerd.
    pub worker: Workerd,
}

impl WorkerStack {
    /// With the `dev` backend.
    pub fn start(log_dir: &Path, extra: &[(&str, &str)]) -> Result<WorkerStack> {
        let service = InvoiceService::start_dev(log_dir, KEYS)?;
        Self::with_service(log_dir, service, extra)
    }

    /// In front of a running invoice-service.
    pub fn with_service(
        log_dir: &Path,
        service: InvoiceService,
        extra: &[(&str, &str)],
    ) -> Result<WorkerStack> {
        let upstream = Echo::start()?;
        let worker = Workerd::start(log_dir, &worker_vars(&upstream, &service, extra), true)?;
        Ok(WorkerStack {
            upstream,
            service,
            worker,
        })
    }
}

/// A real LNbits with the merchant wallet an invoice-service mints on and a funded payer.
pub struct Lightning {
    /// The LNbits server.
    pub lnbits: Lnbits,
    /// The invoice-service's wallet (its invoice key).
    pub merchant: Wallet,
    /// The paying client's wallet.
    pub payer: Wallet,
}

impl Lightning {
    /// Starts LNbits, creates both wallets, credits `payer_sat` to the payer.
    pub fn start(log_dir: &Path, payer_sat: u64) -> Result<Lightning> {
        let lnbits = Lnbits::start(log_dir)?;
        let merchant = lnbits.wallet("merchant")?;
        let payer = lnbits.wallet("payer")?;
        lnbits.top_up(&payer, payer_sat)?;
        Ok(Lightning {
            lnbits,
            merchant,
            payer,
        })
    }

    /// The invoice-service's `[backend]` section for this LNbits.
    pub fn backend(&self) -> String {
        format!(
            "[backend]\nkind = \"lnbits\"\ntimeout = \"10s\"\n[backend.lnbits]\nurl = \"{}\"",
            self.lnbits.url
        )
    }

    /// Starts an invoice-service minting on the merchant wallet (on `port`, if given).
    pub fn service(&self, log_dir: &Path, port: Option<u16>) -> Result<InvoiceService> {
        InvoiceService::start(
            log_dir,
            KEYS,
            &self.backend(),
            &[("L402_LNBITS_INVOICE_KEY", &self.merchant.invoice_key)],
            port,
        )
    }

    /// Pays `bolt11` from the payer; the preimage.
    pub fn pay(&self, bolt11: &str) -> Result<String> {
        self.lnbits.pay(&self.payer, bolt11)
    }
}

/// A parsed 402 challenge.
#[derive(Clone, Debug)]
pub struct Offer {
    /// The macaroon, base64.
    pub macaroon: String,
    /// The BOLT11 invoice.
    pub invoice: String,
}

/// Reads the first `WWW-Authenticate` as clients do: `L402 macaroon="...", invoice="..."`.
pub fn parse_challenge(resp: &Response) -> Result<Offer> {
    let v = resp
        .headers()
        .get("www-authenticate")
        .context("no WWW-Authenticate")?
        .to_str()?;
    let field = |name: &str| -> Result<String> {
        let start = v.find(&format!("{name}=\"")).context("field missing")? + name.len() + 2;
        let end = v[start..].find('"').context("unterminated")? + start;
        Ok(v[start..end].to_owned())
    };
    if !v.starts_with("L402 ") {
        bail!("first challenge is not L402: {v}");
    }
    Ok(Offer {
        macaroon: field("macaroon")?,
        invoice: field("invoice")?,
    })
}

/// Sends `cred` to each URL in `urls` (round robin) from `n` threads released at once; every
/// answer must be 200 or 402: the number of 200s.
#[allow(clippy::panic)] // a test helper: a request that fails fails the test
pub fn concurrent_oks(urls: &[String], cred: &str, n: usize) -> usize {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (url, cred, barrier) = (
                urls[i % urls.len()].clone(),
                cred.to_owned(),
                std::sync::Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                let c = client();
                barrier.wait();
                c.get(&url)
                    .header("authorization", &cred)
                    .send()
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let statuses: Vec<u16> = handles
        .into_iter()
        .map(|h| match h.join() {
            Ok(Ok(s)) => s,
            other => panic!("request failed: {other:?}"),
        })
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 402),
        "only 200 or 402: {statuses:?}"
    );
    statuses.iter().filter(|s| **s == 200).count()
}

/// A blocking client with a generous timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap_or_else(|_| reqwest::blocking::Client::new())
}

/// `GET url`, with an `Authorization` value if given.
pub fn get(url: &str, auth: Option<&str>) -> reqwest::Result<Response> {
    let mut r = client().get(url);
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    r.send()
}

/// The `error` code of a JSON error body (empty if none).
pub fn body_error(resp: Response) -> String {
    let v: serde_json::Value = resp.json().unwrap_or_default();
    v["error"].as_str().unwrap_or_default().to_owned()
}

/// Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A token minted directly with core under [`KEYS`] (what the invoice-service would mint);
/// `salt` varies the token id.
pub fn token(
    service: &str,
    caps: &[&str],
    lifetime: Option<u64>,
    minted_at: u64,
    preimage: &l402_core::Preimage,
    salt: u8,
) -> Result<String> {
    let ring: l402_core::Keyring = KEYS.parse()?;
    let entry = l402_core::ServiceEntry {
        name: service.parse()?,
        tier: 0,
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        lifetime_secs: lifetime,
        allowance: None,
    };
    let mut random = [salt; 28];
    random[..8].copy_from_slice(&minted_at.to_be_bytes());
    Ok(l402_core::mint(&ring, preimage.payment_hash(), random, &entry, minted_at)?.macaroon_b64)
}

/// The `Payment` challenge of a 402, parsed as RFC 9110 auth-params (quoted-string escapes
/// undone); `None` if there is none.
pub fn payment_challenge(resp: &Response) -> Option<l402_core::PaymentChallenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_payment_header)
}

/// Parses a `Payment id="…", realm="…", …` challenge: the value itself, or the last element
/// of a list (workerd joins repeated `WWW-Authenticate` lines with ", ", as Fetch does).
pub fn parse_payment_header(v: &str) -> Option<l402_core::PaymentChallenge> {
    let rest = match v.strip_prefix("Payment ") {
        Some(r) => r,
        None => v.rsplit_once(", Payment ")?.1,
    };
    let mut map = serde_json::Map::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        map.insert(name.trim().to_ascii_lowercase(), value.into());
    }
    l402_core::PaymentChallenge::from_json(serde_json::Value::Object(map).to_string().as_bytes())
        .ok()
}

/// `Payment <base64url JSON>`: the credential for `challenge` paid with `preimage` (hex).
pub fn payment_credential(challenge: &l402_core::PaymentChallenge, preimage: &str) -> String {
    let json = serde_json::json!({"challenge": serde_json::from_str::<serde_json::Value>(&challenge.to_json()).ok(), "payload": {"preimage": preimage}});
    format!(
        "Payment {}",
        l402_core::b64url_encode(json.to_string().as_bytes())
    )
}

/// The decoded `Payment-Receipt` of a response.
pub fn payment_receipt(resp: &Response) -> Option<serde_json::Value> {
    let v = resp.headers().get("payment-receipt")?.to_str().ok()?;
    serde_json::from_slice(&l402_core::b64url_decode(v)?).ok()
}

/// The RFC 9457 `type` of a problem body, and its `error` code.
pub fn problem(resp: Response) -> (String, String) {
    let v: serde_json::Value = resp.json().unwrap_or_default();
    (
        v["type"].as_str().unwrap_or_default().to_owned(),
        v["error"].as_str().unwrap_or_default().to_owned(),
    )
}
