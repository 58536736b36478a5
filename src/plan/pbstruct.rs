//! Decodes a serialized `google.protobuf.Struct` (what Envoy hands a plugin
//! configured with `@type: type.googleapis.com/google.protobuf.Struct`, and
//! what Istio's `pluginConfig` becomes) into JSON. Numbers are doubles there.

use prost::Message;
use prost_types::value::Kind;

pub fn decode(bytes: &[u8]) -> Result<serde_json::Value, String> {
    let s = prost_types::Struct::decode(bytes).map_err(|e| e.to_string())?;
    Ok(struct_to_json(s))
}

fn struct_to_json(s: prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(s.fields.into_iter().map(|(k, v)| (k, value_to_json(v))).collect())
}

fn value_to_json(v: prost_types::Value) -> serde_json::Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => serde_json::Value::Array(l.values.into_iter().map(value_to_json).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{ListValue, Struct, Value};

    fn v(kind: Kind) -> Value {
        Value { kind: Some(kind) }
    }

    #[test]
    fn struct_bytes_decode_to_json_with_double_numbers() {
        let mut inner = Struct::default();
        inner.fields.insert("max_body_bytes".into(), v(Kind::NumberValue(2048.0)));
        inner.fields.insert(
            "list".into(),
            v(Kind::ListValue(ListValue {
                values: vec![v(Kind::StringValue("a".into())), v(Kind::BoolValue(true)), v(Kind::NullValue(0))],
            })),
        );
        let bytes = inner.encode_to_vec();
        assert_eq!(bytes[0], 0x0A);
        let json = decode(&bytes).unwrap();
        assert_eq!(json, serde_json::json!({"max_body_bytes": 2048.0, "list": ["a", true, null]}));
        let cfg = crate::plan::raw::parse_plugin_bytes(&bytes);
        // `list` is not a config field: the error names it, proving the Struct path is parsed.
        assert_eq!(cfg.unwrap_err().path, "list");
    }

    #[test]
    fn struct_config_compiles() {
        let mut s = Struct::default();
        s.fields.insert("max_body_bytes".into(), v(Kind::NumberValue(4096.0)));
        s.fields.insert("timestamp_tolerance_seconds".into(), v(Kind::NumberValue(60.0)));
        let cfg = crate::plan::raw::parse_plugin_bytes(&s.encode_to_vec()).unwrap();
        assert_eq!(cfg.max_body_bytes, Some(4096));
        assert_eq!(cfg.timestamp_tolerance_seconds, Some(60));
    }
}
