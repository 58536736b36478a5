"""The inbound filter in a real Envoy, in front of real recording backends."""
import hashlib
import json
import ssl
import time
import uuid

import pytest

from combo_edge import envoy as h
from conftest import SECRET

PATH = h.PREFIX + "trg_ticket_escalated"
TICKET = {"action": "escalated", "ticket": {"id": 4711, "priority": "high", "customer": {"name": "Zoë", "tier": 2}}}


def body_of(doc) -> bytes:
    """A distinct delivery each time: replay protection remembers delivered ones."""
    return json.dumps(dict(doc, nonce=uuid.uuid4().hex)).encode()


def all_received(backends):
    return [r for b in backends.values() for r in b.received()]


def assert_nothing_received(backends):
    got = all_received(backends)
    assert got == [], f"backend received a request that should have been rejected: {got}"


def assert_rejected(resp, status, code, backends):
    assert resp.status == status, resp
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"error": {"code": code, "message": resp.json()["error"]["message"]}}
    assert resp.error_code() == code
    assert_nothing_received(backends)


@pytest.mark.matrix
def test_valid_delivery_reaches_backend_with_exact_annotations(edge, backends):
    body = b'{"action": "escalated",  "ticket": {"id": 4711, "priority": "high", "customer": {"name": "Zo\\u00eb", "tier": 2}}}'
    headers = h.signed_headers(SECRET, body, **{"x-request-source": "zendesk"})
    resp = h.request(edge.port, PATH + "?attempt=1", body, headers)
    assert resp.status == 200, resp
    assert resp.json() == {"backend": "ticket-triage"}
    [got] = backends["ticket-triage"].received()
    assert got["path"] == PATH + "?attempt=1"
    assert got["body"] == body, "the backend must receive the exact bytes that were signed"
    assert h.header(got, "x-combo-trigger-id") == "trg_ticket_escalated"
    assert h.header(got, "x-combo-agent-id") == "ticket-triage"
    assert h.header(got, "x-combo-source") == "generic_webhook"
    assert h.header(got, "x-combo-key-id") == "0"
    assert h.header(got, "x-combo-matched") == "true"
    prefix = headers["x-combo-timestamp"].encode() + b"."
    assert h.header(got, "x-combo-delivery-id") == h.delivery_id("trg_ticket_escalated", prefix, body)
    raw_inputs = h.header(got, "x-combo-inputs")
    assert raw_inputs.isascii()
    assert json.loads(raw_inputs) == {
        "ticket_id": 4711,
        "priority": "high",
        "customer": {"name": "Zoë", "tier": 2},
        "summary": "Ticket 4711 from zendesk",
        "trigger": "trg_ticket_escalated",
        "missing": None,
    }
    assert '"Zo\\u00eb"' in raw_inputs
    # Original headers are kept.
    assert h.header(got, "x-combo-signature") == headers["x-combo-signature"]
    assert h.header(got, "x-request-source") == "zendesk"
    assert backends["billing"].received() == [] and backends["default"].received() == []


def test_routing_by_agent_id(edge, backends):
    body = body_of({"invoice": {"id": "inv_9"}})
    resp = h.request(edge.port, h.PREFIX + "trg_invoice", body, h.signed_headers("new-secret", body))
    assert resp.status == 200, resp
    assert resp.json() == {"backend": "billing"}
    [got] = backends["billing"].received()
    assert h.header(got, "x-combo-agent-id") == "billing"
    assert h.header(got, "x-combo-key-id") == "2026-11"
    assert json.loads(h.header(got, "x-combo-inputs")) == {"invoice": "inv_9"}
    assert backends["ticket-triage"].received() == []


def test_non_match_is_answered_202_at_edge(edge, backends):
    body = body_of({"action": "closed", "ticket": {"id": 1}})
    resp = h.request(edge.port, PATH, body, h.signed_headers(SECRET, body))
    assert resp.status == 202, resp
    assert resp.json() == {"status": "ignored"}
    assert_nothing_received(backends)


def test_paths_outside_prefix_pass_untouched_but_spoofed_annotations_are_removed(edge, backends):
    spoofed = {"x-combo-agent-id": "billing", "x-combo-trigger-id": "evil", "x-combo-matched": "true",
               "x-combo-inputs": "{}", "x-combo-source": "x", "x-combo-key-id": "k", "x-combo-delivery-id": "d",
               "x-keep": "yes"}
    resp = h.request(edge.port, "/healthz", b"", spoofed, method="GET")
    assert resp.status == 200, resp
    # Not routed by the spoofed agent id: it was stripped before routing.
    assert resp.json() == {"backend": "default"}
    [got] = backends["default"].received()
    assert [k for k, _ in got["headers"] if k.startswith("x-combo-")] == []
    assert h.header(got, "x-keep") == "yes"


def test_spoofed_annotations_are_replaced_on_webhooks(edge, backends):
    body = body_of(TICKET)
    headers = h.signed_headers(SECRET, body)
    headers.update({"x-combo-agent-id": "billing", "x-combo-inputs": '{"evil":1}', "x-combo-key-id": "forged",
                    "x-combo-matched": "false"})
    resp = h.request(edge.port, PATH, body, headers)
    assert resp.status == 200 and resp.json() == {"backend": "ticket-triage"}, resp
    [got] = backends["ticket-triage"].received()
    assert h.header(got, "x-combo-agent-id") == "ticket-triage"
    assert h.header(got, "x-combo-key-id") == "0"
    assert h.header(got, "x-combo-matched") == "true"
    assert "evil" not in h.header(got, "x-combo-inputs")


def test_spoofed_annotations_never_reach_backend_on_rejection(edge, backends):
    resp = h.request(edge.port, PATH, b"{}", {"content-type": "application/json", "x-combo-agent-id": "billing"})
    assert_rejected(resp, 401, "missing_signature", backends)


# ------------------------------------------------------------ every error code

def test_method_not_allowed(edge, backends):
    resp = h.request(edge.port, PATH, method="GET")
    assert_rejected(resp, 405, "method_not_allowed", backends)
    assert resp.headers["allow"] == "POST"


def test_unknown_trigger(edge, backends):
    body = b"{}"
    for path in ("nope", "", "trg_ticket_escalated/extra"):
        resp = h.request(edge.port, h.PREFIX + path, body, h.signed_headers(SECRET, body))
        assert_rejected(resp, 404, "unknown_trigger", backends)


def test_unsupported_media_type(edge, backends):
    body = body_of(TICKET)
    headers = h.signed_headers(SECRET, body)
    for ct in ("text/plain", "application/x-www-form-urlencoded", None):
        hs = dict(headers)
        if ct is None:
            del hs["content-type"]
        else:
            hs["content-type"] = ct
        assert_rejected(h.request(edge.port, PATH, body, hs), 415, "unsupported_media_type", backends)
    hs = dict(headers, **{"content-type": "application/json; charset=utf-8"})
    assert h.request(edge.port, PATH, body, hs).status == 200


def test_payload_too_large_from_content_length(edge, backends):
    body = b'{"pad": "' + b"x" * 70000 + b'"}'
    resp = h.request(edge.port, PATH, body, h.signed_headers(SECRET, body))
    assert_rejected(resp, 413, "payload_too_large", backends)


def test_payload_too_large_while_streaming_without_content_length(edge, backends):
    body = b'{"pad": "' + b"x" * 70000 + b'"}'
    chunks = [body[i:i + 16384] for i in range(0, len(body), 16384)]
    resp = h.request(edge.port, PATH, headers=h.signed_headers(SECRET, body), chunks=chunks)
    assert_rejected(resp, 413, "payload_too_large", backends)


@pytest.mark.parametrize("drop,code", [("x-combo-signature", "missing_signature"),
                                       ("x-combo-timestamp", "missing_timestamp")])
def test_missing_signature_headers(edge, backends, drop, code):
    body = body_of(TICKET)
    headers = h.signed_headers(SECRET, body)
    del headers[drop]
    assert_rejected(h.request(edge.port, PATH, body, headers), 401, code, backends)


@pytest.mark.parametrize("name,value,code", [
    ("x-combo-signature", "sha256=zz", "malformed_signature"),
    ("x-combo-signature", "md5=00", "malformed_signature"),
    ("x-combo-timestamp", "yesterday", "malformed_timestamp"),
    ("x-combo-timestamp", "-5", "malformed_timestamp"),
])
def test_malformed_signature_headers(edge, backends, name, value, code):
    body = body_of(TICKET)
    headers = h.signed_headers(SECRET, body)
    headers[name] = value
    assert_rejected(h.request(edge.port, PATH, body, headers), 401, code, backends)


@pytest.mark.parametrize("name,code", [("x-combo-signature", "malformed_signature"),
                                       ("x-combo-timestamp", "malformed_timestamp")])
def test_repeated_signature_header_is_malformed(edge, backends, name, code):
    body = body_of(TICKET)
    headers = h.signed_headers(SECRET, body)
    headers[name] = [headers[name], headers[name]]
    assert_rejected(h.request(edge.port, PATH, body, headers), 401, code, backends)


@pytest.mark.parametrize("skew", [-301, 301])
def test_timestamp_out_of_tolerance(edge, backends, skew):
    body = body_of(TICKET)
    headers = h.signed_headers(SECRET, body, ts=int(time.time()) + skew)
    assert_rejected(h.request(edge.port, PATH, body, headers), 401, "timestamp_out_of_tolerance", backends)


def test_timestamp_inside_tolerance(edge, backends):
    for skew in (-250, 250):
        body = body_of(TICKET)
        headers = h.signed_headers(SECRET, body, ts=int(time.time()) + skew)
        assert h.request(edge.port, PATH, body, headers).status == 200
    assert len(backends["ticket-triage"].received()) == 2


def test_signature_mismatch(edge, backends):
    body = body_of(TICKET)
    headers = h.signed_headers(SECRET, body)
    tampered = body.replace(b"4711", b"4712")
    assert_rejected(h.request(edge.port, PATH, tampered, headers), 401, "signature_mismatch", backends)
    assert_rejected(h.request(edge.port, PATH, body, h.signed_headers("wrong", body)), 401,
                    "signature_mismatch", backends)
    # Re-encoded JSON (same document, different bytes) must not verify.
    reencoded = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert_rejected(h.request(edge.port, PATH, reencoded, headers), 401, "signature_mismatch", backends)


def test_invalid_json(edge, backends):
    body = b'{"action": "escalated",'
    assert_rejected(h.request(edge.port, PATH, body, h.signed_headers(SECRET, body)), 400, "invalid_json", backends)


def test_error_message_never_echoes_secret_or_signature(edge, backends):
    body = body_of(TICKET)
    headers = h.signed_headers("wrong", body)
    resp = h.request(edge.port, PATH, body, headers)
    expected = h.sign(SECRET, int(headers["x-combo-timestamp"]), body)
    for secret_thing in (SECRET, expected, expected[7:], headers["x-combo-signature"][7:], body.decode()):
        assert secret_thing.encode() not in resp.body
    assert_nothing_received(backends)


# ------------------------------------------------------------ allowlist

@pytest.mark.local_only
def test_source_outside_trigger_allowlist(edge, backends):
    body = body_of(TICKET)
    path = h.PREFIX + "trg_local_only"
    resp = h.request(edge.port, path, body, h.signed_headers(SECRET, body), source="127.0.0.2")
    assert_rejected(resp, 403, "ip_not_allowed", backends)
    assert h.request(edge.port, path, body, h.signed_headers(SECRET, body), source="127.0.0.1").status == 200
    assert len(backends["ticket-triage"].received()) == 1


@pytest.mark.local_only
def test_x_forwarded_for_cannot_bypass_allowlist(edge, backends):
    body = body_of(TICKET)
    path = h.PREFIX + "trg_local_only"
    headers = h.signed_headers(SECRET, body, **{"x-forwarded-for": "127.0.0.1"})
    resp = h.request(edge.port, path, body, headers, source="127.0.0.9")
    assert_rejected(resp, 403, "ip_not_allowed", backends)


# ------------------------------------------------------------ mTLS

def tls_client(certs, who: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=certs["ca"])
    ctx.check_hostname = False
    if who:
        ctx.load_cert_chain(*certs[who])
    return ctx


MTLS_PATH = h.PREFIX + "trg_mtls"


@pytest.mark.local_only
@pytest.mark.parametrize("who", ["bridge", "by_dns"])
def test_mtls_listed_peer_accepted(edge, backends, certs, who):
    body = body_of(TICKET)
    resp = h.request(edge.tls_port, MTLS_PATH, body, h.signed_headers(SECRET, body), tls=tls_client(certs, who))
    assert resp.status == 200, resp
    [got] = backends["ticket-triage"].received()
    assert h.header(got, "x-combo-trigger-id") == "trg_mtls"


@pytest.mark.local_only
def test_mtls_every_san_is_checked(edge, backends, certs):
    """The listed identity is the certificate's second URI SAN (Envoy's wasm
    attributes show only the first; the XFCC header has them all)."""
    body = body_of(TICKET)
    resp = h.request(edge.tls_port, MTLS_PATH, body, h.signed_headers(SECRET, body), tls=tls_client(certs, "multi"))
    assert resp.status == 200, resp


@pytest.mark.local_only
@pytest.mark.parametrize("who", ["smuggler", "smuggler2"])
def test_mtls_a_dns_name_smuggled_in_a_uri_san_grants_nothing(edge, backends, certs, who):
    """Envoy writes URI SANs unquoted into XFCC, so `URI=spiffe://x;DNS=hooks.partner.example`
    reads like the listed DNS SAN: checked against the connection's own SANs, it is refused."""
    body = body_of(TICKET)
    resp = h.request(edge.tls_port, MTLS_PATH, body, h.signed_headers(SECRET, body), tls=tls_client(certs, who))
    assert_rejected(resp, 403, "peer_not_allowed", backends)


@pytest.mark.local_only
def test_mtls_a_forged_xfcc_header_grants_nothing(edge, backends, certs):
    body = body_of(TICKET)
    forged = "URI=spiffe://cluster.local/ns/crm/sa/zendesk-bridge"
    resp = h.request(edge.tls_port, MTLS_PATH, body, h.signed_headers(SECRET, body, x_forwarded_client_cert=forged),
                     tls=tls_client(certs, "stranger"))
    assert_rejected(resp, 403, "peer_not_allowed", backends)
    resp = h.request(edge.port, MTLS_PATH, body, h.signed_headers(SECRET, body, x_forwarded_client_cert=forged))
    assert_rejected(resp, 403, "mtls_required", backends)


@pytest.mark.local_only
def test_mtls_without_certificate_refused(edge, backends, certs):
    body = body_of(TICKET)
    resp = h.request(edge.tls_port, MTLS_PATH, body, h.signed_headers(SECRET, body), tls=tls_client(certs, None))
    assert_rejected(resp, 403, "mtls_required", backends)
    # Plain HTTP has no peer certificate either.
    resp = h.request(edge.port, MTLS_PATH, body, h.signed_headers(SECRET, body))
    assert_rejected(resp, 403, "mtls_required", backends)


@pytest.mark.local_only
def test_mtls_unlisted_peer_refused(edge, backends, certs):
    body = body_of(TICKET)
    resp = h.request(edge.tls_port, MTLS_PATH, body, h.signed_headers(SECRET, body),
                     tls=tls_client(certs, "stranger"))
    assert_rejected(resp, 403, "peer_not_allowed", backends)


@pytest.mark.local_only
def test_mtls_certificate_from_untrusted_ca_fails_handshake(edge, backends, certs):
    body = body_of(TICKET)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        h.request(edge.tls_port, MTLS_PATH, body, h.signed_headers(SECRET, body), tls=tls_client(certs, "rogue"))
    assert_nothing_received(backends)


# ------------------------------------------------------------ secrets

INVOICE_PATH = h.PREFIX + "trg_invoice"


@pytest.mark.parametrize("secret,key_id", [("new-secret", "2026-11"), ("old-secret", "2026-10")])
def test_rotated_secrets_inside_their_window(edge, backends, secret, key_id):
    """`old-secret` also proves a secret read from the VM environment (COMBO_SECRET_OLD)."""
    body = body_of({"invoice": {"id": "inv_1"}})
    resp = h.request(edge.port, INVOICE_PATH, body, h.signed_headers(secret, body))
    assert resp.status == 200, resp
    [got] = backends["billing"].received()
    assert h.header(got, "x-combo-key-id") == key_id


@pytest.mark.parametrize("secret", ["expired-secret", "future-secret"])
def test_secret_outside_its_window_refused(edge, backends, secret):
    body = body_of({"invoice": {"id": "inv_1"}})
    resp = h.request(edge.port, INVOICE_PATH, body, h.signed_headers(secret, body))
    assert_rejected(resp, 401, "signature_mismatch", backends)


# ------------------------------------------------------------ body streaming

def test_body_split_over_several_chunks(edge, backends):
    body = body_of(dict(TICKET, pad="y" * 40000))
    chunks = [body[i:i + 7000] for i in range(0, len(body), 7000)]
    assert len(chunks) >= 5
    resp = h.request(edge.port, PATH, headers=h.signed_headers(SECRET, body), chunks=chunks)
    assert resp.status == 200, resp
    [got] = backends["ticket-triage"].received()
    assert got["body"] == body
    assert json.loads(h.header(got, "x-combo-inputs"))["ticket_id"] == 4711


@pytest.mark.local_only
def test_worker_survives_every_rejection(edge, backends):
    """No rejection traps the VM: after one request of each refusal on both
    workers, a valid delivery still passes on every worker."""
    body = body_of(TICKET)
    refusals = [
        (PATH, {"content-type": "application/json"}, 401),                        # unsigned
        (PATH, dict(h.signed_headers("wrong", body)), 401),                        # forged
        (PATH, dict(h.signed_headers(SECRET, body, ts=1)), 401),                   # stale
        (h.PREFIX + "nope", dict(h.signed_headers(SECRET, body)), 404),            # unknown trigger
        ("//v1/webhook/generic/x", {"content-type": "application/json"}, 400),     # non-canonical
        (PATH, dict(h.signed_headers(SECRET, body), **{"content-type": "text/plain"}), 415),
    ]
    for _ in range(2):
        for path, headers, status in refusals:
            assert h.request(edge.port, path, body, headers).status == status, (path, headers)
    assert backends["ticket-triage"].received() == []
    for _ in range(6):
        body = body_of(TICKET)
        assert h.request(edge.port, PATH, body, h.signed_headers(SECRET, body)).status == 200
    assert len(backends["ticket-triage"].received()) == 6
    assert "panicked" not in edge.envoy.logs()
    assert "unreachable" not in edge.envoy.logs()


def test_non_utf8_header_value_does_not_trap_the_vm(edge, backends):
    """HTTP allows obs-text (bytes 0x80-0xFF) in header values; the SDK's UTF-8
    header reader would panic on it and turn the worker into a 503 machine."""
    for _ in range(4):  # both workers
        body = body_of(TICKET)
        headers = h.signed_headers(SECRET, body)
        headers["x-latin1"] = "caf\xe9"  # sent as the single byte 0xE9
        resp = h.request(edge.port, PATH, body, headers)
        assert resp.status == 200, resp
    got = backends["ticket-triage"].received()
    assert len(got) == 4
    # Outside the webhook path too.
    resp = h.request(edge.port, "/other", b"", {"x-latin1": "\xff"}, method="GET")
    assert resp.status == 200


def test_empty_body_is_verified_then_refused_as_invalid_json(edge, backends):
    headers = h.signed_headers(SECRET, b"")
    assert_rejected(h.request(edge.port, PATH, b"", headers), 400, "invalid_json", backends)
    assert_rejected(h.request(edge.port, PATH, b"", h.signed_headers("wrong", b"")), 401, "signature_mismatch", backends)
