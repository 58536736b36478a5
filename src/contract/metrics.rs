//! Counters for Envoy's `/stats/prometheus`. Every delivery counts once in
//! `combo_webhook_deliveries_<verdict>` (`..._rejected_<code>` for refusals);
//! the shipped configs' `stats_tags` (docs "Metrics") turn verdict
//! and code into labels: `combo_webhook_deliveries{verdict="rejected",code="..."}`.

use crate::contract::error::Reject;

/// The filter's own time per delivery, in µs (a histogram).
pub const FILTER_US: &str = "combo_webhook_filter_us";
/// Triggers whose last secret expires within 7 days (a gauge).
pub const SECRETS_EXPIRING: &str = "combo_webhook_secrets_expiring";
/// The .wasm VM's linear memory, in bytes (a gauge; a soak watches it stay flat).
pub const VM_MEMORY_BYTES: &str = "combo_webhook_vm_memory_bytes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Accepted,
    Ignored,
    Duplicate,
    InProgress,
    OutboundSigned,
    OutboundSkipped,
    /// A provider's URL-verification handshake answered at the edge.
    Handshake,
    /// The shared replay store did not answer as it must.
    ReplayStoreError,
    /// ... and the delivery fell back to the local store.
    ReplayStoreFallback,
    /// A forwarded delivery ended with no answer (`replay.unknown_outcome`).
    ReplayUnknownOutcome,
    /// The local store held `replay.max_entries`: a committed entry went early.
    ReplayEvicted,
    /// A key the sender publishes was fetched (a cache miss).
    KeyFetched,
    /// ... and the fetch failed.
    KeyFetchFailed,
    Rejected(Reject),
}

const FIXED: [Counter; 13] = [
    Counter::Accepted,
    Counter::Ignored,
    Counter::Duplicate,
    Counter::InProgress,
    Counter::OutboundSigned,
    Counter::OutboundSkipped,
    Counter::ReplayStoreError,
    Counter::ReplayStoreFallback,
    Counter::Handshake,
    Counter::ReplayUnknownOutcome,
    Counter::ReplayEvicted,
    Counter::KeyFetched,
    Counter::KeyFetchFailed,
];

impl Counter {
    /// Every counter, in a fixed order (`index` is the position here).
    pub fn all() -> impl Iterator<Item = Counter> {
        FIXED.into_iter().chain(Reject::ALL.into_iter().map(Counter::Rejected))
    }

    /// Constant time: this runs on every request.
    pub fn index(self) -> usize {
        match self {
            Counter::Accepted => 0,
            Counter::Ignored => 1,
            Counter::Duplicate => 2,
            Counter::InProgress => 3,
            Counter::OutboundSigned => 4,
            Counter::OutboundSkipped => 5,
            Counter::ReplayStoreError => 6,
            Counter::ReplayStoreFallback => 7,
            Counter::Handshake => 8,
            Counter::ReplayUnknownOutcome => 9,
            Counter::ReplayEvicted => 10,
            Counter::KeyFetched => 11,
            Counter::KeyFetchFailed => 12,
            // `Reject` is a fieldless enum declared in the order of `Reject::ALL`.
            Counter::Rejected(r) => FIXED.len() + r as usize,
        }
    }

    pub fn name(self) -> String {
        match self {
            Counter::Accepted => "combo_webhook_deliveries_accepted".to_string(),
            Counter::Ignored => "combo_webhook_deliveries_ignored".to_string(),
            Counter::Duplicate => "combo_webhook_deliveries_duplicate".to_string(),
            Counter::InProgress => "combo_webhook_deliveries_in_progress".to_string(),
            Counter::ReplayStoreError => "combo_webhook_replay_store_error".to_string(),
            Counter::ReplayStoreFallback => "combo_webhook_replay_store_fallback".to_string(),
            Counter::OutboundSigned => "combo_webhook_deliveries_signed".to_string(),
            Counter::OutboundSkipped => "combo_webhook_deliveries_skipped".to_string(),
            Counter::Handshake => "combo_webhook_deliveries_handshake".to_string(),
            Counter::ReplayUnknownOutcome => "combo_webhook_replay_unknown_outcome".to_string(),
            Counter::ReplayEvicted => "combo_webhook_replay_evicted".to_string(),
            Counter::KeyFetched => "combo_webhook_key_fetched".to_string(),
            Counter::KeyFetchFailed => "combo_webhook_key_fetch_failed".to_string(),
            Counter::Rejected(r) => format!("combo_webhook_deliveries_rejected_{}", r.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_match_order_and_names_are_unique() {
        let all: Vec<_> = Counter::all().collect();
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        let names: std::collections::HashSet<_> = all.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), all.len());
        assert!(names.contains("combo_webhook_deliveries_rejected_signature_mismatch"));
    }
}
