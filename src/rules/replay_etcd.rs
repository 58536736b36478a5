//! The replay protocol over etcd v3 (docs "Replay across replicas (etcd)"), through
//! its JSON gateway: request bodies to send and answers to read. Pure; the
//! stream sends them through the host's HTTP callouts.
//!
//! - reserve: `/v3/kv/txn`: if the key was never created, put `r` with the
//!   in-flight lease; else read it (`r`: in progress, `c`: delivered);
//! - commit: `/v3/kv/put` of `c` with the lease of the replay window;
//! - release: `/v3/kv/deleterange`.
//!
//! Leases are shared per time bucket: every replica derives the same lease id
//! for a bucket, grants it once (an existing id is fine), and attaches every
//! key that expires in that bucket to it. A delivery then costs one round trip.
//! Keys are replay digests; no secret or signature ever goes to etcd.

use std::cell::RefCell;
use std::collections::BTreeSet;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::replay::{ReplayKey, Reservation};

/// Seconds per lease bucket: the granularity of expiry.
pub const LEASE_BUCKET_SECONDS: i64 = 10;

pub const TXN_PATH: &str = "/v3/kv/txn";
pub const PUT_PATH: &str = "/v3/kv/put";
pub const DELETE_PATH: &str = "/v3/kv/deleterange";
pub const GRANT_PATH: &str = "/v3/lease/grant";

const RESERVED: &[u8] = b"r";
const COMMITTED: &[u8] = b"c";

/// etcd did not answer as the protocol needs (down, slow, refused, garbled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFault;

/// A lease that keeps a key alive until at least `expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    /// The TTL to grant it with, from `now`.
    pub ttl: i64,
}

/// The lease of the bucket `expires` falls in: it lives until one bucket past
/// that bucket's end. Its id is the same on every replica.
pub fn lease_for(prefix: &str, expires: i64, now: i64) -> Lease {
    let bucket = expires.div_euclid(LEASE_BUCKET_SECONDS) + 1;
    let end = (bucket + 1) * LEASE_BUCKET_SECONDS;
    let digest = Sha256::new().chain_update(prefix.as_bytes()).chain_update(bucket.to_le_bytes()).finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    // Positive and non-zero: etcd picks an id itself for 0.
    let id = (i64::from_le_bytes(id) & i64::MAX).max(1);
    Lease { id, ttl: (end - now).max(LEASE_BUCKET_SECONDS) }
}

thread_local! {
    /// Leases this worker has seen granted (one VM per worker, one thread).
    static GRANTED: RefCell<BTreeSet<(i64, i64)>> = const { RefCell::new(BTreeSet::new()) };
}

/// Whether this worker already knows `lease` exists (until its TTL ends).
pub fn granted(lease: Lease, now: i64) -> bool {
    GRANTED.with(|g| {
        let mut g = g.borrow_mut();
        // Forget leases that have ended, so the set stays a few entries long.
        g.retain(|(_, until)| *until > now);
        g.iter().any(|(id, _)| *id == lease.id)
    })
}

pub fn remember_granted(lease: Lease, now: i64) {
    GRANTED.with(|g| g.borrow_mut().insert((lease.id, now + lease.ttl)));
}

fn key_b64(prefix: &str, key: &ReplayKey) -> String {
    BASE64.encode(format!("{prefix}{}", key.hex()))
}

pub fn grant_body(lease: Lease) -> Vec<u8> {
    json!({"ID": lease.id.to_string(), "TTL": lease.ttl.to_string()}).to_string().into_bytes()
}

pub fn reserve_body(prefix: &str, key: &ReplayKey, lease: Lease) -> Vec<u8> {
    let k = key_b64(prefix, key);
    json!({
        "compare": [{"key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
        "success": [{"request_put": {"key": k, "value": BASE64.encode(RESERVED), "lease": lease.id.to_string()}}],
        "failure": [{"request_range": {"key": k}}],
    })
    .to_string()
    .into_bytes()
}

pub fn commit_body(prefix: &str, key: &ReplayKey, lease: Lease) -> Vec<u8> {
    json!({"key": key_b64(prefix, key), "value": BASE64.encode(COMMITTED), "lease": lease.id.to_string()})
        .to_string()
        .into_bytes()
}

pub fn release_body(prefix: &str, key: &ReplayKey) -> Vec<u8> {
    json!({"key": key_b64(prefix, key)}).to_string().into_bytes()
}

/// A lease grant's answer; an id that already exists is granted too.
pub fn parse_grant(status: Option<u32>, body: &[u8]) -> Result<(), StoreFault> {
    let v: Value = serde_json::from_slice(body).map_err(|_| StoreFault)?;
    let exists = v["error"].as_str().is_some_and(|e| e.contains("lease already exists"));
    match status {
        Some(200) if v.get("ID").is_some() => Ok(()),
        Some(_) if exists => Ok(()),
        _ => Err(StoreFault),
    }
}

/// A reservation's answer.
pub fn parse_reserve(status: Option<u32>, body: &[u8]) -> Result<Reservation, StoreFault> {
    if status != Some(200) {
        return Err(StoreFault);
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| StoreFault)?;
    if v.get("header").is_none() {
        return Err(StoreFault);
    }
    // proto3 JSON leaves `succeeded: false` out.
    if v["succeeded"].as_bool() == Some(true) {
        return Ok(Reservation::Reserved);
    }
    let kvs = &v["responses"][0]["response_range"]["kvs"];
    let value = kvs[0]["value"].as_str().and_then(|b| BASE64.decode(b).ok());
    match value.as_deref() {
        Some(COMMITTED) => Ok(Reservation::Duplicate),
        Some(_) => Ok(Reservation::InProgress),
        // Deleted between the compare and the read: someone just released it.
        None => Ok(Reservation::InProgress),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ReplayKey {
        ReplayKey::new("t", &[b"1.".as_slice(), &[0u8; 32]].concat())
    }

    #[test]
    fn leases_are_shared_per_bucket_and_outlive_their_keys() {
        let a = lease_for("p/", 1_000_003, 1_000_000);
        let b = lease_for("p/", 1_000_007, 1_000_001);
        assert_eq!(a.id, b.id, "one lease per bucket, on every replica");
        assert!(1_000_000 + a.ttl >= 1_000_003 && 1_000_001 + b.ttl >= 1_000_007);
        assert_ne!(lease_for("p/", 1_000_013, 1_000_000).id, a.id);
        assert_ne!(lease_for("q/", 1_000_003, 1_000_000).id, a.id, "prefixes do not share leases");
        assert!(a.id > 0);
    }

    #[test]
    fn grants_are_remembered_per_worker_until_they_end() {
        let l = lease_for("g/", 500, 400);
        assert!(!granted(l, 400));
        remember_granted(l, 400);
        assert!(granted(l, 401));
        assert!(!granted(l, 400 + l.ttl + 1));
    }

    #[test]
    fn bodies_carry_digests_only() {
        let body = String::from_utf8(reserve_body("combo/", &key(), lease_for("combo/", 10, 0))).unwrap();
        let v: Value = serde_json::from_str(&body).unwrap();
        let k = BASE64.decode(v["compare"][0]["key"].as_str().unwrap()).unwrap();
        assert_eq!(k, format!("combo/{}", key().hex()).into_bytes());
        assert_eq!(v["compare"][0]["create_revision"], "0");
    }

    #[test]
    fn reading_answers() {
        let ok = br#"{"header":{"revision":"2"},"succeeded":true,"responses":[{"response_put":{}}]}"#;
        assert_eq!(parse_reserve(Some(200), ok), Ok(Reservation::Reserved));
        let held = br#"{"header":{},"responses":[{"response_range":{"kvs":[{"value":"cg=="}],"count":"1"}}]}"#;
        assert_eq!(parse_reserve(Some(200), held), Ok(Reservation::InProgress));
        let done = br#"{"header":{},"responses":[{"response_range":{"kvs":[{"value":"Yw=="}],"count":"1"}}]}"#;
        assert_eq!(parse_reserve(Some(200), done), Ok(Reservation::Duplicate));
        assert_eq!(parse_reserve(Some(503), ok), Err(StoreFault));
        assert_eq!(parse_reserve(None, b""), Err(StoreFault));
        assert_eq!(parse_reserve(Some(200), b"{\"error\":\"x\"}"), Err(StoreFault));
        assert_eq!(parse_grant(Some(200), br#"{"header":{},"ID":"7","TTL":"30"}"#), Ok(()));
        assert_eq!(parse_grant(Some(400), br#"{"error":"etcdserver: lease already exists","code":9}"#), Ok(()));
        assert_eq!(parse_grant(Some(500), br#"{"error":"etcdserver: too many requests"}"#), Err(StoreFault));
    }
}
