//! combo-webhook-filter: verifies, matches and annotates signed webhook
//! deliveries at the Envoy edge (inbound), and signs the platform's events on
//! the way out (outbound).
//!
//! The tree is the architecture:
//! - `plan`: the configuration, compiled once into an immutable plan;
//! - `rules`: the domain rules (schemes, allowlists, paths, match, inputs,
//!   replay), pure functions;
//! - `contract`: what the outside sees (error codes, header names, audit
//!   record, counters);
//! - `host`: the port, the one trait through which a request talks to its
//!   proxy, the native module's shared store, and (tests only) an in-memory
//!   host;
//! - `stream`: the per-request state machines, generic over the port;
//! - `adapter`: proxy-wasm callbacks (wasm32) or Envoy's dynamic-module hooks
//!   (`envoy-module`) forwarded to a stream, and `impl Host` over each ABI;
//!   what both share is `adapter::core`;
//! - `bench`: the pipeline stopped after a stage and timed, and the .wasm's
//!   host-call probe (`--features bench-stages`; never in a shipped artifact).

pub mod contract;
/// The fuzz entry points (`--features fuzzing`: fuzz/ and the corpus
/// replay of `make test`); never in a shipped artifact.
#[cfg(all(not(target_arch = "wasm32"), feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod plan;
pub mod rules;
pub mod stream;

pub mod adapter;
#[cfg(feature = "bench-stages")]
pub mod bench;
