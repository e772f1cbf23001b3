//! Metered tokens (PROTOCOL.md §12): a token with a `<service>_allowance=N` caveat serves at
//! most N requests of that service, counted per token id and service in one store that every
//! edge shares (the invoice-service's Redis or embedded file, or a Durable Object per token).
//!
//! The count is exact because the store is the only place it changes, atomically, by
//! [`Counter::apply`]: an edge asks to *take* units and gets at most what is left. An edge may
//! take a lease of several units and spend them locally ([`Leases`]); it returns what it did
//! not spend when the lease runs out ([`AllowanceRequest::release`]). A lease an edge loses (a
//! crash) is never served: the bound errs towards the operator, never towards more requests.
//!
//! ```text
//!  authorized + allowance ─► Leases::spend ─┬─► unit at hand: forward (remaining = left + units)
//!                                           └─► Step::Meter { take k, release stale }
//!                                                 ─► store: Counter::apply ─► Edge::metered
//! ```

#[allow(unused_imports)]
use crate::prelude::*;

use alloc::string::String;
use alloc::vec::Vec;

use hashbrown::HashMap;

use crate::json::{Field, JsonResult, Reader, Unknown, Writer, read_object, required};

use crate::ids::TokenId;

/// Path of the invoice-service's counter endpoint.
pub const ALLOWANCE_PATH: &str = "/v1/allowance";
/// Header the origin gets: requests the token has left after this one.
pub const HEADER_ALLOWANCE_REMAINING: &str = "x-l402-allowance-remaining";
/// Header the client gets on the origin's response: the same count.
pub const RESPONSE_ALLOWANCE_REMAINING: &str = "l402-allowance-remaining";
/// Default units an Envoy VM takes at once: the store sees about 1/16 of a busy token's traffic.
pub const DEFAULT_ALLOWANCE_LEASE: u64 = 16;
/// Most units one lease may hold.
pub const MAX_ALLOWANCE_LEASE: u64 = 1024;
/// Default time an edge holds unspent units before it gives them back.
pub const DEFAULT_ALLOWANCE_LEASE_MS: u64 = 2000;
/// Largest count a store keeps: 2^53 - 1, exact in every store (a Redis script's numbers are
/// doubles). A larger allowance is served as this one, which no token reaches.
pub const MAX_ALLOWANCE: u64 = (1 << 53) - 1;
/// A lease never takes more than this share of what is left (1/4), so the units other edges
/// cannot reach while one holds them stay few as a token runs out.
const LEASE_SHARE: u64 = 4;
/// A token has plenty left when the store's free units exceed this many per unit of a lease:
/// then concurrent takes lease too.
const PLENTY_PER_LEASE_UNIT: u64 = 64;
/// Most leases one edge instance holds; past it, metered tokens are counted one by one.
const MAX_LEASES: usize = 10_000;

/// `POST /v1/allowance` (and the Durable Object's request): give back `release` units, then
/// take up to `take`, for the count of (`token_id`, `service`) against `limit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowanceRequest {
    /// Token id, 64 hex digits.
    pub token_id: String,
    /// The service counted (one token may be metered for several).
    pub service: String,
    /// The credential's allowance: copies attenuated lower share the count, each held to its
    /// own limit.
    pub limit: u64,
    /// When the token stops being valid for the service: the count may be dropped after it.
    /// `None`: kept for good.
    pub expires_at: Option<u64>,
    /// Units wanted now (0: only a release).
    pub take: u64,
    /// Units taken earlier and not spent, given back first.
    pub release: u64,
}

/// Why a counter request is refused by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllowanceRequestError {
    /// Not valid JSON of this shape.
    #[error("not an allowance request")]
    Malformed,
    /// The token id is not 64 hex digits.
    #[error("token_id is not 64 hex digits")]
    TokenId,
    /// The service is not a service name.
    #[error("service is not a service name")]
    Service,
    /// `take` or `release` over [`MAX_ALLOWANCE_LEASE`].
    #[error("take and release are at most {MAX_ALLOWANCE_LEASE}")]
    TooMany,
}

impl AllowanceRequest {
    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_object()
            .str_member("token_id", &self.token_id)
            .str_member("service", &self.service)
            .u64_member("limit", self.limit)
            .opt_u64_member("expires_at", self.expires_at)
            .u64_member("take", self.take)
            .u64_member("release", self.release)
            .close_object();
        w.into_bytes()
    }

    fn read(r: &mut Reader<'_>) -> JsonResult<AllowanceRequest> {
        let (mut token_id, mut service, mut limit) = (None, None, None);
        let (mut expires_at, mut take, mut release) = (None, None, None);
        read_object(
            r,
            &mut [
                ("token_id", Field::Str(&mut token_id)),
                ("service", Field::Str(&mut service)),
                ("limit", Field::U64(&mut limit)),
                ("expires_at", Field::U64(&mut expires_at)),
                ("take", Field::U64(&mut take)),
                ("release", Field::U64(&mut release)),
            ],
            Unknown::Refuse,
        )?;
        Ok(AllowanceRequest {
            token_id: required(token_id, "token_id", r)?,
            service: required(service, "service", r)?,
            limit: required(limit, "limit", r)?,
            expires_at,
            take: required(take, "take", r)?,
            release: release.unwrap_or_default(),
        })
    }

    /// Parses and checks a body (the store's side); a limit over [`MAX_ALLOWANCE`] is read as
    /// that.
    pub fn parse(body: &[u8]) -> Result<AllowanceRequest, AllowanceRequestError> {
        let mut r = Reader::document(body, AllowanceRequest::read)
            .map_err(|_| AllowanceRequestError::Malformed)?;
        if TokenId::from_hex(&r.token_id).is_none() {
            return Err(AllowanceRequestError::TokenId);
        }
        if !crate::service::is_service_name(&r.service) {
            return Err(AllowanceRequestError::Service);
        }
        if r.take > MAX_ALLOWANCE_LEASE || r.release > MAX_ALLOWANCE_LEASE {
            return Err(AllowanceRequestError::TooMany);
        }
        r.limit = r.limit.min(MAX_ALLOWANCE);
        Ok(r)
    }

    /// The store key: `<token id hex>/<service>` (neither contains `/`).
    pub fn key(&self) -> String {
        [self.token_id.as_str(), self.service.as_str()].join("/")
    }
}

/// The store's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowanceAnswer {
    /// Units taken now (0: none left for this credential).
    pub granted: u64,
    /// Units nobody holds yet: `limit - used`, after this take.
    pub left: u64,
}

impl AllowanceAnswer {
    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.open_object()
            .u64_member("granted", self.granted)
            .u64_member("left", self.left)
            .close_object();
        w.into_bytes()
    }

    fn parse(body: &[u8]) -> JsonResult<AllowanceAnswer> {
        Reader::document(body, |r| {
            let (mut granted, mut left) = (None, None);
            read_object(
                r,
                &mut [
                    ("granted", Field::U64(&mut granted)),
                    ("left", Field::U64(&mut left)),
                ],
                Unknown::Skip,
            )?;
            Ok(AllowanceAnswer {
                granted: required(granted, "granted", r)?,
                left: required(left, "left", r)?,
            })
        })
    }

    /// Reads a store's answer: `None` unless `status` is 200 with this shape and a grant that
    /// does not exceed what was asked (a store that grants more is not trusted).
    pub fn from_response(
        status: Option<u16>,
        body: Option<&[u8]>,
        asked: u64,
    ) -> Option<AllowanceAnswer> {
        match (status, body) {
            (Some(200), Some(b)) => AllowanceAnswer::parse(b)
                .ok()
                .filter(|a| a.granted <= asked),
            _ => None,
        }
    }
}

/// The store's rule, applied atomically to one count (every store runs this, or the same
/// arithmetic in one Redis script: see the invoice-service's `allowance.lua`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter;

impl Counter {
    /// Units a take of `want` gets when `used` of `limit` are gone: none when nothing is
    /// left, else at most a quarter of what is left (at least one), never more than asked.
    pub fn grant(used: u64, limit: u64, want: u64) -> u64 {
        let free = limit.saturating_sub(used);
        if free == 0 || want == 0 {
            return 0;
        }
        want.min((free / LEASE_SHARE).max(1)).min(free)
    }

    /// Applies `req` to a count of `used`: `(new used, answer)`.
    pub fn apply(used: u64, req: &AllowanceRequest) -> (u64, AllowanceAnswer) {
        let used = used.saturating_sub(req.release);
        let granted = Counter::grant(used, req.limit, req.take);
        let used = used + granted;
        (
            used,
            AllowanceAnswer {
                granted,
                left: req.limit.saturating_sub(used),
            },
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LeaseKey {
    token_id: TokenId,
    service: Box<str>,
}

impl LeaseKey {
    fn new(token_id: &TokenId, service: &str) -> LeaseKey {
        LeaseKey {
            token_id: *token_id,
            service: service.into(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    /// Units taken and not spent.
    units: u64,
    /// What the store said nobody held, at the last take.
    left: u64,
    /// The credential's limit (for the release request).
    limit: u64,
    expires_at: Option<u64>,
    /// Unix ms after which the units go back.
    until_ms: u64,
    /// Units the last take asked for.
    want: u64,
}

/// Units one edge instance has taken and not spent yet, per token and service.
///
/// A lease grows like TCP's slow start: the first take of a token asks for one unit, and each
/// take after a lease was spent to the last unit asks for twice the last (up to the edge's
/// `allowance_lease`). So units are taken ahead only for a demand already seen: a burst of
/// new requests, all in flight before any answer, takes one unit each and strands none.
#[derive(Debug, Default)]
pub struct Leases {
    held: HashMap<LeaseKey, Lease>,
    /// Store calls this instance is waiting on, per token: while one is out, another take
    /// asks for one unit only (the answers of a burst would otherwise land all at once, with
    /// nobody left to spend them).
    in_flight: HashMap<LeaseKey, u32>,
}

/// What [`Leases::spend`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spend {
    /// A unit at hand was spent; the count left after it.
    Local(u64),
    /// Ask the store for `take` units; give back `release` stale ones in the same call.
    Store {
        /// Units to ask for.
        take: u64,
        /// Units of a run-out lease to give back.
        release: u64,
    },
}

impl Leases {
    /// Spends one unit at hand if a live lease holds one; else says what to ask the store,
    /// with `lease` the most one take may ask for.
    pub(crate) fn spend(
        &mut self,
        token_id: &TokenId,
        service: &str,
        now_ms: u64,
        lease: u64,
    ) -> Spend {
        let key = LeaseKey::new(token_id, service);
        let spend = match self.held.get_mut(&key) {
            Some(l) if now_ms < l.until_ms && l.units > 0 => {
                l.units -= 1;
                return Spend::Local(l.left + l.units);
            }
            // Spent to the last unit while live: the demand is there, take more.
            Some(l) if now_ms < l.until_ms => Spend::Store {
                take: l.want.saturating_mul(2).clamp(1, lease.max(1)),
                release: 0,
            },
            Some(_) => Spend::Store {
                take: 1,
                release: self.held.remove(&key).map_or(0, |l| l.units),
            },
            None => Spend::Store {
                take: 1,
                release: 0,
            },
        };
        if self.in_flight.len() >= MAX_LEASES {
            // Calls whose answers never came (a host that dropped them): start afresh.
            self.in_flight.clear();
        }
        // Far from the end of an allowance, concurrent takes may lease too (units left over go
        // back after the lease time); near it, they take one each, so none is stranded.
        let plenty = self
            .held
            .get(&key)
            .is_some_and(|l| l.left >= lease.saturating_mul(PLENTY_PER_LEASE_UNIT));
        let waiting = self.in_flight.entry(key).or_insert(0);
        *waiting += 1;
        match spend {
            Spend::Store { release, .. } if *waiting > 1 && !plenty => {
                Spend::Store { take: 1, release }
            }
            other => other,
        }
    }

    /// A store call for this token was answered (or failed).
    pub(crate) fn settle(&mut self, token_id: &TokenId, service: &str) {
        let key = LeaseKey::new(token_id, service);
        if let Some(n) = self.in_flight.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(&key);
            }
        }
    }

    /// A unit at hand, only (when the store had none left: another answer to this instance
    /// may have brought some).
    pub(crate) fn spend_local(
        &mut self,
        token_id: &TokenId,
        service: &str,
        now_ms: u64,
    ) -> Option<u64> {
        let l = self.held.get_mut(&LeaseKey::new(token_id, service))?;
        if now_ms < l.until_ms && l.units > 0 {
            l.units -= 1;
            return Some(l.left + l.units);
        }
        None
    }

    /// Keeps `units` taken beyond the one spent now; returns the count left after this
    /// request (the store's `left` plus every unit this instance holds for the token).
    pub(crate) fn keep(
        &mut self,
        req: &AllowanceRequest,
        token_id: &TokenId,
        units: u64,
        left: u64,
        until_ms: u64,
    ) -> u64 {
        let key = LeaseKey::new(token_id, &req.service);
        if let Some(l) = self.held.get_mut(&key) {
            l.units += units;
            l.left = left;
            l.until_ms = until_ms;
            l.want = req.take;
            return left + l.units;
        }
        if self.held.len() >= MAX_LEASES {
            // No room to remember: nothing is kept (the store was asked for one unit).
            return left + units;
        }
        self.held.insert(
            key,
            Lease {
                units,
                left,
                limit: req.limit,
                expires_at: req.expires_at,
                until_ms,
                want: req.take,
            },
        );
        left + units
    }

    /// Puts back one unit a request spent and was not served: into the live lease, or a new
    /// one that goes back to the store when it runs out.
    pub(crate) fn refund(
        &mut self,
        token_id: &TokenId,
        service: &str,
        limit: u64,
        expires_at: Option<u64>,
        until_ms: u64,
    ) {
        let key = LeaseKey::new(token_id, service);
        if let Some(l) = self.held.get_mut(&key) {
            l.units += 1;
            return;
        }
        if self.held.len() < MAX_LEASES {
            self.held.insert(
                key,
                Lease {
                    units: 1,
                    left: 0,
                    limit,
                    expires_at,
                    until_ms,
                    want: 1,
                },
            );
        }
    }

    /// Takes the leases that ran out by `now_ms` (or every lease with `all`), as release
    /// requests for the host to send for those that still hold units: units given back serve
    /// other edges.
    pub fn expired(&mut self, now_ms: u64, all: bool) -> Vec<AllowanceRequest> {
        let mut out = Vec::new();
        self.held.retain(|k, l| {
            if !(all || now_ms >= l.until_ms) {
                return true;
            }
            if l.units > 0 {
                out.push(AllowanceRequest {
                    token_id: k.token_id.to_hex(),
                    service: k.service.to_string(),
                    limit: l.limit,
                    expires_at: l.expires_at,
                    take: 0,
                    release: l.units,
                });
            }
            false
        });
        out
    }

    /// Leases held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn req(limit: u64, take: u64, release: u64) -> AllowanceRequest {
        AllowanceRequest {
            token_id: "11".repeat(32),
            service: "maps".into(),
            limit,
            expires_at: Some(2_000_000_000),
            take,
            release,
        }
    }

    #[test]
    fn a_count_never_passes_its_limit() {
        let mut used = 0;
        let mut served = 0;
        for take in [8, 8, 8, 1, 8, 3, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8] {
            let (u, a) = Counter::apply(used, &req(50, take, 0));
            assert!(a.granted <= take);
            assert_eq!(a.left, 50 - u);
            served += a.granted;
            used = u;
        }
        assert!(served <= 50);
        // One at a time, it reaches the limit exactly.
        while Counter::apply(used, &req(50, 1, 0)).1.granted == 1 {
            used += 1;
            served += 1;
        }
        assert_eq!((used, served), (50, 50));
        assert_eq!(
            Counter::apply(50, &req(50, 8, 0)).1,
            AllowanceAnswer {
                granted: 0,
                left: 0
            }
        );
    }

    #[test]
    fn leases_shrink_as_a_token_runs_out() {
        assert_eq!(Counter::grant(0, 50, 8), 8);
        assert_eq!(Counter::grant(30, 50, 8), 5);
        assert_eq!(Counter::grant(44, 50, 8), 1);
        assert_eq!(Counter::grant(49, 50, 8), 1);
        assert_eq!(Counter::grant(50, 50, 8), 0);
        assert_eq!(Counter::grant(0, 50, 0), 0);
        // An attenuated copy with a lower limit is held to it on the shared count.
        assert_eq!(Counter::grant(3, 3, 1), 0);
        assert_eq!(Counter::grant(60, 50, 1), 0);
    }

    #[test]
    fn a_release_gives_units_back_before_the_take() {
        let (used, a) = Counter::apply(10, &req(10, 1, 3));
        assert_eq!((used, a.granted, a.left), (8, 1, 2));
        // Never below zero, whatever an edge claims.
        assert_eq!(Counter::apply(1, &req(10, 0, 5)).0, 0);
    }

    #[test]
    fn leases_are_spent_locally_then_given_back() {
        let id = TokenId::from_hex(&"11".repeat(32)).unwrap();
        let mut l = Leases::default();
        let take = |n| Spend::Store {
            take: n,
            release: 0,
        };
        // A first take asks for one unit.
        assert_eq!(l.spend(&id, "maps", 0, 8), take(1));
        assert_eq!(l.keep(&req(50, 1, 0), &id, 0, 49, 1000), 49);
        l.settle(&id, "maps");
        // Spent to the last unit: the next take doubles, up to the edge's lease.
        assert_eq!(l.spend(&id, "maps", 5, 8), take(2));
        assert_eq!(l.keep(&req(50, 2, 0), &id, 1, 47, 1000), 48);
        l.settle(&id, "maps");
        assert_eq!(l.spend(&id, "maps", 10, 8), Spend::Local(47));
        assert_eq!(l.spend(&id, "maps", 10, 8), take(4));
        assert_eq!(l.keep(&req(50, 4, 0), &id, 3, 40, 1000), 43);
        l.settle(&id, "maps");
        assert_eq!(l.spend(&id, "maps", 10, 8), Spend::Local(42));
        assert_eq!(l.spend(&id, "other", 10, 8), take(1));
        // While that call is out, another take for the token asks for one unit only (near the
        // end of an allowance; far from it, concurrent takes lease too).
        assert_eq!(l.spend(&id, "other", 10, 8), take(1));
        l.settle(&id, "other");
        l.settle(&id, "other");
        // Run out: the rest goes back with the next take, which starts again at one.
        assert_eq!(
            l.spend(&id, "maps", 1000, 8),
            Spend::Store {
                take: 1,
                release: 2
            }
        );
        assert!(l.is_empty());
        l.keep(&req(50, 4, 0), &id, 2, 30, 2000);
        assert_eq!(l.spend_local(&id, "maps", 10), Some(31));
        assert!(l.expired(1999, false).is_empty());
        let back = l.expired(2000, false);
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].take, back[0].release), (0, 1));
        assert!(l.is_empty());
        // A record with no units left goes quietly.
        l.keep(&req(50, 1, 0), &id, 0, 30, 2000);
        assert!(l.expired(2000, false).is_empty());
        assert!(l.is_empty());
    }

    #[test]
    fn requests_are_checked_at_the_store() {
        let ok = req(5, 1, 0).to_body();
        assert!(AllowanceRequest::parse(&ok).is_ok());
        let mut bad = req(5, 1, 0);
        bad.token_id = "zz".into();
        assert_eq!(
            AllowanceRequest::parse(&bad.to_body()),
            Err(AllowanceRequestError::TokenId)
        );
        let mut bad = req(5, 1, 0);
        bad.service = "a/b".into();
        assert_eq!(
            AllowanceRequest::parse(&bad.to_body()),
            Err(AllowanceRequestError::Service)
        );
        assert_eq!(
            AllowanceRequest::parse(&req(5, 5000, 0).to_body()),
            Err(AllowanceRequestError::TooMany)
        );
        assert_eq!(
            AllowanceAnswer::from_response(Some(200), Some(br#"{"granted":9,"left":0}"#), 8),
            None
        );
        assert_eq!(
            AllowanceAnswer::from_response(Some(200), Some(br#"{"granted":2,"left":7}"#), 8),
            Some(AllowanceAnswer {
                granted: 2,
                left: 7
            })
        );
        assert_eq!(
            AllowanceAnswer::from_response(Some(503), Some(b"{}"), 8),
            None
        );
    }
}
