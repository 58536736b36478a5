//! What a template's tags call, read from its source at configure time
//! (minijinja does not expose its syntax tree).
//!
//! - Every `jsonpath(...)` call must take one string literal, the query,
//!   which is compiled with the configuration; `jsonpath` named any other
//!   way (`{% set f = jsonpath %}`) is refused. At render time the function
//!   refuses any query the configuration did not compile (`query.rs`), so a
//!   call this scan misses can still never run a query from the payload.
//! - The statements `block`, `extends`, `include`, `import` and `from` are
//!   refused: the inputs render as blocks of one template per trigger
//!   (`inputs.rs`), and these would reach across inputs.
//!
//! The scan is conservative: text that only looks like a tag (inside
//! `{% raw %}`) may be refused, never the other way round.

use crate::rules::jsonpath::skip_string;

/// Statements an input template may not use.
const REFUSED_STATEMENTS: [&str; 5] = ["block", "extends", "include", "import", "from"];

/// The end of the tag whose code starts at `i`: the index of `close`
/// outside string literals, or the end of the text.
fn tag_end(b: &[u8], mut i: usize, close: &[u8; 2]) -> usize {
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = skip_string(b, i),
            _ if b[i..].starts_with(close) => return i,
            _ => i += 1,
        }
    }
    b.len()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The statement name of a `{% ... %}` tag's code.
fn statement(code: &str) -> &str {
    let code = code.trim_start_matches(['-', '+']).trim_start();
    let n = code.bytes().take_while(|c| is_ident(*c)).count();
    &code[..n]
}

/// The string literals passed to `jsonpath(...)` in one piece of code, as
/// written (quotes included).
fn calls<'a>(code: &'a str, out: &mut Vec<&'a str>) -> Result<(), String> {
    let refused =
        || "jsonpath() takes one string literal, the query: a query built at render time is refused".to_string();
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => i = skip_string(b, i),
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && is_ident(b[i]) {
                    i += 1;
                }
                let attribute = code[..start].trim_end().ends_with('.');
                if &code[start..i] != "jsonpath" || attribute {
                    continue;
                }
                let rest = code[i..].trim_start();
                let arg = rest.strip_prefix('(').ok_or_else(refused)?.trim_start();
                if !arg.starts_with(['\'', '"']) {
                    return Err(refused());
                }
                let end = skip_string(arg.as_bytes(), 0);
                if !arg[end..].trim_start().starts_with(')') {
                    return Err(refused());
                }
                out.push(&arg[..end]);
                i = code.len() - arg.len() + end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Scans a template (`expression: false`) or the text of one lone
/// expression; returns the literals passed to `jsonpath()`.
pub(super) fn scan(source: &str, expression: bool) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    if expression {
        calls(source, &mut out)?;
        return Ok(out);
    }
    let b = source.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        let close: &[u8; 2] = match &b[i..i + 2] {
            b"{{" => b"}}",
            b"{%" => b"%}",
            b"{#" => b"#}",
            _ => {
                i += 1;
                continue;
            }
        };
        let start = i + 2;
        let end = if close == b"#}" {
            source[start..].find("#}").map_or(b.len(), |n| start + n)
        } else {
            tag_end(b, start, close)
        };
        let code = &source[start..end];
        if close == b"%}" {
            let name = statement(code);
            if REFUSED_STATEMENTS.contains(&name) {
                return Err(format!("the {name} statement is not available in inputs"));
            }
        }
        if close != b"#}" {
            calls(code, &mut out)?;
        }
        i = end + 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_queries_are_found() {
        assert_eq!(
            scan("{{ jsonpath('$.a') }} {% for x in jsonpath(\"$..b\") %}{% endfor %}", false).unwrap(),
            ["'$.a'", "\"$..b\""]
        );
        assert_eq!(scan("jsonpath( '$[?@.x == \\')\\']' ) | length", true).unwrap(), ["'$[?@.x == \\')\\']'"]);
        assert_eq!(scan("jsonpath('a') ~ jsonpath('b')", true).unwrap(), ["'a'", "'b'"]);
        // Text outside tags, comments, strings and attributes are not calls.
        for t in
            ["jsonpath(payload.q)", "{# jsonpath(payload.q) #}", "{{ 'jsonpath(x)' }}", "{{ payload.jsonpath(1) }}"]
        {
            assert_eq!(scan(t, false).unwrap(), Vec::<&str>::new(), "{t}");
        }
    }

    #[test]
    fn queries_built_at_render_time_are_refused() {
        for t in [
            "{{ jsonpath(payload.q) }}",
            "{{ jsonpath('$.' ~ payload.q) }}",
            "{{ jsonpath('$.a', 1) }}",
            "{{ jsonpath(q='$.a') }}",
            "{% set f = jsonpath %}{{ f('$.a') }}",
            "{{ jsonpath }}",
            "{% for q in payload.qs %}{{ jsonpath(q) }}{% endfor %}",
            "{%- if jsonpath (payload.q) -%}x{% endif %}",
        ] {
            assert!(scan(t, false).unwrap_err().contains("string literal"), "{t}");
        }
        assert!(scan("jsonpath(payload.q)", true).is_err());
    }

    #[test]
    fn statements_that_reach_across_inputs_are_refused() {
        for t in ["{% block b %}x{% endblock %}", "{%- include 'x' %}", "{%+ extends 'x' %}", "{% import 'x' as m %}"] {
            assert!(scan(t, false).unwrap_err().contains("not available"), "{t}");
        }
        assert!(scan("{% if blocked %}{% endif %}{% set from_x = 1 %}", false).is_ok());
    }
}
