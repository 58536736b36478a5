"""Attack review of PayPal's CRC-32, Plaid's JWT and key POST, the {url}
port spelling (Square) and Twilio's body_digest, in a real Envoy with one
worker. Each test plays an attacker and asserts what the product promises."""
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
