//! The `Allowance` Durable Object (PROTOCOL.md §12): one object per token id (the Worker names
//! it with `id_from_name(token_id)`), so Cloudflare routes every count of one token, from
//! anywhere, to one single-threaded object. It applies core's [`Counter`] rule to the count of
//! each service the token is metered for, and forgets at the token's expiry (an alarm).

// The macro's generated wasm-bindgen glue has no docs of its own.
#![allow(missing_docs)]

use std::cell::RefCell;
use std::collections::HashMap;

use l402_core::{AllowanceRequest, Counter};
use worker::{Date, DurableObject, Env, Request, Response, Result, State, durable_object};

/// One token's counts, per service.
#[durable_object(alarm)]
pub struct Allowance {
    state: State,
    /// Counts read or written so far; changed before any await, so a take racing another in
    /// this object sees it at once.
    counts: RefCell<HashMap<String, u64>>,
}

impl DurableObject for Allowance {
    fn new(state: State, _env: Env) -> Self {
        Allowance {
            state,
            counts: RefCell::new(HashMap::new()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let body = req.bytes().await?;
        let req = match AllowanceRequest::parse(&body) {
            Ok(r) => r,
            Err(e) => return Response::error(e.to_string(), 400),
        };
        let storage = self.state.storage();
        let key = req.service.clone();
        let known = self.counts.borrow().contains_key(&key);
        if !known {
            let stored: Option<u64> = storage.get(&key).await?;
            let first = stored.is_none();
            // Another take may have loaded it while storage answered: keep that one.
            self.counts
                .borrow_mut()
                .entry(key.clone())
                .or_insert(stored.unwrap_or(0));
            if first && let Some(at) = req.expires_at {
                let now = Date::now().as_millis() / 1000;
                let at_ms = i64::try_from(at.max(now + 1).saturating_mul(1000)).unwrap_or(i64::MAX);
                storage.set_alarm(at_ms).await?;
            }
        }
        let (used, answer) = {
            let mut counts = self.counts.borrow_mut();
            let used = counts.entry(key.clone()).or_insert(0);
            let (next, answer) = Counter::apply(*used, &req);
            *used = next;
            (next, answer)
        };
        // The answer leaves only once the write is durable (the runtime's output gate); a
        // write that fails is an error (503 at the edge), and the count stays taken: fewer
        // requests served, never more.
        storage.put(&key, used).await?;
        let mut resp = Response::from_bytes(answer.to_body())?;
        resp.headers_mut().set("content-type", "application/json")?;
        Ok(resp)
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        self.counts.borrow_mut().clear();
        Response::ok("forgotten")
    }
}
