//! The JSONPath engine the filter compiles `match.jsonpath` with (serde_json_path)
//! against the RFC 9535 compliance suite: every one of its 703 cases.

use serde_json::Value;
use serde_json_path::JsonPath;

#[test]
fn rfc9535_compliance_suite() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jsonpath-cts/cts.json"))
        .expect("read the vendored compliance suite");
    let suite: Value = serde_json::from_str(&text).expect("suite is JSON");
    let tests = suite["tests"].as_array().expect("tests array");
    assert_eq!(tests.len(), 703);
    let mut failures = Vec::new();
    for case in tests {
        let name = case["name"].as_str().unwrap_or("?");
        let selector = case["selector"].as_str().unwrap_or("");
        let parsed = JsonPath::parse(selector);
        if case["invalid_selector"].as_bool() == Some(true) {
            if parsed.is_ok() {
                failures.push(format!("{name}: accepted invalid selector {selector:?}"));
            }
            continue;
        }
        let Ok(path) = parsed else {
            failures.push(format!("{name}: rejected valid selector {selector:?}"));
            continue;
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
}
