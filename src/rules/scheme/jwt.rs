//! A JWT in the signature's place (Plaid's `Plaid-Verification`): its `alg`
//! is the scheme's, never the token's; its `kid` picks the published key;
//! its claims are checked once the signature holds: `iat` (as the
//! timestamp), `exp`, and a claim with the body's SHA-256 (what makes the
//! signature cover the body).

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::published::MAX_KID;
use super::{wire, Algorithm};
use crate::contract::error::Reject;

/// Longest JWT read.
const MAX_JWT: usize = 8 * 1024;

/// The parts of a JWT the scheme reads.
#[derive(Debug, Clone, Default)]
pub struct Jwt {
    /// `header.payload`, as sent: what the signature covers.
    pub signing_input: String,
    pub claims: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// What a JWT carries: the token, its `kid`, and its signature (DER for
/// ES256, as the P-256 key verifies it).
pub fn read(text: &str, algorithm: Algorithm) -> Result<(Jwt, Option<String>, Vec<u8>), Reject> {
    let expected = algorithm.jwt_alg().ok_or(Reject::MalformedSignature)?;
    let text = text.trim();
    if text.len() > MAX_JWT {
        return Err(Reject::MalformedSignature);
    }
    let mut parts = text.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Reject::MalformedSignature);
    };
    let decode = |part: &str| wire::decode_base64url(part).ok_or(Reject::MalformedSignature);
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| Reject::MalformedSignature)?;
    // The algorithm is the scheme's: a token naming another (`none`, HS256
    // keyed with a public key) is refused before anything is verified.
    if header.alg != expected || header.crit.is_some() {
        return Err(Reject::MalformedSignature);
    }
    let kid = match header.kid {
        Some(k) if k.is_empty() || k.len() > MAX_KID || !k.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(Reject::MalformedSignature)
        }
        k => k,
    };
    let claims = serde_json::from_slice(&decode(p)?).map_err(|_| Reject::MalformedSignature)?;
    let raw = decode(s)?;
    let signature = match algorithm {
        Algorithm::JwtEs256 => p256::ecdsa::Signature::from_slice(&raw)
            .map_err(|_| Reject::MalformedSignature)?
            .to_der()
            .as_bytes()
            .to_vec(),
        _ => raw,
    };
    Ok((Jwt { signing_input: format!("{h}.{p}"), claims }, kid, signature))
}

impl Jwt {
    /// A claim that is a non-negative integer, as text (`iat`).
    pub fn number(&self, name: &str) -> Option<String> {
        self.claims.get(name).and_then(|v| v.as_u64()).map(|n| n.to_string())
    }

    /// Once the signature holds: `exp` not passed, and the body claim (if
    /// the scheme names one) the body's SHA-256 in hex.
    pub fn holds(&self, body_claim: Option<&str>, body_sha256: &[u8; 32], now: i64) -> Result<(), Reject> {
        if let Some(exp) = self.claims.get("exp") {
            if exp.as_i64().is_none_or(|exp| exp <= now) {
                return Err(Reject::TimestampOutOfTolerance);
            }
        }
        if let Some(name) = body_claim {
            let sent = self.claims.get(name).and_then(|v| v.as_str()).and_then(|s| hex::decode(s).ok());
            let same = sent.is_some_and(|s| bool::from(s.as_slice().ct_eq(body_sha256.as_slice())));
            if !same {
                return Err(Reject::SignatureMismatch);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(v: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn the_algorithm_is_the_schemes() {
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 64]);
        let payload = b64(&serde_json::json!({"iat": 1}));
        for (alg, ok) in [("ES256", true), ("none", false), ("HS256", false), ("RS256", false), ("es256", false)] {
            let header = b64(&serde_json::json!({"alg": alg, "kid": "k1"}));
            let got = read(&format!("{header}.{payload}.{sig}"), Algorithm::JwtEs256);
            assert_eq!(got.is_ok(), ok, "{alg}");
        }
        let crit = b64(&serde_json::json!({"alg": "ES256", "crit": ["x"]}));
        assert!(read(&format!("{crit}.{payload}.{sig}"), Algorithm::JwtEs256).is_err(), "crit is refused");
        assert!(read("a.b", Algorithm::JwtEs256).is_err());
        assert!(read("a.b.c.d", Algorithm::JwtEs256).is_err());
    }

    #[test]
    fn claims_hold_after_the_signature() {
        let digest = [7u8; 32];
        let jwt = |claims: serde_json::Value| Jwt {
            signing_input: String::new(),
            claims: claims.as_object().unwrap().clone(),
        };
        let good = jwt(serde_json::json!({"iat": 100, "request_body_sha256": hex::encode(digest)}));
        assert_eq!(good.holds(Some("request_body_sha256"), &digest, 100), Ok(()));
        assert_eq!(good.number("iat").as_deref(), Some("100"));
        assert_eq!(good.holds(Some("request_body_sha256"), &[8; 32], 100), Err(Reject::SignatureMismatch));
        assert_eq!(
            jwt(serde_json::json!({})).holds(Some("request_body_sha256"), &digest, 100),
            Err(Reject::SignatureMismatch)
        );
        let expired = jwt(serde_json::json!({"exp": 100}));
        assert_eq!(expired.holds(None, &digest, 100), Err(Reject::TimestampOutOfTolerance));
        assert_eq!(expired.holds(None, &digest, 99), Ok(()));
    }
}
