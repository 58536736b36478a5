"""Deployment files: every Envoy config validated by Envoy itself, the Istio
resources, the OCI Dockerfile and docker-compose.yml checked against what the
suite runs."""
import json
import os
import re
import subprocess

import pytest
import yaml

from combo_edge import envoy as h
from conftest import edge_plugin_config
from test_cli import cli

ENVOY_CONFIGS = sorted(p.name for p in (h.REPO / "envoy").glob("*.yaml"))


def validate_envoy(doc: dict, tmp_path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`envoy --mode validate`; it also loads the .wasm and runs on_configure."""
    path = tmp_path / "envoy-config.json"
    path.write_text(json.dumps(doc))
    env = dict(env or os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=str(h.native_file().parent))
    return subprocess.run([h.envoy_binary(), "--mode", "validate", "-c", str(path)],
                          capture_output=True, text=True, timeout=120, env=env)


def with_built_wasm(node):
    """The shipped config with its .wasm path pointing at the built file."""
    if isinstance(node, dict):
        return {k: (str(h.wasm_file()) if k == "filename" and str(v).endswith(".wasm") else with_built_wasm(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [with_built_wasm(v) for v in node]
    return node


def test_repo_has_the_expected_envoy_configs():
    assert {"envoy.yaml", "envoy-native.yaml", "egress.yaml", "envoy-compose.yaml"} <= set(ENVOY_CONFIGS)
    assert {p.name for p in (h.REPO / "envoy/istio").glob("*.yaml")} == {
        "envoyfilter.yaml", "wasmplugin.yaml", "envoyfilter-native.yaml"}


def etcd_files(certs) -> dict:
    """envoy-etcd.yaml's client PKI, pointed at this run's certificates."""
    cert, key = certs["envoy_client"]
    return {"/etc/envoy/etcd/ca.pem": str(certs["ca"]), "/etc/envoy/etcd/client.pem": cert,
            "/etc/envoy/etcd/client-key.pem": key}


def with_files(node, files: dict):
    if isinstance(node, dict):
        return {k: (files.get(v, v) if k == "filename" else with_files(v, files)) for k, v in node.items()}
    if isinstance(node, list):
        return [with_files(v, files) for v in node]
    return node


@pytest.mark.parametrize("name", ENVOY_CONFIGS)
def test_envoy_validates_shipped_config(name, tmp_path, certs):
    doc = with_files(with_built_wasm(yaml.safe_load((h.REPO / "envoy" / name).read_text())), etcd_files(certs))
    env = None
    if name == "envoy-compose-native.yaml":  # its secret's environment is the container's
        env = dict(os.environ, **yaml.safe_load((h.REPO / "compose/native.yml").read_text())
                   ["services"]["envoy"]["environment"])
    out = validate_envoy(doc, tmp_path, env)
    if name == "envoy-native.yaml" and not h.native_has_sds():
        # Its secrets come from SDS, which Envoy before 1.40 gives no module.
        assert out.returncode != 0 and "sds: this Envoy has no SDS callbacks" in out.stdout + out.stderr
        return
    if name == "envoy-compose-native.yaml" and not h.native_holds_responses():
        # Its replay store is etcd, which the module refuses on Envoy 1.38.
        assert out.returncode != 0 and "replay.store: etcd needs Envoy 1.39" in out.stdout + out.stderr
        return
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout


def find(node, pred):
    if isinstance(node, dict):
        if pred(node):
            yield node
        for v in node.values():
            yield from find(v, pred)
    elif isinstance(node, list):
        for v in node:
            yield from find(v, pred)


def wasm_plugin_configs(doc):
    return [n["config"] for n in find(doc, lambda n: n.get("@type", "").endswith("filters.http.wasm.v3.Wasm"))]


WASM_CONFIGS = [n for n in ENVOY_CONFIGS if "native" not in n]


@pytest.mark.parametrize("name", WASM_CONFIGS)
def test_every_shipped_wasm_filter_sets_the_required_flags(name):
    configs = wasm_plugin_configs(yaml.safe_load((h.REPO / "envoy" / name).read_text()))
    assert configs
    for c in configs:
        assert c["allow_on_headers_stop_iteration"] is True
        # Fail closed while the VM is down, then reload it.
        assert c["failure_policy"] == "FAIL_RELOAD"
        assert c["root_id"] == "combo_webhook"


def hcm_configs(doc):
    return list(find(doc, lambda n: n.get("@type", "").endswith("HttpConnectionManager")))


@pytest.mark.parametrize("name", ENVOY_CONFIGS)
def test_every_shipped_listener_logs_the_audit_record_as_json(name):
    for hcm in hcm_configs(yaml.safe_load((h.REPO / "envoy" / name).read_text())):
        [log] = hcm["access_log"]
        assert log["filter"]["extension_filter"]["typed_config"]["expression"] == "'wasm.combo_webhook_audit' in filter_state"
        line = log["typed_config"]["log_format"]["text_format_source"]["inline_string"]
        for field in ("%FILTER_STATE(wasm.combo_webhook_audit:PLAIN)%", "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
                      "%DURATION%", "%RESPONSE_CODE_DETAILS%"):
            assert field in line


@pytest.mark.parametrize("name", ENVOY_CONFIGS)
def test_every_shipped_listener_canonicalises_paths(name):
    hcms = hcm_configs(yaml.safe_load((h.REPO / "envoy" / name).read_text()))
    assert hcms
    for hcm in hcms:
        assert hcm["normalize_path"] is True and hcm["merge_slashes"] is True
        assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST"


def test_compose_envoy_runs_the_suites_plugin_config():
    [c] = wasm_plugin_configs(yaml.safe_load((h.REPO / "envoy/envoy-compose.yaml").read_text()))
    plugin = json.loads(c["configuration"]["value"])
    # The suite's edge, with replay shared by the stack's two replicas on etcd.
    assert plugin.pop("replay") == {"store": "etcd", "etcd": {"cluster": "etcd"}, "timeout_ms": 500}
    assert plugin == edge_plugin_config()


def native_plugin_configs(doc):
    return [json.loads(n["filter_config"]["value"]) for n in
            find(doc, lambda n: n.get("@type", "").endswith("DynamicModuleFilter"))]


def test_compose_runs_either_artifact_with_one_plugin_config():
    [wasm] = wasm_plugin_configs(yaml.safe_load((h.REPO / "envoy/envoy-compose.yaml").read_text()))
    [native] = native_plugin_configs(yaml.safe_load((h.REPO / "envoy/envoy-compose-native.yaml").read_text()))
    assert native == json.loads(wasm["configuration"]["value"])
    override = yaml.safe_load((h.REPO / "compose/native.yml").read_text())["services"]
    for name in ("envoy", "envoy-replica"):
        svc = override[name]
        assert svc["environment"]["ENVOY_DYNAMIC_MODULES_SEARCH_PATH"] == "/etc/envoy/modules"
        # The .wasm's VM environment, as the container's (the native module reads Envoy's).
        assert {k: v for k, v in svc["environment"].items() if k.startswith("COMBO_")} == \
            wasm["vm_config"]["environment_variables"]["key_values"]
        assert "./envoy/envoy-compose-native.yaml:/etc/envoy/envoy.yaml:ro" in svc["volumes"]
        assert {"type": "bind", "source": "./target/native/libcombo_webhook_filter.so",
                "target": "/etc/envoy/modules/libcombo_webhook_filter.so", "read_only": True} in svc["volumes"]


def test_docker_compose_file():
    doc = yaml.safe_load((h.REPO / "docker-compose.yml").read_text())
    envoy = doc["services"]["envoy"]
    assert re.fullmatch(r"envoyproxy/envoy:v1\.40\.\d+", envoy["image"]), "Envoy image must be pinned"
    short = {v.split(":")[0]: v.split(":")[1] for v in envoy["volumes"] if isinstance(v, str)}
    assert short["./envoy/envoy-compose.yaml"] == "/etc/envoy/envoy.yaml"
    # The .wasm in long syntax (Docker's Mounts API): a missing build fails
    # `up` instead of creating a directory in its place.
    [wasm] = [v for v in envoy["volumes"] if isinstance(v, dict)]
    assert wasm == {"type": "bind", "source": "./target/wasm32-wasip1/release/combo_webhook_filter.wasm",
                    "target": "/etc/envoy/combo_webhook_filter.wasm", "read_only": True}
    # The healthcheck speaks HTTP/1.1 (Envoy's admin answers HTTP/1.0 with 426).
    assert "HTTP/1.1" in " ".join(envoy["healthcheck"]["test"])
    [c] = wasm_plugin_configs(yaml.safe_load((h.REPO / "envoy/envoy-compose.yaml").read_text()))
    assert c["vm_config"]["code"]["local"]["filename"] == "/etc/envoy/combo_webhook_filter.wasm"
    for name in ("agent-ticket-triage", "agent-billing", "default-backend"):
        svc = doc["services"][name]
        assert "recording_backend.py" in " ".join(svc["command"])
        assert svc["volumes"][0].startswith("./python/combo_edge/backend.py:")
    # The ports the suite's compose switch (conftest.COMPOSE_BACKENDS) reads from.
    from conftest import COMPOSE_BACKENDS
    published = {doc["services"][n]["ports"][0].rsplit(":", 2)[1] for n in ("agent-ticket-triage", "agent-billing", "default-backend")}
    assert published == {u.rsplit(":", 1)[1] for u in COMPOSE_BACKENDS.values()}


def test_dockerfile_builds_a_scratch_image_with_only_the_wasm():
    lines = [l.strip() for l in (h.REPO / "Dockerfile").read_text().splitlines() if l.strip() and not l.startswith("#")]
    stages = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
    final = lines[stages[-1]:]
    assert final[0] == "FROM scratch"
    assert final[1:] == ["COPY --from=build /src/target/wasm32-wasip1/release/combo_webhook_filter.wasm ./plugin.wasm"]
    assert any("--target wasm32-wasip1" in l and "--lib" in l for l in lines[:stages[-1]])


# ------------------------------------------------------------ Istio

def istio_docs():
    return {p.name: list(yaml.safe_load_all(p.read_text())) for p in (h.REPO / "envoy/istio").glob("*.yaml")}


def env_refs(plugin_cfg: dict) -> set[str]:
    return {s["env"] for s in find(plugin_cfg, lambda n: "env" in n and isinstance(n["env"], str))}


def test_istio_envoyfilter_extension_is_valid_and_complete(tmp_path):
    [ef] = istio_docs()["envoyfilter.yaml"]
    assert ef["kind"] == "EnvoyFilter" and ef["apiVersion"] == "networking.istio.io/v1alpha3"
    ext, http, paths = ef["spec"]["configPatches"]
    assert ef["spec"]["workloadSelector"]["labels"] == {"istio": "ingress"}, "a Helm install named istio-ingress"
    for patch in (ext, http, paths):
        # Istio >= 1.28 only: older istiod drops allow_on_headers_stop_iteration silently.
        version = patch["match"]["proxy"]["proxyVersion"]
        for ok in ("1.28.0", "1.28.3", "1.29.1", "1.30.0", "1.41.2"):
            assert re.fullmatch(version, ok), (version, ok)
        for old in ("1.26.4", "1.27.0", "1.2.0", "1.9.9"):
            assert not re.fullmatch(version, old), (version, old)
    for patch in (http, paths):
        assert patch["match"]["listener"]["portNumber"] == 8443, "scoped to the webhook listener"
    # An image pull that fails gives Envoy istio-agent's deny-all RBAC filter: it must be accepted.
    assert http["patch"]["value"]["config_discovery"]["type_urls"] == [
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"]
    assert re.fullmatch(r"oci://[^@]+@sha256:[0-9a-f]{64}",
                        ext["patch"]["value"]["typed_config"]["config"]["vm_config"]["code"]["remote"]["http_uri"]["uri"])
    assert paths["applyTo"] == "NETWORK_FILTER" and paths["patch"]["operation"] == "MERGE"
    hcm = paths["patch"]["value"]["typed_config"]
    assert hcm["normalize_path"] and hcm["merge_slashes"] and hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
    assert ext["applyTo"] == "EXTENSION_CONFIG" and ext["patch"]["operation"] == "ADD"
    assert http["applyTo"] == "HTTP_FILTER"
    assert http["patch"]["value"]["name"] == ext["patch"]["value"]["name"], "the filter must reference the extension"
    typed = ext["patch"]["value"]["typed_config"]
    cfg = typed["config"]
    assert cfg["allow_on_headers_stop_iteration"] is True and cfg["failure_policy"] == "FAIL_RELOAD"
    assert cfg["vm_config"]["code"]["remote"]["http_uri"]["uri"].startswith("oci://")
    plugin = json.loads(cfg["configuration"]["value"])
    # Secrets come from the proxy's environment, every one of them.
    assert env_refs(plugin) and env_refs(plugin) <= set(cfg["vm_config"]["environment_variables"]["host_env_keys"])
    # The extension itself, with the module as a local file, is a valid Envoy filter config.
    local = json.loads(json.dumps(typed))
    local["config"]["vm_config"]["code"] = {"local": {"filename": str(h.wasm_file())}}
    doc = {"static_resources": {"listeners": [h.listener("l", 10000, h.http_connection_manager(
        [{"name": "combo", "typed_config": local}], [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]))]}}
    # host_env_keys: the secrets come from Envoy's own environment.
    out = validate_envoy(doc, tmp_path, env={k: "from-proxy-env" for k in env_refs(plugin)})
    assert out.returncode == 0, out.stdout + out.stderr
    without = validate_envoy(doc, tmp_path, env={})
    assert without.returncode != 0 and 'environment variable "COMBO_TICKET_SECRET" is not set' in without.stdout + without.stderr
    # And its plugin configuration passes the filter's own validation.
    p = tmp_path / "plugin.json"
    p.write_text(json.dumps(plugin))
    res = cli("validate", str(p), env={k: "x" for k in env_refs(plugin)})
    assert res.returncode == 0, res.stdout


def test_istio_wasmplugin_config_passes_validation(tmp_path):
    [wp] = istio_docs()["wasmplugin.yaml"]
    assert wp["kind"] == "WasmPlugin" and wp["apiVersion"] == "extensions.istio.io/v1alpha1"
    assert wp["spec"]["url"].startswith("oci://") and wp["spec"]["failStrategy"] == "FAIL_CLOSE"
    plugin = wp["spec"]["pluginConfig"]
    host_env = {e["name"] for e in wp["spec"]["vmConfig"]["env"] if e["valueFrom"] == "HOST"}
    assert env_refs(plugin) and env_refs(plugin) <= host_env
    p = tmp_path / "plugin.yaml"
    p.write_text(yaml.safe_dump(plugin))
    res = cli("validate", str(p), env={k: "x" for k in host_env})
    assert res.returncode == 0, res.stdout


def test_istio_native_envoyfilter_is_valid_and_matches_the_wasm_one(tmp_path):
    """envoyfilter-native.yaml (experimental): the dynamic-modules filter for
    the Istio releases whose proxy compiles the extension in (1.31 on) and is
    an Envoy the module loads on (1.31: Envoy 1.39; 1.32: 1.40 expected)."""
    [ef] = istio_docs()["envoyfilter-native.yaml"]
    [wasm_ef] = istio_docs()["envoyfilter.yaml"]
    assert ef["kind"] == "EnvoyFilter" and ef["apiVersion"] == "networking.istio.io/v1alpha3"
    assert ef["metadata"]["name"] != wasm_ef["metadata"]["name"]
    assert ef["spec"]["workloadSelector"] == wasm_ef["spec"]["workloadSelector"]
    http, paths = ef["spec"]["configPatches"]
    for patch in (http, paths):
        version = patch["match"]["proxy"]["proxyVersion"]
        for ok in ("1.31.0", "1.31.2", "1.32.0", "1.32.7"):
            assert re.fullmatch(version, ok), (version, ok)
        # 1.30 and before: no extension; 1.33 and later: an Envoy not tested yet.
        for other in ("1.30.1", "1.28.0", "1.33.0", "1.320.0", "1.3.2"):
            assert not re.fullmatch(version, other), (version, other)
        assert patch["match"]["listener"]["portNumber"] == 8443, "scoped to the webhook listener"
    # The paths patch is envoyfilter.yaml's, for this proxy version.
    wasm_paths = wasm_ef["spec"]["configPatches"][2]
    assert {k: v for k, v in paths.items() if k != "match"} == {k: v for k, v in wasm_paths.items() if k != "match"}
    assert paths["match"]["listener"] == wasm_paths["match"]["listener"]
    assert http["applyTo"] == "HTTP_FILTER" and http["patch"]["operation"] == "INSERT_BEFORE"
    assert http["match"]["listener"]["filterChain"]["filter"]["subFilter"] == {"name": "envoy.filters.http.router"}
    flt = http["patch"]["value"]
    typed = flt["typed_config"]
    assert typed["@type"].endswith("dynamic_modules.v3.DynamicModuleFilter")
    assert typed["dynamic_module_config"] == {"name": "combo_webhook_filter"}  # lib<name>.so on the search path
    assert typed["filter_name"] == "combo_webhook"
    plugin = json.loads(typed["filter_config"]["value"])
    [wasm_cfg] = wasm_plugin_configs(wasm_ef)
    assert plugin == json.loads(wasm_cfg["configuration"]["value"]), "the .wasm's configuration, unchanged"
    # Envoy loads the module and its configuration (secrets from its environment) ...
    doc = {"static_resources": {"listeners": [h.listener("l", 10000, h.http_connection_manager(
        [flt], [{"match": {"prefix": "/"}, "direct_response": {"status": 200}}]))]}}
    out = validate_envoy(doc, tmp_path, env={k: "from-proxy-env" for k in env_refs(plugin)})
    assert out.returncode == 0, out.stdout + out.stderr
    abi = "v0.2.0" if h.native_has_sds() else "v0.1.0"  # the ABI of the Envoy that loads it
    assert f"Dynamic module ABI version {abi} matched." in out.stdout + out.stderr
    # ... and refuses the whole configuration when a secret is missing (fail closed).
    without = validate_envoy(doc, tmp_path, env={})
    assert without.returncode != 0


def istio_schema(api_version: str, kind: str) -> dict:
    schemas = json.loads((h.REPO / "tests/data/istio/crd-schemas.json").read_text())
    return schemas[f"{api_version}/{kind}"]


# The book's Istio chapter (docs "Istio"): its Gateway and VirtualService examples.
ISTIO_DOC = h.REPO / "docs" / "src" / "deployment" / "istio.md"


def istio_doc_yaml_blocks() -> list[dict]:
    text = ISTIO_DOC.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return [d for b in blocks for d in yaml.safe_load_all(b) if isinstance(d, dict) and "apiVersion" in d]


def test_istio_manifests_match_the_crd_schemas():
    """The API server's OpenAPI check, run here: every shipped Istio document,
    and every Istio example in the book's Istio chapter, against Istio's own CRD schemas."""
    import jsonschema

    docs = [d for ds in istio_docs().values() for d in ds] + istio_doc_yaml_blocks()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds.count("EnvoyFilter") == 2 and kinds.count("WasmPlugin") == 1
    assert "Gateway" in kinds and "VirtualService" in kinds, kinds
    for doc in docs:
        schema = istio_schema(doc["apiVersion"], doc["kind"])
        jsonschema.validate({k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}, schema)
    # The check bites: a value outside an enum is refused. (Unknown fields are
    # pruned by the API server, not refused, so no schema check can catch them.)
    [ef] = istio_docs()["envoyfilter.yaml"]
    bad = json.loads(json.dumps(ef))
    bad["spec"]["configPatches"][0]["applyTo"] = "EXTENSION_CONFIGS"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": bad["spec"]}, istio_schema(ef["apiVersion"], ef["kind"]))


def test_the_shipped_egress_retries_with_a_backoff():
    """Outbound retries are spaced by Envoy's backoff (a timing the suite does
    not measure; the configuration that sets it is checked here)."""
    cfg = yaml.safe_load((h.REPO / "envoy" / "egress.yaml").read_text())
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "retry_policy" in node:
                found.append(node["retry_policy"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(cfg)
    assert found, "egress.yaml has no retry policy"
    for policy in found:
        backoff = policy["retry_back_off"]
        assert backoff["base_interval"].endswith("s") and float(backoff["base_interval"][:-1]) >= 0.1, policy
        assert policy["num_retries"] >= 2, policy
