//! Keys with rotation windows (`not_before` / `not_after`, unix seconds):
//! HMAC secrets keyed once at configure time, public keys for the
//! asymmetric schemes (the edge then holds no signing secret), tokens.

use std::borrow::Cow;

use ed25519_dalek::pkcs8::DecodePublicKey;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::{wire, Algorithm, SecretEncoding};

/// One key of a trigger or subscription.
#[derive(Clone)]
pub struct Key {
    /// `id`, or the key's index in its list when it has none.
    pub key_id: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub material: KeyMaterial,
}

/// What verifies: an HMAC state (the key schedule done once), a public
/// key, or the digest of a token.
#[derive(Clone)]
pub enum KeyMaterial {
    HmacSha1(Hmac<Sha1>),
    HmacSha256(Hmac<Sha256>),
    HmacSha512(Hmac<Sha512>),
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    /// RSA, PKCS#1 v1.5; the hash is the scheme's (SHA-1 or SHA-256).
    Rsa(Box<rsa::RsaPublicKey>),
    /// SHA-256 of the token: compared digest to digest, so neither the
    /// token's bytes nor its length leak through timing.
    Token([u8; 32]),
}

// Never print key material, even in debug output.
impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("key_id", &self.key_id)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Why a configured key cannot be used; the text never quotes the key.
pub type KeyError = &'static str;

impl KeyMaterial {
    /// The verifying material for a configured secret (symmetric schemes).
    pub fn secret(algorithm: Algorithm, text: &str, encoding: SecretEncoding) -> Result<KeyMaterial, KeyError> {
        let bytes: Vec<u8> = match encoding {
            SecretEncoding::Utf8 => text.as_bytes().to_vec(),
            SecretEncoding::Base64 => wire::decode_base64(text).ok_or("is not base64 (secret_encoding: base64)")?,
            SecretEncoding::Hex => hex::decode(text.trim()).map_err(|_| "is not hex (secret_encoding: hex)")?,
            SecretEncoding::Whsec => wire::decode_base64(text.strip_prefix("whsec_").unwrap_or(text))
                .ok_or("is not whsec_ followed by base64 (secret_encoding: whsec)")?,
        };
        if bytes.is_empty() {
            return Err("is empty");
        }
        // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
        let bad = |_| "cannot key the HMAC";
        Ok(match algorithm {
            Algorithm::HmacSha1 => KeyMaterial::HmacSha1(Hmac::new_from_slice(&bytes).map_err(bad)?),
            Algorithm::HmacSha256 => KeyMaterial::HmacSha256(Hmac::new_from_slice(&bytes).map_err(bad)?),
            Algorithm::HmacSha512 => KeyMaterial::HmacSha512(Hmac::new_from_slice(&bytes).map_err(bad)?),
            Algorithm::Token => KeyMaterial::Token(Sha256::digest(&bytes).into()),
            _ => return Err("is a secret; this scheme takes public_key"),
        })
    }

    /// A public key: Ed25519 as `whpk_<base64>`, 64 hex digits, base64 or
    /// PEM; P-256 as PEM, base64 of the SubjectPublicKeyInfo or of the point.
    pub fn public(algorithm: Algorithm, text: &str) -> Result<KeyMaterial, KeyError> {
        let text = text.trim();
        let pem = text.starts_with("-----BEGIN");
        match algorithm {
            Algorithm::Ed25519 => {
                if pem {
                    return ed25519_dalek::VerifyingKey::from_public_key_pem(text)
                        .map(KeyMaterial::Ed25519)
                        .map_err(|_| "is not an Ed25519 public key in PEM");
                }
                let bytes = match text.strip_prefix("whpk_") {
                    Some(b64) => wire::decode_base64(b64),
                    None if text.len() == 64 => hex::decode(text).ok(),
                    None => wire::decode_base64(text),
                }
                .ok_or("is not an Ed25519 public key (whpk_, hex or base64)")?;
                let raw: [u8; 32] = match bytes.len() {
                    32 => bytes.try_into().map_err(|_| "is not 32 bytes")?,
                    _ => {
                        return ed25519_dalek::VerifyingKey::from_public_key_der(&bytes)
                            .map(KeyMaterial::Ed25519)
                            .map_err(|_| "is not an Ed25519 public key (32 bytes or DER)")
                    }
                };
                ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .map(KeyMaterial::Ed25519)
                    .map_err(|_| "is not a valid Ed25519 point")
            }
            Algorithm::RsaSha1 | Algorithm::RsaSha256 | Algorithm::JwtRs256 => {
                use rsa::pkcs8::DecodePublicKey as _;
                let der = if pem { None } else { wire::decode_base64(text) };
                let key = match der {
                    Some(der) => rsa::RsaPublicKey::from_public_key_der(&der).ok(),
                    None => rsa::RsaPublicKey::from_public_key_pem(text).ok(),
                };
                key.filter(super::published::rsa_size_ok)
                    .map(|k| KeyMaterial::Rsa(Box::new(k)))
                    .ok_or("is not an RSA public key of 2048 to 4096 bits (SubjectPublicKeyInfo, PEM or base64)")
            }
            Algorithm::EcdsaP256Sha256 | Algorithm::JwtEs256 => {
                if pem {
                    return p256::ecdsa::VerifyingKey::from_public_key_pem(text)
                        .map(KeyMaterial::P256)
                        .map_err(|_| "is not a P-256 public key in PEM");
                }
                let bytes = wire::decode_base64(text).ok_or("is not a P-256 public key (PEM or base64)")?;
                p256::ecdsa::VerifyingKey::from_public_key_der(&bytes)
                    .or_else(|_| p256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes))
                    .map(KeyMaterial::P256)
                    .map_err(|_| "is not a P-256 public key (SubjectPublicKeyInfo or SEC1 point)")
            }
            _ => Err("is a public key; this scheme takes a secret"),
        }
    }

    /// HMAC tag of the message pieces; `None` for other materials.
    pub fn tag(&self, message: &[Cow<'_, [u8]>]) -> Option<Vec<u8>> {
        fn run<M: Mac + Clone>(m: &M, message: &[Cow<'_, [u8]>]) -> Vec<u8> {
            let mut m = m.clone();
            for part in message {
                m.update(part);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            KeyMaterial::HmacSha1(m) => Some(run(m, message)),
            KeyMaterial::HmacSha256(m) => Some(run(m, message)),
            KeyMaterial::HmacSha512(m) => Some(run(m, message)),
            _ => None,
        }
    }

    /// Whether any candidate verifies the message under `algorithm` (which
    /// picks RSA's hash); HMAC tags and token digests are compared in
    /// constant time.
    pub fn verifies(&self, algorithm: Algorithm, message: &[Cow<'_, [u8]>], candidates: &[Vec<u8>]) -> bool {
        if let Some(tag) = self.tag(message) {
            let hit = candidates.iter().fold(subtle::Choice::from(0), |acc, c| acc | tag.as_slice().ct_eq(c));
            return bool::from(hit);
        }
        match self {
            KeyMaterial::Token(digest) => {
                let hit = candidates.iter().fold(subtle::Choice::from(0), |acc, c| {
                    acc | Sha256::digest(c).as_slice().ct_eq(digest.as_slice())
                });
                bool::from(hit)
            }
            KeyMaterial::Ed25519(key) => {
                let whole = message.concat();
                candidates.iter().any(|c| {
                    ed25519_dalek::Signature::from_slice(c).is_ok_and(|sig| key.verify_strict(&whole, &sig).is_ok())
                })
            }
            KeyMaterial::P256(key) => {
                use p256::ecdsa::signature::Verifier;
                let whole = message.concat();
                candidates
                    .iter()
                    .any(|c| p256::ecdsa::Signature::from_der(c).is_ok_and(|sig| key.verify(&whole, &sig).is_ok()))
            }
            KeyMaterial::Rsa(key) => {
                let whole = message.concat();
                candidates.iter().any(|c| super::published::rsa_verifies(key, algorithm, &whole, c))
            }
            _ => false,
        }
    }
}

impl Key {
    pub fn new(key_id: String, material: KeyMaterial, not_before: Option<i64>, not_after: Option<i64>) -> Self {
        Key { key_id, not_before, not_after, material }
    }

    /// An HMAC-SHA256 key over raw bytes (the platform's own scheme).
    pub fn hmac_sha256(key_id: &str, bytes: &[u8]) -> Key {
        // HMAC takes keys of any length: `new_from_slice` cannot fail.
        let mac = Hmac::<Sha256>::new_from_slice(bytes).unwrap_or_else(|_| Hmac::new(&Default::default()));
        Key::new(key_id.to_string(), KeyMaterial::HmacSha256(mac), None, None)
    }

    /// Valid at `now` (inclusive on both ends).
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before.is_none_or(|nb| now >= nb) && self.not_after.is_none_or(|na| now <= na)
    }
}

/// The key used for signing: among those valid now, the one that became
/// valid last (no `not_before` counts as oldest); the first listed on a tie.
pub fn newest_valid(keys: &[Key], now: i64) -> Option<&Key> {
    let mut best: Option<&Key> = None;
    for k in keys.iter().filter(|k| k.valid_at(now)) {
        let nb = k.not_before.unwrap_or(i64::MIN);
        if best.is_none_or(|b| nb > b.not_before.unwrap_or(i64::MIN)) {
            best = Some(k);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(id: &str, nb: Option<i64>, na: Option<i64>) -> Key {
        let mut k = Key::hmac_sha256(id, b"x");
        k.not_before = nb;
        k.not_after = na;
        k
    }

    #[test]
    fn windows_are_inclusive() {
        let k = hmac("k", Some(100), Some(200));
        assert!(!k.valid_at(99));
        assert!(k.valid_at(100));
        assert!(k.valid_at(200));
        assert!(!k.valid_at(201));
        assert!(hmac("k", None, None).valid_at(i64::MAX));
    }

    #[test]
    fn newest_valid_prefers_latest_not_before() {
        let v = vec![hmac("old", None, Some(1000)), hmac("new", Some(500), None), hmac("future", Some(5000), None)];
        assert_eq!(newest_valid(&v, 600).unwrap().key_id, "new");
        assert_eq!(newest_valid(&v, 100).unwrap().key_id, "old");
        assert_eq!(newest_valid(&v, 6000).unwrap().key_id, "future");
    }

    #[test]
    fn debug_hides_material() {
        let k = Key::new(
            "k1".into(),
            KeyMaterial::secret(Algorithm::Token, "topsecret", SecretEncoding::Utf8).unwrap(),
            None,
            None,
        );
        assert!(!format!("{k:?}").contains("topsecret"));
    }

    #[test]
    fn tokens_compare_whole_values() {
        let k = KeyMaterial::secret(Algorithm::Token, "tok", SecretEncoding::Utf8).unwrap();
        assert!(k.verifies(Algorithm::Token, &[], &[b"tok".to_vec()]));
        assert!(!k.verifies(Algorithm::Token, &[], &[b"to".to_vec(), b"tok ".to_vec()]));
    }

    #[test]
    fn key_text_errors_never_quote_the_key() {
        for (alg, enc) in
            [(Algorithm::HmacSha256, SecretEncoding::Base64), (Algorithm::HmacSha256, SecretEncoding::Hex)]
        {
            let e = KeyMaterial::secret(alg, "%%s3cr3t%%", enc).err().unwrap();
            assert!(!e.contains("s3cr3t"));
        }
        assert!(KeyMaterial::public(Algorithm::Ed25519, "nothex").is_err());
        assert!(KeyMaterial::public(Algorithm::HmacSha256, "x").is_err());
        assert!(KeyMaterial::secret(Algorithm::Ed25519, "x", SecretEncoding::Utf8).is_err());
    }
}
