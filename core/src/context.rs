//! The signed context an edge hands the origin (`x-l402-context`): proof that a request passed
//! the edge, and what it was authorized for. Plain `x-l402-*` headers say the same, but an
//! origin reachable another way (a forgotten public IP, a neighbour in the cluster) cannot tell
//! them from a client's; a signature it can check, it can.
//!
//! Format: a compact JWS (RFC 7515) over JWT claims (RFC 7519), HS256, so any JWT library
//! verifies it (PyJWT, `jose`, `jsonwebtoken`; the tests hold it to `jwt-compact` both ways).
//! Written here over core's HMAC-SHA256 and base64url rather than by a JWT crate: a JWS of one
//! fixed algorithm is a header constant, a claims object and one HMAC, and the crate with its
//! time and JSON layers weighed more in the Envoy filter than the rest of this module (issue
//! 18). HS256 rather than EdDSA: one HMAC (~2 µs in Wasm) against an Ed25519 signature (~10x
//! that) on every authorized request; the cost is that the origin's key can also sign, so it
//! is a secret of the edge and the origin alone.
//!
//! Claims: `tid` token id, `svc` service, `caps` capabilities the token grants for it (absent:
//! unrestricted), `texp` the token's expiry, `rem` the requests a metered token has left, `htm` method, `htp` canonical path (no query, as
//! DPoP's `htu`), `iat`, and `exp` = `iat` + [`CONTEXT_LIFETIME_SECS`] (never past `texp`),
//! so a captured header is worth a minute, for one method and path.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::string::String;
use alloc::vec::Vec;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::json::{Field, JsonResult, Reader, Unknown, Writer, read_object, required};
use crate::payment::{b64url_decode, b64url_encode};

/// Header the edge sets with the signed context.
pub const HEADER_CONTEXT: &str = "x-l402-context";

/// How long a signed context is good for.
pub const CONTEXT_LIFETIME_SECS: u64 = 60;

/// Shortest key accepted: HS256 wants at least the hash's size (RFC 7518 section 3.2).
pub const MIN_CONTEXT_KEY_BYTES: usize = 32;

/// The JOSE header of every context, base64url: `{"alg":"HS256","typ":"JWT"}`.
const JOSE_HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The key shared by the edge (signs) and the origin (verifies).
pub struct ContextKey(Zeroizing<Vec<u8>>);

impl core::fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ContextKey(<redacted>)")
    }
}

impl ContextKey {
    /// HMAC-SHA256 of `signing_input` under this key.
    fn mac(&self, signing_input: &[u8]) -> [u8; 32] {
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            // HMAC takes keys of any length: unreachable, and a zero MAC never verifies.
            Err(_) => return [0; 32],
        };
        m.update(signing_input);
        m.finalize().into_bytes().into()
    }
}

/// A key that is not at least 32 bytes of hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected at least 64 hex digits (32 bytes; make one with `openssl rand -hex 32`)")]
pub struct ContextKeyError;

impl core::str::FromStr for ContextKey {
    type Err = ContextKeyError;

    /// Hex, at least 32 bytes.
    fn from_str(s: &str) -> Result<Self, ContextKeyError> {
        let bytes = Zeroizing::new(hex::decode(s.trim()).map_err(|_| ContextKeyError)?);
        if bytes.len() < MIN_CONTEXT_KEY_BYTES {
            return Err(ContextKeyError);
        }
        Ok(ContextKey(bytes))
    }
}

/// What the edge vouches for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeContext {
    /// Token id, hex (`tid`).
    pub token_id: String,
    /// The service authorized (`svc`).
    pub service: String,
    /// Capabilities the token grants for it (`caps`); `None`: no caveat restricts them.
    pub capabilities: Option<Vec<String>>,
    /// When the token expires (unix seconds), if it does (`texp`).
    pub token_expires_at: Option<u64>,
    /// Requests a metered token has left after this one (`rem`); absent: not metered.
    pub allowance_remaining: Option<u64>,
    /// The request's method (`htm`).
    pub method: String,
    /// The request's canonical path (`htp`).
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

/// The claims as signed: registered claims, then the edge's.
struct Claims {
    exp: Option<u64>,
    ctx: EdgeContext,
}

impl Claims {
    fn write(&self, iat: u64) -> String {
        let c = &self.ctx;
        let mut w = Writer::new();
        w.open_object()
            .opt_u64_member("exp", self.exp)
            .u64_member("iat", iat)
            .str_member("tid", &c.token_id)
            .str_member("svc", &c.service);
        if let Some(caps) = &c.capabilities {
            w.strings_member("caps", caps.iter().map(String::as_str));
        }
        w.opt_u64_member("texp", c.token_expires_at)
            .opt_u64_member("rem", c.allowance_remaining)
            .str_member("htm", &c.method)
            .str_member("htp", &c.path)
            .close_object();
        w.finish()
    }

    /// Unknown claims are ignored (RFC 7519 §4).
    fn read(body: &[u8]) -> JsonResult<Claims> {
        Reader::document(body, |r| {
            let (mut exp, mut tid, mut svc, mut caps) = (None, None, None, None);
            let (mut texp, mut rem, mut htm, mut htp) = (None, None, None, None);
            read_object(
                r,
                &mut [
                    ("exp", Field::U64(&mut exp)),
                    ("tid", Field::Str(&mut tid)),
                    ("svc", Field::Str(&mut svc)),
                    ("caps", Field::Strings(&mut caps)),
                    ("texp", Field::U64(&mut texp)),
                    ("rem", Field::U64(&mut rem)),
                    ("htm", Field::Str(&mut htm)),
                    ("htp", Field::Str(&mut htp)),
                ],
                Unknown::Skip,
            )?;
            Ok(Claims {
                exp,
                ctx: EdgeContext {
                    token_id: required(tid, "tid", r)?,
                    service: required(svc, "svc", r)?,
                    capabilities: caps,
                    token_expires_at: texp,
                    allowance_remaining: rem,
                    method: required(htm, "htm", r)?,
                    path: required(htp, "htp", r)?,
                },
            })
        })
    }
}

/// Signs `ctx` at `now` (unix seconds).
pub fn sign_context(key: &ContextKey, ctx: &EdgeContext, now: u64) -> Result<String, ContextError> {
    let mut exp = now.saturating_add(CONTEXT_LIFETIME_SECS);
    if let Some(t) = ctx.token_expires_at {
        exp = exp.min(t);
    }
    let claims = Claims {
        exp: Some(exp),
        ctx: ctx.clone(),
    };
    let mut jws = String::with_capacity(320);
    jws.push_str(JOSE_HEADER_B64);
    jws.push('.');
    jws.push_str(&b64url_encode(claims.write(now).as_bytes()));
    let sig = key.mac(jws.as_bytes());
    jws.push('.');
    jws.push_str(&b64url_encode(&sig));
    Ok(jws)
}

/// Whether a JOSE header is `HS256` with nothing this verifier would have to understand
/// (`crit`, RFC 7515 §4.1.11).
fn header_is_hs256(b64: &str) -> Result<bool, ContextError> {
    let json = b64url_decode(b64).ok_or(ContextError::Malformed)?;
    Reader::document(&json, |r| {
        let (mut alg, mut crit) = (None, None);
        read_object(
            r,
            &mut [
                ("alg", Field::Str(&mut alg)),
                ("crit", Field::Raw(&mut crit)),
            ],
            Unknown::Skip,
        )?;
        Ok(crit.is_none() && alg.as_deref() == Some("HS256"))
    })
    .map_err(|_| ContextError::Malformed)
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
    let mut parts = header_value.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ContextError::Malformed);
    };
    let given = b64url_decode(sig).ok_or(ContextError::Malformed)?;
    if !header_is_hs256(header)? {
        return Err(ContextError::BadSignature);
    }
    let signing_input = header_value
        .get(..header.len() + 1 + payload.len())
        .ok_or(ContextError::Malformed)?;
    if !bool::from(key.mac(signing_input.as_bytes()).ct_eq(given.as_slice())) {
        return Err(ContextError::BadSignature);
    }
    let claims = b64url_decode(payload)
        .and_then(|json| Claims::read(&json).ok())
        .ok_or(ContextError::Malformed)?;
    match claims.exp {
        Some(exp) if now <= exp.saturating_add(leeway_secs) => {}
        _ => return Err(ContextError::Expired),
    }
    if claims.ctx.method != method || claims.ctx.path != path {
        return Err(ContextError::WrongRequest);
    }
    Ok(claims.ctx)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::borrow::ToOwned;
    use alloc::format;
    use alloc::vec;

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

    /// A real JWT library reads what the edge signs, and the edge reads what it signs.
    #[test]
    fn agrees_with_jwt_compact_both_ways() {
        use jwt_compact::alg::{Hs256, Hs256Key};
        use jwt_compact::{AlgorithmExt, Claims as JwtClaims, Header, UntrustedToken};

        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct Custom {
            tid: String,
            svc: String,
            caps: Option<Vec<String>>,
            texp: Option<u64>,
            htm: String,
            htp: String,
        }
        let key: ContextKey = KEY.parse().unwrap();
        let theirs = Hs256Key::new(hex::decode(KEY).unwrap());
        let jws = sign_context(&key, &ctx(), 1_800_000_000).unwrap();
        let token = UntrustedToken::new(&jws).unwrap();
        let checked = Hs256.validator::<Custom>(&theirs).validate(&token).unwrap();
        let c = checked.claims();
        assert_eq!(c.custom.tid, "ab".repeat(32));
        assert_eq!(c.custom.caps, Some(vec!["read".to_owned()]));
        assert_eq!(c.expiration.unwrap().timestamp(), 1_800_000_060);
        assert_eq!(c.issued_at.unwrap().timestamp(), 1_800_000_000);

        let custom = Custom {
            tid: "cd".repeat(32),
            svc: "weather".into(),
            caps: None,
            texp: None,
            htm: "POST".into(),
            htp: "/w".into(),
        };
        let mut claims = JwtClaims::new(custom);
        claims.expiration = chrono::DateTime::from_timestamp(1_800_000_100, 0);
        let signed = Hs256
            .token(&Header::empty().with_token_type("JWT"), &claims, &theirs)
            .unwrap();
        let got = verify_context(&key, &signed, "POST", "/w", 1_800_000_050, 0).unwrap();
        assert_eq!(got.token_id, "cd".repeat(32));
        assert_eq!(got.capabilities, None);
        // A tampered payload, or a header naming `crit`, is refused.
        let (h, rest) = signed.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let other =
            b64url_encode(br#"{"exp":1800000100,"tid":"x","svc":"s","htm":"POST","htp":"/w"}"#);
        assert_eq!(
            verify_context(
                &key,
                &format!("{h}.{other}.{sig}"),
                "POST",
                "/w",
                1_800_000_050,
                0
            ),
            Err(ContextError::BadSignature)
        );
        let crit = b64url_encode(br#"{"alg":"HS256","crit":["b64"]}"#);
        assert!(
            verify_context(&key, &format!("{crit}.{other}.{sig}"), "POST", "/w", 0, 0).is_err()
        );
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
