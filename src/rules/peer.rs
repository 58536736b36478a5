//! mTLS peer identities: typed patterns (`uri:`, `dns:`, `subject:`), checked
//! against every identity of the certificate, each only against its own type.

use crate::host::Peer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPattern {
    Uri(String),
    Dns(String),
    Subject(String),
}

impl PeerPattern {
    pub fn parse(text: &str) -> Option<PeerPattern> {
        let (kind, value) = text.split_once(':')?;
        if value.is_empty() {
            return None;
        }
        let value = value.to_string();
        Some(match kind {
            "uri" => PeerPattern::Uri(value),
            "dns" => PeerPattern::Dns(value.to_ascii_lowercase()),
            "subject" => PeerPattern::Subject(value),
            _ => return None,
        })
    }

    fn matches(&self, peer: &Peer) -> bool {
        match self {
            PeerPattern::Uri(u) => peer.uri_sans.iter().any(|s| s == u),
            // DNS names compare case-insensitively (RFC 4343).
            PeerPattern::Dns(d) => peer.dns_sans.iter().any(|s| s.eq_ignore_ascii_case(d)),
            PeerPattern::Subject(s) => peer.subject.as_deref() == Some(s.as_str()),
        }
    }
}

/// An empty list admits every verified peer.
pub fn allowed(peer: &Peer, patterns: &[PeerPattern]) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uris: &[&str], dns: &[&str]) -> Peer {
        Peer {
            uri_sans: uris.iter().map(|s| s.to_string()).collect(),
            dns_sans: dns.iter().map(|s| s.to_string()).collect(),
            subject: Some("CN=bridge".into()),
        }
    }

    #[test]
    fn every_san_is_checked_each_by_its_type() {
        let p = peer(&["spiffe://a", "spiffe://b"], &["one.example", "Two.Example"]);
        let pat = |t: &str| vec![PeerPattern::parse(t).unwrap()];
        assert!(allowed(&p, &pat("uri:spiffe://b")), "second URI SAN");
        assert!(allowed(&p, &pat("dns:two.example")), "second DNS SAN, any case");
        assert!(allowed(&p, &pat("subject:CN=bridge")));
        assert!(!allowed(&p, &pat("dns:spiffe://a")), "a URI SAN never satisfies a DNS entry");
        assert!(!allowed(&p, &pat("uri:one.example")));
        assert!(allowed(&p, &[]));
    }

    #[test]
    fn untyped_entries_are_refused() {
        for bad in ["spiffe://x", "uri:", "ip:1.2.3.4", ""] {
            assert!(PeerPattern::parse(bad).is_none(), "{bad}");
        }
    }
}
