//! LNbits: `POST /api/v1/payments` with `"out": false`, the wallet's invoice key in
//! `X-Api-Key`. Amounts go in sat.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::common::{ConfigError, Env, url_and_secret};

use super::{
    BackendError, Built, InvoiceLookup, InvoiceRequest, Kind, LightningBackend, NodeConfig,
    NodeInvoice, gone_if_unknown, hex_hash, hex_preimage, http_client, send_json, send_ok,
    whole_sat,
};
use l402_core::PaymentHash;

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
        let amount = whole_sat(req, "LNbits")?;
        let body: CreateInvoiceResponse = send_json(
            self.http
                .post(format!("{}/api/v1/payments", self.url))
                .header("X-Api-Key", &self.invoice_key)
                .json(&CreateInvoice {
                    out: false,
                    amount,
                    memo: &req.memo,
                    expiry: req.expiry_secs,
                }),
        )
        .await?;
        let payment_hash = hex_hash(&body.payment_hash, "payment_hash")?;
        let bolt11 = body
            .bolt11
            .or(body.payment_request)
            .ok_or_else(|| BackendError::BadResponse("no bolt11 in the answer".into()))?;
        Ok(NodeInvoice {
            bolt11,
            payment_hash,
        })
    }

    async fn lookup_invoice(&self, hash: &PaymentHash) -> Result<InvoiceLookup, BackendError> {
        /// `GET /api/v1/payments/{hash}`: `paid`, and the preimage once paid; `status` in 1.x
        /// (`pending`, `success`, `failed`).
        #[derive(Deserialize)]
        struct Lookup {
            paid: bool,
            preimage: Option<String>,
            status: Option<String>,
        }
        let r = send_json::<Lookup>(
            self.http
                .get(format!("{}/api/v1/payments/{}", self.url, hash.to_hex()))
                .header("X-Api-Key", &self.invoice_key),
        )
        .await
        .and_then(|l| match (l.paid, l.status.as_deref()) {
            (true, _) => Ok(InvoiceLookup::Settled(hex_preimage(
                l.preimage.as_deref(),
                "preimage",
            )?)),
            (false, Some("failed" | "expired")) => Ok(InvoiceLookup::Gone),
            (false, _) => Ok(InvoiceLookup::Open),
        });
        gone_if_unknown(r)
    }

    async fn check(&self) -> Result<(), BackendError> {
        send_ok(
            self.http
                .get(format!("{}/api/v1/wallet", self.url))
                .header("X-Api-Key", &self.invoice_key),
        )
        .await
    }
}

/// `kind = "lnbits"`.
pub const KIND: Kind = Kind {
    name: "lnbits",
    parse,
};

/// The wallet's invoice (read) key.
pub const INVOICE_KEY_ENV: &str = "L402_LNBITS_INVOICE_KEY";

/// `[backend.lnbits]` and its key.
#[derive(Clone)]
pub struct LnbitsConfig {
    /// `http://host:5000`.
    pub url: String,
    /// The wallet's invoice (read) key.
    pub invoice_key: String,
}

impl std::fmt::Debug for LnbitsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lnbits({})", self.url)
    }
}

fn parse(section: Option<toml::Value>, env: &dyn Env) -> Result<Arc<dyn NodeConfig>, ConfigError> {
    let (url, invoice_key) = url_and_secret("lnbits", section, env, INVOICE_KEY_ENV)?;
    Ok(Arc::new(LnbitsConfig { url, invoice_key }))
}

impl NodeConfig for LnbitsConfig {
    fn name(&self) -> &'static str {
        "lnbits"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn build(&self, timeout: Duration) -> anyhow::Result<Built> {
        let http = http_client(timeout, None)?;
        Ok((
            Arc::new(Lnbits::new(&self.url, &self.invoice_key, http)),
            None,
        ))
    }
}
