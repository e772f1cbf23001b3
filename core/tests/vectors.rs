//! The token vectors in `core/testdata/tokens.json`, made by pymacaroons (an independent
//! implementation) with `core/testdata/generate_tokens.py`, reproduced byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    clippy::panic
)]

use l402_core::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    tokens: Vec<Vector>,
    raw_macaroon: Raw,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    key_id: u32,
    token_id_hex: String,
    root_key_hex: String,
    preimage_hex: String,
    payment_hash_hex: String,
    identifier_hex: String,
    caveats: Vec<String>,
    signature_hex: String,
    macaroon_b64: String,
    authorization: String,
    keyring: String,
    checks: Vec<Check>,
}

#[derive(Deserialize)]
struct Check {
    service: String,
    capabilities: Vec<String>,
    now: u64,
    expect: String,
}

#[derive(Deserialize)]
struct Raw {
    root_key_hex: String,
    identifier_hex: String,
    caveats: Vec<String>,
    signature_hex: String,
    macaroon_b64: String,
}

fn load() -> File {
    serde_json::from_str(include_str!("../testdata/tokens.json")).unwrap()
}

fn arr32(h: &str) -> [u8; 32] {
    hex::decode(h).unwrap().try_into().unwrap()
}

#[test]
fn every_vector_is_reproduced_byte_for_byte_from_its_inputs() {
    let file = load();
    assert_eq!(file.tokens.len(), 5);
    for v in &file.tokens {
        let ring: Keyring = v.keyring.parse().unwrap();
        let token_id = TokenId::from_hex(&v.token_id_hex).unwrap();
        assert_eq!(token_id.key_id(), KeyId(v.key_id), "{}", v.name);
        assert_eq!(
            hex::encode(ring.root_key(&token_id).unwrap().expose_bytes()),
            v.root_key_hex,
            "{}",
            v.name
        );
        let preimage = Preimage::from_hex(&v.preimage_hex).unwrap();
        assert_eq!(
            preimage.payment_hash().to_hex(),
            v.payment_hash_hex,
            "{}",
            v.name
        );
        let random: [u8; 28] = token_id.0[4..].try_into().unwrap();
        let minted = mint_with_caveats(
            &ring,
            PaymentHash::from_hex(&v.payment_hash_hex).unwrap(),
            random,
            &v.caveats,
        )
        .unwrap();
        assert_eq!(
            hex::encode(minted.identifier.encode()),
            v.identifier_hex,
            "{}",
            v.name
        );
        assert_eq!(minted.macaroon_b64, v.macaroon_b64, "{}", v.name);
        let inspected = inspect(&v.macaroon_b64).unwrap();
        assert_eq!(inspected.signature_hex, v.signature_hex, "{}", v.name);
        assert_eq!(inspected.caveats, v.caveats, "{}", v.name);
        assert_eq!(inspected.location.as_deref(), Some("lsat"));
    }
}

#[test]
fn aperture_style_vector_is_what_mint_writes_for_a_catalog_entry() {
    let file = load();
    let v = file
        .tokens
        .iter()
        .find(|v| v.name == "aperture_style_three_caveats")
        .unwrap();
    let ring: Keyring = v.keyring.parse().unwrap();
    let token_id = TokenId::from_hex(&v.token_id_hex).unwrap();
    let entry = ServiceEntry {
        name: "weather".parse().unwrap(),
        tier: 0,
        capabilities: vec![],
        lifetime_secs: Some(4102444800 - 1_000_000_000),
        allowance: None,
    };
    let minted = mint(
        &ring,
        PaymentHash::from_hex(&v.payment_hash_hex).unwrap(),
        token_id.0[4..].try_into().unwrap(),
        &entry,
        1_000_000_000,
    )
    .unwrap();
    assert_eq!(minted.macaroon_b64, v.macaroon_b64);
    assert_eq!(minted.expires_at, Some(4102444800));
}

#[test]
fn raw_macaroon_from_its_root_key() {
    let raw = load().raw_macaroon;
    let root = RootKey::from_bytes(arr32(&raw.root_key_hex));
    let b64 = sign(
        &root,
        &hex::decode(&raw.identifier_hex).unwrap(),
        &raw.caveats,
    )
    .unwrap();
    assert_eq!(b64, raw.macaroon_b64);
    assert_eq!(inspect(&b64).unwrap().signature_hex, raw.signature_hex);
}

#[test]
fn every_vector_check_decides_as_named() {
    for v in &load().tokens {
        let verifier = Verifier::new(v.keyring.parse().unwrap());
        let creds = Credentials::from_headers([("Authorization", v.authorization.as_str())]);
        for c in &v.checks {
            let caps = c.capabilities.join(",");
            let req = Request {
                service: &c.service,
                capabilities: &caps,
                now: c.now,
                client_ip: None,
            };
            let got = match verifier.verify(&creds, &req, &NoDenyList) {
                Ok(a) => {
                    assert_eq!(a.token_id().to_hex(), v.token_id_hex);
                    assert_eq!(a.service(), c.service);
                    "authorized".to_owned()
                }
                Err(r) => r.reason.as_str().to_owned(),
            };
            assert_eq!(
                got, c.expect,
                "{} {:?} {:?} {}",
                v.name, c.service, c.capabilities, c.now
            );
        }
    }
}

#[test]
fn lnget_preimage_caveat_passes_and_rejects_when_it_disagrees() {
    let file = load();
    let v = file
        .tokens
        .iter()
        .find(|v| v.name == "lnget_preimage_caveat")
        .unwrap();
    let verifier = Verifier::new(v.keyring.parse().unwrap());
    let req = Request {
        service: "weather",
        capabilities: "",
        now: 1_800_000_000,
        client_ip: None,
    };
    // As lnget/gRPC send it: hex in a Macaroon header, the preimage only in the caveat.
    let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &v.macaroon_b64)
        .unwrap();
    for header in ["Macaroon", "Grpc-Metadata-Macaroon"] {
        let creds = Credentials::from_headers([(header, hex::encode(&raw))]);
        assert!(
            verifier.verify(&creds, &req, &NoDenyList).is_ok(),
            "{header}"
        );
    }
    // And inside Authorization, where the caveat must agree with the presented preimage.
    let creds = Credentials::from_headers([("Authorization", v.authorization.as_str())]);
    assert!(verifier.verify(&creds, &req, &NoDenyList).is_ok());
    let other = "07".repeat(32);
    let wrong = format!("L402 {}:{other}", v.macaroon_b64);
    let creds = Credentials::from_headers([("Authorization", wrong)]);
    assert_eq!(
        verifier
            .verify(&creds, &req, &NoDenyList)
            .unwrap_err()
            .reason,
        Reason::WrongPreimage
    );
    // A caveat that disagrees with the (correct) presented preimage: appended by a client,
    // so the signature holds and only the caveat rule can catch it.
    let disagreeing = attenuate(&v.macaroon_b64, &format!("preimage={other}")).unwrap();
    let creds = Credentials::from_headers([(
        "Authorization",
        format!("L402 {disagreeing}:{}", v.preimage_hex),
    )]);
    assert_eq!(
        verifier
            .verify(&creds, &req, &NoDenyList)
            .unwrap_err()
            .reason,
        Reason::WrongPreimage
    );
}
