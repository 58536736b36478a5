//! The inbound pipeline of SPEC.md, as pure functions over what the adapter
//! read from the host. Cheap header checks run first (`check_head`); the body
//! is read only when they all hold (`check_body`).

use std::net::IpAddr;
use std::sync::Arc;

use crate::annotate;
use crate::config::{InputsDelivery, OnNoMatch};
use crate::error::Reject;
use crate::headers::Headers;
use crate::inputs::RenderContext;
use crate::matcher;
use crate::plan::{Plan, Trigger};
use crate::replay::ReplayKey;
use crate::secrets::Secret;
use crate::signature::Credentials;

/// Connection facts, fetched lazily: most requests never need the peer certificate.
pub trait Connection {
    fn source_ip(&self) -> Option<IpAddr>;
    /// The peer certificate, only when one was presented and verified.
    fn peer(&self) -> Option<Peer>;
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    pub uri_san: Option<String>,
    pub dns_san: Option<String>,
    pub subject: Option<String>,
}

/// What the header phase decided.
#[derive(Debug)]
pub enum Head {
    /// Not a webhook path: forward untouched (annotations are still stripped).
    PassThrough,
    Reject(Reject),
    /// All header checks hold: read the body, then call `check_body`.
    ReadBody(Pending),
}

/// A delivery whose headers were verified, waiting for its body.
#[derive(Debug)]
pub struct Pending {
    pub trigger: Arc<Trigger>,
    pub credentials: Credentials,
}

/// What the body phase decided.
#[derive(Debug)]
pub enum Verdict {
    Reject(Reject),
    /// Verified but not matched, with `on_no_match: ignore`: answer 202.
    Ignored,
    Forward(Annotated),
}

/// A verified delivery, ready for the backend.
#[derive(Debug)]
pub struct Annotated {
    pub headers: Vec<(&'static str, String)>,
    /// Replacement body (`inputs_delivery: envelope`).
    pub body: Option<Vec<u8>>,
    pub matched: bool,
    pub key_id: String,
    pub delivery_id: String,
    /// Inputs whose template failed at render time (rendered as null).
    pub failed_inputs: Vec<String>,
}

/// The trigger id when `path` is under the prefix: the one segment after it,
/// query string excluded. `Some("")` or a deeper path still counts as a
/// webhook path and finds no trigger.
pub fn trigger_segment<'a>(prefix: &str, path: &'a str) -> Option<&'a str> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.strip_prefix(prefix)
}

fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn peer_allowed(peer: &Peer, allowed: &[String]) -> bool {
    allowed.is_empty()
        || [&peer.uri_san, &peer.dns_san, &peer.subject]
            .into_iter()
            .flatten()
            .any(|id| allowed.iter().any(|a| a == id))
}

/// Header checks, in SPEC order. `path` is `:path`.
pub fn check_head(
    plan: &Plan,
    method: &str,
    path: &str,
    headers: &Headers,
    conn: &dyn Connection,
    now: i64,
) -> Head {
    let Some(segment) = trigger_segment(&plan.path_prefix, path) else {
        return Head::PassThrough;
    };
    match head_checks(plan, method, segment, headers, conn, now) {
        Ok(pending) => Head::ReadBody(pending),
        Err(r) => Head::Reject(r),
    }
}

fn head_checks(
    plan: &Plan,
    method: &str,
    segment: &str,
    headers: &Headers,
    conn: &dyn Connection,
    now: i64,
) -> Result<Pending, Reject> {
    if method != "POST" {
        return Err(Reject::MethodNotAllowed);
    }
    // Fetch the address once, and only when some allowlist needs it.
    let mut source: Option<Option<IpAddr>> = None;
    let mut source_ip = || *source.get_or_insert_with(|| conn.source_ip());
    if !plan.allow.is_empty() && !plan.allow.allows(source_ip()) {
        return Err(Reject::IpNotAllowed);
    }
    let trigger = plan.triggers.get(segment).ok_or(Reject::UnknownTrigger)?;
    if !trigger.allow.is_empty() && !trigger.allow.allows(source_ip()) {
        return Err(Reject::IpNotAllowed);
    }
    if let Some(mtls) = &trigger.mtls {
        let peer = conn.peer().ok_or(Reject::MtlsRequired)?;
        if !peer_allowed(&peer, &mtls.allowed_peers) {
            return Err(Reject::PeerNotAllowed);
        }
    }
    if !headers.first("content-type").is_some_and(is_json_media_type) {
        return Err(Reject::UnsupportedMediaType);
    }
    if let Some(len) = headers.first("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
        if len > plan.max_body_bytes {
            return Err(Reject::PayloadTooLarge);
        }
    }
    let credentials = trigger.profile.credentials(headers)?;
    if let Some(ts) = credentials.timestamp {
        if now.abs_diff(ts) > plan.tolerance_seconds.unsigned_abs() {
            return Err(Reject::TimestampOutOfTolerance);
        }
    }
    Ok(Pending { trigger: Arc::clone(trigger), credentials })
}

/// Whether a body of `size` bytes so far is already over the limit.
pub fn body_over_limit(plan: &Plan, size: usize) -> bool {
    size as u64 > plan.max_body_bytes
}

/// Body checks, then match, inputs and annotations. `secret` is the key that
/// verified; exposed so the caller can record it (audit, replay).
pub fn verify_body<'p>(pending: &'p Pending, body: &[u8], now: i64) -> Result<&'p Secret, Reject> {
    pending
        .credentials
        .verify(body, &pending.trigger.secrets, now)
        .ok_or(Reject::SignatureMismatch)
}

/// The replay key of a verified delivery and until when to remember it: while
/// its timestamp stays inside the tolerance, or `replay.window_seconds` for
/// schemes without a timestamp. `None` when replay protection is off.
pub fn replay_entry(plan: &Plan, pending: &Pending, now: i64) -> Option<(ReplayKey, i64)> {
    if !plan.replay.enabled {
        return None;
    }
    let expires = match pending.credentials.timestamp {
        Some(ts) => ts.saturating_add(plan.tolerance_seconds),
        None => now.saturating_add(plan.replay.window_seconds as i64),
    };
    Some((ReplayKey::new(&pending.trigger.id, &pending.credentials), expires))
}

/// JSON parse, match, inputs and annotations of a verified delivery.
pub fn annotate(plan: &Plan, pending: &Pending, secret: &Secret, headers: &Headers, body: &[u8]) -> Verdict {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Verdict::Reject(Reject::InvalidJson);
    };
    let trigger = &pending.trigger;
    let matched = matcher::all_hold(&trigger.conditions, &payload);
    if !matched && plan.on_no_match == OnNoMatch::Ignore {
        return Verdict::Ignored;
    }
    let mut failed_inputs = Vec::new();
    let ctx = template_context(trigger, headers, &payload);
    let inputs = plan.templates.render(trigger.inputs, &ctx, &mut failed_inputs);
    let delivery_id = pending.credentials.delivery_id.clone();
    let body = (plan.inputs_delivery == InputsDelivery::Envelope)
        .then(|| annotate::envelope(&trigger.id, &trigger.agent_id, &inputs, body));
    let headers = vec![
        (annotate::TRIGGER_ID, trigger.id.clone()),
        (annotate::AGENT_ID, trigger.agent_id.clone()),
        (annotate::INPUTS, annotate::ascii_json(&inputs)),
        (annotate::SOURCE, trigger.profile.name().to_string()),
        (annotate::KEY_ID, secret.key_id.clone()),
        (annotate::DELIVERY_ID, delivery_id.clone()),
        (annotate::MATCHED, matched.to_string()),
    ];
    Verdict::Forward(Annotated {
        headers,
        body,
        matched,
        key_id: secret.key_id.clone(),
        delivery_id,
        failed_inputs,
    })
}

/// `payload`, `headers` (first value of each, signature headers left out so a
/// template cannot copy them) and `trigger`.
fn template_context<'a>(trigger: &'a Trigger, headers: &'a Headers, payload: &'a serde_json::Value) -> RenderContext<'a> {
    RenderContext {
        payload,
        headers,
        hidden_headers: trigger.profile.signature_headers(),
        trigger_id: &trigger.id,
        agent_id: &trigger.agent_id,
        source: trigger.profile.name(),
    }
}

#[cfg(test)]
mod tests;
