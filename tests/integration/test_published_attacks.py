"""Attack review of the features added on 2026-12-07 (published keys, Graph
batches, Twilio body_digest and the port-spelling retry), in a real Envoy
with one worker. Each test plays an attacker and asserts what the product
promises (README: nothing unverified reaches a backend; each delivery
reaches it at most once). A failing test here is a finding."""
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


# ------------------------------------------------------------ PayPal

def crc_forge(prefix: bytes, target: int, suffix: bytes = b'"}') -> bytes:
    """prefix + 64 chars of 'a'/'c' + suffix with crc32 == target: CRC-32 is
    affine over GF(2), so pick the subset of positions to flip by elimination.
    The result stays printable (valid JSON when prefix/suffix make it so)."""
    n = 64
    base = bytearray(prefix + b"a" * n + suffix)
    c0 = zlib.crc32(bytes(base))
    basis = {}  # pivot bit -> (vector, positions mask)
    for i in range(n):
        flipped = bytearray(base)
        flipped[len(prefix) + i] = ord("c")
        v, m = zlib.crc32(bytes(flipped)) ^ c0, 1 << i
        for bit in sorted(basis, reverse=True):
            if v >> bit & 1:
                v ^= basis[bit][0]
                m ^= basis[bit][1]
        if v:
            basis[v.bit_length() - 1] = (v, m)
    want, mask = c0 ^ target, 0
    for bit in sorted(basis, reverse=True):
        if want >> bit & 1:
            want ^= basis[bit][0]
            mask ^= basis[bit][1]
    assert want == 0
    for i in range(n):
        if mask >> i & 1:
            base[len(prefix) + i] = ord("c")
    assert zlib.crc32(bytes(base)) == target
    return bytes(base)


def paypal_headers(cert_url, key, body, tid=None):
    tid = tid or str(uuid.uuid4())
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"{tid}|{when}|WH-COMBO-1|{zlib.crc32(body) & 0xffffffff}"
    sig = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
    return {"content-type": "application/json", "PAYPAL-TRANSMISSION-ID": tid, "PAYPAL-TRANSMISSION-TIME": when,
            "PAYPAL-TRANSMISSION-SIG": sig, "PAYPAL-CERT-URL": cert_url, "PAYPAL-AUTH-ALGO": "SHA256withRSA"}


def test_paypal_crc_collision_is_a_duplicate_of_the_signed_delivery(run):
    """Held (docs): a body with the same CRC-32 verifies, but it is the same
    replay key as the delivery it was built from."""
    port, backend, envoy, ks, _ = run
    key, cert = rsa_signing_cert("messageverificationcerts.sandbox.paypal.com")
    path = f"/v1/notifications/certs/CERT-{uuid.uuid4().hex}"
    ks.put(path, pem(cert))
    url = "https://api.sandbox.paypal.com" + path
    body = json.dumps({"id": "WH-" + uuid.uuid4().hex, "event_type": "PAYMENT.SALE.COMPLETED",
                       "amount": "1.00"}).encode()
    headers = paypal_headers(url, key, body)
    forged = crc_forge(b'{"id":"WH-X","event_type":"PAYMENT.SALE.COMPLETED","amount":"999999.00","pad":"',
                       zlib.crc32(body))
    assert h.request(port, h.PREFIX + "trg_paypal", body, headers).status == 200
    again = h.request(port, h.PREFIX + "trg_paypal", forged, headers)
    assert (again.status, again.json()) == (200, {"status": "duplicate"}), again
    assert [r["body"] for r in backend.received()] == [body]


def test_paypal_crc_collision_before_the_original_reaches_the_backend(run):
    """Documented limitation, shown: an on-path attacker who holds a signed
    PayPal delivery first gets its CRC-forged body through."""
    port, backend, envoy, ks, _ = run
    key, cert = rsa_signing_cert("messageverificationcerts.sandbox.paypal.com")
    path = f"/v1/notifications/certs/CERT-{uuid.uuid4().hex}"
    ks.put(path, pem(cert))
    url = "https://api.sandbox.paypal.com" + path
    body = json.dumps({"id": "WH-" + uuid.uuid4().hex, "amount": "1.00"}).encode()
    headers = paypal_headers(url, key, body)
    forged = crc_forge(b'{"id":"WH-X","amount":"999999.00","pad":"', zlib.crc32(body))
    r = h.request(port, h.PREFIX + "trg_paypal", forged, headers)
    assert r.status == 200 and [x["body"] for x in backend.received()] == [forged], \
        "documented: PayPal's body is unsigned (CRC-32)"


# ------------------------------------------------------------ Plaid

def test_plaid_kid_cannot_inject_into_the_post_body(run):
    port, backend, envoy, ks, _ = run
    seen = []

    def answer(req):
        seen.append(req)
        return 400, {}

    ks.put("/webhook_verification_key/get", None, answer=answer)
    kid = 'x","client_id":"evil","secret":"leak\\u0022'
    body = b'{"webhook_type":"ITEM"}'
    signer = ec.generate_private_key(ec.SECP256R1())
    token = pyjwt.encode({"iat": int(datetime.datetime.now().timestamp()),
                          "request_body_sha256": hashlib.sha256(body).hexdigest()}, signer, algorithm="ES256",
                         headers={"kid": kid})
    r = h.request(port, h.PREFIX + "trg_plaid", body, {"content-type": "application/json",
                                                       "Plaid-Verification": token})
    assert r.status == 401, r
    raw = ks.fetches("/webhook_verification_key/get")[-1]["body"]
    pairs = json.loads(raw, object_pairs_hook=lambda p: p)
    assert [k for k, _ in pairs] == ["client_id", "secret", "key_id"], raw
    assert dict(pairs)["key_id"] == kid and dict(pairs)["client_id"] == PLAID["client_id"], raw


@pytest.mark.parametrize("alg", ["HS256", "none", "ES384", "RS256"])
def test_plaid_alg_confusion_held(run, alg):
    port, backend, envoy, ks, _ = run
    body = b'{"webhook_type":"ITEM"}'
    claims = {"iat": int(datetime.datetime.now().timestamp()), "request_body_sha256": hashlib.sha256(body).hexdigest()}
    if alg == "HS256":
        token = pyjwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": "k1"})
    elif alg == "none":
        token = pyjwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    elif alg == "ES384":
        token = pyjwt.encode(claims, ec.generate_private_key(ec.SECP384R1()), algorithm="ES384", headers={"kid": "k1"})
    else:
        from cryptography.hazmat.primitives.asymmetric import rsa
        token = pyjwt.encode(claims, rsa.generate_private_key(65537, 2048), algorithm="RS256", headers={"kid": "k1"})
    r = h.request(port, h.PREFIX + "trg_plaid", body, {"content-type": "application/json",
                                                       "Plaid-Verification": token})
    assert (r.status, code(r)) == (401, "malformed_signature"), r


# ------------------------------------------------------------ {url}: the port-spelling retry

def raw_request(port, path, body, headers, host):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("host", host)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        return h.Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def test_a_respelled_host_is_the_same_delivery(run):
    """Square signs {url}{body} and has no timestamp. {url} is the configured
    public_url, never the Host header: a captured delivery sent again with
    `Host: edge.example.com:80` (or any port) is the same delivery."""
    port, backend, envoy, ks, _ = run
    path = h.PREFIX + "trg_square"
    body = json.dumps({"event_id": uuid.uuid4().hex, "type": "payment.updated"}).encode()
    signed_url = "http://edge.example.com" + path
    sig = base64.b64encode(hmac.new(SQUARE_KEY.encode(), signed_url.encode() + body, hashlib.sha256).digest()).decode()
    headers = {"content-type": "application/json", "x-square-hmacsha256-signature": sig}
    first = raw_request(port, path, body, headers, "edge.example.com")
    assert first.status == 200, first
    dup = raw_request(port, path, body, headers, "edge.example.com")
    assert (dup.status, dup.json()) == (200, {"status": "duplicate"}), dup
    answers = [raw_request(port, path, body, headers, f"edge.example.com:{p}") for p in (80, 1, 2)]
    assert len(backend.received()) == 1, \
        f"{[(a.status, a.body) for a in answers]}: the backend got the delivery {len(backend.received())} times"


# ------------------------------------------------------------ Twilio: body_digest

def twilio_sig(url, params=None):
    text = url + "".join(k + v for k, v in sorted(params or []))
    return base64.b64encode(hmac.new(TWILIO_TOKEN.encode(), text.encode(), hashlib.sha1).digest()).decode()


def test_twilio_json_body_digest_and_content_type_switches_held(run):
    port, backend, envoy, ks, _ = run
    body = json.dumps({"CallSid": "CA" + uuid.uuid4().hex}).encode()
    path = h.PREFIX + "trg_twilio?bodySHA256=" + hashlib.sha256(body).hexdigest()
    sig = twilio_sig(TWILIO_BASE + path)
    ok = h.request(port, path, body, {"content-type": "application/json", "X-Twilio-Signature": sig})
    assert ok.status == 200, ok
    other = body.replace(b"CA", b"CB")
    for ct in ["application/json", "application/x-www-form-urlencoded", "APPLICATION/X-WWW-FORM-URLENCODED; x=y"]:
        r = h.request(port, path, other, {"content-type": ct, "X-Twilio-Signature": sig})
        assert r.status in (401, 415), (ct, r)
    # A form delivery (no bodySHA256) relabelled as JSON with another body.
    form_path = h.PREFIX + "trg_twilio"
    fsig = twilio_sig(TWILIO_BASE + form_path, [("A", "1")])
    assert h.request(port, form_path, b"A=1", {"content-type": "application/x-www-form-urlencoded",
                                                 "X-Twilio-Signature": fsig}).status == 200
    r = h.request(port, form_path, b'{"A":"2"}', {"content-type": "application/json", "X-Twilio-Signature": fsig})
    assert r.status == 401, r
    # Field-boundary shift (`A`+`1` == `A1`+``): same signed content, so the same replay key.
    r = h.request(port, form_path, b"A1=", {"content-type": "application/x-www-form-urlencoded",
                                           "X-Twilio-Signature": fsig})
    assert (r.status, r.json()) == (200, {"status": "duplicate"}), r
    assert len(backend.received()) == 2
