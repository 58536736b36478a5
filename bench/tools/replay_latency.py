"""`make bench` row: the latency and throughput the etcd replay store adds,
beside the local store. One Envoy per store (two workers), a real etcd and a
recording backend on loopback; distinct signed 1 KiB deliveries."""
import json
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from combo_edge import envoy as h

SECRET = "bench-secret"
N = 600
CONCURRENCY = 8


def config(store: str, etcd_port: int | None) -> tuple[dict, list]:
    replay = {"store": "etcd", "etcd": {"cluster": "etcd"}} if store == "etcd" else {}
    cfg = {"replay": replay, "triggers": [{"id": "t", "secret": SECRET, "action": {"agent_id": "a"}}]}
    clusters = [h.cluster("etcd", etcd_port)] if etcd_port else []
    return cfg, clusters


def run(port: int) -> dict:
    pad = "x" * 900
    bodies = [json.dumps({"id": uuid.uuid4().hex, "pad": pad}).encode() for _ in range(N)]

    def one(body):
        t = time.perf_counter()
        r = h.request(port, "/v1/webhook/generic/t", body, h.signed_headers(SECRET, body))
        assert r.status == 200, r
        return (time.perf_counter() - t) * 1000

    for b in bodies[:50]:  # warm-up (leases granted, connections up)
        one(json.dumps({"id": uuid.uuid4().hex}).encode())
    sequential = [one(b) for b in bodies[: N // 2]]
    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, bodies[N // 2:]))
    rate = (N - N // 2) / (time.perf_counter() - started)
    q = statistics.quantiles(sequential, n=100)
    return {"p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2), "req_per_s_at_8": round(rate)}


def main():
    agent = h.Backend("a")
    etcd = h.Etcd().start()
    rows = {}
    try:
        for store in ("local", "etcd"):
            cfg, clusters = config(store, etcd.port if store == "etcd" else None)
            port = h.free_port()
            envoy = h.Envoy(h.single_upstream(cfg, agent.port, port, clusters), wasm_log_level="error").wait_ready()
            try:
                rows[store] = run(port)
            finally:
                envoy.stop()
    finally:
        etcd.stop()
        agent.stop()
    print("replay store   p50 (ms)  p99 (ms)  req/s (8 concurrent, Python client)")
    for store, r in rows.items():
        print(f"{store:<14} {r['p50_ms']:>8}  {r['p99_ms']:>8}  {r['req_per_s_at_8']:>6}")
    print(json.dumps({"added_p50_ms": round(rows["etcd"]["p50_ms"] - rows["local"]["p50_ms"], 2),
                      "added_p99_ms": round(rows["etcd"]["p99_ms"] - rows["local"]["p99_ms"], 2)}))


if __name__ == "__main__":
    main()
