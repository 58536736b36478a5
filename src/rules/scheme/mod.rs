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
mod signed;
mod template;
mod wire;

use serde::Deserialize;

pub use claims::{parse_stamp, Credentials, Stamp};
pub use compile::{compile, SchemeError};
pub use handshake::Handshake;
pub use keys::{Key, KeyMaterial};
pub use wire::{decode_signature, Query};

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
    /// The signed field naming the sender (SNS `/TopicArn`) and the values
    /// accepted; `None` values: the trigger must name them.
    pub sender: Option<(String, Option<Vec<String>>)>,
    /// Fields read from the unverified body (decided once, at configure
    /// time): none, or some; and whether the body must then repeat no key
    /// (the scheme signs those fields, not the body).
    pub reads_body: bool,
    pub unique_keys: bool,
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
