//! The host's functions (proxy-wasm ABI 0.2.1 imports, and WASI's environment), each behind a
//! safe function. Buffers the host returns were allocated through [`allocate`], so they are
//! taken back as `Vec`s and freed by the allocator that made them.
#![allow(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::null_mut;

use crate::{BufferType, HostError, HostResult, LogLevel, MapType};

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
    fn proxy_get_current_time_nanoseconds(out: *mut u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_buffer_bytes(
        kind: u32,
        start: usize,
        max: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        body: *const u8,
        body_size: usize,
        trailers: *const u8,
        trailers_size: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn environ_sizes_get(count: *mut usize, buf_size: *mut usize) -> u16;
    fn environ_get(environ: *mut *mut u8, buf: *mut u8) -> u16;
}

/// The allocator entry the host calls (`proxy_on_memory_allocate`) to hand the VM a buffer.
pub fn allocate(size: usize) -> *mut u8 {
    let mut v: Vec<u8> = Vec::with_capacity(size);
    let p = v.as_mut_ptr();
    core::mem::forget(v);
    p
}

/// Takes back a buffer the host filled: `None` when it gave none.
fn owned(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: a non-null pointer the host returns was made by `allocate(size)` (the ABI:
    // return buffers come from `proxy_on_memory_allocate`), a `Vec<u8>` of capacity `size`,
    // which the host filled with `size` bytes and hands over.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

fn status(s: u32) -> HostResult<()> {
    if s == OK { Ok(()) } else { Err(HostError) }
}

/// A getter's answer: `Ok(None)` for `NotFound`.
fn fetched(s: u32, data: *mut u8, size: usize) -> HostResult<Option<Vec<u8>>> {
    match s {
        OK => Ok(owned(data, size)),
        NOT_FOUND => {
            // Nothing is handed over with NotFound; free whatever was, to be safe.
            drop(owned(data, size));
            Ok(None)
        }
        _ => {
            drop(owned(data, size));
            Err(HostError)
        }
    }
}

/// Writes a line to Envoy's log (failures are not reported: there is nowhere to say them).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: a pointer and length of a live `&str`, read by the host during the call.
    unsafe {
        proxy_log(level as u32, message.as_ptr(), message.len());
    }
}

/// The host's wall clock, nanoseconds since the Unix epoch.
pub fn current_time_ns() -> HostResult<u64> {
    let mut t = 0u64;
    // SAFETY: the host writes one u64 through a pointer to a live local.
    status(unsafe { proxy_get_current_time_nanoseconds(&mut t) })?;
    Ok(t)
}

/// Sets the root context's timer (`0`: off).
pub fn set_tick_period_ms(period: u32) -> HostResult<()> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_tick_period_milliseconds(period) })
}

/// Bytes `start..start + max` of a buffer.
pub fn buffer(kind: BufferType, start: usize, max: usize) -> HostResult<Option<Vec<u8>>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: the host writes a pointer and a size through pointers to live locals.
    let s = unsafe { proxy_get_buffer_bytes(kind as u32, start, max, &mut data, &mut size) };
    fetched(s, data, size)
}

/// A whole header map, in proxy-wasm's map serialization ([`crate::decode_pairs`] reads it
/// in place: one copy from the host, none after).
pub fn header_map(map: MapType) -> HostResult<Vec<u8>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: as in `buffer`.
    let s = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    match fetched(s, data, size)? {
        Some(b) => Ok(b),
        None => Err(HostError),
    }
}

/// One header's value (`None`: absent; repeated headers: the first).
pub fn header(map: MapType, name: &str) -> HostResult<Option<Vec<u8>>> {
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: `name` is read during the call; the host writes through pointers to locals.
    let s = unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    match s {
        // A present header with an empty value may come back as no buffer.
        OK if data.is_null() => Ok(Some(Vec::new())),
        _ => fetched(s, data, size),
    }
}

/// Sets a header, replacing every value it had.
pub fn set_header(map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
    // SAFETY: both slices are read during the call.
    status(unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Adds a value to a header.
pub fn add_header(map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
    // SAFETY: both slices are read during the call.
    status(unsafe {
        proxy_add_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// Removes every value of a header.
pub fn remove_header(map: MapType, name: &str) -> HostResult<()> {
    // SAFETY: `name` is read during the call.
    status(unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) })
}

/// A property by its path (`["xds", "route_metadata", …]`); `None`: not set.
pub fn property(path: &[&str]) -> HostResult<Option<Vec<u8>>> {
    // Segments joined by NUL.
    let mut p = Vec::with_capacity(path.iter().map(|s| s.len() + 1).sum());
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            p.push(0);
        }
        p.extend_from_slice(seg.as_bytes());
    }
    let (mut data, mut size) = (null_mut(), 0usize);
    // SAFETY: `p` is read during the call; the host writes through pointers to locals.
    let s = unsafe { proxy_get_property(p.as_ptr(), p.len(), &mut data, &mut size) };
    fetched(s, data, size)
}

/// Answers the request from the filter: `grpc_status` `None` for HTTP, or the gRPC status of a
/// trailers-only answer (then `body` is the gRPC message and `headers` its metadata).
pub fn send_local_response(
    status_code: u32,
    headers: &[(&str, &[u8])],
    body: &[u8],
    grpc_status: Option<u32>,
) -> HostResult<()> {
    let map = crate::serialize_pairs(headers);
    let grpc = grpc_status
        .and_then(|g| i32::try_from(g).ok())
        .unwrap_or(-1);
    // SAFETY: every slice is read during the call.
    status(unsafe {
        proxy_send_local_response(
            status_code,
            core::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            grpc,
        )
    })
}

/// Starts an HTTP call to cluster `upstream`; the answer comes to the calling context's
/// `on_http_call_response` with the returned token.
pub fn http_call(
    upstream: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    timeout_ms: u32,
) -> HostResult<u32> {
    let map = crate::serialize_pairs(headers);
    let trailers = crate::serialize_pairs(&[]);
    let mut token = 0u32;
    // SAFETY: every slice is read during the call; the host writes the token to a local.
    status(unsafe {
        proxy_http_call(
            upstream.as_ptr(),
            upstream.len(),
            map.as_ptr(),
            map.len(),
            body.as_ptr(),
            body.len(),
            trailers.as_ptr(),
            trailers.len(),
            timeout_ms,
            &mut token,
        )
    })?;
    crate::dispatch::register_callout(token);
    Ok(token)
}

/// Resumes a request the filter paused.
pub fn resume_request() -> HostResult<()> {
    // SAFETY: no pointers. Stream 0 is the HTTP request.
    status(unsafe { proxy_continue_stream(0) })
}

/// Makes `context_id` the context later host calls act on.
pub(crate) fn set_effective_context(context_id: u32) -> HostResult<()> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_effective_context(context_id) })
}

/// Defines a counter (`wasmcustom.<name>` in Envoy's stats).
pub fn define_counter(name: &str) -> HostResult<u32> {
    let mut id = 0u32;
    // SAFETY: `name` is read during the call; the host writes the id to a local.
    status(unsafe { proxy_define_metric(0, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Adds `offset` to a metric.
pub fn increment_metric(id: u32, offset: i64) -> HostResult<()> {
    // SAFETY: no pointers.
    status(unsafe { proxy_increment_metric(id, offset) })
}

/// A variable of the VM's environment (Envoy's `vm_config.environment_variables`), read
/// through WASI; `None` when unset or not UTF-8.
pub fn env_var(name: &str) -> Option<String> {
    let (mut count, mut size) = (0usize, 0usize);
    // SAFETY: the host writes two sizes to locals.
    if unsafe { environ_sizes_get(&mut count, &mut size) } != 0 {
        return None;
    }
    let mut pointers: Vec<*mut u8> = alloc::vec![null_mut(); count];
    let mut buf: Vec<u8> = alloc::vec![0; size];
    // SAFETY: `pointers` has room for `count` pointers and `buf` for `size` bytes, the sizes
    // the host just gave; it writes `NAME=value\0` strings into `buf` and their addresses
    // into `pointers`.
    if unsafe { environ_get(pointers.as_mut_ptr(), buf.as_mut_ptr()) } != 0 {
        return None;
    }
    // Read the strings back from `buf` itself (NUL-separated, in order), not through the
    // host's pointers.
    buf.split(|b| *b == 0).find_map(|entry| {
        let entry = core::str::from_utf8(entry).ok()?;
        let (k, v) = entry.split_once('=')?;
        (k == name).then(|| String::from(v))
    })
}

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic is a bug (the filter's code has no `unwrap` on anything a request can reach): log
/// where, without formatting the message (no `core::fmt` in the module for it) and without
/// allocating (the panic may be an allocation failing), then trap. Envoy fails the request
/// closed and replaces the VM.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut line = [0u8; 256];
    let mut len = 0;
    let mut put = |s: &[u8]| {
        for b in s {
            if let Some(slot) = line.get_mut(len) {
                *slot = *b;
                len += 1;
            }
        }
    };
    put(b"l402: panic");
    if let Some(msg) = info.message().as_str() {
        put(b": ");
        put(msg.as_bytes());
    }
    if let Some(loc) = info.location() {
        put(b" at ");
        put(loc.file().as_bytes());
        put(b":");
        let mut n = loc.line();
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            if let Some(d) = digits.get_mut(i) {
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || i == 0 {
                break;
            }
        }
        put(digits.get(i..).unwrap_or_default());
    }
    let text = line.get(..len).unwrap_or_default();
    // SAFETY: a pointer and length into a live local, read by the host during the call.
    unsafe {
        proxy_log(LogLevel::Critical as u32, text.as_ptr(), text.len());
    }
    core::arch::wasm32::unreachable()
}

/// `memcmp`, which slice comparisons compile to. On `wasm32-wasip1` the C library provides it,
/// and a `no_std` module links none; this one is the definition the module exports to itself.
///
/// # Safety
/// `a` and `b` must be valid for reads of `n` bytes (the compiler's calls are).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n`, and the caller guarantees `n` readable bytes at each pointer.
        let (x, y) = unsafe { (core::ptr::read(a.add(i)), core::ptr::read(b.add(i))) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}
