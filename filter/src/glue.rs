//! The proxy-wasm contexts. Every decision is `l402_core::Edge`'s; this file only moves bytes
//! between Envoy and core, and counts outcomes.

use alloc::rc::Rc;
use core::cell::RefCell;

use crate::prelude::*;

use l402_core::{
    AllowanceAnswer, ClientAddress, Edge, EdgeRequest, EdgeState, Forward, GrpcCode, HostFailure,
    HostSale, HttpResponse, MeterCall, MeteredUnit, Outcome, PathError, PendingChallenge, Reason,
    RedeemCall, Redeemed, Reply, ServiceCall, Step, misconfigured_reply,
};
use l402_proxy_abi::{Action, BufferType, LogLevel, MapType, host};

use crate::config::FilterConfig;

l402_proxy_abi::main!(Root);

fn log(level: LogLevel, msg: &str) {
    host::log(level, msg);
}

/// Envoy stats (shown as `wasmcustom.l402.*`). Ids are defined once per VM. Counts gather in
/// the VM and reach Envoy on the 500 ms timer: a host call each (0.35 µs measured by the probe
/// filter) would be two on every authorized request.
#[derive(Default)]
struct Stats {
    /// Counts not yet given to Envoy, by metric id.
    pending: RefCell<Vec<(u32, u64)>>,
    challenges: Option<u32>,
    authorized: Option<u32>,
    unauthorized: Option<u32>,
    unavailable: Option<u32>,
    invoice_service_errors: Option<u32>,
    preflight: Option<u32>,
    cache_hits: Option<u32>,
    rate_limited: Option<u32>,
    redeemed: Option<u32>,
    metered: Option<u32>,
    allowance_released: Option<u32>,
    token_rate_limited: Option<u32>,
    discovery: Option<u32>,
    paywall_settled: Option<u32>,
    rejected: Vec<(Reason, Option<u32>)>,
    bad_request: Vec<(PathError, Option<u32>)>,
    host_failure: Vec<(HostFailure, Option<u32>)>,
}

fn counter(name: &str) -> Option<u32> {
    host::define_counter(name).ok()
}

fn find<K: PartialEq + Copy>(ids: &[(K, Option<u32>)], key: K) -> Option<u32> {
    ids.iter().find(|(k, _)| *k == key).and_then(|(_, id)| *id)
}

impl Stats {
    fn define() -> Stats {
        Stats {
            pending: RefCell::new(Vec::new()),
            challenges: counter("l402.challenges"),
            authorized: counter("l402.authorized"),
            unauthorized: counter("l402.unauthorized"),
            unavailable: counter("l402.unavailable"),
            invoice_service_errors: counter("l402.invoice_service_errors"),
            preflight: counter("l402.preflight"),
            cache_hits: counter("l402.cache_hits"),
            rate_limited: counter("l402.challenge_rate_limited"),
            redeemed: counter("l402.payment_redeemed"),
            metered: counter("l402.metered"),
            allowance_released: counter("l402.allowance_released"),
            token_rate_limited: counter("l402.token_rate_limited"),
            discovery: counter("l402.discovery_served"),
            paywall_settled: counter("l402.paywall_settled"),
            rejected: Reason::ALL
                .iter()
                .map(|r| (*r, counter(&["l402.rejected.", r.as_str()].concat())))
                .collect(),
            bad_request: PathError::ALL
                .iter()
                .map(|e| (*e, counter(&["l402.bad_request.", e.as_str()].concat())))
                .collect(),
            host_failure: HostFailure::ALL
                .iter()
                .map(|f| (*f, counter(&["l402.host_failure.", f.as_str()].concat())))
                .collect(),
        }
    }

    fn inc(&self, id: Option<u32>) {
        let (Some(id), Ok(mut pending)) = (id, self.pending.try_borrow_mut()) else {
            return;
        };
        match pending.iter_mut().find(|(i, _)| *i == id) {
            Some((_, n)) => *n += 1,
            None => pending.push((id, 1)),
        }
    }

    /// Gives Envoy the counts gathered since the last flush.
    fn flush(&self) {
        let Ok(mut pending) = self.pending.try_borrow_mut() else {
            return;
        };
        for (id, n) in pending.drain(..) {
            let _ = host::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The counters an outcome moves.
    fn count(&self, outcome: Outcome) {
        match outcome {
            Outcome::Unsold => {}
            Outcome::Preflight => self.inc(self.preflight),
            Outcome::Authorized { cache_hit } => {
                self.inc(self.authorized);
                if cache_hit {
                    self.inc(self.cache_hits);
                }
            }
            Outcome::Metered { cache_hit } => {
                self.inc(self.authorized);
                self.inc(self.metered);
                if cache_hit {
                    self.inc(self.cache_hits);
                }
            }
            Outcome::Redeemed => {
                self.inc(self.authorized);
                self.inc(self.redeemed);
            }
            Outcome::Rejected(reason) => self.inc(find(&self.rejected, reason)),
            Outcome::Unauthorized(reason) => {
                self.inc(find(&self.rejected, reason));
                self.inc(self.unauthorized);
            }
            Outcome::Challenged => self.inc(self.challenges),
            Outcome::BadRequest(e) => self.inc(find(&self.bad_request, e)),
            Outcome::TokenRateLimited => self.inc(self.token_rate_limited),
            Outcome::RateLimited => {
                self.inc(self.rate_limited);
                self.inc(self.unavailable);
            }
            Outcome::InvoiceServiceFailed => {
                self.inc(self.invoice_service_errors);
                self.inc(self.unavailable);
            }
            Outcome::HostFailure(f) => {
                self.inc(find(&self.host_failure, f));
                self.inc(self.unavailable);
            }
            Outcome::Discovery => self.inc(self.discovery),
            Outcome::PaymentStatus { settled } => {
                if settled {
                    self.inc(self.paywall_settled);
                }
            }
        }
    }
}

/// Per VM: the configuration, the edge's state, the stats. Shared by every request of this
/// worker thread through `Rc` (a VM is single-threaded).
struct Shared {
    config: FilterConfig,
    state: RefCell<EdgeState>,
    stats: Stats,
}

struct Root {
    shared: Option<Rc<Shared>>,
}

impl l402_proxy_abi::Root for Root {
    type Http = Http;

    fn new(_context_id: u32) -> Self {
        Root { shared: None }
    }

    fn on_done(&mut self) -> bool {
        // Envoy is draining this VM: give back every unit held (best effort; a release that
        // does not arrive loses those units for the client, it never serves one too many).
        self.release(true);
        if let Some(shared) = &self.shared {
            shared.stats.flush();
        }
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match host::buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(b)) => b,
            _ => {
                log(
                    LogLevel::Critical,
                    "l402 filter config: configuration: missing (a JSON object is required)",
                );
                return false;
            }
        };
        match FilterConfig::parse(&bytes, &host::env_var) {
            Ok(config) => {
                let state = RefCell::new(config.edge.new_state());
                self.shared = Some(Rc::new(Shared {
                    config,
                    state,
                    stats: Stats::define(),
                }));
                // Leased allowance units that ran out go back to the store on this timer.
                let _ = host::set_tick_period_ms(500);
                true
            }
            Err(e) => {
                // Refuse the config: Envoy rejects the listener update.
                log(LogLevel::Critical, &e.to_string());
                false
            }
        }
    }

    fn create_http(&self, _context_id: u32) -> Http {
        Http {
            shared: self.shared.clone(),
            pending: None,
            respond: Vec::new(),
            metered: None,
        }
    }

    fn on_tick(&mut self) {
        self.release(false);
        if let Some(shared) = &self.shared {
            shared.stats.flush();
        }
    }
}

impl Root {
    /// Sends the releases of run-out leases (`all`: every lease).
    fn release(&self, all: bool) {
        let (Some(shared), Some(now)) = (self.shared.as_ref(), now_ms()) else {
            return;
        };
        let released = match shared.state.try_borrow_mut() {
            Ok(mut state) if all || state.leases_held() > 0 => state.expired_leases(now, all),
            _ => return,
        };
        let path = &shared.config.invoice_service.allowance_path;
        for r in released {
            if call_invoice_service(shared, path, &r.to_body()).is_ok() {
                shared.stats.inc(shared.stats.allowance_released);
            }
        }
    }
}

/// A call to the invoice-service in flight.
enum Pending {
    /// Waiting for a challenge.
    Challenge(PendingChallenge),
    /// Waiting for the spent-set.
    Redeem(RedeemCall),
    /// Waiting for the allowance store.
    Meter(MeterCall),
    /// Waiting for the catalog or an invoice's state (the edge's own endpoints).
    Ask(ServiceCall),
}

struct Http {
    shared: Option<Rc<Shared>>,
    pending: Option<Pending>,
    /// Headers for the origin's response (a Payment receipt, the allowance left).
    respond: Vec<(&'static str, String)>,
    /// The allowance unit a forwarded metered request spent.
    metered: Option<MeteredUnit>,
}

/// The route's `l402` metadata, in one property read. A host error is not "no metadata".
fn route_metadata() -> Result<Option<Vec<u8>>, ()> {
    host::property(&["xds", "route_metadata", "filter_metadata", "l402"]).map_err(|_| ())
}

fn now_ms() -> Option<u64> {
    let ns = host::current_time_ns().ok()?;
    Some(ns / 1_000_000).filter(|ms| *ms > 0)
}

fn send(resp: &HttpResponse) -> Action {
    let sent = match resp.grpc {
        Some(g) => {
            // Envoy's local reply for gRPC: trailers-only with this status.
            let metadata: Vec<(&str, &[u8])> = resp
                .headers
                .iter()
                .filter(|(n, _)| !matches!(*n, "grpc-status" | "grpc-message" | "content-type"))
                .map(|(n, v)| (*n, v.as_bytes()))
                .collect();
            host::send_local_response(
                200,
                &metadata,
                g.message.as_bytes(),
                Some(grpc_code(g.code)),
            )
        }
        None => {
            let headers: Vec<(&str, &[u8])> = resp
                .headers
                .iter()
                .map(|(n, v)| (*n, v.as_bytes()))
                .collect();
            host::send_local_response(u32::from(resp.status), &headers, resp.body.as_bytes(), None)
        }
    };
    if sent.is_err() {
        log(LogLevel::Error, "l402: could not send the local reply");
    }
    Action::Pause
}

/// gRPC's number for core's code.
fn grpc_code(code: GrpcCode) -> u32 {
    match code {
        GrpcCode::InvalidArgument => 3,
        GrpcCode::ResourceExhausted => 8,
        GrpcCode::Internal => 13,
        GrpcCode::Unavailable => 14,
        GrpcCode::Unauthenticated => 16,
    }
}

/// Whether the response is Envoy's `local_ratelimit` refusal: a 429 whose local reply details
/// say so (nothing an origin can forge). The status is read first: most responses stop there.
fn local_rate_limited() -> bool {
    let status = host::header(MapType::HttpResponseHeaders, ":status")
        .ok()
        .flatten();
    status.as_deref() == Some(b"429")
        && host::property(&["response", "code_details"])
            .ok()
            .flatten()
            .is_some_and(|d| d == b"local_rate_limited")
}

/// Applies a forward: every removal and setting must succeed, or nothing is forwarded.
fn apply(f: &Forward) -> Result<(), ()> {
    for name in &f.remove {
        host::remove_header(MapType::HttpRequestHeaders, name).map_err(|_| ())?;
    }
    for (name, value) in &f.set {
        host::set_header(MapType::HttpRequestHeaders, name, value.as_bytes()).map_err(|_| ())?;
    }
    Ok(())
}

/// Counts a reply and sends it.
fn answer(shared: &Shared, r: &Reply) -> Action {
    shared.stats.count(r.outcome);
    send(&r.response)
}

/// `POST`s `body` to the invoice-service at `path`.
fn call_invoice_service(shared: &Shared, path: &str, body: &[u8]) -> Result<u32, ()> {
    let is = &shared.config.invoice_service;
    let headers: [(&str, &[u8]); 5] = [
        (":method", b"POST"),
        (":path", path.as_bytes()),
        (":authority", is.authority.as_bytes()),
        ("content-type", b"application/json"),
        (
            "authorization",
            shared.config.edge.settings().authorization.as_bytes(),
        ),
    ];
    let timeout_ms = u32::try_from(is.timeout.as_millis()).unwrap_or(u32::MAX);
    host::http_call(&is.cluster, &headers, body, timeout_ms).map_err(|_| {
        log(
            LogLevel::Warn,
            "l402: cannot call the invoice-service cluster",
        )
    })
}

impl Http {
    /// Carries out a step; `paused`: the request waits on a call (a forward must resume it).
    fn step(&mut self, shared: &Shared, step: Step, grpc: bool, paused: bool) -> Action {
        match step {
            Step::Forward(f) => {
                if apply(&f).is_err() {
                    log(LogLevel::Error, "l402: could not rewrite request headers");
                    return answer(shared, &shared.config.edge.fail(HostFailure::Headers, grpc));
                }
                shared.stats.count(f.outcome);
                self.respond = f.respond;
                self.metered = f.metered;
                if paused && host::resume_request().is_err() {
                    log(LogLevel::Error, "l402: could not resume the request");
                }
                Action::Continue
            }
            Step::Reply(r) => answer(shared, &r),
            Step::Challenge(call) => {
                shared.stats.count(call.outcome());
                let is = &shared.config.invoice_service;
                match call_invoice_service(shared, &is.path, &call.body) {
                    Ok(_) => {
                        self.pending = Some(Pending::Challenge(call.pending));
                        Action::Pause
                    }
                    Err(()) => answer(
                        shared,
                        &shared
                            .config
                            .edge
                            .challenge_answered(call.pending, None, None),
                    ),
                }
            }
            // The spent-set is the invoice-service's store, shared by every edge and replica.
            Step::Redeem(call) => {
                let is = &shared.config.invoice_service;
                match call_invoice_service(shared, &is.redeem_path, &call.body) {
                    Ok(_) => {
                        self.pending = Some(Pending::Redeem(call));
                        Action::Pause
                    }
                    Err(()) => self.redeemed(shared, call, None, grpc, paused),
                }
            }
            // Metered tokens are counted in the invoice-service's store, shared by every edge.
            Step::Meter(call) => {
                let is = &shared.config.invoice_service;
                match call_invoice_service(shared, &is.allowance_path, &call.body) {
                    Ok(_) => {
                        self.pending = Some(Pending::Meter(call));
                        Action::Pause
                    }
                    Err(()) => self.metered(shared, call, None, None, grpc, paused),
                }
            }
            // The edge's own endpoints: the catalog for discovery, an invoice for the paywall.
            Step::Ask(call) => match call_invoice_service(shared, call.path, &call.body) {
                Ok(_) => {
                    self.pending = Some(Pending::Ask(call));
                    Action::Pause
                }
                Err(()) => self.service_answered(shared, call, None, None),
            },
            // Envoy limits tokens with local_ratelimit after this filter; the filter's route
            // table refuses a rate_limit, so core never asks.
            Step::RateLimit(_) => answer(
                shared,
                &shared.config.edge.fail(HostFailure::RateLimiter, grpc),
            ),
            // The filter's deny-list is its configuration: core never asks for a lookup.
            Step::CheckRevoked(_) => answer(
                shared,
                &shared.config.edge.fail(HostFailure::Revocation, grpc),
            ),
        }
    }
}

impl Http {
    fn call_answered(&mut self, body_size: usize) {
        let (Some(shared), Some(pending)) = (self.shared.clone(), self.pending.take()) else {
            return;
        };
        // On a timeout or reset Envoy calls back with no headers: no :status, a failure.
        let status = host::header(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| core::str::from_utf8(&s).ok()?.parse::<u16>().ok());
        let body = || match status {
            Some(200) => host::buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten(),
            _ => None,
        };
        let pending = match pending {
            Pending::Challenge(p) => p,
            Pending::Redeem(call) => {
                let grpc = call.grpc();
                self.redeemed(&shared, call, status, grpc, true);
                return;
            }
            Pending::Meter(call) => {
                let grpc = call.grpc();
                self.metered(&shared, call, status, body(), grpc, true);
                return;
            }
            Pending::Ask(call) => {
                self.service_answered(&shared, call, status, body());
                return;
            }
        };
        let body = body();
        let r = shared
            .config
            .edge
            .challenge_answered(pending, status, body.as_deref());
        if r.outcome != Outcome::Challenged {
            log_store_failure("challenge", status);
        }
        answer(&shared, &r);
    }
}

/// Logs a store call that gave no usable answer (`status` `None`: no answer at all).
fn log_store_failure(store: &str, status: Option<u16>) {
    let mut line = ["l402: ", store, " unavailable (invoice-service status "].concat();
    match status {
        Some(s) => l402_core::json::push_u64(&mut line, u64::from(s)),
        None => line.push_str("none: timeout or reset"),
    }
    line.push(')');
    log(LogLevel::Warn, &line);
}

impl Http {
    /// Hands a call's outcome to core with this VM's state, then carries out the next step.
    fn continue_with(
        &mut self,
        shared: &Shared,
        grpc: bool,
        paused: bool,
        next: impl FnOnce(&Edge, &mut EdgeState) -> Step,
    ) -> Action {
        let step = match shared.state.try_borrow_mut() {
            Ok(mut state) => next(&shared.config.edge, &mut state),
            Err(_) => Step::Reply(shared.config.edge.fail(HostFailure::State, grpc)),
        };
        self.step(shared, step, grpc, paused)
    }

    /// The invoice-service answered one of the edge's own calls, or could not be called.
    fn service_answered(
        &mut self,
        shared: &Shared,
        call: ServiceCall,
        status: Option<u16>,
        body: Option<Vec<u8>>,
    ) -> Action {
        if status != Some(200) {
            log_store_failure(call.path, status);
        }
        self.continue_with(shared, false, false, |edge, state| {
            Step::Reply(edge.service_answered(state, call, status, body.as_deref()))
        })
    }

    /// The spent-set answered (`status`), or could not be called (`None`).
    fn redeemed(
        &mut self,
        shared: &Shared,
        call: RedeemCall,
        status: Option<u16>,
        grpc: bool,
        paused: bool,
    ) -> Action {
        let outcome = Redeemed::from_status(status).ok_or(HostFailure::SpentSet);
        if outcome.is_err() {
            log_store_failure("spent-set", status);
        }
        self.continue_with(shared, grpc, paused, |edge, state| {
            edge.redeemed(state, call, outcome)
        })
    }

    /// The allowance store answered (`status`, `body`), or could not be called (`None`).
    fn metered(
        &mut self,
        shared: &Shared,
        call: MeterCall,
        status: Option<u16>,
        body: Option<Vec<u8>>,
        grpc: bool,
        paused: bool,
    ) -> Action {
        let answer = AllowanceAnswer::from_response(status, body.as_deref(), call.request.take)
            .ok_or(HostFailure::AllowanceStore);
        if answer.is_err() {
            log_store_failure("allowance store", status);
        }
        self.continue_with(shared, grpc, paused, |edge, state| {
            edge.metered(state, call, answer)
        })
    }
}

impl l402_proxy_abi::Http for Http {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize) {
        self.call_answered(body_size);
    }

    fn on_response_headers(&mut self, _n: usize, _end_of_stream: bool) -> Action {
        if let (Some(unit), Some(shared)) = (self.metered.take(), self.shared.as_ref())
            && local_rate_limited()
            && let (Ok(mut state), Some(now)) = (shared.state.try_borrow_mut(), now_ms())
        {
            // local_ratelimit refused the request after this filter counted it.
            shared.config.edge.unserved(&mut state, &unit, now);
            self.respond.clear();
        }
        for (name, value) in core::mem::take(&mut self.respond) {
            if host::add_header(MapType::HttpResponseHeaders, name, value.as_bytes()).is_err() {
                log(LogLevel::Warn, "l402: could not add a response header");
            }
        }
        Action::Continue
    }

    fn on_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let Some(shared) = self.shared.clone() else {
            // No valid configuration: fail closed.
            return send(&misconfigured_reply().response);
        };
        let edge = &shared.config.edge;
        // One read of the headers; core decides on this copy, and a host call is spent only
        // on what must change.
        let map = host::header_map(MapType::HttpRequestHeaders);
        let Some(pairs) = map.as_deref().ok().and_then(l402_proxy_abi::decode_pairs) else {
            return answer(&shared, &edge.fail(HostFailure::Headers, false));
        };
        let pseudo = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(&[][..], |(_, v)| *v)
        };
        let metadata = route_metadata();
        let sale = match &metadata {
            Ok(Some(bytes)) => crate::metadata::route_sale(bytes),
            Ok(None) => HostSale::NotAttached,
            Err(()) => HostSale::Malformed,
        };
        // Envoy's downstream remote address (behind a proxy: what `xff_num_trusted_hops` or
        // `original_ip_detection_extensions` made of it), never a header the client wrote;
        // a host call, so core asks for it only when a decision needs it.
        let client = || host::property(&["source", "address"]).ok().flatten();
        let request = EdgeRequest {
            method: core::str::from_utf8(pseudo(":method")).unwrap_or_default(),
            target: pseudo(":path"),
            headers: &pairs,
            body_follows: !end_of_stream,
            sale,
            now_ms: now_ms(),
            client_address: ClientAddress::OnDemand(&client),
            // Envoy sets :scheme from the downstream connection (or a trusted proxy's
            // x-forwarded-proto, per the connection manager's settings).
            secure: pseudo(":scheme") == b"https",
        };
        let grpc = request.grpc();
        let step = match shared.state.try_borrow_mut() {
            Ok(mut state) => edge.decide(&mut state, &request),
            Err(_) => Step::Reply(edge.fail(HostFailure::State, grpc)),
        };
        self.step(&shared, step, grpc, false)
    }
}
