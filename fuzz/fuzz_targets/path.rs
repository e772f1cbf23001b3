//! Request targets as the origin will read them: never panics; an accepted target's canonical
//! form is a fixed point (canonical again, unchanged), and a prefix match never splits a
//! segment.
#![no_main]

use l402_core::{canonicalize, under_prefix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(t) = canonicalize(data) else {
        return;
    };
    let again = canonicalize(t.target().as_bytes());
    assert!(
        matches!(&again, Ok(a) if !a.changed() && a.path() == t.path() && a.query() == t.query())
    );
    if under_prefix(t.path(), "/weather") {
        let rest = &t.path()["/weather".len()..];
        assert!(rest.is_empty() || rest.starts_with('/'));
    }
});
