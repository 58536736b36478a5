//! The header checks after the path, in the README's order.

use std::net::IpAddr;
use std::sync::Arc;

use crate::contract::audit::AuditRecord;
use crate::contract::error::Reject;
use crate::contract::names::*;
use crate::host::{Headers, Host};
use crate::plan::inbound::{InboundPlan, Trigger};
use crate::plan::raw::MtlsIdentity;
use crate::rules::allowlist::parse_source_address;
use crate::rules::peer;
use crate::rules::signature::Credentials;

/// Header checks after the path, in the README's order. Returns the trigger
/// it found and the credentials its scheme read.
pub(super) fn check_head<H: Host>(
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
    audit.headers_sha256 = Some(headers.sha256_of(trigger.profile.audit_headers()));
    if !trigger.allow.allows(source) {
        return Err(Reject::IpNotAllowed);
    }
    if let Some(mtls) = &trigger.mtls {
        let mut peer = host.peer_certificate().ok_or(Reject::MtlsRequired)?;
        if plan.mtls_identity == MtlsIdentity::Xfcc {
            // Trusted only because the connection manager replaces any
            // client-sent copy (SANITIZE_SET, README "mTLS").
            if let Some(xfcc) = headers.first(FORWARDED_CLIENT_CERT) {
                peer::extend_from_xfcc(&mut peer, xfcc);
            }
        }
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
