//! Inbound mode: the order of checks of the README ("Order of checks and
//! answers"). Cheap header checks first; the body is read only when they all
//! hold; then verify, replay, JSON, match, inputs and annotations.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Forward, Head, Mode, Outcome};
use crate::contract::audit::{self, AuditRecord, Direction, Verdict};
use crate::contract::error::Reject;
use crate::contract::metrics::Counter;
use crate::contract::names::*;
use crate::host::{Headers, Host, Level};
use crate::plan::inbound::{InboundPlan, Trigger};
use crate::plan::raw::{InputsDelivery, OnNoMatch};
use crate::rules::allowlist::parse_source_address;
use crate::rules::annotate;
use crate::rules::inputs::{InputError, RenderContext};
use crate::rules::replay::{self, ReplayKey, Reservation};
use crate::rules::signature::Credentials;
use crate::rules::{matcher, paths, peer};

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

/// A forwarded delivery's reservation, committed by a 2xx.
#[derive(Debug)]
pub struct Held {
    replay: Option<(ReplayKey, i64)>,
}

/// Longest trigger id kept in the audit record for an unknown trigger.
const MAX_AUDITED_SEGMENT: usize = 128;

impl Mode for Inbound {
    type Pending = Pending;
    type Held = Held;

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
        let Some(segment) = canonical.path.strip_prefix(plan.path_prefix.as_str()) else {
            return Head::PassThrough;
        };
        audit.trigger_id = Some(segment.chars().take(MAX_AUDITED_SEGMENT).collect());
        audit.source_address = host.source_address();
        if !canonical.was_canonical {
            return Head::Reject(Reject::NonCanonicalPath);
        }
        match check_head(plan, host, segment, &headers, now, audit) {
            Ok((trigger, credentials)) => Head::ReadBody(Pending { trigger, credentials, headers }),
            Err(r) => Head::Reject(r),
        }
    }

    fn body<H: Host>(&self, host: &mut H, p: Pending, body: &[u8], now: i64, audit: &mut AuditRecord) -> Outcome<Held> {
        let body_sha256 = audit.body(body);
        let Some(secret) = p.credentials.verify(body, &p.trigger.secrets, now) else {
            return Outcome::Reject(Reject::SignatureMismatch);
        };
        audit.key_id = Some(secret.key_id.clone());
        let key = ReplayKey::new(&p.trigger.id, &p.credentials.signed_prefix, &body_sha256);
        let delivery_id = p.credentials.signed_id.clone().unwrap_or_else(|| key.hex());
        audit.delivery_id = Some(delivery_id.clone());
        let plan = &*self.plan;
        let mut held = Held { replay: None };
        if plan.replay.enabled {
            let cap = replay::per_bucket(plan.replay.max_entries);
            match replay::reserve(host, &key, now, plan.replay.inflight_seconds as i64, cap) {
                Reservation::Reserved => held.replay = Some((key, self.remember_until(&p, now))),
                Reservation::InProgress => return Outcome::InProgress,
                Reservation::Duplicate => return Outcome::Duplicate,
                Reservation::StoreBusy => return Outcome::Reject(Reject::ReplayStoreUnavailable),
            }
        }
        let annotations = Annotations { key_id: &secret.key_id, delivery_id };
        match self.annotate(host, &p, body, annotations) {
            Ok(mut forward) => {
                forward.held = held;
                Outcome::Forward(forward)
            }
            Err(outcome) => {
                // Not forwarded: the sender's next copy must get through.
                self.settle(host, held, None, now);
                outcome
            }
        }
    }

    fn settle<H: Host>(&self, host: &mut H, held: Held, status: Option<u32>, now: i64) {
        let Some((key, expires)) = held.replay else { return };
        if status.is_some_and(|s| (200..300).contains(&s)) {
            let cap = replay::per_bucket(self.plan.replay.max_entries);
            if !replay::commit(host, &key, expires, now, cap) {
                host.log(
                    Level::Warn,
                    "combo_webhook: the replay store refused a commit; the delivery is not remembered",
                );
            }
        } else if !replay::release(host, &key, now) {
            // Expired by itself already, or the store refused: it then ends
            // after `replay.inflight_seconds`.
            host.log(Level::Debug, "combo_webhook: no reservation to release");
        }
    }
}

/// What the annotations need from verification.
struct Annotations<'a> {
    key_id: &'a str,
    delivery_id: String,
}

impl Inbound {
    /// Until when a delivered copy is remembered: while its timestamp stays
    /// inside the tolerance, or `replay.window_seconds` for schemes without one.
    fn remember_until(&self, p: &Pending, now: i64) -> i64 {
        match p.credentials.timestamp {
            Some(ts) => ts.saturating_add(self.plan.tolerance_seconds),
            None => now.saturating_add(self.plan.replay.window_seconds as i64),
        }
    }

    /// JSON, match, inputs and annotations of a verified delivery.
    fn annotate<H: Host>(
        &self,
        host: &mut H,
        p: &Pending,
        body: &[u8],
        a: Annotations,
    ) -> Result<Forward<Held>, Outcome<Held>> {
        let plan = &*self.plan;
        let trigger = &*p.trigger;
        let m = map_delivery(plan, trigger, &p.headers, body).map_err(Outcome::from)?;
        if !m.failed.is_empty() {
            let msg = format!(
                "combo_webhook: trigger {}: inputs rendered as null after a template error or the work budget: {}",
                trigger.id,
                m.failed.join(", ")
            );
            host.log(Level::Warn, &msg);
        }
        let mut set_headers = vec![
            (TRIGGER_ID, trigger.id.clone()),
            (AGENT_ID, trigger.agent_id.clone()),
            (SOURCE, trigger.profile.name().to_string()),
            (KEY_ID, a.key_id.to_string()),
            (DELIVERY_ID, a.delivery_id),
            (MATCHED, m.matched.to_string()),
        ];
        // With the envelope the inputs travel in the body; the header is a
        // convenience that is left out when it would be too large.
        if m.inputs_json.len() <= plan.max_inputs_bytes {
            set_headers.insert(2, (INPUTS, m.inputs_json));
        }
        let envelope = plan.inputs_delivery == InputsDelivery::Envelope;
        let body = envelope.then(|| annotate::envelope(&trigger.id, &trigger.agent_id, &m.inputs, body));
        Ok(Forward {
            remove_headers: &[],
            set_headers,
            body,
            verdict: Verdict::Accepted,
            counter: Counter::Accepted,
            held: Held { replay: None },
        })
    }
}

/// What a verified delivery maps to: whether the match holds, and the
/// rendered inputs. Shared by the stream and `combo-webhook inputs`.
pub struct Mapping {
    pub matched: bool,
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// The inputs as the `x-combo-inputs` header carries them.
    pub inputs_json: String,
    /// Inputs rendered as null after a template error or the work budget.
    pub failed: Vec<String>,
}

/// Why a verified delivery is answered at the edge instead of forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmapped {
    Reject(Reject),
    /// 422, naming the input.
    Input(Reject, String),
    Ignored,
}

impl<F> From<Unmapped> for Outcome<F> {
    fn from(u: Unmapped) -> Self {
        match u {
            Unmapped::Reject(r) => Outcome::Reject(r),
            Unmapped::Input(r, name) => Outcome::RejectInput(r, name),
            Unmapped::Ignored => Outcome::Ignored,
        }
    }
}

/// JSON, match and inputs of a delivery to `trigger` (its signature already
/// verified), in the README's order.
pub fn map_delivery(
    plan: &InboundPlan,
    trigger: &Trigger,
    headers: &Headers,
    body: &[u8],
) -> Result<Mapping, Unmapped> {
    let payload: serde_json::Value = serde_json::from_slice(body).map_err(|_| Unmapped::Reject(Reject::InvalidJson))?;
    let matched = matcher::all_hold(&trigger.conditions, &payload);
    if !matched && plan.on_no_match == OnNoMatch::Ignore {
        return Err(Unmapped::Ignored);
    }
    let ctx = RenderContext {
        payload: &payload,
        headers,
        hidden_headers: trigger.profile.signature_headers(),
        trigger_id: &trigger.id,
        agent_id: &trigger.agent_id,
        source: trigger.profile.name(),
    };
    let mut failed = Vec::new();
    let inputs = plan.templates.render(trigger.inputs, &ctx, &mut failed).map_err(|e| match e {
        InputError::Missing(name) => Unmapped::Input(Reject::MissingInput, name),
        InputError::Invalid(name) => Unmapped::Input(Reject::InvalidInput, name),
    })?;
    let inputs_json = annotate::ascii_json(&inputs);
    if inputs_json.len() > plan.max_inputs_bytes && plan.inputs_delivery == InputsDelivery::Header {
        return Err(Unmapped::Reject(Reject::InputsTooLarge));
    }
    Ok(Mapping { matched, inputs, inputs_json, failed })
}

/// Header checks after the path, in the README's order. Returns the trigger
/// it found and the credentials its scheme read.
fn check_head<H: Host>(
    plan: &InboundPlan,
    host: &mut H,
    segment: &str,
    headers: &Headers,
    now: i64,
    audit: &mut AuditRecord,
) -> Result<(Arc<Trigger>, Credentials), Reject> {
    if headers.first(METHOD) != Some("POST") {
        return Err(Reject::MethodNotAllowed);
    }
    let source: Option<IpAddr> = audit.source_address.as_deref().and_then(parse_source_address);
    if !plan.allow.allows(source) {
        return Err(Reject::IpNotAllowed);
    }
    let trigger = plan.triggers.get(segment).ok_or(Reject::UnknownTrigger)?;
    audit.headers_sha256 = Some(audit::headers_sha256(headers, trigger.profile.audit_headers()));
    if !trigger.allow.allows(source) {
        return Err(Reject::IpNotAllowed);
    }
    if let Some(mtls) = &trigger.mtls {
        let peer = host.peer_certificate().ok_or(Reject::MtlsRequired)?;
        if !peer::allowed(&peer, &mtls.allowed_peers) {
            return Err(Reject::PeerNotAllowed);
        }
    }
    if !headers.first(CONTENT_TYPE).is_some_and(is_json_media_type) {
        return Err(Reject::UnsupportedMediaType);
    }
    if let Some(len) = headers.first(CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok()) {
        if len > plan.max_body_bytes {
            return Err(Reject::PayloadTooLarge);
        }
    }
    let credentials = trigger.profile.credentials(headers)?;
    if let Some(ts) = credentials.timestamp {
        audit.timestamp = Some(ts);
        audit.skew_seconds = Some(now.saturating_sub(ts));
        if now.abs_diff(ts) > plan.tolerance_seconds.unsigned_abs() {
            return Err(Reject::TimestampOutOfTolerance);
        }
    }
    Ok((Arc::clone(trigger), credentials))
}

fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
