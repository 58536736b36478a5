//! Agent inputs (README "Inputs"): each input is a minijinja template over
//! `payload`, `headers` and `trigger`, or an RFC 9535 JSONPath query over the
//! payload; optionally required, typed and defaulted.
//!
//! Every input of every trigger is compiled once, at configure time, into one
//! shared `Environment`. A template that is exactly one `{{ expr }}` is
//! compiled as an expression and keeps its JSON type; any other text renders
//! to a string. Rendering runs on a fuel budget and never HTML-escapes.

use std::collections::BTreeMap;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Expression, State, Template, UndefinedBehavior};
use serde_json::Value as Json;
use serde_json_path::JsonPath;

use crate::host::Headers;
use self_cell::self_cell;

mod lazy;
mod path;
mod spec;

pub use spec::InputType;
use spec::{RawInput, Source};

/// Template instructions one delivery may spend on all its inputs: a loop over
/// a payload array cannot hold a worker.
pub const FUEL: u64 = 50_000;

/// What templates see: `payload`, `headers`, `trigger`.
pub struct RenderContext<'a> {
    /// Shared, so that templates read it lazily (`lazy.rs`).
    pub payload: &'a std::sync::Arc<Json>,
    pub headers: &'a Headers,
    /// Signature headers, kept out of templates so none can copy them.
    pub hidden_headers: &'a [String],
    pub trigger_id: &'a str,
    pub agent_id: &'a str,
    pub source: &'a str,
}

impl RenderContext<'_> {
    fn visible(&self, name: &str) -> bool {
        !name.starts_with(':') && !self.hidden_headers.iter().any(|h| h == name)
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
            payload => lazy::document(self.payload),
            headers => Value::from(minijinja::value::Serde(&headers)),
            trigger => minijinja::context! {
                id => self.trigger_id,
                agent_id => self.agent_id,
                source => self.source,
            },
        }
    }
}

/// A JSON value as minijinja sees it, converted whole (the payload itself is
/// read lazily, see `lazy.rs`). Integers stay integers, exactly, up to
/// 128 bits (the document's numbers are kept as written; minijinja has no
/// wider integer); every other number is a double.
fn json_to_minijinja(v: &Json) -> Value {
    match v {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else if let Some(i) = spec::integer_text(&n.to_string()).and_then(|t| t.parse::<i128>().ok()) {
                Value::from(i)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(json_to_minijinja).collect::<Vec<_>>()),
        Json::Object(map) => {
            Value::from(map.iter().map(|(k, v)| (k.clone(), json_to_minijinja(v))).collect::<BTreeMap<String, Value>>())
        }
    }
}

/// Where each trigger's inputs live in the compiled set.
pub type InputsId = usize;

enum Piece<'env> {
    Literal(Json),
    /// A plain lookup, evaluated without minijinja.
    Path(path::PathExpr),
    Expr(Expression<'env, 'env>),
    Text(Template<'env, 'env>),
    JsonPath {
        path: JsonPath,
        first: bool,
    },
}

struct Input<'env> {
    name: String,
    piece: Piece<'env>,
    required: bool,
    ty: Option<InputType>,
    default: Option<Json>,
}

type Compiled<'env> = Vec<Vec<Input<'env>>>;

self_cell!(
    struct Cell {
        owner: Environment<'static>,
        #[covariant]
        dependent: Compiled,
    }
);

/// The raw inputs of one trigger, before compilation: (name, value).
pub type RawInputs = Vec<(String, Json)>;

/// Compiled inputs of all triggers.
pub struct TemplateSet {
    cell: Cell,
}

impl std::fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateSet").field("triggers", &self.cell.borrow_dependent().len()).finish()
    }
}

/// An input that does not compile; `field` is the key inside the input
/// (`jsonpath`, `type`, ...) when the error is about one.
#[derive(Debug)]
pub struct TemplateError {
    pub trigger: usize,
    pub input: String,
    pub field: Option<&'static str>,
    pub message: String,
}

/// Why a verified delivery's inputs cannot be delivered (422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// A required input rendered null or absent.
    Missing(String),
    /// The value is not of the declared type, and no lossless coercion exists.
    Invalid(String),
    /// A JSONPath input selects more than the inputs may carry.
    TooLarge,
}

/// A deep copy of `v`, or `None` once it would exceed `budget` bytes of JSON
/// (roughly): a query such as `$..*` over a large document stops early
/// instead of copying megabytes.
fn clone_within(v: &Json, budget: &mut isize) -> Option<Json> {
    *budget -= match v {
        Json::String(s) => s.len() as isize + 3,
        Json::Number(_) => 8,
        _ => 5,
    };
    if *budget < 0 {
        return None;
    }
    Some(match v {
        Json::Array(items) => Json::Array(items.iter().map(|i| clone_within(i, budget)).collect::<Option<_>>()?),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    *budget -= k.len() as isize + 4;
                    Some((k.clone(), clone_within(v, budget)?))
                })
                .collect::<Option<_>>()?,
        ),
        scalar => scalar.clone(),
    })
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

/// `jsonpath("$..")` inside templates: the nodes the query selects in the
/// payload, as a list. The query text is the template's, never the payload's.
fn jsonpath_function(state: &State, query: &str) -> Result<Value, Error> {
    let path = crate::rules::jsonpath::compile(query).map_err(|e| Error::new(ErrorKind::InvalidOperation, e))?;
    let payload = state.lookup("payload").unwrap_or_default();
    let nodes = match lazy::root_of(&payload) {
        Some(root) => path.query(&root).all().into_iter().map(json_to_minijinja).collect::<Vec<_>>(),
        None => Vec::new(),
    };
    Ok(Value::from(nodes))
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // An absent path renders as null instead of failing the delivery.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Inputs are JSON values, never HTML: no input is escaped, whatever its name.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.add_function("jsonpath", jsonpath_function);
    env
}

impl TemplateSet {
    pub fn compile(all: Vec<RawInputs>) -> Result<TemplateSet, TemplateError> {
        let mut env = environment();
        let mut parsed: Vec<Vec<(String, RawInput)>> = Vec::with_capacity(all.len());
        for (t, inputs) in all.into_iter().enumerate() {
            let mut list = Vec::with_capacity(inputs.len());
            for (name, value) in inputs {
                let raw = RawInput::parse(value).map_err(|(field, message)| TemplateError {
                    trigger: t,
                    input: name.clone(),
                    field,
                    message,
                })?;
                if let Source::Template(text) = &raw.source {
                    if lone_expression(text).is_none() {
                        env.add_template_owned(template_name(t, &name), text.clone()).map_err(|e| TemplateError {
                            trigger: t,
                            input: name.clone(),
                            field: None,
                            message: e.to_string(),
                        })?;
                    }
                }
                list.push((name, raw));
            }
            parsed.push(list);
        }
        let cell = Cell::try_new(env, |env| {
            let mut compiled = Vec::with_capacity(parsed.len());
            for (t, inputs) in parsed.into_iter().enumerate() {
                let mut out = Vec::with_capacity(inputs.len());
                for (name, raw) in inputs {
                    let error = |field, e: String| TemplateError { trigger: t, input: name.clone(), field, message: e };
                    let piece = match raw.source {
                        Source::Literal(v) => Piece::Literal(v),
                        Source::JsonPath { query, first } => Piece::JsonPath {
                            path: crate::rules::jsonpath::compile(&query).map_err(|e| error(Some("jsonpath"), e))?,
                            first,
                        },
                        Source::Template(text) => match lone_expression(&text) {
                            Some(expr) => match path::parse(expr).filter(path::PathExpr::fast) {
                                Some(p) => Piece::Path(p),
                                None => env
                                    .compile_expression_owned(expr.to_string())
                                    .map(Piece::Expr)
                                    .map_err(|e| error(raw.template_field, e.to_string()))?,
                            },
                            None => env
                                .get_template(&template_name(t, &name))
                                .map(Piece::Text)
                                .map_err(|e| error(raw.template_field, e.to_string()))?,
                        },
                    };
                    out.push(Input { piece, required: raw.required, ty: raw.ty, default: raw.default, name });
                }
                compiled.push(out);
            }
            Ok::<_, TemplateError>(compiled)
        })?;
        Ok(TemplateSet { cell })
    }

    /// Renders the inputs of trigger `id`. A template that fails at render
    /// time (a filter error on unexpected data, or the fuel ran out) yields
    /// null for that input and is reported in `failed`; then `default`,
    /// `required` and `type` apply.
    /// `max_bytes` bounds what a JSONPath input may copy out of the payload.
    pub fn render(
        &self,
        id: InputsId,
        ctx: &RenderContext,
        max_bytes: usize,
        failed: &mut Vec<String>,
    ) -> Result<serde_json::Map<String, Json>, InputError> {
        let mut out = serde_json::Map::new();
        let Some(inputs) = self.cell.borrow_dependent().get(id) else { return Ok(out) };
        // Built only when some input needs minijinja, once per delivery.
        let mut mj: Option<Value> = None;
        for input in inputs {
            let value = match &input.piece {
                Piece::Literal(v) => Ok(v.clone()),
                Piece::Path(p) => Ok(p.eval(ctx)),
                Piece::JsonPath { path, first } => {
                    let nodes = path.query(ctx.payload);
                    let mut budget = max_bytes as isize;
                    let picked = if *first { nodes.first().into_iter().collect() } else { nodes.all() };
                    let mut out = Vec::with_capacity(picked.len().min(1024));
                    for node in picked {
                        out.push(clone_within(node, &mut budget).ok_or(InputError::TooLarge)?);
                    }
                    Ok(if *first { out.pop().unwrap_or(Json::Null) } else { Json::Array(out) })
                }
                Piece::Expr(e) => e
                    .eval(mj.get_or_insert_with(|| ctx.to_minijinja()).clone())
                    .map(|v| serde_json::to_value(&v).unwrap_or(Json::Null)),
                Piece::Text(t) => t.render(mj.get_or_insert_with(|| ctx.to_minijinja()).clone()).map(Json::String),
            };
            let value = value.unwrap_or_else(|_| {
                failed.push(input.name.clone());
                Json::Null
            });
            let value = match (value, &input.default) {
                (Json::Null, Some(d)) => d.clone(),
                (v, _) => v,
            };
            if value.is_null() {
                if input.required {
                    return Err(InputError::Missing(input.name.clone()));
                }
                out.insert(input.name.clone(), value);
                continue;
            }
            let value = match input.ty {
                Some(ty) => ty.coerce(value).ok_or_else(|| InputError::Invalid(input.name.clone()))?,
                None => value,
            };
            out.insert(input.name.clone(), value);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
