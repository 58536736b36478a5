//! Replay protection over a shared store with compare-and-swap (Envoy's
//! shared data: one map per `vm_id`, shared by every worker; no TTL, no
//! delete, and inserting a new key ignores CAS).
//!
//! So the cache is a fixed set of `BUCKETS` keys, created once at configure
//! time and afterwards only updated with CAS retries. Each bucket holds at
//! most `per_bucket` entries of (16-byte key digest, state, expiry); expired
//! entries are dropped on every write, and a full bucket evicts the entry
//! that expires first. Memory is bounded by `BUCKETS * per_bucket * ENTRY`.
//!
//! The protocol (README "Replay"): a verified delivery is *reserved* before it
//! is forwarded, the backend's 2xx *commits* it, and anything else *releases*
//! it. A reservation expires by itself after `inflight_seconds`.

use sha2::{Digest, Sha256};

use crate::host::{SharedStore, StoreError};

pub const BUCKETS: u32 = 4096;
/// Bytes per entry: 16-byte digest, 1-byte state, 8-byte little-endian expiry.
pub const ENTRY: usize = 25;
const VERSION: u8 = 2;
const CAS_RETRIES: usize = 16;
const RESERVED: u8 = 1;
const COMMITTED: u8 = 2;

/// The identity of a delivery: a digest of the trigger id and of exactly
/// what the signature covers (the signed prefix and the body), so every
/// spelling of one signed delivery has one key and no unsigned header
/// changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayKey {
    digest: [u8; 16],
}

impl ReplayKey {
    /// `signed_content` is what the signature covers, with the body standing
    /// in as its digest (`Scheme::replay_content`).
    pub fn new(trigger_id: &str, signed_content: &[u8]) -> Self {
        let mut h = Sha256::new();
        // Length-prefixed, so trigger id and content never run together.
        for part in [trigger_id.as_bytes(), signed_content] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let full = h.finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        ReplayKey { digest }
    }

    fn bucket(&self) -> usize {
        u32::from_le_bytes([self.digest[0], self.digest[1], self.digest[2], self.digest[3]]) as usize % BUCKETS as usize
    }

    /// 32 hex digits: the delivery id where the provider signs none.
    pub fn hex(&self) -> String {
        hex::encode(self.digest)
    }
}

/// The shared-data key of every bucket, built once.
fn bucket_key(bucket: usize) -> &'static str {
    static KEYS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| (0..BUCKETS).map(|b| format!("combo_webhook.replay.v{VERSION}.{b}")).collect());
    // `bucket` is always below BUCKETS (see `ReplayKey::bucket`).
    keys.get(bucket).or_else(|| keys.first()).map_or("", String::as_str)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    digest: [u8; 16],
    state: u8,
    expires: i64,
}

fn entries(bucket: &[u8]) -> impl Iterator<Item = Entry> + '_ {
    let body = match bucket.split_first() {
        Some((&VERSION, rest)) => rest,
        _ => &[],
    };
    body.chunks_exact(ENTRY).map(|c| {
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&c[..16]);
        let mut e = [0u8; 8];
        e.copy_from_slice(&c[17..]);
        Entry { digest, state: c[16], expires: i64::from_le_bytes(e) }
    })
}

fn encode(live: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + live.len() * ENTRY);
    out.push(VERSION);
    for e in live {
        out.extend_from_slice(&e.digest);
        out.push(e.state);
        out.extend_from_slice(&e.expires.to_le_bytes());
    }
    out
}

/// Entries per bucket so that the whole cache holds about `max_entries`.
pub fn per_bucket(max_entries: u64) -> usize {
    max_entries.div_ceil(u64::from(BUCKETS)).max(1) as usize
}

/// Creates the buckets that do not exist yet (at configure time, before any
/// traffic, because inserting a new key ignores CAS).
pub fn create_buckets<S: SharedStore + ?Sized>(store: &S) {
    for b in 0..BUCKETS as usize {
        let key = bucket_key(b);
        if matches!(store.store_get(key), Ok((None, _))) {
            let _ = store.store_set(key, &[VERSION], None);
        }
    }
}

/// What reserving a delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// First sight: this stream holds the delivery until it commits or releases.
    Reserved,
    /// Another stream holds it right now.
    InProgress,
    /// Delivered already.
    Duplicate,
    /// The store kept refusing; the caller fails closed.
    StoreBusy,
}

/// Read-modify-write of one bucket with CAS retries. `change` returns the new
/// entries, or `Err(x)` to stop without writing and return `x`.
fn update<S, T>(
    store: &S,
    key: &ReplayKey,
    mut change: impl FnMut(Vec<Entry>) -> Result<(Vec<Entry>, T), T>,
) -> Option<T>
where
    S: SharedStore + ?Sized,
{
    let name = bucket_key(key.bucket());
    for _ in 0..CAS_RETRIES {
        let (value, cas) = store.store_get(name).ok()?;
        let current: Vec<Entry> = entries(value.as_deref().unwrap_or(&[])).collect();
        let (next, out) = match change(current) {
            Ok(v) => v,
            Err(stop) => return Some(stop),
        };
        match store.store_set(name, &encode(&next), cas) {
            Ok(()) => return Some(out),
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => return None,
        }
    }
    None
}

/// Reserves `key` until `now + inflight_seconds`, unless a live entry holds it.
pub fn reserve<S: SharedStore + ?Sized>(
    store: &S,
    key: &ReplayKey,
    now: i64,
    inflight_seconds: i64,
    cap: usize,
) -> Reservation {
    let outcome = update(store, key, |current| {
        if let Some(e) = current.iter().find(|e| e.digest == key.digest && e.expires >= now) {
            return Err(if e.state == COMMITTED { Reservation::Duplicate } else { Reservation::InProgress });
        }
        let entry = Entry { digest: key.digest, state: RESERVED, expires: now.saturating_add(inflight_seconds) };
        Ok((with_entry(current, entry, now, cap), Reservation::Reserved))
    });
    outcome.unwrap_or(Reservation::StoreBusy)
}

/// Marks a reserved delivery as delivered, remembered until `expires`.
pub fn commit<S: SharedStore + ?Sized>(store: &S, key: &ReplayKey, expires: i64, now: i64, cap: usize) -> bool {
    let entry = Entry { digest: key.digest, state: COMMITTED, expires };
    update(store, key, |current| Ok((with_entry(current, entry, now, cap), ()))).is_some()
}

/// Drops a reservation at once, so the sender's retry gets through. False
/// when there was none to drop (expired, or committed) or the store refused.
pub fn release<S: SharedStore + ?Sized>(store: &S, key: &ReplayKey, now: i64) -> bool {
    let released = update(store, key, |current| {
        if !current.iter().any(|e| e.digest == key.digest && e.state == RESERVED) {
            return Err(false);
        }
        let live = current.into_iter().filter(|e| e.digest != key.digest && e.expires >= now).collect();
        Ok((live, true))
    });
    released == Some(true)
}

/// The bucket with `entry` in place of any entry of its key, expired entries
/// dropped, and at most `cap` entries kept: the new entry always stays, the
/// other entries that expire soonest are evicted.
fn with_entry(current: Vec<Entry>, entry: Entry, now: i64, cap: usize) -> Vec<Entry> {
    let mut live: Vec<Entry> = current.into_iter().filter(|e| e.expires >= now && e.digest != entry.digest).collect();
    let keep = cap.max(1) - 1;
    if live.len() > keep {
        live.sort_by_key(|e| std::cmp::Reverse(e.expires));
        live.truncate(keep);
    }
    live.push(entry);
    live
}

#[cfg(test)]
mod tests;
