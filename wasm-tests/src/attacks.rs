//! The end-to-end attack matrix: hostile requests sent byte for byte (a raw HTTP/1.1 client,
//! so that NUL, CR/LF and invalid UTF-8 reach the host as written), each with the answer an
//! edge must give. The same list runs through the Envoy filter and the Worker; every entry
//! also asserts the origin never saw the request.
// Test support: a bad fixture should stop the test loudly.
#![allow(clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use l402_core::{Keyring, Preimage, RootKey, ServiceEntry, attenuate, inspect, mint, sign};

use crate::KEYS;

/// What an edge must answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// 402 + a fresh challenge, with this reason in the body.
    Challenge(&'static str),
    /// 402 with one of these reasons (the host may reorder candidates).
    ChallengeAnyOf(&'static [&'static str]),
    /// Oversized: 402 `credential_too_large` from core, or the host's own refusal (400, 413,
    /// 431) before core runs.
    TooLarge,
    /// Malformed bytes: 402 `malformed_credential` from core, or the host's 400 before it.
    MalformedOrHost400,
    /// gRPC: HTTP 200 with a non-zero `grpc-status` (never the origin).
    GrpcDenied,
    /// 402 with one of these reasons, or the host's 400 before core runs.
    ChallengeAnyOfOrHost400(&'static [&'static str]),
}

/// One hostile request.
#[derive(Clone, Debug)]
pub struct Attack {
    /// What it tries.
    pub name: String,
    /// HTTP method.
    pub method: &'static str,
    /// Path (the routes every e2e edge sells: `/weather` read, `/admin-api` write, `/maps`,
    /// `/grpc.Weather/`).
    pub path: &'static str,
    /// Extra headers, raw bytes.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The answer.
    pub expect: Expect,
}

/// A raw response.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code (0 if none could be read: the host closed the connection).
    pub status: u16,
    /// Header lines, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Everything after the header block (chunked framing left in).
    pub body: String,
}

impl RawResponse {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `error` code in a JSON body, if any.
    pub fn reason(&self) -> Option<String> {
        let i = self.body.find("\"error\":\"")? + "\"error\":\"".len();
        let rest = self.body.get(i..)?;
        Some(rest.get(..rest.find('"')?)?.to_owned())
    }
}

/// Sends one request as raw bytes over a fresh connection (`Connection: close`).
pub fn send_raw(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, Vec<u8>)],
) -> Result<RawResponse> {
    send_raw_bytes(port, method, path.as_bytes(), headers, None)
}

/// [`send_raw`] with a target of any bytes and an optional body (sent with its length).
pub fn send_raw_bytes(
    port: u16,
    method: &str,
    target: &[u8],
    headers: &[(String, Vec<u8>)],
    body: Option<&[u8]>,
) -> Result<RawResponse> {
    let mut req = format!("{method} ").into_bytes();
    req.extend_from_slice(target);
    req.extend_from_slice(format!(" HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n").as_bytes());
    for (k, v) in headers {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    if let Some(b) = body {
        req.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req.extend_from_slice(body.unwrap_or_default());
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    // A host may answer and close before reading a huge request: ignore write errors.
    let _ = s.write_all(&req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(RawResponse {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Checks a response against the expectation; `Err` says why not.
pub fn check(attack: &Attack, r: &RawResponse) -> Result<(), String> {
    let reason = r.reason().unwrap_or_default();
    let ok = match &attack.expect {
        Expect::Challenge(want) => {
            r.status == 402 && reason == *want && r.header("www-authenticate").is_some()
        }
        Expect::ChallengeAnyOf(want) => {
            r.status == 402
                && want.contains(&reason.as_str())
                && r.header("www-authenticate").is_some()
        }
        Expect::TooLarge => {
            (r.status == 402 && reason == "credential_too_large")
                || [400, 413, 431].contains(&r.status)
        }
        Expect::MalformedOrHost400 => {
            (r.status == 402 && reason == "malformed_credential") || r.status == 400
        }
        Expect::ChallengeAnyOfOrHost400(want) => {
            r.status == 400 || (r.status == 402 && want.contains(&reason.as_str()))
        }
        Expect::GrpcDenied => r.status == 200 && r.header("grpc-status").is_some_and(|s| s != "0"),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{}: expected {:?}, got {} reason {reason:?} headers {:?}",
            attack.name, attack.expect, r.status, r.headers
        ))
    }
}

fn entry(service: &str, caps: &[&str], lifetime: Option<u64>) -> ServiceEntry {
    ServiceEntry {
        name: service.parse().expect("valid service name"),
        tier: 0,
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        lifetime_secs: lifetime,
        allowance: None,
    }
}

fn minted(ring: &str, key_salt: u8, e: &ServiceEntry, at: u64, p: &Preimage) -> Result<String> {
    let ring: Keyring = ring.parse()?;
    let mut random = [key_salt; 28];
    random[..8].copy_from_slice(&at.to_be_bytes());
    Ok(mint(&ring, p.payment_hash(), random, e, at)?.macaroon_b64)
}

/// A V2 macaroon built field by field (libmacaroon caps caveats at 1,000): `caveats` copies
/// of `caveat` and a garbage signature.
fn raw_v2(identifier: &[u8], caveat: &[u8], caveats: usize) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
        out.push(kind);
        let mut n = data.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(data);
    }
    let mut out = vec![2];
    field(&mut out, 2, identifier);
    out.push(0);
    for _ in 0..caveats {
        field(&mut out, 2, caveat);
        out.push(0);
    }
    out.push(0);
    field(&mut out, 6, &[0u8; 32]);
    out
}

/// Replaces the token's caveats but keeps its signature: a tampered token.
fn same_signature(b64: &str, caveats: &[&str]) -> Result<String> {
    let ins = inspect(b64)?;
    let resigned = sign(
        &RootKey::from_bytes([0; 32]),
        &ins.identifier.encode(),
        caveats,
    )?;
    let mut raw = STANDARD.decode(resigned)?;
    let n = raw.len();
    raw[n - 32..].copy_from_slice(&hex::decode(&ins.signature_hex)?);
    Ok(STANDARD.encode(raw))
}

/// Flips one bit of the identifier at `i` (offset within the identifier).
fn flip_identifier(b64: &str, i: usize) -> Result<String> {
    let mut raw = STANDARD.decode(b64)?;
    let id = inspect(b64)?.identifier.encode();
    let off = raw
        .windows(id.len())
        .position(|w| w == id.as_slice())
        .context("identifier in the macaroon")?;
    raw[off + i] ^= 1;
    Ok(STANDARD.encode(raw))
}

/// A third-party caveat on an otherwise valid token.
fn third_party(b64: &str) -> Result<String> {
    let ring: Keyring = KEYS.parse()?;
    let ins = inspect(b64)?;
    let root = ring
        .root_key(&ins.identifier.token_id)
        .context("the key is in the ring")?;
    let key = libmacaroon::MacaroonKey::generate(root.expose_bytes());
    let mut m = libmacaroon::Macaroon::create(Some("lsat"), &key, ins.identifier.encode())?;
    for c in &ins.caveats {
        m.add_first_party_caveat(c.as_str())?;
    }
    m.add_third_party_caveat(
        "https://auth.example",
        &libmacaroon::MacaroonKey::generate(b"tp"),
        "cav",
    )?;
    let url = m.serialize(libmacaroon::Format::V2)?;
    Ok(STANDARD.encode(base64::engine::general_purpose::URL_SAFE.decode(url)?))
}

/// The matrix. `revoked_salt` is the salt of the token the edge under test has on its
/// deny-list (see [`revoked_token`]).
pub fn matrix(now: u64) -> Result<Vec<Attack>> {
    let p = Preimage::from_bytes([0x61; 32]);
    let pre = p.expose_hex();
    let weather = entry("weather", &["read"], Some(86_400));
    let good = minted(KEYS, 1, &weather, now, &p)?;
    let auth = |b64: &str| format!("L402 {b64}:{pre}").into_bytes();
    let a =
        |name: &str, path: &'static str, headers: Vec<(&str, Vec<u8>)>, expect: Expect| Attack {
            name: name.to_owned(),
            method: "GET",
            path,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            expect,
        };
    use Expect::*;
    let caveats: Vec<String> = inspect(&good)?.caveats;
    let c: Vec<&str> = caveats.iter().map(String::as_str).collect();
    let expired = minted(
        KEYS,
        2,
        &entry("weather", &["read"], Some(60)),
        now - 3_600,
        &p,
    )?;
    let maps = minted(KEYS, 3, &entry("maps", &[], Some(86_400)), now, &p)?;
    let other_ring = format!("1:{}", "2b".repeat(32));
    let unknown_key = format!("9:{}", "3c".repeat(32));
    // Minted while key 2 was current (listed first); the edge's ring no longer holds it.
    let removed_key_token = minted(
        &format!("2:{},{KEYS}", "4d".repeat(32)),
        4,
        &weather,
        now,
        &p,
    )?;
    let macaroon_header_no_preimage = hex::encode(STANDARD.decode(&good)?);
    let id = inspect(&good)?.identifier.encode();
    let mut attacks = vec![
        a(
            "no credential",
            "/weather",
            vec![],
            Challenge("missing_credential"),
        ),
        a(
            "Basic credentials only",
            "/weather",
            vec![("Authorization", b"Basic dXNlcjpwYXNz".to_vec())],
            Challenge("missing_credential"),
        ),
        a(
            "Bearer credentials only",
            "/weather",
            vec![("Authorization", b"Bearer abc.def.ghi".to_vec())],
            Challenge("missing_credential"),
        ),
        a(
            "signature byte flipped",
            "/weather",
            vec![("Authorization", {
                let mut raw = STANDARD.decode(&good)?;
                let n = raw.len() - 1;
                raw[n] ^= 1;
                auth(&STANDARD.encode(raw))
            })],
            Challenge("bad_signature"),
        ),
        a(
            "identifier version flipped",
            "/weather",
            vec![("Authorization", auth(&flip_identifier(&good, 1)?))],
            Challenge("unsupported_version"),
        ),
        a(
            "identifier payment hash flipped",
            "/weather",
            vec![("Authorization", auth(&flip_identifier(&good, 2)?))],
            Challenge("wrong_preimage"),
        ),
        a(
            "identifier key id flipped",
            "/weather",
            vec![("Authorization", auth(&flip_identifier(&good, 2 + 32 + 3)?))],
            Challenge("unknown_key"),
        ),
        a(
            "identifier token id flipped",
            "/weather",
            vec![("Authorization", auth(&flip_identifier(&good, 2 + 32 + 10)?))],
            Challenge("bad_signature"),
        ),
        a(
            "caveat removed, signature kept",
            "/weather",
            vec![("Authorization", auth(&same_signature(&good, &c[..2])?))],
            Challenge("bad_signature"),
        ),
        a(
            "caveats reordered, signature kept",
            "/weather",
            vec![(
                "Authorization",
                auth(&same_signature(&good, &[c[1], c[0], c[2]])?),
            )],
            Challenge("bad_signature"),
        ),
        a(
            "capabilities widened in place, signature kept",
            "/admin-api",
            vec![(
                "Authorization",
                auth(&same_signature(
                    &good,
                    &[c[0], "weather_capabilities=read,write", c[2]],
                )?),
            )],
            Challenge("bad_signature"),
        ),
        a(
            "capabilities widened by an appended caveat",
            "/admin-api",
            vec![(
                "Authorization",
                auth(&attenuate(&good, "weather_capabilities=read,write")?),
            )],
            Challenge("capability_missing"),
        ),
        a(
            "expiry widened by an appended caveat",
            "/weather",
            vec![(
                "Authorization",
                auth(&attenuate(
                    &expired,
                    &format!("weather_valid_until={}", now + 86_400),
                )?),
            )],
            Challenge("token_expired"),
        ),
        a(
            "services widened by an appended caveat",
            "/maps",
            vec![(
                "Authorization",
                auth(&attenuate(&good, "services=weather:0,maps:0")?),
            )],
            Challenge("service_not_allowed"),
        ),
        a(
            "wrong preimage",
            "/weather",
            vec![(
                "Authorization",
                format!("L402 {good}:{}", "43".repeat(32)).into_bytes(),
            )],
            Challenge("wrong_preimage"),
        ),
        a(
            "expired token",
            "/weather",
            vec![("Authorization", auth(&expired))],
            Challenge("token_expired"),
        ),
        a(
            "token for another service",
            "/weather",
            vec![("Authorization", auth(&maps))],
            Challenge("service_not_allowed"),
        ),
        a(
            "capability the token lacks",
            "/admin-api",
            vec![("Authorization", auth(&good))],
            Challenge("capability_missing"),
        ),
        a(
            "signed by another keyring (same key id)",
            "/weather",
            vec![(
                "Authorization",
                auth(&minted(&other_ring, 5, &weather, now, &p)?),
            )],
            Challenge("bad_signature"),
        ),
        a(
            "unknown key id",
            "/weather",
            vec![(
                "Authorization",
                auth(&minted(&unknown_key, 6, &weather, now, &p)?),
            )],
            Challenge("unknown_key"),
        ),
        a(
            "key removed from the ring",
            "/weather",
            vec![("Authorization", auth(&removed_key_token))],
            Challenge("unknown_key"),
        ),
        a(
            "revoked token id",
            "/weather",
            vec![("Authorization", auth(&revoked_token(now)?))],
            Challenge("revoked"),
        ),
        a(
            "third-party caveat",
            "/weather",
            vec![("Authorization", auth(&third_party(&good)?))],
            Challenge("unsupported_caveat"),
        ),
        a(
            "invalid base64",
            "/weather",
            vec![(
                "Authorization",
                format!("L402 {}!!:{pre}", &good[..40]).into_bytes(),
            )],
            Challenge("malformed_credential"),
        ),
        a(
            "non-hex preimage",
            "/weather",
            vec![(
                "Authorization",
                format!("L402 {good}:{}", "zz".repeat(32)).into_bytes(),
            )],
            Challenge("malformed_credential"),
        ),
        a(
            "short preimage",
            "/weather",
            vec![(
                "Authorization",
                format!("L402 {good}:{}", &pre[..62]).into_bytes(),
            )],
            Challenge("malformed_credential"),
        ),
        a(
            "empty preimage",
            "/weather",
            vec![("Authorization", format!("L402 {good}:").into_bytes())],
            Challenge("malformed_credential"),
        ),
        a(
            "no macaroon",
            "/weather",
            vec![("Authorization", format!("L402 :{pre}").into_bytes())],
            Challenge("malformed_credential"),
        ),
        a(
            "truncated macaroon",
            "/weather",
            vec![("Authorization", auth(&good[..good.len() - 8]))],
            Challenge("malformed_credential"),
        ),
        a(
            "V1 macaroon",
            "/weather",
            vec![(
                "Authorization",
                auth(&URL_SAFE_NO_PAD.encode(b"0014location lsat\n")),
            )],
            Challenge("malformed_credential"),
        ),
        a(
            "JSON macaroon",
            "/weather",
            vec![("Authorization", auth(&STANDARD.encode(br#"{"v":2}"#)))],
            Challenge("malformed_credential"),
        ),
        a(
            "invalid UTF-8 in the credential",
            "/weather",
            vec![("Authorization", b"L402 \xc3\x28\xff:00".to_vec())],
            MalformedOrHost400,
        ),
        a(
            "NUL byte in the credential",
            "/weather",
            vec![("Authorization", format!("L402 {good}\0:{pre}").into_bytes())],
            MalformedOrHost400,
        ),
        a(
            // With a genuine preimage, Envoy's codec hands the filter the CR as whitespace and
            // the (genuine) token verifies: correct, the client holds token and preimage.
            "bare CR in the credential, wrong preimage",
            "/weather",
            vec![(
                "Authorization",
                format!("L402 {good}\r:{}", "43".repeat(32)).into_bytes(),
            )],
            ChallengeAnyOfOrHost400(&["malformed_credential", "wrong_preimage"]),
        ),
        a(
            "CR LF header injection in the credential",
            "/weather",
            vec![(
                "Authorization",
                format!("L402 {good}\r\nX-L402-Token-Id: 1:{pre}").into_bytes(),
            )],
            MalformedOrHost400,
        ),
        a(
            "Macaroon header without a preimage caveat",
            "/weather",
            vec![("Macaroon", macaroon_header_no_preimage.into_bytes())],
            Challenge("malformed_credential"),
        ),
        a(
            "60 KB Authorization header",
            "/weather",
            vec![(
                "Authorization",
                format!("L402 {}:{pre}", "A".repeat(60 * 1024)).into_bytes(),
            )],
            TooLarge,
        ),
        a(
            "17 KB Authorization header (over core's 16 KiB cap)",
            "/weather",
            vec![(
                "Authorization",
                format!("L402 {}:{pre}", "A".repeat(17 * 1024)).into_bytes(),
            )],
            TooLarge,
        ),
        a(
            "10,000 caveats",
            "/weather",
            vec![(
                "Authorization",
                auth(&STANDARD.encode(raw_v2(&id, b"x", 10_000))),
            )],
            TooLarge,
        ),
        a(
            "65 caveats (over the caveat cap, under the byte cap)",
            "/weather",
            vec![(
                "Authorization",
                auth(&STANDARD.encode(raw_v2(&id, b"services=weather:0", 65))),
            )],
            TooLarge,
        ),
        a(
            "300 comma-separated macaroons",
            "/weather",
            vec![("Authorization", auth(&[good.as_str(); 300].join(",")))],
            TooLarge,
        ),
        a(
            "9 macaroons (over the candidate cap)",
            "/weather",
            vec![("Authorization", auth(&[maps.as_str(); 9].join(",")))],
            TooLarge,
        ),
        a(
            "two Authorization headers, both invalid",
            "/weather",
            vec![
                (
                    "Authorization",
                    format!("L402 {good}:{}", "43".repeat(32)).into_bytes(),
                ),
                ("Authorization", auth(&maps)),
            ],
            ChallengeAnyOf(&["wrong_preimage", "service_not_allowed"]),
        ),
        a(
            "conflicting credentials: Authorization for maps, Macaroon without preimage",
            "/weather",
            vec![
                ("Authorization", auth(&maps)),
                (
                    "Macaroon",
                    hex::encode(STANDARD.decode(&good)?).into_bytes(),
                ),
            ],
            ChallengeAnyOf(&["service_not_allowed", "malformed_credential"]),
        ),
        a(
            "spoofed x-l402-token-id, no credential",
            "/weather",
            vec![("X-L402-Token-Id", b"00".repeat(32))],
            Challenge("missing_credential"),
        ),
        a(
            "spoofed x-l402-service with an expired token",
            "/weather",
            vec![
                ("X-L402-Service", b"weather".to_vec()),
                ("Authorization", auth(&expired)),
            ],
            Challenge("token_expired"),
        ),
        a(
            "OPTIONS that is not a CORS preflight",
            "/weather",
            vec![("Origin", b"https://evil.example".to_vec())],
            Challenge("missing_credential"),
        ),
        a(
            "gRPC without a credential",
            "/grpc.Weather/Get",
            vec![
                ("Content-Type", b"application/grpc".to_vec()),
                ("TE", b"trailers".to_vec()),
            ],
            GrpcDenied,
        ),
        a(
            "gRPC with a wrong preimage",
            "/grpc.Weather/Get",
            vec![
                ("Content-Type", b"application/grpc+proto".to_vec()),
                (
                    "Authorization",
                    format!("L402 {good}:{}", "43".repeat(32)).into_bytes(),
                ),
            ],
            GrpcDenied,
        ),
        // Shapes the fuzzers liked: separators with nothing between them.
        a(
            "fuzz: `L402 ,,,,:`",
            "/weather",
            vec![("Authorization", b"L402 ,,,,:".to_vec())],
            Challenge("malformed_credential"),
        ),
        a(
            "fuzz: `LSAT =:`",
            "/weather",
            vec![("Authorization", b"LSAT =:".to_vec())],
            Challenge("malformed_credential"),
        ),
        a(
            "fuzz: scheme only",
            "/weather",
            vec![("Authorization", b"L402".to_vec())],
            Challenge("malformed_credential"),
        ),
        a(
            "fuzz: preimage caveat in Macaroon header that disagrees",
            "/weather",
            vec![(
                "Macaroon",
                hex::encode(
                    STANDARD.decode(attenuate(&good, &format!("preimage={}", "43".repeat(32)))?)?,
                )
                .into_bytes(),
            )],
            Challenge("wrong_preimage"),
        ),
    ];
    // OPTIONS, not GET, for the entry that says so.
    for at in &mut attacks {
        if at.name.starts_with("OPTIONS") {
            at.method = "OPTIONS";
        }
    }
    Ok(attacks)
}

/// The token whose id the e2e edges put on their deny-list.
pub fn revoked_token(now: u64) -> Result<String> {
    let p = Preimage::from_bytes([0x61; 32]);
    // Minted at the start of the current day, so that every call agrees on the id.
    let day = now - now % 86_400;
    minted(
        KEYS,
        0x7e,
        &entry("weather", &["read"], Some(2 * 86_400)),
        day,
        &p,
    )
}

/// The token id (hex) of [`revoked_token`].
pub fn revoked_id(now: u64) -> Result<String> {
    Ok(inspect(&revoked_token(now)?)?.identifier.token_id.to_hex())
}

/// A valid credential the attack tests use as a control (it must pass), and its preimage.
pub fn control(now: u64) -> Result<Vec<u8>> {
    let p = Preimage::from_bytes([0x61; 32]);
    let good = minted(KEYS, 9, &entry("weather", &["read"], Some(86_400)), now, &p)?;
    Ok(format!("L402 {good}:{}", p.expose_hex()).into_bytes())
}
