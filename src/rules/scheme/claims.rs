//! What a request claims about itself: the signature candidates, the
//! timestamp and the delivery id, read from the request line and headers
//! before the body is buffered, and from the body for schemes that sign
//! inside it. Presence is checked before form (docs "Order of checks and answers").

use super::body_field::{text_at, texts_at};
use super::wire::{self, Query};
use super::{decode_signature, IdSpec, Location, Scheme, TimeUnit, TimestampAt, TimestampSpec, Token, MAX_CANDIDATES};
use crate::contract::error::Reject;
use crate::host::Headers;

/// A timestamp as sent (the signed template uses the text) and as unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub text: String,
    pub unix: i64,
}

/// What a request claims about itself, read from the request line, headers
/// and (for JSON-located fields) the body.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub(super) candidates: Vec<Vec<u8>>,
    /// Every candidate must verify, not one: the token of each element of
    /// a batch (a `*` pointer, Graph's `/value/*/clientState`). A signing
    /// scheme's `*` pointer (Adyen) admits a batch of one item only.
    pub(super) every: bool,
    /// The algorithm a body field names (SNS `SignatureVersion`).
    pub(super) algorithm: Option<super::Algorithm>,
    /// Where the sender says its key is (a published key's URL).
    pub(super) key_url: Option<String>,
    /// Which of the sender's keys (a JWT's `kid`).
    pub(super) kid: Option<String>,
    pub(super) jwt: Option<super::jwt::Jwt>,
    pub timestamp: Option<Stamp>,
    pub(super) id: Option<String>,
}

impl Scheme {
    /// Whether any field lives in the body (read after buffering); at
    /// configure time, into `reads_body`.
    pub(super) fn reads_json(&self) -> bool {
        let json = |l: &Location| matches!(l, Location::Json(_));
        self.algorithm_from.is_some()
            || self.signed.iter().any(|t| matches!(t, Token::Json(_) | Token::JsonLines(_)))
            || matches!(self.key_url_at(), Some(Location::Json(_)))
            || json(&self.signature_at)
            || matches!(&self.timestamp, Some(TimestampSpec { at: TimestampAt::At(l), .. }) if json(l))
            || self.id.as_ref().is_some_and(|i| json(&i.at))
    }

    /// Reads the claims the request line and headers carry: presence of
    /// signature and timestamp first, then their form (docs "Order of checks and answers").
    pub fn read_head(&self, headers: &Headers) -> Result<Credentials, Reject> {
        let query = Query::of(headers);
        let sig = match &self.signature_at {
            Location::Json(_) => None,
            at => Some(wire::values(at, headers, &query)),
        };
        if matches!(&sig, Some(Ok(v)) if v.is_empty()) {
            return Err(Reject::MissingSignature);
        }
        let ts_spec = self.timestamp.as_ref();
        let ts = ts_spec.and_then(|t| match &t.at {
            TimestampAt::At(Location::Json(_)) | TimestampAt::Kv | TimestampAt::Claim(_) => None,
            TimestampAt::At(at) => Some(wire::single(at, headers, &query)),
        });
        if matches!(ts, Some(Ok(None))) {
            return Err(Reject::MissingTimestamp);
        }
        // A signed header sent twice: the signature would cover the first
        // value while the backend sees both.
        for t in &self.signed {
            if let Token::Header(name) = t {
                headers.single(name).map_err(|_| Reject::MalformedSignature)?;
            }
        }
        let mut creds = Credentials::default();
        let mut stamp_text = match ts {
            Some(Ok(text)) => text,
            Some(Err(_)) => return Err(Reject::MalformedTimestamp),
            None => None,
        };
        if let Some(at @ Location::Headers(_)) = self.key_url_at() {
            creds.key_url = wire::single(at, headers, &query).map_err(|_| Reject::MalformedSignature)?;
        }
        if let (Some(values), Some(_)) = (&sig, self.algorithm.jwt_alg()) {
            let values = values.as_ref().map_err(|_| Reject::MalformedSignature)?;
            let [token] = values.as_slice() else { return Err(Reject::MalformedSignature) };
            let (jwt, kid, signature) = super::jwt::read(token, self.algorithm)?;
            if let Some(TimestampSpec { at: TimestampAt::Claim(name), unit, .. }) = ts_spec {
                let text = jwt.number(name).ok_or(Reject::MissingTimestamp)?;
                creds.timestamp = Some(parse_stamp(&text, *unit)?);
            }
            creds.candidates = vec![signature];
            creds.kid = kid;
            creds.jwt = Some(jwt);
        } else if let Some(values) = sig {
            let values = values.map_err(|_| Reject::MalformedSignature)?;
            let parsed = wire::split(&self.format, &values)?;
            if parsed.signatures.is_empty() {
                return Err(Reject::MissingSignature);
            }
            if ts_spec.is_some_and(|t| t.at == TimestampAt::Kv) {
                stamp_text = Some(parsed.timestamp.ok_or(Reject::MissingTimestamp)?);
            }
            creds.candidates = self.decode_all(&parsed.signatures)?;
        }
        if let (Some(spec), Some(text)) = (ts_spec, stamp_text) {
            creds.timestamp = Some(parse_stamp(&text, spec.unit)?);
        }
        if let Some(id) = &self.id {
            if !matches!(id.at, Location::Json(_)) {
                creds.id = wire::single(&id.at, headers, &query).map_err(|_| Reject::MalformedSignature)?;
                if creds.id.is_none() && self.signed.contains(&Token::Id) {
                    return Err(Reject::MissingSignature);
                }
            }
        }
        Ok(creds)
    }

    fn decode_all(&self, texts: &[String]) -> Result<Vec<Vec<u8>>, Reject> {
        let len = self.algorithm.signature_len();
        let usable: Vec<Vec<u8>> = texts
            .iter()
            .filter_map(|t| decode_signature(t, self.encoding))
            .filter(|b| len.is_none_or(|n| b.len() == n) && !b.is_empty())
            .take(MAX_CANDIDATES)
            .collect();
        if usable.is_empty() {
            return Err(Reject::MalformedSignature);
        }
        Ok(usable)
    }

    /// Completes the claims from an unverified body, with bounded work: a
    /// JSON field is found by a scan that keeps nothing else (`body_field`).
    pub fn read_body(&self, creds: &mut Credentials, body: &[u8]) -> Result<(), Reject> {
        if !self.reads_body {
            return Ok(());
        }
        // Fields signed without the body: a key sent twice is read once here
        // and otherwise by the backend (docs "What the signature must cover").
        if self.unique_keys && super::body_field::repeats_a_key(body) {
            return Err(Reject::InvalidJson);
        }
        if let Some((ptr, values)) = &self.algorithm_from {
            let named = text_at(body, ptr).ok_or(Reject::MissingSignature)?;
            let found = values.iter().find(|(v, _)| *v == named).map(|(_, a)| *a);
            creds.algorithm = Some(found.ok_or(Reject::MalformedSignature)?);
        }
        if let Some(Location::Json(ptr)) = self.key_url_at() {
            creds.key_url = Some(text_at(body, ptr).ok_or(Reject::MissingSignature)?);
        }
        if let Location::Json(ptr) = &self.signature_at {
            if each(ptr) {
                let texts = texts_at(body, ptr).ok_or(Reject::MissingSignature)?;
                let decoded: Option<Vec<Vec<u8>>> =
                    texts.iter().map(|t| decode_signature(t, self.encoding).filter(|b| !b.is_empty())).collect();
                creds.candidates = decoded.ok_or(Reject::MalformedSignature)?;
                creds.every = true;
                // A signature covers its own item's fields; a second item
                // would reach the backend unverified.
                if self.algorithm != super::Algorithm::Token && creds.candidates.len() != 1 {
                    return Err(Reject::MalformedSignature);
                }
            } else {
                let text = text_at(body, ptr).ok_or(Reject::MissingSignature)?;
                creds.candidates = self.decode_all(&[text])?;
            }
        }
        if let Some(TimestampSpec { at: TimestampAt::At(Location::Json(ptr)), unit, .. }) = &self.timestamp {
            let text = text_at(body, ptr).ok_or(Reject::MissingTimestamp)?;
            creds.timestamp = Some(parse_stamp(&text, *unit)?);
        }
        if let Some(IdSpec { at: Location::Json(ptr), .. }) = &self.id {
            creds.id = text_at(body, ptr);
            if creds.id.is_none() && self.signed.contains(&Token::Id) {
                return Err(Reject::MissingSignature);
            }
        }
        Ok(())
    }

    /// Where the request names its key's URL (a published key).
    fn key_url_at(&self) -> Option<&Location> {
        match &self.key_source.as_ref()?.url {
            super::published::UrlAt::Sent { at, .. } => Some(at),
            super::published::UrlAt::Fixed(_) => None,
        }
    }

    /// Once the signature holds: a JWT's claims (`exp`, the body's
    /// digest), and the signed sender among the accepted ones.
    pub fn claims_hold(
        &self,
        creds: &Credentials,
        body: &[u8],
        body_sha256: &[u8; 32],
        now: i64,
    ) -> Result<(), Reject> {
        if let Some(jwt) = &creds.jwt {
            jwt.holds(self.jwt_body_claim.as_deref(), body_sha256, now)?;
        }
        if let Some((ptr, accepted)) = &self.sender {
            let sent = super::body_field::value_at(body, ptr);
            if !sent.is_some_and(|s| accepted.as_ref().is_some_and(|a| a.contains(&s))) {
                return Err(Reject::SenderNotAllowed);
            }
        }
        Ok(())
    }

    /// A token scheme whose token travels in the body (Microsoft Graph's
    /// `clientState`): its body is digested with the token blanked.
    pub fn token_in_body(&self) -> bool {
        self.algorithm == super::Algorithm::Token && matches!(self.signature_at, Location::Json(_))
    }

    /// The body with every copy of the claimed token replaced by `*`s, as
    /// text (a body that is not UTF-8 is never a JSON delivery anyway): an
    /// unsalted digest of a body with a guessable shape would give the token
    /// to anyone holding the digest and a word list.
    pub fn without_token(&self, creds: &Credentials, body: &[u8]) -> Vec<u8> {
        let mut text = String::from_utf8_lossy(body).into_owned();
        for token in creds.candidates.iter().filter_map(|c| std::str::from_utf8(c).ok()).filter(|t| !t.is_empty()) {
            text = text.replace(token, &"*".repeat(token.len()));
        }
        text.into_bytes()
    }

    /// Whether the timestamp lies in `[now - max_age, now + max_future]`.
    pub fn timestamp_holds(&self, creds: &Credentials, now: i64) -> bool {
        match (&self.timestamp, &creds.timestamp) {
            (Some(spec), Some(stamp)) => {
                stamp.unix >= now.saturating_sub(spec.max_age) && stamp.unix <= now.saturating_add(spec.max_future)
            }
            _ => true,
        }
    }
}

/// A pointer with a `*` token: every element of an array.
pub(super) fn each(pointer: &str) -> bool {
    pointer.split('/').any(|t| t == "*")
}

/// RFC 3339 in unix seconds. humantime reads `Z` (and `+00:00`); another
/// numeric offset (Box: `2020-01-01T00:00:00-07:00`) is applied here.
fn rfc3339(text: &str) -> Option<i64> {
    let unix = |t: &str| {
        let d = humantime::parse_rfc3339(t).ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
        i64::try_from(d.as_secs()).ok()
    };
    if let Some(u) = unix(text) {
        return Some(u);
    }
    let (base, offset) = text.split_at(text.len().checked_sub(6)?);
    let (sign, hh_mm) = match offset.as_bytes().first()? {
        b'+' => (1, &offset[1..]),
        b'-' => (-1, &offset[1..]),
        _ => return None,
    };
    let (hh, mm) = hh_mm.split_once(':')?;
    let digits = |s: &str, max: i64| {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<i64>().ok())
            .flatten()
            .filter(|v| *v <= max)
    };
    let seconds = digits(hh, 23)? * 3600 + digits(mm, 59)? * 60;
    Some(unix(&format!("{base}Z"))? - sign * seconds)
}

/// A timestamp in its unit; anything else is `malformed_timestamp`.
pub fn parse_stamp(text: &str, unit: TimeUnit) -> Result<Stamp, Reject> {
    let digits = |max: usize| {
        (!text.is_empty() && text.len() <= max && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<i64>().ok())
            .flatten()
    };
    let unix = match unit {
        TimeUnit::S => digits(12),
        TimeUnit::Ms => digits(15).map(|ms| ms / 1000),
        TimeUnit::Rfc3339 => (text.len() <= 40).then(|| rfc3339(text)).flatten(),
    };
    unix.map(|unix| Stamp { text: text.to_string(), unix }).ok_or(Reject::MalformedTimestamp)
}
