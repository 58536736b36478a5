"""`make soak`: SOAK_SECONDS (default 600) of mixed traffic at a bounded rate
against the real .wasm in Envoy with two workers, on loopback.

Traffic: valid deliveries, forged ones, sequential and concurrent replays,
non-canonical paths, oversized bodies, slow (chunked) senders, and deliveries
that never get an answer: the sender hangs up after forwarding, the backend
outlives the route timeout, or the upstream resets. It fails unless every
valid delivery reached the backend exactly once (an unknown outcome counts as
delivered: its retry must be `200 duplicate`), nothing forged or replayed
reached it, no answer of the filter was a 5xx (Envoy's own 503/504 for a reset
or a timeout are expected), and Envoy's RSS and the VM's memory stayed flat
within 10 % after warm-up."""
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from combo_edge import envoy as h

SECRET = "soak-secret"
SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
RATE = int(os.environ.get("SOAK_RATE", "60"))  # deliveries started per second
WARMUP = max(10, SECONDS // 5)
PATH = "/v1/webhook/generic/trg_soak"
RESET_PATH = "/v1/webhook/generic/trg_reset"
CONFIG = {
    "max_body_bytes": 16384,
    "triggers": [{"id": "trg_soak", "secret": SECRET, "match": {"jsonpath": "$.kind", "equals": "order"},
                  "action": {"agent_id": "agent", "inputs": {
                      "id": "{{ payload.id }}", "skus": {"jsonpath": "$.items[*].sku"},
                      "n": {"jsonpath": "$.n", "first": True, "type": "integer", "default": 0}}}},
                 {"id": "trg_reset", "secret": SECRET, "action": {"agent_id": "reset"}}],
}
ROUTE_TIMEOUT = 1.0  # a held delivery (`hold` in its body) outlives it


def bootstrap(port: int, agent_port: int, reset_port: int) -> dict:
    routes = [{"match": {"prefix": "/", "headers": [{"name": "x-combo-agent-id", "string_match": {"exact": "reset"}}]},
               "route": {"cluster": "reset"}},
              {"match": {"prefix": "/"}, "route": {"cluster": "agent", "timeout": f"{ROUTE_TIMEOUT}s"}}]
    return {"static_resources": {
        "listeners": [h.listener("ingress", port, h.http_connection_manager([h.edge_filter(CONFIG)], routes))],
        "clusters": [h.cluster("agent", agent_port), h.cluster("reset", reset_port)],
    }}


def hold(entry: dict):
    """The backend holds a delivery whose body asks for it (`hold` seconds)."""
    try:
        time.sleep(float(json.loads(entry["body"]).get("hold", 0)))
    except (ValueError, AttributeError):
        pass


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.valid: set[str] = set()
        self.forbidden: set[str] = set()   # ids that must never reach the backend
        self.statuses: dict[str, dict[int, int]] = {}
        self.server_errors: list[str] = []
        self.resets = 0

    def saw(self, kind: str, status: int, what: str = "", expected_5xx: int | None = None):
        with self.lock:
            self.statuses.setdefault(kind, {}).setdefault(status, 0)
            self.statuses[kind][status] += 1
            if status >= 500 and status != expected_5xx:
                self.server_errors.append(f"{kind} {status} {what}")


def order(n_items=3, **extra) -> tuple[str, bytes]:
    did = uuid.uuid4().hex
    doc = {"kind": "order", "id": did, "n": random.randint(0, 9),
           "items": [{"sku": f"s{i}", "qty": i} for i in range(n_items)], **extra}
    return did, json.dumps(doc).encode()


def hang_up_after_sending(port, path, body, headers, after: float):
    """Sends the whole delivery and closes the connection unanswered."""
    wire = dict(headers, **{"content-length": str(len(body))})
    head = f"POST {path} HTTP/1.1\r\nhost: soak\r\n" + "".join(f"{k}: {v}\r\n" for k, v in wire.items()) + "\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(head.encode() + body)
            time.sleep(after)
    except OSError:
        pass


# Envoy's own answers when a delivery gets none: expected, not the filter's.
ENVOY_ANSWERS = {"timeout": 504, "reset": 503}


def send(port, body, headers, path=PATH, chunks=None):
    try:
        return h.request(port, path, body, headers, chunks=chunks, chunk_delay=0.2)
    except OSError as e:
        return h.Response(599, [], str(e).encode())


def one_round(port, t: Tally, pool: ThreadPoolExecutor, resetter: h.ResettingUpstream):
    kind = random.choices(["valid", "forged", "replay", "concurrent", "path", "oversized", "slow",
                           "hang_up", "timeout", "reset"],
                          weights=[40, 15, 15, 10, 8, 6, 6, 3, 2, 2])[0]
    did, body = order(**({"hold": 0.4} if kind == "hang_up" else {"hold": ROUTE_TIMEOUT + 0.5} if kind == "timeout"
                         else {}))
    headers = h.signed_headers(SECRET, body)
    if kind in ("hang_up", "timeout", "reset"):
        # Forwarded, never answered: an unknown outcome, remembered as
        # delivered. The sender's retry must be a duplicate.
        path = RESET_PATH if kind == "reset" else PATH
        if kind == "hang_up":
            hang_up_after_sending(port, path, body, headers, after=0.2)
            time.sleep(0.5)
        else:
            r = send(port, body, headers, path=path)
            t.saw(kind, r.status, did, expected_5xx=ENVOY_ANSWERS[kind])
        retry = send(port, body, headers, path=path)
        t.saw(kind + "_retry", retry.status, did)
        # A hang-up that came before the filter forwarded (a loaded machine)
        # held nothing: then the retry is the delivery, still exactly once.
        first_never_left = kind == "hang_up" and retry.status == 200 and retry.body.startswith(b'{"backend"')
        if not first_never_left and (retry.status != 200 or retry.json() != {"status": "duplicate"}):
            with t.lock:
                t.server_errors.append(f"{kind}: the retry was not a duplicate: {retry!r}")
        with t.lock:
            if kind == "reset":
                t.resets += 1
            else:
                t.valid.add(did)
        return
    if kind == "valid":
        r = send(port, body, headers)
        t.saw(kind, r.status, did)
        if r.status == 200:
            with t.lock:
                t.valid.add(did)
    elif kind == "forged":
        with t.lock:
            t.forbidden.add(did)
        r = send(port, body, dict(headers, **{"x-combo-signature": "sha256=" + "0" * 64}))
        t.saw(kind, r.status, did)
    elif kind == "replay":
        r = send(port, body, headers)
        t.saw(kind, r.status, did)
        if r.status == 200:
            with t.lock:
                t.valid.add(did)
        for _ in range(2):
            r2 = send(port, body, headers)
            t.saw(kind, r2.status, did)
    elif kind == "concurrent":
        answers = list(pool.map(lambda _: send(port, body, headers), range(3)))
        for r in answers:
            t.saw(kind, r.status, did)
        if sum(1 for r in answers if r.status == 200 and r.body.startswith(b'{"backend"')) == 1:
            with t.lock:
                t.valid.add(did)
    elif kind == "path":
        with t.lock:
            t.forbidden.add(did)
        trick = random.choice(["//v1/webhook/generic/trg_soak", "/v1/./webhook/generic/trg_soak",
                               "/v1/webhook%2Fgeneric/trg_soak", "/v1/x/../webhook/generic/trg_soak"])
        r = send(port, body, {"content-type": "application/json"}, path=trick)
        t.saw(kind, r.status, did)
    elif kind == "oversized":
        _, big = order(n_items=2000)
        r = send(port, big, h.signed_headers(SECRET, big))
        t.saw(kind, r.status)
    elif kind == "slow":
        chunks = [body[i:i + 64] for i in range(0, len(body), 64)][:4] + [body[256:]] if len(body) > 256 else [body]
        hs = {k: v for k, v in headers.items()}
        r = send(port, b"", hs, chunks=chunks)
        t.saw(kind, r.status, did)
        if r.status == 200:
            with t.lock:
                t.valid.add(did)


def vm_memory(envoy) -> int | None:
    """The .wasm's VM memory gauge; `None` for the native module (no VM). A
    .wasm without the gauge is an error, never a flat 0."""
    if h.BUILD != "wasm":
        return None
    text = urllib.request.urlopen(f"http://127.0.0.1:{envoy.admin_port}/stats?filter=combo_webhook_vm_memory_bytes",
                                  timeout=5).read().decode()
    for line in text.splitlines():
        if "combo_webhook_vm_memory_bytes" in line:
            return int(line.split(":")[1])
    raise RuntimeError("soak: the .wasm reports no combo_webhook_vm_memory_bytes gauge")


def flat(samples: list[int]) -> bool:
    return bool(samples) and max(samples) <= min(samples) * 1.10


def main():
    agent = h.Backend("agent", on_request=hold)
    resetter = h.ResettingUpstream()
    port = h.free_port()
    envoy = h.Envoy(bootstrap(port, agent.port, resetter.port), concurrency=2, wasm_log_level="info").wait_ready()
    t = Tally()
    rss, vm = [], []
    started = time.time()
    print(f"soak: {SECONDS} s at {RATE} rounds/s on 127.0.0.1:{port}, warm-up {WARMUP} s", flush=True)
    try:
        with ThreadPoolExecutor(max_workers=32) as pool, ThreadPoolExecutor(max_workers=8) as inner:
            next_sample, n, rounds = started + WARMUP, 0, []
            while (now := time.time()) < started + SECONDS:
                rounds.append(pool.submit(one_round, port, t, inner, resetter))
                n += 1
                if now >= next_sample:
                    rss.append(envoy.rss_kb())
                    if (memory := vm_memory(envoy)) is not None:
                        vm.append(memory)
                    next_sample = now + 10
                    print(f"  +{int(now - started)} s: {n} rounds, envoy rss {rss[-1]} kB, vm {vm[-1] if vm else '-'} B",
                          flush=True)
                time.sleep(max(0.0, started + n / RATE - time.time()))
            # A round that raised is a failure of the soak, never a silent loss.
            crashed = [f.exception() for f in rounds if f.exception() is not None]
        time.sleep(1)
        received = [json.loads(r["body"])["id"] for r in agent.received()]
    finally:
        envoy.stop()
        agent.stop()
        resetter.stop()
    counts: dict[str, int] = {}
    for did in received:
        counts[did] = counts.get(did, 0) + 1
    twice = [d for d, c in counts.items() if c > 1]
    missing = t.valid - set(counts)
    leaked = t.forbidden & set(counts)
    unexpected = set(counts) - t.valid
    print(json.dumps({"rounds": n, "statuses": t.statuses, "delivered": len(received), "valid": len(t.valid),
                      "resets": [t.resets, resetter.requests],
                      "rss_kb": [min(rss or [0]), max(rss or [0])], "vm_bytes": [min(vm or [0]), max(vm or [0])]}, indent=1))
    failures = [f"a round raised: {crashed[0]!r} ({len(crashed)} in all)"] if crashed else []
    if twice:
        failures.append(f"{len(twice)} deliveries reached the backend more than once")
    if missing:
        failures.append(f"{len(missing)} valid deliveries never reached the backend")
    if leaked or unexpected:
        failures.append(f"{len(leaked | unexpected)} forged, replayed or unaccounted deliveries reached the backend")
    if resetter.requests != t.resets:
        failures.append(f"the resetting upstream got {resetter.requests} requests for {t.resets} deliveries")
    if t.server_errors:
        failures.append(f"{len(t.server_errors)} answers were 5xx, e.g. {t.server_errors[:3]}")
    if not flat(rss):
        failures.append(f"Envoy RSS not flat within 10 %: {min(rss or [0])}..{max(rss or [0])} kB")
    if h.BUILD == "wasm" and not flat(vm):  # the native module has no VM
        failures.append(f"VM memory not flat within 10 %: {min(vm or [0])}..{max(vm or [0])} B")
    for f in failures:
        print("FAIL:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
