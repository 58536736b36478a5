"""Agent inputs by JSONPath, required inputs, defaults and types, in a real
Envoy, and `combo-webhook inputs` against the very same configuration."""
import json
import subprocess
import time

import pytest

from combo_edge import envoy as h

SECRET = "inputs-secret"
CLI = h.REPO / "target/release/combo-webhook"

CONFIG = {
    "triggers": [{
        "id": "trg_order",
        "secret": SECRET,
        "action": {"agent_id": "orders", "inputs": {
            "order_id": "{{ payload.id }}",
            "skus": {"jsonpath": "$.items[?@.qty > 1].sku"},
            "emails": {"jsonpath": "$..email"},
            "email": {"jsonpath": "$..email", "first": True},
            "coupon": {"jsonpath": "$.coupon", "first": True},
            "priority": {"template": "{{ payload.priority }}", "required": True, "type": "string"},
            "amount": {"jsonpath": "$.total", "first": True, "type": "number", "default": 0},
            "count": {"jsonpath": "$.count", "first": True, "type": "integer"},
            "all_skus": "{{ jsonpath('$.items[*].sku') }}",
            # Singular queries (RFC 9535 2.3.5.1) yield their node, or null.
            "total": {"jsonpath": "$.invoice.total", "type": "number"},
            "first_sku": {"jsonpath": "$.items[0].sku"},
            "last_qty": {"jsonpath": "$.items[-1].qty", "first": True},
            "absent": {"jsonpath": "$.invoice.nope"},
            "t_total": "{{ jsonpath('$.invoice.total') }}",
            "t_absent": "{{ jsonpath('$.invoice.nope') }}",
        }},
    }, {
        # Ten loops, each well within the fuel alone; together over the
        # delivery's budget.
        "id": "trg_budget",
        "secret": SECRET,
        "action": {"agent_id": "orders", "inputs": dict(
            {f"loop{i}": "{% for x in payload.xs %}{% endfor %}done" for i in range(10)},
            **{"z_len": "{{ payload.xs | length }}"})},
    }, {
        # A query that returns nothing, run 1000 times over a large payload.
        "id": "trg_scan",
        "secret": SECRET,
        "action": {"agent_id": "orders", "inputs": {
            "scan": "{% for i in range(1000) %}{{ jsonpath('$..nope') | length }}{% endfor %}",
            "z_next": "{{ jsonpath('$.items[0].id') }}"}},
    }],
}


@pytest.fixture(scope="module")
def agent():
    b = h.Backend("orders")
    yield b
    b.stop()


@pytest.fixture(autouse=True)
def clean(agent):
    agent.clear()


@pytest.fixture(scope="module")
def port(agent):
    p = h.free_port()
    envoy = h.Envoy(h.single_upstream(CONFIG, agent.port, p)).wait_ready()
    yield p
    envoy.stop()


def deliver(port, doc, trigger="trg_order"):
    body = json.dumps(doc).encode()
    return h.request(port, "/v1/webhook/generic/" + trigger, body,
                     dict(h.signed_headers(SECRET, body), **{"content-type": "application/json"}))


ORDER = {
    "id": 7, "priority": "high", "total": "12.50", "count": "3", "invoice": {"total": 12.5},
    "a_customer": {"email": "ada@example.com"},
    "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}, {"sku": "C", "qty": 5, "b_contact": {"email": "ops@example.com"}}],
}

EXPECTED = {
    "order_id": 7, "skus": ["B", "C"], "emails": ["ada@example.com", "ops@example.com"], "email": "ada@example.com",
    "coupon": None, "priority": "high", "amount": 12.5, "count": 3, "all_skus": ["A", "B", "C"],
    "total": 12.5, "first_sku": "A", "last_qty": 5, "absent": None, "t_total": 12.5, "t_absent": None,
}


def test_jsonpath_inputs_with_filters_descendants_first_and_empty(port, agent):
    r = deliver(port, ORDER)
    assert r.status == 200, r
    [got] = agent.received()
    assert json.loads(h.header(got, "x-combo-inputs")) == EXPECTED


def test_defaults_apply_to_absent_values(port, agent):
    doc = {k: v for k, v in ORDER.items() if k not in ("total", "count")}
    assert deliver(port, doc).status == 200
    inputs = json.loads(h.header(agent.received()[0], "x-combo-inputs"))
    assert inputs["amount"] == 0 and inputs["count"] is None


@pytest.mark.parametrize("change,code,name", [
    ({"priority": None}, "missing_input", "priority"),
    ({"priority": {"nested": 1}}, "invalid_input", "priority"),
    ({"count": 2.5}, "invalid_input", "count"),
    ({"count": "3.0"}, "invalid_input", "count"),
    ({"total": "twelve"}, "invalid_input", "amount"),
])
def test_required_and_typed_inputs_are_refused_at_the_edge(port, agent, change, code, name):
    doc = dict(ORDER, **change)
    if change.get("priority", "") is None:
        del doc["priority"]
    r = deliver(port, doc)
    assert r.status == 422, r
    err = r.json()["error"]
    assert err["code"] == code and err["input"] == name and name in err["message"]
    assert "twelve" not in r.body.decode(), "never a payload value"
    assert agent.received() == []


def cli_inputs(tmp_path, doc):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps(doc))
    return subprocess.run([str(CLI), "inputs", str(cfg), "--trigger", "trg_order", "--payload", str(payload)],
                          capture_output=True, timeout=30)


def test_cli_renders_the_same_inputs_as_the_edge(tmp_path):
    out = cli_inputs(tmp_path, ORDER)
    assert out.returncode == 0, out
    assert json.loads(out.stdout) == EXPECTED


def test_cli_prints_the_422_the_edge_would_answer(tmp_path):
    out = cli_inputs(tmp_path, {k: v for k, v in ORDER.items() if k != "priority"})
    assert out.returncode == 1
    status, body = out.stdout.decode().split(" ", 1)
    assert status == "422" and json.loads(body)["error"]["code"] == "missing_input"


def test_a_bad_query_is_a_config_error_naming_the_input(tmp_path):
    cfg = {"triggers": [{"id": "t", "secret": "s", "action": {"agent_id": "a", "inputs": {
        "x": {"jsonpath": "$.items[?"}, }}}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    out = subprocess.run([str(CLI), "validate", str(path)], capture_output=True, timeout=30)
    assert out.returncode == 1
    assert "error: triggers[0].action.inputs.x.jsonpath: " in out.stdout.decode()


def test_a_singular_query_typed_number_is_delivered_not_refused(port, agent):
    """`{jsonpath: "$.invoice.total", type: number}` passed validate and then
    answered every delivery 422 invalid_input (it yielded [12.5])."""
    r = deliver(port, {"priority": "low", "invoice": {"total": 99}})
    assert r.status == 200, r
    inputs = json.loads(h.header(agent.received()[0], "x-combo-inputs"))
    assert inputs["total"] == 99 and inputs["first_sku"] is None and inputs["all_skus"] == []


def test_the_fuel_is_one_budget_per_delivery(port, agent):
    r = deliver(port, {"xs": list(range(5000))}, "trg_budget")
    assert r.status == 200, r
    inputs = json.loads(h.header(agent.received()[0], "x-combo-inputs"))
    loops = [inputs[f"loop{i}"] for i in range(10)]
    assert loops[0] == "done", inputs
    assert None in loops, f"ten loops rendered on one delivery's fuel: {inputs}"
    spent = loops.index(None)
    assert loops[spent:] == [None] * (10 - spent) and inputs["z_len"] is None, inputs
    assert loops[:spent] == ["done"] * spent


def test_jsonpath_calls_in_a_loop_are_charged_to_the_fuel(port, agent):
    doc = {"items": [{"id": i, "sku": f"sku-{i:05d}", "qty": i % 7, "tags": ["a", "b"]} for i in range(9000)]}
    assert len(json.dumps(doc)) > 500_000
    started = time.monotonic()
    r = deliver(port, doc, "trg_scan")
    elapsed = time.monotonic() - started
    assert r.status == 200, r
    inputs = json.loads(h.header(agent.received()[0], "x-combo-inputs"))
    assert inputs == {"scan": None, "z_next": None}, "the budget ran out in the loop, before the next input"
    assert elapsed < 1.0, f"{elapsed:.2f} s: the worker was held"


@pytest.mark.parametrize("inputs,expected", [
    ({"x": "{{ jsonpath(payload.q) }}"},
     "error: triggers[0].action.inputs.x: jsonpath() takes one string literal, the query"),
    ({"x": {"template": "{% for q in payload.qs %}{{ jsonpath(q) }}{% endfor %}"}},
     "error: triggers[0].action.inputs.x.template: jsonpath() takes one string literal"),
    ({"x": "{% set f = jsonpath %}{{ f(payload.q) }}"},
     "error: triggers[0].action.inputs.x: jsonpath() takes one string literal"),
    ({"x": "{{ jsonpath('$[?search(@.a, @.p)]') }}"},
     "error: triggers[0].action.inputs.x: jsonpath(): search() takes a string literal as its pattern"),
    ({"x": {"jsonpath": "$.items[*].total", "type": "number"}},
     "error: triggers[0].action.inputs.x.type: the query can select several nodes, so its value is always an array"),
    ({"x": {"jsonpath": "$..total", "type": "string"}},
     "error: triggers[0].action.inputs.x.type: the query can select several nodes"),
])
def test_queries_that_cannot_be_bounded_or_typed_are_config_errors(tmp_path, inputs, expected):
    cfg = {"triggers": [{"id": "t", "secret": "s", "action": {"agent_id": "a", "inputs": inputs}}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    out = subprocess.run([str(CLI), "validate", str(path)], capture_output=True, timeout=30)
    assert out.returncode == 1, out
    assert expected in out.stdout.decode(), out.stdout


def test_typed_array_or_first_on_a_many_node_query_is_valid(tmp_path):
    cfg = {"triggers": [{"id": "t", "secret": "s", "action": {"agent_id": "a", "inputs": {
        "all": {"jsonpath": "$.items[*].qty", "type": "array"},
        "one": {"jsonpath": "$..qty", "first": True, "type": "integer"}}}}]}
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(cfg))
    out = subprocess.run([str(CLI), "validate", str(path)], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stdout
