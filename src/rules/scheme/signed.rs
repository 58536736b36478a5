//! A scheme at work on one delivery: the signed content built from the
//! template, the signature checked against the keys valid now (with the
//! senders' spelling quirks: the URL's port, a batch's tokens), the body
//! digest a signed URL carries, and what the replay key covers.

use std::borrow::Cow;

use super::wire::Query;
use super::{body_field, decode_signature, form, Algorithm, Credentials, Encoding, Key, Request, Scheme, Token};
use crate::contract::error::Reject;
use crate::host::Headers;

impl Scheme {
    /// The signed content, in pieces; the body is borrowed, never copied.
    pub fn message<'a>(&self, creds: &'a Credentials, req: &Request<'a>) -> Vec<Cow<'a, [u8]>> {
        let h = req.headers;
        self.signed
            .iter()
            .map(|t| match t {
                Token::Literal(s) => Cow::Owned(s.as_bytes().to_vec()),
                Token::Body => Cow::Borrowed(req.body),
                Token::Timestamp => Cow::Borrowed(creds.timestamp.as_ref().map_or(&b""[..], |s| s.text.as_bytes())),
                Token::Id => Cow::Borrowed(creds.id.as_deref().unwrap_or("").as_bytes()),
                Token::Method => Cow::Owned(h.first(":method").unwrap_or("").as_bytes().to_vec()),
                Token::Path => Cow::Owned(h.first(":path").unwrap_or("").as_bytes().to_vec()),
                Token::Url => Cow::Owned(self.url(h).into_bytes()),
                Token::Header(name) => Cow::Owned(h.first(name).unwrap_or("").as_bytes().to_vec()),
                // A body that is not a form has no fields (Twilio signs its
                // JSON through `body_digest` in the URL).
                Token::FormSorted if !form::is_form(h) => Cow::Borrowed(&b""[..]),
                Token::FormSorted => Cow::Owned(form::sorted_concat(req.body)),
                Token::Json(ptr) => Cow::Owned(body_field::value_at(req.body, ptr).unwrap_or_default().into_bytes()),
                Token::JsonLines(fields) => Cow::Owned(json_lines(req.body, fields)),
                Token::Param(name) => Cow::Owned(self.params.0.get(name).cloned().unwrap_or_default().into_bytes()),
                Token::BodyCrc32 => Cow::Owned(crc32fast::hash(req.body).to_string().into_bytes()),
                Token::Jwt => Cow::Borrowed(creds.jwt.as_ref().map_or(&b""[..], |j| j.signing_input.as_bytes())),
            })
            .collect()
    }

    /// The URL as the sender saw it: `public_url` + the request's path and
    /// query; without it, the `:scheme` and `:authority` Envoy saw.
    pub fn url(&self, h: &Headers) -> String {
        let path = h.first(":path").unwrap_or("/");
        match &self.public_url {
            Some(base) => format!("{base}{path}"),
            None => {
                format!("{}://{}{path}", h.first(":scheme").unwrap_or("https"), h.first(":authority").unwrap_or(""))
            }
        }
    }

    /// The body's digest in the signed URL, where the scheme has one: it
    /// must match the body; it must be there for a body that is not a form
    /// when `{form_sorted}` is all `signed` covers of the body.
    pub fn body_digest_holds(&self, headers: &Headers, body_sha256: &[u8; 32]) -> Result<(), Reject> {
        let Some(name) = &self.body_digest else { return Ok(()) };
        let needed = !self.signed.contains(&Token::Body) && !form::is_form(headers);
        match Query::of(headers).single(name) {
            Ok(Some(sent)) => {
                let sent = decode_signature(sent, Encoding::Hex).ok_or(Reject::MalformedSignature)?;
                if bool::from(subtle::ConstantTimeEq::ct_eq(sent.as_slice(), body_sha256.as_slice())) {
                    Ok(())
                } else {
                    Err(Reject::SignatureMismatch)
                }
            }
            Ok(None) if needed => Err(Reject::MissingSignature),
            Ok(None) => Ok(()),
            Err(_) => Err(Reject::MalformedSignature),
        }
    }

    /// The first key valid at `now` that verifies one of the candidates.
    pub fn verify<'k>(&self, creds: &Credentials, req: &Request<'_>, keys: &'k [Key], now: i64) -> Option<&'k Key> {
        self.verify_message(creds, &self.message(creds, req), keys, now)
    }

    /// `verify` over a signed content already built (the stream builds it
    /// once, for the signature and the replay key).
    pub fn verify_message<'k>(
        &self,
        creds: &Credentials,
        message: &[Cow<'_, [u8]>],
        keys: &'k [Key],
        now: i64,
    ) -> Option<&'k Key> {
        let valid = || keys.iter().filter(|k| k.valid_at(now));
        // SNS names its hash in the body (`SignatureVersion`).
        let algorithm = creds.algorithm.unwrap_or(self.algorithm);
        if creds.every {
            // Each element's token must be a valid key's; the first element's
            // key is the one reported.
            let mut first = None;
            for c in &creds.candidates {
                let key = valid().find(|k| k.material.verifies(algorithm, message, std::slice::from_ref(c)))?;
                first.get_or_insert(key);
            }
            return first;
        }
        if let Some(key) = valid().find(|k| k.material.verifies(algorithm, message, &creds.candidates)) {
            return Some(key);
        }
        // Senders disagree with themselves on default ports (Twilio's SDKs
        // try the URL with and without `:443`/`:80`): the other spelling.
        let at = self.signed.iter().position(|t| *t == Token::Url)?;
        let url = std::str::from_utf8(&message[at]).ok()?;
        let mut other = message.to_vec();
        other[at] = Cow::Owned(other_port_spelling(url)?.into_bytes());
        valid().find(|k| k.material.verifies(algorithm, &other, &creds.candidates))
    }

    /// The parameters `signed` names (`{param:NAME}`).
    pub fn signed_params(&self) -> Vec<String> {
        self.signed.iter().filter_map(|t| if let Token::Param(n) = t { Some(n.clone()) } else { None }).collect()
    }

    /// The id the signature covers, if any (`x-combo-delivery-id`).
    pub fn signed_id(&self, creds: &Credentials) -> Option<String> {
        self.id.as_ref().filter(|i| i.signed).and(creds.id.clone())
    }

    /// What the replay key covers: the signed content exactly as the
    /// signature covers it, with the body standing in as its SHA-256 digest.
    /// Never how the signature is spelled, never an unsigned header.
    /// `message` is `Scheme::message` of the delivery.
    pub fn replay_content(&self, message: &[Cow<'_, [u8]>], body_sha256: &[u8; 32]) -> Vec<u8> {
        let mut content = Vec::new();
        for (bytes, token) in message.iter().zip(&self.signed) {
            content.extend_from_slice(if *token == Token::Body { body_sha256.as_slice() } else { bytes });
        }
        // A token scheme signs nothing: the body it authorises is the delivery.
        if self.algorithm == Algorithm::Token && !self.signed.contains(&Token::Body) {
            content.extend_from_slice(body_sha256);
        }
        content
    }
}

/// `Name\nvalue\n` for each field present (SNS's string to sign).
fn json_lines(body: &[u8], fields: &[(String, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, _) in fields {
        if let Some(value) = body_field::value_at(body, &format!("/{name}")) {
            out.extend_from_slice(format!("{name}\n{value}\n").as_bytes());
        }
    }
    out
}

/// The URL with its default port spelled the other way: `:443` (`:80`)
/// added where no port is written, dropped where it is (Twilio's SDKs try
/// both). Any other port is the URL's own: `None`.
fn other_port_spelling(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_end = if authority.starts_with('[') { authority.find(']')? + 1 } else { 0 };
    let (host, port) = authority.split_at(authority[host_end..].find(':').map_or(authority.len(), |i| host_end + i));
    let default = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    match port {
        "" => Some(format!("{scheme}://{host}{default}{tail}")),
        p if p == default => Some(format!("{scheme}://{host}{tail}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_tried_with_its_port_spelled_both_ways() {
        for (url, other) in [
            ("https://h.example.com/p?q=1", "https://h.example.com:443/p?q=1"),
            ("https://h.example.com:443/p", "https://h.example.com/p"),
            ("http://h.example.com", "http://h.example.com:80"),
            ("https://[::1]/p", "https://[::1]:443/p"),
            ("https://[::1]:443/p", "https://[::1]/p"),
        ] {
            assert_eq!(other_port_spelling(url).as_deref(), Some(other), "{url}");
        }
        assert_eq!(other_port_spelling("ftp://h/p"), None);
        assert_eq!(other_port_spelling("http://h.example.com:8080/p"), None, "a port of its own stays");
        assert_eq!(other_port_spelling("https://h.example.com:80/p"), None, "not https's default");
    }
}
