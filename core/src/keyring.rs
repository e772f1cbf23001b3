//! Numbered master secrets and stateless root-key derivation (PROTOCOL.md §4).
//!
//! `root_key = HMAC-SHA256(key = secret[key_id], msg = "l402-edge/root-key/v1" || token_id)`,
//! so any edge holding the keyring verifies any token without a lookup.

#[allow(unused_imports)]
use crate::prelude::*;

use core::fmt;
use core::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::ids::{KeyId, TokenId, parse_hex32};

type HmacSha256 = Hmac<Sha256>;

/// Domain-separation prefix of the root-key derivation.
pub const ROOT_KEY_LABEL: &[u8] = b"l402-edge/root-key/v1";

/// Most keys a ring may hold: rotation needs two or three, a hundred is generous.
pub const MAX_KEYS: usize = 1024;

/// A 32-byte master secret. Zeroed on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterSecret([u8; 32]);

impl MasterSecret {
    /// Wraps 32 bytes (from the caller's RNG or secret store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterSecret(bytes)
    }

    /// Hex of the secret, for `keygen` and nothing else.
    pub fn expose_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSecret(<redacted>)")
    }
}

/// A token's root key, derived from the keyring; the macaroon's signing key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RootKey(pub(crate) [u8; 32]);

impl RootKey {
    /// Wraps a root key obtained elsewhere (a cross-check with another implementation).
    #[cfg(any(test, feature = "test-support"))]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        RootKey(bytes)
    }

    /// The raw key, for cross-checks with other macaroon libraries and test helpers.
    #[cfg(any(test, feature = "test-support"))]
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The raw key, for the signature chain.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The go-macaroon signing key: `HMAC("macaroons-key-generator", root_key)`.
    #[cfg(feature = "mint")]
    pub(crate) fn macaroon_key(&self) -> libmacaroon::MacaroonKey {
        libmacaroon::MacaroonKey::generate(&self.0)
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

/// Why a keyring string or entry list was refused. Messages name the entry, never its secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No entries at all.
    #[error("keyring is empty: expected \"<id>:<64 hex>[,<id>:<64 hex>...]\"")]
    Empty,
    /// More than [`MAX_KEYS`] entries.
    #[error("keyring has {0} keys, at most {MAX_KEYS} are allowed")]
    TooManyKeys(usize),
    /// An entry without the `<id>:<secret>` shape.
    #[error("keyring entry {index} is not of the form <id>:<64 hex>")]
    BadEntry {
        /// 0-based position of the entry.
        index: usize,
    },
    /// The id is not a decimal u32.
    #[error("keyring entry {index}: key id is not a number from 0 to 4294967295")]
    BadKeyId {
        /// 0-based position of the entry.
        index: usize,
    },
    /// The secret is not 64 hex digits (32 bytes).
    #[error("keyring key {key_id}: secret must be 64 hex digits (32 bytes), got {len} characters")]
    BadSecretLength {
        /// The entry's key id.
        key_id: u32,
        /// Characters found.
        len: usize,
    },
    /// The secret has a non-hex character.
    #[error("keyring key {key_id}: secret is not hex")]
    BadSecretHex {
        /// The entry's key id.
        key_id: u32,
    },
    /// The same id twice.
    #[error("keyring key id {0} appears more than once")]
    DuplicateKeyId(u32),
}

struct Entry {
    id: KeyId,
    /// HMAC already keyed with the secret: derivation then costs two compressions, not four.
    keyed: HmacSha256,
}

/// Numbered master secrets: the first is current for minting, all verify.
pub struct Keyring {
    /// Sorted by id, for a lookup that does not grow with the ring.
    entries: Vec<Entry>,
    current: KeyId,
}

impl Keyring {
    /// Builds a ring from `(id, secret)` pairs; the first is the current key.
    pub fn new(entries: Vec<(KeyId, MasterSecret)>) -> Result<Self, KeyringError> {
        let current = entries.first().ok_or(KeyringError::Empty)?.0;
        if entries.len() > MAX_KEYS {
            return Err(KeyringError::TooManyKeys(entries.len()));
        }
        let mut built = Vec::with_capacity(entries.len());
        for (id, secret) in &entries {
            let keyed = HmacSha256::new_from_slice(&secret.0).map_err(|_| {
                KeyringError::BadSecretLength {
                    key_id: id.0,
                    len: 64,
                }
            })?;
            // Kept sorted by insertion (at most MAX_KEYS): no sort routine in the Wasm.
            match built.binary_search_by_key(id, |e: &Entry| e.id) {
                Ok(_) => return Err(KeyringError::DuplicateKeyId(id.0)),
                Err(at) => built.insert(at, Entry { id: *id, keyed }),
            }
        }
        Ok(Keyring {
            entries: built,
            current,
        })
    }

    /// The key new tokens are minted under.
    pub fn current_key_id(&self) -> KeyId {
        self.current
    }

    /// All key ids, ascending.
    pub fn key_ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.entries.iter().map(|e| e.id)
    }

    /// Whether `id` is in the ring.
    pub fn contains(&self, id: KeyId) -> bool {
        self.find(id).is_some()
    }

    fn find(&self, id: KeyId) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The root key of `token_id`, or `None` when its key id is not in the ring
    /// (never issued here, or removed: removal revokes every token under it).
    pub fn root_key(&self, token_id: &TokenId) -> Option<RootKey> {
        let entry = self.find(token_id.key_id())?;
        let mut mac = entry.keyed.clone();
        mac.update(ROOT_KEY_LABEL);
        mac.update(&token_id.0);
        Some(RootKey(mac.finalize().into_bytes().into()))
    }
}

/// The key a Payment challenge id is bound with: `HMAC-SHA256(secret[key_id],
/// "l402-edge/payment-challenge/v1")`, distinct from every root key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChallengeKey([u8; 32]);

impl ChallengeKey {
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeKey(<redacted>)")
    }
}

impl Keyring {
    /// The Payment challenge key of `id` (PROTOCOL.md §11.1); `None` if the id is not here.
    pub fn challenge_key(&self, id: KeyId) -> Option<ChallengeKey> {
        let entry = self.find(id)?;
        let mut mac = entry.keyed.clone();
        mac.update(crate::payment::CHALLENGE_KEY_LABEL);
        Some(ChallengeKey(mac.finalize().into_bytes().into()))
    }
}

impl FromStr for Keyring {
    type Err = KeyringError;

    /// `"<id>:<64 hex>,<id>:<64 hex>"`; white space around entries is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut entries = Vec::new();
        for (index, raw) in s.split(',').enumerate() {
            let raw = raw.trim();
            if raw.is_empty() && s.trim().is_empty() {
                return Err(KeyringError::Empty);
            }
            let (id, secret) = raw
                .split_once(':')
                .ok_or(KeyringError::BadEntry { index })?;
            let id = id.trim();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(KeyringError::BadKeyId { index });
            }
            let key_id: u32 = id.parse().map_err(|_| KeyringError::BadKeyId { index })?;
            let secret = secret.trim();
            if secret.len() != 64 {
                return Err(KeyringError::BadSecretLength {
                    key_id,
                    len: secret.chars().count(),
                });
            }
            let bytes =
                parse_hex32(secret.as_bytes()).ok_or(KeyringError::BadSecretHex { key_id })?;
            entries.push((KeyId(key_id), MasterSecret(bytes)));
        }
        Keyring::new(entries)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.0)
            .field("key_ids", &self.key_ids().map(|k| k.0).collect::<Vec<_>>())
            .finish()
    }
}

impl fmt::Display for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keyring of {} key(s), current {}",
            self.entries.len(),
            self.current
        )
    }
}

/// One keyring entry in the string form, `"<id>:<64 hex>"`, for `keygen`.
pub fn format_keyring_entry(id: KeyId, secret: &MasterSecret) -> String {
    format!("{}:{}", id.0, secret.expose_hex())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn first_entry_is_current_and_all_verify() {
        let ring: Keyring = format!("9:{A}, 3:{B}").parse().unwrap();
        assert_eq!(ring.current_key_id(), KeyId(9));
        assert_eq!(ring.key_ids().collect::<Vec<_>>(), vec![KeyId(3), KeyId(9)]);
        assert!(ring.root_key(&TokenId::new(KeyId(3), [0; 28])).is_some());
        assert!(ring.root_key(&TokenId::new(KeyId(4), [0; 28])).is_none());
    }

    #[test]
    fn bad_rings_name_the_problem_and_not_the_secret() {
        let cases: Vec<(String, KeyringError)> = vec![
            (String::new(), KeyringError::Empty),
            ("   ".into(), KeyringError::Empty),
            (format!("1{A}"), KeyringError::BadEntry { index: 0 }),
            (format!("1:{A},x:{B}"), KeyringError::BadKeyId { index: 1 }),
            (format!("-1:{A}"), KeyringError::BadKeyId { index: 0 }),
            (
                format!("99999999999:{A}"),
                KeyringError::BadKeyId { index: 0 },
            ),
            (
                format!("1:{}", &A[..62]),
                KeyringError::BadSecretLength { key_id: 1, len: 62 },
            ),
            (
                format!("1:{}zz", &A[..62]),
                KeyringError::BadSecretHex { key_id: 1 },
            ),
            (format!("1:{A},1:{B}"), KeyringError::DuplicateKeyId(1)),
            (format!("1:{A},"), KeyringError::BadEntry { index: 1 }),
        ];
        for (input, want) in cases {
            let err = input.parse::<Keyring>().unwrap_err();
            assert_eq!(err, want, "{input:?}");
            let msg = err.to_string();
            assert!(
                !msg.contains("1111111111") && !msg.contains("2222222222"),
                "{msg}"
            );
        }
    }

    #[test]
    fn debug_and_display_never_print_secrets() {
        let ring: Keyring = format!("1:{A},2:{B}").parse().unwrap();
        for s in [format!("{ring:?}"), format!("{ring}")] {
            assert!(!s.contains("1111") && !s.contains("2222"), "{s}");
        }
        let root = ring.root_key(&TokenId::new(KeyId(1), [5; 28])).unwrap();
        assert_eq!(format!("{root:?}"), "RootKey(<redacted>)");
        let secret = MasterSecret::from_bytes([0x11; 32]);
        assert_eq!(format!("{secret:?}"), "MasterSecret(<redacted>)");
        assert_eq!(format_keyring_entry(KeyId(4), &secret), format!("4:{A}"));
    }

    #[test]
    fn derivation_matches_the_design_formula() {
        // Independent HMAC from the design text, not through the pre-keyed state.
        let ring: Keyring = format!("7:{A}").parse().unwrap();
        let token_id = TokenId::new(KeyId(7), [3; 28]);
        let mut mac = HmacSha256::new_from_slice(&[0x11; 32]).unwrap();
        mac.update(b"l402-edge/root-key/v1");
        mac.update(&token_id.0);
        let want: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(ring.root_key(&token_id).unwrap().bytes(), &want);
    }
}
