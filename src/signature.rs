//! Signature schemes (`source:` profiles) and constant-time verification.
//!
//! Every scheme reduces to the same shape: HMAC-SHA256 over
//! `signed_prefix || raw_body`, compared against one or more candidate tags
//! taken from the request headers.

use hmac::Mac;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::error::Reject;
use crate::headers::Headers;
use crate::secrets::Secret;

pub const COMBO_SIGNATURE: &str = "x-combo-signature";
pub const COMBO_TIMESTAMP: &str = "x-combo-timestamp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    GenericWebhook,
}

/// What a request claims, parsed from its headers before the body is read.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub timestamp: Option<i64>,
    /// Candidate tags; any one matching verifies the delivery.
    candidates: Vec<[u8; 32]>,
    /// Bytes hashed before the raw body (`"{ts}."` for the generic scheme).
    signed_prefix: Vec<u8>,
    /// Provider delivery id, else derived from the signature header.
    pub delivery_id: String,
}

impl Profile {
    pub const NAMES: &'static [&'static str] = &["generic_webhook"];

    pub fn parse(name: &str) -> Option<Profile> {
        match name {
            "generic_webhook" => Some(Profile::GenericWebhook),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::GenericWebhook => "generic_webhook",
        }
    }

    /// HMAC key bytes for a configured secret string.
    pub fn key_bytes(self, secret: &str) -> Result<Vec<u8>, String> {
        match self {
            Profile::GenericWebhook => Ok(secret.as_bytes().to_vec()),
        }
    }

    /// Headers that carry signature material; kept out of template contexts.
    pub fn signature_headers(self) -> &'static [&'static str] {
        match self {
            Profile::GenericWebhook => &[COMBO_SIGNATURE],
        }
    }

    /// Reads and checks the signature headers (presence first, then form).
    pub fn credentials(self, headers: &Headers) -> Result<Credentials, Reject> {
        match self {
            Profile::GenericWebhook => generic_credentials(headers),
        }
    }
}

fn generic_credentials(headers: &Headers) -> Result<Credentials, Reject> {
    let sig = headers.single(COMBO_SIGNATURE);
    let ts = headers.single(COMBO_TIMESTAMP);
    if matches!(sig, Ok(None)) {
        return Err(Reject::MissingSignature);
    }
    if matches!(ts, Ok(None)) {
        return Err(Reject::MissingTimestamp);
    }
    let sig = sig.ok().flatten().ok_or(Reject::MalformedSignature)?;
    let ts = ts.ok().flatten().ok_or(Reject::MalformedTimestamp)?;
    let tag = sig
        .strip_prefix("sha256=")
        .and_then(decode_hex32)
        .ok_or(Reject::MalformedSignature)?;
    let timestamp = parse_unix_seconds(ts).ok_or(Reject::MalformedTimestamp)?;
    let mut signed_prefix = ts.as_bytes().to_vec();
    signed_prefix.push(b'.');
    Ok(Credentials {
        timestamp: Some(timestamp),
        candidates: vec![tag],
        signed_prefix,
        delivery_id: hashed_delivery_id(sig),
    })
}

/// Decimal unix seconds: digits only, no sign, at most 12 of them.
pub fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// The first 32 hex digits of SHA-256 of the signature header.
pub fn hashed_delivery_id(signature_header: &str) -> String {
    let digest = Sha256::digest(signature_header.as_bytes());
    hex::encode(&digest[..16])
}

/// Lowercase hex HMAC-SHA256 of `timestamp + "." + body`: the platform's own
/// scheme, used for signing (CLI, outbound).
pub fn sign_generic(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    let mut mac = secret.mac();
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Credentials {
    /// The first secret valid at `now` whose tag matches, compared in constant time.
    pub fn verify<'s>(&self, body: &[u8], secrets: &'s [Secret], now: i64) -> Option<&'s Secret> {
        secrets.iter().filter(|s| s.valid_at(now)).find(|secret| {
            let mut mac = secret.mac();
            mac.update(&self.signed_prefix);
            mac.update(body);
            let tag = mac.finalize().into_bytes();
            let hit = self
                .candidates
                .iter()
                .fold(Choice::from(0), |acc, c| acc | tag.as_slice().ct_eq(c.as_slice()));
            bool::from(hit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(id: &str, v: &str) -> Secret {
        Secret::new(id.into(), v.as_bytes(), None, None)
    }

    fn generic_headers(sig: &str, ts: &str) -> Headers {
        Headers::from_pairs([(COMBO_SIGNATURE, sig), (COMBO_TIMESTAMP, ts)])
    }

    // Reference value computed independently with Python's hmac module:
    // hmac.new(b"s3cr3t", b'1700000000.{"a":1}', "sha256").hexdigest()
    const VECTOR: &str = "sha256=8dbbbbf4523b10bbb793e74d854144c45acccc2d233667b1c06b805b6ded8a84";

    #[test]
    fn sign_then_verify_round_trip() {
        let s = secret("k", "s3cr3t");
        let sig = sign_generic(&s, 1_700_000_000, br#"{"a":1}"#);
        let creds = Profile::GenericWebhook
            .credentials(&generic_headers(&sig, "1700000000"))
            .unwrap();
        assert_eq!(creds.timestamp, Some(1_700_000_000));
        let keys = [s];
        assert!(creds.verify(br#"{"a":1}"#, &keys, 0).is_some());
        assert!(creds.verify(br#"{"a":2}"#, &keys, 0).is_none());
        assert!(creds.verify(br#"{"a":1} "#, &keys, 0).is_none());
    }

    #[test]
    fn known_vector() {
        let s = secret("k", "s3cr3t");
        assert_eq!(sign_generic(&s, 1_700_000_000, br#"{"a":1}"#), VECTOR);
    }

    #[test]
    fn tries_every_valid_secret_and_reports_which() {
        let old = Secret::new("old".into(), b"old", None, Some(100));
        let new = secret("new", "new");
        let sig = sign_generic(&old, 5, b"{}");
        let creds = Profile::GenericWebhook.credentials(&generic_headers(&sig, "5")).unwrap();
        let keys = [new, old];
        assert_eq!(creds.verify(b"{}", &keys, 50).unwrap().key_id, "old");
        assert!(creds.verify(b"{}", &keys, 101).is_none(), "expired secret must not verify");
    }

    #[test]
    fn header_errors_in_spec_order() {
        let h = Headers::from_pairs([(COMBO_TIMESTAMP, "1")]);
        assert_eq!(Profile::GenericWebhook.credentials(&h).unwrap_err(), Reject::MissingSignature);
        let h = Headers::from_pairs([(COMBO_SIGNATURE, "nonsense")]);
        assert_eq!(Profile::GenericWebhook.credentials(&h).unwrap_err(), Reject::MissingTimestamp);
        for bad in ["nonsense", "sha256=abc", "sha1=00", &format!("sha256={}", "g".repeat(64))] {
            let h = generic_headers(bad, "1");
            assert_eq!(Profile::GenericWebhook.credentials(&h).unwrap_err(), Reject::MalformedSignature);
        }
        for bad in ["-1", "1.5", "", "12a", "9999999999999"] {
            let h = generic_headers(VECTOR, bad);
            assert_eq!(Profile::GenericWebhook.credentials(&h).unwrap_err(), Reject::MalformedTimestamp, "{bad}");
        }
        let h = Headers::from_pairs([(COMBO_SIGNATURE, VECTOR), (COMBO_SIGNATURE, VECTOR), (COMBO_TIMESTAMP, "1")]);
        assert_eq!(Profile::GenericWebhook.credentials(&h).unwrap_err(), Reject::MalformedSignature);
        let h = Headers::from_pairs([(COMBO_SIGNATURE, VECTOR), (COMBO_TIMESTAMP, "1"), (COMBO_TIMESTAMP, "2")]);
        assert_eq!(Profile::GenericWebhook.credentials(&h).unwrap_err(), Reject::MalformedTimestamp);
    }

    #[test]
    fn delivery_id_is_32_hex_of_sha256_of_header() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(hashed_delivery_id("abc"), "ba7816bf8f01cfea414140de5dae2223");
    }
}
