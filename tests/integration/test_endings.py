"""At most once, even when the answer never comes (docs "Replay
protection"): how a forwarded delivery ended decides its reservation, on both
stores (this Envoy's, and etcd's shared by replicas).

- The backend answered (`via_upstream`): a 2xx commits, anything else releases.
- The request never reached a backend (no healthy upstream, connection
  refused, the client gone before the filter forwarded): released.
- It was forwarded and no answer came (the client hung up, an upstream reset,
  a route timeout): unknown; `replay.unknown_outcome: delivered` (the default)
  commits it, so the sender's retry gets `200 duplicate`; `retry` releases it.
"""
import json
import socket
import time
import uuid

import pytest

from combo_edge import envoy as h
from conftest import needs_details, needs_etcd

SECRET = "endings-secret"
PREFIX = "/v1/webhook/generic/"
# Each trigger's agent is routed to one kind of upstream.
AGENTS = {"trg_ok": "ok", "trg_reset": "reset", "trg_empty": "empty", "trg_refused": "refused",
          "trg_idle": "idle", "trg_retried": "retried", "trg_direct": "direct", "trg_faulted": "faulted"}
CRASH_PORT = h.free_port()


def plugin_config(store: str, etcd_port: int | None, unknown_outcome: str) -> dict:
    replay = {"unknown_outcome": unknown_outcome}
    if store == "etcd":
        replay.update({"store": "etcd", "etcd": {"cluster": "etcd"}, "timeout_ms": 1000})
    return {"replay": replay, "triggers": [
        {"id": tid, "secret": SECRET, "action": {"agent_id": agent}} for tid, agent in AGENTS.items()]}


# A filter after this one that answers itself (as a rate limit would) for
# the `faulted` agent: the request never reaches the router.
FAULT = {"name": "envoy.filters.http.fault", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
    "abort": {"http_status": 429, "percentage": {"numerator": 100, "denominator": "HUNDRED"}},
    "headers": [{"name": "x-combo-agent-id", "string_match": {"exact": "faulted"}}]}}


def bootstrap(plugin: dict, port: int, agent_port: int, reset_port: int, etcd_port: int | None) -> dict:
    def on(agent: str, route: dict) -> dict:
        return {"match": {"prefix": "/", "headers": [{"name": "x-combo-agent-id", "string_match": {"exact": agent}}]},
                "route": route}

    routes = [on(a, {"cluster": a, "timeout": "1s"}) for a in ("ok", "reset", "empty", "refused")]
    # The stream's idle timeout fires after forwarding, before the route's.
    routes.append(on("idle", {"cluster": "ok", "timeout": "10s", "idle_timeout": "1s"}))
    routes.append(on("retried", {"cluster": "crash", "timeout": "5s",
                                 "retry_policy": {"retry_on": "reset,connect-failure", "num_retries": 1}}))
    # Envoy answers itself: no backend is ever asked.
    routes.append({"match": {"prefix": "/", "headers": [
        {"name": "x-combo-agent-id", "string_match": {"exact": "direct"}}]},
        "direct_response": {"status": 503, "body": {"inline_string": "maintenance"}}})
    routes.append({"match": {"prefix": "/"}, "route": {"cluster": "ok"}})
    empty = {"name": "empty", "type": "STATIC", "connect_timeout": "1s",
             "load_assignment": {"cluster_name": "empty", "endpoints": []}}
    clusters = [h.cluster("ok", agent_port), h.cluster("reset", reset_port), empty,
                h.cluster("refused", h.free_port()), h.cluster("crash", CRASH_PORT)]
    if etcd_port:
        clusters.append(h.cluster("etcd", etcd_port))
    return {"static_resources": {
        "listeners": [h.listener("ingress", port, h.http_connection_manager([h.edge_filter(plugin), FAULT], routes))],
        "clusters": clusters,
    }}


@pytest.fixture(scope="module")
def etcd():
    e = h.Etcd().start()
    yield e
    e.stop()


@pytest.fixture(scope="module")
def resetter():
    r = h.ResettingUpstream()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def edges(agent, etcd, resetter):
    """One Envoy per store with the default `delivered`, and one (local) with `retry`."""
    out, envoys = {}, []
    for name, store, unknown in (("local", "local", "delivered"), ("etcd", "etcd", "delivered"),
                                 ("retry", "local", "retry")):
        if store == "etcd" and not h.native_holds_responses():
            continue  # refused by this Envoy: its tests are skipped (needs_etcd)
        port = h.free_port()
        etcd_port = etcd.port if store == "etcd" else None
        envoy = h.Envoy(bootstrap(plugin_config(store, etcd_port, unknown), port, agent.backend.port,
                                  resetter.port, etcd_port)).wait_ready()
        envoys.append(envoy)
        out[name] = (envoy, port)
    yield out
    for e in envoys:
        e.stop()


@pytest.fixture(autouse=True)
def reset(agent):
    agent.delay = 0.0
    agent.backend.status = 200
    agent.backend.clear()
    yield
    agent.delay = 0.0


def delivery():
    body = json.dumps({"id": uuid.uuid4().hex}).encode()
    return body, dict(h.signed_headers(SECRET, body), **{"content-type": "application/json"})


def post(port, tid, body, headers):
    return h.request(port, PREFIX + tid, body, headers)


def send_and_hang_up(port, tid, body, headers, *, whole=True, wait=None):
    """Sends the request (or only part of its body) and closes the
    connection without reading an answer; `wait()` says when to close."""
    wire = dict(headers, **{"content-length": str(len(body))})
    head = f"POST {PREFIX}{tid} HTTP/1.1\r\nhost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in wire.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(head.encode() + (body if whole else body[: len(body) // 2]))
        if wait:
            wait()
        else:
            time.sleep(0.3)


def until(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def audit_rows(envoy, delivery_body: bytes) -> list[dict]:
    """The filter's audit lines for one delivery (matched on its body digest)."""
    import hashlib
    digest = hashlib.sha256(delivery_body).hexdigest()
    rows = []
    for line in envoy.logs().splitlines():
        if "webhook_audit {" in line:
            row = json.loads(line.split("webhook_audit ", 1)[1])
            if row.get("body_sha256") == digest:
                rows.append(row)
    return rows


def unknown_outcomes(envoy) -> int:
    import urllib.request
    text = urllib.request.urlopen(
        f"http://127.0.0.1:{envoy.admin_port}/stats?filter=combo_webhook_replay_unknown_outcome", timeout=5).read()
    return sum(int(line.split(b":")[1]) for line in text.splitlines() if b":" in line)


STORES = ["local", pytest.param("etcd", marks=needs_etcd)]


@pytest.mark.matrix
@pytest.mark.parametrize("store", STORES)
def test_hanging_up_after_forwarding_never_delivers_twice(edges, agent, store):
    """The issue's case: five sends, each hung up after forwarding, then a
    normal one: the backend gets one copy, the sender `200 duplicate`."""
    envoy, port = edges[store]
    before = unknown_outcomes(envoy)
    agent.delay = 0.6
    body, headers = delivery()
    for _ in range(5):
        n = len(agent.backend.received())
        send_and_hang_up(port, "trg_ok", body, headers,
                         wait=lambda: until(lambda: len(agent.backend.received()) > n, 1.0))
    time.sleep(0.8)  # the first copy's backend call ends; the stream settles
    agent.delay = 0.0
    r = post(port, "trg_ok", body, headers)
    if store == "etcd" and r.status == 409:
        # Envoy cancels a stream's callouts when it ends, so the commit sent
        # as the hung-up stream ended may never reach etcd: the reservation,
        # which holds the delivery's window, stands instead. Never delivered twice.
        assert r.json() == {"status": "in_progress"}, r
    else:
        assert r.status == 200 and r.json() == {"status": "duplicate"}, r
    assert len(agent.backend.received()) == 1
    assert unknown_outcomes(envoy) == before + 1
    assert until(lambda: any(row.get("replay_outcome") == "unknown_committed" for row in audit_rows(envoy, body)))


@pytest.mark.parametrize("store", STORES)
def test_hanging_up_before_the_filter_forwards_releases(edges, agent, store):
    _, port = edges[store]
    body, headers = delivery()
    send_and_hang_up(port, "trg_ok", body, headers, whole=False)
    assert agent.backend.received() == []
    r = post(port, "trg_ok", body, headers)
    assert r.status == 200 and r.json() == {"backend": "agent"}, r
    assert len(agent.backend.received()) == 1


@pytest.mark.parametrize("store", STORES)
def test_an_upstream_timeout_is_an_unknown_outcome(edges, agent, store):
    envoy, port = edges[store]
    agent.delay = 1.5  # over the route's 1 s timeout: Envoy answers 504
    body, headers = delivery()
    r = post(port, "trg_ok", body, headers)
    assert r.status == 504, r
    agent.delay = 0.0
    r = post(port, "trg_ok", body, headers)
    assert r.status == 200 and r.json() == {"status": "duplicate"}, r
    assert len(agent.backend.received()) == 1, "the backend got it once, and may have acted on it"


@pytest.mark.parametrize("store", STORES)
def test_an_upstream_reset_is_an_unknown_outcome(edges, resetter, store):
    _, port = edges[store]
    body, headers = delivery()
    seen = resetter.requests
    r = post(port, "trg_reset", body, headers)
    assert r.status == 503, r
    assert resetter.requests == seen + 1
    r = post(port, "trg_reset", body, headers)
    assert r.status == 200 and r.json() == {"status": "duplicate"}, r
    assert resetter.requests == seen + 1, "never sent again"


@needs_details
@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("tid", ["trg_empty", "trg_refused", "trg_direct", "trg_faulted"])
def test_a_request_that_never_reached_a_backend_is_released(edges, store, tid):
    """No healthy upstream, a connection that was refused, a route Envoy
    answers itself: nothing was delivered, so the sender's retry is tried
    again, never `duplicate`."""
    _, port = edges[store]
    body, headers = delivery()
    for _ in range(2):
        r = post(port, tid, body, headers)
        assert r.status in (503, 429) and b"duplicate" not in r.body, r


@pytest.mark.parametrize("store", STORES)
def test_a_stream_timeout_after_forwarding_is_an_unknown_outcome(edges, agent, store):
    """Envoy's own 504 for the stream's idle timeout, after the delivery
    reached the backend: unknown, never released for a second copy."""
    _, port = edges[store]
    agent.delay = 2.0
    body, headers = delivery()
    r = post(port, "trg_idle", body, headers)
    assert r.status == 504, r
    time.sleep(1.2)
    agent.delay = 0.0
    r = post(port, "trg_idle", body, headers)
    assert r.status == 200 and r.json() == {"status": "duplicate"}, r
    assert len(agent.backend.received()) == 1


@pytest.mark.parametrize("store", STORES)
def test_a_retried_delivery_is_unknown_whatever_the_last_try_says(edges, store):
    """The backend read the delivery and crashed; Envoy's retry found the
    port closed (`connection_failure`). The first try may have acted on it:
    the sender's retry is a duplicate, never a second copy."""
    _, port = edges[store]
    crash = h.ResettingUpstream(CRASH_PORT, once=True)
    try:
        body, headers = delivery()
        r = post(port, "trg_retried", body, headers)
        assert r.status == 503, r
        assert crash.requests == 1
    finally:
        crash.stop()
    crash = h.ResettingUpstream(CRASH_PORT, once=True)  # the backend is back
    try:
        r = post(port, "trg_retried", body, headers)
        assert r.status == 200 and r.json() == {"status": "duplicate"}, r
        assert crash.requests == 0
    finally:
        crash.stop()


@pytest.mark.matrix
@pytest.mark.parametrize("store", STORES)
def test_a_backend_503_releases_for_the_retry(edges, agent, store):
    """The backend's 503 releases the delivery for the sender's retry. Where
    the build cannot tell a backend's answer from Envoy's own (the native
    module on Envoy 1.38), it is an unknown outcome: committed under the
    default `unknown_outcome: delivered`, so the retry is a duplicate."""
    _, port = edges[store]
    body, headers = delivery()
    agent.backend.status = 503
    assert post(port, "trg_ok", body, headers).status == 503
    if not h.native_has_details():
        agent.backend.status = 200
        assert post(port, "trg_ok", body, headers).json() == {"status": "duplicate"}
        assert len(agent.backend.received()) == 1
        return
    agent.backend.status = 200
    r = post(port, "trg_ok", body, headers)
    assert r.status == 200 and r.json() == {"backend": "agent"}, r
    assert post(port, "trg_ok", body, headers).json() == {"status": "duplicate"}
    assert len(agent.backend.received()) == 2


@needs_details
def test_unknown_outcome_retry_lets_the_senders_retry_through(edges, agent):
    """`replay.unknown_outcome: retry` chooses at least once: a hung-up copy
    is released, counted and audited as such."""
    envoy, port = edges["retry"]
    before = unknown_outcomes(envoy)
    agent.delay = 0.6
    body, headers = delivery()
    send_and_hang_up(port, "trg_ok", body, headers, wait=lambda: until(lambda: agent.backend.received(), 1.0))
    time.sleep(0.8)
    agent.delay = 0.0
    r = post(port, "trg_ok", body, headers)
    assert r.status == 200 and r.json() == {"backend": "agent"}, r
    assert len(agent.backend.received()) == 2
    assert unknown_outcomes(envoy) == before + 1
    assert until(lambda: any(row.get("replay_outcome") == "unknown_released" for row in audit_rows(envoy, body)))
