"""Envoy Gateway (docs "Envoy Gateway"): every manifest in deploy/envoy-gateway/
against Envoy Gateway's and the Gateway API's own CRD schemas (tests/data/
envoy-gateway), the plugin configurations against envoy/envoy.yaml's, the
routes in Envoy Gateway's order against envoy.yaml's, and the Envoy
configuration Envoy Gateway would generate from them checked by
`envoy --mode validate`. No cluster, no Envoy Gateway: nothing here is applied."""
import copy
import json
import re

import jsonschema
import pytest
import yaml

from combo_edge import envoy as h
from test_deploy import find, validate_envoy

DEPLOY = h.REPO / "deploy" / "envoy-gateway"
SCHEMAS = json.loads((h.REPO / "tests/data/envoy-gateway/crd-schemas.json").read_text())
NAMESPACE = "combo-webhooks"
GATEWAY_GROUP = "gateway.networking.k8s.io"
ANNOTATIONS = ["x-combo-trigger-id", "x-combo-agent-id", "x-combo-inputs", "x-combo-source", "x-combo-key-id",
               "x-combo-delivery-id", "x-combo-matched"]


def manifests() -> dict[str, list[dict]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in sorted(DEPLOY.glob("*.yaml"))}


def one(name: str, kind: str) -> dict:
    [doc] = [d for d in manifests()[name] if d["kind"] == kind]
    return doc


def schema_of(doc: dict) -> dict:
    return SCHEMAS[f"{doc['apiVersion']}/{doc['kind']}"]


def body(doc: dict) -> dict:
    """What the schema sees: the object less what the API server fills in itself."""
    return {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}


def strict(schema: dict, combinator: bool = False) -> dict:
    """The schema as `kubectl apply`'s strict field validation reads it: an
    object's fields are those it lists, unless it preserves unknown fields.
    (Sub-schemas of allOf/anyOf/oneOf/not may only repeat the parent's fields,
    so they are left open.)"""
    if isinstance(schema, list):
        return [strict(s, combinator) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k in ("allOf", "anyOf", "oneOf", "not"):
            out[k] = strict(v, True)
        elif k == "properties":
            out[k] = {name: strict(s) for name, s in v.items()}
        elif k in ("items", "additionalProperties") and isinstance(v, dict):
            out[k] = strict(v)
        else:
            out[k] = v
    if ("properties" in schema and not combinator and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def check(doc: dict) -> None:
    """The API server's OpenAPI check (CEL rules aside), then strict field validation."""
    jsonschema.validate(body(doc), schema_of(doc))
    jsonschema.validate(body(doc), strict(schema_of(doc)))


def envoy_yaml() -> dict:
    return yaml.safe_load((h.REPO / "envoy/envoy.yaml").read_text())


def envoy_yaml_hcm() -> dict:
    [hcm] = find(envoy_yaml(), lambda n: n.get("@type", "").endswith("HttpConnectionManager"))
    return hcm


def envoy_yaml_plugin_config() -> dict:
    [wasm] = find(envoy_yaml(), lambda n: n.get("@type", "").endswith("filters.http.wasm.v3.Wasm"))
    return json.loads(wasm["config"]["configuration"]["value"])


# ------------------------------------------------------------ the files

def test_the_shipped_envoy_gateway_files():
    assert {p.name for p in DEPLOY.iterdir()} == {
        "gateway.yaml", "httproute.yaml", "wasm.yaml", "native.yaml", "Dockerfile.native"}
    kinds = {name: sorted(d["kind"] for d in docs) for name, docs in manifests().items()}
    assert kinds == {
        "gateway.yaml": ["ClientTrafficPolicy", "Gateway", "GatewayClass"],
        "httproute.yaml": ["HTTPRoute", "HTTPRoute", "HTTPRouteFilter", "HTTPRouteFilter"],
        "wasm.yaml": ["EnvoyExtensionPolicy", "EnvoyPatchPolicy", "EnvoyProxy"],
        "native.yaml": ["EnvoyExtensionPolicy", "EnvoyProxy"],
    }
    for docs in manifests().values():
        for d in docs:
            if d["kind"] != "GatewayClass":
                assert d["metadata"]["namespace"] == NAMESPACE, d["metadata"]


# ------------------------------------------------------------ CRD schemas

def test_every_manifest_matches_the_crd_schemas():
    docs = [d for ds in manifests().values() for d in ds]
    assert {f"{d['apiVersion']}/{d['kind']}" for d in docs} == set(SCHEMAS), "vendor only what is validated"
    for doc in docs:
        check(doc)


def test_the_schema_check_bites():
    policy = one("wasm.yaml", "EnvoyExtensionPolicy")
    # A typo'd field: pruned (dropped silently) by the API server's structural
    # schema, refused by kubectl's default strict field validation.
    typo = copy.deepcopy(policy)
    typo["spec"]["wasm"][0]["failopen"] = typo["spec"]["wasm"][0].pop("failOpen")
    jsonschema.validate(body(typo), schema_of(typo))
    with pytest.raises(jsonschema.ValidationError, match="failopen"):
        jsonschema.validate(body(typo), strict(schema_of(typo)))
    # A wrong type and a value outside an enum are refused either way.
    wrong = copy.deepcopy(policy)
    wrong["spec"]["wasm"][0]["failOpen"] = "false"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body(wrong), schema_of(wrong))
    ctp = one("gateway.yaml", "ClientTrafficPolicy")
    wrong = copy.deepcopy(ctp)
    wrong["spec"]["path"]["escapedSlashesAction"] = "Reject"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body(wrong), schema_of(wrong))
    # A required field.
    route = [r for r in manifests()["httproute.yaml"] if r["kind"] == "HTTPRoute"][0]
    wrong = copy.deepcopy(route)
    del wrong["spec"]["rules"][0]["backendRefs"][0]["name"]
    with pytest.raises(jsonschema.ValidationError, match="'name' is a required property"):
        jsonschema.validate(body(wrong), schema_of(wrong))
    # A pattern: a registered module's name is a DNS-1123 subdomain.
    proxy = one("native.yaml", "EnvoyProxy")
    wrong = copy.deepcopy(proxy)
    wrong["spec"]["dynamicModules"][0]["name"] = "combo_webhook_filter"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body(wrong), schema_of(wrong))


def test_the_cel_rules_the_manifests_meet():
    """The CRDs' x-kubernetes-validations are CEL, which this suite does not
    evaluate; the rules these manifests touch, restated."""
    ms = manifests()
    gateway = one("gateway.yaml", "Gateway")
    [listener] = gateway["spec"]["listeners"]
    for name in ("wasm.yaml", "native.yaml"):
        policy = one(name, "EnvoyExtensionPolicy")
        # Either targetRef or targetRefs; group gateway.networking.k8s.io; kind a Gateway or route.
        assert "targetRef" not in policy["spec"]
        for ref in policy["spec"]["targetRefs"]:
            assert ref == {"group": GATEWAY_GROUP, "kind": "HTTPRoute", "name": "webhooks"}
        # The Gateway's EnvoyProxy is this file's.
        proxy = one(name, "EnvoyProxy")
        assert gateway["spec"]["infrastructure"]["parametersRef"] == {
            "group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": proxy["metadata"]["name"]}
    [code] = [w["code"] for w in one("wasm.yaml", "EnvoyExtensionPolicy")["spec"]["wasm"]]
    assert code["type"] == "Image" and "image" in code and "http" not in code  # type == 'Image' ? has(self.image)
    for entry in one("native.yaml", "EnvoyProxy")["spec"]["dynamicModules"]:
        source = entry["source"]
        assert source["type"] == "Local" and "local" in source and "remote" not in source
    ctp = one("gateway.yaml", "ClientTrafficPolicy")
    assert ctp["spec"]["targetRefs"] == [{"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway["metadata"]["name"]}]
    patch = one("wasm.yaml", "EnvoyPatchPolicy")
    assert patch["spec"]["targetRef"] == {"group": GATEWAY_GROUP, "kind": "Gateway", "name": gateway["metadata"]["name"]}
    assert gateway["spec"]["gatewayClassName"] == one("gateway.yaml", "GatewayClass")["metadata"]["name"]
    filters = {d["metadata"]["name"] for d in ms["httproute.yaml"] if d["kind"] == "HTTPRouteFilter"}
    for route in (d for d in ms["httproute.yaml"] if d["kind"] == "HTTPRoute"):
        assert route["spec"]["parentRefs"] == [{"name": gateway["metadata"]["name"], "sectionName": listener["name"]}]
        assert route["spec"]["hostnames"] == [listener["hostname"]]
        for rule in route["spec"]["rules"]:
            for f in rule.get("filters", []):
                if f["type"] == "ExtensionRef":
                    assert f["extensionRef"]["group"] == "gateway.envoyproxy.io" and f["extensionRef"]["name"] in filters


# ------------------------------------------------------------ what envoy.yaml does

@pytest.mark.parametrize("name", ["wasm.yaml", "native.yaml"])
def test_the_policys_plugin_config_is_envoy_yamls(name):
    policy = one(name, "EnvoyExtensionPolicy")["spec"]
    [ext] = policy["wasm"] if name == "wasm.yaml" else policy["dynamicModule"]
    assert ext["config"] == envoy_yaml_plugin_config()


def test_the_wasm_extension_is_pinned_and_fails_closed():
    [w] = one("wasm.yaml", "EnvoyExtensionPolicy")["spec"]["wasm"]
    assert w["failOpen"] is False and w["rootID"] == "combo_webhook"
    image = w["code"]["image"]
    url, digest = image["url"].split("@sha256:")
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and image["sha256"] == digest, "pinned by the image's digest"
    assert url == "ghcr.io/combo-agent/combo-webhook-filter"
    # Every secret the configuration names comes from Envoy's environment, filled from a Secret.
    refs = {s["env"] for s in find(w["config"], lambda n: isinstance(n.get("env"), str))}
    assert refs and refs <= set(w["env"]["hostKeys"])
    assert refs <= proxy_secret_env("wasm.yaml")


def proxy_secret_env(name: str) -> set[str]:
    env = one(name, "EnvoyProxy")["spec"]["provider"]["kubernetes"]["envoyDeployment"]["container"]["env"]
    return {e["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}


def test_the_native_module_is_a_local_file_of_an_envoy_1_40_image():
    proxy = one("native.yaml", "EnvoyProxy")["spec"]
    [entry] = proxy["dynamicModules"]
    [dm] = one("native.yaml", "EnvoyExtensionPolicy")["spec"]["dynamicModule"]
    assert dm["name"] == entry["name"] and dm["filterName"] == "combo_webhook"
    assert entry["doNotClose"] is True
    image = proxy["provider"]["kubernetes"]["envoyDeployment"]["container"]["image"]
    assert re.fullmatch(r"[^@]+:1\.40\.0@sha256:[0-9a-f]{64}", image), image
    # The image Dockerfile.native builds: Envoy 1.40.0, the module where the EnvoyProxy registers it.
    lines = [l for l in (DEPLOY / "Dockerfile.native").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert lines == ["FROM docker.io/envoyproxy/envoy:distroless-v1.40.0",
                     f"COPY {h.native_file().name} {entry['source']['local']['path']}"]
    refs = {s["env"] for s in find(dm["config"], lambda n: isinstance(n.get("env"), str))}
    assert refs and refs <= proxy_secret_env("native.yaml")


def test_both_envoy_proxies_log_the_audit_record_as_envoy_yaml_does():
    [log] = envoy_yaml_hcm()["access_log"]
    expression = log["filter"]["extension_filter"]["typed_config"]["expression"]
    line = log["typed_config"]["log_format"]["text_format_source"]["inline_string"]
    for name in ("wasm.yaml", "native.yaml"):
        [setting] = one(name, "EnvoyProxy")["spec"]["telemetry"]["accessLog"]["settings"]
        assert setting["type"] == "Route" and setting["matches"] == [expression]
        assert setting["format"] == {"type": "Text", "text": line}
        assert setting["sinks"] == [{"type": "File", "file": {"path": "/dev/stdout"}}]


def test_the_client_traffic_policy_gives_envoy_yamls_connection_settings():
    spec = one("gateway.yaml", "ClientTrafficPolicy")["spec"]
    hcm = envoy_yaml_hcm()
    # Envoy Gateway always sets normalize_path; merge_slashes unless disabled.
    assert hcm["normalize_path"] is True
    assert hcm["merge_slashes"] is True and spec["path"]["disableMergeSlashes"] is False
    assert hcm["path_with_escaped_slashes_action"] == "REJECT_REQUEST" == ESCAPED[spec["path"]["escapedSlashesAction"]]
    assert quantity(spec["connection"]["bufferLimit"]) == envoy_yaml()["static_resources"]["listeners"][0][
        "per_connection_buffer_limit_bytes"]
    assert quantity(spec["connection"]["bufferLimit"]) > envoy_yaml_plugin_config()["max_body_bytes"]
    # Client-sent annotations: envoy.yaml strips them where the filter is off;
    # here they are stripped before routing, everywhere (the filter sets its own).
    [vhost] = hcm["route_config"]["virtual_hosts"]
    [stripped] = [r["request_headers_to_remove"] for r in vhost["routes"] if "request_headers_to_remove" in r]
    assert spec["headers"]["earlyRequestHeaders"] == {"remove": stripped}
    # use_remote_address: Envoy Gateway's default while clientIPDetection is unset.
    assert hcm["use_remote_address"] is True and "clientIPDetection" not in spec


ESCAPED = {"KeepUnchanged": "KEEP_UNCHANGED", "RejectRequest": "REJECT_REQUEST",
           "UnescapeAndRedirect": "UNESCAPE_AND_REDIRECT", "UnescapeAndForward": "UNESCAPE_AND_FORWARD"}


def quantity(q: str | int) -> int:
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(q))
    return int(m.group(1)) * {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}[m.group(2)]


# ------------------------------------------------------------ routes, as Envoy Gateway orders them

def direct_bodies() -> dict[str, dict]:
    return {d["metadata"]["name"]: d["spec"]["directResponse"]
            for d in manifests()["httproute.yaml"] if d["kind"] == "HTTPRouteFilter"}


def eg_routes() -> list[dict]:
    """The HTTPRoutes' rules as Envoy Gateway v1.9.0 orders them for one
    hostname (internal/gatewayapi/sort.go: path match type Exact >
    RegularExpression > PathPrefix, then the path value's length, then the
    number of header matches; descending, stable), each with whether the
    policies' target (the HTTPRoute `webhooks`) enables the filter on it."""
    targets = {ref["name"] for ref in one("wasm.yaml", "EnvoyExtensionPolicy")["spec"]["targetRefs"]}
    routes = []
    for route in (d for d in manifests()["httproute.yaml"] if d["kind"] == "HTTPRoute"):
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                routes.append({"route": route["metadata"]["name"], "rule": rule, "path": match["path"],
                               "headers": match.get("headers", []), "filter": route["metadata"]["name"] in targets})
    rank = {"Exact": 2, "RegularExpression": 1, "PathPrefix": 0}

    def key(r):
        value = r["path"]["value"]
        length = 0 if r["path"]["type"] == "PathPrefix" and value == "/" else len(value)
        return (rank[r["path"]["type"]], length, len(r["headers"]),
                sum(1 for x in r["headers"] if x.get("type", "Exact") == "Exact"))
    return sorted(routes, key=key, reverse=True)


def eg_outcome(path: str, headers: dict) -> tuple:
    """(filter on, where the request goes) for the first matching route."""
    for r in eg_routes():
        p = r["path"]
        if p["type"] == "RegularExpression":
            hit = re.fullmatch(p["value"], path)
        elif p["type"] == "PathPrefix":  # element-wise, case-sensitive
            prefix = p["value"].rstrip("/")
            hit = path == prefix or path.startswith(prefix + "/") or prefix == ""
        else:
            hit = path == p["value"]
        if hit and all(headers.get(x["name"]) == x["value"] for x in r["headers"]):
            rule = r["rule"]
            if "backendRefs" in rule:
                [ref] = rule["backendRefs"]
                return r["filter"], ("backend", ref["name"])
            [ext] = [f["extensionRef"]["name"] for f in rule["filters"] if f["type"] == "ExtensionRef"]
            removed = [f["requestHeaderModifier"]["remove"] for f in rule["filters"] if f["type"] == "RequestHeaderModifier"]
            d = direct_bodies()[ext]
            return r["filter"], ("direct", d["statusCode"], json.loads(d["body"]["inline"]), removed)
    return None


def envoy_yaml_outcome(path: str, headers: dict) -> tuple:
    [vhost] = envoy_yaml_hcm()["route_config"]["virtual_hosts"]
    for r in vhost["routes"]:
        m = r["match"]
        if "prefix" in m:
            hit = (path.lower().startswith(m["prefix"].lower()) if m.get("case_sensitive") is False
                   else path.startswith(m["prefix"]))
        else:
            hit = re.fullmatch(m["safe_regex"]["regex"], path)
        if hit and all(headers.get(x["name"]) == x["string_match"]["exact"] for x in m.get("headers", [])):
            on = not r.get("typed_per_filter_config", {}).get("envoy.filters.http.wasm", {}).get("disabled")
            if "route" in r:
                return on, ("backend", r["route"]["cluster"].removeprefix("agent_").replace("_", "-"))
            d = r["direct_response"]
            removed = [r["request_headers_to_remove"]] if "request_headers_to_remove" in r else []
            return on, ("direct", d["status"], json.loads(d["body"]["inline_string"]), removed)
    return None


REQUESTS = [
    ("/v1/webhook/generic/trg_ticket_escalated", {}),
    ("/v1/webhook/generic/trg_ticket_escalated", {"x-combo-agent-id": "ticket-triage"}),
    ("/v1/webhook/generic/trg_invoice_paid", {"x-combo-agent-id": "billing"}),
    ("/v1/webhook/generic/trg_invoice_paid", {"x-combo-agent-id": "nobody"}),
    ("/V1/WEBHOOK/GENERIC/trg_ticket_escalated", {}),
    ("/v1/Webhook/generic/x", {}),
    ("/v1;jsessionid=x/webhook/generic/t", {}),
    ("/v1/webhook/generic;x=1/t", {}),
    ("/v1%3Bx/webhook/generic/t", {}),
    ("/v1%5cwebhook%5Cgeneric/t", {}),
    ("/v1\\webhook\\generic\\t", {}),
    ("/", {}),
    ("/health", {"x-combo-agent-id": "billing"}),
    ("/v1/webhook/generic", {}),
    ("/v1/webhook/other/t", {}),
]


@pytest.mark.parametrize("path,headers", REQUESTS)
def test_routes_in_envoy_gateways_order_do_what_envoy_yaml_does(path, headers):
    ours = eg_outcome(path, headers)
    assert ours is not None
    assert ours == envoy_yaml_outcome(path, headers), (path, headers)


def test_every_route_is_reached():
    routes = eg_routes()
    reached = set()
    for path, headers in REQUESTS:
        for i, r in enumerate(routes):
            p = r["path"]
            ok = (re.fullmatch(p["value"], path) if p["type"] == "RegularExpression" else path.startswith(p["value"]))
            if ok and all(headers.get(x["name"]) == x["value"] for x in r["headers"]):
                reached.add(i)
                break
    assert reached == set(range(len(routes)))
    assert [r["rule"]["name"] for r in routes] == ["ticket-triage", "billing", "no-agent", "path-parameters",
                                                    "everything-else"]


# ------------------------------------------------------------ the Envoy configuration Envoy Gateway generates

def json_path_pointers(doc, expr: str) -> list[list]:
    """The one JSONPath form the EnvoyPatchPolicy uses:
    $..KEY[?(@.name=='NAME')].A.B -> the locations it selects."""
    m = re.fullmatch(r"\$\.\.(\w+)\[\?\(@\.name=='([^']+)'\)\]((?:\.\w+)*)", expr)
    assert m, expr
    key, name, rest = m.group(1), m.group(2), [p for p in m.group(3).split(".") if p]
    found = []

    def walk(node, at):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == key and isinstance(v, list):
                    for i, item in enumerate(v):
                        if isinstance(item, dict) and item.get("name") == name:
                            found.append(at + [k, i] + rest)
                walk(v, at + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, at + [i])
    walk(doc, [])
    return found


def apply_patch_policy(listener: dict, policy: dict) -> int:
    """Applies the EnvoyPatchPolicy's JSON patches (op add, jsonPath + path) as
    Envoy Gateway does, to a listener with Envoy Gateway's name. Returns how
    many locations were patched."""
    patched = 0
    for p in policy["spec"]["jsonPatches"]:
        assert p["type"] == "type.googleapis.com/envoy.config.listener.v3.Listener"
        assert p["name"] == listener["name"]
        op = p["operation"]
        assert op["op"] == "add"
        for pointer in json_path_pointers(listener, op["jsonPath"]):
            node = listener
            for step in pointer:
                node = node[step]
            [field] = [s for s in op["path"].split("/") if s]
            node[field] = op["value"]
            patched += 1
    return patched


def eg_http_filter(variant: str) -> dict:
    """The HTTP filter Envoy Gateway v1.9.0 builds from the policy
    (internal/xds/translator/wasm.go, dynamicmodule.go): named after the
    policy, disabled on the connection manager, the configuration as a
    JSON string; the code as a local file here instead of Envoy Gateway's
    download (the .wasm) or the image's path (the module)."""
    policy = one(variant, "EnvoyExtensionPolicy")
    prefix = f"envoyextensionpolicy/{policy['metadata']['namespace']}/{policy['metadata']['name']}"
    if variant == "wasm.yaml":
        [w] = policy["spec"]["wasm"]
        name = f"envoy.filters.http.wasm/{prefix}/wasm/0"
        config = {
            "name": w["name"],
            "root_id": w["rootID"],
            "vm_config": {
                "vm_id": f"{prefix}/wasm/0",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": str(h.wasm_file())}},
                "environment_variables": {"host_env_keys": w["env"]["hostKeys"]},
            },
            "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(w["config"])},
        }
        typed = {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config}
    else:
        [dm] = policy["spec"]["dynamicModule"]
        [entry] = [e for e in one(variant, "EnvoyProxy")["spec"]["dynamicModules"] if e["name"] == dm["name"]]
        name = f"envoy.filters.http.dynamic_modules/{prefix}/dynamic-module/0"
        typed = {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": {"do_not_close": entry["doNotClose"],
                                      "module": {"local": {"filename": str(h.native_file())}}},
            "filter_name": dm["filterName"],
            "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(dm["config"])},
        }
    return {"name": name, "disabled": True, "typed_config": typed}


def eg_bootstrap(variant: str) -> dict:
    """An Envoy bootstrap with what Envoy Gateway would generate for the
    webhook listener from these manifests: the connection manager settings,
    the filter (disabled, enabled per route of the targeted HTTPRoute), the
    routes in Envoy Gateway's order, the audit access log. Plain HTTP (the
    TLS of the Gateway listener is not what is checked here)."""
    spec = one("gateway.yaml", "ClientTrafficPolicy")["spec"]
    gateway = one("gateway.yaml", "Gateway")
    [listener] = gateway["spec"]["listeners"]
    flt = eg_http_filter(variant)
    routes, clusters = [], {}
    for r in eg_routes():
        rule = r["rule"]
        p = r["path"]
        match = ({"safe_regex": {"regex": p["value"]}} if p["type"] == "RegularExpression" else
                 {"path_separated_prefix": p["value"].rstrip("/")} if p["value"] != "/" else {"prefix": "/"})
        if r["headers"]:
            match["headers"] = [{"name": x["name"], "string_match": {"exact": x["value"]}} for x in r["headers"]]
        route = {"name": f"httproute/{NAMESPACE}/{r['route']}/rule/{rule['name']}", "match": match}
        if "backendRefs" in rule:
            [ref] = rule["backendRefs"]
            cl = f"httproute/{NAMESPACE}/{r['route']}/rule/{rule['name']}"
            clusters[cl] = h.cluster(cl, 18080)
            route["route"] = {"cluster": cl, "timeout": rule["timeouts"]["request"]}
        else:
            [ext] = [f["extensionRef"]["name"] for f in rule["filters"] if f["type"] == "ExtensionRef"]
            d = direct_bodies()[ext]
            route["direct_response"] = {"status": d["statusCode"], "body": {"inline_string": d["body"]["inline"]}}
            for f in rule["filters"]:
                if f["type"] == "RequestHeaderModifier":
                    route["request_headers_to_remove"] = f["requestHeaderModifier"]["remove"]
        if r["filter"]:
            route["typed_per_filter_config"] = {flt["name"]: {
                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {}}}
        routes.append(route)
    [setting] = one(variant, "EnvoyProxy")["spec"]["telemetry"]["accessLog"]["settings"]
    hcm = {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "https-443",
            "codec_type": "AUTO",
            "use_remote_address": True,
            "normalize_path": True,
            "merge_slashes": not spec["path"]["disableMergeSlashes"],
            "path_with_escaped_slashes_action": ESCAPED[spec["path"]["escapedSlashesAction"]],
            # internal/xds/translator/listener.go buildEarlyHeaderMutation
            "early_header_mutation_extensions": [{
                "name": "envoy.http.early_header_mutation.header_mutation",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                    "mutations": [{"remove": name} for name in spec["headers"]["earlyRequestHeaders"]["remove"]]}}],
            "access_log": [{
                "name": "envoy.access_loggers.file",
                "filter": {"extension_filter": {
                    "name": "envoy.access_loggers.extension_filters.cel",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                                     "expression": setting["matches"][0]}}},
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                                 "path": setting["sinks"][0]["file"]["path"],
                                 "log_format": {"text_format_source": {"inline_string": setting["format"]["text"]}}},
            }],
            "route_config": {"name": f"{NAMESPACE}/{gateway['metadata']['name']}/{listener['name']}",
                             "virtual_hosts": [{"name": listener["hostname"], "domains": [listener["hostname"]],
                                                "routes": routes}]},
            "http_filters": [flt, {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        },
    }
    return {
        "static_resources": {
            "listeners": [{
                # Envoy Gateway's listener name (XDSNameSchemeV2 off, v1.9.0's default).
                "name": f"{NAMESPACE}/{gateway['metadata']['name']}/{listener['name']}",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10443}},
                "per_connection_buffer_limit_bytes": quantity(spec["connection"]["bufferLimit"]),
                "default_filter_chain": {"filters": [hcm]},
            }],
            "clusters": list(clusters.values()),
        },
    }


def test_the_patch_policy_sets_the_flags_on_the_generated_wasm_filter():
    doc = eg_bootstrap("wasm.yaml")
    [listener] = doc["static_resources"]["listeners"]
    assert apply_patch_policy(listener, one("wasm.yaml", "EnvoyPatchPolicy")) == 2
    [wasm] = find(listener, lambda n: n.get("@type", "").endswith("filters.http.wasm.v3.Wasm"))
    assert wasm["config"]["allow_on_headers_stop_iteration"] is True
    assert wasm["config"]["failure_policy"] == "FAIL_RELOAD"
    # Each patch selects the policy's filter, and only it.
    named = [n["name"] for n in find(listener, lambda n: "typed_config" in n and "name" in n)]
    assert named.count("envoy.filters.http.wasm/envoyextensionpolicy/combo-webhooks/combo-webhook-wasm/wasm/0") == 1


@pytest.mark.parametrize("variant", ["wasm.yaml", "native.yaml"])
def test_envoy_validates_what_envoy_gateway_would_generate(variant, tmp_path):
    doc = eg_bootstrap(variant)
    if variant == "wasm.yaml":
        apply_patch_policy(doc["static_resources"]["listeners"][0], one(variant, "EnvoyPatchPolicy"))
    env = {k: "from-the-proxy-env" for k in proxy_secret_env(variant)}
    out = validate_envoy(doc, tmp_path, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout
    if variant == "native.yaml":
        abi = "v0.2.0" if h.native_has_sds() else "v0.1.0"  # the ABI of the Envoy that loads it
        assert f"Dynamic module ABI version {abi} matched." in out.stdout + out.stderr
