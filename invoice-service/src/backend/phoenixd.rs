//! phoenixd: `POST /createinvoice` (form-encoded), HTTP basic auth with an empty user name.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use l402_core::PaymentHash;
use serde::{Deserialize, Serialize};

use crate::config::common::{ConfigError, Env, url_and_secret};

use super::{
    BackendError, Built, InvoiceLookup, InvoiceRequest, Kind, LightningBackend, NodeConfig,
    NodeInvoice, gone_if_unknown, hex_hash, hex_preimage, http_client, send_json, send_ok,
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

    async fn lookup_invoice(&self, hash: &PaymentHash) -> Result<InvoiceLookup, BackendError> {
        /// `GET /payments/incoming/{paymentHash}`.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Lookup {
            is_paid: bool,
            preimage: Option<String>,
        }
        let r = send_json::<Lookup>(
            self.http
                .get(format!("{}/payments/incoming/{}", self.url, hash.to_hex()))
                .basic_auth("", Some(&self.password)),
        )
        .await
        .and_then(|l| {
            if l.is_paid {
                Ok(InvoiceLookup::Settled(hex_preimage(
                    l.preimage.as_deref(),
                    "preimage",
                )?))
            } else {
                Ok(InvoiceLookup::Open)
            }
        });
        gone_if_unknown(r)
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

/// `kind = "phoenixd"`.
pub const KIND: Kind = Kind {
    name: "phoenixd",
    parse,
};

/// phoenixd's limited-access HTTP password (`http-password-limited-access`: invoices, no payments).
pub const PASSWORD_ENV: &str = "L402_PHOENIXD_PASSWORD";

/// `[backend.phoenixd]` and its password.
#[derive(Clone)]
pub struct PhoenixdConfig {
    /// `http://host:9740`.
    pub url: String,
    /// The HTTP password.
    pub password: String,
}

impl std::fmt::Debug for PhoenixdConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "phoenixd({})", self.url)
    }
}

fn parse(section: Option<toml::Value>, env: &dyn Env) -> Result<Arc<dyn NodeConfig>, ConfigError> {
    let (url, password) = url_and_secret("phoenixd", section, env, PASSWORD_ENV)?;
    Ok(Arc::new(PhoenixdConfig { url, password }))
}

impl NodeConfig for PhoenixdConfig {
    fn name(&self) -> &'static str {
        "phoenixd"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn build(&self, timeout: Duration) -> anyhow::Result<Built> {
        let http = http_client(timeout, None)?;
        Ok((
            Arc::new(Phoenixd::new(&self.url, &self.password, http)),
            None,
        ))
    }
}
