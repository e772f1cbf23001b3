//! Caveat semantics (PROTOCOL.md §3). Caveats only narrow: every one must hold, and one this
//! verifier does not understand rejects (Aperture skips unknown conditions; we fail closed).
//!
//! Caveats are parsed once per token into [`Claims`] (cacheable); [`Claims::check`] then judges
//! one request with no allocation.

#[allow(unused_imports)]
use crate::prelude::*;

use core::net::IpAddr;

use ipnet::IpNet;

use crate::client_ip::{COND_CLIENT_IP_SUFFIX, contains, parse_nets};
use crate::ids::Preimage;
use crate::reason::{Reason, Rejection};
use crate::service::is_service_name;

/// `services=a:0,b:1`.
pub(crate) const COND_SERVICES: &str = "services";
/// `<svc>_capabilities=a,b`.
pub(crate) const COND_CAPABILITIES_SUFFIX: &str = "capabilities";
/// `<svc>_valid_until=<unix seconds>`.
pub(crate) const COND_VALID_UNTIL_SUFFIX: &str = "valid_until";
/// `<svc>_allowance=<N>`: the token serves at most N requests of the service, counted per
/// token id in a store (PROTOCOL.md §12). A verifier that does not know it refuses the token.
pub(crate) const COND_ALLOWANCE_SUFFIX: &str = "allowance";
/// `preimage=<hex>` (Aperture's gRPC clients and lnget add it).
pub(crate) const COND_PREIMAGE: &str = "preimage";

/// Most services one `services` caveat may list.
const MAX_SERVICES_PER_CAVEAT: usize = 64;

/// One `name:tier` of a `services` caveat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) name: String,
    pub(crate) tier: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scoped {
    ValidUntil(u64),
    Capabilities(Vec<String>),
    /// `<svc>_client_ip=`: the request's client address must be in one of these.
    ClientIp(Vec<IpNet>),
    /// `<svc>_allowance=`: at most this many requests, counted per token id.
    Allowance(u64),
    /// An unknown condition or an unparsable value: rejects for its own service only.
    Unsupported,
}

/// A first-party caveat as parsed: what it is about, not yet judged against a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScopedCaveat {
    pub(crate) service: String,
    pub(crate) cond: Scoped,
}

/// The token's caveats, parsed and checked for everything that does not depend on the request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Claims {
    /// One list per `services` caveat, in order (the first is the minter's).
    pub(crate) services: Vec<Vec<Grant>>,
    /// `<svc>_<cond>` caveats, in order.
    pub(crate) scoped: Vec<ScopedCaveat>,
    /// The earliest `_valid_until` of any service: after it the token is useless for some
    /// service; a cache drops the entry then.
    pub(crate) earliest_expiry: Option<u64>,
}

const fn unsupported(detail: &'static str) -> Rejection {
    Rejection::new(Reason::UnsupportedCaveat, detail)
}

/// Reads the first `preimage=` caveat, if any, for credentials that carry the preimage there.
pub(crate) fn preimage_from_caveats<'a>(
    predicates: impl Iterator<Item = Option<&'a [u8]>>,
) -> Result<Option<Preimage>, Rejection> {
    for p in predicates.flatten() {
        if let Some(value) = p.strip_prefix(b"preimage=") {
            return Preimage::from_hex(core::str::from_utf8(value).unwrap_or(""))
                .map(Some)
                .ok_or(unsupported("preimage caveat is not 64 hex digits"));
        }
    }
    Ok(None)
}

impl Claims {
    /// Parses first-party predicates (`None` is a third-party caveat) and applies the
    /// request-independent rules, including that every `preimage=` caveat matches `preimage`.
    pub(crate) fn parse<'a>(
        predicates: impl Iterator<Item = Option<&'a [u8]>>,
        preimage: &Preimage,
    ) -> Result<Claims, Rejection> {
        let mut claims = Claims::default();
        for predicate in predicates {
            let predicate = predicate.ok_or(unsupported("third-party caveat"))?;
            let predicate =
                core::str::from_utf8(predicate).map_err(|_| unsupported("caveat is not UTF-8"))?;
            let (cond, value) = predicate
                .split_once('=')
                .ok_or(unsupported("caveat has no '='"))?;
            match cond {
                COND_SERVICES => claims.services.push(parse_services(value)?),
                COND_PREIMAGE => {
                    let p = Preimage::from_hex(value)
                        .ok_or(unsupported("preimage caveat is not 64 hex digits"))?;
                    if !p.ct_eq(preimage) {
                        return Err(Rejection::new(
                            Reason::WrongPreimage,
                            "preimage caveat differs from the credential's preimage",
                        ));
                    }
                }
                _ => {
                    let (service, suffix) = cond
                        .split_once('_')
                        .ok_or(unsupported("unknown caveat condition"))?;
                    if !is_service_name(service) {
                        return Err(unsupported("caveat condition has no service prefix"));
                    }
                    let scoped = match suffix {
                        COND_VALID_UNTIL_SUFFIX => match parse_unix(value) {
                            Some(t) => {
                                claims.earliest_expiry =
                                    Some(claims.earliest_expiry.map_or(t, |e| e.min(t)));
                                Scoped::ValidUntil(t)
                            }
                            None => Scoped::Unsupported,
                        },
                        COND_CAPABILITIES_SUFFIX => Scoped::Capabilities(
                            value
                                .split(',')
                                .filter(|c| !c.is_empty())
                                .map(str::to_owned)
                                .collect(),
                        ),
                        COND_CLIENT_IP_SUFFIX => {
                            parse_nets(value).map_or(Scoped::Unsupported, Scoped::ClientIp)
                        }
                        COND_ALLOWANCE_SUFFIX => {
                            parse_decimal(value).map_or(Scoped::Unsupported, Scoped::Allowance)
                        }
                        _ => Scoped::Unsupported,
                    };
                    claims.scoped.push(ScopedCaveat {
                        service: service.to_owned(),
                        cond: scoped,
                    });
                }
            }
        }
        // A caveat about a service no `services` caveat names restricts nothing we sell: it
        // is not "another service's" caveat, it is one we do not understand.
        for s in &claims.scoped {
            if !claims.names(&s.service) {
                return Err(unsupported(
                    "caveat scoped to a service the token does not name",
                ));
            }
        }
        Ok(claims)
    }

    fn names(&self, service: &str) -> bool {
        self.services
            .iter()
            .any(|list| list.iter().any(|g| g.name == service))
    }

    /// Judges one request for `service`; on success returns the tier granted by the first
    /// (minter's) `services` caveat and the earliest expiry for that service. `client_ip` is
    /// the address the host reports, `None` when it does not know it.
    pub(crate) fn check<'r>(
        &self,
        service: &str,
        required: impl IntoIterator<Item = &'r str> + Clone,
        now: u64,
        client_ip: Option<IpAddr>,
    ) -> Result<(u32, Option<u64>), Rejection> {
        let Some((first, rest)) = self.services.split_first() else {
            return Err(Rejection::new(
                Reason::ServiceNotAllowed,
                "token has no services caveat",
            ));
        };
        let tier = first
            .iter()
            .find(|g| g.name == service)
            .map(|g| g.tier)
            .ok_or(Rejection::new(
                Reason::ServiceNotAllowed,
                "service not in the token's services caveat",
            ))?;
        if !rest
            .iter()
            .all(|list| list.iter().any(|g| g.name == service))
        {
            return Err(Rejection::new(
                Reason::ServiceNotAllowed,
                "service removed by a later services caveat",
            ));
        }
        let own = || self.scoped.iter().filter(|s| s.service == service);
        if own().any(|s| s.cond == Scoped::Unsupported) {
            return Err(unsupported("unknown or malformed caveat for this service"));
        }
        let mut expiry: Option<u64> = None;
        for s in own() {
            if let Scoped::ValidUntil(t) = s.cond {
                if now >= t {
                    return Err(Rejection::new(
                        Reason::TokenExpired,
                        "valid_until has passed",
                    ));
                }
                expiry = Some(expiry.map_or(t, |e| e.min(t)));
            }
        }
        for s in own() {
            if let Scoped::ClientIp(nets) = &s.cond {
                let Some(ip) = client_ip else {
                    return Err(Rejection::new(
                        Reason::ClientIpUnknown,
                        "token is bound to a client address the edge does not know",
                    ));
                };
                if !contains(nets, ip.to_canonical()) {
                    return Err(Rejection::new(
                        Reason::ClientIpMismatch,
                        "client address outside the token's client_ip caveat",
                    ));
                }
            }
        }
        for s in own() {
            if let Scoped::Capabilities(granted) = &s.cond
                && !required
                    .clone()
                    .into_iter()
                    .all(|r| granted.iter().any(|g| g == r))
            {
                return Err(Rejection::new(
                    Reason::CapabilityMissing,
                    "required capability not granted",
                ));
            }
        }
        Ok((tier, expiry))
    }

    /// The lowest `<service>_allowance` of the token (attenuation only lowers it); `None`: the
    /// token is not metered for `service`.
    pub(crate) fn allowance(&self, service: &str) -> Option<u64> {
        self.scoped
            .iter()
            .filter_map(|s| match s.cond {
                Scoped::Allowance(n) if s.service == service => Some(n),
                _ => None,
            })
            .min()
    }

    /// The capabilities every `<service>_capabilities` caveat grants; `None` when no such
    /// caveat restricts the service.
    pub(crate) fn capabilities(&self, service: &str) -> Option<Vec<&str>> {
        let mut lists = self.scoped.iter().filter_map(|s| match &s.cond {
            Scoped::Capabilities(c) if s.service == service => Some(c),
            _ => None,
        });
        let first = lists.next()?;
        let rest: Vec<_> = lists.collect();
        Some(
            first
                .iter()
                .filter(|c| rest.iter().all(|l| l.contains(c)))
                .map(String::as_str)
                .collect(),
        )
    }
}

fn parse_services(value: &str) -> Result<Vec<Grant>, Rejection> {
    let mut out = Vec::new();
    for entry in value.split(',') {
        if out.len() == MAX_SERVICES_PER_CAVEAT {
            return Err(unsupported("services caveat lists too many services"));
        }
        let (name, tier) = entry
            .split_once(':')
            .ok_or(unsupported("services entry is not <name>:<tier>"))?;
        if !is_service_name(name) {
            return Err(unsupported("services entry has an invalid service name"));
        }
        let tier = parse_decimal(tier)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or(unsupported("services entry has an invalid tier"))?;
        out.push(Grant {
            name: name.to_owned(),
            tier,
        });
    }
    Ok(out)
}

/// Digits only (no sign, no space), at most 20 of them, fits u64.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_unix(s: &str) -> Option<u64> {
    parse_decimal(s)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn claims(cavs: &[&str]) -> Result<Claims, Rejection> {
        Claims::parse(
            cavs.iter().map(|c| Some(c.as_bytes())),
            &Preimage::from_bytes([1; 32]),
        )
    }

    fn check(
        cavs: &[&str],
        svc: &str,
        caps: &[&str],
        now: u64,
    ) -> Result<(u32, Option<u64>), Reason> {
        claims(cavs)
            .and_then(|c| c.check(svc, caps.iter().copied(), now, None))
            .map_err(|r| r.reason)
    }

    fn check_from(cavs: &[&str], client: Option<&str>) -> Result<(u32, Option<u64>), Reason> {
        claims(cavs)
            .and_then(|c| c.check("a", [], 0, client.map(|s| s.parse().unwrap())))
            .map_err(|r| r.reason)
    }

    #[test]
    fn client_ip_caveats() {
        let bound = [
            "services=a:0,b:0",
            "a_client_ip=203.0.113.0/24,2001:db8::/64",
        ];
        assert_eq!(check_from(&bound, Some("203.0.113.9")), Ok((0, None)));
        assert_eq!(
            check_from(&bound, Some("::ffff:203.0.113.9")),
            Ok((0, None))
        );
        assert_eq!(check_from(&bound, Some("2001:db8::1")), Ok((0, None)));
        assert_eq!(
            check_from(&bound, Some("203.0.114.1")),
            Err(Reason::ClientIpMismatch)
        );
        assert_eq!(
            check_from(&bound, Some("2001:db8:0:1::1")),
            Err(Reason::ClientIpMismatch)
        );
        assert_eq!(check_from(&bound, None), Err(Reason::ClientIpUnknown));
        // another service's binding does not restrict this one
        assert_eq!(check(&bound, "b", &[], 0), Ok((0, None)));
        // every binding must hold: a client's narrower one wins
        let narrowed = [
            "services=a:0",
            "a_client_ip=10.0.0.0/8",
            "a_client_ip=10.1.0.0/16",
        ];
        assert_eq!(check_from(&narrowed, Some("10.1.2.3")), Ok((0, None)));
        assert_eq!(
            check_from(&narrowed, Some("10.2.0.1")),
            Err(Reason::ClientIpMismatch)
        );
        // malformed bindings fail closed for their service
        for bad in [
            "a_client_ip=",
            "a_client_ip=10.0.0.0/33",
            "a_client_ip=localhost",
        ] {
            assert_eq!(
                check_from(&["services=a:0", bad], Some("10.0.0.1")),
                Err(Reason::UnsupportedCaveat),
                "{bad}"
            );
        }
    }

    #[test]
    fn services_rules() {
        assert_eq!(check(&[], "a", &[], 0), Err(Reason::ServiceNotAllowed));
        assert_eq!(check(&["services=a:3"], "a", &[], 0), Ok((3, None)));
        assert_eq!(check(&["services=a:3,b:1"], "b", &[], 0), Ok((1, None)));
        // later ones only narrow, and a widening one does not help
        assert_eq!(
            check(&["services=a:0", "services=a:0,b:0"], "b", &[], 0),
            Err(Reason::ServiceNotAllowed)
        );
        assert_eq!(
            check(&["services=a:0,b:0", "services=a:0"], "b", &[], 0),
            Err(Reason::ServiceNotAllowed)
        );
        // the minter's tier counts, not a later one
        assert_eq!(
            check(&["services=a:0", "services=a:9"], "a", &[], 0),
            Ok((0, None))
        );
        for bad in [
            "services=",
            "services=a",
            "services=a:x",
            "services=A:0",
            "services=a_b:0",
            "services=a:-1",
            "services=a:99999999999",
        ] {
            assert_eq!(
                check(&[bad], "a", &[], 0),
                Err(Reason::UnsupportedCaveat),
                "{bad}"
            );
        }
    }

    #[test]
    fn expiry_and_capabilities() {
        let cavs = [
            "services=a:0",
            "a_capabilities=read,write",
            "a_valid_until=100",
        ];
        assert_eq!(check(&cavs, "a", &["read"], 99), Ok((0, Some(100))));
        assert_eq!(check(&cavs, "a", &[], 100), Err(Reason::TokenExpired));
        assert_eq!(
            check(&cavs, "a", &["admin"], 1),
            Err(Reason::CapabilityMissing)
        );
        let narrowed = [
            "services=a:0",
            "a_capabilities=read,write",
            "a_capabilities=read",
            "a_valid_until=100",
            "a_valid_until=50",
        ];
        assert_eq!(
            check(&narrowed, "a", &["write"], 1),
            Err(Reason::CapabilityMissing)
        );
        assert_eq!(
            check(&narrowed, "a", &["read"], 60),
            Err(Reason::TokenExpired)
        );
        assert_eq!(check(&narrowed, "a", &["read"], 49), Ok((0, Some(50))));
        assert_eq!(
            claims(&narrowed).unwrap().capabilities("a"),
            Some(vec!["read"])
        );
        // an empty list grants none; no list at all restricts nothing
        assert_eq!(
            check(&["services=a:0", "a_capabilities="], "a", &["read"], 1),
            Err(Reason::CapabilityMissing)
        );
        assert_eq!(check(&["services=a:0"], "a", &["read"], 1), Ok((0, None)));
        assert_eq!(claims(&["services=a:0"]).unwrap().capabilities("a"), None);
    }

    #[test]
    fn other_services_caveats_are_ignored_unknown_ones_reject() {
        let cavs = [
            "services=a:0,b:0",
            "b_valid_until=1",
            "b_frobnicate=yes",
            "b_valid_until=soon",
        ];
        assert_eq!(check(&cavs, "a", &[], 10), Ok((0, None)));
        assert_eq!(check(&cavs, "b", &[], 0), Err(Reason::UnsupportedCaveat));
        assert_eq!(
            check(&["services=a:0", "a_frobnicate=yes"], "a", &[], 0),
            Err(Reason::UnsupportedCaveat)
        );
        assert_eq!(
            check(&["services=a:0", "a_valid_until=x"], "a", &[], 0),
            Err(Reason::UnsupportedCaveat)
        );
        // orphan service, bare unknown condition, no '=', bad prefix
        for bad in [
            "c_valid_until=5",
            "ip=1.2.3.4",
            "services",
            "Weird_valid_until=1",
            "_x=1",
        ] {
            assert_eq!(
                check(&["services=a:0", bad], "a", &[], 0),
                Err(Reason::UnsupportedCaveat),
                "{bad}"
            );
        }
    }

    #[test]
    fn preimage_caveat_must_match() {
        let good = format!("preimage={}", "01".repeat(32));
        let bad = format!("preimage={}", "02".repeat(32));
        assert_eq!(check(&["services=a:0", &good], "a", &[], 0), Ok((0, None)));
        assert_eq!(
            check(
                &[
                    "services=a:0",
                    &good.to_uppercase().replace("PREIMAGE", "preimage")
                ],
                "a",
                &[],
                0
            ),
            Ok((0, None))
        );
        assert_eq!(
            check(&["services=a:0", &bad], "a", &[], 0),
            Err(Reason::WrongPreimage)
        );
        assert_eq!(
            check(&["services=a:0", "preimage=zz"], "a", &[], 0),
            Err(Reason::UnsupportedCaveat)
        );
    }

    #[test]
    fn third_party_and_non_utf8_reject() {
        let p = Preimage::from_bytes([1; 32]);
        let third = Claims::parse([Some(&b"services=a:0"[..]), None].into_iter(), &p);
        assert_eq!(third.unwrap_err().reason, Reason::UnsupportedCaveat);
        let bin = Claims::parse([Some(&b"services=a:0\xff"[..])].into_iter(), &p);
        assert_eq!(bin.unwrap_err().reason, Reason::UnsupportedCaveat);
    }
}
