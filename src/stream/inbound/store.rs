//! Replay protection of the inbound stream over the configured store: the
//! local one (Envoy shared data, synchronous) or etcd (callouts, the request
//! waits). Both follow the same reserve / commit / release protocol.

use crate::contract::audit::{AuditRecord, ReplayOutcome, ReplayStore};
use crate::contract::error::Reject;
use crate::contract::metrics::Counter;
use crate::host::{Callout, CalloutResponse, Host, Level};
use crate::plan::inbound::{EtcdStore, ReplayPolicy};
use crate::plan::raw::{OnStoreError, UnknownOutcome};
use crate::rules::ending::Ending;
use crate::rules::replay::{self, ReplayKey, Reservation};
use crate::rules::replay_etcd::{self as etcd, Lease};
use crate::stream::Outcome;

/// What a forwarded delivery holds until its backend answers.
#[derive(Debug, Default)]
pub enum Held {
    /// Replay protection is off.
    #[default]
    Nothing,
    Local {
        key: ReplayKey,
        expires: i64,
    },
    Etcd {
        key: ReplayKey,
        window: Lease,
    },
}

/// Where a delivery stands while etcd answers.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    Grant(Lease),
    Reserve { window: Lease },
}

/// What etcd's answer leads to.
pub enum Next {
    Call(Callout, Wait),
    Reserved(Held),
    Done(Outcome<Held>),
}

/// Reserves in this Envoy's shared data.
pub fn reserve_local<H: Host>(
    host: &mut H,
    policy: &ReplayPolicy,
    key: ReplayKey,
    expires: i64,
    now: i64,
) -> Result<Held, Outcome<Held>> {
    let written = replay::reserve(host, &key, now, policy.inflight_seconds as i64, policy.limits);
    evictions(host, written.evicted);
    match written.outcome {
        Reservation::Reserved => Ok(Held::Local { key, expires }),
        Reservation::InProgress => Err(Outcome::InProgress),
        Reservation::Duplicate => Err(Outcome::Duplicate),
        Reservation::StoreBusy => Err(Outcome::Reject(Reject::ReplayStoreUnavailable)),
        Reservation::Full => {
            host.log(
                Level::Warn,
                "combo_webhook: the replay store is full of deliveries in flight (replay.max_entries); answered 503",
            );
            Err(Outcome::Reject(Reject::ReplayStoreUnavailable))
        }
    }
}

/// Every eviction is counted and logged: a remembered delivery was dropped
/// before its window ended because the store held `replay.max_entries`.
fn evictions<H: Host>(host: &mut H, evicted: usize) {
    for _ in 0..evicted {
        host.count(Counter::ReplayEvicted);
        host.log(
            Level::Warn,
            "combo_webhook: the replay store is full (replay.max_entries); the delivery that expires first was evicted",
        );
    }
}

fn callout(store: &EtcdStore, policy: &ReplayPolicy, path: &'static str, body: Vec<u8>) -> Callout {
    Callout {
        cluster: store.cluster.clone(),
        authority: store.authority.clone(),
        post: true,
        path: path.to_string(),
        body,
        timeout_ms: policy.timeout_ms,
    }
}

/// The next callout: a lease grant this worker has not seen yet, else the
/// reservation itself (one round trip once the bucket's leases exist).
///
/// Under `unknown_outcome: delivered` the reservation holds the window's
/// lease, not the in-flight one: Envoy cancels a stream's callouts when the
/// stream ends, so the commit of a delivery that ended unanswered (a client
/// that hung up) may never reach etcd. The reservation then stands for the
/// window (copies get 409, never a second delivery) instead of lapsing after
/// `inflight_seconds` and letting a copy through. A release is sent while the
/// stream is alive and waited for.
pub fn etcd_next(store: &EtcdStore, policy: &ReplayPolicy, key: &ReplayKey, expires: i64, now: i64) -> (Callout, Wait) {
    let inflight = etcd::lease_for(&store.prefix, now + policy.inflight_seconds as i64, now);
    let window = etcd::lease_for(&store.prefix, expires, now);
    let held = match policy.unknown_outcome {
        UnknownOutcome::Delivered => window,
        UnknownOutcome::Retry => inflight,
    };
    for lease in [held, window] {
        if !etcd::granted(lease, now) {
            return (callout(store, policy, etcd::GRANT_PATH, etcd::grant_body(lease)), Wait::Grant(lease));
        }
    }
    (callout(store, policy, etcd::TXN_PATH, etcd::reserve_body(&store.prefix, key, held)), Wait::Reserve { window })
}

/// Reads etcd's answer to `wait`.
#[allow(clippy::too_many_arguments)]
pub fn etcd_answer<H: Host>(
    host: &mut H,
    store: &EtcdStore,
    policy: &ReplayPolicy,
    wait: Wait,
    key: ReplayKey,
    expires: i64,
    response: &CalloutResponse,
    now: i64,
    audit: &mut AuditRecord,
) -> Next {
    let read = match wait {
        Wait::Grant(lease) => etcd::parse_grant(response.status, &response.body).map(|()| {
            etcd::remember_granted(lease, now);
            None
        }),
        Wait::Reserve { window } => etcd::parse_reserve(response.status, &response.body).map(|r| Some((r, window))),
    };
    match read {
        Ok(None) => {
            let (call, wait) = etcd_next(store, policy, &key, expires, now);
            Next::Call(call, wait)
        }
        Ok(Some((Reservation::Reserved, window))) => Next::Reserved(Held::Etcd { key, window }),
        Ok(Some((Reservation::InProgress, _))) => Next::Done(Outcome::InProgress),
        Ok(Some((Reservation::Duplicate, _))) => Next::Done(Outcome::Duplicate),
        Ok(Some((Reservation::StoreBusy | Reservation::Full, _))) | Err(_) => {
            store_fault(host, policy, key, expires, now, audit)
        }
    }
}

/// etcd did not answer as it must: refuse (the sender retries) or fall back
/// to this Envoy's store, as configured. Counted and audited either way.
fn store_fault<H: Host>(
    host: &mut H,
    policy: &ReplayPolicy,
    key: ReplayKey,
    expires: i64,
    now: i64,
    audit: &mut AuditRecord,
) -> Next {
    host.count(Counter::ReplayStoreError);
    match policy.on_store_error {
        OnStoreError::Reject => {
            audit.replay_store = Some(ReplayStore::Unavailable);
            Next::Done(Outcome::Reject(Reject::ReplayStoreUnavailable))
        }
        OnStoreError::Local => {
            audit.replay_store = Some(ReplayStore::LocalFallback);
            host.count(Counter::ReplayStoreFallback);
            match reserve_local(host, policy, key, expires, now) {
                Ok(held) => Next::Reserved(held),
                Err(outcome) => Next::Done(outcome),
            }
        }
    }
}

/// Commits a delivered delivery, releases one that was not, and decides an
/// unknown one by `replay.unknown_outcome` (counted and audited). For etcd,
/// the token of the callout the answer should wait for; a lost release ends
/// with the in-flight lease.
pub fn settle<H: Host>(
    host: &mut H,
    policy: &ReplayPolicy,
    held: Held,
    ending: Ending,
    now: i64,
    audit: &mut AuditRecord,
) -> Option<u32> {
    let delivered = match ending {
        Ending::Delivered => true,
        Ending::NotDelivered => false,
        Ending::Unknown => {
            host.count(Counter::ReplayUnknownOutcome);
            policy.unknown_outcome == UnknownOutcome::Delivered
        }
    };
    if !matches!(held, Held::Nothing) {
        audit.replay_outcome = Some(match (ending, delivered) {
            (Ending::Unknown, true) => ReplayOutcome::UnknownCommitted,
            (Ending::Unknown, false) => ReplayOutcome::UnknownReleased,
            (_, true) => ReplayOutcome::Committed,
            (_, false) => ReplayOutcome::Released,
        });
    }
    match held {
        Held::Nothing => None,
        Held::Local { key, expires } => {
            if delivered {
                match replay::commit(host, &key, expires, now, policy.limits) {
                    Some(w) => evictions(host, w.evicted),
                    None => host.log(
                        Level::Warn,
                        "combo_webhook: the replay store refused a commit; the delivery is not remembered",
                    ),
                }
            } else if !replay::release(host, &key, now) {
                // Expired by itself already, or the store refused: it then
                // ends after `replay.inflight_seconds`.
                host.log(Level::Debug, "combo_webhook: no reservation to release");
            }
            None
        }
        Held::Etcd { key, window } => {
            let store = policy.etcd.as_ref()?;
            let call = if delivered {
                callout(store, policy, etcd::PUT_PATH, etcd::commit_body(&store.prefix, &key, window))
            } else {
                callout(store, policy, etcd::DELETE_PATH, etcd::release_body(&store.prefix, &key))
            };
            let token = host.http_call(&call);
            if token.is_err() {
                host.log(Level::Warn, "combo_webhook: cannot reach the etcd cluster to settle a delivery");
            }
            token.ok()
        }
    }
}
