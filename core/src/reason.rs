//! Why a request was not authorized: one stable name per reason, for responses and metrics.

#[allow(unused_imports)]
use crate::prelude::*;

/// The reason a credential did not authorize a request. The snake_case names are a stable
/// interface: clients read them in the body, operators in metrics labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// No credential of a scheme the route sells in the request.
    #[error("missing_credential")]
    MissingCredential,
    /// The credential could not be parsed (scheme, base64, hex, macaroon encoding, identifier).
    #[error("malformed_credential")]
    MalformedCredential,
    /// Over a hard cap: header bytes, macaroons per request, or caveats per macaroon.
    #[error("credential_too_large")]
    CredentialTooLarge,
    /// The identifier has a version other than 0.
    #[error("unsupported_version")]
    UnsupportedVersion,
    /// `sha256(preimage)` is not the token's payment hash, or a `preimage=` caveat disagrees.
    #[error("wrong_preimage")]
    WrongPreimage,
    /// The token's key id is not in the keyring (never ours, or rotated out).
    #[error("unknown_key")]
    UnknownKey,
    /// The macaroon's signature chain does not verify.
    #[error("bad_signature")]
    BadSignature,
    /// A `<service>_valid_until` caveat is in the past.
    #[error("token_expired")]
    TokenExpired,
    /// The requested service is not in every `services` caveat (or there is none).
    #[error("service_not_allowed")]
    ServiceNotAllowed,
    /// A capability the route requires is not granted by every capabilities caveat.
    #[error("capability_missing")]
    CapabilityMissing,
    /// The token id is on the deny-list.
    #[error("revoked")]
    Revoked,
    /// A caveat this verifier does not understand (fail closed), or a third-party caveat.
    #[error("unsupported_caveat")]
    UnsupportedCaveat,
    /// A `<service>_client_ip` caveat does not hold the request's client address.
    #[error("client_ip_mismatch")]
    ClientIpMismatch,
    /// The token is bound to a client address and the edge does not know the request's.
    #[error("client_ip_unknown")]
    ClientIpUnknown,
    /// A Payment credential echoes a challenge this edge did not issue (its id does not bind
    /// its parameters), or not a lightning charge.
    #[error("challenge_invalid")]
    ChallengeInvalid,
    /// A Payment credential's challenge has expired.
    #[error("challenge_expired")]
    ChallengeExpired,
    /// A Payment credential whose payment was already spent (a charge serves one request).
    #[error("payment_spent")]
    PaymentSpent,
    /// A metered token (`<service>_allowance`) has served every request it was good for.
    #[error("allowance_spent")]
    AllowanceSpent,
}

impl Reason {
    /// Every reason, for metrics that pre-register one counter each.
    pub const ALL: [Reason; 18] = [
        Reason::MissingCredential,
        Reason::MalformedCredential,
        Reason::CredentialTooLarge,
        Reason::UnsupportedVersion,
        Reason::WrongPreimage,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::TokenExpired,
        Reason::ServiceNotAllowed,
        Reason::CapabilityMissing,
        Reason::Revoked,
        Reason::UnsupportedCaveat,
        Reason::ClientIpMismatch,
        Reason::ClientIpUnknown,
        Reason::ChallengeInvalid,
        Reason::ChallengeExpired,
        Reason::PaymentSpent,
        Reason::AllowanceSpent,
    ];

    /// The stable snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::MissingCredential => "missing_credential",
            Reason::MalformedCredential => "malformed_credential",
            Reason::CredentialTooLarge => "credential_too_large",
            Reason::UnsupportedVersion => "unsupported_version",
            Reason::WrongPreimage => "wrong_preimage",
            Reason::UnknownKey => "unknown_key",
            Reason::BadSignature => "bad_signature",
            Reason::TokenExpired => "token_expired",
            Reason::ServiceNotAllowed => "service_not_allowed",
            Reason::CapabilityMissing => "capability_missing",
            Reason::Revoked => "revoked",
            Reason::UnsupportedCaveat => "unsupported_caveat",
            Reason::ClientIpMismatch => "client_ip_mismatch",
            Reason::ClientIpUnknown => "client_ip_unknown",
            Reason::ChallengeInvalid => "challenge_invalid",
            Reason::ChallengeExpired => "challenge_expired",
            Reason::PaymentSpent => "payment_spent",
            Reason::AllowanceSpent => "allowance_spent",
        }
    }

    /// Parses a stable name back (for tools and tests).
    pub fn from_name(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A rejection: the stable [`Reason`] clients and metrics see, plus a static detail for logs.
/// Neither ever carries request bytes or secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// What clients and metrics see.
    pub reason: Reason,
    /// A fixed English phrase for operators' logs.
    pub detail: &'static str,
}

impl Rejection {
    pub(crate) const fn new(reason: Reason, detail: &'static str) -> Self {
        Rejection { reason, detail }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_snake_case_and_round_trip() {
        for r in Reason::ALL {
            assert_eq!(r.to_string(), r.as_str());
            assert_eq!(Reason::from_name(r.as_str()), Some(r));
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
        assert_eq!(Reason::from_name("nope"), None);
    }
}
