//! LND over its REST gateway: `POST /v1/invoices`, macaroon in `Grpc-Metadata-macaroon`.
//! An invoice-only macaroon suffices (`lncli bakemacaroon invoices:read invoices:write`).

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use l402_core::{PaymentHash, Preimage};
use serde::{Deserialize, Serialize};

use crate::config::common::{ConfigError, Env, err, read_file, require_url, required_section};

use super::{
    BackendError, Built, InvoiceLookup, InvoiceRequest, Kind, LightningBackend, NodeConfig,
    NodeInvoice, gone_if_unknown, http_client, send_json, send_ok,
};

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

    async fn lookup_invoice(&self, hash: &PaymentHash) -> Result<InvoiceLookup, BackendError> {
        #[derive(Deserialize)]
        struct Lookup {
            state: String,
            /// Base64 (grpc-gateway).
            #[serde(default)]
            r_preimage: String,
        }
        let r = send_json::<Lookup>(
            self.http
                .get(format!("{}/v1/invoice/{}", self.url, hash.to_hex()))
                .header("Grpc-Metadata-macaroon", &self.macaroon_hex),
        )
        .await
        .and_then(|l| match l.state.as_str() {
            "SETTLED" => STANDARD
                .decode(&l.r_preimage)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .map(|b| InvoiceLookup::Settled(Preimage::from_bytes(b)))
                .ok_or_else(|| BackendError::BadResponse("r_preimage is not 32 bytes".into())),
            "CANCELED" => Ok(InvoiceLookup::Gone),
            // OPEN, ACCEPTED (a hold invoice's HTLC is held, not settled).
            _ => Ok(InvoiceLookup::Open),
        });
        gone_if_unknown(r)
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

/// `kind = "lnd"`.
pub const KIND: Kind = Kind { name: "lnd", parse };

/// LND's invoice macaroon, hex.
pub const MACAROON_ENV: &str = "L402_LND_MACAROON";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    url: String,
    macaroon_file: Option<std::path::PathBuf>,
    tls_cert_file: Option<std::path::PathBuf>,
}

/// `[backend.lnd]` and its macaroon.
#[derive(Clone)]
pub struct LndConfig {
    /// `https://host:8080`.
    pub url: String,
    /// The invoice macaroon, hex.
    pub macaroon_hex: String,
    /// LND's TLS certificate (PEM), when it is self-signed.
    pub tls_cert_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for LndConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lnd({})", self.url)
    }
}

fn parse(
    section: Option<toml::Value>,
    env: &dyn Env,
) -> Result<std::sync::Arc<dyn NodeConfig>, ConfigError> {
    let l: Section = required_section("lnd", section)?;
    let macaroon_hex = match (env.get(MACAROON_ENV), &l.macaroon_file) {
        (Some(m), _) => m,
        (None, Some(p)) => hex::encode(read_file("backend.lnd.macaroon_file", p)?),
        (None, None) => {
            return Err(err(
                MACAROON_ENV,
                "the lnd backend needs an invoice macaroon (hex in L402_LND_MACAROON, or backend.lnd.macaroon_file)",
            ));
        }
    };
    if hex::decode(&macaroon_hex).is_err() {
        return Err(err(MACAROON_ENV, "not hex"));
    }
    Ok(std::sync::Arc::new(LndConfig {
        url: require_url("backend.lnd.url", &l.url)?,
        macaroon_hex,
        tls_cert_pem: l
            .tls_cert_file
            .as_deref()
            .map(|p| read_file("backend.lnd.tls_cert_file", p))
            .transpose()?,
    }))
}

impl NodeConfig for LndConfig {
    fn name(&self) -> &'static str {
        "lnd"
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn build(&self, timeout: std::time::Duration) -> anyhow::Result<Built> {
        let http = http_client(timeout, self.tls_cert_pem.as_deref())?;
        Ok((
            std::sync::Arc::new(Lnd::new(&self.url, &self.macaroon_hex, http)),
            None,
        ))
    }
}
