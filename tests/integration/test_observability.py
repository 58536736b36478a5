"""Audit records (log line and filter state in Envoy's access log) and the
Prometheus counters, after a known mix of requests."""
import json
import re
import time
import urllib.request
import uuid

import pytest
import yaml

from combo_edge import envoy as h

SECRET = "observability-secret-do-not-log"
PATH = h.PREFIX + "trg_obs"


@pytest.fixture(scope="module")
def observed(backends, tmp_path_factory):
    port = h.free_port()
    access_log = tmp_path_factory.mktemp("access") / "access.log"
    cfg = {"triggers": [{
        "id": "trg_obs", "secrets": [{"id": "k-obs", "value": SECRET}],
        "match": {"jsonpath": "$.action", "equals": "go"},
        "action": {"agent_id": "ticket-triage", "inputs": {"id": "{{ payload.id }}"}},
    }]}
    hcm = h.http_connection_manager([h.edge_filter(cfg)], h.agent_routes({"ticket-triage": "agent"}, "agent"))
    hcm["typed_config"]["access_log"] = [{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": str(access_log),
            "log_format": {"text_format_source": {
                "inline_string": "%RESPONSE_CODE% audit=%FILTER_STATE(wasm.combo_webhook_audit:PLAIN)%\n"}},
        },
    }]
    shipped = yaml.safe_load((h.REPO / "envoy/envoy.yaml").read_text())
    envoy = h.Envoy({"static_resources": {
        "listeners": [h.listener("ingress", port, hcm)],
        "clusters": [h.cluster("agent", backends["ticket-triage"].port)],
    }, "stats_config": shipped["stats_config"], "stats_flush_interval": "1s"}).wait_ready()
    yield port, envoy, access_log
    envoy.stop()


def deliver(port, doc=None, secret=SECRET, path=PATH, **extra):
    body = json.dumps(doc if doc is not None else {"action": "go", "id": uuid.uuid4().hex}).encode()
    headers = h.signed_headers(secret, body, **extra)
    return h.request(port, path, body, headers), body, headers


@pytest.fixture(scope="module")
def mix(observed, backends):
    """3 accepted, 2 signature_mismatch, 1 missing_signature, 1 ignored,
    1 duplicate, 1 unknown_trigger, 1 method_not_allowed."""
    port = observed[0]
    sent = []
    for _ in range(3):
        sent.append(deliver(port))
    dup = sent[0]
    sent.append((h.request(port, PATH, dup[1], dup[2]), dup[1], dup[2]))
    sent.append(deliver(port, secret="wrong-secret"))
    sent.append(deliver(port, secret="another-wrong"))
    body = b'{"action":"go"}'
    sent.append((h.request(port, PATH, body, {"content-type": "application/json"}), body, {}))
    sent.append(deliver(port, {"action": "stop"}))
    sent.append(deliver(port, path=h.PREFIX + "nope"))
    sent.append((h.request(port, PATH, method="GET"), b"", {}))
    statuses = [r.status for r, _, _ in sent]
    assert statuses == [200, 200, 200, 200, 401, 401, 401, 202, 404, 405], statuses
    assert sent[3][0].json() == {"status": "duplicate"}
    time.sleep(1.5)  # let access logs and histograms flush
    return sent


# Envoy strips the .wasm's stat namespace in Prometheus output; a dynamic
# module's (`dynamicmodulescustom`) keeps Envoy's prefix (docs "Metrics").
PROMETHEUS_PREFIX = {"wasm": "", "native": "envoy_dynamicmodulescustom_"}[h.BUILD]


def prometheus(envoy) -> dict[str, float]:
    """`name{labels}` -> value, labels sorted, for every combo_webhook series
    (named without the build's prefix, which must be there)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{envoy.admin_port}/stats/prometheus", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{PROMETHEUS_PREFIX}(combo_webhook_\w+)(?:\{{([^}}]*)\}})? (\S+)$", line)
        if m:
            labels = ",".join(sorted(x for x in (m.group(2) or "").split(",") if x))
            out[f"{m.group(1)}{{{labels}}}" if labels else m.group(1)] = float(m.group(3))
    return out


def test_prometheus_counters_exact(observed, mix):
    counters = prometheus(observed[1])
    expected = {
        'combo_webhook_deliveries{verdict="accepted"}': 3,
        'combo_webhook_deliveries{verdict="duplicate"}': 1,
        'combo_webhook_deliveries{verdict="ignored"}': 1,
        'combo_webhook_deliveries{code="signature_mismatch",verdict="rejected"}': 2,
        'combo_webhook_deliveries{code="missing_signature",verdict="rejected"}': 1,
        'combo_webhook_deliveries{code="unknown_trigger",verdict="rejected"}': 1,
        'combo_webhook_deliveries{code="method_not_allowed",verdict="rejected"}': 1,
    }
    for name, value in expected.items():
        assert counters.get(name) == value, (name, counters)
    gauges = ("combo_webhook_vm_memory_bytes", "combo_webhook_secrets_expiring")
    others = {k: v for k, v in counters.items()
              if k not in expected and k not in gauges and not k.startswith("combo_webhook_filter_us") and v != 0}
    assert others == {}, others
    if h.BUILD == "wasm":
        assert counters["combo_webhook_vm_memory_bytes"] > 0, "the VM memory gauge is recorded"
    else:  # no VM: the native module has no such gauge
        assert "combo_webhook_vm_memory_bytes" not in counters
    assert counters["combo_webhook_secrets_expiring"] == 0
    assert 'combo_webhook_deliveries{verdict="signed"}' in counters
    assert 'combo_webhook_deliveries{code="invalid_json",verdict="rejected"}' in counters
    # The filter's own time per delivery, a histogram: one observation per audited delivery.
    assert counters["combo_webhook_filter_us_count"] == 10, counters.get("combo_webhook_filter_us_count")


def audit_records(text: str) -> list[dict]:
    return [json.loads(line.split("webhook_audit ", 1)[1]) for line in text.splitlines() if "webhook_audit {" in line]


def test_one_audit_record_per_delivery(observed, mix):
    records = audit_records(observed[1].logs())
    assert len(records) == len(mix), records
    verdicts = sorted((r["verdict"], r["error_code"]) for r in records)
    assert verdicts == sorted([("accepted", None)] * 3 + [("duplicate", None), ("ignored", None),
                                                          ("rejected", "signature_mismatch"),
                                                          ("rejected", "signature_mismatch"),
                                                          ("rejected", "missing_signature"),
                                                          ("rejected", "unknown_trigger"),
                                                          ("rejected", "method_not_allowed")])
    import hashlib
    accepted = [r for r in records if r["verdict"] == "accepted"]
    bodies = {hashlib.sha256(b).hexdigest() for _, b, _ in mix[:3]}
    assert {r["body_sha256"] for r in accepted} == bodies
    for r in accepted:
        assert r["direction"] == "inbound" and r["trigger_id"] == "trg_obs"
        assert r["backend_status"] == 200 and r["status"] is None
        assert r["key_id"] == "k-obs" and len(r["delivery_id"]) == 32
        assert r["source_address"].startswith("127.0.0.1:")
        # The edge read its clock after the sender signed, and before now.
        assert r["timestamp"] <= r["timestamp"] + r["skew_seconds"] <= int(time.time())
        assert isinstance(r["verify_us"], int)
        assert len(r["headers_sha256"]) == 64 and r["body_bytes"] > 0
    rejected = [r for r in records if r["error_code"] == "signature_mismatch"]
    assert all(r["status"] == 401 and r["backend_status"] is None for r in rejected)


@pytest.mark.matrix
def test_access_log_carries_audit_filter_state(observed, mix):
    lines = observed[2].read_text().splitlines()
    assert len(lines) == len(mix)
    by_code = {}
    for line in lines:
        code, audit = line.split(" audit=", 1)
        by_code.setdefault(code, []).append(json.loads(audit))
    assert [a["verdict"] for a in by_code["200"]].count("accepted") == 3
    assert all(a["backend_status"] == 200 for a in by_code["200"] if a["verdict"] == "accepted")
    assert {a["error_code"] for a in by_code["401"]} == {"signature_mismatch", "missing_signature"}


def test_no_secret_signature_or_signed_string_in_any_log(observed, mix):
    logs = observed[1].logs() + observed[2].read_text()
    # Debug logging of the filter was on (its log lines are tagged by build).
    assert ("wasm log" in logs or "[dynamic_modules]" in logs) and "webhook_audit" in logs
    forbidden = [SECRET, "wrong-secret", "another-wrong"]
    for _, body, headers in mix:
        sig = headers.get("x-combo-signature")
        if sig:
            forbidden += [sig, sig.split("=", 1)[1]]
            forbidden.append(headers["x-combo-timestamp"] + "." + body.decode())
    for f in forbidden:
        assert f not in logs, f"leaked into logs: {f[:20]}..."
