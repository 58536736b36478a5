"""`make soak`: SOAK_SECONDS (default 600) of mixed traffic at a bounded rate
against the real .wasm in Envoy with two workers, on loopback.

Traffic: valid deliveries, forged ones, sequential and concurrent replays,
non-canonical paths, oversized bodies and slow (chunked) senders. It fails
unless every valid delivery reached the backend exactly once, nothing forged or
replayed reached it, no answer was a 5xx, and Envoy's RSS and the VM's memory
stayed flat within 10 % after warm-up."""
import json
import os
import random
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
CONFIG = {
    "max_body_bytes": 16384,
    "triggers": [{"id": "trg_soak", "secret": SECRET, "match": {"jsonpath": "$.kind", "equals": "order"},
                  "action": {"agent_id": "agent", "inputs": {
                      "id": "{{ payload.id }}", "skus": {"jsonpath": "$.items[*].sku"},
                      "n": {"jsonpath": "$.n", "first": True, "type": "integer", "default": 0}}}}],
}


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.valid: set[str] = set()
        self.forbidden: set[str] = set()   # ids that must never reach the backend
        self.statuses: dict[str, dict[int, int]] = {}
        self.server_errors: list[str] = []

    def saw(self, kind: str, status: int, what: str = ""):
        with self.lock:
            self.statuses.setdefault(kind, {}).setdefault(status, 0)
            self.statuses[kind][status] += 1
            if status >= 500:
                self.server_errors.append(f"{kind} {status} {what}")


def order(n_items=3) -> tuple[str, bytes]:
    did = uuid.uuid4().hex
    doc = {"kind": "order", "id": did, "n": random.randint(0, 9),
           "items": [{"sku": f"s{i}", "qty": i} for i in range(n_items)]}
    return did, json.dumps(doc).encode()


def send(port, body, headers, path=PATH, chunks=None):
    try:
        return h.request(port, path, body, headers, chunks=chunks, chunk_delay=0.2)
    except OSError as e:
        return h.Response(599, [], str(e).encode())


def one_round(port, t: Tally, pool: ThreadPoolExecutor):
    kind = random.choices(["valid", "forged", "replay", "concurrent", "path", "oversized", "slow"],
                          weights=[40, 15, 15, 10, 8, 6, 6])[0]
    did, body = order()
    headers = h.signed_headers(SECRET, body)
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


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def vm_memory(envoy) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{envoy.admin_port}/stats?filter=combo_webhook_vm_memory_bytes",
                                  timeout=5).read().decode()
    for line in text.splitlines():
        if "combo_webhook_vm_memory_bytes" in line:
            return int(line.split(":")[1])
    return 0


def flat(samples: list[int]) -> bool:
    return bool(samples) and max(samples) <= min(samples) * 1.10


def main():
    agent = h.Backend("agent")
    port = h.free_port()
    envoy = h.Envoy(h.single_upstream(CONFIG, agent.port, port), concurrency=2, wasm_log_level="info").wait_ready()
    t = Tally()
    rss, vm = [], []
    started = time.time()
    print(f"soak: {SECONDS} s at {RATE} rounds/s on 127.0.0.1:{port}, warm-up {WARMUP} s", flush=True)
    try:
        with ThreadPoolExecutor(max_workers=32) as pool, ThreadPoolExecutor(max_workers=8) as inner:
            next_sample, n = started + WARMUP, 0
            while (now := time.time()) < started + SECONDS:
                pool.submit(one_round, port, t, inner)
                n += 1
                if now >= next_sample:
                    rss.append(rss_kb(envoy.proc.pid))
                    vm.append(vm_memory(envoy))
                    next_sample = now + 10
                    print(f"  +{int(now - started)} s: {n} rounds, envoy rss {rss[-1]} kB, vm {vm[-1]} B", flush=True)
                time.sleep(max(0.0, started + n / RATE - time.time()))
        time.sleep(1)
        received = [json.loads(r["body"])["id"] for r in agent.received()]
    finally:
        envoy.stop()
        agent.stop()
    counts: dict[str, int] = {}
    for did in received:
        counts[did] = counts.get(did, 0) + 1
    twice = [d for d, c in counts.items() if c > 1]
    missing = t.valid - set(counts)
    leaked = t.forbidden & set(counts)
    unexpected = set(counts) - t.valid
    print(json.dumps({"rounds": n, "statuses": t.statuses, "delivered": len(received), "valid": len(t.valid),
                      "rss_kb": [min(rss or [0]), max(rss or [0])], "vm_bytes": [min(vm or [0]), max(vm or [0])]}, indent=1))
    failures = []
    if twice:
        failures.append(f"{len(twice)} deliveries reached the backend more than once")
    if missing:
        failures.append(f"{len(missing)} valid deliveries never reached the backend")
    if leaked or unexpected:
        failures.append(f"{len(leaked | unexpected)} forged, replayed or unaccounted deliveries reached the backend")
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
