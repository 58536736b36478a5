"""Against the docker-compose stack only (`make test-compose`): its two Envoy
replicas share replay protection on the stack's etcd."""
import json
import os
import threading
import time
import uuid
from urllib.parse import urlparse

import pytest

from combo_edge import envoy as h
from conftest import SECRET

pytestmark = pytest.mark.compose_only

PATH = "/v1/webhook/generic/trg_ticket_escalated"


def ports():
    return [urlparse(os.environ[name]).port for name in ("ENVOY_URL", "ENVOY_REPLICA_URL")]


def delivery():
    body = json.dumps({"action": "escalated", "ticket": {"id": uuid.uuid4().hex}}).encode()
    return body, h.signed_headers(SECRET, body)


def test_a_copy_on_the_other_replica_is_a_duplicate(backends):
    a, b = ports()
    body, headers = delivery()
    assert h.request(a, PATH, body, headers).json() == {"backend": "ticket-triage"}
    r = h.request(b, PATH, body, headers)
    assert r.status == 200 and r.json() == {"status": "duplicate"}, r
    assert len(backends["ticket-triage"].received()) == 1


def test_concurrent_copies_over_both_replicas_reach_the_backend_once(backends):
    a, b = ports()
    body, headers = delivery()
    out = [None] * 6
    go = threading.Barrier(6)

    def send(i):
        go.wait()
        out[i] = h.request((a, b)[i % 2], PATH, body, headers)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    time.sleep(0.2)
    statuses = sorted(r.status for r in out)
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 409}, out
    forwarded = [r for r in out if r.status == 200 and r.json() == {"backend": "ticket-triage"}]
    assert len(forwarded) == 1, out
    assert len(backends["ticket-triage"].received()) == 1
