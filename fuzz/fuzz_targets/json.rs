//! Core's JSON reader against serde_json: every parser of a wire type never panics on any body;
//! a document core accepts serde_json accepts (save numbers outside f64, which core skips as
//! text) and the reverse up to core's nesting limit; a string or integer core reads has the
//! value serde_json reads, and core's writer gives back a string serde_json reads as the same.
#![no_main]

use l402_core::json::{JsonErrorKind, MAX_DEPTH, Reader, Writer};
use l402_core::{
    AllowanceRequest, Catalog, ChallengeRequest, ChallengeResponse, ErrorBody, InvoiceStatus,
    InvoiceStatusRequest, PaymentChallenge, RedeemRequest, Routes,
};
use libfuzzer_sys::fuzz_target;

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = ChallengeRequest::parse(data);
    let _ = ChallengeResponse::parse(data);
    let _ = ChallengeResponse::parse_challenge(data);
    let _ = InvoiceStatusRequest::parse(data);
    let _ = InvoiceStatus::parse(data);
    let _ = ErrorBody::parse(data);
    let _ = RedeemRequest::parse(data);
    let _ = AllowanceRequest::parse(data);
    let _ = PaymentChallenge::from_json(data);
    let _ = Catalog::parse(data);
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = Routes::from_json(text);
    }

    let ours = Reader::document(data, |r| r.skip());
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    match (&ours, &theirs) {
        (Ok(()), Err(e)) => assert!(
            e.to_string().contains("number out of range"),
            "core accepted what serde_json refuses: {e}"
        ),
        (Err(e), Ok(v)) => assert!(
            e.kind == JsonErrorKind::TooDeep && depth(v) > MAX_DEPTH as usize,
            "core refused what serde_json accepts: {e}"
        ),
        _ => {}
    }
    let Ok(value) = theirs else {
        return;
    };
    if let Ok(s) = Reader::document(data, |r| r.owned()) {
        assert_eq!(value.as_str(), Some(s.as_str()));
        let mut w = Writer::new();
        w.string(&s);
        let written = w.finish();
        let back: serde_json::Value = serde_json::from_str(&written).expect("writer's string");
        assert_eq!(back.as_str(), Some(s.as_str()));
    }
    if let Ok(n) = Reader::document(data, |r| r.u64()) {
        assert_eq!(value.as_u64(), Some(n));
    }
});
