//! Credentials on the wire (PROTOCOL.md §5): lenient in the forms accepted, strict in size.
//!
//! - `Authorization: L402 <macaroons>:<preimage>` or `LSAT ...`; scheme in any case, one or
//!   more spaces; macaroons in standard or URL-safe base64, padded or not, comma-separated;
//!   the preimage as 64 hex digits of either case. Several values, or several credentials
//!   joined by `", "` in one value: each becomes a candidate, in order.
//! - `Macaroon: <hex>` and `Grpc-Metadata-Macaroon: <hex>`: the macaroon carries the preimage
//!   in a `preimage=` caveat.
//! - `Cookie: L402=<macaroon>:<preimage>`: what the paywall page's status answer sets in a
//!   browser (PROTOCOL.md §13.3); held to every rule a header credential is, and never
//!   forwarded (the edge removes it from the `Cookie` it passes on).
//!
//! Parsing only splits; a macaroon is decoded when it is judged (a cached credential never
//! is); [`crate::Verifier`] judges candidates in order, first success wins.

#[allow(unused_imports)]
use crate::prelude::*;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::ids::Preimage;
use crate::payment::PaymentCredential;
use crate::reason::{Reason, Rejection};

/// Most bytes of credential headers one request may carry, over all values. A 3-caveat
/// Aperture macaroon is about 250 characters; this leaves room for heavy attenuation.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;
/// Most macaroons (candidates) one request may carry, over all headers.
pub const MAX_MACAROONS: usize = 8;
/// Most caveats one macaroon may carry.
pub const MAX_CAVEATS: usize = 64;

/// The request headers that carry an L402 credential (lower case). Adapters strip these
/// before forwarding, unless configured not to.
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "macaroon", "grpc-metadata-macaroon"];

const STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Where a candidate came from; logs and metrics may show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `Authorization: L402 ...`.
    L402,
    /// `Authorization: LSAT ...`.
    Lsat,
    /// `Macaroon:` or `Grpc-Metadata-Macaroon:` (hex).
    MacaroonHeader,
    /// The `L402` cookie the paywall set.
    Cookie,
}

/// The cookie holding a paid credential (`<macaroon>:<preimage>`), set by the status answer.
pub const CREDENTIAL_COOKIE: &str = "L402";
/// Prefix of the cookie holding a paywall page's unpaid macaroon, named by the first 16 hex
/// digits of its payment hash (so that two open pages do not overwrite each other).
pub const PENDING_COOKIE_PREFIX: &str = "L402-pending-";

/// `name=value` pairs of one `Cookie` header value (RFC 6265 §4.2.1), values unquoted.
pub fn cookie_pairs(value: &str) -> impl Iterator<Item = (&str, &str)> {
    value.split(';').filter_map(|pair| {
        let (n, v) = pair.split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v);
        Some((n.trim(), v))
    })
}

/// Whether a cookie is the edge's own (the credential or a pending challenge): such cookies
/// never reach the origin.
pub fn is_edge_cookie(name: &str) -> bool {
    name == CREDENTIAL_COOKIE || name.starts_with(PENDING_COOKIE_PREFIX)
}

/// How a presented macaroon is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    /// Standard or URL-safe base64, padded or not (`Authorization`, the cookie).
    Base64 = 0,
    /// Hex (`Macaroon`, `Grpc-Metadata-Macaroon`).
    Hex = 1,
}

/// A credential exactly as presented: `[encoding, has_preimage, preimage[32], encoded
/// macaroon...]`. Equal keys decode to equal macaroons, so a cache that holds verified tokens
/// by this key answers a repeated credential without decoding it; the encoding is in the key
/// because one text can be both hex and base64 and mean different bytes.
#[derive(Clone)]
pub(crate) struct CredentialKey(Box<[u8]>);

impl core::hash::Hash for CredentialKey {
    /// The bytes, as `[u8]` hashes them: equal under [`PartialEq`] means equal bytes.
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for CredentialKey {
    /// Word by word: on wasm32 `[u8] == [u8]` is a byte loop (`memcmp`), and every cache hit
    /// compares a whole credential.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.0, &other.0);
        if a.len() != b.len() {
            return false;
        }
        let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
        let word = |c: &[u8]| c.first_chunk::<8>().map_or(0, |w| u64::from_ne_bytes(*w));
        x.by_ref().zip(y.by_ref()).all(|(p, q)| word(p) == word(q))
            && x.remainder() == y.remainder()
    }
}

impl Eq for CredentialKey {}

/// Bytes of the key before the encoded macaroon.
const KEY_HEAD: usize = 34;

/// One macaroon with the preimage presented beside it (if any), not yet decoded: decoding
/// waits until a cache has not answered, and a malformed one is refused then, in its turn.
#[derive(Clone)]
pub struct Candidate {
    key: CredentialKey,
    source: Source,
}

impl Candidate {
    fn new(source: Source, preimage: Option<&Preimage>, encoded: &str, e: Encoding) -> Self {
        let mut key = Vec::with_capacity(KEY_HEAD + encoded.len());
        key.push(e as u8);
        match preimage {
            Some(p) => {
                key.push(1);
                key.extend_from_slice(&p.0);
            }
            None => key.extend_from_slice(&[0; 33]),
        }
        key.extend_from_slice(encoded.as_bytes());
        Candidate {
            key: CredentialKey(key.into_boxed_slice()),
            source,
        }
    }

    /// A macaroon presented without a preimage (the paywall's pending cookie).
    pub(crate) fn unpaid(encoded: &str) -> Self {
        Self::new(Source::Cookie, None, encoded.trim(), Encoding::Base64)
    }

    /// A macaroon with its preimage, as the paywall's status answer pairs them.
    pub(crate) fn paid(encoded: &str, preimage: &Preimage) -> Self {
        Self::new(
            Source::Cookie,
            Some(preimage),
            encoded.trim(),
            Encoding::Base64,
        )
    }

    /// The binary (V2) macaroon, decoded; refused if it is not one.
    pub(crate) fn macaroon(&self) -> Result<Vec<u8>, Rejection> {
        let (head, encoded) = self.key.0.split_at_checked(KEY_HEAD).unwrap_or_default();
        Encoding::of_tag(head.first()).decode_v2(encoded)
    }

    /// The preimage presented outside the macaroon, if any.
    pub(crate) fn explicit_preimage(&self) -> Option<Preimage> {
        match self.key.0.get(1..KEY_HEAD) {
            Some([1, p @ ..]) => p.try_into().ok().map(Preimage),
            _ => None,
        }
    }

    /// The credential as presented, a cache key.
    pub(crate) fn cache_key(&self) -> &CredentialKey {
        &self.key
    }

    /// Which header form carried it.
    pub fn source(&self) -> Source {
        self.source
    }
}

impl core::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Candidate")
            .field("source", &self.source)
            .field("encoded_len", &self.key.0.len().saturating_sub(KEY_HEAD))
            .finish_non_exhaustive()
    }
}

/// Everything credential-like in one request, in header order: decoded candidates, and the
/// rejections of the parts that did not decode (reported only if nothing verifies).
#[derive(Debug, Default)]
pub struct Credentials {
    pub(crate) items: Vec<Result<Candidate, Rejection>>,
    /// The first `Authorization: Payment` credential, decoded or refused.
    payment: Option<Result<PaymentCredential, Rejection>>,
    bytes: usize,
    macaroons: usize,
    too_large: bool,
}

/// Which credential header a value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    /// `Authorization`.
    Authorization,
    /// `Macaroon` or `Grpc-Metadata-Macaroon`.
    Macaroon,
    /// `Cookie` (only its `L402` cookie counts).
    Cookie,
}

impl HeaderKind {
    /// Classifies a header name (any case); `None` for headers that carry no credential.
    pub fn of(name: &str) -> Option<HeaderKind> {
        if name.eq_ignore_ascii_case("authorization") {
            Some(HeaderKind::Authorization)
        } else if name.eq_ignore_ascii_case("macaroon")
            || name.eq_ignore_ascii_case("grpc-metadata-macaroon")
        {
            Some(HeaderKind::Macaroon)
        } else if name.eq_ignore_ascii_case("cookie") {
            Some(HeaderKind::Cookie)
        } else {
            None
        }
    }
}

const fn malformed(detail: &'static str) -> Rejection {
    Rejection::new(Reason::MalformedCredential, detail)
}

const TOO_LARGE: Rejection =
    Rejection::new(Reason::CredentialTooLarge, "over a credential size cap");

impl Credentials {
    /// Collects credentials from `(name, value)` header pairs, in order; other headers are
    /// ignored.
    pub fn from_headers<'a, N, V>(headers: impl IntoIterator<Item = (N, V)>) -> Credentials
    where
        N: AsRef<str>,
        V: AsRef<[u8]> + 'a,
    {
        let mut c = Credentials::default();
        for (name, value) in headers {
            if let Some(kind) = HeaderKind::of(name.as_ref()) {
                c.add(kind, value.as_ref());
            }
        }
        c
    }

    /// Adds one header value.
    pub fn add(&mut self, kind: HeaderKind, value: &[u8]) {
        if self.too_large {
            return;
        }
        if kind == HeaderKind::Cookie {
            // Only the credential cookie counts toward the caps: other cookies are the site's.
            self.add_cookies(value);
            return;
        }
        self.bytes = self.bytes.saturating_add(value.len());
        if self.bytes > MAX_CREDENTIAL_BYTES {
            self.too_large = true;
            return;
        }
        let Ok(value) = core::str::from_utf8(value) else {
            // Other schemes may be opaque bytes too, but an L402 value is ASCII; fail closed.
            self.push(Err(malformed("header value is not UTF-8")));
            return;
        };
        match kind {
            HeaderKind::Authorization => self.add_authorization(value),
            HeaderKind::Cookie => {}
            HeaderKind::Macaroon => {
                for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let item = Candidate::new(Source::MacaroonHeader, None, part, Encoding::Hex);
                    self.push(Ok(item));
                }
            }
        }
    }

    /// The rejection for the whole request, if the caps were exceeded or nothing was found.
    pub(crate) fn precheck(&self) -> Result<(), Rejection> {
        if self.too_large {
            return Err(TOO_LARGE);
        }
        if self.items.is_empty() {
            return Err(Rejection::new(
                Reason::MissingCredential,
                "no L402 credential",
            ));
        }
        Ok(())
    }

    /// Whether the request carried anything credential-like (even malformed).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.payment.is_none() && !self.too_large
    }

    /// Whether the request carried an L402 (or LSAT, or macaroon-header) credential, even
    /// malformed.
    pub fn has_l402(&self) -> bool {
        !self.items.is_empty()
    }

    /// The first Payment credential: decoded, or why not. Over a size cap: refused as such.
    pub fn payment(&self) -> Option<Result<&PaymentCredential, Rejection>> {
        if self.too_large {
            return Some(Err(TOO_LARGE));
        }
        self.payment.as_ref().map(|p| p.as_ref().map_err(|r| *r))
    }

    /// The candidates presented, in order (each decoded when it is judged).
    pub fn candidates(&self) -> impl Iterator<Item = &Candidate> {
        self.items.iter().filter_map(|i| i.as_ref().ok())
    }

    fn push(&mut self, item: Result<Candidate, Rejection>) {
        self.macaroons += 1;
        if self.macaroons > MAX_MACAROONS {
            self.too_large = true;
            return;
        }
        self.items.push(item);
    }

    fn add_authorization(&mut self, value: &str) {
        // Split into credentials: a comma-separated piece that has white space inside starts
        // a new `<scheme> <token>` credential; one without continues the macaroon list.
        let mut pieces = value.split(',').map(trim_ows).peekable();
        while let Some(piece) = pieces.next() {
            if piece.is_empty() {
                continue;
            }
            let Some((scheme, first)) = piece.split_once([' ', '\t']) else {
                // A bare token with no scheme before it: not a credential we can read.
                self.push(Err(malformed("authorization value without a scheme")));
                continue;
            };
            let source = if scheme.eq_ignore_ascii_case("L402") {
                Some(Source::L402)
            } else if scheme.eq_ignore_ascii_case("LSAT") {
                Some(Source::Lsat)
            } else if scheme.eq_ignore_ascii_case("Payment") {
                // One base64url token, no commas: the first Payment credential counts.
                if self.payment.is_none() {
                    self.payment = Some(PaymentCredential::parse(trim_ows(first)));
                }
                continue;
            } else {
                None // Another scheme (Bearer, Basic): not ours; skip its pieces too.
            };
            let mut macaroons = vec![trim_ows(first)];
            while let Some(next) = pieces.next_if(|p| !p.bytes().any(is_ows)) {
                macaroons.push(next);
            }
            if let Some(source) = source {
                self.add_l402(source, &macaroons);
            }
        }
    }

    fn add_cookies(&mut self, value: &[u8]) {
        let Ok(value) = core::str::from_utf8(value) else {
            return; // Not ours to judge: the site's cookies may be anything.
        };
        for (name, v) in cookie_pairs(value) {
            if name != CREDENTIAL_COOKIE || self.too_large {
                continue;
            }
            self.bytes = self.bytes.saturating_add(v.len());
            if self.bytes > MAX_CREDENTIAL_BYTES {
                self.too_large = true;
                return;
            }
            // One macaroon and its preimage; a comma is not a cookie-octet.
            self.add_l402(Source::Cookie, &[v]);
        }
    }

    fn add_l402(&mut self, source: Source, macaroons: &[&str]) {
        let Some((last, rest)) = macaroons.split_last() else {
            return;
        };
        let (last, preimage) = match last.rsplit_once(':') {
            Some((m, p)) => match Preimage::from_hex(p) {
                Some(p) => (m, Some(p)),
                None => {
                    self.push(Err(malformed("preimage is not 64 hex digits")));
                    return;
                }
            },
            None => (*last, None),
        };
        for m in rest.iter().copied().chain(core::iter::once(last)) {
            let item = Candidate::new(source, preimage.as_ref(), m, Encoding::Base64);
            self.push(Ok(item));
        }
    }
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Standard or URL-safe base64, padded or not, appended to `out`.
impl Encoding {
    /// The encoding a key's first byte names.
    fn of_tag(tag: Option<&u8>) -> Encoding {
        match tag {
            Some(&t) if t == Encoding::Hex as u8 => Encoding::Hex,
            _ => Encoding::Base64,
        }
    }

    /// Decodes a presented macaroon as the verifier does: V2 binary only.
    fn decode_v2(self, encoded: &[u8]) -> Result<Vec<u8>, Rejection> {
        let out = match self {
            Encoding::Base64 if encoded.is_empty() => return Err(malformed("empty macaroon")),
            Encoding::Base64 => {
                // Either alphabet, told apart by a byte scan.
                let engine = if encoded.iter().any(|b| *b == b'-' || *b == b'_') {
                    &URL
                } else {
                    &STD
                };
                engine
                    .decode(encoded)
                    .map_err(|_| malformed("macaroon is not base64"))?
            }
            Encoding::Hex => {
                hex::decode(encoded).map_err(|_| malformed("macaroon header is not hex"))?
            }
        };
        match out.first() {
            // Only the V2 binary format: V1 and JSON are never minted here or by Aperture.
            Some(2) => Ok(out),
            _ => Err(malformed("not a V2 binary macaroon")),
        }
    }
}

/// Decodes a base64 macaroon as the verifier does: V2 binary only.
#[cfg(feature = "mint")]
pub(crate) fn decode_b64_macaroon(s: &str) -> Result<Vec<u8>, Rejection> {
    Encoding::Base64.decode_v2(s.as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    // A minimal V2 macaroon shape is enough here: parsing does not deserialize.
    const M: &[u8] = &[2, 2, 1, b'x', 0, 0, 6, 32];

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn parse(values: &[&str]) -> Credentials {
        Credentials::from_headers(values.iter().map(|v| ("Authorization", v.as_bytes())))
    }

    /// Candidates that decode.
    fn ok_count(c: &Credentials) -> usize {
        c.candidates().filter(|c| c.macaroon().is_ok()).count()
    }

    /// Each item's refusal, at parsing or at decoding (`None`: it decodes).
    fn refusals(c: &Credentials) -> Vec<Option<Reason>> {
        c.items
            .iter()
            .map(|i| match i {
                Ok(cand) => cand.macaroon().err().map(|r| r.reason),
                Err(r) => Some(r.reason),
            })
            .collect()
    }

    #[test]
    fn schemes_spacing_and_preimage_case() {
        let pre = "ab".repeat(32);
        for v in [
            format!("L402 {}:{pre}", b64(M)),
            format!("lsat {}:{}", b64(M), pre.to_uppercase()),
            format!("l402    {}:{pre}", b64(M)),
            format!("LsAt\t{}:{pre}", b64(M)),
        ] {
            let c = parse(&[&v]);
            assert_eq!(ok_count(&c), 1, "{v}");
            let cand = c.candidates().next().unwrap();
            assert_eq!(cand.macaroon().unwrap(), M);
            assert_eq!(cand.explicit_preimage().unwrap().0, [0xab; 32]);
        }
    }

    #[test]
    fn base64_alphabets_and_padding() {
        // bytes chosen so that standard and URL-safe encodings differ and padding is needed
        let m: Vec<u8> = [2u8, 0xfb, 0xff, 0xfe, 0x3e].to_vec();
        let std = b64(&m);
        assert!(std.contains('+') || std.contains('/'));
        let url = base64::engine::general_purpose::URL_SAFE.encode(&m);
        let pre = "00".repeat(32);
        for enc in [
            std.clone(),
            std.trim_end_matches('=').to_owned(),
            url.clone(),
            url.trim_end_matches('=').to_owned(),
        ] {
            let c = parse(&[&format!("L402 {enc}:{pre}")]);
            assert_eq!(
                c.candidates().next().unwrap().macaroon().unwrap(),
                m,
                "{enc}"
            );
        }
        let mixed = format!("L402 {}_:{pre}", std.trim_end_matches('='));
        assert_eq!(
            refusals(&parse(&[&mixed])),
            [Some(Reason::MalformedCredential)]
        );
    }

    #[test]
    fn lists_joined_values_and_other_schemes() {
        let pre = "11".repeat(32);
        let one = format!("L402 {},{}:{pre}", b64(M), b64(M));
        assert_eq!(ok_count(&parse(&[&one])), 2);
        let joined = format!("Bearer abc, L402 {}:{pre}, LSAT {}:{pre}", b64(M), b64(M));
        let c = parse(&[&joined]);
        assert_eq!(ok_count(&c), 2);
        assert_eq!(
            c.candidates().map(|c| c.source()).collect::<Vec<_>>(),
            vec![Source::L402, Source::Lsat]
        );
        let c = parse(&["Basic dXNlcjpwYXNz", &format!("L402 {}:{pre}", b64(M))]);
        assert_eq!(ok_count(&c), 1);
        assert!(parse(&["Bearer xyz"]).is_empty());
        assert_eq!(
            parse(&["Bearer xyz"]).precheck().unwrap_err().reason,
            Reason::MissingCredential
        );
    }

    #[test]
    fn macaroon_headers_are_hex() {
        let c = Credentials::from_headers([
            ("Macaroon", hex::encode(M)),
            ("grpc-metadata-macaroon", hex::encode_upper(M)),
            ("x-other", "zz".into()),
        ]);
        assert_eq!(ok_count(&c), 2);
        assert!(
            c.candidates()
                .all(|c| c.explicit_preimage().is_none() && c.source() == Source::MacaroonHeader)
        );
        let bad = Credentials::from_headers([("macaroon", "xyz")]);
        assert_eq!(refusals(&bad), [Some(Reason::MalformedCredential)]);
        // One text can be hex and base64 at once: decoded as the header it came in says.
        let both = hex::encode(M);
        let b = Credentials::from_headers([("macaroon", both.as_str())]);
        let a = parse(&[&format!("L402 {both}:{}", "00".repeat(32))]);
        let (b, a) = (
            b.candidates().next().unwrap(),
            a.candidates().next().unwrap(),
        );
        assert_eq!(b.macaroon().unwrap(), M);
        assert!(a.macaroon().is_err());
        assert!(a.cache_key() != b.cache_key());
    }

    #[test]
    fn malformed_forms() {
        let pre = "11".repeat(32);
        for v in [
            format!("L402 {}:{}", b64(M), &pre[..63]),
            format!("L402 {}:{}zz", b64(M), &pre[..62]),
            format!("L402 :{pre}"),
            format!("L402 {}:{pre}", b64(b"\x01abc")),
            "L402 !!!!:00".to_owned(),
            "L402".to_owned(),
        ] {
            let c = parse(&[&v]);
            assert_eq!(ok_count(&c), 0, "{v}");
            let r = refusals(&c);
            assert!(
                r.iter().all(|r| *r == Some(Reason::MalformedCredential)),
                "{v}"
            );
        }
        let c = Credentials::from_headers([("authorization", &b"L402 \xff\xfe"[..])]);
        assert_eq!(refusals(&c), [Some(Reason::MalformedCredential)]);
    }

    #[test]
    fn caps_reject_cleanly() {
        let big = format!(
            "L402 {}:{}",
            "A".repeat(MAX_CREDENTIAL_BYTES),
            "00".repeat(32)
        );
        assert_eq!(
            parse(&[&big]).precheck().unwrap_err().reason,
            Reason::CredentialTooLarge
        );
        let many = format!(
            "L402 {}:{}",
            vec![b64(M); MAX_MACAROONS + 1].join(","),
            "00".repeat(32)
        );
        assert_eq!(
            parse(&[&many]).precheck().unwrap_err().reason,
            Reason::CredentialTooLarge
        );
        let at_cap = format!(
            "L402 {}:{}",
            vec![b64(M); MAX_MACAROONS].join(","),
            "00".repeat(32)
        );
        assert!(parse(&[&at_cap]).precheck().is_ok());
        let values: Vec<String> = (0..3)
            .map(|_| "x".repeat(MAX_CREDENTIAL_BYTES / 2))
            .collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        assert_eq!(
            parse(&refs).precheck().unwrap_err().reason,
            Reason::CredentialTooLarge
        );
    }

    #[test]
    fn empty_input() {
        let c = Credentials::from_headers(Vec::<(&str, &str)>::new());
        assert_eq!(c.precheck().unwrap_err().reason, Reason::MissingCredential);
        assert_eq!(
            parse(&[""]).precheck().unwrap_err().reason,
            Reason::MissingCredential
        );
    }

    #[test]
    fn keys_equal_only_byte_for_byte() {
        let key = |b: &[u8]| CredentialKey(b.into());
        for n in [0, 1, 7, 8, 9, 16, 33, 34, 250] {
            let a: Vec<u8> = (0..n).map(|i| i as u8).collect();
            assert!(key(&a) == key(&a), "{n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x80;
                assert!(key(&a) != key(&b), "{n} {i}");
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(key(&a) != key(&longer), "{n}");
        }
    }

    #[test]
    fn debug_shows_no_credential_bytes() {
        let pre = "ab".repeat(32);
        let c = parse(&[&format!("L402 {}:{pre}", b64(M))]);
        let s = format!("{c:?}");
        assert!(!s.contains("abab") && !s.contains(&b64(M)), "{s}");
    }
}
