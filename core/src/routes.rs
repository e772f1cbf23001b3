//! Path-prefix routes, for edges that cannot attach metadata to their routes: the Worker, and
//! the Envoy filter under Istio or Envoy Gateway (where route metadata is out of reach). Envoy
//! route metadata, where available, comes first; these are the fallback.

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::string::String;
use alloc::vec::Vec;

use crate::json::{Field, JsonError, JsonResult, Reader, Unknown, Writer, read_object, required};
use crate::payment::{Schemes, UnknownScheme};
use crate::service::{CapabilityError, ServiceName, ServiceNameError, parse_capabilities};

/// One sold route: requests whose path starts with `path` buy `service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Path prefix (`/weather`), canonical (see [`crate::canonicalize`]); it covers the
    /// canonical request path on segment boundaries: `/weather`, `/weather/today`, not
    /// `/weatherman` (like Envoy's `path_separated_prefix`).
    pub path: String,
    /// The service sold.
    pub service: String,
    /// Required capabilities, comma-separated.
    pub capabilities: String,
    /// Schemes sold (`l402`, `payment`, or both, comma-separated); empty: the edge's default.
    pub schemes: String,
    /// The host's per-token rate limiter for this route (the Worker's rate limiting binding,
    /// by name), consulted with the verified token id before a request is counted or
    /// forwarded; empty: none. Envoy has its own: `local_ratelimit` on the route (ENVOY.md).
    pub rate_limit: String,
}

impl Route {
    /// Reads one route object; unknown members are refused (a misspelt `capabilities` must
    /// not sell a route without them).
    pub fn read(r: &mut Reader<'_>) -> JsonResult<Route> {
        let (mut path, mut service) = (None, None);
        let (mut capabilities, mut schemes, mut rate_limit) = (None, None, None);
        read_object(
            r,
            &mut [
                ("path", Field::Str(&mut path)),
                ("service", Field::Str(&mut service)),
                ("capabilities", Field::Str(&mut capabilities)),
                ("schemes", Field::Str(&mut schemes)),
                ("rate_limit", Field::Str(&mut rate_limit)),
            ],
            Unknown::Refuse,
        )?;
        Ok(Route {
            path: required(path, "path", r)?,
            service: required(service, "service", r)?,
            capabilities: capabilities.unwrap_or_default(),
            schemes: schemes.unwrap_or_default(),
            rate_limit: rate_limit.unwrap_or_default(),
        })
    }

    /// Writes the route as [`Route::read`] reads it (empty optional members left out).
    pub fn write(&self, w: &mut Writer) {
        w.open_object()
            .str_member("path", &self.path)
            .str_member("service", &self.service)
            .str_member("capabilities", &self.capabilities);
        for (name, v) in [("schemes", &self.schemes), ("rate_limit", &self.rate_limit)] {
            if !v.is_empty() {
                w.str_member(name, v);
            }
        }
        w.close_object();
    }
}

/// Why a route table was refused; `index` is the route's position.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RoutesError {
    /// Not a JSON list of routes.
    #[error("not a JSON list of {{\"path\", \"service\", \"capabilities\"}}: {0}")]
    Json(JsonError),
    /// A path that is not absolute, or not in canonical form.
    #[error("route {index}: path {path:?} must be a canonical absolute path (e.g. {canonical:?})")]
    Path {
        /// Position.
        index: usize,
        /// The path.
        path: String,
        /// Its canonical form, if it has one.
        canonical: String,
    },
    /// A service name a token could not carry.
    #[error("route {index}: service {service:?}: {error}")]
    Service {
        /// Position.
        index: usize,
        /// The name as written.
        service: String,
        /// Why it is refused.
        error: ServiceNameError,
    },
    /// A capability list a token could not carry.
    #[error("route {index}: {error}")]
    Capabilities {
        /// Position.
        index: usize,
        /// Why it is refused.
        error: CapabilityError,
    },
    /// A rate limiter name that is not a binding name (`[A-Za-z0-9_]`, at most 64).
    #[error("route {index}: rate_limit must be a binding name: letters, digits, '_'")]
    RateLimit {
        /// Position.
        index: usize,
    },
    /// A scheme list naming something else than `l402` and `payment`.
    #[error("route {index}: schemes: {error}")]
    Schemes {
        /// Position.
        index: usize,
        /// Why it is refused.
        error: UnknownScheme,
    },
}

/// Routes in order; the first prefix match wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// Validates every route.
    pub fn new(routes: Vec<Route>) -> Result<Self, RoutesError> {
        for (index, r) in routes.iter().enumerate() {
            // Prefixes are compared with canonical request paths: one written otherwise
            // (`/weather//`, `/%77eather`, `/weather?x`) would never match, or match wrongly.
            let canonical = crate::path::canonicalize(r.path.as_bytes())
                .ok()
                .filter(|t| t.query().is_none());
            if canonical.as_ref().is_none_or(|c| c.changed()) {
                return Err(RoutesError::Path {
                    index,
                    path: r.path.clone(),
                    canonical: canonical.map(|c| c.path().to_owned()).unwrap_or_default(),
                });
            }
            ServiceName::new(&r.service).map_err(|error| RoutesError::Service {
                index,
                service: r.service.clone(),
                error,
            })?;
            parse_capabilities(&r.capabilities)
                .map_err(|error| RoutesError::Capabilities { index, error })?;
            if !r.schemes.is_empty() {
                r.schemes
                    .parse::<Schemes>()
                    .map_err(|error| RoutesError::Schemes { index, error })?;
            }
            let binding = r.rate_limit.as_bytes();
            if binding.len() > 64
                || !binding
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
            {
                return Err(RoutesError::RateLimit { index });
            }
        }
        Ok(Routes(routes))
    }

    /// Parses and validates `[{"path": "/weather", "service": "weather", "capabilities": "read"}]`.
    pub fn from_json(json: &str) -> Result<Self, RoutesError> {
        let routes = Reader::document(json.as_bytes(), |r| {
            let mut out = Vec::new();
            let mut items = r.array()?;
            while items.next(r)? {
                let i = items.index();
                out.push(Route::read(r).map_err(|e| e.item(i))?);
            }
            Ok(out)
        })
        .map_err(RoutesError::Json)?;
        Self::new(routes)
    }

    /// The route a canonical path buys, if any: the first whose prefix covers it.
    pub fn route_for(&self, canonical_path: &str) -> Option<&Route> {
        self.0
            .iter()
            .find(|r| crate::path::under_prefix(canonical_path, &r.path))
    }

    /// The routes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.0.iter()
    }

    /// No routes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn first_prefix_match_wins_and_bad_routes_are_named() {
        let r = Routes::from_json(
            r#"[{"path":"/weather/free","service":"free"},{"path":"/weather","service":"weather","capabilities":"read"}]"#,
        )
        .unwrap();
        assert_eq!(r.route_for("/weather/free/x").unwrap().service, "free");
        assert_eq!(r.route_for("/weather/x").unwrap().capabilities, "read");
        assert!(r.route_for("/weatherman").is_none());
        assert!(r.route_for("/maps").is_none());
        for bad in ["/weather//", "/%77eather", "/w?x", "/a/../b", "/a;b"] {
            let json = format!(r#"[{{"path":"{bad}","service":"weather"}}]"#);
            assert!(
                matches!(Routes::from_json(&json), Err(RoutesError::Path { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            Routes::from_json(r#"[{"path":"w","service":"weather"}]"#),
            Err(RoutesError::Path { index: 0, .. })
        ));
        assert!(matches!(
            Routes::from_json(
                r#"[{"path":"/","service":"ok"},{"path":"/w","service":"Bad_Name"}]"#
            ),
            Err(RoutesError::Service { index: 1, .. } | RoutesError::Capabilities { index: 1, .. })
        ));
        assert!(matches!(
            Routes::from_json(r#"[{"path":"/w","service":"w","colour":"blue"}]"#),
            Err(RoutesError::Json(_))
        ));
        assert!(Routes::from_json("[]").unwrap().is_empty());
        assert!(matches!(
            Routes::from_json(r#"[{"path":"/w","service":"w","schemes":"x402"}]"#),
            Err(RoutesError::Schemes { index: 0, .. })
        ));
        let r = Routes::from_json(r#"[{"path":"/w","service":"w","schemes":"payment"}]"#).unwrap();
        assert_eq!(r.route_for("/w").unwrap().schemes, "payment");
        assert!(matches!(
            Routes::from_json(r#"[{"path":"/w","service":"w","rate_limit":"A B"}]"#),
            Err(RoutesError::RateLimit { index: 0 })
        ));
        let r = Routes::from_json(r#"[{"path":"/w","service":"w","rate_limit":"L402_PER_TOKEN"}]"#)
            .unwrap();
        assert_eq!(r.route_for("/w").unwrap().rate_limit, "L402_PER_TOKEN");
    }
}
