//! The attack matrix: each hostile credential is rejected with its exact reason, and the
//! verified-credential cache never turns a rejection into a pass.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    clippy::panic
)]

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use l402_core::*;

const K7: &str = "7:0707070707070707070707070707070707070707070707070707070707070707";
const K8: &str = "8:0808080808080808080808080808080808080808080808080808080808080808";
const NOW: u64 = 1_800_000_000;

struct Fixture {
    verifier: Verifier,
    preimage: Preimage,
    b64: String,
    token_id: TokenId,
}

fn entry() -> ServiceEntry {
    ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 1,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(3600),
        allowance: None,
    }
}

fn fixture() -> Fixture {
    let ring: Keyring = format!("{K7},{K8}").parse().unwrap();
    let preimage = Preimage::from_bytes([0x42; 32]);
    let minted = mint(&ring, preimage.payment_hash(), [5; 28], &entry(), NOW).unwrap();
    Fixture {
        verifier: Verifier::new(ring),
        preimage,
        b64: minted.macaroon_b64,
        token_id: minted.identifier.token_id,
    }
}

impl Fixture {
    fn auth(&self, b64: &str) -> String {
        format!("L402 {b64}:{}", self.preimage.expose_hex())
    }

    fn check_headers(&self, headers: &[(&str, &str)], caps: &str) -> Result<Authorized, Reason> {
        let creds = Credentials::from_headers(headers.iter().copied());
        let req = Request {
            service: "weather",
            capabilities: caps,
            now: NOW,
            client_ip: None,
        };
        self.verifier
            .verify(&creds, &req, &NoDenyList)
            .map_err(|r| r.reason)
    }

    fn check(&self, authorization: &str) -> Result<Authorized, Reason> {
        self.check_headers(&[("Authorization", authorization)], "")
    }

    fn raw(&self) -> Vec<u8> {
        STANDARD.decode(&self.b64).unwrap()
    }
}

fn reason(r: Result<Authorized, Reason>) -> Reason {
    r.expect_err("must be rejected")
}

/// Offset of the identifier's first byte in the V2 binary: version, location field, tag, len.
fn identifier_offset(raw: &[u8]) -> usize {
    // 0x02, 0x01 <len=4> "lsat", 0x02 <len=66>
    assert_eq!(&raw[..7], &[2, 1, 4, b'l', b's', b'a', b't']);
    assert_eq!(&raw[7..9], &[2, 66]);
    9
}

#[test]
fn the_valid_token_passes() {
    let f = fixture();
    let a = f.check(&f.auth(&f.b64)).unwrap();
    assert_eq!(*a.token_id(), f.token_id);
    assert_eq!(
        (a.service(), a.tier(), a.key_id()),
        ("weather", 1, KeyId(7))
    );
    assert_eq!(a.source(), Source::L402);
}

#[test]
fn tampered_signature() {
    let f = fixture();
    let mut raw = f.raw();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    assert_eq!(
        reason(f.check(&f.auth(&STANDARD.encode(&raw)))),
        Reason::BadSignature
    );
}

#[test]
fn flipped_identifier_bits() {
    let f = fixture();
    let off = identifier_offset(&f.raw());
    let flip = |i: usize| {
        let mut raw = f.raw();
        raw[off + i] ^= 0x01;
        reason(f.check(&f.auth(&STANDARD.encode(&raw))))
    };
    assert_eq!(flip(1), Reason::UnsupportedVersion, "version");
    assert_eq!(flip(2), Reason::WrongPreimage, "payment hash");
    assert_eq!(flip(2 + 32 + 3), Reason::UnknownKey, "key id 7 -> 6");
    assert_eq!(flip(2 + 32), Reason::UnknownKey, "key id high byte");
    assert_eq!(
        flip(2 + 32 + 10),
        Reason::BadSignature,
        "token id random part"
    );
}

#[test]
fn key_id_moved_to_another_key_in_the_ring() {
    let f = fixture();
    let off = identifier_offset(&f.raw());
    let mut raw = f.raw();
    raw[off + 2 + 32 + 3] = 8; // 7 -> 8, a key the ring holds
    assert_eq!(
        reason(f.check(&f.auth(&STANDARD.encode(&raw)))),
        Reason::BadSignature
    );
}

#[test]
fn wrong_preimage() {
    let f = fixture();
    let other = "43".repeat(32);
    assert_eq!(
        reason(f.check(&format!("L402 {}:{other}", f.b64))),
        Reason::WrongPreimage
    );
}

/// Rebuilds the token with these caveats but the original signature: a tampered token.
fn with_caveats_same_signature(f: &Fixture, caveats: &[&str]) -> String {
    let ins = inspect(&f.b64).unwrap();
    let bogus_root = RootKey::from_bytes([0; 32]);
    let resigned = sign(&bogus_root, &ins.identifier.encode(), caveats).unwrap();
    let mut raw = STANDARD.decode(resigned).unwrap();
    let n = raw.len();
    raw[n - 32..].copy_from_slice(&hex::decode(&ins.signature_hex).unwrap());
    STANDARD.encode(raw)
}

#[test]
fn removed_and_reordered_and_edited_caveats() {
    let f = fixture();
    let cav = inspect(&f.b64).unwrap().caveats;
    let c: Vec<&str> = cav.iter().map(String::as_str).collect();
    assert_eq!(c.len(), 3);
    let removed = with_caveats_same_signature(&f, &c[..2]);
    assert_eq!(reason(f.check(&f.auth(&removed))), Reason::BadSignature);
    let reordered = with_caveats_same_signature(&f, &[c[1], c[0], c[2]]);
    assert_eq!(reason(f.check(&f.auth(&reordered))), Reason::BadSignature);
    let edited = with_caveats_same_signature(&f, &[c[0], "weather_capabilities=read,admin", c[2]]);
    assert_eq!(reason(f.check(&f.auth(&edited))), Reason::BadSignature);
    // The untouched rebuild is the original: the helper itself changes nothing else.
    assert_eq!(with_caveats_same_signature(&f, &c), f.b64);
}

#[test]
fn appended_caveats_only_narrow() {
    let f = fixture();
    // A client may append; widening appended caveats change nothing.
    let wide = attenuate(&f.b64, "services=weather:1,maps:0").unwrap();
    let maps = Credentials::from_headers([("Authorization", f.auth(&wide))]);
    let req = Request {
        service: "maps",
        capabilities: "",
        now: NOW,
        client_ip: None,
    };
    assert_eq!(
        f.verifier
            .verify(&maps, &req, &NoDenyList)
            .unwrap_err()
            .reason,
        Reason::ServiceNotAllowed
    );
    let caps = attenuate(&f.b64, "weather_capabilities=read,admin").unwrap();
    assert_eq!(
        reason(f.check_headers(&[("Authorization", &f.auth(&caps))], "admin")),
        Reason::CapabilityMissing
    );
    let later = attenuate(&f.b64, &format!("weather_valid_until={}", NOW + 999_999)).unwrap();
    let creds = Credentials::from_headers([("Authorization", f.auth(&later))]);
    let req = Request {
        service: "weather",
        capabilities: "",
        now: NOW + 3600,
        client_ip: None,
    };
    assert_eq!(
        f.verifier
            .verify(&creds, &req, &NoDenyList)
            .unwrap_err()
            .reason,
        Reason::TokenExpired
    );
    // Narrowing ones hold.
    let narrow = attenuate(&f.b64, "weather_capabilities=").unwrap();
    assert_eq!(
        reason(f.check_headers(&[("Authorization", &f.auth(&narrow))], "read")),
        Reason::CapabilityMissing
    );
    assert!(f.check(&f.auth(&narrow)).is_ok());
    let gone = attenuate(&f.b64, "services=maps:0").unwrap();
    assert_eq!(reason(f.check(&f.auth(&gone))), Reason::ServiceNotAllowed);
    let unknown = attenuate(&f.b64, "weather_ip=10.0.0.1").unwrap();
    assert_eq!(
        reason(f.check(&f.auth(&unknown))),
        Reason::UnsupportedCaveat
    );
    let bare = attenuate(&f.b64, "time < 2030").unwrap();
    assert_eq!(reason(f.check(&f.auth(&bare))), Reason::UnsupportedCaveat);
}

#[test]
fn expired_and_other_service() {
    let f = fixture();
    let creds = Credentials::from_headers([("Authorization", f.auth(&f.b64))]);
    let late = Request {
        service: "weather",
        capabilities: "",
        now: NOW + 3600,
        client_ip: None,
    };
    assert_eq!(
        f.verifier
            .verify(&creds, &late, &NoDenyList)
            .unwrap_err()
            .reason,
        Reason::TokenExpired
    );
    let just_before = Request {
        now: NOW + 3599,
        client_ip: None,
        ..late
    };
    assert!(f.verifier.verify(&creds, &just_before, &NoDenyList).is_ok());
    let other = Request {
        service: "maps",
        capabilities: "",
        now: NOW,
        client_ip: None,
    };
    assert_eq!(
        f.verifier
            .verify(&creds, &other, &NoDenyList)
            .unwrap_err()
            .reason,
        Reason::ServiceNotAllowed
    );
    assert_eq!(
        reason(f.check_headers(&[("Authorization", &f.auth(&f.b64))], "write")),
        Reason::CapabilityMissing
    );
}

#[test]
fn unknown_and_removed_keys() {
    let f = fixture();
    let stranger: Keyring = "9:0909090909090909090909090909090909090909090909090909090909090909"
        .parse()
        .unwrap();
    let foreign = mint(&stranger, f.preimage.payment_hash(), [1; 28], &entry(), NOW).unwrap();
    assert_eq!(
        reason(f.check(&f.auth(&foreign.macaroon_b64))),
        Reason::UnknownKey
    );
    // Key 7 rotated out: its tokens die, key 8's live.
    let rotated = Verifier::new(K8.parse().unwrap());
    let creds = Credentials::from_headers([("Authorization", f.auth(&f.b64))]);
    let req = Request {
        service: "weather",
        capabilities: "",
        now: NOW,
        client_ip: None,
    };
    assert_eq!(
        rotated
            .verify(&creds, &req, &NoDenyList)
            .unwrap_err()
            .reason,
        Reason::UnknownKey
    );
    let under8 = mint(
        &K8.parse().unwrap(),
        f.preimage.payment_hash(),
        [1; 28],
        &entry(),
        NOW,
    )
    .unwrap();
    assert!(f.check(&f.auth(&under8.macaroon_b64)).is_ok());
    // Same key id, different secret: a forgery.
    let forged_ring: Keyring = "7:0000000000000000000000000000000000000000000000000000000000000001"
        .parse()
        .unwrap();
    let forged = mint(
        &forged_ring,
        f.preimage.payment_hash(),
        [1; 28],
        &entry(),
        NOW,
    )
    .unwrap();
    assert_eq!(
        reason(f.check(&f.auth(&forged.macaroon_b64))),
        Reason::BadSignature
    );
}

#[test]
fn revoked() {
    let f = fixture();
    let creds = Credentials::from_headers([("Authorization", f.auth(&f.b64))]);
    let req = Request {
        service: "weather",
        capabilities: "",
        now: NOW,
        client_ip: None,
    };
    let deny: HashSet<TokenId> = [f.token_id].into();
    assert_eq!(
        f.verifier.verify(&creds, &req, &deny).unwrap_err().reason,
        Reason::Revoked
    );
    let other: &[TokenId] = &[TokenId([0; 32])];
    assert!(f.verifier.verify(&creds, &req, other).is_ok());
}

#[test]
fn encoding_attacks() {
    let f = fixture();
    let pre = f.preimage.expose_hex();
    for (what, v) in [
        ("invalid base64", format!("L402 {}!!:{pre}", &f.b64[..40])),
        (
            "non-hex preimage",
            format!("L402 {}:{}", f.b64, "zz".repeat(32)),
        ),
        ("short preimage", format!("L402 {}:{}", f.b64, &pre[..62])),
        ("no macaroon", format!("L402 :{pre}")),
        ("NUL byte", format!("L402 {}\0:{pre}", f.b64)),
        ("CR LF", format!("L402 {}\r\nX-Evil: 1:{pre}", f.b64)),
        (
            "truncated macaroon",
            format!("L402 {}:{pre}", &f.b64[..f.b64.len() - 8]),
        ),
        (
            "V1 macaroon",
            format!(
                "L402 {}:{pre}",
                URL_SAFE_NO_PAD.encode(b"0014location lsat\n")
            ),
        ),
        (
            "JSON macaroon",
            format!("L402 {}:{pre}", STANDARD.encode(br#"{"v":2}"#)),
        ),
    ] {
        assert_eq!(reason(f.check(&v)), Reason::MalformedCredential, "{what}");
    }
    let non_utf8: &[u8] = b"L402 \xc3\x28:00";
    let creds = Credentials::from_headers([("authorization", non_utf8)]);
    let req = Request {
        service: "weather",
        capabilities: "",
        now: NOW,
        client_ip: None,
    };
    assert_eq!(
        f.verifier
            .verify(&creds, &req, &NoDenyList)
            .unwrap_err()
            .reason,
        Reason::MalformedCredential
    );
    // Preimage only in a caveat that is not there: nothing binds the payment.
    let raw = f.raw();
    assert_eq!(
        reason(f.check_headers(&[("Macaroon", &hex::encode(raw))], "")),
        Reason::MalformedCredential
    );
}

#[test]
fn size_attacks() {
    let f = fixture();
    let pre = f.preimage.expose_hex();
    let huge = format!("L402 {}:{pre}", "A".repeat(60 * 1024));
    assert_eq!(reason(f.check(&huge)), Reason::CredentialTooLarge);
    let many = format!("L402 {}:{pre}", vec![f.b64.as_str(); 300].join(","));
    assert_eq!(reason(f.check(&many)), Reason::CredentialTooLarge);
    // 1,000 caveats (over the byte cap) and 65 caveats (under it, over the caveat cap).
    let mut thousand = f.b64.clone();
    for i in 0..997 {
        // 3 minted + 997 = 1,000, libmacaroon's own ceiling.
        thousand = attenuate(
            &thousand,
            &format!("weather_valid_until={}", 4_000_000_000u64 + i),
        )
        .unwrap();
    }
    assert_eq!(
        reason(f.check(&f.auth(&thousand))),
        Reason::CredentialTooLarge
    );
    // 1,000 one-byte caveats fit under the byte cap: the caveat cap catches them.
    let mut tiny = f.b64.clone();
    for _ in 0..997 {
        tiny = attenuate(&tiny, "x").unwrap();
    }
    assert!(f.auth(&tiny).len() < MAX_CREDENTIAL_BYTES);
    assert_eq!(reason(f.check(&f.auth(&tiny))), Reason::CredentialTooLarge);
    let mut sixty_five = f.b64.clone();
    for _ in 0..(MAX_CAVEATS + 1 - 3) {
        sixty_five = attenuate(&sixty_five, "services=weather:1").unwrap();
    }
    assert!(sixty_five.len() < MAX_CREDENTIAL_BYTES);
    assert_eq!(
        reason(f.check(&f.auth(&sixty_five))),
        Reason::CredentialTooLarge
    );
    let mut at_cap = f.b64.clone();
    for _ in 0..(MAX_CAVEATS - 3) {
        at_cap = attenuate(&at_cap, "services=weather:1").unwrap();
    }
    assert!(f.check(&f.auth(&at_cap)).is_ok());
    let split: Vec<String> = (0..40).map(|_| "x".repeat(1000)).collect();
    let headers: Vec<(&str, &str)> = split
        .iter()
        .map(|v| ("Authorization", v.as_str()))
        .collect();
    assert_eq!(
        reason(f.check_headers(&headers, "")),
        Reason::CredentialTooLarge
    );
}

#[test]
fn third_party_caveat() {
    let f = fixture();
    let ring: Keyring = K7.parse().unwrap();
    let ins = inspect(&f.b64).unwrap();
    let root = ring.root_key(&ins.identifier.token_id).unwrap();
    let key = libmacaroon::MacaroonKey::generate(root.expose_bytes());
    let mut m = libmacaroon::Macaroon::create(Some("lsat"), &key, ins.identifier.encode()).unwrap();
    for c in &ins.caveats {
        m.add_first_party_caveat(c.as_str()).unwrap();
    }
    m.add_third_party_caveat(
        "https://auth.example",
        &libmacaroon::MacaroonKey::generate(b"tp"),
        "cav",
    )
    .unwrap();
    let url = m.serialize(libmacaroon::Format::V2).unwrap();
    let b64 = STANDARD.encode(
        base64::engine::general_purpose::URL_SAFE
            .decode(url)
            .unwrap(),
    );
    assert_eq!(reason(f.check(&f.auth(&b64))), Reason::UnsupportedCaveat);
}

#[test]
fn empty_and_foreign_inputs() {
    let f = fixture();
    assert_eq!(reason(f.check_headers(&[], "")), Reason::MissingCredential);
    assert_eq!(reason(f.check("")), Reason::MissingCredential);
    assert_eq!(
        reason(f.check("Bearer abc.def.ghi")),
        Reason::MissingCredential
    );
    assert_eq!(reason(f.check("L402")), Reason::MalformedCredential);
    assert_eq!(reason(f.check("L402 ")), Reason::MalformedCredential);
}

#[test]
fn first_credential_that_verifies_wins() {
    let f = fixture();
    let good = f.auth(&f.b64);
    let bad = format!("L402 {}:{}", f.b64, "00".repeat(32));
    // Bad then good, good then bad: in one value, or in separate values.
    assert!(f.check(&format!("{bad}, {good}")).is_ok());
    assert!(f.check(&format!("{good}, {bad}")).is_ok());
    assert!(
        f.check_headers(&[("Authorization", &bad), ("Authorization", &good)], "")
            .is_ok()
    );
    assert!(
        f.check_headers(
            &[("Authorization", "Bearer x"), ("Authorization", &good)],
            ""
        )
        .is_ok()
    );
    // Macaroon list: a garbage entry before the real one.
    let list = format!("L402 AgEE,{}:{}", f.b64, f.preimage.expose_hex());
    assert!(f.check(&list).is_ok());
    // All bad: the first one's reason.
    let expired_like = format!("L402 {}!:{}", &f.b64[..10], f.preimage.expose_hex());
    assert_eq!(
        reason(f.check(&format!("{bad}, {expired_like}"))),
        Reason::WrongPreimage
    );
    assert_eq!(
        reason(f.check(&format!("{expired_like}, {bad}"))),
        Reason::MalformedCredential
    );
}

#[test]
fn accepted_variants() {
    let f = fixture();
    let pre = f.preimage.expose_hex();
    let raw = f.raw();
    let url = base64::engine::general_purpose::URL_SAFE.encode(&raw);
    for v in [
        format!("LSAT {}:{pre}", f.b64),
        format!("l402   {}:{}", f.b64, pre.to_uppercase()),
        format!("L402 {}:{pre}", f.b64.trim_end_matches('=')),
        format!("L402 {url}:{pre}"),
        format!("L402 {}:{pre}", URL_SAFE_NO_PAD.encode(&raw)),
    ] {
        assert!(f.check(&v).is_ok(), "{v}");
    }
    // The preimage caveat, lnget style, in both header forms.
    let with_pre = attenuate(&f.b64, &format!("preimage={pre}")).unwrap();
    let hexed = hex::encode(STANDARD.decode(&with_pre).unwrap());
    assert!(
        f.check_headers(&[("Grpc-Metadata-Macaroon", &hexed)], "")
            .is_ok()
    );
    assert!(f.check(&f.auth(&with_pre)).is_ok());
    assert_eq!(
        f.check_headers(&[("macaroon", &hexed)], "")
            .unwrap()
            .source(),
        Source::MacaroonHeader
    );
}

#[test]
fn cache_hits_skip_the_chain_but_not_the_request_checks() {
    let f = fixture();
    let mut cache = VerifiedCache::new(16);
    let creds = Credentials::from_headers([("Authorization", f.auth(&f.b64))]);
    let req = Request {
        service: "weather",
        capabilities: "read",
        now: NOW,
        client_ip: None,
    };
    assert!(
        f.verifier
            .verify_cached(&creds, &req, &NoDenyList, &mut cache)
            .is_ok()
    );
    assert!(
        f.verifier
            .verify_cached(&creds, &req, &NoDenyList, &mut cache)
            .is_ok()
    );
    assert_eq!(cache.stats(), (1, 1));
    assert_eq!(cache.len(), 1);
    // Every request-dependent check still runs on a hit.
    let deny: HashSet<TokenId> = [f.token_id].into();
    assert_eq!(
        f.verifier
            .verify_cached(&creds, &req, &deny, &mut cache)
            .unwrap_err()
            .reason,
        Reason::Revoked
    );
    let maps = Request {
        service: "maps",
        ..req
    };
    assert_eq!(
        f.verifier
            .verify_cached(&creds, &maps, &NoDenyList, &mut cache)
            .unwrap_err()
            .reason,
        Reason::ServiceNotAllowed
    );
    let admin = Request {
        capabilities: "admin",
        ..req
    };
    assert_eq!(
        f.verifier
            .verify_cached(&creds, &admin, &NoDenyList, &mut cache)
            .unwrap_err()
            .reason,
        Reason::CapabilityMissing
    );
    assert_eq!(cache.stats(), (4, 1));
    // At expiry the entry leaves, and the answer is the full verifier's.
    let late = Request {
        now: NOW + 3600,
        client_ip: None,
        ..req
    };
    assert_eq!(
        f.verifier
            .verify_cached(&creds, &late, &NoDenyList, &mut cache)
            .unwrap_err()
            .reason,
        Reason::TokenExpired
    );
    assert_eq!(cache.len(), 0);
    // A rejected credential is never cached; a different preimage is a different key.
    let bad = Credentials::from_headers([(
        "Authorization",
        format!("L402 {}:{}", f.b64, "00".repeat(32)),
    )]);
    assert_eq!(
        f.verifier
            .verify_cached(&bad, &req, &NoDenyList, &mut cache)
            .unwrap_err()
            .reason,
        Reason::WrongPreimage
    );
    assert_eq!(cache.len(), 0);
    // Size 0 turns it off.
    let mut off = VerifiedCache::new(0);
    assert!(
        f.verifier
            .verify_cached(&creds, &req, &NoDenyList, &mut off)
            .is_ok()
    );
    assert_eq!(off.len(), 0);
}

#[test]
fn cache_is_keyed_by_the_credential_as_presented() {
    let f = fixture();
    let mut cache = VerifiedCache::new(16);
    let req = Request {
        service: "weather",
        capabilities: "read",
        now: NOW,
        client_ip: None,
    };
    let pre = f.preimage.expose_hex();
    let raw = f.raw();
    let mut verify = |headers: &[(&str, &str)]| {
        let creds = Credentials::from_headers(headers.iter().copied());
        f.verifier
            .verify_cached(&creds, &req, &NoDenyList, &mut cache)
            .map(|_| ())
            .map_err(|r| r.reason)
    };
    // One token in several spellings: an entry each, answered from the cache the second time.
    let mut spellings = vec![
        f.b64.clone(),
        STANDARD.encode(&raw),
        STANDARD.encode(&raw).trim_end_matches('=').to_owned(),
        URL_SAFE_NO_PAD.encode(&raw),
    ];
    spellings.sort();
    spellings.dedup();
    let d = spellings.len() as u64;
    assert!(d >= 2, "the fixture's spellings should differ");
    for _ in 0..2 {
        for m in &spellings {
            assert!(verify(&[("Authorization", &format!("L402 {m}:{pre}"))]).is_ok());
        }
    }
    // A malformed macaroon is refused when judged, in its turn: first success still wins.
    let junk = format!("L402 !!!!:{pre}");
    assert_eq!(
        verify(&[("Authorization", &junk)]),
        Err(Reason::MalformedCredential)
    );
    assert!(verify(&[("Authorization", &junk), ("Authorization", &f.auth(&f.b64))]).is_ok());
    // The same text as hex (Macaroon header) and as base64 (Authorization) is two credentials:
    // the one cached from the header never answers the other.
    let with_pre = attenuate(&f.b64, &format!("preimage={pre}")).unwrap();
    let hexed = hex::encode(STANDARD.decode(&with_pre).unwrap());
    assert!(verify(&[("Macaroon", &hexed)]).is_ok());
    assert!(verify(&[("Macaroon", &hexed)]).is_ok());
    assert_eq!(
        verify(&[("Authorization", &format!("L402 {hexed}:{pre}"))]),
        Err(Reason::MalformedCredential)
    );
    assert_eq!(cache.len() as u64, d + 1);
    // Hits: the spellings' second round, the genuine token after the junk, the header again.
    // Misses: each spelling's first time, the junk twice, the header's first, the base64 read.
    assert_eq!(cache.stats(), (d + 2, d + 4));
}

#[test]
fn cache_is_bounded() {
    let f = fixture();
    let ring: Keyring = K7.parse().unwrap();
    let mut cache = VerifiedCache::new(4);
    let req = Request {
        service: "weather",
        capabilities: "",
        now: NOW,
        client_ip: None,
    };
    for i in 0..10u8 {
        let m = mint(&ring, f.preimage.payment_hash(), [i; 28], &entry(), NOW).unwrap();
        let creds = Credentials::from_headers([("Authorization", f.auth(&m.macaroon_b64))]);
        assert!(
            f.verifier
                .verify_cached(&creds, &req, &NoDenyList, &mut cache)
                .is_ok()
        );
    }
    assert_eq!(cache.len(), 4);
}
