"""The sender's side of the presets added after the first 35, by the same
rules as providers.py (which imports this module at its end and appends
MORE to PROVIDERS; import providers, not this module): each signer follows
the provider's own page (`doc`) or library, never presets.json."""
import datetime
import hashlib
import json
import uuid
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode

import nacl.signing
import standardwebhooks
import svix.webhooks

from providers import (ED_OTHER, OVERRIDE_URL, PUBLIC_URL, TOLERANCE, Provider, Sent, b64, kv_sign, mac, path_of,
                       secret, simple, token_header, token_tamper, upper_hex)

W = (TOLERANCE, TOLERANCE)
INDEPENDENT = "independent computation of the documented algorithm"


class More(Provider):
    """Bodies the provider sends: Mandrill posts a form with one field,
    mandrill_events (JSON); Figma carries its passcode in the JSON body."""

    def body(self, n: int) -> bytes:
        if self.name == "mandrill":
            events = json.dumps([{"event": "send", "ts": n, "msg": {"subject": "x-héllo"}}])
            return urlencode({"mandrill_events": events}).encode()
        if self.name == "figma":
            return json.dumps({"n": n, "event_type": "PING", "passcode": self.key, "text": "x"}).encode()
        if self.name == "adyen":  # one item per delivery; the first "x" (flip's target) is in a signed field
            item = {"merchantReference": f"x-order-{n}", "pspReference": f"{n:016d}", "merchantAccountCode": "Combo",
                    "amount": {"value": 1130 + n % 1000, "currency": "EUR"}, "eventCode": "AUTHORISATION",
                    "success": "true", "additionalData": {}}
            return json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}).encode()
        return super().body(n)


def body_only(name, doc, header, **kw):
    """HMAC of the raw body alone (providers.simple), as a More provider."""
    p = simple(name, doc, header, **kw)
    return More(**{f: getattr(p, f) for f in p.__dataclass_fields__})


# ---------------------------------------------------------------- signers

def zendesk_sign(p, body, ts, key):
    """base64(HMAC-SHA256(secret, TIMESTAMP + BODY)); the timestamp is RFC 3339 (the page's example)."""
    stamp = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Sent({"X-Zendesk-Webhook-Signature": b64(mac(key.encode(), stamp.encode() + body)),
                 "X-Zendesk-Webhook-Signature-Timestamp": stamp}, body)


def telnyx_sign(p, body, ts, key: nacl.signing.SigningKey):
    """Ed25519 over "{timestamp}|{body}", base64 (Telnyx webhooks; telnyx-python's verify_ed25519)."""
    sig = key.sign(f"{ts}|".encode() + body).signature
    return Sent({"telnyx-signature-ed25519": b64(sig), "telnyx-timestamp": str(ts)}, body)


def mandrill_sign(p, body, ts, key):
    """The URL as configured, then each POST field's key and value sorted by key; base64 HMAC-SHA1."""
    signed = PUBLIC_URL + path_of(p.name) + "".join(k + v for k, v in sorted(parse_qsl(body.decode())))
    return Sent({"X-Mandrill-Signature": b64(mac(key.encode(), signed.encode(), hashlib.sha1))}, body)


def sw_sign(prefix):
    """Standard Webhooks: the standardwebhooks library signs (svix's for svix- headers)."""
    def sign(p, body, ts, key):
        msg_id = "msg_" + uuid.uuid4().hex
        when = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
        lib = svix.webhooks.Webhook if prefix == "svix-" else standardwebhooks.Webhook
        sig = lib(key).sign(msg_id, when, body.decode())
        return Sent({f"{prefix}id": msg_id, f"{prefix}timestamp": str(ts), f"{prefix}signature": sig}, body)
    return sign


def sw_check(p, sent, ts):
    """The library verifies what was sent (svix's reads svix- headers, standardwebhooks' webhook-)."""
    headers = {k.lower(): v for k, v in sent.headers.items()}
    if "svix-id" in headers:
        svix.webhooks.Webhook(p.key).verify(sent.body.decode(), headers)
    else:
        standardwebhooks.Webhook(p.key).verify(sent.body.decode(), headers)
    return True


def sw_rotation(prefix):
    """A key roll: another v1 and an unknown v2 entry before ours, space-separated."""
    def spell(p, body, ts):
        s = p.sign(body, ts)
        h = f"{prefix}signature"
        return replace(s, headers=dict(s.headers, **{h: "v1," + b64(mac(b"old", body)) + " v2,Zm9v " + s.headers[h]}))
    return ("a roll: several entries, an unknown version skipped", spell)


def sw_other_headers(prefix):
    def spell(p, body, ts):
        return sw_sign(prefix)(p, body, ts, p.key)
    return (f"{prefix} headers", spell)


def circleci_sign(p, body, ts, key):
    return Sent({"circleci-signature": "v1=" + mac(key.encode(), body).hex()}, body)


def circleci_versions(p, body, ts):
    """A list of versioned signatures: entries of versions other than v1 are skipped."""
    s = p.sign(body, ts)
    return replace(s, headers={"circleci-signature": s.headers["circleci-signature"] + ",v2=" + "ab" * 32})


def elevenlabs_sign(p, body, ts, key, extra=""):
    sig = mac(key.encode(), f"{ts}.".encode() + body).hex()
    return Sent({"ElevenLabs-Signature": f"t={ts},{extra}v0={sig}"}, body)


def elevenlabs_two(p, body, ts):
    """The header may hold several v0 signatures: any one matching is enough."""
    return elevenlabs_sign(p, body, ts, p.key, extra="v0=" + mac(b"old", f"{ts}.".encode() + body).hex() + ",")


def buildkite_sign(p, body, ts, key):
    """X-Buildkite-Signature: timestamp=<unix>,signature=<hex HMAC-SHA256 of "<timestamp>.<body>">."""
    sig = mac(key.encode(), f"{ts}.".encode() + body).hex()
    return Sent({"X-Buildkite-Signature": f"timestamp={ts},signature={sig}"}, body)


def sentry_app_header(p, body, ts):
    """UI-component requests carry the same digest as Sentry-App-Signature."""
    return Sent({"Sentry-App-Signature": mac(p.key.encode(), body).hex()}, body)


def pandadoc_sign(p, body, ts, key):
    """PandaDoc appends ?signature=<hex HMAC-SHA256 of the body under the shared key> to the URL."""
    return Sent({}, body, query="signature=" + mac(key.encode(), body).hex())


def figma_sign(p, body, ts, key):
    doc = json.loads(body)
    doc["passcode"] = key
    return Sent({}, json.dumps(doc).encode())


def figma_tamper(sent):
    doc = json.loads(sent.body)
    doc["passcode"] += "!"
    return replace(sent, body=json.dumps(doc).encode())


def box_stamp(ts, offset_hours=0):
    tz = datetime.timezone(datetime.timedelta(hours=offset_hours))
    return datetime.datetime.fromtimestamp(ts, tz=tz).isoformat().replace("+00:00", "Z")


def box_sign(p, body, ts, key, stamp=None):
    """Box: base64 HMAC-SHA256 of the body's bytes then BOX-DELIVERY-TIMESTAMP's, under
    the primary key (BOX-SIGNATURE-PRIMARY) and the secondary key (-SECONDARY)."""
    stamp = stamp or box_stamp(ts)
    sig = lambda k: b64(mac(k.encode(), body + stamp.encode()))  # noqa: E731
    return Sent({"BOX-DELIVERY-TIMESTAMP": stamp, "BOX-SIGNATURE-PRIMARY": sig(key),
                 "BOX-SIGNATURE-SECONDARY": sig(key + "-secondary"), "BOX-SIGNATURE-VERSION": "1",
                 "BOX-SIGNATURE-ALGORITHM": "HmacSHA256"}, body)


def box_offset(p, body, ts):
    """The timestamp as Box's own example writes it: a numeric offset (-07:00)."""
    return box_sign(p, body, ts, p.key, stamp=box_stamp(ts, -7))


def box_secondary_only(p, body, ts):
    """Only the secondary key's signature holds (the primary was just rotated)."""
    sent = box_sign(p, body, ts, p.key)
    return replace(sent, headers=dict(sent.headers, **{"BOX-SIGNATURE-PRIMARY": b64(b"\0" * 32)}))


def persona_sign(p, body, ts, key, others=()):
    """Persona-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">; during a
    rotation, two such sets separated by a space."""
    sets = [f"t={ts},v1={mac(k.encode(), f'{ts}.'.encode() + body).hex()}" for k in (*others, key)]
    return Sent({"Persona-Signature": " ".join(sets)}, body)


def persona_rotation(p, body, ts):
    return persona_sign(p, body, ts, p.key, others=("the-old-persona-secret",))


def adyen_sign(p, body, ts, key):
    """Adyen: base64 HMAC-SHA256, under the hex key, of the item's pspReference,
    originalReference, merchantAccountCode, merchantReference, amount value and
    currency, eventCode and success joined by ':' (an absent field empty), in
    additionalData.hmacSignature."""
    doc = json.loads(body)
    item = doc["notificationItems"][0]["NotificationRequestItem"]
    amount = item.get("amount", {})
    fields = [item.get("pspReference", ""), item.get("originalReference", ""), item.get("merchantAccountCode", ""),
              item.get("merchantReference", ""), str(amount.get("value", "")), amount.get("currency", ""),
              item.get("eventCode", ""), item.get("success", "")]
    item.setdefault("additionalData", {})["hmacSignature"] = b64(mac(bytes.fromhex(key), ":".join(fields).encode()))
    return Sent({}, json.dumps(doc).encode())


def adyen_tamper(sent):
    doc = json.loads(sent.body)
    doc["notificationItems"][0]["NotificationRequestItem"]["amount"]["value"] += 1
    return replace(sent, body=json.dumps(doc).encode())


# ---------------------------------------------------------------- the table

ED_TELNYX = nacl.signing.SigningKey(bytes(range(2, 34)))


def whsec(name):
    return "whsec_" + b64(f"{name}-standard-webhooks-key".encode()[:32].ljust(32, b"!"))


def sw(name, doc, prefixes, bare=False):
    """A Standard Webhooks sender under its own name; `prefixes`: the header families its page documents."""
    key, other = whsec(name), whsec(name + "-other")
    if bare:  # Brex hands out the base64 secret without whsec_
        key, other = key[6:], other[6:]
    spellings = [sw_rotation(prefixes[0])] + [sw_other_headers(x) for x in prefixes[1:]]
    return More(name, doc, "standardwebhooks / svix (PyPI) sign and verify", signer=sw_sign(prefixes[0]), window=W,
                sdk_check=sw_check, spellings=spellings, key=key, other=other, config={"secret": key})


MORE = [
    More("zendesk", "https://developer.zendesk.com/documentation/webhooks/verifying/", INDEPENDENT,
         signer=zendesk_sign, window=W, **secret("zendesk")),
    More("telnyx", "https://developers.telnyx.com/docs/development/api-fundamentals/webhooks",
         "PyNaCl signs the documented {timestamp}|{body}", signer=telnyx_sign, window=W, key=ED_TELNYX, other=ED_OTHER,
         config={"public_key": b64(ED_TELNYX.verify_key.encode())}),
    More("sentry", "https://docs.sentry.io/organization/integrations/integration-platform/webhooks/", INDEPENDENT,
         signer=lambda p, body, ts, key: Sent({"Sentry-Hook-Signature": mac(key.encode(), body).hex()}, body),
         spellings=[upper_hex("Sentry-Hook-Signature"), ("Sentry-App-Signature (UI components)", sentry_app_header)],
         **secret("sentry")),
    More("mux", "https://www.mux.com/docs/core/verify-webhook-signatures", INDEPENDENT,
         signer=kv_sign("Mux-Signature"), window=W, **secret("mux")),
    More("mandrill", "https://mailchimp.com/developer/transactional/guides/track-respond-activity-webhooks/",
         INDEPENDENT, signer=mandrill_sign, form=True, **secret("mandrill", **OVERRIDE_URL)),
    sw("clerk", "https://clerk.com/docs/reference/backend/verify-webhook", ["svix-", "webhook-"]),
    sw("resend", "https://resend.com/docs/webhooks/verify-webhooks-requests", ["svix-"]),
    sw("openai", "https://platform.openai.com/docs/guides/webhooks", ["webhook-"]),
    sw("replicate", "https://replicate.com/docs/topics/webhooks/verify-webhook", ["webhook-"]),
    sw("brex", "https://developer.brex.com/docs/webhooks", ["webhook-"], bare=True),
    sw("lithic", "https://docs.lithic.com/docs/events-api#verifying-webhooks", ["webhook-"]),
    More("circleci", "https://circleci.com/docs/guides/integration/outbound-webhooks/#validate-webhooks", INDEPENDENT,
         signer=circleci_sign, spellings=[upper_hex("circleci-signature", "v1="), ("v1 among other versions", circleci_versions)],
         **secret("circleci")),
    More("elevenlabs", "https://github.com/elevenlabs/elevenlabs-python/blob/main/src/elevenlabs/webhooks_custom.py", INDEPENDENT,
         signer=elevenlabs_sign, window=(1800, 1800), spellings=[("two v0 signatures", elevenlabs_two)],
         **secret("elevenlabs")),
    body_only("clickup", "https://developer.clickup.com/docs/webhooksignature", "X-Signature"),
    body_only("gitea", "https://github.com/go-gitea/gitea/blob/main/services/webhook/deliver.go", "X-Gitea-Signature"),
    body_only("gogs", "https://github.com/gogs/gogs/blob/main/internal/database/webhook.go", "X-Gogs-Signature"),
    body_only("terraform", "https://developer.hashicorp.com/terraform/cloud-docs/api-docs/notification-configurations#notification-authenticity",
              "X-TFE-Notification-Signature", alg=hashlib.sha512),
    body_only("razorpay", "https://razorpay.com/docs/payments/payment-gateway/s2s-integration/test-s2s/best-practices/security", "X-Razorpay-Signature"),
    body_only("pusher", "https://github.com/pusher/pusher-http-node/blob/master/lib/webhook.js", "X-Pusher-Signature"),
    body_only("cal_com", "https://github.com/calcom/cal.com/blob/main/packages/features/webhooks/lib/sendPayload.ts", "X-Cal-Signature-256"),
    body_only("line", "https://github.com/line/line-bot-sdk-python/blob/master/linebot/v3/webhook.py",
              "x-line-signature", b64enc=True),
    More("telegram", "https://core.telegram.org/bots/api#setwebhook", "documented secret_token header",
         signer=token_header("X-Telegram-Bot-Api-Secret-Token"),
         tamper=token_tamper("X-Telegram-Bot-Api-Secret-Token"), **secret("telegram")),
    More("buildkite", "https://buildkite.com/docs/apis/webhooks/pipelines#webhook-signature", INDEPENDENT,
         signer=buildkite_sign, window=W, **secret("buildkite")),
    body_only("helpscout", "https://developer.helpscout.com/webhooks", "X-HelpScout-Signature", alg=hashlib.sha1,
              b64enc=True),
    body_only("todoist", "https://doist.github.io/todoist-sdk-typescript/api/functions/verifyWebhookSignature", "X-Todoist-Hmac-SHA256", b64enc=True),
    body_only("webex", "https://developer.webex.com/blog/using-a-webhook-secret", "X-Spark-Signature", alg=hashlib.sha1),
    body_only("expo", "https://docs.expo.dev/eas/webhooks/", "expo-signature", prefix="sha1=", alg=hashlib.sha1),
    body_only("onfido", "https://documentation.onfido.com/api/manual-webhook-signature-verification", "X-SHA2-Signature"),
    More("pandadoc", "https://developers.pandadoc.com/docs/webhook-verification", INDEPENDENT, signer=pandadoc_sign,
         **secret("pandadoc")),
    More("figma", "https://developers.figma.com/docs/rest-api/webhooks-security", "documented passcode field",
         signer=figma_sign, tamper=figma_tamper, **secret("figma")),
    More("box", "https://developer.box.com/guides/webhooks/v2/signatures-v2", INDEPENDENT, signer=box_sign,
         window=(600, TOLERANCE), spellings=[("a -07:00 timestamp, as Box's example", box_offset),
                                             ("only the secondary key's signature holds", box_secondary_only)],
         key="box-primary-key", other="box-other-key",
         config={"secrets": [{"value": "box-primary-key"}, {"value": "box-primary-key-secondary"}]}),
    More("persona", "https://docs.withpersona.com/docs/webhooks-best-practices", INDEPENDENT, signer=persona_sign,
         window=W, spellings=[("two sets during a secret rotation", persona_rotation)], **secret("persona")),
    More("adyen", "https://docs.adyen.com/development-resources/webhooks/verify-hmac-signatures/", INDEPENDENT,
         signer=adyen_sign, tamper=adyen_tamper, key="44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
         other="74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174",
         config={"secret": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"}),
]
