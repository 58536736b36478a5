//! The outbound plan: subscriptions with the events they pick and the secrets
//! that sign for them (docs "Outbound signing").

use std::collections::HashMap;
use std::sync::Arc;

use serde_json_path::JsonPath;

use super::raw::RawConfig;
use super::{valid_id, Compiler, KeyKind, DEFAULT_MAX_BODY_BYTES, MAX_MAX_BODY_BYTES};
use crate::rules::scheme::{Algorithm, Key, SecretEncoding};

pub const DEFAULT_EVENT_JSONPATH: &str = "$.type";

/// Events that fire on every tool call: subscribing to them is allowed but loud.
const NOISY_EVENTS: &[&str] = &["tool.called"];

/// Longest event name accepted; it is echoed in a header.
pub const MAX_EVENT_NAME: usize = crate::contract::names::MAX_NAME;

/// An event name is an HTTP token (RFC 9110 tchar) without `*`, at most
/// `MAX_EVENT_NAME` bytes: it goes upstream as the `X-Combo-Event` header.
pub fn valid_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_EVENT_NAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'+-.^_`|~".contains(&b))
}

#[derive(Debug)]
pub struct OutboundPlan {
    pub subscriptions: HashMap<String, Arc<Subscription>>,
    pub event_path: JsonPath,
    pub max_body_bytes: u64,
    pub warnings: Vec<String>,
    /// Subscriptions whose last secret expires within 7 days.
    pub expiring: u64,
}

#[derive(Debug)]
pub struct Subscription {
    pub id: String,
    events: Vec<EventPattern>,
    pub secrets: Vec<Key>,
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
            return (prefix.ends_with('.') && valid_event_name(prefix))
                .then(|| EventPattern::Prefix(prefix.to_string()));
        }
        valid_event_name(text).then(|| EventPattern::Exact(text.to_string()))
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
    pub(crate) fn picks(&self, event: &str) -> bool {
        self.events.iter().any(|p| p.matches(event))
    }
}

pub(super) fn compile(raw: RawConfig, c: &mut Compiler) -> Option<OutboundPlan> {
    if !raw.triggers.is_empty() {
        c.error("triggers", "only valid with mode: inbound");
    }
    if !raw.allow_cidrs.is_empty() {
        c.error("allow_cidrs", "only valid with mode: inbound");
    }
    for (field, set) in
        [("annotations", raw.annotations.is_some()), ("audit_filter_state", raw.audit_filter_state.is_some())]
    {
        if set {
            c.error(field, "only valid with mode: inbound");
        }
    }
    let path_text = raw.event_jsonpath.as_deref().unwrap_or(DEFAULT_EVENT_JSONPATH);
    let event_path = JsonPath::parse(path_text).map_err(|e| c.error("event_jsonpath", e.to_string())).ok();
    let max_body_bytes =
        c.range("max_body_bytes", raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES), MAX_MAX_BODY_BYTES);
    let mut subscriptions = HashMap::with_capacity(raw.subscriptions.len());
    for (i, s) in raw.subscriptions.into_iter().enumerate() {
        let at = format!("subscriptions[{i}]");
        if !valid_id(&s.id) {
            c.error(format!("{at}.id"), "must be non-empty visible ASCII");
        } else if subscriptions.contains_key(&s.id) {
            c.error(format!("{at}.id"), format!("duplicate subscription id {:?}", s.id));
        }
        if s.events.is_empty() {
            c.error(format!("{at}.events"), "must list at least one event");
        }
        let mut events = Vec::with_capacity(s.events.len());
        for (j, e) in s.events.iter().enumerate() {
            match EventPattern::parse(e) {
                Some(p) => events.push(p),
                None => c.error(format!("{at}.events[{j}]"), "invalid event pattern; use a name, prefix.* or *"),
            }
        }
        for noisy in NOISY_EVENTS {
            if events.iter().any(|p| p.matches(noisy)) {
                c.warn(format!(
                    "{at}: subscription {:?} receives {noisy}, which fires on every tool call; expect high volume",
                    s.id
                ));
            }
        }
        let kind = KeyKind::Secret(Algorithm::HmacSha256, SecretEncoding::Utf8);
        let secrets = c.keys(s.secret, s.secrets, kind, &at, ("secret", "secrets"));
        subscriptions.insert(s.id.clone(), Arc::new(Subscription { id: s.id, events, secrets }));
    }
    Some(OutboundPlan {
        subscriptions,
        event_path: event_path?,
        max_body_bytes,
        warnings: std::mem::take(&mut c.warnings),
        expiring: c.expiring,
    })
}
