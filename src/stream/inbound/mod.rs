//! Inbound mode: the order of checks (docs "Order of checks and
//! answers"). Cheap header checks first; the body is read only when they all
//! hold; then verify, replay (reserve), JSON, match, inputs and annotations.

mod checks;
mod mapping;
mod published;
mod steps;
mod store;

use std::sync::Arc;

use super::{Forward, Head, Mode, Outcome, Step};
use crate::contract::audit::{AuditRecord, Direction, ReplayStore, Verdict};
use crate::contract::error::Reject;
use crate::contract::metrics::Counter;
use crate::contract::names::*;
use crate::host::{CalloutResponse, Headers, Host, Level};
use crate::plan::inbound::{InboundPlan, Trigger};
use crate::plan::raw::InputsDelivery;
use crate::rules::ending::Ending;
use crate::rules::replay::ReplayKey;
use crate::rules::scheme::form::{fields_within_bound, FORM_MEDIA_TYPE};
use crate::rules::scheme::keys::Key;
use crate::rules::scheme::multipart::{self, MULTIPART_MEDIA_TYPE};
use crate::rules::scheme::{Credentials, Request};
use crate::rules::{annotate, paths};

use checks::HeadCheck;
pub use mapping::{map_delivery, Mapping, Unmapped};
pub use steps::Proven;
pub use store::Held;
use store::{Next, Wait};

/// The inbound stream over a host.
pub type Stream<H> = super::Stream<H, Inbound>;

pub struct Inbound {
    plan: Arc<InboundPlan>,
}

impl Inbound {
    pub fn new(plan: Arc<InboundPlan>) -> Self {
        Inbound { plan }
    }
}

/// A delivery whose headers hold, waiting for its body.
#[derive(Debug)]
pub struct Pending {
    trigger: Arc<Trigger>,
    credentials: Credentials,
    headers: Headers,
}

impl Pending {
    /// The trigger the delivery is for.
    pub fn trigger(&self) -> &Arc<Trigger> {
        &self.trigger
    }
}

/// A verified delivery: what it needs once replay protection has decided.
#[derive(Debug)]
pub struct Verified {
    pending: Pending,
    body: Vec<u8>,
    key: ReplayKey,
    /// Until when a delivered copy is remembered.
    expires: i64,
    key_id: String,
    delivery_id: String,
}

/// A delivery waiting on a callout: etcd (verified), or the sender's
/// published key (not yet).
pub enum Waiting {
    Store { verified: Verified, wait: Wait },
    Key { pending: Pending, body: Vec<u8>, body_sha256: [u8; 32], fetch: crate::rules::scheme::published::Fetch },
}

/// Longest trigger id kept in the audit record for an unknown trigger.
const MAX_AUDITED_SEGMENT: usize = MAX_NAME;

impl Mode for Inbound {
    type Pending = Pending;
    type Held = Held;
    type Call = Waiting;

    fn direction(&self) -> Direction {
        Direction::Inbound
    }

    fn max_body_bytes(&self) -> u64 {
        self.plan.max_body_bytes
    }

    fn audit_filter_state(&self) -> bool {
        self.plan.outputs.audit_filter_state
    }

    fn head<H: Host>(&self, host: &mut H, mut headers: Headers, now: i64, audit: &mut AuditRecord) -> Head<Pending> {
        // Client-sent annotations are removed from every request, webhook or not.
        for name in ANNOTATIONS {
            if headers.contains(name) {
                headers.remove(name);
                if host.remove_request_header(name).is_err() {
                    return Head::Reject(Reject::HostError);
                }
            }
        }
        let plan = &*self.plan;
        let canonical = paths::canonicalize(headers.first(PATH).unwrap_or(""));
        if !canonical.converged {
            // Nobody can say where an encoding bomb points: refused, not passed.
            return Head::Reject(Reject::NonCanonicalPath);
        }
        // Under the prefix in any case: a case-insensitive backend would
        // route it to the webhook handler, so it is refused, never passed.
        let Some((segment, exact)) = paths::under_prefix(&canonical.path, &plan.path_prefix) else {
            return Head::PassThrough;
        };
        audit.trigger_id = Some(segment.chars().take(MAX_AUDITED_SEGMENT).collect());
        audit.source_address = host.source_address();
        if !canonical.was_canonical || !exact {
            return Head::Reject(Reject::NonCanonicalPath);
        }
        match checks::check_head(plan, host, segment, &headers, now, audit) {
            Ok(HeadCheck::Body(trigger, credentials)) => Head::ReadBody(Pending { trigger, credentials, headers }),
            Ok(HeadCheck::Handshake(answer)) => Head::Handshake(answer),
            Err(r) => Head::Reject(r),
        }
    }

    fn body<H: Host>(
        &self,
        host: &mut H,
        p: Pending,
        body: Vec<u8>,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Step<Held, Waiting> {
        let mut p = p;
        let read = self.read_fields(&mut p, &body);
        let body_sha256 = self.digest(&p, &body, read.is_ok(), audit);
        if let Err(r) = read {
            return Step::Done(Outcome::Reject(r));
        }
        match published::key_for(&p, now, audit) {
            published::KeyStep::Configured => {
                let trigger = Arc::clone(&p.trigger);
                self.proceed(host, p, body, &body_sha256, &trigger.keys, now, audit)
            }
            published::KeyStep::Ready(key) => self.proceed(host, p, body, &body_sha256, &[*key], now, audit),
            published::KeyStep::Fetch(fetch) => {
                let (call, fetch) = *fetch;
                Step::Call(call, Waiting::Key { pending: p, body, body_sha256, fetch })
            }
            published::KeyStep::Refused(r) => Step::Done(Outcome::Reject(r)),
        }
    }

    fn on_callout<H: Host>(
        &self,
        host: &mut H,
        w: Waiting,
        response: CalloutResponse,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Step<Held, Waiting> {
        let (v, wait) = match w {
            Waiting::Store { verified, wait } => (verified, wait),
            Waiting::Key { pending, body, body_sha256, fetch } => {
                return match published::answered(host, &pending, &fetch, &response, now, audit) {
                    Ok(key) => self.proceed(host, pending, body, &body_sha256, &[key], now, audit),
                    Err(r) => Step::Done(Outcome::Reject(r)),
                };
            }
        };
        let policy = &self.plan.replay;
        let Some(etcd) = &policy.etcd else { return Step::Done(Outcome::Reject(Reject::ReplayStoreUnavailable)) };
        match store::etcd_answer(host, etcd, policy, wait, v.key, v.expires, &response, now, audit) {
            Next::Call(call, wait) => Step::Call(call, Waiting::Store { verified: v, wait }),
            Next::Reserved(held) => self.forward(host, v, held, now),
            Next::Done(outcome) => Step::Done(outcome),
        }
    }

    fn settle<H: Host>(
        &self,
        host: &mut H,
        held: Held,
        ending: Ending,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Option<u32> {
        store::settle(host, &self.plan.replay, held, ending, now, audit)
    }
}

#[cfg(test)]
mod tests;
