use super::*;
use crate::host::testing::FaultyStore;

fn key(n: u32) -> ReplayKey {
    let mut digest = [0u8; 16];
    digest[..4].copy_from_slice(&n.to_le_bytes());
    digest[4] = 0xAA;
    ReplayKey { digest }
}

fn store() -> FaultyStore {
    let s = FaultyStore::default();
    create_buckets(&s);
    s
}

#[test]
fn buckets_are_created_once() {
    let s = store();
    assert_eq!(s.len(), BUCKETS as usize + 1, "every bucket and the count");
    create_buckets(&s);
    assert_eq!(s.len(), BUCKETS as usize + 1, "every bucket and the count");
}

const ROOMY: Limits = Limits { max_entries: 1_000_000, bucket_cap: 64 };

fn res(s: &FaultyStore, k: &ReplayKey, now: i64, inflight: i64) -> Reservation {
    reserve(s, k, now, inflight, ROOMY).outcome
}

fn com(s: &FaultyStore, k: &ReplayKey, expires: i64, now: i64) -> bool {
    commit(s, k, expires, now, ROOMY).is_some()
}

#[test]
fn reserve_commit_then_duplicate() {
    let s = store();
    assert_eq!(res(&s, &key(1), 0, 60), Reservation::Reserved);
    assert_eq!(res(&s, &key(1), 1, 60), Reservation::InProgress, "held while in flight");
    assert!(com(&s, &key(1), 300, 2));
    assert_eq!(res(&s, &key(1), 299, 60), Reservation::Duplicate);
    assert_eq!(res(&s, &key(1), 301, 60), Reservation::Reserved, "forgotten after expiry");
}

#[test]
fn release_lets_the_retry_through() {
    let s = store();
    assert_eq!(res(&s, &key(2), 0, 60), Reservation::Reserved);
    assert!(release(&s, &key(2), 1));
    assert_eq!(res(&s, &key(2), 2, 60), Reservation::Reserved);
}

#[test]
fn release_never_drops_a_committed_delivery() {
    let s = store();
    res(&s, &key(3), 0, 60);
    com(&s, &key(3), 300, 0);
    assert!(!release(&s, &key(3), 1));
    assert_eq!(res(&s, &key(3), 2, 60), Reservation::Duplicate);
}

#[test]
fn reservation_expires_by_itself() {
    let s = store();
    res(&s, &key(4), 0, 60);
    assert_eq!(res(&s, &key(4), 60, 60), Reservation::InProgress);
    assert_eq!(res(&s, &key(4), 61, 60), Reservation::Reserved, "an abandoned reservation ends");
}

#[test]
fn cas_conflicts_are_retried_and_nothing_is_lost() {
    let s = store();
    s.fail_next_writes(3);
    assert_eq!(res(&s, &key(5), 0, 60), Reservation::Reserved);
    let other = key(5 + BUCKETS);
    assert_eq!(other.bucket(), key(5).bucket());
    assert_eq!(res(&s, &other, 0, 60), Reservation::Reserved);
    assert_eq!(res(&s, &key(5), 0, 60), Reservation::InProgress);
    assert_eq!(res(&s, &other, 0, 60), Reservation::InProgress);
}

#[test]
fn a_store_that_keeps_refusing_is_busy() {
    let s = store();
    s.fail_next_writes(1000);
    assert_eq!(res(&s, &key(6), 0, 60), Reservation::StoreBusy);
}

#[test]
fn the_count_follows_every_write() {
    let s = store();
    assert_eq!(count(&s), 0);
    res(&s, &key(10), 0, 60);
    res(&s, &key(11), 0, 60);
    assert_eq!(count(&s), 2);
    com(&s, &key(10), 300, 1);
    assert_eq!(count(&s), 2, "a commit replaces its reservation");
    release(&s, &key(11), 1);
    assert_eq!(count(&s), 1);
    res(&s, &key(10 + BUCKETS), 400, 60);
    assert_eq!(count(&s), 1, "the expired entry of the bucket was dropped");
}

#[test]
fn one_full_bucket_evicts_nothing_while_the_store_has_room() {
    // The case: max_entries 4096 is one entry per bucket on average.
    let s = store();
    let limits = Limits::of(4096);
    let same_bucket = |i: u32| key(7 + i * BUCKETS);
    assert_eq!(reserve(&s, &same_bucket(0), 0, 60, limits).outcome, Reservation::Reserved);
    for i in 1..10 {
        let w = reserve(&s, &same_bucket(i), 0, 60, limits);
        assert_eq!((w.outcome, w.evicted), (Reservation::Reserved, 0));
        assert_eq!(commit(&s, &same_bucket(i), 1000, 0, limits).map(|w| w.evicted), Some(0));
    }
    assert_eq!(reserve(&s, &same_bucket(0), 0, 60, limits).outcome, Reservation::InProgress, "still held");
}

#[test]
fn a_full_store_evicts_the_committed_entry_that_expires_first() {
    let s = store();
    let limits = Limits { max_entries: 4, bucket_cap: 64 };
    let same_bucket = |i: u32| key(8 + i * BUCKETS);
    for i in 0..4 {
        res(&s, &same_bucket(i), 0, 60);
        commit(&s, &same_bucket(i), 1000 + i64::from(i), 0, limits);
    }
    let w = reserve(&s, &same_bucket(9), 0, 60, limits);
    assert_eq!((w.outcome, w.evicted), (Reservation::Reserved, 1));
    assert_eq!(count(&s), 4);
    assert_eq!(res(&s, &same_bucket(0), 0, 60), Reservation::Reserved, "the soonest-expiring went");
    assert_eq!(res(&s, &same_bucket(3), 0, 60), Reservation::Duplicate, "the others stay");
}

#[test]
fn reservations_are_never_evicted() {
    let s = store();
    let limits = Limits { max_entries: 3, bucket_cap: 64 };
    for i in 0..3 {
        assert_eq!(reserve(&s, &key(20 + i), 0, 60, limits).outcome, Reservation::Reserved);
    }
    let w = reserve(&s, &key(20 + 3 * BUCKETS), 0, 60, limits);
    assert_eq!((w.outcome, w.evicted), (Reservation::Full, 0));
    for i in 0..3 {
        assert_eq!(res(&s, &key(20 + i), 1, 60), Reservation::InProgress, "every reservation still holds");
    }
    assert!(commit(&s, &key(20), 500, 1, limits).is_some(), "a commit always lands");
}

#[test]
fn a_bucket_stops_at_its_cap() {
    let s = store();
    let limits = Limits { max_entries: 1_000_000, bucket_cap: 4 };
    let same_bucket = |i: u32| key(9 + i * BUCKETS);
    for i in 0..6 {
        res(&s, &same_bucket(i), 0, 60);
        commit(&s, &same_bucket(i), 1000, 0, limits);
    }
    let (v, _) = s.store_get(bucket_key(same_bucket(0).bucket())).unwrap();
    assert!(v.unwrap().len() <= 1 + 4 * ENTRY);
    assert_eq!(Limits::of(100_000).bucket_cap, 200);
    assert_eq!(Limits::of(4096).bucket_cap, 64);
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
