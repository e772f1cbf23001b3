//! A pricing endpoint as an operator would run one (docs/INVOICE-SERVICE.md, "Prices per
//! request"): the price is the number in the request path's last segment (`/quote/13` costs
//! 13 sat; none: 1 sat), and every query is remembered so tests can assert what the edge
//! passed through the invoice-service.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// A running pricer on a free loopback port.
pub struct Pricer {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

async fn price(State(seen): State<Arc<Mutex<Vec<Value>>>>, Json(q): Json<Value>) -> Json<Value> {
    let sat = q["path"]
        .as_str()
        .and_then(|p| p.rsplit('/').next())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1);
    if let Ok(mut s) = seen.lock() {
        s.push(q);
    }
    Json(json!({ "price_sat": sat }))
}

impl Pricer {
    /// Starts it on its own runtime.
    pub fn start() -> anyhow::Result<Pricer> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        let app = Router::new()
            .route("/price", post(price))
            .with_state(Arc::clone(&seen));
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Pricer {
            port,
            seen,
            _runtime: runtime,
        })
    }

    /// Its endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/price", self.port)
    }

    /// The queries it answered, oldest first.
    pub fn seen(&self) -> Vec<Value> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
