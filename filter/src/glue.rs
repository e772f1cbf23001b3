//! The proxy-wasm contexts. Everything protocol is a core call; this file only moves bytes
//! between Envoy and core.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use l402_core::{
    CREDENTIAL_HEADERS, ChallengeRequest, ChallengeResponse, Credentials, Denial, HttpResponse,
    Reason, Request, VerifiedCache, is_cors_preflight, is_grpc, render,
};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, GrpcStatusCode, LogLevel, MapType, MetricType};

use crate::config::FilterConfig;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

/// Envoy stats (shown as `wasmcustom.l402.*`). Ids are defined once per VM.
#[derive(Default)]
struct Stats {
    challenges: Option<u32>,
    authorized: Option<u32>,
    unauthorized: Option<u32>,
    unavailable: Option<u32>,
    invoice_service_errors: Option<u32>,
    preflight: Option<u32>,
    cache_hits: Option<u32>,
    rejected: Vec<(Reason, Option<u32>)>,
}

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, name).ok()
}

impl Stats {
    fn define() -> Stats {
        Stats {
            challenges: counter("l402.challenges"),
            authorized: counter("l402.authorized"),
            unauthorized: counter("l402.unauthorized"),
            unavailable: counter("l402.unavailable"),
            invoice_service_errors: counter("l402.invoice_service_errors"),
            preflight: counter("l402.preflight"),
            cache_hits: counter("l402.cache_hits"),
            rejected: Reason::ALL
                .iter()
                .map(|r| (*r, counter(&format!("l402.rejected.{}", r.as_str()))))
                .collect(),
        }
    }

    fn inc(id: Option<u32>, by: i64) {
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, by);
        }
    }

    fn rejected(&self, reason: Reason) {
        let id = self
            .rejected
            .iter()
            .find(|(r, _)| *r == reason)
            .and_then(|(_, id)| *id);
        Self::inc(id, 1);
    }
}

/// Per VM: the configuration, the cache, the stats. Shared by every request of this worker
/// thread through `Rc` (a VM is single-threaded).
struct Shared {
    config: FilterConfig,
    cache: RefCell<VerifiedCache>,
    stats: Stats,
}

#[derive(Default)]
struct Root {
    shared: Option<Rc<Shared>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        ) {
            Ok(Some(b)) => b,
            _ => {
                log(
                    LogLevel::Critical,
                    "l402 filter config: configuration: missing (a JSON object is required)",
                );
                return false;
            }
        };
        match FilterConfig::parse(&bytes, &|name| std::env::var(name).ok()) {
            Ok(config) => {
                let cache = RefCell::new(VerifiedCache::new(config.cache_size));
                self.shared = Some(Rc::new(Shared {
                    config,
                    cache,
                    stats: Stats::define(),
                }));
                true
            }
            Err(e) => {
                // Refuse the config: Envoy rejects the listener update.
                log(LogLevel::Critical, &e.to_string());
                false
            }
        }
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            shared: self.shared.clone(),
            pending: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// A request waiting for its challenge.
struct Pending {
    reason: Reason,
    grpc: bool,
}

struct Http {
    shared: Option<Rc<Shared>>,
    pending: Option<Pending>,
}

fn header_str<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

/// The route's `l402` metadata, in one property read (decoded by `metadata::route_sale`).
fn route_metadata() -> Option<Vec<u8>> {
    hostcalls::get_property(vec!["xds", "route_metadata", "filter_metadata", "l402"])
        .ok()
        .flatten()
}

fn now_unix() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn send(resp: &HttpResponse) {
    let sent = match resp.grpc {
        Some(g) => {
            // Envoy's local reply for gRPC: trailers-only with this status.
            let metadata: Vec<(&str, &[u8])> = resp
                .headers
                .iter()
                .filter(|(n, _)| !matches!(*n, "grpc-status" | "grpc-message" | "content-type"))
                .map(|(n, v)| (*n, v.as_bytes()))
                .collect();
            hostcalls::send_grpc_response(grpc_code(g.code), Some(g.message), metadata)
        }
        None => {
            let headers: Vec<(&str, &str)> =
                resp.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            hostcalls::send_http_response(
                u32::from(resp.status),
                headers,
                Some(resp.body.as_bytes()),
            )
        }
    };
    if sent.is_err() {
        log(LogLevel::Error, "l402: could not send the local reply");
    }
}

fn grpc_code(code: u32) -> GrpcStatusCode {
    match code {
        13 => GrpcStatusCode::Internal,
        14 => GrpcStatusCode::Unavailable,
        16 => GrpcStatusCode::Unauthenticated,
        _ => GrpcStatusCode::Unknown,
    }
}

impl Http {
    fn unavailable(&self, shared: &Shared, grpc: bool) -> Action {
        Stats::inc(shared.stats.unavailable, 1);
        send(&render(
            &Denial::Unavailable {
                retry_after_secs: shared.config.retry_after_secs,
            },
            grpc,
        ));
        Action::Pause
    }

    fn challenge(&mut self, shared: &Shared, service: &str, reason: Reason, grpc: bool) -> Action {
        let is = &shared.config.invoice_service;
        let headers = vec![
            (":method", "POST"),
            (":path", is.path.as_str()),
            (":authority", is.authority.as_str()),
            ("content-type", "application/json"),
            ("authorization", is.authorization.as_str()),
        ];
        let body = ChallengeRequest::body(service, Some(reason.as_str()));
        match hostcalls::dispatch_http_call(&is.cluster, headers, Some(&body), vec![], is.timeout) {
            Ok(_) => {
                self.pending = Some(Pending { reason, grpc });
                Action::Pause
            }
            Err(_) => {
                Stats::inc(shared.stats.invoice_service_errors, 1);
                log(
                    LogLevel::Warn,
                    "l402: cannot call the invoice-service cluster",
                );
                self.unavailable(shared, grpc)
            }
        }
    }
}

impl Context for Http {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let (Some(shared), Some(pending)) = (self.shared.clone(), self.pending.take()) else {
            return;
        };
        // On a timeout or reset Envoy calls back with no headers: no :status, a failure.
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten();
        let ok = status.as_deref() == Some(b"200".as_slice());
        let body = if ok {
            hostcalls::get_buffer(
                proxy_wasm::types::BufferType::HttpCallResponseBody,
                0,
                body_size,
            )
            .ok()
            .flatten()
        } else {
            None
        };
        match body.map(|b| ChallengeResponse::parse_challenge(&b)) {
            Some(Ok(challenge)) => {
                Stats::inc(shared.stats.challenges, 1);
                send(&render(
                    &Denial::PaymentRequired {
                        challenge: &challenge,
                        reason: pending.reason,
                    },
                    pending.grpc,
                ));
            }
            other => {
                Stats::inc(shared.stats.invoice_service_errors, 1);
                let why = match other {
                    Some(Err(e)) => format!("unusable challenge: {e}"),
                    _ => format!(
                        "invoice-service answered {}",
                        status.map_or("nothing (timeout or reset)".into(), |s| {
                            String::from_utf8_lossy(&s).into_owned()
                        })
                    ),
                };
                log(LogLevel::Warn, &format!("l402: {why}"));
                self.unavailable(&shared, pending.grpc);
            }
        }
    }
}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _n: usize, _end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            // No valid configuration: fail closed.
            send(&render(
                &Denial::Unavailable {
                    retry_after_secs: l402_core::DEFAULT_RETRY_AFTER_SECS,
                },
                false,
            ));
            return Action::Pause;
        };
        let config = &shared.config;
        // One read of the headers; every later decision is made on this copy, and a host call
        // is spent only on what must change (each crossing costs more than the check).
        let Ok(headers) = hostcalls::get_map_bytes(MapType::HttpRequestHeaders) else {
            return self.unavailable(&shared, false);
        };
        let present = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        // Clients never set these: only this filter does, after verifying.
        for h in [&config.token_id_header, &config.service_header] {
            if present(h) {
                let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, h);
            }
        }
        // Route metadata first (standalone Envoy); the configured path prefixes where the
        // control plane cannot set it (Istio, Envoy Gateway).
        // Borrowed from the property bytes or the configuration: nothing copied per request.
        let metadata = route_metadata();
        let (service, capabilities) =
            match metadata.as_deref().and_then(crate::metadata::route_sale) {
                Some(sale) => sale,
                None => match config
                    .routes
                    .route_for(header_str(&headers, ":path").unwrap_or_default())
                {
                    Some(r) => (r.service.as_str(), Cow::Borrowed(r.capabilities.as_str())),
                    None => return Action::Continue, // not a paid route
                },
            };
        let method = header_str(&headers, ":method").unwrap_or_default();
        if is_cors_preflight(method, present("access-control-request-method")) {
            Stats::inc(shared.stats.preflight, 1);
            return Action::Continue;
        }
        let grpc = is_grpc(header_str(&headers, "content-type"));
        let credentials =
            Credentials::from_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
        let request = Request {
            service,
            capabilities: &capabilities,
            now: now_unix(),
        };
        let decision = match shared.cache.try_borrow_mut() {
            Ok(mut cache) => {
                let before = cache.stats().0;
                let d = config.verifier.verify_cached(
                    &credentials,
                    &request,
                    &config.deny_list,
                    &mut cache,
                );
                if cache.stats().0 > before {
                    Stats::inc(shared.stats.cache_hits, 1);
                }
                d
            }
            Err(_) => config
                .verifier
                .verify(&credentials, &request, &config.deny_list),
        };
        match decision {
            Ok(authorized) => {
                Stats::inc(shared.stats.authorized, 1);
                if config.strip_credential {
                    for h in CREDENTIAL_HEADERS.into_iter().filter(|h| present(h)) {
                        let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, h);
                    }
                }
                let token_id = authorized.token_id().to_hex();
                let _ = hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    &config.token_id_header,
                    Some(&token_id),
                );
                let _ = hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    &config.service_header,
                    Some(authorized.service()),
                );
                Action::Continue
            }
            Err(rejection) => {
                shared.stats.rejected(rejection.reason);
                if config.on_invalid.wants_challenge(rejection.reason) {
                    self.challenge(&shared, service, rejection.reason, grpc)
                } else {
                    Stats::inc(shared.stats.unauthorized, 1);
                    send(&render(
                        &Denial::Unauthorized {
                            reason: rejection.reason,
                        },
                        grpc,
                    ));
                    Action::Pause
                }
            }
        }
    }
}
