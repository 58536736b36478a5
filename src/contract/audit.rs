//! The `webhook_audit` record (docs "Audit and metrics"): one per delivery,
//! hashes and timing only. It never holds a secret, a signature, a token or
//! the signed string, not even as a digest: `headers_sha256` covers the
//! timestamp and id headers only.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::contract::error::Reject;

pub const LOG_PREFIX: &str = "webhook_audit ";
/// Filter state key; Envoy exposes it as `%FILTER_STATE(wasm.combo_webhook_audit:PLAIN)%`.
pub const FILTER_STATE_KEY: &str = "combo_webhook_audit";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Accepted,
    Rejected,
    Ignored,
    Duplicate,
    InProgress,
    Signed,
    Skipped,
    /// A provider's URL-verification handshake, answered at the edge.
    Handshake,
}

/// How a forwarded delivery's reservation was settled (docs "Replay protection").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    /// The backend answered 2xx: remembered for the replay window.
    Committed,
    /// The backend answered otherwise, or the request never reached one.
    Released,
    /// Forwarded with no answer; `replay.unknown_outcome: delivered`.
    UnknownCommitted,
    /// Forwarded with no answer; `replay.unknown_outcome: retry`.
    UnknownReleased,
}

/// Where replay protection was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplayStore {
    /// This Envoy's shared store.
    Local,
    Etcd,
    /// etcd failed and `replay.on_store_error` let the local store decide.
    LocalFallback,
    /// etcd failed and nothing decided: refused.
    Unavailable,
}

/// Where a published key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyFetch {
    Cached,
    Fetched,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub direction: Direction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    pub verdict: Option<Verdict>,
    pub error_code: Option<&'static str>,
    /// The status the filter answered with, or null when it forwarded.
    pub status: Option<u32>,
    pub delivery_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub body_sha256: Option<String>,
    pub headers_sha256: Option<String>,
    pub body_bytes: usize,
    pub timestamp: Option<i64>,
    pub skew_seconds: Option<i64>,
    pub source_address: Option<String>,
    pub key_id: Option<String>,
    /// Where a published key came from (schemes with `key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_fetch: Option<KeyFetch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_store: Option<ReplayStore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_outcome: Option<ReplayOutcome>,
    pub verify_us: u64,
    pub backend_status: Option<u32>,
}

impl AuditRecord {
    pub fn new(direction: Direction) -> Self {
        AuditRecord {
            direction,
            trigger_id: None,
            subscription_id: None,
            verdict: None,
            error_code: None,
            status: None,
            delivery_id: None,
            event: None,
            body_sha256: None,
            headers_sha256: None,
            body_bytes: 0,
            timestamp: None,
            skew_seconds: None,
            source_address: None,
            key_id: None,
            key_fetch: None,
            replay_store: None,
            replay_outcome: None,
            verify_us: 0,
            backend_status: None,
        }
    }

    pub fn reject(&mut self, r: Reject) {
        self.verdict = Some(Verdict::Rejected);
        self.error_code = Some(r.code());
        self.status = Some(r.status());
    }

    pub fn answer(&mut self, verdict: Verdict, status: Option<u32>) {
        self.verdict = Some(verdict);
        self.status = status;
    }

    /// Records the body's size and digest, and returns the digest (the
    /// replay key reuses it instead of hashing the body again).
    pub fn body(&mut self, body: &[u8]) -> [u8; 32] {
        let digest: [u8; 32] = Sha256::digest(body).into();
        self.body_bytes = body.len();
        self.body_sha256 = Some(hex::encode(digest));
        digest
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// The log line: `webhook_audit {...}`.
    pub fn log_line(&self) -> String {
        format!("{LOG_PREFIX}{}", self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Headers;

    #[test]
    fn record_serializes_without_signature_material() {
        let h = Headers::from_pairs([("x-combo-signature", "sha256=abcdef"), ("x-combo-timestamp", "5")]);
        let mut r = AuditRecord::new(Direction::Inbound);
        r.trigger_id = Some("t".into());
        r.headers_sha256 = Some(h.sha256_of(&["x-combo-signature", "x-combo-timestamp"]));
        r.body(b"{}");
        r.reject(Reject::SignatureMismatch);
        let line = r.log_line();
        assert!(line.starts_with("webhook_audit {"));
        assert!(!line.contains("abcdef"));
        let v: serde_json::Value = serde_json::from_str(&line[LOG_PREFIX.len()..]).unwrap();
        assert_eq!(v["verdict"], "rejected");
        assert_eq!(v["error_code"], "signature_mismatch");
        assert_eq!(v["status"], 401);
        assert_eq!(v["body_bytes"], 2);
        assert_eq!(v["body_sha256"], "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert!(v.get("subscription_id").is_none());
    }
}
