//! Service names, catalog entries and capability lists.

#[allow(unused_imports)]
use crate::prelude::*;

use core::fmt;

/// Longest service name accepted.
pub const MAX_SERVICE_NAME_LEN: usize = 64;

/// A service name: 1–64 characters of `[a-z0-9.-]`. No `_`, because `_` separates a service
/// from its condition in `<svc>_valid_until`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);

/// Why a string is not a service name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServiceNameError {
    /// Empty.
    #[error("service name is empty")]
    Empty,
    /// Longer than 64 characters.
    #[error("service name is {0} characters, at most 64 are allowed")]
    TooLong(usize),
    /// A character outside `[a-z0-9.-]`.
    #[error("service name may only contain a-z, 0-9, '.' and '-'")]
    BadCharacter,
}

pub(crate) fn is_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SERVICE_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

impl ServiceName {
    /// Validates `s`.
    pub fn new(s: &str) -> Result<Self, ServiceNameError> {
        if s.is_empty() {
            return Err(ServiceNameError::Empty);
        }
        if s.len() > MAX_SERVICE_NAME_LEN {
            return Err(ServiceNameError::TooLong(s.len()));
        }
        if !is_service_name(s) {
            return Err(ServiceNameError::BadCharacter);
        }
        Ok(ServiceName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::str::FromStr for ServiceName {
    type Err = ServiceNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::new(s)
    }
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a capability list is refused (in config; a token's caveat is judged by the verifier).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    /// A capability contains `,`, `=`, white space or a control character.
    #[error("capability {0:?} may not contain ',', '=', white space or control characters")]
    BadCapability(String),
}

/// Parses `"read, write"` (route metadata, config) into capability names. Empty entries are
/// dropped, so `""` is no capability at all.
pub fn parse_capabilities(s: &str) -> Result<Vec<String>, CapabilityError> {
    let mut out = Vec::new();
    for c in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        if c.bytes()
            .any(|b| b == b'=' || b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(CapabilityError::BadCapability(c.to_owned()));
        }
        if !out.iter().any(|o: &String| o == c) {
            out.push(c.to_owned());
        }
    }
    Ok(out)
}

/// What a token is minted for: one entry of the invoice-service's catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The service sold.
    pub name: ServiceName,
    /// Aperture's tier number, carried in `services=<name>:<tier>`.
    pub tier: u32,
    /// Written as `<name>_capabilities=a,b` (even when empty, as Aperture does).
    pub capabilities: Vec<String>,
    /// Seconds from mint to `<name>_valid_until`; `None` writes no expiry caveat.
    pub lifetime_secs: Option<u64>,
    /// Requests one token serves, written as `<name>_allowance=N` (a bundle); `None`: as many
    /// as its lifetime allows.
    pub allowance: Option<u64>,
}
