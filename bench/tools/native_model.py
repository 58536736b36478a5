"""The native module's cost model (`make bench`, `make bench-ab`): every call
the module's bench build made into Envoy, and every hook Envoy made into the
module, timed on the live streams under load (src/bench/tally.rs), per
delivery; then where Envoy's CPU over plain Envoy goes: the module's hooks
(its own code and its calls into Envoy), and the rest, which is Envoy's side
outside any hook (body buffering, the route picked again, the access log and
filter state, the larger upstream request)."""


def merged(runs: list[dict]) -> dict:
    """Each Envoy's last `bench_hostcalls` totals, summed over the runs."""
    lines = [r["hostcalls"] for r in runs if r.get("hostcalls")]
    if not lines:
        raise RuntimeError("bench: the native bench build logged no bench_hostcalls line")
    calls: dict = {}
    for line in lines:
        for kind, (c, b, ns) in line["calls"].items():
            got = calls.setdefault(kind, [0, 0, 0])
            got[0], got[1], got[2] = got[0] + c, got[1] + b, got[2] + ns
    timer = sorted(l["timer_ns"] for l in lines)[len(lines) // 2]
    return {"streams": sum(l["streams"] for l in lines), "timer_ns": timer, "calls": calls}


def table(runs: list[dict], over_plain_us: float) -> tuple[list[str], dict]:
    """The model's rows, and its totals (µs per delivery)."""
    m = merged(runs)
    n, t = m["streams"], m["timer_ns"]
    rows = []
    for kind, (c, b, ns) in m["calls"].items():
        per = max(ns / c - t, 0.0)
        rows.append((kind, c / n, b / c if c else 0, per, c * per / n / 1000))
    hooks = [r for r in rows if r[0].startswith("hook_")]
    calls = [r for r in rows if not r[0].startswith("hook_")]
    n_calls = sum(r[1] for r in calls)
    # A hook's time holds its nested calls' timers too: taken out once each.
    module_us = sum(r[4] for r in hooks) - n_calls * t / 1000
    calls_us = sum(r[4] for r in calls)
    lines = ["", f"| native module: Envoy callback ({n} deliveries, timer {t} ns taken out of each) "
             "| calls per delivery | bytes per call | ns per call | µs per delivery |",
             "|---|---:|---:|---:|---:|"]
    for kind, per_d, bytes_per, ns, us in sorted(calls, key=lambda r: -r[4]):
        lines.append(f"| {kind} | {per_d:.2f} | {bytes_per:.0f} | {ns:.0f} | {us:.2f} |")
    lines.append(f"| **calls into Envoy** | {n_calls:.2f} | | | **{calls_us:.1f}** |")
    lines += ["", "| native module: hook (Envoy into the module, its calls included) | per delivery | ns per hook "
              "| µs per delivery |", "|---|---:|---:|---:|"]
    for kind, per_d, _, ns, us in sorted(hooks, key=lambda r: -r[4]):
        lines.append(f"| {kind} | {per_d:.2f} | {ns:.0f} | {us:.2f} |")
    own = module_us - calls_us
    rest = over_plain_us - module_us
    lines += ["", "| a 1 KiB delivery through the native module, µs of Envoy CPU over plain Envoy | µs |",
              "|---|---:|",
              f"| the module's own code (hooks less their calls into Envoy) | {own:.1f} |",
              f"| + its calls into Envoy | +{calls_us:.1f} |",
              f"| = inside the module's hooks | {module_us:.1f} |",
              f"| measured: the product module's Envoy CPU over plain Envoy (same run) | {over_plain_us:.1f} |",
              f"| the rest: Envoy's side outside any hook (buffering, route picked again, access log, "
              f"filter state, larger upstream request) | {rest:.1f} |"]
    return lines, {"own_us": own, "calls_us": calls_us, "module_us": module_us, "rest_us": rest}
