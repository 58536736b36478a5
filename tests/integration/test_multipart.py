"""multipart/form-data for a scheme that takes it (docs "Multipart
deliveries"), in a real Envoy: verified on the wire bytes and forwarded byte
for byte; match and inputs see the text fields, and each file as its name,
type, size and SHA-256, never its bytes."""
import hashlib
import hmac
import json
import random

import pytest

from combo_edge import envoy as h

SECRET = b"multipart-secret-value"
PATH = h.PREFIX + "trg_multipart"
BOUNDARY = "----combo7MA4YWxkTrZu0gW"


@pytest.fixture
def edge(preset_edge):
    port, backend, _ = preset_edge
    backend.clear()
    return port, backend


def multipart(kind: str, note: str, file: bytes) -> bytes:
    return (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\n{kind}\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n{note}\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"report.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + file + f"\r\n--{BOUNDARY}--\r\n".encode()


def headers(signed_body: bytes) -> dict:
    sig = "sha256=" + hmac.new(SECRET, signed_body, hashlib.sha256).hexdigest()
    return {"content-type": f"multipart/form-data; boundary={BOUNDARY}", "x-sig": sig}


def test_multipart_is_verified_forwarded_and_read_as_fields(edge):
    port, backend = edge
    note = f"n{random.randrange(10**12)}"
    file = bytes(range(256)) + b"\r\n--not-the-boundary\r\n"
    body = multipart("report", note, file)
    resp = h.request(port, PATH, body, headers(body))
    assert resp.status == 200, resp
    [got] = backend.received()
    assert got["body"] == body, "verified and forwarded byte for byte"
    assert h.header(got, "x-combo-source") == "custom"
    inputs = json.loads(h.header(got, "x-combo-inputs"))
    assert inputs == {
        "kind": "report",
        "note": note,
        "doc": {"filename": "report.bin", "content_type": "application/octet-stream",
                "size": len(file), "sha256": hashlib.sha256(file).hexdigest()},
    }, inputs


def test_one_changed_byte_in_a_file_is_refused(edge):
    port, backend = edge
    file = b"\x00" * 64 + str(random.random()).encode()
    body = multipart("report", "n", file)
    changed = body.replace(file, b"\x01" + file[1:])
    assert changed != body
    resp = h.request(port, PATH, changed, headers(body))
    assert (resp.status, resp.error_code()) == (401, "signature_mismatch"), resp
    assert backend.received() == []


def test_match_sees_the_text_fields(edge):
    port, backend = edge
    body = multipart("other", f"n{random.random()}", b"x")
    resp = h.request(port, PATH, body, headers(body))
    assert (resp.status, resp.json()) == (202, {"status": "ignored"}), resp
    assert backend.received() == []
