//! LND over its REST gateway: `POST /v1/invoices`, macaroon in `Grpc-Metadata-macaroon`.
//! An invoice-only macaroon suffices (`lncli bakemacaroon invoices:read invoices:write`).

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use l402_core::PaymentHash;
use serde::{Deserialize, Serialize};

use super::{BackendError, InvoiceRequest, LightningBackend, NodeInvoice, send_json, send_ok};

/// An LND node.
pub struct Lnd {
    url: String,
    macaroon_hex: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct AddInvoice<'a> {
    // int64 fields travel as strings through grpc-gateway.
    value_msat: String,
    memo: &'a str,
    expiry: String,
}

#[derive(Deserialize)]
struct AddInvoiceResponse {
    /// Base64 (grpc-gateway encodes bytes so).
    r_hash: String,
    payment_request: String,
}

impl Lnd {
    /// `url` is the REST endpoint, `https://host:8080`.
    pub fn new(url: &str, macaroon_hex: &str, http: reqwest::Client) -> Self {
        Lnd {
            url: url.to_owned(),
            macaroon_hex: macaroon_hex.to_owned(),
            http,
        }
    }
}

#[async_trait]
impl LightningBackend for Lnd {
    fn name(&self) -> &'static str {
        "lnd"
    }

    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<NodeInvoice, BackendError> {
        let body: AddInvoiceResponse = send_json(
            self.http
                .post(format!("{}/v1/invoices", self.url))
                .header("Grpc-Metadata-macaroon", &self.macaroon_hex)
                .json(&AddInvoice {
                    value_msat: req.amount_msat.to_string(),
                    memo: &req.memo,
                    expiry: req.expiry_secs.to_string(),
                }),
        )
        .await?;
        let hash = STANDARD
            .decode(&body.r_hash)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| BackendError::BadResponse("r_hash is not 32 bytes of base64".into()))?;
        Ok(NodeInvoice {
            bolt11: body.payment_request,
            payment_hash: PaymentHash(hash),
        })
    }

    async fn check(&self) -> Result<(), BackendError> {
        // invoices:read is all an invoice macaroon grants; getinfo would need info:read.
        send_ok(
            self.http
                .get(format!("{}/v1/invoices?num_max_invoices=1", self.url))
                .header("Grpc-Metadata-macaroon", &self.macaroon_hex),
        )
        .await
    }
}
