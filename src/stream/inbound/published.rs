//! A scheme whose key the sender publishes (docs "Published keys"): the
//! key comes from this worker's cache, or the delivery waits while it is
//! fetched through the scheme's Envoy cluster. Every failure is a 401:
//! nothing is verified with a key the edge could not fetch.

use crate::contract::audit::{AuditRecord, KeyFetch};
use crate::contract::error::Reject;
use crate::contract::metrics::Counter;
use crate::host::{Callout, CalloutResponse, Host};
use crate::rules::scheme::keys::Key;
use crate::rules::scheme::published::{self, Fetch};

use super::Pending;

/// What the delivery's key needs.
pub enum KeyStep {
    /// The trigger's configured keys verify it.
    Configured,
    Ready(Box<Key>),
    Fetch(Box<(Callout, Fetch)>),
    Refused(Reject),
}

/// The key of this delivery, or the fetch it waits on.
pub fn key_for(p: &Pending, now: i64, audit: &mut AuditRecord) -> KeyStep {
    let scheme = &p.trigger.scheme;
    let Some(source) = &scheme.key_source else { return KeyStep::Configured };
    let fetch = match source.locate(&p.credentials, &scheme.params) {
        Ok(f) => f,
        Err(r) => return KeyStep::Refused(r),
    };
    if let Some(material) = published::lookup(&fetch.cache_key, fetch.kid.as_deref(), now) {
        audit.key_fetch = Some(KeyFetch::Cached);
        return KeyStep::Ready(Box::new(Key::new(key_id(&fetch), material, None, None)));
    }
    if !published::may_fetch(&p.trigger.id, now) {
        audit.key_fetch = Some(KeyFetch::Failed);
        return KeyStep::Refused(Reject::KeyUnavailable);
    }
    let callout = Callout {
        cluster: source.cluster.clone(),
        authority: fetch.url.host.clone(),
        post: fetch.post.is_some(),
        path: fetch.url.path.clone(),
        body: fetch.post.clone().unwrap_or_default(),
        timeout_ms: source.timeout_ms,
    };
    KeyStep::Fetch(Box::new((callout, fetch)))
}

/// The key server's answer: a 200 holding the key (never a redirect
/// followed, never a key from another status), kept for the source's TTL.
pub fn answered<H: Host>(
    host: &mut H,
    p: &Pending,
    fetch: &Fetch,
    response: &CalloutResponse,
    now: i64,
    audit: &mut AuditRecord,
) -> Result<Key, Reject> {
    let scheme = &p.trigger.scheme;
    let source = scheme.key_source.as_ref().ok_or(Reject::KeyUnavailable)?;
    host.count(Counter::KeyFetched);
    let keys = (response.status == Some(200))
        .then(|| published::keys_from(source.format, source.jwk_at.as_deref(), &response.body, now))
        .flatten();
    let key = keys.and_then(|k| published::store(&fetch.cache_key, k, fetch.kid.as_deref(), now + source.ttl_seconds));
    match key {
        Some(material) => {
            audit.key_fetch = Some(KeyFetch::Fetched);
            Ok(Key::new(key_id(fetch), material, None, None))
        }
        None => {
            host.count(Counter::KeyFetchFailed);
            audit.key_fetch = Some(KeyFetch::Failed);
            Err(Reject::KeyUnavailable)
        }
    }
}

/// The audited key id: the `kid`, else the key's URL (public, never a secret).
fn key_id(fetch: &Fetch) -> String {
    fetch.kid.clone().unwrap_or_else(|| fetch.url.text())
}
