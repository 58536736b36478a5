"""Attack review of the published keys (SNS: repeated keys, the key cache,
URL pinning, the fetch budget), in a real Envoy with one worker. Each test
plays an attacker and asserts what the product promises (README: nothing
unverified reaches a backend; each delivery reaches it at most once)."""
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import time
import uuid
import zlib

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from combo_edge import envoy as h
from combo_edge.keyserver import SNS_FIELDS, KeyServer, pem, rsa_signing_cert

from attack_edge import (ATTACKER_TOPIC, PLAID, SQUARE_KEY, TWILIO_BASE, TWILIO_TOKEN, VICTIM_TOPIC,  # noqa: F401
                         code, edge, now_stamp, run, serve_cert, sns_doc, sns_send)

# ------------------------------------------------------------ SNS: duplicate JSON keys

def test_sns_repeated_keys_are_refused(run):
    """The signed string is built from the FIRST occurrence of each field
    (body_field::value_at stops at the first hit); every mainstream JSON
    parser the backend uses (Python, JS, Go, serde_json::Value) keeps the
    LAST. Anyone holding one signed SNS message (any AWS account can get one
    from its own topic) appends a second Message / TopicArn."""
    port, backend, envoy, ks, _ = run
    key, url = serve_cert(ks)
    doc = sns_doc(url, key)
    forged = json.dumps(doc)[:-1] + (', "Message": "{\\"order\\": \\"forged\\", \\"amount\\": 1000000}"'
                                     ', "TopicArn": "arn:aws:sns:us-east-1:222222222222:victim-topic"}')
    resp = sns_send(port, "trg_sns", forged.encode())
    got = [json.loads(r["body"]) for r in backend.received()]
    assert resp.status != 200 or all(g["Message"] == doc["Message"] for g in got), \
        f"{resp.status}: the backend read Message={got[0]['Message']!r} TopicArn={got[0]['TopicArn']!r}, " \
        "neither signed"


def test_sns_a_repeated_topic_arn_never_reaches_the_backend(run):
    """The trigger matches TopicArn == the operator's topic. A message AWS
    signed for the attacker's own topic, with a second TopicArn naming the
    victim's: the signature reads the first, `match` (a parsed tree) the last."""
    port, backend, envoy, ks, _ = run
    key, url = serve_cert(ks)
    doc = sns_doc(url, key)  # TopicArn: the attacker's topic, signed
    plain = sns_send(port, "trg_sns_topic", json.dumps(doc).encode())
    assert (plain.status, code(plain)) == (403, "sender_not_allowed") and backend.received() == [], plain
    doc2 = sns_doc(url, key)
    forged = json.dumps(doc2)[:-1] + f', "TopicArn": "{VICTIM_TOPIC}"}}'
    resp = sns_send(port, "trg_sns_topic", forged.encode())
    assert backend.received() == [], f"{resp.status}: forwarded as the victim topic's message"


def test_sns_duplicate_subscribe_url(run):
    """A SubscriptionConfirmation whose second SubscribeURL is the attacker's:
    the backend confirms by visiting SubscribeURL (docs), i.e. the attacker's URL."""
    port, backend, envoy, ks, _ = run
    key, url = serve_cert(ks)
    token = uuid.uuid4().hex
    doc = sns_doc(url, key, Type="SubscriptionConfirmation", Token=token, Message="You have chosen to subscribe",
                  SubscribeURL="https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=" + token)
    forged = json.dumps(doc)[:-1] + ', "SubscribeURL": "http://169.254.169.254/latest/meta-data/"}'
    resp = h.request(port, h.PREFIX + "trg_sns", forged.encode(),
                     {"content-type": "text/plain; charset=UTF-8",
                      "x-amz-sns-message-type": "SubscriptionConfirmation"})
    got = [json.loads(r["body"])["SubscribeURL"] for r in backend.received()]
    assert resp.status != 200 or got == [doc["SubscribeURL"]], f"{resp.status}: backend visits {got}"


def test_sns_field_boundary_shift_is_still_one_delivery(run):
    """Held: MessageId "I\\nSubject\\nS" without Subject signs the same string
    as MessageId "I" with Subject "S"; the replay key is the signed string."""
    port, backend, envoy, ks, _ = run
    key, url = serve_cert(ks)
    doc = sns_doc(url, key, Subject="Hello")
    assert sns_send(port, "trg_sns", json.dumps(doc).encode()).status == 200
    shifted = dict(doc, MessageId=doc["MessageId"] + "\nSubject\nHello")
    del shifted["Subject"]
    again = sns_send(port, "trg_sns", json.dumps(shifted).encode())
    assert (again.status, again.json()) == (200, {"status": "duplicate"}), again
    assert len(backend.received()) == 1


# ------------------------------------------------------------ published keys: the cache

def test_a_key_fetched_through_another_triggers_cluster_is_not_used(run):
    """The cache key holds the cluster (published::KeySource::locate): a key
    that trg_sns_stage fetched through its own cluster never verifies a
    delivery to trg_sns, whose own cluster has no such certificate."""
    port, backend, envoy, ks, stage = run
    attacker_key, cert = rsa_signing_cert("sns.amazonaws.com")
    path = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
    stage.put(path, pem(cert))  # only the stage cluster serves it
    url = "https://sns.us-east-1.amazonaws.com" + path
    first = sns_send(port, "trg_sns_stage", json.dumps(sns_doc(url, attacker_key)).encode())
    assert first.status == 200, first
    # The production trigger's own cluster answers 404 for this path.
    resp = sns_send(port, "trg_sns", json.dumps(sns_doc(url, attacker_key)).encode())
    assert len(ks.fetches(path)) == 1, "trg_sns asked its own cluster, which has no such certificate"
    assert (resp.status, code(resp)) == (401, "key_unavailable"), \
        f"{resp.status}: verified with a key trg_sns never fetched"


# ------------------------------------------------------------ published keys: URL pinning

@pytest.mark.parametrize("host", ["sns.s3.amazonaws.com", "sns.s3-external-1.amazonaws.com"])
def test_sns_pin_refuses_s3_bucket_hosts(run, host):
    """S3 virtual-hosted bucket names (bucket `sns` on s3 / legacy
    s3-<region> endpoints) are not regions: `sns.{region}.amazonaws.com`
    refuses them (the key server here answers any host, so a 200 would
    show the pin let the URL through)."""
    port, backend, envoy, ks, _ = run
    key, url = serve_cert(ks, host=host)
    resp = sns_send(port, "trg_sns", json.dumps(sns_doc(url, key)).encode())
    assert (resp.status, code(resp)) == (401, "untrusted_key_url"), resp


@pytest.mark.parametrize("url", [
    "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com@evil.example/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com\\@evil.example/SimpleNotificationService-x.pem",
    "https://evil.example\\sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com./SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com:0443/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com:443:443/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/%2e%2e/SimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/x/..%2fSimpleNotificationService-x.pem",
    "https://sns.us-east-1.amazonaws.com/x?.pem",
    "https://sns.us-east-1.amazonaws.com/x#.pem",
    "https://sns.xn--us-east-1-.amazonaws.com.evil.example/x.pem",
    "https://sns.us-east-1.amazonaws.com%2eevil.example/x.pem",
    "https://sns.us-east-1.amаzonaws.com/x.pem",  # Cyrillic a
    "https://sns.evil.example.amazonaws.com/x.pem",
    "https://sns.us-east-1.amazonaws.com/" + "a" * 600 + ".pem",
    "https://sns.us-east-1.amazonaws.com\t/x.pem",
    "https://sns.us-east-1.amazonaws.com/x.pem\n",
    "https://[::1]/x.pem",
    "https://127.0.0.1/x.pem",
])
def test_sns_pin_bypasses_held(run, url):
    port, backend, envoy, ks, _ = run
    key, _ = serve_cert(ks)
    before = len(ks.requests)
    resp = sns_send(port, "trg_sns", json.dumps(sns_doc(url, key)).encode())
    assert (resp.status, code(resp)) == (401, "untrusted_key_url"), resp
    assert len(ks.requests) == before
    assert backend.received() == []


def test_sns_uppercase_host_is_the_same_cache_entry(run):
    """Held: the host is lowercased, so SNS.US-EAST-1 is one fetch, one entry."""
    port, backend, envoy, ks, _ = run
    key, url = serve_cert(ks)
    path = url.split(".com", 1)[1]
    assert sns_send(port, "trg_sns", json.dumps(sns_doc(url, key)).encode()).status == 200
    upper = "HTTPS://SNS.US-EAST-1.AMAZONAWS.COM:443" + path
    assert sns_send(port, "trg_sns", json.dumps(sns_doc(upper, key)).encode()).status == 200
    assert len(ks.fetches(path)) == 1


def test_fetch_budget_refuses_past_eight_a_second_and_never_5xx(run):
    """Held: fresh certificate URLs on a pinned host past the budget are 401 key_unavailable."""
    port, backend, envoy, ks, _ = run
    key, _ = serve_cert(ks)
    codes = []
    for _ in range(20):
        url = f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{uuid.uuid4().hex}.pem"
        r = sns_send(port, "trg_sns", json.dumps(sns_doc(url, key)).encode())
        codes.append((r.status, code(r)))
    assert all(s == 401 for s, _ in codes), codes
    time.sleep(1.1)  # the next test's fetch gets a fresh second
    assert {c for _, c in codes} <= {"key_unavailable"}, codes
