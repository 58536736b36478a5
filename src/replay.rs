//! Replay protection over Envoy's shared data (one map per `vm_id`, shared by
//! every worker; no TTL, no delete, and inserting a new key ignores CAS).
//!
//! So the cache is a fixed set of `BUCKETS` keys, created once at configure
//! time and afterwards only updated with compare-and-swap retries. Each bucket
//! holds at most `per_bucket` entries of (16-byte key digest, expiry); expired
//! entries are dropped on every write, and a full bucket evicts the entry that
//! expires first. Memory is bounded by `BUCKETS * per_bucket * ENTRY` bytes.

use sha2::{Digest, Sha256};

use crate::signature::Credentials;

pub const BUCKETS: u32 = 4096;
/// Bytes per entry: 16-byte digest + 8-byte little-endian expiry.
pub const ENTRY: usize = 24;
const VERSION: u8 = 1;
const CAS_RETRIES: usize = 16;

/// The identity of a delivery: trigger id plus the provider's delivery id
/// where it sends one, else the signature header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayKey {
    digest: [u8; 16],
}

impl ReplayKey {
    pub fn new(trigger_id: &str, credentials: &Credentials) -> Self {
        let mut h = Sha256::new();
        h.update(trigger_id.as_bytes());
        if credentials.provider_delivery_id {
            h.update(b"\0id\0");
            h.update(credentials.delivery_id.as_bytes());
        } else {
            h.update(b"\0sig\0");
            h.update(credentials.signature_digest);
        }
        let full = h.finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        ReplayKey { digest }
    }

    pub fn bucket(&self) -> u32 {
        u32::from_le_bytes([self.digest[0], self.digest[1], self.digest[2], self.digest[3]]) % BUCKETS
    }
}

/// The shared-data key of a bucket (names built once, not per request).
pub fn bucket_key(bucket: u32) -> &'static str {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| (0..BUCKETS).map(|b| format!("combo_webhook.replay.v{VERSION}.{b}")).collect());
    keys.get(bucket as usize).map_or("combo_webhook.replay.overflow", String::as_str)
}

/// An empty bucket's value.
pub fn empty_bucket() -> Vec<u8> {
    vec![VERSION]
}

fn entries(bucket: &[u8]) -> impl Iterator<Item = ([u8; 16], i64)> + '_ {
    let body = match bucket.split_first() {
        Some((&VERSION, rest)) => rest,
        _ => &[],
    };
    body.chunks_exact(ENTRY).map(|c| {
        let mut d = [0u8; 16];
        d.copy_from_slice(&c[..16]);
        let mut e = [0u8; 8];
        e.copy_from_slice(&c[16..]);
        (d, i64::from_le_bytes(e))
    })
}

/// Whether `key` is in `bucket` and not yet expired at `now`.
pub fn contains(bucket: &[u8], key: &ReplayKey, now: i64) -> bool {
    entries(bucket).any(|(d, exp)| d == key.digest && exp >= now)
}

/// The bucket with `key` added (or its expiry extended), expired entries
/// dropped, and at most `cap` entries kept (the soonest-expiring evicted).
pub fn insert(bucket: &[u8], key: &ReplayKey, expires: i64, now: i64, cap: usize) -> Vec<u8> {
    let mut live: Vec<([u8; 16], i64)> =
        entries(bucket).filter(|(d, exp)| *exp >= now && *d != key.digest).collect();
    live.push((key.digest, expires));
    if live.len() > cap.max(1) {
        live.sort_by_key(|(_, exp)| std::cmp::Reverse(*exp));
        live.truncate(cap.max(1));
    }
    let mut out = Vec::with_capacity(1 + live.len() * ENTRY);
    out.push(VERSION);
    for (d, exp) in live {
        out.extend_from_slice(&d);
        out.extend_from_slice(&exp.to_le_bytes());
    }
    out
}

/// Entries per bucket so that the whole cache holds about `max_entries`.
pub fn per_bucket(max_entries: u64) -> usize {
    max_entries.div_ceil(u64::from(BUCKETS)).max(1) as usize
}

/// The host's shared key-value store, with compare-and-swap.
pub trait SharedStore {
    /// The value and its CAS token.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes when `cas` still matches; `Err(true)` on a CAS mismatch.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), bool>;
}

/// Creates the buckets that do not exist yet (at configure time, before any
/// traffic, because inserting a new key ignores CAS).
pub fn create_buckets(store: &dyn SharedStore) {
    for b in 0..BUCKETS {
        let key = bucket_key(b);
        if store.get(key).0.is_none() {
            let _ = store.set(key, &empty_bucket(), None);
        }
    }
}

/// A bucket as read, kept so that `remember` can try its first CAS write
/// without reading the bucket again.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    value: Option<Vec<u8>>,
    cas: Option<u32>,
}

/// Whether `key` was delivered already, and the bucket as read.
pub fn seen(store: &dyn SharedStore, key: &ReplayKey, now: i64) -> (bool, Snapshot) {
    let (value, cas) = store.get(bucket_key(key.bucket()));
    let hit = value.as_deref().is_some_and(|b| contains(b, key, now));
    (hit, Snapshot { value, cas })
}

/// Remembers `key` until `expires`, starting from `snapshot` when it has one
/// (a CAS mismatch then re-reads). False when the store kept refusing.
pub fn remember(store: &dyn SharedStore, key: &ReplayKey, expires: i64, now: i64, cap: usize, snapshot: Option<Snapshot>) -> bool {
    let name = bucket_key(key.bucket());
    let mut first = snapshot.filter(|s| s.cas.is_some());
    for _ in 0..CAS_RETRIES {
        let (value, cas) = match first.take() {
            Some(s) => (s.value, s.cas),
            None => store.get(name),
        };
        let next = insert(value.as_deref().unwrap_or(&[]), key, expires, now, cap);
        match store.set(name, &next, cas) {
            Ok(()) => return true,
            Err(true) => continue,
            Err(false) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::headers::Headers;
    use crate::signature::Profile;
    use std::cell::RefCell;
    use std::collections::HashMap;

    fn key(n: u32) -> ReplayKey {
        let mut digest = [0u8; 16];
        digest[..4].copy_from_slice(&n.to_le_bytes());
        digest[4] = 0xAA;
        ReplayKey { digest }
    }

    #[test]
    fn insert_contains_and_expiry() {
        let b = insert(&empty_bucket(), &key(1), 100, 0, 8);
        assert!(contains(&b, &key(1), 100));
        assert!(!contains(&b, &key(1), 101));
        assert!(!contains(&b, &key(2), 0));
        // Expired entries are dropped on the next write.
        let b = insert(&b, &key(2), 300, 200, 8);
        assert_eq!(b.len(), 1 + ENTRY);
    }

    #[test]
    fn full_bucket_evicts_soonest_expiring() {
        let mut b = empty_bucket();
        for i in 0..4 {
            b = insert(&b, &key(i), 100 + i as i64, 0, 4);
        }
        b = insert(&b, &key(9), 500, 0, 4);
        assert_eq!(b.len(), 1 + 4 * ENTRY);
        assert!(!contains(&b, &key(0), 0), "the soonest-expiring entry goes first");
        assert!(contains(&b, &key(9), 0) && contains(&b, &key(3), 0));
    }

    #[test]
    fn memory_stays_bounded_under_sustained_traffic() {
        let cap = per_bucket(u64::from(BUCKETS) * 2);
        assert_eq!(cap, 2);
        let mut b = empty_bucket();
        for i in 0..10_000u32 {
            b = insert(&b, &key(i), 1_000_000 + i64::from(i), i64::from(i), cap);
            assert!(b.len() <= 1 + cap * ENTRY);
        }
    }

    #[test]
    fn garbage_bucket_reads_as_empty() {
        assert!(!contains(&[9, 1, 2, 3], &key(1), 0));
        assert_eq!(insert(&[9; 50], &key(1), 5, 0, 2).len(), 1 + ENTRY);
    }

    #[test]
    fn key_uses_delivery_id_when_provider_sends_one() {
        let gh = |sig: &str, id: &str| {
            let h = Headers::from_pairs([("x-hub-signature-256", sig), ("x-github-delivery", id)]);
            ReplayKey::new("t", &Profile::Github.credentials(&h).unwrap())
        };
        let s1 = format!("sha256={}", "a".repeat(64));
        let s2 = format!("sha256={}", "b".repeat(64));
        assert_eq!(gh(&s1, "d1"), gh(&s2, "d1"), "same delivery id, same key");
        assert_ne!(gh(&s1, "d1"), gh(&s1, "d2"));
        let h = Headers::from_pairs([("x-hub-signature-256", s1.as_str())]);
        let c = Profile::Github.credentials(&h).unwrap();
        assert_ne!(ReplayKey::new("t", &c), ReplayKey::new("u", &c), "trigger id is part of the key");
    }

    /// An in-memory store that fails the first CAS write, like a racing worker.
    struct Store {
        map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        fail_next: RefCell<bool>,
    }

    impl SharedStore for Store {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.map.borrow().get(key) {
                Some((v, cas)) => (Some(v.clone()), Some(*cas)),
                None => (None, None),
            }
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), bool> {
            let mut map = self.map.borrow_mut();
            let current = map.get(key).map(|(_, c)| *c);
            if self.fail_next.replace(false) || (cas.is_some() && cas != current) {
                if let Some(entry) = map.get_mut(key) {
                    entry.1 += 1;
                }
                return Err(true);
            }
            map.insert(key.to_string(), (value.to_vec(), current.unwrap_or(0) + 1));
            Ok(())
        }
    }

    #[test]
    fn remember_retries_on_cas_mismatch() {
        let store = Store { map: RefCell::new(HashMap::new()), fail_next: RefCell::new(false) };
        create_buckets(&store);
        assert_eq!(store.map.borrow().len(), BUCKETS as usize);
        *store.fail_next.borrow_mut() = true;
        assert!(remember(&store, &key(7), 100, 0, 4, None));
        assert!(seen(&store, &key(7), 50).0);
        assert!(!seen(&store, &key(7), 101).0);
        let (hit, snapshot) = seen(&store, &key(8), 0);
        assert!(!hit);
        // Another worker writes the same bucket after the snapshot was taken:
        // the stale snapshot's CAS fails, the write is retried, nothing is lost.
        let other = key(8 + BUCKETS);
        assert_eq!(other.bucket(), key(8).bucket());
        assert!(remember(&store, &other, 100, 0, 4, None));
        assert!(remember(&store, &key(8), 100, 0, 4, Some(snapshot)));
        assert!(seen(&store, &key(8), 0).0 && seen(&store, &other, 0).0);
    }
}
