//! Fixed-size values of the token identifier, and the identifier itself (PROTOCOL.md §3).

#[allow(unused_imports)]
use crate::prelude::*;

use core::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The only identifier version Aperture mints and we accept.
pub const IDENTIFIER_VERSION: u16 = 0;
/// `u16be(version) || payment_hash[32] || token_id[32]`.
pub const IDENTIFIER_LEN: usize = 2 + 32 + 32;

/// Number of fresh random bytes in a token id, after the 4-byte key id.
pub const TOKEN_ID_RANDOM_LEN: usize = 28;

/// Lower-case hex of 32 public bytes through a buffer: `hex::encode` goes a char at a time,
/// and a token id is encoded on every authorized request (a profile of the Worker's
/// `l402_decide` in V8 put 5 % of the call there).
fn encode_hex32(bytes: &[u8; 32]) -> String {
    let mut out = [0u8; 64];
    // Neither step can fail: the buffer is exactly twice the input, and hex digits are ASCII.
    hex::encode_to_slice(bytes, &mut out)
        .ok()
        .and_then(|()| core::str::from_utf8(&out).ok())
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Numbers a master secret in the keyring; the first four bytes of every token id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(pub u32);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// SHA-256 of the invoice's preimage; binds a token to one Lightning payment.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaymentHash(pub [u8; 32]);

/// A token's unique id: `u32be(key_id) || 28 random bytes`. Public: it appears in
/// deny-lists, logs and the `x-l402-token-id` header.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub [u8; 32]);

/// The payment preimage: proof of payment and, with the macaroon, a bearer credential.
/// Never printed: `Debug` is redacted and there is no `Display`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Preimage(pub(crate) [u8; 32]);

impl TokenId {
    /// Builds a token id for `key_id` from caller-supplied randomness (core has no RNG).
    pub fn new(key_id: KeyId, random: [u8; TOKEN_ID_RANDOM_LEN]) -> Self {
        let mut id = [0u8; 32];
        let (head, tail) = id.split_at_mut(4);
        head.copy_from_slice(&key_id.0.to_be_bytes());
        tail.copy_from_slice(&random);
        TokenId(id)
    }

    /// The keyring entry whose secret derives this token's root key.
    pub fn key_id(&self) -> KeyId {
        let [a, b, c, d, ..] = self.0;
        KeyId(u32::from_be_bytes([a, b, c, d]))
    }

    /// Lower-case hex, the form used in deny-lists and headers.
    pub fn to_hex(&self) -> String {
        encode_hex32(&self.0)
    }

    /// Parses 64 hex digits, either case.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex32(s.as_bytes()).map(TokenId)
    }
}

impl PaymentHash {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        encode_hex32(&self.0)
    }

    /// Parses 64 hex digits, either case.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex32(s.as_bytes()).map(PaymentHash)
    }

    /// Whether `preimage` pays this hash; constant-time in the hash bytes.
    pub fn is_paid_by(&self, preimage: &Preimage) -> bool {
        let digest: [u8; 32] = Sha256::digest(preimage.0).into();
        digest.ct_eq(&self.0).into()
    }
}

impl Preimage {
    /// Wraps 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Preimage(bytes)
    }

    /// Parses 64 hex digits, either case.
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex32(s.as_bytes()).map(Preimage)
    }

    /// The hash an invoice for this preimage carries.
    pub fn payment_hash(&self) -> PaymentHash {
        PaymentHash(Sha256::digest(self.0).into())
    }

    /// The raw bytes, for a caller that must send the preimage on (a client, a test).
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Hex, for a caller that must send the preimage on (a client, a test).
    pub fn expose_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn ct_eq(&self, other: &Preimage) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for Preimage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Preimage(<redacted>)")
    }
}

impl fmt::Debug for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PaymentHash({})", self.to_hex())
    }
}

impl fmt::Display for PaymentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({})", self.to_hex())
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Exactly 64 hex digits of either case → 32 bytes.
pub(crate) fn parse_hex32(s: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// The decoded macaroon identifier, version 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identifier {
    /// The invoice this token is bound to.
    pub payment_hash: PaymentHash,
    /// The token's id (carries the key id).
    pub token_id: TokenId,
}

/// Why bytes are not a version-0 identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// Not 66 bytes.
    #[error("identifier is {0} bytes, expected 66")]
    WrongLength(usize),
    /// A version other than 0.
    #[error("identifier version {0} is not supported")]
    UnsupportedVersion(u16),
}

impl Identifier {
    /// `u16be(0) || payment_hash || token_id`.
    pub fn encode(&self) -> [u8; IDENTIFIER_LEN] {
        let mut out = [0u8; IDENTIFIER_LEN];
        let (version, rest) = out.split_at_mut(2);
        let (hash, id) = rest.split_at_mut(32);
        version.copy_from_slice(&IDENTIFIER_VERSION.to_be_bytes());
        hash.copy_from_slice(&self.payment_hash.0);
        id.copy_from_slice(&self.token_id.0);
        out
    }

    /// Parses exactly 66 bytes of version 0; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, IdentifierError> {
        let wrong_length = IdentifierError::WrongLength(bytes.len());
        let (version, rest) = bytes.split_first_chunk::<2>().ok_or(wrong_length)?;
        let version = u16::from_be_bytes(*version);
        if version != IDENTIFIER_VERSION {
            return Err(IdentifierError::UnsupportedVersion(version));
        }
        let (payment_hash, rest) = rest.split_first_chunk::<32>().ok_or(wrong_length)?;
        let (token_id, rest) = rest.split_first_chunk::<32>().ok_or(wrong_length)?;
        if !rest.is_empty() {
            return Err(wrong_length);
        }
        Ok(Identifier {
            payment_hash: PaymentHash(*payment_hash),
            token_id: TokenId(*token_id),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn identifier_roundtrip_and_layout() {
        let id = Identifier {
            payment_hash: PaymentHash([7; 32]),
            token_id: TokenId::new(KeyId(0x01020304), [9; 28]),
        };
        let bytes = id.encode();
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..34], &[7; 32]);
        assert_eq!(&bytes[34..38], &[1, 2, 3, 4]);
        assert_eq!(Identifier::decode(&bytes).unwrap(), id);
        assert_eq!(id.token_id.key_id(), KeyId(0x01020304));
    }

    #[test]
    fn identifier_rejects_other_versions_and_lengths() {
        let mut bytes = Identifier {
            payment_hash: PaymentHash([1; 32]),
            token_id: TokenId([2; 32]),
        }
        .encode();
        assert_eq!(
            Identifier::decode(&bytes[..65]),
            Err(IdentifierError::WrongLength(65))
        );
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(
            Identifier::decode(&long),
            Err(IdentifierError::WrongLength(67))
        );
        assert_eq!(
            Identifier::decode(&[]),
            Err(IdentifierError::WrongLength(0))
        );
        bytes[1] = 1;
        assert_eq!(
            Identifier::decode(&bytes),
            Err(IdentifierError::UnsupportedVersion(1))
        );
    }

    #[test]
    fn preimage_is_never_printed() {
        let p = Preimage([0xab; 32]);
        assert!(!format!("{p:?}").contains("ab"));
        assert!(p.payment_hash().is_paid_by(&p));
        assert!(!PaymentHash([0; 32]).is_paid_by(&p));
    }

    #[test]
    fn hex32_accepts_either_case_and_nothing_else() {
        let lower = "ab".repeat(32);
        assert!(parse_hex32(lower.as_bytes()).is_some());
        assert!(parse_hex32(lower.to_uppercase().as_bytes()).is_some());
        assert!(parse_hex32(&lower.as_bytes()[..62]).is_none());
        assert!(parse_hex32("zz".repeat(32).as_bytes()).is_none());
    }

    #[test]
    fn ids_encode_as_lower_case_hex_and_parse_back() {
        let bytes: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
        let id = TokenId(bytes);
        assert_eq!(id.to_hex(), hex::encode(bytes));
        assert_eq!(TokenId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(PaymentHash(bytes).to_hex(), hex::encode(bytes));
    }
}
