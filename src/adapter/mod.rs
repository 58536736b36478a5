//! Adapters: proxy callbacks forwarded to a `stream::Stream`, and `impl Host`.
//! The proxy-wasm adapter compiles for wasm32 only; its wire codec is plain
//! code, tested natively. The Envoy dynamic-module adapter compiles natively
//! with the `envoy-module` feature.

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(all(not(target_arch = "wasm32"), feature = "envoy-module"))]
pub mod envoy_module;
#[cfg(all(target_arch = "wasm32", feature = "bench-stages"))]
mod probe;
#[cfg(target_arch = "wasm32")]
mod proxy_wasm;
#[cfg(all(target_arch = "wasm32", feature = "bench-stages"))]
mod tally;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod wire;
