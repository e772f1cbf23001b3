//! What the edge answers when it does not forward (PROTOCOL.md §5, §8): the 402
//! challenge in the exact form clients parse with regexes, 401, the gRPC variants, and 503.
//! One function, [`render`], maps a decision to status, headers and body.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::payment::{PROBLEM_BASE, PaymentChallenge, Schemes, problem};
use crate::reason::Reason;

/// Seconds a client should wait after a 503, unless configured otherwise.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 5;

/// Header the edge adds upstream with the authorized token id (clients' copies are removed).
pub const HEADER_TOKEN_ID: &str = "x-l402-token-id";
/// Header the edge adds upstream with the authorized service.
pub const HEADER_SERVICE: &str = "x-l402-service";

/// A macaroon and the invoice it is bound to, validated so that neither can break the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    macaroon_b64: String,
    invoice: String,
}

/// Why a challenge from the invoice-service is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The macaroon is empty or has characters outside base64.
    #[error("challenge macaroon is not base64")]
    BadMacaroon,
    /// The invoice is empty or not a BOLT11 string.
    #[error("challenge invoice is not a BOLT11 invoice")]
    BadInvoice,
    /// The invoice has no amount (some clients refuse those).
    #[error("challenge invoice carries no amount")]
    AmountlessInvoice,
}

/// Longest field accepted from the invoice-service (BOLT11 invoices are well under 2 KB).
const MAX_CHALLENGE_FIELD: usize = 8 * 1024;

impl Challenge {
    /// Validates a macaroon (base64) and an invoice (BOLT11 with an amount).
    pub fn new(macaroon_b64: &str, invoice: &str) -> Result<Self, ChallengeError> {
        let b64 =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_');
        if macaroon_b64.is_empty()
            || macaroon_b64.len() > MAX_CHALLENGE_FIELD
            || !macaroon_b64.bytes().all(b64)
        {
            return Err(ChallengeError::BadMacaroon);
        }
        if invoice.len() > MAX_CHALLENGE_FIELD
            || !invoice.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ChallengeError::BadInvoice);
        }
        let lower = invoice.to_ascii_lowercase();
        // BOLT11: hrp "ln" + currency + optional amount, then '1' and the data part.
        let hrp = match lower.rsplit_once('1') {
            Some((hrp, data)) if hrp.starts_with("ln") && !data.is_empty() => hrp,
            _ => return Err(ChallengeError::BadInvoice),
        };
        // Currency prefixes (bc, tb, bcrt, tbs, sb) have no digits: a digit is the amount.
        if !hrp.bytes().any(|b| b.is_ascii_digit()) {
            return Err(ChallengeError::AmountlessInvoice);
        }
        Ok(Challenge {
            macaroon_b64: macaroon_b64.to_owned(),
            invoice: invoice.to_owned(),
        })
    }

    /// The macaroon, base64.
    pub fn macaroon(&self) -> &str {
        &self.macaroon_b64
    }

    /// The BOLT11 invoice.
    pub fn invoice(&self) -> &str {
        &self.invoice
    }

    /// The two `WWW-Authenticate` values, L402 first, then LSAT, same macaroon and invoice.
    /// The LSAT value keeps Aperture's form whatever `form` says: its clients predate bLIP-26.
    pub fn www_authenticate(&self, form: ChallengeForm) -> [String; 2] {
        let (m, i) = (&self.macaroon_b64, &self.invoice);
        let aperture = format!("macaroon=\"{m}\", invoice=\"{i}\"");
        let l402 = match form {
            ChallengeForm::Macaroon => format!("L402 {aperture}"),
            ChallengeForm::Token => format!("L402 version=\"0\", token=\"{m}\", invoice=\"{i}\""),
            ChallengeForm::Both => {
                format!("L402 version=\"0\", token=\"{m}\", macaroon=\"{m}\", invoice=\"{i}\"")
            }
        };
        [l402, format!("LSAT {aperture}")]
    }
}

/// Everything one invoice can be sold as: the L402 challenge and, when the invoice-service
/// issued it, the same invoice as a Payment charge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Macaroon and invoice.
    pub l402: Challenge,
    /// The Payment-scheme challenge for the same invoice.
    pub payment: Option<PaymentChallenge>,
}

/// How the L402 challenge names the macaroon (PROTOCOL.md, "Challenge forms").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChallengeForm {
    /// `L402 macaroon="…", invoice="…"`: what Aperture sends and every client reads.
    #[default]
    Macaroon,
    /// `L402 version="0", token="…", invoice="…"`: bLIP-26's current text.
    Token,
    /// `L402 version="0", token="…", macaroon="…", invoice="…"`: both names.
    Both,
}

/// A challenge form name other than `macaroon`, `token` or `both`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected macaroon, token or both")]
pub struct UnknownForm;

impl core::str::FromStr for ChallengeForm {
    type Err = UnknownForm;

    fn from_str(s: &str) -> Result<Self, UnknownForm> {
        match s {
            "macaroon" => Ok(ChallengeForm::Macaroon),
            "token" => Ok(ChallengeForm::Token),
            "both" => Ok(ChallengeForm::Both),
            _ => Err(UnknownForm),
        }
    }
}

/// How an invalid (not missing) credential is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InvalidPolicy {
    /// 402 with a fresh challenge: what Aperture does, and clients handle by paying again.
    #[default]
    Challenge,
    /// 401 without a challenge: the L402 spec's choice.
    Unauthorized,
}

/// A policy name other than `challenge` or `unauthorized` in an edge's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected challenge or unauthorized")]
pub struct UnknownPolicy;

impl core::str::FromStr for InvalidPolicy {
    type Err = UnknownPolicy;

    /// The names edges use in their configuration.
    fn from_str(s: &str) -> Result<Self, UnknownPolicy> {
        match s {
            "challenge" => Ok(InvalidPolicy::Challenge),
            "unauthorized" => Ok(InvalidPolicy::Unauthorized),
            _ => Err(UnknownPolicy),
        }
    }
}

impl InvalidPolicy {
    /// Whether answering `reason` needs a fresh challenge from the invoice-service.
    pub fn wants_challenge(self, reason: Reason) -> bool {
        reason == Reason::MissingCredential || self == InvalidPolicy::Challenge
    }
}

/// Why the edge does not forward.
#[derive(Clone, Copy, Debug)]
pub enum Denial<'a> {
    /// 402 with a challenge; `reason` is `missing_credential` or why the credential failed.
    PaymentRequired {
        /// The challenges to offer.
        offer: &'a Offer,
        /// Which of them the route sells (and the client accepts).
        schemes: Schemes,
        /// How the L402 value names the macaroon.
        form: ChallengeForm,
        /// Why.
        reason: Reason,
    },
    /// 401 without a challenge (policy [`InvalidPolicy::Unauthorized`]).
    Unauthorized {
        /// Why.
        reason: Reason,
    },
    /// 503: no challenge could be had in time (invoice-service down, slow or failing), the
    /// challenge bound was reached, or the host failed.
    Unavailable {
        /// `Retry-After`, seconds.
        retry_after_secs: u32,
        /// Stable code for the body ([`UNAVAILABLE_CODE`] for the invoice-service).
        code: &'static str,
    },
    /// 429: the token's per-route rate limit is reached (the request was not counted).
    TooManyRequests {
        /// `Retry-After`, seconds.
        retry_after_secs: u32,
    },
    /// 400: a request target no reading settles (an escaped separator, a bad escape...).
    BadRequest {
        /// Stable code for the body.
        code: &'static str,
    },
}

/// A response for the host to send as is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order; a name may repeat (two `www-authenticate`).
    pub headers: Vec<(&'static str, String)>,
    /// Body (JSON for HTTP; empty for gRPC, whose status travels in headers).
    pub body: String,
    /// For gRPC requests, the status also carried in the `grpc-status`/`grpc-message`
    /// headers: hosts with a native gRPC reply (Envoy's local reply) send it that way.
    pub grpc: Option<GrpcStatus>,
}

/// The gRPC status codes the edge answers with (grpc/doc/statuscodes.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcCode {
    /// 3: the request target is refused (the HTTP 400 cases).
    InvalidArgument,
    /// 13: payment required, as Aperture answers it.
    Internal,
    /// 8: a token's rate limit is reached (HTTP 429).
    ResourceExhausted,
    /// 14: no challenge could be had, or the host failed (the HTTP 503 cases).
    Unavailable,
    /// 16: an invalid credential under policy `unauthorized` (HTTP 401).
    Unauthenticated,
}

impl GrpcCode {
    /// The number on the wire (`grpc-status`).
    pub const fn number(self) -> u32 {
        match self {
            GrpcCode::InvalidArgument => 3,
            GrpcCode::ResourceExhausted => 8,
            GrpcCode::Internal => 13,
            GrpcCode::Unavailable => 14,
            GrpcCode::Unauthenticated => 16,
        }
    }
}

/// A gRPC status for a trailers-only answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcStatus {
    /// The code.
    pub code: GrpcCode,
    /// The message.
    pub message: &'static str,
}

/// The error code for a 503 body and metrics.
pub const UNAVAILABLE_CODE: &str = "challenge_unavailable";
/// Error code of a 429: the token's per-route rate limit.
pub const TOKEN_RATE_LIMITED_CODE: &str = "token_rate_limited";

/// Whether a request is gRPC (`content-type: application/grpc*`): it gets gRPC-shaped errors.
pub fn is_grpc(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.get(..16)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
    })
}

/// Maps a denial to the response. `grpc` selects gRPC's shape: HTTP 200, `grpc-status`.
pub fn render(denial: &Denial<'_>, grpc: bool) -> HttpResponse {
    let mut headers: Vec<(&'static str, String)> = Vec::with_capacity(7);
    // A 402 that offers Payment answers with the draft's problem details.
    let mut problem_reason = None;
    let (status, grpc_code, grpc_message, code) = match denial {
        Denial::PaymentRequired {
            offer,
            schemes,
            form,
            reason,
        } => {
            if schemes.l402 {
                let [l402, lsat] = offer.l402.www_authenticate(*form);
                headers.push(("www-authenticate", l402));
                headers.push(("www-authenticate", lsat));
            }
            if let (true, Some(p)) = (schemes.payment, &offer.payment) {
                headers.push(("www-authenticate", p.www_authenticate()));
                problem_reason = Some(*reason);
            }
            (402, GrpcCode::Internal, "payment required", reason.as_str())
        }
        Denial::Unauthorized { reason } => (
            401,
            GrpcCode::Unauthenticated,
            "unauthenticated",
            reason.as_str(),
        ),
        Denial::Unavailable {
            retry_after_secs,
            code,
        } => {
            headers.push(("retry-after", retry_after_secs.to_string()));
            (
                503,
                GrpcCode::Unavailable,
                "payment service unavailable",
                *code,
            )
        }
        Denial::TooManyRequests { retry_after_secs } => {
            headers.push(("retry-after", retry_after_secs.to_string()));
            (
                429,
                GrpcCode::ResourceExhausted,
                "rate limited",
                TOKEN_RATE_LIMITED_CODE,
            )
        }
        Denial::BadRequest { code } => (
            400,
            GrpcCode::InvalidArgument,
            "invalid request path",
            *code,
        ),
    };
    headers.push(("cache-control", "no-store".to_owned()));
    headers.push((
        "access-control-expose-headers",
        "WWW-Authenticate, Retry-After".to_owned(),
    ));
    if grpc {
        headers.push(("content-type", "application/grpc".to_owned()));
        headers.push(("grpc-status", grpc_code.number().to_string()));
        headers.push(("grpc-message", grpc_message.to_owned()));
        return HttpResponse {
            status: 200,
            headers,
            body: String::new(),
            grpc: Some(GrpcStatus {
                code: grpc_code,
                message: grpc_message,
            }),
        };
    }
    // Codes, problem types and titles are fixed ASCII: nothing to escape.
    let body = match problem_reason {
        Some(reason) => {
            let (kind, title) = problem(reason);
            headers.push(("content-type", "application/problem+json".to_owned()));
            format!(
                "{{\"type\":\"{PROBLEM_BASE}{kind}\",\"title\":\"{title}\",\"status\":402,\"detail\":\"{code}\",\"error\":\"{code}\"}}"
            )
        }
        None => {
            headers.push(("content-type", "application/json".to_owned()));
            format!("{{\"error\":\"{code}\"}}")
        }
    };
    HttpResponse {
        status,
        headers,
        body,
        grpc: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const INV: &str =
        "lnbcrt10u1pjqqqqqpp5qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqsdqqcqzzsxqyz5vq";

    fn header<'a>(r: &'a HttpResponse, name: &str) -> Vec<&'a str> {
        r.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    #[test]
    fn challenge_headers_are_exact() {
        let c = Offer {
            l402: Challenge::new("AgEEbHNhdA==", INV).unwrap(),
            payment: None,
        };
        let r = render(
            &Denial::PaymentRequired {
                offer: &c,
                schemes: Schemes::BOTH,
                form: ChallengeForm::Macaroon,
                reason: Reason::MissingCredential,
            },
            false,
        );
        assert_eq!(r.status, 402);
        assert_eq!(
            header(&r, "www-authenticate"),
            vec![
                format!("L402 macaroon=\"AgEEbHNhdA==\", invoice=\"{INV}\""),
                format!("LSAT macaroon=\"AgEEbHNhdA==\", invoice=\"{INV}\""),
            ]
        );
        assert_eq!(header(&r, "cache-control"), vec!["no-store"]);
        assert!(header(&r, "access-control-expose-headers")[0].contains("WWW-Authenticate"));
        assert_eq!(r.body, r#"{"error":"missing_credential"}"#);
    }

    #[test]
    fn challenge_forms() {
        let c = Challenge::new("AgEE", INV).unwrap();
        let lsat = format!("LSAT macaroon=\"AgEE\", invoice=\"{INV}\"");
        for (form, l402) in [
            (
                "macaroon",
                format!("L402 macaroon=\"AgEE\", invoice=\"{INV}\""),
            ),
            (
                "token",
                format!("L402 version=\"0\", token=\"AgEE\", invoice=\"{INV}\""),
            ),
            (
                "both",
                format!("L402 version=\"0\", token=\"AgEE\", macaroon=\"AgEE\", invoice=\"{INV}\""),
            ),
        ] {
            let form: ChallengeForm = form.parse().unwrap();
            assert_eq!(c.www_authenticate(form), [l402, lsat.clone()]);
        }
        assert_eq!("Token".parse::<ChallengeForm>(), Err(UnknownForm));
    }

    #[test]
    fn grpc_gets_200_with_status_13_and_the_challenge() {
        let c = Offer {
            l402: Challenge::new("AgEE", INV).unwrap(),
            payment: None,
        };
        let r = render(
            &Denial::PaymentRequired {
                offer: &c,
                schemes: Schemes::BOTH,
                form: ChallengeForm::Macaroon,
                reason: Reason::TokenExpired,
            },
            true,
        );
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "grpc-status"), vec!["13"]);
        assert_eq!(header(&r, "grpc-message"), vec!["payment required"]);
        assert_eq!(
            r.grpc,
            Some(GrpcStatus {
                code: GrpcCode::Internal,
                message: "payment required"
            })
        );
        assert_eq!(header(&r, "www-authenticate").len(), 2);
        assert!(is_grpc(Some("application/grpc+proto")));
        assert!(is_grpc(Some("Application/GRPC")));
        assert!(!is_grpc(Some("application/json")));
        assert!(!is_grpc(None));
    }

    #[test]
    fn unauthorized_and_unavailable() {
        let r = render(
            &Denial::Unauthorized {
                reason: Reason::BadSignature,
            },
            false,
        );
        assert_eq!(
            (r.status, r.body.as_str()),
            (401, r#"{"error":"bad_signature"}"#)
        );
        assert!(header(&r, "www-authenticate").is_empty());
        let r = render(
            &Denial::Unavailable {
                retry_after_secs: 7,
                code: UNAVAILABLE_CODE,
            },
            false,
        );
        assert_eq!(r.status, 503);
        assert_eq!(header(&r, "retry-after"), vec!["7"]);
        assert_eq!(r.body, r#"{"error":"challenge_unavailable"}"#);
        assert!(InvalidPolicy::Unauthorized.wants_challenge(Reason::MissingCredential));
        assert!(!InvalidPolicy::Unauthorized.wants_challenge(Reason::TokenExpired));
        assert!(InvalidPolicy::default().wants_challenge(Reason::TokenExpired));
    }

    #[test]
    fn challenge_fields_cannot_inject_headers() {
        assert_eq!(
            Challenge::new("ab\"cd", INV),
            Err(ChallengeError::BadMacaroon)
        );
        assert_eq!(
            Challenge::new("abc\r\nx: y", INV),
            Err(ChallengeError::BadMacaroon)
        );
        assert_eq!(Challenge::new("", INV), Err(ChallengeError::BadMacaroon));
        assert_eq!(
            Challenge::new("AgEE", "lnbc1\"x"),
            Err(ChallengeError::BadInvoice)
        );
        assert_eq!(Challenge::new("AgEE", ""), Err(ChallengeError::BadInvoice));
        assert_eq!(
            Challenge::new("AgEE", "notaninvoice"),
            Err(ChallengeError::BadInvoice)
        );
        assert_eq!(
            Challenge::new("AgEE", "lnbcrt1pjqqqq"),
            Err(ChallengeError::AmountlessInvoice)
        );
        assert!(Challenge::new("AgEE", &INV.to_uppercase()).is_ok());
    }

    #[test]
    fn bad_request() {
        let r = render(
            &Denial::BadRequest {
                code: "path_backslash",
            },
            false,
        );
        assert_eq!(
            (r.status, r.body.as_str()),
            (400, r#"{"error":"path_backslash"}"#)
        );
        let r = render(
            &Denial::BadRequest {
                code: "path_backslash",
            },
            true,
        );
        assert_eq!(header(&r, "grpc-status"), vec!["3"]);
    }
}
