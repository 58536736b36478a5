"""The sender's side of every preset, written from each provider's own
documentation or library, never from the filter's presets.json.

Where the provider publishes a library on PyPI, that library signs the
delivery, or (when it only verifies) checks the delivery before the test
sends it, so the filter is held to the provider's own code. Otherwise the
signer is an independent computation of the documented algorithm; `doc`
cites the page it follows."""
import base64
import datetime
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field, replace

import discord_interactions
import nacl.signing
import paddle_billing.Notifications as paddle
import slack_sdk.signature
import standardwebhooks
import stripe
import svix.webhooks
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator
from workos.webhooks import _verification as workos_verification

PUBLIC_URL = "https://hooks.example.com"
PREFIX = "/v1/webhook/generic/"
TOLERANCE = 300


def path_of(name: str) -> str:
    return PREFIX + "trg_" + name


@dataclass
class Sent:
    """One delivery as the provider sends it."""
    headers: dict
    body: bytes
    query: str = ""
    content_type: str = "application/json"

    def path(self, name: str) -> str:
        return path_of(name) + (("?" + self.query) if self.query else "")

    def all_headers(self) -> dict:
        return dict(self.headers, **{"content-type": self.content_type})


def mac(key: bytes, msg: bytes, alg=hashlib.sha256) -> bytes:
    return hmac.new(key, msg, alg).digest()


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def flip(body: bytes) -> bytes:
    """One byte changed inside a JSON string or form value, so the body stays parseable."""
    i = body.index(b"x")
    return body[:i] + b"y" + body[i + 1:]


@dataclass
class Provider:
    name: str
    doc: str
    tested: str                     # how the test knows the provider's algorithm
    key: object                     # what signs (secret text or private key)
    other: object                   # another key of the same kind
    config: dict                    # the trigger's key fields (+ scheme overrides)
    signer: object = None           # (provider, body, ts, key) -> Sent
    window: tuple | None = None     # (max_age, max_future) when the scheme has a timestamp
    form: bool = False
    spellings: list = field(default_factory=list)  # (label, (provider, body, ts) -> Sent)
    sdk_check: object = None        # (provider, Sent, ts) -> bool: the provider's own verifier
    tamper: object = None           # (Sent) -> Sent: one signed byte changed

    def body(self, n: int) -> bytes:
        if self.form:
            return f"To=%2B15551234567&From=%2B15557654321&Body=xmas+{n}&MessageSid=SM{n}".encode()
        if self.name in ("mailgun", "mailgun_primary"):
            return json.dumps({"n": n, "event-data": {"event": "delivered", "x": "x"}}).encode()
        if self.name == "microsoft_graph":
            return json.dumps({"n": n, "value": [{"clientState": self.key, "resource": "x"},
                                                 {"clientState": self.key, "resource": "y"}]}).encode()
        return json.dumps({"n": n, "text": "x-héllo"}).encode()

    def sign(self, body: bytes, ts: int | None = None, key=None) -> Sent:
        ts = int(time.time()) if ts is None else ts
        sent = self.signer(self, body, ts, self.key if key is None else key)
        if self.form:
            sent = replace(sent, content_type="application/x-www-form-urlencoded")
        return sent

    def tampered(self, sent: Sent) -> Sent:
        return self.tamper(sent) if self.tamper else replace(sent, body=flip(sent.body))


# ---------------------------------------------------------------- signers

def body_hmac(header, prefix="", alg=hashlib.sha256, encode=lambda b: b.hex(), id_header=None):
    """HMAC of the raw body alone, in one header."""
    def sign(p, body, ts, key):
        headers = {header: prefix + encode(mac(key.encode(), body, alg))}
        if id_header:
            headers[id_header] = str(uuid.uuid4())
        return Sent(headers, body)
    return sign


def generic(p, body, ts, key):  # the platform's scheme (docs "The platform's scheme")
    sig = mac(key.encode(), f"{ts}.".encode() + body).hex()
    return Sent({"X-Combo-Timestamp": str(ts), "X-Combo-Signature": "sha256=" + sig}, body)


def stripe_sign(p, body, ts, key):  # stripe-python's own signer
    return Sent({"Stripe-Signature": stripe.WebhookSignature.generate_signature_header(body.decode(), key, ts)}, body)


def slack_sign(p, body, ts, key):  # slack_sdk's own signer
    sig = slack_sdk.signature.SignatureVerifier(key).generate_signature(timestamp=str(ts), body=body)
    return Sent({"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": str(ts)}, body)


def std_sign(p, body, ts, key, prefix="webhook-"):  # the standardwebhooks library
    msg_id = "msg_" + uuid.uuid4().hex
    when = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    if prefix == "svix-":  # svix's own library
        sig = svix.webhooks.Webhook(key).sign(msg_id, when, body.decode())
    else:
        sig = standardwebhooks.Webhook(key).sign(msg_id, when, body.decode())
    return Sent({f"{prefix}id": msg_id, f"{prefix}timestamp": str(ts), f"{prefix}signature": sig}, body)


def std_ed25519(p, body, ts, key: nacl.signing.SigningKey):
    """Standard Webhooks asymmetric (v1a): Ed25519 over "{id}.{ts}.{body}" (spec, "Signature scheme")."""
    msg_id = "msg_" + uuid.uuid4().hex
    sig = key.sign(f"{msg_id}.{ts}.".encode() + body).signature
    return Sent({"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": "v1a," + b64(sig)}, body)


def twilio_sign(p, body, ts, key):  # twilio's RequestValidator
    from urllib.parse import parse_qsl
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    sig = RequestValidator(key).compute_signature(PUBLIC_URL + path_of(p.name), params)
    return Sent({"X-Twilio-Signature": sig}, body)


def sendgrid_sign(p, body, ts, key: ec.EllipticCurvePrivateKey):
    """ECDSA P-256 SHA-256 over timestamp + payload, base64 DER (checked by sendgrid's EventWebhook)."""
    sig = key.sign(str(ts).encode() + body, ec.ECDSA(hashes.SHA256()))
    return Sent({"X-Twilio-Email-Event-Webhook-Signature": b64(sig),
                 "X-Twilio-Email-Event-Webhook-Timestamp": str(ts)}, body)


def discord_sign(p, body, ts, key: nacl.signing.SigningKey):
    """Ed25519 over timestamp + body, hex (checked by discord-interactions' verify_key)."""
    sig = key.sign(str(ts).encode() + body).signature.hex()
    return Sent({"X-Signature-Ed25519": sig, "X-Signature-Timestamp": str(ts)}, body)


def zoom_sign(p, body, ts, key):
    sig = mac(key.encode(), f"v0:{ts}:".encode() + body).hex()
    return Sent({"x-zm-signature": "v0=" + sig, "x-zm-request-timestamp": str(ts)}, body)


def linear_sign(p, body, ts, key):
    """Linear signs the body; its timestamp (ms) travels inside it, as webhookTimestamp."""
    doc = json.loads(body)
    doc["webhookTimestamp"] = ts * 1000
    body = json.dumps(doc).encode()
    return Sent({"Linear-Signature": mac(key.encode(), body).hex(), "Linear-Delivery": str(uuid.uuid4())}, body)


def mailgun_sign(p, body, ts, key):
    """Mailgun: HMAC-SHA256(signing key, timestamp + token), hex, in the body's signature object.
    On a subaccount's domain, `parent-signature` is the same under the primary account's key."""
    doc = json.loads(body)
    token = uuid.uuid4().hex + uuid.uuid4().hex[:18]
    sig = lambda k: mac(k.encode(), f"{ts}{token}".encode()).hex()  # noqa: E731
    doc["signature"] = {"timestamp": str(ts), "token": token, "signature": sig(key)}
    if p.name == "mailgun_primary":
        doc["signature"].update({"signature": sig("the-subaccount-key"), "parent-signature": sig(key)})
    return Sent({}, json.dumps(doc).encode())


def mailgun_tamper(sent):
    doc = json.loads(sent.body)
    t = doc["signature"]["token"]
    doc["signature"]["token"] = ("0" if t[0] != "0" else "1") + t[1:]
    return replace(sent, body=json.dumps(doc).encode())


def paddle_sign(p, body, ts, key, extra=""):
    sig = mac(key.encode(), f"{ts}:".encode() + body).hex()
    return Sent({"Paddle-Signature": f"ts={ts};{extra}h1={sig}"}, body)


def square_sign(p, body, ts, key):
    sig = mac(key.encode(), (PUBLIC_URL + path_of(p.name)).encode() + body)
    return Sent({"x-square-hmacsha256-signature": b64(sig)}, body)


def hubspot_sign(p, body, ts, key):
    """v3: base64 HMAC-SHA256 of method + URI + body + timestamp (ms)."""
    ms = str(ts * 1000)
    msg = b"POST" + (PUBLIC_URL + path_of(p.name)).encode() + body + ms.encode()
    return Sent({"X-HubSpot-Signature-v3": b64(mac(key.encode(), msg)), "X-HubSpot-Request-Timestamp": ms}, body)


def twitch_sign(p, body, ts, key, kind="notification"):
    """EventSub: HMAC-SHA256 of message id + timestamp (RFC 3339, as sent) + body."""
    msg_id = str(uuid.uuid4())
    stamp = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    sig = mac(key.encode(), msg_id.encode() + stamp.encode() + body).hex()
    return Sent({"Twitch-Eventsub-Message-Id": msg_id, "Twitch-Eventsub-Message-Timestamp": stamp,
                 "Twitch-Eventsub-Message-Signature": "sha256=" + sig, "Twitch-Eventsub-Message-Type": kind}, body)


def token_header(header):
    def sign(p, body, ts, key):
        return Sent({header: key}, body)
    return sign


def token_tamper(header):
    def tamper(sent):
        v = sent.headers[header]
        return replace(sent, headers=dict(sent.headers, **{header: v[:-1] + ("A" if v[-1] != "A" else "B")}))
    return tamper


def graph_sign(p, body, ts, key):
    """Graph change notifications carry the subscription's clientState in each notification."""
    doc = json.loads(body)
    for n in doc["value"]:
        n["clientState"] = key
    return Sent({}, json.dumps(doc).encode())


def graph_tamper(sent):
    """A batch whose last notification is not the subscription's: every one is checked."""
    doc = json.loads(sent.body)
    doc["value"][-1]["clientState"] += "!"
    return replace(sent, body=json.dumps(doc).encode())


def kv_sign(header, sep=","):
    """`t=<ts>,v1=<hex of HMAC-SHA256(key, "<t>.<body>")>` (Calendly; WorkOS with ms and ", ")."""
    def sign(p, body, ts, key):
        t = str(ts * 1000) if p.name == "workos" else str(ts)
        sig = mac(key.encode(), f"{t}.".encode() + body).hex()
        return Sent({header: f"t={t}{sep}v1={sig}"}, body)
    return sign


def webflow_sign(p, body, ts, key):
    ms = str(ts * 1000)
    return Sent({"x-webflow-timestamp": ms, "x-webflow-signature": mac(key.encode(), f"{ms}:".encode() + body).hex()},
                body)


# ---------------------------------------------------------------- spellings

def upper_hex(header, prefix=""):
    """The same signature with its hex digits in upper case."""
    def spell(p, body, ts):
        s = p.sign(body, ts)
        v = s.headers[header]
        return replace(s, headers=dict(s.headers, **{header: prefix + v[len(prefix):].upper()}))
    return ("hex in upper case", spell)


def stripe_rotation(p, body, ts):
    """During a secret roll Stripe sends one v1 per secret, plus the v0 test scheme."""
    other = mac(b"whsec_rolled", f"{ts}.".encode() + body).hex()
    s = p.sign(body, ts)
    v = s.headers["Stripe-Signature"]
    t, v1 = v.split(",", 1)
    return replace(s, headers={"Stripe-Signature": f"{t},v1={other},{v1},v0={other}"})


def std_rotation(p, body, ts):
    """Several signatures (a key roll), an asymmetric v1a and an unknown v2 entry: skipped."""
    s = p.sign(body, ts)
    extra = "v1a," + b64(bytes(64)) + " v2,Zm9v v1," + b64(mac(b"other", body))
    return replace(s, headers=dict(s.headers, **{"webhook-signature": extra + " " + s.headers["webhook-signature"]}))


def std_svix(p, body, ts):
    return std_sign(p, body, ts, p.key, prefix="svix-")


def pagerduty_rotation(p, body, ts):
    """PagerDuty sends one v1 per active secret, comma-separated."""
    s = p.sign(body, ts)
    other = mac(b"old-secret", body).hex()
    return replace(s, headers={"X-PagerDuty-Signature": f"v1={other}," + s.headers["X-PagerDuty-Signature"]})


def paddle_rotation(p, body, ts):
    """Paddle sends one h1 per secret while a secret is rotated."""
    other = mac(b"pdl_old", f"{ts}:".encode() + body).hex()
    return paddle_sign(p, body, ts, p.key, extra=f"h1={other};")


def docusign_second_key(p, body, ts):
    """With several Connect keys, DocuSign sends X-DocuSign-Signature-1, -2, ...: ours is the second."""
    return Sent({"X-DocuSign-Signature-1": b64(mac(b"first-key", body)),
                 "X-DocuSign-Signature-2": b64(mac(p.key.encode(), body))}, body)


# ---------------------------------------------------------------- provider checks

def sendgrid_check(p, sent, ts):
    spki = p.key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ew = EventWebhook(b64(spki))
    return ew.verify_signature(sent.body.decode(), sent.headers["X-Twilio-Email-Event-Webhook-Signature"],
                               sent.headers["X-Twilio-Email-Event-Webhook-Timestamp"])


def discord_check(p, sent, ts):
    return discord_interactions.verify_key(sent.body, sent.headers["X-Signature-Ed25519"],
                                           sent.headers["X-Signature-Timestamp"],
                                           p.key.verify_key.encode().hex())


class _PaddleRequest:
    def __init__(self, sent):
        self.headers = sent.headers
        self.body = sent.body


def paddle_check(p, sent, ts):
    return paddle.Verifier().verify(_PaddleRequest(sent), paddle.Secret(p.key))


def workos_check(p, sent, ts):
    workos_verification.verify_header(event_body=sent.body, event_signature=sent.headers["WorkOS-Signature"],
                                      secret=p.key, tolerance=300)
    return True


def stripe_check(p, sent, ts):
    return stripe.WebhookSignature.verify_header(sent.body.decode(), sent.headers["Stripe-Signature"], p.key, 300)


def twilio_check(p, sent, ts):
    from urllib.parse import parse_qsl
    params = dict(parse_qsl(sent.body.decode(), keep_blank_values=True))
    return RequestValidator(p.key).validate(PUBLIC_URL + path_of(p.name), params, sent.headers["X-Twilio-Signature"])


def slack_check(p, sent, ts):
    return slack_sdk.signature.SignatureVerifier(p.key).is_valid(
        sent.body, sent.headers["X-Slack-Request-Timestamp"], sent.headers["X-Slack-Signature"])


def std_check(p, sent, ts):
    standardwebhooks.Webhook(p.key).verify(sent.body.decode(), sent.headers)
    return True


# ---------------------------------------------------------------- the table

ED_DISCORD = nacl.signing.SigningKey(bytes(range(32)))
ED_STD = nacl.signing.SigningKey(bytes(range(1, 33)))
ED_OTHER = nacl.signing.SigningKey(bytes(32))
P256 = ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())
P256_OTHER = ec.derive_private_key(0xFEDCBA0987654321, ec.SECP256R1())
STD_SECRET = "whsec_" + b64(b"standard-webhooks-key-32-bytes!!")
STD_OTHER = "whsec_" + b64(b"another-standard-webhooks-key!!!")
OVERRIDE_URL = {"scheme": {"public_url": PUBLIC_URL}}


def secret(name, other=None, **extra):
    value = f"{name}-secret-value"
    return dict(key=value, other=other or f"{name}-other-secret", config=dict({"secret": value}, **extra))


def simple(name, doc, header, prefix="", alg=hashlib.sha256, b64enc=False, id_header=None, spell=True, **kw):
    encode = b64 if b64enc else (lambda b: b.hex())
    spellings = [] if b64enc or not spell else [upper_hex(header, prefix)]
    return Provider(name, doc, "independent computation of the documented algorithm",
                    signer=body_hmac(header, prefix, alg, encode, id_header), spellings=spellings,
                    **secret(name), **kw)


W = (TOLERANCE, TOLERANCE)

PROVIDERS = [
    Provider("generic_webhook", "docs: The platform's scheme", "independent computation (docs)", signer=generic, window=W,
             spellings=[upper_hex("X-Combo-Signature", "sha256=")], **secret("generic")),
    simple("github", "https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries",
           "X-Hub-Signature-256", "sha256=", id_header="X-GitHub-Delivery"),
    Provider("gitlab", "https://docs.gitlab.com/user/project/integrations/webhooks/", "documented token header",
             signer=token_header("X-Gitlab-Token"), tamper=token_tamper("X-Gitlab-Token"), **secret("gitlab")),
    simple("bitbucket", "https://support.atlassian.com/bitbucket-cloud/docs/manage-webhooks/",
           "X-Hub-Signature", "sha256="),
    Provider("gitlab_signed", "https://gitlab.com/gitlab-org/gitlab/-/merge_requests/230944",
             "standardwebhooks (PyPI) signs and verifies (GitLab's signing token is Standard Webhooks)",
             signer=std_sign, window=W, sdk_check=std_check, key=STD_SECRET, other=STD_OTHER,
             config={"secret": STD_SECRET}),
    Provider("stripe", "https://docs.stripe.com/webhooks#verify-manually", "stripe (PyPI) signs and verifies",
             signer=stripe_sign, window=W, sdk_check=stripe_check,
             spellings=[("two v1 during a roll, and v0", stripe_rotation)],
             key="whsec_stripe_test_secret", other="whsec_other", config={"secret": "whsec_stripe_test_secret"}),
    Provider("slack", "https://api.slack.com/authentication/verifying-requests-from-slack",
             "slack-sdk (PyPI) signs and verifies", signer=slack_sign, window=W, sdk_check=slack_check,
             spellings=[upper_hex("X-Slack-Signature", "v0=")], **secret("slack")),
    Provider("standard_webhooks", "https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md",
             "standardwebhooks and svix (PyPI) sign and verify", signer=std_sign, window=W, sdk_check=std_check,
             spellings=[("rotation, v1a and v2 entries skipped", std_rotation), ("svix- headers (svix)", std_svix)],
             key=STD_SECRET, other=STD_OTHER, config={"secret": STD_SECRET}),
    simple("shopify", "https://shopify.dev/docs/apps/build/webhooks/subscribe/https", "X-Shopify-Hmac-Sha256",
           b64enc=True, id_header="X-Shopify-Webhook-Id"),
    Provider("twilio", "https://www.twilio.com/docs/usage/webhooks/webhooks-security",
             "twilio (PyPI) RequestValidator signs and verifies", signer=twilio_sign, form=True,
             sdk_check=twilio_check, **secret("twilio", **OVERRIDE_URL)),
    Provider("sendgrid", "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features",
             "cryptography signs, sendgrid (PyPI) EventWebhook verifies", signer=sendgrid_sign, window=W,
             sdk_check=sendgrid_check, key=P256, other=P256_OTHER,
             config={"public_key": b64(P256.public_key().public_bytes(
                 serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))}),
    Provider("discord", "https://discord.com/developers/docs/interactions/overview",
             "PyNaCl signs, discord-interactions (PyPI) verifies", signer=discord_sign, window=W,
             sdk_check=discord_check, key=ED_DISCORD, other=ED_OTHER,
             spellings=[upper_hex("X-Signature-Ed25519")],
             config={"public_key": ED_DISCORD.verify_key.encode().hex()}),
    Provider("discord_webhook_events", "https://discord.com/developers/docs/events/webhook-events",
             "PyNaCl signs, discord-interactions (PyPI) verifies", signer=discord_sign, window=W,
             sdk_check=discord_check, key=ED_DISCORD, other=ED_OTHER,
             config={"public_key": ED_DISCORD.verify_key.encode().hex()}),
    Provider("zoom", "https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events",
             "independent computation of the documented algorithm", signer=zoom_sign, window=W,
             spellings=[upper_hex("x-zm-signature", "v0=")], **secret("zoom")),
    simple("pagerduty", "https://developer.pagerduty.com/docs/webhooks-overview#verifying-signatures",
           "X-PagerDuty-Signature", "v1=", spell=False),
    Provider("linear", "https://linear.app/developers/webhooks#securing-webhooks",
             "independent computation of the documented algorithm", signer=linear_sign, window=(60, 60),
             **secret("linear")),
    simple("intercom", "https://developers.intercom.com/docs/webhooks/webhook-notifications", "X-Hub-Signature",
           "sha1=", alg=hashlib.sha1),
    Provider("mailgun", "https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks",
             "independent computation of the documented algorithm", signer=mailgun_sign, window=W,
             tamper=mailgun_tamper, **secret("mailgun")),
    Provider("mailgun_primary", "https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks",
             "independent computation of the documented algorithm (parent-signature)", signer=mailgun_sign,
             window=W, tamper=mailgun_tamper, **secret("mailgun-primary")),
    Provider("paddle", "https://developer.paddle.com/webhooks/signature-verification",
             "paddle-python-sdk (PyPI) Verifier verifies", signer=paddle_sign, window=(5, 5), sdk_check=paddle_check,
             spellings=[("two h1 during a secret rotation", paddle_rotation)], **secret("paddle")),
    Provider("square", "https://developer.squareup.com/docs/webhooks/step3validate",
             "independent computation of the documented algorithm", signer=square_sign,
             **secret("square", **OVERRIDE_URL)),
    Provider("hubspot", "https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests",
             "independent computation of the documented algorithm (v3)", signer=hubspot_sign, window=W,
             **secret("hubspot", **OVERRIDE_URL)),
    simple("typeform", "https://www.typeform.com/developers/webhooks/secure-your-webhooks/", "Typeform-Signature",
           "sha256=", b64enc=True),
    Provider("twitch", "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message",
             "independent computation of the documented algorithm", signer=twitch_sign, window=(600, TOLERANCE),
             spellings=[upper_hex("Twitch-Eventsub-Message-Signature", "sha256=")], **secret("twitch")),
    Provider("okta", "https://developer.okta.com/docs/concepts/event-hooks/", "documented authorization header",
             signer=token_header("Authorization"), tamper=token_tamper("Authorization"), **secret("okta")),
    simple("jira", "https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks",
           "X-Hub-Signature", "sha256="),
    Provider("workos", "https://workos.com/docs/events/data-syncing/webhooks",
             "workos (PyPI) verify_header verifies", signer=kv_sign("WorkOS-Signature", ", "), window=W,
             sdk_check=workos_check, **secret("workos")),
    simple("meta", "https://developers.facebook.com/docs/graph-api/webhooks/getting-started", "X-Hub-Signature-256",
           "sha256="),
    simple("dropbox", "https://www.dropbox.com/developers/reference/webhooks", "X-Dropbox-Signature"),
    Provider("calendly", "https://developer.calendly.com/api-docs/4c305798a61d3-webhook-signatures",
             "independent computation of the documented algorithm", signer=kv_sign("Calendly-Webhook-Signature"),
             window=W, **secret("calendly")),
    Provider("docusign", "https://developers.docusign.com/platform/webhooks/connect/hmac/",
             "independent computation of the documented algorithm",
             signer=body_hmac("X-DocuSign-Signature-1", encode=b64),
             spellings=[("the second of several keys", docusign_second_key)], **secret("docusign")),
    simple("coinbase", "https://docs.cdp.coinbase.com/commerce/docs/webhooks-security", "X-CC-Webhook-Signature"),
    simple("vercel", "https://vercel.com/docs/webhooks/webhooks-api#securing-webhooks", "x-vercel-signature",
           alg=hashlib.sha1),
    simple("xero", "https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/",
           "x-xero-signature", b64enc=True),
    simple("x", "https://docs.x.com/x-api/webhooks/introduction", "x-twitter-webhooks-signature", "sha256=",
           b64enc=True),
    simple("woocommerce", "https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks",
           "X-WC-Webhook-Signature", b64enc=True, id_header="X-WC-Webhook-Delivery-ID"),
    Provider("webflow", "https://developers.webflow.com/data/docs/working-with-webhooks#validating-request-signatures",
             "independent computation of the documented algorithm", signer=webflow_sign, window=W,
             spellings=[upper_hex("x-webflow-signature")], **secret("webflow")),
    Provider("microsoft_graph", "https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks",
             "documented clientState", signer=graph_sign, tamper=graph_tamper, **secret("graph")),
]

# Standard Webhooks with an Ed25519 public key (v1a): the edge holds no secret.
STD_ED25519 = Provider("standard_webhooks", "https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md",
                       "PyNaCl signs (spec's v1a)", signer=std_ed25519, window=W, key=ED_STD, other=ED_OTHER,
                       config={"public_key": "whpk_" + b64(ED_STD.verify_key.encode())})

VERIFY_TOKEN = "meta-verify-token"


def trigger(p: Provider, tid: str | None = None) -> dict:
    t = {"id": tid or "trg_" + p.name, "source": p.name, **p.config,
         "action": {"agent_id": "agent", "inputs": {"n": "{{ payload.n }}"}}}
    if p.name == "meta":
        t["verify_token"] = {"value": VERIFY_TOKEN}
    return t


def plugin_config() -> dict:
    triggers = [trigger(p) for p in PROVIDERS] + [trigger(STD_ED25519, "trg_standard_webhooks_ed25519")]
    return {"replay": {"enabled": True, "window_seconds": 600}, "triggers": triggers}

# The presets added after the first 35 (their own module: this one is long enough).
from providers_more import MORE  # noqa: E402

PROVIDERS += MORE
