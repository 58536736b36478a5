"""Nothing bench- or test-only is compiled into a shipped artifact.

The shipped builds are stripped, so they are checked twice: the stripped
.wasm and .so for the strings bench and test code would carry (environment
variable names, log prefixes), and the same code unstripped (dev builds:
the same features, so the same cfg, and every item kept) for the names of
bench and test items in their symbols. A control build that does carry them
(the native module with `bench-stages`) must show them, or the check could
not fail.

usage: artifact_check.py SHIPPED_WASM SHIPPED_SO UNSTRIPPED_WASM UNSTRIPPED_SO CONTROL_SO
"""

import sys
from pathlib import Path

# Strings that bench or test code holds (src/bench, host::testing, fuzzing,
# the fake Envoy): none may be in a shipped artifact.
STRINGS = [b"COMBO_BENCH_STAGE", b"COMBO_BENCH_PROBE", b"bench_probe", b"bench_hostcalls",
           b"combo_webhook_probe_total"]
# Item names, as they appear inside mangled symbols.
SYMBOLS = [b"StagedHost", b"StagedInbound", b"5Stage", b"5probe", b"5tally", b"8pipeline", b"MemoryHost",
           b"FaultyStore", b"7fuzzing", b"10fake_envoy", b"5bench"]


def found(data: bytes, needles: list[bytes]) -> list[str]:
    return [n.decode() for n in needles if n in data]


def main() -> int:
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    shipped_wasm, shipped_so, symbols_wasm, symbols_so, control_so = (Path(a) for a in sys.argv[1:])
    failures = []
    for path in (shipped_wasm, shipped_so, symbols_wasm, symbols_so, control_so):
        if not path.is_file():
            sys.exit(f"artifact-check: {path} is missing")
    for path in (shipped_wasm, shipped_so):
        hits = found(path.read_bytes(), STRINGS)
        size = path.stat().st_size
        print(f"{path}: {size:,} bytes ({size / 2**20:.2f} MiB); bench/test strings: {hits or 'none'}")
        if hits:
            failures.append(f"{path} holds {hits}")
    for path in (symbols_wasm, symbols_so):
        hits = found(path.read_bytes(), SYMBOLS + STRINGS)
        print(f"{path} (unstripped): bench/test items: {hits or 'none'}")
        if hits:
            failures.append(f"{path} holds {hits}")
    control = found(control_so.read_bytes(), SYMBOLS + STRINGS)
    print(f"{control_so} (control, bench-stages): {control}")
    if len(control) < 3:
        failures.append(f"the control build shows only {control}: the check cannot see what it looks for")
    for f in failures:
        print(f"artifact-check: FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
