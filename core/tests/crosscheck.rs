//! Cross-check against a second implementation, the `macaroon` crate (libsodium): its tokens
//! verify in core, core's verify there, and a property test over random caveat lists and rings.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    clippy::panic
)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use l402_core::*;
use proptest::prelude::*;

fn other_key(root: &RootKey) -> macaroon::MacaroonKey {
    macaroon::MacaroonKey::generate(root.expose_bytes())
}

/// Mints with the `macaroon` crate, from the same identifier and root key.
fn mint_other(root: &RootKey, identifier: &[u8], caveats: &[String]) -> String {
    macaroon::initialize().unwrap();
    let mut m =
        macaroon::Macaroon::create(Some("lsat".into()), &other_key(root), identifier.into())
            .unwrap();
    for c in caveats {
        m.add_first_party_caveat(c.as_str().into());
    }
    let url = m.serialize(macaroon::Format::V2).unwrap();
    STANDARD.encode(URL_SAFE.decode(url).unwrap())
}

/// Verifies with the `macaroon` crate: signature only (every first-party caveat accepted).
fn verify_other(root: &RootKey, b64: &str) -> bool {
    macaroon::initialize().unwrap();
    let m = macaroon::Macaroon::deserialize(b64).unwrap();
    let mut v = macaroon::Verifier::default();
    v.satisfy_general(|_| true);
    v.verify(&m, &other_key(root), vec![]).is_ok()
}

fn ring_of(n: usize, seed: u8) -> (Keyring, Vec<(u32, [u8; 32])>) {
    let keys: Vec<(u32, [u8; 32])> = (0..n)
        .map(|i| (1000 + i as u32 * 7, [seed.wrapping_add(i as u8); 32]))
        .collect();
    let s = keys
        .iter()
        .map(|(id, k)| format!("{id}:{}", hex::encode(k)))
        .collect::<Vec<_>>()
        .join(",");
    (s.parse().unwrap(), keys)
}

fn authorization(b64: &str, preimage: &Preimage) -> Credentials {
    Credentials::from_headers([(
        "Authorization",
        format!("L402 {b64}:{}", preimage.expose_hex()),
    )])
}

#[test]
fn both_directions_on_an_aperture_token() {
    let (ring, _) = ring_of(3, 40);
    let preimage = Preimage::from_bytes([9; 32]);
    let entry = ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 2,
        capabilities: vec!["read".into()],
        lifetime_secs: Some(3600),
        allowance: None,
    };
    let ours = mint(&ring, preimage.payment_hash(), [1; 28], &entry, 1_000).unwrap();
    let root = ring.root_key(&ours.identifier.token_id).unwrap();
    assert!(verify_other(&root, &ours.macaroon_b64));
    let caveats = inspect(&ours.macaroon_b64).unwrap().caveats;
    let theirs = mint_other(&root, &ours.identifier.encode(), &caveats);
    assert_eq!(theirs, ours.macaroon_b64, "same inputs, same bytes");
    let v = Verifier::new(ring);
    let req = Request {
        service: "weather",
        capabilities: "read",
        now: 2_000,
        client_ip: None,
    };
    let a = v
        .verify(&authorization(&theirs, &preimage), &req, &NoDenyList)
        .unwrap();
    assert_eq!(
        (a.tier(), a.expires_at(), a.capabilities()),
        (2, Some(4_600), Some(vec!["read"]))
    );
}

fn caveat_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("services=svc:0".to_owned()),
        Just("services=svc:1,other:0".to_owned()),
        Just("svc_capabilities=read,write".to_owned()),
        (1u64..4_000_000_000).prop_map(|t| format!("svc_valid_until={t}")),
        "[a-z]{1,8}=[ -~]{0,16}",
        "[ -~]{0,24}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random caveat lists under random rings: the two implementations agree on the bytes,
    /// each verifies the other's signature, and core's decision never depends on which one
    /// minted the token.
    #[test]
    fn implementations_agree(
        caveats in prop::collection::vec(caveat_strategy(), 0..12),
        ring_size in 1usize..6,
        seed in any::<u8>(),
        pick in any::<prop::sample::Index>(),
        random in any::<[u8; 28]>(),
        preimage in any::<[u8; 32]>(),
        now in 0u64..4_100_000_000,
    ) {
        let (ring, keys) = ring_of(ring_size, seed);
        let preimage = Preimage::from_bytes(preimage);
        // Mint under any key of the ring, not only the current one.
        let (kid, _) = keys[pick.index(keys.len())];
        let token_id = TokenId::new(KeyId(kid), random);
        let root = ring.root_key(&token_id).unwrap();
        let identifier = Identifier { payment_hash: preimage.payment_hash(), token_id }.encode();
        let ours = sign(&root, &identifier, &caveats).unwrap();
        let theirs = mint_other(&root, &identifier, &caveats);
        prop_assert_eq!(&ours, &theirs);
        prop_assert!(verify_other(&root, &ours));

        let v = Verifier::new(ring);
        let req = Request { service: "svc", capabilities: "read", now, client_ip: None };
        let decision = v.verify(&authorization(&theirs, &preimage), &req, &NoDenyList).map(|a| *a.token_id());
        // The decision is the caveat rules' alone: bad_signature etc. never appear here.
        if let Err(r) = &decision {
            prop_assert!(matches!(r.reason,
                Reason::ServiceNotAllowed | Reason::TokenExpired | Reason::CapabilityMissing | Reason::UnsupportedCaveat),
                "{:?}", r);
        }
        // A wrong key in the other implementation's verify is refused by both.
        let wrong = RootKey::from_bytes([seed ^ 0xff; 32]);
        prop_assert!(!verify_other(&wrong, &ours));
    }
}
