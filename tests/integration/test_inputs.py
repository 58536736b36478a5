"""Agent inputs by JSONPath, required inputs, defaults and types, in a real
Envoy, and `combo-webhook inputs` against the very same configuration."""
import json
import subprocess

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
        }},
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


def deliver(port, doc):
    body = json.dumps(doc).encode()
    return h.request(port, "/v1/webhook/generic/trg_order", body,
                     dict(h.signed_headers(SECRET, body), **{"content-type": "application/json"}))


ORDER = {
    "id": 7, "priority": "high", "total": "12.50", "count": "3",
    "a_customer": {"email": "ada@example.com"},
    "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}, {"sku": "C", "qty": 5, "b_contact": {"email": "ops@example.com"}}],
}

EXPECTED = {
    "order_id": 7, "skus": ["B", "C"], "emails": ["ada@example.com", "ops@example.com"], "email": "ada@example.com",
    "coupon": None, "priority": "high", "amount": 12.5, "count": 3, "all_skus": ["A", "B", "C"],
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
