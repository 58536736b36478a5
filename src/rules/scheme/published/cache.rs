//! The published keys one worker holds, and its fetch budget. Per worker
//! (a thread: each Envoy worker runs its own VM, or its own module thread):
//! no lock, and a key is fetched at most once per worker per TTL.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use crate::rules::scheme::keys::KeyMaterial;

/// Most URLs (or URL and kid pairs) one worker remembers.
pub const MAX_ENTRIES: usize = 64;
/// Most fetches one worker starts in any second for one trigger: before a
/// signature holds, a fetch is work a stranger can ask for (a new kid, a
/// new certificate URL on a pinned host), so it is budgeted; past it,
/// `key_unavailable`. Per trigger, so a flood at one trigger leaves the
/// others' fetches alone.
pub const MAX_FETCHES_PER_SECOND: usize = 8;

struct Entry {
    keys: Vec<(Option<String>, KeyMaterial)>,
    expires: i64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    /// Per trigger (a configured, bounded set).
    fetches: HashMap<String, VecDeque<i64>>,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// The key for `kid` (or the entry's only key, when the request names
/// none) under `cache_key`, while it is fresh; `None`: fetch.
pub fn lookup(cache_key: &str, kid: Option<&str>, now: i64) -> Option<KeyMaterial> {
    CACHE.with(|c| {
        let c = c.borrow();
        let e = c.entries.get(cache_key).filter(|e| e.expires > now)?;
        pick(&e.keys, kid)
    })
}

fn pick(keys: &[(Option<String>, KeyMaterial)], kid: Option<&str>) -> Option<KeyMaterial> {
    match kid {
        Some(kid) => keys.iter().find(|(k, _)| k.as_deref() == Some(kid)).map(|(_, m)| m.clone()),
        None if keys.len() == 1 => keys.first().map(|(_, m)| m.clone()),
        None => None,
    }
}

/// Whether `trigger`'s budget allows one more fetch now (and spends it).
pub fn may_fetch(trigger: &str, now: i64) -> bool {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let fetches = c.fetches.entry(trigger.to_string()).or_default();
        while fetches.front().is_some_and(|t| *t < now) {
            fetches.pop_front();
        }
        if fetches.len() >= MAX_FETCHES_PER_SECOND {
            return false;
        }
        fetches.push_back(now);
        true
    })
}

/// Keeps a fetched answer until `expires`, making room by dropping the
/// entry that expires first; returns the key for `kid`.
pub fn store(
    cache_key: &str,
    keys: Vec<(Option<String>, KeyMaterial)>,
    kid: Option<&str>,
    expires: i64,
) -> Option<KeyMaterial> {
    let key = pick(&keys, kid);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.entries.len() >= MAX_ENTRIES && !c.entries.contains_key(cache_key) {
            let first = c.entries.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| k.clone());
            if let Some(first) = first {
                c.entries.remove(&first);
            }
        }
        c.entries.insert(cache_key.to_string(), Entry { keys, expires });
    });
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material() -> KeyMaterial {
        KeyMaterial::secret(crate::rules::scheme::Algorithm::Token, "t", crate::rules::scheme::SecretEncoding::Utf8)
            .unwrap()
    }

    #[test]
    fn keys_expire_and_kids_pick() {
        let keys = vec![(Some("a".to_string()), material()), (Some("b".to_string()), material())];
        assert!(store("cache-test-u", keys, Some("b"), 100).is_some());
        assert!(lookup("cache-test-u", Some("a"), 99).is_some());
        assert!(lookup("cache-test-u", Some("c"), 99).is_none(), "an unknown kid is a miss");
        assert!(lookup("cache-test-u", None, 99).is_none(), "two keys and no kid: none");
        assert!(lookup("cache-test-u", Some("a"), 100).is_none(), "expired");
    }

    #[test]
    fn the_cache_and_the_budget_are_bounded() {
        for i in 0..MAX_ENTRIES + 10 {
            store(&format!("cache-test-{i}"), vec![(None, material())], None, 1000 + i as i64);
        }
        CACHE.with(|c| assert!(c.borrow().entries.len() <= MAX_ENTRIES));
        assert!(lookup(&format!("cache-test-{}", MAX_ENTRIES + 9), None, 0).is_some());
        let spent = (0..MAX_FETCHES_PER_SECOND * 2).filter(|_| may_fetch("t1", 5_000)).count();
        assert_eq!(spent, MAX_FETCHES_PER_SECOND);
        assert!(may_fetch("t2", 5_000), "another trigger's budget");
        assert!(may_fetch("t1", 5_001), "a new second");
    }
}
