"""A local HTTPS key server for the published-key tests: it serves what
each test puts at a path (a certificate, a JWKS, Plaid's key endpoint), can
answer slowly or with a redirect, and records every request, so a test can
count the edge's fetches. Loopback only; its certificate names the hosts
the presets pin (issued by the suite's own CA, which the edge's key
cluster trusts)."""
import base64
import datetime
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

HOSTS = ["sns.us-east-1.amazonaws.com", "sns.eu-west-1.amazonaws.com", "api.sandbox.paypal.com",
         "production.plaid.com", "keys.example.com"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, cn)])


def certificate(key, cn: str, issuer_key=None, issuer_name=None, sans=None, days: float = 1,
                ca: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name or _name(cn))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=days)))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in sans]), critical=False)
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return b.sign(issuer_key or key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def rsa_signing_cert(cn: str, days: float = 1):
    """An RSA-2048 key and its certificate: what SNS and PayPal publish."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, certificate(key, cn, days=days)


SNS_FIELDS = ["Message", "MessageId", "Subject", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]


def sns_message(cert_url, key, version="1", kind="Notification", subject=None,
                topic="arn:aws:sns:us-east-1:123456789012:combo") -> dict:
    """An SNS HTTP delivery, signed as AWS documents: "Key\\nvalue\\n" for the
    fields present, in this order; SHA1withRSA (v1) or SHA256withRSA (v2)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    doc = {"Type": kind, "MessageId": str(uuid.uuid4()), "TopicArn": topic,
           "Message": json.dumps({"order": str(uuid.uuid4()), "text": "x"}),
           "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
           "SignatureVersion": version, "SigningCertURL": cert_url,
           "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"}
    if subject:
        doc["Subject"] = subject
    if kind == "SubscriptionConfirmation":
        doc["Token"] = uuid.uuid4().hex
        doc["SubscribeURL"] = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=" + doc["Token"]
    text = "".join(f"{k}\n{doc[k]}\n" for k in SNS_FIELDS if k in doc)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    doc["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(), digest)).decode()
    return doc


class KeyServer:
    def __init__(self, dir: Path):
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = certificate(self.ca_key, "key-server-test-ca", ca=True)
        self.ca_path = dir / "keyserver-ca.pem"
        self.ca_path.write_bytes(pem(self.ca))
        key = ec.generate_private_key(ec.SECP256R1())
        cert = certificate(key, HOSTS[0], self.ca_key, self.ca.subject, sans=HOSTS)
        (dir / "keyserver.pem").write_bytes(pem(cert))
        (dir / "keyserver.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.routes: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(dir / "keyserver.pem", dir / "keyserver.key")
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def put(self, path: str, body, status: int = 200, delay: float = 0.0, headers: dict | None = None,
            answer=None):
        """Serves `body` (bytes, or a JSON-able value) at `path`; `answer`,
        when given, computes (status, body) from the request's JSON body."""
        if not isinstance(body, (bytes, type(None))):
            body = json.dumps(body).encode()
        with self.lock:
            self.routes[path] = {"body": body, "status": status, "delay": delay, "headers": headers or {},
                                 "answer": answer}

    def fetches(self, path: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def _handler(self):
        ks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with ks.lock:
                    ks.requests.append({"method": self.command, "path": self.path,
                                        "host": self.headers.get("host"), "body": body})
                    route = ks.routes.get(self.path)
                if route is None:
                    status, out, headers = 404, b"{}", {}
                else:
                    time.sleep(route["delay"])
                    status, out, headers = route["status"], route["body"], route["headers"]
                    if route["answer"]:
                        status, out = route["answer"](json.loads(body or b"{}"))
                        out = json.dumps(out).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(out or b"")))
                    self.end_headers()
                    self.wfile.write(out or b"")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _serve
            do_POST = _serve

        return Handler

    def cluster(self, name: str) -> dict:
        """An Envoy cluster to this server that checks the server's names, as
        a production key cluster does (SNI and a SAN match)."""
        return tls_cluster(name, self.port, str(self.ca_path))

    def stop(self):
        self.server.shutdown()


def tls_cluster(name: str, port: int, ca_path: str) -> dict:
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": HOSTS[0],
            "common_tls_context": {"validation_context": {
                "trusted_ca": {"filename": ca_path},
                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": HOSTS[0]}}]}}}},
    }
