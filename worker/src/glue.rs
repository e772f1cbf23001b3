//! The fetch handler: translates the Workers runtime's request, env, clock and fetch into
//! `l402-core` calls and back. No protocol rule lives here.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use futures_util::future::{Either, select};
use l402_core::{
    CREDENTIAL_HEADERS, ChallengeRequest, ChallengeResponse, Credentials, Denial, HttpResponse,
    Reason, Request as L402Request, TokenId, VerifiedCache, is_cors_preflight, is_grpc, render,
};
use worker::{
    Context, Date, Delay, Env, Fetch, Headers, Method, Request, RequestInit, Response, event,
};

use crate::config::WorkerConfig;

struct Isolate {
    config: WorkerConfig,
    cache: RefCell<VerifiedCache>,
}

thread_local! {
    /// Parsed once per isolate; a bad config is remembered too (and answered 500).
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
            WorkerConfig::parse(&|name| binding(env, name))
                .map(|config| {
                    let cache = RefCell::new(VerifiedCache::new(config.cache_size));
                    Rc::new(Isolate { config, cache })
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

fn now() -> u64 {
    Date::now().as_millis() / 1000
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let state = match isolate(&env) {
        Ok(s) => s,
        Err(msg) => {
            worker::console_error!("{msg}");
            return Response::error(msg, 500);
        }
    };
    match handle(req, &env, &state).await {
        Ok(r) => Ok(r),
        Err(e) => {
            // Fail closed: nothing unverified reaches the origin.
            worker::console_error!("l402 worker: {e}");
            to_response(&render(
                &Denial::Unavailable {
                    retry_after_secs: state.config.retry_after_secs,
                },
                false,
            ))
        }
    }
}

async fn handle(req: Request, env: &Env, state: &Isolate) -> worker::Result<Response> {
    let config = &state.config;
    let headers: Vec<(String, String)> = req.headers().entries().collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let url = req.url()?;
    let Some(route) = config.route_for(url.path()) else {
        return forward(req, config, &headers, None).await;
    };
    let method = req.method().to_string();
    if is_cors_preflight(&method, header("access-control-request-method").is_some()) {
        return forward(req, config, &headers, None).await;
    }
    let grpc = is_grpc(header("content-type"));
    let credentials =
        Credentials::from_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
    let request = L402Request {
        service: &route.service,
        capabilities: &route.capabilities,
        now: now(),
    };

    // The deny-list lives in KV: look up what authorizes, and let core decide again with
    // every revoked id known (bounded by the number of candidates).
    let kv = env.kv("L402_DENYLIST").ok();
    let mut revoked: HashSet<TokenId> = HashSet::new();
    let decision = loop {
        let d = match state.cache.try_borrow_mut() {
            Ok(mut cache) => {
                config
                    .verifier
                    .verify_cached(&credentials, &request, &revoked, &mut cache)
            }
            Err(_) => config.verifier.verify(&credentials, &request, &revoked),
        };
        match (&d, &kv) {
            (Ok(a), Some(kv)) if !revoked.contains(a.token_id()) => {
                let id = *a.token_id();
                if kv.get(&id.to_hex()).text().await.ok().flatten().is_some() {
                    revoked.insert(id);
                    continue;
                }
                break d;
            }
            _ => break d,
        }
    };
    match decision {
        Ok(authorized) => {
            let added = [
                (l402_core::HEADER_TOKEN_ID, authorized.token_id().to_hex()),
                (l402_core::HEADER_SERVICE, authorized.service().to_owned()),
            ];
            forward(req, config, &headers, Some(&added)).await
        }
        Err(rejection) => {
            if config.on_invalid.wants_challenge(rejection.reason) {
                challenge(config, &route.service, rejection.reason, grpc).await
            } else {
                to_response(&render(
                    &Denial::Unauthorized {
                        reason: rejection.reason,
                    },
                    grpc,
                ))
            }
        }
    }
}

async fn challenge(
    config: &WorkerConfig,
    service: &str,
    reason: Reason,
    grpc: bool,
) -> worker::Result<Response> {
    let unavailable = || {
        to_response(&render(
            &Denial::Unavailable {
                retry_after_secs: config.retry_after_secs,
            },
            grpc,
        ))
    };
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("authorization", &config.authorization)?;
    let body = ChallengeRequest::body(service, Some(reason.as_str()));
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    let call = Fetch::Request(Request::new_with_init(&config.challenges_url, &init)?);
    let send = call.send();
    let timeout = Delay::from(std::time::Duration::from_millis(u64::from(
        config.timeout_ms,
    )));
    futures_util::pin_mut!(send);
    let mut resp = match select(send, timeout).await {
        Either::Left((Ok(r), _)) if r.status_code() == 200 => r,
        Either::Left((Ok(r), _)) => {
            worker::console_warn!("l402: invoice-service answered {}", r.status_code());
            return unavailable();
        }
        Either::Left((Err(e), _)) => {
            worker::console_warn!("l402: invoice-service unreachable: {e}");
            return unavailable();
        }
        Either::Right(_) => {
            worker::console_warn!("l402: invoice-service timed out");
            return unavailable();
        }
    };
    let bytes = resp.bytes().await.unwrap_or_default();
    match ChallengeResponse::parse_challenge(&bytes) {
        Ok(challenge) => to_response(&render(
            &Denial::PaymentRequired {
                challenge: &challenge,
                reason,
            },
            grpc,
        )),
        Err(e) => {
            worker::console_warn!("l402: unusable challenge: {e}");
            unavailable()
        }
    }
}

/// Proxies to the origin: same method, path, query and body; client copies of the `x-l402-*`
/// headers removed; the credential removed when configured; `added` set.
async fn forward(
    req: Request,
    config: &WorkerConfig,
    headers: &[(String, String)],
    added: Option<&[(&str, String)]>,
) -> worker::Result<Response> {
    let url = req.url()?;
    let target = format!(
        "{}{}{}",
        config.origin,
        url.path(),
        url.query().map(|q| format!("?{q}")).unwrap_or_default()
    );
    let out = Headers::new();
    for (n, v) in headers {
        let ours = n == l402_core::HEADER_TOKEN_ID || n == l402_core::HEADER_SERVICE;
        let credential =
            added.is_some() && config.strip_credential && CREDENTIAL_HEADERS.contains(&n.as_str());
        if !ours && !credential && n != "host" {
            out.append(n, v)?;
        }
    }
    for (n, v) in added.unwrap_or_default() {
        out.set(n, v)?;
    }
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(out);
    if !matches!(req.method(), Method::Get | Method::Head) {
        init.with_body(req.inner().body().map(Into::into));
    }
    Fetch::Request(Request::new_with_init(&target, &init)?)
        .send()
        .await
}
