//! The signature scheme engine: one verifier for every sender.
//!
//! A scheme is data (docs "Signature schemes and presets"): the algorithm, where the
//! signature is and how it is spelled, the signed-content template, the
//! timestamp and the delivery id. Presets (`presets.json`) are schemes
//! written in that language; a trigger's `scheme:` overrides a preset's
//! fields or declares a new one. `compile` turns the raw form into a
//! [`Scheme`]; `read_head` reads what the headers claim before the body is
//! buffered; `verify` checks the body against the trigger's keys.

mod body_field;
mod claims;
mod compile;
mod coverage;
pub mod form;
pub mod handshake;
pub mod jwt;
pub mod keys;
pub mod multipart;
pub mod presets;
pub mod published;
pub mod raw;
#[cfg(not(target_arch = "wasm32"))]
pub mod sign;
mod wire;

use std::borrow::Cow;

use serde::Deserialize;

pub use claims::{parse_stamp, Credentials, Stamp};
pub use compile::{compile, SchemeError};
pub use handshake::Handshake;
pub use keys::{Key, KeyMaterial};
pub use wire::{decode_signature, Query};

use crate::contract::error::Reject;
use crate::host::Headers;

/// Most signatures one delivery may carry (rotation lists); more are ignored.
pub const MAX_CANDIDATES: usize = 8;
/// The `source` of a trigger that declares its own scheme.
pub const CUSTOM: &str = "custom";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    HmacSha1,
    HmacSha256,
    HmacSha512,
    Ed25519,
    EcdsaP256Sha256,
    /// RSA PKCS#1 v1.5 (AWS SNS, PayPal: keys they publish as certificates).
    RsaSha1,
    RsaSha256,
    /// A JWT in the signature's place, its `alg` fixed here and never taken
    /// from the token (Plaid: ES256).
    JwtEs256,
    JwtRs256,
    /// A static token, compared in constant time (GitLab, Okta, Graph).
    Token,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "hmac-sha1",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha512 => "hmac-sha512",
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Algorithm::RsaSha1 => "rsa-sha1",
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::JwtEs256 => "jwt-es256",
            Algorithm::JwtRs256 => "jwt-rs256",
            Algorithm::Token => "token",
        }
    }

    /// Verified with a public key, so the edge holds no signing secret.
    pub fn is_asymmetric(self) -> bool {
        !matches!(self, Algorithm::HmacSha1 | Algorithm::HmacSha256 | Algorithm::HmacSha512 | Algorithm::Token)
    }

    /// The signature is a JWT; `jwt_alg` is the `alg` its header must name.
    pub fn jwt_alg(self) -> Option<&'static str> {
        match self {
            Algorithm::JwtEs256 => Some("ES256"),
            Algorithm::JwtRs256 => Some("RS256"),
            _ => None,
        }
    }

    /// The length of a signature, where it is fixed (DER and tokens vary).
    fn signature_len(self) -> Option<usize> {
        match self {
            Algorithm::HmacSha1 => Some(20),
            Algorithm::HmacSha256 => Some(32),
            Algorithm::HmacSha512 | Algorithm::Ed25519 => Some(64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Either case.
    Hex,
    /// Padded or not.
    Base64,
    Base64url,
    /// The value itself (tokens).
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretEncoding {
    Utf8,
    Base64,
    Hex,
    /// Base64 after a `whsec_` prefix (Standard Webhooks).
    Whsec,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    S,
    Ms,
    Rfc3339,
}

/// Where a value travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Any of these headers (lowercase); each may appear at most once.
    Headers(Vec<String>),
    /// A query parameter, percent-decoded.
    Query(String),
    /// A JSON pointer into the body: read once the body is verified-length.
    Json(String),
}

/// How the signature value is spelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Raw,
    Prefixed(String),
    /// `t=..,v1=..`: pairs; every `signature_keys` value is a candidate.
    Kv {
        /// Sets of pairs (Persona); a timestamp repeated across sets must agree.
        group_sep: Option<String>,
        pair_sep: String,
        kv_sep: String,
        signature_keys: Vec<String>,
        timestamp_key: Option<String>,
    },
    /// `v1,<sig> v1a,<sig>`: entries of other versions are skipped.
    List {
        sep: String,
        version_sep: String,
        versions: Vec<String>,
    },
}

/// One piece of the signed-content template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    Body,
    Timestamp,
    Id,
    Method,
    Url,
    Path,
    Header(String),
    FormSorted,
    /// A field of the body (`{json:/pointer}`): its text, or nothing when absent.
    Json(String),
    /// `Name\nvalue\n` for each listed top-level field present, in order
    /// (`{json_lines:Message,Subject?,...}`: AWS SNS); `?` marks the optional.
    JsonLines(Vec<(String, bool)>),
    /// A configured value (`{param:webhook_id}`, PayPal).
    Param(String),
    /// The body's CRC-32, in decimal (PayPal).
    BodyCrc32,
    /// The JWT's `header.payload`.
    Jwt,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampAt {
    At(Location),
    /// The signature header's `kv.timestamp_key`.
    Kv,
    /// A JWT claim (`iat`).
    Claim(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampSpec {
    pub at: TimestampAt,
    pub unit: TimeUnit,
    pub max_age: i64,
    pub max_future: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSpec {
    pub at: Location,
    /// The signed content covers the id, so it may be trusted.
    pub signed: bool,
}

/// A compiled scheme: immutable, shared by every request of its trigger.
#[derive(Debug, Clone)]
pub struct Scheme {
    /// The preset's name, or `custom`: the `x-combo-source` annotation.
    pub name: String,
    pub algorithm: Algorithm,
    pub signature_at: Location,
    pub format: Format,
    pub encoding: Encoding,
    pub signed: Vec<Token>,
    pub timestamp: Option<TimestampSpec>,
    pub id: Option<IdSpec>,
    pub secret_encoding: SecretEncoding,
    /// Media-type essences, lowercase.
    pub content_types: Vec<String>,
    pub public_url: Option<String>,
    pub handshake: Option<Handshake>,
    /// The query parameter that carries the body's hex SHA-256 in the
    /// signed URL: required for a body that is not a form when `signed`
    /// covers only `{form_sorted}`.
    pub body_digest: Option<String>,
    /// The sender's published key, fetched (SNS, PayPal, JWKS, Plaid).
    pub key_source: Option<published::KeySource>,
    /// Values `{param:NAME}` names (never printed).
    pub params: published::Params,
    /// The algorithm as a body field names it (SNS `SignatureVersion`).
    pub algorithm_from: Option<(String, Vec<(String, Algorithm)>)>,
    /// The JWT claim that holds the body's SHA-256 (Plaid).
    pub jwt_body_claim: Option<String>,
    /// Headers that carry signature material: hidden from templates.
    pub signature_headers: Vec<String>,
    /// Every header the scheme reads: hashed into the audit record.
    pub audit_headers: Vec<String>,
}

/// The request line and headers, as the signed template may need them.
pub struct Request<'a> {
    pub headers: &'a Headers,
    pub body: &'a [u8],
}

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

/// The URL with its port spelled the other way: a default port added where
/// none is written, any port dropped where one is (as Twilio's SDKs do).
fn other_port_spelling(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host_end = if authority.starts_with('[') { authority.find(']')? + 1 } else { 0 };
    let (host, port) = authority.split_at(authority[host_end..].find(':').map_or(authority.len(), |i| host_end + i));
    let default = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    Some(if port.is_empty() {
        format!("{scheme}://{host}:{default}{tail}")
    } else {
        format!("{scheme}://{host}{tail}")
    })
}

/// `sha256=<hex>` over `"{timestamp}.{body}"`: the platform's own scheme,
/// used for signing (outbound, CLI). `None` unless `key` is HMAC-SHA256.
pub fn sign_generic(key: &Key, timestamp: i64, body: &[u8]) -> Option<String> {
    if !matches!(key.material, KeyMaterial::HmacSha256(_)) {
        return None;
    }
    let ts = timestamp.to_string();
    let tag = key.material.tag(&[ts.as_bytes().into(), b".".as_slice().into(), body.into()])?;
    Some(format!("sha256={}", hex::encode(tag)))
}

#[cfg(test)]
mod tests;
