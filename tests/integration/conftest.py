import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

from combo_edge import envoy as h
from combo_edge import pki

# The native module on Envoy 1.38 reads no response code details and no
# attempt count (that Envoy's ABI lacks both attributes): how a failed
# delivery ended is unknown there, so the tests of releasing one cannot hold
# (test_endings.py::test_a_backend_503_releases_for_the_retry tests what
# holds instead).
# The native module on Envoy 1.38 refuses `replay.store: etcd` (that Envoy
# cannot resume a response held for the store); test_native.py tests the
# refusal there.
needs_etcd = pytest.mark.skipif(
    not h.native_holds_responses(),
    reason="the native module on Envoy 1.38 refuses replay.store: etcd (docs \"Supported Envoy versions\")")

needs_details = pytest.mark.skipif(
    not h.native_has_details(),
    reason="the native module on Envoy 1.38 gets no response code details (docs \"Supported Envoy versions\")")

SECRET = "s3cr3t-generic"
PAST = 1_700_000_000     # 2023-11
FUTURE = 4_102_444_800   # 2100-01

# `make test-compose` points the suite at the docker-compose stack instead of
# starting Envoy and the backends here (a thin switch; see docker-compose.yml).
ENVOY_URL = os.environ.get("ENVOY_URL")
COMPOSE_BACKENDS = {"ticket-triage": "http://127.0.0.1:18081", "billing": "http://127.0.0.1:18082",
                    "default": "http://127.0.0.1:18080"}


@pytest.fixture(scope="session")
def backends():
    if ENVOY_URL:
        yield {name: h.RemoteBackend(name, url) for name, url in COMPOSE_BACKENDS.items()}
        return
    b = {"ticket-triage": h.Backend("ticket-triage"), "billing": h.Backend("billing"),
         "default": h.Backend("default")}
    yield b
    for x in b.values():
        x.stop()


@pytest.fixture(scope="module")
def agent():
    """A recording backend that can hold requests (`agent.delay`), one per module."""
    a = h.SlowBackend()
    yield a
    a.backend.stop()


@pytest.fixture(autouse=True)
def clean_backends(backends):
    for b in backends.values():
        b.clear()
    yield


@pytest.fixture(scope="session")
def certs():
    return pki.make_pki(Path(tempfile.mkdtemp(prefix="combo-pki-")))


def edge_plugin_config() -> dict:
    """The main edge's plugin configuration; docker-compose's Envoy carries the same (checked by a test)."""
    return {
        "max_body_bytes": 65536,
        # Every SAN, from the XFCC header the mTLS listener's connection manager sets.
        "mtls_identity": "xfcc",
        "triggers": [
            {
                "id": "trg_ticket_escalated",
                "secret": SECRET,
                "match": {"jsonpath": "$.action", "equals": "escalated"},
                "action": {"agent_id": "ticket-triage", "inputs": {
                    "ticket_id": "{{ payload.ticket.id }}",
                    "priority": "{{ payload.ticket.priority }}",
                    "customer": "{{ payload.ticket.customer }}",
                    "summary": "Ticket {{ payload.ticket.id }} from {{ headers['x-request-source'] | default('n/a') }}",
                    "trigger": "{{ trigger.id }}",
                    "missing": "{{ payload.ticket.nope.deeper }}",
                }},
            },
            {
                "id": "trg_invoice",
                "secrets": [
                    {"id": "2026-11", "value": "new-secret", "not_before": PAST},
                    {"id": "2026-10", "env": "COMBO_SECRET_OLD", "not_after": FUTURE},
                    {"id": "2026-09", "value": "expired-secret", "not_after": PAST},
                    {"id": "2026-12", "value": "future-secret", "not_before": FUTURE},
                ],
                "action": {"agent_id": "billing", "inputs": {"invoice": "{{ payload.invoice.id }}"}},
            },
            {
                "id": "trg_local_only",
                "secret": SECRET,
                "allow_cidrs": ["127.0.0.1/32", "::1/128"],
                "action": {"agent_id": "ticket-triage"},
            },
            {
                "id": "trg_mtls",
                "secret": SECRET,
                "mtls": {"required": True, "allowed_peers": [
                    "uri:spiffe://cluster.local/ns/crm/sa/zendesk-bridge", "dns:hooks.partner.example"]},
                "action": {"agent_id": "ticket-triage"},
            },
        ],
    }


class Edge:
    def __init__(self, envoy, port, tls_port):
        self.envoy, self.port, self.tls_port = envoy, port, tls_port


@pytest.fixture(scope="session")
def edge(backends, certs):
    """The main Envoy: plain and mTLS listeners, routing by x-combo-agent-id."""
    if ENVOY_URL:
        url = urlparse(ENVOY_URL)
        h.HOST = url.hostname or "127.0.0.1"
        yield Edge(None, url.port or 80, None)
        return
    port, tls_port = h.free_port(), h.free_port()
    wasm = h.edge_filter(edge_plugin_config(), env={"COMBO_SECRET_OLD": "old-secret"})
    routes = h.agent_routes({"ticket-triage": "agent_ticket_triage", "billing": "agent_billing"}, "default_backend")
    cert, key = certs["server"]
    bootstrap = {"static_resources": {
        "listeners": [
            h.listener("ingress", port, h.http_connection_manager([wasm], routes)),
            h.listener("ingress_mtls", tls_port, h.with_xfcc(h.http_connection_manager([wasm], routes)),
                       tls={"cert": cert, "key": key, "ca": certs["ca"]}),
        ],
        "clusters": [
            h.cluster("agent_ticket_triage", backends["ticket-triage"].port),
            h.cluster("agent_billing", backends["billing"].port),
            h.cluster("default_backend", backends["default"].port),
        ],
    }}
    envoy = h.Envoy(bootstrap).wait_ready()
    yield Edge(envoy, port, tls_port)
    envoy.stop()


@pytest.fixture(scope="session")
def preset_edge():
    """One Envoy with a trigger per preset (tests/integration/providers.py), in
    front of its own recording backend: (port, backend, envoy)."""
    import providers
    backend = h.Backend("presets")
    port = h.free_port()
    cfg = providers.plugin_config()
    cfg["triggers"].append({
        "id": "trg_slack_form", "source": "slack", "secret": "slack-secret-value",
        "match": {"jsonpath": "$.command", "equals": "/deploy"},
        "action": {"agent_id": "agent", "inputs": {"command": "{{ payload.command }}", "text": "{{ payload.text }}"}},
    })
    # A scheme of its own that takes multipart/form-data (test_multipart.py).
    cfg["triggers"].append({
        "id": "trg_multipart", "secret": "multipart-secret-value",
        "scheme": {"algorithm": "hmac-sha256", "signature": {"header": "X-Sig", "prefix": "sha256="},
                   "content_types": ["multipart/form-data"]},
        "match": {"jsonpath": "$.kind", "equals": "report"},
        "action": {"agent_id": "agent", "inputs": {"kind": "{{ payload.kind }}", "note": "{{ payload.note }}",
                                                   "doc": {"jsonpath": "$.doc", "first": True}}},
    })
    envoy = h.Envoy(h.single_upstream(cfg, backend.port, port)).wait_ready()
    yield port, backend, envoy
    envoy.stop()
    backend.stop()
