//! combo-webhook-filter: a proxy-wasm filter that verifies, matches and
//! annotates signed webhook deliveries at the Envoy edge.
//!
//! Layout: every module but `adapter` is pure logic with no host calls, so it
//! is unit-tested natively. `adapter` holds the proxy-wasm contexts and every
//! host call, and compiles only for wasm32.

pub mod allowlist;
pub mod annotate;
pub mod audit;
pub mod config;
pub mod error;
pub mod headers;
pub mod inbound;
pub mod inputs;
pub mod matcher;
pub mod metrics;
pub mod outbound;
pub mod pbstruct;
pub mod plan;
pub mod replay;
pub mod secrets;
pub mod signature;
pub mod signing;

#[cfg(target_arch = "wasm32")]
mod adapter;
