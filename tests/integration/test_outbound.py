"""Outbound mode with envoy/egress.yaml as shipped, in front of real
subscriber servers that verify every delivery with the SPEC algorithm,
independently of the filter's code."""
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from combo_edge import envoy as h

SECRETS = {"sub_42": "subscriber-42-secret-change-me", "sub_ops": "subscriber-ops-secret-change-me"}


class Subscriber:
    """Records every attempt; `script` says how to answer the next ones:
    an int status, or ("sleep", seconds) before answering 200."""

    def __init__(self, name: str):
        self.name, self.secret = name, SECRETS[name]
        self.attempts: list[dict] = []
        self.script: list = []
        self.lock = threading.Lock()
        sub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with sub.lock:
                    step = sub.script.pop(0) if sub.script else 200
                    sub.attempts.append({"at": time.time(), "headers": headers, "body": body,
                                         "verified": sub.verify(headers, body)})
                if isinstance(step, tuple):
                    time.sleep(step[1])
                    step = 200
                out = b'{"ok":true}'
                try:
                    self.send_response(step)
                    self.send_header("content-length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # Envoy gave up on this try (per-try timeout)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verify(self, headers: dict, body: bytes) -> bool:
        """SPEC: sha256=hex(HMAC-SHA256(secret, timestamp + "." + raw_body)), |skew| <= 300."""
        ts, sig = headers.get("x-combo-timestamp"), headers.get("x-combo-signature")
        if not ts or not sig or not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            return False
        expected = "sha256=" + hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, sig)

    def reset(self):
        with self.lock:
            self.attempts.clear()
            self.script.clear()


@pytest.fixture(scope="module")
def egress():
    subs = {name: Subscriber(name) for name in SECRETS}
    port = h.free_port()
    cfg = h.shipped_config("egress.yaml", {10001: port, 19001: subs["sub_42"].port, 19002: subs["sub_ops"].port})
    envoy = h.Envoy(cfg).wait_ready()
    yield port, subs, envoy
    envoy.stop()
    for s in subs.values():
        s.server.shutdown()


@pytest.fixture
def subs(egress):
    for s in egress[1].values():
        s.reset()
    return egress[1]


def send(port, subscription, event: dict | None = None, **headers):
    event = event if event is not None else {"type": "session.finished", "id": "evt_" + uuid.uuid4().hex}
    body = json.dumps(event).encode()
    hs = {"content-type": "application/json"}
    if subscription is not None:
        hs["x-combo-subscription"] = subscription
    hs.update({k.replace("_", "-"): v for k, v in headers.items()})
    return h.request(port, "/events", body, hs), body


@pytest.mark.matrix
def test_picked_event_is_signed_and_delivered(egress, subs):
    port = egress[0]
    before = int(time.time())
    resp, body = send(port, "sub_42", {"type": "review.completed", "id": "evt_1", "note": "naïve"})
    after = int(time.time())
    assert resp.status == 200, resp
    [attempt] = subs["sub_42"].attempts
    assert attempt["verified"], attempt["headers"]
    assert attempt["body"] == body
    hs = attempt["headers"]
    assert hs["x-combo-event"] == "review.completed"
    assert len(hs["x-combo-delivery-id"]) == 32
    assert before <= int(hs["x-combo-timestamp"]) <= after, "signed when it went out"
    assert "x-combo-subscription" not in hs and "x-combo-route" not in hs
    assert subs["sub_ops"].attempts == []


def test_skipped_event_never_reaches_subscriber(egress, subs):
    resp, _ = send(egress[0], "sub_42", {"type": "session.created"})
    assert resp.status == 204, resp
    assert resp.headers["x-combo-delivery"] == "skipped"
    resp, _ = send(egress[0], "sub_42", {"type": "tool.called"})
    assert resp.status == 204
    assert subs["sub_42"].attempts == [] and subs["sub_ops"].attempts == []


def test_event_header_wins_over_body(egress, subs):
    resp, _ = send(egress[0], "sub_42", {"type": "session.created"}, x_combo_event="tool.error")
    assert resp.status == 200, resp
    [attempt] = subs["sub_42"].attempts
    assert attempt["headers"]["x-combo-event"] == "tool.error" and attempt["verified"]
    resp, _ = send(egress[0], "sub_42", {"type": "tool.error"}, x_combo_event="session.created")
    assert resp.status == 204
    assert len(subs["sub_42"].attempts) == 1


@pytest.mark.parametrize("subscription", ["sub_nope", None])
def test_unknown_subscription(egress, subs, subscription):
    resp, _ = send(egress[0], subscription)
    assert resp.status == 404, resp
    assert resp.error_code() == "unknown_subscription"
    assert subs["sub_42"].attempts == [] and subs["sub_ops"].attempts == []


def test_routes_by_subscription(egress, subs):
    resp, _ = send(egress[0], "sub_ops", {"type": "import.completed"})
    assert resp.status == 200, resp
    [attempt] = subs["sub_ops"].attempts
    assert attempt["verified"] and subs["sub_42"].attempts == []


def print_attempts(title, attempts):
    t0 = attempts[0]["at"]
    print(f"\n{title}")
    for i, a in enumerate(attempts, 1):
        print(f"  attempt {i} at +{a['at'] - t0:.3f}s delivery={a['headers']['x-combo-delivery-id']} "
              f"ts={a['headers']['x-combo-timestamp']} verified={a['verified']}")


def test_failing_twice_then_ack_gets_three_identical_attempts(egress, subs):
    sub = subs["sub_42"]
    sub.script = [503, 503, 200]
    resp, body = send(egress[0], "sub_42")
    assert resp.status == 200, resp
    assert len(sub.attempts) == 3
    print_attempts("subscriber failing twice (503, 503, 200):", sub.attempts)
    first = sub.attempts[0]["headers"]
    for a in sub.attempts:
        assert a["verified"] and a["body"] == body
        for k in ("x-combo-signature", "x-combo-timestamp", "x-combo-delivery-id", "x-combo-event"):
            assert a["headers"][k] == first[k]
    # Envoy's retries keep their order; how far apart the backoff spaces
    # them is a timing, which belongs to bench and soak (the shipped egress
    # config's retry_back_off is checked in test_deploy.py).
    assert [a["at"] for a in sub.attempts] == sorted(a["at"] for a in sub.attempts)
    # The shipped access log carries the audit record with Envoy's attempts
    # and the total duration, one JSON object per line.
    delivery = first["x-combo-delivery-id"]
    deadline = time.time() + 5
    rows = []
    while not rows and time.time() < deadline:
        rows = [r for r in egress[2].access_log() if r["webhook_audit"].get("delivery_id") == delivery]
        time.sleep(0.1)
    [row] = rows
    assert row["upstream_attempts"] == 3 and row["response_code"] == 200, row
    assert row["webhook_audit"]["verdict"] == "signed" and row["webhook_audit"]["backend_status"] == 200
    assert row["duration_ms"] >= (sub.attempts[2]["at"] - sub.attempts[0]["at"]) * 1000 - 5


def test_slow_subscriber_is_retried(egress, subs):
    sub = subs["sub_42"]
    sub.script = [("sleep", 2.6), 200]
    resp, _ = send(egress[0], "sub_42")
    assert resp.status == 200, resp
    assert len(sub.attempts) == 2
    print_attempts("subscriber slower than 2 s, then fast:", sub.attempts)
    assert sub.attempts[1]["at"] - sub.attempts[0]["at"] >= 2.0
    assert sub.attempts[0]["headers"]["x-combo-signature"] == sub.attempts[1]["headers"]["x-combo-signature"]


def test_retries_are_bounded(egress, subs):
    sub = subs["sub_42"]
    sub.script = [503] * 20
    resp, _ = send(egress[0], "sub_42")
    assert resp.status == 503
    assert len(sub.attempts) == 5  # 1 + num_retries (4)
