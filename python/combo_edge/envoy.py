"""Test harness: a real Envoy running the built filter, real HTTP backends that
record every request, certificates made on the fly, and a raw HTTP client.

`COMBO_BUILD` picks the artifact every Envoy of the run loads: `wasm` (the
.wasm in V8, the default) or `native` (the dynamic module .so). The whole
suite runs against each (`make integration` runs it twice).

Nothing here skips: a missing Envoy binary, .wasm or .so raises, and the
test fails.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from combo_edge.backend import Recorder, ResettingUpstream  # noqa: F401
# The configuration half of the harness, under the names the tests use (h.*).
from combo_edge.bootstrap import (BUILD, NATIVE, PROCESS_ENV, REPO, WASM, WASM_TYPE, agent_routes,  # noqa: F401
                                  cluster, edge_filter, envoy_binary, envoy_version, for_build,
                                  http_connection_manager, native_has_sds, native_has_details, envoy_has_v8,
                                  native_holds_responses,
                                  listener, native_file, native_filter, shipped_config, single_upstream,
                                  take_process_env, wasm_file, wasm_filter, with_xfcc)

PREFIX = "/v1/webhook/generic/"
HOST = "127.0.0.1"  # where Envoy listens; conftest sets it from ENVOY_URL


_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port for a listener to bind later: below the kernel's ephemeral
    range (so no client connection takes it as its source port before the
    listener binds it, seen as Envoy's `Address already in use` in CI), and
    never handed out twice by this process."""
    low = max(2048, _ephemeral_low() - 12000)
    high = _ephemeral_low() - 1
    for _ in range(2000):
        port = random.randint(low, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("free_port: no free port below the ephemeral range")


def sign(secret: str, ts: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(ts).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def delivery_id(trigger_id: str, signed_prefix: bytes, body: bytes, signed_suffix: bytes = b"") -> str:
    """The filter's delivery id where the sender signs none: the first 32 hex
    digits of the replay key, a digest of the trigger id and of exactly what
    the signature covers, the body standing in as its SHA-256 digest (each of
    the two length-prefixed)."""
    content = signed_prefix + hashlib.sha256(body).digest() + signed_suffix
    h = hashlib.sha256()
    for part in (trigger_id.encode(), content):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()[:32]


def signed_headers(secret: str, body: bytes, ts: int | None = None, **extra) -> dict:
    ts = int(time.time()) if ts is None else ts
    h = {
        "content-type": "application/json",
        "x-combo-timestamp": str(ts),
        "x-combo-signature": sign(secret, ts, body),
    }
    h.update({k.replace("_", "-"): v for k, v in extra.items()})
    return h


# ---------------------------------------------------------------- backends

class Backend:
    """A recording backend on loopback, in this process."""

    def __init__(self, name: str, port: int = 0, on_request=None):
        self.name = name
        self.recorder = Recorder(name, on_request)
        self.server = self.recorder.serve("127.0.0.1", port)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def status(self) -> int:
        return self.recorder.status

    @status.setter
    def status(self, value: int):
        with self.recorder.lock:
            self.recorder.status = value

    def clear(self):
        with self.recorder.lock:
            self.recorder.requests.clear()
            self.recorder.status = 200

    def received(self) -> list[dict]:
        with self.recorder.lock:
            return list(self.recorder.requests)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SlowBackend:
    """A recording backend that holds each request `delay` seconds (for
    copies that must arrive while the first is still in flight)."""

    def __init__(self, name: str = "agent"):
        self.delay = 0.0
        self.backend = Backend(name, on_request=lambda _entry: time.sleep(self.delay))


class RemoteBackend:
    """The same interface over a recording backend in another process or
    container (docker-compose), through its /__ control paths."""

    def __init__(self, name: str, url: str):
        self.name, self.url = name, url.rstrip("/")

    def _call(self, method: str, path: str):
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    @property
    def status(self) -> int:
        raise RuntimeError("a remote backend's status can be set, not read")

    @status.setter
    def status(self, value: int):
        self._call("PUT", f"/__status/{value}")

    def clear(self):
        self._call("DELETE", "/__requests")

    def received(self) -> list[dict]:
        return [dict(r, body=base64.b64decode(r["body"]), headers=[tuple(h) for h in r["headers"]])
                for r in self._call("GET", "/__requests")]

    def stop(self):
        pass


def header(req: dict, name: str):
    values = [v for k, v in req["headers"] if k == name]
    assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
    return values[0] if values else None


# ---------------------------------------------------------------- envoy process

class Envoy:
    _next_base_id = 1000 + os.getpid() % 10000

    def __init__(self, bootstrap: dict, concurrency: int = 2, log_level: str = "info",
                 wasm_log_level: str = "debug", cpus: str | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="combo-envoy-"))
        self.config = self.dir / "envoy.json"
        self.admin_port = free_port()
        bootstrap = json.loads(json.dumps(bootstrap))
        process_env = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=str(NATIVE.parent))
        process_env.update(take_process_env(bootstrap))
        # SDS subscriptions (the native module's `sds:` secrets) need a node.
        bootstrap.setdefault("node", {"id": "combo-edge", "cluster": "combo-edge"})
        bootstrap["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}}
        self.config.write_text(json.dumps(bootstrap, indent=1))
        self.log = self.dir / "envoy.log"
        Envoy._next_base_id += 1
        pin = ["taskset", "-c", cpus] if cpus else []
        self.proc = subprocess.Popen(
            pin + [envoy_binary(), "-c", str(self.config), "--concurrency", str(concurrency),
                   "--base-id", str(Envoy._next_base_id), "-l", log_level,
                   "--component-log-level", f"wasm:{wasm_log_level},dynamic_modules:{wasm_log_level}",
                   "--log-path", str(self.log), "--file-flush-interval-msec", "50"],
            stdout=open(self.dir / "stdout.log", "ab"), stderr=subprocess.STDOUT, env=process_env,
        )

    def wait_ready(self, timeout: float = 30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"envoy exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/ready", timeout=1) as r:
                    if r.status == 200:
                        # A module built against another ABI only warns; the suite fails.
                        if "is deprecated. Please recompile" in self.logs():
                            raise RuntimeError("Envoy warned that the dynamic module's ABI is deprecated")
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"envoy not ready after {timeout}s:\n{self.logs()[-4000:]}")

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout=timeout)

    def access_log(self) -> list[dict]:
        """The JSON lines Envoy's stdout access log wrote (the shipped configs'
        audit lines)."""
        out = []
        path = self.dir / "stdout.log"
        if not path.exists():
            raise RuntimeError(f"{path} is missing: Envoy never started")
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def rss_kb(self) -> int:
        """Envoy's resident memory (kB), from /proc."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS for the Envoy process")

    def logs(self) -> str:
        """Envoy's log; a missing log is an error, never an empty one (an
        assertion that a text is absent would then pass for nothing)."""
        if not self.log.exists():
            raise RuntimeError(f"{self.log} is missing: Envoy never started")
        return self.log.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- client

class Response:
    def __init__(self, status: int, headers: list, body: bytes):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body)

    def error_code(self):
        return self.json()["error"]["code"]

    def header(self, name: str):
        return self.headers.get(name.lower())

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


def request(port: int, path: str, body: bytes = b"", headers: dict | None = None, *,
            method: str = "POST", source: str | None = None, chunks: list[bytes] | None = None,
            tls: ssl.SSLContext | None = None, chunk_delay: float = 0.05) -> Response:
    """One request on a fresh connection. `chunks` sends a chunked body without
    Content-Length, pausing between chunks so that Envoy sees them separately."""
    src = (source, 0) if source else None
    if tls:
        conn = http.client.HTTPSConnection(HOST, port, timeout=10, context=tls, source_address=src)
    else:
        conn = http.client.HTTPConnection(HOST, port, timeout=10, source_address=src)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            if isinstance(v, (list, tuple)):
                for item in v:
                    conn.putheader(k, item)
            else:
                conn.putheader(k, v)
        try:
            if chunks is not None:
                conn.putheader("transfer-encoding", "chunked")
                conn.endheaders()
                for c in chunks:
                    conn.send(b"%x\r\n%s\r\n" % (len(c), c))
                    time.sleep(chunk_delay)
                conn.send(b"0\r\n\r\n")
            else:
                if body or method in ("POST", "PUT"):
                    conn.putheader("content-length", str(len(body)))
                # Headers and body in one send: two small writes meet Nagle and
                # delayed ACKs and add 40 ms to every request.
                conn.endheaders(body or None)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy answered early; read its answer below
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


# ---------------------------------------------------------------- etcd

class Etcd:
    """A real etcd (Debian's etcd-server) on loopback, with its own data dir.
    `stop()` and `start()` again keep the data, like a restart. With `tls`
    (server cert, key, CA, client cert, key) clients must present a
    certificate from that CA."""

    def __init__(self, tls: dict | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="combo-etcd-"))
        self.port, self.peer_port = free_port(), free_port()
        self.tls = tls
        self.proc = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _context(self):
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.tls["ca"])
        ctx.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
        return ctx

    def start(self, timeout: float = 20.0):
        binary = os.environ.get("ETCD") or "etcd"
        tls = []
        if self.tls:
            tls = ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
                   "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
        self.proc = subprocess.Popen(
            [binary, "--name", "combo", "--data-dir", str(self.dir / "data"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
             "--initial-cluster", f"combo=http://127.0.0.1:{self.peer_port}", "--log-level", "error", *tls],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "etcd.log", "ab"))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {(self.dir / 'etcd.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1, context=self._context())
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("etcd did not become healthy")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (to check what etcd holds)."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        req = urllib.request.Request(
            f"{self.url}/v3/kv/range", method="POST",
            data=json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                             "range_end": base64.b64encode(end.encode()).decode()}).encode())
        doc = json.loads(urllib.request.urlopen(req, timeout=5, context=self._context()).read())
        return [base64.b64decode(kv["key"]).decode() for kv in doc.get("kvs", [])]
