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

/// The XFCC value cannot be read one way only: refused (`peer_not_allowed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ambiguous;

/// Adds the identities of an `x-forwarded-client-cert` value as the
/// connection manager writes it under `SANITIZE_SET`: one element,
/// `[By=..;][Hash=..;][Cert="..";][Chain="..";][Subject="..";]URI=..[;URI=..][;DNS=..]*`.
///
/// Envoy writes URI and DNS SANs unquoted, so a SAN holding `;DNS=` or
/// `;URI=` reads like two. What holds it exact: the first URI SAN, the first
/// DNS SAN and the subject must equal the connection's own (read from the
/// TLS session, not the header), so text smuggled in the first URI SAN, or
/// any DNS name smuggled in a URI SAN (it lands before the real DNS SANs),
/// is caught; DNS names must be names and appear once. With one or two URI
/// SANs each one's extent is then known; from three on, the later ones are
/// not trusted (only the first is used).
pub fn extend_from_xfcc(peer: &mut Peer, value: &str) -> Result<(), Ambiguous> {
    let [element] = split_unquoted(value, ',')[..] else { return Err(Ambiguous) };
    let (mut uris, mut dns, mut subject) = (Vec::new(), Vec::<&str>::new(), None);
    // Envoy's order: the other keys, then the URI SANs, then the DNS SANs.
    let mut stage = 0;
    for piece in split_unquoted(element, ';') {
        let (key, raw) = piece.split_once('=').ok_or(Ambiguous)?;
        match key {
            "By" | "Hash" | "Cert" | "Chain" if stage == 0 => {}
            "Subject" if stage == 0 && subject.is_none() => subject = Some(unquote(raw)),
            "URI" if stage <= 1 => {
                stage = 1;
                if !raw.is_empty() {
                    uris.push(raw);
                }
            }
            "DNS" if dns_name(raw) && !dns.contains(&raw) => {
                stage = 2;
                dns.push(raw);
            }
            _ => return Err(Ambiguous),
        }
    }
    let same = |xfcc: Option<&&str>, connection: Option<&String>| xfcc.copied() == connection.map(String::as_str);
    if !same(uris.first(), peer.uri_sans.first()) || !same(dns.first(), peer.dns_sans.first()) {
        return Err(Ambiguous);
    }
    if let (Some(s), Some(p)) = (subject.as_deref().filter(|s| !s.is_empty()), peer.subject.as_deref()) {
        if s != p {
            return Err(Ambiguous);
        }
    }
    let exact = if uris.len() <= 2 { uris.len() } else { 1 };
    for u in &uris[..exact] {
        if !peer.uri_sans.iter().any(|s| s == u) {
            peer.uri_sans.push(u.to_string());
        }
    }
    for d in dns {
        if !peer.dns_sans.iter().any(|s| s == d) {
            peer.dns_sans.push(d.to_string());
        }
    }
    if peer.subject.is_none() {
        peer.subject = subject.filter(|s| !s.is_empty());
    }
    Ok(())
}

/// A DNS SAN as a certificate carries it (a wildcard label included).
fn dns_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.*_".contains(&b))
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
    fn xfcc_adds_every_san_envoy_wrote() {
        let mut p = peer(&["spiffe://first"], &["one.example"]);
        p.subject = Some("CN=bridge,O=Acme".into());
        let xfcc = concat!(
            "Hash=ab12;Subject=\"CN=bridge,O=Acme\";URI=spiffe://first;URI=spiffe://second;",
            "DNS=one.example;DNS=two.example"
        );
        assert_eq!(extend_from_xfcc(&mut p, xfcc), Ok(()));
        assert_eq!(p.uri_sans, ["spiffe://first", "spiffe://second"]);
        assert_eq!(p.dns_sans, ["one.example", "two.example"]);
        assert!(allowed(&p, &[PeerPattern::parse("uri:spiffe://second").unwrap()]));
        let mut q = Peer { uri_sans: vec!["x".into()], ..Peer::default() };
        assert_eq!(extend_from_xfcc(&mut q, "Subject=\"CN=a,O=b\";URI=x"), Ok(()));
        assert_eq!(q.subject.as_deref(), Some("CN=a,O=b"));
        for junk in ["", ",", ";;", "URI", "\"", "URI=\"unterminated", "a,b"] {
            assert_eq!(extend_from_xfcc(&mut peer(&[], &[]), junk), Err(Ambiguous), "{junk}");
        }
    }

    #[test]
    fn smuggled_sans_are_refused() {
        // The case: a URI SAN `spiffe://partner-b.example/x;DNS=hooks.partner.example`.
        let conn = |uri: &str, dns: &[&str]| Peer { uri_sans: vec![uri.into()], ..peer(&[], dns) };
        let smuggled = "spiffe://partner-b.example/x;DNS=hooks.partner.example";
        let mut p = conn(smuggled, &[]);
        assert_eq!(extend_from_xfcc(&mut p, &format!("URI={smuggled}")), Err(Ambiguous));
        assert!(!allowed(&p, &[PeerPattern::parse("dns:hooks.partner.example").unwrap()]));
        // In a second URI SAN, with or without DNS SANs of its own.
        let second = "URI=spiffe://a;URI=spiffe://b/x;DNS=hooks.partner.example";
        assert_eq!(extend_from_xfcc(&mut conn("spiffe://a", &[]), second), Err(Ambiguous));
        let with_own = format!("{second};DNS=real.example");
        assert_eq!(extend_from_xfcc(&mut conn("spiffe://a", &["real.example"]), &with_own), Err(Ambiguous));
        let echo = "URI=spiffe://a;URI=spiffe://b;DNS=real.example;DNS=hooks.partner.example;DNS=real.example";
        assert_eq!(extend_from_xfcc(&mut conn("spiffe://a", &["real.example"]), echo), Err(Ambiguous), "twice");
        // A third URI SAN could be text of the second: only the first is used.
        let mut p = conn("spiffe://a", &[]);
        assert_eq!(extend_from_xfcc(&mut p, "URI=spiffe://a;URI=spiffe://b/x;URI=spiffe://victim"), Ok(()));
        assert_eq!(p.uri_sans, ["spiffe://a"]);
        // Keys out of Envoy's order, unknown keys, several elements.
        for bad in [
            "DNS=d.example;URI=spiffe://a",
            "URI=spiffe://a;Subject=\"x\"",
            "URI=spiffe://a;Foo=1",
            "URI=spiffe://a,URI=b",
        ] {
            assert_eq!(extend_from_xfcc(&mut conn("spiffe://a", &["d.example"]), bad), Err(Ambiguous), "{bad}");
        }
    }

    #[test]
    fn untyped_entries_are_refused() {
        for bad in ["spiffe://x", "uri:", "ip:1.2.3.4", ""] {
            assert!(PeerPattern::parse(bad).is_none(), "{bad}");
        }
    }
}
