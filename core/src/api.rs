//! The invoice-service's edge API (PROTOCOL.md §6), shared by the service that answers it
//! and the edges that call it, so both sides read one definition.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::string::String;
use alloc::vec::Vec;

use crate::challenge::{Challenge, ChallengeError, Offer};
use crate::json::{Field, JsonError, JsonResult, Reader, Unknown, Writer, read_object, required};
use crate::payment::PaymentChallenge;

/// Path of the challenge endpoint.
pub const CHALLENGES_PATH: &str = "/v1/challenges";
/// Path of the spent-set endpoint: marks a Payment charge spent, once.
pub const REDEEM_PATH: &str = "/v1/redeem";

/// `POST /v1/challenges` body. Prices and capabilities live in the service's catalog: the
/// edge names the service only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeRequest {
    /// The service the route sells.
    pub service: String,
    /// Why the edge asks (the rejection reason, or `missing_credential`); for metrics only.
    pub reason: Option<String>,
    /// The request's method, for a per-request price.
    pub method: Option<String>,
    /// The request's canonical path (no query), for a per-request price.
    pub path: Option<String>,
    /// The client's address as the edge's host knows it, for a token bound to it.
    pub client_ip: Option<String>,
}

/// `POST /v1/challenges` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    pub payment: Option<PaymentChallenge>,
    /// What the token buys, for the paywall page: the service's description.
    pub description: Option<String>,
    /// Seconds the token lives once minted.
    pub lifetime_secs: Option<u64>,
    /// Requests the token serves (metered tokens).
    pub allowance: Option<u64>,
}

/// Path of the invoice-status endpoint: whether an invoice is settled, and its preimage once
/// it is (asked by the edge for a paywall page, for the holder of the challenge's macaroon).
pub const INVOICE_STATUS_PATH: &str = "/v1/invoice-status";

/// `POST /v1/invoice-status` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceStatusRequest {
    /// Payment hash, 64 hex digits, from a macaroon the edge verified.
    pub payment_hash: String,
}

/// Where an invoice stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvoiceState {
    /// Not paid yet.
    Open,
    /// Paid: the preimage is in the answer.
    Settled,
    /// Expired, canceled, or unknown to the node: it will never be paid.
    Expired,
}

/// `POST /v1/invoice-status` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceStatus {
    /// Where it stands.
    pub state: InvoiceState,
    /// The preimage, hex, when settled.
    pub preimage: Option<String>,
}

/// `POST /v1/redeem` body: spend the charge with this payment hash, remembered until the
/// challenge expires (after which no edge accepts it anyway).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedeemRequest {
    /// Payment hash, 64 hex digits.
    pub payment_hash: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl RedeemRequest {
    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_object()
            .str_member("payment_hash", &self.payment_hash)
            .u64_member("expires_at", self.expires_at)
            .close_object();
        w.into_bytes()
    }

    /// Reads a body (the service's side); unknown members are refused.
    pub fn parse(body: &[u8]) -> JsonResult<RedeemRequest> {
        Reader::document(body, |r| {
            let (mut payment_hash, mut expires_at) = (None, None);
            read_object(
                r,
                &mut [
                    ("payment_hash", Field::Str(&mut payment_hash)),
                    ("expires_at", Field::U64(&mut expires_at)),
                ],
                Unknown::Refuse,
            )?;
            Ok(RedeemRequest {
                payment_hash: required(payment_hash, "payment_hash", r)?,
                expires_at: required(expires_at, "expires_at", r)?,
            })
        })
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorBody {
    /// An [`ApiErrorCode`]'s name.
    pub error: String,
    /// Human-readable detail; never secrets.
    pub message: Option<String>,
}

/// Why an answer from the invoice-service is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeResponseError {
    /// Not the JSON shape above.
    #[error("invoice-service answer is not a challenge: {0}")]
    Json(JsonError),
    /// The fields would make a broken or unsafe challenge.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
}

impl ChallengeRequest {
    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_object()
            .str_member("service", &self.service)
            .opt_str_member("reason", self.reason.as_deref())
            .opt_str_member("method", self.method.as_deref())
            .opt_str_member("path", self.path.as_deref())
            .opt_str_member("client_ip", self.client_ip.as_deref())
            .close_object();
        w.into_bytes()
    }

    /// Reads a body (the service's side); unknown members are refused.
    pub fn parse(body: &[u8]) -> JsonResult<ChallengeRequest> {
        Reader::document(body, |r| {
            let mut service = None;
            let (mut reason, mut method, mut path, mut client_ip) = (None, None, None, None);
            read_object(
                r,
                &mut [
                    ("service", Field::Str(&mut service)),
                    ("reason", Field::Str(&mut reason)),
                    ("method", Field::Str(&mut method)),
                    ("path", Field::Str(&mut path)),
                    ("client_ip", Field::Str(&mut client_ip)),
                ],
                Unknown::Refuse,
            )?;
            Ok(ChallengeRequest {
                service: required(service, "service", r)?,
                reason,
                method,
                path,
                client_ip,
            })
        })
    }
}

impl ChallengeResponse {
    /// The JSON body (the service's answer).
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_object()
            .str_member("macaroon", &self.macaroon)
            .str_member("invoice", &self.invoice)
            .str_member("payment_hash", &self.payment_hash)
            .u64_member("expires_at", self.expires_at);
        if let Some(p) = &self.payment {
            w.key("payment");
            p.write(&mut w);
        }
        w.opt_str_member("description", self.description.as_deref())
            .opt_u64_member("lifetime_secs", self.lifetime_secs)
            .opt_u64_member("allowance", self.allowance)
            .close_object();
        w.into_bytes()
    }

    /// Reads an answer; members this edge does not know are ignored (a newer service may add
    /// some).
    pub fn parse(body: &[u8]) -> JsonResult<ChallengeResponse> {
        Reader::document(body, |r| {
            let (mut macaroon, mut invoice, mut payment_hash) = (None, None, None);
            let (mut expires_at, mut payment, mut description) = (None, None, None);
            let (mut lifetime_secs, mut allowance) = (None, None);
            let mut read_payment = |r: &mut Reader<'_>| {
                if !r.null()? {
                    payment = Some(PaymentChallenge::read(r)?);
                }
                Ok(())
            };
            read_object(
                r,
                &mut [
                    ("macaroon", Field::Str(&mut macaroon)),
                    ("invoice", Field::Str(&mut invoice)),
                    ("payment_hash", Field::Str(&mut payment_hash)),
                    ("expires_at", Field::U64(&mut expires_at)),
                    ("payment", Field::With(&mut read_payment)),
                    ("description", Field::Str(&mut description)),
                    ("lifetime_secs", Field::U64(&mut lifetime_secs)),
                    ("allowance", Field::U64(&mut allowance)),
                ],
                Unknown::Skip,
            )?;
            Ok(ChallengeResponse {
                macaroon: required(macaroon, "macaroon", r)?,
                invoice: required(invoice, "invoice", r)?,
                payment_hash: required(payment_hash, "payment_hash", r)?,
                expires_at: required(expires_at, "expires_at", r)?,
                payment,
                description,
                lifetime_secs,
                allowance,
            })
        })
    }

    /// Parses and validates an answer body into the offer to render: the L402 challenge and,
    /// from services that issue it, the Payment one. A Payment form that could not be a safe
    /// header is dropped, not the L402 challenge with it (a route selling Payment alone then
    /// answers 503).
    pub fn parse_challenge(body: &[u8]) -> Result<Offer, ChallengeResponseError> {
        let r = ChallengeResponse::parse(body).map_err(ChallengeResponseError::Json)?;
        let l402 = Challenge::new(&r.macaroon, &r.invoice)?;
        Ok(Offer {
            l402,
            payment: r.payment.filter(|p| p.check().is_ok()),
        })
    }
}

impl InvoiceStatusRequest {
    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_object()
            .str_member("payment_hash", &self.payment_hash)
            .close_object();
        w.into_bytes()
    }

    /// Reads a body (the service's side); unknown members are refused.
    pub fn parse(body: &[u8]) -> JsonResult<InvoiceStatusRequest> {
        Reader::document(body, |r| {
            let mut payment_hash = None;
            read_object(
                r,
                &mut [("payment_hash", Field::Str(&mut payment_hash))],
                Unknown::Refuse,
            )?;
            Ok(InvoiceStatusRequest {
                payment_hash: required(payment_hash, "payment_hash", r)?,
            })
        })
    }
}

impl InvoiceState {
    /// The snake_case name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            InvoiceState::Open => "open",
            InvoiceState::Settled => "settled",
            InvoiceState::Expired => "expired",
        }
    }

    fn from_name(name: &str) -> Option<InvoiceState> {
        [
            InvoiceState::Open,
            InvoiceState::Settled,
            InvoiceState::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl InvoiceStatus {
    /// The JSON body (the service's answer).
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_object()
            .str_member("state", self.state.as_str())
            .opt_str_member("preimage", self.preimage.as_deref())
            .close_object();
        w.into_bytes()
    }

    /// Reads an answer; unknown members are ignored.
    pub fn parse(body: &[u8]) -> JsonResult<InvoiceStatus> {
        Reader::document(body, |r| {
            let (mut state, mut preimage) = (None, None);
            read_object(
                r,
                &mut [
                    ("state", Field::Str(&mut state)),
                    ("preimage", Field::Str(&mut preimage)),
                ],
                Unknown::Skip,
            )?;
            let state = required(state, "state", r)?;
            Ok(InvoiceStatus {
                state: InvoiceState::from_name(&state).ok_or_else(|| {
                    r.error(crate::json::JsonErrorKind::ExpectedString)
                        .within("state")
                })?,
                preimage,
            })
        })
    }
}

impl ErrorBody {
    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_object()
            .str_member("error", &self.error)
            .opt_str_member("message", self.message.as_deref())
            .close_object();
        w.into_bytes()
    }

    /// Reads an error answer; unknown members are ignored.
    pub fn parse(body: &[u8]) -> JsonResult<ErrorBody> {
        Reader::document(body, |r| {
            let (mut error, mut message) = (None, None);
            read_object(
                r,
                &mut [
                    ("error", Field::Str(&mut error)),
                    ("message", Field::Str(&mut message)),
                ],
                Unknown::Skip,
            )?;
            Ok(ErrorBody {
                error: required(error, "error", r)?,
                message,
            })
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
