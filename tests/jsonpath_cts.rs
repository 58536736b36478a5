//! The filter's own JSONPath compiler (`rules::jsonpath::compile`: the
//! engine, serde_json_path, with the filter's `match()`/`search()` and its
//! literal-pattern rule) against the RFC 9535 compliance suite: every one of
//! its 703 cases. The cases it refuses on purpose (a `match()` or `search()`
//! pattern that is not a string literal) are listed by name below.

use combo_webhook_filter::rules::jsonpath::compile;
use serde_json::Value;

/// Valid in the RFC, refused by the filter: the pattern comes from the
/// document, which would compile a regex per node per request.
const REFUSED_ON_PURPOSE: &[&str] = &[
    "functions, match, regex from the document",
    "functions, match, non-string second arg",
    "functions, match, arg is a function expression",
    "functions, search, regex from the document",
    "functions, search, non-string second arg",
    "functions, search, arg is a function expression",
];

#[test]
fn rfc9535_compliance_suite() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jsonpath-cts/cts.json"))
        .expect("read the vendored compliance suite");
    let suite: Value = serde_json::from_str(&text).expect("suite is JSON");
    let tests = suite["tests"].as_array().expect("tests array");
    assert_eq!(tests.len(), 703);
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    for case in tests {
        let name = case["name"].as_str().unwrap_or("?");
        let selector = case["selector"].as_str().unwrap_or("");
        let parsed = compile(selector);
        if case["invalid_selector"].as_bool() == Some(true) {
            if parsed.is_ok() {
                failures.push(format!("{name}: accepted invalid selector {selector:?}"));
            }
            continue;
        }
        let path = match parsed {
            Ok(path) => path,
            Err(e) if e.contains("literal") => {
                refused.push(name.to_string());
                continue;
            }
            Err(_) => {
                failures.push(format!("{name}: rejected valid selector {selector:?}"));
                continue;
            }
        };
        let got: Vec<Value> = path.query(&case["document"]).all().into_iter().cloned().collect();
        let got = Value::Array(got);
        let ok = match (case.get("result"), case.get("results")) {
            (Some(r), _) => *r == got,
            (None, Some(Value::Array(any))) => any.contains(&got),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: {selector:?} gave {got}"));
        }
    }
    assert!(failures.is_empty(), "{} of 703 failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(refused, REFUSED_ON_PURPOSE, "the cases refused for a non-literal pattern");
}
