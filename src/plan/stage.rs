//! The pipeline's stages (`make bench`'s per-feature cost table).

/// The pipeline's stages, in order, for `make bench`'s per-feature cost
/// table: a bench build (`--features bench-stages`) stops after the stage
/// named by `COMBO_BENCH_STAGE` in the VM's environment. Every other build
/// runs them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Stage {
    /// Read the headers, run the header checks, continue.
    Headers,
    /// + buffer the body and verify the signature.
    Signature,
    /// + the body's digest for the audit record and the replay key.
    BodyHash,
    /// + JSON, match and inputs.
    Mapping,
    /// + the x-combo-* annotations.
    Annotate,
    /// + the audit record (filter state, log line).
    Audit,
    /// + counters and the histogram.
    Metrics,
    /// + replay protection: everything.
    #[default]
    Full,
}

impl Stage {
    /// Every stage in order, by the name `COMBO_BENCH_STAGE` gives it.
    pub const ALL: [(&'static str, Stage); 8] = [
        ("headers", Stage::Headers),
        ("signature", Stage::Signature),
        ("body_hash", Stage::BodyHash),
        ("mapping", Stage::Mapping),
        ("annotate", Stage::Annotate),
        ("audit", Stage::Audit),
        ("metrics", Stage::Metrics),
        ("full", Stage::Full),
    ];

    pub fn parse(name: &str) -> Option<Stage> {
        Stage::ALL.iter().find(|(n, _)| *n == name).map(|(_, stage)| *stage)
    }

    /// Whether a pipeline stopping after `self` leaves out `stage` (the
    /// adapters gate the audit record and the metrics on it). Outside bench
    /// builds `self` is always `Full`.
    pub fn leaves_out(self, stage: Stage) -> bool {
        self < stage
    }
}
