"""Runs the filter's .wasm in a real Envoy with recording backends.

Shared by the integration tests (tests/integration), the benchmark
(bench/tools/bench.py) and the demo (tools/demo.py).
"""
