//! Agent inputs rendered with minijinja from `payload`, `headers` and `trigger`.
//!
//! Every template of every trigger is compiled once, at configure time, into one
//! shared `Environment`. An input that is exactly one `{{ expr }}` is compiled as
//! an expression and keeps its JSON type; any other text renders to a string.

use std::collections::BTreeMap;

use minijinja::{Environment, Expression, Template, UndefinedBehavior, Value};

use crate::host::Headers;
use self_cell::self_cell;

mod path;

/// What templates see: `payload`, `headers`, `trigger`.
pub struct RenderContext<'a> {
    pub payload: &'a serde_json::Value,
    pub headers: &'a Headers,
    /// Signature headers, kept out of templates so none can copy them.
    pub hidden_headers: &'a [&'a str],
    pub trigger_id: &'a str,
    pub agent_id: &'a str,
    pub source: &'a str,
}

impl RenderContext<'_> {
    fn visible(&self, name: &str) -> bool {
        !name.starts_with(':') && !self.hidden_headers.contains(&name)
    }

    /// A header as templates see it: lowercase name, first value.
    fn header(&self, name: &str) -> Option<&str> {
        if self.visible(name) {
            self.headers.first(name)
        } else {
            None
        }
    }

    fn to_minijinja(&self) -> Value {
        let mut headers = BTreeMap::new();
        for (k, v) in self.headers.iter().filter(|(k, _)| self.visible(k)) {
            headers.entry(k).or_insert(v);
        }
        minijinja::context! {
            payload => Value::from(minijinja::value::Serde(self.payload)),
            headers => Value::from(minijinja::value::Serde(&headers)),
            trigger => minijinja::context! {
                id => self.trigger_id,
                agent_id => self.agent_id,
                source => self.source,
            },
        }
    }
}

/// Where each trigger's inputs live in the compiled set.
pub type InputsId = usize;

enum Piece<'env> {
    Literal(serde_json::Value),
    /// A plain lookup, evaluated without minijinja.
    Path(path::PathExpr),
    Expr(Expression<'env, 'env>),
    Text(Template<'env, 'env>),
}

type Compiled<'env> = Vec<Vec<(String, Piece<'env>)>>;

self_cell!(
    struct Cell {
        owner: Environment<'static>,
        #[covariant]
        dependent: Compiled,
    }
);

/// The raw templates of one trigger, before compilation: (name, value).
pub type RawInputs = Vec<(String, serde_json::Value)>;

/// Compiled inputs of all triggers.
pub struct TemplateSet {
    cell: Cell,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSet").field("triggers", &self.cell.borrow_dependent().len()).finish()
    }
}

/// An input that does not compile.
#[derive(Debug)]
pub struct TemplateError {
    pub trigger: usize,
    pub input: String,
    pub message: String,
}

fn template_error(trigger: usize, input: &str, e: impl ToString) -> TemplateError {
    TemplateError { trigger, input: input.to_string(), message: e.to_string() }
}

/// `Some(expr)` when `text` is exactly one `{{ expr }}`.
fn lone_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#") {
        return None;
    }
    Some(inner.trim())
}

fn template_name(trigger: usize, input: &str) -> String {
    format!("triggers[{trigger}].action.inputs.{input}")
}

impl TemplateSet {
    pub fn compile(all: Vec<RawInputs>) -> Result<TemplateSet, TemplateError> {
        let mut env = Environment::new();
        // An absent path renders as null instead of failing the delivery.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        for (t, inputs) in all.iter().enumerate() {
            for (name, value) in inputs {
                if let serde_json::Value::String(text) = value {
                    if lone_expression(text).is_none() {
                        env.add_template_owned(template_name(t, name), text.clone())
                            .map_err(|e| template_error(t, name, e))?;
                    }
                }
            }
        }
        let cell = Cell::try_new(env, |env| {
            let mut compiled = Vec::with_capacity(all.len());
            for (t, inputs) in all.into_iter().enumerate() {
                let mut pieces = Vec::with_capacity(inputs.len());
                for (name, value) in inputs {
                    let piece = match value {
                        serde_json::Value::String(text) => match lone_expression(&text) {
                            Some(expr) if path::parse(expr).is_some_and(|p| p.fast()) => {
                                Piece::Path(path::parse(expr).ok_or_else(|| template_error(t, &name, "path"))?)
                            }
                            Some(expr) => env
                                .compile_expression_owned(expr.to_string())
                                .map(Piece::Expr)
                                .map_err(|e| template_error(t, &name, e))?,
                            None => env
                                .get_template(&template_name(t, &name))
                                .map(Piece::Text)
                                .map_err(|e| template_error(t, &name, e))?,
                        },
                        literal => Piece::Literal(literal),
                    };
                    pieces.push((name, piece));
                }
                compiled.push(pieces);
            }
            Ok::<_, TemplateError>(compiled)
        })?;
        Ok(TemplateSet { cell })
    }

    /// Renders the inputs of trigger `id`. A template that fails at render time
    /// (a filter error on unexpected data) yields null for that input and is
    /// reported in `failed`, so a verified delivery is never lost to it.
    pub fn render(
        &self,
        id: InputsId,
        ctx: &RenderContext,
        failed: &mut Vec<String>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let Some(pieces) = self.cell.borrow_dependent().get(id) else { return out };
        // Built only when some input needs minijinja, once per delivery.
        let mut mj: Option<Value> = None;
        for (name, piece) in pieces {
            let value = match piece {
                Piece::Literal(v) => Ok(v.clone()),
                Piece::Path(p) => Ok(p.eval(ctx)),
                Piece::Expr(e) => e
                    .eval(mj.get_or_insert_with(|| ctx.to_minijinja()).clone())
                    .map(|v| serde_json::to_value(&v).unwrap_or(serde_json::Value::Null)),
                Piece::Text(t) => {
                    t.render(mj.get_or_insert_with(|| ctx.to_minijinja()).clone()).map(serde_json::Value::String)
                }
            };
            let value = value.unwrap_or_else(|_| {
                failed.push(name.clone());
                serde_json::Value::Null
            });
            out.insert(name.clone(), value);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx<'a>(payload: &'a serde_json::Value, headers: &'a Headers) -> RenderContext<'a> {
        RenderContext {
            payload,
            headers,
            hidden_headers: &[],
            trigger_id: "trg_1",
            agent_id: "agent",
            source: "generic_webhook",
        }
    }

    fn set(inputs: serde_json::Value) -> TemplateSet {
        let raw: RawInputs = inputs.as_object().unwrap().clone().into_iter().collect();
        TemplateSet::compile(vec![raw]).unwrap()
    }

    #[test]
    fn lone_expressions_keep_type() {
        let s = set(json!({
            "id": "{{ payload.ticket.id }}",
            "obj": "{{payload.ticket}}",
            "missing": "{{ payload.nope.deeper }}",
            "text": "Ticket {{ payload.ticket.id }} by {{ headers['x-request-id'] }}",
            "trig": "{{ trigger.id }}",
            "dflt": "{{ payload.nope | default('n/a') }}",
            "lit": 7,
        }));
        let mut failed = vec![];
        let payload = json!({"ticket": {"id": 42, "p": "high"}});
        let headers = Headers::from_pairs([("x-request-id", "r-1")]);
        let out = s.render(0, &ctx(&payload, &headers), &mut failed);
        assert_eq!(out["id"], json!(42));
        assert_eq!(out["obj"], json!({"id": 42, "p": "high"}));
        assert_eq!(out["missing"], serde_json::Value::Null);
        assert_eq!(out["text"], json!("Ticket 42 by r-1"));
        assert_eq!(out["trig"], json!("trg_1"));
        assert_eq!(out["dflt"], json!("n/a"));
        assert_eq!(out["lit"], json!(7));
        assert!(failed.is_empty());
    }

    #[test]
    fn syntax_errors_name_trigger_and_input() {
        let bad = vec![vec![], vec![("x".to_string(), json!("{{ payload. }}"))]];
        let e = TemplateSet::compile(bad).unwrap_err();
        assert_eq!((e.trigger, e.input.as_str()), (1, "x"));
        let bad = vec![vec![("y".to_string(), json!("a {% if %} b"))]];
        assert_eq!(TemplateSet::compile(bad).unwrap_err().input, "y");
    }

    #[test]
    fn render_error_yields_null_and_reports() {
        let s = set(json!({"bad": "{{ payload.a + 1 }}", "ok": "{{ payload.a }}"}));
        let mut failed = vec![];
        let payload = json!({"a": "text"});
        let headers = Headers::from_pairs([("x-request-id", "r-1")]);
        let out = s.render(0, &ctx(&payload, &headers), &mut failed);
        assert_eq!(out["bad"], serde_json::Value::Null);
        assert_eq!(out["ok"], json!("text"));
        assert_eq!(failed, vec!["bad".to_string()]);
    }

    #[test]
    fn lone_expression_detection() {
        assert_eq!(lone_expression(" {{ a.b }} "), Some("a.b"));
        assert_eq!(lone_expression("{{- a -}}"), Some("a"));
        assert_eq!(lone_expression("{{ a }} {{ b }}"), None);
        assert_eq!(lone_expression("x {{ a }}"), None);
    }
}
