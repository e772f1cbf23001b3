//! # l402-proxy-abi
//!
//! The proxy-wasm ABI 0.2.1, as the l402-edge filters use it, for `no_std` modules: the host's
//! imports behind functions that return `Result` (every status but `Ok` is an error the caller
//! fails closed on; a missing value is `None`), one dispatcher of Envoy's callbacks to a
//! filter's root and HTTP contexts, the allocator and the panic handler.
//!
//! Why not the proxy-wasm Rust SDK: it needs std, whose panic, I/O and environment machinery
//! and the SDK's own dispatcher (every callback of every context kind, a boxed context per
//! request) were 74 KB of a filter that does nothing (issue 18, docs/BENCHMARKS.md), half the
//! size an operator should pull to every proxy; and its host calls panic on an unexpected
//! status, which kills the worker thread's VM. This crate is what a filter that sells HTTP
//! requests needs of the ABI, and no more. The ABI itself is the proxy-wasm spec's
//! (`proxy-wasm/spec`, ABI versions 0.2.1).
//!
//! ```text
//!  Envoy ──proxy_on_*──► main!(Root) ──► Dispatcher ──► Root / Root::Http  ──host::*──► Envoy
//! ```
#![no_std]

extern crate alloc;

use alloc::vec::Vec;

#[cfg(target_arch = "wasm32")]
pub mod host;

#[cfg(target_arch = "wasm32")]
mod dispatch;

#[cfg(target_arch = "wasm32")]
pub use dispatch::{Dispatcher, Global};

/// What a callback tells the host to do with the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    /// Go on to the next filter.
    Continue = 0,
    /// Stop here until the filter resumes the stream or sends a local reply.
    Pause = 1,
}

/// Log levels of `proxy_log`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    /// Trace.
    Trace = 0,
    /// Debug.
    Debug = 1,
    /// Info.
    Info = 2,
    /// Warn.
    Warn = 3,
    /// Error.
    Error = 4,
    /// Critical.
    Critical = 5,
}

/// The header maps a filter reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    /// The request's headers.
    HttpRequestHeaders = 0,
    /// The response's headers.
    HttpResponseHeaders = 2,
    /// The headers of an HTTP call's answer.
    HttpCallResponseHeaders = 6,
}

/// The buffers a filter reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BufferType {
    /// The body of an HTTP call's answer.
    HttpCallResponseBody = 4,
    /// The plugin's `configuration`.
    PluginConfiguration = 7,
}

/// A host call that did not succeed (any status but `Ok`, and `NotFound` where a value is
/// required). Carries nothing: the caller fails closed, and no host detail reaches a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostError;

/// The result of a host call.
pub type HostResult<T> = Result<T, HostError>;

/// A filter's root context: one per plugin configuration in this VM.
pub trait Root: Sized + 'static {
    /// Its HTTP contexts.
    type Http: Http;

    /// A root context for `context_id`, before its configuration.
    fn new(context_id: u32) -> Self;

    /// The plugin configuration (`size` bytes) is ready; `false` refuses it.
    fn on_configure(&mut self, size: usize) -> bool;

    /// The timer set by [`host::set_tick_period_ms`] fired.
    fn on_tick(&mut self) {}

    /// The VM is going away; `true`: done now.
    fn on_done(&mut self) -> bool {
        true
    }

    /// An HTTP call this root made was answered (or timed out: no headers).
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, _body_size: usize) {}

    /// A new HTTP stream of this root.
    fn create_http(&self, context_id: u32) -> Self::Http;
}

/// A filter's context for one HTTP stream.
pub trait Http: 'static {
    /// The request's headers are ready (`headers` of them).
    fn on_request_headers(&mut self, headers: usize, end_of_stream: bool) -> Action;

    /// The response's headers are ready.
    fn on_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }

    /// An HTTP call this stream made was answered (or timed out: no headers).
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, _body_size: usize) {}
}

/// Decodes proxy-wasm's map serialization, borrowing: a little-endian `u32` count, then
/// `count` pairs of `u32` key and value lengths, then each key and each value followed by a
/// NUL. `None` on any inconsistency, or a key that is not UTF-8 (header and metadata names
/// are text): the bytes come from the host, but a panic here would take down the VM.
pub fn decode_pairs(bytes: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    let u32_at = |at: usize| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(b)).ok()
    };
    let count = u32_at(0)?;
    let mut data = count.checked_mul(8)?.checked_add(4)?;
    if data > bytes.len() {
        return None;
    }
    let mut take = |len: usize| -> Option<&[u8]> {
        let end = data.checked_add(len)?;
        let item = bytes.get(data..end)?;
        (bytes.get(end) == Some(&0)).then_some(())?;
        data = end + 1;
        Some(item)
    };
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let lens = 4 + i * 8;
        let (klen, vlen) = (u32_at(lens)?, u32_at(lens + 4)?);
        let key = core::str::from_utf8(take(klen)?).ok()?;
        let value = take(vlen)?;
        pairs.push((key, value));
    }
    Some(pairs)
}

/// Proxy-wasm's map serialization of `pairs` (the inverse of [`decode_pairs`]).
pub fn serialize_pairs(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.len()));
        out.extend_from_slice(&len(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Exports the proxy-wasm callbacks of a filter whose root context is `$root`: one
/// dispatcher static, the ABI version, the host's allocator entry, and every callback an HTTP
/// filter gets. A filter calls it once at its crate's top.
#[macro_export]
macro_rules! main {
    ($root:ty) => {
        static DISPATCHER: $crate::Global<$crate::Dispatcher<$root>> =
            $crate::Global::new($crate::Dispatcher::new());

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_abi_version_0_2_1() {}

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
            $crate::host::allocate(size)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
            DISPATCHER.on_context_create(context_id, root_context_id)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_vm_start(_context_id: u32, _size: usize) -> bool {
            true
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_configure(context_id: u32, size: usize) -> bool {
            DISPATCHER.on_configure(context_id, size)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_tick(context_id: u32) {
            DISPATCHER.on_tick(context_id)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_done(context_id: u32) -> bool {
            DISPATCHER.on_done(context_id)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_delete(context_id: u32) {
            DISPATCHER.on_delete(context_id)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_request_headers(
            context_id: u32,
            headers: usize,
            end_of_stream: bool,
        ) -> $crate::Action {
            DISPATCHER.on_request_headers(context_id, headers, end_of_stream)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_response_headers(
            context_id: u32,
            headers: usize,
            end_of_stream: bool,
        ) -> $crate::Action {
            DISPATCHER.on_response_headers(context_id, headers, end_of_stream)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn proxy_on_http_call_response(
            _context_id: u32,
            token: u32,
            headers: usize,
            body_size: usize,
            _trailers: usize,
        ) {
            DISPATCHER.on_http_call_response(token, headers, body_size)
        }
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn pairs_round_trip_and_refuse_inconsistency() {
        let pairs: Vec<(&str, &[u8])> = vec![(":path", b"/w"), ("x", b""), ("k", b"v\xff")];
        let bytes = serialize_pairs(&pairs);
        assert_eq!(decode_pairs(&bytes).unwrap(), pairs);
        assert_eq!(decode_pairs(&serialize_pairs(&[])).unwrap(), vec![]);
        for n in 0..bytes.len() {
            assert!(decode_pairs(&bytes[..n]).is_none(), "{n}");
        }
        let mut no_nul = bytes.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = 1;
        assert!(decode_pairs(&no_nul).is_none());
        // A count that would overflow or overrun.
        assert!(decode_pairs(&u32::MAX.to_le_bytes()).is_none());
        // A key that is not UTF-8.
        assert!(decode_pairs(&serialize_pairs(&[("\u{e9}", b"")])[..]).is_some());
        let mut bad = serialize_pairs(&[("ab", b"")]);
        bad[12] = 0xff;
        assert!(decode_pairs(&bad).is_none());
    }
}
