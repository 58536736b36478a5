//! The scheme language as written (a trigger's `scheme:`, and every
//! preset). Every field is optional so that a trigger can override a few
//! fields of a preset; `merge` lays the override over the preset.

use serde::Deserialize;

use super::{Algorithm, Encoding, Handshake, SecretEncoding, TimeUnit};
use crate::contract::number::opt_uint;

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheme {
    pub algorithm: Option<Algorithm>,
    pub signature: Option<RawSignature>,
    /// The signed-content template.
    pub signed: Option<String>,
    pub timestamp: Option<RawTimestamp>,
    pub id: Option<RawLocation>,
    pub secret_encoding: Option<SecretEncoding>,
    pub content_types: Option<Vec<String>>,
    pub public_url: Option<String>,
    pub handshake: Option<Handshake>,
    /// The sender signs no body (Mailgun; the token schemes): said
    /// explicitly, or a scheme whose `signed` lacks `{body}` is refused.
    pub unsigned_body: Option<bool>,
    /// A query parameter carrying the hex SHA-256 of the body, inside the
    /// signed URL (Twilio's JSON webhooks, `?bodySHA256=`).
    pub body_digest: Option<RawBodyDigest>,
    /// The sender's published key (docs "Published keys").
    pub key: Option<super::published::RawKeySource>,
    /// Values the templates name as `{param:NAME}`.
    pub params: Option<std::collections::BTreeMap<String, String>>,
    /// The algorithm named by a body field (AWS SNS `SignatureVersion`).
    pub algorithm_from: Option<RawAlgorithmFrom>,
    /// A JWT signature's claims.
    pub jwt: Option<RawJwt>,
    /// A signed field that names the sender within the provider, and the
    /// values the trigger accepts (AWS SNS: `/TopicArn`).
    pub sender: Option<RawSender>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSender {
    pub json: Option<String>,
    pub one_of: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlgorithmFrom {
    pub json: String,
    pub values: std::collections::BTreeMap<String, Algorithm>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    /// The claim holding the body's hex SHA-256 (Plaid: `request_body_sha256`).
    pub body_sha256: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBodyDigest {
    pub query: String,
}

/// Where a value is: one of a header (or alternative headers), a query
/// parameter, or a JSON pointer into the body.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub header: Option<Names>,
    pub query: Option<String>,
    pub json: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignature {
    pub header: Option<Names>,
    pub query: Option<String>,
    pub json: Option<String>,
    pub format: Option<RawFormat>,
    pub prefix: Option<String>,
    pub kv: Option<RawKv>,
    pub list: Option<RawList>,
    pub encoding: Option<Encoding>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawFormat {
    Raw,
    Prefixed,
    Kv,
    List,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKv {
    /// Sets of pairs, each with its own timestamp (Persona during a secret
    /// rotation: `t=..,v1=.. t=..,v1=..`).
    pub group_sep: Option<String>,
    pub pair_sep: Option<String>,
    pub kv_sep: Option<String>,
    pub signature_keys: Option<Vec<String>>,
    pub timestamp_key: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawList {
    pub sep: Option<String>,
    pub version_sep: Option<String>,
    pub versions: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimestamp {
    pub header: Option<Names>,
    pub query: Option<String>,
    pub json: Option<String>,
    /// The timestamp is the signature header's `kv.timestamp_key`.
    pub kv: Option<bool>,
    /// The timestamp is a JWT claim (`iat`, unix seconds).
    pub claim: Option<String>,
    pub unit: Option<TimeUnit>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub max_age: Option<u64>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub max_future: Option<u64>,
}

/// One header name, or a list of alternatives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names(pub Vec<String>);

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Names;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a header name or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Names, E> {
                Ok(Names(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Names, A::Error> {
                Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(Names)
            }
        }
        d.deserialize_any(V)
    }
}

fn or<T>(over: Option<T>, base: Option<T>) -> Option<T> {
    over.or(base)
}

/// An override that names any location replaces the base's location whole
/// (a preset's header and a trigger's query must not both apply).
fn location(
    over: (&Option<Names>, &Option<String>, &Option<String>),
    base: (&Option<Names>, &Option<String>, &Option<String>),
) -> (Option<Names>, Option<String>, Option<String>) {
    let pick = if over.0.is_some() || over.1.is_some() || over.2.is_some() { over } else { base };
    (pick.0.clone(), pick.1.clone(), pick.2.clone())
}

impl RawScheme {
    /// `self` (the trigger's) over `base` (the preset's), field by field.
    pub fn merge(self, base: RawScheme) -> RawScheme {
        RawScheme {
            algorithm: or(self.algorithm, base.algorithm),
            signature: match (self.signature, base.signature) {
                (Some(o), Some(b)) => Some(o.merge(b)),
                (o, b) => o.or(b),
            },
            signed: or(self.signed, base.signed),
            timestamp: match (self.timestamp, base.timestamp) {
                (Some(o), Some(b)) => Some(o.merge(b)),
                (o, b) => o.or(b),
            },
            id: match (self.id, base.id) {
                (Some(o), Some(b)) => {
                    let (header, query, json) =
                        location((&o.header, &o.query, &o.json), (&b.header, &b.query, &b.json));
                    Some(RawLocation { header, query, json })
                }
                (o, b) => o.or(b),
            },
            secret_encoding: or(self.secret_encoding, base.secret_encoding),
            content_types: or(self.content_types, base.content_types),
            public_url: or(self.public_url, base.public_url),
            handshake: or(self.handshake, base.handshake),
            unsigned_body: or(self.unsigned_body, base.unsigned_body),
            body_digest: or(self.body_digest, base.body_digest),
            key: match (self.key, base.key) {
                (Some(o), Some(b)) => Some(o.merge(b)),
                (o, b) => o.or(b),
            },
            params: match (self.params, base.params) {
                (Some(mut o), Some(b)) => {
                    for (k, v) in b {
                        o.entry(k).or_insert(v);
                    }
                    Some(o)
                }
                (o, b) => o.or(b),
            },
            algorithm_from: or(self.algorithm_from, base.algorithm_from),
            jwt: or(self.jwt, base.jwt),
            sender: match (self.sender, base.sender) {
                (Some(o), Some(b)) => Some(RawSender { json: or(o.json, b.json), one_of: or(o.one_of, b.one_of) }),
                (o, b) => o.or(b),
            },
        }
    }
}

impl RawSignature {
    fn merge(self, b: RawSignature) -> RawSignature {
        let (header, query, json) = location((&self.header, &self.query, &self.json), (&b.header, &b.query, &b.json));
        RawSignature {
            header,
            query,
            json,
            format: or(self.format, b.format),
            prefix: or(self.prefix, b.prefix),
            kv: match (self.kv, b.kv) {
                (Some(o), Some(b)) => Some(RawKv {
                    group_sep: or(o.group_sep, b.group_sep),
                    pair_sep: or(o.pair_sep, b.pair_sep),
                    kv_sep: or(o.kv_sep, b.kv_sep),
                    signature_keys: or(o.signature_keys, b.signature_keys),
                    timestamp_key: or(o.timestamp_key, b.timestamp_key),
                }),
                (o, b) => o.or(b),
            },
            list: match (self.list, b.list) {
                (Some(o), Some(b)) => Some(RawList {
                    sep: or(o.sep, b.sep),
                    version_sep: or(o.version_sep, b.version_sep),
                    versions: or(o.versions, b.versions),
                }),
                (o, b) => o.or(b),
            },
            encoding: or(self.encoding, b.encoding),
        }
    }
}

impl RawTimestamp {
    fn merge(self, b: RawTimestamp) -> RawTimestamp {
        let named = self.header.is_some()
            || self.query.is_some()
            || self.json.is_some()
            || self.kv.is_some()
            || self.claim.is_some();
        let (header, query, json, kv, claim) = if named {
            (self.header, self.query, self.json, self.kv, self.claim)
        } else {
            (b.header, b.query, b.json, b.kv, b.claim)
        };
        RawTimestamp {
            header,
            query,
            json,
            kv,
            claim,
            unit: or(self.unit, b.unit),
            max_age: or(self.max_age, b.max_age),
            max_future: or(self.max_future, b.max_future),
        }
    }
}
