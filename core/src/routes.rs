//! Path-prefix routes, for edges that cannot attach metadata to their routes: the Worker, and
//! the Envoy filter under Istio or Envoy Gateway (where route metadata is out of reach). Envoy
//! route metadata, where available, comes first; these are the fallback.

use serde::Deserialize;

use crate::service::{ServiceName, parse_capabilities};

/// One sold route: requests whose path starts with `path` buy `service`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Path prefix (`/weather`); matched against the request path as sent (query included),
    /// like Envoy's `prefix` match.
    pub path: String,
    /// The service sold.
    pub service: String,
    /// Required capabilities, comma-separated.
    #[serde(default)]
    pub capabilities: String,
}

/// Why a route table was refused; `index` is the route's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutesError {
    /// Not a JSON list of routes.
    #[error("not a JSON list of {{\"path\", \"service\", \"capabilities\"}}: {0}")]
    Json(String),
    /// A path that is not absolute.
    #[error("route {index}: path {path:?} must start with '/'")]
    Path {
        /// Position.
        index: usize,
        /// The path.
        path: String,
    },
    /// A service name or capability list that a token could not carry.
    #[error("route {index}: {message}")]
    Invalid {
        /// Position.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// Routes in order; the first prefix match wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// Validates every route.
    pub fn new(routes: Vec<Route>) -> Result<Self, RoutesError> {
        for (index, r) in routes.iter().enumerate() {
            if !r.path.starts_with('/') {
                return Err(RoutesError::Path {
                    index,
                    path: r.path.clone(),
                });
            }
            let invalid = |message: String| RoutesError::Invalid { index, message };
            ServiceName::new(&r.service)
                .map_err(|e| invalid(format!("service {:?}: {e}", r.service)))?;
            parse_capabilities(&r.capabilities).map_err(|e| invalid(e.to_string()))?;
        }
        Ok(Routes(routes))
    }

    /// Parses and validates `[{"path": "/weather", "service": "weather", "capabilities": "read"}]`.
    pub fn from_json(json: &str) -> Result<Self, RoutesError> {
        let routes: Vec<Route> =
            serde_json::from_str(json).map_err(|e| RoutesError::Json(e.to_string()))?;
        Self::new(routes)
    }

    /// The route `path` buys, if any.
    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.0.iter().find(|r| path.starts_with(&r.path))
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
        assert_eq!(r.route_for("/weather?q=1").unwrap().capabilities, "read");
        assert!(r.route_for("/maps").is_none());
        assert!(matches!(
            Routes::from_json(r#"[{"path":"w","service":"weather"}]"#),
            Err(RoutesError::Path { index: 0, .. })
        ));
        assert!(matches!(
            Routes::from_json(
                r#"[{"path":"/","service":"ok"},{"path":"/w","service":"Bad_Name"}]"#
            ),
            Err(RoutesError::Invalid { index: 1, .. })
        ));
        assert!(matches!(
            Routes::from_json(r#"[{"path":"/w","service":"w","colour":"blue"}]"#),
            Err(RoutesError::Json(_))
        ));
        assert!(Routes::from_json("[]").unwrap().is_empty());
    }
}
