//! The signed context an edge hands the origin (`x-l402-context`): proof that a request passed
//! the edge, and what it was authorized for. Plain `x-l402-*` headers say the same, but an
//! origin reachable another way (a forgotten public IP, a neighbour in the cluster) cannot tell
//! them from a client's; a signature it can check, it can.
//!
//! Format: a compact JWS (RFC 7515) over JWT claims (RFC 7519), HS256, made and checked by the
//! `jwt-compact` crate, so any JWT library verifies it (PyJWT, `jose`, `jsonwebtoken`). HS256
//! rather than EdDSA: one HMAC (~2 µs in Wasm) against an Ed25519 signature (~10x that) on
//! every authorized request; the cost is that the origin's key can also sign, so it is a
//! secret of the edge and the origin alone.
//!
//! Claims: `tid` token id, `svc` service, `caps` capabilities the token grants for it (absent:
//! unrestricted), `texp` the token's expiry, `rem` the requests a metered token has left, `htm` method, `htp` canonical path (no query, as
//! DPoP's `htu`), `iat`, and `exp` = `iat` + [`CONTEXT_LIFETIME_SECS`] (never past `texp`),
//! so a captured header is worth a minute, for one method and path.

use chrono::{DateTime, Duration, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Header the edge sets with the signed context.
pub const HEADER_CONTEXT: &str = "x-l402-context";

/// How long a signed context is good for.
pub const CONTEXT_LIFETIME_SECS: u64 = 60;

/// Shortest key accepted: HS256 wants at least the hash's size (RFC 7518 section 3.2).
pub const MIN_CONTEXT_KEY_BYTES: usize = 32;

/// The key shared by the edge (signs) and the origin (verifies).
pub struct ContextKey(Hs256Key);

impl core::fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ContextKey(<redacted>)")
    }
}

/// A key that is not at least 32 bytes of hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected at least 64 hex digits (32 bytes; make one with `openssl rand -hex 32`)")]
pub struct ContextKeyError;

impl std::str::FromStr for ContextKey {
    type Err = ContextKeyError;

    /// Hex, at least 32 bytes.
    fn from_str(s: &str) -> Result<Self, ContextKeyError> {
        let bytes = Zeroizing::new(hex::decode(s.trim()).map_err(|_| ContextKeyError)?);
        if bytes.len() < MIN_CONTEXT_KEY_BYTES {
            return Err(ContextKeyError);
        }
        Ok(ContextKey(Hs256Key::new(&*bytes)))
    }
}

/// What the edge vouches for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeContext {
    /// Token id, hex.
    #[serde(rename = "tid")]
    pub token_id: String,
    /// The service authorized.
    #[serde(rename = "svc")]
    pub service: String,
    /// Capabilities the token grants for it; `None`: no caveat restricts them.
    #[serde(rename = "caps", default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// When the token expires (unix seconds), if it does.
    #[serde(rename = "texp", default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<u64>,
    /// Requests a metered token has left after this one; absent: not metered.
    #[serde(rename = "rem", default, skip_serializing_if = "Option::is_none")]
    pub allowance_remaining: Option<u64>,
    /// The request's method.
    #[serde(rename = "htm")]
    pub method: String,
    /// The request's canonical path.
    #[serde(rename = "htp")]
    pub path: String,
}

/// Why an origin refuses a context header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// Not a compact JWS.
    #[error("context_malformed")]
    Malformed,
    /// Not HS256, or the signature does not verify with this key.
    #[error("context_bad_signature")]
    BadSignature,
    /// `exp` has passed (or is missing).
    #[error("context_expired")]
    Expired,
    /// Signed for another method or path.
    #[error("context_wrong_request")]
    WrongRequest,
    /// The signer could not serialize (does not happen with these claims).
    #[error("context_unsignable")]
    Unsignable,
}

fn at(secs: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(i64::try_from(secs).ok()?, 0)
}

/// Signs `ctx` at `now` (unix seconds).
pub fn sign_context(key: &ContextKey, ctx: &EdgeContext, now: u64) -> Result<String, ContextError> {
    let mut exp = now.saturating_add(CONTEXT_LIFETIME_SECS);
    if let Some(t) = ctx.token_expires_at {
        exp = exp.min(t);
    }
    let mut claims = Claims::new(ctx);
    claims.issued_at = at(now);
    claims.expiration = at(exp);
    Hs256
        .token(&Header::empty().with_token_type("JWT"), &claims, &key.0)
        .map_err(|_| ContextError::Unsignable)
}

/// The origin's check: signature, expiry (with `leeway_secs` for clock skew), and that it was
/// signed for this request's `method` and canonical `path`.
pub fn verify_context(
    key: &ContextKey,
    header_value: &str,
    method: &str,
    path: &str,
    now: u64,
    leeway_secs: u64,
) -> Result<EdgeContext, ContextError> {
    let untrusted = UntrustedToken::new(header_value).map_err(|_| ContextError::Malformed)?;
    let token = Hs256
        .validator::<EdgeContext>(&key.0)
        .validate(&untrusted)
        .map_err(|e| match e {
            jwt_compact::ValidationError::MalformedClaims(_) => ContextError::Malformed,
            _ => ContextError::BadSignature,
        })?;
    let now = at(now).ok_or(ContextError::Expired)?;
    let leeway = i64::try_from(leeway_secs)
        .ok()
        .and_then(Duration::try_seconds)
        .unwrap_or(Duration::MAX);
    let options = TimeOptions::new(leeway, move || now);
    token
        .claims()
        .validate_expiration(&options)
        .map_err(|_| ContextError::Expired)?;
    let ctx = token.into_parts().1.custom;
    if ctx.method != method || ctx.path != path {
        return Err(ContextError::WrongRequest);
    }
    Ok(ctx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";

    fn ctx() -> EdgeContext {
        EdgeContext {
            token_id: "ab".repeat(32),
            service: "weather".into(),
            capabilities: Some(vec!["read".into()]),
            token_expires_at: Some(2_000_000_000),
            allowance_remaining: None,
            method: "GET".into(),
            path: "/weather/today".into(),
        }
    }

    #[test]
    fn signs_and_verifies_for_one_request() {
        let key: ContextKey = KEY.parse().unwrap();
        let jws = sign_context(&key, &ctx(), 1_800_000_000).unwrap();
        assert_eq!(jws.split('.').count(), 3);
        let got = verify_context(&key, &jws, "GET", "/weather/today", 1_800_000_030, 5).unwrap();
        assert_eq!(got, ctx());
        assert_eq!(
            verify_context(&key, &jws, "POST", "/weather/today", 1_800_000_030, 5),
            Err(ContextError::WrongRequest)
        );
        assert_eq!(
            verify_context(&key, &jws, "GET", "/admin", 1_800_000_030, 5),
            Err(ContextError::WrongRequest)
        );
        assert_eq!(
            verify_context(&key, &jws, "GET", "/weather/today", 1_800_000_066, 5),
            Err(ContextError::Expired)
        );
        let other: ContextKey = KEY.replace("07", "08").parse().unwrap();
        assert_eq!(
            verify_context(&other, &jws, "GET", "/weather/today", 1_800_000_030, 5),
            Err(ContextError::BadSignature)
        );
        assert_eq!(
            verify_context(&key, "not.a.jws", "GET", "/", 1_800_000_030, 5),
            Err(ContextError::Malformed)
        );
        // A header claiming `none` or another algorithm is refused, not trusted.
        let (_, rest) = jws.split_once('.').unwrap();
        let none = format!("eyJhbGciOiJub25lIn0.{rest}");
        assert!(verify_context(&key, &none, "GET", "/weather/today", 1_800_000_030, 5).is_err());
    }

    #[test]
    fn expiry_never_outlives_the_token() {
        let key: ContextKey = KEY.parse().unwrap();
        let mut c = ctx();
        c.token_expires_at = Some(1_800_000_010);
        let jws = sign_context(&key, &c, 1_800_000_000).unwrap();
        assert_eq!(
            verify_context(&key, &jws, "GET", "/weather/today", 1_800_000_020, 0),
            Err(ContextError::Expired)
        );
    }

    #[test]
    fn keys_are_long_hex_and_never_printed() {
        assert!("abcd".parse::<ContextKey>().is_err());
        assert!("zz".repeat(32).parse::<ContextKey>().is_err());
        let k: ContextKey = KEY.parse().unwrap();
        assert!(!format!("{k:?}").contains("0707"));
    }
}
