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

/// Adds the identities of the current hop's element of an
/// `x-forwarded-client-cert` value (`By=..;Hash=..;Subject="..";URI=..;DNS=..`,
/// one element per proxy, comma-separated; the last is this hop's).
pub fn extend_from_xfcc(peer: &mut Peer, value: &str) {
    let elements = split_unquoted(value, ',');
    let Some(element) = elements.last() else { return };
    for pair in split_unquoted(element, ';') {
        let Some((key, raw)) = pair.split_once('=') else { continue };
        let value = unquote(raw.trim());
        match key.trim().to_ascii_lowercase().as_str() {
            "uri" if !peer.uri_sans.contains(&value) => peer.uri_sans.push(value),
            "dns" if !peer.dns_sans.contains(&value) => peer.dns_sans.push(value),
            "subject" if peer.subject.is_none() => peer.subject = Some(value),
            _ => {}
        }
    }
}

/// Splits on `sep` outside double quotes (XFCC quotes values holding `,;=`).
fn split_unquoted(text: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\""),
        None => value.to_string(),
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
    fn xfcc_adds_every_san_of_the_current_hop() {
        let mut p = peer(&["spiffe://first"], &[]);
        let xfcc = concat!(
            "By=spiffe://front;URI=spiffe://from-an-earlier-hop,",
            "Hash=ab12;Subject=\"CN=bridge,O=Acme\";URI=spiffe://first;URI=spiffe://second;DNS=one.example;DNS=two.example"
        );
        extend_from_xfcc(&mut p, xfcc);
        assert_eq!(p.uri_sans, ["spiffe://first", "spiffe://second"]);
        assert_eq!(p.dns_sans, ["one.example", "two.example"]);
        assert!(allowed(&p, &[PeerPattern::parse("uri:spiffe://second").unwrap()]));
        assert!(!allowed(&p, &[PeerPattern::parse("uri:spiffe://from-an-earlier-hop").unwrap()]), "only this hop");
        let mut q = peer(&[], &[]);
        q.subject = None;
        extend_from_xfcc(&mut q, "Subject=\"CN=a,O=b\";URI=x");
        assert_eq!(q.subject.as_deref(), Some("CN=a,O=b"));
        for junk in ["", ",", ";;", "URI", "\"", "URI=\"unterminated"] {
            extend_from_xfcc(&mut peer(&[], &[]), junk);
        }
    }

    #[test]
    fn untyped_entries_are_refused() {
        for bad in ["spiffe://x", "uri:", "ip:1.2.3.4", ""] {
            assert!(PeerPattern::parse(bad).is_none(), "{bad}");
        }
    }
}
