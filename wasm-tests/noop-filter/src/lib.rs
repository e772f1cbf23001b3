//! A proxy-wasm HTTP filter that only says `Continue`: what the L402 filter's cost is
//! measured against (same SDK, same VM, same crossing; no work).
//!
//! With a plugin configuration it becomes a probe: the configuration lists host calls to make
//! on every request, `op` or `op*N`, comma-separated — `headers` (copy the request header map
//! into the VM), `metadata` (read the route's `l402` metadata), `time`, `metric`
//! (increment a counter), `remove` (remove a request header), `set` (set a request header).
//! These are exactly the host calls the L402 filter makes, so the benchmark can price each
//! one and tell the filter's own work from the crossings it pays for.

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
        ops.extend(std::iter::repeat_n(op, times));
    }
    Ok(ops)
}

#[cfg(target_arch = "wasm32")]
mod glue {
    use std::rc::Rc;

    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

    use super::{Op, parse};

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
    }}

    #[derive(Default)]
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
        cache: std::cell::RefCell<l402_core::VerifiedCache>,
    }
    impl Context for Root {}
    impl RootContext for Root {
        fn on_configure(&mut self, _: usize) -> bool {
            let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
                .ok()
                .flatten()
                .unwrap_or_default();
            match parse(&String::from_utf8_lossy(&config)) {
                Ok(ops) => self.ops = Rc::new(ops),
                Err(e) => {
                    let _ = hostcalls::log(LogLevel::Critical, &format!("probe config: {e}"));
                    return false;
                }
            }
            self.metric =
                hostcalls::define_metric(MetricType::Counter, "probe.requests").unwrap_or_default();
            #[cfg(feature = "verify-size")]
            {
                // The keyring from the VM's environment, as the filter can take it; without
                // one the configuration is refused.
                let keys = std::env::var("L402_KEYS").unwrap_or_default();
                let Ok(keyring) = keys.parse() else {
                    let _ = hostcalls::log(LogLevel::Critical, "probe config: no valid L402_KEYS");
                    return false;
                };
                self.verify = Some(Rc::new(Verify {
                    verifier: l402_core::Verifier::new(keyring),
                    cache: std::cell::RefCell::new(l402_core::VerifiedCache::new(1024)),
                }));
            }
            true
        }
        fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Probe {
                ops: self.ops.clone(),
                metric: self.metric,
                #[cfg(feature = "verify-size")]
                verify: self.verify.clone()?,
            }))
        }
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Probe {
        ops: Rc<Vec<Op>>,
        metric: u32,
        #[cfg(feature = "verify-size")]
        verify: Rc<Verify>,
    }
    impl Context for Probe {}
    impl HttpContext for Probe {
        fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
            for op in self.ops.iter() {
                let _ = match op {
                    Op::Headers => hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map(drop),
                    Op::Metadata => hostcalls::get_property(vec![
                        "xds",
                        "route_metadata",
                        "filter_metadata",
                        "l402",
                    ])
                    .map(drop),
                    Op::Time => hostcalls::get_current_time().map(drop),
                    Op::Metric => hostcalls::increment_metric(self.metric, 1),
                    Op::Remove => {
                        hostcalls::remove_map_value(MapType::HttpRequestHeaders, "x-probe-absent")
                    }
                    Op::Set => hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        "x-probe",
                        Some("0123456789abcdef0123456789abcdef"),
                    ),
                };
            }
            #[cfg(feature = "verify-size")]
            return verify_only(&self.verify);
            #[cfg(not(feature = "verify-size"))]
            Action::Continue
        }
    }

    /// The `verify-size` build's request path: the credential headers, verification with the
    /// cache, the token id forwarded or the rejection's reason answered; a host call that
    /// fails is answered 503.
    #[cfg(feature = "verify-size")]
    fn verify_only(verify: &Verify) -> Action {
        let unavailable = || {
            let _ = hostcalls::send_http_response(503, vec![], None);
            Action::Pause
        };
        let Ok(headers) = hostcalls::get_map_bytes(MapType::HttpRequestHeaders) else {
            return unavailable();
        };
        let credentials = l402_core::Credentials::from_headers(headers.iter().map(|(n, v)| (n, v)));
        let Some(now) = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
        else {
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
                let _ = hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    "x-l402-token-id",
                    Some(&id),
                );
                Action::Continue
            }
            Err(r) => {
                let _ =
                    hostcalls::send_http_response(401, vec![], Some(r.reason.as_str().as_bytes()));
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
