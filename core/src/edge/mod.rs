//! The edge's per-request procedure, once, for every host (PROTOCOL.md §2, §5, §8, §9).
//!
//! Like quinn-proto's `Connection`, this owns every decision and no I/O: a host hands over
//! what it saw (method, the raw `:path`, the headers, what its router says the route sells,
//! the clock) and gets a [`Step`] back: forward (with these headers removed and these set),
//! call the invoice-service with this body, look this token id up in a revocation store, or
//! answer this response. Answers from those calls come back through [`Edge::challenge_answered`]
//! and [`Edge::resume`]. The Envoy filter and the Worker only translate.
//!
//! ```text
//!  EdgeRequest ─► decide ─┬─► Forward { remove, set }                 (host forwards)
//!                         ├─► Challenge { body } ─► challenge_answered ─► Reply
//!                         ├─► CheckRevoked { token_id } ─► resume ─► Step
//!                         ├─► Redeem { payment_hash } ─► redeemed ─► Step   (Payment scheme)
//!                         ├─► Meter { take, release } ─► metered ─► Step   (metered tokens)
//!                         ├─► Ask { catalog / invoice status } ─► service_answered ─► Reply
//!                         │        (the edge's own endpoints: discovery, the paywall's status)
//!                         └─► Reply { 400 / 401 / 402 / 503 }
//! ```

#[allow(unused_imports)]
use crate::prelude::*;

mod limiter;
mod settings;

use core::net::IpAddr;
use hashbrown::HashSet;

pub use limiter::ChallengeLimiter;
pub use settings::{
    ChallengeRate, DEFAULT_CACHE_SIZE, DEFAULT_CHALLENGE_BURST, DEFAULT_CHALLENGES_PER_SECOND,
    DEFAULT_TIMEOUT_MS, EdgeOptions, EdgeSettings, MAX_CACHE_SIZE, MIN_EDGE_TOKEN_LEN,
    NonCanonicalPath, Problem, Setting, SettingsError, check_edge_token,
};

use crate::allowance::{
    AllowanceAnswer, AllowanceRequest, HEADER_ALLOWANCE_REMAINING, Leases,
    RESPONSE_ALLOWANCE_REMAINING, Spend,
};
use crate::api::{
    ChallengeRequest, ChallengeResponse, INVOICE_STATUS_PATH, InvoiceState, InvoiceStatus,
    InvoiceStatusRequest, RedeemRequest, Redeemed,
};
use crate::challenge::{DEFAULT_RETRY_AFTER_SECS, Denial, HttpResponse, is_grpc, render};
use crate::client_ip::parse_client_address;
use crate::context::{EdgeContext, sign_context};
use crate::credential::{
    CREDENTIAL_HEADERS, Candidate, Credentials, PENDING_COOKIE_PREFIX, cookie_pairs, is_edge_cookie,
};
use crate::discovery::{
    CATALOG_PATH, Catalog, MANIFEST_LINK, MANIFEST_PATH, Published, manifest, openapi,
};
use crate::ids::TokenId;
use crate::ids::{PaymentHash, Preimage};
use crate::path::{PathError, canonicalize};
use crate::payment::{Charge, RECEIPT_HEADER, Schemes, refuses_lightning_charge};
use crate::paywall::{
    STATUS_PATH, StatusQuery, Terms, content_security_policy, credential_cookie,
    pending_cookie_name, prefers_html, render_page, render_status_page, set_cookie,
};
use crate::reason::{Reason, Rejection};
use crate::service::{ServiceName, parse_capabilities};
use crate::verify::{Authorized, DenyList, Request, VerifiedCache};
use alloc::sync::Arc;

/// Header the edge adds upstream with the payment hash of a redeemed Payment charge.
pub const HEADER_PAYMENT_HASH: &str = "x-l402-payment-hash";

/// Every header whose name, lower-cased with `_` read as `-`, starts with this is the edge's
/// alone: removed from every request before the edge sets its own.
pub const RESERVED_HEADER_PREFIX: &str = "x-l402-";

/// What the host's router attached to the route (Envoy route metadata).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostSale<'a> {
    /// The route sells `service`, requiring `capabilities` (comma-separated).
    Attached {
        /// Service name as configured.
        service: &'a str,
        /// Capabilities as configured.
        capabilities: &'a str,
        /// Schemes as configured; empty: the edge's default.
        schemes: &'a str,
    },
    /// Nothing attached: the route table decides.
    NotAttached,
    /// Something is attached but unreadable: fail closed.
    Malformed,
}

/// A host failure: answered 503 with `Retry-After`, never a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum HostFailure {
    /// The clock could not be read.
    #[error("clock_unavailable")]
    Clock,
    /// Route metadata present but not a valid sale.
    #[error("route_metadata_malformed")]
    RouteMetadata,
    /// The revocation store did not answer.
    #[error("revocation_unavailable")]
    Revocation,
    /// The request headers could not be read.
    #[error("headers_unavailable")]
    Headers,
    /// The edge's configuration is invalid (its detail goes to the log only).
    #[error("edge_misconfigured")]
    Configuration,
    /// The edge's per-instance state was unavailable.
    #[error("edge_state_unavailable")]
    State,
    /// The origin could not be reached (the Worker's fetch failed).
    #[error("origin_unreachable")]
    Origin,
    /// The spent-set (the invoice-service's store, a Durable Object) did not answer: a
    /// Payment charge cannot be spent, so it is not served.
    #[error("spent_set_unavailable")]
    SpentSet,
    /// The allowance store did not answer: a metered token cannot be counted, so it is not
    /// served (unmetered tokens still pass).
    #[error("allowance_store_unavailable")]
    AllowanceStore,
    /// The host's per-token rate limiter did not answer: the request is not let through
    /// unlimited.
    #[error("rate_limiter_unavailable")]
    RateLimiter,
}

impl HostFailure {
    /// Every variant, for metrics.
    pub const ALL: [HostFailure; 10] = [
        HostFailure::Clock,
        HostFailure::RouteMetadata,
        HostFailure::Revocation,
        HostFailure::Headers,
        HostFailure::Configuration,
        HostFailure::State,
        HostFailure::Origin,
        HostFailure::SpentSet,
        HostFailure::AllowanceStore,
        HostFailure::RateLimiter,
    ];

    /// The stable name (body `error`, metric suffix).
    pub const fn as_str(self) -> &'static str {
        match self {
            HostFailure::Clock => "clock_unavailable",
            HostFailure::RouteMetadata => "route_metadata_malformed",
            HostFailure::Revocation => "revocation_unavailable",
            HostFailure::Headers => "headers_unavailable",
            HostFailure::Configuration => "edge_misconfigured",
            HostFailure::State => "edge_state_unavailable",
            HostFailure::Origin => "origin_unreachable",
            HostFailure::SpentSet => "spent_set_unavailable",
            HostFailure::AllowanceStore => "allowance_store_unavailable",
            HostFailure::RateLimiter => "rate_limiter_unavailable",
        }
    }
}

/// Error code of a 503 when the challenge bound is reached.
pub const RATE_LIMITED_CODE: &str = "challenge_rate_limited";

/// What happened, for the host's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a sold route: forwarded.
    Unsold,
    /// A CORS preflight on a sold route: forwarded unpaid.
    Preflight,
    /// A paid request: forwarded.
    Authorized {
        /// Whether the verified-credential cache answered.
        cache_hit: bool,
    },
    /// A Payment charge spent by this request: forwarded.
    Redeemed,
    /// A metered token's request, counted: forwarded.
    Metered {
        /// Whether the verified-credential cache answered.
        cache_hit: bool,
    },
    /// A credential refused (or missing); a challenge is being asked for.
    Rejected(Reason),
    /// A credential refused and 401 answered (policy `unauthorized`).
    Unauthorized(Reason),
    /// A 402 with a fresh challenge was answered.
    Challenged,
    /// 400: the target is ambiguous or not canonical.
    BadRequest(PathError),
    /// 503: the challenge bound was reached.
    RateLimited,
    /// 429: a token's per-route rate limit was reached.
    TokenRateLimited,
    /// 503: the invoice-service failed or timed out.
    InvoiceServiceFailed,
    /// 503: a host failure.
    HostFailure(HostFailure),
    /// The manifest or the OpenAPI document was served.
    Discovery,
    /// The paywall's status endpoint answered; `settled`: with the credential cookie.
    PaymentStatus {
        /// The invoice was paid and the cookie set.
        settled: bool,
    },
}

/// One request as the host saw it.
#[derive(Clone, Copy, Debug)]
pub struct EdgeRequest<'a> {
    /// Method.
    pub method: &'a str,
    /// The request target as received (`:path`: path and query), raw bytes.
    pub target: &'a [u8],
    /// Headers, names as the host gives them, in order; repeated names repeat.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Whether the host knows body bytes follow the headers (Envoy: `!end_of_stream`).
    pub body_follows: bool,
    /// What the host's router attached.
    pub sale: HostSale<'a>,
    /// Unix milliseconds; `None` when the host clock failed.
    pub now_ms: Option<u64>,
    /// The client's address as the host reports it (Envoy: the downstream remote address;
    /// Cloudflare: `CF-Connecting-IP`). Read by [`parse_client_address`].
    pub client_address: ClientAddress<'a>,
    /// The client reached the edge over TLS (cookies the edge sets are then `Secure`).
    pub secure: bool,
}

/// The client's address as the host can report it; never an `X-Forwarded-For` the client
/// wrote.
#[derive(Clone, Copy)]
pub enum ClientAddress<'a> {
    /// At hand already (a header the platform sets), or `None`: the host has none.
    Known(Option<&'a [u8]>),
    /// Costs the host a call (Envoy's `source.address` property): asked only when a decision
    /// needs it, for a token bound to an address or a challenge to mint, so the paid path of an
    /// unbound token pays nothing for it.
    OnDemand(&'a dyn Fn() -> Option<Vec<u8>>),
}

impl core::fmt::Debug for ClientAddress<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientAddress::Known(a) => f
                .debug_tuple("Known")
                .field(&a.map(String::from_utf8_lossy))
                .finish(),
            ClientAddress::OnDemand(_) => f.write_str("OnDemand"),
        }
    }
}

impl EdgeRequest<'_> {
    /// Whether answers to this request take gRPC's shape (for failures a host meets after
    /// deciding, such as a header rewrite it could not make).
    pub fn grpc(&self) -> bool {
        is_grpc(
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .and_then(|(_, v)| core::str::from_utf8(v).ok()),
        )
    }
}

/// Forward to the origin.
#[derive(Debug)]
pub struct Forward {
    /// Headers to remove, named as the host gave them.
    pub remove: Vec<String>,
    /// Headers to set (lower-case names), after removal.
    pub set: Vec<(String, String)>,
    /// Headers to add to the origin's response (`payment-receipt`).
    pub respond: Vec<(&'static str, String)>,
    /// The allowance unit this request spent, if metered.
    pub metered: Option<MeteredUnit>,
    /// For metrics.
    pub outcome: Outcome,
}

/// Answer the client.
#[derive(Debug)]
pub struct Reply {
    /// The response.
    pub response: HttpResponse,
    /// For metrics.
    pub outcome: Outcome,
}

/// A challenge to fetch: `POST` [`crate::CHALLENGES_PATH`] with `body` (JSON) and the bearer
/// token from the settings; hand the answer to [`Edge::challenge_answered`] with `pending`.
#[derive(Debug)]
pub struct ChallengeCall {
    /// The JSON body.
    pub body: Vec<u8>,
    /// What to answer with.
    pub pending: PendingChallenge,
}

impl ChallengeCall {
    /// For metrics: the credential was refused (or missing) for this reason.
    pub fn outcome(&self) -> Outcome {
        Outcome::Rejected(self.pending.reason)
    }
}

/// The state of a request waiting for its challenge.
#[derive(Clone, Debug)]
pub struct PendingChallenge {
    reason: Reason,
    grpc: bool,
    /// What the 402 offers: the route's schemes, less what the client refused.
    offer: Schemes,
    /// A browser asked: answer with the paywall page.
    page: Option<Box<PagePlan>>,
}

/// What a paywall page needs beyond the challenge.
#[derive(Clone, Debug)]
struct PagePlan {
    service: String,
    /// The request target to reload once paid (visible ASCII, origin-form).
    return_to: String,
    secure: bool,
    now_secs: u64,
}

impl PendingChallenge {
    /// Why a challenge is needed: `missing_credential`, or why the credential failed.
    pub fn reason(&self) -> Reason {
        self.reason
    }
}

/// A token id to look up in the host's revocation store (the Worker's KV); hand the answer
/// to [`Edge::resume`].
#[derive(Debug)]
pub struct RevocationCheck {
    /// The id to look up.
    pub token_id: TokenId,
    authorized: Authorized,
    cache_hit: bool,
    resume: Box<Resume>,
}

#[derive(Debug)]
struct Resume {
    credentials: Credentials,
    service: String,
    capabilities: String,
    /// What the route sells.
    schemes: Schemes,
    /// The client's `Accept-Payment` refuses `lightning/charge`.
    refuses_payment: bool,
    now_ms: u64,
    grpc: bool,
    remove: Vec<String>,
    method: String,
    path: String,
    client_ip: Option<IpAddr>,
    /// The host reports the address on demand and has not been asked yet.
    client_ip_pending: bool,
    revoked: HashSet<TokenId>,
    /// The route's per-token rate limiter, until the host has consulted it.
    rate_limit: Option<String>,
    /// The `Cookie` the origin gets in place of the client's (without the edge's cookies).
    cookie: Option<(String, String)>,
    /// A browser asked for the page: the target to come back to, and TLS.
    page: Option<(String, bool)>,
}

impl Resume {
    /// Asks the host for the client address if it has not been asked yet.
    fn resolve_client(&mut self, address: Option<&ClientAddress<'_>>) {
        if let (true, Some(ClientAddress::OnDemand(ask))) = (self.client_ip_pending, address) {
            self.client_ip = ask().as_deref().and_then(parse_client_address);
            self.client_ip_pending = false;
        }
    }
}

/// A verified Payment charge to spend once: `POST` [`crate::REDEEM_PATH`] with `body` to
/// the invoice-service, or the Worker's Durable Object keyed by `payment_hash`, then hand the
/// outcome to [`Edge::redeemed`].
#[derive(Debug)]
pub struct RedeemCall {
    /// The JSON body for the invoice-service.
    pub body: Vec<u8>,
    /// The verified charge: its payment hash is the spent-set key, kept until `expires_at`.
    pub charge: Charge,
    resume: Box<Resume>,
}

impl RedeemCall {
    /// Whether answers to this request take gRPC's shape.
    pub fn grpc(&self) -> bool {
        self.resume.grpc
    }
}

/// A metered token verified: take units from the allowance store (`POST`
/// [`crate::ALLOWANCE_PATH`] with `body`, or the Worker's Durable Object for the token id),
/// then hand the answer to [`Edge::metered`].
#[derive(Debug)]
pub struct MeterCall {
    /// What to ask the store.
    pub request: AllowanceRequest,
    /// `request` as JSON.
    pub body: Vec<u8>,
    authorized: Authorized,
    cache_hit: bool,
    resume: Box<Resume>,
}

impl MeterCall {
    /// Whether answers to this request take gRPC's shape.
    pub fn grpc(&self) -> bool {
        self.resume.grpc
    }
}

/// A token verified on a route with a per-token rate limit: ask the host's limiter named
/// `limiter` (the Worker's rate limiting binding) about `key`, then hand the answer to
/// [`Edge::rate_limited`]. Asked before a metered token is counted, so a refused request
/// spends nothing.
#[derive(Debug)]
pub struct RateLimitCall {
    /// The limiter's name, as the route gives it.
    pub limiter: String,
    /// The key: the token id, hex.
    pub key: String,
    authorized: Authorized,
    cache_hit: bool,
    resume: Box<Resume>,
}

/// A metered request forwarded: if the host learns that it was not served after all (Envoy's
/// `local_ratelimit` refused it after this filter), hand it to [`Edge::unserved`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeteredUnit {
    token_id: TokenId,
    service: String,
    limit: u64,
    expires_at: Option<u64>,
}

/// A call for the edge's own endpoints: `POST` `path` to the invoice-service with `body` and
/// the bearer token, then hand the answer to [`Edge::service_answered`]. Never on the paid
/// path: only the discovery documents and the paywall's status endpoint ask.
#[derive(Debug)]
pub struct ServiceCall {
    /// [`crate::CATALOG_PATH`] or [`crate::INVOICE_STATUS_PATH`].
    pub path: &'static str,
    /// The JSON body.
    pub body: Vec<u8>,
    asked: Asked,
}

#[derive(Debug)]
enum Asked {
    Catalog {
        document: Document,
        now_ms: u64,
    },
    Status {
        macaroon: String,
        payment_hash: PaymentHash,
        query: StatusQuery,
        html: bool,
        secure: bool,
        now_ms: u64,
    },
}

/// Which discovery document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Document {
    Manifest,
    OpenApi,
}

/// How long a fetched catalog is served before the next request for a document fetches it
/// again, and how long a stale one stands in while the invoice-service does not answer.
const CATALOG_FRESH_MS: u64 = 60_000;
const CATALOG_STALE_MS: u64 = 3_600_000;

/// What the host does next.
#[derive(Debug)]
pub enum Step {
    /// Forward the request.
    Forward(Forward),
    /// Fetch a challenge from the invoice-service.
    Challenge(ChallengeCall),
    /// Look a token id up in the revocation store.
    CheckRevoked(RevocationCheck),
    /// Spend a Payment charge in the spent-set.
    Redeem(RedeemCall),
    /// Count a metered token in the allowance store.
    Meter(MeterCall),
    /// Ask the host's per-token rate limiter.
    RateLimit(RateLimitCall),
    /// Ask the invoice-service for the edge's own endpoints (the catalog, an invoice's state).
    Ask(ServiceCall),
    /// Answer the client.
    Reply(Reply),
}

/// Per-instance mutable state (one Envoy VM, one Worker isolate): the verified-credential
/// cache and the challenge bound.
#[derive(Debug)]
pub struct EdgeState {
    cache: VerifiedCache,
    limiter: ChallengeLimiter,
    leases: Leases,
    /// The catalog as last fetched, and when (ms).
    catalog: Option<(u64, Arc<Catalog>)>,
}

impl EdgeState {
    /// Leased allowance units that ran out by `now_ms` (`all`: every one, at shutdown), as
    /// release requests for the host to send to the store (`POST` [`crate::ALLOWANCE_PATH`]);
    /// a release that fails loses those units for the client, never serves one too many.
    pub fn expired_leases(&mut self, now_ms: u64, all: bool) -> Vec<AllowanceRequest> {
        self.leases.expired(now_ms, all)
    }

    /// Allowance leases held.
    pub fn leases_held(&self) -> usize {
        self.leases.len()
    }
}

/// One edge: validated settings and the verifier. Immutable; share it.
#[derive(Debug)]
pub struct Edge {
    settings: EdgeSettings,
    external_revocation: bool,
}

/// The configured deny-list and the ids a store said are revoked.
struct Revoked<'a>(&'a HashSet<TokenId>, &'a HashSet<TokenId>);

impl DenyList for Revoked<'_> {
    fn is_revoked(&self, id: &TokenId) -> bool {
        self.0.contains(id) || self.1.contains(id)
    }
}

/// A header-name byte as frameworks read it: lower case, `_` as `-` (CGI, Rack, PHP, Django
/// map both spellings to one variable).
const fn framework_byte(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        b => b.to_ascii_lowercase(),
    }
}

/// Whether `name`, read as frameworks read it, starts with `lower` (lower case, `-`), without
/// allocating: this runs for every header of every request.
fn framework_starts_with(name: &str, lower: &str) -> bool {
    name.len() >= lower.len()
        && name
            .bytes()
            .zip(lower.bytes())
            .all(|(a, b)| framework_byte(a) == b)
}

/// The 503 of a host that has no [`Edge`] (its configuration was refused): the default
/// `Retry-After`, and no detail for the public.
pub fn misconfigured_reply() -> Reply {
    let failure = HostFailure::Configuration;
    Reply {
        response: render(
            &Denial::Unavailable {
                retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
                code: failure.as_str(),
            },
            false,
        ),
        outcome: Outcome::HostFailure(failure),
    }
}

impl Edge {
    /// An edge; `external_revocation`: the host has a revocation store to consult for every
    /// authorized token (the Worker's KV), beside the configured deny-list.
    pub fn new(settings: EdgeSettings, external_revocation: bool) -> Edge {
        Edge {
            settings,
            external_revocation,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &EdgeSettings {
        &self.settings
    }

    /// Fresh per-instance state.
    pub fn new_state(&self) -> EdgeState {
        EdgeState {
            cache: VerifiedCache::new(self.settings.cache_size),
            limiter: ChallengeLimiter::new(self.settings.challenge_rate),
            leases: Leases::default(),
            catalog: None,
        }
    }

    /// A 503 for a failure of this host.
    pub fn fail(&self, failure: HostFailure, grpc: bool) -> Reply {
        self.unavailable(failure.as_str(), grpc, Outcome::HostFailure(failure))
    }

    fn reply(&self, denial: &Denial<'_>, grpc: bool, outcome: Outcome) -> Step {
        Step::Reply(Reply {
            response: render(denial, grpc),
            outcome,
        })
    }

    /// Whether a header is the edge's own (any spelling a framework reads as the same name).
    fn reserved(&self, name: &str) -> bool {
        let s = &self.settings;
        let is = |lower: &str| name.len() == lower.len() && framework_starts_with(name, lower);
        framework_starts_with(name, RESERVED_HEADER_PREFIX)
            || is(&s.token_id_header)
            || is(&s.service_header)
            || is(&s.context_header)
    }

    /// Decides what to do with a request.
    pub fn decide(&self, state: &mut EdgeState, req: &EdgeRequest<'_>) -> Step {
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        let grpc = req.grpc();
        // 1. The path the origin will read; what no reading settles is refused, sold or not.
        let target = match canonicalize(req.target) {
            Ok(t) => t,
            Err(e) => return self.bad_request(e, grpc),
        };
        if target.changed() && self.settings.non_canonical_path == NonCanonicalPath::Refuse {
            return self.bad_request(PathError::NotCanonical, grpc);
        }
        // The edge's own endpoints: answered here, never forwarded.
        if matches!(req.method, "GET" | "HEAD")
            && let Some(step) = self.own_endpoint(state, req, &target, grpc)
        {
            return step;
        }
        // 2. The edge's own headers and cookies leave every request.
        let mut remove: Vec<String> = Vec::new();
        let mut edge_cookies = false;
        for (name, value) in req.headers {
            if self.reserved(name) && !remove.iter().any(|r| r == name) {
                remove.push((*name).to_owned());
            }
            if name.eq_ignore_ascii_case("cookie") && has_edge_cookie(value) {
                edge_cookies = true;
            }
        }
        let cookie = if edge_cookies {
            rewrite_cookies(req.headers, &mut remove)
        } else {
            None
        };
        // 3. What the route sells: the host's router first, then the route table.
        let (service, capabilities, schemes, rate_limit) = match req.sale {
            HostSale::Malformed => {
                return Step::Reply(self.fail(HostFailure::RouteMetadata, grpc));
            }
            HostSale::Attached {
                service,
                capabilities,
                schemes,
            } => {
                if ServiceName::new(service).is_err() || parse_capabilities(capabilities).is_err() {
                    return Step::Reply(self.fail(HostFailure::RouteMetadata, grpc));
                }
                // Envoy limits tokens with its own local_ratelimit, after this filter.
                (service, capabilities, schemes, "")
            }
            HostSale::NotAttached => match self.settings.routes.route_for(target.path()) {
                Some(r) => (
                    r.service.as_str(),
                    r.capabilities.as_str(),
                    r.schemes.as_str(),
                    r.rate_limit.as_str(),
                ),
                None => return self.forward(remove, cookie.into_iter().collect(), Outcome::Unsold),
            },
        };
        let schemes = match schemes {
            "" => self.settings.schemes,
            s => match s.parse::<Schemes>() {
                Ok(s) => s,
                Err(_) => return Step::Reply(self.fail(HostFailure::RouteMetadata, grpc)),
            },
        };
        // 4. A preflight passes unpaid only when it is one.
        let preflight = req.method == "OPTIONS"
            && header("origin").is_some()
            && header("access-control-request-method").is_some()
            && !self.has_body(req);
        if preflight {
            return self.forward(remove, cookie.into_iter().collect(), Outcome::Preflight);
        }
        let Some(now_ms) = req.now_ms else {
            return Step::Reply(self.fail(HostFailure::Clock, grpc));
        };
        let credentials = Credentials::from_headers(req.headers.iter().copied());
        // Forwarded only once authorized; a paid request reaches the origin without them.
        if self.settings.strip_credential {
            for (name, _) in req.headers {
                let credential = CREDENTIAL_HEADERS
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(name));
                if credential && !remove.iter().any(|x| x == name) {
                    remove.push((*name).to_owned());
                }
            }
        }
        let resume = Resume {
            credentials,
            service: service.to_owned(),
            capabilities: capabilities.to_owned(),
            schemes,
            refuses_payment: refuses_lightning_charge(header("accept-payment")),
            now_ms,
            grpc,
            remove,
            method: req.method.to_owned(),
            path: target.into_path(),
            client_ip: match req.client_address {
                ClientAddress::Known(a) => a.and_then(parse_client_address),
                ClientAddress::OnDemand(_) => None,
            },
            client_ip_pending: matches!(req.client_address, ClientAddress::OnDemand(_)),
            revoked: HashSet::new(),
            rate_limit: (!rate_limit.is_empty()).then(|| rate_limit.to_owned()),
            cookie,
            page: if self.wants_page(req, grpc) {
                page_target(req.target).map(|t| (t, req.secure))
            } else {
                None
            },
        };
        self.judge(state, Box::new(resume), Some(&req.client_address))
    }

    fn has_body(&self, req: &EdgeRequest<'_>) -> bool {
        req.body_follows
            || req.headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case("transfer-encoding")
                    || (n.eq_ignore_ascii_case("content-length") && v.iter().any(|b| *b != b'0'))
            })
    }

    fn bad_request(&self, e: PathError, grpc: bool) -> Step {
        self.reply(
            &Denial::BadRequest { code: e.as_str() },
            grpc,
            Outcome::BadRequest(e),
        )
    }

    fn forward(&self, remove: Vec<String>, set: Vec<(String, String)>, outcome: Outcome) -> Step {
        Step::Forward(Forward {
            remove,
            set,
            respond: Vec::new(),
            metered: None,
            outcome,
        })
    }

    /// Verifies with the client address and the revocations known so far; `(decision, cache
    /// hit)`.
    fn verify(&self, state: &mut EdgeState, r: &Resume) -> (Result<Authorized, Rejection>, bool) {
        let request = Request {
            service: &r.service,
            capabilities: &r.capabilities,
            now: r.now_ms / 1000,
            client_ip: r.client_ip,
        };
        let before = state.cache.stats().0;
        let decision = self.settings.verifier.verify_cached(
            &r.credentials,
            &request,
            &Revoked(&self.settings.deny_list, &r.revoked),
            &mut state.cache,
        );
        (decision, state.cache.stats().0 > before)
    }

    /// Verifies with everything known revoked so far. `address` is the host's, while the
    /// request is at hand (`None` on resumption, when the address was settled before).
    fn judge(
        &self,
        state: &mut EdgeState,
        mut r: Box<Resume>,
        address: Option<&ClientAddress<'_>>,
    ) -> Step {
        // A Payment credential is judged as one where the route sells Payment, unless an L402
        // credential sits beside it on a route that sells L402 too (L402 then decides).
        let payment = r.schemes.payment
            && r.credentials.payment().is_some()
            && !(r.schemes.l402 && r.credentials.has_l402());
        if payment {
            return self.judge_payment(state, r, address);
        }
        if !r.schemes.l402 {
            // Only Payment is sold and none was presented: L402 credentials count for nothing.
            return self.reject(state, r, Reason::MissingCredential, address);
        }
        let (mut decision, mut cache_hit) = self.verify(state, &r);
        // A token bound to an address, and the host reports it on demand: ask, judge again.
        if r.client_ip_pending && matches!(&decision, Err(e) if e.reason == Reason::ClientIpUnknown)
        {
            r.resolve_client(address);
            (decision, cache_hit) = self.verify(state, &r);
        }
        match decision {
            Ok(authorized) => {
                if self.external_revocation {
                    // The resumed judgement has no host to ask.
                    r.resolve_client(address);
                    Step::CheckRevoked(RevocationCheck {
                        token_id: *authorized.token_id(),
                        authorized,
                        cache_hit,
                        resume: r,
                    })
                } else {
                    self.authorized(state, r, authorized, cache_hit)
                }
            }
            Err(rejection) => self.reject(state, r, rejection.reason, address),
        }
    }

    /// A refused (or missing) credential: 401 under policy `unauthorized`, else a fresh
    /// challenge within the bound.
    fn reject(
        &self,
        state: &mut EdgeState,
        mut r: Box<Resume>,
        reason: Reason,
        address: Option<&ClientAddress<'_>>,
    ) -> Step {
        if !self.settings.on_invalid.wants_challenge(reason) {
            return self.reply(
                &Denial::Unauthorized { reason },
                r.grpc,
                Outcome::Unauthorized(reason),
            );
        }
        if !state.limiter.take(r.now_ms) {
            return Step::Reply(self.unavailable(RATE_LIMITED_CODE, r.grpc, Outcome::RateLimited));
        }
        // The invoice-service binds new tokens to it.
        r.resolve_client(address);
        // A client that refuses lightning/charge gets L402 alone where L402 is sold too.
        let offer = Schemes {
            l402: r.schemes.l402,
            payment: r.schemes.payment && !(r.refuses_payment && r.schemes.l402),
        };
        Step::Challenge(ChallengeCall {
            body: ChallengeRequest {
                service: r.service.clone(),
                reason: Some(reason.as_str().to_owned()),
                method: Some(r.method.clone()),
                path: Some(r.path.clone()),
                client_ip: r.client_ip.map(|ip| ip.to_string()),
            }
            .to_body(),
            pending: PendingChallenge {
                reason,
                grpc: r.grpc,
                offer,
                page: r.page.take().map(|(return_to, secure)| {
                    Box::new(PagePlan {
                        service: r.service.clone(),
                        return_to,
                        secure,
                        now_secs: r.now_ms / 1000,
                    })
                }),
            },
        })
    }

    /// The Payment scheme's stateless checks; a charge that passes them is spent next.
    fn judge_payment(
        &self,
        state: &mut EdgeState,
        mut r: Box<Resume>,
        address: Option<&ClientAddress<'_>>,
    ) -> Step {
        let request = Request {
            service: &r.service,
            capabilities: &r.capabilities,
            now: r.now_ms / 1000,
            client_ip: None,
        };
        let decision = match r.credentials.payment() {
            Some(Ok(credential)) => self.settings.verifier.verify_payment(credential, &request),
            Some(Err(rejection)) => Err(rejection),
            None => Err(crate::reason::Rejection::new(
                Reason::MissingCredential,
                "no Payment credential",
            )),
        };
        match decision {
            Ok(charge) => {
                // Settled now: a spent charge is answered with a challenge after the store.
                r.resolve_client(address);
                Step::Redeem(RedeemCall {
                    body: RedeemRequest {
                        payment_hash: charge.payment_hash.to_hex(),
                        expires_at: charge.expires_at,
                    }
                    .to_body(),
                    charge,
                    resume: r,
                })
            }
            Err(rejection) => self.reject(state, r, rejection.reason, address),
        }
    }

    /// Continues after the spent-set answered: `Ok(FirstUse)` forwards with a receipt,
    /// `Ok(AlreadySpent)` answers a fresh challenge (`payment_spent`), `Err` is a 503: a
    /// charge the store could not spend is never served.
    pub fn redeemed(
        &self,
        state: &mut EdgeState,
        call: RedeemCall,
        outcome: Result<Redeemed, HostFailure>,
    ) -> Step {
        let r = call.resume;
        match outcome {
            Err(f) => Step::Reply(self.fail(f, r.grpc)),
            Ok(Redeemed::AlreadySpent) => self.reject(state, r, Reason::PaymentSpent, None),
            Ok(Redeemed::FirstUse) => {
                let charge = call.charge;
                let s = &self.settings;
                let hash = charge.payment_hash.to_hex();
                let mut set: Vec<(String, String)> = r.cookie.iter().cloned().collect();
                set.push((s.service_header.clone(), charge.service.clone()));
                set.push((HEADER_PAYMENT_HASH.to_owned(), hash.clone()));
                if let Some(key) = &s.context_key {
                    let ctx = EdgeContext {
                        token_id: hash,
                        service: charge.service.clone(),
                        capabilities: (!charge.capabilities.is_empty()).then(|| {
                            charge
                                .capabilities
                                .split(',')
                                .map(|c| c.trim().to_owned())
                                .collect()
                        }),
                        token_expires_at: None,
                        allowance_remaining: None,
                        method: r.method,
                        path: r.path,
                    };
                    match sign_context(key, &ctx, r.now_ms / 1000) {
                        Ok(jws) => set.push((s.context_header.clone(), jws)),
                        Err(_) => return Step::Reply(self.fail(HostFailure::State, r.grpc)),
                    }
                }
                Step::Forward(Forward {
                    remove: r.remove,
                    set,
                    respond: vec![(RECEIPT_HEADER, charge.receipt(r.now_ms / 1000))],
                    metered: None,
                    outcome: Outcome::Redeemed,
                })
            }
        }
    }

    /// A token verified (and not revoked): a metered one is counted first.
    fn authorized(
        &self,
        state: &mut EdgeState,
        mut r: Box<Resume>,
        authorized: Authorized,
        cache_hit: bool,
    ) -> Step {
        if let Some(limiter) = r.rate_limit.take() {
            return Step::RateLimit(RateLimitCall {
                limiter,
                key: authorized.token_id().to_hex(),
                authorized,
                cache_hit,
                resume: r,
            });
        }
        let Some(limit) = authorized.allowance() else {
            return self.forward_authorized(*r, authorized, cache_hit, None);
        };
        let token_id = *authorized.token_id();
        match state.leases.spend(
            &token_id,
            authorized.service(),
            r.now_ms,
            self.settings.allowance_lease,
        ) {
            Spend::Local(remaining) => {
                self.forward_authorized(*r, authorized, cache_hit, Some(remaining))
            }
            Spend::Store { take, release } => {
                let request = AllowanceRequest {
                    token_id: token_id.to_hex(),
                    service: authorized.service().to_owned(),
                    limit,
                    expires_at: authorized.expires_at(),
                    take,
                    release,
                };
                Step::Meter(MeterCall {
                    body: request.to_body(),
                    request,
                    authorized,
                    cache_hit,
                    resume: r,
                })
            }
        }
    }

    /// Continues after the host's rate limiter answered: `Ok(true)` within the limit (the
    /// request goes on to be counted and forwarded), `Ok(false)` a 429 with `Retry-After`,
    /// `Err` a 503 (a limiter that cannot say does not let a request through unlimited).
    pub fn rate_limited(
        &self,
        state: &mut EdgeState,
        call: RateLimitCall,
        allowed: Result<bool, HostFailure>,
    ) -> Step {
        let r = call.resume;
        match allowed {
            Err(f) => Step::Reply(self.fail(f, r.grpc)),
            Ok(false) => self.reply(
                &Denial::TooManyRequests {
                    retry_after_secs: self.settings.retry_after_secs,
                },
                r.grpc,
                Outcome::TokenRateLimited,
            ),
            Ok(true) => self.authorized(state, r, call.authorized, call.cache_hit),
        }
    }

    /// A metered request the host learned was not served (Envoy's `local_ratelimit` answered
    /// 429 after this filter counted it): its unit goes back to this instance's lease, to
    /// serve the next request or go back to the store with the lease.
    pub fn unserved(&self, state: &mut EdgeState, unit: &MeteredUnit, now_ms: u64) {
        state.leases.refund(
            &unit.token_id,
            &unit.service,
            unit.limit,
            unit.expires_at,
            now_ms.saturating_add(self.settings.allowance_lease_ms),
        );
    }

    /// Continues after the allowance store answered: a unit granted forwards (the rest of a
    /// lease is kept for the next requests), none left answers a fresh challenge
    /// (`allowance_spent`), `Err` is a 503: a metered token the store cannot count is never
    /// served.
    pub fn metered(
        &self,
        state: &mut EdgeState,
        call: MeterCall,
        answer: Result<AllowanceAnswer, HostFailure>,
    ) -> Step {
        let r = call.resume;
        state
            .leases
            .settle(call.authorized.token_id(), call.authorized.service());
        match answer {
            Err(f) => Step::Reply(self.fail(f, r.grpc)),
            Ok(a) if a.granted == 0 || a.granted > call.request.take => {
                // Another answer to this instance may have brought units meanwhile.
                let token_id = *call.authorized.token_id();
                match state
                    .leases
                    .spend_local(&token_id, call.authorized.service(), r.now_ms)
                {
                    Some(remaining) => self.forward_authorized(
                        *r,
                        call.authorized,
                        call.cache_hit,
                        Some(remaining),
                    ),
                    None => self.reject(state, r, Reason::AllowanceSpent, None),
                }
            }
            Ok(a) => {
                let remaining = state.leases.keep(
                    &call.request,
                    call.authorized.token_id(),
                    a.granted - 1,
                    a.left,
                    r.now_ms.saturating_add(self.settings.allowance_lease_ms),
                );
                self.forward_authorized(*r, call.authorized, call.cache_hit, Some(remaining))
            }
        }
    }

    fn forward_authorized(
        &self,
        r: Resume,
        authorized: Authorized,
        cache_hit: bool,
        remaining: Option<u64>,
    ) -> Step {
        let s = &self.settings;
        let mut set: Vec<(String, String)> = r.cookie.iter().cloned().collect();
        set.push((s.token_id_header.clone(), authorized.token_id().to_hex()));
        set.push((s.service_header.clone(), authorized.service().to_owned()));
        if let Some(key) = &s.context_key {
            let ctx = EdgeContext {
                token_id: authorized.token_id().to_hex(),
                service: authorized.service().to_owned(),
                capabilities: authorized
                    .capabilities()
                    .map(|c| c.into_iter().map(str::to_owned).collect()),
                token_expires_at: authorized.expires_at(),
                allowance_remaining: remaining,
                method: r.method,
                path: r.path,
            };
            match sign_context(key, &ctx, r.now_ms / 1000) {
                Ok(jws) => set.push((s.context_header.clone(), jws)),
                // An origin that expects the proof would refuse the request: say so now.
                Err(_) => return Step::Reply(self.fail(HostFailure::State, r.grpc)),
            }
        }
        let mut respond = Vec::new();
        let mut metered = None;
        if let Some(n) = remaining {
            set.push((HEADER_ALLOWANCE_REMAINING.to_owned(), n.to_string()));
            respond.push((RESPONSE_ALLOWANCE_REMAINING, n.to_string()));
            metered = authorized.allowance().map(|limit| MeteredUnit {
                token_id: *authorized.token_id(),
                service: authorized.service().to_owned(),
                limit,
                expires_at: authorized.expires_at(),
            });
        }
        Step::Forward(Forward {
            remove: r.remove,
            set,
            respond,
            metered,
            outcome: if remaining.is_some() {
                Outcome::Metered { cache_hit }
            } else {
                Outcome::Authorized { cache_hit }
            },
        })
    }

    /// Continues after a revocation lookup: `Ok(true)` revoked, `Ok(false)` not, `Err` the
    /// store failed (503, never a pass).
    pub fn resume(
        &self,
        state: &mut EdgeState,
        check: RevocationCheck,
        revoked: Result<bool, HostFailure>,
    ) -> Step {
        let mut r = check.resume;
        match revoked {
            Err(f) => Step::Reply(self.fail(f, r.grpc)),
            Ok(false) => self.authorized(state, r, check.authorized, check.cache_hit),
            Ok(true) => {
                r.revoked.insert(check.token_id);
                self.judge(state, r, None)
            }
        }
    }

    /// A host's own per-client limiter refused the challenge (Cloudflare's rate limiting
    /// binding): the same 503 as the per-instance bound, with no invoice-service call.
    pub fn challenge_refused(&self, pending: PendingChallenge) -> Reply {
        self.unavailable(RATE_LIMITED_CODE, pending.grpc, Outcome::RateLimited)
    }

    /// A 503 with this edge's `Retry-After`.
    fn unavailable(&self, code: &'static str, grpc: bool, outcome: Outcome) -> Reply {
        Reply {
            response: render(
                &Denial::Unavailable {
                    retry_after_secs: self.settings.retry_after_secs,
                    code,
                },
                grpc,
            ),
            outcome,
        }
    }

    /// The invoice-service's answer: `status` `None` when the call failed or timed out.
    pub fn challenge_answered(
        &self,
        pending: PendingChallenge,
        status: Option<u16>,
        body: Option<&[u8]>,
    ) -> Reply {
        let challenge = match (status, body) {
            (Some(200), Some(b)) => ChallengeResponse::parse_challenge(b).ok(),
            _ => None,
        };
        // A route that sells Payment alone needs the service's Payment form.
        let challenge = challenge.filter(|c| pending.offer.l402 || c.payment.is_some());
        match challenge {
            Some(c) => {
                let mut response = render(
                    &Denial::PaymentRequired {
                        offer: &c,
                        schemes: pending.offer,
                        form: self.settings.challenge_form,
                        reason: pending.reason,
                    },
                    pending.grpc,
                );
                if self.settings.discovery {
                    response.headers.push(("link", MANIFEST_LINK.to_owned()));
                }
                let terms = body.and_then(Terms::from_answer);
                if let (Some(plan), Some(terms)) = (pending.page.as_deref(), terms) {
                    paywall_page(&mut response, &c, &terms, plan);
                }
                Reply {
                    response,
                    outcome: Outcome::Challenged,
                }
            }
            None => self.unavailable(
                crate::challenge::UNAVAILABLE_CODE,
                pending.grpc,
                Outcome::InvoiceServiceFailed,
            ),
        }
    }
}

/// Whether a `Cookie` value carries one of the edge's cookies (a cheap scan first: this runs
/// for every request that has cookies).
fn has_edge_cookie(value: &[u8]) -> bool {
    value.windows(4).any(|w| w == b"L402")
        && core::str::from_utf8(value)
            .is_ok_and(|v| cookie_pairs(v).any(|(n, _)| is_edge_cookie(n)))
}

/// Removes every `Cookie` header and gives back one without the edge's cookies (or none, if
/// nothing else is left): the origin never sees a credential cookie.
fn rewrite_cookies(
    headers: &[(&str, &[u8])],
    remove: &mut Vec<String>,
) -> Option<(String, String)> {
    let mut kept: Vec<&str> = Vec::new();
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("cookie") {
            continue;
        }
        if !remove.iter().any(|r| r == name) {
            remove.push((*name).to_owned());
        }
        // A value that is not UTF-8 is dropped whole: it cannot be split safely.
        let Ok(v) = core::str::from_utf8(value) else {
            continue;
        };
        kept.extend(
            v.split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty())
                .filter(|pair| !is_edge_cookie(pair.split_once('=').map_or(*pair, |p| p.0).trim())),
        );
    }
    (!kept.is_empty()).then(|| ("cookie".to_owned(), kept.join("; ")))
}

/// The target a paywall page reloads: the request's own, if it is visible ASCII.
fn page_target(target: &[u8]) -> Option<String> {
    let ok = target.first() == Some(&b'/')
        && target.get(1) != Some(&b'/')
        && target
            .iter()
            .all(|b| (0x21..0x7f).contains(b) && *b != b'\\');
    ok.then(|| String::from_utf8_lossy(target).into_owned())
}

/// Turns a rendered 402 into the paywall page: same status and challenge headers, an HTML
/// body, and the unpaid macaroon in a cookie only the status endpoint receives.
fn paywall_page(response: &mut HttpResponse, offer: &crate::Offer, terms: &Terms, plan: &PagePlan) {
    response.body = render_page(offer, terms, &plan.service, &plan.return_to);
    response.headers.retain(|(n, _)| *n != "content-type");
    response
        .headers
        .push(("content-type", "text/html; charset=utf-8".to_owned()));
    response
        .headers
        .push(("content-security-policy", content_security_policy()));
    response
        .headers
        .push(("x-content-type-options", "nosniff".to_owned()));
    response.headers.push(("vary", "accept".to_owned()));
    response.headers.push((
        "set-cookie",
        set_cookie(
            &pending_cookie_name(&terms.payment_hash),
            offer.l402.macaroon(),
            STATUS_PATH,
            Some(terms.expires_at.saturating_sub(plan.now_secs).max(1)),
            plan.secure,
        ),
    ));
}

/// The request's `Accept`, for the page or JSON.
fn accept<'a>(req: &EdgeRequest<'a>) -> Option<&'a [u8]> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("accept"))
        .map(|(_, v)| *v)
}

/// A small JSON answer from the edge itself.
fn json_reply(status: u16, body: String, outcome: Outcome) -> Reply {
    Reply {
        response: HttpResponse {
            status,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
            ],
            body,
            grpc: None,
        },
        outcome,
    }
}

impl Edge {
    /// Whether a 402 to this request is the paywall page: a browser navigating (`GET`, HTML
    /// preferred), never gRPC, and the page switched on.
    fn wants_page(&self, req: &EdgeRequest<'_>, grpc: bool) -> bool {
        self.settings.paywall
            && !grpc
            && matches!(req.method, "GET" | "HEAD")
            && prefers_html(accept(req))
    }

    /// The edge's own endpoints (discovery, the paywall's status), if this is one.
    fn own_endpoint(
        &self,
        state: &mut EdgeState,
        req: &EdgeRequest<'_>,
        target: &crate::CanonicalTarget,
        grpc: bool,
    ) -> Option<Step> {
        let s = &self.settings;
        let path = target.path();
        let document = if s.discovery && path == MANIFEST_PATH {
            Some(Document::Manifest)
        } else if s.discovery && s.openapi_path.as_deref() == Some(path) {
            Some(Document::OpenApi)
        } else {
            None
        };
        let status = s.paywall && path == STATUS_PATH;
        if document.is_none() && !status {
            return None;
        }
        let Some(now_ms) = req.now_ms else {
            return Some(Step::Reply(self.fail(HostFailure::Clock, grpc)));
        };
        Some(match document {
            Some(document) => self.discovery(state, document, now_ms),
            None => self.payment_status(req, target.query(), now_ms),
        })
    }

    /// Every path the manifest lists: the route table, then the published extras.
    fn published(&self) -> Vec<Published<'_>> {
        let s = &self.settings;
        s.routes
            .iter()
            .chain(s.publish.iter())
            .map(|route| Published {
                route,
                schemes: route.schemes.parse().unwrap_or(s.schemes),
            })
            .collect()
    }

    fn discovery(&self, state: &mut EdgeState, document: Document, now_ms: u64) -> Step {
        match &state.catalog {
            Some((at, c)) if now_ms.saturating_sub(*at) < CATALOG_FRESH_MS => {
                Step::Reply(self.document(document, c))
            }
            _ => Step::Ask(ServiceCall {
                path: CATALOG_PATH,
                body: b"{}".to_vec(),
                asked: Asked::Catalog { document, now_ms },
            }),
        }
    }

    fn document(&self, document: Document, catalog: &Catalog) -> Reply {
        let published = self.published();
        let body = match document {
            Document::Manifest => {
                manifest(catalog, &published, self.settings.openapi_path.as_deref())
            }
            Document::OpenApi => openapi(catalog, &published),
        };
        Reply {
            response: HttpResponse {
                status: 200,
                headers: vec![
                    ("content-type", "application/json".to_owned()),
                    ("cache-control", "public, max-age=60".to_owned()),
                    ("access-control-allow-origin", "*".to_owned()),
                ],
                body,
                grpc: None,
            },
            outcome: Outcome::Discovery,
        }
    }

    /// The paywall's status endpoint: the pending cookie's macaroon, verified here, names the
    /// invoice; the invoice-service says whether it is paid.
    fn payment_status(&self, req: &EdgeRequest<'_>, query: Option<&str>, now_ms: u64) -> Step {
        let bad = |code: &str| {
            Step::Reply(json_reply(
                400,
                format!("{{\"error\":\"{code}\"}}"),
                Outcome::PaymentStatus { settled: false },
            ))
        };
        let Some(query) = StatusQuery::parse(query) else {
            return bad("bad_status_query");
        };
        let name = format!("{PENDING_COOKIE_PREFIX}{}", query.pending);
        let macaroon = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .filter_map(|(_, v)| core::str::from_utf8(v).ok())
            .flat_map(cookie_pairs)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned());
        let Some(macaroon) = macaroon else {
            return bad("no_pending_challenge");
        };
        let identifier = match self.settings.verifier.verify_unpaid(&macaroon) {
            Ok(i) => i,
            Err(r) => return bad(r.reason.as_str()),
        };
        let hash = identifier.payment_hash;
        if !hash.to_hex().starts_with(&query.pending) {
            return bad("no_pending_challenge");
        }
        Step::Ask(ServiceCall {
            path: INVOICE_STATUS_PATH,
            body: InvoiceStatusRequest {
                payment_hash: hash.to_hex(),
            }
            .to_body(),
            asked: Asked::Status {
                macaroon,
                payment_hash: hash,
                query,
                html: prefers_html(accept(req)),
                secure: req.secure,
                now_ms,
            },
        })
    }

    /// The invoice-service's answer to a [`ServiceCall`]: `status` `None` when the call failed
    /// or timed out.
    pub fn service_answered(
        &self,
        state: &mut EdgeState,
        call: ServiceCall,
        status: Option<u16>,
        body: Option<&[u8]>,
    ) -> Reply {
        let ok_body = match status {
            Some(200) => body,
            _ => None,
        };
        match call.asked {
            Asked::Catalog { document, now_ms } => {
                if let Some(c) = ok_body.and_then(|b| Catalog::parse(b).ok()) {
                    let c = Arc::new(c);
                    state.catalog = Some((now_ms, Arc::clone(&c)));
                    return self.document(document, &c);
                }
                match &state.catalog {
                    // The invoice-service is away: the last catalog stands in for a while.
                    Some((at, c)) if now_ms.saturating_sub(*at) < CATALOG_STALE_MS => {
                        self.document(document, c)
                    }
                    _ => self.unavailable(
                        "catalog_unavailable",
                        false,
                        Outcome::InvoiceServiceFailed,
                    ),
                }
            }
            Asked::Status {
                macaroon,
                payment_hash,
                query,
                html,
                secure,
                now_ms,
            } => {
                let answer: Option<InvoiceStatus> =
                    ok_body.and_then(|b| InvoiceStatus::parse(b).ok());
                let Some(answer) = answer else {
                    return self.unavailable(
                        "invoice_status_unavailable",
                        false,
                        Outcome::InvoiceServiceFailed,
                    );
                };
                let pending = pending_cookie_name(&payment_hash.to_hex());
                let forget = set_cookie(&pending, "", STATUS_PATH, Some(0), secure);
                let unpaid = |expired: bool| {
                    let state = if expired { "expired" } else { "open" };
                    let mut r = if html {
                        html_reply(render_status_page(
                            expired,
                            &payment_hash.to_hex(),
                            &query.return_to,
                        ))
                    } else {
                        json_reply(
                            200,
                            format!("{{\"state\":\"{state}\"}}"),
                            Outcome::PaymentStatus { settled: false },
                        )
                    };
                    if expired {
                        r.response.headers.push(("set-cookie", forget.clone()));
                    }
                    r
                };
                match answer.state {
                    InvoiceState::Open => unpaid(false),
                    InvoiceState::Expired => unpaid(true),
                    InvoiceState::Settled => {
                        let Some(cookie) = self.credential_cookie(
                            &macaroon,
                            &payment_hash,
                            answer.preimage.as_deref(),
                            &query.return_to,
                            secure,
                            now_ms / 1000,
                        ) else {
                            // A preimage that does not pay the hash, or a token that does not
                            // verify: the service is wrong, and nothing is set.
                            return self.unavailable(
                                "invoice_status_unavailable",
                                false,
                                Outcome::InvoiceServiceFailed,
                            );
                        };
                        let mut r = if html {
                            let mut r = html_reply(String::new());
                            r.response.status = 303;
                            r.response
                                .headers
                                .push(("location", query.return_to.clone()));
                            r
                        } else {
                            json_reply(
                                200,
                                "{\"state\":\"settled\"}".to_owned(),
                                Outcome::PaymentStatus { settled: true },
                            )
                        };
                        r.outcome = Outcome::PaymentStatus { settled: true };
                        r.response.headers.push(("set-cookie", cookie));
                        r.response.headers.push(("set-cookie", forget));
                        r
                    }
                }
            }
        }
    }

    /// The credential cookie for a settled invoice, once the credential verifies here: its
    /// `Path` the route that sells the page's target, its life the token's.
    fn credential_cookie(
        &self,
        macaroon: &str,
        hash: &PaymentHash,
        preimage: Option<&str>,
        return_to: &str,
        secure: bool,
        now_secs: u64,
    ) -> Option<String> {
        let preimage = Preimage::from_hex(preimage?)?;
        if !hash.is_paid_by(&preimage) {
            return None;
        }
        let candidate = Candidate::paid(macaroon, &preimage);
        let token = self.settings.verifier.verify_token(&candidate).ok()?;
        let max_age = match token.earliest_expiry() {
            Some(at) if at <= now_secs => return None,
            Some(at) => Some(at - now_secs),
            None => None,
        };
        let target = crate::path::canonicalize(return_to.as_bytes()).ok()?;
        let s = &self.settings;
        let path = s
            .routes
            .route_for(target.path())
            .or_else(|| s.publish.route_for(target.path()))
            .map_or(target.path(), |r| r.path.as_str());
        Some(credential_cookie(
            macaroon,
            &preimage.expose_hex(),
            path,
            max_age,
            secure,
        ))
    }
}

/// An HTML answer from the edge itself (the status endpoint's pages).
fn html_reply(body: String) -> Reply {
    Reply {
        response: HttpResponse {
            status: 200,
            headers: vec![
                ("content-type", "text/html; charset=utf-8".to_owned()),
                ("cache-control", "no-store".to_owned()),
                ("content-security-policy", content_security_policy()),
                ("x-content-type-options", "nosniff".to_owned()),
            ],
            body,
            grpc: None,
        },
        outcome: Outcome::PaymentStatus { settled: false },
    }
}

#[cfg(test)]
mod tests;
