//! # invoice-service
//!
//! The native half of l402-edge: the only part that talks to a Lightning node. It answers the
//! edges' `POST /v1/challenges` with an invoice and a macaroon minted by `l402-core` and bound
//! to that invoice's payment hash, and the same invoice as a Payment-scheme charge. Stateless
//! apart from its invoice pool and the spent-set of Payment charges (`POST /v1/redeem`, kept in
//! a store replicas share): replicas with the same keyring and store are interchangeable, and
//! L402 verification never needs this service.
#![forbid(unsafe_code)]

pub mod app;
pub mod backend;
pub mod cli;
pub mod clock;
pub mod config;
pub mod metrics;
pub mod pool;
pub mod pricing;
pub mod spent;
