//! Secrets with rotation windows (`not_before` / `not_after`, unix seconds).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub type HmacSha256 = Hmac<Sha256>;

/// One resolved secret, already keyed into an HMAC state so a request only
/// clones it (the key schedule is done once, at configure time).
#[derive(Clone)]
pub struct Secret {
    /// `id`, or the secret's index in the list when it has none.
    pub key_id: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    keyed: HmacSha256,
}

// Never print key material, even in debug output.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("key_id", &self.key_id)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Secret {
    pub fn new(key_id: String, key: &[u8], not_before: Option<i64>, not_after: Option<i64>) -> Self {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let keyed = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| HmacSha256::new(&Default::default()));
        Secret { key_id, not_before, not_after, keyed }
    }

    /// Valid at `now` (inclusive on both ends).
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before.is_none_or(|nb| now >= nb) && self.not_after.is_none_or(|na| now <= na)
    }

    /// A fresh HMAC state keyed with this secret.
    pub fn mac(&self) -> HmacSha256 {
        self.keyed.clone()
    }
}

/// The secret used for signing: among those valid now, the one that became
/// valid last (no `not_before` counts as oldest); the first listed on a tie.
pub fn newest_valid(secrets: &[Secret], now: i64) -> Option<&Secret> {
    let mut best: Option<&Secret> = None;
    for s in secrets.iter().filter(|s| s.valid_at(now)) {
        let nb = s.not_before.unwrap_or(i64::MIN);
        if best.is_none_or(|b| nb > b.not_before.unwrap_or(i64::MIN)) {
            best = Some(s);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_inclusive() {
        let s = Secret::new("k".into(), b"x", Some(100), Some(200));
        assert!(!s.valid_at(99));
        assert!(s.valid_at(100));
        assert!(s.valid_at(200));
        assert!(!s.valid_at(201));
        assert!(Secret::new("k".into(), b"x", None, None).valid_at(i64::MAX));
    }

    #[test]
    fn newest_valid_prefers_latest_not_before() {
        let v = vec![
            Secret::new("old".into(), b"a", None, Some(1000)),
            Secret::new("new".into(), b"b", Some(500), None),
            Secret::new("future".into(), b"c", Some(5000), None),
        ];
        assert_eq!(newest_valid(&v, 600).unwrap().key_id, "new");
        assert_eq!(newest_valid(&v, 100).unwrap().key_id, "old");
        assert_eq!(newest_valid(&v, 6000).unwrap().key_id, "future");
    }

    #[test]
    fn debug_hides_key() {
        let s = Secret::new("k1".into(), b"topsecret", None, None);
        assert!(!format!("{s:?}").contains("topsecret"));
    }
}
