"""The combo-webhook CLI binary, run as a user would."""
import json
import os
import subprocess
import time

import discord_interactions
import nacl.signing
import pytest
import stripe
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import providers

from combo_edge import envoy as h
from conftest import SECRET

CLI = h.REPO / "target/release/combo-webhook"
STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def cli(*args, body: bytes = b"", env=None):
    if not CLI.is_file():
        raise RuntimeError(f"{CLI} is missing: run `make build`")
    return subprocess.run([str(CLI), *args], input=body, capture_output=True, timeout=30, env=env)


def header_lines(out: bytes) -> list[str]:
    return out.decode().strip().splitlines()


PRESETS = [p.name for p in providers.PROVIDERS]
# Presets whose secret is plain base64 (secret_encoding: base64): their own test key.
# Secrets in the preset's own encoding (base64, hex).
BASE64_SECRETS = {p.name: p.key for p in providers.PROVIDERS if p.name in ("brex", "adyen")}
PUBLIC = {p.name: p for p in providers.PROVIDERS if "public_key" in p.config}


def pem(key) -> bytes:
    if isinstance(key, nacl.signing.SigningKey):
        key = Ed25519PrivateKey.from_private_bytes(bytes(key))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def nodes_at(doc, parts: list[str]) -> list:
    """The values a JSON pointer's parts reach; `*` is every element of an array (Graph's batches)."""
    nodes = [doc]
    for part in parts:
        nodes = [x for n in nodes for x in (n if part == "*" else [n[int(part)] if isinstance(n, list) else n[part]])]
    return nodes


def cli_body(name: str, ts: int) -> bytes:
    """A body the preset can carry (fields it reads from the body in place)."""
    doc = {"event": "x", "n": 1}
    if name in ("mailgun", "mailgun_primary"):
        doc["signature"] = {"timestamp": str(ts), "token": "tok-" + str(ts)}
    if name == "linear":
        doc["webhookTimestamp"] = ts * 1000
    if name == "microsoft_graph":
        doc["value"] = [{"clientState": STD_SECRET}]
    if name == "adyen":
        doc["notificationItems"] = [{"NotificationRequestItem": {"pspReference": "P1", "merchantAccountCode": "M",
                                                                 "eventCode": "AUTHORISATION", "success": "true",
                                                                 "additionalData": {}}}]
    return json.dumps(doc).encode()


@pytest.mark.parametrize("name", PRESETS + ["standard_webhooks_ed25519"])
def test_sign_then_verify_every_preset(name, tmp_path):
    """What `sign` prints for a preset, `verify` accepts; one more byte is refused."""
    ts = int(time.time())
    source = name.replace("_ed25519", "")
    body = cli_body(source, ts)
    url = ["--url", providers.PUBLIC_URL + providers.path_of(source)]
    p = providers.STD_ED25519 if name.endswith("_ed25519") else PUBLIC.get(name)
    if p:
        keyfile = tmp_path / "key.pem"
        keyfile.write_bytes(pem(p.key))
        sign_key, verify_key = ["--private-key", str(keyfile)], ["--public-key", p.config["public_key"]]
    else:
        sign_key = verify_key = ["--secret", BASE64_SECRETS.get(name, STD_SECRET)]
    signed = cli("sign", "--source", source, *sign_key, "--id", "d-1", *url, body=body)
    assert signed.returncode == 0, signed.stderr
    args = []
    for line in header_lines(signed.stdout):
        if line.startswith("json "):
            pointer, value = line[5:].split(": ", 1)
            doc = json.loads(body)
            *parents, leaf = pointer.strip("/").split("/")
            node = doc
            for node in nodes_at(doc, parents):
                node[int(leaf) if isinstance(node, list) else leaf] = value
            body = json.dumps(doc).encode()
        elif line.startswith("?"):  # a query signature (PandaDoc): the URL carries it
            url = ["--url", url[1] + line]
        else:
            args += ["--header", line]
    if source in ("twilio", "mandrill"):  # they sign form fields
        args += ["--header", "content-type: application/x-www-form-urlencoded"]
    ok = cli("verify", "--source", source, *verify_key, *args, *url, body=body)
    assert (ok.returncode, ok.stdout[:2]) == (0, b"ok"), ok.stdout + ok.stderr
    changed = body.replace(b'"n": 1', b'"n": 2')
    bad = cli("verify", "--source", source, *verify_key, *args, *url, body=changed)
    # These sign no body (Adyen signs fields of its item only).
    if source not in ("mailgun", "mailgun_primary", "gitlab", "okta", "microsoft_graph", "telegram", "figma", "adyen"):
        assert (bad.returncode, bad.stdout.split(b":")[0]) == (1, b"signature_mismatch"), bad.stdout


def test_cli_signatures_pass_the_providers_own_verifiers(tmp_path):
    """stripe-python and discord-interactions accept what the CLI signs."""
    body = b'{"id":"evt_1"}'
    out = cli("sign", "--source", "stripe", "--secret", "whsec_cli", body=body)
    header = out.stdout.decode().split(": ", 1)[1].strip()
    assert stripe.WebhookSignature.verify_header(body.decode(), header, "whsec_cli", 300)
    discord = PUBLIC["discord"]
    (tmp_path / "d.pem").write_bytes(pem(discord.key))
    out = cli("sign", "--source", "discord", "--private-key", str(tmp_path / "d.pem"), body=body)
    lines = dict(line.split(": ", 1) for line in header_lines(out.stdout))
    assert discord_interactions.verify_key(body, lines["x-signature-ed25519"], lines["x-signature-timestamp"],
                                           discord.config["public_key"])


def test_sign_matches_standard_webhooks_published_vector():
    out = cli("sign", "--source", "standard_webhooks", "--secret", STD_SECRET, "--id", "msg_p5jXN8AQM9LWM0D4loKWxJek",
              "--timestamp", "1614265330", body=b'{"test": 2432232314}')
    assert "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" in header_lines(out.stdout)


def test_verify_reports_stale_timestamp():
    body = b"{}"
    ts = str(int(time.time()) - 3600)
    signed = cli("sign", "--secret", "s", "--timestamp", ts, body=body)
    args = [a for line in header_lines(signed.stdout) for a in ("--header", line)]
    out = cli("verify", "--secret", "s", *args, body=body)
    assert out.returncode == 1 and out.stdout.startswith(b"timestamp_out_of_tolerance")


def test_cli_signed_delivery_passes_the_filter_in_envoy(edge, backends):
    body = json.dumps({"action": "escalated", "ticket": {"id": 77}}).encode()
    signed = cli("sign", "--secret-env", "S", body=body, env={"S": SECRET})
    headers = dict(line.split(": ", 1) for line in header_lines(signed.stdout))
    headers["content-type"] = "application/json"
    resp = h.request(edge.port, h.PREFIX + "trg_ticket_escalated", body, headers)
    assert resp.status == 200, resp
    assert len(backends["ticket-triage"].received()) == 1


def test_validate_yaml_reports_every_error_with_path(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({
        "max_body_bytes": 1024,
        "triggers": [
            {"id": "a", "secret": "inline", "action": {"agent_id": "x"}},
            {"id": "b", "secrets": [{"env": "COMBO_CLI_TEST_UNSET"}], "allow_cidrs": ["10.0.0.0/33"],
             "match": {"jsonpath": "$["}, "action": {"agent_id": "x"}},
        ],
    }))
    out = cli("validate", str(cfg))
    assert out.returncode == 1
    lines = out.stdout.decode().splitlines()
    assert 'error: triggers[1].secrets[0].env: environment variable "COMBO_CLI_TEST_UNSET" is not set' in lines
    assert 'error: triggers[1].allow_cidrs[0]: invalid CIDR "10.0.0.0/33"' in lines
    assert any(l.startswith("error: triggers[1].match.jsonpath: ") for l in lines)
    assert lines[-1].endswith("3 error(s)")


def test_validate_warns_about_inline_secrets(tmp_path):
    cfg = tmp_path / "ok.json"
    cfg.write_text(json.dumps({"triggers": [{"id": "a", "secret": "inline", "action": {"agent_id": "x"}}]}))
    out = cli("validate", str(cfg))
    assert out.returncode == 0, out.stdout
    assert "warning: triggers[0].secrets[0]: secret given inline; prefer env" in out.stdout.decode()
    assert "inline" not in out.stdout.decode().replace("given inline", "")  # the secret itself is never printed


@pytest.mark.parametrize("name", ["envoy.yaml", "egress.yaml"])
def test_validate_plugin_configs_shipped_in_envoy_yaml(tmp_path, name):
    """The JSON embedded in each shipped Envoy config passes `validate`."""
    doc = yaml.safe_load((h.REPO / "envoy" / name).read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("@type", "").endswith("google.protobuf.StringValue") and "value" in node:
                found.append(node["value"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert found
    env = {"COMBO_DEMO_SECRET": "x", "SUB_42_SECRET": "x", "SUB_OPS_SECRET": "x"}
    for i, text in enumerate(found):
        cfg = tmp_path / f"plugin{i}.json"
        cfg.write_text(text)
        out = cli("validate", str(cfg), env=env)
        assert out.returncode == 0, out.stdout


def test_cli_conventions():
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.decode().startswith("combo-webhook ")
    for sub in ("sign", "verify", "validate", "inputs", "presets", "completions"):
        out = cli(sub, "--help")
        assert out.returncode == 0 and b"Usage: combo-webhook " + sub.encode() in out.stdout, sub
    assert cli("sign", "--secret", "s", "--timestmap", "100").returncode == 2, "a misspelt flag is refused"
    assert cli("sign", "--secret", "a", "--secret", "b").returncode == 2, "a repeated flag is refused"
    assert cli("verify", "--secret", "s", "--tolerance", "-5").returncode == 2, "a negative tolerance is refused"
    assert cli("sign", "--secret=s", "--timestamp=100", body=b"{}").returncode == 0, "--flag=value works"
    assert b"complete -F" in cli("completions", "bash").stdout


@pytest.mark.parametrize("args", [("presets",), ("completions", "bash"),
                                  ("validate", str(h.REPO / "envoy/envoy.yaml"))])
def test_a_closed_stdout_ends_quietly(args):
    """`combo-webhook ... | head`: the reader has gone before the first line.

    The pipe's read end is closed before the program starts, so its first
    write fails with EPIPE, every time: exit 0 and nothing on stderr, as
    ripgrep does, never Rust's "failed printing to stdout" panic (101).
    """
    if not CLI.is_file():
        raise RuntimeError(f"{CLI} is missing: run `make build`")
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run([str(CLI), *args], stdin=subprocess.DEVNULL, stdout=w, stderr=subprocess.PIPE,
                              timeout=30)
    finally:
        os.close(w)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stderr == b"", proc.stderr
    # And through a shell pipeline as a user types it.
    shell = subprocess.run(["bash", "-c", f"set -o pipefail; '{CLI}' {' '.join(args)} | head -c 1"],
                           capture_output=True, timeout=30)
    assert shell.returncode == 0 and len(shell.stdout) == 1 and b"panicked" not in shell.stderr, shell


def test_validate_reads_stdin_and_configs_inside_envoy_and_istio_files(tmp_path):
    out = cli("validate", "-", body=b'{"triggers": [{"id": "a", "secret": "s", "action": {"agent_id": "x"}}]}')
    assert out.returncode == 0 and b"ok (inbound, 1 trigger(s))" in out.stdout, out.stdout
    # The shipped bootstrap: its secrets come from the VM's key_values, as in Envoy.
    out = cli("validate", str(h.REPO / "envoy/envoy.yaml"), env={})
    assert out.returncode == 0 and b"ok (inbound, 2 trigger(s))" in out.stdout, out.stdout
    # Istio: the secrets live in the gateway's environment, not here.
    manifest = h.REPO / "envoy/istio/envoyfilter.yaml"
    missing = cli("validate", str(manifest), env={})
    assert missing.returncode == 1 and b"COMBO_TICKET_SECRET" in missing.stdout
    assert cli("validate", "--allow-missing-env", str(manifest), env={}).returncode == 0
    assert cli("validate", "--allow-missing-env", str(h.REPO / "envoy/istio/wasmplugin.yaml"), env={}).returncode == 0
    broken = tmp_path / "bootstrap.yaml"
    broken.write_text(yaml.safe_dump({"static_resources": {"listeners": [{"filter_chains": [{"filters": [{"typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"configuration": {"value": json.dumps({"max_body_bytes": 0})}}}}]}]}]}}))
    out = cli("validate", str(broken))
    assert out.returncode == 1 and b"max_body_bytes: out of range (min 1)" in out.stdout, out.stdout


# The header that carries a delivery id, per preset whose independent signer
# makes one up and signs it: the CLI is given the same id.
ID_HEADERS = ("webhook-id", "svix-id", "twitch-eventsub-message-id")
# Signers whose output cannot be compared byte for byte, and why; each is
# still checked by the provider's own verifier elsewhere in the suite.
NOT_COMPARABLE = {
    "sendgrid": "ECDSA signatures are randomised (sendgrid's EventWebhook verifies the CLI's)",
}


@pytest.mark.parametrize("p", [p for p in providers.PROVIDERS if p.name not in NOT_COMPARABLE], ids=lambda p: p.name)
def test_cli_sign_matches_the_independent_signer(p, tmp_path):
    """For one body, timestamp, id and key, `combo-webhook sign` prints what
    the provider's library or an independent computation of its documented
    algorithm sends (providers.py): the signer is never checked only by the
    same code's verifier. Headers the CLI leaves out are ones no scheme
    signs (a provider's unsigned delivery id)."""
    ts = 1_700_000_000
    sent = p.sign(p.body(1), ts)
    body = sent.body
    expected = {k.lower(): v for k, v in sent.headers.items()}
    args = ["--timestamp", str(ts), "--url", providers.PUBLIC_URL + providers.path_of(p.name)]
    for name in ID_HEADERS:
        if name in expected:
            args += ["--id", expected[name]]
    if "public_key" in p.config:
        (tmp_path / "key.pem").write_bytes(pem(p.key))
        args += ["--private-key", str(tmp_path / "key.pem")]
    else:
        args += ["--secret", p.key]
    out = cli("sign", "--source", p.name, *args, body=body)
    assert out.returncode == 0, out.stderr
    got = {}
    for line in header_lines(out.stdout):
        if line.startswith("?"):  # a query signature (PandaDoc)
            got["query"], expected["query"] = line, "?" + sent.query
            continue
        name, value = line.split(": ", 1)
        got[name if name.startswith("json ") else name.lower()] = value
    if p.name == "twitch":
        # The independent signer sends a nanosecond timestamp, the CLI whole
        # seconds: both RFC 3339. The CLI's own is signed independently here.
        stamp = got["twitch-eventsub-message-timestamp"]
        assert stamp == "2023-11-14T22:13:20Z"
        msg = (expected["twitch-eventsub-message-id"] + stamp).encode() + body
        expected["twitch-eventsub-message-timestamp"] = stamp
        expected["twitch-eventsub-message-signature"] = "sha256=" + providers.mac(p.key.encode(), msg).hex()
    assert got, f"{p.name}: the CLI printed nothing"
    for name, value in got.items():
        if name.startswith("json "):
            nodes = nodes_at(json.loads(body), name[5:].strip("/").split("/"))
            assert nodes and all(n == value for n in nodes), f"{p.name}: {name}: CLI {value!r}, independent {nodes!r}"
        else:
            assert expected.get(name) == value, f"{p.name}: {name}: CLI {value!r}, independent {expected.get(name)!r}"


SEND_PRESETS = {p.name: p for p in providers.PROVIDERS if p.name in ("github", "stripe", "discord")}


@pytest.mark.parametrize("name", sorted(SEND_PRESETS))
def test_send_posts_a_signed_delivery_to_the_edge(name, preset_edge, tmp_path):
    """`combo-webhook send` signs as the sender (two secrets and one
    public-key preset) and posts to the suite's Envoy: accepted, forwarded
    once; with the wrong key, refused with the filter's code and exit 1."""
    port, backend, _ = preset_edge
    p = SEND_PRESETS[name]
    url = f"http://127.0.0.1:{port}{providers.PREFIX}trg_{name}"
    if "public_key" in p.config:
        (tmp_path / "key.pem").write_bytes(pem(p.key))
        (tmp_path / "other.pem").write_bytes(pem(p.other))
        key, wrong = ["--private-key", str(tmp_path / "key.pem")], ["--private-key", str(tmp_path / "other.pem")]
    else:
        key, wrong = ["--secret-env", "K"], ["--secret", p.other]
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"n": 41, "sent_by": "combo-webhook send", "preset": name}))
    before = len(backend.received())
    out = cli("send", url, "--source", name, *key, "--body", str(body), env=dict(os.environ, K=str(p.key)))
    assert (out.returncode, out.stdout.decode().strip()) == (0, "200"), out.stdout + out.stderr
    got = backend.received()[before:]
    assert [json.loads(r["body"])["sent_by"] for r in got] == ["combo-webhook send"]
    body.write_text(json.dumps({"n": 42, "preset": name}))
    refused = cli("send", url, "--source", name, *wrong, "--body", str(body))
    assert (refused.returncode, refused.stdout.decode().strip()) == (1, "401 signature_mismatch"), refused.stdout
    assert len(backend.received()) == before + 1, "the refused one never reached the backend"


def test_send_curl_prints_a_command_the_edge_accepts(preset_edge, tmp_path):
    """`--curl` prints the same delivery as a curl command; run by a shell,
    the edge accepts it."""
    port, backend, _ = preset_edge
    url = f"http://127.0.0.1:{port}{providers.PREFIX}trg_github"
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"n": 43, "quote": "it's", "via": "curl"}))
    out = cli("send", url, "--source", "github", "--secret", SEND_PRESETS["github"].key, "--body", str(body), "--curl")
    assert out.returncode == 0 and out.stdout.startswith(b"curl "), out.stdout + out.stderr
    before = len(backend.received())
    ran = subprocess.run(["bash", "-c", out.stdout.decode().rstrip() + " -o /dev/null -w '%{http_code}'"],
                         capture_output=True, timeout=30)
    assert ran.stdout == b"200", ran
    assert [json.loads(r["body"])["via"] for r in backend.received()[before:]] == ["curl"]


def test_send_names_an_unreachable_edge_in_one_line():
    out = cli("send", "http://127.0.0.1:9/v1/webhook/generic/x", "--secret", "s", "--body", "/dev/null")
    assert out.returncode == 2
    assert out.stderr.decode().count("\n") == 1 and b"POST http://127.0.0.1:9/" in out.stderr, out.stderr


def test_send_never_echoes_a_query_token_nor_follows_a_redirect(tmp_path):
    """A scheme whose token travels in the query: an unreachable edge's error
    names the URL without it. A redirect is the edge's answer (exit 1),
    never followed: the token would go to another host."""
    scheme = tmp_path / "scheme.json"
    scheme.write_text(json.dumps({"algorithm": "token", "signature": {"query": "token"}, "unsigned_body": True}))
    body = tmp_path / "body.json"
    body.write_text("{}")
    args = ["--source", "custom", "--scheme", str(scheme), "--secret", "TOPSECRET-7417", "--body", str(body)]
    out = cli("send", "http://127.0.0.1:9/v1/webhook/generic/t", *args)
    assert out.returncode == 2 and b"http://127.0.0.1:9/v1/webhook/generic/t" in out.stderr, out.stderr
    assert b"TOPSECRET" not in out.stdout + out.stderr

    import http.server
    import threading
    seen = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.path)
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(302)
            self.send_header("location", "http://127.0.0.2:9/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = cli("send", f"http://127.0.0.1:{server.server_port}/v1/webhook/generic/t", *args)
    finally:
        server.shutdown()
        server.server_close()
    assert (out.returncode, out.stdout.decode().strip()) == (1, "302"), out.stdout + out.stderr
    assert len(seen) == 1
