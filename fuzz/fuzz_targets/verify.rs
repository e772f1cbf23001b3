//! Full verification on arbitrary credentials, seeded with real tokens: never panics, and
//! nothing but the one genuine token under the fuzz keyring is ever authorized for free.
#![no_main]

use std::sync::OnceLock;

use l402_core::{
    Credentials, Keyring, NoDenyList, Preimage, Request, ServiceEntry, VerifiedCache, Verifier,
    mint,
};
use libfuzzer_sys::fuzz_target;

const KEYS: &str = "7:0707070707070707070707070707070707070707070707070707070707070707";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| Verifier::new(KEYS.parse::<Keyring>().unwrap()))
}

/// The token the seed corpus carries (see `fuzz/seeds.sh`): the fuzzer mutates around it.
fn genuine() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        let ring: Keyring = KEYS.parse().unwrap();
        let entry = ServiceEntry {
            name: "weather".parse().unwrap(),
            tier: 0,
            capabilities: vec!["read".into()],
            lifetime_secs: Some(3600),
            allowance: None,
        };
        let p = Preimage::from_bytes([0x42; 32]);
        mint(&ring, p.payment_hash(), [1; 28], &entry, 1_800_000_000)
            .map(|m| m.macaroon_b64)
            .unwrap_or_default()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let name = match selector % 3 {
        0 => "authorization",
        1 => "macaroon",
        _ => "grpc-metadata-macaroon",
    };
    let creds = Credentials::from_headers(rest.split(|&b| b == 0xff).map(|v| (name, v)));
    let req = Request {
        service: "weather",
        capabilities: if selector & 0x80 == 0 { "" } else { "read" },
        now: 1_800_000_000 + u64::from(selector & 0x7f) * 60,
        client_ip: None,
    };
    let plain = verifier().verify(&creds, &req, &NoDenyList);
    let mut cache = VerifiedCache::new(4);
    let cached = verifier().verify_cached(&creds, &req, &NoDenyList, &mut cache);
    let cached_again = verifier().verify_cached(&creds, &req, &NoDenyList, &mut cache);
    // The cache never changes a decision.
    assert_eq!(plain.is_ok(), cached.is_ok());
    assert_eq!(plain.is_ok(), cached_again.is_ok());
    if let Ok(a) = plain {
        // Only the genuine token's id can authorize: nothing forged passes.
        let genuine = l402_core::inspect(genuine()).unwrap();
        assert_eq!(*a.token_id(), genuine.identifier.token_id);
    }
});
