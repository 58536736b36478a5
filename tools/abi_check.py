"""Offline check of the native module's ABI against the pinned Envoy binary
(`make abi-check`, part of `make test`). Fails when:

- a callback the module declares (ffi.rs IMPORTED) or imports (`nm -D` of the
  .so) is missing from Envoy's exported symbols, or the two lists differ;
- a hook Envoy requires (ffi.rs EXPORTED) is not exported by the .so, or is
  unknown to the Envoy binary;
- the ABI string (ffi.rs ABI_VERSION) is not the pinned one, or the binary
  does not carry it;
- Envoy's version, or the sha256 of its sorted exported callback list,
  differs from the pin (src/adapter/envoy_module/envoy.abi.lock): the ABI
  may have moved, so re-review every signature in ffi.rs, then re-pin with
  `--update`;
- the .so imports an optional callback (ffi.rs OPTIONAL: resolved at load
  time, so that older Envoys load the module), or the pinned Envoy lacks one;
- an older supported Envoy (ENVOY_OLDER: binaries, space-separated) lacks a
  callback the module imports or a hook it must export, or does not carry
  the ABI string the module answers it (ABI_VERSION_WITHOUT_SDS).
"""
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FFI = REPO / "src/adapter/envoy_module/ffi.rs"
LOCK = REPO / "src/adapter/envoy_module/envoy.abi.lock"
PREFIX = "envoy_dynamic_module_callback_"


def symbols(binary: str, *flags: str) -> set[str]:
    out = subprocess.run(["nm", "-D", *flags, binary], check=True, capture_output=True, text=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def rust_list(source: str, name: str) -> list[str]:
    m = re.search(rf"pub const {name}: &\[&str\] = &\[(.*?)\];", source, re.S)
    if not m:
        sys.exit(f"{FFI}: no {name} list")
    return re.findall(r'"([a-z0-9_]+)"', m.group(1))


def main() -> int:
    so = Path(sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else
              REPO / "target/native/libcombo_webhook_filter.so")
    envoy = os.environ["ENVOY"]
    source = FFI.read_text()
    imported = rust_list(source, "IMPORTED")
    exported = rust_list(source, "EXPORTED")
    declared = set(re.findall(r"pub fn (envoy_dynamic_module_callback_[a-z0-9_]+)\(", source))
    optional = rust_list(source, "OPTIONAL")
    abi = re.search(r'pub const ABI_VERSION: &\[u8\] = b"(v[0-9.]+)\\0";', source).group(1)
    older_abi = re.search(r'pub const ABI_VERSION_WITHOUT_SDS: &\[u8\] = b"(v[0-9.]+)\\0";', source).group(1)

    envoy_callbacks = sorted(s for s in symbols(envoy, "--defined-only") if s.startswith(PREFIX))
    version = subprocess.run([envoy, "--version"], check=True, capture_output=True, text=True).stdout
    version = re.search(r"/(\d+\.\d+\.\d+)/", version).group(1)
    digest = hashlib.sha256("\n".join(envoy_callbacks).encode()).hexdigest()
    strings = subprocess.run(["strings", "-n", "6", envoy], check=True, capture_output=True, text=True).stdout
    strings = set(strings.splitlines())
    pinned = f"envoy {version}\nabi {abi}\ncallbacks {len(envoy_callbacks)} sha256 {digest}\n"
    if "--update" in sys.argv:
        LOCK.write_text(pinned)
        print(f"pinned: {pinned}")
        return 0

    problems = []
    if set(imported) != declared:
        problems.append(f"ffi.rs: IMPORTED and the extern block differ: {sorted(set(imported) ^ declared)}")
    missing = sorted(set(imported) - set(envoy_callbacks))
    if missing:
        problems.append(f"callbacks the module calls that Envoy {version} does not export: {missing}")
    so_imports = {s for s in symbols(str(so), "--undefined-only") if s.startswith("envoy_")}
    if so_imports != set(imported):
        problems.append(f"the .so imports other callbacks than ffi.rs lists: {sorted(so_imports ^ set(imported))}")
    so_exports = {s for s in symbols(str(so), "--defined-only") if s.startswith("envoy_")}
    if not set(exported) <= so_exports:
        problems.append(f"hooks the .so does not export: {sorted(set(exported) - so_exports)}")
    problems += hooks_and_abi(version, strings, exported, abi)
    if set(optional) & so_imports:
        problems.append(f"the .so imports optional callbacks (they must be resolved at load): "
                        f"{sorted(set(optional) & so_imports)}")
    if not set(optional) <= set(envoy_callbacks):
        problems.append(f"optional callbacks Envoy {version} lacks: {sorted(set(optional) - set(envoy_callbacks))}")
    for older in os.environ.get("ENVOY_OLDER", "").split():
        problems += check_older(older, imported, exported, optional, older_abi)
    if LOCK.read_text() != pinned:
        problems.append(f"the pinned Envoy changed:\n  pinned: {LOCK.read_text()!r}\n  found:  {pinned!r}\n"
                        "  re-review every signature in ffi.rs against this binary, then run with --update")
    for p in problems:
        print("abi-check: " + p, file=sys.stderr)
    if problems:
        return 1
    print(f"abi-check: Envoy {version}, ABI {abi}: {len(imported)} callbacks imported and "
          f"{len(exported)} hooks exported, all present; {len(envoy_callbacks)} callbacks, sha256 {digest[:16]} as pinned")
    return 0


def hooks_and_abi(version: str, strings: set[str], exported: list[str], abi: str) -> list[str]:
    """Every hook the module exports is one this Envoy looks up, and it
    carries the ABI string the module answers it."""
    problems = []
    unknown = sorted(h for h in exported if h not in strings)
    if unknown:
        problems.append(f"hooks Envoy {version} never looks up: {unknown}")
    if abi not in strings:
        problems.append(f"Envoy {version} does not carry the ABI string {abi}")
    return problems


def check_older(envoy: str, imported: list[str], exported: list[str], optional: list[str], abi: str) -> list[str]:
    """An older supported Envoy: everything the module imports and exports is
    there, and the ABI string the module answers it (without SDS)."""
    callbacks = {s for s in symbols(envoy, "--defined-only") if s.startswith(PREFIX)}
    version = subprocess.run([envoy, "--version"], check=True, capture_output=True, text=True).stdout
    version = re.search(r"/(\d+\.\d+\.\d+)/", version).group(1)
    strings = set(subprocess.run(["strings", "-n", "6", envoy], check=True, capture_output=True, text=True)
                  .stdout.splitlines())
    problems = []
    missing = sorted(set(imported) - callbacks)
    if missing:
        problems.append(f"callbacks the module imports that Envoy {version} does not export: {missing}")
    problems += hooks_and_abi(version, strings, exported, abi)
    present = sorted(n.removeprefix(PREFIX) for n in set(optional) & callbacks)
    print(f"abi-check: Envoy {version}: {len(imported)} imports and {len(exported)} hooks present; "
          f"optional callbacks present: {present or 'none'}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
