//! IPv4/IPv6 allowlists over Envoy's `source.address`.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The entry at `index` is neither an address nor a CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadCidr {
    pub index: usize,
}

/// A compiled list of networks. Empty allows every source.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    nets: Vec<IpNet>,
}

impl Allowlist {
    /// Parses CIDRs; a bare address means that single host.
    pub fn parse(cidrs: &[String]) -> Result<Self, BadCidr> {
        let mut nets = Vec::with_capacity(cidrs.len());
        for (i, text) in cidrs.iter().enumerate() {
            let t = text.trim();
            let net = t
                .parse::<IpNet>()
                .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| BadCidr { index: i })?;
            nets.push(net.trunc());
        }
        Ok(Allowlist { nets })
    }

    /// Whether `ip` may pass. An unknown source passes only an empty list.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.nets.is_empty() {
            return true;
        }
        let Some(ip) = ip else { return false };
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, seen on dual-stack listeners)
/// is matched as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Parses Envoy's `source.address` property: `ip:port`, `[v6]:port` or a bare ip.
pub fn parse_source_address(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    t.parse::<SocketAddr>().map(|s| s.ip()).or_else(|_| t.parse::<IpAddr>()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(c: &[&str]) -> Allowlist {
        Allowlist::parse(&c.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn v4_and_v6() {
        let l = list(&["203.0.113.0/24", "2001:db8::/32", "127.0.0.1"]);
        assert!(l.allows(parse_source_address("203.0.113.9:5555")));
        assert!(!l.allows(parse_source_address("203.0.114.1:5555")));
        assert!(l.allows(parse_source_address("[2001:db8::7]:443")));
        assert!(!l.allows(parse_source_address("[2001:db9::7]:443")));
        assert!(l.allows(parse_source_address("127.0.0.1:1")));
        assert!(!l.allows(parse_source_address("127.0.0.2:1")));
        assert!(l.allows(parse_source_address("[::ffff:203.0.113.5]:80")));
    }

    #[test]
    fn empty_allows_all_even_unknown() {
        assert!(list(&[]).allows(None));
        assert!(!list(&["10.0.0.0/8"]).allows(None));
    }

    #[test]
    fn bad_cidr_names_index() {
        let e = Allowlist::parse(&["10.0.0.0/8".into(), "10.0.0.0/33".into()]).unwrap_err();
        assert_eq!(e, BadCidr { index: 1 });
    }

    #[test]
    fn parses_envoy_addresses() {
        assert_eq!(parse_source_address("1.2.3.4:80"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_source_address("[::1]:80"), Some("::1".parse().unwrap()));
        assert_eq!(parse_source_address("garbage"), None);
    }
}
