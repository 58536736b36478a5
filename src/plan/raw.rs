//! The plugin configuration as written by the operator (docs "Configuration reference").
//!
//! This is the raw, serde-shaped form. `plan::compile` validates it and turns it
//! into the immutable plan used per request. Unknown fields are rejected, and
//! integers also arrive as doubles (`300.0`) because Envoy hands a
//! `google.protobuf.Struct` over as JSON with every number a double.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::contract::error::ConfigError;
pub(crate) use crate::contract::number::opt_uint;
use crate::rules::scheme::raw::RawScheme;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Inbound,
    Outbound,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNoMatch {
    #[default]
    Ignore,
    Forward,
}

/// Where the verified client certificate's identities come from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MtlsIdentity {
    /// Envoy's connection attributes: the first URI SAN, the first DNS SAN and
    /// the subject (all Envoy hands a wasm filter).
    #[default]
    Connection,
    /// Every SAN, from the `x-forwarded-client-cert` header the connection
    /// manager sets with `forward_client_cert_details: SANITIZE_SET`.
    Xfcc,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputsDelivery {
    #[default]
    Header,
    Envelope,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub mode: Mode,
    pub path_prefix: Option<String>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub max_body_bytes: Option<u64>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub max_inputs_bytes: Option<u64>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub timestamp_tolerance_seconds: Option<u64>,
    #[serde(default)]
    pub allow_cidrs: Vec<String>,
    #[serde(default)]
    pub on_no_match: OnNoMatch,
    #[serde(default)]
    pub inputs_delivery: InputsDelivery,
    #[serde(default)]
    pub mtls_identity: MtlsIdentity,
    pub replay: Option<RawReplay>,
    #[serde(default)]
    pub triggers: Vec<RawTrigger>,
    // Outbound mode.
    pub event_jsonpath: Option<String>,
    #[serde(default)]
    pub subscriptions: Vec<RawSubscription>,
    /// Opt-in cuts (docs "Opt-in cuts"): the annotations a forwarded
    /// delivery carries (default: all seven).
    pub annotations: Option<Vec<String>>,
    /// The audit record as Envoy filter state, for the access log (default true).
    pub audit_filter_state: Option<bool>,
    /// Native module: the `ConfigSource` (Envoy's JSON) of `sds:` secrets;
    /// absent, they are static bootstrap secrets. The adapter reads it.
    pub sds_config: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReplay {
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub window_seconds: Option<u64>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub max_entries: Option<u64>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub inflight_seconds: Option<u64>,
    #[serde(default)]
    pub store: StoreKind,
    pub etcd: Option<RawEtcd>,
    #[serde(default)]
    pub on_store_error: OnStoreError,
    #[serde(default, deserialize_with = "opt_uint")]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub unknown_outcome: UnknownOutcome,
}

/// A delivery that was forwarded and never answered (a reset, a timeout,
/// the client gone): the backend may or may not have acted on it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownOutcome {
    /// Remembered as delivered: at most once; the sender's retry gets
    /// `200 duplicate`.
    #[default]
    Delivered,
    /// Released: the sender's retry gets through (at least once).
    Retry,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    #[default]
    Local,
    Etcd,
}

/// What a delivery gets when the shared store cannot answer in time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// 503 `replay_store_unavailable` with `retry-after`: the sender retries.
    #[default]
    Reject,
    /// Fall back to this Envoy's local store.
    Local,
}

/// The etcd store: endpoint, TLS and credentials are the Envoy cluster's.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEtcd {
    /// The Envoy cluster that reaches etcd's JSON gateway.
    pub cluster: String,
    /// `:authority` of the requests (default: the cluster name).
    pub authority: Option<String>,
    /// Key prefix (default `combo_webhook/replay/`).
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrigger {
    pub id: String,
    /// A preset's name (`combo-webhook presets`); default `generic_webhook`.
    pub source: Option<String>,
    /// A scheme of its own, or overrides of the preset's fields.
    pub scheme: Option<RawScheme>,
    pub secret: Option<String>,
    pub secrets: Option<Vec<RawSecret>>,
    /// Asymmetric schemes: the sender's public key(s), in place of secrets.
    pub public_key: Option<String>,
    pub public_keys: Option<Vec<RawSecret>>,
    /// Meta's `hub.verify_token`, for the handshake.
    pub verify_token: Option<RawText>,
    #[serde(default)]
    pub allow_cidrs: Vec<String>,
    pub mtls: Option<RawMtls>,
    #[serde(default, rename = "match")]
    pub match_: Option<OneOrMany<RawCondition>>,
    pub action: RawAction,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub id: Option<String>,
    pub value: Option<String>,
    pub env: Option<String>,
    /// An Envoy SDS generic secret by name (native module only).
    pub sds: Option<String>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub not_before: Option<u64>,
    #[serde(default, deserialize_with = "opt_uint")]
    pub not_after: Option<u64>,
}

/// A value given inline or read from the VM's environment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawText {
    pub value: Option<String>,
    pub env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMtls {
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub allowed_peers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    pub jsonpath: String,
    pub equals: Option<serde_json::Value>,
    #[serde(rename = "in")]
    pub in_: Option<Vec<serde_json::Value>>,
    pub exists: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    pub agent_id: String,
    #[serde(default)]
    pub inputs: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSubscription {
    pub id: String,
    pub events: Vec<String>,
    pub secret: Option<String>,
    pub secrets: Option<Vec<RawSecret>>,
}

/// `match:` takes one condition or a list of them.
#[derive(Debug)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

// Hand-written rather than `#[serde(untagged)]` so that errors inside keep their
// field path (untagged enums swallow them into "did not match any variant").
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a condition object or a list of them")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<T>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Parses JSON configuration; a syntax or type error names the field path.
pub fn parse_json(text: &str) -> Result<RawConfig, ConfigError> {
    parse_json_classified(text).map_err(|(e, _)| e)
}

/// Also tells whether the text was not JSON at all (syntax), as opposed to
/// JSON that does not fit the schema.
fn parse_json_classified(text: &str) -> Result<RawConfig, (ConfigError, bool)> {
    if text.trim().is_empty() {
        // An empty configuration is the all-defaults config (no triggers).
        return Ok(RawConfig::default());
    }
    // Text -> JSON value -> config: every source (JSON text, Struct, YAML) then
    // shares one deserializer, which keeps the .wasm small.
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| (ConfigError::new("", format!("invalid JSON: {e}")), true))?;
    from_value(value).map_err(|e| (e, false))
}

/// The config from a JSON value; errors name the field path.
pub fn from_value(value: serde_json::Value) -> Result<RawConfig, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

/// Parses the plugin configuration bytes as Envoy hands them over: the JSON
/// text of a `google.protobuf.StringValue`, or the serialized protobuf of a
/// `google.protobuf.Struct` (Envoy passes a Struct's wire bytes, not JSON).
pub fn parse_plugin_bytes(bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    // A serialized Struct starts with field 1 (`fields`), wire type 2: 0x0A,
    // which is also '\n'. JSON is tried first; the Struct when the bytes are
    // not JSON text at all.
    let maybe_struct = bytes.first() == Some(&0x0A);
    let json_error = match std::str::from_utf8(bytes) {
        Ok(text) => match parse_json_classified(text) {
            Ok(cfg) => return Ok(cfg),
            Err((e, syntax)) if syntax && maybe_struct => e,
            Err((e, _)) => return Err(e),
        },
        Err(_) if maybe_struct => ConfigError::new("", "configuration is not JSON text"),
        Err(_) => return Err(ConfigError::new("", "configuration is neither JSON text nor a google.protobuf.Struct")),
    };
    match super::pbstruct::decode(bytes) {
        Ok(value) => from_value(value),
        Err(_) => Err(json_error),
    }
}

/// Parses YAML configuration (the CLI's `validate`; Envoy itself takes JSON).
#[cfg(not(target_arch = "wasm32"))]
pub fn parse_yaml(text: &str) -> Result<RawConfig, ConfigError> {
    let value: serde_json::Value =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::new("", format!("invalid YAML: {e}")))?;
    from_value(value)
}

fn path_error<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> ConfigError {
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    ConfigError::new(path, without_value(&e.into_inner().to_string()))
}

/// serde's type errors quote the value they got (`invalid type: string
/// "s3cr3t", expected ...`). A value in the wrong place may be a secret, so
/// only its kind is kept: `invalid type: expected ..., got a string`.
fn without_value(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(lead) {
            let (got, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, "another value"));
            let kind = got.split([' ', '`']).next().unwrap_or("value");
            let expected = expected.split(" at line ").next().unwrap_or(expected);
            return format!("{lead}expected {expected}, got a {kind}");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests;
