//! Verification (PROTOCOL.md §2, hot path): credential → preimage → root key → signature
//! chain → caveats against this request → deny-list. The only way to an [`Authorized`].

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::IpAddr;
use core::num::NonZeroUsize;

use hashbrown::HashSet;
use hmac::{Hmac, Mac};
use lru::LruCache;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::caveat::{Claims, preimage_from_caveats};
use crate::credential::{Candidate, CredentialKey, Credentials, MAX_CAVEATS, Source};
use crate::ids::{Identifier, IdentifierError, KeyId, PaymentHash, TokenId};
use crate::keyring::{Keyring, RootKey};
use crate::macaroon::{self, DecodeError, Macaroon};
use crate::reason::{Reason, Rejection};

/// What one request asks for.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The service the route sells.
    pub service: &'a str,
    /// Capabilities the route requires, comma-separated as route metadata carries them
    /// (`"read,write"`; `""` for none). Read in place: no allocation per request.
    pub capabilities: &'a str,
    /// Unix seconds, from the host's clock.
    pub now: u64,
    /// The client's address as the host knows it (never a header the client wrote); `None`
    /// when it does not, and then a token bound to an address is refused.
    pub client_ip: Option<IpAddr>,
}

impl Request<'_> {
    fn required(&self) -> impl Iterator<Item = &str> + Clone {
        self.capabilities
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }
}

/// Revoked token ids, checked after the signature. Hosts supply the storage (a config list,
/// a KV namespace looked up ahead of the call).
pub trait DenyList {
    /// Whether `id` is revoked.
    fn is_revoked(&self, id: &TokenId) -> bool;
}

impl<S: core::hash::BuildHasher> DenyList for HashSet<TokenId, S> {
    fn is_revoked(&self, id: &TokenId) -> bool {
        self.contains(id)
    }
}

#[cfg(feature = "std")]
impl<S: core::hash::BuildHasher> DenyList for std::collections::HashSet<TokenId, S> {
    fn is_revoked(&self, id: &TokenId) -> bool {
        self.contains(id)
    }
}

impl DenyList for [TokenId] {
    fn is_revoked(&self, id: &TokenId) -> bool {
        self.contains(id)
    }
}

/// No token is revoked.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDenyList;

impl DenyList for NoDenyList {
    fn is_revoked(&self, _: &TokenId) -> bool {
        false
    }
}

/// A token whose preimage, key and signature checked out, and whose caveats parsed. What is
/// left to judge depends on the request (service, capabilities, time, deny-list). Cacheable.
#[derive(Debug)]
pub struct VerifiedToken {
    identifier: Identifier,
    claims: Claims,
    source: Source,
}

impl VerifiedToken {
    /// The token's id.
    pub fn token_id(&self) -> &TokenId {
        &self.identifier.token_id
    }

    /// The earliest `_valid_until` of any service it names (when a cookie holding it should
    /// go); `None`: no expiry caveat.
    pub fn earliest_expiry(&self) -> Option<u64> {
        self.claims.earliest_expiry
    }
}

/// Proof that a request may pass. Only [`Verifier`] makes one; adapters forward a request
/// only when they hold it.
#[derive(Debug, Clone)]
pub struct Authorized {
    token: Arc<VerifiedToken>,
    service_index: usize,
    tier: u32,
    expires_at: Option<u64>,
    allowance: Option<u64>,
}

impl Authorized {
    /// The token id (`x-l402-token-id`).
    pub fn token_id(&self) -> &TokenId {
        &self.token.identifier.token_id
    }
    /// The key the token was minted under.
    pub fn key_id(&self) -> KeyId {
        self.token.identifier.token_id.key_id()
    }
    /// The invoice the token is bound to.
    pub fn payment_hash(&self) -> &PaymentHash {
        &self.token.identifier.payment_hash
    }
    /// The service authorized (`x-l402-service`).
    pub fn service(&self) -> &str {
        self.token
            .claims
            .services
            .first()
            .and_then(|l| l.get(self.service_index))
            .map_or("", |g| g.name.as_str())
    }
    /// The tier the minter granted for this service.
    pub fn tier(&self) -> u32 {
        self.tier
    }
    /// The capabilities granted for this service; `None` when no caveat restricts them.
    pub fn capabilities(&self) -> Option<Vec<&str>> {
        self.token.claims.capabilities(self.service())
    }
    /// When the token stops being valid for this service, if it ever does.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }
    /// The requests this credential may spend in all (the lowest `<service>_allowance`);
    /// `None`: unmetered. The edge counts the token id against it before forwarding.
    pub fn allowance(&self) -> Option<u64> {
        self.allowance
    }
    /// Which header form carried the credential.
    pub fn source(&self) -> Source {
        self.token.source
    }
}

/// Per-VM cache of verified credentials (like Envoy jwt_authn's `jwt_cache_config`): the key
/// is the credential as presented, compared in full; a hit skips decoding and the HMAC chain
/// but every request-dependent check still runs. Entries leave at the token's earliest expiry.
pub struct VerifiedCache {
    lru: Option<LruCache<CredentialKey, Arc<VerifiedToken>>>,
    hits: u64,
    misses: u64,
}

impl VerifiedCache {
    /// A cache of at most `capacity` credentials; 0 turns it off.
    pub fn new(capacity: usize) -> Self {
        VerifiedCache {
            lru: NonZeroUsize::new(capacity).map(LruCache::new),
            hits: 0,
            misses: 0,
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lru.as_ref().map_or(0, LruCache::len)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(hits, misses)` since creation.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    fn get(&mut self, key: &CredentialKey, now: u64) -> Option<Arc<VerifiedToken>> {
        let lru = self.lru.as_mut()?;
        let hit = match lru.get(key) {
            Some(t) if t.claims.earliest_expiry.is_some_and(|e| now >= e) => {
                lru.pop(key);
                None
            }
            Some(t) => Some(Arc::clone(t)),
            None => None,
        };
        if hit.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        hit
    }

    fn put(&mut self, key: &CredentialKey, token: &Arc<VerifiedToken>, now: u64) {
        if let Some(lru) = self.lru.as_mut()
            && token.claims.earliest_expiry.is_none_or(|e| now < e)
        {
            lru.put(key.clone(), Arc::clone(token));
        }
    }
}

impl core::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("len", &self.len())
            .field("hits", &self.hits)
            .field("misses", &self.misses)
            .finish()
    }
}

/// Verifies credentials against a keyring. Built once per configuration; shareable.
pub struct Verifier {
    keyring: Keyring,
    /// HMAC already keyed with go-macaroon's `"macaroons-key-generator"`.
    generator: HmacSha256,
}

impl core::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Verifier")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

const fn malformed(detail: &'static str) -> Rejection {
    Rejection::new(Reason::MalformedCredential, detail)
}

type HmacSha256 = Hmac<Sha256>;

/// go-macaroon's key-derivation label.
const KEY_GENERATOR: &[u8] = b"macaroons-key-generator";

/// HMAC keyed with `key` (at most one SHA-256 block: every key here is 32 bytes or the
/// 23-byte label). HMAC zero-pads short keys to the block, so doing it here is the same key,
/// and the constructor cannot fail.
fn keyed(key: &[u8]) -> HmacSha256 {
    debug_assert!(key.len() <= 64);
    let mut block = [0u8; 64];
    for (d, s) in block.iter_mut().zip(key) {
        *d = *s;
    }
    <HmacSha256 as hmac::digest::KeyInit>::new(&block.into())
}

fn hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut m = keyed(key);
    m.update(msg);
    m.finalize().into_bytes().into()
}

impl Verifier {
    /// A verifier for tokens minted under any key of `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Verifier {
            keyring,
            generator: keyed(KEY_GENERATOR),
        }
    }

    /// The go-macaroon signature chain: `k = HMAC("macaroons-key-generator", root)`,
    /// `sig = HMAC(k, id)`, `sig = HMAC(sig, caveat)`..., compared in constant time.
    ///
    /// Computed here rather than by `libmacaroon::Verifier` (which mints for us, and whose
    /// output the vectors and the cross-check tests hold this to): its verifier carries
    /// third-party discharge support (XSalsa20-Poly1305, maps) that a first-party-only
    /// verifier must not reach, and the pre-keyed generator saves two of the ~22 SHA-256
    /// compressions of a 3-caveat token.
    fn signature_holds(&self, mac: &Macaroon<'_>, root: &RootKey) -> bool {
        let mut m = self.generator.clone();
        m.update(root.bytes());
        let mut sig: [u8; 32] = m.finalize().into_bytes().into();
        sig = hmac(&sig, mac.identifier);
        for c in &mac.caveats {
            if c.third_party {
                return false;
            }
            sig = hmac(&sig, c.id);
        }
        sig.ct_eq(mac.signature).into()
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Judges a Payment credential for a request (PROTOCOL.md §11.2): stateless, so the host
    /// still has to spend the [`crate::Charge`] once before forwarding.
    pub fn verify_payment(
        &self,
        credential: &crate::PaymentCredential,
        request: &Request<'_>,
    ) -> Result<crate::Charge, Rejection> {
        crate::payment::verify_payment(
            &self.keyring,
            credential,
            request.service,
            request.capabilities,
            request.now,
        )
    }

    /// Judges a request's credentials: the first candidate that authorizes wins; if none
    /// does, the rejection of the first one (in header order) is returned.
    pub fn verify(
        &self,
        credentials: &Credentials,
        request: &Request<'_>,
        deny: &(impl DenyList + ?Sized),
    ) -> Result<Authorized, Rejection> {
        self.verify_inner(credentials, request, deny, None)
    }

    /// [`Verifier::verify`] with a cache of verified credentials.
    pub fn verify_cached(
        &self,
        credentials: &Credentials,
        request: &Request<'_>,
        deny: &(impl DenyList + ?Sized),
        cache: &mut VerifiedCache,
    ) -> Result<Authorized, Rejection> {
        self.verify_inner(credentials, request, deny, Some(cache))
    }

    fn verify_inner(
        &self,
        credentials: &Credentials,
        request: &Request<'_>,
        deny: &(impl DenyList + ?Sized),
        mut cache: Option<&mut VerifiedCache>,
    ) -> Result<Authorized, Rejection> {
        credentials.precheck()?;
        let mut first_rejection = None;
        for item in &credentials.items {
            let outcome = item.as_ref().map_err(|r| *r).and_then(|candidate| {
                let token = self.token(candidate, request.now, cache.as_deref_mut())?;
                authorize(token, request, deny)
            });
            match outcome {
                Ok(authorized) => return Ok(authorized),
                Err(r) => {
                    first_rejection.get_or_insert(r);
                }
            }
        }
        Err(first_rejection.unwrap_or(Rejection::new(
            Reason::MissingCredential,
            "no L402 credential",
        )))
    }

    fn token(
        &self,
        candidate: &Candidate,
        now: u64,
        cache: Option<&mut VerifiedCache>,
    ) -> Result<Arc<VerifiedToken>, Rejection> {
        let Some(cache) = cache else {
            return self.verify_token(candidate).map(Arc::new);
        };
        if let Some(token) = cache.get(candidate.cache_key(), now) {
            return Ok(token);
        }
        let token = Arc::new(self.verify_token(candidate)?);
        cache.put(candidate.cache_key(), &token, now);
        Ok(token)
    }

    /// Everything that does not depend on the request: decode, preimage, key, signature,
    /// caveat syntax.
    pub fn verify_token(&self, candidate: &Candidate) -> Result<VerifiedToken, Rejection> {
        let bytes = candidate.macaroon()?;
        let (mac, identifier) = decode_macaroon(&bytes)?;
        let predicates = || mac.predicates();
        let preimage = match candidate.explicit_preimage() {
            Some(p) => p,
            None => preimage_from_caveats(predicates())?
                .ok_or(malformed("no preimage in the credential or its caveats"))?,
        };
        if !identifier.payment_hash.is_paid_by(&preimage) {
            return Err(Rejection::new(
                Reason::WrongPreimage,
                "preimage does not hash to the payment hash",
            ));
        }
        self.check_signature(&mac, &identifier)?;
        let claims = Claims::parse(predicates(), &preimage)?;
        Ok(VerifiedToken {
            identifier,
            claims,
            source: candidate.source(),
        })
    }

    /// A macaroon this keyring minted, not yet paid (the paywall's pending challenge): decode,
    /// key, signature; its identifier names the invoice to ask about.
    pub fn verify_unpaid(&self, macaroon_b64: &str) -> Result<Identifier, Rejection> {
        let candidate = Candidate::unpaid(macaroon_b64);
        let bytes = candidate.macaroon()?;
        let (mac, identifier) = decode_macaroon(&bytes)?;
        self.check_signature(&mac, &identifier)?;
        Ok(identifier)
    }

    fn check_signature(
        &self,
        mac: &Macaroon<'_>,
        identifier: &Identifier,
    ) -> Result<(), Rejection> {
        let root = self
            .keyring
            .root_key(&identifier.token_id)
            .ok_or(Rejection::new(
                Reason::UnknownKey,
                "key id not in the keyring",
            ))?;
        // Third-party caveats would need discharges we never issue.
        if mac.caveats.iter().any(|c| c.third_party) {
            return Err(Rejection::new(
                Reason::UnsupportedCaveat,
                "third-party caveat",
            ));
        }
        if !self.signature_holds(mac, &root) {
            return Err(Rejection::new(
                Reason::BadSignature,
                "signature chain does not verify",
            ));
        }
        Ok(())
    }
}

/// Decodes a V2 binary macaroon and its identifier, within the caveat cap.
fn decode_macaroon(bytes: &[u8]) -> Result<(Macaroon<'_>, Identifier), Rejection> {
    let mac = macaroon::decode(bytes).map_err(|e| match e {
        DecodeError::TooLarge => {
            Rejection::new(Reason::CredentialTooLarge, "macaroon over a size cap")
        }
        DecodeError::Malformed => malformed("macaroon does not decode"),
    })?;
    if mac.caveats.len() > MAX_CAVEATS {
        return Err(Rejection::new(
            Reason::CredentialTooLarge,
            "macaroon has too many caveats",
        ));
    }
    let identifier = Identifier::decode(mac.identifier).map_err(|e| match e {
        IdentifierError::UnsupportedVersion(_) => {
            Rejection::new(Reason::UnsupportedVersion, "identifier version is not 0")
        }
        IdentifierError::WrongLength(_) => malformed("identifier is not 66 bytes"),
    })?;
    Ok((mac, identifier))
}

fn authorize(
    token: Arc<VerifiedToken>,
    request: &Request<'_>,
    deny: &(impl DenyList + ?Sized),
) -> Result<Authorized, Rejection> {
    if deny.is_revoked(&token.identifier.token_id) {
        return Err(Rejection::new(
            Reason::Revoked,
            "token id is on the deny-list",
        ));
    }
    let (tier, expires_at) = token.claims.check(
        request.service,
        request.required(),
        request.now,
        request.client_ip,
    )?;
    let allowance = token.claims.allowance(request.service);
    if allowance == Some(0) {
        return Err(Rejection::new(
            Reason::AllowanceSpent,
            "allowance caveat of zero requests",
        ));
    }
    let service_index = token
        .claims
        .services
        .first()
        .and_then(|l| l.iter().position(|g| g.name == request.service))
        .unwrap_or_default();
    Ok(Authorized {
        token,
        service_index,
        tier,
        expires_at,
        allowance,
    })
}
