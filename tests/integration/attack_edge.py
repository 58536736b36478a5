"""The edge the attack tests play against (test_published_attacks*.py): one
Envoy, one worker, two key servers (the trigger's own and another
trigger's), and triggers for SNS, PayPal, Plaid, Square and Twilio; and
the senders' helpers. Not a test module: its fixtures are imported."""
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

SQUARE_KEY = "square-attack-key"
TWILIO_TOKEN = "twilio-attack-token"
TWILIO_BASE = "https://hooks.example.com"
VICTIM_TOPIC = "arn:aws:sns:us-east-1:222222222222:victim-topic"
ATTACKER_TOPIC = "arn:aws:sns:us-east-1:111111111111:attacker-topic"
PLAID = {"client_id": "plaid-client", "secret": "plaid-secret-value"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    ks = KeyServer(tmp_path_factory.mktemp("keyserver"))
    # A second key server: another trigger's (a staging or another tenant's)
    # key cluster, trusted by that trigger only.
    stage = KeyServer(tmp_path_factory.mktemp("stage_keyserver"))
    backend = h.Backend("attack_review")
    port = h.free_port()
    triggers = [
        {"id": "trg_sns", "source": "aws_sns", "scheme": {"key": {"cluster": "keys"}, "sender": {"one_of": [ATTACKER_TOPIC]}}},
        # The operator binds the trigger to its own topic (and with `match` too).
        {"id": "trg_sns_topic", "source": "aws_sns",
         "scheme": {"key": {"cluster": "keys"}, "sender": {"one_of": [VICTIM_TOPIC]}},
         "match": {"jsonpath": "$.TopicArn", "equals": VICTIM_TOPIC}},
        {"id": "trg_sns_stage", "source": "aws_sns",
         "scheme": {"key": {"cluster": "stage_keys"}, "sender": {"one_of": [ATTACKER_TOPIC]}}},
        {"id": "trg_paypal", "source": "paypal",
         "scheme": {"key": {"cluster": "keys"}, "params": {"webhook_id": "WH-COMBO-1"}}},
        {"id": "trg_plaid", "source": "plaid", "scheme": {"key": {"cluster": "keys"}, "params": PLAID}},
        # A {url} scheme: public_url is required, so the Host header never enters {url}.
        {"id": "trg_square", "source": "square", "secret": SQUARE_KEY,
         "scheme": {"public_url": "http://edge.example.com"}},
        {"id": "trg_twilio", "source": "twilio", "secret": TWILIO_TOKEN, "scheme": {"public_url": TWILIO_BASE}},
    ]
    for t in triggers:
        t["action"] = {"agent_id": "agent"}
    cfg = {"replay": {"enabled": True, "window_seconds": 600}, "triggers": triggers}
    envoy = h.Envoy(h.single_upstream(cfg, backend.port, port, [ks.cluster("keys"), stage.cluster("stage_keys")]),
                    concurrency=1).wait_ready()
    yield port, backend, envoy, ks, stage
    envoy.stop()
    backend.stop()
    ks.stop()
    stage.stop()


@pytest.fixture
def run(edge):
    edge[1].clear()
    return edge


def code(resp):
    """The error code, or the body when the answer is not an error."""
    try:
        return resp.json()["error"]["code"]
    except (KeyError, ValueError, TypeError):
        return resp.body


def now_stamp():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def sns_doc(cert_url, key, **fields):
    """An SNS notification signed as AWS signs it (SHA1withRSA, v1)."""
    doc = {"Type": "Notification", "MessageId": str(uuid.uuid4()),
           "TopicArn": ATTACKER_TOPIC,
           "Message": json.dumps({"order": str(uuid.uuid4()), "amount": 1}),
           "Timestamp": now_stamp(), "SignatureVersion": "1", "SigningCertURL": cert_url,
           "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"}
    doc.update(fields)
    text = "".join(f"{k}\n{doc[k]}\n" for k in SNS_FIELDS if k in doc)
    doc["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA1())).decode()
    return doc


def sns_send(port, trigger, raw: bytes):
    return h.request(port, h.PREFIX + trigger, raw,
                     {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"})


def serve_cert(server, host="sns.us-east-1.amazonaws.com"):
    key, cert = rsa_signing_cert("sns.amazonaws.com")
    path = f"/SimpleNotificationService-{uuid.uuid4().hex}.pem"
    server.put(path, pem(cert))
    return key, f"https://{host}{path}"


