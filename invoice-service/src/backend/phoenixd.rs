//! phoenixd: `POST /createinvoice` (form-encoded), HTTP basic auth with an empty user name.

use async_trait::async_trait;
use l402_core::PaymentHash;
use serde::{Deserialize, Serialize};

use super::{BackendError, InvoiceRequest, LightningBackend, NodeInvoice, refused, transport};

/// A phoenixd node.
pub struct Phoenixd {
    url: String,
    password: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateInvoice<'a> {
    description: &'a str,
    amount_sat: u64,
    expiry_seconds: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInvoiceResponse {
    payment_hash: String,
    serialized: String,
}

impl Phoenixd {
    /// `url` is phoenixd's HTTP API, `http://host:9740`.
    pub fn new(url: &str, password: &str, http: reqwest::Client) -> Self {
        Phoenixd {
            url: url.to_owned(),
            password: password.to_owned(),
            http,
        }
    }
}

#[async_trait]
impl LightningBackend for Phoenixd {
    fn name(&self) -> &'static str {
        "phoenixd"
    }

    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<NodeInvoice, BackendError> {
        if !req.amount_msat.is_multiple_of(1000) {
            return Err(BackendError::BadResponse(
                "phoenixd invoices are in whole sat".into(),
            ));
        }
        let resp = self
            .http
            .post(format!("{}/createinvoice", self.url))
            .basic_auth("", Some(&self.password))
            .form(&CreateInvoice {
                description: &req.memo,
                amount_sat: req.amount_msat / 1000,
                expiry_seconds: req.expiry_secs,
            })
            .send()
            .await
            .map_err(transport)?;
        if !resp.status().is_success() {
            return Err(refused(resp).await);
        }
        let body: CreateInvoiceResponse = resp.json().await.map_err(transport)?;
        let payment_hash = PaymentHash::from_hex(&body.payment_hash)
            .ok_or_else(|| BackendError::BadResponse("paymentHash is not 64 hex digits".into()))?;
        Ok(NodeInvoice {
            bolt11: body.serialized,
            payment_hash,
        })
    }

    async fn check(&self) -> Result<(), BackendError> {
        let resp = self
            .http
            .get(format!("{}/getinfo", self.url))
            .basic_auth("", Some(&self.password))
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
