//! RFC 9535 JSONPath queries (serde_json_path), compiled once at configure
//! time for `match` and the inputs.
//!
//! One restriction on top of the RFC, for the work budget: the pattern of
//! `match()` and `search()` must be a string literal. A pattern taken from the
//! document would be compiled per node at request time, and a sender could
//! make every request on a worker wait on it.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;
use serde_json_path::functions::{LogicalType, ValueType};
use serde_json_path::JsonPath;

/// Compiles a query; the error says what is wrong with it.
pub fn compile(text: &str) -> Result<JsonPath, String> {
    literal_patterns_only(text)?;
    JsonPath::parse(text).map_err(|e| e.to_string())
}

/// Finds every `match(` / `search(` call outside string literals and checks
/// that its second argument is one string literal.
fn literal_patterns_only(q: &str) -> Result<(), String> {
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = skip_string(b, i),
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                let name = &q[start..i];
                let called = q[i..].trim_start().starts_with('(');
                let member = start > 0 && b[start - 1] == b'.';
                if called && !member && (name == "match" || name == "search") {
                    let open = i + (q[i..].len() - q[i..].trim_start().len());
                    check_pattern_argument(b, open, name)?;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The index just past the string literal starting at `i`.
fn skip_string(b: &[u8], i: usize) -> usize {
    let quote = b[i];
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            c if c == quote => return j + 1,
            _ => j += 1,
        }
    }
    b.len()
}

/// `open` is the index of the call's `(`.
fn check_pattern_argument(b: &[u8], open: usize, name: &str) -> Result<(), String> {
    let refused = || format!("{name}() takes a string literal as its pattern; a pattern from the document is refused");
    let (mut depth, mut j, mut comma) = (0usize, open, None);
    while j < b.len() {
        match b[j] {
            b'\'' | b'"' => {
                j = skip_string(b, j);
                continue;
            }
            b'(' | b'[' => depth += 1,
            b')' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 && comma.is_none() => comma = Some(j),
            _ => {}
        }
        j += 1;
    }
    let Some(comma) = comma else { return Ok(()) }; // malformed: the parser says why
    let arg = std::str::from_utf8(&b[comma + 1..j.min(b.len())]).map_err(|_| refused())?.trim();
    let ab = arg.as_bytes();
    let literal = matches!(ab.first(), Some(b'\'' | b'"')) && skip_string(ab, 0) == ab.len();
    if literal {
        Ok(())
    } else {
        Err(refused())
    }
}

// RFC 9535 `match()` and `search()`, registered over the engine's own (its
// registry looks these up first). Same semantics (I-Regexp via the regex
// crate, `(?R)` line endings), but each pattern is compiled once per worker
// instead of once per node: with literal patterns only, the cache holds at
// most the configuration's patterns.

/// Whether the whole text (`match`) or a part of it (`search`) fits a pattern.
#[derive(Clone, Copy)]
enum Anchoring {
    Whole,
    Part,
}

type Cache = RefCell<HashMap<String, Option<regex::Regex>>>;

thread_local! {
    // Keyed by the pattern as written, so a hit allocates nothing.
    static WHOLE: Cache = RefCell::new(HashMap::new());
    static PART: Cache = RefCell::new(HashMap::new());
}

/// Cached patterns beyond this are compiled per call (cannot happen with
/// literal patterns, which come from the configuration only).
const MAX_PATTERNS: usize = 256;

fn regex_holds(anchoring: Anchoring, pattern: &str, text: &str) -> bool {
    let holds = |cache: &Cache| {
        let mut cache = cache.borrow_mut();
        if let Some(compiled) = cache.get(pattern) {
            return compiled.as_ref().is_some_and(|r| r.is_match(text));
        }
        let full = match anchoring {
            Anchoring::Whole => format!("(?R)^({pattern})$"),
            Anchoring::Part => format!("(?R)({pattern})"),
        };
        let compiled = regex::Regex::new(&full).ok();
        let holds = compiled.as_ref().is_some_and(|r| r.is_match(text));
        if cache.len() < MAX_PATTERNS {
            cache.insert(pattern.to_string(), compiled);
        }
        holds
    };
    match anchoring {
        Anchoring::Whole => WHOLE.with(holds),
        Anchoring::Part => PART.with(holds),
    }
}

#[serde_json_path::function(name = "match")]
fn match_function(value: ValueType, rgx: ValueType) -> LogicalType {
    match (value.as_value(), rgx.as_value()) {
        (Some(Value::String(s)), Some(Value::String(r))) => regex_holds(Anchoring::Whole, r, s).into(),
        _ => LogicalType::False,
    }
}

#[serde_json_path::function(name = "search")]
fn search_function(value: ValueType, rgx: ValueType) -> LogicalType {
    match (value.as_value(), rgx.as_value()) {
        (Some(Value::String(s)), Some(Value::String(r))) => regex_holds(Anchoring::Part, r, s).into(),
        _ => LogicalType::False,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_compile() {
        for q in [
            "$[?match(@.a, 'a.*')]",
            "$[?search(@.a, \"b\")]",
            "$[?match(@.a, 'x,y)') && search(@.b, 'z')]",
            "$.match",
            "$['match(@.a, @.b)']",
            "$[?@.match == 1]",
        ] {
            assert!(compile(q).is_ok(), "{q}: {:?}", compile(q).err());
        }
    }

    #[test]
    fn match_and_search_keep_their_meaning_with_the_cache() {
        let doc = serde_json::json!([{"t": "abc"}, {"t": "xabcx"}, {"t": "ab\ncd"}, {"t": 1}]);
        let count = |q: &str| compile(q).unwrap().query(&doc).len();
        assert_eq!(count("$[?match(@.t, 'abc')]"), 1);
        assert_eq!(count("$[?search(@.t, 'abc')]"), 2);
        assert_eq!(count("$[?search(@.t, '^cd')]"), 0, "anchors are not multi-line");
        assert_eq!(count("$[?match(@.t, '[')]"), 0, "an invalid pattern never holds");
        for _ in 0..3 {
            assert_eq!(count("$[?match(@.t, 'a.c')]"), 1, "the cached pattern answers the same");
        }
    }

    #[test]
    fn patterns_from_the_document_are_refused() {
        for q in [
            "$[?match(@.a, @.b)]",
            "$[?search(@.a, $.pattern)]",
            "$[?match(@.a, 'x') || search(@.b, @.c)]",
            "$[?search(@.a, 'x' )] [?match( @.a , @.p )]",
        ] {
            let e = compile(q).unwrap_err();
            assert!(e.contains("string literal"), "{q}: {e}");
        }
    }
}
