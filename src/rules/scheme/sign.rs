//! The sender's side of every scheme: the headers (or query parameters, or
//! JSON fields) a provider would send for a body. Used by `combo-webhook
//! sign`, the tests and the benchmarks; native only, the filter verifies.

use ed25519_dalek::pkcs8::DecodePrivateKey;

use super::keys::KeyMaterial;
use super::wire::encode;
use super::{
    Algorithm, Credentials, Format, IdSpec, Location, Request, Scheme, Stamp, TimeUnit, TimestampAt, TimestampSpec,
};
use crate::host::Headers;

/// What signs.
pub enum Signer {
    /// An HMAC secret or a token, keyed as a trigger would key it.
    Secret(String),
    Ed25519(Box<ed25519_dalek::SigningKey>),
    P256(Box<p256::ecdsa::SigningKey>),
}

impl Signer {
    /// A private key file's text: PKCS#8 PEM (Ed25519 or P-256), or an
    /// Ed25519 seed as 64 hex digits.
    pub fn private_key(algorithm: Algorithm, text: &str) -> Result<Signer, String> {
        let text = text.trim();
        match algorithm {
            Algorithm::Ed25519 if text.len() == 64 => {
                let seed: [u8; 32] = hex::decode(text)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or("the Ed25519 seed is not 64 hex digits")?;
                Ok(Signer::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(&seed))))
            }
            Algorithm::Ed25519 => ed25519_dalek::SigningKey::from_pkcs8_pem(text)
                .map(|k| Signer::Ed25519(Box::new(k)))
                .map_err(|_| "not an Ed25519 private key (PKCS#8 PEM or 64 hex digits)".to_string()),
            Algorithm::EcdsaP256Sha256 => p256::ecdsa::SigningKey::from_pkcs8_pem(text)
                .map(|k| Signer::P256(Box::new(k)))
                .map_err(|_| "not a P-256 private key (PKCS#8 PEM)".to_string()),
            _ => Err(format!("algorithm {} takes a secret, not a private key", algorithm.name())),
        }
    }
}

/// Where each signed value goes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Signed {
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    /// JSON pointer -> value: fields the sender puts in the body itself.
    pub json: Vec<(String, String)>,
}

impl Signed {
    fn put(&mut self, at: &Location, value: String) {
        match at {
            Location::Headers(names) => {
                self.headers.push((names.first().cloned().unwrap_or_default(), value));
            }
            Location::Query(name) => self.query.push((name.clone(), value)),
            Location::Json(ptr) => self.json.push((ptr.clone(), value)),
        }
    }
}

/// The request as the sender sends it: with the scheme's first media type
/// when none is given, and the body's digest in the URL where the scheme
/// signs it there (Twilio's JSON webhooks).
fn as_sent(scheme: &Scheme, request: &Headers, body: &[u8], out: &mut Signed) -> Headers {
    let mut pairs: Vec<(String, String)> = request.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if request.first("content-type").is_none() {
        let media_type = scheme.content_types.first().map_or("application/json", String::as_str);
        pairs.push(("content-type".to_string(), media_type.to_string()));
    }
    let headers = Headers::new(pairs);
    let Some(name) = &scheme.body_digest else { return headers };
    if super::form::is_form(&headers) {
        return headers;
    }
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(body));
    let pairs = headers
        .iter()
        .map(|(k, v)| {
            let v = if k == ":path" {
                format!("{v}{}{name}={digest}", if v.contains('?') { '&' } else { '?' })
            } else {
                v.to_string()
            };
            (k.to_string(), v)
        })
        .collect();
    out.query.push((name.clone(), digest));
    Headers::new(pairs)
}

/// The timestamp as the scheme spells it.
pub fn stamp_text(unit: TimeUnit, unix: i64) -> String {
    match unit {
        TimeUnit::S => unix.to_string(),
        TimeUnit::Ms => (unix.saturating_mul(1000)).to_string(),
        TimeUnit::Rfc3339 => {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
            humantime::format_rfc3339_seconds(t).to_string()
        }
    }
}

/// Signs `body` as a sender of `scheme` would. `request` carries the
/// request line (`:method`, `:path`, `:authority`) and any header the
/// template signs; values the scheme reads from the body (Mailgun, Linear)
/// are taken from the body as given.
pub fn sign(
    scheme: &Scheme,
    signer: &Signer,
    unix: i64,
    id: Option<&str>,
    request: &Headers,
    body: &[u8],
) -> Result<Signed, String> {
    let mut creds = Credentials::default();
    let mut out = Signed::default();
    if let Some(ts) = &scheme.timestamp {
        let text = stamp_text(ts.unit, unix);
        match &ts.at {
            TimestampAt::At(Location::Json(_)) => {}
            TimestampAt::At(at) => out.put(at, text.clone()),
            TimestampAt::Kv | TimestampAt::Claim(_) => {}
        }
        creds.timestamp = Some(Stamp { text, unix });
    }
    if let Some(spec) = &scheme.id {
        let id = id.unwrap_or("msg_combo").to_string();
        if !matches!(spec.at, Location::Json(_)) {
            out.put(&spec.at, id.clone());
        }
        creds.id = Some(id);
    }
    // Fields the scheme reads from the body (Mailgun, Linear): as given.
    if let Some(TimestampSpec { at: TimestampAt::At(Location::Json(p)), unit, .. }) = &scheme.timestamp {
        creds.timestamp = super::body_field::text_at(body, p).and_then(|t| super::parse_stamp(&t, *unit).ok());
    }
    if let Some(IdSpec { at: Location::Json(p), .. }) = &scheme.id {
        creds.id = super::body_field::text_at(body, p);
    }
    let request = &as_sent(scheme, request, body, &mut out);
    let message = scheme.message(&creds, &Request { headers: request, body });
    let signature: Vec<u8> = match (signer, scheme.algorithm) {
        (Signer::Secret(text), Algorithm::Token) => text.as_bytes().to_vec(),
        (Signer::Secret(text), alg) => KeyMaterial::secret(alg, text, scheme.secret_encoding)
            .map_err(|e| format!("the secret {e}"))?
            .tag(&message)
            .ok_or("this scheme signs with a private key")?,
        (Signer::Ed25519(k), Algorithm::Ed25519) => {
            use ed25519_dalek::Signer as _;
            k.sign(&message.concat()).to_bytes().to_vec()
        }
        (Signer::P256(k), Algorithm::EcdsaP256Sha256) => {
            use p256::ecdsa::signature::Signer as _;
            let sig: p256::ecdsa::Signature = k.sign(&message.concat());
            sig.to_der().as_bytes().to_vec()
        }
        _ => return Err(format!("the key does not fit algorithm {}", scheme.algorithm.name())),
    };
    let encoded = encode(&signature, scheme.encoding);
    let value = match &scheme.format {
        Format::Raw => encoded,
        Format::Prefixed(p) => format!("{p}{encoded}"),
        Format::Kv { pair_sep, kv_sep, signature_keys, timestamp_key, .. } => {
            let mut pairs = Vec::new();
            if let (Some(k), Some(stamp)) = (timestamp_key, &creds.timestamp) {
                pairs.push(format!("{k}{kv_sep}{}", stamp.text));
            }
            pairs.push(format!("{}{kv_sep}{encoded}", signature_keys.first().map_or("", String::as_str)));
            pairs.join(pair_sep)
        }
        Format::List { version_sep, versions, .. } => {
            format!("{}{version_sep}{encoded}", versions.first().map_or("", String::as_str))
        }
    };
    out.put(&scheme.signature_at, value);
    Ok(out)
}
