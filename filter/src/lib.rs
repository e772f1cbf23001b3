//! # l402-filter
//!
//! The Envoy proxy-wasm HTTP filter of l402-edge: a thin adapter that translates Envoy's
//! headers, route metadata, clock and HTTP calls into `l402-core` calls and back. Routes tagged
//! `metadata.filter_metadata.l402.service` are sold per request; others pass untouched.
//!
//! Host calls go through `proxy_wasm::hostcalls` (which return `Result`), never the SDK's
//! trait defaults (which unwrap): a panic would kill this worker thread's Wasm VM. Header
//! values are read as bytes: a non-UTF-8 value must be a rejection, not a crash.
#![forbid(unsafe_code)]
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

/// What every module uses from `alloc`.
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec::Vec;
}

pub mod config;
pub mod metadata;

#[cfg(target_arch = "wasm32")]
mod glue;

pub use config::{ConfigError, FilterConfig};
