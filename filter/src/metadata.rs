//! A route's `l402` metadata as Envoy hands it over. Envoy answers a property that is a map (a
//! route's `filter_metadata.l402` struct) in proxy-wasm's map serialization, so one property
//! read returns every key: each read walks Envoy's property path and costs about 2 µs of
//! Envoy CPU (measured by the benchmark's probe filter), more than the rest of a cache hit.

use l402_core::HostSale;

pub use l402_proxy_abi::decode_pairs;

/// What a route sells, from its `l402` metadata, borrowed from the property bytes. No metadata
/// (an empty map) is [`HostSale::NotAttached`]; metadata that does not decode, names no
/// service, or is not UTF-8 is [`HostSale::Malformed`], which core answers 503: an operator
/// meant to sell that route, so a typo must not give it away.
pub fn route_sale(bytes: &[u8]) -> HostSale<'_> {
    let Some(pairs) = decode_pairs(bytes) else {
        return HostSale::Malformed;
    };
    if pairs.is_empty() {
        return HostSale::NotAttached;
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| core::str::from_utf8(v))
    };
    // Absent is empty; present but not UTF-8 is malformed.
    let optional = |name: &str| get(name).unwrap_or(Ok(""));
    match (
        get("service"),
        optional("capabilities"),
        optional("schemes"),
    ) {
        (Some(Ok(service)), Ok(capabilities), Ok(schemes)) => HostSale::Attached {
            service,
            capabilities,
            schemes,
        },
        _ => HostSale::Malformed,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// The encoder, as Envoy's `marshalPairs` writes it.
    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn reads_service_and_capabilities() {
        let b = encode(&[(b"capabilities", b"read"), (b"service", b"weather")]);
        assert_eq!(
            route_sale(&b),
            HostSale::Attached {
                service: "weather",
                capabilities: "read",
                schemes: "",
            }
        );
        let b = encode(&[(b"service", b"maps")]);
        assert_eq!(
            route_sale(&b),
            HostSale::Attached {
                service: "maps",
                capabilities: "",
                schemes: "",
            }
        );
        assert_eq!(route_sale(&encode(&[])), HostSale::NotAttached);
        let b = encode(&[(b"service", b"maps"), (b"schemes", b"payment")]);
        assert_eq!(
            route_sale(&b),
            HostSale::Attached {
                service: "maps",
                capabilities: "",
                schemes: "payment",
            }
        );
        let b = encode(&[(b"service", b"maps"), (b"schemes", b"\xff")]);
        assert_eq!(route_sale(&b), HostSale::Malformed);
    }

    #[test]
    fn unusable_metadata_is_malformed_not_unsold() {
        for b in [
            encode(&[(b"capabilities", b"read")]),
            encode(&[(b"service", b"\xff")]),
            encode(&[(b"service", b"weather"), (b"capabilities", b"re\xffad")]),
            b"\x01\x00".to_vec(),
        ] {
            assert_eq!(route_sale(&b), HostSale::Malformed);
        }
    }

    #[test]
    fn malformed_bytes_are_none_not_a_panic() {
        let good = encode(&[(b"service", b"weather"), (b"capabilities", b"read")]);
        for cut in 0..good.len() {
            assert_eq!(decode_pairs(&good[..cut]), None, "cut at {cut}");
        }
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(decode_pairs(&no_nul), None);
        assert_eq!(decode_pairs(&u32::MAX.to_le_bytes()), None);
        let mut huge = encode(&[(b"service", b"weather")]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_pairs(&huge), None);
        assert_eq!(decode_pairs(&[]), None);
    }
}
