//! Credential parsing on arbitrary header values: never panics, always a decision.
#![no_main]

use l402_core::{Credentials, HeaderKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the header; a 0xff byte splits the rest into several values.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let kind = if selector & 1 == 0 {
        HeaderKind::Authorization
    } else {
        HeaderKind::Macaroon
    };
    let mut creds = Credentials::default();
    for value in rest.split(|&b| b == 0xff) {
        creds.add(kind, value);
    }
    for c in creds.candidates() {
        let _ = c.source();
    }
});
