"""The edge under attack, in a real Envoy with two workers: each test plays an
attacker (or an unlucky network) and asserts what the backend received.

Classes (docs "Replay protection", "Paths", "Limits"): concurrent and aborted
copies, re-spelled signatures and unsigned ids, non-canonical paths, oversized
inputs, unsafe event names, secrets in a broken configuration."""
import hashlib
import hmac
import json
import socket
import threading
import time
import uuid

import pytest

from combo_edge import envoy as h
from conftest import needs_details

SECRET = "attack-secret"
GH_SECRET = "attack-gh-secret"
STRIPE_SECRET = "whsec_attack"
PREFIX = "/v1/webhook/generic/"


@pytest.fixture(autouse=True)
def reset(agent):
    agent.delay = 0.0
    agent.backend.clear()
    yield


def plugin_config() -> dict:
    return {
        "max_body_bytes": 65536,
        "max_inputs_bytes": 1024,
        "triggers": [
            {"id": "trg_a", "secret": SECRET, "action": {"agent_id": "agent", "inputs": {"text": "{{ payload.text }}"}}},
            {"id": "trg_gh", "source": "github", "secret": GH_SECRET, "action": {"agent_id": "agent"}},
            {"id": "trg_stripe", "source": "stripe", "secret": STRIPE_SECRET, "action": {"agent_id": "agent"}},
        ],
    }


@pytest.fixture(scope="module")
def edge(agent):
    port = h.free_port()
    bootstrap = h.single_upstream(plugin_config(), agent.backend.port, port)
    envoy = h.Envoy(bootstrap, log_level="info", wasm_log_level="debug").wait_ready()
    yield envoy, port
    envoy.stop()


def body(**extra) -> bytes:
    return json.dumps({"id": uuid.uuid4().hex, "text": "hello", **extra}).encode()


def post(port, tid, data, headers, path=None):
    return h.request(port, path or PREFIX + tid, data, dict(headers, **{"content-type": "application/json"}))


def in_parallel(n, fn):
    out = [None] * n
    start = threading.Barrier(n)

    def run(i):
        start.wait()
        out[i] = fn()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# ---------------------------------------------------------------- 1. replay

@pytest.mark.matrix
def test_concurrent_copies_reach_the_backend_once(edge, agent):
    _, port = edge
    agent.delay = 0.5
    data = body()
    headers = h.signed_headers(SECRET, data)
    answers = in_parallel(8, lambda: post(port, "trg_a", data, headers))
    statuses = sorted(r.status for r in answers)
    assert statuses.count(200) == 1, answers
    in_progress = [r for r in answers if r.status == 409]
    assert len(in_progress) == 7, answers
    for r in in_progress:
        assert r.json() == {"status": "in_progress"} and r.header("retry-after") == "1"
    assert len(agent.backend.received()) == 1
    # Once committed, every later copy is a duplicate.
    assert post(port, "trg_a", data, headers).json() == {"status": "duplicate"}
    assert len(agent.backend.received()) == 1


@needs_details
def test_a_failed_delivery_is_released_for_the_retry(edge, agent):
    _, port = edge
    data = body()
    headers = h.signed_headers(SECRET, data)
    agent.backend.status = 500
    assert post(port, "trg_a", data, headers).status == 500
    agent.backend.status = 200
    assert post(port, "trg_a", data, headers).status == 200
    assert post(port, "trg_a", data, headers).json() == {"status": "duplicate"}
    assert len(agent.backend.received()) == 2


def test_respelled_signatures_are_one_delivery(edge, agent):
    _, port = edge
    data = body()
    headers = h.signed_headers(SECRET, data)
    assert post(port, "trg_a", data, headers).status == 200
    upper = dict(headers, **{"x-combo-signature": "sha256=" + headers["x-combo-signature"][7:].upper()})
    r = post(port, "trg_a", data, upper)
    assert r.json() == {"status": "duplicate"}, r
    assert len(agent.backend.received()) == 1


def test_stripe_reordered_and_extra_entries_are_one_delivery(edge, agent):
    _, port = edge
    data = body()
    ts = str(int(time.time()))
    v1 = hmac.new(STRIPE_SECRET.encode(), ts.encode() + b"." + data, hashlib.sha256).hexdigest()
    spellings = [f"t={ts},v1={v1}", f"v1={v1},t={ts}", f"t={ts},v0=abc,v1={'0' * 64},v1={v1}", f"t={ts},v1={v1.upper()}"]
    answers = [post(port, "trg_stripe", data, {"stripe-signature": s}) for s in spellings]
    assert [r.status for r in answers] == [200, 200, 200, 200], answers
    assert [r.json() for r in answers[1:]] == [{"status": "duplicate"}] * 3
    assert len(agent.backend.received()) == 1


def test_unsigned_github_delivery_id_changes_nothing(edge, agent):
    _, port = edge
    data = body()
    sig = "sha256=" + hmac.new(GH_SECRET.encode(), data, hashlib.sha256).hexdigest()
    first = post(port, "trg_gh", data, {"x-hub-signature-256": sig, "x-github-delivery": "id-1"})
    assert first.status == 200
    for ids in ({"x-github-delivery": "id-2"}, {}, {"x-github-delivery": str(uuid.uuid4())}):
        r = post(port, "trg_gh", data, dict({"x-hub-signature-256": sig}, **ids))
        assert r.json() == {"status": "duplicate"}, (ids, r)
    [got] = agent.backend.received()
    assert h.header(got, "x-combo-delivery-id") == h.delivery_id("trg_gh", b"", data)


def test_reusing_a_pending_retrys_id_cannot_drop_it(edge, agent):
    """An attacker who learns a delivery id cannot poison the cache for the
    real delivery: the key is the signed content, not the id."""
    _, port = edge
    real = body()
    sig = "sha256=" + hmac.new(GH_SECRET.encode(), real, hashlib.sha256).hexdigest()
    forged = post(port, "trg_gh", body(), {"x-hub-signature-256": "sha256=" + "0" * 64, "x-github-delivery": "d-9"})
    assert forged.status == 401
    r = post(port, "trg_gh", real, {"x-hub-signature-256": sig, "x-github-delivery": "d-9"})
    assert r.status == 200 and r.json() == {"backend": "agent"}, r


# ---------------------------------------------------------------- 2. paths

@pytest.mark.parametrize("path", [
    "//v1/webhook/generic/trg_a", "/v1/webhook//generic/trg_a", "/v1/./webhook/generic/trg_a",
    "/v1/x/../webhook/generic/trg_a", "/v1/webhook%2Fgeneric/trg_a", "/v1/webhook%2fgeneric/trg_a",
    "/v1/%2e/webhook/generic/trg_a", "/v1/webhook/generic/%74rg_a",
    # As case-insensitive (Express, ASP.NET), `;`-stripping (Tomcat, Spring)
    # and `\`-reading backends route them: the webhook, unverified.
    "/V1/WEBHOOK/GENERIC/trg_a", "/v1/Webhook/generic/trg_a", "/v1/webhook/generic;jsessionid=x/trg_a",
    "/v1;x=1/webhook/generic/trg_a", "/v1/webhook/generic%3Bx/trg_a", "/v1/webhook/generic/trg_a;x=1",
    "/v1\\webhook\\generic\\trg_a", "/v1/webhook%5Cgeneric/trg_a",
    # Windows drops trailing dots and spaces; IIS decodes %uXXXX.
    "/v1/webhook/generic./trg_a", "/v1/webhook/generic%20/trg_a", "/v1/webhook/generic%09/trg_a",
    "/v1/webhook/generic%u002ftrg_a",
])
def test_non_canonical_webhook_paths_never_reach_a_backend_unverified(edge, agent, path):
    _, port = edge
    data = body()
    r = post(port, "trg_a", data, {}, path=path)  # unsigned
    assert r.status == 400 and r.error_code() == "non_canonical_path", (path, r)
    assert agent.backend.received() == []


def test_an_absolute_form_target_is_verified_as_the_webhook_it_names(edge, agent):
    """Envoy reduces `http://host/path` to its path; the filter then verifies it."""
    _, port = edge
    r = post(port, "trg_a", body(), {}, path="http://evil.example/v1/webhook/generic/trg_a")
    assert r.status == 401 and r.error_code() == "missing_signature", r
    assert agent.backend.received() == []


def test_the_shipped_config_canonicalises_before_the_filter(backends):
    """envoy/envoy.yaml as shipped: Envoy itself merges, normalises or refuses
    every trick, every spelling of a webhook path reaches the filter although
    it is off on other routes, and no unsigned request reaches an agent."""
    port = h.free_port()
    cfg = h.shipped_config("envoy.yaml", {10000: port, 9901: h.free_port(),
                                          18081: backends["ticket-triage"].port, 18082: backends["billing"].port})
    envoy = h.Envoy(cfg).wait_ready()
    try:
        # The filter is off on non-webhook routes (typed_per_filter_config), so
        # every spelling of a webhook path must still be routed to it: answered
        # by the filter (401) or refused by Envoy (400), never the 404 of a
        # route the filter does not see.
        for path in ["//v1/webhook/generic/trg_ticket_escalated", "/v1/webhook/generic/./trg_ticket_escalated",
                     "/v1/x/../webhook/generic/trg_ticket_escalated", "/v1/%77ebhook/generic/trg_ticket_escalated",
                     "/v1/webhook/generic/trg_ticket_escalated"]:
            r = h.request(port, path, b"{}", {"content-type": "application/json", "x-combo-agent-id": "ticket-triage"})
            assert (r.status, r.error_code()) == (401, "missing_signature"), (path, r)
        for escaped in ("%2F", "%5C"):  # escaped slashes, `\` included: Envoy refuses them itself
            r = h.request(port, f"/v1/webhook{escaped}generic/trg_ticket_escalated", b"{}",
                          {"content-type": "application/json"})
            assert r.status == 400, r
        # What Envoy does not canonicalise (case, `;` parameters, `%3B`)
        # still reaches the filter on the shipped routes, which refuses it.
        for path in ["/V1/WEBHOOK/GENERIC/trg_ticket_escalated", "/v1/Webhook/generic/trg_ticket_escalated",
                     "/v1/webhook/generic;jsessionid=x/trg_ticket_escalated", "/v1;x=1/webhook/generic/trg_ticket_escalated",
                     "/v1/webhook/generic%3Bx/trg_ticket_escalated"]:
            r = h.request(port, path, b"{}", {"content-type": "application/json", "x-combo-agent-id": "ticket-triage"})
            assert (r.status, r.error_code()) == (400, "non_canonical_path"), (path, r)
        # `\` Envoy's normalize_path reads as `/` itself: the canonical webhook, verified.
        r = h.request(port, "/v1\\webhook\\generic\\trg_ticket_escalated", b"{}",
                      {"content-type": "application/json", "x-combo-agent-id": "ticket-triage"})
        assert (r.status, r.error_code()) == (401, "missing_signature"), r
        other = h.request(port, "/status", b"", {"x-combo-agent-id": "ticket-triage"}, method="GET")
        assert (other.status, other.error_code()) == (404, "no_route"), "a spoofed annotation routes nowhere"
        assert backends["ticket-triage"].received() == [] and backends["billing"].received() == []
    finally:
        envoy.stop()


# ---------------------------------------------------------------- 3. bounded work

def test_inputs_over_the_cap_are_413_not_an_envoy_error(edge, agent):
    _, port = edge
    data = body(text="x" * 20_000)
    r = post(port, "trg_a", data, h.signed_headers(SECRET, data))
    assert r.status == 413 and r.error_code() == "inputs_too_large", r
    assert agent.backend.received() == []
    # Released: nothing was delivered, and the same delivery is refused the same way.
    assert post(port, "trg_a", data, h.signed_headers(SECRET, data)).error_code() == "inputs_too_large"


# ---------------------------------------------------------------- 4. configuration

def test_a_misplaced_secret_is_never_echoed_by_envoy(tmp_path):
    cfg = {"triggers": [{"id": "t", "secrets": ["hunter2-very-secret"], "action": {"agent_id": "a"}}]}
    port = h.free_port()
    bootstrap = {"static_resources": {
        "listeners": [h.listener("ingress", port, h.http_connection_manager([h.edge_filter(cfg)], []))],
        "clusters": [],
    }}
    envoy = h.Envoy(bootstrap)
    envoy.proc.wait(timeout=30)
    logs = envoy.logs()
    assert envoy.proc.returncode != 0, "Envoy must refuse the config"
    assert "triggers[0].secrets[0]" in logs
    assert "hunter2" not in logs
