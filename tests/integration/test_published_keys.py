"""Keys the sender publishes (docs "Published keys"), in a real Envoy with
a real local HTTPS key server: AWS SNS and PayPal certificates named by the
delivery, Plaid's JWK fetched by kid, a JWKS. Each sender is written from the
provider's documentation (SNS: "Verifying the signatures of Amazon SNS
messages"; PayPal: the webhooks API's signature; Plaid: "Webhook
verification"), JWTs are signed by PyJWT, never by the filter's code."""
import base64
import datetime
import hashlib
import json
import time
import uuid
import zlib

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from combo_edge import envoy as h
from combo_edge.keyserver import KeyServer, pem, rsa_signing_cert, sns_message as sns, tls_cluster

PLAID = {"client_id": "plaid-client", "secret": "plaid-secret-value"}
JWKS_PATH = "/.well-known/jwks.json"
TOPICS = {"one_of": ["arn:aws:sns:us-east-1:123456789012:combo"]}


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    ks = KeyServer(tmp_path_factory.mktemp("keyserver"))
    backend = h.Backend("published")
    port = h.free_port()
    keys = {"cluster": "keys"}
    triggers = [
        {"id": "trg_sns", "source": "aws_sns", "scheme": {"key": keys, "sender": TOPICS}},
        {"id": "trg_sns_slow", "source": "aws_sns",
         "scheme": {"key": {"cluster": "keys", "timeout_ms": 300}, "sender": TOPICS}},
        {"id": "trg_sns_dead", "source": "aws_sns", "scheme": {"key": {"cluster": "dead_keys"}, "sender": TOPICS}},
        {"id": "trg_paypal", "source": "paypal", "scheme": {"key": keys, "params": {"webhook_id": "WH-COMBO-1"}}},
        {"id": "trg_plaid", "source": "plaid", "scheme": {"key": keys, "params": PLAID}},
        {"id": "trg_jwks", "scheme": {
            "algorithm": "jwt-rs256", "signature": {"header": "X-Signature-Jwt"},
            "timestamp": {"claim": "iat", "max_age": 300}, "jwt": {"body_sha256": "body_sha256"},
            "key": {"url": "https://keys.example.com" + JWKS_PATH, "format": "jwks", "cluster": "keys"}}},
    ]
    for t in triggers:
        t["action"] = {"agent_id": "agent"}
    cfg = {"replay": {"enabled": True, "window_seconds": 600}, "triggers": triggers}
    dead = tls_cluster("dead_keys", h.free_port(), str(ks.ca_path))
    # One worker: every fetch and cache hit is this worker's, so they can be counted.
    envoy = h.Envoy(h.single_upstream(cfg, backend.port, port, [ks.cluster("keys"), dead]), concurrency=1).wait_ready()
    yield port, backend, envoy, ks
    envoy.stop()
    backend.stop()
    ks.stop()


@pytest.fixture
def run(edge):
    port, backend, envoy, ks = edge
    backend.clear()
    return edge


def post(port, trigger, body, headers=None):
    return h.request(port, h.PREFIX + trigger, body, dict({"content-type": "application/json"}, **(headers or {})))


def audit_rows(envoy, trigger):
    return [json.loads(line.split("webhook_audit ", 1)[1]) for line in envoy.logs().splitlines()
            if "webhook_audit {" in line and f'"{trigger}"' in line]


# ---------------------------------------------------------------- AWS SNS

def sns_post(port, trigger, doc):
    return h.request(port, h.PREFIX + trigger, json.dumps(doc).encode(),
                     {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": doc["Type"]})


def sns_cert(ks, host="sns.us-east-1.amazonaws.com"):
    key, cert = rsa_signing_cert("sns.amazonaws.com")
    path = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
    ks.put(path, pem(cert))
    return key, f"https://{host}{path}", path


def test_sns_verifies_with_the_certificate_it_names_fetched_once(run):
    port, backend, envoy, ks = run
    key, url, path = sns_cert(ks)
    sent = []
    for version, kind, subject in [("1", "Notification", None), ("2", "Notification", "Hi"),
                                   ("1", "SubscriptionConfirmation", None)]:
        doc = sns(url, key, version, kind, subject)
        resp = sns_post(port, "trg_sns", doc)
        assert resp.status == 200, resp
        sent.append(json.dumps(doc).encode())
    assert [r["body"] for r in backend.received()] == sent
    assert len(ks.fetches(path)) == 1, "fetched once, then cached"
    assert ks.fetches(path)[0]["host"] == "sns.us-east-1.amazonaws.com"
    deadline = time.time() + 5  # the log is flushed every 50 ms
    while True:
        rows = [r for r in audit_rows(envoy, "trg_sns") if r.get("key_id") == url]
        if len(rows) >= 3 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert [r.get("key_fetch") for r in rows] == ["fetched", "cached", "cached"], rows


def test_sns_from_a_topic_the_trigger_does_not_accept_is_refused(run):
    """AWS signs every account's topics: the trigger names the ones it takes
    (scheme.sender.one_of), checked against the signed TopicArn."""
    port, backend, envoy, ks = run
    key, url, _ = sns_cert(ks)
    doc = sns(url, key, topic="arn:aws:sns:us-east-1:999999999999:someone-else")
    resp = sns_post(port, "trg_sns", doc)
    assert (resp.status, resp.error_code()) == (403, "sender_not_allowed"), resp
    assert backend.received() == []


def test_sns_one_changed_byte_and_another_key_are_refused(run):
    port, backend, envoy, ks = run
    key, url, _ = sns_cert(ks)
    doc = sns(url, key)
    doc["Message"] = doc["Message"].replace('"x"', '"y"')
    assert sns_post(port, "trg_sns", doc).error_code() == "signature_mismatch"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert sns_post(port, "trg_sns", sns(url, other)).error_code() == "signature_mismatch"
    relabelled = sns(url, key, version="2")
    relabelled["SignatureVersion"] = "1"
    assert sns_post(port, "trg_sns", relabelled).error_code() == "signature_mismatch"
    assert backend.received() == []


@pytest.mark.parametrize("url", [
    "https://evil.example.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem",
    "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.txt",
    "https://sns.us-east-1.amazonaws.com/../SimpleNotificationService-x.pem",
])
def test_an_unpinned_certificate_url_is_never_fetched(run, url):
    port, backend, envoy, ks = run
    key, _, _ = sns_cert(ks)
    before = len(ks.requests)
    resp = sns_post(port, "trg_sns", sns(url, key))
    assert (resp.status, resp.error_code()) == (401, "untrusted_key_url"), resp
    assert len(ks.requests) == before, "nothing fetched"
    assert backend.received() == []


def test_a_pinned_host_that_redirects_fails_closed(run):
    port, backend, envoy, ks = run
    key, target_url, target_path = sns_cert(ks, host="keys.example.com")
    moved = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
    ks.put(moved, b"", status=302, headers={"location": target_url})
    resp = sns_post(port, "trg_sns", sns("https://sns.us-east-1.amazonaws.com" + moved, key))
    assert (resp.status, resp.error_code()) == (401, "key_unavailable"), resp
    assert len(ks.fetches(moved)) == 1 and ks.fetches(target_path) == [], "the redirect is never followed"
    assert backend.received() == []


def test_a_slow_or_dead_key_server_fails_closed(run):
    port, backend, envoy, ks = run
    key, cert = rsa_signing_cert("sns.amazonaws.com")
    slow = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
    ks.put(slow, pem(cert), delay=1.5)
    url = "https://sns.eu-west-1.amazonaws.com" + slow
    resp = sns_post(port, "trg_sns_slow", sns(url, key))
    assert (resp.status, resp.error_code()) == (401, "key_unavailable"), resp
    resp = sns_post(port, "trg_sns_dead", sns(url, key))
    assert (resp.status, resp.error_code()) == (401, "key_unavailable"), resp
    assert backend.received() == []


def test_an_expired_certificate_is_no_key(run):
    port, backend, envoy, ks = run
    key, cert = rsa_signing_cert("sns.amazonaws.com", days=-1 / 48)  # expired 30 minutes ago
    path = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
    ks.put(path, pem(cert))
    resp = sns_post(port, "trg_sns", sns("https://sns.us-east-1.amazonaws.com" + path, key))
    assert (resp.status, resp.error_code()) == (401, "key_unavailable"), resp


# ---------------------------------------------------------------- PayPal

def paypal(cert_url, key, body, webhook_id="WH-COMBO-1"):
    """PayPal's transmission signature: SHA256withRSA over
    transmission_id|transmission_time|webhook_id|crc32(body) (CRC-32 unsigned, decimal)."""
    tid, when = str(uuid.uuid4()), datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"{tid}|{when}|{webhook_id}|{zlib.crc32(body) & 0xffffffff}"
    sig = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    return {"PAYPAL-TRANSMISSION-ID": tid, "PAYPAL-TRANSMISSION-TIME": when, "PAYPAL-TRANSMISSION-SIG": sig,
            "PAYPAL-CERT-URL": cert_url, "PAYPAL-AUTH-ALGO": "SHA256withRSA"}


def test_paypal_verifies_and_a_second_copy_is_a_duplicate(run):
    port, backend, envoy, ks = run
    key, cert = rsa_signing_cert("messageverificationcerts.sandbox.paypal.com")
    path = f"/v1/notifications/certs/CERT-{uuid.uuid4().hex}"
    ks.put(path, pem(cert))
    url = "https://api.sandbox.paypal.com" + path
    body = json.dumps({"id": "WH-" + uuid.uuid4().hex, "event_type": "PAYMENT.SALE.COMPLETED", "x": "x"}).encode()
    headers = paypal(url, key, body)
    assert post(port, "trg_paypal", body, headers).status == 200
    again = post(port, "trg_paypal", body, headers)
    assert (again.status, again.json()) == (200, {"status": "duplicate"})
    assert post(port, "trg_paypal", body.replace(b'"x"', b'"y"'), headers).error_code() == "signature_mismatch"
    assert post(port, "trg_paypal", body, paypal(url, key, body, "WH-OTHER")).error_code() == "signature_mismatch"
    assert [r["body"] for r in backend.received()] == [body]


# ---------------------------------------------------------------- Plaid and JWKS

def jwk(public_key, kid):
    doc = json.loads(pyjwt.algorithms.ECAlgorithm.to_jwk(public_key) if isinstance(public_key, ec.EllipticCurvePublicKey)
                     else pyjwt.algorithms.RSAAlgorithm.to_jwk(public_key))
    doc.update({"kid": kid, "use": "sig"})
    return doc


def plaid_token(key, kid, body, iat=None, alg="ES256"):
    """Plaid-Verification: an ES256 JWT with kid, iat and request_body_sha256 (PyJWT signs)."""
    claims = {"iat": iat or int(datetime.datetime.now().timestamp()),
              "request_body_sha256": hashlib.sha256(body).hexdigest()}
    return pyjwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def test_plaid_fetches_its_key_by_kid_with_the_configured_credentials(run):
    port, backend, envoy, ks = run
    keys = {}

    def answer(req):
        if (req.get("client_id"), req.get("secret")) != (PLAID["client_id"], PLAID["secret"]):
            return 400, {"error_code": "INVALID_API_KEYS"}
        k = keys.get(req.get("key_id"))
        return (200, {"key": jwk(k.public_key(), req["key_id"]), "request_id": "r"}) if k else (400, {})

    ks.put("/webhook_verification_key/get", None, answer=answer)
    first, second = "kid-" + uuid.uuid4().hex, "kid-" + uuid.uuid4().hex
    keys[first] = ec.generate_private_key(ec.SECP256R1())
    body = json.dumps({"webhook_type": "TRANSACTIONS", "item_id": uuid.uuid4().hex}).encode()
    resp = post(port, "trg_plaid", body, {"Plaid-Verification": plaid_token(keys[first], first, body)})
    assert resp.status == 200, resp
    calls = ks.fetches("/webhook_verification_key/get")
    assert [json.loads(c["body"])["key_id"] for c in calls] == [first]
    assert calls[0]["method"] == "POST" and calls[0]["host"] == "production.plaid.com"
    # Rotation: a new kid is fetched; the old one stays cached.
    keys[second] = ec.generate_private_key(ec.SECP256R1())
    body2 = json.dumps({"webhook_type": "ITEM", "item_id": uuid.uuid4().hex}).encode()
    assert post(port, "trg_plaid", body2, {"Plaid-Verification": plaid_token(keys[second], second, body2)}).status == 200
    body3 = json.dumps({"webhook_type": "ITEM", "item_id": uuid.uuid4().hex}).encode()
    assert post(port, "trg_plaid", body3, {"Plaid-Verification": plaid_token(keys[first], first, body3)}).status == 200
    assert len(ks.fetches("/webhook_verification_key/get")) == 2
    # One changed byte of the body, a token naming another algorithm, a stale iat.
    token = plaid_token(keys[first], first, body3)
    changed = body3.replace(b"ITEM", b"ITEN")
    assert post(port, "trg_plaid", changed, {"Plaid-Verification": token}).error_code() == "signature_mismatch"
    none = pyjwt.encode({"iat": 1, "request_body_sha256": hashlib.sha256(body3).hexdigest()}, None, algorithm="none",
                        headers={"kid": first})
    assert post(port, "trg_plaid", body3, {"Plaid-Verification": none}).error_code() == "malformed_signature"
    stale = plaid_token(keys[first], first, body3, iat=int(datetime.datetime.now().timestamp()) - 400)
    assert post(port, "trg_plaid", body3, {"Plaid-Verification": stale}).error_code() == "timestamp_out_of_tolerance"
    assert len(backend.received()) == 3


def test_a_jwks_rotation_to_a_new_kid(run):
    port, backend, envoy, ks = run
    old, new = rsa.generate_private_key(public_exponent=65537, key_size=2048), \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ks.put(JWKS_PATH, {"keys": [jwk(old.public_key(), "k-old")]})

    def send(key, kid):
        body = json.dumps({"event": "run.finished", "n": uuid.uuid4().hex}).encode()
        claims = {"iat": int(datetime.datetime.now().timestamp()), "body_sha256": hashlib.sha256(body).hexdigest()}
        token = pyjwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
        return post(port, "trg_jwks", body, {"X-Signature-Jwt": token})

    before = len(ks.fetches(JWKS_PATH))
    assert send(old, "k-old").status == 200
    assert send(old, "k-old").status == 200
    assert len(ks.fetches(JWKS_PATH)) == before + 1, "the set is cached"
    ks.put(JWKS_PATH, {"keys": [jwk(old.public_key(), "k-old"), jwk(new.public_key(), "k-new")]})
    assert send(new, "k-new").status == 200, "an unknown kid fetches the set again"
    assert len(ks.fetches(JWKS_PATH)) == before + 2
    assert send(new, "k-old").error_code() == "signature_mismatch", "a key under another's kid"
    assert send(new, "k-nope").error_code() == "key_unavailable"
    assert len(backend.received()) == 3
