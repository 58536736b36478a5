//! Compiles the raw configuration once (in `on_configure`) into the immutable
//! plan every request reads. All validation happens here; every error names
//! its field path.

use std::collections::HashMap;
use std::sync::Arc;

use crate::allowlist::Allowlist;
use crate::config::{self, InputsDelivery, Mode, OnNoMatch, RawConfig, RawSecret, RawTrigger};
use crate::error::ConfigError;
use crate::inputs::{InputsId, TemplateSet};
use crate::outbound::OutboundPlan;
use crate::matcher::Condition;
use crate::secrets::Secret;
use crate::signature::Profile;

pub const DEFAULT_PATH_PREFIX: &str = "/v1/webhook/generic/";
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1_048_576;
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
pub const DEFAULT_REPLAY_WINDOW_SECONDS: u64 = 300;
pub const DEFAULT_REPLAY_MAX_ENTRIES: u64 = 100_000;

#[derive(Debug)]
pub struct Plan {
    pub mode: Mode,
    pub path_prefix: String,
    pub max_body_bytes: u64,
    pub tolerance_seconds: i64,
    pub allow: Allowlist,
    pub on_no_match: OnNoMatch,
    pub inputs_delivery: InputsDelivery,
    pub replay: ReplayPolicy,
    pub triggers: HashMap<String, Arc<Trigger>>,
    pub templates: TemplateSet,
    /// Non-fatal remarks for the operator, logged once at configure time.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct ReplayPolicy {
    pub enabled: bool,
    pub window_seconds: u64,
    pub max_entries: u64,
}

#[derive(Debug)]
pub struct Trigger {
    pub id: String,
    pub profile: Profile,
    pub secrets: Vec<Secret>,
    pub allow: Allowlist,
    pub mtls: Option<MtlsPolicy>,
    pub conditions: Vec<Condition>,
    pub agent_id: String,
    pub inputs: InputsId,
}

/// A verified client certificate is required; when `allowed_peers` is not
/// empty the peer's URI SAN, DNS SAN or subject must be one of them.
#[derive(Debug)]
pub struct MtlsPolicy {
    pub allowed_peers: Vec<String>,
}

/// Looks up an environment variable (the VM's environment in Envoy).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A compiled configuration: the plan of the mode it configures.
#[derive(Debug)]
pub enum Compiled {
    Inbound(Plan),
    Outbound(OutboundPlan),
}

impl Compiled {
    pub fn warnings(&self) -> &[String] {
        match self {
            Compiled::Inbound(p) => &p.warnings,
            Compiled::Outbound(p) => &p.warnings,
        }
    }
}

/// Parses and compiles a JSON configuration; returns every error found.
pub fn from_json(text: &str, env: EnvLookup) -> Result<Compiled, Vec<ConfigError>> {
    let raw = config::parse_json(text).map_err(|e| vec![e])?;
    compile(raw, env)
}

/// Parses and compiles the plugin configuration bytes Envoy hands over.
pub fn from_plugin_bytes(bytes: &[u8], env: EnvLookup) -> Result<Compiled, Vec<ConfigError>> {
    let raw = config::parse_plugin_bytes(bytes).map_err(|e| vec![e])?;
    compile(raw, env)
}

pub fn compile(raw: RawConfig, env: EnvLookup) -> Result<Compiled, Vec<ConfigError>> {
    match raw.mode {
        Mode::Inbound => compile_inbound(raw, env).map(Compiled::Inbound),
        Mode::Outbound => crate::outbound::compile(raw, env).map(Compiled::Outbound),
    }
}

/// Collects errors so that a single run reports all of them, and warnings.
pub(crate) struct Errors(pub(crate) Vec<ConfigError>, pub(crate) Vec<String>);

impl Errors {
    pub(crate) fn new() -> Self {
        Errors(Vec::new(), Vec::new())
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.0.push(ConfigError::new(path, msg));
    }

    pub(crate) fn warn(&mut self, msg: String) {
        self.1.push(msg);
    }
}

fn compile_inbound(raw: RawConfig, env: EnvLookup) -> Result<Plan, Vec<ConfigError>> {
    let mut errs = Errors::new();

    if raw.event_jsonpath.is_some() {
        errs.push("event_jsonpath", "only valid with mode: outbound");
    }
    if !raw.subscriptions.is_empty() {
        errs.push("subscriptions", "only valid with mode: outbound");
    }

    let mut path_prefix = raw.path_prefix.unwrap_or_else(|| DEFAULT_PATH_PREFIX.to_string());
    if !path_prefix.starts_with('/') || path_prefix.contains(['?', '#']) {
        errs.push("path_prefix", format!("must be a path starting with '/', got {path_prefix:?}"));
    }
    if !path_prefix.ends_with('/') {
        path_prefix.push('/');
    }
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        errs.push("max_body_bytes", "must be greater than 0");
    }
    let tolerance = raw.timestamp_tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
    if tolerance == 0 || tolerance > 86_400 {
        errs.push("timestamp_tolerance_seconds", format!("must be between 1 and 86400, got {tolerance}"));
    }
    let allow = allowlist(&raw.allow_cidrs, "allow_cidrs", &mut errs);
    let replay = match raw.replay {
        None => ReplayPolicy {
            enabled: true,
            window_seconds: DEFAULT_REPLAY_WINDOW_SECONDS,
            max_entries: DEFAULT_REPLAY_MAX_ENTRIES,
        },
        Some(r) => {
            let p = ReplayPolicy {
                enabled: r.enabled.unwrap_or(true),
                window_seconds: r.window_seconds.unwrap_or(DEFAULT_REPLAY_WINDOW_SECONDS),
                max_entries: r.max_entries.unwrap_or(DEFAULT_REPLAY_MAX_ENTRIES),
            };
            if p.window_seconds == 0 {
                errs.push("replay.window_seconds", "must be greater than 0");
            }
            if p.max_entries == 0 {
                errs.push("replay.max_entries", "must be greater than 0");
            }
            p
        }
    };

    let mut triggers = HashMap::with_capacity(raw.triggers.len());
    let mut all_inputs = Vec::with_capacity(raw.triggers.len());
    for (i, t) in raw.triggers.into_iter().enumerate() {
        let at = format!("triggers[{i}]");
        all_inputs.push(t.action.inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
        if let Some(trigger) = trigger(t, i, &at, env, &mut errs) {
            if triggers.contains_key(&trigger.id) {
                errs.push(format!("{at}.id"), format!("duplicate trigger id {:?}", trigger.id));
            } else {
                triggers.insert(trigger.id.clone(), Arc::new(trigger));
            }
        }
    }
    if triggers.is_empty() && errs.0.is_empty() {
        errs.warn("no triggers configured: every webhook will be answered 404".to_string());
    }
    let templates = match TemplateSet::compile(all_inputs) {
        Ok(t) => Some(t),
        Err((i, name, msg)) => {
            errs.push(format!("triggers[{i}].action.inputs.{name}"), msg);
            None
        }
    };

    match templates {
        Some(templates) if errs.0.is_empty() => Ok(Plan {
            mode: raw.mode,
            path_prefix,
            max_body_bytes,
            tolerance_seconds: tolerance as i64,
            allow,
            on_no_match: raw.on_no_match,
            inputs_delivery: raw.inputs_delivery,
            replay,
            triggers,
            templates,
            warnings: errs.1,
        }),
        _ => Err(errs.0),
    }
}

fn allowlist(cidrs: &[String], at: &str, errs: &mut Errors) -> Allowlist {
    Allowlist::parse(cidrs).unwrap_or_else(|(i, msg)| {
        errs.push(format!("{at}[{i}]"), msg);
        Allowlist::default()
    })
}

/// A trigger id is one path segment and is echoed in a header.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_graphic() && !b"/?#%\\\"".contains(&b))
}

fn trigger(t: RawTrigger, index: usize, at: &str, env: EnvLookup, errs: &mut Errors) -> Option<Trigger> {
    let before = errs.0.len();
    if !valid_id(&t.id) {
        errs.push(format!("{at}.id"), format!("must be a non-empty path segment of visible ASCII, got {:?}", t.id));
    }
    let profile = Profile::parse(&t.source);
    if profile.is_none() {
        errs.push(
            format!("{at}.source"),
            format!("unknown source {:?}; expected one of {}", t.source, Profile::NAMES.join(", ")),
        );
    }
    let profile = profile.unwrap_or(Profile::GenericWebhook);
    let secrets = secret_list(t.secret, t.secrets, profile, at, env, errs);
    let allow = allowlist(&t.allow_cidrs, &format!("{at}.allow_cidrs"), errs);
    let mtls = t.mtls.and_then(|m| {
        if !m.required && !m.allowed_peers.is_empty() {
            errs.push(format!("{at}.mtls.required"), "must be true when allowed_peers is set");
        }
        m.required.then_some(MtlsPolicy { allowed_peers: m.allowed_peers })
    });
    let mut conditions = Vec::new();
    let (list, single) = match t.match_ {
        Some(config::OneOrMany::One(c)) => (vec![c], true),
        Some(config::OneOrMany::Many(v)) => (v, false),
        None => (vec![], true),
    };
    for (j, c) in list.into_iter().enumerate() {
        let cat = if single { format!("{at}.match") } else { format!("{at}.match[{j}]") };
        match Condition::compile(&c.jsonpath, c.equals, c.in_, c.exists) {
            Ok(cond) => conditions.push(cond),
            Err(("", msg)) => errs.push(cat, msg),
            Err((key, msg)) => errs.push(format!("{cat}.{key}"), msg),
        }
    }
    if !valid_id(&t.action.agent_id) {
        errs.push(format!("{at}.action.agent_id"), "must be non-empty visible ASCII");
    }
    for name in t.action.inputs.keys() {
        if name.is_empty() {
            errs.push(format!("{at}.action.inputs"), "input names must not be empty");
        }
    }
    (errs.0.len() == before).then_some(Trigger {
        id: t.id,
        profile,
        secrets,
        allow,
        mtls,
        conditions,
        agent_id: t.action.agent_id,
        inputs: index,
    })
}

/// Resolves `secret` / `secrets` (exactly one of them) into keyed secrets.
pub(crate) fn secret_list(
    secret: Option<String>,
    secrets: Option<Vec<RawSecret>>,
    profile: Profile,
    at: &str,
    env: EnvLookup,
    errs: &mut Errors,
) -> Vec<Secret> {
    let list = match (secret, secrets) {
        (Some(_), Some(_)) => {
            errs.push(format!("{at}.secret"), "give either secret or secrets, not both");
            return vec![];
        }
        (None, None) => {
            errs.push(format!("{at}.secrets"), "a secret is required");
            return vec![];
        }
        (Some(value), None) => vec![RawSecret { id: None, value: Some(value), env: None, not_before: None, not_after: None }],
        (None, Some(list)) if list.is_empty() => {
            errs.push(format!("{at}.secrets"), "must hold at least one secret");
            return vec![];
        }
        (None, Some(list)) => list,
    };
    let mut out = Vec::with_capacity(list.len());
    for (k, s) in list.into_iter().enumerate() {
        let sat = format!("{at}.secrets[{k}]");
        let text = match (s.value, s.env) {
            (Some(v), None) => {
                errs.warn(format!("{sat}: secret given inline; prefer env (from the proxy's environment)"));
                Some(v)
            }
            (None, Some(var)) => match env(&var) {
                Some(v) => Some(v),
                None => {
                    errs.push(format!("{sat}.env"), format!("environment variable {var:?} is not set"));
                    None
                }
            },
            _ => {
                errs.push(sat.clone(), "needs exactly one of value or env");
                None
            }
        };
        let Some(text) = text else { continue };
        if text.is_empty() {
            errs.push(sat.clone(), "secret is empty");
            continue;
        }
        let key = match profile.key_bytes(&text) {
            Ok(k) => k,
            Err(msg) => {
                errs.push(sat.clone(), msg);
                continue;
            }
        };
        let not_before = s.not_before.map(|v| v as i64);
        let not_after = s.not_after.map(|v| v as i64);
        if let (Some(nb), Some(na)) = (not_before, not_after) {
            if nb > na {
                errs.push(format!("{sat}.not_after"), "must not be before not_before");
            }
        }
        let key_id = s.id.unwrap_or_else(|| k.to_string());
        if !valid_id(&key_id) {
            errs.push(format!("{sat}.id"), "must be non-empty visible ASCII");
        }
        out.push(Secret::new(key_id, &key, not_before, not_after));
    }
    out
}

#[cfg(test)]
mod tests;
