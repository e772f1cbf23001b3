//! The HTTP API (PROTOCOL.md §6): `POST /v1/challenges` and `POST /v1/redeem` for the edges,
//! health, readiness, metrics, and `POST /v1/dev/pay` when the backend is `dev`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use l402_core::{
    ALLOWANCE_PATH, AllowanceRequest, ApiErrorCode, CATALOG_PATH, CHALLENGES_PATH, Catalog,
    CatalogService, ChallengeRequest, ChallengeResponse, ChargeTerms, ErrorBody,
    INVOICE_STATUS_PATH, InvoiceState, InvoiceStatus, InvoiceStatusRequest, PaymentHash,
    REDEEM_PATH, RedeemRequest, Redeemed, ServiceEntry, issue_charge, mint_bound,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;

use crate::backend::dev::{DevBackend, DevPayError};
use crate::backend::{self, Guarded, Invoice, InvoiceLookup, InvoiceRequest};
use crate::clock::Clock;
use crate::config::{Config, Service};
use crate::metrics::{ChallengeResult, Metrics};
use crate::pool::Pool;
use crate::pricing::{OnPricingError, PriceQuery, Pricer, Quote, catalog_quote};
use crate::spent::SpentSet;

/// Longest a spent charge is remembered (challenges expire with their invoice, long before).
pub const MAX_REDEEM_TTL_SECS: u64 = 7 * 24 * 3600;

/// Path of the dev-only pay endpoint.
pub const DEV_PAY_PATH: &str = "/v1/dev/pay";

/// Shared by every handler: `Arc`s only, no lock around the backend.
#[derive(Clone)]
pub struct AppState {
    cfg: Arc<Config>,
    backend: Arc<Guarded>,
    pool: Option<Arc<Pool>>,
    pricers: Arc<HashMap<String, Pricer>>,
    dev: Option<Arc<DevBackend>>,
    spent: Arc<dyn SpentSet>,
    metrics: Metrics,
    clock: Clock,
}

/// An error answer: a stable code (and its HTTP status), a message without secrets.
#[derive(Debug)]
pub struct ApiError {
    code: ApiErrorCode,
    message: String,
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// With `Retry-After`.
    fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

/// Counts a refused challenge for `service` and returns its answer.
fn refuse(
    state: &AppState,
    service: &str,
    code: ApiErrorCode,
    message: impl Into<String>,
) -> ApiError {
    state
        .metrics
        .challenge(service, ChallengeResult::Refused(code));
    ApiError::new(code, message)
}

/// A JSON answer written by core's codec: every edge-facing body has one definition, in
/// `l402-core`, read by the edges with the same code.
struct JsonBody(Vec<u8>);

impl IntoResponse for JsonBody {
    fn into_response(self) -> Response {
        ([(header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.as_str().to_owned(),
            message: Some(self.message),
        };
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, JsonBody(body.to_body())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

impl AppState {
    /// Builds the backend, the pool and the metrics for `cfg`.
    pub fn new(cfg: Config, clock: Clock) -> anyhow::Result<Self> {
        let metrics = Metrics::new()?;
        let (inner, dev) = backend::build(&cfg.backend)?;
        let backend = Arc::new(Guarded::new(inner, &cfg.backend, metrics.clone()));
        let pool = cfg.pool.enabled.then(|| {
            Arc::new(Pool::new(
                cfg.pool,
                // A priced service's invoices differ per request: nothing to keep ready.
                cfg.services
                    .iter()
                    .filter(|s| s.pricing.is_none())
                    .map(|s| {
                        (
                            s.entry.name.to_string(),
                            invoice_request(s, &catalog_quote(s)),
                        )
                    }),
                Arc::clone(&backend),
                metrics.clone(),
                Arc::clone(&clock),
            ))
        });
        let mut pricers = HashMap::new();
        for s in &cfg.services {
            if let Some(p) = &s.pricing {
                pricers.insert(s.entry.name.to_string(), Pricer::new(p.clone())?);
            }
        }
        let spent = crate::spent::open(&cfg.spent_set)?;
        Ok(AppState {
            cfg: Arc::new(cfg),
            backend,
            pool,
            pricers: Arc::new(pricers),
            dev,
            spent,
            metrics,
            clock,
        })
    }

    /// The pool, if enabled.
    pub fn pool(&self) -> Option<&Arc<Pool>> {
        self.pool.as_ref()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The router.
    pub fn router(&self) -> Router {
        let mut r = Router::new()
            .route(CHALLENGES_PATH, post(challenge))
            .route(REDEEM_PATH, post(redeem))
            .route(ALLOWANCE_PATH, post(allowance))
            .route(CATALOG_PATH, get(catalog).post(catalog))
            .route(INVOICE_STATUS_PATH, post(invoice_status))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics));
        if self.dev.is_some() {
            r = r.route(DEV_PAY_PATH, post(dev_pay));
        }
        r.layer(RequestBodyLimitLayer::new(self.cfg.max_body_bytes))
            .with_state(self.clone())
    }
}

fn invoice_request(s: &Service, q: &Quote) -> InvoiceRequest {
    InvoiceRequest {
        amount_msat: q.price_sat.saturating_mul(1000),
        memo: s.memo.clone(),
        expiry_secs: u32::try_from(s.expiry.as_secs()).unwrap_or(u32::MAX),
    }
}

/// 401 unless an edge's bearer token is presented (the store endpoints: no metric of their own).
fn edge_only(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if authorized(state, headers) {
        return Ok(());
    }
    Err(ApiError::new(
        ApiErrorCode::Unauthorized,
        "missing or wrong edge bearer token",
    ))
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Compare against every token in constant time, without an early exit.
    state.cfg.edge_tokens.iter().fold(false, |ok, t| {
        ok | bool::from(t.as_bytes().ct_eq(presented.trim().as_bytes()))
    })
}

async fn challenge(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if !authorized(&state, &headers) {
        return Err(refuse(
            &state,
            "",
            ApiErrorCode::Unauthorized,
            "missing or wrong edge bearer token",
        ));
    }
    let req = ChallengeRequest::parse(&body)
        .map_err(|e| refuse(&state, "", ApiErrorCode::InvalidRequest, e.to_string()))?;
    let Some(service) = state.cfg.service(&req.service) else {
        return Err(refuse(
            &state,
            "",
            ApiErrorCode::UnknownService,
            "no such service in the catalog",
        ));
    };
    let name = service.entry.name.as_str();
    let client = match service.binding {
        None => None,
        Some(width) => match req.client_ip.as_deref().map(str::parse::<IpAddr>) {
            Some(Ok(ip)) => Some((ip, width)),
            _ => {
                return Err(refuse(
                    &state,
                    name,
                    ApiErrorCode::ClientIpRequired,
                    "this service binds tokens to the client address: the edge must pass client_ip",
                ));
            }
        },
    };
    let quote = quote(&state, service, &req).await?;
    let invoice = match get_invoice(&state, service, &quote).await {
        Ok(inv) => inv,
        Err(e) => {
            tracing::warn!(service = name, backend = state.backend.name(), error = %e, "no invoice for a challenge");
            return Err(refuse(
                &state,
                name,
                ApiErrorCode::BackendUnavailable,
                "the Lightning backend did not produce an invoice",
            )
            .retry_after(state.cfg.retry_after_secs));
        }
    };
    let mut random = [0u8; l402_core::TOKEN_ID_RANDOM_LEN];
    getrandom::fill(&mut random)
        .map_err(|_| refuse(&state, name, ApiErrorCode::InternalError, "no randomness"))?;
    let entry = ServiceEntry {
        capabilities: quote.capabilities,
        lifetime_secs: quote.lifetime_secs,
        ..service.entry.clone()
    };
    let minted = mint_bound(
        &state.cfg.keyring,
        invoice.payment_hash,
        random,
        &entry,
        (state.clock)(),
        client,
    )
    .map_err(|e| refuse(&state, name, ApiErrorCode::InternalError, e.to_string()))?;
    // The same invoice as a Payment charge (a free service has nothing to charge).
    let payment = if quote.price_sat > 0 {
        let capabilities = entry.capabilities.join(",");
        let charge = issue_charge(
            &state.cfg.keyring,
            &ChargeTerms {
                realm: &state.cfg.realm,
                service: name,
                capabilities: &capabilities,
                amount_sat: quote.price_sat,
                invoice: &invoice.bolt11,
                payment_hash: &invoice.payment_hash,
                expires_at: invoice.expires_at,
                description: Some(service.memo.as_str()).filter(|m| !m.is_empty()),
            },
        )
        .map_err(|e| refuse(&state, name, ApiErrorCode::InternalError, e.to_string()))?;
        Some(charge)
    } else {
        None
    };
    state.metrics.challenge(name, ChallengeResult::Ok);
    tracing::info!(
        service = name,
        payment_hash = %invoice.payment_hash,
        token_id = %minted.identifier.token_id,
        reason = req.reason.as_deref().unwrap_or("-"),
        "challenge issued"
    );
    // Each challenge is single-use: no cache may hand it to a second client.
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        JsonBody(
            ChallengeResponse {
                macaroon: minted.macaroon_b64,
                invoice: invoice.bolt11,
                payment_hash: invoice.payment_hash.to_hex(),
                expires_at: invoice.expires_at,
                payment,
                description: Some(service.memo.clone()).filter(|m| !m.is_empty()),
                lifetime_secs: entry.lifetime_secs,
                allowance: entry.allowance,
            }
            .to_body(),
        ),
    ))
}

/// An edge's `payment_hash` field, or 400.
fn payment_hash(hex: &str) -> Result<PaymentHash, ApiError> {
    PaymentHash::from_hex(hex).ok_or_else(|| {
        ApiError::new(
            ApiErrorCode::InvalidRequest,
            "payment_hash is not 64 hex digits",
        )
    })
}

/// Spends a Payment charge once (PROTOCOL.md §11.3): 200 the first time, 409 after, 503 when
/// the store cannot say. The edge has verified the credential; this only counts.
async fn redeem(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    edge_only(&state, &headers)?;
    let req = RedeemRequest::parse(&body)
        .map_err(|e| ApiError::new(ApiErrorCode::InvalidRequest, e.to_string()))?;
    let hash = payment_hash(&req.payment_hash)?;
    let now = (state.clock)();
    // Edges are trusted, but a store fills with what they send: no entry outlives a week.
    let expires_at = req.expires_at.min(now.saturating_add(MAX_REDEEM_TTL_SECS));
    match state.spent.redeem(&hash, expires_at, now).await {
        Ok(Redeemed::FirstUse) => {
            state.metrics.redeem("first_use");
            Ok((
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(serde_json::json!({"redeemed": "first_use"})),
            ))
        }
        Ok(Redeemed::AlreadySpent) => {
            state.metrics.redeem("already_spent");
            Err(ApiError::new(
                ApiErrorCode::PaymentSpent,
                "this payment was already spent",
            ))
        }
        Err(e) => {
            state.metrics.redeem("store_error");
            tracing::warn!(store = state.spent.kind(), error = %e, "spent-set did not answer");
            Err(ApiError::new(
                ApiErrorCode::SpentSetUnavailable,
                "the spent-set did not answer",
            )
            .retry_after(state.cfg.retry_after_secs))
        }
    }
}

/// Counts a metered token's requests (PROTOCOL.md §12): gives back what an edge releases,
/// grants what is left of what it takes; 503 when the store cannot say. The edge has verified
/// the token; this only counts.
async fn allowance(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    edge_only(&state, &headers)?;
    let req = AllowanceRequest::parse(&body)
        .map_err(|e| ApiError::new(ApiErrorCode::InvalidRequest, e.to_string()))?;
    match state.spent.count(&req, (state.clock)()).await {
        Ok(answer) => {
            state.metrics.allowance(match (req.take, answer.granted) {
                (0, _) => "released",
                (_, 0) => "spent",
                _ => "granted",
            });
            Ok((
                [(header::CACHE_CONTROL, "no-store")],
                JsonBody(answer.to_body()),
            ))
        }
        Err(e) => {
            state.metrics.allowance("store_error");
            tracing::warn!(store = state.spent.kind(), error = %e, "allowance store did not answer");
            Err(ApiError::new(
                ApiErrorCode::AllowanceStoreUnavailable,
                "the allowance store did not answer",
            )
            .retry_after(state.cfg.retry_after_secs))
        }
    }
}

/// The catalog as edges publish it (PROTOCOL.md §13.1): what each service costs and buys. The
/// edge renders the discovery documents from it, so the prices shown are these.
async fn catalog(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    edge_only(&state, &headers)?;
    let services = state
        .cfg
        .services
        .iter()
        .map(|s| CatalogService {
            name: s.entry.name.to_string(),
            tier: s.entry.tier,
            description: s.memo.clone(),
            price_sat: s.pricing.is_none().then_some(s.price_sat),
            max_price_sat: s.pricing.as_ref().map(|p| p.max_price_sat),
            capabilities: s.entry.capabilities.clone(),
            lifetime_secs: s.entry.lifetime_secs,
            allowance: s.entry.allowance,
            bind_client_ip: s.binding.is_some(),
        })
        .collect();
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        JsonBody(
            Catalog {
                provider: state.cfg.realm.clone(),
                services,
            }
            .to_body(),
        ),
    ))
}

/// Whether an invoice is paid, and its preimage once it is (PROTOCOL.md §13.3). The edge asks
/// only for a payment hash from a macaroon it verified (the paywall page's holder).
async fn invoice_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    edge_only(&state, &headers)?;
    let req = InvoiceStatusRequest::parse(&body)
        .map_err(|e| ApiError::new(ApiErrorCode::InvalidRequest, e.to_string()))?;
    let hash = payment_hash(&req.payment_hash)?;
    let answer = match state.backend.lookup_invoice(&hash).await {
        Ok(InvoiceLookup::Open) => InvoiceStatus {
            state: InvoiceState::Open,
            preimage: None,
        },
        Ok(InvoiceLookup::Gone) => InvoiceStatus {
            state: InvoiceState::Expired,
            preimage: None,
        },
        Ok(InvoiceLookup::Settled(p)) => InvoiceStatus {
            state: InvoiceState::Settled,
            preimage: Some(p.expose_hex()),
        },
        Err(e) => {
            tracing::warn!(backend = state.backend.name(), error = %e, "invoice lookup failed");
            return Err(ApiError::new(
                ApiErrorCode::BackendUnavailable,
                "the Lightning backend did not say",
            )
            .retry_after(state.cfg.retry_after_secs));
        }
    };
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        JsonBody(answer.to_body()),
    ))
}

/// The challenge's terms: the catalog's, or the service's pricer's within them.
async fn quote(
    state: &AppState,
    service: &Service,
    req: &ChallengeRequest,
) -> Result<Quote, ApiError> {
    let name = service.entry.name.as_str();
    let Some(pricer) = state.pricers.get(name) else {
        return Ok(catalog_quote(service));
    };
    let query = PriceQuery {
        service: name,
        method: req.method.as_deref(),
        path: req.path.as_deref(),
        capabilities: &service.entry.capabilities,
        client_ip: req.client_ip.as_deref(),
    };
    match pricer.quote(service, &query).await {
        Ok(q) => {
            state.metrics.pricing(name, "ok");
            Ok(q)
        }
        Err(e) => {
            state.metrics.pricing(name, e.kind());
            tracing::warn!(service = name, error = %e, "pricing endpoint gave no usable price");
            match pricer.on_error() {
                OnPricingError::Catalog => Ok(catalog_quote(service)),
                OnPricingError::Fail => Err(refuse(
                    state,
                    name,
                    ApiErrorCode::PricingUnavailable,
                    "the pricing endpoint gave no usable price",
                )
                .retry_after(state.cfg.retry_after_secs)),
            }
        }
    }
}

async fn get_invoice(
    state: &AppState,
    service: &Service,
    quote: &Quote,
) -> Result<Invoice, backend::BackendError> {
    // Pooled invoices carry the catalog price; a priced service never has any.
    if let Some(inv) = state
        .pool
        .as_ref()
        .and_then(|p| p.take(service.entry.name.as_str()))
    {
        return Ok(inv);
    }
    state
        .backend
        .create_invoice(&invoice_request(service, quote))
        .await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if let Err(e) = state.spent.check().await {
        return ApiError::new(ApiErrorCode::SpentSetUnavailable, e.to_string())
            .retry_after(state.cfg.retry_after_secs)
            .into_response();
    }
    match state.backend.check().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready", "backend": state.backend.name()})),
        )
            .into_response(),
        Err(e) => ApiError::new(ApiErrorCode::BackendUnavailable, e.to_string())
            .retry_after(state.cfg.retry_after_secs)
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[derive(Deserialize)]
struct DevPay {
    invoice: String,
}

#[derive(Serialize)]
struct DevPaid {
    preimage: String,
}

async fn dev_pay(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<axum::Json<DevPaid>, ApiError> {
    let Some(dev) = state.dev.as_ref() else {
        return Err(ApiError::new(ApiErrorCode::NotFound, "dev backend only"));
    };
    let req: DevPay = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ApiErrorCode::InvalidRequest, e.to_string()))?;
    let preimage = dev.pay(&req.invoice).map_err(|e| {
        let code = match e {
            DevPayError::BadInvoice => ApiErrorCode::InvalidRequest,
            DevPayError::UnknownInvoice => ApiErrorCode::UnknownInvoice,
            DevPayError::AlreadyPaid => ApiErrorCode::AlreadyPaid,
            DevPayError::Expired => ApiErrorCode::InvoiceExpired,
        };
        ApiError::new(code, e.to_string())
    })?;
    Ok(axum::Json(DevPaid {
        preimage: preimage.expose_hex(),
    }))
}

/// A running service: its address, and a handle to stop it.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancel to shut down gracefully.
    pub shutdown: CancellationToken,
    /// Resolves when the server has stopped.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The state (pool, metrics), for tests and benchmarks.
    pub state: AppState,
}

/// Binds, starts the pool refillers and serves until `shutdown` is cancelled.
pub async fn start(cfg: Config, clock: Clock) -> anyhow::Result<Running> {
    // dev/pay settles any invoice for free: it must never be reachable from another machine.
    if cfg.backend.node.is_dev() && !cfg.listen.ip().is_loopback() {
        anyhow::bail!(
            "backend = dev serves {DEV_PAY_PATH}, which pays any invoice: listen on a loopback address (127.0.0.1 or [::1]), not {}",
            cfg.listen
        );
    }
    let listener = TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    if cfg.backend.node.is_dev() {
        tracing::warn!(
            "!!! backend = dev: invoices are signed locally and paid through {DEV_PAY_PATH}; \
             no money moves. Never use this in production. !!!"
        );
    }
    let state = AppState::new(cfg, clock)?;
    let shutdown = CancellationToken::new();
    if let Some(pool) = state.pool() {
        pool.spawn_refillers(shutdown.child_token());
    }
    let router = state.router();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    });
    tracing::info!(%addr, backend = state.backend.name(), "invoice-service listening");
    Ok(Running {
        addr,
        shutdown,
        task,
        state,
    })
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Grace period for in-flight requests at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
