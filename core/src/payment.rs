//! The "Payment" HTTP authentication scheme (draft-httpauth-payment), method `lightning`,
//! intent `charge` (draft-lightning-charge), beside L402 (PROTOCOL.md §11).
//!
//! Stateless like the macaroon side: the challenge `id` is the draft's recommended
//! HMAC-SHA256 over the challenge's parameters, under a key derived from the keyring. What the
//! edge needs back (the key id, the service, the capabilities) travels inside the `request`
//! object, which the same HMAC binds, so any edge holding the keyring knows "we issued this
//! challenge, for this service, at this price" with no lookup. Not in `opaque`: deployed
//! clients (`@getalby/lightning-tools` 9.0.1) echo only id, realm, method, intent, request and
//! expires, and a challenge must survive the clients that exist. The one thing
//! that needs state, spending a payment exactly once, is the host's store ([`crate::Step::Redeem`]).
//!
//! ```text
//!  issue_charge(keyring, terms) ──► PaymentChallenge ──► www_authenticate()   (invoice-service, edge)
//!  Authorization: Payment <b64url> ──► PaymentCredential::parse ──► Verifier::verify_payment
//!        ──► Ok(Charge{payment_hash, expires_at}) ──► redeem once ──► Receipt
//! ```

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ids::{KeyId, PaymentHash, Preimage};
use crate::json::{Field, JsonResult, Reader, Unknown, Writer, push_u64, read_object, required};
use crate::keyring::Keyring;
use crate::reason::{Reason, Rejection};
use crate::service::parse_capabilities;

/// The payment method this edge sells over the Payment scheme.
pub const PAYMENT_METHOD: &str = "lightning";
/// The intent: one payment, one request.
pub const PAYMENT_INTENT: &str = "charge";
/// The only currency of the `lightning` method.
pub const PAYMENT_CURRENCY: &str = "sat";
/// Response header carrying the receipt of a redeemed charge.
pub const RECEIPT_HEADER: &str = "payment-receipt";
/// Base of the problem types (RFC 9457 `type`) the draft registers.
pub const PROBLEM_BASE: &str = "https://paymentauth.org/problems/";
/// Label of the challenge-id key derived from each master secret (never a root key).
pub const CHALLENGE_KEY_LABEL: &[u8] = b"l402-edge/payment-challenge/v1";

/// Longest auth-param value accepted from the invoice-service or a client (an invoice is
/// well under 2 KB; the draft asks servers to keep challenges under 8 KB).
const MAX_PARAM: usize = 4 * 1024;

/// Unpadded base64url for output; input accepted padded or not, canonical trailing bits only
/// (a lenient decoder gives one payload two spellings).
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// Base64url without padding (the scheme's encoding of `request`, `opaque`, credentials and
/// receipts).
pub fn b64url_encode(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

/// Strict base64url decoding: padding optional, no line breaks, no other alphabet.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    B64URL.decode(s).ok()
}

/// The challenge's auth-parameters: as issued in `WWW-Authenticate`, and as the client
/// echoes them in its credential (unknown members ignored, as the draft requires).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentChallenge {
    /// HMAC binding of every other parameter but `description`.
    pub id: String,
    /// Protection space.
    pub realm: String,
    /// `lightning`.
    pub method: String,
    /// `charge`.
    pub intent: String,
    /// Base64url of the JCS request object (amount, currency, methodDetails).
    pub request: String,
    /// RFC 3339 expiry (the invoice's).
    pub expires: Option<String>,
    /// RFC 9530 body digest (never issued here; bound when present).
    pub digest: Option<String>,
    /// Base64url of JCS server correlation data (never issued here; bound when present).
    pub opaque: Option<String>,
    /// Display only; not bound.
    pub description: Option<String>,
    /// `Payment-Authorization` when the challenge selects that field (never issued here).
    pub header: Option<String>,
}

/// Why a challenge cannot be issued or rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PaymentChallengeError {
    /// The keyring has no key with this id.
    #[error("no such key in the keyring")]
    UnknownKey,
    /// A parameter is empty where required, too long, or has a character a header cannot
    /// carry (a control character).
    #[error("payment challenge parameter {0} is unsafe in a header")]
    UnsafeParam(&'static str),
    /// The binding does not hold (the invoice-service and the edge disagree on keys).
    #[error("payment challenge id does not bind its parameters")]
    Unbound,
}

/// The seven (eight with `header`) positional slots the draft's HMAC binding covers.
fn binding_input(c: &PaymentChallenge) -> String {
    let mut input = [
        c.realm.as_str(),
        c.method.as_str(),
        c.intent.as_str(),
        c.request.as_str(),
        c.expires.as_deref().unwrap_or_default(),
        c.digest.as_deref().unwrap_or_default(),
        c.opaque.as_deref().unwrap_or_default(),
    ]
    .join("|");
    if let Some(h) = &c.header {
        input.push('|');
        input.push_str(h);
    }
    input
}

/// `base64url(HMAC-SHA256(secret, realm|method|intent|request|expires|digest|opaque[|header]))`
/// (draft-httpauth-payment, "Recommended: HMAC-SHA256 Binding").
pub fn challenge_id(secret: &[u8], c: &PaymentChallenge) -> String {
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length: unreachable, and an empty id never verifies.
        Err(_) => return String::new(),
    };
    mac.update(binding_input(c).as_bytes());
    b64url_encode(&mac.finalize().into_bytes())
}

/// The edge's correlation data, the request's `l402` member: which key binds the id, what
/// the challenge sells.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sale {
    /// Capabilities granted, comma-separated.
    caps: String,
    /// Keyring key id, decimal.
    kid: String,
    /// Service.
    svc: String,
}

/// The charge's request object (draft-lightning-charge, "Request Schema").
#[derive(Clone, Debug)]
struct ChargeRequest {
    amount: String,
    currency: String,
    description: Option<String>,
    method_details: MethodDetails,
    /// This edge's member (the draft has clients ignore members they do not know).
    l402: Sale,
}

#[derive(Clone, Debug)]
struct MethodDetails {
    invoice: String,
    network: Option<String>,
    payment_hash: String,
}

/// What a charge challenge sells, as the invoice-service decided it.
#[derive(Clone, Debug)]
pub struct ChargeTerms<'a> {
    /// The protection space (the operator's API name).
    pub realm: &'a str,
    /// The service sold.
    pub service: &'a str,
    /// Capabilities granted, comma-separated.
    pub capabilities: &'a str,
    /// Price, satoshis (the invoice's amount).
    pub amount_sat: u64,
    /// The BOLT11 invoice.
    pub invoice: &'a str,
    /// Its payment hash.
    pub payment_hash: &'a PaymentHash,
    /// When the invoice expires, unix seconds: the challenge's `expires`.
    pub expires_at: u64,
    /// Invoice memo, shown to payers.
    pub description: Option<&'a str>,
}

impl ChargeRequest {
    /// RFC 8785 canonical JSON (the draft requires JCS for `request`): compact, members in
    /// code-unit order at every level (written here in that order; all keys are ASCII),
    /// strings in JCS's escaping, no numbers (the amount is a string, as the draft has it).
    fn jcs(&self) -> String {
        let mut w = Writer::new();
        w.open_object()
            .str_member("amount", &self.amount)
            .str_member("currency", &self.currency)
            .opt_str_member("description", self.description.as_deref())
            .key("l402")
            .open_object()
            .str_member("caps", &self.l402.caps)
            .str_member("kid", &self.l402.kid)
            .str_member("svc", &self.l402.svc)
            .close_object()
            .key("methodDetails")
            .open_object()
            .str_member("invoice", &self.method_details.invoice)
            .opt_str_member("network", self.method_details.network.as_deref())
            .str_member("paymentHash", &self.method_details.payment_hash)
            .close_object()
            .close_object();
        w.finish()
    }

    /// Reads a decoded `request` (members the edge does not use are ignored).
    fn parse(body: &[u8]) -> JsonResult<ChargeRequest> {
        Reader::document(body, |r| {
            let (mut amount, mut currency, mut description) = (None, None, None);
            let (mut method_details, mut l402) = (None, None);
            let mut details = |r: &mut Reader<'_>| {
                method_details = Some(MethodDetails::read(r)?);
                Ok(())
            };
            let mut sale = |r: &mut Reader<'_>| {
                l402 = Some(Sale::read(r)?);
                Ok(())
            };
            read_object(
                r,
                &mut [
                    ("amount", Field::Str(&mut amount)),
                    ("currency", Field::Str(&mut currency)),
                    ("description", Field::Str(&mut description)),
                    ("methodDetails", Field::With(&mut details)),
                    ("l402", Field::With(&mut sale)),
                ],
                Unknown::Skip,
            )?;
            Ok(ChargeRequest {
                amount: required(amount, "amount", r)?,
                currency: required(currency, "currency", r)?,
                description,
                method_details: required(method_details, "methodDetails", r)?,
                l402: required(l402, "l402", r)?,
            })
        })
    }
}

impl MethodDetails {
    fn read(r: &mut Reader<'_>) -> JsonResult<MethodDetails> {
        let (mut invoice, mut network, mut payment_hash) = (None, None, None);
        read_object(
            r,
            &mut [
                ("invoice", Field::Str(&mut invoice)),
                ("network", Field::Str(&mut network)),
                ("paymentHash", Field::Str(&mut payment_hash)),
            ],
            Unknown::Skip,
        )?;
        Ok(MethodDetails {
            invoice: required(invoice, "invoice", r)?,
            network,
            payment_hash: payment_hash.unwrap_or_default(),
        })
    }
}

impl Sale {
    fn read(r: &mut Reader<'_>) -> JsonResult<Sale> {
        let (mut caps, mut kid, mut svc) = (None, None, None);
        read_object(
            r,
            &mut [
                ("caps", Field::Str(&mut caps)),
                ("kid", Field::Str(&mut kid)),
                ("svc", Field::Str(&mut svc)),
            ],
            Unknown::Skip,
        )?;
        Ok(Sale {
            caps: required(caps, "caps", r)?,
            kid: required(kid, "kid", r)?,
            svc: required(svc, "svc", r)?,
        })
    }
}

/// The network a BOLT11 prefix names, in the draft's spelling (testnet has none there).
fn network_of(invoice: &str) -> Option<&'static str> {
    let lower = invoice.get(..6)?.to_ascii_lowercase();
    if lower.starts_with("lnbcrt") {
        Some("regtest")
    } else if lower.starts_with("lntbs") {
        Some("signet")
    } else if lower.starts_with("lnbc") {
        Some("mainnet")
    } else {
        None
    }
}

/// RFC 3339 UTC, seconds precision (`2026-03-15T12:05:00Z`); empty past year 9999.
pub fn rfc3339(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    if y > 9999 {
        return String::new();
    }
    let mut out = String::with_capacity(20);
    for (n, width, sep) in [
        (y, 4, '-'),
        (m, 2, '-'),
        (d, 2, 'T'),
        (secs / 3600, 2, ':'),
        (secs / 60 % 60, 2, ':'),
        (secs % 60, 2, 'Z'),
    ] {
        let mut div = 10u64.pow(width - 1);
        while div > 0 {
            out.push(char::from(b'0' + (n / div % 10) as u8));
            div /= 10;
        }
        out.push(sep);
    }
    out
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01; `None` before 1970 (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// Reads back what [`rfc3339`] writes, and only that: the `expires` this edge reads has passed
/// the HMAC binding, so it is one the keyring's holders issued in that form.
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let seps = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ];
    if b.len() != 20 || seps.iter().any(|(i, c)| b.get(*i) != Some(c)) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u64> {
        b.get(from..to)?.iter().try_fold(0u64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
        })
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let max_day = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if d == 0 || d > max_day || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d)? * 86_400 + h * 3600 + mi * 60 + sec)
}

/// `n` in decimal.
pub(crate) fn decimal(n: u64) -> String {
    let mut s = String::new();
    push_u64(&mut s, n);
    s
}

/// Issues a charge challenge under the keyring's current key (PROTOCOL.md §11.1).
pub fn issue_charge(
    keyring: &Keyring,
    terms: &ChargeTerms<'_>,
) -> Result<PaymentChallenge, PaymentChallengeError> {
    let kid = keyring.current_key_id();
    let secret = keyring
        .challenge_key(kid)
        .ok_or(PaymentChallengeError::UnknownKey)?;
    let request = ChargeRequest {
        amount: decimal(terms.amount_sat),
        currency: PAYMENT_CURRENCY.to_owned(),
        description: terms.description.map(str::to_owned),
        method_details: MethodDetails {
            invoice: terms.invoice.to_owned(),
            network: network_of(terms.invoice).map(str::to_owned),
            payment_hash: terms.payment_hash.to_hex(),
        },
        l402: Sale {
            caps: terms.capabilities.to_owned(),
            kid: decimal(u64::from(kid.0)),
            svc: terms.service.to_owned(),
        },
    };
    let mut c = PaymentChallenge {
        id: String::new(),
        realm: terms.realm.to_owned(),
        method: PAYMENT_METHOD.to_owned(),
        intent: PAYMENT_INTENT.to_owned(),
        request: b64url_encode(request.jcs().as_bytes()),
        expires: Some(rfc3339(terms.expires_at)),
        digest: None,
        opaque: None,
        description: terms.description.map(str::to_owned),
        header: None,
    };
    c.id = challenge_id(secret.bytes(), &c);
    c.check()?;
    Ok(c)
}

impl PaymentChallenge {
    /// Writes the challenge as a JSON object (the invoice-service's answer carries it).
    pub(crate) fn write(&self, w: &mut Writer) {
        w.open_object()
            .str_member("id", &self.id)
            .str_member("realm", &self.realm)
            .str_member("method", &self.method)
            .str_member("intent", &self.intent)
            .str_member("request", &self.request)
            .opt_str_member("expires", self.expires.as_deref())
            .opt_str_member("digest", self.digest.as_deref())
            .opt_str_member("opaque", self.opaque.as_deref())
            .opt_str_member("description", self.description.as_deref())
            .opt_str_member("header", self.header.as_deref())
            .close_object();
    }

    /// Reads a challenge object: as the invoice-service sends it, or as a client echoes it
    /// (members this edge does not know are ignored, as the draft requires).
    pub(crate) fn read(r: &mut Reader<'_>) -> JsonResult<PaymentChallenge> {
        let mut c = [None, None, None, None, None];
        let [id, realm, method, intent, request] = &mut c;
        let (mut expires, mut digest, mut opaque, mut description, mut header) =
            (None, None, None, None, None);
        read_object(
            r,
            &mut [
                ("id", Field::Str(id)),
                ("realm", Field::Str(realm)),
                ("method", Field::Str(method)),
                ("intent", Field::Str(intent)),
                ("request", Field::Str(request)),
                ("expires", Field::Str(&mut expires)),
                ("digest", Field::Str(&mut digest)),
                ("opaque", Field::Str(&mut opaque)),
                ("description", Field::Str(&mut description)),
                ("header", Field::Str(&mut header)),
            ],
            Unknown::Skip,
        )?;
        let [id, realm, method, intent, request] = c;
        Ok(PaymentChallenge {
            id: required(id, "id", r)?,
            realm: required(realm, "realm", r)?,
            method: required(method, "method", r)?,
            intent: required(intent, "intent", r)?,
            request: required(request, "request", r)?,
            expires,
            digest,
            opaque,
            description,
            header,
        })
    }

    /// The challenge as a JSON document.
    pub fn to_json(&self) -> String {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }

    /// Reads a challenge document.
    pub fn from_json(body: &[u8]) -> JsonResult<PaymentChallenge> {
        Reader::document(body, PaymentChallenge::read)
    }
}

/// RFC 9110 quoted-string: `"` and `\` escaped; the caller has refused control characters.
fn quoted(out: &mut String, v: &str) {
    out.push('"');
    for ch in v.chars() {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

impl PaymentChallenge {
    /// Refuses what a header cannot carry safely: empty required values, over-long values,
    /// control characters (CR/LF would split the response), ids and encodings outside
    /// base64url.
    pub fn check(&self) -> Result<(), PaymentChallengeError> {
        let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        let safe = |name: &'static str, v: &str, required: bool| {
            if (required && v.is_empty())
                || v.len() > MAX_PARAM
                || v.chars().any(|c| c.is_control() && c != '\t')
            {
                return Err(PaymentChallengeError::UnsafeParam(name));
            }
            Ok(())
        };
        safe("id", &self.id, true)?;
        safe("realm", &self.realm, true)?;
        safe(
            "description",
            self.description.as_deref().unwrap_or(""),
            false,
        )?;
        safe("expires", self.expires.as_deref().unwrap_or(""), false)?;
        safe("digest", self.digest.as_deref().unwrap_or(""), false)?;
        for (name, v) in [
            ("id", Some(&self.id)),
            ("request", Some(&self.request)),
            ("opaque", self.opaque.as_ref()),
        ] {
            if let Some(v) = v
                && (v.is_empty() || v.len() > MAX_PARAM || !v.bytes().all(b64))
            {
                return Err(PaymentChallengeError::UnsafeParam(name));
            }
        }
        if self.method != PAYMENT_METHOD || self.intent != PAYMENT_INTENT {
            return Err(PaymentChallengeError::UnsafeParam("method"));
        }
        if self.header.is_some() {
            return Err(PaymentChallengeError::UnsafeParam("header"));
        }
        Ok(())
    }

    /// The `WWW-Authenticate` value, parameters in the order Aperture's vectors use.
    pub fn www_authenticate(&self) -> String {
        let mut out = String::with_capacity(128 + self.request.len());
        out.push_str("Payment ");
        let params = [
            ("id", Some(&self.id)),
            ("realm", Some(&self.realm)),
            ("method", Some(&self.method)),
            ("intent", Some(&self.intent)),
            ("request", Some(&self.request)),
            ("expires", self.expires.as_ref()),
            ("digest", self.digest.as_ref()),
            ("description", self.description.as_ref()),
            ("opaque", self.opaque.as_ref()),
        ];
        let mut first = true;
        for (name, value) in params {
            if let Some(v) = value {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                out.push_str(name);
                out.push('=');
                quoted(&mut out, v);
            }
        }
        out
    }
}

/// A parsed `Authorization: Payment <token>` credential, not yet verified.
#[derive(Clone)]
pub struct PaymentCredential {
    challenge: PaymentChallenge,
    preimage: Preimage,
}

impl core::fmt::Debug for PaymentCredential {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PaymentCredential")
            .field("challenge_id", &self.challenge.id)
            .finish_non_exhaustive()
    }
}

const fn malformed(detail: &'static str) -> Rejection {
    Rejection::new(Reason::MalformedCredential, detail)
}

/// The draft's credential: `{"challenge": {…}, "source": "…", "payload": {"preimage": "…"}}`
/// (`source` optional and unused; unknown members ignored).
fn read_credential(r: &mut Reader<'_>) -> JsonResult<(PaymentChallenge, String)> {
    let (mut challenge, mut source, mut preimage) = (None, None, None);
    let mut read_challenge = |r: &mut Reader<'_>| {
        challenge = Some(PaymentChallenge::read(r)?);
        Ok(())
    };
    let mut read_payload = |r: &mut Reader<'_>| {
        let mut p = None;
        read_object(r, &mut [("preimage", Field::Str(&mut p))], Unknown::Skip)?;
        preimage = Some(required(p, "preimage", r)?);
        Ok(())
    };
    read_object(
        r,
        &mut [
            ("challenge", Field::With(&mut read_challenge)),
            ("source", Field::Str(&mut source)),
            ("payload", Field::With(&mut read_payload)),
        ],
        Unknown::Skip,
    )?;
    Ok((
        required(challenge, "challenge", r)?,
        required(preimage, "payload", r)?,
    ))
}

impl PaymentCredential {
    /// Decodes the token after `Payment ` (the caller has capped its size).
    pub fn parse(token: &str) -> Result<Self, Rejection> {
        let json = b64url_decode(token).ok_or(malformed("payment credential is not base64url"))?;
        let (challenge, preimage) = Reader::document(&json, read_credential)
            .map_err(|_| malformed("payment credential is not the draft's JSON"))?;
        // Lower or upper case: the same 32 bytes either way.
        let preimage = Preimage::from_hex(&preimage)
            .ok_or(malformed("payment preimage is not 64 hex digits"))?;
        if challenge.id.is_empty() {
            return Err(malformed("payment credential echoes no challenge id"));
        }
        Ok(PaymentCredential {
            challenge,
            preimage,
        })
    }

    /// The echoed challenge.
    pub fn challenge(&self) -> &PaymentChallenge {
        &self.challenge
    }
}

/// A verified charge, ready to be spent once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// The payment hash: the spent-set key and the receipt's reference.
    pub payment_hash: PaymentHash,
    /// When the challenge expires, unix seconds (how long the spent-set must remember it).
    pub expires_at: u64,
    /// The challenge id, for the receipt.
    pub challenge_id: String,
    /// The service paid for.
    pub service: String,
    /// Capabilities granted, comma-separated.
    pub capabilities: String,
    /// Satoshis paid.
    pub amount_sat: u64,
}

const fn invalid(detail: &'static str) -> Rejection {
    Rejection::new(Reason::ChallengeInvalid, detail)
}

/// Checks a Payment credential with no lookup: our binding, our key, this route's service
/// and capabilities, not expired, and `sha256(preimage)` = the challenge's payment hash. The
/// order puts the cheap, secret-free checks first; nothing is trusted before the HMAC holds.
pub(crate) fn verify_payment(
    keyring: &Keyring,
    cred: &PaymentCredential,
    service: &str,
    required_capabilities: &str,
    now: u64,
) -> Result<Charge, Rejection> {
    let c = &cred.challenge;
    if c.method != PAYMENT_METHOD || c.intent != PAYMENT_INTENT || c.header.is_some() {
        return Err(invalid("not a lightning charge challenge of this edge"));
    }
    // Read before the HMAC holds only to learn which key to check it with.
    let request = b64url_decode(&c.request)
        .and_then(|b| ChargeRequest::parse(&b).ok())
        .ok_or(invalid(
            "challenge request is not this edge's charge request",
        ))?;
    let kid = request
        .l402
        .kid
        .parse::<u32>()
        .map_err(|_| invalid("challenge key id is not a number"))?;
    let secret = keyring.challenge_key(KeyId(kid)).ok_or(Rejection::new(
        Reason::UnknownKey,
        "challenge key not in the keyring",
    ))?;
    let expected = challenge_id(secret.bytes(), c);
    if !bool::from(expected.as_bytes().ct_eq(c.id.as_bytes())) {
        return Err(invalid("challenge id does not bind its parameters"));
    }
    // From here on every parameter is one we issued.
    let expires_at = match c.expires.as_deref() {
        Some(e) => parse_rfc3339(e).ok_or(invalid("challenge expiry is not RFC 3339"))?,
        None => return Err(invalid("challenge has no expiry")),
    };
    if now >= expires_at {
        return Err(Rejection::new(
            Reason::ChallengeExpired,
            "challenge expired",
        ));
    }
    let sale = request.l402;
    if sale.svc != service {
        return Err(Rejection::new(
            Reason::ServiceNotAllowed,
            "challenge sells another service",
        ));
    }
    let granted = parse_capabilities(&sale.caps).unwrap_or_default();
    let required = parse_capabilities(required_capabilities).unwrap_or_default();
    if !required.iter().all(|r| granted.contains(r)) {
        return Err(Rejection::new(
            Reason::CapabilityMissing,
            "challenge grants fewer capabilities than the route requires",
        ));
    }
    let amount_sat = request
        .amount
        .parse::<u64>()
        .ok()
        .filter(|a| *a > 0 && request.currency == PAYMENT_CURRENCY)
        .ok_or(invalid("challenge amount is not a positive number of sat"))?;
    let payment_hash = PaymentHash::from_hex(&request.method_details.payment_hash)
        .ok_or(invalid("challenge carries no payment hash"))?;
    if !payment_hash.is_paid_by(&cred.preimage) {
        return Err(Rejection::new(
            Reason::WrongPreimage,
            "sha256(preimage) is not the challenge's payment hash",
        ));
    }
    Ok(Charge {
        payment_hash,
        expires_at,
        challenge_id: c.id.clone(),
        service: sale.svc,
        capabilities: sale.caps,
        amount_sat,
    })
}

impl Charge {
    /// The base64url `Payment-Receipt` for a charge redeemed at `now` (unix seconds)
    /// (draft-lightning-charge, "Receipt Generation"): the payment hash as reference, never
    /// the preimage. Members in JCS order.
    pub fn receipt(&self, now: u64) -> String {
        let mut w = Writer::new();
        w.open_object()
            .str_member("challengeId", &self.challenge_id)
            .str_member("method", PAYMENT_METHOD)
            .str_member("reference", &self.payment_hash.to_hex())
            .str_member("status", "success")
            .str_member("timestamp", &rfc3339(now))
            .close_object();
        b64url_encode(w.finish().as_bytes())
    }
}

/// The problem type (RFC 9457 `type` suffix) and title for a rejection reason
/// (draft-httpauth-payment, "Error Codes").
pub const fn problem(reason: Reason) -> (&'static str, &'static str) {
    match reason {
        // A spent bundle is bought again, as a first purchase.
        Reason::MissingCredential | Reason::AllowanceSpent => {
            ("payment-required", "Payment Required")
        }
        Reason::MalformedCredential | Reason::CredentialTooLarge => {
            ("malformed-credential", "Malformed Credential")
        }
        Reason::ChallengeExpired | Reason::TokenExpired => ("payment-expired", "Payment Expired"),
        Reason::ChallengeInvalid
        | Reason::PaymentSpent
        | Reason::UnknownKey
        | Reason::ServiceNotAllowed
        | Reason::CapabilityMissing => ("invalid-challenge", "Invalid Challenge"),
        _ => ("verification-failed", "Verification Failed"),
    }
}

/// Which schemes a route sells (PROTOCOL.md §11.4): L402, Payment, or both (the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schemes {
    /// `L402` (and its `LSAT` alias).
    pub l402: bool,
    /// `Payment`, method `lightning`, intent `charge`.
    pub payment: bool,
}

impl Default for Schemes {
    fn default() -> Self {
        Schemes::BOTH
    }
}

/// A scheme list other than `l402`, `payment` or both, comma-separated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected l402, payment, or l402,payment")]
pub struct UnknownScheme;

impl Schemes {
    /// Both schemes.
    pub const BOTH: Schemes = Schemes {
        l402: true,
        payment: true,
    };
}

impl core::str::FromStr for Schemes {
    type Err = UnknownScheme;

    fn from_str(s: &str) -> Result<Self, UnknownScheme> {
        let mut out = Schemes {
            l402: false,
            payment: false,
        };
        // Read per request for routes that name their schemes: no allocation.
        for part in s.split(',').map(str::trim) {
            if part.eq_ignore_ascii_case("l402") {
                out.l402 = true;
            } else if part.eq_ignore_ascii_case("payment") {
                out.payment = true;
            } else {
                return Err(UnknownScheme);
            }
        }
        Ok(out)
    }
}

/// Whether the client's `Accept-Payment` (draft-httpauth-payment, "Client Payment
/// Preferences") refuses `lightning/charge`: a range that matches it with `q=0`, and none
/// more specific with `q>0`. Absent or malformed: accepted.
pub fn refuses_lightning_charge(accept_payment: Option<&[u8]>) -> bool {
    let Some(v) = accept_payment.and_then(|v| core::str::from_utf8(v).ok()) else {
        return false;
    };
    // (specificity, q) of the most specific matching range.
    let mut best: Option<(u8, bool)> = None;
    for range in v.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let Some((m, i)) = parts.next().and_then(|t| t.split_once('/')) else {
            continue;
        };
        let method_ok = m == "*" || m.eq_ignore_ascii_case(PAYMENT_METHOD);
        let intent_ok = i == "*" || i.eq_ignore_ascii_case(PAYMENT_INTENT);
        if !(method_ok && intent_ok) {
            continue;
        }
        let specificity = u8::from(m != "*") * 2 + u8::from(i != "*");
        let zero = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .any(|q| crate::paywall::qvalue(q) == Some(0));
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, zero));
        }
    }
    best.is_some_and(|(_, zero)| zero)
}

#[cfg(test)]
#[path = "payment_tests.rs"]
mod tests;
