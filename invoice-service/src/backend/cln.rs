//! Core Lightning through clnrest: `POST /v1/invoice`, with a `Rune` header. A rune
//! restricted to the `invoice` method suffices.

use async_trait::async_trait;
use l402_core::PaymentHash;
use serde::{Deserialize, Serialize};

use crate::config::common::{ConfigError, Env, read_file, require_url, required_section, secret};

use super::{
    BackendError, Built, InvoiceLookup, InvoiceRequest, Kind, LightningBackend, NodeConfig,
    NodeInvoice, hex_hash, hex_preimage, http_client, send_json, transport,
};

/// A Core Lightning node.
pub struct Cln {
    url: String,
    rune: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct InvoiceParams<'a> {
    amount_msat: u64,
    label: String,
    description: &'a str,
    expiry: u32,
}

#[derive(Deserialize)]
struct InvoiceResponse {
    payment_hash: String,
    bolt11: String,
}

/// JSON-RPC "invalid params": the node read the call, so it is up and the rune is good.
const INVALID_PARAMS: i64 = -32602;

impl Cln {
    /// `url` is clnrest's endpoint, `https://host:3010`.
    pub fn new(url: &str, rune: &str, http: reqwest::Client) -> Self {
        Cln {
            url: url.to_owned(),
            rune: rune.to_owned(),
            http,
        }
    }
}

#[async_trait]
impl LightningBackend for Cln {
    fn name(&self) -> &'static str {
        "cln"
    }

    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<NodeInvoice, BackendError> {
        // Labels must be unique per node; random ones let replicas share a node.
        let mut label = [0u8; 16];
        getrandom::fill(&mut label)
            .map_err(|e| BackendError::Unreachable(format!("no randomness: {e}")))?;
        let body: InvoiceResponse = send_json(
            self.http
                .post(format!("{}/v1/invoice", self.url))
                .header("Rune", &self.rune)
                .json(&InvoiceParams {
                    amount_msat: req.amount_msat,
                    label: format!("l402-{}", hex::encode(label)),
                    description: &req.memo,
                    expiry: req.expiry_secs,
                }),
        )
        .await?;
        let payment_hash = hex_hash(&body.payment_hash, "payment_hash")?;
        Ok(NodeInvoice {
            bolt11: body.bolt11,
            payment_hash,
        })
    }

    async fn lookup_invoice(&self, hash: &PaymentHash) -> Result<InvoiceLookup, BackendError> {
        /// `POST /v1/listinvoices {"payment_hash"}`: `status` is `unpaid`, `paid` or `expired`.
        #[derive(Deserialize)]
        struct Listed {
            invoices: Vec<Listing>,
        }
        #[derive(Deserialize)]
        struct Listing {
            status: String,
            payment_preimage: Option<String>,
        }
        let l: Listed = send_json(
            self.http
                .post(format!("{}/v1/listinvoices", self.url))
                .header("Rune", &self.rune)
                .json(&serde_json::json!({"payment_hash": hash.to_hex()})),
        )
        .await?;
        match l.invoices.first() {
            None => Ok(InvoiceLookup::Gone),
            Some(i) => match i.status.as_str() {
                "paid" => Ok(InvoiceLookup::Settled(hex_preimage(
                    i.payment_preimage.as_deref(),
                    "payment_preimage",
                )?)),
                "expired" => Ok(InvoiceLookup::Gone),
                _ => Ok(InvoiceLookup::Open),
            },
        }
    }

    async fn check(&self) -> Result<(), BackendError> {
        // An invoice-only rune may call nothing else: an empty `invoice` call proves the node
        // is up and the rune accepted, without making an invoice.
        let resp = self
            .http
            .post(format!("{}/v1/invoice", self.url))
            .header("Rune", &self.rune)
            .json(&serde_json::json!({}))
            .send()
            .await
            .map_err(transport)?;
        if resp.status().is_success() {
            return Ok(());
        }
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if body.get("code").and_then(serde_json::Value::as_i64) == Some(INVALID_PARAMS) {
            return Ok(());
        }
        Err(BackendError::Refused {
            status,
            message: body
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("no message")
                .chars()
                .take(200)
                .collect(),
        })
    }
}

/// `kind = "cln"`.
pub const KIND: Kind = Kind { name: "cln", parse };

/// A Core Lightning rune restricted to `invoice`.
pub const RUNE_ENV: &str = "L402_CLN_RUNE";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    url: String,
    tls_cert_file: Option<std::path::PathBuf>,
}

/// `[backend.cln]` and its rune.
#[derive(Clone)]
pub struct ClnConfig {
    /// `https://host:3010`.
    pub url: String,
    /// A rune restricted to `invoice`.
    pub rune: String,
    /// clnrest's TLS certificate (PEM), when it is self-signed.
    pub tls_cert_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ClnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cln({})", self.url)
    }
}

fn parse(
    section: Option<toml::Value>,
    env: &dyn Env,
) -> Result<std::sync::Arc<dyn NodeConfig>, ConfigError> {
    let c: Section = required_section("cln", section)?;
    Ok(std::sync::Arc::new(ClnConfig {
        url: require_url("backend.cln.url", &c.url)?,
        rune: secret(env, RUNE_ENV, "cln")?,
        tls_cert_pem: c
            .tls_cert_file
            .as_deref()
            .map(|p| read_file("backend.cln.tls_cert_file", p))
            .transpose()?,
    }))
}

impl NodeConfig for ClnConfig {
    fn name(&self) -> &'static str {
        "cln"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn build(&self, timeout: std::time::Duration) -> anyhow::Result<Built> {
        let http = http_client(timeout, self.tls_cert_pem.as_deref())?;
        Ok((
            std::sync::Arc::new(Cln::new(&self.url, &self.rune, http)),
            None,
        ))
    }
}
