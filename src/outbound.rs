//! Outbound mode (SPEC.md "Outbound"): the platform posts lifecycle events to
//! an Envoy egress listener; the filter drops the events a subscription did
//! not pick and signs the rest with the platform's own scheme.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json_path::JsonPath;
use sha2::{Digest, Sha256};

use crate::config::RawConfig;
use crate::error::{ConfigError, Reject};
use crate::headers::Headers;
use crate::plan::{secret_list, valid_id, EnvLookup, Errors, DEFAULT_MAX_BODY_BYTES};
use crate::secrets::{newest_valid, Secret};
use crate::signature::{sign_generic, Profile, COMBO_SIGNATURE, COMBO_TIMESTAMP};

pub const SUBSCRIPTION_HEADER: &str = "x-combo-subscription";
pub const EVENT_HEADER: &str = "x-combo-event";
pub const DELIVERY_ID_HEADER: &str = "x-combo-delivery-id";
/// Set on skipped events (`x-combo-delivery: skipped`).
pub const DELIVERY_STATUS_HEADER: &str = "x-combo-delivery";
/// Carries the subscription id to Envoy's route match once `x-combo-subscription`
/// is removed; the egress route strips it (`request_headers_to_remove`).
pub const ROUTE_HEADER: &str = "x-combo-route";
pub const DEFAULT_EVENT_JSONPATH: &str = "$.type";

/// Events that fire on every tool call: subscribing to them is allowed but loud.
const NOISY_EVENTS: &[&str] = &["tool.called"];

#[derive(Debug)]
pub struct OutboundPlan {
    pub subscriptions: HashMap<String, Arc<Subscription>>,
    event_path: JsonPath,
    pub max_body_bytes: u64,
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct Subscription {
    pub id: String,
    events: Vec<EventPattern>,
    pub secrets: Vec<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EventPattern {
    Any,
    Exact(String),
    /// `review.*`: stored as `review.`.
    Prefix(String),
}

impl EventPattern {
    fn parse(text: &str) -> Option<EventPattern> {
        if text == "*" {
            return Some(EventPattern::Any);
        }
        if let Some(prefix) = text.strip_suffix('*') {
            return (prefix.ends_with('.') && prefix.len() > 1 && !prefix.contains('*'))
                .then(|| EventPattern::Prefix(prefix.to_string()));
        }
        (!text.is_empty() && !text.contains('*') && !text.contains(char::is_whitespace))
            .then(|| EventPattern::Exact(text.to_string()))
    }

    fn matches(&self, event: &str) -> bool {
        match self {
            EventPattern::Any => true,
            EventPattern::Exact(e) => e == event,
            EventPattern::Prefix(p) => event.starts_with(p.as_str()) && event.len() > p.len(),
        }
    }
}

impl Subscription {
    pub fn picks(&self, event: &str) -> bool {
        self.events.iter().any(|p| p.matches(event))
    }
}

pub fn compile(raw: RawConfig, env: EnvLookup) -> Result<OutboundPlan, Vec<ConfigError>> {
    let mut errs = Errors::new();
    if !raw.triggers.is_empty() {
        errs.push("triggers", "only valid with mode: inbound");
    }
    if !raw.allow_cidrs.is_empty() {
        errs.push("allow_cidrs", "only valid with mode: inbound");
    }
    let path_text = raw.event_jsonpath.as_deref().unwrap_or(DEFAULT_EVENT_JSONPATH);
    let event_path = JsonPath::parse(path_text).map_err(|e| errs.push("event_jsonpath", e.to_string())).ok();
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        errs.push("max_body_bytes", "must be greater than 0");
    }
    let mut subscriptions = HashMap::with_capacity(raw.subscriptions.len());
    for (i, s) in raw.subscriptions.into_iter().enumerate() {
        let at = format!("subscriptions[{i}]");
        if !valid_id(&s.id) {
            errs.push(format!("{at}.id"), format!("must be non-empty visible ASCII, got {:?}", s.id));
        } else if subscriptions.contains_key(&s.id) {
            errs.push(format!("{at}.id"), format!("duplicate subscription id {:?}", s.id));
        }
        if s.events.is_empty() {
            errs.push(format!("{at}.events"), "must list at least one event");
        }
        let mut events = Vec::with_capacity(s.events.len());
        for (j, e) in s.events.iter().enumerate() {
            match EventPattern::parse(e) {
                Some(p) => events.push(p),
                None => errs.push(format!("{at}.events[{j}]"), format!("invalid event pattern {e:?}; use a name, prefix.* or *")),
            }
        }
        for noisy in NOISY_EVENTS {
            if events.iter().any(|p| p.matches(noisy)) {
                errs.warn(format!(
                    "{at}: subscription {:?} receives {noisy}, which fires on every tool call; expect high volume",
                    s.id
                ));
            }
        }
        let secrets = secret_list(s.secret, s.secrets, Profile::GenericWebhook, &at, env, &mut errs);
        subscriptions.insert(s.id.clone(), Arc::new(Subscription { id: s.id, events, secrets }));
    }
    match event_path {
        Some(event_path) if errs.0.is_empty() => {
            Ok(OutboundPlan { subscriptions, event_path, max_body_bytes, warnings: errs.1 })
        }
        _ => Err(errs.0),
    }
}

/// Header checks: method, subscription, size.
pub fn check_head(plan: &OutboundPlan, method: &str, headers: &Headers) -> Result<Arc<Subscription>, Reject> {
    if method != "POST" {
        return Err(Reject::MethodNotAllowed);
    }
    let id = headers.single(SUBSCRIPTION_HEADER).ok().flatten().ok_or(Reject::UnknownSubscription)?;
    let sub = plan.subscriptions.get(id).ok_or(Reject::UnknownSubscription)?;
    if let Some(len) = headers.first("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
        if len > plan.max_body_bytes {
            return Err(Reject::PayloadTooLarge);
        }
    }
    Ok(Arc::clone(sub))
}

#[derive(Debug)]
pub enum Outcome {
    /// The subscription did not pick this event: answer 204, send nothing.
    Skip { event: String },
    Deliver(Delivery),
}

#[derive(Debug)]
pub struct Delivery {
    pub event: String,
    pub key_id: String,
    pub delivery_id: String,
    /// Headers to set on the upstream request.
    pub headers: Vec<(&'static str, String)>,
}

/// The event name: the `x-combo-event` header wins, else `event_jsonpath`.
fn event_name(plan: &OutboundPlan, headers: &Headers, body: &[u8]) -> Result<String, Reject> {
    if let Some(e) = headers.single(EVENT_HEADER).ok().flatten().filter(|e| !e.is_empty()) {
        return Ok(e.to_string());
    }
    let doc: serde_json::Value = serde_json::from_slice(body).map_err(|_| Reject::InvalidJson)?;
    let nodes = plan.event_path.query(&doc);
    nodes.first().and_then(|v| v.as_str()).map(str::to_string).ok_or(Reject::MissingEvent)
}

/// Decides on a whole body: skip, or sign with the newest secret valid now.
pub fn decide(plan: &OutboundPlan, sub: &Subscription, headers: &Headers, body: &[u8], now: i64) -> Result<Outcome, Reject> {
    let event = event_name(plan, headers, body)?;
    if !sub.picks(&event) {
        return Ok(Outcome::Skip { event });
    }
    let secret = newest_valid(&sub.secrets, now).ok_or(Reject::NoSigningKey)?;
    let delivery_id = match headers.single(DELIVERY_ID_HEADER).ok().flatten().filter(|v| !v.is_empty()) {
        Some(id) => id.to_string(),
        None => derived_delivery_id(&sub.id, now, headers.first("x-request-id").unwrap_or(""), body),
    };
    let headers = vec![
        (COMBO_TIMESTAMP, now.to_string()),
        (COMBO_SIGNATURE, sign_generic(secret, now, body)),
        (EVENT_HEADER, event.clone()),
        (DELIVERY_ID_HEADER, delivery_id.clone()),
        (ROUTE_HEADER, sub.id.clone()),
    ];
    Ok(Outcome::Deliver(Delivery { event, key_id: secret.key_id.clone(), delivery_id, headers }))
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
