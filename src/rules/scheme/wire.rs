//! Reading values off the wire: headers, the query string, and the
//! signature formats (raw, prefixed, kv, versioned list) and encodings.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use super::{Encoding, Format, Location};
use crate::contract::error::Reject;
use crate::host::{Headers, Repeated};

/// Senders differ on padding; the signature bytes do not.
const PADDING_EITHER: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const BASE64: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, PADDING_EITHER);
const BASE64URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, PADDING_EITHER);

/// The query string of `:path`, percent-decoded; parsed once per request.
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn of(headers: &Headers) -> Query {
        let path = headers.first(":path").unwrap_or("");
        let pairs = match path.split_once('?') {
            Some((_, q)) => form_urlencoded::parse(q.split('#').next().unwrap_or("").as_bytes()).into_owned().collect(),
            None => Vec::new(),
        };
        Query { pairs }
    }

    /// The value of a parameter sent at most once.
    pub fn single(&self, name: &str) -> Result<Option<&str>, Repeated> {
        let mut found = None;
        for (k, v) in &self.pairs {
            if k == name {
                if found.is_some() {
                    return Err(Repeated);
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }
}

/// Every value at a header or query location (empty: absent). A header
/// list names alternatives (`webhook-signature`, `svix-signature`); each may
/// appear at most once.
pub fn values(at: &Location, headers: &Headers, query: &Query) -> Result<Vec<String>, Repeated> {
    match at {
        Location::Headers(names) => {
            let mut out = Vec::new();
            for name in names {
                if let Some(v) = headers.single(name)? {
                    out.push(v.to_string());
                }
            }
            Ok(out)
        }
        Location::Query(name) => Ok(query.single(name)?.map(str::to_string).into_iter().collect()),
        Location::Json(_) => Ok(Vec::new()),
    }
}

/// The first value at a location (timestamps, ids).
pub fn single(at: &Location, headers: &Headers, query: &Query) -> Result<Option<String>, Repeated> {
    Ok(values(at, headers, query)?.into_iter().next())
}

/// Signature texts and the kv timestamp, out of the header values.
pub struct Split {
    pub signatures: Vec<String>,
    pub timestamp: Option<String>,
}

pub fn split(format: &Format, values: &[String]) -> Result<Split, Reject> {
    let mut out = Split { signatures: Vec::new(), timestamp: None };
    for value in values {
        let value = value.trim();
        match format {
            Format::Raw => out.signatures.push(value.to_string()),
            Format::Prefixed(prefix) => {
                out.signatures.push(value.strip_prefix(prefix.as_str()).ok_or(Reject::MalformedSignature)?.to_string())
            }
            Format::Kv { group_sep, pair_sep, kv_sep, signature_keys, timestamp_key } => {
                // Pairs are split on the separator without its spaces, so
                // "t=1, v1=x" (as WorkOS sends) and "t=1,v1=x" both read.
                let sep = Some(pair_sep.trim()).filter(|s| !s.is_empty()).unwrap_or(pair_sep);
                let groups: Vec<&str> = match group_sep {
                    Some(g) => value.split(g.as_str()).filter(|s| !s.trim().is_empty()).collect(),
                    None => vec![value],
                };
                for pair in groups.iter().flat_map(|g| g.split(sep)) {
                    let Some((k, v)) = pair.trim().split_once(kv_sep.as_str()) else { continue };
                    if timestamp_key.as_deref() == Some(k) {
                        // Sets may each repeat the timestamp; they must agree.
                        let repeated = group_sep.is_some() && out.timestamp.as_deref().is_none_or(|t| t == v);
                        if out.timestamp.replace(v.to_string()).is_some() && !repeated {
                            return Err(Reject::MalformedTimestamp);
                        }
                    } else if signature_keys.iter().any(|s| s == k) {
                        out.signatures.push(v.to_string());
                    }
                }
            }
            Format::List { sep, version_sep, versions } => {
                for entry in value.split(sep.as_str()).map(str::trim).filter(|e| !e.is_empty()) {
                    if let Some((version, sig)) = entry.split_once(version_sep.as_str()) {
                        if versions.iter().any(|v| v == version) {
                            out.signatures.push(sig.to_string());
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Signature bytes; `None` when the text is not in the encoding.
pub fn decode_signature(text: &str, encoding: Encoding) -> Option<Vec<u8>> {
    match encoding {
        Encoding::Hex => hex::decode(text).ok(),
        Encoding::Base64 => BASE64.decode(text).ok(),
        Encoding::Base64url => BASE64URL.decode(text).ok(),
        Encoding::Text => Some(text.as_bytes().to_vec()),
    }
}

/// Encodes signature bytes (the signing side, and handshake answers).
pub fn encode(bytes: &[u8], encoding: Encoding) -> String {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    match encoding {
        Encoding::Hex => hex::encode(bytes),
        Encoding::Base64 => STANDARD.encode(bytes),
        Encoding::Base64url => URL_SAFE.encode(bytes),
        Encoding::Text => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Key text in a secret encoding (base64 padded or not).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text.trim()).ok()
}

/// Base64url, padded or not (JWTs, JWKs).
pub fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    BASE64URL.decode(text).ok()
}
