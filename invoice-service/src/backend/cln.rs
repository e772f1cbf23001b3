//! Core Lightning through clnrest: `POST /v1/invoice`, with a `Rune` header. A rune
//! restricted to the `invoice` method suffices.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    BackendError, InvoiceRequest, LightningBackend, NodeInvoice, hex_hash, send_json, transport,
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
