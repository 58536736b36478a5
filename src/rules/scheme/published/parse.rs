//! A key server's answer read into verifying keys: a PEM certificate's
//! subject key, a JWKS or one JWK. Bounded: the answer's size, the number
//! of keys, RSA moduli of 2048 to 4096 bits.

use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde::Deserialize;
use sha2::Digest;

use super::{KeyFormat, MAX_KID};
use crate::rules::scheme::keys::KeyMaterial;
use crate::rules::scheme::{wire, Algorithm};

/// Largest answer read.
pub const MAX_ANSWER: usize = 64 * 1024;
/// Most keys one JWKS contributes.
const MAX_KEYS: usize = 16;

/// The keys an answer holds, each with its `kid` (a certificate has none).
/// `None`: the answer holds no usable key (or is expired, or too large).
pub fn keys_from(
    format: KeyFormat,
    jwk_at: Option<&str>,
    body: &[u8],
    now: i64,
) -> Option<Vec<(Option<String>, KeyMaterial)>> {
    if body.len() > MAX_ANSWER {
        return None;
    }
    let keys = match format {
        KeyFormat::Certificate => vec![(None, certificate(body, now)?)],
        KeyFormat::Jwks => {
            let set: JwkSet = serde_json::from_slice(body).ok()?;
            set.keys.iter().take(MAX_KEYS).filter_map(|k| Some((k.kid.clone(), jwk(k)?))).collect()
        }
        KeyFormat::Jwk => {
            let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
            let at = match jwk_at {
                Some(p) => doc.pointer(p)?,
                None => &doc,
            };
            let k: Jwk = serde_json::from_value(at.clone()).ok()?;
            vec![(k.kid.clone(), jwk(&k)?)]
        }
    };
    let usable =
        keys.into_iter().filter(|(kid, _)| kid.as_ref().is_none_or(|k| k.len() <= MAX_KID)).collect::<Vec<_>>();
    (!usable.is_empty()).then_some(usable)
}

/// The subject public key of a PEM certificate valid at `now`. Its chain is
/// not walked: the certificate is trusted because it came over TLS from a
/// pinned host, as the providers' SDKs trust it.
fn certificate(pem: &[u8], now: i64) -> Option<KeyMaterial> {
    use x509_cert::der::{DecodePem, Encode};
    let cert = x509_cert::Certificate::from_pem(pem).ok()?;
    let validity = &cert.tbs_certificate.validity;
    let not_before = validity.not_before.to_unix_duration().as_secs() as i64;
    let not_after = validity.not_after.to_unix_duration().as_secs() as i64;
    if now < not_before || now > not_after {
        return None;
    }
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
    if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(&spki) {
        return rsa_size_ok(&k).then(|| KeyMaterial::Rsa(Box::new(k)));
    }
    p256::ecdsa::VerifyingKey::from_public_key_der(&spki).ok().map(KeyMaterial::P256)
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

fn jwk(k: &Jwk) -> Option<KeyMaterial> {
    let b64 = |s: &Option<String>| s.as_deref().and_then(wire::decode_base64url);
    match (k.kty.as_str(), k.crv.as_deref()) {
        ("EC", Some("P-256")) => {
            let (x, y) = (b64(&k.x)?, b64(&k.y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let point = p256::EncodedPoint::from_affine_coordinates(
                p256::FieldBytes::from_slice(&x),
                p256::FieldBytes::from_slice(&y),
                false,
            );
            p256::ecdsa::VerifyingKey::from_encoded_point(&point).ok().map(KeyMaterial::P256)
        }
        ("RSA", _) => {
            let n = rsa::BigUint::from_bytes_be(&b64(&k.n)?);
            let e = rsa::BigUint::from_bytes_be(&b64(&k.e)?);
            let key = rsa::RsaPublicKey::new(n, e).ok()?;
            rsa_size_ok(&key).then(|| KeyMaterial::Rsa(Box::new(key)))
        }
        _ => None,
    }
}

/// 2048 to 4096 bits: a smaller key is forgeable, a larger one is work a
/// key server could make the edge do on every delivery.
pub fn rsa_size_ok(key: &rsa::RsaPublicKey) -> bool {
    (2048..=4096).contains(&(key.size() * 8))
}

/// PKCS#1 v1.5 under the algorithm's hash.
pub fn rsa_verifies(key: &rsa::RsaPublicKey, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
    match algorithm {
        Algorithm::RsaSha1 => {
            key.verify(rsa::Pkcs1v15Sign::new::<sha1::Sha1>(), &sha1::Sha1::digest(message), signature).is_ok()
        }
        Algorithm::RsaSha256 | Algorithm::JwtRs256 => {
            key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &sha2::Sha256::digest(message), signature).is_ok()
        }
        _ => false,
    }
}
