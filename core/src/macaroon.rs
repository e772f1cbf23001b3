//! The V2 binary macaroon format (libmacaroons' and go-macaroon's `EncodingV2`), decoded as
//! the verifier needs it: borrowed slices of the presented bytes, no copy, no allocation but
//! the caveat list.
//!
//! ```text
//! macaroon = 0x02 [location] identifier EOS *caveat EOS signature
//! caveat   = [location] identifier [vid] EOS        (location and vid together: third party)
//! field    = type(1 byte) length(uvarint, canonical, ≤ 65535) data
//! ```
//!
//! The rules are libmacaroon's (which mints our tokens and decoded them here before issue 18),
//! so a token decodes here exactly when it decodes there: the cross-check tests and the fuzz
//! target hold the two together. Written here rather than taken from libmacaroon so that the
//! edges' Wasm carries no macaroon library, whose minting, V1 and JSON formats and
//! third-party crypto an edge never uses.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::vec::Vec;

const EOS: u8 = 0;
const LOCATION: u8 = 1;
const IDENTIFIER: u8 = 2;
const VID: u8 = 4;
const SIGNATURE: u8 = 6;

/// Longest field accepted (libmacaroon's `MAX_FIELD_SIZE_BYTES`).
const MAX_FIELD: u64 = 65_535;
/// Most caveats one macaroon may carry before it is refused as too large (libmacaroon's
/// `MAX_CAVEATS`; the verifier's own, lower cap applies after decoding).
const MAX_DECODED_CAVEATS: usize = 1000;

/// Why bytes are not a V2 macaroon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Not the format.
    Malformed,
    /// A field or the caveat list over its cap.
    TooLarge,
}

/// One caveat: its identifier (a first-party caveat's predicate), and whether it is
/// third-party (a location and a verifier id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Caveat<'a> {
    pub(crate) id: &'a [u8],
    pub(crate) third_party: bool,
}

/// A decoded macaroon, borrowing the presented bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Macaroon<'a> {
    pub(crate) identifier: &'a [u8],
    pub(crate) caveats: Vec<Caveat<'a>>,
    pub(crate) signature: &'a [u8; 32],
}

impl<'a> Macaroon<'a> {
    /// First-party predicates in order; `None` for a third-party caveat.
    pub(crate) fn predicates(&self) -> impl Iterator<Item = Option<&'a [u8]>> + '_ {
        self.caveats
            .iter()
            .map(|c| (!c.third_party).then_some(c.id))
    }
}

struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.data.get(self.at).ok_or(DecodeError::Malformed)?;
        self.at += 1;
        Ok(b)
    }

    fn eos(&mut self) -> Result<(), DecodeError> {
        match self.byte()? {
            EOS => Ok(()),
            _ => Err(DecodeError::Malformed),
        }
    }

    /// A field's data after its type byte: a canonical uvarint length, then the bytes.
    fn field(&mut self) -> Result<&'a [u8], DecodeError> {
        let mut size: u64 = 0;
        let mut shift = 0u32;
        loop {
            // As libmacaroon on a 64-bit host: at most nine length bytes.
            if shift > 56 {
                return Err(DecodeError::Malformed);
            }
            let b = self.byte()?;
            size |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if b == 0 && shift > 0 {
                    return Err(DecodeError::Malformed);
                }
                break;
            }
            shift += 7;
        }
        if size > MAX_FIELD {
            return Err(DecodeError::TooLarge);
        }
        let end = self.at + size as usize;
        let data = self.data.get(self.at..end).ok_or(DecodeError::Malformed)?;
        self.at = end;
        Ok(data)
    }

    /// A location field, which must be UTF-8 (it is text in every implementation).
    fn location(&mut self) -> Result<(), DecodeError> {
        let loc = self.field()?;
        core::str::from_utf8(loc).map_err(|_| DecodeError::Malformed)?;
        Ok(())
    }
}

/// Decodes a V2 binary macaroon.
pub(crate) fn decode(data: &[u8]) -> Result<Macaroon<'_>, DecodeError> {
    let mut input = Input { data, at: 0 };
    if input.byte()? != 2 {
        return Err(DecodeError::Malformed);
    }
    let mut tag = input.byte()?;
    if tag == LOCATION {
        input.location()?;
        tag = input.byte()?;
    }
    if tag != IDENTIFIER {
        return Err(DecodeError::Malformed);
    }
    let identifier = input.field()?;
    input.eos()?;
    let mut caveats = Vec::new();
    let mut tag = input.byte()?;
    while tag != EOS {
        let has_location = tag == LOCATION;
        if has_location {
            input.location()?;
            tag = input.byte()?;
        }
        if tag != IDENTIFIER {
            return Err(DecodeError::Malformed);
        }
        let id = input.field()?;
        let has_vid = match input.byte()? {
            VID => {
                input.field()?;
                input.eos()?;
                true
            }
            EOS => false,
            _ => return Err(DecodeError::Malformed),
        };
        // A location without a verifier id, or the reverse, is neither kind of caveat.
        if has_location != has_vid {
            return Err(DecodeError::Malformed);
        }
        if caveats.len() >= MAX_DECODED_CAVEATS {
            return Err(DecodeError::TooLarge);
        }
        caveats.push(Caveat {
            id,
            third_party: has_vid,
        });
        tag = input.byte()?;
    }
    if input.byte()? != SIGNATURE {
        return Err(DecodeError::Malformed);
    }
    let signature: &[u8; 32] = input
        .field()?
        .try_into()
        .map_err(|_| DecodeError::Malformed)?;
    if input.at != data.len() || identifier.is_empty() {
        return Err(DecodeError::Malformed);
    }
    Ok(Macaroon {
        identifier,
        caveats,
        signature,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use alloc::vec;

    fn field(tag: u8, data: &[u8], out: &mut Vec<u8>) {
        out.push(tag);
        let mut n = data.len();
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(data);
    }

    fn macaroon(caveats: &[(&[u8], bool)]) -> Vec<u8> {
        let mut m = vec![2];
        field(LOCATION, b"loc", &mut m);
        field(IDENTIFIER, b"id", &mut m);
        m.push(EOS);
        for (id, third) in caveats {
            if *third {
                field(LOCATION, b"elsewhere", &mut m);
            }
            field(IDENTIFIER, id, &mut m);
            if *third {
                field(VID, b"vid", &mut m);
            }
            m.push(EOS);
        }
        m.push(EOS);
        field(SIGNATURE, &[7; 32], &mut m);
        m
    }

    #[test]
    fn decodes_the_format() {
        let bytes = macaroon(&[(b"a = 1", false), (b"tp", true), (b"b = 2", false)]);
        let m = decode(&bytes).unwrap();
        assert_eq!(m.identifier, b"id");
        assert_eq!(m.signature, &[7; 32]);
        let p: Vec<_> = m.predicates().collect();
        assert_eq!(p, [Some(&b"a = 1"[..]), None, Some(&b"b = 2"[..])]);
    }

    #[test]
    fn refuses_what_libmacaroon_refuses() {
        let good = macaroon(&[(b"a", false)]);
        // Truncated anywhere, or with a byte after the signature.
        for n in 0..good.len() {
            assert!(decode(&good[..n]).is_err(), "{n}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(DecodeError::Malformed));
        // V1, a wrong signature length, a non-canonical length, an empty identifier.
        assert_eq!(decode(b"0042location"), Err(DecodeError::Malformed));
        let mut short_sig = good[..good.len() - 34].to_vec();
        field(SIGNATURE, &[7; 31], &mut short_sig);
        assert_eq!(decode(&short_sig), Err(DecodeError::Malformed));
        let noncanonical = [2, IDENTIFIER, 0x81, 0x00, b'x'];
        assert_eq!(decode(&noncanonical), Err(DecodeError::Malformed));
        let mut empty_id = vec![2];
        field(IDENTIFIER, b"", &mut empty_id);
        empty_id.extend_from_slice(&[EOS, EOS]);
        field(SIGNATURE, &[0; 32], &mut empty_id);
        assert_eq!(decode(&empty_id), Err(DecodeError::Malformed));
        // A field over 65535 bytes is too large, not malformed.
        let mut big = vec![2];
        field(IDENTIFIER, &vec![1; 70_000], &mut big);
        assert_eq!(decode(&big), Err(DecodeError::TooLarge));
        let too_many: Vec<(&[u8], bool)> = vec![(b"c", false); MAX_DECODED_CAVEATS + 1];
        assert_eq!(decode(&macaroon(&too_many)), Err(DecodeError::TooLarge));
        // A caveat location without a verifier id.
        let mut half = vec![2];
        field(IDENTIFIER, b"id", &mut half);
        half.push(EOS);
        field(LOCATION, b"l", &mut half);
        field(IDENTIFIER, b"c", &mut half);
        half.extend_from_slice(&[EOS, EOS]);
        field(SIGNATURE, &[0; 32], &mut half);
        assert_eq!(decode(&half), Err(DecodeError::Malformed));
        // A location that is not UTF-8.
        let mut latin = vec![2];
        field(LOCATION, b"\xff", &mut latin);
        field(IDENTIFIER, b"id", &mut latin);
        latin.extend_from_slice(&[EOS, EOS]);
        field(SIGNATURE, &[0; 32], &mut latin);
        assert_eq!(decode(&latin), Err(DecodeError::Malformed));
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        /// Whatever the bytes, this decoder and libmacaroon agree: both refuse, or both read
        /// the same identifier, caveats and signature.
        #[test]
        fn agrees_with_libmacaroon(
            caveats in proptest::collection::vec((proptest::collection::vec(proptest::prelude::any::<u8>(), 0..6), proptest::prelude::any::<bool>()), 0..4),
            cut in proptest::prelude::any::<usize>(),
            flip in proptest::prelude::any::<(usize, u8)>(),
        ) {
            let refs: Vec<(&[u8], bool)> = caveats.iter().map(|(c, t)| (c.as_slice(), *t)).collect();
            let mut bytes = macaroon(&refs);
            let len = bytes.len();
            if cut % 3 == 0 {
                bytes.truncate(cut % (len + 1));
            } else if cut % 3 == 1 && !bytes.is_empty() {
                let i = flip.0 % bytes.len();
                bytes[i] ^= flip.1;
            }
            let ours = decode(&bytes);
            let theirs = libmacaroon::Macaroon::deserialize_binary(&bytes);
            match (&ours, &theirs) {
                (Ok(m), Ok(t)) => {
                    proptest::prop_assert_eq!(m.identifier, t.identifier());
                    let sig = t.signature();
                    proptest::prop_assert_eq!(&m.signature[..], AsRef::<[u8]>::as_ref(&sig));
                    proptest::prop_assert_eq!(m.caveats.len(), t.caveats().len());
                    for (c, tc) in m.caveats.iter().zip(t.caveats()) {
                        match tc.as_first_party() {
                            Some(fp) => proptest::prop_assert_eq!(c.id, fp.predicate()),
                            None => proptest::prop_assert!(c.third_party),
                        }
                    }
                }
                (Err(_), Err(_)) => {}
                _ => proptest::prop_assert!(false, "ours {:?}, libmacaroon {:?}", ours.is_ok(), theirs.is_ok()),
            }
        }
    }
}
