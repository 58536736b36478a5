//! Replay protection over a shared store with compare-and-swap (Envoy's
//! shared data: one map per `vm_id`, shared by every worker; no TTL, no
//! delete, and inserting a new key ignores CAS).
//!
//! So the cache is a fixed set of `BUCKETS` keys, created once at configure
//! time and afterwards only updated with CAS retries, plus one count of the
//! entries the buckets hold. Each bucket holds entries of (16-byte key
//! digest, state, expiry); expired entries are dropped on every write.
//!
//! The bound (`Limits`): when the store as a whole holds `max_entries`, a
//! new entry evicts the committed entry of its bucket that expires first.
//! A reservation is never evicted: with no committed entry to make room, a
//! new reservation is refused (`Full`; the sender retries). A bucket also
//! stops at `bucket_cap`, far above its share, so that no one bucket's
//! rewrite grows with the store. Memory stays near `max_entries * ENTRY`.
//!
//! The protocol (docs "Replay protection"): a verified delivery is *reserved* before it
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

/// The shared-data key of the entry count.
const COUNT_KEY: &str = "combo_webhook.replay.v2.count";

/// How much the store may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries in the whole store before committed entries are evicted.
    pub max_entries: u64,
    /// Entries in one bucket: eight times its fair share, at least 64.
    pub bucket_cap: usize,
}

impl Limits {
    pub fn of(max_entries: u64) -> Self {
        let share = max_entries.div_ceil(u64::from(BUCKETS)).max(1) as usize;
        Limits { max_entries: max_entries.max(1), bucket_cap: share.saturating_mul(8).max(64) }
    }
}

/// Creates the buckets and the count that do not exist yet (at configure
/// time, before any traffic, because inserting a new key ignores CAS). A
/// count created over buckets that survived a reload counts their entries.
pub fn create_buckets<S: SharedStore + ?Sized>(store: &S) {
    let mut held = 0u64;
    for b in 0..BUCKETS as usize {
        let key = bucket_key(b);
        match store.store_get(key) {
            Ok((None, _)) => {
                let _ = store.store_set(key, &[VERSION], None);
            }
            Ok((Some(v), _)) => held += entries(&v).count() as u64,
            Err(_) => {}
        }
    }
    if matches!(store.store_get(COUNT_KEY), Ok((None, _))) {
        let _ = store.store_set(COUNT_KEY, &held.to_le_bytes(), None);
    }
}

/// The entries the store holds (expired ones not yet dropped included).
pub fn count<S: SharedStore + ?Sized>(store: &S) -> u64 {
    match store.store_get(COUNT_KEY) {
        Ok((Some(v), _)) => v.get(..8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes),
        _ => 0,
    }
}

/// Adds `delta` to the count (CAS retries; never below zero). A lost update
/// only makes the count drift until the entries it missed expire.
fn adjust_count<S: SharedStore + ?Sized>(store: &S, delta: i64) {
    if delta == 0 {
        return;
    }
    for _ in 0..CAS_RETRIES {
        let Ok((value, cas)) = store.store_get(COUNT_KEY) else { return };
        let now = value.as_deref().and_then(|b| b.get(..8)?.try_into().ok()).map_or(0, u64::from_le_bytes);
        let next = now.saturating_add_signed(delta);
        match store.store_set(COUNT_KEY, &next.to_le_bytes(), cas) {
            Err(StoreError::CasMismatch) => continue,
            _ => return,
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
    /// No room: the store (or the bucket) is full of reservations, which
    /// are never evicted. The caller fails closed; the sender retries.
    Full,
}

/// What a write did to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written<T> {
    pub outcome: T,
    /// Committed entries evicted to make room (counted and logged).
    pub evicted: usize,
}

/// What a change makes of a bucket: its new entries, what to return, and
/// how many committed entries it evicted.
struct Change<T> {
    next: Vec<Entry>,
    outcome: T,
    evicted: usize,
}

/// Read-modify-write of one bucket with CAS retries, then the count.
/// `change` returns the new bucket, or `Err(x)` to stop without writing.
fn update<S, T>(
    store: &S,
    key: &ReplayKey,
    mut change: impl FnMut(Vec<Entry>) -> Result<Change<T>, T>,
) -> Option<Written<T>>
where
    S: SharedStore + ?Sized,
{
    let name = bucket_key(key.bucket());
    for _ in 0..CAS_RETRIES {
        let (value, cas) = store.store_get(name).ok()?;
        let current: Vec<Entry> = entries(value.as_deref().unwrap_or(&[])).collect();
        let before = current.len() as i64;
        let c = match change(current) {
            Ok(c) => c,
            Err(stop) => return Some(Written { outcome: stop, evicted: 0 }),
        };
        match store.store_set(name, &encode(&c.next), cas) {
            Ok(()) => {
                adjust_count(store, c.next.len() as i64 - before);
                return Some(Written { outcome: c.outcome, evicted: c.evicted });
            }
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Unavailable) => return None,
        }
    }
    None
}

/// Reserves `key` until `now + inflight_seconds`, unless a live entry holds
/// it, or there is no room (`Full`).
pub fn reserve<S: SharedStore + ?Sized>(
    store: &S,
    key: &ReplayKey,
    now: i64,
    inflight_seconds: i64,
    limits: Limits,
) -> Written<Reservation> {
    let held = count(store);
    let outcome =
        update(store, key, |current| {
            if let Some(e) = current.iter().find(|e| e.digest == key.digest && e.expires >= now) {
                return Err(if e.state == COMMITTED { Reservation::Duplicate } else { Reservation::InProgress });
            }
            let entry = Entry { digest: key.digest, state: RESERVED, expires: now.saturating_add(inflight_seconds) };
            with_entry(current, entry, now, held, limits, false)
                .ok_or(Reservation::Full)
                .map(|(next, evicted)| Change { next, outcome: Reservation::Reserved, evicted })
        });
    outcome.unwrap_or(Written { outcome: Reservation::StoreBusy, evicted: 0 })
}

/// Marks a reserved delivery as delivered, remembered until `expires`. A
/// delivered delivery is always remembered, room or not. `None`: the store
/// refused.
pub fn commit<S: SharedStore + ?Sized>(
    store: &S,
    key: &ReplayKey,
    expires: i64,
    now: i64,
    limits: Limits,
) -> Option<Written<()>> {
    let held = count(store);
    let entry = Entry { digest: key.digest, state: COMMITTED, expires };
    update(store, key, |current| {
        let (next, evicted) = with_entry(current, entry, now, held, limits, true).ok_or(())?;
        Ok(Change { next, outcome: (), evicted })
    })
}

/// Drops a reservation at once, so the sender's retry gets through. False
/// when there was none to drop (expired, or committed) or the store refused.
pub fn release<S: SharedStore + ?Sized>(store: &S, key: &ReplayKey, now: i64) -> bool {
    let released = update(store, key, |current| {
        if !current.iter().any(|e| e.digest == key.digest && e.state == RESERVED) {
            return Err(false);
        }
        let next = current.into_iter().filter(|e| e.digest != key.digest && e.expires >= now).collect();
        Ok(Change { next, outcome: true, evicted: 0 })
    });
    released.is_some_and(|w| w.outcome)
}

/// The bucket with `entry` in place of any entry of its key and expired
/// entries dropped. Where the store (`held` entries before this write) or the
/// bucket is full, the committed entry that expires first makes room; with
/// none, `None` (a reservation is never evicted), unless `always` (a
/// commit, which replaces its own reservation).
fn with_entry(
    current: Vec<Entry>,
    entry: Entry,
    now: i64,
    held: u64,
    limits: Limits,
    always: bool,
) -> Option<(Vec<Entry>, usize)> {
    let before = current.len() as u64;
    let replaces = current.iter().any(|e| e.digest == entry.digest);
    let mut live: Vec<Entry> = current.into_iter().filter(|e| e.expires >= now && e.digest != entry.digest).collect();
    let dropped = before - live.len() as u64 - u64::from(replaces);
    let store_full = held.saturating_sub(dropped) >= limits.max_entries && !replaces;
    let bucket_full = live.len() >= limits.bucket_cap;
    let mut evicted = 0;
    if store_full || bucket_full {
        let soonest = live.iter().enumerate().filter(|(_, e)| e.state == COMMITTED).min_by_key(|(_, e)| e.expires);
        match soonest.map(|(i, _)| i) {
            Some(i) => {
                live.swap_remove(i);
                evicted = 1;
            }
            None if always => {}
            None => return None,
        }
    }
    live.push(entry);
    Some((live, evicted))
}

#[cfg(test)]
mod tests;
