#!/usr/bin/env bash
# `make test-compose`: the docker-compose stack for real, the integration suite
# against it from outside, and always `down` at the end. Uses docker-compose.yml
# as users do; where the registry cannot be reached, adds compose/local.yml with
# images built here. Needs a Docker engine (started here when root and absent).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${PY:?PY (the venv python) is required}" "${ENVOY:?ENVOY (the Envoy binary) is required}"
# COMBO_BUILD=native runs the stack with the native module (compose/native.yml).
build=${COMBO_BUILD:-wasm}
wasm=target/wasm32-wasip1/release/combo_webhook_filter.wasm
native=target/native/libcombo_webhook_filter.so
for f in "$wasm" $([ "$build" = native ] && echo "$native"); do
  [ -f "$f" ] || { echo "test-compose: $f is missing: run make build" >&2; exit 1; }
done

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "test-compose: no Docker engine, and not root to start one" >&2; exit 1; }
  (dockerd >/tmp/combo-dockerd.log 2>&1 &)
  for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi

files=(-f "$root/docker-compose.yml")
if [ "$build" = native ]; then files+=(-f "$root/compose/native.yml"); fi
if ! timeout 30 docker pull -q envoyproxy/envoy:v1.40.0 >/dev/null 2>&1; then
  echo "test-compose: the registry is unreachable; building equivalent local images"
  compose/build-local-images.sh "$ENVOY" "$native"
  files+=(-f "$root/compose/local.yml")
fi
run() { "${compose[@]}" -p combo-webhook-test --project-directory "$root" "${files[@]}" "$@"; }
trap 'run logs --no-color envoy | tail -20 || true; run down -v --remove-orphans' EXIT

run up -d
envoy=$(run ps -q envoy)
status=starting
for _ in $(seq 1 60); do
  status=$(docker inspect -f '{{.State.Health.Status}}' "$envoy")
  [ "$status" = healthy ] && break
  sleep 1
done
echo "test-compose: envoy is $status"
[ "$status" = healthy ]
(cd tests/integration &&
  ENVOY_URL=http://127.0.0.1:10000 ENVOY_REPLICA_URL=http://127.0.0.1:10001 \
    "$PY" -m pytest -q -p no:cacheprovider -m "not local_only" test_inbound.py test_compose_replicas.py)
