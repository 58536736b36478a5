"""The opt-in cuts (docs "Opt-in cuts"), on envoy/envoy.yaml as
shipped (routes by agent, the audit row in the access log), in a real Envoy
with either build: each leaves out what it names and nothing else."""
import json
import time

import pytest

from combo_edge import envoy as h

SECRET = "demo-secret-change-me"
TRIGGER = h.PREFIX + "trg_ticket_escalated"
BODY = json.dumps({"action": "escalated", "ticket": {"id": "T-9", "priority": "high", "customer": "c"}}).encode()


def plugin_holders(node):
    """Every filter configuration's JSON holder in a bootstrap (either build)."""
    if isinstance(node, dict):
        tc = node.get("typed_config", {})
        if "filter_config" in tc:
            yield tc["filter_config"]
        elif "configuration" in tc.get("config", {}):
            yield tc["config"]["configuration"]
        for v in node.values():
            yield from plugin_holders(v)
    elif isinstance(node, list):
        for v in node:
            yield from plugin_holders(v)


def shipped(backends, edit: dict):
    port = h.free_port()
    cfg = h.shipped_config("envoy.yaml", {10000: port, 9901: h.free_port(),
                                          18081: backends["ticket-triage"].port, 18082: backends["billing"].port})
    [holder] = list(plugin_holders(cfg))
    holder["value"] = json.dumps({**json.loads(holder["value"]), **edit})
    return h.Envoy(cfg).wait_ready(), port


def rows(envoy, n: int) -> list:
    """The access log's rows once `n` are written (Envoy flushes every 50 ms);
    for 0, after a wait long enough for a row to have been written."""
    deadline = time.time() + (1 if n == 0 else 5)
    while time.time() < deadline:
        got = envoy.access_log()
        if n and len(got) >= n:
            break
        time.sleep(0.1)
    assert len(got) == n, got
    return got


def deliver(port, extra: dict | None = None):
    return h.request(port, TRIGGER, BODY, {**h.signed_headers(SECRET, BODY), **(extra or {})})


def test_annotations_and_audit_filter_state_leave_out_only_what_they_name(backends):
    envoy, port = shipped(backends, {"annotations": ["x-combo-agent-id", "x-combo-delivery-id"],
                                     "audit_filter_state": False})
    try:
        r = deliver(port, {"x-combo-inputs": '{"forged":true}', "x-combo-source": "forged"})
        assert r.status == 200, (r, envoy.logs()[-2000:])
        [got] = backends["ticket-triage"].received()
        assert h.header(got, "x-combo-agent-id") == "ticket-triage"
        assert h.header(got, "x-combo-delivery-id")
        for name in ("x-combo-trigger-id", "x-combo-inputs", "x-combo-source", "x-combo-key-id", "x-combo-matched"):
            assert h.header(got, name) is None, (name, got)
        # No audit row; the filter's own log line stays.
        forged = h.request(port, TRIGGER, BODY, h.signed_headers("wrong", BODY))
        assert forged.error_code() == "signature_mismatch"
        rows(envoy, 0)
        audit = [l for l in envoy.logs().splitlines() if "webhook_audit {" in l]
        assert any('"verdict":"accepted"' in l for l in audit) and any("signature_mismatch" in l for l in audit)
        assert backends["billing"].received() == []
    finally:
        envoy.stop()


def test_by_default_every_delivery_leaves_its_audit_row(backends):
    envoy, port = shipped(backends, {})
    try:
        assert deliver(port).status == 200
        [got] = backends["ticket-triage"].received()
        assert h.header(got, "x-combo-inputs") and h.header(got, "x-combo-trigger-id") == "trg_ticket_escalated"
        [row] = rows(envoy, 1)
        assert row["webhook_audit"]["verdict"] == "accepted" and row["response_code"] == 200
    finally:
        envoy.stop()


@pytest.mark.parametrize("field,value", [("annotations", ["x-combo-agent"]), ("audit_filter_state", 1),
                                         ("annotations", ["x-combo-agent-id"])])
def test_a_bad_cut_is_refused_naming_its_field(backends, field, value):
    with pytest.raises(RuntimeError) as e:
        shipped(backends, {field: value})
    assert field in str(e.value)
