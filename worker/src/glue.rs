//! The fetch handler: translates the Workers runtime's request, env, clock, KV and fetch into
//! `l402_core::Edge` calls and back. Every decision is core's.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures_util::future::{Either, select};
use l402_core::{
    AllowanceAnswer, ClientAddress, EdgeRequest, EdgeState, Forward, HostFailure, HostSale,
    HttpResponse, MeterCall, RedeemCall, Redeemed, Step, misconfigured_reply,
};
use wasm_bindgen::prelude::*;
use worker::{
    Delay, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response, js_sys,
    wasm_bindgen_futures, web_sys,
};

use crate::config::{Bindings, StoreHost, WorkerConfig};

/// The deny-list namespace, when bound.
const DENYLIST: &str = "L402_DENYLIST";
/// Cloudflare's rate limiting binding for challenges, when bound.
const CHALLENGE_LIMITER: &str = "L402_CHALLENGE_LIMITER";
/// The spent-set Durable Object namespace, when bound.
const SPENT_SET: &str = "L402_SPENT_SET";
/// The metered tokens' Durable Object namespace, when bound.
const ALLOWANCE: &str = "L402_ALLOWANCE";

struct Isolate {
    config: WorkerConfig,
    state: RefCell<EdgeState>,
}

thread_local! {
    /// Parsed once per isolate; a bad config is remembered too (and answered 503).
    static STATE: RefCell<Option<Result<Rc<Isolate>, String>>> = const { RefCell::new(None) };
}

fn binding(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|v| !v.is_empty())
}

fn isolate(env: &Env) -> Result<Rc<Isolate>, String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.get_or_insert_with(|| {
            let bound = Bindings {
                deny_list: env.kv(DENYLIST).is_ok(),
                spent_set: env.durable_object(SPENT_SET).is_ok(),
                allowance: env.durable_object(ALLOWANCE).is_ok(),
            };
            WorkerConfig::parse(&|name| binding(env, name), bound)
                .map(|config| {
                    let state = RefCell::new(config.edge.new_state());
                    Rc::new(Isolate { config, state })
                })
                .map_err(|e| e.to_string())
        })
        .clone()
    })
}

fn to_response(r: &HttpResponse) -> worker::Result<Response> {
    let headers = Headers::new();
    for (n, v) in &r.headers {
        headers.append(n, v)?;
    }
    Ok(Response::from_bytes(r.body.as_bytes().to_vec())?
        .with_status(r.status)
        .with_headers(headers))
}

/// The fast path: JavaScript (`worker/js/index.mjs`) keeps the request object and hands over
/// only what the decision reads, in one string (`<method>\n<target>\n<1 if TLS>\n` then the
/// headers as `name\nvalue\n` lines; none of these can hold a line feed) and the clock; core
/// decides; a forward or a reply comes back as one string that JavaScript applies natively
/// (`new Headers(request.headers)`, `fetch`). One string each way: every crossing costs.
/// Anything that needs I/O (a challenge, a store, the deny-list) is parked here and finished
/// by [`l402_resume`].
///
/// Answers: `F` then `\n-<name>` (remove) and `\n+<name>\n<value>` (set) lines; `R<status>\n<n>\n`
/// then `n` header name/value lines and the body; `P<id>` (parked).
#[wasm_bindgen]
pub fn l402_decide(env: &Env, request: &str, now_ms: f64) -> String {
    let isolate = match isolate(env) {
        Ok(s) => s,
        Err(msg) => {
            // The variable's name and problem go to the log; the public gets a bare 503.
            worker::console_error!("{msg}");
            return encode_reply(&misconfigured_reply().response);
        }
    };
    let mut lines = request.splitn(4, '\n');
    let (method, target, secure) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
        lines.next() == Some("1"),
    );
    let pairs = header_pairs(lines.next().unwrap_or_default());
    // Date.now() of the runtime; anything else (NaN, 0) is a clock that failed.
    let now_ms = (now_ms.is_finite() && now_ms >= 1.0).then_some(now_ms as u64);
    let request = edge_request(method, target.as_bytes(), &pairs, secure, now_ms);
    let grpc = request.grpc();
    match with_state(&isolate, grpc, |s| isolate.config.edge.decide(s, &request)) {
        Step::Forward(f) if f.respond.is_empty() => encode_forward(&f),
        Step::Reply(r) => encode_reply(&r.response),
        step => park(Parked {
            step,
            target: target.to_owned(),
            grpc,
        }),
    }
}

/// Where forwards go (`ORIGIN_URL`), for JavaScript to remember per isolate.
#[wasm_bindgen]
pub fn l402_origin(env: &Env) -> String {
    isolate(env)
        .map(|i| i.config.origin.clone())
        .unwrap_or_default()
}

/// The 503 for an origin JavaScript could not reach (fail closed: the answer is core's).
#[wasm_bindgen]
pub fn l402_origin_failed(env: &Env) -> String {
    match isolate(env) {
        Ok(i) => encode_reply(&i.config.edge.fail(HostFailure::Origin, false).response),
        Err(_) => encode_reply(&misconfigured_reply().response),
    }
}

/// Finishes a parked step: its calls, then the forward or the reply, in Rust.
#[wasm_bindgen]
pub fn l402_resume(id: u32, req: web_sys::Request, env: Env) -> js_sys::Promise {
    let parked = PARKED.with(|p| p.borrow_mut().remove(&id));
    wasm_bindgen_futures::future_to_promise(async move {
        let isolate = isolate(&env).map_err(|e| JsValue::from_str(&e))?;
        let resp = match parked {
            Some(parked) => match resume(parked, Request::from(req), &env, &isolate).await {
                Ok(r) => Ok(r),
                Err(e) => {
                    // Fail closed: nothing unverified reaches the origin.
                    worker::console_error!("l402 worker: {e}");
                    to_response(
                        &isolate
                            .config
                            .edge
                            .fail(HostFailure::Origin, false)
                            .response,
                    )
                }
            },
            None => to_response(&isolate.config.edge.fail(HostFailure::State, false).response),
        };
        resp.map(|r| JsValue::from(web_sys::Response::from(r)))
            .map_err(|e| JsValue::from_str(&e.to_string()))
    })
}

/// A step waiting for [`l402_resume`], with what the decision saw.
struct Parked {
    step: Step,
    /// The target core judged: the one forwarded.
    target: String,
    grpc: bool,
}

thread_local! {
    /// Steps waiting for [`l402_resume`], by id (JavaScript calls it at once).
    static PARKED: RefCell<HashMap<u32, Parked>> = RefCell::new(HashMap::new());
    static NEXT_ID: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

fn park(parked: Parked) -> String {
    let id = NEXT_ID.with(|n| {
        let id = n.get().wrapping_add(1);
        n.set(id);
        id
    });
    PARKED.with(|p| p.borrow_mut().insert(id, parked));
    format!("P{id}")
}

/// `name\nvalue\n` pairs (header values cannot hold a line feed).
fn header_pairs(blob: &str) -> Vec<(&str, &[u8])> {
    let mut out = Vec::with_capacity(16);
    let mut lines = blob.split('\n');
    while let (Some(n), Some(v)) = (lines.next(), lines.next()) {
        if n.is_empty() {
            break;
        }
        out.push((n, v.as_bytes()));
    }
    out
}

fn edge_request<'a>(
    method: &'a str,
    target: &'a [u8],
    pairs: &'a [(&'a str, &'a [u8])],
    secure: bool,
    now_ms: Option<u64>,
) -> EdgeRequest<'a> {
    EdgeRequest {
        method,
        target,
        headers: pairs,
        // HTTP/1.1 framing: a body exists only with Content-Length or Transfer-Encoding, which
        // core reads from the headers; the runtime's body stream says nothing more.
        body_follows: false,
        sale: HostSale::NotAttached,
        now_ms,
        // Cloudflare sets it from the connection and replaces any value a client sent.
        client_address: ClientAddress::Known(
            pairs
                .iter()
                .find(|(n, _)| *n == "cf-connecting-ip")
                .map(|(_, v)| *v),
        ),
        secure,
    }
}

fn encode_forward(f: &Forward) -> String {
    let mut out = String::with_capacity(128);
    out.push('F');
    for name in &f.remove {
        out.push_str("\n-");
        out.push_str(name);
    }
    for (name, value) in &f.set {
        out.push_str("\n+");
        out.push_str(name);
        out.push('\n');
        out.push_str(value);
    }
    out
}

fn encode_reply(r: &HttpResponse) -> String {
    let mut out = format!("R{}\n{}\n", r.status, r.headers.len());
    for (n, v) in &r.headers {
        out.push_str(n);
        out.push('\n');
        out.push_str(v);
        out.push('\n');
    }
    out.push_str(&r.body);
    out
}

/// Core's next step with this isolate's state (a state already in use is a host failure).
fn with_state(isolate: &Isolate, grpc: bool, next: impl FnOnce(&mut EdgeState) -> Step) -> Step {
    match isolate.state.try_borrow_mut() {
        Ok(mut s) => next(&mut s),
        Err(_) => Step::Reply(isolate.config.edge.fail(HostFailure::State, grpc)),
    }
}

/// Carries a parked step through its calls to the forward or the reply.
async fn resume(
    parked: Parked,
    req: Request,
    env: &Env,
    isolate: &Isolate,
) -> worker::Result<Response> {
    let edge = &isolate.config.edge;
    let Parked {
        mut step,
        target,
        grpc,
    } = parked;
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    loop {
        step = match step {
            Step::Forward(f) => return forward(req, &isolate.config, &headers, &target, &f).await,
            Step::Reply(r) => return to_response(&r.response),
            Step::Challenge(call) => {
                // An optional per-client limit with Cloudflare's own binding, keyed on the
                // address Cloudflare saw; a limiter that fails refuses (unpaid requests only).
                if let Ok(limiter) = env.rate_limiter(CHALLENGE_LIMITER) {
                    let client = headers
                        .iter()
                        .find(|(n, _)| n == "cf-connecting-ip")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    let allowed = limiter.limit(client).await.is_ok_and(|o| o.success);
                    if !allowed {
                        return to_response(&edge.challenge_refused(call.pending).response);
                    }
                }
                let (status, body) = with_timeout(
                    &isolate.config,
                    call_invoice_service(
                        &isolate.config,
                        &isolate.config.challenges_url,
                        call.body,
                    ),
                )
                .await;
                let r = edge.challenge_answered(call.pending, status, body.as_deref());
                return to_response(&r.response);
            }
            // The edge's own endpoints: the catalog for discovery, an invoice for the paywall.
            Step::Ask(call) => {
                let config = &isolate.config;
                let url = format!("{}{}", config.service_url, call.path);
                let (status, body) = with_timeout(
                    config,
                    call_invoice_service(config, &url, call.body.clone()),
                )
                .await;
                with_state(isolate, grpc, |s| {
                    Step::Reply(edge.service_answered(s, call, status, body.as_deref()))
                })
            }
            Step::Redeem(call) => {
                let outcome = redeem(env, &isolate.config, &call).await;
                with_state(isolate, grpc, |s| edge.redeemed(s, call, outcome))
            }
            Step::Meter(call) => {
                let answer = meter(env, &isolate.config, &call).await;
                with_state(isolate, grpc, |s| edge.metered(s, call, answer))
            }
            Step::RateLimit(call) => {
                // Cloudflare's rate limiting binding the route names, keyed on the token id.
                let allowed = match env.rate_limiter(&call.limiter) {
                    Ok(limiter) => match limiter.limit(call.key.clone()).await {
                        Ok(outcome) => Ok(outcome.success),
                        Err(e) => {
                            worker::console_error!("l402: rate limiter failed: {e}");
                            Err(HostFailure::RateLimiter)
                        }
                    },
                    Err(_) => {
                        worker::console_error!(
                            "l402: route names rate limiter {} but it is not bound",
                            call.limiter
                        );
                        Err(HostFailure::RateLimiter)
                    }
                };
                with_state(isolate, grpc, |s| edge.rate_limited(s, call, allowed))
            }
            Step::CheckRevoked(check) => {
                let revoked = match env.kv(DENYLIST) {
                    Ok(kv) => match kv.get(&check.token_id.to_hex()).text().await {
                        Ok(v) => Ok(v.is_some()),
                        Err(e) => {
                            worker::console_error!("l402: deny-list lookup failed: {e}");
                            Err(HostFailure::Revocation)
                        }
                    },
                    Err(_) => Err(HostFailure::Revocation),
                };
                with_state(isolate, grpc, |s| edge.resume(s, check, revoked))
            }
        };
    }
}

/// Spends a Payment charge: in its Durable Object, or at the invoice-service. Anything but a
/// clear first use or already-spent is a failure (503).
async fn redeem(
    env: &Env,
    config: &WorkerConfig,
    call: &RedeemCall,
) -> Result<Redeemed, HostFailure> {
    let status = match config.spent_set {
        StoreHost::Service => {
            with_timeout(
                config,
                call_invoice_service(config, &config.redeem_url, call.body.clone()),
            )
            .await
            .0
        }
        StoreHost::DurableObject => {
            let spend = async {
                let stub = env
                    .durable_object(SPENT_SET)?
                    .id_from_name(&call.charge.payment_hash.to_hex())?
                    .get_stub()?;
                let mut init = RequestInit::new();
                init.with_method(Method::Post).with_body(Some(
                    format!("{{\"expires_at\":{}}}", call.charge.expires_at).into(),
                ));
                let resp = stub
                    .fetch_with_request(Request::new_with_init("https://spent-set/redeem", &init)?)
                    .await?;
                Ok::<_, worker::Error>((resp.status_code(), None))
            };
            with_timeout(config, spend).await.0
        }
    };
    Redeemed::from_status(status).ok_or_else(|| {
        worker::console_warn!("l402: spent-set unavailable (status {status:?})");
        HostFailure::SpentSet
    })
}

/// Counts a metered token: in its Durable Object, or at the invoice-service. Anything but a
/// well-formed answer is a failure (503).
async fn meter(
    env: &Env,
    config: &WorkerConfig,
    call: &MeterCall,
) -> Result<AllowanceAnswer, HostFailure> {
    let (status, body) = match config.allowance {
        StoreHost::Service => {
            with_timeout(
                config,
                call_invoice_service(config, &config.allowance_url, call.body.clone()),
            )
            .await
        }
        StoreHost::DurableObject => {
            let count = async {
                let stub = env
                    .durable_object(ALLOWANCE)?
                    .id_from_name(&call.request.token_id)?
                    .get_stub()?;
                let mut init = RequestInit::new();
                init.with_method(Method::Post).with_body(Some(
                    worker::js_sys::Uint8Array::from(call.body.as_slice()).into(),
                ));
                let mut resp = stub
                    .fetch_with_request(Request::new_with_init("https://allowance/count", &init)?)
                    .await?;
                let status = resp.status_code();
                let body = if status == 200 {
                    Some(resp.bytes().await?)
                } else {
                    None
                };
                Ok::<_, worker::Error>((status, body))
            };
            with_timeout(config, count).await
        }
    };
    AllowanceAnswer::from_response(status, body.as_deref(), call.request.take).ok_or_else(|| {
        worker::console_warn!("l402: allowance store unavailable (status {status:?})");
        HostFailure::AllowanceStore
    })
}

async fn call_invoice_service(
    config: &WorkerConfig,
    url: &str,
    body: Vec<u8>,
) -> worker::Result<(u16, Option<Vec<u8>>)> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("authorization", &config.edge.settings().authorization)?;
    if let Some((id, secret)) = &config.access {
        headers.set("cf-access-client-id", id)?;
        headers.set("cf-access-client-secret", secret)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual)
        .with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    let mut resp = Fetch::Request(Request::new_with_init(url, &init)?)
        .send()
        .await?;
    let status = resp.status_code();
    let bytes = if status == 200 {
        Some(resp.bytes().await?)
    } else {
        None
    };
    Ok((status, bytes))
}

/// Runs a call within the invoice-service timeout: `(status, body)`, status `None` on failure
/// or timeout.
async fn with_timeout(
    config: &WorkerConfig,
    call: impl std::future::Future<Output = worker::Result<(u16, Option<Vec<u8>>)>>,
) -> (Option<u16>, Option<Vec<u8>>) {
    let timeout = Delay::from(std::time::Duration::from_millis(u64::from(
        config.edge.settings().timeout_ms,
    )));
    futures_util::pin_mut!(call);
    match select(call, timeout).await {
        Either::Left((Ok((status, body)), _)) => {
            if status != 200 {
                worker::console_warn!("l402: call answered {status}");
            }
            (Some(status), body)
        }
        Either::Left((Err(e), _)) => {
            worker::console_warn!("l402: call failed: {e}");
            (None, None)
        }
        Either::Right(_) => {
            worker::console_warn!("l402: call timed out");
            (None, None)
        }
    }
}

/// Proxies to the origin: same method, the judged target, same body; core's removals and
/// settings applied. Redirects are the client's to follow: a fetch that followed one would
/// bring back whatever the redirect points at, judged or not.
async fn forward(
    req: Request,
    config: &WorkerConfig,
    headers: &[(String, String)],
    target: &str,
    f: &Forward,
) -> worker::Result<Response> {
    let out = Headers::new();
    for (n, v) in headers {
        if n != "host" && !f.remove.iter().any(|r| r == n) {
            out.append(n, v)?;
        }
    }
    for (n, v) in &f.set {
        out.set(n, v)?;
    }
    let mut init = RequestInit::new();
    init.with_method(req.method())
        .with_headers(out)
        .with_redirect(RequestRedirect::Manual);
    if !matches!(req.method(), Method::Get | Method::Head) {
        init.with_body(req.inner().body().map(Into::into));
    }
    let resp = Fetch::Request(Request::new_with_init(
        &format!("{}{target}", config.origin),
        &init,
    )?)
    .send()
    .await?;
    if f.respond.is_empty() {
        return Ok(resp);
    }
    // A fetched response's headers are immutable: copy them, with the receipt.
    let headers = Headers::new();
    for (n, v) in resp.headers().entries() {
        headers.append(&n, &v)?;
    }
    for (n, v) in &f.respond {
        headers.append(n, v)?;
    }
    Ok(resp.with_headers(headers))
}
