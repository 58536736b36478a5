//! Inbound mode: the order of checks (docs "Order of checks and
//! answers"). Cheap header checks first; the body is read only when they all
//! hold; then verify, replay (reserve), JSON, match, inputs and annotations.

mod checks;
mod mapping;
mod store;

use std::sync::Arc;

use super::{Forward, Head, Mode, Outcome, Step};
use crate::contract::audit::{AuditRecord, Direction, Verdict};
use crate::contract::error::Reject;
use crate::contract::metrics::Counter;
use crate::contract::names::*;
use crate::host::{CalloutResponse, Headers, Host, Level};
use crate::plan::inbound::{InboundPlan, Stage, Trigger};
use crate::plan::raw::InputsDelivery;
use crate::rules::ending::Ending;
use crate::rules::replay::ReplayKey;
use crate::rules::scheme::form::{fields_within_bound, FORM_MEDIA_TYPE};
use crate::rules::scheme::{Credentials, Request};
use crate::rules::{annotate, paths};

use checks::HeadCheck;
pub use mapping::{map_delivery, Mapping, Unmapped};
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

/// A verified delivery waiting on etcd.
#[derive(Debug)]
pub struct Waiting {
    verified: Verified,
    wait: Wait,
}

/// Longest trigger id kept in the audit record for an unknown trigger.
const MAX_AUDITED_SEGMENT: usize = 128;

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
            Ok(HeadCheck::Body(..)) if plan.stage() == Stage::Headers => Head::PassThrough,
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
        let stage = self.plan.stage();
        let mut p = p;
        let trigger = Arc::clone(&p.trigger);
        let scheme = &trigger.scheme;
        // A token that travels in the body never enters a digest (the audit
        // record's, the replay key's): the body is digested with it blanked.
        let token_in_body = scheme.token_in_body();
        let mut body_sha256 = if stage >= Stage::BodyHash && !token_in_body { audit.body(&body) } else { [0; 32] };
        // Bounded before the signature holds: a form's fields are counted
        // (one pass) before anything sorts or copies them.
        let form = p.headers.first(CONTENT_TYPE).map(checks::media_type).as_deref() == Some(FORM_MEDIA_TYPE);
        if form && !fields_within_bound(&body) {
            return Step::Done(Outcome::Reject(Reject::TooManyFields));
        }
        let read = scheme.read_body(&mut p.credentials, &body);
        if token_in_body && stage >= Stage::BodyHash {
            body_sha256 = audit.body(&scheme.without_token(&p.credentials, &body));
        }
        if let Err(r) = read.and_then(|()| checks::check_timestamp(scheme, &p.credentials, now, audit)) {
            return Step::Done(Outcome::Reject(r));
        }
        // The signed content, built once: for the signature and the replay key.
        let message = scheme.message(&p.credentials, &Request { headers: &p.headers, body: &body });
        let Some(verified_by) = scheme.verify_message(&p.credentials, &message, &trigger.keys, now) else {
            return Step::Done(Outcome::Reject(Reject::SignatureMismatch));
        };
        let key_id = verified_by.key_id.clone();
        audit.key_id = Some(key_id.clone());
        if let Some(h) = scheme.handshake.filter(|h| h.may_be_in(&p.headers, &body)) {
            // Answered before replay protection: a provider may repeat it.
            let payload: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
            if let Some(answer) = h.answer_body(&p.headers, payload.as_ref(), verified_by) {
                return Step::Done(answer.map_or_else(Outcome::Reject, Outcome::Handshake));
            }
        }
        if stage < Stage::Mapping {
            return Step::Done(Outcome::Forward(Forward::bare(Verdict::Accepted, Counter::Accepted)));
        }
        let key = ReplayKey::new(&trigger.id, &scheme.replay_content(&message, &body_sha256));
        drop(message); // it borrows the body and the headers, which move on below
        let delivery_id =
            scheme.signed_id(&p.credentials).filter(|id| valid_delivery_id(id)).unwrap_or_else(|| key.hex());
        audit.delivery_id = Some(delivery_id.clone());
        let expires = self.remember_until(&p, now);
        let v = Verified { pending: p, body, key, expires, key_id, delivery_id };
        let policy = &self.plan.replay;
        if !policy.enabled || stage < Stage::Full {
            return self.after_reserve(host, v, Held::Nothing, now);
        }
        match &policy.etcd {
            None => {
                audit.replay_store = Some("local");
                match store::reserve_local(host, policy, key, expires, now) {
                    Ok(held) => self.after_reserve(host, v, held, now),
                    Err(outcome) => Step::Done(outcome),
                }
            }
            Some(etcd) => {
                audit.replay_store = Some("etcd");
                let (call, wait) = store::etcd_next(etcd, policy, &key, expires, now);
                Step::Call(call, Waiting { verified: v, wait })
            }
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
        let policy = &self.plan.replay;
        let Some(etcd) = &policy.etcd else { return Step::Done(Outcome::Reject(Reject::ReplayStoreUnavailable)) };
        let v = w.verified;
        match store::etcd_answer(host, etcd, policy, w.wait, v.key, v.expires, &response, now, audit) {
            Next::Call(call, wait) => Step::Call(call, Waiting { verified: v, wait }),
            Next::Reserved(held) => self.after_reserve(host, v, held, now),
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

impl Inbound {
    /// Until when a delivered copy is remembered: while its timestamp stays
    /// inside the tolerance, or `replay.window_seconds` for schemes without one.
    fn remember_until(&self, p: &Pending, now: i64) -> i64 {
        match (&p.trigger.scheme.timestamp, &p.credentials.timestamp) {
            (Some(spec), Some(stamp)) => stamp.unix.saturating_add(spec.max_age),
            _ => now.saturating_add(self.plan.replay.window_seconds as i64),
        }
    }

    /// The delivery holds its reservation: map it, then forward it, or
    /// answer at the edge and release the reservation.
    fn after_reserve<H: Host>(&self, host: &mut H, v: Verified, held: Held, now: i64) -> Step<Held, Waiting> {
        match self.annotate(host, &v) {
            Ok(mut forward) => {
                forward.held = held;
                Step::Done(Outcome::Forward(forward))
            }
            Err(outcome) => {
                // Not forwarded: the sender's next copy must get through. The
                // edge's answer leaves at once (nothing to hold it on).
                let mut scratch = AuditRecord::new(Direction::Inbound);
                self.settle(host, held, Ending::NotDelivered, now, &mut scratch);
                Step::Done(outcome)
            }
        }
    }

    /// JSON, match, inputs and annotations of a verified delivery.
    fn annotate<H: Host>(&self, host: &mut H, v: &Verified) -> Result<Forward<Held>, Outcome<Held>> {
        let plan = &*self.plan;
        let trigger = &*v.pending.trigger;
        let m = map_delivery(plan, trigger, &v.pending.headers, &v.body).map_err(Outcome::from)?;
        if !m.failed.is_empty() {
            let msg = format!(
                "combo_webhook: trigger {}: inputs rendered as null after a template error or the work budget: {}",
                trigger.id,
                m.failed.join(", ")
            );
            host.log(Level::Warn, &msg);
        }
        if plan.stage() < Stage::Annotate {
            return Ok(Forward::bare(Verdict::Accepted, Counter::Accepted));
        }
        let mut set_headers = vec![
            (TRIGGER_ID, trigger.id.clone()),
            (AGENT_ID, trigger.agent_id.clone()),
            (SOURCE, trigger.scheme.name.clone()),
            (KEY_ID, v.key_id.clone()),
            (DELIVERY_ID, v.delivery_id.clone()),
            (MATCHED, m.matched.to_string()),
        ];
        // With the envelope the inputs travel in the body, at most
        // `max_body_bytes` of them (so the envelope stays within twice the
        // body limit, which the listener's buffer must hold); the header is
        // a convenience that is left out when it would be too large.
        let envelope = plan.inputs_delivery == InputsDelivery::Envelope;
        if envelope && m.inputs_json.len() as u64 > plan.max_body_bytes {
            return Err(Outcome::Reject(Reject::InputsTooLarge));
        }
        if m.inputs_json.len() <= plan.max_inputs_bytes {
            set_headers.insert(2, (INPUTS, m.inputs_json));
        }
        let body = envelope.then(|| annotate::envelope(&trigger.id, &trigger.agent_id, &m.inputs, &v.body));
        Ok(Forward {
            remove_headers: &[],
            set_headers,
            body,
            verdict: Verdict::Accepted,
            counter: Counter::Accepted,
            held: Held::Nothing,
        })
    }
}

/// A provider's delivery id travels in `x-combo-delivery-id`: only a short
/// visible-ASCII one is used as it is.
fn valid_delivery_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests;
