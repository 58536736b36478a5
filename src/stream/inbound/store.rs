//! Replay protection of the inbound stream over the configured store: the
//! local one (Envoy shared data, synchronous) or etcd (callouts, the request
//! waits). Both follow the same reserve / commit / release protocol.

use crate::contract::audit::AuditRecord;
use crate::contract::error::Reject;
use crate::contract::metrics::Counter;
use crate::host::{Callout, CalloutResponse, Host, Level};
use crate::plan::inbound::{EtcdStore, ReplayPolicy};
use crate::plan::raw::OnStoreError;
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
    let cap = replay::per_bucket(policy.max_entries);
    match replay::reserve(host, &key, now, policy.inflight_seconds as i64, cap) {
        Reservation::Reserved => Ok(Held::Local { key, expires }),
        Reservation::InProgress => Err(Outcome::InProgress),
        Reservation::Duplicate => Err(Outcome::Duplicate),
        Reservation::StoreBusy => Err(Outcome::Reject(Reject::ReplayStoreUnavailable)),
    }
}

fn callout(store: &EtcdStore, policy: &ReplayPolicy, path: &'static str, body: Vec<u8>) -> Callout {
    Callout {
        cluster: store.cluster.clone(),
        authority: store.authority.clone(),
        path,
        body,
        timeout_ms: policy.timeout_ms,
    }
}

/// The next callout: a lease grant this worker has not seen yet, else the
/// reservation itself (one round trip once the bucket's leases exist).
pub fn etcd_next(store: &EtcdStore, policy: &ReplayPolicy, key: &ReplayKey, expires: i64, now: i64) -> (Callout, Wait) {
    let inflight = etcd::lease_for(&store.prefix, now + policy.inflight_seconds as i64, now);
    let window = etcd::lease_for(&store.prefix, expires, now);
    for lease in [inflight, window] {
        if !etcd::granted(lease, now) {
            return (callout(store, policy, etcd::GRANT_PATH, etcd::grant_body(lease)), Wait::Grant(lease));
        }
    }
    (callout(store, policy, etcd::TXN_PATH, etcd::reserve_body(&store.prefix, key, inflight)), Wait::Reserve { window })
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
        Ok(Some((Reservation::StoreBusy, _))) | Err(_) => store_fault(host, policy, key, expires, now, audit),
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
            audit.replay_store = Some("unavailable");
            Next::Done(Outcome::Reject(Reject::ReplayStoreUnavailable))
        }
        OnStoreError::Local => {
            audit.replay_store = Some("local_fallback");
            host.count(Counter::ReplayStoreFallback);
            match reserve_local(host, policy, key, expires, now) {
                Ok(held) => Next::Reserved(held),
                Err(outcome) => Next::Done(outcome),
            }
        }
    }
}

/// Commits on a 2xx, releases on anything else. etcd updates are sent and
/// not waited for: a lost release ends with the in-flight lease.
/// Commits (2xx) or releases the delivery; for etcd, the token of the
/// callout the answer should wait for.
pub fn settle<H: Host>(host: &mut H, policy: &ReplayPolicy, held: Held, status: Option<u32>, now: i64) -> Option<u32> {
    let delivered = status.is_some_and(|s| (200..300).contains(&s));
    match held {
        Held::Nothing => None,
        Held::Local { key, expires } => {
            if delivered {
                if !replay::commit(host, &key, expires, now, replay::per_bucket(policy.max_entries)) {
                    host.log(
                        Level::Warn,
                        "combo_webhook: the replay store refused a commit; the delivery is not remembered",
                    );
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
