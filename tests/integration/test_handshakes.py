"""Providers' URL-verification handshakes, each played from the provider's
side against a real Envoy: answered at the edge as the provider requires,
after whatever verification it makes possible; never forwarded; counted and
audited as `handshake`."""
import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import urllib.request
import uuid

import pytest

import providers
from combo_edge import envoy as h
from providers import PROVIDERS

P = {p.name: p for p in PROVIDERS}


@pytest.fixture
def edge(preset_edge):
    port, backend, envoy = preset_edge
    backend.clear()
    return port, backend, envoy


def handshakes(envoy) -> int:
    text = urllib.request.urlopen(
        f"http://127.0.0.1:{envoy.admin_port}/stats?filter=combo_webhook_deliveries_handshake", timeout=5).read()
    return sum(int(line.split(b":")[1]) for line in text.splitlines() if b":" in line)


def post(port, name, sent, query=""):
    path = h.PREFIX + "trg_" + name + (("?" + query) if query else "")
    return h.request(port, path, sent.body, sent.all_headers())


def get(port, name, query="", headers=None):
    return h.request(port, h.PREFIX + "trg_" + name + (("?" + query) if query else ""), b"", headers or {},
                     method="GET")


def assert_answered(resp, backend, status=200):
    assert resp.status == status, resp
    assert backend.received() == [], "a handshake never reaches the backend"
    if status == 200:
        assert resp.header("x-content-type-options") == "nosniff"


@pytest.mark.matrix
def test_slack_url_verification(edge):
    """api.slack.com/events/url_verification: answer the challenge (signed request)."""
    port, backend, envoy = edge
    before = handshakes(envoy)
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    body = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge, "type": "url_verification"}).encode()
    resp = post(port, "slack", P["slack"].sign(body))
    assert_answered(resp, backend)
    assert resp.json() == {"challenge": challenge}
    forged = P["slack"].sign(body, key="not-the-signing-secret")
    assert post(port, "slack", forged).status == 401, "verified before it is answered"
    assert handshakes(envoy) == before + 1


def test_zoom_endpoint_url_validation(edge):
    """developers.zoom.us/docs/api/webhooks/#validate-your-webhook-endpoint:
    encryptedToken = hex HMAC-SHA256(secret token, plainToken)."""
    port, backend, _ = edge
    zoom = P["zoom"]
    plain = "qgg8vlvZRS6UYooatFL8Aw"
    body = json.dumps({"payload": {"plainToken": plain}, "event_ts": 1654503849680,
                       "event": "endpoint.url_validation"}).encode()
    resp = post(port, "zoom", zoom.sign(body))
    assert_answered(resp, backend)
    expected = hmac.new(zoom.key.encode(), plain.encode(), hashlib.sha256).hexdigest()
    assert resp.json() == {"plainToken": plain, "encryptedToken": expected}
    assert post(port, "zoom", zoom.sign(body, key="wrong")).status == 401


@pytest.mark.matrix
def test_x_crc(edge):
    """docs.x.com (Account Activity, CRC): GET ?crc_token=, answer
    {"response_token": "sha256=" + base64 HMAC-SHA256(consumer secret, crc_token)}."""
    port, backend, _ = edge
    token = "e3f2c9a1-" + uuid.uuid4().hex
    resp = get(port, "x", "crc_token=" + token)
    assert_answered(resp, backend)
    digest = hmac.new(P["x"].key.encode(), token.encode(), hashlib.sha256).digest()
    assert resp.json() == {"response_token": "sha256=" + base64.b64encode(digest).decode()}
    assert get(port, "x").status == 405, "a GET that is not the handshake"


def test_meta_hub_challenge(edge):
    """developers.facebook.com/docs/graph-api/webhooks/getting-started: echo
    hub.challenge when hub.verify_token is the configured one."""
    port, backend, _ = edge
    q = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                "hub.verify_token": providers.VERIFY_TOKEN})
    resp = get(port, "meta", q)
    assert_answered(resp, backend)
    assert resp.body == b"1158201444" and resp.header("content-type") == "text/plain"
    bad = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "guess"})
    resp = get(port, "meta", bad)
    assert (resp.status, resp.error_code()) == (401, "signature_mismatch")
    assert b"meta-verify-token" not in resp.body


def test_dropbox_challenge(edge):
    """dropbox.com/developers/reference/webhooks: echo ?challenge= as text, nosniff."""
    port, backend, _ = edge
    resp = get(port, "dropbox", "challenge=" + "abc123XYZ")
    assert_answered(resp, backend)
    assert resp.body == b"abc123XYZ" and resp.header("content-type") == "text/plain"
    resp = get(port, "dropbox", "challenge=" + urllib.parse.quote("<script>\x01"))
    assert (resp.status, resp.error_code()) == (400, "invalid_handshake"), "only printable ASCII is echoed"


def test_microsoft_graph_validation_token(edge):
    """learn.microsoft.com/graph/change-notifications-delivery-webhooks: POST
    ?validationToken=, answer 200 text/plain with the decoded token."""
    port, backend, _ = edge
    token = "Validation: Testing client application reachability for subscription Request-Id: " + str(uuid.uuid4())
    sent = providers.Sent({}, b"", content_type="text/plain; charset=utf-8")
    resp = post(port, "microsoft_graph", sent, "validationToken=" + urllib.parse.quote_plus(token))
    assert_answered(resp, backend)
    assert resp.body == token.encode() and resp.header("content-type") == "text/plain"
    assert post(port, "microsoft_graph", sent, "validationToken=" + "x" * 2000).error_code() == "invalid_handshake"


def test_twitch_webhook_callback_verification(edge):
    """dev.twitch.tv/docs/eventsub/handling-webhook-events/#responding-to-a-challenge-request:
    a signed verification; answer the raw challenge as text."""
    port, backend, _ = edge
    twitch = P["twitch"]
    body = json.dumps({"challenge": "pogchamp-kappa-360noscope-vohiyo",
                       "subscription": {"id": "f1c2a387", "type": "channel.follow"}}).encode()
    sent = providers.twitch_sign(twitch, body, int(time.time()), twitch.key, kind="webhook_callback_verification")
    resp = post(port, "twitch", sent)
    assert_answered(resp, backend)
    assert resp.body == b"pogchamp-kappa-360noscope-vohiyo" and resp.header("content-type") == "text/plain"
    forged = providers.twitch_sign(twitch, body, int(time.time()), "wrong", kind="webhook_callback_verification")
    assert post(port, "twitch", forged).status == 401


def test_okta_verification(edge):
    """developer.okta.com/docs/concepts/event-hooks/#one-time-verification-request:
    GET with X-Okta-Verification-Challenge (and the hook's authorization header),
    answer {"verification": <value>}."""
    port, backend, _ = edge
    value = "WxLgYYvYhBgxjyzC2QT3sC2p8_2XXXYZ"
    auth = {"Authorization": P["okta"].key, "X-Okta-Verification-Challenge": value}
    resp = get(port, "okta", headers=auth)
    assert_answered(resp, backend)
    assert resp.json() == {"verification": value}
    forged = dict(auth, Authorization="guess")
    assert (get(port, "okta", headers=forged).error_code()) == "signature_mismatch"


def test_discord_ping(edge):
    """discord.com/developers/docs/interactions/overview#receiving-an-interaction:
    a signed PING (type 1) is answered {"type": 1}; Discord also sends bad
    signatures and expects 401."""
    port, backend, _ = edge
    discord = P["discord"]
    body = json.dumps({"type": 1, "id": str(uuid.uuid4()), "application_id": "1"}).encode()
    resp = post(port, "discord", discord.sign(body))
    assert_answered(resp, backend)
    assert resp.json() == {"type": 1}
    assert post(port, "discord", discord.sign(body, key=discord.other)).status == 401
    # Any other interaction is a delivery like any other.
    cmd = json.dumps({"type": 2, "n": 7, "id": str(uuid.uuid4())}).encode()
    assert post(port, "discord", discord.sign(cmd)).status == 200
    assert len(backend.received()) == 1


def discord_event(kind: int) -> bytes:
    """discord.com/developers/docs/events/webhook-events: the PING is type 0;
    an event is type 1 with an `event` object."""
    doc = {"version": 1, "application_id": "1", "type": kind}
    if kind == 1:
        doc["event"] = {"type": "APPLICATION_AUTHORIZED", "timestamp": "2026-12-07T15:00:00Z",
                        "data": {"n": str(uuid.uuid4())}}
    return json.dumps(doc).encode()


def test_discord_webhook_events_ping_is_answered_204_and_events_forwarded(edge):
    port, backend, _ = edge
    p = P["discord_webhook_events"]
    resp = post(port, "discord_webhook_events", p.sign(discord_event(0)))
    assert (resp.status, resp.body) == (204, b""), resp
    assert backend.received() == [], "a PING never reaches the backend"
    assert post(port, "discord_webhook_events", p.sign(discord_event(0), key=p.other)).status == 401
    event = discord_event(1)
    resp = post(port, "discord_webhook_events", p.sign(event))
    assert resp.status == 200, resp
    [got] = backend.received()
    assert got["body"] == event


def test_a_webhook_event_on_an_interactions_endpoint_is_never_answered_as_a_ping(edge):
    """type 1 is an Interactions PING but a Webhook Event too: one that
    carries an `event` is forwarded, never answered at the edge and lost."""
    port, backend, _ = edge
    event = discord_event(1)
    resp = post(port, "discord", P["discord"].sign(event))
    assert resp.status == 200 and resp.body != b'{"type":1}', resp
    [got] = backend.received()
    assert got["body"] == event


def dropbox_audit_rows(envoy) -> list[dict]:
    return [json.loads(line.split("webhook_audit ", 1)[1]) for line in envoy.logs().splitlines()
            if "webhook_audit {" in line and '"trg_dropbox"' in line]


def test_handshakes_are_audited(edge):
    port, backend, envoy = edge
    time.sleep(0.3)  # earlier tests' lines flushed (every 50 ms)
    before = len(dropbox_audit_rows(envoy))
    token = "audit-" + uuid.uuid4().hex
    assert get(port, "dropbox", "challenge=" + token).status == 200
    # Two workers flush their log lines independently: look among every row
    # since, not only at the last one.
    deadline = time.time() + 5
    while time.time() < deadline:
        rows = dropbox_audit_rows(envoy)[before:]
        if any(r["verdict"] == "handshake" for r in rows):
            break
        time.sleep(0.1)
    assert any(r["verdict"] == "handshake" for r in rows), rows
