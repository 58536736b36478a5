# The OCI image Istio pulls (WasmPlugin url / EnvoyFilter oci:// source):
# FROM scratch, holding only the filter as /plugin.wasm.
#
#   docker build -t ghcr.io/OWNER/combo-webhook-filter:0.1.0 .
#   docker push ghcr.io/OWNER/combo-webhook-filter:0.1.0
FROM rust:1.95-slim AS build
RUN rustup target add wasm32-wasip1
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The workspace's other manifests and targets, which cargo reads to resolve
# it (bench/ is a member; tests/ holds targets the manifest names).
COPY bench ./bench
COPY tests ./tests
RUN cargo build --release --locked --target wasm32-wasip1 --lib

FROM scratch
COPY --from=build /src/target/wasm32-wasip1/release/combo_webhook_filter.wasm ./plugin.wasm
