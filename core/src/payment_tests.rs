#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[allow(unused_imports)]
use crate::prelude::*;
use serde_json::Value;

use super::*;
use crate::credential::Credentials;
use crate::ids::Preimage;

const VECTORS: &str = include_str!("../testdata/aperture-mpp-vectors.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

fn params(v: &Value) -> PaymentChallenge {
    PaymentChallenge::from_json(v.to_string().as_bytes()).unwrap()
}

#[test]
fn aperture_challenge_ids() {
    let v = vectors();
    let secret = hex::decode(v["hmacSecretHex"].as_str().unwrap()).unwrap();
    let cases = v["challengeIds"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let p = params(&case["params"]);
        assert_eq!(challenge_id(&secret, &p), p.id, "{}", case["name"]);
    }
}

#[test]
fn aperture_challenge_headers() {
    let v = vectors();
    for case in v["challengeHeaders"].as_array().unwrap() {
        let p = params(&case["params"]);
        assert_eq!(
            p.www_authenticate(),
            case["header"].as_str().unwrap(),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn aperture_canonicalization() {
    let v = vectors();
    for case in v["canonicalization"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let parsed: Result<Value, _> = serde_json::from_str(case["input"].as_str().unwrap());
        match s(case, "canonical") {
            Some(canonical) => {
                let out = serde_json_canonicalizer::to_string(&parsed.unwrap()).unwrap();
                assert_eq!(out, canonical, "{name}");
            }
            None => assert!(parsed.is_err(), "{name}"),
        }
    }
}

#[test]
fn aperture_base64url() {
    let v = vectors();
    for case in v["base64url"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let encoded = case["encoded"].as_str().unwrap();
        let decoded = b64url_decode(encoded);
        match s(case, "decodedHex") {
            Some(h) => {
                let bytes = hex::decode(&h).unwrap();
                assert_eq!(decoded.as_deref(), Some(&bytes[..]), "{name}");
                if case["canonical"] == true {
                    assert_eq!(b64url_encode(&bytes), encoded, "{name}");
                }
            }
            None if case["error"] == true => assert!(decoded.is_none(), "{name}"),
            None => assert_eq!(decoded.as_deref(), Some(&[][..]), "{name}"),
        }
    }
}

#[test]
fn aperture_credentials() {
    let v = vectors();
    for case in v["credentials"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let header = case["header"].as_str().unwrap();
        let mut c = Credentials::default();
        c.add(crate::HeaderKind::Authorization, header.as_bytes());
        if case["error"] == true {
            // Refused, or (another scheme) not a Payment credential at all.
            assert!(matches!(c.payment(), None | Some(Err(_))), "{name}");
            continue;
        }
        // The envelope decodes to the published JSON; the vector's preimage is a stand-in
        // shorter than 32 bytes, which this verifier refuses as malformed.
        let token = header.split_once(' ').unwrap().1;
        let decoded: Value = serde_json::from_slice(&b64url_decode(token).unwrap()).unwrap();
        let published: Value =
            serde_json::from_str(case["credentialJson"].as_str().unwrap()).unwrap();
        assert_eq!(decoded, published, "{name}");
        assert_eq!(
            c.payment().unwrap().unwrap_err().reason,
            Reason::MalformedCredential,
            "{name}"
        );
    }
}

#[test]
fn aperture_receipts_carry_the_same_fields() {
    let v = vectors();
    let case = &v["receipts"][0];
    let published: Value = serde_json::from_str(case["receiptJson"].as_str().unwrap()).unwrap();
    let charge = Charge {
        payment_hash: PaymentHash([0; 32]),
        expires_at: 0,
        challenge_id: published["challengeId"].as_str().unwrap().to_owned(),
        service: "weather".into(),
        capabilities: String::new(),
        amount_sat: 1,
    };
    let ours: Value =
        serde_json::from_slice(&b64url_decode(&charge.receipt(1_773_176_400)).unwrap()).unwrap();
    for k in ["status", "method", "timestamp", "challengeId"] {
        assert_eq!(ours[k], published[k], "{k}");
    }
    assert_eq!(ours["reference"], PaymentHash([0; 32]).to_hex());
    // JCS order: the receipt is its own canonical form.
    let raw = String::from_utf8(b64url_decode(&charge.receipt(1_773_176_400)).unwrap()).unwrap();
    assert_eq!(raw, serde_json_canonicalizer::to_string(&ours).unwrap());
}

const INVOICE: &str =
    "lnbcrt10u1pjqqqqqpp5qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqsdqqcqzzsxqyz5vq";
const NOW: u64 = 1_800_000_000;

fn keyring(ids: &[u32]) -> Keyring {
    let text: Vec<String> = ids
        .iter()
        .map(|id| format!("{id}:{}", hex::encode([*id as u8 + 7; 32])))
        .collect();
    text.join(",").parse().unwrap()
}

fn issue(k: &Keyring, preimage: &Preimage, service: &str, caps: &str) -> PaymentChallenge {
    issue_charge(
        k,
        &ChargeTerms {
            realm: "api.example.com",
            service,
            capabilities: caps,
            amount_sat: 1000,
            invoice: INVOICE,
            payment_hash: &preimage.payment_hash(),
            expires_at: NOW + 600,
            description: Some("Weather \"today\""),
        },
    )
    .unwrap()
}

fn credential(c: &PaymentChallenge, preimage: &str) -> String {
    let json = serde_json::json!({"challenge": serde_json::from_str::<Value>(&c.to_json()).unwrap(), "payload": {"preimage": preimage}});
    format!("Payment {}", b64url_encode(json.to_string().as_bytes()))
}

fn judge(k: &Keyring, header: &str, service: &str, caps: &str, now: u64) -> Result<Charge, Reason> {
    let mut c = Credentials::default();
    c.add(crate::HeaderKind::Authorization, header.as_bytes());
    let cred = c
        .payment()
        .expect("a Payment credential")
        .map_err(|r| r.reason)?;
    verify_payment(k, cred, service, caps, now).map_err(|r| r.reason)
}

#[test]
fn issued_challenges_verify_and_bind_everything() {
    let k = keyring(&[3, 1]);
    let p = Preimage([9; 32]);
    let c = issue(&k, &p, "weather", "read,write");
    c.check().unwrap();
    let request: Value = serde_json::from_slice(&b64url_decode(&c.request).unwrap()).unwrap();
    assert_eq!(request["amount"], "1000");
    assert_eq!(request["currency"], "sat");
    assert_eq!(request["methodDetails"]["network"], "regtest");
    assert_eq!(
        request["methodDetails"]["paymentHash"],
        p.payment_hash().to_hex()
    );
    assert_eq!(
        request["l402"],
        serde_json::json!({"caps": "read,write", "kid": "3", "svc": "weather"})
    );
    assert!(c.opaque.is_none(), "clients in the field drop opaque");
    assert_eq!(c.expires.as_deref(), Some("2027-01-15T08:10:00Z"));
    let good = credential(&c, &p.expose_hex());
    let charge = judge(&k, &good, "weather", "read", NOW).unwrap();
    assert_eq!(
        (charge.payment_hash, charge.expires_at, charge.amount_sat),
        (p.payment_hash(), NOW + 600, 1000)
    );
    // Upper-case hex is the same preimage.
    assert!(
        judge(
            &k,
            &credential(&c, &p.expose_hex().to_uppercase()),
            "weather",
            "",
            NOW
        )
        .is_ok()
    );
    // Any edited parameter breaks the binding: amount, realm, expiry, service, opaque, id.
    let mut edits: Vec<PaymentChallenge> = Vec::new();
    let mut amount: Value = request.clone();
    amount["amount"] = "1".into();
    let mut e = c.clone();
    e.request = b64url_encode(amount.to_string().as_bytes());
    edits.push(e);
    let mut e = c.clone();
    e.realm = "evil.example".into();
    edits.push(e);
    let mut e = c.clone();
    e.expires = Some("2099-01-01T00:00:00Z".into());
    edits.push(e);
    let mut other = request.clone();
    other["l402"]["svc"] = "maps".into();
    let mut e = c.clone();
    e.request = b64url_encode(other.to_string().as_bytes());
    edits.push(e);
    let mut e = c.clone();
    e.opaque = Some(b64url_encode(br#"{"a":"b"}"#));
    edits.push(e);
    let mut e = c.clone();
    e.id = format!("A{}", &c.id[1..]);
    edits.push(e);
    let mut e = c.clone();
    e.header = Some("Payment-Authorization".into());
    edits.push(e);
    for e in edits {
        assert_eq!(
            judge(&k, &credential(&e, &p.expose_hex()), "weather", "", NOW),
            Err(Reason::ChallengeInvalid),
            "{e:?}"
        );
    }
    // The description is display only.
    let mut e = c.clone();
    e.description = Some("other".into());
    assert!(judge(&k, &credential(&e, &p.expose_hex()), "weather", "", NOW).is_ok());
    // Route, time, preimage, keys.
    assert_eq!(
        judge(&k, &good, "maps", "", NOW),
        Err(Reason::ServiceNotAllowed)
    );
    assert_eq!(
        judge(&k, &good, "weather", "admin", NOW),
        Err(Reason::CapabilityMissing)
    );
    assert_eq!(
        judge(&k, &good, "weather", "", NOW + 600),
        Err(Reason::ChallengeExpired)
    );
    assert_eq!(
        judge(
            &k,
            &credential(&c, &Preimage([8; 32]).expose_hex()),
            "weather",
            "",
            NOW
        ),
        Err(Reason::WrongPreimage)
    );
    // Rotation: a challenge issued under key 3 verifies wherever key 3 is still held.
    assert!(judge(&keyring(&[5, 3]), &good, "weather", "", NOW).is_ok());
    assert_eq!(
        judge(&keyring(&[5]), &good, "weather", "", NOW),
        Err(Reason::UnknownKey)
    );
    // The id key is not a root key: a keyring with other secrets under the same ids refuses.
    let other: Keyring = format!("3:{}", hex::encode([0xaa; 32])).parse().unwrap();
    assert_eq!(
        judge(&other, &good, "weather", "", NOW),
        Err(Reason::ChallengeInvalid)
    );
}

#[test]
fn malformed_credentials_are_refused_as_such() {
    for bad in [
        "Payment !!",
        "Payment e30",
        "Payment eyJjaGFsbGVuZ2UiOnt9fQ",
        &credential(&PaymentChallenge::default(), &"00".repeat(32)),
        &credential(
            &PaymentChallenge {
                id: "x".into(),
                ..PaymentChallenge::default()
            },
            "zz",
        ),
    ] {
        let mut c = Credentials::default();
        c.add(crate::HeaderKind::Authorization, bad.as_bytes());
        assert_eq!(
            c.payment().unwrap().unwrap_err().reason,
            Reason::MalformedCredential,
            "{bad}"
        );
    }
    // Over the shared size cap.
    let mut c = Credentials::default();
    let huge = format!("Payment {}", "A".repeat(crate::MAX_CREDENTIAL_BYTES));
    c.add(crate::HeaderKind::Authorization, huge.as_bytes());
    assert_eq!(
        c.payment().unwrap().unwrap_err().reason,
        Reason::CredentialTooLarge
    );
    // L402 beside it is still read.
    let mut c = Credentials::default();
    c.add(
        crate::HeaderKind::Authorization,
        b"Payment e30, L402 AgEE:0000000000000000000000000000000000000000000000000000000000000000",
    );
    assert!(c.has_l402() && c.payment().is_some());
}

#[test]
fn unsafe_parameters_never_reach_a_header() {
    let k = keyring(&[1]);
    let c = issue(&k, &Preimage([1; 32]), "weather", "");
    for edit in [
        |c: &mut PaymentChallenge| c.realm = "a\r\nSet-Cookie: x".into(),
        |c: &mut PaymentChallenge| c.description = Some("line\nbreak".into()),
        |c: &mut PaymentChallenge| c.request = "not base64url!".into(),
        |c: &mut PaymentChallenge| c.id = String::new(),
        |c: &mut PaymentChallenge| c.opaque = Some("a\"b".into()),
        |c: &mut PaymentChallenge| c.method = "tempo".into(),
        |c: &mut PaymentChallenge| c.expires = Some("x".repeat(5000)),
    ] {
        let mut e = c.clone();
        edit(&mut e);
        assert!(e.check().is_err(), "{e:?}");
    }
    // Quotes and backslashes are escaped, never closing the value.
    let mut e = c.clone();
    e.description = Some(r#"a "b" \c"#.into());
    assert!(e.check().is_ok());
    assert!(
        e.www_authenticate()
            .contains(r#"description="a \"b\" \\c""#)
    );
}

#[test]
fn schemes_and_accept_payment() {
    assert_eq!(
        "l402".parse(),
        Ok(Schemes {
            l402: true,
            payment: false
        })
    );
    assert_eq!(
        " Payment ".parse(),
        Ok(Schemes {
            l402: false,
            payment: true
        })
    );
    assert_eq!("l402,payment".parse(), Ok(Schemes::BOTH));
    assert_eq!("x402".parse::<Schemes>(), Err(UnknownScheme));
    assert_eq!("".parse::<Schemes>(), Err(UnknownScheme));
    for (header, refused) in [
        (None, false),
        (Some("lightning/charge"), false),
        (Some("lightning/charge;q=0"), true),
        (Some("tempo/charge, lightning/*;q=0"), true),
        (Some("*/*;q=0, lightning/charge;q=0.5"), false),
        (Some("lightning/*;q=0, lightning/charge"), false),
        (Some("tempo/charge"), false),
        (Some("garbage"), false),
    ] {
        assert_eq!(
            refuses_lightning_charge(header.map(str::as_bytes)),
            refused,
            "{header:?}"
        );
    }
}

#[test]
fn problems_name_the_draft_types() {
    assert_eq!(problem(Reason::MissingCredential).0, "payment-required");
    assert_eq!(
        problem(Reason::MalformedCredential).0,
        "malformed-credential"
    );
    assert_eq!(
        problem(Reason::CredentialTooLarge).0,
        "malformed-credential"
    );
    assert_eq!(problem(Reason::ChallengeInvalid).0, "invalid-challenge");
    assert_eq!(problem(Reason::PaymentSpent).0, "invalid-challenge");
    assert_eq!(problem(Reason::ChallengeExpired).0, "payment-expired");
    assert_eq!(problem(Reason::WrongPreimage).0, "verification-failed");
}
