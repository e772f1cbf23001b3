//! Minting, attenuation and inspection of tokens (PROTOCOL.md §3).

#[allow(unused_imports)]
use crate::prelude::*;

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use libmacaroon::{Format, Macaroon};

use crate::caveat::{
    COND_ALLOWANCE_SUFFIX, COND_CAPABILITIES_SUFFIX, COND_SERVICES, COND_VALID_UNTIL_SUFFIX,
};
use crate::client_ip::{BindingWidth, COND_CLIENT_IP_SUFFIX};
use crate::credential::decode_b64_macaroon;
use crate::ids::{Identifier, PaymentHash, TOKEN_ID_RANDOM_LEN, TokenId};
use crate::keyring::{Keyring, RootKey};
use crate::reason::Rejection;
use crate::service::ServiceEntry;

/// The location Aperture writes (not signed, not checked).
pub const LOCATION: &str = "lsat";

/// A freshly minted token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MintedToken {
    /// V2 binary, standard base64 with padding: what goes in the challenge.
    pub macaroon_b64: String,
    /// The identifier (payment hash, token id).
    pub identifier: Identifier,
    /// The `<svc>_valid_until` written, if any.
    pub expires_at: Option<u64>,
}

/// Why a token could not be minted or re-encoded.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// `now + lifetime` does not fit in u64.
    #[error("token lifetime overflows the clock")]
    LifetimeOverflow,
    /// The current key is missing from the ring (cannot happen for a ring built by `Keyring`).
    #[error("keyring has no current key")]
    NoCurrentKey,
    /// The macaroon library refused (a field over its caps).
    #[error("macaroon library: {0}")]
    Macaroon(#[from] libmacaroon::MacaroonError),
    /// The macaroon to attenuate does not decode.
    #[error("not a macaroon: {0}")]
    NotAMacaroon(Rejection),
    /// The library's own serialization is not the base64 it documents.
    #[error("macaroon serialization: {0}")]
    Encoding(#[from] base64::DecodeError),
}

/// The caveats Aperture writes, in its order: `services=`, `<svc>_capabilities=` (even when
/// empty), and `<svc>_valid_until=` when the entry has a lifetime.
pub fn aperture_caveats(entry: &ServiceEntry, now: u64) -> Result<Vec<String>, MintError> {
    let name = entry.name.as_str();
    let mut caveats = vec![
        format!("{COND_SERVICES}={name}:{}", entry.tier),
        format!(
            "{name}_{COND_CAPABILITIES_SUFFIX}={}",
            entry.capabilities.join(",")
        ),
    ];
    if let Some(lifetime) = entry.lifetime_secs {
        let until = now
            .checked_add(lifetime)
            .ok_or(MintError::LifetimeOverflow)?;
        caveats.push(format!("{name}_{COND_VALID_UNTIL_SUFFIX}={until}"));
    }
    Ok(caveats)
}

/// Mints a token for `entry` under the keyring's current key, bound to `payment_hash`.
/// `random` is the token id's 28 random bytes (core has no RNG); `now` is unix seconds.
pub fn mint(
    keyring: &Keyring,
    payment_hash: PaymentHash,
    random: [u8; TOKEN_ID_RANDOM_LEN],
    entry: &ServiceEntry,
    now: u64,
) -> Result<MintedToken, MintError> {
    mint_bound(keyring, payment_hash, random, entry, now, None)
}

/// [`mint`], and when `client` is given, bound to that client's network: a
/// `<svc>_client_ip=<network>` caveat after Aperture's (see [`BindingWidth::network`]).
pub fn mint_bound(
    keyring: &Keyring,
    payment_hash: PaymentHash,
    random: [u8; TOKEN_ID_RANDOM_LEN],
    entry: &ServiceEntry,
    now: u64,
    client: Option<(IpAddr, BindingWidth)>,
) -> Result<MintedToken, MintError> {
    let mut caveats = aperture_caveats(entry, now)?;
    if let Some(n) = entry.allowance {
        caveats.push(format!("{}_{COND_ALLOWANCE_SUFFIX}={n}", entry.name));
    }
    if let Some((ip, width)) = client {
        caveats.push(format!(
            "{}_{COND_CLIENT_IP_SUFFIX}={}",
            entry.name,
            width.network(ip)
        ));
    }
    let mut minted = mint_caveats(keyring, payment_hash, random, &caveats)?;
    minted.expires_at = entry.lifetime_secs.and_then(|l| now.checked_add(l));
    Ok(minted)
}

/// Mints a token with exactly these first-party caveats, in order: for tests and vectors that
/// need tokens the catalog would never mint.
#[cfg(any(test, feature = "test-support"))]
pub fn mint_with_caveats(
    keyring: &Keyring,
    payment_hash: PaymentHash,
    random: [u8; TOKEN_ID_RANDOM_LEN],
    caveats: &[impl AsRef<str>],
) -> Result<MintedToken, MintError> {
    mint_caveats(keyring, payment_hash, random, caveats)
}

fn mint_caveats(
    keyring: &Keyring,
    payment_hash: PaymentHash,
    random: [u8; TOKEN_ID_RANDOM_LEN],
    caveats: &[impl AsRef<str>],
) -> Result<MintedToken, MintError> {
    let token_id = TokenId::new(keyring.current_key_id(), random);
    let root = keyring.root_key(&token_id).ok_or(MintError::NoCurrentKey)?;
    let identifier = Identifier {
        payment_hash,
        token_id,
    };
    let macaroon_b64 = sign_with(&root, &identifier.encode(), caveats)?;
    Ok(MintedToken {
        macaroon_b64,
        identifier,
        expires_at: None,
    })
}

/// Signs a macaroon with any identifier under a root key, go-macaroon style; standard
/// base64 of the V2 binary. For cross-checks and tests; tokens come from [`mint`].
#[cfg(any(test, feature = "test-support"))]
pub fn sign(
    root: &RootKey,
    identifier: &[u8],
    caveats: &[impl AsRef<str>],
) -> Result<String, MintError> {
    sign_with(root, identifier, caveats)
}

fn sign_with(
    root: &RootKey,
    identifier: &[u8],
    caveats: &[impl AsRef<str>],
) -> Result<String, MintError> {
    let mut mac = Macaroon::create(Some(LOCATION), &root.macaroon_key(), identifier)?;
    for c in caveats {
        mac.add_first_party_caveat(c.as_ref())?;
    }
    encode(&mac)
}

/// Appends a first-party caveat, as a client does to narrow a token it lends on.
pub fn attenuate(macaroon_b64: &str, caveat: &str) -> Result<String, MintError> {
    let mut mac = decode(macaroon_b64).map_err(MintError::NotAMacaroon)?;
    mac.add_first_party_caveat(caveat)?;
    encode(&mac)
}

/// The fields of a macaroon, decoded without any key: for operators' `inspect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspected {
    /// The identifier.
    pub identifier: Identifier,
    /// The location (Aperture writes `lsat`).
    pub location: Option<String>,
    /// First-party caveats as text (lossy for non-UTF-8); third-party ones as `<third-party>`.
    pub caveats: Vec<String>,
    /// Signature, hex.
    pub signature_hex: String,
}

/// Decodes a macaroon (base64 of either alphabet) without verifying it.
pub fn inspect(macaroon_b64: &str) -> Result<Inspected, Rejection> {
    let mac = decode(macaroon_b64)?;
    let identifier = Identifier::decode(mac.identifier())
        .map_err(|_| Rejection::new(crate::Reason::MalformedCredential, "identifier is not v0"))?;
    Ok(Inspected {
        identifier,
        location: mac.location().map(str::to_owned),
        caveats: mac
            .caveats()
            .iter()
            .map(|c| match c.as_first_party() {
                Some(fp) => String::from_utf8_lossy(fp.predicate()).into_owned(),
                None => "<third-party>".to_owned(),
            })
            .collect(),
        signature_hex: hex::encode(mac.signature().as_ref() as &[u8]),
    })
}

fn decode(macaroon_b64: &str) -> Result<Macaroon, Rejection> {
    // The verifier's decoder: the same encodings are accepted everywhere.
    let bytes = decode_b64_macaroon(macaroon_b64.trim())?;
    Macaroon::deserialize_binary(&bytes).map_err(|_| {
        Rejection::new(
            crate::Reason::MalformedCredential,
            "macaroon does not decode",
        )
    })
}

fn encode(mac: &Macaroon) -> Result<String, MintError> {
    // libmacaroon emits URL-safe; Aperture and clients expect standard base64 with padding.
    let url = mac.serialize(Format::V2)?;
    let raw = URL_SAFE.decode(url.as_bytes())?;
    Ok(STANDARD.encode(raw))
}
