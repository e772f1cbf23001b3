//! The `SpentSet` Durable Object (PROTOCOL.md §11.3): one object per payment hash (the
//! Worker names it with `id_from_name(hash)`), so Cloudflare routes every spend of one charge
//! to one single-threaded object, strongly consistent across the world. It answers 200 the
//! first time and 409 after, and forgets at the challenge's expiry (an alarm deletes it).

// The macro's generated wasm-bindgen glue has no docs of its own.
#![allow(missing_docs)]

use std::cell::Cell;

use worker::{Date, DurableObject, Env, Request, Response, Result, State, durable_object};

/// Storage key of the expiry, unix seconds.
const EXPIRES: &str = "expires_at";

/// One payment hash's spent flag.
#[durable_object(alarm)]
pub struct SpentSet {
    state: State,
    /// Set before any await, so a spend racing another in this object sees it at once.
    spent: Cell<bool>,
}

#[derive(serde::Deserialize)]
struct Spend {
    expires_at: u64,
}

impl DurableObject for SpentSet {
    fn new(state: State, _env: Env) -> Self {
        SpentSet {
            state,
            spent: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let Ok(spend) = req.json::<Spend>().await else {
            return Response::error("expected {\"expires_at\": <unix seconds>}", 400);
        };
        if self.spent.get() {
            return Response::error("already spent", 409);
        }
        let now = Date::now().as_millis() / 1000;
        let stored: Option<u64> = self.state.storage().get(EXPIRES).await?;
        // Re-read the flag: another spend may have run while storage answered.
        if self.spent.get() || stored.is_some_and(|e| e > now) {
            self.spent.set(true);
            return Response::error("already spent", 409);
        }
        self.spent.set(true);
        let storage = self.state.storage();
        if let Err(e) = storage.put(EXPIRES, spend.expires_at).await {
            // Not durably spent: say so (the edge answers 503), and let a retry try again.
            self.spent.set(false);
            return Err(e);
        }
        let at_ms =
            i64::try_from(spend.expires_at.max(now + 1).saturating_mul(1000)).unwrap_or(i64::MAX);
        storage.set_alarm(at_ms).await?;
        Response::ok("first use")
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        self.spent.set(false);
        Response::ok("forgotten")
    }
}
