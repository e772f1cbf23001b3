//! A proxy-wasm HTTP filter that only says `Continue`: what the L402 filter's cost is
//! measured against (same SDK, same VM, same crossing; no work).
//!
//! With a plugin configuration it becomes a probe: the configuration lists host calls to make
//! on every request, `op` or `op*N`, comma-separated — `headers` (copy the request header map
//! into the VM), `metadata` (read the route's `l402` metadata), `time`, `metric`
//! (increment a counter), `remove` (remove a request header), `set` (set a request header).
//! These are exactly the host calls the L402 filter makes, so the benchmark can price each
//! one and tell the filter's own work from the crossings it pays for.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// One host call of the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `get_map_bytes(HttpRequestHeaders)`.
    Headers,
    /// `get_property(xds.route_metadata.filter_metadata.l402)`: the route's metadata map.
    Metadata,
    /// `get_current_time`.
    Time,
    /// `increment_metric` on one counter.
    Metric,
    /// `remove_map_value` of a request header the request does not carry.
    Remove,
    /// `set_map_value` of one request header.
    Set,
}

/// Parses `op[*N],...`; an empty configuration is the pure no-op.
pub fn parse(config: &str) -> Result<Vec<Op>, String> {
    let mut ops = Vec::new();
    for item in config.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, times) = match item.split_once('*') {
            Some((n, t)) => (
                n,
                t.parse::<usize>()
                    .map_err(|_| format!("bad repeat in {item:?}"))?,
            ),
            None => (item, 1),
        };
        let op = match name {
            "headers" => Op::Headers,
            "metadata" => Op::Metadata,
            "time" => Op::Time,
            "metric" => Op::Metric,
            "remove" => Op::Remove,
            "set" => Op::Set,
            _ => return Err(format!("unknown op {name:?}")),
        };
        ops.extend(core::iter::repeat_n(op, times));
    }
    Ok(ops)
}

#[cfg(target_arch = "wasm32")]
mod glue {
    use alloc::rc::Rc;
    use alloc::string::String;
    use alloc::vec::Vec;

    use l402_proxy_abi::{Action, BufferType, LogLevel, MapType, host};

    use super::{Op, parse};

    l402_proxy_abi::main!(Root);

    struct Root {
        ops: Rc<Vec<Op>>,
        metric: u32,
        #[cfg(feature = "verify-size")]
        verify: Option<Rc<Verify>>,
    }

    /// The `verify-size` build's state, shared by the VM's requests as the filter's is.
    #[cfg(feature = "verify-size")]
    struct Verify {
        verifier: l402_core::Verifier,
        cache: core::cell::RefCell<l402_core::VerifiedCache>,
    }

    impl l402_proxy_abi::Root for Root {
        type Http = Probe;

        fn new(_: u32) -> Self {
            Root {
                ops: Rc::new(Vec::new()),
                metric: 0,
                #[cfg(feature = "verify-size")]
                verify: None,
            }
        }

        fn on_configure(&mut self, _: usize) -> bool {
            let config = host::buffer(BufferType::PluginConfiguration, 0, usize::MAX)
                .ok()
                .flatten()
                .unwrap_or_default();
            match parse(&String::from_utf8_lossy(&config)) {
                Ok(ops) => self.ops = Rc::new(ops),
                Err(e) => {
                    host::log(LogLevel::Critical, &["probe config: ", &e].concat());
                    return false;
                }
            }
            self.metric = host::define_counter("probe.requests").unwrap_or_default();
            #[cfg(feature = "verify-size")]
            {
                // The keyring from the VM's environment, as the filter can take it; without
                // one the configuration is refused.
                let keys = host::env_var("L402_KEYS").unwrap_or_default();
                let Ok(keyring) = keys.parse() else {
                    host::log(LogLevel::Critical, "probe config: no valid L402_KEYS");
                    return false;
                };
                self.verify = Some(Rc::new(Verify {
                    verifier: l402_core::Verifier::new(keyring),
                    cache: core::cell::RefCell::new(l402_core::VerifiedCache::new(1024)),
                }));
            }
            true
        }

        fn create_http(&self, _: u32) -> Probe {
            Probe {
                ops: self.ops.clone(),
                metric: self.metric,
                #[cfg(feature = "verify-size")]
                verify: self.verify.clone(),
            }
        }
    }

    struct Probe {
        ops: Rc<Vec<Op>>,
        metric: u32,
        #[cfg(feature = "verify-size")]
        verify: Option<Rc<Verify>>,
    }

    impl l402_proxy_abi::Http for Probe {
        fn on_request_headers(&mut self, _: usize, _: bool) -> Action {
            for op in self.ops.iter() {
                let _ = match op {
                    Op::Headers => host::header_map(MapType::HttpRequestHeaders).map(drop),
                    Op::Metadata => {
                        host::property(&["xds", "route_metadata", "filter_metadata", "l402"])
                            .map(drop)
                    }
                    Op::Time => host::current_time_ns().map(drop),
                    Op::Metric => host::increment_metric(self.metric, 1),
                    Op::Remove => {
                        host::remove_header(MapType::HttpRequestHeaders, "x-probe-absent")
                    }
                    Op::Set => host::set_header(
                        MapType::HttpRequestHeaders,
                        "x-probe",
                        b"0123456789abcdef0123456789abcdef",
                    ),
                };
            }
            #[cfg(feature = "verify-size")]
            return match &self.verify {
                Some(v) => verify_only(v),
                None => unavailable(),
            };
            #[cfg(not(feature = "verify-size"))]
            Action::Continue
        }
    }

    #[cfg(feature = "verify-size")]
    fn unavailable() -> Action {
        let _ = host::send_local_response(503, &[], b"", None);
        Action::Pause
    }

    /// The `verify-size` build's request path: the credential headers, verification with the
    /// cache, the token id forwarded or the rejection's reason answered; a host call that
    /// fails is answered 503.
    #[cfg(feature = "verify-size")]
    fn verify_only(verify: &Verify) -> Action {
        let Ok(map) = host::header_map(MapType::HttpRequestHeaders) else {
            return unavailable();
        };
        let Some(headers) = l402_proxy_abi::decode_pairs(&map) else {
            return unavailable();
        };
        let credentials = l402_core::Credentials::from_headers(headers.iter().copied());
        let Ok(now) = host::current_time_ns().map(|ns| ns / 1_000_000_000) else {
            return unavailable();
        };
        let Ok(mut cache) = verify.cache.try_borrow_mut() else {
            return unavailable();
        };
        let request = l402_core::Request {
            service: "weather",
            capabilities: "read",
            now,
            client_ip: None,
        };
        match verify.verifier.verify_cached(
            &credentials,
            &request,
            &l402_core::NoDenyList,
            &mut cache,
        ) {
            Ok(a) => {
                let id = a.token_id().to_hex();
                let _ = host::set_header(
                    MapType::HttpRequestHeaders,
                    "x-l402-token-id",
                    id.as_bytes(),
                );
                Action::Continue
            }
            Err(r) => {
                let _ = host::send_local_response(401, &[], r.reason.as_str().as_bytes(), None);
                Action::Pause
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ops_and_repeats() {
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(
            parse("headers, metadata*2,set"),
            Ok(vec![Op::Headers, Op::Metadata, Op::Metadata, Op::Set])
        );
        assert!(parse("headers*x").is_err());
        assert!(parse("nope").is_err());
    }
}
