//! The invoice-service's edge API (PROTOCOL.md §6), shared by the service that answers it
//! and the edges that call it, so both sides read one definition.

use serde::{Deserialize, Serialize};

use crate::challenge::{Challenge, ChallengeError, Offer};
use crate::payment::PaymentChallenge;

/// Path of the challenge endpoint.
pub const CHALLENGES_PATH: &str = "/v1/challenges";
/// Path of the spent-set endpoint: marks a Payment charge spent, once.
pub const REDEEM_PATH: &str = "/v1/redeem";

/// `POST /v1/challenges` body. Prices and capabilities live in the service's catalog: the
/// edge names the service only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The service the route sells.
    pub service: String,
    /// Why the edge asks (the rejection reason, or `missing_credential`); for metrics only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The request's method, for a per-request price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The request's canonical path (no query), for a per-request price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The client's address as the edge's host knows it, for a token bound to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
}

/// `POST /v1/challenges` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// The minted macaroon, standard base64 with padding.
    pub macaroon: String,
    /// The BOLT11 invoice the macaroon is bound to.
    pub invoice: String,
    /// The invoice's payment hash, hex.
    pub payment_hash: String,
    /// When the invoice expires, unix seconds.
    pub expires_at: u64,
    /// The same invoice as a Payment-scheme charge challenge (PROTOCOL.md §11.1); absent from
    /// services that predate the scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentChallenge>,
    /// What the token buys, for the paywall page: the service's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Seconds the token lives once minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_secs: Option<u64>,
    /// Requests the token serves (metered tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance: Option<u64>,
}

/// Path of the invoice-status endpoint: whether an invoice is settled, and its preimage once
/// it is (asked by the edge for a paywall page, for the holder of the challenge's macaroon).
pub const INVOICE_STATUS_PATH: &str = "/v1/invoice-status";

/// `POST /v1/invoice-status` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceStatusRequest {
    /// Payment hash, 64 hex digits, from a macaroon the edge verified.
    pub payment_hash: String,
}

/// Where an invoice stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceState {
    /// Not paid yet.
    Open,
    /// Paid: the preimage is in the answer.
    Settled,
    /// Expired, canceled, or unknown to the node: it will never be paid.
    Expired,
}

/// `POST /v1/invoice-status` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceStatus {
    /// Where it stands.
    pub state: InvoiceState,
    /// The preimage, hex, when settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preimage: Option<String>,
}

/// `POST /v1/redeem` body: spend the charge with this payment hash, remembered until the
/// challenge expires (after which no edge accepts it anyway).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    /// Payment hash, 64 hex digits.
    pub payment_hash: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl RedeemRequest {
    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// How a redeem call ended, read from the answer's status: 200 first use, 409 already spent,
/// anything else (or no answer) a store failure, which the edge answers 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// This request spends the payment.
    FirstUse,
    /// An earlier request spent it.
    AlreadySpent,
}

impl Redeemed {
    /// Reads a redeem answer's status; `None`: the store failed (fail closed).
    pub fn from_status(status: Option<u16>) -> Option<Redeemed> {
        match status {
            Some(200) => Some(Redeemed::FirstUse),
            Some(409) => Some(Redeemed::AlreadySpent),
            _ => None,
        }
    }
}

/// The stable codes of the service's error answers, with their HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiErrorCode {
    /// 400: the body is not a challenge request.
    InvalidRequest,
    /// 401: missing or wrong edge bearer token.
    Unauthorized,
    /// 404: the service is not in the catalog.
    UnknownService,
    /// 400: a service that binds tokens to the client address got none from the edge.
    ClientIpRequired,
    /// 503: the Lightning backend produced no invoice.
    BackendUnavailable,
    /// 503: the pricing endpoint gave no usable price (`on_error = "fail"`).
    PricingUnavailable,
    /// 500: no randomness, or minting failed.
    InternalError,
    /// 404: an endpoint this configuration does not serve (dev pay without the dev backend).
    NotFound,
    /// 404: dev pay of an invoice the dev backend never made.
    UnknownInvoice,
    /// 409: dev pay of an invoice already paid.
    AlreadyPaid,
    /// 410: dev pay of an expired invoice.
    InvoiceExpired,
    /// 409: redeem of a payment already spent.
    PaymentSpent,
    /// 503: the spent-set store did not answer.
    SpentSetUnavailable,
    /// 503: the store of metered tokens' counts did not answer.
    AllowanceStoreUnavailable,
}

impl ApiErrorCode {
    /// Every code, for metrics that pre-register one series each.
    pub const ALL: [ApiErrorCode; 14] = [
        ApiErrorCode::InvalidRequest,
        ApiErrorCode::Unauthorized,
        ApiErrorCode::UnknownService,
        ApiErrorCode::ClientIpRequired,
        ApiErrorCode::BackendUnavailable,
        ApiErrorCode::PricingUnavailable,
        ApiErrorCode::InternalError,
        ApiErrorCode::NotFound,
        ApiErrorCode::UnknownInvoice,
        ApiErrorCode::AlreadyPaid,
        ApiErrorCode::InvoiceExpired,
        ApiErrorCode::PaymentSpent,
        ApiErrorCode::SpentSetUnavailable,
        ApiErrorCode::AllowanceStoreUnavailable,
    ];

    /// The stable snake_case name (`error` in the body, a metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            ApiErrorCode::InvalidRequest => "invalid_request",
            ApiErrorCode::Unauthorized => "unauthorized",
            ApiErrorCode::UnknownService => "unknown_service",
            ApiErrorCode::ClientIpRequired => "client_ip_required",
            ApiErrorCode::BackendUnavailable => "backend_unavailable",
            ApiErrorCode::PricingUnavailable => "pricing_unavailable",
            ApiErrorCode::InternalError => "internal_error",
            ApiErrorCode::NotFound => "not_found",
            ApiErrorCode::UnknownInvoice => "unknown_invoice",
            ApiErrorCode::AlreadyPaid => "already_paid",
            ApiErrorCode::InvoiceExpired => "invoice_expired",
            ApiErrorCode::PaymentSpent => "payment_spent",
            ApiErrorCode::SpentSetUnavailable => "spent_set_unavailable",
            ApiErrorCode::AllowanceStoreUnavailable => "allowance_store_unavailable",
        }
    }

    /// The HTTP status it is answered with.
    pub const fn status(self) -> u16 {
        match self {
            ApiErrorCode::InvalidRequest | ApiErrorCode::ClientIpRequired => 400,
            ApiErrorCode::Unauthorized => 401,
            ApiErrorCode::UnknownService
            | ApiErrorCode::NotFound
            | ApiErrorCode::UnknownInvoice => 404,
            ApiErrorCode::AlreadyPaid | ApiErrorCode::PaymentSpent => 409,
            ApiErrorCode::InvoiceExpired => 410,
            ApiErrorCode::InternalError => 500,
            ApiErrorCode::BackendUnavailable
            | ApiErrorCode::PricingUnavailable
            | ApiErrorCode::SpentSetUnavailable
            | ApiErrorCode::AllowanceStoreUnavailable => 503,
        }
    }
}

/// Error body of every non-2xx answer: `{"error": "<stable code>", "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// An [`ApiErrorCode`]'s name.
    pub error: String,
    /// Human-readable detail; never secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why an answer from the invoice-service is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeResponseError {
    /// Not the JSON shape above.
    #[error("invoice-service answer is not a challenge: {0}")]
    Json(String),
    /// The fields would make a broken or unsafe challenge.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
}

impl ChallengeRequest {
    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl ChallengeResponse {
    /// Parses and validates an answer body into the offer to render: the L402 challenge and,
    /// from services that issue it, the Payment one. A Payment form that could not be a safe
    /// header is dropped, not the L402 challenge with it (a route selling Payment alone then
    /// answers 503).
    pub fn parse_challenge(body: &[u8]) -> Result<Offer, ChallengeResponseError> {
        let r: ChallengeResponse = serde_json::from_slice(body)
            .map_err(|e| ChallengeResponseError::Json(e.to_string()))?;
        let l402 = Challenge::new(&r.macaroon, &r.invoice)?;
        Ok(Offer {
            l402,
            payment: r.payment.filter(|p| p.check().is_ok()),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_distinct_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in ApiErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c:?}");
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert!((400..600).contains(&c.status()));
        }
    }

    #[test]
    fn request_and_response_round_trip() {
        let mut req = ChallengeRequest {
            service: "weather".into(),
            reason: None,
            method: None,
            path: None,
            client_ip: None,
        };
        assert_eq!(req.to_body(), br#"{"service":"weather"}"#);
        req.method = Some("GET".into());
        req.path = Some("/weather/today".into());
        req.client_ip = Some("2001:db8::1".into());
        assert_eq!(
            req.to_body(),
            br#"{"service":"weather","method":"GET","path":"/weather/today","client_ip":"2001:db8::1"}"#
        );
        let body =
            br#"{"macaroon":"AgEE","invoice":"lnbcrt10u1pqqq","payment_hash":"00","expires_at":1}"#;
        let c = ChallengeResponse::parse_challenge(body).unwrap();
        assert_eq!(
            (c.l402.macaroon(), c.l402.invoice()),
            ("AgEE", "lnbcrt10u1pqqq")
        );
        assert!(c.payment.is_none());
        // An unsafe Payment form is dropped; the L402 challenge stands.
        let header_splitting = br#"{"macaroon":"AgEE","invoice":"lnbcrt10u1pqqq","payment_hash":"00","expires_at":1,
            "payment":{"id":"x","realm":"a\r\nSet-Cookie: y","method":"lightning","intent":"charge","request":"cQ"}}"#;
        let c = ChallengeResponse::parse_challenge(header_splitting).unwrap();
        assert!(c.payment.is_none());
        assert_eq!(c.l402.macaroon(), "AgEE");
        assert!(ChallengeResponse::parse_challenge(b"{}").is_err());
        assert!(ChallengeResponse::parse_challenge(b"<html>").is_err());
        let bad =
            br#"{"macaroon":"a\"b","invoice":"lnbcrt10u1pqqq","payment_hash":"00","expires_at":1}"#;
        assert!(matches!(
            ChallengeResponse::parse_challenge(bad),
            Err(ChallengeResponseError::Challenge(
                ChallengeError::BadMacaroon
            ))
        ));
    }
}
