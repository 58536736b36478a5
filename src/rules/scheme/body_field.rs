//! Fields of an unverified JSON body (Linear's timestamp, Mailgun's
//! signature, Microsoft Graph's clientState), read before the signature
//! holds. The work is one forward scan that stops at the field; nothing but
//! the field is kept (everything else is skipped with `IgnoredAny`), and the
//! field itself is borrowed from the body and taken only when it is a short
//! string or a number. An unsigned 60 MiB body costs a scan, never a tree.
//!
//! A pointer token `*` stands for every element of an array (Graph's
//! `/value/*/clientState`: each notification of a batch carries its own).

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Longest field value taken (a signature, a timestamp, a token).
const MAX_FIELD: usize = 1024;
/// Most array elements a `*` token reads; a longer array is refused whole.
pub const MAX_EACH: usize = 100;

/// The string or non-negative integer at RFC 6901 `pointer` in `body`, as
/// text. `None` when it is absent, of another type, too long, or the body
/// breaks off before it.
pub fn text_at(body: &[u8], pointer: &str) -> Option<String> {
    match texts_at(body, pointer)?.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Every value `pointer` reaches, where `*` tokens stand for every element
/// of an array. `None` unless every element has the field, as a short
/// string or integer, the arrays hold 1 to `MAX_EACH` elements, and the
/// whole document is well-formed. Without `*`, the one value, read by a
/// scan that stops there.
pub fn texts_at(body: &[u8], pointer: &str) -> Option<Vec<String>> {
    let tokens: Vec<String> =
        pointer.strip_prefix('/')?.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let each = tokens.iter().any(|t| t == "*");
    let found = Found { values: RefCell::new(Vec::new()), each, broken: Cell::new(false) };
    let mut de = serde_json::Deserializer::from_slice(body);
    // Without `*` the scan ends in an error once the field is found (the rest
    // of the document is left unread on purpose); only `found` matters.
    // With `*` the whole document is read, and must be whole.
    let read = Seek { tokens: &tokens, found: &found }.deserialize(&mut de);
    if each && (read.is_err() || de.end().is_err() || found.broken.get()) {
        return None;
    }
    let values = found.values.into_inner();
    if values.is_empty() {
        return None;
    }
    values.into_iter().map(text).collect()
}

/// The value at `pointer` as signed content reads it (`{json:..}`, SNS's
/// fields): a string unescaped, a number or boolean as written; any length
/// (the body is bounded). `None` when absent, null, an object or an array.
pub fn value_at(body: &[u8], pointer: &str) -> Option<String> {
    let tokens: Vec<String> =
        pointer.strip_prefix('/')?.split('/').map(|t| t.replace("~1", "/").replace("~0", "~")).collect();
    let found = Found { values: RefCell::new(Vec::new()), each: false, broken: Cell::new(false) };
    let mut de = serde_json::Deserializer::from_slice(body);
    let _ = Seek { tokens: &tokens, found: &found }.deserialize(&mut de);
    let raw = found.values.into_inner().into_iter().next()?.get();
    match raw.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(raw).ok(),
        b'{' | b'[' | b'n' => None,
        _ => Some(raw.to_string()),
    }
}

/// Whether a JSON document repeats a key in any of its objects, or is not
/// one well-formed document. A scheme that signs fields of the body rather
/// than the body reads the first of two copies of a key, where a backend's
/// parser keeps the last: such a body is refused before anything is read
/// (a second, unsigned `Message` would otherwise reach the backend). One
/// pass; serde_json bounds the depth.
pub fn repeats_a_key(body: &[u8]) -> bool {
    let repeated = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = Unique(&repeated).deserialize(&mut de);
    read.is_err() || de.end().is_err() || repeated.get()
}

struct Unique<'c>(&'c Cell<bool>);

impl<'de> DeserializeSeed<'de> for Unique<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                self.0.set(true);
            }
            map.next_value_seed(Unique(self.0))?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Unique(self.0))?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// What a scan found: the values, and whether an element lacked the field.
struct Found<'de> {
    values: RefCell<Vec<&'de RawValue>>,
    each: bool,
    broken: Cell<bool>,
}

fn text(raw: &RawValue) -> Option<String> {
    let json = raw.get();
    if json.len() > MAX_FIELD + 2 {
        return None;
    }
    if json.starts_with('"') {
        return serde_json::from_str::<String>(json).ok();
    }
    (!json.is_empty() && json.bytes().all(|b| b.is_ascii_digit())).then(|| json.to_string())
}

/// Seeks the remaining `tokens` in the value being read.
struct Seek<'t, 'de> {
    tokens: &'t [String],
    found: &'t Found<'de>,
}

/// Stops the scan once the field is found.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("found")
    }
}

impl<'de> DeserializeSeed<'de> for Seek<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        match self.tokens.split_first() {
            None => {
                let value = <&RawValue as de::Deserialize>::deserialize(d)?;
                self.found.values.borrow_mut().push(value);
                if self.found.each {
                    Ok(())
                } else {
                    Err(de::Error::custom(Stop))
                }
            }
            Some((head, rest)) => d.deserialize_any(Step { head, rest, found: self.found }),
        }
    }
}

struct Step<'t, 'de> {
    head: &'t str,
    rest: &'t [String],
    found: &'t Found<'de>,
}

impl Step<'_, '_> {
    /// A `*` seek reached something other than an array: the field is absent.
    fn absent<E>(&self) -> Result<(), E> {
        if self.head == "*" {
            self.found.broken.set(true);
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Step<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.head == "*" {
            self.found.broken.set(true);
        }
        while let Some(hit) = map.next_key_seed(KeyIs(self.head))? {
            if hit {
                map.next_value_seed(Seek { tokens: self.rest, found: self.found })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.head == "*" {
            let mut n = 0;
            loop {
                let before = self.found.values.borrow().len();
                if seq.next_element_seed(Seek { tokens: self.rest, found: self.found })?.is_none() {
                    break;
                }
                n += 1;
                if n > MAX_EACH || self.found.values.borrow().len() == before {
                    self.found.broken.set(true);
                }
            }
            if n == 0 {
                self.found.broken.set(true);
            }
            return Ok(());
        }
        // RFC 6901: an array index is `0` or digits without a leading zero.
        let index = match self.head.as_bytes() {
            [b'0'] => Some(0),
            [b'1'..=b'9', ..] if self.head.bytes().all(|b| b.is_ascii_digit()) => self.head.parse::<usize>().ok(),
            _ => None,
        };
        let Some(index) = index else { return Ok(()) };
        for _ in 0..index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Seek { tokens: self.rest, found: self.found })?;
        Ok(())
    }

    // Scalars have no children: the field is absent.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.absent()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.absent()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.absent()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.absent()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.absent()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.absent()
    }
}

/// Whether an object key equals the pointer token, without keeping the key.
struct KeyIs<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strings_and_integers_at_the_pointer() {
        let body = br#"{"a":[1,{"b":"x"}],"signature":{"timestamp":1700000000,"token":"t\u0041"},"x/y":"s"}"#;
        assert_eq!(text_at(body, "/a/1/b").as_deref(), Some("x"));
        assert_eq!(text_at(body, "/signature/timestamp").as_deref(), Some("1700000000"));
        assert_eq!(text_at(body, "/signature/token").as_deref(), Some("tA"));
        assert_eq!(text_at(body, "/x~1y").as_deref(), Some("s"));
        for absent in ["/a/2", "/a/01", "/a/1/c", "/signature/timestamp/x", "/nope", "/a", "/a/-1"] {
            assert_eq!(text_at(body, absent), None, "{absent}");
        }
    }

    #[test]
    fn the_scan_stops_at_the_field() {
        // Garbage after the field does not matter: it is never read.
        assert_eq!(text_at(br#"{"s":"v", this is not json"#, "/s").as_deref(), Some("v"));
        assert_eq!(text_at(br#"{"x": nope, "s":"v"}"#, "/s"), None);
    }

    #[test]
    fn a_star_reads_every_element_and_each_must_have_the_field() {
        let body = br#"{"value":[{"c":"a","r":1},{"r":2,"c":"b"}],"z":0}"#;
        assert_eq!(texts_at(body, "/value/*/c"), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(text_at(body, "/value/*/c"), None, "two values are not one");
        for refused in [
            &br#"{"value":[{"c":"a"},{"r":2}]}"#[..],
            br#"{"value":[{"c":"a"},{"c":null}]}"#,
            br#"{"value":[]}"#,
            br#"{"value":{"c":"a"}}"#,
            br#"{"value":"c"}"#,
            br#"{"value":[{"c":"a"}], broken"#,
            br#"{"value":[{"c":"a"}]} trailing"#,
        ] {
            assert_eq!(texts_at(refused, "/value/*/c"), None, "{}", String::from_utf8_lossy(refused));
        }
        let many = format!(r#"{{"value":[{}]}}"#, vec![r#"{"c":"a"}"#; MAX_EACH + 1].join(","));
        assert_eq!(texts_at(many.as_bytes(), "/value/*/c"), None, "longer than MAX_EACH");
        let most = format!(r#"{{"value":[{}]}}"#, vec![r#"{"c":"a"}"#; MAX_EACH].join(","));
        assert_eq!(texts_at(most.as_bytes(), "/value/*/c").map(|v| v.len()), Some(MAX_EACH));
    }

    #[test]
    fn repeated_keys_are_found_at_any_depth() {
        assert!(!repeats_a_key(br#"{"a":1,"b":{"a":2,"c":[{"a":3},{"a":4}]}}"#));
        for doc in [
            &br#"{"Message":"signed","Message":"forged"}"#[..],
            br#"{"a":{"b":1,"b":2}}"#,
            br#"[{"x":1},{"y":1,"y":2}]"#,
            br#"{"a":1} {"a":1}"#,
            br#"{"a":1"#,
        ] {
            assert!(repeats_a_key(doc), "{}", String::from_utf8_lossy(doc));
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(repeats_a_key(deep.as_bytes()), "too deep to read is refused, not a stack overflow");
    }

    #[test]
    fn large_or_odd_values_are_not_taken() {
        let long = format!(r#"{{"s":"{}"}}"#, "a".repeat(MAX_FIELD + 1));
        assert_eq!(text_at(long.as_bytes(), "/s"), None);
        for v in [r#"{"s":-1}"#, r#"{"s":1.5}"#, r#"{"s":[1]}"#, r#"{"s":null}"#, r#"{"s":true}"#] {
            assert_eq!(text_at(v.as_bytes(), "/s"), None, "{v}");
        }
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(text_at(deep.as_bytes(), "/0"), None, "serde_json's depth limit, no stack overflow");
    }
}
