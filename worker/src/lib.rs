//! # l402-worker
//!
//! The Cloudflare Worker of l402-edge: the same verifier as the Envoy filter, in front of an
//! origin. A thin adapter on `l402-core`: the runtime's request, env (vars, secrets, KV
//! deny-list), clock and fetch are translated into core calls and back. Payment charges are
//! spent in the `SpentSet` Durable Object, and metered tokens counted in the `Allowance` one, or
//! both in the invoice-service's store.
#![forbid(unsafe_code)]

pub mod config;

#[cfg(target_arch = "wasm32")]
pub mod allowance;
#[cfg(target_arch = "wasm32")]
pub mod glue;
#[cfg(target_arch = "wasm32")]
pub mod spent;

pub use config::{Bindings, ConfigError, StoreHost, WorkerConfig};
