//! # l402-core
//!
//! The L402 protocol as [l402-edge](https://github.com/l402-edge/l402-edge) speaks it, once:
//! Aperture-compatible tokens (macaroon V2, go-macaroon signatures, 66-byte identifiers), a
//! stateless keyring that derives every token's root key, lenient credential parsing, caveat
//! rules that fail closed, verification, and the challenge headers clients parse.
//!
//! This crate does **no I/O**: no sockets, no clock, no RNG. Time (`now`, unix seconds) and
//! randomness (the token id's 28 bytes) are arguments, so every decision is deterministic and
//! tested natively, and the same code runs in the Envoy filter (`wasm32-wasip1`), the
//! Cloudflare Worker (`wasm32-unknown-unknown`) and the invoice-service.
//!
//! ```text
//!  header values ──► Credentials::from_headers ──► Verifier::verify(request, deny-list)
//!                                                       │
//!                          Ok(Authorized) ◄─────────────┴──────────► Err(Rejection{reason})
//!                          forward upstream                          render(Denial) → 402/401/503
//! ```
//!
//! Adapters translate their host's types into these calls and back; a protocol rule outside
//! this crate is a bug. The edge's whole per-request procedure is [`Edge`]: path
//! canonicalization, the edge's own headers, what a route sells, preflights, verification,
//! revocation, the challenge bound, the signed context for the origin, and every answer.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

// `no_std` + `alloc`, like rustls: the Envoy filter is built without std (its panic and I/O
// machinery was a sixth of the filter's size, issue 18). Hosts with std use this crate as is.
extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

/// What every module of the crate uses from `alloc`.
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::boxed::Box;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
    pub(crate) use alloc::{format, vec};
}

mod allowance;
mod api;
mod caveat;
mod challenge;
mod client_ip;
mod context;
mod credential;
mod discovery;
mod edge;
mod ids;
pub mod json;
mod keyring;
mod macaroon;
#[cfg(feature = "mint")]
mod mint;
mod path;
mod payment;
mod paywall;
mod reason;
mod routes;
mod service;
mod verify;

pub use allowance::{
    ALLOWANCE_PATH, AllowanceAnswer, AllowanceRequest, AllowanceRequestError, Counter,
    DEFAULT_ALLOWANCE_LEASE, DEFAULT_ALLOWANCE_LEASE_MS, HEADER_ALLOWANCE_REMAINING, Leases,
    MAX_ALLOWANCE, MAX_ALLOWANCE_LEASE, RESPONSE_ALLOWANCE_REMAINING,
};
pub use api::{
    ApiErrorCode, CHALLENGES_PATH, ChallengeRequest, ChallengeResponse, ChallengeResponseError,
    ErrorBody, INVOICE_STATUS_PATH, InvoiceState, InvoiceStatus, InvoiceStatusRequest, REDEEM_PATH,
    RedeemRequest, Redeemed,
};
pub use challenge::{
    Challenge, ChallengeError, ChallengeForm, DEFAULT_RETRY_AFTER_SECS, Denial, GrpcCode,
    GrpcStatus, HEADER_SERVICE, HEADER_TOKEN_ID, HttpResponse, InvalidPolicy, Offer,
    TOKEN_RATE_LIMITED_CODE, UNAVAILABLE_CODE, UnknownPolicy, is_grpc, render,
};
pub use client_ip::{BindingWidth, BindingWidthError, parse_client_address};
pub use context::{
    CONTEXT_LIFETIME_SECS, ContextError, ContextKey, ContextKeyError, EdgeContext, HEADER_CONTEXT,
    MIN_CONTEXT_KEY_BYTES, sign_context, verify_context,
};
pub use credential::{
    CREDENTIAL_COOKIE, CREDENTIAL_HEADERS, Candidate, Credentials, HeaderKind, MAX_CAVEATS,
    MAX_CREDENTIAL_BYTES, MAX_MACAROONS, PENDING_COOKIE_PREFIX, Source, cookie_pairs,
    is_edge_cookie,
};
pub use discovery::{
    CATALOG_PATH, Catalog, CatalogError, CatalogService, MANIFEST_LINK, MANIFEST_PATH,
    MANIFEST_VERSION, Published, manifest, openapi,
};
pub use edge::{
    ChallengeCall, ChallengeLimiter, ChallengeRate, ClientAddress, DEFAULT_CACHE_SIZE,
    DEFAULT_CHALLENGE_BURST, DEFAULT_CHALLENGES_PER_SECOND, DEFAULT_TIMEOUT_MS, Edge, EdgeOptions,
    EdgeRequest, EdgeSettings, EdgeState, Forward, HEADER_PAYMENT_HASH, HostFailure, HostSale,
    MAX_CACHE_SIZE, MIN_EDGE_TOKEN_LEN, MeterCall, MeteredUnit, NonCanonicalPath, Outcome,
    PendingChallenge, Problem, RATE_LIMITED_CODE, RESERVED_HEADER_PREFIX, RateLimitCall,
    RedeemCall, Reply, RevocationCheck, ServiceCall, Setting, SettingsError, Step,
    check_edge_token, misconfigured_reply,
};
pub use ids::{
    IDENTIFIER_LEN, IDENTIFIER_VERSION, Identifier, IdentifierError, KeyId, PaymentHash, Preimage,
    TOKEN_ID_RANDOM_LEN, TokenId,
};
pub use keyring::{
    ChallengeKey, Keyring, KeyringError, MAX_KEYS, MasterSecret, ROOT_KEY_LABEL, RootKey,
    format_keyring_entry,
};
#[cfg(feature = "mint")]
pub use mint::{
    Inspected, LOCATION, MintError, MintedToken, aperture_caveats, attenuate, inspect, mint,
    mint_bound,
};
/// Test helpers: tokens with arbitrary caveats or identifiers, signed under any key. Behind
/// the `test-support` feature so that no production build can mint outside the catalog.
#[cfg(any(test, feature = "test-support"))]
pub use mint::{mint_with_caveats, sign};
pub use path::{CanonicalTarget, PathError, canonicalize, under_prefix};
pub use payment::{
    CHALLENGE_KEY_LABEL, Charge, ChargeTerms, PAYMENT_CURRENCY, PAYMENT_INTENT, PAYMENT_METHOD,
    PROBLEM_BASE, PaymentChallenge, PaymentChallengeError, PaymentCredential, RECEIPT_HEADER,
    Schemes, UnknownScheme, b64url_decode, b64url_encode, challenge_id, issue_charge, problem,
    refuses_lightning_charge, rfc3339,
};
pub use paywall::{
    STATUS_PATH, StatusQuery, Terms, bolt11_amount_msat, content_security_policy, prefers_html,
    render_page,
};
pub use reason::{Reason, Rejection};
pub use routes::{Route, Routes, RoutesError};
pub use service::{
    CapabilityError, MAX_SERVICE_NAME_LEN, ServiceEntry, ServiceName, ServiceNameError,
    parse_capabilities,
};
pub use verify::{
    Authorized, DenyList, NoDenyList, Request, VerifiedCache, VerifiedToken, Verifier,
};

/// The README's example runs as a doc test, so it cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
