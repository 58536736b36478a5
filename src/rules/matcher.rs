//! The trigger's match: RFC 9535 JSONPath conditions, all of which must hold.

use serde_json::Value;
use serde_json_path::JsonPath;

#[derive(Debug)]
enum Test {
    /// `jsonpath` alone: the path selects at least one node.
    Selects,
    Exists(bool),
    Equals(Value),
    In(Vec<Value>),
}

/// A condition that does not compile; `field` is the offending key relative
/// to the condition (`None`: the condition as a whole).
#[derive(Debug)]
pub struct ConditionError {
    pub field: Option<&'static str>,
    pub message: String,
}

#[derive(Debug)]
pub struct Condition {
    path: JsonPath,
    test: Test,
}

impl Condition {
    /// Compiles one condition; errors name the offending key relative to it.
    pub fn compile(
        jsonpath: &str,
        equals: Option<Value>,
        in_: Option<Vec<Value>>,
        exists: Option<bool>,
    ) -> Result<Self, ConditionError> {
        let path = crate::rules::jsonpath::compile(jsonpath)
            .map_err(|message| ConditionError { field: Some("jsonpath"), message })?;
        let test = match (equals, in_, exists) {
            (None, None, None) => Test::Selects,
            (Some(v), None, None) => Test::Equals(v),
            (None, Some(list), None) => Test::In(list),
            (None, None, Some(b)) => Test::Exists(b),
            _ => return Err(ConditionError { field: None, message: "use only one of equals, in, exists".to_string() }),
        };
        Ok(Condition { path, test })
    }

    pub fn holds(&self, doc: &Value) -> bool {
        let nodes = self.path.query(doc);
        match &self.test {
            Test::Selects => !nodes.is_empty(),
            Test::Exists(want) => nodes.is_empty() != *want,
            Test::Equals(v) => nodes.iter().any(|n| json_equal(n, v)),
            Test::In(list) => nodes.iter().any(|n| list.iter().any(|v| json_equal(n, v))),
        }
    }
}

/// All conditions hold (an empty list always holds).
pub fn all_hold(conditions: &[Condition], doc: &Value) -> bool {
    conditions.iter().all(|c| c.holds(doc))
}

/// JSON equality where numbers compare by value: a `google.protobuf.Struct`
/// config turns `equals: 3` into `3.0`, which must still equal a payload's `3`.
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(i), Some(j), _, _) => i == j,
            (_, _, Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(p: &str, eq: Option<Value>, inn: Option<Vec<Value>>, ex: Option<bool>) -> Condition {
        Condition::compile(p, eq, inn, ex).unwrap()
    }

    #[test]
    fn equals_in_exists_selects() {
        let doc = json!({"action": "escalated", "ticket": {"priority": 3, "tags": ["a", "b"]}});
        assert!(cond("$.action", Some(json!("escalated")), None, None).holds(&doc));
        assert!(!cond("$.action", Some(json!("closed")), None, None).holds(&doc));
        assert!(cond("$.ticket.priority", Some(json!(3.0)), None, None).holds(&doc));
        assert!(cond("$.ticket.tags[*]", Some(json!("b")), None, None).holds(&doc));
        assert!(cond("$.action", None, Some(vec![json!("x"), json!("escalated")]), None).holds(&doc));
        assert!(!cond("$.action", None, Some(vec![json!("x")]), None).holds(&doc));
        assert!(cond("$.ticket", None, None, Some(true)).holds(&doc));
        assert!(cond("$.nope", None, None, Some(false)).holds(&doc));
        assert!(!cond("$.nope", None, None, Some(true)).holds(&doc));
        assert!(cond("$.ticket[?@ > 2]", None, None, None).holds(&doc));
        assert!(!cond("$.nope", None, None, None).holds(&doc));
    }

    #[test]
    fn all_must_hold() {
        let doc = json!({"a": 1, "b": 2});
        let cs = vec![cond("$.a", Some(json!(1)), None, None), cond("$.b", Some(json!(3)), None, None)];
        assert!(!all_hold(&cs, &doc));
        assert!(all_hold(&cs[..1], &doc));
        assert!(all_hold(&[], &doc));
    }

    #[test]
    fn invalid_path_and_ambiguous_test_are_errors() {
        assert_eq!(Condition::compile("$[", None, None, None).unwrap_err().field, Some("jsonpath"));
        assert_eq!(Condition::compile("$.a", Some(json!(1)), None, Some(true)).unwrap_err().field, None);
    }

    #[test]
    fn numeric_equality_is_by_value() {
        assert!(json_equal(&json!({"x": [1, 2.0]}), &json!({"x": [1.0, 2]})));
        assert!(!json_equal(&json!(1), &json!("1")));
        assert!(!json_equal(&json!(u64::MAX), &json!(-1)));
    }
}
