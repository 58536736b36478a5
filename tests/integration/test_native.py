"""What only one build has: the native module's SDS secrets (rotated by
rewriting a file SDS watches, no restart), its pinned ABI as Envoy sees it,
and the .wasm refusing `sds:` by field. These tests name their build
explicitly, so they run the same in the wasm and the native pass."""
import json
import os
import time
import uuid

import pytest

from combo_edge import envoy as h

PATH = h.PREFIX + "trg_sds"
NEW, OLD = "sds-new-key-2026", "sds-old-key-2025"
# Envoy before 1.40 has no SDS callbacks for dynamic modules: there the
# refusal is tested instead (test_sds_is_used_or_refused_by_field).
needs_sds = pytest.mark.skipif(not h.native_has_sds(), reason="SDS for dynamic modules needs Envoy 1.40 or newer")


def sds_file(path, text: str):
    """An SDS DiscoveryResponse with one generic secret, replaced atomically
    (Envoy's watched_directory sees the rename)."""
    doc = {"resources": [{"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
                          "name": "combo_hmac", "generic_secret": {"secret": {"inline_string": text}}}]}
    tmp = path.parent / f".{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def trigger() -> dict:
    return {"id": "trg_sds", "source": "generic_webhook", "secrets": [{"sds": "combo_hmac"}],
            "action": {"agent_id": "ticket-triage"}}


def native_edge(cfg: dict, upstream: int, **bootstrap_extra) -> tuple[int, h.Envoy]:
    port = h.free_port()
    hcm = h.http_connection_manager([h.native_filter(cfg)], [{"match": {"prefix": "/"}, "route": {"cluster": "agent"}}])
    bootstrap = {"static_resources": {"listeners": [h.listener("ingress", port, hcm)],
                                      "clusters": [h.cluster("agent", upstream)], **bootstrap_extra}}
    return port, h.Envoy(bootstrap).wait_ready()


def logged(envoy, text: str, timeout=5.0) -> bool:
    """Whether Envoy's log shows `text` (it is flushed every 50 ms)."""
    deadline = time.time() + timeout
    while text not in envoy.logs():
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


def deliver(port, secret) -> h.Response:
    body = json.dumps({"id": uuid.uuid4().hex}).encode()
    return h.request(port, PATH, body, h.signed_headers(secret, body))


def until(port, secret, status, timeout=10.0) -> h.Response:
    """Delivers until the answer is `status` (SDS applies a rewrite within
    a moment), then returns that answer."""
    deadline = time.time() + timeout
    while True:
        r = deliver(port, secret)
        if r.status == status or time.time() > deadline:
            return r
        time.sleep(0.1)


@needs_sds
def test_sds_rotation_without_restart(backends, tmp_path):
    path = tmp_path / "sds.json"
    sds_file(path, OLD + "\n")
    cfg = {"sds_config": {"path_config_source": {"path": str(path), "watched_directory": {"path": str(tmp_path)}}},
           "triggers": [trigger()]}
    port, envoy = native_edge(cfg, backends["ticket-triage"].port)
    try:
        assert until(port, OLD, 200).status == 200
        assert deliver(port, NEW).status == 401
        # The overlap: the new key first, the old one still valid.
        sds_file(path, f"{NEW}\n{OLD}\n")
        assert until(port, NEW, 200).status == 200
        assert deliver(port, OLD).status == 200
        # The old key removed: it stops, the new one stays.
        sds_file(path, NEW + "\n")
        r = until(port, OLD, 401)
        assert (r.status, r.error_code()) == (401, "signature_mismatch")
        assert deliver(port, NEW).status == 200
        assert envoy.proc.poll() is None, "no restart"
        time.sleep(0.3)
        logs = envoy.logs()
        key_ids = [json.loads(line.split("webhook_audit ", 1)[1])["key_id"]
                   for line in logs.splitlines() if "webhook_audit {" in line]
        assert "combo_hmac" in key_ids and "combo_hmac.1" in key_ids, key_ids
        assert NEW not in logs and OLD not in logs, "a secret reached the log"
    finally:
        envoy.stop()


@needs_sds
def test_a_secret_sds_has_not_delivered_fails_closed(backends, tmp_path):
    path = tmp_path / "sds.json"
    path.write_text(json.dumps({"resources": []}))
    cfg = {"sds_config": {"path_config_source": {"path": str(path), "watched_directory": {"path": str(tmp_path)}}},
           "triggers": [trigger()]}
    port, envoy = native_edge(cfg, backends["ticket-triage"].port)
    try:
        r = deliver(port, OLD)
        assert (r.status, r.error_code()) == (401, "signature_mismatch")
        assert backends["ticket-triage"].received() == []
        assert logged(envoy, 'secret "combo_hmac" not delivered yet')
        sds_file(path, OLD)
        assert until(port, OLD, 200).status == 200
    finally:
        envoy.stop()


@needs_sds
def test_a_static_bootstrap_secret_without_sds_config(backends):
    secret = {"name": "combo_hmac", "generic_secret": {"secret": {"inline_string": OLD}}}
    port, envoy = native_edge({"triggers": [trigger()]}, backends["ticket-triage"].port, secrets=[secret])
    try:
        assert deliver(port, OLD).status == 200
        assert deliver(port, NEW).status == 401
    finally:
        envoy.stop()


def refused(filter_config: dict, backends) -> str:
    port = h.free_port()
    hcm = h.http_connection_manager([filter_config], [{"match": {"prefix": "/"}, "route": {"cluster": "agent"}}])
    envoy = h.Envoy({"static_resources": {"listeners": [h.listener("ingress", port, hcm)],
                                          "clusters": [h.cluster("agent", backends["default"].port)]}})
    try:
        assert envoy.wait_exit(timeout=30) != 0
        return envoy.logs()
    finally:
        envoy.stop()


def test_the_wasm_refuses_sds_by_field(backends):
    logs = refused(h.wasm_filter({"triggers": [trigger()]}), backends)
    assert ("combo_webhook: invalid configuration: triggers[0].secrets[0].sds: "
            "SDS secrets need the native module") in logs, logs[-3000:]


NO_SDS = ("triggers[0].secrets[0].sds: this Envoy has no SDS callbacks for dynamic modules "
          "(Envoy 1.40 or newer); use value or env")


@pytest.mark.parametrize("cfg, field", [
    ({"sds_config": {"no_such_source": {}}, "triggers": [trigger()]},
     'triggers[0].secrets[0].sds: Envoy refused the SDS subscription to "combo_hmac"'),
    ({"triggers": [dict(trigger(), secrets=[{"sds": "combo_hmac", "env": "X"}])]},
     "triggers[0].secrets[0]: needs exactly one of value, env or sds"),
])
def test_the_native_module_refuses_a_broken_sds_secret(backends, cfg, field):
    logs = refused(h.native_filter(cfg), backends)
    if "sds_config" in cfg and not h.native_has_sds():
        field = NO_SDS  # no subscription is even tried
    assert "combo_webhook: invalid configuration: " + field in logs, logs[-3000:]


def test_sds_is_used_or_refused_by_field(backends):
    """On Envoy 1.40 and newer an `sds:` secret is subscribed; on an older
    Envoy (no SDS callbacks) the configuration is refused naming the field."""
    secret = {"name": "combo_hmac", "generic_secret": {"secret": {"inline_string": OLD}}}
    if h.native_has_sds():
        port, envoy = native_edge({"triggers": [trigger()]}, backends["ticket-triage"].port, secrets=[secret])
        try:
            assert deliver(port, OLD).status == 200
        finally:
            envoy.stop()
    else:
        logs = refused(h.native_filter({"triggers": [trigger()]}), backends)
        assert "combo_webhook: invalid configuration: " + NO_SDS in logs, logs[-3000:]


def test_etcd_is_used_or_refused_by_field(backends):
    """On Envoy 1.39 and newer the native module holds a response for the
    etcd settle; Envoy 1.38 would never resume it, so there the
    configuration is refused naming the field."""
    cfg = {"replay": {"store": "etcd", "etcd": {"cluster": "etcd"}},
           "triggers": [dict(trigger(), secrets=[{"value": OLD}])]}
    port = h.free_port()
    hcm = h.http_connection_manager([h.native_filter(cfg)], [{"match": {"prefix": "/"}, "route": {"cluster": "agent"}}])
    envoy = h.Envoy({"static_resources": {"listeners": [h.listener("ingress", port, hcm)],
                                          "clusters": [h.cluster("agent", backends["default"].port),
                                                       h.cluster("etcd", h.free_port())]}})
    try:
        if h.native_holds_responses():
            envoy.wait_ready()
            assert logged(envoy, "configured in")
        else:
            assert envoy.wait_exit(timeout=30) != 0
            assert ("combo_webhook: invalid configuration: replay.store: etcd needs Envoy 1.39 or newer"
                    in envoy.logs()), envoy.logs()[-3000:]
    finally:
        envoy.stop()


def test_envoy_matches_the_pinned_abi_version(backends):
    """The module answers the ABI of the Envoy that loads it: v0.2.0 on 1.40,
    v0.1.0 on 1.38 and 1.39 (no SDS callbacks), so no mismatch warning."""
    port, envoy = native_edge({"triggers": [dict(trigger(), secrets=[{"value": OLD}])]},
                              backends["ticket-triage"].port)
    try:
        assert logged(envoy, "configured in")
        logs = envoy.logs()
        abi = "v0.2.0" if h.native_has_sds() else "v0.1.0"
        assert f"Dynamic module ABI version {abi} matched." in logs
        assert "is deprecated" not in logs
    finally:
        envoy.stop()


@needs_sds  # the shipped config reads its secrets from SDS
def test_the_shipped_native_config_serves_a_delivery(backends):
    port = h.free_port()
    cfg = h.shipped_config("envoy-native.yaml", {10000: port, 9901: h.free_port(),
                                                 18081: backends["ticket-triage"].port,
                                                 18082: backends["billing"].port})
    envoy = h.Envoy(cfg).wait_ready()
    try:
        body = json.dumps({"action": "escalated", "ticket": {"id": "T-1", "priority": "high", "customer": "c"}}).encode()
        r = h.request(port, h.PREFIX + "trg_ticket_escalated", body, h.signed_headers("demo-secret-change-me", body))
        assert r.status == 200, (r, envoy.logs()[-2000:])
        [got] = backends["ticket-triage"].received()
        assert h.header(got, "x-combo-trigger-id") == "trg_ticket_escalated"
        forged = h.request(port, h.PREFIX + "trg_ticket_escalated", body, h.signed_headers("wrong", body))
        assert (forged.status, forged.error_code()) == (401, "signature_mismatch")
    finally:
        envoy.stop()
