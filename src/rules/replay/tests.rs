use super::*;
use crate::host::memory::MemoryStore;

fn key(n: u32) -> ReplayKey {
    let mut digest = [0u8; 16];
    digest[..4].copy_from_slice(&n.to_le_bytes());
    digest[4] = 0xAA;
    ReplayKey { digest }
}

fn store() -> MemoryStore {
    let s = MemoryStore::default();
    create_buckets(&s);
    s
}

#[test]
fn buckets_are_created_once() {
    let s = store();
    assert_eq!(s.len(), BUCKETS as usize);
    create_buckets(&s);
    assert_eq!(s.len(), BUCKETS as usize);
}

#[test]
fn reserve_commit_then_duplicate() {
    let s = store();
    assert_eq!(reserve(&s, &key(1), 0, 60, 8), Reservation::Reserved);
    assert_eq!(reserve(&s, &key(1), 1, 60, 8), Reservation::InProgress, "held while in flight");
    assert!(commit(&s, &key(1), 300, 2, 8));
    assert_eq!(reserve(&s, &key(1), 299, 60, 8), Reservation::Duplicate);
    assert_eq!(reserve(&s, &key(1), 301, 60, 8), Reservation::Reserved, "forgotten after expiry");
}

#[test]
fn release_lets_the_retry_through() {
    let s = store();
    assert_eq!(reserve(&s, &key(2), 0, 60, 8), Reservation::Reserved);
    assert!(release(&s, &key(2), 1));
    assert_eq!(reserve(&s, &key(2), 2, 60, 8), Reservation::Reserved);
}

#[test]
fn release_never_drops_a_committed_delivery() {
    let s = store();
    reserve(&s, &key(3), 0, 60, 8);
    commit(&s, &key(3), 300, 0, 8);
    assert!(!release(&s, &key(3), 1));
    assert_eq!(reserve(&s, &key(3), 2, 60, 8), Reservation::Duplicate);
}

#[test]
fn reservation_expires_by_itself() {
    let s = store();
    reserve(&s, &key(4), 0, 60, 8);
    assert_eq!(reserve(&s, &key(4), 60, 60, 8), Reservation::InProgress);
    assert_eq!(reserve(&s, &key(4), 61, 60, 8), Reservation::Reserved, "an abandoned reservation ends");
}

#[test]
fn cas_conflicts_are_retried_and_nothing_is_lost() {
    let s = store();
    s.fail_next_writes(3);
    assert_eq!(reserve(&s, &key(5), 0, 60, 8), Reservation::Reserved);
    let other = key(5 + BUCKETS);
    assert_eq!(other.bucket(), key(5).bucket());
    assert_eq!(reserve(&s, &other, 0, 60, 8), Reservation::Reserved);
    assert_eq!(reserve(&s, &key(5), 0, 60, 8), Reservation::InProgress);
    assert_eq!(reserve(&s, &other, 0, 60, 8), Reservation::InProgress);
}

#[test]
fn a_store_that_keeps_refusing_is_busy() {
    let s = store();
    s.fail_next_writes(1000);
    assert_eq!(reserve(&s, &key(6), 0, 60, 8), Reservation::StoreBusy);
}

#[test]
fn full_bucket_keeps_the_new_entry_and_evicts_the_soonest() {
    let s = store();
    let same_bucket = |i: u32| key(7 + i * BUCKETS);
    for i in 0..4 {
        reserve(&s, &same_bucket(i), 0, 100 + i as i64, 4);
        commit(&s, &same_bucket(i), 1000 + i as i64, 0, 4);
    }
    assert_eq!(reserve(&s, &same_bucket(9), 0, 10, 4), Reservation::Reserved);
    assert_eq!(reserve(&s, &same_bucket(9), 0, 10, 4), Reservation::InProgress, "the new reservation stays");
    assert_eq!(reserve(&s, &same_bucket(0), 0, 10, 4), Reservation::Reserved, "the soonest-expiring went");
    let (v, _) = s.store_get(bucket_key(same_bucket(0).bucket())).unwrap();
    assert!(v.unwrap().len() <= 1 + 4 * ENTRY);
}

#[test]
fn memory_stays_bounded_under_sustained_traffic() {
    let s = store();
    for i in 0..5_000u32 {
        reserve(&s, &key(i * BUCKETS), i64::from(i), 60, 2);
        commit(&s, &key(i * BUCKETS), 1_000_000, i64::from(i), 2);
    }
    let (v, _) = s.store_get(bucket_key(key(0).bucket())).unwrap();
    assert!(v.unwrap().len() <= 1 + 2 * ENTRY);
}

#[test]
fn garbage_bucket_reads_as_empty() {
    assert_eq!(entries(&[9, 1, 2, 3]).count(), 0);
    assert_eq!(entries(&[VERSION, 1, 2]).count(), 0);
}

#[test]
fn key_is_what_the_signature_covers() {
    let body = [7u8; 32];
    let k = |t: &str, prefix: &[u8], body: &[u8; 32]| ReplayKey::new(t, &[prefix, body.as_slice()].concat());
    assert_eq!(k("t", b"1.", &body), k("t", b"1.", &body));
    assert_ne!(k("t", b"1.", &body), k("t", b"2.", &body));
    assert_ne!(k("t", b"1.", &body), k("u", b"1.", &body), "trigger id is part of the key");
    assert_ne!(k("t", b"", &body), k("t", b"", &[8u8; 32]));
    assert_ne!(k("ab", b"c", &body), k("a", b"bc", &body), "trigger id and content do not run together");
    assert_eq!(k("t", b"", &body).hex().len(), 32);
}
