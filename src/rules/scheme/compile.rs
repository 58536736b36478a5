//! `RawScheme` -> `Scheme`: every field checked once, at configure time;
//! an error names the field (relative to `scheme.`).

use super::coverage;
use super::raw::{Names, RawFormat, RawScheme, RawSignature, RawTimestamp};
use super::template::template;
use super::{
    Algorithm, Encoding, Format, IdSpec, Location, Scheme, SecretEncoding, TimeUnit, TimestampAt, TimestampSpec, Token,
};
use crate::contract::names::MAX_NAME;

/// A scheme field that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeError {
    /// The field under `scheme.`, e.g. `signature.prefix`.
    pub field: String,
    pub message: String,
}

pub(super) fn err<T>(field: &str, message: impl Into<String>) -> Result<T, SchemeError> {
    Err(SchemeError { field: field.to_string(), message: message.into() })
}

/// Longest timestamp window a scheme may declare (30 days).
const MAX_WINDOW: u64 = 30 * 86_400;

/// Compiles a complete scheme (a preset merged with the trigger's
/// overrides). `tolerance` is the global `timestamp_tolerance_seconds`,
/// the default of `max_age` and `max_future`.
pub fn compile(name: &str, raw: RawScheme, tolerance: i64) -> Result<Scheme, SchemeError> {
    let Some(algorithm) = raw.algorithm else { return err("algorithm", "is required") };
    let sig = raw.signature.unwrap_or_default();
    let signature_at = location("signature", sig.header.clone(), sig.query.clone(), sig.json.clone())?
        .map_or_else(|| err("signature", "needs one of header, query or json"), Ok)?;
    let format = format(&sig)?;
    let jwt = algorithm.jwt_alg().is_some();
    let text = algorithm == Algorithm::Token || jwt;
    let encoding = sig.encoding.unwrap_or(if text { Encoding::Text } else { Encoding::Hex });
    if text != (encoding == Encoding::Text) {
        return err("signature.encoding", "text is for algorithm: token and the jwt-* algorithms, and only for them");
    }
    let kv_timestamp = matches!(&format, Format::Kv { timestamp_key: Some(_), .. });
    let timestamp = timestamp(raw.timestamp, kv_timestamp, tolerance)?;
    let signed = template(raw.signed.as_deref().unwrap_or(if jwt { "{jwt}" } else { "{body}" }))?;
    if jwt != (signed == [Token::Jwt]) {
        return err("signed", "a jwt-* algorithm signs \"{jwt}\" (the token's header and payload), and only it does");
    }
    if matches!(&timestamp, Some(TimestampSpec { at: TimestampAt::Claim(_), .. })) && !jwt {
        return err("timestamp.claim", "is for the jwt-* algorithms");
    }
    let jwt_body_claim = raw.jwt.and_then(|j| j.body_sha256);
    if jwt_body_claim.is_some() && !jwt {
        return err("jwt", "is for the jwt-* algorithms");
    }
    let key_source = super::published::compile(raw.key, algorithm)?;
    let sender = match raw.sender {
        None => None,
        Some(s) => {
            let Some(ptr) = s.json.filter(|p| coverage::reads_field(&signed, &Location::Json(p.clone()))) else {
                return err("sender.json", "must point at a field the signature covers ({json:..} or {json_lines:..})");
            };
            if s.one_of.as_ref().is_some_and(|v| v.is_empty() || v.iter().any(String::is_empty)) {
                return err("sender.one_of", "lists the accepted values");
            }
            Some((ptr, s.one_of))
        }
    };
    let algorithm_from = match raw.algorithm_from {
        None => None,
        Some(a) => {
            let rsa = |x: &Algorithm| matches!(x, Algorithm::RsaSha1 | Algorithm::RsaSha256);
            if !a.json.starts_with('/') || a.values.is_empty() || !rsa(&algorithm) || !a.values.values().all(rsa) {
                return err(
                    "algorithm_from",
                    "maps a body field's values to rsa-sha1 / rsa-sha256, for an rsa-* scheme",
                );
            }
            Some((a.json, a.values.into_iter().collect()))
        }
    };
    if signed.contains(&Token::Timestamp) && timestamp.is_none() {
        return err("signed", "uses {timestamp} but the scheme has no timestamp");
    }
    let id = match raw.id {
        None => None,
        Some(l) => {
            let at = location("id", l.header, l.query, l.json)?
                .map_or_else(|| err("id", "needs one of header, query or json"), Ok)?;
            // Signed when the template covers it, or it sits in a signed body.
            let signed_id = signed.contains(&Token::Id)
                || (matches!(at, Location::Json(_)) && signed.contains(&Token::Body) && algorithm != Algorithm::Token)
                || coverage::reads_field(&signed, &at);
            Some(IdSpec { at, signed: signed_id })
        }
    };
    if signed.contains(&Token::Id) && id.is_none() {
        return err("signed", "uses {id} but the scheme has no id");
    }
    coverage::covers(
        algorithm,
        &signed,
        timestamp.as_ref(),
        id.as_ref(),
        jwt_body_claim.is_some(),
        raw.unsigned_body.unwrap_or(false),
    )?;
    let content_types = match raw.content_types {
        None => vec!["application/json".to_string()],
        Some(list) if list.is_empty() => return err("content_types", "must not be empty"),
        Some(list) => list.iter().map(|t| t.trim().to_ascii_lowercase()).collect(),
    };
    if content_types.iter().any(|t| !t.contains('/') || t.contains(';')) {
        return err("content_types", "entries are media types such as application/json");
    }
    let public_url = match raw.public_url {
        None => None,
        Some(u) if (u.starts_with("https://") || u.starts_with("http://")) && !u.contains(['?', '#', ' ']) => {
            Some(u.trim_end_matches('/').to_string())
        }
        Some(_) => return err("public_url", "must be an http(s) URL without query or fragment"),
    };
    if let Some(h) = raw.handshake {
        coverage::handshake_fits(h, algorithm, &signed, &content_types)?;
    }
    let body_digest = match raw.body_digest {
        None => None,
        Some(d) if d.query.is_empty() || d.query.len() > MAX_NAME => {
            return err("body_digest.query", "must be a parameter name")
        }
        Some(_) if !signed.contains(&Token::Url) => {
            return err("body_digest", "travels in the URL, so signed must hold {url}")
        }
        Some(d) => Some(d.query),
    };
    coverage::forms_cover(&signed, &content_types, body_digest.is_some())?;
    let mut signature_headers = headers_of(&signature_at);
    // The audit digest covers the timestamp and id headers, never a
    // signature or a token: an unsalted digest of a token is the token to
    // anyone with a word list.
    let mut audit_headers = Vec::new();
    if let Some(TimestampSpec { at: TimestampAt::At(l), .. }) = &timestamp {
        audit_headers.extend(headers_of(l));
    }
    if let Some(i) = &id {
        audit_headers.extend(headers_of(&i.at));
    }
    audit_headers.retain(|h| !signature_headers.contains(h));
    if algorithm == Algorithm::Token {
        // A token is the secret itself: no header of the scheme is visible to a template.
        signature_headers.extend(audit_headers.iter().cloned());
    }
    let mut scheme = Scheme {
        name: name.to_string(),
        algorithm,
        signature_at,
        format,
        encoding,
        signed,
        timestamp,
        id,
        secret_encoding: raw.secret_encoding.unwrap_or(SecretEncoding::Utf8),
        content_types,
        public_url,
        handshake: raw.handshake,
        body_digest,
        key_source,
        params: super::published::Params(raw.params.unwrap_or_default()),
        algorithm_from,
        jwt_body_claim,
        sender,
        signature_headers,
        audit_headers,
        reads_body: false,
        unique_keys: false,
    };
    scheme.reads_body = scheme.reads_json();
    let signs_body =
        scheme.signed.iter().any(|t| matches!(t, Token::Body | Token::FormSorted)) || scheme.jwt_body_claim.is_some();
    scheme.unique_keys = scheme.reads_body && !signs_body;
    Ok(scheme)
}

fn headers_of(l: &Location) -> Vec<String> {
    match l {
        Location::Headers(names) => names.clone(),
        _ => Vec::new(),
    }
}

pub(super) fn header_name(field: &str, name: &str) -> Result<String, SchemeError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b));
    if valid {
        Ok(name.to_ascii_lowercase())
    } else {
        err(field, "must be an HTTP header name")
    }
}

/// Exactly one of header, query or json (`None`: none given).
fn location(
    field: &str,
    header: Option<Names>,
    query: Option<String>,
    json: Option<String>,
) -> Result<Option<Location>, SchemeError> {
    match (header, query, json) {
        (None, None, None) => Ok(None),
        (Some(Names(names)), None, None) => {
            if names.is_empty() || names.len() > 8 {
                return err(&format!("{field}.header"), "must name 1 to 8 headers");
            }
            let names = names.iter().map(|n| header_name(&format!("{field}.header"), n)).collect::<Result<_, _>>()?;
            Ok(Some(Location::Headers(names)))
        }
        (None, Some(q), None) if !q.is_empty() && q.len() <= MAX_NAME => Ok(Some(Location::Query(q))),
        (None, None, Some(p)) if super::claims::each(&p) && field != "signature" => {
            err(&format!("{field}.json"), "a '*' token (every element) is only for signature.json")
        }
        (None, None, Some(p)) if p.starts_with('/') && p.len() <= 256 => Ok(Some(Location::Json(p))),
        (None, Some(_), None) => err(&format!("{field}.query"), "must be a parameter name"),
        (None, None, Some(_)) => err(&format!("{field}.json"), "must be a JSON pointer starting with '/'"),
        _ => err(field, "give one of header, query or json"),
    }
}

fn nonempty(field: &str, s: Option<String>, default: &str) -> Result<String, SchemeError> {
    let s = s.unwrap_or_else(|| default.to_string());
    if s.is_empty() {
        return err(field, "must not be empty");
    }
    Ok(s)
}

fn format(sig: &RawSignature) -> Result<Format, SchemeError> {
    let fmt = sig.format.unwrap_or(match (&sig.prefix, &sig.kv, &sig.list) {
        (Some(_), _, _) => RawFormat::Prefixed,
        (_, Some(_), _) => RawFormat::Kv,
        (_, _, Some(_)) => RawFormat::List,
        _ => RawFormat::Raw,
    });
    Ok(match fmt {
        RawFormat::Raw => Format::Raw,
        RawFormat::Prefixed => match &sig.prefix {
            Some(p) if !p.is_empty() => Format::Prefixed(p.clone()),
            _ => return err("signature.prefix", "is required with format: prefixed"),
        },
        RawFormat::Kv => {
            let kv = sig.kv.clone().unwrap_or_default();
            let signature_keys = kv.signature_keys.unwrap_or_default();
            if signature_keys.is_empty() || signature_keys.iter().any(String::is_empty) {
                return err("signature.kv.signature_keys", "must list the keys that carry signatures");
            }
            Format::Kv {
                group_sep: kv.group_sep.filter(|s| !s.is_empty()),
                pair_sep: nonempty("signature.kv.pair_sep", kv.pair_sep, ",")?,
                kv_sep: nonempty("signature.kv.kv_sep", kv.kv_sep, "=")?,
                signature_keys,
                timestamp_key: kv.timestamp_key.filter(|k| !k.is_empty()),
            }
        }
        RawFormat::List => {
            let list = sig.list.clone().unwrap_or_default();
            let versions = list.versions.unwrap_or_default();
            if versions.is_empty() || versions.iter().any(String::is_empty) {
                return err("signature.list.versions", "must list the versions to use");
            }
            Format::List {
                sep: nonempty("signature.list.sep", list.sep, " ")?,
                version_sep: nonempty("signature.list.version_sep", list.version_sep, ",")?,
                versions,
            }
        }
    })
}

fn window(field: &str, v: Option<u64>, default: i64) -> Result<i64, SchemeError> {
    match v {
        None => Ok(default),
        Some(v) if v <= MAX_WINDOW => Ok(v as i64),
        Some(_) => err(field, format!("must be at most {MAX_WINDOW} seconds")),
    }
}

fn timestamp(raw: Option<RawTimestamp>, kv_key: bool, tolerance: i64) -> Result<Option<TimestampSpec>, SchemeError> {
    let Some(t) = raw else {
        return Ok(kv_key.then_some(TimestampSpec {
            at: TimestampAt::Kv,
            unit: TimeUnit::S,
            max_age: tolerance,
            max_future: tolerance,
        }));
    };
    if let Some(claim) = t.claim {
        if t.kv.is_some() || t.header.is_some() || t.query.is_some() || t.json.is_some() || claim.is_empty() {
            return err("timestamp.claim", "give a claim name alone");
        }
        return Ok(Some(TimestampSpec {
            at: TimestampAt::Claim(claim),
            unit: TimeUnit::S,
            max_age: window("timestamp.max_age", t.max_age, tolerance)?,
            max_future: window("timestamp.max_future", t.max_future, tolerance)?,
        }));
    }
    let at = match (t.kv.unwrap_or(false), location("timestamp", t.header, t.query, t.json)?) {
        (true, None) if kv_key => TimestampAt::Kv,
        (true, None) => return err("timestamp.kv", "needs signature.kv.timestamp_key"),
        (false, Some(l)) => TimestampAt::At(l),
        (false, None) if kv_key => TimestampAt::Kv,
        (false, None) => return err("timestamp", "needs one of header, query, json or kv"),
        (true, Some(_)) => return err("timestamp", "give kv or a location, not both"),
    };
    Ok(Some(TimestampSpec {
        at,
        unit: t.unit.unwrap_or(TimeUnit::S),
        max_age: window("timestamp.max_age", t.max_age, tolerance)?,
        max_future: window("timestamp.max_future", t.max_future, tolerance)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_into_tokens() {
        assert_eq!(
            template("v0:{timestamp}:{body}").unwrap(),
            vec![Token::Literal("v0:".into()), Token::Timestamp, Token::Literal(":".into()), Token::Body]
        );
        assert_eq!(template("{header:X-A}").unwrap(), vec![Token::Header("x-a".into())]);
        assert_eq!(template("{nope}").unwrap_err().field, "signed");
        assert!(template("{body").is_err());
        assert!(template("{body}{body}").is_err());
    }

    #[test]
    fn errors_name_the_field() {
        let raw: RawScheme = serde_json::from_value(serde_json::json!({
            "algorithm": "hmac-sha256", "signature": {"header": "x-s", "format": "prefixed"}
        }))
        .unwrap();
        assert_eq!(compile("custom", raw, 300).unwrap_err().field, "signature.prefix");
        let raw: RawScheme = serde_json::from_value(serde_json::json!({
            "algorithm": "hmac-sha256", "signature": {"header": "x-s"}, "signed": "{timestamp}.{body}"
        }))
        .unwrap();
        assert_eq!(compile("custom", raw, 300).unwrap_err().field, "signed");
        let raw: RawScheme = serde_json::from_value(serde_json::json!({
            "algorithm": "hmac-sha1", "signature": {"header": "x-s"}, "handshake": "zoom_url_validation"
        }))
        .unwrap();
        assert_eq!(compile("custom", raw, 300).unwrap_err().field, "handshake");
        let raw: RawScheme = serde_json::from_value(serde_json::json!({
            "algorithm": "hmac-sha256", "signature": {"header": "x-s", "query": "s"}
        }))
        .unwrap();
        assert_eq!(compile("custom", raw, 300).unwrap_err().field, "signature");
    }
}
