//! The inbound body phase, step by step, in the README's order: read the
//! body-borne fields, digest, verify, identify, reserve, map and annotate.

use super::*;

/// What the signature proved of a delivery: the key that verified it and
/// the replay key derived from the signed content.
#[derive(Debug)]
pub struct Proven {
    pub(super) key_id: String,
    pub(super) key: ReplayKey,
}

/// The body phase, step by step, in the README's order (`Mode::body` runs
/// them all; each is public so that a bench build can stop after any one).
impl Inbound {
    /// Bounds a form or a multipart body (one counting pass, before
    /// anything sorts or copies its fields) and reads the scheme's
    /// body-borne fields.
    pub fn read_fields(&self, p: &mut Pending, body: &[u8]) -> Result<(), Reject> {
        let content_type = p.headers.first(CONTENT_TYPE).unwrap_or("");
        let bounded = match checks::media_type(content_type).as_str() {
            FORM_MEDIA_TYPE => fields_within_bound(body),
            MULTIPART_MEDIA_TYPE => multipart::parts_within_bound(content_type, body),
            _ => true,
        };
        if !bounded {
            return Err(Reject::TooManyFields);
        }
        p.trigger.scheme.read_body(&mut p.credentials, body)
    }

    /// The body's digest, for the audit record and the replay key. A token
    /// that travels in the body never enters a digest: it is blanked first,
    /// and a body whose token could not be read is not digested at all.
    pub fn digest(&self, p: &Pending, body: &[u8], fields_read: bool, audit: &mut AuditRecord) -> [u8; 32] {
        let scheme = &p.trigger.scheme;
        if !scheme.token_in_body() {
            audit.body(body)
        } else if fields_read {
            audit.body(&scheme.without_token(&p.credentials, body))
        } else {
            [0; 32]
        }
    }

    /// Verify, identify and reserve, with the keys that verify this delivery.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn proceed<H: Host>(
        &self,
        host: &mut H,
        p: Pending,
        body: Vec<u8>,
        body_sha256: &[u8; 32],
        keys: &[Key],
        now: i64,
        audit: &mut AuditRecord,
    ) -> Step<Held, Waiting> {
        let proven = match self.verify(&p, &body, body_sha256, keys, now, audit) {
            Ok(proven) => proven,
            Err(outcome) => return Step::Done(outcome),
        };
        let v = self.identify(p, body, proven, now, audit);
        self.reserve(host, v, now, audit)
    }

    /// The timestamp window, then the signature over the signed content
    /// (built once: for the signature and for the replay key), then a
    /// signed handshake, which is answered before replay protection (a
    /// provider may repeat it).
    pub fn verify(
        &self,
        p: &Pending,
        body: &[u8],
        body_sha256: &[u8; 32],
        keys: &[Key],
        now: i64,
        audit: &mut AuditRecord,
    ) -> Result<Proven, Outcome<Held>> {
        let scheme = &p.trigger.scheme;
        checks::check_timestamp(scheme, &p.credentials, now, audit).map_err(Outcome::Reject)?;
        scheme.body_digest_holds(&p.headers, body_sha256).map_err(Outcome::Reject)?;
        let message = scheme.message(&p.credentials, &Request { headers: &p.headers, body });
        let verified_by = scheme
            .verify_message(&p.credentials, &message, keys, now)
            .ok_or(Outcome::Reject(Reject::SignatureMismatch))?;
        scheme.claims_hold(&p.credentials, body, body_sha256, now).map_err(Outcome::Reject)?;
        audit.key_id = Some(verified_by.key_id.clone());
        if let Some(h) = scheme.handshake.filter(|h| h.may_be_in(&p.headers, body)) {
            let payload: Option<serde_json::Value> = serde_json::from_slice(body).ok();
            if let Some(answer) = h.answer_body(&p.headers, payload.as_ref(), verified_by) {
                return Err(answer.map_or_else(Outcome::Reject, Outcome::Handshake));
            }
        }
        let key = ReplayKey::new(&p.trigger.id, &scheme.replay_content(&message, body_sha256));
        Ok(Proven { key_id: verified_by.key_id.clone(), key })
    }

    /// The delivery's id (the provider's signed one, or the replay key's),
    /// and until when a delivered copy is remembered: while its timestamp
    /// stays inside the tolerance, or `replay.window_seconds` for schemes
    /// without one.
    pub fn identify(&self, p: Pending, body: Vec<u8>, proven: Proven, now: i64, audit: &mut AuditRecord) -> Verified {
        let Proven { key_id, key } = proven;
        let delivery_id =
            p.trigger.scheme.signed_id(&p.credentials).filter(|id| valid_delivery_id(id)).unwrap_or_else(|| key.hex());
        audit.delivery_id = Some(delivery_id.clone());
        let expires = match (&p.trigger.scheme.timestamp, &p.credentials.timestamp) {
            (Some(spec), Some(stamp)) => stamp.unix.saturating_add(spec.max_age),
            _ => now.saturating_add(self.plan.replay.window_seconds as i64),
        };
        Verified { pending: p, body, key, expires, key_id, delivery_id }
    }

    /// Replay protection: the delivery is reserved in the local store, or
    /// the etcd protocol starts; a plan without it forwards at once.
    pub fn reserve<H: Host>(
        &self,
        host: &mut H,
        v: Verified,
        now: i64,
        audit: &mut AuditRecord,
    ) -> Step<Held, Waiting> {
        let policy = &self.plan.replay;
        if !policy.enabled {
            return self.forward(host, v, Held::Nothing, now);
        }
        match &policy.etcd {
            None => {
                audit.replay_store = Some(ReplayStore::Local);
                match store::reserve_local(host, policy, v.key, v.expires, now) {
                    Ok(held) => self.forward(host, v, held, now),
                    Err(outcome) => Step::Done(outcome),
                }
            }
            Some(etcd) => {
                audit.replay_store = Some(ReplayStore::Etcd);
                let (call, wait) = store::etcd_next(etcd, policy, &v.key, v.expires, now);
                Step::Call(call, Waiting::Store { verified: v, wait })
            }
        }
    }

    /// The delivery holds its reservation: map and annotate it, then
    /// forward it, or answer at the edge and release the reservation.
    pub fn forward<H: Host>(&self, host: &mut H, v: Verified, held: Held, now: i64) -> Step<Held, Waiting> {
        match self.map(host, &v).and_then(|m| self.annotations(&v, m)) {
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

    /// JSON, match and inputs of a verified delivery.
    pub fn map<H: Host>(&self, host: &mut H, v: &Verified) -> Result<Mapping, Outcome<Held>> {
        let trigger = &*v.pending.trigger;
        let m = map_delivery(&self.plan, trigger, &v.pending.headers, &v.body).map_err(Outcome::from)?;
        if !m.failed.is_empty() {
            let msg = format!(
                "combo_webhook: trigger {}: inputs rendered as null after a template error or the work budget: {}",
                trigger.id,
                m.failed.join(", ")
            );
            host.log(Level::Warn, &msg);
        }
        Ok(m)
    }

    /// The `x-combo-*` annotations (and the envelope) of a mapped delivery.
    pub fn annotations(&self, v: &Verified, m: Mapping) -> Result<Forward<Held>, Outcome<Held>> {
        let plan = &*self.plan;
        let trigger = &*v.pending.trigger;
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
        if !plan.outputs.annotates_all() {
            set_headers.retain(|(name, _)| plan.outputs.annotates(name));
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
    short_visible(id)
}
