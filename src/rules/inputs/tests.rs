use super::*;
use serde_json::json;

fn ctx<'a>(payload: &'a std::sync::Arc<serde_json::Value>, headers: &'a Headers) -> RenderContext<'a> {
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
    let payload = std::sync::Arc::new(json!({"ticket": {"id": 42, "p": "high"}}));
    let headers = Headers::from_pairs([("x-request-id", "r-1")]);
    let out = s.render(0, &ctx(&payload, &headers), 65_536, &mut failed).unwrap();
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
    let payload = std::sync::Arc::new(json!({"a": "text"}));
    let headers = Headers::from_pairs([("x-request-id", "r-1")]);
    let out = s.render(0, &ctx(&payload, &headers), 65_536, &mut failed).unwrap();
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

fn render_one(
    inputs: serde_json::Value,
    payload: serde_json::Value,
) -> Result<serde_json::Map<String, Json>, InputError> {
    let payload = std::sync::Arc::new(payload);
    let headers = Headers::from_pairs([("x-request-id", "r-1")]);
    set(inputs).render(0, &ctx(&payload, &headers), 65_536, &mut vec![])
}

#[test]
fn jsonpath_inputs_take_every_node_or_the_first() {
    let payload = json!({"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 3}, {"sku": "c", "qty": 5}],
        "a_who": {"email": "x@y"}, "b_cc": [{"email": "z@y"}]});
    let out = render_one(
        json!({
            "skus": {"jsonpath": "$.items[?@.qty > 1].sku"},
            "emails": {"jsonpath": "$..email"},
            "email": {"jsonpath": "$..email", "first": true},
            "none": {"jsonpath": "$.nope[*]"},
            "none_first": {"jsonpath": "$.nope", "first": true},
            "via_template": "{{ jsonpath('$.items[*].sku') }}",
            "first_of_filter": {"jsonpath": "$.items[?@.qty > 2].sku", "first": true},
        }),
        payload,
    )
    .unwrap();
    assert_eq!(out["skus"], json!(["b", "c"]));
    assert_eq!(out["emails"], json!(["x@y", "z@y"]));
    assert_eq!(out["email"], json!("x@y"));
    assert_eq!(out["none"], json!([]));
    assert_eq!(out["none_first"], Json::Null);
    assert_eq!(out["via_template"], json!(["a", "b", "c"]));
    assert_eq!(out["first_of_filter"], json!("b"));
}

#[test]
fn required_default_and_type() {
    let inputs = json!({
        "priority": {"template": "{{ payload.p }}", "required": true, "type": "string"},
        "amount": {"jsonpath": "$.total", "first": true, "type": "number", "default": 0},
        "count": {"jsonpath": "$.n", "first": true, "type": "integer"},
    });
    let out = render_one(inputs.clone(), json!({"p": "high", "total": "12.50", "n": "7"})).unwrap();
    let exact: Json = serde_json::from_str("12.50").unwrap();
    assert_eq!((&out["priority"], &out["amount"], &out["count"]), (&json!("high"), &exact, &json!(7)));
    let out = render_one(inputs.clone(), json!({"p": 3})).unwrap();
    assert_eq!((&out["priority"], &out["amount"], &out["count"]), (&json!("3"), &json!(0), &Json::Null));
    assert_eq!(render_one(inputs.clone(), json!({})), Err(InputError::Missing("priority".into())));
    assert_eq!(render_one(inputs.clone(), json!({"p": null})), Err(InputError::Missing("priority".into())));
    assert_eq!(render_one(inputs.clone(), json!({"p": "x", "n": 2.5})), Err(InputError::Invalid("count".into())));
    assert_eq!(render_one(inputs, json!({"p": {"o": 1}})), Err(InputError::Invalid("priority".into())));
}

#[test]
fn a_runaway_template_runs_out_of_fuel() {
    let s = set(json!({"loop": "{% for a in payload.xs %}{% for b in payload.xs %}{{ a }}{% endfor %}{% endfor %}",
        "ok": "{{ payload.n }}"}));
    let payload = std::sync::Arc::new(json!({"xs": (0..1000).collect::<Vec<_>>(), "n": 1}));
    let headers = Headers::default();
    let mut failed = vec![];
    // Stopped by the fuel (the failed list says so), never by a clock: how
    // long that takes is `make bench`'s to measure.
    let out = s.render(0, &ctx(&payload, &headers), 65_536, &mut failed).unwrap();
    assert_eq!(failed, vec!["loop".to_string()], "a million iterations exceed the budget");
    assert_eq!(out["loop"], Json::Null);
    assert_eq!(out["ok"], json!(1));
}

#[test]
fn no_input_is_html_escaped_whatever_its_name() {
    let out = render_one(
        json!({"html": "<{{ payload.s }}>", "xml": "{{ payload.s }}&", "htm": "a {{ payload.s }}"}),
        json!({"s": "<b>&'\""}),
    )
    .unwrap();
    assert_eq!(out["html"], json!("<<b>&'\">"));
    assert_eq!(out["xml"], json!("<b>&'\"&"));
    assert_eq!(out["htm"], json!("a <b>&'\""));
}

#[test]
fn numbers_render_exactly() {
    let doc = r#"{"big": 123456789012345678901234567890, "i128": 170141183460469231731687303715884105727,
        "neg0": -0, "f": 12.50, "e": 1e400}"#;
    let payload: std::sync::Arc<Json> = std::sync::Arc::new(serde_json::from_str(doc).unwrap());
    let headers = Headers::default();
    let s = set(json!({
        "big": "{{ payload.big }}", "big_text": "n={{ payload.i128 }}", "i128": "{{ payload.i128 + 0 }}",
        "neg0": "{{ payload.neg0 }}", "f": "{{ payload.f }}", "e": {"jsonpath": "$.e", "first": true},
    }));
    let out = s.render(0, &ctx(&payload, &headers), 65_536, &mut vec![]).unwrap();
    let text = crate::rules::annotate::ascii_json(&out);
    assert!(text.contains(r#""big":123456789012345678901234567890"#), "{text}");
    assert!(text.contains(r#""big_text":"n=170141183460469231731687303715884105727""#), "{text}");
    assert!(text.contains(r#""i128":170141183460469231731687303715884105727"#), "{text}");
    assert!(text.contains(r#""neg0":-0"#), "{text}");
    assert!(text.contains(r#""f":12.50"#), "{text}");
    assert!(text.contains(r#""e":1e+400"#), "{text}" /* the same number; serde_json writes the sign */,);
}

#[test]
fn a_jsonpath_input_stops_copying_at_the_budget() {
    let payload = std::sync::Arc::new(
        json!({"xs": (0..10_000).map(|i| json!({"n": i, "s": "x".repeat(20)})).collect::<Vec<_>>()}),
    );
    let headers = Headers::default();
    let s = set(json!({"all": {"jsonpath": "$..*"}}));
    assert_eq!(s.render(0, &ctx(&payload, &headers), 4096, &mut vec![]), Err(InputError::TooLarge));
    let small = set(json!({"n": {"jsonpath": "$.xs[0].n", "first": true}}));
    assert_eq!(small.render(0, &ctx(&payload, &headers), 4096, &mut vec![]).unwrap()["n"], json!(0));
}

#[test]
fn templates_read_the_payload_lazily_with_the_same_meaning() {
    let out = render_one(
        json!({"len": "{{ payload.xs | length }}", "last": "{{ payload.xs[-1].k }}", "keys": "{{ payload.o | list }}",
               "whole": "{{ payload.o }}", "loop": "{% for x in payload.xs %}{{ x.k }}{% endfor %}",
               "has": "{{ 'b' in payload.o }}", "missing": "{{ payload.o.zz.yy }}"}),
        json!({"xs": [{"k": "a"}, {"k": "b"}], "o": {"b": [1, {"c": true}], "a/b": "~"}}),
    )
    .unwrap();
    assert_eq!(out["len"], json!(2));
    assert_eq!(out["last"], json!("b"));
    assert_eq!(out["keys"], json!(["a/b", "b"]));
    assert_eq!(out["whole"], json!({"a/b": "~", "b": [1, {"c": true}]}));
    assert_eq!(out["loop"], json!("ab"));
    assert_eq!(out["has"], json!(true));
    assert_eq!(out["missing"], Json::Null);
}

fn compile_error(inputs: serde_json::Value) -> TemplateError {
    let raw: RawInputs = inputs.as_object().unwrap().clone().into_iter().collect();
    TemplateSet::compile(vec![raw]).unwrap_err()
}

#[test]
fn singular_queries_yield_the_node_or_null() {
    let inputs = json!({
        "total": {"jsonpath": "$.invoice.total", "type": "number"},
        "sku": {"jsonpath": "$.items[0].sku"},
        "absent": {"jsonpath": "$.invoice.nope"},
        "first_singular": {"jsonpath": "$.items[-1].sku", "first": true},
        "many": {"jsonpath": "$.items[*].sku"},
        "many_first": {"jsonpath": "$.items[*].sku", "first": true},
        "t_total": "{{ jsonpath('$.invoice.total') }}",
        "t_absent": "{{ jsonpath('$.invoice.nope') }}",
        "t_many": "{{ jsonpath(\"$.items[*].sku\") }}",
        "t_text": "total={{ jsonpath('$.invoice.total') }}",
    });
    let out = render_one(inputs, json!({"invoice": {"total": 12.5}, "items": [{"sku": "a"}, {"sku": "b"}]})).unwrap();
    assert_eq!(out["total"], json!(12.5));
    assert_eq!(out["sku"], json!("a"));
    assert_eq!(out["absent"], Json::Null);
    assert_eq!(out["first_singular"], json!("b"));
    assert_eq!(out["many"], json!(["a", "b"]));
    assert_eq!(out["many_first"], json!("a"));
    assert_eq!(out["t_total"], json!(12.5));
    assert_eq!(out["t_absent"], Json::Null);
    assert_eq!(out["t_many"], json!(["a", "b"]));
    assert_eq!(out["t_text"], json!("total=12.5"));
}

#[test]
fn a_scalar_type_on_a_query_that_always_yields_an_array_is_refused() {
    for ty in ["string", "number", "integer", "boolean", "object"] {
        let e = compile_error(json!({"n": {"jsonpath": "$.items[*].n", "type": ty}}));
        assert_eq!((e.input.as_str(), e.field), ("n", Some("type")), "{ty}");
        assert!(e.message.contains("always an array"), "{}", e.message);
    }
    for ok in [
        json!({"n": {"jsonpath": "$.items[*].n", "type": "array"}}),
        json!({"n": {"jsonpath": "$..n", "type": "integer", "first": true}}),
        json!({"n": {"jsonpath": "$.items[0].n", "type": "integer"}}),
    ] {
        let raw: RawInputs = ok.as_object().unwrap().clone().into_iter().collect();
        assert!(TemplateSet::compile(vec![raw]).is_ok(), "{ok}");
    }
}

#[test]
fn jsonpath_in_templates_takes_a_literal_compiled_at_configure_time() {
    for t in [
        "{{ jsonpath(payload.q) }}",
        "{% for q in payload.qs %}{{ jsonpath(q) }}{% endfor %}",
        "{% set f = jsonpath %}{{ f(payload.q) }}",
        "{{ jsonpath('$.' ~ payload.q) }}",
    ] {
        let e = compile_error(json!({"x": {"template": t}}));
        assert_eq!((e.input.as_str(), e.field), ("x", Some("template")), "{t}");
        assert!(e.message.contains("string literal"), "{t}: {}", e.message);
    }
    let e = compile_error(json!({"x": "{{ jsonpath('$[?match(@.a, @.b)]') }}"}));
    assert!(e.message.starts_with("jsonpath(): match() takes a string literal"), "{}", e.message);
    let e = compile_error(json!({"x": "{{ jsonpath('$[') }}"}));
    assert!(e.message.starts_with("jsonpath(): "), "{}", e.message);
    let e = compile_error(json!({"x": "a {% include 'triggers[0].action.inputs' %}"}));
    assert!(e.message.contains("include statement"), "{}", e.message);
}

#[test]
fn the_fuel_is_shared_by_every_input_of_a_delivery() {
    // A loop over FUEL / 10 items renders alone (each iteration costs a few
    // fuel); ten of them cost more than one delivery's fuel, so the later
    // ones, and every block after them, run out.
    let looped = "{% for x in payload.xs %}{% endfor %}done";
    let payload = json!({"xs": (0..(FUEL / 10)).collect::<Vec<_>>()});
    let alone = render_one(json!({"a0": looped}), payload.clone()).unwrap();
    assert_eq!(alone["a0"], json!("done"));
    let mut inputs = serde_json::Map::new();
    for i in 0..10 {
        inputs.insert(format!("a{i}"), json!(looped));
    }
    inputs.insert("z".to_string(), json!("{{ payload.xs | length }}"));
    let payload = std::sync::Arc::new(payload);
    let headers = Headers::default();
    let mut failed = vec![];
    let out = set(Json::Object(inputs)).render(0, &ctx(&payload, &headers), 65_536, &mut failed).unwrap();
    assert_eq!(out["a0"], json!("done"));
    let first_failed = (0..10).find(|i| out[&format!("a{i}")].is_null()).expect("the budget ran out");
    let tail: Vec<String> = (first_failed..10).map(|i| format!("a{i}")).chain(["z".to_string()]).collect();
    assert_eq!(failed, tail, "{out:?}");
}

#[test]
fn jsonpath_calls_in_a_loop_spend_the_delivery_fuel() {
    let payload = json!({"xs": (0..20_000).map(|i| json!({"n": i})).collect::<Vec<_>>()});
    let s = set(json!({"loop": "{% for i in range(1000) %}{{ jsonpath('$..n') | length }}{% endfor %}",
        "one": "{{ jsonpath('$.xs[7].n') }}"}));
    let payload = std::sync::Arc::new(payload);
    let headers = Headers::default();
    let mut failed = vec![];
    let out = s.render(0, &ctx(&payload, &headers), 65_536, &mut failed).unwrap();
    assert_eq!(failed, vec!["loop".to_string(), "one".to_string()], "{out:?}");
    // One call over the same document fits the budget.
    let one = set(json!({"n": "{{ jsonpath('$..n') | length }}", "m": "{{ jsonpath('$.xs[7].n') }}"}));
    let out = one.render(0, &ctx(&payload, &headers), 65_536, &mut vec![]).unwrap();
    assert_eq!((&out["n"], &out["m"]), (&json!(20_000), &json!(7)));
}

#[test]
fn a_failed_block_leaves_the_next_ones_alone() {
    let out = render_one(
        json!({"bad": "{{ payload.a + 1 }}", "next": "{{ payload.a ~ '!' }}", "text": "<{{ payload.a }}>\n",
               "brace": "x {{ payload.a }} {", "kept": "{% set v = 2 %}{{ v }}"}),
        json!({"a": "text"}),
    )
    .unwrap();
    assert_eq!(out["bad"], Json::Null);
    assert_eq!(out["next"], json!("text!"));
    assert_eq!(out["text"], json!("<text>"), "one trailing newline dropped, as minijinja does");
    assert_eq!(out["brace"], json!("x text {"));
    assert_eq!(out["kept"], json!("2"));
}
