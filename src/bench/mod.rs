//! Benchmarks only (`--features bench-stages`; never in a shipped artifact):
//! the pipeline stopped after a stage (`make bench`'s per-feature cost
//! table), the pipeline's cost over the in-memory host, and, in the .wasm,
//! the host-call probe and tally. The adapters reach it through one seam
//! (`adapter::core::seam`) and the probe's hooks at their entry points; it
//! never imports an adapter (it sits between the stream and the adapters).

pub mod pipeline;
#[cfg(target_arch = "wasm32")]
pub mod probe;
mod stage;
pub mod tally;
#[cfg(test)]
mod tests;

pub use stage::{Stage, StagedHost, StagedInbound};

/// What a bench build's adapters build a stream from: the inbound mode and
/// the host, both stopping after the stage `COMBO_BENCH_STAGE` names.
pub mod seam {
    pub type Host<H> = super::StagedHost<H>;
    pub type Inbound = super::StagedInbound;

    pub fn host<H>(host: H) -> Host<H> {
        super::StagedHost::new(host)
    }
}
