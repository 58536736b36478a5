//! The `x-combo-*` annotations the backend receives (docs "What the backend receives").

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter};

/// Compact JSON with every non-ASCII character escaped as `\uXXXX` (UTF-16,
/// surrogate pairs above the BMP), so the value is a valid header value.
pub fn ascii_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    if value.serialize(&mut ser).is_err() {
        return "null".to_string();
    }
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_else(|_| "null".to_string())
}

struct AsciiFormatter;

impl Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if ch.is_ascii() {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + ch.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(&mut self, w: &mut W, escape: CharEscape) -> io::Result<()> {
        // serde_json's default escapes; control characters are already \uXXXX there.
        serde_json::ser::CompactFormatter.write_char_escape(w, escape)
    }
}

/// The `inputs_delivery: envelope` body. The original payload is spliced in as
/// its exact bytes, never re-serialised.
pub fn envelope(
    trigger_id: &str,
    agent_id: &str,
    inputs: &serde_json::Map<String, serde_json::Value>,
    raw_payload: &[u8],
) -> Vec<u8> {
    let head = serde_json::json!({"trigger_id": trigger_id, "agent_id": agent_id, "inputs": inputs});
    let head = head.to_string();
    let mut body = Vec::with_capacity(head.len() + raw_payload.len() + 16);
    // `head` ends with '}': reopen it to append the payload member.
    body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
    body.extend_from_slice(b",\"payload\":");
    body.extend_from_slice(raw_payload);
    body.push(b'}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_ascii_is_escaped() {
        let v = json!({"name": "Zoë 😀", "n": 1, "ctl": "a\nb\"c"});
        let s = ascii_json(&v);
        assert!(s.is_ascii());
        assert_eq!(s, r#"{"ctl":"a\nb\"c","n":1,"name":"Zo\u00eb \ud83d\ude00"}"#);
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn envelope_keeps_payload_bytes() {
        let mut inputs = serde_json::Map::new();
        inputs.insert("id".into(), json!(1));
        let raw = br#"{ "b":1,  "a" : 2.50 }"#;
        let body = envelope("t", "agent", &inputs, raw);
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.ends_with(r#","payload":{ "b":1,  "a" : 2.50 }}"#), "{text}");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["trigger_id"], "t");
        assert_eq!(v["agent_id"], "agent");
        assert_eq!(v["inputs"]["id"], 1);
        assert_eq!(v["payload"]["a"], 2.5);
    }
}
