//! The documented example config parses (with its secrets from the environment).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use std::collections::HashMap;

use invoice_service::config::{Config, env};

#[test]
fn example_config_is_valid() {
    // Relative: cargo runs tests from the package folder (a binary reused from a shared target
    // dir may carry another clone's CARGO_MANIFEST_DIR).
    let path = "config.example.toml";
    let env = HashMap::from([
        (
            env::KEYS,
            "1:0101010101010101010101010101010101010101010101010101010101010101",
        ),
        (env::EDGE_TOKENS, "an-edge-token-of-some-length"),
        (invoice_service::backend::lnd::MACAROON_ENV, "0201036c6e64"),
    ]);
    // The example points at a cert path that does not exist here; drop only that line.
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("tls_cert_file = \"/var/lib/lnd/tls.cert\"\n", "");
    let c = Config::parse(&text, &env).unwrap();
    assert_eq!(c.backend.node.name(), "lnd");
    assert_eq!(c.services[0].entry.name.as_str(), "weather");
    assert!(c.services[0].pricing.is_none() && c.services[0].binding.is_none());
    assert!(c.services[1].pricing.is_some() && c.services[1].binding.is_some());
}
