//! Client-address binding (PROTOCOL.md, "IP-bound tokens"): the `<svc>_client_ip` caveat, the
//! address a host reports for its client, and the network a minted token is bound to.
//!
//! Which address is the client's is the host's business (Envoy's downstream remote address,
//! Cloudflare's `CF-Connecting-IP`); this module only reads what the host reports, in the
//! forms hosts write it, and never a header the client wrote.

#[allow(unused_imports)]
use crate::prelude::*;

use core::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// `<svc>_client_ip=<addr or CIDR>[,<addr or CIDR>…]`: the request's client address must be
/// in one of the networks, and every such caveat must hold.
pub(crate) const COND_CLIENT_IP_SUFFIX: &str = "client_ip";

/// Most networks one `client_ip` caveat may list.
const MAX_NETS_PER_CAVEAT: usize = 16;

/// Longest address text a host may report (`[v6%zone]:port` fits well within it).
const MAX_ADDRESS_LEN: usize = 64;

/// Reads the client address as a host reports it: `1.2.3.4`, `1.2.3.4:5678`, `::1`,
/// `[::1]:5678`. An IPv4-mapped IPv6 address is read as the IPv4 address it carries, so a
/// dual-stack listener and a caveat written in IPv4 agree. Anything else is `None`: the edge
/// then does not know the client's address, and a binding caveat fails closed.
pub fn parse_client_address(raw: &[u8]) -> Option<IpAddr> {
    if raw.len() > MAX_ADDRESS_LEN {
        return None;
    }
    let s = core::str::from_utf8(raw).ok()?.trim();
    let ip = s
        .parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))?;
    Some(ip.to_canonical())
}

/// Parses a caveat value: a comma-separated list of addresses (a host network) and CIDR
/// networks. `None` when any entry is malformed, the list is empty or too long.
pub(crate) fn parse_nets(value: &str) -> Option<Vec<IpNet>> {
    let mut out = Vec::new();
    for entry in value.split(',') {
        if out.len() == MAX_NETS_PER_CAVEAT {
            return None;
        }
        out.push(parse_net(entry)?);
    }
    Some(out)
}

fn parse_net(entry: &str) -> Option<IpNet> {
    if entry.contains('/') {
        let net = entry.parse::<IpNet>().ok()?;
        Some(match net {
            // Written as ::ffff:a.b.c.d/len: the IPv4 network it names.
            IpNet::V6(v6) => match (v6.addr().to_ipv4_mapped(), v6.prefix_len()) {
                (Some(v4), len) if len >= 96 => IpNet::new(IpAddr::V4(v4), len - 96).ok()?,
                _ => net,
            },
            IpNet::V4(_) => net,
        })
    } else {
        Some(IpNet::from(entry.parse::<IpAddr>().ok()?.to_canonical()))
    }
}

/// Whether `ip` is in one of `nets`.
pub(crate) fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

/// How wide a minted binding is: the client's address truncated to these prefix lengths.
/// IPv6 clients commonly rotate privacy addresses within their /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingWidth {
    /// IPv4 prefix length, 1–32.
    pub v4_prefix: u8,
    /// IPv6 prefix length, 1–128.
    pub v6_prefix: u8,
}

impl Default for BindingWidth {
    fn default() -> Self {
        BindingWidth {
            v4_prefix: 32,
            v6_prefix: 64,
        }
    }
}

/// Why a binding width is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindingWidthError {
    /// Outside 1–32 (IPv4) or 1–128 (IPv6): 0 would bind to every address.
    #[error("prefix length {0} is outside 1-{1}")]
    OutOfRange(u8, u8),
}

impl BindingWidth {
    /// Checks both lengths.
    pub fn new(v4_prefix: u8, v6_prefix: u8) -> Result<Self, BindingWidthError> {
        if !(1..=32).contains(&v4_prefix) {
            return Err(BindingWidthError::OutOfRange(v4_prefix, 32));
        }
        if !(1..=128).contains(&v6_prefix) {
            return Err(BindingWidthError::OutOfRange(v6_prefix, 128));
        }
        Ok(BindingWidth {
            v4_prefix,
            v6_prefix,
        })
    }

    /// The network a token minted for `client` is bound to, in the caveat's text form
    /// (`203.0.113.7/32`, `2001:db8:1:2::/64`).
    pub fn network(&self, client: IpAddr) -> String {
        let client = client.to_canonical();
        let len = match client {
            IpAddr::V4(_) => self.v4_prefix,
            IpAddr::V6(_) => self.v6_prefix,
        };
        // In range by construction; a host network is the safe fallback.
        IpNet::new(client, len)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(client))
            .to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A minted network always holds the client it was minted for, parses back as a caveat,
        /// and holds exactly the addresses sharing the prefix.
        #[test]
        fn minted_networks_hold_their_client(
            a in any::<u32>(), b in any::<u32>(), v4 in 1u8..=32, v6 in 1u8..=128,
            hi in any::<u128>(), other in any::<u128>(),
        ) {
            let w = BindingWidth::new(v4, v6).unwrap();
            let ip4 = IpAddr::V4(Ipv4Addr::from(a));
            let nets = parse_nets(&w.network(ip4)).unwrap();
            prop_assert!(contains(&nets, ip4));
            let same = (a ^ b) >> (32 - u32::from(v4)) == 0;
            prop_assert_eq!(contains(&nets, IpAddr::V4(Ipv4Addr::from(b))), same);
            let ip6 = IpAddr::V6(Ipv6Addr::from(hi));
            if ip6.to_canonical() == ip6 {
                let nets = parse_nets(&w.network(ip6)).unwrap();
                prop_assert!(contains(&nets, ip6));
                let o = IpAddr::V6(Ipv6Addr::from(other));
                let same = (hi ^ other) >> (128 - u32::from(v6)) == 0;
                prop_assert_eq!(contains(&nets, o), same);
            }
        }

        /// Whatever a host reports, reading it never panics, and what reads back is canonical.
        #[test]
        fn reported_addresses_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Some(ip) = parse_client_address(&raw) {
                prop_assert_eq!(ip.to_canonical(), ip);
            }
            let _ = parse_nets(&String::from_utf8_lossy(&raw));
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_reported_forms() {
        for (raw, want) in [
            ("203.0.113.7", Some("203.0.113.7")),
            ("203.0.113.7:41234", Some("203.0.113.7")),
            (" 203.0.113.7 ", Some("203.0.113.7")),
            ("::1", Some("::1")),
            ("[::1]:8080", Some("::1")),
            ("2001:db8::5", Some("2001:db8::5")),
            ("::ffff:203.0.113.7", Some("203.0.113.7")),
            ("[::ffff:203.0.113.7]:9", Some("203.0.113.7")),
            ("", None),
            ("unknown", None),
            ("203.0.113.7, 10.0.0.1", None),
            ("203.0.113", None),
            ("[::1]", None),
            ("1.2.3.4:99999", None),
        ] {
            assert_eq!(
                parse_client_address(raw.as_bytes()),
                want.map(ip),
                "{raw:?}"
            );
        }
        assert_eq!(parse_client_address(&[b'1'; 65]), None);
        assert_eq!(parse_client_address(b"\xff"), None);
    }

    #[test]
    fn caveat_networks_and_their_edges() {
        let nets = parse_nets("10.0.0.0/8,2001:db8::/32,192.0.2.1").unwrap();
        for (addr, inside) in [
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("2001:db8::", true),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db9::", false),
            ("192.0.2.1", true),
            ("192.0.2.2", false),
            ("::ffff:10.1.2.3", false), // callers canonicalize; a raw mapped address is v6
        ] {
            assert_eq!(contains(&nets, ip(addr)), inside, "{addr}");
        }
        // v4-mapped in the caveat means the IPv4 network
        let mapped = parse_nets("::ffff:10.0.0.0/104").unwrap();
        assert!(contains(&mapped, ip("10.9.9.9")));
        assert!(!contains(&mapped, ip("11.0.0.1")));
        // a /0 is every address of its family, as written
        assert!(contains(&parse_nets("0.0.0.0/0").unwrap(), ip("8.8.8.8")));
        for bad in [
            "",
            ",",
            "10.0.0.0/33",
            "10.0.0.0/",
            "::/129",
            "10.0.0.1 ",
            "host.example",
            "10.0.0.0/8,",
        ] {
            assert_eq!(parse_nets(bad), None, "{bad:?}");
        }
        let many = vec!["10.0.0.1"; 17].join(",");
        assert_eq!(parse_nets(&many), None);
        assert!(parse_nets(&vec!["10.0.0.1"; 16].join(",")).is_some());
    }

    #[test]
    fn minted_networks() {
        let w = BindingWidth::default();
        assert_eq!(w.network(ip("203.0.113.7")), "203.0.113.7/32");
        assert_eq!(w.network(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(w.network(ip("::ffff:203.0.113.7")), "203.0.113.7/32");
        let wide = BindingWidth::new(24, 48).unwrap();
        assert_eq!(wide.network(ip("203.0.113.7")), "203.0.113.0/24");
        assert_eq!(wide.network(ip("2001:db8:1:2::9")), "2001:db8:1::/48");
        assert!(BindingWidth::new(0, 64).is_err());
        assert!(BindingWidth::new(32, 129).is_err());
        // what is minted parses back and holds the client
        let nets = parse_nets(&wide.network(ip("203.0.113.7"))).unwrap();
        assert!(contains(&nets, ip("203.0.113.200")));
    }
}
