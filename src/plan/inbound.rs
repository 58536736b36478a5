//! The inbound plan: triggers keyed by id, each with its scheme, secrets,
//! allowlist, mTLS policy, match and inputs.

use crate::contract::names::MAX_NAME;
use std::collections::HashMap;
use std::sync::Arc;

use super::outputs::{self, Outputs};
use super::raw::{
    InputsDelivery, MtlsIdentity, OnNoMatch, OnStoreError, OneOrMany, RawConfig, RawReplay, RawTrigger, StoreKind,
    UnknownOutcome,
};
use super::{valid_id, Compiler, KeyKind, DEFAULT_MAX_BODY_BYTES, MAX_MAX_BODY_BYTES};
use crate::rules::allowlist::Allowlist;
use crate::rules::inputs::{InputsId, TemplateSet};
use crate::rules::matcher::Condition;
use crate::rules::peer::PeerPattern;
use crate::rules::scheme::raw::RawScheme;
use crate::rules::scheme::{self, presets, Key, Scheme, SchemeError};

pub const DEFAULT_PATH_PREFIX: &str = "/v1/webhook/generic/";
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
pub const DEFAULT_REPLAY_WINDOW_SECONDS: u64 = 300;
pub const DEFAULT_REPLAY_MAX_ENTRIES: u64 = 100_000;
pub const DEFAULT_INFLIGHT_SECONDS: u64 = 60;
pub const DEFAULT_MAX_INPUTS_BYTES: u64 = 8192;

#[derive(Debug)]
pub struct InboundPlan {
    pub path_prefix: String,
    pub max_body_bytes: u64,
    pub max_inputs_bytes: usize,
    pub tolerance_seconds: i64,
    pub allow: Allowlist,
    pub on_no_match: OnNoMatch,
    pub inputs_delivery: InputsDelivery,
    pub mtls_identity: MtlsIdentity,
    pub replay: ReplayPolicy,
    pub triggers: HashMap<String, Arc<Trigger>>,
    pub templates: TemplateSet,
    /// What a forwarded delivery hands Envoy (the opt-in cuts).
    pub outputs: Outputs,
    /// Non-fatal remarks for the operator, logged once at configure time.
    pub warnings: Vec<String>,
    /// Triggers whose last secret expires within 7 days.
    pub expiring: u64,
}

#[derive(Debug, Clone)]
pub struct ReplayPolicy {
    pub enabled: bool,
    pub window_seconds: u64,
    pub max_entries: u64,
    /// The local store's bound, derived from `max_entries` once.
    pub limits: crate::rules::replay::Limits,
    /// How long a delivery may stay reserved while its backend works.
    pub inflight_seconds: u64,
    /// `None`: the local store (Envoy shared data).
    pub etcd: Option<EtcdStore>,
    pub on_store_error: OnStoreError,
    /// How long a delivery may wait on the shared store.
    pub timeout_ms: u64,
    pub unknown_outcome: UnknownOutcome,
}

/// The etcd store, reached through an Envoy cluster.
#[derive(Debug, Clone)]
pub struct EtcdStore {
    pub cluster: String,
    pub authority: String,
    pub prefix: String,
}

pub const DEFAULT_ETCD_PREFIX: &str = "combo_webhook/replay/";
pub const DEFAULT_STORE_TIMEOUT_MS: u64 = 250;

#[derive(Debug)]
pub struct Trigger {
    pub id: String,
    pub scheme: Scheme,
    /// Secrets, public keys or tokens, by the scheme's algorithm.
    pub keys: Vec<Key>,
    /// Meta's `hub.verify_token`.
    pub verify_token: Option<String>,
    pub allow: Allowlist,
    pub mtls: Option<MtlsPolicy>,
    pub conditions: Vec<Condition>,
    pub agent_id: String,
    pub inputs: InputsId,
}

/// A verified client certificate is required; when `allowed_peers` is not
/// empty one of the certificate's identities must match an entry.
#[derive(Debug)]
pub struct MtlsPolicy {
    pub allowed_peers: Vec<PeerPattern>,
}

pub(super) fn compile(raw: RawConfig, c: &mut Compiler) -> Option<InboundPlan> {
    if raw.event_jsonpath.is_some() {
        c.error("event_jsonpath", "only valid with mode: outbound");
    }
    if !raw.subscriptions.is_empty() {
        c.error("subscriptions", "only valid with mode: outbound");
    }
    let mut path_prefix = raw.path_prefix.unwrap_or_else(|| DEFAULT_PATH_PREFIX.to_string());
    if !crate::rules::paths::is_canonical_prefix(&path_prefix) {
        c.error(
            "path_prefix",
            "must be a canonical path starting with '/' (no '?', '#', '%', '//', '.' or '..' segments)",
        );
    }
    if !path_prefix.ends_with('/') {
        path_prefix.push('/');
    }
    let max_body_bytes =
        c.range("max_body_bytes", raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES), MAX_MAX_BODY_BYTES);
    let max_inputs_bytes =
        c.range("max_inputs_bytes", raw.max_inputs_bytes.unwrap_or(DEFAULT_MAX_INPUTS_BYTES), 65_536);
    let tolerance = c.range(
        "timestamp_tolerance_seconds",
        raw.timestamp_tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS),
        86_400,
    );
    let allow = c.allowlist(&raw.allow_cidrs, "allow_cidrs");
    let replay = replay_policy(raw.replay.unwrap_or_default(), c);
    let outputs = outputs::compile(raw.annotations, raw.audit_filter_state, raw.on_no_match, c);

    let mut triggers = HashMap::with_capacity(raw.triggers.len());
    let mut all_inputs = Vec::with_capacity(raw.triggers.len());
    for (i, t) in raw.triggers.into_iter().enumerate() {
        let at = format!("triggers[{i}]");
        all_inputs.push(t.action.inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        if let Some(trigger) = trigger(t, i, &at, tolerance as i64, c) {
            if triggers.contains_key(&trigger.id) {
                c.error(format!("{at}.id"), format!("duplicate trigger id {:?}", trigger.id));
            } else {
                triggers.insert(trigger.id.clone(), Arc::new(trigger));
            }
        }
    }
    if triggers.is_empty() && c.ok() {
        c.warn("no triggers configured: every webhook will be answered 404".to_string());
    }
    let templates = match TemplateSet::compile(all_inputs) {
        Ok(t) => Some(t),
        Err(e) => {
            let at = format!("triggers[{}].action.inputs.{}", e.trigger, e.input);
            c.error(e.field.map_or(at.clone(), |f| format!("{at}.{f}")), e.message);
            None
        }
    }?;
    Some(InboundPlan {
        path_prefix,
        max_body_bytes,
        max_inputs_bytes: max_inputs_bytes as usize,
        tolerance_seconds: tolerance as i64,
        allow,
        on_no_match: raw.on_no_match,
        inputs_delivery: raw.inputs_delivery,
        mtls_identity: raw.mtls_identity,
        replay,
        triggers,
        templates,
        outputs,
        warnings: std::mem::take(&mut c.warnings),
        expiring: c.expiring,
    })
}

fn replay_policy(r: RawReplay, c: &mut Compiler) -> ReplayPolicy {
    let etcd = match (r.store, r.etcd) {
        (StoreKind::Local, None) => None,
        (StoreKind::Local, Some(_)) => {
            c.error("replay.etcd", "only valid with store: etcd");
            None
        }
        (StoreKind::Etcd, None) => {
            c.error("replay.etcd", "store: etcd needs etcd.cluster (the Envoy cluster that reaches etcd)");
            None
        }
        (StoreKind::Etcd, Some(e)) => {
            if e.cluster.is_empty() || !e.cluster.bytes().all(|b| b.is_ascii_graphic()) {
                c.error("replay.etcd.cluster", "must be an Envoy cluster name");
            }
            let prefix = e.prefix.unwrap_or_else(|| DEFAULT_ETCD_PREFIX.to_string());
            if prefix.is_empty() || prefix.len() > MAX_NAME {
                c.error("replay.etcd.prefix", "must be 1 to 128 bytes");
            }
            Some(EtcdStore { authority: e.authority.unwrap_or_else(|| e.cluster.clone()), cluster: e.cluster, prefix })
        }
    };
    let max_entries = c.range("replay.max_entries", r.max_entries.unwrap_or(DEFAULT_REPLAY_MAX_ENTRIES), 10_000_000);
    ReplayPolicy {
        enabled: r.enabled.unwrap_or(true),
        window_seconds: c.range(
            "replay.window_seconds",
            r.window_seconds.unwrap_or(DEFAULT_REPLAY_WINDOW_SECONDS),
            30 * 86_400,
        ),
        max_entries,
        limits: crate::rules::replay::Limits::of(max_entries),
        inflight_seconds: c.range(
            "replay.inflight_seconds",
            r.inflight_seconds.unwrap_or(DEFAULT_INFLIGHT_SECONDS),
            3600,
        ),
        etcd,
        on_store_error: r.on_store_error,
        timeout_ms: c.range("replay.timeout_ms", r.timeout_ms.unwrap_or(DEFAULT_STORE_TIMEOUT_MS), 10_000),
        unknown_outcome: r.unknown_outcome,
    }
}

fn trigger(mut t: RawTrigger, index: usize, at: &str, tolerance: i64, c: &mut Compiler) -> Option<Trigger> {
    let before = c.errors.len();
    if !valid_id(&t.id) {
        c.error(format!("{at}.id"), "must be a non-empty path segment of at most 128 visible ASCII characters");
    }
    let scheme = trigger_scheme(&mut t, at, tolerance, c);
    if let Some(s) = &scheme {
        // The URL the sender signed is the operator's to say: from the
        // request's Host, every port spelling would be another delivery.
        if s.signed.contains(&crate::rules::scheme::Token::Url) && s.public_url.is_none() {
            c.error(
                format!("{at}.scheme.public_url"),
                format!("is required: {} signs the URL, which is the URL configured at the sender", s.name),
            );
        }
        if matches!(&s.sender, Some((_, None))) {
            c.error(
                format!("{at}.scheme.sender.one_of"),
                format!("is required by {}: the senders (topics) this trigger accepts", s.name),
            );
        }
        for name in s.key_source.iter().flat_map(|k| k.params()).chain(s.signed_params()) {
            if !s.params.0.contains_key(&name) {
                c.error(format!("{at}.scheme.params.{name}"), format!("is required by {}", s.name));
            }
        }
    }
    let keys = match &scheme {
        Some(s) if s.key_source.is_some() => {
            // The sender publishes its key: the trigger holds none.
            for (given, field) in [
                (t.secret.is_some() || t.secrets.is_some(), "secret"),
                (t.public_key.is_some() || t.public_keys.is_some(), "public_key"),
            ] {
                if given {
                    c.error(
                        format!("{at}.{field}"),
                        format!("{} takes its key from scheme.key, the sender's published key", s.name),
                    );
                }
            }
            Vec::new()
        }
        Some(s) if s.algorithm.is_asymmetric() => {
            if t.secret.is_some() || t.secrets.is_some() {
                c.error(format!("{at}.secret"), format!("{} verifies with public_key, never a secret", s.name));
            }
            c.keys(
                t.public_key.take(),
                t.public_keys.take(),
                KeyKind::Public(s.algorithm),
                at,
                ("public_key", "public_keys"),
            )
        }
        Some(s) => {
            if t.public_key.is_some() || t.public_keys.is_some() {
                c.error(format!("{at}.public_key"), format!("{} verifies with a secret", s.name));
            }
            let kind = KeyKind::Secret(s.algorithm, s.secret_encoding);
            c.keys(t.secret.take(), t.secrets.take(), kind, at, ("secret", "secrets"))
        }
        None => Vec::new(),
    };
    let needs_token = scheme.as_ref().and_then(|s| s.handshake).is_some_and(|h| h.needs_verify_token());
    let verify_token = match (t.verify_token.take(), needs_token) {
        (Some(v), true) => c.raw_text(v, &format!("{at}.verify_token")),
        (None, true) => {
            c.error(format!("{at}.verify_token"), "the meta_hub_challenge handshake needs it");
            None
        }
        (Some(_), false) => {
            c.error(format!("{at}.verify_token"), "only the meta_hub_challenge handshake uses it");
            None
        }
        (None, false) => None,
    };
    let allow = c.allowlist(&t.allow_cidrs, &format!("{at}.allow_cidrs"));
    let mtls = t.mtls.and_then(|m| {
        if !m.required && !m.allowed_peers.is_empty() {
            c.error(format!("{at}.mtls.required"), "must be true when allowed_peers is set");
        }
        let mut allowed_peers = Vec::with_capacity(m.allowed_peers.len());
        for (j, text) in m.allowed_peers.iter().enumerate() {
            match PeerPattern::parse(text) {
                Some(p) => allowed_peers.push(p),
                None => c.error(
                    format!("{at}.mtls.allowed_peers[{j}]"),
                    "must be typed: uri:<URI SAN>, dns:<DNS SAN> or subject:<subject>",
                ),
            }
        }
        m.required.then_some(MtlsPolicy { allowed_peers })
    });
    let mut conditions = Vec::new();
    let (list, single) = match t.match_ {
        Some(OneOrMany::One(c)) => (vec![c], true),
        Some(OneOrMany::Many(v)) => (v, false),
        None => (vec![], true),
    };
    for (j, cond) in list.into_iter().enumerate() {
        let cat = if single { format!("{at}.match") } else { format!("{at}.match[{j}]") };
        match Condition::compile(&cond.jsonpath, cond.equals, cond.in_, cond.exists) {
            Ok(cond) => conditions.push(cond),
            Err(e) => match e.field {
                Some(key) => c.error(format!("{cat}.{key}"), e.message),
                None => c.error(cat, e.message),
            },
        }
    }
    if !valid_id(&t.action.agent_id) {
        c.error(format!("{at}.action.agent_id"), "must be non-empty visible ASCII");
    }
    for name in t.action.inputs.keys() {
        if name.is_empty() {
            c.error(format!("{at}.action.inputs"), "input names must not be empty");
        }
    }
    let scheme = scheme?;
    (c.errors.len() == before).then_some(Trigger {
        id: t.id,
        scheme,
        keys,
        verify_token,
        allow,
        mtls,
        conditions,
        agent_id: t.action.agent_id,
        inputs: index,
    })
}

/// The trigger's scheme: its preset (`source`), the preset's public-key
/// variant when it gives public keys, then its own `scheme:` fields.
fn trigger_scheme(t: &mut RawTrigger, at: &str, tolerance: i64, c: &mut Compiler) -> Option<Scheme> {
    let public = t.public_key.is_some() || t.public_keys.is_some();
    match resolve_scheme(t.source.as_deref(), t.scheme.take(), public, tolerance) {
        Ok(s) => Some(s),
        Err(SchemeError { field, message }) => {
            c.error(format!("{at}.{field}"), message);
            None
        }
    }
}

/// A scheme from a preset name and/or a `scheme:` of overrides (the
/// trigger's fields, and the CLI's `--source` / `--scheme`). An error's
/// field is relative to the trigger (`source`, `scheme.signature.prefix`).
pub fn resolve_scheme(
    source: Option<&str>,
    own: Option<RawScheme>,
    public_key: bool,
    tolerance: i64,
) -> Result<Scheme, SchemeError> {
    let name = source.unwrap_or(if own.is_some() { scheme::CUSTOM } else { "generic_webhook" });
    let base = if name == scheme::CUSTOM {
        RawScheme::default()
    } else {
        let Some(preset) = presets::find(name) else {
            return Err(SchemeError {
                field: "source".into(),
                message: format!("unknown preset {name:?}; `combo-webhook presets` lists them"),
            });
        };
        match preset.public_key {
            Some(variant) if public_key => variant.merge(preset.scheme),
            _ => preset.scheme,
        }
    };
    let raw = match own {
        Some(own) => own.merge(base),
        None => base,
    };
    scheme::compile(name, raw, tolerance).map_err(|e| SchemeError { field: format!("scheme.{}", e.field), ..e })
}
