//! Form-encoded deliveries (Slack slash commands, Twilio): verified on the
//! wire bytes; `match` and `inputs` see the fields as a JSON object.

use crate::host::Headers;

pub const FORM_MEDIA_TYPE: &str = "application/x-www-form-urlencoded";

/// A `content-type` value's essence, lowercase (parameters dropped).
pub fn media_type(value: &str) -> String {
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether the request says its body is a form.
pub fn is_form(headers: &Headers) -> bool {
    headers.first("content-type").map(media_type).as_deref() == Some(FORM_MEDIA_TYPE)
}

/// Most fields a form delivery may carry (Twilio and Slack send a few
/// dozen). Counted before the signature is checked, so that no unsigned
/// body can make the edge sort or copy millions of fields.
pub const MAX_FORM_FIELDS: usize = 1000;

/// Whether the form has at most `MAX_FORM_FIELDS` fields: one pass over the
/// bytes, nothing allocated.
pub fn fields_within_bound(body: &[u8]) -> bool {
    body.split(|b| *b == b'&').filter(|f| !f.is_empty()).nth(MAX_FORM_FIELDS).is_none()
}

/// The fields as a JSON object: a field sent once is a string, a repeated
/// field an array of its values in order.
pub fn to_json(body: &[u8]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        insert_field(&mut map, k.into_owned(), serde_json::Value::String(v.into_owned()));
    }
    serde_json::Value::Object(map)
}

/// Adds a field's value: the first is kept as it is, a repeated field
/// becomes an array of its values in order (forms and multipart alike).
pub fn insert_field(map: &mut serde_json::Map<String, serde_json::Value>, name: String, v: serde_json::Value) {
    match map.get_mut(&name) {
        Some(serde_json::Value::Array(items)) => items.push(v),
        Some(first) => *first = serde_json::Value::Array(vec![first.take(), v]),
        None => {
            map.insert(name, v);
        }
    }
}

/// `{form_sorted}`: every distinct (name, value) pair, sorted by name then
/// value, each written as name followed by value (Twilio's rule).
pub fn sorted_concat(body: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    pairs.sort();
    pairs.dedup();
    let mut out = Vec::with_capacity(body.len());
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_become_an_object() {
        let v = to_json(b"a=1&b=x+y&a=2&c=%7B%22k%22%3A1%7D");
        assert_eq!(v, serde_json::json!({"a": ["1", "2"], "b": "x y", "c": "{\"k\":1}"}));
        assert_eq!(to_json(b""), serde_json::json!({}));
    }

    #[test]
    fn field_count_is_bounded() {
        assert!(fields_within_bound(b""));
        assert!(fields_within_bound("a=1&".repeat(MAX_FORM_FIELDS).as_bytes()));
        assert!(!fields_within_bound("a=1&".repeat(MAX_FORM_FIELDS + 1).as_bytes()));
        assert!(fields_within_bound(&b"&".repeat(100_000)), "empty fields are not fields");
    }

    #[test]
    fn sorted_pairs_are_deduplicated() {
        assert_eq!(sorted_concat(b"To=%2B1&From=x&Body=hi&To=%2B1"), b"BodyhiFromxTo+1".to_vec());
    }
}
