//! Envoy's callbacks, routed to a filter's contexts by id. A VM runs on one thread, so the
//! contexts live in `RefCell`s in statics; a callback that finds its context borrowed (the
//! host never re-enters the VM from a host call, but if it did) fails closed.
#![allow(unsafe_code)]

use core::cell::{Cell, RefCell};
use core::hash::{BuildHasherDefault, Hasher};
use core::ops::Deref;

use alloc::vec::Vec;
use hashbrown::HashMap;

use crate::{Action, Http, LogLevel, Root, host};

/// A static for the VM's one thread.
pub struct Global<T>(T);

impl<T> Global<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Global(value)
    }
}

impl<T> Deref for Global<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

// SAFETY: a proxy-wasm VM runs on one thread (Envoy gives every worker thread its own VM),
// and this target has no threads at all (`atomics` is off: there is no way to share memory
// with another thread), so no two threads ever reach a `Global`.
#[cfg(not(target_feature = "atomics"))]
unsafe impl<T> Sync for Global<T> {}

/// Context ids and call tokens are small integers the host assigns: a multiply spreads them.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// The context a callback is running for (calls it makes are registered to it).
static CURRENT: Global<Cell<u32>> = Global::new(Cell::new(0));
/// HTTP calls in flight: token → the context that made it.
static CALLOUTS: Global<RefCell<Option<IdMap<u32>>>> = Global::new(RefCell::new(None));

pub(crate) fn register_callout(token: u32) {
    if let Ok(mut c) = CALLOUTS.try_borrow_mut() {
        c.get_or_insert_with(IdMap::default)
            .insert(token, CURRENT.get());
    }
}

fn take_callout(token: u32) -> Option<u32> {
    CALLOUTS.try_borrow_mut().ok()?.as_mut()?.remove(&token)
}

/// Every context of one filter in this VM.
pub struct Dispatcher<R: Root> {
    roots: RefCell<Vec<(u32, R)>>,
    https: RefCell<Option<IdMap<R::Http>>>,
}

impl<R: Root> Default for Dispatcher<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Root> Dispatcher<R> {
    /// No contexts yet.
    pub const fn new() -> Self {
        Dispatcher {
            roots: RefCell::new(Vec::new()),
            https: RefCell::new(None),
        }
    }

    fn with_root<T>(&self, id: u32, default: T, f: impl FnOnce(&mut R) -> T) -> T {
        let Ok(mut roots) = self.roots.try_borrow_mut() else {
            return default;
        };
        match roots.iter_mut().find(|(i, _)| *i == id) {
            Some((_, root)) => {
                CURRENT.set(id);
                f(root)
            }
            None => default,
        }
    }

    fn with_http<T>(&self, id: u32, f: impl FnOnce(&mut R::Http) -> T) -> Option<T> {
        let mut https = self.https.try_borrow_mut().ok()?;
        let http = https.as_mut()?.get_mut(&id)?;
        CURRENT.set(id);
        Some(f(http))
    }

    /// `proxy_on_context_create`: a root context (`root_context_id` 0) or an HTTP stream.
    pub fn on_context_create(&self, context_id: u32, root_context_id: u32) {
        if root_context_id == 0 {
            if let Ok(mut roots) = self.roots.try_borrow_mut() {
                roots.retain(|(i, _)| *i != context_id);
                roots.push((context_id, R::new(context_id)));
            }
            return;
        }
        let http = self.with_root(root_context_id, None, |root| {
            Some(root.create_http(context_id))
        });
        if let (Some(http), Ok(mut https)) = (http, self.https.try_borrow_mut()) {
            https
                .get_or_insert_with(IdMap::default)
                .insert(context_id, http);
        }
    }

    /// `proxy_on_configure`.
    pub fn on_configure(&self, context_id: u32, size: usize) -> bool {
        self.with_root(context_id, false, |root| root.on_configure(size))
    }

    /// `proxy_on_tick`.
    pub fn on_tick(&self, context_id: u32) {
        self.with_root(context_id, (), |root| root.on_tick());
    }

    /// `proxy_on_done`.
    pub fn on_done(&self, context_id: u32) -> bool {
        self.with_root(context_id, true, |root| root.on_done())
    }

    /// `proxy_on_delete`.
    pub fn on_delete(&self, context_id: u32) {
        if let Ok(mut https) = self.https.try_borrow_mut()
            && let Some(map) = https.as_mut()
            && map.remove(&context_id).is_some()
        {
            return;
        }
        if let Ok(mut roots) = self.roots.try_borrow_mut() {
            roots.retain(|(i, _)| *i != context_id);
        }
    }

    /// `proxy_on_request_headers`. A stream without a context (a root that could not make
    /// one) is answered 503 here: the request must not pass unjudged.
    pub fn on_request_headers(&self, context_id: u32, headers: usize, eos: bool) -> Action {
        match self.with_http(context_id, |h| h.on_request_headers(headers, eos)) {
            Some(action) => action,
            None => {
                host::log(LogLevel::Error, "no filter context for a request: 503");
                let _ = host::send_local_response(503, &[], b"", None);
                Action::Pause
            }
        }
    }

    /// `proxy_on_response_headers`.
    pub fn on_response_headers(&self, context_id: u32, headers: usize, eos: bool) -> Action {
        self.with_http(context_id, |h| h.on_response_headers(headers, eos))
            .unwrap_or(Action::Continue)
    }

    /// `proxy_on_http_call_response`: to the context that made the call, made effective so
    /// that what it does acts on its own stream.
    pub fn on_http_call_response(&self, token: u32, headers: usize, body_size: usize) {
        let Some(context_id) = take_callout(token) else {
            return;
        };
        if host::set_effective_context(context_id).is_err() {
            // The stream is gone (the client left): nothing to answer.
            return;
        }
        let delivered = self.with_http(context_id, |h| {
            h.on_http_call_response(token, headers, body_size)
        });
        if delivered.is_none() {
            self.with_root(context_id, (), |root| {
                root.on_http_call_response(token, headers, body_size)
            });
        }
    }
}
