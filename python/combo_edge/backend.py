"""An HTTP backend that records every request it receives.

Used in-process by the test harness, and standalone (stdlib only) as the demo
agent backend of docker-compose.yml, where the suite reads the recordings over
HTTP: GET /__requests lists them, DELETE /__requests clears them, and
PUT /__status/<code> sets the status of the next answers.

    python3 recording_backend.py NAME PORT
"""
import base64
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Recorder:
    def __init__(self, name: str, on_request=None):
        self.name = name
        self.on_request = on_request
        self.requests: list[dict] = []
        self.status = 200
        self.lock = threading.Lock()

    def handler(self):
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes: without TCP_NODELAY,
            # Nagle and the proxy's delayed ACK add 40 ms to every answer.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def _read_body(self) -> bytes:
                if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""

            def _send(self, status: int, doc):
                out = json.dumps(doc).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except (BrokenPipeError, ConnectionResetError):
                    # The proxy gave up on this request (a timeout, a client
                    # that hung up): what was received is recorded already.
                    self.close_connection = True

            def _control(self) -> bool:
                if not self.path.startswith("/__"):
                    return False
                self._read_body()
                if self.command == "GET" and self.path == "/__requests":
                    with rec.lock:
                        self._send(200, [dict(r, body=base64.b64encode(r["body"]).decode()) for r in rec.requests])
                elif self.command == "DELETE" and self.path == "/__requests":
                    with rec.lock:
                        rec.requests.clear()
                        rec.status = 200
                    self._send(200, {"cleared": True})
                elif self.command == "PUT" and self.path.startswith("/__status/"):
                    with rec.lock:
                        rec.status = int(self.path.rsplit("/", 1)[1])
                    self._send(200, {"status": rec.status})
                else:
                    self._send(404, {"error": "unknown control path"})
                return True

            def _handle(self):
                if self._control():
                    return
                body = self._read_body()
                entry = {"method": self.command, "path": self.path,
                         "headers": [(k.lower(), v) for k, v in self.headers.items()], "body": body}
                with rec.lock:
                    rec.requests.append(entry)
                    status = rec.status
                if rec.on_request:
                    rec.on_request(entry)
                self._send(status, {"backend": rec.name})

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        return Handler

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((host, port), self.handler())
        server.daemon_threads = True
        return server


RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close sends a reset


class ResettingUpstream:
    """Reads each request, then resets the connection unanswered: the backend
    got the delivery (`requests` counts them) and may have acted on it. With
    `once`, it stops listening after the first request: a backend that
    crashed while it processed the delivery (a retry finds the port closed)."""

    def __init__(self, port: int = 0, once: bool = False):
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.once = once
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.once:
                self.sock.close()
            with conn:
                conn.settimeout(2)
                try:
                    if conn.recv(65536):
                        self.requests += 1
                except OSError:
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
            if self.once:
                return

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.sock.close()


if __name__ == "__main__":
    name, port = sys.argv[1], int(sys.argv[2])
    Recorder(name).serve("0.0.0.0", port).serve_forever()
