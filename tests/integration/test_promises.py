"""This round's attacks on the two promises (docs "Security: what the edge guarantees"), each played
against a real Envoy with the run's build, asserting what the backend got.

- A handshake's keyed answer is never a delivery signature (every preset).
- An unsigned body, however large, costs a bounded scan: 401 or 413, never 5xx.
- A full replay bucket never lets an in-flight copy through.
- Tokens and signatures never enter the audit record, not even as a digest.
- A header the signature covers, sent twice, is refused.
- A configuration that would weaken a promise is refused, naming its field.
"""
import base64
import hashlib
import hmac
import json
import subprocess
import time
import urllib.parse
import uuid

import pytest

import providers
from combo_edge import envoy as h
from providers import PROVIDERS

P = {p.name: p for p in PROVIDERS}
SECRET = "promises-secret"


@pytest.fixture
def presets(preset_edge):
    port, backend, envoy = preset_edge
    backend.clear()
    return port, backend, envoy


def post(port, name, body, headers, query=""):
    path = h.PREFIX + "trg_" + name + (("?" + query) if query else "")
    return h.request(port, path, body, dict(headers, **{"content-type": "application/json"}))


def get(port, name, query):
    return h.request(port, h.PREFIX + "trg_" + name + "?" + query, b"", {}, method="GET")


# ---------------------------------------------------------------- 1. handshakes are no signing oracle

# Challenges an attacker would like a MAC of: JSON documents a backend would
# act on, and texts shaped like a provider's signed content.
FORGERIES = ['{"event":"forged"}', "[1]", "123", "true", "null", "v0:1700000000:{}", "1700000000.{}"]


@pytest.mark.parametrize("challenge", FORGERIES)
def test_x_crc_answers_no_mac_of_a_deliverable_body(presets, challenge):
    port, backend, _ = presets
    resp = get(port, "x", "crc_token=" + urllib.parse.quote(challenge, safe=""))
    assert (resp.status, resp.error_code()) == (400, "invalid_handshake"), resp
    # Even the MAC the attacker wanted, computed elsewhere, is of no use here
    # without the secret; and the edge gave none.
    assert b"response_token" not in resp.body
    assert backend.received() == []


def test_x_crc_answer_reused_as_a_delivery_signature_is_never_forwarded(presets):
    """An opaque token gets its CRC answer (X needs it); that answer, sent as
    the signature of a body equal to the token, verifies only bytes that are
    not a JSON document: refused, never forwarded."""
    port, backend, _ = presets
    token = "crc_" + uuid.uuid4().hex
    resp = get(port, "x", "crc_token=" + token)
    assert resp.status == 200, resp
    answer = resp.json()["response_token"]
    forged = post(port, "x", token.encode(), {"x-twitter-webhooks-signature": answer})
    assert forged.status == 400 and forged.error_code() == "invalid_json", forged
    assert backend.received() == []


@pytest.mark.parametrize("plain", ["v0:1700000000:{}", '{"a":1}', "12345"])
def test_zoom_answers_no_mac_of_signed_content(presets, plain):
    """Zoom's encryptedToken is HMAC(secret, plainToken), Zoom's delivery
    signature HMAC(secret, "v0:{ts}:{body}"): a plainToken shaped like signed
    content, or like a body, is never answered, even in a signed request."""
    port, backend, _ = presets
    body = json.dumps({"payload": {"plainToken": plain}, "event_ts": 1, "event": "endpoint.url_validation"}).encode()
    resp = h.request(port, h.PREFIX + "trg_zoom", body, P["zoom"].sign(body).all_headers())
    assert (resp.status, resp.error_code()) == (400, "invalid_handshake"), resp
    assert backend.received() == []


def test_every_preset_handshake_answer_fails_as_a_signature(presets):
    """For every preset with a handshake answered from the request line, the
    answer's values, sent as that preset's signature over a body equal to the
    challenge, are refused and never forwarded."""
    port, backend, _ = presets
    token = "tok" + uuid.uuid4().hex
    answers = {
        "x": get(port, "x", "crc_token=" + token),
        "dropbox": get(port, "dropbox", "challenge=" + token),
        "meta": get(port, "meta", urllib.parse.urlencode(
            {"hub.mode": "subscribe", "hub.challenge": token, "hub.verify_token": providers.VERIFY_TOKEN})),
    }
    headers_of = {"x": ["x-twitter-webhooks-signature"], "dropbox": ["x-dropbox-signature"],
                  "meta": ["x-hub-signature-256"]}
    for name, resp in answers.items():
        assert resp.status == 200, (name, resp)
        values = [resp.body.decode()]
        if resp.header("content-type") == "application/json":
            values = [str(v) for v in resp.json().values()]
        for value in values:
            for spelling in (value, "sha256=" + value.removeprefix("sha256=")):
                for header in headers_of[name]:
                    r = post(port, name, token.encode(), {header: spelling})
                    assert r.status in (400, 401), (name, spelling, r)
    assert backend.received() == []


# ---------------------------------------------------------------- 3. unsigned bodies cost a bounded scan

BIG = 48 * 1024 * 1024


@pytest.fixture(scope="module")
def big_edge():
    """Presets that read signature fields in the body or sort a form, with
    `max_body_bytes` near the 64 MiB limit."""
    backend = h.Backend("big")
    port = h.free_port()
    triggers = [{"id": f"trg_{n}", "source": n, **P[n].config, "action": {"agent_id": "agent"}}
                for n in ("linear", "mailgun", "microsoft_graph", "twilio")]
    cfg = {"max_body_bytes": 60 * 1024 * 1024, "triggers": triggers}
    bootstrap = h.single_upstream(cfg, backend.port, port)
    bootstrap["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"] = 64 * 1024 * 1024
    envoy = h.Envoy(bootstrap).wait_ready()
    yield port, backend, envoy
    envoy.stop()
    backend.stop()


@pytest.mark.parametrize("name,body,content_type,code", [
    # The field sits behind 48 MiB of nesting and noise: found, and stale.
    ("linear", b'{"pad":[' + b'{"a":[1,2,{"b":"x"}]},' * (BIG // 22) + b'1],"webhookTimestamp":1}',
     "application/json", "timestamp_out_of_tolerance"),
    ("mailgun", b'{"event-data":"' + b"x" * BIG + b'"}', "application/json", "missing_signature"),
    ("microsoft_graph", b'{"value":[{"pad":"' + b"y" * BIG + b'","clientState":"nope"}]}', "application/json",
     "signature_mismatch"),
    ("twilio", b"a=1&" * (BIG // 4), "application/x-www-form-urlencoded", "too_many_fields"),
])
def test_a_huge_unsigned_body_is_refused_without_a_5xx(big_edge, name, body, content_type, code):
    port, backend, envoy = big_edge
    headers = {"content-type": content_type}
    if name == "linear":
        headers["linear-signature"] = "00" * 32
    if name == "twilio":
        headers["x-twilio-signature"] = base64.b64encode(b"\0" * 20).decode()
    resp = h.request(port, h.PREFIX + "trg_" + name, body, headers)
    assert resp.error_code() == code, resp
    assert resp.status in (401, 413)
    assert backend.received() == []
    # The worker is still there (no VM trap, no crash): the next request is answered.
    again = h.request(port, h.PREFIX + "trg_" + name, b"{}", {"content-type": "application/json"})
    assert again.status in (401, 413, 415), again
    assert "Uncaught RuntimeError" not in envoy.logs()


# ---------------------------------------------------------------- 6. replay bound

def bucket_of(trigger_id: str, ts: int, body: bytes) -> int:
    digest = bytes.fromhex(h.delivery_id(trigger_id, str(ts).encode() + b".", body))
    return int.from_bytes(digest[:4], "little") % 4096


@pytest.fixture(scope="module")
def small_store(agent):
    port = h.free_port()
    cfg = {"replay": {"max_entries": 4096},
           "triggers": [{"id": "trg_r", "secret": SECRET, "action": {"agent_id": "agent"}}]}
    envoy = h.Envoy(h.single_upstream(cfg, agent.backend.port, port)).wait_ready()
    yield port
    envoy.stop()


def test_a_full_bucket_never_evicts_a_delivery_in_flight(small_store, agent):
    """max_entries 4096 is one entry per bucket on average: a second delivery
    landing in the bucket of a slow one must not let the slow one's copy in."""
    port = small_store
    agent.backend.clear()
    ts = int(time.time())
    slow = json.dumps({"id": uuid.uuid4().hex}).encode()
    target = bucket_of("trg_r", ts, slow)
    other = next(b for b in (json.dumps({"n": i}).encode() for i in range(200_000)) if bucket_of("trg_r", ts, b) == target)
    import threading
    agent.delay = 1.5
    first = []
    t = threading.Thread(target=lambda: first.append(
        h.request(port, h.PREFIX + "trg_r", slow, h.signed_headers(SECRET, slow, ts))))
    t.start()
    try:
        time.sleep(0.5)
        agent.delay = 0.0
        assert h.request(port, h.PREFIX + "trg_r", other, h.signed_headers(SECRET, other, ts)).status == 200
        copy = h.request(port, h.PREFIX + "trg_r", slow, h.signed_headers(SECRET, slow, ts))
        assert copy.status == 409 and copy.json() == {"status": "in_progress"}, copy
    finally:
        t.join()
        agent.delay = 0.0
    assert first[0].status == 200
    bodies = [r["body"] for r in agent.backend.received()]
    assert bodies.count(slow) == 1 and bodies.count(other) == 1


# ---------------------------------------------------------------- 7. 8. audit and repeated signed headers

def test_no_token_is_recoverable_from_the_audit_record(presets):
    port, backend, envoy = presets
    for name in ("okta", "gitlab"):
        body = json.dumps({"id": uuid.uuid4().hex, "x": 1}).encode()
        sent = P[name].sign(body)
        assert h.request(port, h.PREFIX + "trg_" + name, sent.body, sent.all_headers()).status == 200
        token = next(v for k, v in sent.headers.items() if k.lower() in ("authorization", "x-gitlab-token"))
        digest = hashlib.sha256(body).hexdigest()
        deadline, rows = time.time() + 5, []
        while not rows and time.time() < deadline:
            rows = [json.loads(line.split("webhook_audit ", 1)[1]) for line in envoy.logs().splitlines()
                    if "webhook_audit {" in line and digest in line]
            time.sleep(0.05)
        [row] = rows
        header = next(k for k in sent.headers if k.lower() in ("authorization", "x-gitlab-token")).lower()
        guess = hashlib.sha256(f"{header}:{token}\n".encode()).hexdigest()
        assert row["headers_sha256"] != guess and token not in json.dumps(row), (name, row)


def test_a_token_in_the_body_is_blanked_before_any_digest(presets):
    """Microsoft Graph's clientState travels in the body: neither the audit's
    body digest nor the delivery id is a digest of the body with the token,
    which a word list over a predictable body would invert."""
    port, backend, envoy = presets
    body = json.dumps({"value": [{"clientState": "TOKEN", "resource": "users/" + uuid.uuid4().hex,
                                  "changeType": "created"}]}).encode()
    sent = P["microsoft_graph"].sign(body)
    assert h.request(port, h.PREFIX + "trg_microsoft_graph", sent.body, sent.all_headers()).status == 200
    [got] = backend.received()
    token = P["microsoft_graph"].key
    assert token.encode() in sent.body
    plain = hashlib.sha256(sent.body).hexdigest()
    assert h.header(got, "x-combo-delivery-id") != h.delivery_id("trg_microsoft_graph", b"", sent.body)
    blanked = sent.body.replace(token.encode(), b"*" * len(token))
    assert h.header(got, "x-combo-delivery-id") == h.delivery_id("trg_microsoft_graph", b"", blanked)
    deadline, rows = time.time() + 5, []
    while not rows and time.time() < deadline:
        rows = [line for line in envoy.logs().splitlines()
                if "webhook_audit {" in line and hashlib.sha256(blanked).hexdigest() in line]
        time.sleep(0.05)
    assert rows and all(plain not in line for line in envoy.logs().splitlines())


@pytest.fixture(scope="module")
def header_edge(agent):
    port = h.free_port()
    cfg = {"triggers": [{"id": "trg_h", "secret": SECRET, "action": {"agent_id": "agent"}, "scheme": {
        "algorithm": "hmac-sha256", "signature": {"header": "x-sig"}, "signed": "{header:x-tenant}.{body}"}}]}
    envoy = h.Envoy(h.single_upstream(cfg, agent.backend.port, port)).wait_ready()
    yield port
    envoy.stop()


def test_a_signed_header_sent_twice_is_refused(header_edge, agent):
    port = header_edge
    agent.backend.clear()
    body = json.dumps({"id": uuid.uuid4().hex}).encode()
    sig = hmac.new(SECRET.encode(), b"acme." + body, hashlib.sha256).hexdigest()
    ok = h.request(port, h.PREFIX + "trg_h", body, {"content-type": "application/json", "x-sig": sig,
                                                   "x-tenant": "acme"})
    assert ok.status == 200, ok
    body2 = json.dumps({"id": uuid.uuid4().hex}).encode()
    sig2 = hmac.new(SECRET.encode(), b"acme." + body2, hashlib.sha256).hexdigest()
    twice = h.request(port, h.PREFIX + "trg_h", body2, {"content-type": "application/json", "x-sig": sig2,
                                                       "x-tenant": ["acme", "evil"]})
    assert (twice.status, twice.error_code()) == (401, "malformed_signature"), twice
    assert len(agent.backend.received()) == 1


# ---------------------------------------------------------------- 4. 5. configurations that weaken a promise

@pytest.mark.parametrize("scheme,field", [
    ({"algorithm": "hmac-sha256", "signature": {"header": "x-sig"}, "signed": "{timestamp}",
      "timestamp": {"header": "x-ts"}}, "triggers[0].scheme.signed"),
    ({"algorithm": "hmac-sha256", "signature": {"header": "x-sig"}, "signed": "{body}",
      "timestamp": {"header": "x-ts"}}, "triggers[0].scheme.timestamp"),
    ({"algorithm": "hmac-sha256", "signature": {"header": "x-sig"}, "id": {"header": "x-id"}},
     "triggers[0].scheme.id"),
    ({"algorithm": "token", "signature": {"header": "x-token"}}, "triggers[0].scheme.signed"),
])
def test_envoy_refuses_a_scheme_that_does_not_cover_what_it_reads(tmp_path, scheme, field):
    cfg = {"triggers": [{"id": "t", "secret": "s", "action": {"agent_id": "a"}, "scheme": scheme}]}
    envoy = h.Envoy(h.single_upstream(cfg, h.free_port(), h.free_port()))
    try:
        with pytest.raises(RuntimeError):
            envoy.wait_ready(timeout=15)
        assert field in envoy.logs(), envoy.logs()[-2000:]
    finally:
        envoy.stop()


@pytest.mark.parametrize("override,field", [
    ({"signed": "{id}", "id": {"header": "x-github-delivery"}}, "triggers[0].scheme.signed"),
    ({"timestamp": {"header": "x-ts"}}, "triggers[0].scheme.timestamp"),
])
def test_the_cli_refuses_a_preset_override_that_drops_the_body_or_an_unsigned_timestamp(tmp_path, override, field):
    cfg = {"triggers": [{"id": "t", "source": "github", "secret": "s", "action": {"agent_id": "a"},
                         "scheme": override}]}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    out = subprocess.run([str(h.REPO / "target/release/combo-webhook"), "validate", str(path)],
                         capture_output=True, text=True)
    assert out.returncode != 0 and field in out.stderr + out.stdout, out


# ---------------------------------------------------------------- envelope bound

@pytest.fixture(scope="module")
def envelope_edge(agent):
    port = h.free_port()
    cfg = {"max_body_bytes": 65536, "inputs_delivery": "envelope", "triggers": [{
        "id": "trg_env", "secret": SECRET, "action": {"agent_id": "agent", "inputs": {
            f"copy{i}": "{{ payload.s }}" for i in range(3)}}}]}
    envoy = h.Envoy(h.single_upstream(cfg, agent.backend.port, port)).wait_ready()
    yield port
    envoy.stop()


def test_envelope_inputs_are_bounded_by_the_filter_not_by_envoys_buffer(envelope_edge, agent):
    """Three inputs copying a 30 KB field: 90 KB of inputs over a 64 KiB
    max_body_bytes is the filter's 413 inputs_too_large; a small one is
    delivered in the envelope."""
    port = envelope_edge
    agent.backend.clear()
    big = json.dumps({"s": "x" * 30_000}).encode()
    r = h.request(port, h.PREFIX + "trg_env", big, h.signed_headers(SECRET, big))
    assert (r.status, r.error_code()) == (413, "inputs_too_large"), r
    small = json.dumps({"s": "hello"}).encode()
    r = h.request(port, h.PREFIX + "trg_env", small, h.signed_headers(SECRET, small))
    assert r.status == 200, r
    [got] = agent.backend.received()
    assert json.loads(got["body"])["inputs"] == {"copy0": "hello", "copy1": "hello", "copy2": "hello"}
