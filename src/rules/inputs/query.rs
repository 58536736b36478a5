//! `jsonpath("$..")` inside templates.
//!
//! The query is a string literal of the template, compiled with the
//! configuration (`scan.rs` finds the calls); at render time the function
//! only looks the query up in that set and refuses any other text, so a
//! query (and the regex patterns in it) can never come from the payload,
//! whatever the template does (`{% set f = jsonpath %}{{ f(payload.q) }}`).
//!
//! Every call is charged to the delivery's fuel before it runs: the nodes the
//! query may visit (for a query that can select several nodes, the whole
//! document once per descendant segment, times one plus its filters; one
//! fuel for a singular query), then the nodes it copies out. A loop of calls over a large payload runs out
//! of fuel instead of holding the worker.

use std::collections::HashMap;
use std::sync::Arc;

use minijinja::value::Value;
use minijinja::{Error, ErrorKind, State};
use serde_json::Value as Json;

use crate::rules::jsonpath::Query;

/// The compiled queries of every template, keyed by their decoded text.
pub(super) type Queries = HashMap<String, Query>;

/// Payload nodes one fuel pays for, visited by a query or copied out of the
/// payload. Measured natively (release build): a template loop spends about
/// 0.4 µs per fuel, a descendant query about 0.16 µs per node; at 2 nodes a
/// fuel, query work costs no longer per fuel than template instructions.
pub(super) const NODES_PER_FUEL: u64 = 2;

/// Fuel for a singular query (`$.a.b`): a few lookups.
const SINGULAR_FUEL: u64 = 1;

fn fuel_for(nodes: u64) -> u64 {
    nodes.div_ceil(NODES_PER_FUEL).max(1)
}

/// The nodes of `v`, itself included, counted up to `limit`.
fn count_nodes(v: &Json, limit: u64) -> u64 {
    let mut n = 0u64;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        n += 1;
        if n > limit {
            break;
        }
        match v {
            Json::Array(items) => stack.extend(items.iter()),
            Json::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    n
}

/// What one call is refused with: a query the configuration did not compile.
fn not_compiled() -> Error {
    Error::new(ErrorKind::InvalidOperation, "jsonpath() runs only the string literal queries of the configuration")
}

/// The `jsonpath` function of the environment, over `queries`.
pub(super) fn function(queries: Arc<Queries>) -> impl Fn(&State, &str) -> Result<Value, Error> + Send + Sync + 'static {
    move |state: &State, text: &str| {
        let query = queries.get(text).ok_or_else(not_compiled)?;
        let payload = state.lookup("payload").unwrap_or_default();
        let Some((root, nodes)) = super::lazy::root_and_size(&payload) else {
            // `payload` was shadowed by a template variable: nothing to query.
            return Ok(if query.singular { Value::from(()) } else { Value::from(Vec::<Value>::new()) });
        };
        if query.singular {
            state.consume_fuel(SINGULAR_FUEL)?;
            let node = query.path.query(&root).at_most_one().ok().flatten();
            let size = node.map_or(0, |n| count_nodes(n, u64::MAX));
            state.consume_fuel(fuel_for(size))?;
            return Ok(node.map_or_else(|| Value::from(()), super::json_to_minijinja));
        }
        state.consume_fuel(fuel_for(nodes.saturating_mul(query.passes)))?;
        let found = query.path.query(&root).all();
        // The copy is paid before it is made; counting stops past what is left.
        let left = state.fuel_levels().map_or(u64::MAX, |(_, left)| left.saturating_mul(NODES_PER_FUEL));
        let mut size = 0u64;
        for node in &found {
            size = size.saturating_add(count_nodes(node, left.saturating_sub(size)));
            if size > left {
                break;
            }
        }
        state.consume_fuel(fuel_for(size))?;
        Ok(Value::from(found.into_iter().map(super::json_to_minijinja).collect::<Vec<_>>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_counted_up_to_the_limit() {
        let doc = serde_json::json!({"a": [1, 2, {"b": null}], "c": "x"});
        assert_eq!(count_nodes(&doc, u64::MAX), 7);
        assert_eq!(count_nodes(&doc, 3), 4, "stops one past the limit");
        assert_eq!(fuel_for(0), 1);
        assert_eq!(fuel_for(NODES_PER_FUEL + 1), 2);
    }

    /// The second line of defence: whatever reaches the function at render
    /// time, only the configuration's queries run.
    #[test]
    fn only_compiled_queries_run() {
        let mut queries = Queries::new();
        queries.insert("$.a".to_string(), crate::rules::jsonpath::compile_query("$.a").unwrap());
        let mut env = minijinja::Environment::new();
        env.add_function("jsonpath", function(Arc::new(queries)));
        let payload = Arc::new(serde_json::json!({"a": 1, "q": "$..*"}));
        let ctx = minijinja::context! { payload => super::super::lazy::document(&payload) };
        let render = |t: &str| env.render_str(t, ctx.clone());
        assert_eq!(render("{{ jsonpath('$.a') }}").unwrap(), "1");
        let e = render("{{ jsonpath(payload.q) }}").unwrap_err();
        assert!(e.to_string().contains("string literal queries of the configuration"), "{e}");
        assert!(render("{{ jsonpath('$.b') }}").is_err(), "a literal the configuration did not compile");
    }
}
