"""Replay protection across Envoy replicas on a real etcd (Debian's
etcd-server, on loopback): two Envoys share it, and every copy of a delivery,
whichever replica it lands on, reaches a backend at most once."""
import json
import threading
import time
import uuid

import pytest

from combo_edge import envoy as h
from conftest import needs_details, needs_etcd

pytestmark = needs_etcd
SECRET = "etcd-secret"
PREFIX = "combo_webhook/replay/"


def plugin_config(on_store_error="reject") -> dict:
    return {
        "replay": {"store": "etcd", "etcd": {"cluster": "etcd"}, "on_store_error": on_store_error, "timeout_ms": 500},
        "triggers": [{"id": "trg_e", "secret": SECRET, "action": {"agent_id": "agent"}}],
    }


@pytest.fixture(scope="module")
def etcd():
    e = h.Etcd().start()
    yield e
    e.stop()


@pytest.fixture(autouse=True)
def reset(agent, etcd):
    agent.delay = 0.0
    agent.backend.clear()
    if etcd.proc.poll() is not None:
        etcd.start()


def replica(agent, etcd, on_store_error="reject"):
    port = h.free_port()
    bootstrap = h.single_upstream(plugin_config(on_store_error), agent.backend.port, port, [h.cluster("etcd", etcd.port)])
    return h.Envoy(bootstrap).wait_ready(), port


@pytest.fixture(scope="module")
def replicas(agent, etcd):
    a, b = replica(agent, etcd), replica(agent, etcd)
    yield [a[1], b[1]]
    a[0].stop()
    b[0].stop()


def delivery():
    body = json.dumps({"id": uuid.uuid4().hex}).encode()
    return body, h.signed_headers(SECRET, body)


def post(port, body, headers):
    return h.request(port, "/v1/webhook/generic/trg_e", body, headers)


def test_concurrent_copies_over_two_replicas_reach_the_backend_once(replicas, agent, etcd):
    agent.delay = 0.5
    body, headers = delivery()
    out = [None] * 8
    go = threading.Barrier(8)

    def send(i):
        go.wait()
        out[i] = post(replicas[i % 2], body, headers)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(r.status for r in out) == [200] + [409] * 7, out
    assert len(agent.backend.received()) == 1
    assert any(k.startswith(PREFIX) for k in etcd.keys(PREFIX)), "the reservation lives in etcd"


def test_sequential_copies_alternate_replicas(replicas, agent, etcd):
    body, headers = delivery()
    assert post(replicas[0], body, headers).json() == {"backend": "agent"}
    for port in (replicas[1], replicas[0], replicas[1]):
        r = post(port, body, headers)
        assert r.status == 200 and r.json() == {"status": "duplicate"}, r
    assert len(agent.backend.received()) == 1
    keys = etcd.keys(PREFIX)
    assert keys and all(len(k) == len(PREFIX) + 32 for k in keys), "keys are replay digests, nothing else"


@needs_details
def test_a_copy_after_a_backend_failure_gets_through_on_the_other_replica(replicas, agent):
    body, headers = delivery()
    agent.backend.status = 503
    assert post(replicas[0], body, headers).status == 503
    agent.backend.status = 200
    r = post(replicas[1], body, headers)
    assert r.status == 200 and r.json() == {"backend": "agent"}, r
    assert post(replicas[0], body, headers).json() == {"status": "duplicate"}
    assert len(agent.backend.received()) == 2


def test_etcd_down_rejects_then_recovers_without_an_envoy_restart(replicas, agent, etcd):
    etcd.stop()
    body, headers = delivery()
    for port in replicas:
        r = post(port, body, headers)
        assert r.status == 503 and r.error_code() == "replay_store_unavailable", r
        assert r.header("retry-after") == "1"
    assert agent.backend.received() == [], "nothing unverified or unprotected forwarded"
    etcd.start()
    r = post(replicas[0], body, headers)
    assert r.status == 200 and r.json() == {"backend": "agent"}, r
    assert post(replicas[1], body, headers).json() == {"status": "duplicate"}


def test_etcd_down_falls_back_to_the_local_store_when_configured(agent, etcd):
    envoy, port = replica(agent, etcd, on_store_error="local")
    try:
        etcd.stop()
        body, headers = delivery()
        assert post(port, body, headers).json() == {"backend": "agent"}
        assert post(port, body, headers).json() == {"status": "duplicate"}, "the local store still protects"
        assert len(agent.backend.received()) == 1
        stats = h.urllib.request.urlopen(f"http://127.0.0.1:{envoy.admin_port}/stats?filter=replay_store").read().decode()
        assert "combo_webhook_replay_store_fallback: 2" in stats, stats
    finally:
        envoy.stop()
        etcd.start()


@pytest.fixture(scope="module")
def tls_etcd(certs):
    cert, key = certs["server"]
    client_cert, client_key = certs["envoy_client"]
    e = h.Etcd(tls={"cert": cert, "key": key, "ca": str(certs["ca"]),
                    "client_cert": client_cert, "client_key": client_key}).start()
    yield e
    e.stop()


def test_the_shipped_replica_config_over_mutual_tls(tls_etcd, certs):
    """envoy/envoy-etcd.yaml as shipped, twice (two replicas), against an etcd
    that only accepts clients with a certificate from its CA."""
    agents = [h.Backend("ticket-triage"), h.Backend("billing")]
    cert, key = certs["envoy_client"]
    files = {"/etc/envoy/etcd/ca.pem": str(certs["ca"]), "/etc/envoy/etcd/client.pem": cert,
             "/etc/envoy/etcd/client-key.pem": key}
    envoys, ports = [], []
    try:
        for _ in range(2):
            port = h.free_port()
            cfg = h.shipped_config("envoy-etcd.yaml", {10000: port, 18081: agents[0].port, 18082: agents[1].port,
                                                       2379: tls_etcd.port}, files)
            envoys.append(h.Envoy(cfg).wait_ready())
            ports.append(port)
        body = json.dumps({"action": "escalated", "ticket": {"id": uuid.uuid4().hex}}).encode()
        headers = h.signed_headers("demo-secret-change-me", body)
        first = h.request(ports[0], "/v1/webhook/generic/trg_ticket_escalated", body, headers)
        assert first.status == 200 and first.json() == {"backend": "ticket-triage"}, first
        again = h.request(ports[1], "/v1/webhook/generic/trg_ticket_escalated", body, headers)
        assert again.json() == {"status": "duplicate"}, again
        assert len(agents[0].received()) == 1
        assert tls_etcd.keys(PREFIX), "the delivery is remembered in etcd, over TLS"
    finally:
        for e in envoys:
            e.stop()
        for a in agents:
            a.stop()
