"""Every preset against its provider's side (providers.py), in a real Envoy:
accepted as sent; one changed signed byte, a wrong key and a timestamp
outside the window refused; every legitimate spelling of the signature
header accepted. Form bodies reach match and inputs as JSON objects."""
import json
import random
import time
import urllib.parse

import pytest

import providers
from combo_edge import envoy as h
from providers import PROVIDERS, STD_ED25519
from twilio.request_validator import RequestValidator

ALL = PROVIDERS + [STD_ED25519]
IDS = [p.name for p in PROVIDERS] + ["standard_webhooks_ed25519"]
SPELLINGS = [(p, label, fn) for p in ALL for label, fn in p.spellings]
WINDOWED = [p for p in ALL if p.window]


def tid(p):
    return "trg_standard_webhooks_ed25519" if p is STD_ED25519 else "trg_" + p.name


def send(port, p, sent):
    path = h.PREFIX + tid(p) + (("?" + sent.query) if sent.query else "")
    return h.request(port, path, sent.body, sent.all_headers())


def fresh(p):
    return p.body(random.randrange(10**12))


@pytest.fixture
def edge(preset_edge):
    port, backend, _ = preset_edge
    backend.clear()
    return port, backend


@pytest.mark.matrix
@pytest.mark.parametrize("p", ALL, ids=IDS)
def test_accepted_as_the_provider_sends_it(edge, p):
    port, backend = edge
    ts = int(time.time())
    sent = p.sign(fresh(p), ts)
    if p.sdk_check:
        assert p.sdk_check(p, sent, ts), f"{p.name}: the provider's own verifier refuses the test's delivery"
    resp = send(port, p, sent)
    assert resp.status == 200, resp
    [got] = backend.received()
    assert got["body"] == sent.body
    assert h.header(got, "x-combo-source") == p.name
    assert h.header(got, "x-combo-trigger-id") == tid(p)


@pytest.mark.parametrize("p", ALL, ids=IDS)
def test_one_changed_signed_byte_is_refused(edge, p):
    port, backend = edge
    resp = send(port, p, p.tampered(p.sign(fresh(p))))
    assert (resp.status, resp.error_code()) == (401, "signature_mismatch"), resp
    assert backend.received() == []


@pytest.mark.parametrize("p", ALL, ids=IDS)
def test_a_wrong_key_is_refused(edge, p):
    port, backend = edge
    resp = send(port, p, p.sign(fresh(p), key=p.other))
    assert (resp.status, resp.error_code()) == (401, "signature_mismatch"), resp
    assert backend.received() == []


@pytest.mark.parametrize("p", WINDOWED, ids=[tid(p)[4:] for p in WINDOWED])
@pytest.mark.parametrize("when", ["stale", "future"])
def test_timestamp_outside_the_window_is_refused(edge, p, when):
    port, backend = edge
    max_age, max_future = p.window
    now = int(time.time())
    ts = now - max_age - 10 if when == "stale" else now + max_future + 10
    resp = send(port, p, p.sign(fresh(p), ts))
    assert (resp.status, resp.error_code()) == (401, "timestamp_out_of_tolerance"), resp
    assert backend.received() == []


@pytest.mark.parametrize("p,label,spell", SPELLINGS, ids=[f"{tid(p)[4:]}-{label}" for p, label, _ in SPELLINGS])
def test_every_legitimate_spelling_is_accepted(edge, p, label, spell):
    port, backend = edge
    resp = send(port, p, spell(p, fresh(p), int(time.time())))
    assert resp.status == 200, resp
    assert len(backend.received()) == 1


def test_a_respelled_copy_is_a_duplicate(edge):
    """Upper-case hex is the same signed delivery: it is not delivered twice."""
    port, backend = edge
    p = next(x for x in PROVIDERS if x.name == "github")
    sent = p.sign(fresh(p))
    assert send(port, p, sent).status == 200
    header = "X-Hub-Signature-256"
    upper = dict(sent.headers, **{header: "sha256=" + sent.headers[header][7:].upper(), "X-GitHub-Delivery": "other"})
    resp = send(port, p, providers.Sent(upper, sent.body))
    assert (resp.status, resp.json()) == (200, {"status": "duplicate"})
    assert len(backend.received()) == 1


def test_slack_slash_command_form_reaches_match_and_inputs(edge):
    port, backend = edge
    slack = next(x for x in PROVIDERS if x.name == "slack")
    form = urllib.parse.urlencode({"command": "/deploy", "text": f"prod {random.random()}", "user_id": "U1"}).encode()
    sent = slack.sign(form)
    headers = dict(sent.headers, **{"content-type": "application/x-www-form-urlencoded"})
    resp = h.request(port, h.PREFIX + "trg_slack_form", form, headers)
    assert resp.status == 200, resp
    [got] = backend.received()
    assert got["body"] == form, "verified and forwarded byte for byte"
    inputs = h.json.loads(h.header(got, "x-combo-inputs"))
    assert inputs["command"] == "/deploy" and inputs["text"].startswith("prod ")
    other = urllib.parse.urlencode({"command": "/other", "text": str(random.random())}).encode()
    resp = h.request(port, h.PREFIX + "trg_slack_form", other,
                     dict(slack.sign(other).headers, **{"content-type": "application/x-www-form-urlencoded"}))
    assert (resp.status, resp.json()) == (202, {"status": "ignored"}), "match sees the form's fields"


def test_json_only_schemes_refuse_forms(edge):
    port, backend = edge
    p = next(x for x in PROVIDERS if x.name == "github")
    sent = p.sign(b"a=x")
    resp = h.request(port, h.PREFIX + "trg_github", sent.body,
                     dict(sent.headers, **{"content-type": "application/x-www-form-urlencoded"}))
    assert (resp.status, resp.error_code()) == (415, "unsupported_media_type")


def test_asymmetric_triggers_hold_no_secret():
    """A public-key preset with a secret is a configuration error naming the field."""
    from combo_edge import envoy as hh
    import subprocess
    cfg = {"triggers": [{"id": "d", "source": "discord", "secret": "s3cr3t-value", "action": {"agent_id": "a"}}]}
    out = subprocess.run([str(hh.REPO / "target/release/combo-webhook"), "validate", "-"],
                         input=hh.json.dumps(cfg).encode(), capture_output=True)
    text = out.stdout.decode()
    assert out.returncode == 1 and "triggers[0].secret: discord verifies with public_key" in text, text
    assert "s3cr3t-value" not in text


@pytest.mark.parametrize("port_spelling", ["as configured", "with :443"])
def test_twilio_json_webhooks_sign_the_body_digest_in_the_url(edge, port_spelling):
    """Twilio posts JSON with ?bodySHA256= in the URL and signs the URL alone;
    its SDK accepts the URL with and without the default port. The
    signature is made and checked by twilio's own RequestValidator."""
    port, backend = edge
    p = next(x for x in PROVIDERS if x.name == "twilio")
    validator = RequestValidator(p.key)
    body = json.dumps({"n": random.randrange(10**12), "text": "x"}).encode()
    digest = validator.compute_hash(body.decode())
    path = h.PREFIX + "trg_twilio?bodySHA256=" + digest
    base = providers.PUBLIC_URL if port_spelling == "as configured" else providers.PUBLIC_URL + ":443"
    sig = validator.compute_signature(base + path, {})
    assert validator.validate(providers.PUBLIC_URL + path, body.decode(), sig)
    headers = {"X-Twilio-Signature": sig, "content-type": "application/json"}
    changed = body.replace(b'"x"', b'"y"')
    resp = h.request(port, path, changed, headers)
    assert (resp.status, resp.error_code()) == (401, "signature_mismatch"), resp
    resp = h.request(port, h.PREFIX + "trg_twilio", body, headers)
    assert (resp.status, resp.error_code()) == (401, "missing_signature"), resp
    assert backend.received() == []
    resp = h.request(port, path, body, headers)
    assert resp.status == 200, resp
    [got] = backend.received()
    assert got["body"] == body
