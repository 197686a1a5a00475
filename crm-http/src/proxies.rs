//! Who the client is behind reverse proxies (`--trusted-proxies`).
//!
//! Forwarding headers are whatever the sender wrote, so they are read only when the
//! TCP peer is a proxy the operator listed; otherwise the peer is the client and the
//! headers are ignored (a client cannot pick its own address to dodge a limit or to
//! lock someone else out). Behind trusted proxies, the chain is walked from the right
//! (the nearest hop) and the first address that is not itself a trusted proxy is the
//! client: everything left of it was written by the client or an untrusted hop.
//!
//! `Forwarded` (RFC 7239) is read when present, else `X-Forwarded-For`. A proxy must
//! overwrite or strip the one of them it does not set, or a client could supply it.

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
    str::FromStr,
};

use poem::Request;

/// An IP network, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a network of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A `--trusted-proxies` entry that is not an address or network.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP address or network (like 10.0.0.0/8 or 2001:db8::/32)")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadCidr(s.to_owned());
        let (address, prefix) = s.trim().split_once('/').map_or((s.trim(), None), |(a, p)| (a, Some(p)));
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(bad)?,
        };
        // `::ffff:10.0.0.0/104` is `10.0.0.0/8`: IPv4-mapped peers are matched as IPv4.
        let canonical = network.to_canonical();
        let prefix = if network.is_ipv6() && canonical.is_ipv4() { prefix.saturating_sub(96) } else { prefix };
        Ok(Self { network: canonical, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Cidr {
    /// Whether `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose forwarding headers are believed. Empty (the default): none, the
/// TCP peer is always the client.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    networks: Vec<Cidr>,
}

impl TrustedProxies {
    /// Trusts peers inside any of `networks`.
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self { networks }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// The client of `req`: its TCP peer, unless the peer is a trusted proxy; then the
    /// right-most forwarded address that is not a trusted proxy (or the left-most one,
    /// when all are). A hop that forwarded no readable address ends the walk at that
    /// hop. `None` when the peer is not an IP socket.
    pub fn client_ip(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip().to_canonical())?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut client = peer;
        for hop in forwarded_chain(req).into_iter().rev() {
            let Some(hop) = hop else { return Some(client) };
            client = hop.to_canonical();
            if !self.trusts(client) {
                return Some(client);
            }
        }
        Some(client)
    }
}

/// The forwarded-for addresses, left (the original client, by the senders' word) to
/// right (the hop nearest to us); `None` for an entry that names no address
/// (`unknown`, an obfuscated `_name`, garbage).
fn forwarded_chain(req: &Request) -> Vec<Option<IpAddr>> {
    let values = |name: &str| -> Vec<String> {
        req.headers().get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then(|| node_address(value.trim().trim_matches('"')))
                })?
            })
            .collect();
    }
    values("x-forwarded-for").iter().flat_map(|v| v.split(',')).map(|entry| node_address(entry.trim())).collect()
}

/// The address of an RFC 7239 node (`192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`) or a plain `X-Forwarded-For` entry.
fn node_address(node: &str) -> Option<IpAddr> {
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| node.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}
