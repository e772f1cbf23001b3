//! The invoice-service's edge API (DESIGN section 6), shared by the service that answers it
//! and the edges that call it, so both sides read one definition.

use serde::{Deserialize, Serialize};

use crate::challenge::{Challenge, ChallengeError};

/// Path of the challenge endpoint.
pub const CHALLENGES_PATH: &str = "/v1/challenges";

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
}

/// Error body of every non-2xx answer: `{"error": "<stable code>", "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable code (`invalid_request`, `unauthorized`, `unknown_service`, `backend_unavailable`).
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
    /// Parses and validates an answer body into a challenge to render.
    pub fn parse_challenge(body: &[u8]) -> Result<Challenge, ChallengeResponseError> {
        let r: ChallengeResponse = serde_json::from_slice(body)
            .map_err(|e| ChallengeResponseError::Json(e.to_string()))?;
        Ok(Challenge::new(&r.macaroon, &r.invoice)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        assert_eq!((c.macaroon(), c.invoice()), ("AgEE", "lnbcrt10u1pqqq"));
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
