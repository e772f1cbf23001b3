//! Lightning backends behind one trait that speaks our types (amount, memo, expiry → BOLT11,
//! payment hash), not any node's protobufs. [`Guarded`] adds what every backend needs: a
//! timeout, a bound on calls in flight, metrics, and a check of the invoice it got back.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use l402_core::{PaymentHash, Preimage};
use lightning_invoice::SignedRawBolt11Invoice;
use tokio::sync::Semaphore;

use crate::config::common::{ConfigError, Env};
use crate::metrics::Metrics;

pub mod cln;
pub mod dev;
pub mod eclair;
pub mod lnbits;
pub mod lnd;
pub mod phoenixd;

/// Every backend kind. A new backend is its module and one line here.
pub const KINDS: &[Kind] = &[
    lnd::KIND,
    cln::KIND,
    lnbits::KIND,
    phoenixd::KIND,
    eclair::KIND,
    dev::KIND,
];

/// One backend kind: its name in `kind = "…"`, and how its `[backend.<name>]` section and
/// secrets are read.
pub struct Kind {
    /// The name.
    pub name: &'static str,
    /// Reads the section (absent: `None`) and the secrets into a node to build.
    pub parse: ParseSection,
}

/// How a kind reads its `[backend.<kind>]` section and its secrets.
pub type ParseSection =
    fn(Option<toml::Value>, &dyn Env) -> Result<Arc<dyn NodeConfig>, ConfigError>;

/// A configured node: endpoint and secrets, checked, ready to build. `Debug` shows the
/// endpoint only: secrets never reach logs.
pub trait NodeConfig: Send + Sync + std::fmt::Debug {
    /// The kind's name, for logs and metrics.
    fn name(&self) -> &'static str;
    /// The backend, its HTTP client timing out after `timeout`.
    fn build(&self, timeout: Duration) -> anyhow::Result<Built>;
    /// Whether this is the `dev` signer (it serves the dev pay endpoint, loopback only).
    fn is_dev(&self) -> bool {
        false
    }
    /// For tests and tools that read a kind's own settings.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Backend settings.
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// Which node.
    pub node: Arc<dyn NodeConfig>,
    /// Per call.
    pub timeout: Duration,
    /// Calls in flight at once; more wait (and time out).
    pub max_in_flight: usize,
}

/// What to invoice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceRequest {
    /// Amount, millisatoshis (always set: some clients refuse amountless invoices).
    pub amount_msat: u64,
    /// Description.
    pub memo: String,
    /// Seconds until the invoice expires.
    pub expiry_secs: u32,
}

/// What a node reports: the invoice and the hash it says the invoice carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInvoice {
    /// BOLT11.
    pub bolt11: String,
    /// The payment hash as the node reported it (checked against the invoice).
    pub payment_hash: PaymentHash,
}

/// An invoice, checked: decoded, its hash and amount as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invoice {
    /// BOLT11.
    pub bolt11: String,
    /// Its payment hash.
    pub payment_hash: PaymentHash,
    /// When it expires, unix seconds (from the invoice itself).
    pub expires_at: u64,
}

/// Where an invoice stands, as its node says.
#[derive(Clone, Debug)]
pub enum InvoiceLookup {
    /// Not paid yet.
    Open,
    /// Paid; the preimage the node released.
    Settled(Preimage),
    /// Expired, canceled, or unknown to the node: it will never be paid.
    Gone,
}

/// A 404 from a node's lookup means it does not know the invoice (another node's, or
/// forgotten): it will never be paid here.
pub(crate) fn gone_if_unknown(
    r: Result<InvoiceLookup, BackendError>,
) -> Result<InvoiceLookup, BackendError> {
    match r {
        Err(BackendError::Refused { status: 404, .. }) => Ok(InvoiceLookup::Gone),
        r => r,
    }
}

/// A preimage the node reported as hex.
pub(crate) fn hex_preimage(s: Option<&str>, field: &str) -> Result<Preimage, BackendError> {
    s.and_then(Preimage::from_hex)
        .ok_or_else(|| BackendError::BadResponse(format!("{field} is not 64 hex digits")))
}

/// Why a backend call failed. Messages carry no secrets (nodes do not echo them).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// No answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Could not connect or the connection broke.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The node answered with an error.
    #[error("node refused ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The node's error message.
        message: String,
    },
    /// The answer was not what the node's API documents, or the invoice does not match.
    #[error("unexpected answer: {0}")]
    BadResponse(String),
}

impl BackendError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendError::Timeout(_) => "timeout",
            BackendError::Unreachable(_) => "unreachable",
            BackendError::Refused { .. } => "refused",
            BackendError::BadResponse(_) => "bad_response",
        }
    }
}

/// Maps a transport error; never includes the request (its headers hold secrets).
pub(crate) fn transport(e: reqwest::Error) -> BackendError {
    if e.is_timeout() {
        BackendError::Timeout(Duration::ZERO)
    } else if e.is_connect() || e.is_request() {
        BackendError::Unreachable(e.without_url().to_string())
    } else if e.is_decode() {
        BackendError::BadResponse(e.without_url().to_string())
    } else {
        BackendError::Unreachable(e.without_url().to_string())
    }
}

/// Reads a non-2xx answer into [`BackendError::Refused`], keeping the node's message short.
pub(crate) async fn refused(resp: reqwest::Response) -> BackendError {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            ["message", "error", "detail"]
                .iter()
                .find_map(|k| v.get(k).and_then(|m| m.as_str().map(str::to_owned)))
        })
        .unwrap_or(body);
    BackendError::Refused {
        status,
        message: message.chars().take(200).collect(),
    }
}

/// Sends a request and decodes a 2xx JSON answer; anything else is the node's refusal.
pub(crate) async fn send_json<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> Result<T, BackendError> {
    let resp = req.send().await.map_err(transport)?;
    if !resp.status().is_success() {
        return Err(refused(resp).await);
    }
    resp.json().await.map_err(transport)
}

/// Sends a request whose 2xx answer is all that matters (readiness checks).
pub(crate) async fn send_ok(req: reqwest::RequestBuilder) -> Result<(), BackendError> {
    let resp = req.send().await.map_err(transport)?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(refused(resp).await)
    }
}

/// A payment hash the node reported as hex.
pub(crate) fn hex_hash(s: &str, field: &str) -> Result<PaymentHash, BackendError> {
    PaymentHash::from_hex(s)
        .ok_or_else(|| BackendError::BadResponse(format!("{field} is not 64 hex digits")))
}

/// The amount in whole sat, for nodes whose API takes sat.
pub(crate) fn whole_sat(req: &InvoiceRequest, node: &str) -> Result<u64, BackendError> {
    if req.amount_msat.is_multiple_of(1000) {
        Ok(req.amount_msat / 1000)
    } else {
        Err(BackendError::BadResponse(format!(
            "{node} invoices are in whole sat"
        )))
    }
}

/// A Lightning node that makes invoices.
#[async_trait]
pub trait LightningBackend: Send + Sync {
    /// `lnd`, `cln`, ...
    fn name(&self) -> &'static str;
    /// Makes an invoice.
    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<NodeInvoice, BackendError>;
    /// Whether the node answers (for `/readyz`).
    async fn check(&self) -> Result<(), BackendError>;
    /// Where the invoice with this payment hash stands (the paywall's status endpoint).
    async fn lookup_invoice(&self, hash: &PaymentHash) -> Result<InvoiceLookup, BackendError>;
}

/// Default BOLT11 expiry when the invoice has no expiry field.
const DEFAULT_BOLT11_EXPIRY_SECS: u64 = 3600;

/// Decodes a BOLT11 invoice and checks it is the one asked for: a valid signature, the same
/// payment hash as the node reported, the requested amount. A token is bound to this hash,
/// so a mismatch must not pass. Parsed without BOLT11's semantic feature checks, which some
/// nodes' invoices fail (LNbits' FakeWallet): only these fields matter here.
pub fn check_invoice(
    bolt11: &str,
    reported_hash: Option<&PaymentHash>,
    amount_msat: u64,
) -> Result<Invoice, BackendError> {
    let bad = |m: &str| BackendError::BadResponse(m.to_owned());
    let signed = SignedRawBolt11Invoice::from_str(bolt11)
        .map_err(|e| BackendError::BadResponse(format!("invoice does not decode: {e}")))?;
    if !signed.check_signature() {
        return Err(bad("invoice signature does not verify"));
    }
    let raw = signed.raw_invoice();
    let hash = raw
        .payment_hash()
        .map(|h| PaymentHash(*AsRef::<[u8; 32]>::as_ref(&h.0)))
        .ok_or_else(|| bad("invoice has no payment hash"))?;
    if let Some(reported) = reported_hash
        && *reported != hash
    {
        return Err(bad("payment hash differs from the invoice's"));
    }
    // 1 msat = 10 pico-BTC.
    let msat = raw.amount_pico_btc().map(|p| p / 10);
    if msat != Some(amount_msat) {
        return Err(BackendError::BadResponse(format!(
            "invoice amount {msat:?} msat, asked for {amount_msat}"
        )));
    }
    let created = raw.data.timestamp.as_unix_timestamp();
    let expiry = raw
        .expiry_time()
        .map_or(DEFAULT_BOLT11_EXPIRY_SECS, |e| e.as_seconds());
    Ok(Invoice {
        bolt11: bolt11.to_owned(),
        payment_hash: hash,
        expires_at: created.saturating_add(expiry),
    })
}

/// Builds the HTTP client a backend uses: its own timeout, the node's certificate if given.
pub(crate) fn http_client(
    timeout: Duration,
    tls_cert_pem: Option<&[u8]>,
) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        // A redirect would carry the node credential (macaroon, rune, key, password) to
        // whatever host it names: a node never redirects its API, so one is a failure.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "l402-edge-invoice-service/",
            env!("CARGO_PKG_VERSION")
        ));
    if let Some(pem) = tls_cert_pem {
        b = b
            .add_root_certificate(reqwest::Certificate::from_pem(pem)?)
            // Nodes' self-signed certificates name localhost or an IP, rarely the host used.
            .tls_built_in_root_certs(false);
    }
    Ok(b.build()?)
}

/// Timeout, bounded concurrency, metrics and invoice checks around any backend.
pub struct Guarded {
    inner: Arc<dyn LightningBackend>,
    timeout: Duration,
    permits: Semaphore,
    metrics: Metrics,
}

impl Guarded {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LightningBackend>, cfg: &BackendConfig, metrics: Metrics) -> Self {
        Guarded {
            inner,
            timeout: cfg.timeout,
            permits: Semaphore::new(cfg.max_in_flight),
            metrics,
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &'static str {
        self.inner.name()
    }

    /// Makes and checks an invoice, within the timeout (waiting for a permit counts).
    pub async fn create_invoice(&self, req: &InvoiceRequest) -> Result<Invoice, BackendError> {
        self.bounded("create_invoice", self.inner.create_invoice(req), |inv| {
            check_invoice(&inv.bolt11, Some(&inv.payment_hash), req.amount_msat)
        })
        .await
    }

    /// Where an invoice stands, within the timeout; a preimage that does not pay `hash` is
    /// the node's error, never passed on.
    pub async fn lookup_invoice(&self, hash: &PaymentHash) -> Result<InvoiceLookup, BackendError> {
        self.bounded(
            "lookup_invoice",
            self.inner.lookup_invoice(hash),
            |l| match l {
                InvoiceLookup::Settled(p) if !hash.is_paid_by(&p) => Err(
                    BackendError::BadResponse("the preimage does not pay the invoice".into()),
                ),
                l => Ok(l),
            },
        )
        .await
    }

    /// Runs one node call under a permit and the timeout (waiting for the permit counts), then
    /// `check` on its answer; the outcome, checked, is what the metrics see.
    async fn bounded<T, U>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = Result<T, BackendError>>,
        check: impl FnOnce(T) -> Result<U, BackendError>,
    ) -> Result<U, BackendError> {
        let start = Instant::now();
        let result = tokio::time::timeout(self.timeout, async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| BackendError::Unreachable("backend closed".into()))?;
            call.await
        })
        .await
        .unwrap_or(Err(BackendError::Timeout(self.timeout)))
        .map_err(|e| match e {
            // The HTTP client's own timeout reports no duration: it is this one.
            BackendError::Timeout(_) => BackendError::Timeout(self.timeout),
            e => e,
        })
        .and_then(check);
        self.metrics.observe_backend(
            self.name(),
            op,
            start.elapsed(),
            result.as_ref().err().map(BackendError::kind),
        );
        result
    }

    /// Whether the node answers, within the timeout.
    pub async fn check(&self) -> Result<(), BackendError> {
        let start = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.inner.check())
            .await
            .unwrap_or(Err(BackendError::Timeout(self.timeout)));
        self.metrics.observe_backend(
            self.name(),
            "check",
            start.elapsed(),
            result.as_ref().err().map(BackendError::kind),
        );
        result
    }
}

/// The configured backend, and the `dev` backend's handle (for its pay endpoint) if it is one.
pub type Built = (Arc<dyn LightningBackend>, Option<Arc<dev::DevBackend>>);

/// Builds the configured backend.
pub fn build(cfg: &BackendConfig) -> anyhow::Result<Built> {
    cfg.node.build(cfg.timeout)
}
