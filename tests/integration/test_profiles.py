"""Replay protection and delivery ids across presets, in a real Envoy with two
workers (the replay cache is shared by all of them). Where a provider publishes
a signing library, that library signs the delivery. (Each preset's own
accept / refuse matrix is test_presets.py.)"""
import base64
import datetime
import hashlib
import hmac
import json
import time
import uuid

import pytest
import standardwebhooks
import stripe

from combo_edge import envoy as h
from conftest import needs_details

GITHUB_SECRET = "gh-secret"
STRIPE_SECRET = "whsec_stripe_test_secret"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
STD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-key-32-bytes!!").decode()
SHOPIFY_SECRET = "shopify-app-secret"
REPLAY_WINDOW = 600


def trigger(tid, source, secret):
    return {"id": tid, "source": source, "secret": secret,
            "action": {"agent_id": "ticket-triage", "inputs": {"n": "{{ payload.n }}"}}}


@pytest.fixture(scope="module")
def provider_edge(backends):
    port = h.free_port()
    cfg = {
        "replay": {"enabled": True, "window_seconds": REPLAY_WINDOW, "max_entries": 4096},
        "triggers": [
            trigger("trg_github", "github", GITHUB_SECRET),
            trigger("trg_stripe", "stripe", STRIPE_SECRET),
            trigger("trg_slack", "slack", SLACK_SECRET),
            trigger("trg_std", "standard_webhooks", STD_SECRET),
            trigger("trg_shopify", "shopify", SHOPIFY_SECRET),
            trigger("trg_generic", "generic_webhook", "generic-secret"),
        ],
    }
    wasm = h.edge_filter(cfg)
    envoy = h.Envoy({"static_resources": {
        "listeners": [h.listener("ingress", port, h.http_connection_manager(
            [wasm], h.agent_routes({"ticket-triage": "agent"}, "agent")))],
        "clusters": [h.cluster("agent", backends["ticket-triage"].port)],
    }}, concurrency=2).wait_ready()
    yield port
    envoy.stop()


def payload() -> bytes:
    return json.dumps({"n": uuid.uuid4().int % 10**9, "text": "héllo"}).encode()


# Each signer returns the headers for a body, the way the provider sends them.

def sign_github(body):
    sig = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": sig, "x-github-delivery": str(uuid.uuid4()), "x-github-event": "issues"}


def sign_stripe(body):  # stripe-python's own signer
    return {"stripe-signature": stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET)}


def sign_std(body, prefix="webhook-"):  # the standardwebhooks reference library
    msg_id = "msg_" + uuid.uuid4().hex
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    sig = standardwebhooks.Webhook(STD_SECRET).sign(msg_id, now, body.decode())
    return {f"{prefix}id": msg_id, f"{prefix}timestamp": str(int(now.timestamp())), f"{prefix}signature": sig}


def sign_shopify(body):
    sig = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return {"x-shopify-hmac-sha256": sig, "x-shopify-webhook-id": str(uuid.uuid4()), "x-shopify-topic": "orders/create"}


def post(port, tid, body, headers):
    return h.request(port, h.PREFIX + tid, body, dict(headers, **{"content-type": "application/json"}))


def test_delivery_ids_are_trusted_only_where_signed(provider_edge, backends):
    """Standard Webhooks signs its id; GitHub and Shopify do not, so their
    delivery id is derived from what the signature covers."""
    body = payload()
    gh = sign_github(body)
    assert post(provider_edge, "trg_github", body, gh).status == 200
    body2 = payload()
    shop = sign_shopify(body2)
    assert post(provider_edge, "trg_shopify", body2, shop).status == 200
    body3 = payload()
    std = sign_std(body3)
    assert post(provider_edge, "trg_std", body3, std).status == 200
    got = backends["ticket-triage"].received()
    assert [h.header(r, "x-combo-delivery-id") for r in got] == [
        h.delivery_id("trg_github", b"", body), h.delivery_id("trg_shopify", b"", body2), std["webhook-id"]]


@pytest.mark.parametrize("tid,signer", [("trg_github", sign_github), ("trg_stripe", sign_stripe),
                                        ("trg_std", sign_std), ("trg_generic", None)])
def test_replay_answered_at_edge(provider_edge, backends, tid, signer):
    body = payload()
    if signer:
        headers = signer(body)
    else:
        headers = h.signed_headers("generic-secret", body)
    assert post(provider_edge, tid, body, headers).status == 200
    # Fresh connections, so both Envoy workers see the replays.
    for _ in range(6):
        resp = post(provider_edge, tid, body, headers)
        assert resp.status == 200, resp
        assert resp.json() == {"status": "duplicate"}
    assert len(backends["ticket-triage"].received()) == 1


def test_same_delivery_id_resigned_is_still_a_duplicate(provider_edge, backends):
    body = payload()
    first = sign_github(body)
    assert post(provider_edge, "trg_github", body, first).status == 200
    # GitHub's "redeliver" keeps X-GitHub-Delivery.
    again = dict(sign_github(body), **{"x-github-delivery": first["x-github-delivery"]})
    assert post(provider_edge, "trg_github", body, again).json() == {"status": "duplicate"}
    assert len(backends["ticket-triage"].received()) == 1


@needs_details
def test_retry_after_backend_5xx_gets_through(provider_edge, backends):
    agent = backends["ticket-triage"]
    body = payload()
    headers = sign_github(body)
    agent.status = 503
    resp = post(provider_edge, "trg_github", body, headers)
    assert resp.status == 503, resp
    agent.status = 200
    resp = post(provider_edge, "trg_github", body, headers)
    assert resp.status == 200 and resp.json() == {"backend": "ticket-triage"}, resp
    resp = post(provider_edge, "trg_github", body, headers)
    assert resp.json() == {"status": "duplicate"}
    assert len(agent.received()) == 2


def test_rejected_delivery_is_not_remembered(provider_edge, backends):
    body = payload()
    headers = sign_github(body)
    resp = post(provider_edge, "trg_github", body + b" ", headers)
    assert resp.error_code() == "signature_mismatch"
    assert post(provider_edge, "trg_github", body, headers).status == 200
    assert len(backends["ticket-triage"].received()) == 1
