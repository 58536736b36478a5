"""`make bench-ab`: paired A/B runs of the shipped configurations and of the
filter's opt-in cuts, every variant interleaved in each round, each compared
with plain Envoy (and the no-op wasm filter) of the same round.

The filter runs with the shipped files' own configuration (envoy/envoy.yaml
for the .wasm, envoy/envoy-native.yaml for the native module): routing by
agent after the filter annotates, the audit row in the access log, the SDS
or environment secret. Only the ports change (the listener, both agent
clusters onto the bench backend). The deliveries are 1 KiB signed JSON to
`trg_ticket_escalated`. Loopback only; every run is bounded in time.

    python bench/tools/paired.py [--rounds 10] [--seconds 3] [variant ...]
"""
import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import yaml

from benchlib import (CLIENT_CPU, ENVOY_CPU, REPO, STAGES_NATIVE, UPSTREAM, UPSTREAM_PORT, bootstrap, h,
                      measured_load, noop_filter)
from combo_edge.bootstrap import PROCESS_ENV
import native_model

DELIVERY = ("/v1/webhook/generic/trg_ticket_escalated", "demo-secret-change-me", "escalated")
SHIPPED = {"wasm": REPO / "envoy/envoy.yaml", "native": REPO / "envoy/envoy-native.yaml"}


def shipped(build: str, port: int, edit: dict | None = None, model: bool = False, no_access_log: bool = False,
            log_filter: bool = True) -> dict:
    """The shipped bootstrap of `build` on `port`, its agents on the bench
    backend; `edit` merged into the filter's configuration (an opt-in cut);
    `model`: the native module's bench build, which times its calls;
    `no_access_log`: without the audit row's access log; `log_filter`
    false: the access log without its CEL filter."""
    boot = yaml.safe_load(SHIPPED[build].read_text())
    boot.pop("admin", None)
    res = boot["static_resources"]
    listener = res["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    for cluster in res["clusters"]:
        for group in cluster["load_assignment"]["endpoints"]:
            for ep in group["lb_endpoints"]:
                ep["endpoint"]["address"]["socket_address"]["port_value"] = UPSTREAM_PORT
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    if no_access_log:
        hcm.pop("access_log")
    if not log_filter:
        hcm["access_log"][0].pop("filter")
    flt = hcm["http_filters"][0]["typed_config"]
    if build == "native":
        holder = flt["filter_config"]
        if model:
            hcm["http_filters"][0][PROCESS_ENV] = {"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": str(STAGES_NATIVE.parent)}
    else:
        holder = flt["config"]["configuration"]
        flt["config"]["vm_config"]["code"]["local"]["filename"] = str(h.wasm_file())
    config = json.loads(holder["value"])
    config.update(edit or {})
    holder["value"] = json.dumps(config)
    return boot


# name: (what it is, bootstrap on a port)
VARIANTS = {
    "plain": ("Envoy, no filter", lambda port: bootstrap(port, [])),
    "noop": ("Envoy + no-op wasm filter", lambda port: bootstrap(port, [noop_filter()])),
    "wasm": (".wasm, envoy/envoy.yaml", lambda port: shipped("wasm", port)),
    "native": ("native module, envoy/envoy-native.yaml", lambda port: shipped("native", port)),
    "native_model": ("native module's bench build (times its calls), same config",
                     lambda port: shipped("native", port, model=True)),
}
# Each cut against the variant it changes (the `make bench-ab` table).
CUTS = [("native_agent_only", "native"), ("native_no_audit_state", "native"), ("native_all_cuts", "native"),
        ("native_no_access_log", "native"), ("wasm_agent_only", "wasm"), ("wasm_no_audit_state", "wasm"),
        ("wasm_all_cuts", "wasm")]
# The opt-in cuts (docs "Opt-in cuts"), each alone, then both, on both
# builds; and diagnostics that are bootstrap edits, not cuts.
AGENT_ONLY = {"annotations": ["x-combo-agent-id", "x-combo-delivery-id"]}
NO_AUDIT = {"audit_filter_state": False}
for build in ("wasm", "native"):
    VARIANTS.update({
        f"{build}_agent_only": (f"{build}: annotations [x-combo-agent-id, x-combo-delivery-id]",
                                lambda port, b=build: shipped(b, port, AGENT_ONLY)),
        f"{build}_no_audit_state": (f"{build}: audit_filter_state false",
                                    lambda port, b=build: shipped(b, port, NO_AUDIT)),
        f"{build}_no_access_log": (f"{build}: no access log (diagnostic)",
                                   lambda port, b=build: shipped(b, port, no_access_log=True)),
        f"{build}_log_unfiltered": (f"{build}: access log without its CEL filter (diagnostic)",
                                    lambda port, b=build: shipped(b, port, log_filter=False)),
        f"{build}_all_cuts": (f"{build}: both cuts",
                              lambda port, b=build: shipped(b, port, {**AGENT_ONLY, **NO_AUDIT})),
    })


def one(name: str, seconds: float) -> dict:
    port = h.free_port()
    envoy = h.Envoy(VARIANTS[name][1](port), concurrency=1, log_level="warn", wasm_log_level="warn",
                    cpus=ENVOY_CPU).wait_ready(60)
    try:
        r = measured_load(envoy, port, duration=seconds, delivery=DELIVERY)
    finally:
        envoy.stop()
    lines = [l.split("bench_hostcalls ", 1)[1] for l in envoy.logs().splitlines() if "bench_hostcalls {" in l]
    r["hostcalls"] = json.loads(lines[-1]) if lines else None
    bad = {k: v for k, v in r["statuses"].items() if k != "200"}
    if bad:
        raise SystemExit(f"paired: {name} answered {bad}: it measured something else; no figure is kept")
    return r


def spread(xs: list[float], digits: int = 3) -> str:
    return f"{statistics.median(xs):.{digits}f} ({min(xs):.{digits}f}–{max(xs):.{digits}f})"


def ratios(runs: dict, n: str, base: str) -> list[float]:
    """Req/s of `n` over `base`, round by round."""
    return [x["rps"] / b["rps"] for x, b in zip(runs[n], runs[base])]


def over(runs: dict, n: str, base: str) -> list[float]:
    """Envoy CPU µs/req of `n` less `base`'s, round by round (a round's
    noise moves both)."""
    return [x["cpu_us"] - b["cpu_us"] for x, b in zip(runs[n], runs[base])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "10")))
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", "3")))
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    a = ap.parse_args()
    unknown = [v for v in a.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"paired: unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    names = ["plain", "noop"] + [v for v in a.variants if v not in ("plain", "noop")]
    pin = ["taskset", "-c", CLIENT_CPU] if CLIENT_CPU else []
    upstream = subprocess.Popen(pin + [str(UPSTREAM), f"127.0.0.1:{UPSTREAM_PORT}"], stdout=subprocess.PIPE, text=True)
    upstream.stdout.readline()
    runs = {n: [] for n in names}
    try:
        for r in range(a.rounds):
            for n in names:
                runs[n].append(one(n, a.seconds))
            line = "  ".join(f"{n} {runs[n][-1]['rps']:.0f}" for n in names)
            print(f"round {r + 1}/{a.rounds}: {line}", flush=True)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    rows = ["| variant | req/s (median) | vs plain Envoy, same round: median (min–max) | vs no-op wasm "
            "| Envoy CPU µs/req | over plain, same round: µs/req (min–max) |", "|---|---:|---:|---:|---:|---:|"]
    for n in names:
        rps = [x["rps"] for x in runs[n]]
        cpu = statistics.median(x["cpu_us"] for x in runs[n])
        rows.append(f"| {VARIANTS[n][0]} | {statistics.median(rps):.0f} | {spread(ratios(runs, n, 'plain'))} "
                    f"| {spread(ratios(runs, n, 'noop'))} | {cpu:.1f} | {spread(over(runs, n, 'plain'), 1)} |")
    cuts = [(n, base) for n, base in CUTS if n in runs and base in runs]
    if cuts:
        rows += ["", "| opt-in cut | against | req/s ratio, same round: median (min–max) "
                 "| Envoy CPU saved, same round: µs/req (min–max) |", "|---|---|---:|---:|"]
        for n, base in cuts:
            saved = [-d for d in over(runs, n, base)]
            rows.append(f"| {VARIANTS[n][0]} | {VARIANTS[base][0]} | {spread(ratios(runs, n, base))} "
                        f"| {spread(saved, 1)} |")
    if "native_model" in runs and "native" in runs:
        rows += native_model.table(runs["native_model"], statistics.median(over(runs, "native", "plain")))[0]
    head = (f"Paired A/B, {time.strftime('%Y-%m-%d %H:%M')}: {a.rounds} interleaved rounds of {a.seconds:.0f} s per "
            f"variant after 1 s warm-up, one Envoy worker pinned to CPU {ENVOY_CPU}, 16 connections, 1 KiB deliveries.")
    table = head + "\n\n" + "\n".join(rows)
    print("\n" + table)
    out = REPO / "target/bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "paired.md").write_text(table + "\n")
    print(f"\n(written to {out / 'paired.md'})")


if __name__ == "__main__":
    main()
