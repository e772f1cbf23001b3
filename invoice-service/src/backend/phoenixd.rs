//! phoenixd: `POST /createinvoice` (form-encoded), HTTP basic auth with an empty user name.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{
    BackendError, InvoiceRequest, LightningBackend, NodeInvoice, hex_hash, send_json, send_ok,
    whole_sat,
};

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
        let amount_sat = whole_sat(req, "phoenixd")?;
        let body: CreateInvoiceResponse = send_json(
            self.http
                .post(format!("{}/createinvoice", self.url))
                .basic_auth("", Some(&self.password))
                .form(&CreateInvoice {
                    description: &req.memo,
                    amount_sat,
                    expiry_seconds: req.expiry_secs,
                }),
        )
        .await?;
        let payment_hash = hex_hash(&body.payment_hash, "paymentHash")?;
        Ok(NodeInvoice {
            bolt11: body.serialized,
            payment_hash,
        })
    }

    async fn check(&self) -> Result<(), BackendError> {
        send_ok(
            self.http
                .get(format!("{}/getinfo", self.url))
                .basic_auth("", Some(&self.password)),
        )
        .await
    }
}
