//! The header checks after the path, in the order of docs "Order of checks and answers".

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
use crate::rules::scheme::handshake::Answer;
use crate::rules::scheme::keys::newest_valid;
use crate::rules::scheme::{Credentials, Request, Scheme};

/// What the header checks decided for a webhook request.
pub(super) enum HeadCheck {
    /// Read the body of a delivery to this trigger, with what its headers claim.
    Body(Arc<Trigger>, Credentials),
    /// A URL-verification handshake, answered from the request line.
    Handshake(Answer),
}

/// Header checks after the path, in the order of docs "Order of checks and answers".
pub(super) fn check_head<H: Host>(
    plan: &InboundPlan,
    host: &mut H,
    segment: &str,
    headers: &Headers,
    now: i64,
    audit: &mut AuditRecord,
) -> Result<HeadCheck, Reject> {
    let post = headers.first(METHOD) == Some("POST");
    let found = plan.triggers.get(segment);
    // GET reaches a trigger only for its provider's GET handshake.
    let get_handshake = found.and_then(|t| t.scheme.handshake).is_some_and(|h| h.method() == "GET");
    if !post && !get_handshake {
        return Err(Reject::MethodNotAllowed);
    }
    let source: Option<IpAddr> = audit.source_address.as_deref().and_then(parse_source_address);
    if !plan.allow.allows(source) {
        return Err(Reject::IpNotAllowed);
    }
    let trigger = found.ok_or(Reject::UnknownTrigger)?;
    let audited = &trigger.scheme.audit_headers;
    audit.headers_sha256 = (!audited.is_empty()).then(|| headers.sha256_of(audited));
    if !trigger.allow.allows(source) {
        return Err(Reject::IpNotAllowed);
    }
    if let Some(mtls) = &trigger.mtls {
        let mut peer = host.peer_certificate().ok_or(Reject::MtlsRequired)?;
        if plan.mtls_identity == MtlsIdentity::Xfcc {
            // Trusted only because the connection manager replaces any
            // client-sent copy (SANITIZE_SET, docs "mTLS").
            if let Some(xfcc) = headers.first(FORWARDED_CLIENT_CERT) {
                peer::extend_from_xfcc(&mut peer, xfcc).map_err(|_| Reject::PeerNotAllowed)?;
            }
        }
        if !peer::allowed(&peer, &mtls.allowed_peers) {
            return Err(Reject::PeerNotAllowed);
        }
    }
    let scheme = &trigger.scheme;
    if let Some(h) = scheme.handshake {
        let signing = newest_valid(&trigger.keys, now);
        if let Some(answer) = h.answer_head(headers, signing, trigger.verify_token.as_deref()) {
            if h.authenticated_in_head() {
                let creds = scheme.read_head(headers)?;
                let req = Request { headers, body: b"" };
                scheme.verify(&creds, &req, &trigger.keys, now).ok_or(Reject::SignatureMismatch)?;
            }
            return answer.map(HeadCheck::Handshake);
        }
    }
    if !post {
        return Err(Reject::MethodNotAllowed);
    }
    let essence = headers.first(CONTENT_TYPE).map(media_type);
    if !essence.is_some_and(|e| scheme.content_types.contains(&e)) {
        return Err(Reject::UnsupportedMediaType);
    }
    if let Some(len) = headers.first(CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok()) {
        if len > plan.max_body_bytes {
            return Err(Reject::PayloadTooLarge);
        }
    }
    let credentials = scheme.read_head(headers)?;
    check_timestamp(scheme, &credentials, now, audit)?;
    Ok(HeadCheck::Body(Arc::clone(trigger), credentials))
}

/// Records the timestamp and checks its window (once it is known: from the
/// headers here, from the body for schemes that sign it inside).
pub(super) fn check_timestamp(
    scheme: &Scheme,
    credentials: &Credentials,
    now: i64,
    audit: &mut AuditRecord,
) -> Result<(), Reject> {
    if let Some(stamp) = &credentials.timestamp {
        audit.timestamp = Some(stamp.unix);
        audit.skew_seconds = Some(now.saturating_sub(stamp.unix));
    }
    if scheme.timestamp_holds(credentials, now) {
        Ok(())
    } else {
        Err(Reject::TimestampOutOfTolerance)
    }
}

/// The media type's essence, lowercase (`application/json; charset=utf-8`
/// is `application/json`).
pub(crate) use crate::rules::scheme::form::media_type;
