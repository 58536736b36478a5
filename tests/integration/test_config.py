"""Plugin-level settings (Struct config, on_no_match: forward, envelope, global
allowlist) and Envoy refusing a broken configuration."""
import json
import time

import pytest

from combo_edge import envoy as h
from conftest import SECRET

PATH = h.PREFIX + "trg_ticket"


def plugin_config(**overrides) -> dict:
    cfg = {
        "path_prefix": "/v1/webhook/generic/",
        "max_body_bytes": 4096,
        "timestamp_tolerance_seconds": 300,
        "allow_cidrs": ["127.0.0.1/32"],
        "on_no_match": "forward",
        "inputs_delivery": "envelope",
        "replay": {"enabled": True, "window_seconds": 300},
        "triggers": [{
            "id": "trg_ticket",
            "source": "generic_webhook",
            "secrets": [{"id": "k-2026", "value": SECRET, "not_before": 1700000000}],
            "match": [{"jsonpath": "$.action", "equals": "escalated"},
                      {"jsonpath": "$.ticket.priority", "in": [1, 2]}],
            "action": {"agent_id": "ticket-triage", "inputs": {"id": "{{ payload.ticket.id }}",
                                                                 "priority": "{{ payload.ticket.priority }}"}},
        }],
    }
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def struct_edge(backends):
    """Configured through a google.protobuf.Struct: every number reaches the filter as a double."""
    port = h.free_port()
    wasm = h.edge_filter(plugin_config(), struct=True)
    routes = h.agent_routes({"ticket-triage": "agent"}, "default_backend")
    envoy = h.Envoy({"static_resources": {
        "listeners": [h.listener("ingress", port, h.http_connection_manager([wasm], routes))],
        "clusters": [h.cluster("agent", backends["ticket-triage"].port),
                     h.cluster("default_backend", backends["default"].port)],
    }}).wait_ready()
    yield port
    envoy.stop()


def test_struct_config_forward_and_envelope(struct_edge, backends):
    body = b'{"action":"escalated", "ticket": {"id": 12, "priority": 2}}'
    resp = h.request(struct_edge, PATH, body, h.signed_headers(SECRET, body))
    assert resp.status == 200, resp
    [got] = backends["ticket-triage"].received()
    envelope = json.loads(got["body"])
    assert envelope == {"trigger_id": "trg_ticket", "agent_id": "ticket-triage",
                        "inputs": {"id": 12, "priority": 2},
                        "payload": {"action": "escalated", "ticket": {"id": 12, "priority": 2}}}
    assert got["body"].endswith(b',"payload":' + body + b"}"), "payload must be the original bytes"
    assert int(h.header(got, "content-length")) == len(got["body"])
    assert h.header(got, "x-combo-matched") == "true"
    assert h.header(got, "x-combo-key-id") == "k-2026"


def test_forward_non_match_with_matched_false(struct_edge, backends):
    body = b'{"action":"escalated", "ticket": {"id": 13, "priority": 5}}'
    resp = h.request(struct_edge, PATH, body, h.signed_headers(SECRET, body))
    assert resp.status == 200, resp
    [got] = backends["ticket-triage"].received()
    assert h.header(got, "x-combo-matched") == "false"
    assert json.loads(got["body"])["inputs"] == {"id": 13, "priority": 5}


def test_global_allowlist_checked_before_trigger_lookup(struct_edge, backends):
    body = b"{}"
    for path in (PATH, h.PREFIX + "no_such_trigger"):
        resp = h.request(struct_edge, path, body, h.signed_headers(SECRET, body), source="127.0.0.3")
        assert resp.status == 403, resp
        assert resp.error_code() == "ip_not_allowed"
    # From an allowed source the unknown trigger is a 404.
    resp = h.request(struct_edge, h.PREFIX + "no_such_trigger", body, h.signed_headers(SECRET, body))
    assert resp.error_code() == "unknown_trigger"
    assert [r for b in backends.values() for r in b.received()] == []


@pytest.mark.parametrize("bad,field", [
    ({"triggers": [plugin_config()["triggers"][0],
                   dict(plugin_config()["triggers"][0], id="t2", allow_cidrs=["10.0.0.0/33"])]},
     'triggers[1].allow_cidrs[0]: invalid CIDR "10.0.0.0/33"'),
    ({"max_body_bytes": 1.5}, "max_body_bytes: expected a non-negative integer, got a number with a fraction"),
    ({"replay": {"max_entries": 424242424}}, "replay.max_entries: out of range (max 10000000)"),
    ({"triggers": [dict(plugin_config()["triggers"][0], match={"jsonpath": "$[?"})]},
     "triggers[0].match.jsonpath: "),
    ({"triggers": [dict(plugin_config()["triggers"][0], secrets=[{"env": "COMBO_NOT_SET"}])]},
     'triggers[0].secrets[0].env: environment variable "COMBO_NOT_SET" is not set'),
    ({"unknown_knob": True}, "unknown_knob: unknown field"),
    ({"triggers": [dict(plugin_config()["triggers"][0], action={"agent_id": "a", "inputs": {
        "q": "{{ jsonpath(payload.q) }}"}})]},
     "triggers[0].action.inputs.q: jsonpath() takes one string literal, the query"),
    ({"triggers": [dict(plugin_config()["triggers"][0], action={"agent_id": "a", "inputs": {
        "n": {"jsonpath": "$.items[*].n", "type": "integer"}}})]},
     "triggers[0].action.inputs.n.type: the query can select several nodes"),
])
def test_envoy_refuses_broken_config(backends, bad, field):
    port = h.free_port()
    wasm = h.edge_filter(plugin_config(**bad))
    envoy = h.Envoy({"static_resources": {
        "listeners": [h.listener("ingress", port, h.http_connection_manager([wasm], [
            {"match": {"prefix": "/"}, "route": {"cluster": "default_backend"}}]))],
        "clusters": [h.cluster("default_backend", backends["default"].port)],
    }})
    try:
        code = envoy.wait_exit(timeout=30)
        assert code != 0
        logs = envoy.logs()
        assert "combo_webhook: invalid configuration: " + field in logs, logs[-3000:]
    finally:
        envoy.stop()
