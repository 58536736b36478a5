//! Agent inputs (docs "Inputs"): each input is a minijinja template over
//! `payload`, `headers` and `trigger`, or an RFC 9535 JSONPath query over the
//! payload; optionally required, typed and defaulted.
//!
//! Every input of every trigger is compiled once, at configure time, into one
//! shared `Environment`: the templates of a trigger become the blocks of one
//! template, so that a delivery renders them all in one minijinja state and
//! one fuel budget (`render_block` keeps the state when a block fails). A
//! template that is exactly one `{{ expr }}` keeps its JSON type (its block
//! hands the value over with `__input_value`); any other text renders to a
//! string. Rendering never HTML-escapes.

use std::collections::BTreeMap;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, State, Template, UndefinedBehavior};
use serde_json::Value as Json;

use crate::rules::jsonpath::{compile_query, Query};

use crate::host::Headers;
use self_cell::self_cell;

mod blocks;
mod lazy;
mod path;
mod query;
mod scan;
mod spec;

use blocks::{block_body, block_name, check_template, lone_expression, template_name};
pub use spec::InputType;
use spec::{RawInput, Source};

/// Fuel one delivery may spend on all its template inputs together
/// (instructions, data, and the work of `jsonpath()`): a loop over a payload
/// array cannot hold a worker.
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

enum Piece {
    Literal(Json),
    /// A plain lookup, evaluated without minijinja.
    Path(path::PathExpr),
    /// A block of the trigger's template: one expression, whose value is
    /// kept, or text.
    Block {
        name: String,
        expression: bool,
    },
    JsonPath {
        query: Query,
        first: bool,
    },
}

struct Input {
    name: String,
    piece: Piece,
    required: bool,
    ty: Option<InputType>,
    default: Option<Json>,
}

struct Trigger<'env> {
    inputs: Vec<Input>,
    /// The blocks of its templates; `None` when no input needs minijinja.
    template: Option<Template<'env, 'env>>,
}

type Compiled<'env> = Vec<Trigger<'env>>;

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

/// The temp through which an expression's block hands over its value.
const VALUE_TEMP: &str = "__combo_input_value";

fn environment(queries: query::Queries) -> Environment<'static> {
    let mut env = Environment::new();
    // An absent path renders as null instead of failing the delivery.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Inputs are JSON values, never HTML: no input is escaped, whatever its name.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    // One state per delivery, so this is the delivery's budget.
    env.set_fuel(Some(FUEL));
    env.add_function("jsonpath", query::function(std::sync::Arc::new(queries)));
    env.add_function("__input_value", |state: &mut State, v: Value| {
        state.set_temp(VALUE_TEMP, v);
        Value::from("")
    });
    env
}

impl TemplateSet {
    pub fn compile(all: Vec<RawInputs>) -> Result<TemplateSet, TemplateError> {
        let mut queries = query::Queries::new();
        let mut parsed: Vec<Vec<(String, RawInput)>> = Vec::with_capacity(all.len());
        let mut sources: Vec<Option<String>> = Vec::with_capacity(all.len());
        for (t, inputs) in all.into_iter().enumerate() {
            let mut list = Vec::with_capacity(inputs.len());
            let mut source = String::new();
            for (i, (name, value)) in inputs.into_iter().enumerate() {
                let error = |field, message| TemplateError { trigger: t, input: name.clone(), field, message };
                let raw = RawInput::parse(value).map_err(|(field, message)| error(field, message))?;
                match &raw.source {
                    Source::Template(text) => {
                        let lone = lone_expression(text);
                        let fast = lone.and_then(path::parse).is_some_and(|p| p.fast());
                        check_template(&template_name(t, &name), text, lone, &mut queries)
                            .map_err(|m| error(raw.template_field, m))?;
                        if !fast {
                            let body = block_body(text, lone);
                            source.push_str(&format!("{{% block {} %}}{body}{{% endblock %}}", block_name(i)));
                        }
                    }
                    Source::JsonPath { .. } | Source::Literal(_) => {}
                }
                list.push((name, raw));
            }
            parsed.push(list);
            sources.push((!source.is_empty()).then(|| format!("{{% if false %}}{source}{{% endif %}}")));
        }
        let mut env = environment(queries);
        for (t, source) in sources.into_iter().enumerate() {
            if let Some(source) = source {
                env.add_template_owned(format!("triggers[{t}].action.inputs"), source).map_err(|e| TemplateError {
                    trigger: t,
                    input: String::new(),
                    field: None,
                    message: e.to_string(),
                })?;
            }
        }
        let cell = Cell::try_new(env, |env| {
            let mut compiled = Vec::with_capacity(parsed.len());
            for (t, inputs) in parsed.into_iter().enumerate() {
                let template = env.get_template(&format!("triggers[{t}].action.inputs")).ok();
                let mut out = Vec::with_capacity(inputs.len());
                for (i, (name, raw)) in inputs.into_iter().enumerate() {
                    let error = |field, message| TemplateError { trigger: t, input: name.clone(), field, message };
                    let piece = match raw.source {
                        Source::Literal(v) => Piece::Literal(v),
                        Source::JsonPath { query, first } => {
                            let query = compile_query(&query).map_err(|e| error(Some("jsonpath"), e))?;
                            if !query.singular && !first && raw.ty.is_some_and(|ty| ty != InputType::Array) {
                                return Err(error(Some("type"), ARRAY_ONLY.to_string()));
                            }
                            Piece::JsonPath { query, first }
                        }
                        Source::Template(text) => match lone_expression(&text).and_then(path::parse) {
                            Some(p) if p.fast() => Piece::Path(p),
                            _ => Piece::Block { name: block_name(i), expression: lone_expression(&text).is_some() },
                        },
                    };
                    out.push(Input { piece, required: raw.required, ty: raw.ty, default: raw.default, name });
                }
                compiled.push(Trigger { inputs: out, template });
            }
            Ok::<_, TemplateError>(compiled)
        })?;
        Ok(TemplateSet { cell })
    }

    /// Renders the inputs of trigger `id`. A template that fails at render
    /// time (a filter error on unexpected data, or the delivery's fuel ran
    /// out) yields null for that input and is reported in `failed`; then
    /// `default`, `required` and `type` apply.
    /// `max_bytes` bounds what a JSONPath input may copy out of the payload.
    pub fn render(
        &self,
        id: InputsId,
        ctx: &RenderContext,
        max_bytes: usize,
        failed: &mut Vec<String>,
    ) -> Result<serde_json::Map<String, Json>, InputError> {
        let mut out = serde_json::Map::new();
        let Some(trigger) = self.cell.borrow_dependent().get(id) else { return Ok(out) };
        // One minijinja state per delivery, built only when a block is rendered:
        // every block spends the same fuel.
        let mut state = None;
        for input in &trigger.inputs {
            let value = match &input.piece {
                Piece::Literal(v) => Ok(v.clone()),
                Piece::Path(p) => Ok(p.eval(ctx)),
                Piece::JsonPath { query, first } => {
                    let nodes = query.path.query(ctx.payload);
                    let mut budget = max_bytes as isize;
                    let picked =
                        if *first || query.singular { nodes.first().into_iter().collect() } else { nodes.all() };
                    let mut copied = Vec::with_capacity(picked.len().min(1024));
                    for node in picked {
                        copied.push(clone_within(node, &mut budget).ok_or(InputError::TooLarge)?);
                    }
                    Ok(if *first || query.singular { copied.pop().unwrap_or(Json::Null) } else { Json::Array(copied) })
                }
                Piece::Block { name, expression } => match &trigger.template {
                    Some(template) => {
                        if state.is_none() {
                            state = template.render_captured(ctx.to_minijinja()).ok();
                        }
                        render_block(state.as_mut(), name, *expression)
                    }
                    None => Err(()),
                },
            };
            let value = value.unwrap_or_else(|()| {
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

const ARRAY_ONLY: &str = "the query can select several nodes, so its value is always an array: declare type: array, \
                          add first: true, or use a singular query ($.a.b, $.items[0])";

/// One block of the delivery's state: an expression's value, or the text.
fn render_block(state: Option<&mut minijinja::Captured>, name: &str, expression: bool) -> Result<Json, ()> {
    let state = state.ok_or(())?;
    state.with_state_mut(|s| {
        s.set_temp(VALUE_TEMP, Value::UNDEFINED);
        let text = s.render_block(name).map_err(|_| ())?;
        if !expression {
            return Ok(Json::String(text));
        }
        let v = s.get_temp(VALUE_TEMP).unwrap_or_default();
        Ok(serde_json::to_value(&v).unwrap_or(Json::Null))
    })
}

#[cfg(test)]
mod tests;
