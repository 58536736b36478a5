//! Compiles the operator's configuration once (in `on_configure`) into the
//! immutable plan every request reads. All validation happens here; every
//! error names its field path and never echoes a secret.
//!
//! `raw` is the serde shape, `inbound` and `outbound` compile each mode, and
//! this module holds what both modes share (errors, secrets, ids).

pub mod inbound;
pub mod outbound;
mod pbstruct;
pub mod raw;

use crate::contract::error::ConfigError;
use crate::rules::allowlist::Allowlist;
use crate::rules::secrets::Secret;
use crate::rules::signature::Profile;

pub use inbound::InboundPlan;
pub use outbound::OutboundPlan;
use raw::{Mode, RawConfig, RawSecret};

pub const DEFAULT_MAX_BODY_BYTES: u64 = 1_048_576;
/// Upper bound of `max_body_bytes`: Envoy buffers the body in memory.
pub const MAX_MAX_BODY_BYTES: u64 = 64 * 1_048_576;
/// Unix seconds of 9999-12-31T23:59:59Z: the last instant a config may name.
pub const MAX_UNIX_SECONDS: u64 = 253_402_300_799;
/// A last secret expiring sooner than this is worth a warning.
pub const ROTATION_WARNING_SECONDS: i64 = 7 * 86_400;

/// Looks up an environment variable (the VM's environment in Envoy).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A compiled configuration: the plan of the mode it configures.
#[derive(Debug)]
pub enum Compiled {
    Inbound(InboundPlan),
    Outbound(OutboundPlan),
}

impl Compiled {
    pub fn warnings(&self) -> &[String] {
        match self {
            Compiled::Inbound(p) => &p.warnings,
            Compiled::Outbound(p) => &p.warnings,
        }
    }

    /// Triggers or subscriptions whose last secret expires within 7 days
    /// (the `combo_webhook_secrets_expiring` gauge).
    pub fn expiring(&self) -> u64 {
        match self {
            Compiled::Inbound(p) => p.expiring,
            Compiled::Outbound(p) => p.expiring,
        }
    }
}

/// Parses and compiles a JSON configuration; returns every error found.
pub fn from_json(text: &str, env: EnvLookup, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    let raw = raw::parse_json(text).map_err(|e| vec![e])?;
    compile(raw, env, now)
}

/// Parses and compiles the plugin configuration bytes Envoy hands over.
pub fn from_plugin_bytes(bytes: &[u8], env: EnvLookup, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    let raw = raw::parse_plugin_bytes(bytes).map_err(|e| vec![e])?;
    compile(raw, env, now)
}

/// `now` (unix seconds) decides which secrets have already expired.
pub fn compile(raw: RawConfig, env: EnvLookup, now: i64) -> Result<Compiled, Vec<ConfigError>> {
    let mut ctx = Compiler { errors: Vec::new(), warnings: Vec::new(), expiring: 0, env, now };
    let compiled = match raw.mode {
        Mode::Inbound => inbound::compile(raw, &mut ctx).map(Compiled::Inbound),
        Mode::Outbound => outbound::compile(raw, &mut ctx).map(Compiled::Outbound),
    };
    match compiled {
        Some(c) if ctx.errors.is_empty() => Ok(c),
        _ => Err(ctx.errors),
    }
}

/// One compile run: collects every error (so one run reports all of them)
/// and the warnings, and knows the environment and the time.
pub(crate) struct Compiler<'a> {
    pub(crate) errors: Vec<ConfigError>,
    pub(crate) warnings: Vec<String>,
    /// How many secret lists run out within 7 days.
    pub(crate) expiring: u64,
    env: EnvLookup<'a>,
    now: i64,
}

impl Compiler<'_> {
    pub(crate) fn error(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(ConfigError::new(path, msg));
    }

    pub(crate) fn warn(&mut self, msg: String) {
        self.warnings.push(msg);
    }

    pub(crate) fn ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn allowlist(&mut self, cidrs: &[String], at: &str) -> Allowlist {
        Allowlist::parse(cidrs).unwrap_or_else(|bad| {
            let text = cidrs.get(bad.index).map_or("", String::as_str);
            self.error(format!("{at}[{}]", bad.index), format!("invalid CIDR {text:?}"));
            Allowlist::default()
        })
    }

    /// Checks `value` against `1..=max`, naming `path` in the error.
    pub(crate) fn range(&mut self, path: &str, value: u64, max: u64) -> u64 {
        if value == 0 || value > max {
            self.error(path, format!("must be between 1 and {max}, got {value}"));
        }
        value
    }

    /// Resolves `secret` / `secrets` (exactly one of them) into keyed secrets.
    pub(crate) fn secrets(
        &mut self,
        secret: Option<String>,
        secrets: Option<Vec<RawSecret>>,
        profile: Profile,
        at: &str,
    ) -> Vec<Secret> {
        let list = match (secret, secrets) {
            (Some(_), Some(_)) => {
                self.error(format!("{at}.secret"), "give either secret or secrets, not both");
                return vec![];
            }
            (None, None) => {
                self.error(format!("{at}.secrets"), "a secret is required");
                return vec![];
            }
            (Some(value), None) => {
                vec![RawSecret { id: None, value: Some(value), env: None, not_before: None, not_after: None }]
            }
            (None, Some(list)) if list.is_empty() => {
                self.error(format!("{at}.secrets"), "must hold at least one secret");
                return vec![];
            }
            (None, Some(list)) => list,
        };
        let mut out = Vec::with_capacity(list.len());
        for (k, s) in list.into_iter().enumerate() {
            if let Some(secret) = self.secret(s, k, profile, &format!("{at}.secrets[{k}]")) {
                out.push(secret);
            }
        }
        self.expiry_checks(&out, at);
        out
    }

    fn secret(&mut self, s: RawSecret, index: usize, profile: Profile, at: &str) -> Option<Secret> {
        let text = match (s.value, s.env) {
            (Some(v), None) => {
                self.warn(format!("{at}: secret given inline; prefer env (from the proxy's environment)"));
                v
            }
            (None, Some(var)) => match (self.env)(&var) {
                Some(v) => v,
                None => {
                    self.error(format!("{at}.env"), format!("environment variable {var:?} is not set"));
                    return None;
                }
            },
            _ => {
                self.error(at, "needs exactly one of value or env");
                return None;
            }
        };
        if text.is_empty() {
            self.error(at, "secret is empty");
            return None;
        }
        let key = match profile.key_bytes(&text) {
            Ok(k) => k,
            Err(msg) => {
                self.error(at, msg);
                return None;
            }
        };
        let mut window = |field: &str, v: Option<u64>| {
            v.map(|v| {
                if v > MAX_UNIX_SECONDS {
                    self.error(
                        format!("{at}.{field}"),
                        format!("must be unix seconds up to {MAX_UNIX_SECONDS} (year 9999)"),
                    );
                }
                v.min(MAX_UNIX_SECONDS) as i64
            })
        };
        let not_before = window("not_before", s.not_before);
        let not_after = window("not_after", s.not_after);
        if let (Some(nb), Some(na)) = (not_before, not_after) {
            if nb > na {
                self.error(format!("{at}.not_after"), "must not be before not_before");
            }
        }
        let key_id = s.id.unwrap_or_else(|| index.to_string());
        if !valid_id(&key_id) {
            self.error(format!("{at}.id"), "must be non-empty visible ASCII");
        }
        Some(Secret::new(key_id, &key, not_before, not_after))
    }

    /// Every secret already expired is an error; a last one expiring within
    /// 7 days is a warning (the rotation overlap is running out).
    fn expiry_checks(&mut self, secrets: &[Secret], at: &str) {
        if secrets.is_empty() {
            return;
        }
        let now = self.now;
        if secrets.iter().all(|s| s.not_after.is_some_and(|na| na < now)) {
            self.error(format!("{at}.secrets"), "every secret has expired (not_after is in the past)");
        } else if let Some(last) = secrets.iter().map(|s| s.not_after.unwrap_or(i64::MAX)).max() {
            if last < now.saturating_add(ROTATION_WARNING_SECONDS) {
                self.expiring += 1;
                self.warn(format!("{at}: the last secret expires within 7 days (not_after {last}); add its successor"));
            }
        }
    }
}

/// An id is one path segment and is echoed in a header.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic() && !b"/?#%\\\"".contains(&b))
}

#[cfg(test)]
mod tests;
