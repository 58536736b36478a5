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

/// A compiled query of the inputs, with what its shape tells.
#[derive(Debug)]
pub struct Query {
    pub path: JsonPath,
    /// RFC 9535 §2.3.5.1: name and index selectors only, no descendant
    /// segment (`$.invoice.total`, `$.items[0].sku`): at most one node.
    pub singular: bool,
    /// Passes over the document the query may make, for the work budget:
    /// one per descendant segment (at least one), times (1 + filter
    /// selectors), since a filter runs a query of its own on every node.
    pub passes: u64,
}

/// Compiles a query of the inputs (see [`Query`]).
pub fn compile_query(text: &str) -> Result<Query, String> {
    let path = compile(text)?;
    let (descendants, filters) = shape(text);
    Ok(Query { path, singular: is_singular(text), passes: descendants.max(1).saturating_mul(1 + filters) })
}

/// Whether a query that parses is singular. RFC 9535 allows only singular
/// queries as the operands of a comparison, and the engine enforces it (its
/// AST is private): `$[?<query> == null]` parses exactly when the query is
/// singular.
fn is_singular(text: &str) -> bool {
    text.starts_with('$') && JsonPath::parse(&format!("$[?{text} == null]")).is_ok()
}

/// Descendant segments (`..`) and filter selectors (`?`) outside string
/// literals.
fn shape(q: &str) -> (u64, u64) {
    let b = q.as_bytes();
    let (mut descendants, mut filters, mut i) = (0u64, 0u64, 0);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                i = skip_string(b, i);
                continue;
            }
            b'.' if b.get(i + 1) == Some(&b'.') => {
                descendants += 1;
                i += 2;
                continue;
            }
            b'?' => filters += 1,
            _ => {}
        }
        i += 1;
    }
    (descendants, filters)
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

/// The index just past the string literal starting at `i` (`'..'` or
/// `".."`, backslash escapes): JSONPath's and minijinja's alike.
pub(crate) fn skip_string(b: &[u8], i: usize) -> usize {
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
    fn singular_queries_are_told_apart() {
        for q in ["$", "$.invoice.total", "$.items[0].sku", "$['a b'][-1]", "$[\"x\"]['y'].z", "$.a[0][1]"] {
            assert!(compile_query(q).unwrap().singular, "{q}");
        }
        for q in [
            "$.items[*]",
            "$..total",
            "$.items[0:1]",
            "$.items[?@.qty > 1]",
            "$.a['b','c']",
            "$.a[0,1]",
            "$.*",
            "$.a..b",
            "$.items[0].*",
        ] {
            assert!(!compile_query(q).unwrap().singular, "{q}");
        }
        // A comparison inside a filter does not make the query singular.
        assert!(!compile_query("$[?@.a == 1]").unwrap().singular);
    }

    #[test]
    fn passes_follow_descendants_and_filters() {
        assert_eq!(compile_query("$.a.b").unwrap().passes, 1);
        assert_eq!(compile_query("$..a").unwrap().passes, 1);
        assert_eq!(compile_query("$.a[?@.b > 1]").unwrap().passes, 2);
        assert_eq!(compile_query("$..a[?@.b == '..?']").unwrap().passes, 2, "string literals do not count");
        assert_eq!(compile_query("$..*[?@..x]").unwrap().passes, 4);
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
