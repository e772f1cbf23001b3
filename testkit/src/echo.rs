//! An upstream that answers every request with what it received, and remembers it, so tests
//! can assert what reached the origin (and what never did). It counts every request and keeps
//! the last [`KEEP`] (so a load test does not fill the test's memory).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::IntoResponse;

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names lower case, in order.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The first value of `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Requests kept for [`Echo::seen`].
pub const KEEP: usize = 10_000;

#[derive(Default)]
struct Log {
    total: usize,
    kept: VecDeque<Seen>,
}

/// A running echo upstream on a free loopback port.
pub struct Echo {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Log>>,
    _runtime: tokio::runtime::Runtime,
}

async fn echo(State(seen): State<Arc<Mutex<Log>>>, req: Request) -> impl IntoResponse {
    let s = Seen {
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    };
    // An unsold path that redirects to a sold one: an edge that followed redirects itself
    // would fetch the sold content for the client.
    let redirect = s.path.starts_with(REDIRECT_PATH);
    let body =
        serde_json::json!({"upstream": "echo", "method": s.method, "path": s.path}).to_string();
    if let Ok(mut log) = seen.lock() {
        log.total += 1;
        if log.kept.len() == KEEP {
            log.kept.pop_front();
        }
        log.kept.push_back(s);
    }
    if redirect {
        return (
            axum::http::StatusCode::FOUND,
            [
                ("location", "/weather"),
                ("content-type", "application/json"),
            ],
            body,
        );
    }
    (
        axum::http::StatusCode::OK,
        [("content-type", "application/json"), ("x-echo", "1")],
        body,
    )
}

/// Requests to this path are answered `302 Found`, `Location: /weather`.
pub const REDIRECT_PATH: &str = "/redirect-to-weather";

impl Echo {
    /// Starts the upstream on its own runtime.
    pub fn start() -> anyhow::Result<Echo> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let seen = Arc::new(Mutex::new(Log::default()));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        let app = Router::new().fallback(echo).with_state(Arc::clone(&seen));
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Echo {
            port,
            seen,
            _runtime: runtime,
        })
    }

    /// The last [`KEEP`] requests it received, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .map(|l| l.kept.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many requests reached it.
    pub fn count(&self) -> usize {
        self.seen.lock().map(|l| l.total).unwrap_or_default()
    }

    /// The last request it received.
    pub fn last(&self) -> Option<Seen> {
        self.seen.lock().ok().and_then(|l| l.kept.back().cloned())
    }
}
