//! LNbits: `POST /api/v1/payments` with `"out": false`, the wallet's invoice key in
//! `X-Api-Key`. Amounts go in sat.

use async_trait::async_trait;
use l402_core::PaymentHash;
use serde::{Deserialize, Serialize};

use super::{BackendError, InvoiceRequest, LightningBackend, NodeInvoice, refused, transport};

/// An LNbits wallet.
pub struct Lnbits {
    url: String,
    invoice_key: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct CreateInvoice<'a> {
    out: bool,
    amount: u64,
    memo: &'a str,
    expiry: u32,
}

#[derive(Deserialize)]
struct CreateInvoiceResponse {
    payment_hash: String,
    /// LNbits 1.x sends both; older versions only `payment_request`.
    bolt11: Option<String>,
    payment_request: Option<String>,
}

impl Lnbits {
    /// `url` is the LNbits base URL.
    pub fn new(url: &str, invoice_key: &str, http: reqwest::Client) -> Self {
        Lnbits {
            url: url.to_owned(),
            invoice_key: invoice_key.to_owned(),
            http,
        }
    }
}

#[async_trait]
impl LightningBackend for Lnbits {
    fn name(&self) -> &'static str {
        "lnbits"
    }

    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<NodeInvoice, BackendError> {
        if !req.amount_msat.is_multiple_of(1000) {
            return Err(BackendError::BadResponse(
                "LNbits invoices are in whole sat".into(),
            ));
        }
        let resp = self
            .http
            .post(format!("{}/api/v1/payments", self.url))
            .header("X-Api-Key", &self.invoice_key)
            .json(&CreateInvoice {
                out: false,
                amount: req.amount_msat / 1000,
                memo: &req.memo,
                expiry: req.expiry_secs,
            })
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(refused(resp).await);
        }
        let body: CreateInvoiceResponse = resp.json().await.map_err(transport)?;
        let payment_hash = PaymentHash::from_hex(&body.payment_hash)
            .ok_or_else(|| BackendError::BadResponse("payment_hash is not 64 hex digits".into()))?;
        let bolt11 = body
            .bolt11
            .or(body.payment_request)
            .ok_or_else(|| BackendError::BadResponse("no bolt11 in the answer".into()))?;
        Ok(NodeInvoice {
            bolt11,
            payment_hash,
        })
    }

    async fn check(&self) -> Result<(), BackendError> {
        let resp = self
            .http
            .get(format!("{}/api/v1/wallet", self.url))
            .header("X-Api-Key", &self.invoice_key)
            .send()
            .await
            .map_err(transport)?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(refused(resp).await)
        }
    }
}
