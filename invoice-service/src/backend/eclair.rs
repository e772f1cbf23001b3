//! Eclair: `POST /createinvoice` (form-encoded), HTTP basic auth with an empty user name and
//! `eclair.api.password`. Eclair's API has one password for every call, payments included, so
//! this backend calls only `createinvoice` and `getinfo` (docs/INVOICE-SERVICE.md says how to
//! keep the rest out of reach).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use l402_core::PaymentHash;
use serde::{Deserialize, Serialize};

use crate::config::common::{ConfigError, Env, url_and_secret};

use super::{
    BackendError, Built, InvoiceLookup, InvoiceRequest, Kind, LightningBackend, NodeConfig,
    NodeInvoice, gone_if_unknown, hex_hash, hex_preimage, http_client, send_json, send_ok,
};

/// An Eclair node.
pub struct Eclair {
    url: String,
    password: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateInvoice<'a> {
    description: &'a str,
    amount_msat: u64,
    expire_in: u32,
}

/// The fields of Eclair's invoice answer we read (it carries many more).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInvoiceResponse {
    serialized: String,
    payment_hash: String,
}

impl Eclair {
    /// `url` is Eclair's API, `http://host:8080`.
    pub fn new(url: &str, password: &str, http: reqwest::Client) -> Self {
        Eclair {
            url: url.to_owned(),
            password: password.to_owned(),
            http,
        }
    }
}

#[async_trait]
impl LightningBackend for Eclair {
    fn name(&self) -> &'static str {
        "eclair"
    }

    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<NodeInvoice, BackendError> {
        let body: CreateInvoiceResponse = send_json(
            self.http
                .post(format!("{}/createinvoice", self.url))
                .basic_auth("", Some(&self.password))
                .form(&CreateInvoice {
                    description: &req.memo,
                    amount_msat: req.amount_msat,
                    expire_in: req.expiry_secs,
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
        /// `POST /getreceivedinfo`: `status.type` is `pending`, `received` or `expired`.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Lookup {
            payment_preimage: Option<String>,
            status: Status,
        }
        #[derive(Deserialize)]
        struct Status {
            #[serde(rename = "type")]
            kind: String,
        }
        let r = send_json::<Lookup>(
            self.http
                .post(format!("{}/getreceivedinfo", self.url))
                .basic_auth("", Some(&self.password))
                .form(&[("paymentHash", hash.to_hex())]),
        )
        .await
        .and_then(|l| match l.status.kind.as_str() {
            "received" => Ok(InvoiceLookup::Settled(hex_preimage(
                l.payment_preimage.as_deref(),
                "paymentPreimage",
            )?)),
            "expired" => Ok(InvoiceLookup::Gone),
            _ => Ok(InvoiceLookup::Open),
        });
        gone_if_unknown(r)
    }

    async fn check(&self) -> Result<(), BackendError> {
        // Every Eclair API call is a POST.
        send_ok(
            self.http
                .post(format!("{}/getinfo", self.url))
                .basic_auth("", Some(&self.password)),
        )
        .await
    }
}

/// `kind = "eclair"`.
pub const KIND: Kind = Kind {
    name: "eclair",
    parse,
};

/// Eclair's API password (`eclair.api.password`; Eclair has no narrower one).
pub const PASSWORD_ENV: &str = "L402_ECLAIR_PASSWORD";

/// `[backend.eclair]` and its password.
#[derive(Clone)]
pub struct EclairConfig {
    /// `http://host:8080`.
    pub url: String,
    /// `eclair.api.password`.
    pub password: String,
}

impl std::fmt::Debug for EclairConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "eclair({})", self.url)
    }
}

fn parse(section: Option<toml::Value>, env: &dyn Env) -> Result<Arc<dyn NodeConfig>, ConfigError> {
    let (url, password) = url_and_secret("eclair", section, env, PASSWORD_ENV)?;
    Ok(Arc::new(EclairConfig { url, password }))
}

impl NodeConfig for EclairConfig {
    fn name(&self) -> &'static str {
        "eclair"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn build(&self, timeout: Duration) -> anyhow::Result<Built> {
        let http = http_client(timeout, None)?;
        Ok((Arc::new(Eclair::new(&self.url, &self.password, http)), None))
    }
}
