"""The pieces of `make bench` (bench/tools/bench.py): the filters under test, the
Envoy bootstraps, the load generator, and how Envoy's own CPU is measured.
Loopback only; every run is bounded in count and time."""
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from combo_edge import envoy as h  # installed into the venv by the Makefile

REPO = Path(__file__).resolve().parents[2]
NOOP_WASM = REPO / "bench/noop-filter/target/wasm32-wasip1/release/noop_filter.wasm"
LOADGEN = REPO / "target/release/loadgen"
UPSTREAM = REPO / "target/release/upstream"
AUTHZ = REPO / "target/release/authz_server"
HMAC_NATIVE = REPO / "target/release/hmac_rate"
HMAC_SOFT = REPO / "target/soft/release/hmac_rate"
STAGES_WASM = REPO / "target/bench-stages/wasm32-wasip1/release/combo_webhook_filter.wasm"
STAGES_NATIVE = REPO / "target/bench-stages-native/native/libcombo_webhook_filter.so"
# The per-feature table: the bench build stops after each stage in turn.
STAGES = [("headers", "headers only"), ("signature", "+ body buffered, signature verified"),
          ("body_hash", "+ body digest (audit, replay key)"), ("mapping", "+ JSON, match, inputs"),
          ("annotate", "+ annotations"), ("audit", "+ audit record"), ("metrics", "+ metrics"),
          ("full", "+ replay protection (everything)")]
SECRET = "bench-secret"
DURATION = float(os.environ.get("BENCH_SECONDS", "4"))
# This machine is noisy: every throughput row is run ROUNDS times, interleaved
# with the others, and the table shows the median round.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
TWO_CPUS = (os.cpu_count() or 1) >= 2
ENVOY_CPU, CLIENT_CPU = ("0", "1") if TWO_CPUS else (None, None)


def bench_trigger(i: int | None = None) -> dict:
    tid = "trg_bench" if i is None else f"trg_{i:05d}"
    return {
        "id": tid,
        "secrets": [{"id": "k1", "value": SECRET if i is None else f"secret-{i}"}],
        "match": {"jsonpath": "$.action", "equals": "go"},
        "action": {"agent_id": "agent", "inputs": {
            "ticket_id": "{{ payload.ticket.id }}", "priority": "{{ payload.ticket.priority }}"}},
    }


def plugin_config(triggers: int = 1) -> dict:
    extra = [bench_trigger(i) for i in range(triggers - 1)]
    return {"max_body_bytes": 2 * 1024 * 1024, "triggers": [bench_trigger()] + extra}


ROUTE_OK = [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]
# The shipped configs' shape: the filter only on the webhook routes; off (and
# Envoy stripping client-sent annotations) on every other route.
ANNOTATIONS = ["x-combo-trigger-id", "x-combo-agent-id", "x-combo-inputs", "x-combo-source", "x-combo-key-id",
               "x-combo-delivery-id", "x-combo-matched"]


def filter_off_elsewhere(filter_name: str = "envoy.filters.http.wasm") -> list:
    return [
        {"match": {"prefix": "/v1/webhook/generic/"}, "route": {"cluster": "upstream"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}, "request_headers_to_remove": ANNOTATIONS,
         "typed_per_filter_config": {filter_name: {
             "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": True}}},
    ]


NATIVE_NAME = "envoy.filters.http.dynamic_modules"
UPSTREAM_PORT = h.free_port()


def noop_filter() -> dict:
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "noop", "root_id": "noop", "allow_on_headers_stop_iteration": True,
                   "vm_config": {"vm_id": "noop", "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": str(NOOP_WASM)}}}}}}


def ext_authz_filter() -> dict:
    """ext_authz as it is deployed: gRPC to the authorization service, the raw
    body packed as bytes."""
    return {"name": "envoy.filters.http.ext_authz", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "transport_api_version": "V3",
        "failure_mode_allow": False,
        "clear_route_cache": True,
        "with_request_body": {"max_request_bytes": 2 * 1024 * 1024, "allow_partial_message": False,
                              "pack_as_bytes": True},
        "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}, "timeout": "5s"},
    }}


def grpc_cluster(name: str, port: int) -> dict:
    c = h.cluster(name, port)
    c["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}}
    return c


def bootstrap(port: int, filters: list, clusters: list | None = None, routes: list | None = None) -> dict:
    return {"static_resources": {
        "listeners": [h.listener("bench", port, h.http_connection_manager(filters, routes or ROUTE_OK))],
        "clusters": [h.cluster("upstream", UPSTREAM_PORT)] + (clusters or []),
    }}


def loadgen(port: int, body_size: int = 1024, count: int = 200_000, connections: int = 16,
            duration: float = DURATION, bad: bool = False, get: str | None = None, rate: float = 0,
            delivery: tuple[str, str, str] | None = None) -> dict:
    """`delivery`: (trigger path, secret, body action) other than the bench trigger's."""
    path, secret, action = delivery or ("/v1/webhook/generic/trg_bench", SECRET, "go")
    cmd = ([ "taskset", "-c", CLIENT_CPU] if CLIENT_CPU else []) + [
        str(LOADGEN), "--addr", f"127.0.0.1:{port}", "--secret", secret, "--body-size", str(body_size),
        "--count", str(count), "--connections", str(connections), "--duration", str(duration), "--warmup", "1",
        "--path", get or path, "--action", action]
    if bad:
        cmd.append("--bad-signature")
    if get:
        cmd.append("--get")
    if rate:
        cmd += ["--rate", f"{rate:.0f}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process: its own CPU, whatever else the machine does."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_load(envoy, port: int, *args, **kw) -> dict:
    """The load generator's result plus Envoy's CPU per request sent: far
    steadier on this noisy VM than req/s."""
    before = cpu_seconds(envoy.proc.pid)
    r = loadgen(port, *args, **kw)
    r["cpu_us"] = (cpu_seconds(envoy.proc.pid) - before) * 1e6 / max(r.get("sent", r["requests"]), 1)
    return r


def run(name: str, filters: list, body_size: int = 1024, count: int = 200_000, clusters=None,
        log_level: str = "warn", routes: list | None = None, **kw) -> dict:
    port = h.free_port()
    envoy = h.Envoy(bootstrap(port, filters, clusters, routes), concurrency=1, log_level=log_level,
                    wasm_log_level=log_level, cpus=ENVOY_CPU).wait_ready(60)
    try:
        r = measured_load(envoy, port, body_size, count, **kw)
    finally:
        envoy.stop()
    bad = {k: v for k, v in r["statuses"].items() if k != "200"}
    print(f"  {name:<34} {r['rps']:>9.0f} req/s  p50 {r['p50_us']:>6} us  p99 {r['p99_us']:>6} us"
          f"  Envoy CPU {r['cpu_us']:>6.1f} us/req"
          + (f"  non-200: {bad}" if bad else ""), flush=True)
    r["name"] = name
    return r


def stage_filter(stage: str, build: str = "wasm") -> dict:
    if build == "native":
        # The bench build of the module, found first on the search path.
        return h.native_filter(plugin_config(), env={"COMBO_BENCH_STAGE": stage,
                                                     "ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(STAGES_NATIVE.parent)})
    f = h.wasm_filter(plugin_config(), env={"COMBO_BENCH_STAGE": stage})
    f["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(STAGES_WASM)
    return f


def stage_scenario(stage: str, build: str = "wasm") -> dict:
    """One stage of a bench build; the .wasm's host calls from its `bench_hostcalls` line."""
    port = h.free_port()
    envoy = h.Envoy(bootstrap(port, [stage_filter(stage, build)]), concurrency=1, log_level="warn",
                    wasm_log_level="warn", cpus=ENVOY_CPU).wait_ready(60)
    try:
        r = measured_load(envoy, port)
    finally:
        envoy.stop()
    lines = [l.split("bench_hostcalls ", 1)[1] for l in envoy.logs().splitlines() if "bench_hostcalls {" in l]
    r["hostcalls"] = json.loads(lines[-1]) if lines else None
    print(f"  {build} stage {stage:<23} {r['rps']:>9.0f} req/s  p50 {r['p50_us']:>6} us  p99 {r['p99_us']:>6} us"
          f"  Envoy CPU {r['cpu_us']:>6.1f} us/req", flush=True)
    return r


def filter_scenario(name: str, body_size: int = 1024, count: int = 200_000, triggers: int = 1,
                    build: str = "wasm", **kw) -> dict:
    make = h.native_filter if build == "native" else h.wasm_filter
    return run(name, [make(plugin_config(triggers))], body_size, count, **kw)


def authz_scenario() -> dict:
    cfg = Path(tempfile.mkdtemp(prefix="combo-bench-")) / "plugin.json"
    cfg.write_text(json.dumps(plugin_config()))
    port = h.free_port()
    pin = ["taskset", "-c", ENVOY_CPU] if ENVOY_CPU else []
    proc = subprocess.Popen(pin + [str(AUTHZ), f"127.0.0.1:{port}", str(cfg)], stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()  # "listening"
        return run("Envoy + gRPC ext_authz (tonic)", [ext_authz_filter()],
                   clusters=[grpc_cluster("authz", port)])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def configure_time(triggers: int) -> float:
    """on_configure for `triggers` triggers, as the filter logs it (ms, median of the VMs)."""
    port = h.free_port()
    envoy = h.Envoy(bootstrap(port, [h.wasm_filter(plugin_config(triggers))]), concurrency=1,
                    log_level="info", wasm_log_level="info", cpus=ENVOY_CPU).wait_ready(120)
    try:
        times = [int(m) / 1000 for m in re.findall(r"trigger\(s\), [a-z -]+, configured in (\d+) us", envoy.logs())]
    finally:
        envoy.stop()
    if not times:
        raise RuntimeError("no 'configured in' line in Envoy's log")
    return statistics.median(times)


def hmac_in_v8() -> float:
    """MB/s of verification inside Envoy's V8: 1 MiB deliveries with a wrong
    signature are verified in full and rejected before the JSON parse, so their
    audit `verify_us` is the HMAC (plus one copy of the body out of Envoy)."""
    port = h.free_port()
    envoy = h.Envoy(bootstrap(port, [h.wasm_filter(plugin_config())]), concurrency=1,
                    log_level="info", wasm_log_level="info", cpus=ENVOY_CPU).wait_ready(60)
    try:
        loadgen(port, body_size=1 << 20, count=40, connections=1, duration=30, bad=True)
        time.sleep(0.3)
        us = [json.loads(l.split("webhook_audit ", 1)[1])["verify_us"]
              for l in envoy.logs().splitlines() if "webhook_audit {" in l and "signature_mismatch" in l]
    finally:
        envoy.stop()
    return (1 << 20) / 1e6 / (statistics.median(us) / 1e6)


def verify_us_in_v8(count: int = 300) -> dict:
    """The filter's time (audit `verify_us`, median) for one 1 KiB delivery of
    the platform's HMAC scheme and of Discord's Ed25519 scheme, both valid and
    both refused by the (absent) match, in one Envoy: what the scheme costs."""
    import nacl.signing
    sk = nacl.signing.SigningKey(bytes(range(32)))
    port = h.free_port()
    cond = {"jsonpath": "$.never", "exists": True}
    cfg = {"triggers": [
        {"id": "hmac", "secret": SECRET, "match": cond, "action": {"agent_id": "a"}},
        {"id": "ed", "source": "discord", "public_key": sk.verify_key.encode().hex(), "match": cond,
         "action": {"agent_id": "a"}}]}
    envoy = h.Envoy(bootstrap(port, [h.wasm_filter(cfg)]), concurrency=1, log_level="info",
                    wasm_log_level="info", cpus=ENVOY_CPU).wait_ready(60)
    try:
        for i in range(count):
            body = json.dumps({"n": i, "pad": "x" * 1000}).encode()
            ts = str(int(time.time()))
            h.request(port, h.PREFIX + "hmac", body, h.signed_headers(SECRET, body, int(ts)))
            sig = sk.sign(ts.encode() + body).signature.hex()
            h.request(port, h.PREFIX + "ed", body, {"content-type": "application/json",
                                                    "x-signature-ed25519": sig, "x-signature-timestamp": ts})
        time.sleep(0.3)
        rows = [json.loads(l.split("webhook_audit ", 1)[1]) for l in envoy.logs().splitlines() if "webhook_audit {" in l]
    finally:
        envoy.stop()
    out = {}
    for tid in ("hmac", "ed"):
        us = [r["verify_us"] for r in rows if r.get("trigger_id") == tid and r.get("verdict") == "ignored"]
        if len(us) < count // 2:
            raise RuntimeError(f"bench: only {len(us)} {tid} deliveries verified")
        out[tid] = statistics.median(us)
    return out


def native_rate(binary: Path) -> float:
    pin = ["taskset", "-c", CLIENT_CPU] if CLIENT_CPU else []
    out = subprocess.run(pin + [str(binary)], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)["mb_per_s"]




PIPELINE_COST = REPO / "target/release/pipeline_cost"


def probe_in_v8(runs: int = 3) -> dict:
    """The bench build's `bench_probe` line (src/adapter/probe.rs): each host
    call kind's ns per call and the pipeline's compute per stage, both
    measured inside Envoy's V8 on a live stream; the fastest of `runs` Envoys
    for each figure (noise only ever adds)."""
    best: dict = {}
    for _ in range(runs):
        f = stage_filter("full")
        f["typed_config"]["config"]["vm_config"]["environment_variables"]["key_values"]["COMBO_BENCH_PROBE"] = "1"
        port = h.free_port()
        envoy = h.Envoy(bootstrap(port, [f]), concurrency=1, log_level="warn", wasm_log_level="warn",
                        cpus=ENVOY_CPU).wait_ready(60)
        try:
            loadgen(port, count=3, connections=1, duration=30)
            time.sleep(0.3)
            lines = [l.split("bench_probe ", 1)[1] for l in envoy.logs().splitlines() if "bench_probe {" in l]
        finally:
            envoy.stop()
        if not lines:
            raise RuntimeError("bench: no bench_probe line in Envoy's log")
        got = json.loads(lines[-1])
        for group in ("hostcall_ns", "pipeline_ns"):
            for k, v in got[group].items():
                best.setdefault(group, {})[k] = min(v, best.get(group, {}).get(k, v))
    return best


def native_pipeline() -> dict:
    """The same pipeline natively, per stage, and its heap allocations per
    delivery (bench/src/bin/pipeline_cost.rs)."""
    pin = ["taskset", "-c", CLIENT_CPU] if CLIENT_CPU else []
    out = subprocess.run(pin + [str(PIPELINE_COST)], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout)


def published_key_latency(native: bool, cold: int = 5, warm: int = 200) -> dict:
    """What a delivery whose key the sender publishes costs end to end (AWS SNS,
    an RSA-2048 certificate): cold, its certificate fetched from a local HTTPS
    key server first (a new certificate URL each time, within the fetch
    budget); warm, the certificate cached. Median request latency in µs, one
    connection per request, one worker."""
    from combo_edge.keyserver import KeyServer, pem, rsa_signing_cert, sns_message
    ks = KeyServer(Path(tempfile.mkdtemp(prefix="combo-bench-keys-")))
    backend = h.Backend("published-bench")
    port = h.free_port()
    topics = {"one_of": ["arn:aws:sns:us-east-1:123456789012:combo"]}
    cfg = {"triggers": [{"id": "trg_sns", "source": "aws_sns", "scheme": {"sender": topics}, "action": {"agent_id": "agent"}},
                        {"id": "trg_hmac", "secret": SECRET, "action": {"agent_id": "agent"}}]}
    flt = h.native_filter(cfg) if native else h.wasm_filter(cfg)
    routes = [{"match": {"prefix": "/"}, "route": {"cluster": "agent", "timeout": "10s"}}]
    boot = {"static_resources": {
        "listeners": [h.listener("ingress", port, h.http_connection_manager([flt], routes))],
        "clusters": [h.cluster("agent", backend.port), ks.cluster("aws_sns_keys")]}}
    envoy = h.Envoy(boot, concurrency=1, log_level="warning", wasm_log_level="warning", cpus=ENVOY_CPU).wait_ready(60)

    def deliver(url, key) -> float:
        if url is None:  # the baseline: the platform's HMAC scheme, same path through Envoy
            body = json.dumps({"n": os.urandom(8).hex()}).encode()
            path, headers = "/v1/webhook/generic/trg_hmac", h.signed_headers(SECRET, body)
        else:
            body = json.dumps(sns_message(url, key)).encode()
            path, headers = "/v1/webhook/generic/trg_sns", {"content-type": "text/plain; charset=UTF-8"}
        t = time.perf_counter()
        resp = h.request(port, path, body, headers)
        took = (time.perf_counter() - t) * 1e6
        if resp.status != 200:
            raise RuntimeError(f"bench: a published-key delivery was answered {resp!r}")
        return took

    try:
        key, cert = rsa_signing_cert("sns.amazonaws.com")
        cold_us = []
        for _ in range(cold):
            path = f"/SimpleNotificationService-{os.urandom(8).hex()}.pem"
            ks.put(path, pem(cert))
            cold_us.append(deliver("https://sns.us-east-1.amazonaws.com" + path, key))
            time.sleep(0.2)  # one fetch per 200 ms: inside the budget of 8 a second
        url = "https://sns.us-east-1.amazonaws.com" + path
        warm_us = [deliver(url, key) for _ in range(warm)]
        hmac_us = [deliver(None, None) for _ in range(warm)]
        fetches = len([r for r in ks.requests if r["path"].endswith(".pem")])
        if fetches != cold:
            raise RuntimeError(f"bench: {fetches} certificate fetches for {cold} cold deliveries")
    finally:
        envoy.stop()
        backend.stop()
        ks.stop()
    return {"cold_us": statistics.median(cold_us), "warm_us": statistics.median(warm_us),
            "hmac_us": statistics.median(hmac_us)}
