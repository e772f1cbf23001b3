//! The settings both edges share, validated once (the filter's JSON and the Worker's vars are
//! only two spellings of them). Errors name the [`Setting`]; each host prints the name its
//! operators write (`retry_after_secs`, `RETRY_AFTER_SECS`). No error carries a secret.

#[allow(unused_imports)]
use crate::prelude::*;

use hashbrown::HashSet;

use crate::allowance::{DEFAULT_ALLOWANCE_LEASE, DEFAULT_ALLOWANCE_LEASE_MS, MAX_ALLOWANCE_LEASE};
use crate::challenge::{
    ChallengeForm, DEFAULT_RETRY_AFTER_SECS, HEADER_SERVICE, HEADER_TOKEN_ID, InvalidPolicy,
};
use crate::context::{ContextKey, HEADER_CONTEXT};
use crate::ids::TokenId;
use crate::keyring::Keyring;
use crate::payment::Schemes;
use crate::routes::Routes;
use crate::verify::Verifier;

/// Default verified-credential cache entries per VM / isolate.
pub const DEFAULT_CACHE_SIZE: usize = 1024;
/// Largest cache accepted.
pub const MAX_CACHE_SIZE: usize = 1_000_000;
/// Default invoice-service call timeout.
pub const DEFAULT_TIMEOUT_MS: u32 = 2000;
/// Default challenges a second per edge instance (a VM, an isolate): each unpaid request costs
/// a node invoice, so a flood is bounded before it reaches the node.
pub const DEFAULT_CHALLENGES_PER_SECOND: u32 = 50;
/// Default burst above that rate.
pub const DEFAULT_CHALLENGE_BURST: u32 = 100;
/// Shortest edge token accepted (here and by the invoice-service).
pub const MIN_EDGE_TOKEN_LEN: usize = 16;

/// One shared setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Setting {
    /// The keyring.
    Keyring,
    /// The path-prefix route table.
    Routes,
    /// Revoked token ids given in configuration.
    DenyList,
    /// 402-with-challenge or 401 for invalid credentials.
    OnInvalid,
    /// Remove the credential before forwarding.
    StripCredential,
    /// Header carrying the token id to the origin.
    TokenIdHeader,
    /// Header carrying the service to the origin.
    ServiceHeader,
    /// Header carrying the signed context to the origin.
    ContextHeader,
    /// Key that signs the context.
    ContextKey,
    /// `Retry-After` on 503.
    RetryAfter,
    /// Verified-credential cache size.
    CacheSize,
    /// Invoice-service call timeout.
    Timeout,
    /// Bearer token for the invoice-service.
    EdgeToken,
    /// What to do with a valid path that is not canonical.
    NonCanonicalPath,
    /// Challenges per second per instance.
    ChallengesPerSecond,
    /// Challenge burst.
    ChallengeBurst,
    /// How the L402 challenge names the macaroon.
    ChallengeForm,
    /// Schemes sold on routes that do not say.
    Schemes,
    /// Units of a metered token's allowance taken from the store at once.
    AllowanceLease,
    /// How long unspent leased units are held before they go back.
    AllowanceLeaseMs,
    /// Serve the discovery manifest and the `Link` to it on every 402.
    Discovery,
    /// Answer browsers' 402s with the paywall page, and serve its status endpoint.
    Paywall,
    /// Where to serve the OpenAPI document (empty: not served).
    OpenApiPath,
    /// Paths the manifest lists besides the route table (Envoy route metadata sells them).
    Publish,
}

impl Setting {
    /// The filter's JSON field.
    pub const fn json_name(self) -> &'static str {
        match self {
            Setting::Keyring => "keyring",
            Setting::Routes => "routes",
            Setting::DenyList => "deny_list",
            Setting::OnInvalid => "on_invalid",
            Setting::StripCredential => "strip_credential",
            Setting::TokenIdHeader => "token_id_header",
            Setting::ServiceHeader => "service_header",
            Setting::ContextHeader => "context_header",
            Setting::ContextKey => "context_key",
            Setting::RetryAfter => "retry_after_secs",
            Setting::CacheSize => "cache_size",
            Setting::Timeout => "invoice_service.timeout_ms",
            Setting::EdgeToken => "invoice_service.token",
            Setting::NonCanonicalPath => "non_canonical_path",
            Setting::ChallengesPerSecond => "challenges_per_second",
            Setting::ChallengeBurst => "challenge_burst",
            Setting::ChallengeForm => "challenge_form",
            Setting::Schemes => "schemes",
            Setting::AllowanceLease => "allowance_lease",
            Setting::AllowanceLeaseMs => "allowance_lease_ms",
            Setting::Discovery => "discovery",
            Setting::Paywall => "paywall",
            Setting::OpenApiPath => "openapi_path",
            Setting::Publish => "publish",
        }
    }

    /// The Worker's variable or secret.
    pub const fn var_name(self) -> &'static str {
        match self {
            Setting::Keyring => "L402_KEYS",
            Setting::Routes => "L402_ROUTES",
            Setting::DenyList => "L402_DENY_LIST",
            Setting::OnInvalid => "ON_INVALID",
            Setting::StripCredential => "STRIP_CREDENTIAL",
            Setting::TokenIdHeader => "TOKEN_ID_HEADER",
            Setting::ServiceHeader => "SERVICE_HEADER",
            Setting::ContextHeader => "CONTEXT_HEADER",
            Setting::ContextKey => "L402_CONTEXT_KEY",
            Setting::RetryAfter => "RETRY_AFTER_SECS",
            Setting::CacheSize => "CACHE_SIZE",
            Setting::Timeout => "INVOICE_SERVICE_TIMEOUT_MS",
            Setting::EdgeToken => "INVOICE_SERVICE_TOKEN",
            Setting::NonCanonicalPath => "NON_CANONICAL_PATH",
            Setting::ChallengesPerSecond => "CHALLENGES_PER_SECOND",
            Setting::ChallengeBurst => "CHALLENGE_BURST",
            Setting::ChallengeForm => "CHALLENGE_FORM",
            Setting::Schemes => "SCHEMES",
            Setting::AllowanceLease => "ALLOWANCE_LEASE",
            Setting::AllowanceLeaseMs => "ALLOWANCE_LEASE_MS",
            Setting::Discovery => "DISCOVERY",
            Setting::Paywall => "PAYWALL",
            Setting::OpenApiPath => "OPENAPI_PATH",
            Setting::Publish => "L402_PUBLISH",
        }
    }
}

/// What is wrong with a setting's value. Never quotes the value (it may be a secret).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// Missing.
    #[error("required")]
    Required,
    /// Not a number, or not `true`/`false`.
    #[error("not a {0}")]
    NotA(&'static str),
    /// Outside the accepted range.
    #[error("must be {min} to {max}")]
    OutOfRange {
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// Not a lower-case-able header name of `[A-Za-z0-9-]`.
    #[error("not a valid header name (letters, digits, '-')")]
    HeaderName,
    /// Two of the edge's headers have the same name.
    #[error("must differ from the edge's other headers")]
    SameHeader,
    /// An edge token too short or with spaces or control characters.
    #[error("must be at least {MIN_EDGE_TOKEN_LEN} printable characters without spaces")]
    WeakEdgeToken,
    /// Not one of the names the setting takes.
    #[error("expected one of: {0}")]
    OneOf(&'static str),
    /// Why the keyring, routes, a token id or the context key was refused.
    #[error("{0}")]
    Invalid(String),
}

/// A refused setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", setting.json_name())]
pub struct SettingsError {
    /// Which.
    pub setting: Setting,
    /// Why.
    pub problem: Problem,
}

fn fail<T>(setting: Setting, problem: Problem) -> Result<T, SettingsError> {
    Err(SettingsError { setting, problem })
}

/// What to do with a valid request path that is not in canonical form (`//weather`,
/// `/%77eather`). Ambiguous paths are refused either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonCanonicalPath {
    /// 400: the default, so a host that forgot to normalize fails closed.
    #[default]
    Refuse,
    /// Decide on the canonical form and forward as sent: for a host that normalizes itself
    /// (Envoy with `normalize_path` and `merge_slashes`).
    Allow,
}

/// A bound on challenges: `per_second` refilled, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChallengeRate {
    /// Sustained challenges a second.
    pub per_second: u32,
    /// Most at once.
    pub burst: u32,
}

/// Raw values, as a host read them; every field optional (defaults apply). Hosts parse their
/// own syntax (JSON numbers, strings in vars) into these types and nothing more.
#[derive(Default)]
pub struct EdgeOptions {
    /// Keyring text (`id:hex,...`).
    pub keyring: Option<String>,
    /// Route table JSON; `None` or empty: none.
    pub routes: Option<String>,
    /// Whether the edge must sell something through its route table (the Worker has no
    /// other way to sell).
    pub routes_required: bool,
    /// Revoked token ids, hex.
    pub deny_list: Vec<String>,
    /// `challenge` or `unauthorized`.
    pub on_invalid: Option<String>,
    /// Remove the credential before forwarding.
    pub strip_credential: Option<bool>,
    /// Token id header.
    pub token_id_header: Option<String>,
    /// Service header.
    pub service_header: Option<String>,
    /// Context header.
    pub context_header: Option<String>,
    /// Context key, hex.
    pub context_key: Option<String>,
    /// `Retry-After` seconds.
    pub retry_after_secs: Option<u64>,
    /// Cache entries.
    pub cache_size: Option<u64>,
    /// Invoice-service timeout, ms.
    pub timeout_ms: Option<u64>,
    /// Bearer token for the invoice-service.
    pub edge_token: Option<String>,
    /// `refuse` or `allow`.
    pub non_canonical_path: Option<String>,
    /// Challenges a second per instance; 0 turns the bound off.
    pub challenges_per_second: Option<u64>,
    /// Challenge burst.
    pub challenge_burst: Option<u64>,
    /// `macaroon`, `token` or `both`.
    pub challenge_form: Option<String>,
    /// `l402`, `payment` or `l402,payment`.
    pub schemes: Option<String>,
    /// Allowance units taken at once (1: every metered request asks the store).
    pub allowance_lease: Option<u64>,
    /// Unspent leased units go back after this many ms.
    pub allowance_lease_ms: Option<u64>,
    /// Serve discovery (default on).
    pub discovery: Option<bool>,
    /// Serve the paywall page (default on).
    pub paywall: Option<bool>,
    /// OpenAPI document path (default: not served).
    pub openapi_path: Option<String>,
    /// Route-table JSON of paths to publish in the manifest only.
    pub publish: Option<String>,
}

/// The validated settings.
#[derive(Debug)]
pub struct EdgeSettings {
    /// The verifier over the keyring.
    pub verifier: Verifier,
    /// Path-prefix routes (the Worker; the filter where route metadata is out of reach).
    pub routes: Routes,
    /// Revoked ids from configuration.
    pub deny_list: HashSet<TokenId>,
    /// Invalid credential policy.
    pub on_invalid: InvalidPolicy,
    /// Remove the credential before forwarding.
    pub strip_credential: bool,
    /// Token id header (lower case).
    pub token_id_header: String,
    /// Service header (lower case).
    pub service_header: String,
    /// Context header (lower case).
    pub context_header: String,
    /// Context key; `None`: no signed context.
    pub context_key: Option<ContextKey>,
    /// `Retry-After` on 503.
    pub retry_after_secs: u32,
    /// Cache entries; 0 = off.
    pub cache_size: usize,
    /// Invoice-service call timeout, ms.
    pub timeout_ms: u32,
    /// `Bearer <token>` for the invoice-service.
    pub authorization: String,
    /// Non-canonical path policy.
    pub non_canonical_path: NonCanonicalPath,
    /// Challenge bound; `None`: off.
    pub challenge_rate: Option<ChallengeRate>,
    /// How the L402 challenge names the macaroon.
    pub challenge_form: ChallengeForm,
    /// Schemes sold where the route does not say (default both).
    pub schemes: Schemes,
    /// Allowance units taken from the store at once.
    pub allowance_lease: u64,
    /// Unspent leased units go back after this many ms.
    pub allowance_lease_ms: u64,
    /// Serve `/.well-known/l402.json` and `Link` it from every 402.
    pub discovery: bool,
    /// Answer browsers' 402s with the paywall page; serve its status endpoint.
    pub paywall: bool,
    /// Where the OpenAPI document is served; `None`: it is not.
    pub openapi_path: Option<String>,
    /// Paths listed in the manifest besides `routes` (sold through Envoy route metadata).
    pub publish: Routes,
}

/// The edge-token rule, shared with the invoice-service that checks the same tokens.
pub fn check_edge_token(token: &str) -> Result<(), Problem> {
    if token.len() < MIN_EDGE_TOKEN_LEN
        || token
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii())
    {
        return Err(Problem::WeakEdgeToken);
    }
    Ok(())
}

fn header_name(
    setting: Setting,
    v: Option<String>,
    default: &str,
) -> Result<String, SettingsError> {
    let v = v.unwrap_or_else(|| default.to_owned());
    if v.is_empty()
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return fail(setting, Problem::HeaderName);
    }
    Ok(v.to_ascii_lowercase().replace('_', "-"))
}

fn ranged(
    setting: Setting,
    v: Option<u64>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, SettingsError> {
    let v = v.unwrap_or(default);
    if v < min || v > max {
        return fail(setting, Problem::OutOfRange { min, max });
    }
    Ok(v)
}

fn narrow<T: TryFrom<u64>>(setting: Setting, v: u64) -> Result<T, SettingsError> {
    T::try_from(v).or(fail(setting, Problem::NotA("number in range")))
}

impl EdgeOptions {
    /// Validates every value; the first refusal names its setting.
    pub fn validate(self) -> Result<EdgeSettings, SettingsError> {
        use Setting as S;
        let keyring: Keyring = match self.keyring {
            None => return fail(S::Keyring, Problem::Required),
            Some(k) => k.parse().or_else(|e: crate::KeyringError| {
                fail(S::Keyring, Problem::Invalid(e.to_string()))
            })?,
        };
        let routes = match self.routes.as_deref().map(str::trim) {
            None | Some("") => Routes::default(),
            Some(json) => Routes::from_json(json)
                .or_else(|e| fail(S::Routes, Problem::Invalid(e.to_string())))?,
        };
        if self.routes_required && routes.is_empty() {
            return fail(
                S::Routes,
                Problem::Invalid("sells nothing: add a route".into()),
            );
        }
        let mut deny_list = HashSet::with_capacity(self.deny_list.len());
        for (i, id) in self.deny_list.iter().enumerate() {
            let Some(id) = TokenId::from_hex(id.trim()) else {
                return fail(
                    S::DenyList,
                    Problem::Invalid(format!("[{i}]: not a 64-hex-digit token id")),
                );
            };
            deny_list.insert(id);
        }
        let on_invalid = match self.on_invalid.as_deref() {
            None => InvalidPolicy::Challenge,
            Some(v) => v.parse().or(fail(
                S::OnInvalid,
                Problem::OneOf("challenge, unauthorized"),
            ))?,
        };
        let token_id_header = header_name(S::TokenIdHeader, self.token_id_header, HEADER_TOKEN_ID)?;
        let service_header = header_name(S::ServiceHeader, self.service_header, HEADER_SERVICE)?;
        let context_header = header_name(S::ContextHeader, self.context_header, HEADER_CONTEXT)?;
        if service_header == token_id_header {
            return fail(S::ServiceHeader, Problem::SameHeader);
        }
        if context_header == token_id_header || context_header == service_header {
            return fail(S::ContextHeader, Problem::SameHeader);
        }
        let context_key = match self.context_key.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(k) => Some(k.parse().or_else(|e: crate::ContextKeyError| {
                fail(S::ContextKey, Problem::Invalid(e.to_string()))
            })?),
        };
        let retry_after_secs = ranged(
            S::RetryAfter,
            self.retry_after_secs,
            u64::from(DEFAULT_RETRY_AFTER_SECS),
            1,
            3600,
        )?;
        let cache_size = ranged(
            S::CacheSize,
            self.cache_size,
            DEFAULT_CACHE_SIZE as u64,
            0,
            MAX_CACHE_SIZE as u64,
        )?;
        let timeout_ms = ranged(
            S::Timeout,
            self.timeout_ms,
            u64::from(DEFAULT_TIMEOUT_MS),
            1,
            60_000,
        )?;
        let Some(token) = self.edge_token else {
            return fail(S::EdgeToken, Problem::Required);
        };
        check_edge_token(&token).or_else(|p| fail(S::EdgeToken, p))?;
        let non_canonical_path = match self.non_canonical_path.as_deref() {
            None | Some("refuse") => NonCanonicalPath::Refuse,
            Some("allow") => NonCanonicalPath::Allow,
            Some(_) => return fail(S::NonCanonicalPath, Problem::OneOf("refuse, allow")),
        };
        let challenge_form = match self.challenge_form.as_deref() {
            None => ChallengeForm::default(),
            Some(f) => f
                .parse()
                .or_else(|_| fail(S::ChallengeForm, Problem::OneOf("macaroon, token, both")))?,
        };
        let schemes = match self.schemes.as_deref().map(str::trim) {
            None | Some("") => Schemes::default(),
            Some(v) => v
                .parse()
                .or_else(|_| fail(S::Schemes, Problem::OneOf("l402, payment, l402,payment")))?,
        };
        let per_second = ranged(
            S::ChallengesPerSecond,
            self.challenges_per_second,
            u64::from(DEFAULT_CHALLENGES_PER_SECOND),
            0,
            1_000_000,
        )?;
        let burst = ranged(
            S::ChallengeBurst,
            self.challenge_burst,
            u64::from(DEFAULT_CHALLENGE_BURST).max(per_second),
            1,
            10_000_000,
        )?;
        let allowance_lease = ranged(
            S::AllowanceLease,
            self.allowance_lease,
            DEFAULT_ALLOWANCE_LEASE,
            1,
            MAX_ALLOWANCE_LEASE,
        )?;
        let allowance_lease_ms = ranged(
            S::AllowanceLeaseMs,
            self.allowance_lease_ms,
            DEFAULT_ALLOWANCE_LEASE_MS,
            100,
            600_000,
        )?;
        let publish = match self.publish.as_deref().map(str::trim) {
            None | Some("") => Routes::default(),
            Some(json) => Routes::from_json(json)
                .or_else(|e| fail(S::Publish, Problem::Invalid(e.to_string())))?,
        };
        let openapi_path = match self.openapi_path.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => {
                let ok = crate::path::canonicalize(p.as_bytes())
                    .is_ok_and(|t| !t.changed() && t.query().is_none());
                if !ok {
                    return fail(
                        S::OpenApiPath,
                        Problem::Invalid("must be a canonical absolute path".into()),
                    );
                }
                Some(p.to_owned())
            }
        };
        Ok(EdgeSettings {
            discovery: self.discovery.unwrap_or(true),
            paywall: self.paywall.unwrap_or(true),
            openapi_path,
            publish,
            allowance_lease,
            allowance_lease_ms,
            verifier: Verifier::new(keyring),
            routes,
            deny_list,
            on_invalid,
            strip_credential: self.strip_credential.unwrap_or(true),
            token_id_header,
            service_header,
            context_header,
            context_key,
            retry_after_secs: narrow(S::RetryAfter, retry_after_secs)?,
            cache_size: narrow(S::CacheSize, cache_size)?,
            timeout_ms: narrow(S::Timeout, timeout_ms)?,
            authorization: format!("Bearer {token}"),
            non_canonical_path,
            challenge_rate: (per_second > 0).then_some(ChallengeRate {
                per_second: narrow(S::ChallengesPerSecond, per_second)?,
                burst: narrow(S::ChallengeBurst, burst)?,
            }),
            schemes,
            challenge_form,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const KEYS: &str = "1:0101010101010101010101010101010101010101010101010101010101010101";
    const TOKEN: &str = "edge-token-0123456789";

    fn base() -> EdgeOptions {
        EdgeOptions {
            keyring: Some(KEYS.into()),
            edge_token: Some(TOKEN.into()),
            ..EdgeOptions::default()
        }
    }

    #[test]
    fn defaults_are_safe() {
        let s = base().validate().unwrap();
        assert_eq!(s.on_invalid, InvalidPolicy::Challenge);
        assert!(s.strip_credential);
        assert_eq!(s.token_id_header, "x-l402-token-id");
        assert_eq!(s.context_header, "x-l402-context");
        assert!(s.context_key.is_none());
        assert_eq!(s.non_canonical_path, NonCanonicalPath::Refuse);
        assert_eq!(
            s.challenge_rate,
            Some(ChallengeRate {
                per_second: 50,
                burst: 100
            })
        );
        assert_eq!(
            (s.retry_after_secs, s.cache_size, s.timeout_ms),
            (5, 1024, 2000)
        );
        assert_eq!(s.authorization, format!("Bearer {TOKEN}"));
    }

    #[test]
    fn every_refusal_names_its_setting_and_no_secret() {
        type Edit = fn(&mut EdgeOptions);
        let cases: Vec<(Edit, Setting)> = vec![
            (|o| o.keyring = None, Setting::Keyring),
            (|o| o.keyring = Some("1:zz".into()), Setting::Keyring),
            (|o| o.routes = Some("nope".into()), Setting::Routes),
            (|o| o.routes_required = true, Setting::Routes),
            (|o| o.deny_list = vec!["00".into()], Setting::DenyList),
            (|o| o.on_invalid = Some("maybe".into()), Setting::OnInvalid),
            (
                |o| o.token_id_header = Some("bad header".into()),
                Setting::TokenIdHeader,
            ),
            (
                |o| o.service_header = Some("X-L402-Token-Id".into()),
                Setting::ServiceHeader,
            ),
            (
                |o| o.context_header = Some("x_l402_service".into()),
                Setting::ContextHeader,
            ),
            (|o| o.context_key = Some("0101".into()), Setting::ContextKey),
            (|o| o.retry_after_secs = Some(0), Setting::RetryAfter),
            (|o| o.cache_size = Some(2_000_000), Setting::CacheSize),
            (|o| o.timeout_ms = Some(0), Setting::Timeout),
            (|o| o.edge_token = None, Setting::EdgeToken),
            (|o| o.edge_token = Some("short".into()), Setting::EdgeToken),
            (
                |o| o.edge_token = Some("edge token with spaces".into()),
                Setting::EdgeToken,
            ),
            (
                |o| o.non_canonical_path = Some("sometimes".into()),
                Setting::NonCanonicalPath,
            ),
            (
                |o| o.challenges_per_second = Some(2_000_000),
                Setting::ChallengesPerSecond,
            ),
            (|o| o.challenge_burst = Some(0), Setting::ChallengeBurst),
            (|o| o.allowance_lease = Some(0), Setting::AllowanceLease),
            (
                |o| o.allowance_lease_ms = Some(10),
                Setting::AllowanceLeaseMs,
            ),
            (|o| o.publish = Some("[{}]".into()), Setting::Publish),
            (
                |o| o.openapi_path = Some("openapi.json".into()),
                Setting::OpenApiPath,
            ),
        ];
        for (edit, want) in cases {
            let mut o = base();
            edit(&mut o);
            let e = match o.validate() {
                Err(e) => e,
                Ok(_) => panic!("accepted a bad {want:?}"),
            };
            assert_eq!(e.setting, want, "{e}");
            let text = e.to_string();
            assert!(
                !text.contains("0101010101") && !text.contains("edge-token"),
                "{text}"
            );
        }
        assert_eq!(Setting::RetryAfter.var_name(), "RETRY_AFTER_SECS");
        assert_eq!(Setting::Timeout.json_name(), "invoice_service.timeout_ms");
    }

    #[test]
    fn the_challenge_bound_can_be_turned_off() {
        let mut o = base();
        o.challenges_per_second = Some(0);
        assert_eq!(o.validate().unwrap().challenge_rate, None);
        let mut o = base();
        o.challenges_per_second = Some(500);
        let r = o.validate().unwrap().challenge_rate.unwrap();
        assert_eq!((r.per_second, r.burst), (500, 500));
    }
}
