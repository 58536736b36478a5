//! The templates of a trigger as the blocks of one template (see
//! `inputs.rs`), and the configure-time checks of each template.

use minijinja::Environment;

use super::{query, scan};
use crate::rules::jsonpath::compile_query;

/// `Some(expr)` when `text` is exactly one `{{ expr }}`.
pub(super) fn lone_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#") {
        return None;
    }
    Some(inner.trim())
}

pub(super) fn template_name(trigger: usize, input: &str) -> String {
    format!("triggers[{trigger}].action.inputs.{input}")
}

/// The body of an input's block: the text as minijinja would read it alone
/// (one trailing newline dropped), and never ending in a `{` that the next
/// tag would continue.
pub(super) fn block_body(text: &str, expression: Option<&str>) -> String {
    if let Some(expr) = expression {
        return format!("{{{{ __input_value(({expr})) }}}}");
    }
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let kept = text.trim_end_matches('{');
    let braces = text.len() - kept.len();
    if braces == 0 {
        return text.to_string();
    }
    format!("{kept}{{{{ '{}' }}}}", "{".repeat(braces))
}

pub(super) fn block_name(index: usize) -> String {
    format!("input_{index}")
}

/// Configure-time checks of one template: it compiles alone (its errors
/// name the input), its `jsonpath()` queries are literals and compile, and
/// it uses no statement that reaches across inputs.
pub(super) fn check_template(
    name: &str,
    text: &str,
    lone: Option<&str>,
    queries: &mut query::Queries,
) -> Result<(), String> {
    let scratch = Environment::new();
    match lone {
        Some(expr) => scratch.compile_expression(expr).map(drop).map_err(|e| e.to_string())?,
        None => scratch.template_from_named_str(name, text).map(drop).map_err(|e| e.to_string())?,
    }
    for literal in scan::scan(lone.unwrap_or(text), lone.is_some())? {
        let text = scratch.compile_expression(literal).and_then(|e| e.eval(())).map_err(|e| e.to_string())?;
        let text = text.as_str().ok_or("jsonpath() takes a string")?.to_string();
        if let std::collections::hash_map::Entry::Vacant(slot) = queries.entry(text) {
            let query = compile_query(slot.key()).map_err(|e| format!("jsonpath(): {e}"))?;
            slot.insert(query);
        }
    }
    Ok(())
}
