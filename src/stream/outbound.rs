//! Outbound mode (docs "Outbound signing"): the platform posts lifecycle events to
//! an Envoy egress listener; the filter drops the events a subscription did
//! not pick and signs the rest with the platform's own scheme.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Forward, Head, Mode, Outcome, Step};
use crate::contract::audit::{AuditRecord, Direction, Verdict};
use crate::contract::error::Reject;
use crate::contract::metrics::Counter;
use crate::contract::names::*;
use crate::host::{CalloutResponse, Headers, Host};
use crate::plan::outbound::{valid_event_name, OutboundPlan, Subscription};
use crate::rules::ending::Ending;
use crate::rules::scheme::keys::newest_valid;
use crate::rules::scheme::sign_generic;

/// The outbound stream over a host.
pub type Stream<H> = super::Stream<H, Outbound>;

pub struct Outbound {
    plan: Arc<OutboundPlan>,
}

impl Outbound {
    pub fn new(plan: Arc<OutboundPlan>) -> Self {
        Outbound { plan }
    }
}

/// A request to a known subscription, waiting for its body.
#[derive(Debug)]
pub struct Pending {
    subscription: Arc<Subscription>,
    headers: Headers,
}

impl Mode for Outbound {
    type Pending = Pending;
    type Held = ();
    /// Outbound never waits on a callout.
    type Call = std::convert::Infallible;

    fn direction(&self) -> Direction {
        Direction::Outbound
    }

    fn max_body_bytes(&self) -> u64 {
        self.plan.max_body_bytes
    }

    fn head<H: Host>(&self, _host: &mut H, headers: Headers, _now: i64, audit: &mut AuditRecord) -> Head<Pending> {
        let id = headers.single(SUBSCRIPTION).ok().flatten();
        audit.subscription_id = id.map(|id| id.chars().take(MAX_NAME).collect());
        if headers.first(METHOD) != Some("POST") {
            return Head::Reject(Reject::MethodNotAllowed);
        }
        let Some(subscription) = id.and_then(|id| self.plan.subscriptions.get(id)) else {
            return Head::Reject(Reject::UnknownSubscription);
        };
        if let Some(len) = headers.first(CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok()) {
            if len > self.plan.max_body_bytes {
                return Head::Reject(Reject::PayloadTooLarge);
            }
        }
        Head::ReadBody(Pending { subscription: Arc::clone(subscription), headers })
    }

    fn body<H: Host>(
        &self,
        _host: &mut H,
        p: Pending,
        body: Vec<u8>,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Step<(), Self::Call> {
        Step::Done(decide(&self.plan, p, &body, now, audit))
    }

    fn on_callout<H: Host>(
        &self,
        _host: &mut H,
        call: Self::Call,
        _response: CalloutResponse,
        _now: i64,
        _audit: &mut AuditRecord,
    ) -> Step<(), Self::Call> {
        match call {}
    }

    fn settle<H: Host>(&self, _: &mut H, _: (), _: Ending, _: i64, _: &mut AuditRecord) -> Option<u32> {
        None
    }
}

/// Skip, or sign with the newest secret valid now.
fn decide(plan: &OutboundPlan, p: Pending, body: &[u8], now: i64, audit: &mut AuditRecord) -> Outcome<()> {
    audit.body(body);
    let event = match event_name(plan, &p.headers, body) {
        Ok(e) => e,
        Err(r) => return Outcome::Reject(r),
    };
    audit.event = Some(event.clone());
    let sub = &*p.subscription;
    if !sub.picks(&event) {
        return Outcome::Skipped;
    }
    let Some(secret) = newest_valid(&sub.secrets, now) else {
        return Outcome::Reject(Reject::NoSigningKey);
    };
    let delivery_id = match p.headers.single(DELIVERY_ID).ok().flatten().filter(|v| crate::plan::valid_id(v)) {
        Some(id) => id.to_string(),
        None => derived_delivery_id(&sub.id, now, p.headers.first(REQUEST_ID).unwrap_or(""), body),
    };
    let timestamp = now.to_string();
    let Some(signature) = sign_generic(secret, now, body) else {
        return Outcome::Reject(Reject::NoSigningKey);
    };
    let signed = Headers::new(vec![
        (COMBO_SIGNATURE.to_string(), signature.clone()),
        (COMBO_TIMESTAMP.to_string(), timestamp.clone()),
    ]);
    // The signature never enters the digest (docs "Audit and metrics").
    audit.headers_sha256 = Some(signed.sha256_of(&[COMBO_TIMESTAMP]));
    audit.key_id = Some(secret.key_id.clone());
    audit.delivery_id = Some(delivery_id.clone());
    audit.timestamp = Some(now);
    audit.skew_seconds = Some(0);
    Outcome::Forward(Forward {
        remove_headers: &[SUBSCRIPTION],
        set_headers: vec![
            (COMBO_TIMESTAMP, timestamp),
            (COMBO_SIGNATURE, signature),
            (EVENT, event),
            (DELIVERY_ID, delivery_id),
            (ROUTE, sub.id.clone()),
        ],
        body: None,
        verdict: Verdict::Signed,
        counter: Counter::OutboundSigned,
        held: (),
    })
}

/// The event name: the `x-combo-event` header wins, else `event_jsonpath`.
/// It becomes a header upstream, so it must be a token.
fn event_name(plan: &OutboundPlan, headers: &Headers, body: &[u8]) -> Result<String, Reject> {
    let name = match headers.single(EVENT).map_err(|_| Reject::InvalidEvent)?.filter(|e| !e.is_empty()) {
        Some(e) => e.to_string(),
        None => {
            let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| Reject::InvalidJson)?;
            let nodes = plan.event_path.query(&doc);
            nodes.first().and_then(|v| v.as_str()).ok_or(Reject::MissingEvent)?.to_string()
        }
    };
    if valid_event_name(&name) {
        Ok(name)
    } else {
        Err(Reject::InvalidEvent)
    }
}

/// Unique per request (Envoy's x-request-id), stable across Envoy's retries
/// because the filter runs once per downstream request.
fn derived_delivery_id(subscription: &str, now: i64, request_id: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [subscription.as_bytes(), &now.to_le_bytes(), request_id.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.update(body);
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests;
