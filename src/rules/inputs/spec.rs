//! The configured form of one input: a template string, a literal, or an
//! object `{template | jsonpath, first, required, type, default}`.

use serde_json::Value as Json;

pub(super) enum Source {
    Literal(Json),
    Template(String),
    JsonPath { query: String, first: bool },
}

pub(super) struct RawInput {
    pub(super) source: Source,
    /// Where a template's errors point: the input itself, or its `template` key.
    pub(super) template_field: Option<&'static str>,
    pub(super) required: bool,
    pub(super) ty: Option<InputType>,
    pub(super) default: Option<Json>,
}

/// A declared input type; values are coerced only where nothing is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

impl InputType {
    fn parse(text: &str) -> Option<InputType> {
        Some(match text {
            "string" => InputType::String,
            "number" => InputType::Number,
            "integer" => InputType::Integer,
            "boolean" => InputType::Boolean,
            "object" => InputType::Object,
            "array" => InputType::Array,
            _ => return None,
        })
    }

    /// The value as this type, or `None` when only a lossy conversion exists
    /// (never a float to an integer, never an object to a string).
    pub fn coerce(self, v: Json) -> Option<Json> {
        match (self, v) {
            (InputType::String, v @ Json::String(_)) => Some(v),
            (InputType::String, Json::Number(n)) => Some(Json::String(n.to_string())),
            (InputType::String, Json::Bool(b)) => Some(Json::String(b.to_string())),
            (InputType::Number, v @ Json::Number(_)) => Some(v),
            (InputType::Number, Json::String(s)) => numeric(&s).filter(|n| n.is_number()),
            (InputType::Integer, Json::Number(n)) if integer_text(&n.to_string()).is_some() => Some(Json::Number(n)),
            (InputType::Integer, Json::String(s)) => numeric(&s).filter(|n| integer_text(&n.to_string()).is_some()),
            (InputType::Boolean, v @ Json::Bool(_)) => Some(v),
            (InputType::Boolean, Json::String(s)) => match s.as_str() {
                "true" => Some(Json::Bool(true)),
                "false" => Some(Json::Bool(false)),
                _ => None,
            },
            (InputType::Object, v @ Json::Object(_)) => Some(v),
            (InputType::Array, v @ Json::Array(_)) => Some(v),
            _ => None,
        }
    }
}

/// A string holding exactly one JSON number (no spaces, no other text). The
/// number keeps its text, so nothing is lost.
fn numeric(s: &str) -> Option<Json> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_digit() || b"-+.eE".contains(&b)) {
        return None;
    }
    serde_json::from_str::<serde_json::Number>(s).ok().map(Json::Number)
}

/// `Some(text)` when the number's text is an integer (no fraction, no exponent).
pub(super) fn integer_text(text: &str) -> Option<&str> {
    (!text.contains(['.', 'e', 'E'])).then_some(text)
}

const KEYS: [&str; 6] = ["template", "jsonpath", "first", "required", "type", "default"];

impl RawInput {
    /// Errors are (the key inside the input, message).
    pub(super) fn parse(value: Json) -> Result<RawInput, (Option<&'static str>, String)> {
        let map = match value {
            Json::String(text) => {
                return Ok(RawInput::plain(Source::Template(text), None));
            }
            Json::Object(map) => map,
            literal => return Ok(RawInput::plain(Source::Literal(literal), None)),
        };
        if let Some(unknown) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err((None, format!("unknown field {unknown:?}; expected one of {}", KEYS.join(", "))));
        }
        let flag = |key: &'static str| match map.get(key) {
            None => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(_) => Err((Some(key), "must be true or false".to_string())),
        };
        let (required, first) = (flag("required")?, flag("first")?);
        let source = match (map.get("template"), map.get("jsonpath")) {
            (Some(Json::String(t)), None) => Source::Template(t.clone()),
            (None, Some(Json::String(q))) => Source::JsonPath { query: q.clone(), first },
            (Some(_), None) => return Err((Some("template"), "must be a string".to_string())),
            (None, Some(_)) => return Err((Some("jsonpath"), "must be a string".to_string())),
            _ => return Err((None, "give exactly one of template or jsonpath".to_string())),
        };
        if first && !matches!(source, Source::JsonPath { .. }) {
            return Err((Some("first"), "only applies to jsonpath".to_string()));
        }
        let ty = match map.get("type") {
            None => None,
            Some(Json::String(t)) => Some(
                InputType::parse(t)
                    .ok_or((Some("type"), "must be string, number, integer, boolean, object or array".to_string()))?,
            ),
            Some(_) => return Err((Some("type"), "must be a string".to_string())),
        };
        let default = map.get("default").cloned();
        if let (Some(ty), Some(d)) = (ty, &default) {
            if ty.coerce(d.clone()).is_none() {
                return Err((Some("default"), "does not hold the declared type".to_string()));
            }
        }
        Ok(RawInput { source, template_field: Some("template"), required, ty, default })
    }

    fn plain(source: Source, template_field: Option<&'static str>) -> RawInput {
        RawInput { source, template_field, required: false, ty: None, default: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn coercions_are_lossless_only() {
        use InputType::*;
        let ok = |t: InputType, v: Json| t.coerce(v);
        let num = |t: &str| Json::Number(serde_json::from_str(t).unwrap());
        assert_eq!(ok(Number, json!("12.5")), Some(num("12.5")));
        assert_eq!(ok(Number, json!("12.50")), Some(num("12.50")), "kept as written");
        assert_eq!(ok(Number, json!("1e3")), Some(num("1e3")));
        assert_eq!(ok(Number, json!("123456789012345678901234567890")), Some(num("123456789012345678901234567890")));
        assert_eq!(ok(Number, json!("12 ")), None);
        assert_eq!(ok(Number, json!("0x10")), None);
        assert_eq!(ok(Integer, json!("123456789012345678901234567890")), Some(num("123456789012345678901234567890")));
        assert_eq!(ok(Integer, json!("1e3")), None);
        assert_eq!(ok(Number, json!(" 12")), None);
        assert_eq!(ok(Integer, json!("42")), Some(json!(42)));
        assert_eq!(ok(Integer, json!(3.0)), None, "never a float to an integer");
        assert_eq!(ok(Integer, json!("3.5")), None);
        assert_eq!(ok(Integer, json!(u64::MAX)), Some(json!(u64::MAX)));
        assert_eq!(ok(String, json!(7)), Some(json!("7")));
        assert_eq!(ok(String, json!({"a": 1})), None);
        assert_eq!(ok(Boolean, json!("true")), Some(json!(true)));
        assert_eq!(ok(Boolean, json!("yes")), None);
        assert_eq!(ok(Boolean, json!(1)), None);
        assert_eq!(ok(Object, json!([1])), None);
        assert_eq!(ok(Array, json!([1])), Some(json!([1])));
    }

    #[test]
    fn spec_errors_name_the_key() {
        let err = |v: Json| RawInput::parse(v).err().unwrap();
        assert_eq!(err(json!({"jsonpath": "$.a", "template": "x"})).0, None);
        assert_eq!(err(json!({"jsonpath": 1})).0, Some("jsonpath"));
        assert_eq!(err(json!({"jsonpath": "$.a", "type": "date"})).0, Some("type"));
        assert_eq!(err(json!({"jsonpath": "$.a", "type": "number", "default": "x"})).0, Some("default"));
        assert_eq!(err(json!({"template": "x", "first": true})).0, Some("first"));
        assert!(err(json!({"jsonpth": "$.a"})).1.contains("jsonpth"));
    }
}
